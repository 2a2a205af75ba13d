//! User namespaces: user and group IDs, and the capabilities that go with
//! them, relative to a namespace.
//!
//! A process in a new user namespace can be uid 0, with every capability,
//! *inside* it, while the kernel knows it as an ordinary unprivileged uid
//! outside. `/proc/PID/uid_map` and `gid_map` say how IDs inside translate
//! to IDs outside ("0 100000 65536": inside 0..65535 are outside
//! 100000..165535). A capability only counts for objects owned by that user
//! namespace or its descendants: files whose owner is not mapped, the host's
//! hostname, kernel modules, all stay out of reach.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::support::fs::read_kernel_file;
use nix::unistd::{Gid, Pid, Uid};

/// One line of a uid_map or gid_map: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl IdMap {
    pub fn line(&self) -> String {
        format!("{} {} {}\n", self.inside, self.outside, self.count)
    }
}

/// The maps for a container: uids and gids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserMap {
    pub uid: IdMap,
    pub gid: IdMap,
}

/// Used when /etc/subuid has no range for the user.
pub const DEFAULT_RANGE: (u32, u32) = (100_000, 65_536);

/// The range of subordinate IDs `user` may use, from /etc/subuid or
/// /etc/subgid ("name:start:count"), or the lab's fixed default.
// ANCHOR: range
pub fn subordinate_range(file: &Path, user: &str) -> (u32, u32) {
    read_kernel_file(file)
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let mut parts = line.split(':');
            if parts.next()? != user {
                return None;
            }
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .unwrap_or(DEFAULT_RANGE)
}
// ANCHOR_END: range

/// Root inside mapped to the invoking user's subordinate range (the user
/// who ran sudo, when there is one).
pub fn container_root_map() -> UserMap {
    let user = std::env::var("SUDO_USER").unwrap_or_else(|_| "root".to_string());
    let (uid_start, uid_count) = subordinate_range(Path::new("/etc/subuid"), &user);
    let (gid_start, gid_count) = subordinate_range(Path::new("/etc/subgid"), &user);
    UserMap {
        uid: IdMap {
            inside: 0,
            outside: uid_start,
            count: uid_count.min(65_536),
        },
        gid: IdMap {
            inside: 0,
            outside: gid_start,
            count: gid_count.min(65_536),
        },
    }
}

/// Writes a child's maps from the parent namespace. `setgroups` is written
/// first when asked: an unprivileged writer must deny setgroups(2) before
/// the kernel accepts its gid_map.
// ANCHOR: write_maps
pub fn write_maps(pid: Pid, map: &UserMap, deny_setgroups: bool) -> Result<(), UsernsError> {
    let proc_file = |name: &str| PathBuf::from(format!("/proc/{pid}/{name}"));
    if deny_setgroups {
        write(&proc_file("setgroups"), "deny")?;
    }
    write(&proc_file("gid_map"), &map.gid.line())?;
    write(&proc_file("uid_map"), &map.uid.line())
}
// ANCHOR_END: write_maps

/// Becomes uid 0 and gid 0 *of the current user namespace* (mapped to the
/// container's range outside), with no supplementary groups.
pub fn become_root() -> Result<(), UsernsError> {
    let root_uid = Uid::from_raw(0);
    let root_gid = Gid::from_raw(0);
    let _ = nix::unistd::setgroups(&[]);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .map_err(|e| UsernsError::Sys("setresgid(0)", e))?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .map_err(|e| UsernsError::Sys("setresuid(0)", e))
}

/// `chown -R OWNER:GROUP PATH` without following symlinks: gives a copied
/// image to the container's root, as seen from the host.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The uid that owns the user namespace of process `pid`: the effective
/// uid of whoever created it (`NS_GET_OWNER_UID` on its namespace link).
pub fn owner_of(pid: Pid) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    let ns = fs::File::open(format!("/proc/{pid}/ns/user"))?;
    let mut uid: libc::uid_t = 0;
    // Safety: the ioctl writes one uid_t into `uid`.
    let ret = unsafe { libc::ioctl(ns.as_raw_fd(), libc::NS_GET_OWNER_UID, &mut uid) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(uid)
}

/// The outcome of one write during the unprivileged demonstration.
pub fn try_write(path: &str, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
        None => e.to_string(),
    })
}

fn write(path: &Path, text: &str) -> Result<(), UsernsError> {
    fs::write(path, text).map_err(|source| UsernsError::Write {
        path: path.to_path_buf(),
        text: text.trim().to_string(),
        source,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("failed to write {text:?} to {}: {source}; are user namespaces enabled (user.max_user_namespaces)?", path.display())]
    Write {
        path: PathBuf,
        text: String,
        #[source]
        source: io::Error,
    },
    #[error("{0} failed: {1}")]
    Sys(&'static str, nix::errno::Errno),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_come_from_the_file_or_the_default() {
        let file = std::env::temp_dir().join(format!("lab-subuid-{}", std::process::id()));
        fs::write(&file, "alice:200000:65536\nbob:300000:1000\n").unwrap();
        assert_eq!(subordinate_range(&file, "bob"), (300_000, 1000));
        assert_eq!(subordinate_range(&file, "carol"), DEFAULT_RANGE);
        assert_eq!(
            subordinate_range(Path::new("/nonexistent"), "bob"),
            DEFAULT_RANGE
        );
        fs::remove_file(file).unwrap();
    }
}
