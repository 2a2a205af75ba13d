//! The container's filesystem, made by its init inside its own mount
//! namespace: the propagation of `/`, the root bind-mounted onto itself,
//! every entry of `mounts` (options and propagation as mount(8) spells
//! them), the devices, then `pivot_root` (or, with `--no-pivot`, a move
//! and a chroot), and last the read-only root and the masked and
//! read-only paths.

use std::fs;
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use super::OciError;
use crate::kernel::mounts;

/// What mount(8) does with each option: flags set, flags cleared, a
/// propagation change, or data for the filesystem.
#[derive(Debug, Clone)]
pub struct Options {
    pub set: MsFlags,
    pub clear: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    /// `rro`: read-only at every level of a recursive bind.
    pub recursive_ro: bool,
}

pub fn parse_options(options: &[String]) -> Result<Options, OciError> {
    let mut parsed = Options {
        set: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: Vec::new(),
        data: Vec::new(),
        recursive_ro: false,
    };
    for option in options {
        let (set, clear) = match option.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            "iversion" => (MsFlags::MS_I_VERSION, MsFlags::empty()),
            "noiversion" => (MsFlags::empty(), MsFlags::MS_I_VERSION),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "rro" => {
                parsed.recursive_ro = true;
                (MsFlags::MS_RDONLY, MsFlags::empty())
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                parsed
                    .propagation
                    .push(propagation(option).unwrap_or(MsFlags::empty()));
                continue;
            }
            "idmap" | "ridmap" => {
                return Err(OciError::unsupported(
                    "mounts[].options: idmap",
                    "id-mapped mounts are not implemented",
                ))
            }
            "tmpcopyup" => {
                return Err(OciError::unsupported(
                    "mounts[].options: tmpcopyup",
                    "crun's copy-up of tmpfs is not implemented",
                ))
            }
            other if other.starts_with('r') && is_recursive_attr(other) => {
                return Err(OciError::unsupported(
                    &format!("mounts[].options: {other}"),
                    "recursive mount attributes other than rro are not implemented",
                ))
            }
            other => {
                parsed.data.push(other.to_string());
                continue;
            }
        };
        parsed.set |= set;
        parsed.set &= !clear;
        parsed.clear |= clear;
    }
    Ok(parsed)
}

fn is_recursive_attr(option: &str) -> bool {
    [
        "rrw",
        "rnosuid",
        "rsuid",
        "rnodev",
        "rdev",
        "rnoexec",
        "rexec",
        "rnoatime",
        "ratime",
        "rrelatime",
        "rnorelatime",
        "rstrictatime",
        "rnostrictatime",
        "rnodiratime",
        "rdiratime",
        "rnosymfollow",
        "rsymfollow",
    ]
    .contains(&option)
}

/// The propagation flags of `shared`, `rslave` …
pub fn propagation(name: &str) -> Option<MsFlags> {
    let (recursive, base) = match name.strip_prefix('r') {
        Some(base) if base != "o" && !base.is_empty() => (true, base),
        _ => (false, name),
    };
    let flag = match base {
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return None,
    };
    Some(if recursive {
        flag | MsFlags::MS_REC
    } else {
        flag
    })
}

fn sys(op: String) -> impl FnOnce(nix::errno::Errno) -> OciError {
    OciError::sys(op)
}

/// `root` joined with `path` as the container would resolve it: symlinks
/// are followed inside `root` only, `..` never climbs above it.
pub fn secure_join(root: &Path, path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<PathBuf> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(PathBuf::from(p)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == Path::new("..") {
            resolved.pop();
            continue;
        }
        let next = resolved.join(&part);
        match fs::read_link(root.join(&next)) {
            Ok(target) if links < 255 => {
                links += 1;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(p) => pending.push(PathBuf::from(p)),
                        Component::ParentDir => pending.push(PathBuf::from("..")),
                        _ => {}
                    }
                }
            }
            _ => resolved = next,
        }
    }
    root.join(resolved)
}

/// Before the mounts: `/` slave (host mounts still arrive, none of the
/// container's leave) or private, then the root a mount point of its own.
pub fn prepare_root(spec: &Spec, rootfs: &Path) -> Result<(), OciError> {
    let wanted = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    let flag = match wanted.trim_start_matches('r') {
        "private" | "unbindable" => MsFlags::MS_PRIVATE,
        _ => MsFlags::MS_SLAVE,
    };
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        flag | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("make / slave in the container's mount namespace".into()))?;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!(
        "bind-mount the root {} onto itself",
        rootfs.display()
    )))?;
    Ok(())
}

