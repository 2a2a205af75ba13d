//! Mounts: reading the mount table and the handful of mount(2) calls every
//! later chapter needs.
//!
//! Each mount namespace has its own table, and `/proc/self/mountinfo` shows
//! the table of the namespace the reading process is in, which is how the
//! chapters (and the tests) compare the host's view with the container's.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// One line of `/proc/self/mountinfo`, reduced to what the lab looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    /// Per-mount options, e.g. `rw,nosuid,relatime`.
    pub options: String,
    /// Propagation tags such as `shared:1`, empty when the mount is private.
    pub propagation: String,
}

impl MountEntry {
    pub fn read_only(&self) -> bool {
        self.options.split(',').any(|o| o == "ro")
    }
}

/// Parses `/proc/self/mountinfo` of the calling process's mount namespace.
pub fn mount_table() -> io::Result<Vec<MountEntry>> {
    parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo")?)
}

/// The raw `/proc/self/mountinfo` text, for before/after comparisons.
pub fn mountinfo_text() -> io::Result<String> {
    fs::read_to_string("/proc/self/mountinfo")
}

pub fn parse_mountinfo(text: &str) -> io::Result<Vec<MountEntry>> {
    let mut entries = Vec::new();
    for line in text.lines() {
        // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
        let (before, after) = line
            .split_once(" - ")
            .ok_or_else(|| io::Error::other(format!("unexpected mountinfo line: {line}")))?;
        let fields: Vec<&str> = before.split(' ').collect();
        let tail: Vec<&str> = after.split(' ').collect();
        if fields.len() < 6 || tail.len() < 2 {
            return Err(io::Error::other(format!(
                "unexpected mountinfo line: {line}"
            )));
        }
        entries.push(MountEntry {
            mount_point: PathBuf::from(unescape(fields[4])),
            options: fields[5].to_string(),
            propagation: fields[6..].join(" "),
            fs_type: tail[0].to_string(),
            source: unescape(tail[1]),
        });
    }
    Ok(entries)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
        {
            let code = u8::from_str_radix(&field[i + 1..i + 4], 8).unwrap_or(b'?');
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when anything is mounted at or beneath `path` in this namespace.
pub fn has_mounts_under(path: &Path) -> io::Result<bool> {
    Ok(mount_table()?
        .iter()
        .any(|m| m.mount_point.starts_with(path)))
}

/// `mount --make-rprivate /`: stop mount events from travelling between this
/// namespace and the host. systemd makes `/` shared, and without this step
/// every mount the container makes would appear on the host too, and
/// `pivot_root` refuses to work (EINVAL).
// ANCHOR: make_private
pub fn make_tree_private() -> Result<(), MountError> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|errno| MountError::new("make private", "/", errno))
}
// ANCHOR_END: make_private

/// `mount --bind SOURCE TARGET` (recursively when `recursive`).
pub fn bind(source: &Path, target: &Path, recursive: bool) -> Result<(), MountError> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(source), target, None::<&str>, flags, None::<&str>)
        .map_err(|errno| MountError::new("bind-mount", target, errno))
}

/// Remounts an existing bind mount read-only (`mount -o remount,bind,ro`).
pub fn remount_read_only(target: &Path) -> Result<(), MountError> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|errno| MountError::new("remount read-only", target, errno))
}

/// `mount --rbind -o ro SOURCE TARGET`, read-only at every level: the bind
/// and every mount beneath it (a bind of `/` carries /proc, /sys, the
/// cgroup hierarchies, /dev/shm …). A plain `remount,bind,ro` changes only
/// the top mount and leaves all of those writable.
// ANCHOR: bind_read_only
pub fn bind_read_only(source: &Path, target: &Path) -> Result<(), MountError> {
    bind(source, target, true)?;
    make_read_only_recursive(target)
}
// ANCHOR_END: bind_read_only

/// Set by the tests only: use the fallback of [`make_read_only_recursive`]
/// (one remount per mount) even where the kernel has mount_setattr(2).
pub const FORCE_REMOUNT_FALLBACK_ENV: &std::ffi::CStr = c"CONTAINER_LAB_FORCE_REMOUNT_FALLBACK";

