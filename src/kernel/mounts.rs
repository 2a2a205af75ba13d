//! Mounts: reading the mount table and the handful of mount(2) calls every
//! later chapter needs.
//!
//! Each mount namespace has its own table, and `/proc/self/mountinfo` shows
//! the table of the namespace the reading process is in, which is how the
//! chapters (and the tests) compare the host's view with the container's.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::support::fs::read_kernel_file;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// One line of `/proc/self/mountinfo`, reduced to what the lab looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount's ID, and the ID of the mount it sits on.
    pub id: u32,
    pub parent_id: u32,
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
    parse_mountinfo(&read_kernel_file("/proc/self/mountinfo")?)
}

/// The raw `/proc/self/mountinfo` text, for before/after comparisons.
pub fn mountinfo_text() -> io::Result<String> {
    read_kernel_file("/proc/self/mountinfo")
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
        let number = |field: &str| {
            field
                .parse()
                .map_err(|_| io::Error::other(format!("unexpected mountinfo line: {line}")))
        };
        entries.push(MountEntry {
            id: number(fields[0])?,
            parent_id: number(fields[1])?,
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

/// Remounts an existing bind mount read-only (`mount -o remount,bind,ro`),
/// keeping its nosuid, nodev, noexec and atime flags (a bind remount sets
/// them all anew, so they must be named again: /proc/sys stays noexec).
pub fn remount_read_only(target: &Path) -> Result<(), MountError> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let kept = statvfs(target)
        .map(|s| s.flags())
        .unwrap_or(FsFlags::empty());
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (has, flag) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if kept.contains(has) {
            flags |= flag;
        }
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|errno| MountError::new("remount read-only", target, errno))
}

/// `mount --rbind -o ro SOURCE TARGET`, read-only at every level: the bind
/// and every mount beneath it (a bind of `/` carries /proc, /sys, the
/// cgroup hierarchies, /dev/shm …). A plain `remount,bind,ro` changes only
/// the top mount and leaves all of those writable. Only this mount
/// namespace's copies change: the host's mounts stay as they are.
// ANCHOR: bind_read_only
pub fn bind_read_only(source: &Path, target: &Path) -> Result<(), MountError> {
    // Read before binding: afterwards the table holds the new mounts too.
    let table = mount_table().map_err(|e| table_error(target, e))?;
    bind(source, target, true)?;
    // One call for the whole tree (Linux 5.12; Docker 25 does the same).
    match mount_setattr_read_only(target) {
        Err(nix::errno::Errno::ENOSYS) => {}
        other => return other.map_err(|errno| MountError::new("make read-only", target, errno)),
    }
    // Older kernels: one mount at a time, as runc does.
    detach(target)?;
    bind_each_read_only(&table, source, target)
}
// ANCHOR_END: bind_read_only

/// Set by the tests only: take the fallback of [`bind_read_only`] (one
/// bind and remount per mount) even where the kernel has mount_setattr(2).
pub const FORCE_REMOUNT_FALLBACK_ENV: &std::ffi::CStr = c"CONTAINER_LAB_FORCE_REMOUNT_FALLBACK";

/// `struct mount_attr` of <linux/mount.h>.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// mount_setattr(2) with AT_RECURSIVE and MOUNT_ATTR_RDONLY on `target`.
fn mount_setattr_read_only(target: &Path) -> nix::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if crate::kernel::init::test_switch(FORCE_REMOUNT_FALLBACK_ENV) {
        return Err(nix::errno::Errno::ENOSYS);
    }
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

/// The fallback: `source` and every mount visible beneath it (from
/// `table`, parents first), each bound on its own at the same place under
/// `target` and remounted `bind,ro` with its own nosuid, nodev, noexec and
/// atime flags kept. MS_BIND makes each remount a per-mount change, never
/// one of the filesystem. Mounts hidden under another one at the same
/// place (a host may stack two on /dev/shm) are left out: a recursive bind
/// would copy them writable, and a remount by path only reaches the top.
pub fn bind_each_read_only(
    table: &[MountEntry],
    source: &Path,
    target: &Path,
) -> Result<(), MountError> {
    // The table names real paths; bind(2) follows symlinks in `source`.
    let source = &fs::canonicalize(source).map_err(|e| table_error(source, e))?;
    bind(source, target, false)?;
    remount_bind_read_only(target, table_flags(table, source))?;
    for entry in visible_beneath(table, source) {
        let Ok(relative) = entry.mount_point.strip_prefix(source) else {
            continue;
        };
        let place = target.join(relative);
        bind(&entry.mount_point, &place, false)?;
        remount_bind_read_only(&place, kept_flags(entry))?;
    }
    Ok(())
}

fn remount_bind_read_only(target: &Path, kept: MsFlags) -> Result<(), MountError> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept;
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|errno| MountError::new("remount read-only", target, errno))
}