/// Context the mounts need: where the bundle and the cgroups are.
pub struct MountContext<'a> {
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub cgroups: &'a [PathBuf],
    pub cgroup_version: u8,
    pub new_cgroupns: bool,
    pub userns: bool,
}

/// Every entry of `mounts`, in order.
pub fn mount_all(spec: &Spec, cx: &MountContext) -> Result<(), OciError> {
    for m in spec.mounts().iter().flatten() {
        mount_one(m, cx)
            .map_err(|e| OciError::Other(format!("mount {}: {e}", m.destination().display())))?;
    }
    Ok(())
}

fn mount_one(m: &Mount, cx: &MountContext) -> Result<(), OciError> {
    let options = parse_options(m.options().as_deref().unwrap_or(&[]))?;
    let kind = m.typ().clone().unwrap_or_default();
    let dest = secure_join(cx.rootfs, m.destination());
    let is_bind = options.set.contains(MsFlags::MS_BIND) || kind == "bind";
    if kind == "cgroup" || kind == "cgroup2" && !cx.new_cgroupns {
        return mount_cgroups(&dest, &options, cx);
    }
    let data = options.data.join(",");
    let data = (!data.is_empty()).then_some(data);
    if is_bind {
        let source = m.source().clone().unwrap_or_default();
        let source = if source.is_absolute() {
            source
        } else {
            cx.bundle.join(source)
        };
        let meta = fs::metadata(&source)
            .map_err(|e| OciError::Other(format!("bind source {}: {e}", source.display())))?;
        make_mount_point(&dest, meta.is_dir())?;
        let flags = MsFlags::MS_BIND | (options.set & MsFlags::MS_REC);
        mount(Some(&source), &dest, None::<&str>, flags, None::<&str>)
            .map_err(sys(format!("bind {}", source.display())))?;
        let extra = options.set & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if options.recursive_ro {
            mounts::bind_read_only(&dest, &dest)?;
        } else if !extra.is_empty() {
            remount_bind(&dest, extra)?;
        }
    } else {
        make_mount_point(&dest, true)?;
        let source = m.source().clone().unwrap_or_else(|| PathBuf::from(&kind));
        let flags = options.set;
        match mount(
            Some(&source),
            &dest,
            Some(kind.as_str()),
            flags,
            data.as_deref(),
        ) {
            Ok(()) => {}
            // sysfs needs a network namespace of the user namespace's
            // own: without one, the host's /sys, bound read-only.
            Err(nix::errno::Errno::EPERM) if kind == "sysfs" && cx.userns => {
                mount(
                    Some("/sys"),
                    &dest,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(sys("bind /sys".into()))?;
                remount_bind(
                    &dest,
                    MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                )?;
            }
            Err(errno) => return Err(OciError::sys(format!("mount -t {kind}"))(errno)),
        }
    }
    for flag in &options.propagation {
        mount(None::<&str>, &dest, None::<&str>, *flag, None::<&str>)
            .map_err(sys("change propagation".into()))?;
    }
    Ok(())
}

/// Remounts a bind with `flags`, keeping the flags the kernel locks on it
/// (a bind from a user namespace cannot lose nosuid, nodev, noexec).
fn remount_bind(dest: &Path, flags: MsFlags) -> Result<(), OciError> {
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    match mount(None::<&str>, dest, None::<&str>, base | flags, None::<&str>) {
        Err(nix::errno::Errno::EPERM) => {
            let locked = nix::sys::statvfs::statvfs(dest)
                .map(|s| statvfs_flags(s.flags()))
                .unwrap_or(MsFlags::empty());
            mount(
                None::<&str>,
                dest,
                None::<&str>,
                base | flags | locked,
                None::<&str>,
            )
            .map_err(sys("remount the bind".into()))
        }
        other => other.map_err(sys("remount the bind".into())),
    }
}

fn statvfs_flags(flags: nix::sys::statvfs::FsFlags) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    let mut out = MsFlags::empty();
    for (from, to) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if flags.contains(from) {
            out |= to;
        }
    }
    out
}

