//! The container's own view of its cgroup, as Docker gives it on cgroup
//! v2: a cgroup namespace, whose root is the cgroup the process was in when
//! it unshared it, and at /sys/fs/cgroup a read-only cgroup filesystem
//! mounted from inside that namespace, so that the kernel shows the
//! container's own cgroup as the root. Language runtimes (the JVM, Go, .NET)
//! read `memory.max` or `memory.limit_in_bytes` there to size themselves.
//!
//! On v1 the same is done hierarchy by hierarchy, for the hierarchies the
//! container has a cgroup of its own in: a tmpfs at /sys/fs/cgroup and one
//! cgroup mount per hierarchy beneath it, each rooted at the container's
//! directory. (Docker on v1 bind-mounts those directories instead, without
//! a namespace; what the container reads is the same.)

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::{unshare, CloneFlags};

use super::{CgroupError, CGROUP_ROOT};
use crate::kernel::mounts;

/// One cgroup hierarchy as the container mounts it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// `cgroup2`, or `cgroup` (v1).
    pub fs_type: String,
    /// Where it goes beneath /sys/fs/cgroup: "" for v2's single hierarchy,
    /// the host's directory name (`memory`, `cpu,cpuacct`) on v1.
    pub dir: String,
    /// The superblock's options (v1: the controllers, `memory`), which a
    /// second mount of the same hierarchy must repeat.
    pub options: String,
}

/// The hierarchies that hold `dirs` (a cgroup's directories, one per
/// hierarchy), read from this process's mount table.
pub fn hierarchies_of(dirs: &[PathBuf]) -> Result<Vec<Hierarchy>, CgroupError> {
    let text =
        mounts::mountinfo_text().map_err(|e| CgroupError::io("read", "/proc/self/mountinfo", e))?;
    let mut found = Vec::new();
    for line in text.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let mut tail = after.split(' ');
        let (Some(fs_type), _, Some(options)) = (tail.next(), tail.next(), tail.next()) else {
            continue;
        };
        if fs_type != "cgroup" && fs_type != "cgroup2" {
            continue;
        }
        let Some(point) = before.split(' ').nth(4).map(PathBuf::from) else {
            continue;
        };
        let Ok(rel) = point.strip_prefix(CGROUP_ROOT) else {
            continue;
        };
        if !dirs.iter().any(|d| d.starts_with(&point)) {
            continue;
        }
        let hierarchy = Hierarchy {
            fs_type: fs_type.to_string(),
            dir: rel.to_string_lossy().into_owned(),
            options: options
                .split(',')
                .filter(|o| *o != "rw" && *o != "ro")
                .collect::<Vec<_>>()
                .join(","),
        };
        if !found.contains(&hierarchy) {
            found.push(hierarchy);
        }
    }
    Ok(found)
}

/// `unshare --cgroup`: from now on this process's cgroup is its root.
/// Called after joining the container's cgroup.
pub fn unshare_namespace() -> Result<(), CgroupError> {
    unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|errno| {
        CgroupError::io(
            "unshare the cgroup namespace of",
            "/proc/self",
            errno.into(),
        )
    })
}

/// Mounts `hierarchies` at /sys/fs/cgroup, read-only unless `writable`
/// (Docker's `--privileged`). Runs inside the container, after /sys.
pub fn mount_view(hierarchies: &[Hierarchy], writable: bool) -> Result<(), CgroupError> {
    let root = Path::new(CGROUP_ROOT);
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let ro = if writable {
        MsFlags::empty()
    } else {
        MsFlags::MS_RDONLY
    };
    let mount = |h: &Hierarchy, target: &Path| {
        let data = (!h.options.is_empty()).then_some(h.options.as_str());
        nix::mount::mount(
            Some("cgroup"),
            target,
            Some(h.fs_type.as_str()),
            base | ro,
            data,
        )
        .map_err(|errno| CgroupError::io("mount the container's cgroup on", target, errno.into()))
    };
    if let Some(unified) = hierarchies.iter().find(|h| h.dir.is_empty()) {
        return mount(unified, root);
    }
    if hierarchies.is_empty() {
        return Ok(());
    }
    mounts::mount_fs("tmpfs", root, base, Some("mode=755"))
        .map_err(|e| CgroupError::io("mount tmpfs on", root, std::io::Error::from(e.errno)))?;
    for hierarchy in hierarchies {
        let target = root.join(&hierarchy.dir);
        fs::create_dir_all(&target).map_err(|e| CgroupError::io("create", &target, e))?;
        mount(hierarchy, &target)?;
        // `cpu` and `cpuacct` point at `cpu,cpuacct`, as on the host.
        if hierarchy.dir.contains(',') {
            for name in hierarchy.dir.split(',') {
                let link = root.join(name);
                symlink(&hierarchy.dir, &link).map_err(|e| CgroupError::io("link", &link, e))?;
            }
        }
    }
    if !writable {
        let flags = base | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        nix::mount::mount(None::<&str>, root, None::<&str>, flags, Some("mode=755"))
            .map_err(|errno| CgroupError::io("remount read-only", root, errno.into()))?;
    }
    Ok(())
}