/// The flags of the mount `path` is on (the last, topmost one there).
fn table_flags(table: &[MountEntry], path: &Path) -> MsFlags {
    table
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())
        .map_or(MsFlags::empty(), kept_flags)
}

/// The mounts strictly beneath `dir` that a path lookup reaches, parents
/// first: none covered by another mount on the same place, and none whose
/// parent is covered.
fn visible_beneath<'a>(table: &'a [MountEntry], dir: &Path) -> Vec<&'a MountEntry> {
    let covered = |m: &MountEntry| {
        table
            .iter()
            .any(|top| top.parent_id == m.id && top.id != m.id && top.mount_point == m.mount_point)
    };
    let by_id: std::collections::HashMap<u32, &MountEntry> =
        table.iter().map(|m| (m.id, m)).collect();
    let reachable = |m: &MountEntry| {
        if covered(m) {
            return false;
        }
        // Up the parents: one on another place must not be covered (a
        // parent on the same place is covered by the child itself).
        let mut child = m;
        while let Some(parent) = by_id.get(&child.parent_id) {
            if !parent.mount_point.starts_with(dir) || parent.id == child.id {
                break;
            }
            if parent.mount_point != child.mount_point && covered(parent) {
                return false;
            }
            child = parent;
        }
        true
    };
    let mut visible: Vec<&MountEntry> = table
        .iter()
        .filter(|m| m.mount_point.starts_with(dir) && m.mount_point != dir)
        .filter(|m| reachable(m))
        .collect();
    visible.sort_by_key(|m| m.mount_point.components().count());
    visible
}

fn table_error(target: &Path, err: io::Error) -> MountError {
    MountError::new(
        "look up the mounts beneath",
        target,
        err.raw_os_error()
            .map_or(nix::errno::Errno::EIO, nix::errno::Errno::from_raw),
    )
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
    fn stacked_mounts_and_what_sits_on_them_are_not_visible() {
        // Two tmpfs stacked on /dev/shm (the lower one hidden, with a
        // child of its own that is hidden too), and a tmpfs in the top one.
        let text = "\
1 1 0:1 / / rw,relatime - ext4 /dev/root rw
24 1 0:6 / /dev rw,nosuid - devtmpfs devtmpfs rw
25 24 0:23 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw
26 25 0:24 / /dev/shm/old rw - tmpfs tmpfs rw
30 25 0:27 / /dev/shm rw,nosuid,nodev,noexec - tmpfs tmpfs rw
31 30 0:28 / /dev/shm/new rw - tmpfs tmpfs rw
40 1 0:30 / /srv rw - tmpfs tmpfs rw
";
        let table = parse_mountinfo(text).unwrap();
        let ids = |dir: &str| -> Vec<u32> {
            visible_beneath(&table, Path::new(dir))
                .iter()
                .map(|m| m.id)
                .collect()
        };
        assert_eq!(ids("/"), [24, 40, 30, 31]);
        assert_eq!(ids("/dev"), [30, 31]);
        assert!(ids("/srv").is_empty());
        let top = table.iter().find(|m| m.id == 30).unwrap();
        assert_eq!(
            kept_flags(top),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_STRICTATIME
        );
        assert_eq!(
            table_flags(&table, Path::new("/dev/shm/x")),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_STRICTATIME
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_mountinfo("not a mountinfo line\n").is_err());
    }
}
