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