/// A directory (or, for a file's bind, an empty file) to mount on.
fn make_mount_point(dest: &Path, dir: bool) -> Result<(), OciError> {
    if dir {
        if !dest.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dest)
                .map_err(|e| OciError::Other(format!("create {}: {e}", dest.display())))?;
        }
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(|e| OciError::Other(format!("create {}: {e}", parent.display())))?;
    }
    if !dest.exists() {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(dest)
            .map_err(|e| OciError::Other(format!("create {}: {e}", dest.display())))?;
    }
    Ok(())
}

/// A `cgroup` mount: the container's own cgroups, seen where a host has
/// its hierarchies. v1: a tmpfs holding one bind of the container's
/// directory per hierarchy; v2: a bind of its directory (a fresh cgroup2
/// mount where the container has a cgroup namespace of its own).
fn mount_cgroups(dest: &Path, options: &Options, cx: &MountContext) -> Result<(), OciError> {
    make_mount_point(dest, true)?;
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let read_only = options.set.contains(MsFlags::MS_RDONLY);
    if cx.cgroup_version == 2 {
        if cx.new_cgroupns {
            let flags = hardened | (options.set & MsFlags::MS_RDONLY);
            mount(Some("cgroup2"), dest, Some("cgroup2"), flags, None::<&str>)
                .map_err(sys("mount -t cgroup2".into()))?;
        } else if let Some(dir) = cx.cgroups.first() {
            mount(
                Some(dir),
                dest,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys(format!("bind {}", dir.display())))?;
            remount_bind(dest, hardened | (options.set & MsFlags::MS_RDONLY))?;
        }
        return Ok(());
    }
    mount(
        Some("tmpfs"),
        dest,
        Some("tmpfs"),
        hardened,
        Some("mode=755"),
    )
    .map_err(sys("mount a tmpfs for the cgroups".into()))?;
    for dir in cx.cgroups {
        // /sys/fs/cgroup/memory/OWN/ID → DEST/memory
        let Ok(rest) = dir.strip_prefix(crate::kernel::cgroups::CGROUP_ROOT) else {
            continue;
        };
        let Some(hierarchy) = rest.components().next() else {
            continue;
        };
        let target = dest.join(hierarchy);
        make_mount_point(&target, true)?;
        mount(
            Some(dir),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys(format!("bind {}", dir.display())))?;
        remount_bind(
            &target,
            hardened
                | if read_only {
                    MsFlags::MS_RDONLY
                } else {
                    MsFlags::empty()
                },
        )?;
    }
    // cpu,cpuacct-style names for hierarchies that share one mount.
    if read_only {
        remount_fs(dest, hardened | MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

fn remount_fs(dest: &Path, flags: MsFlags) -> Result<(), OciError> {
    mount(
        None::<&str>,
        dest,
        None::<&str>,
        MsFlags::MS_REMOUNT | flags,
        None::<&str>,
    )
    .map_err(sys(format!("remount {}", dest.display())))
}

/// The devices every container has, then `linux.devices`; in a user
/// namespace (no mknod) each is a bind of the host's node. Then the
/// usual symlinks in /dev.
pub fn create_devices(spec: &Spec, rootfs: &Path, userns: bool) -> Result<(), OciError> {
    let defaults: [(&str, i64, i64); 6] = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ];
    let dev = rootfs.join("dev");
    let bound_from_host = spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("bind"));
    if bound_from_host {
        return Ok(());
    }
    let mut list: Vec<LinuxDevice> = Vec::new();
    for (path, major, minor) in defaults {
        let mut device = LinuxDevice::default();
        device.set_path(PathBuf::from(path));
        device.set_typ(LinuxDeviceType::C);
        device.set_major(major);
        device.set_minor(minor);
        device.set_file_mode(Some(0o666));
        device.set_uid(Some(0));
        device.set_gid(Some(0));
        list.push(device);
    }
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    for device in configured {
        list.retain(|d| d.path() != device.path());
        list.push(device);
    }
    if dev.is_dir() {
        for device in &list {
            create_device(rootfs, device, userns)?;
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ] {
            let path = dev.join(link);
            if fs::symlink_metadata(&path).is_err() {
                symlink(target, &path)
                    .map_err(|e| OciError::Other(format!("link {}: {e}", path.display())))?;
            }
        }
        if rootfs.join("proc/kcore").exists()
            || spec
                .mounts()
                .iter()
                .flatten()
                .any(|m| m.destination() == Path::new("/proc"))
        {
            let core = dev.join("core");
            if fs::symlink_metadata(&core).is_err() {
                let _ = symlink("/proc/kcore", &core);
            }
        }
    }
    Ok(())
}

fn create_device(rootfs: &Path, device: &LinuxDevice, userns: bool) -> Result<(), OciError> {
    let path = secure_join(rootfs, device.path());
    let kind = match device.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(OciError::invalid(
                "linux.devices[].type",
                format!(
                    "{} has type a, which names no node",
                    device.path().display()
                ),
            ))
        }
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| OciError::Other(format!("create {}: {e}", parent.display())))?;
    }
    if userns {
        make_mount_point(&path, false)?;
        return mount(
            Some(device.path()),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys(format!("bind the host's {}", device.path().display())));
    }
    let _ = fs::remove_file(&path);
    let mode = Mode::from_bits_truncate(device.file_mode().unwrap_or(0o666));
    let dev = makedev(device.major() as u64, device.minor() as u64);
    mknod(&path, kind, mode, dev).map_err(sys(format!("mknod {}", device.path().display())))?;
    // mknod applies the umask: the mode is set again.
    nix::sys::stat::fchmodat(
        None,
        &path,
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(sys(format!("chmod {}", device.path().display())))?;
    nix::unistd::chown(
        &path,
        device.uid().map(nix::unistd::Uid::from_raw),
        device.gid().map(nix::unistd::Gid::from_raw),
    )
    .map_err(sys(format!("chown {}", device.path().display())))?;
    Ok(())
}