/// Makes the mount at `target` and every mount beneath it read-only, in
/// this mount namespace only: mount_setattr(2) with AT_RECURSIVE (Linux
/// 5.12, as Docker 25 does), or on older kernels one bind remount per
/// mount, as runc does.
// ANCHOR: read_only_recursive
pub fn make_read_only_recursive(target: &Path) -> Result<(), MountError> {
    if !crate::init::test_switch(FORCE_REMOUNT_FALLBACK_ENV) {
        match mount_setattr_read_only(target) {
            Err(nix::errno::Errno::ENOSYS) => {}
            other => {
                return other.map_err(|errno| MountError::new("make read-only", target, errno))
            }
        }
    }
    remount_each_read_only(target)
}
// ANCHOR_END: read_only_recursive

/// `struct mount_attr` of <linux/mount.h>.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

fn mount_setattr_read_only(target: &Path) -> nix::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| nix::errno::Errno::EINVAL)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // Safety: a NUL-terminated path and a mount_attr of the size we pass.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            (libc::AT_RECURSIVE | libc::AT_SYMLINK_NOFOLLOW) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    nix::errno::Errno::result(ret).map(drop)
}

/// The fallback: every mount at or beneath `target`, parents first (the
/// order of mountinfo), remounted `bind,ro` with its own nosuid, nodev,
/// noexec and atime flags kept (a bind remount that omits them would try
/// to clear them). MS_BIND makes each one a per-mount change: the
/// filesystems themselves, and the host's view of them, stay writable.
pub fn remount_each_read_only(target: &Path) -> Result<(), MountError> {
    let table = mount_table().map_err(|e| {
        MountError::new(
            "read the mount table to remount",
            target,
            e.raw_os_error()
                .map_or(nix::errno::Errno::EIO, nix::errno::Errno::from_raw),
        )
    })?;
    for entry in table.iter().filter(|m| m.mount_point.starts_with(target)) {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept_flags(entry);
        mount(
            None::<&str>,
            &entry.mount_point,
            None::<&str>,
            flags,
            None::<&str>,
        )
        .map_err(|errno| MountError::new("remount read-only", &entry.mount_point, errno))?;
    }
    Ok(())
}

/// The per-mount flags a bind remount must repeat to keep them.
fn kept_flags(entry: &MountEntry) -> MsFlags {
    let mut flags = MsFlags::empty();
    for option in entry.options.split(',') {
        flags |= match option {
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "noatime" => MsFlags::MS_NOATIME,
            "nodiratime" => MsFlags::MS_NODIRATIME,
            "relatime" => MsFlags::MS_RELATIME,
            _ => MsFlags::empty(),
        };
    }
    // mountinfo names no atime option for a strictatime mount.
    if !flags.intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME) {
        flags |= MsFlags::MS_STRICTATIME;
    }
    flags
}

/// Mounts a pseudo filesystem (`proc`, `sysfs`, `tmpfs`, `devpts` …).
pub fn mount_fs(
    fs_type: &str,
    target: &Path,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), MountError> {
    mount(Some(fs_type), target, Some(fs_type), flags, data)
        .map_err(|errno| MountError::new(&format!("mount {fs_type} on"), target, errno))
}

/// `umount --lazy TARGET`: detach now, free once nothing uses it.
pub fn detach(target: &Path) -> Result<(), MountError> {
    umount2(target, MntFlags::MNT_DETACH).map_err(|errno| MountError::new("unmount", target, errno))
}

#[derive(Debug, thiserror::Error)]
#[error("failed to {op} {}: {errno}", path.display())]
pub struct MountError {
    pub op: String,
    pub path: PathBuf,
    pub errno: nix::errno::Errno,
}

impl MountError {
    pub fn new(op: &str, path: impl AsRef<Path>, errno: nix::errno::Errno) -> MountError {
        MountError {
            op: op.to_string(),
            path: path.as_ref().to_path_buf(),
            errno,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_mountinfo_line() {
        let text =
            "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n";
        let entries = parse_mountinfo(text).unwrap();
        assert_eq!(entries[0].mount_point, PathBuf::from("/mnt 2"));
        assert_eq!(entries[0].fs_type, "ext3");
        assert_eq!(entries[0].propagation, "master:1");
        assert!(!entries[0].read_only());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_mountinfo("not a mountinfo line\n").is_err());
    }
}