/// Makes `rootfs` the root: `pivot_root(".", ".")` stacks the old root
/// under the new one, which is then detached (no directory is needed in
/// a root that may be read-only). `--no-pivot`: a move and a chroot.
pub fn enter(rootfs: &Path, no_pivot: bool) -> Result<(), OciError> {
    nix::unistd::chdir(rootfs).map_err(sys(format!("chdir {}", rootfs.display())))?;
    if no_pivot {
        mount(
            Some(rootfs),
            "/",
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(sys("move the root onto /".into()))?;
        nix::unistd::chroot(".").map_err(sys("chroot".into()))?;
    } else {
        nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root".into()))?;
        // The old root: no event of ours may reach it, then it goes.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("make the old root slave".into()))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(sys("detach the old root".into()))?;
    }
    nix::unistd::chdir("/").map_err(sys("chdir /".into()))?;
    Ok(())
}

/// After the pivot: `rootfsPropagation` shared or unbindable for the whole
/// tree (a new peer group: nothing reaches the host).
pub fn apply_root_propagation(spec: &Spec) -> Result<(), OciError> {
    let wanted = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    let flag = match wanted.trim_start_matches('r') {
        "shared" => MsFlags::MS_SHARED,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return Ok(()),
    };
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        flag | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!("make / {wanted}")))
}

/// `maskedPaths`: /dev/null over files, an empty read-only tmpfs over
/// directories; `readonlyPaths`: read-only binds of themselves.
pub fn mask_and_protect(spec: &Spec) -> Result<(), OciError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for path in linux.readonly_paths().iter().flatten() {
        let path = Path::new(path);
        if fs::symlink_metadata(path).is_err() {
            continue;
        }
        // A bind of itself, read-only (as runc: the top mount).
        mount(
            Some(path),
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys(format!("bind {}", path.display())))?;
        remount_bind(path, MsFlags::MS_RDONLY)?;
    }
    for path in linux.masked_paths().iter().flatten() {
        let path = Path::new(path);
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                mount(
                    Some("tmpfs"),
                    path,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    Some("size=0"),
                )
                .map_err(sys(format!("mask {}", path.display())))?;
            }
            Ok(_) => {
                mount(
                    Some("/dev/null"),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(sys(format!("mask {}", path.display())))?;
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// `root.readonly`: the root remounted read-only (only the top mount).
pub fn read_only_root() -> Result<(), OciError> {
    remount_bind(Path::new("/"), MsFlags::MS_RDONLY)
}
