//! Hardening: what is left to take away from a root process that is
//! already in its own namespaces.
//!
//! - **Capabilities.** Root's power is split into about forty capabilities.
//!   The bounding set caps what a process and everything it executes can
//!   ever have; Docker keeps fourteen and drops the rest.
//! - **no_new_privs.** After `prctl(PR_SET_NO_NEW_PRIVS)`, no execve can
//!   grant more privileges (setuid binaries, file capabilities).
//! - **seccomp.** A BPF filter the kernel runs on every system call:
//!   Docker's allow-list (`seccomp.rs`); every other call fails with EPERM.
//! - **Read-only and masked paths.** Parts of /proc that describe or
//!   control the whole machine are covered or made read-only.

pub mod docker_profile;
pub mod seccomp;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::str::FromStr;

use caps::{CapSet, Capability};
use nix::mount::MsFlags;
use seccompiler::BpfProgram;

use crate::kernel::mounts::{self, MountError};

/// The capabilities Docker's default profile keeps.
// ANCHOR: default_caps
pub const DOCKER_DEFAULT_CAPS: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];
// ANCHOR_END: default_caps

/// /proc files and directories hidden from the container, and the ones
/// left visible but read-only (Docker's lists).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
pub const READ_ONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// What a container's processes get: the capabilities they keep, whether
/// a seccomp filter applies (Docker's, or a profile of Docker's JSON
/// format), and whether no_new_privs is set (Docker: only with
/// `--security-opt no-new-privileges`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub keep: BTreeSet<String>,
    pub seccomp: bool,
    #[serde(default)]
    pub no_new_privs: bool,
    /// `--security-opt seccomp=FILE`: the file's JSON, in place of Docker's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<String>,
}

impl Profile {
    /// Docker's defaults, changed by `--cap-add` and `--cap-drop` (names
    /// with or without `CAP_`, or `ALL`), applied in that order: drops
    /// first, then adds, as Docker does.
    pub fn docker_default(add: &[String], drop: &[String]) -> Result<Profile, String> {
        let mut keep: BTreeSet<String> =
            DOCKER_DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        for name in drop {
            match canonical(name)? {
                None => keep.clear(),
                Some(cap) => {
                    keep.remove(&cap.to_string());
                }
            }
        }
        for name in add {
            match canonical(name)? {
                None => keep.extend(caps::all().iter().map(|c| c.to_string())),
                Some(cap) => {
                    keep.insert(cap.to_string());
                }
            }
        }
        Ok(Profile {
            keep,
            seccomp: true,
            no_new_privs: false,
            seccomp_profile: None,
        })
    }

    /// `--privileged`: every capability and no seccomp filter (the
    /// runtime also leaves /proc unmasked).
    /// Every capability the host's own bounding set still holds: no
    /// process can get more than that.
    pub fn privileged() -> Profile {
        let bounding = caps::read(None, CapSet::Bounding).unwrap_or_else(|_| caps::all());
        Profile {
            keep: bounding.iter().map(|c| c.to_string()).collect(),
            seccomp: false,
            no_new_privs: false,
            seccomp_profile: None,
        }
    }

    fn kept(&self) -> caps::CapsHashSet {
        caps::all()
            .into_iter()
            .filter(|c| self.keep.contains(&c.to_string()))
            .collect()
    }

    /// Applies the profile to the calling process, just before it executes
    /// the container's program: bounding set, then the process's own sets
    /// (the inheritable set empty, as Docker's since 20.10.14), then
    /// no_new_privs and the seccomp filter. Installing a filter needs
    /// CAP_SYS_ADMIN or no_new_privs: without no_new_privs the filter goes
    /// in first, while this process still has every capability (as runc).
    // ANCHOR: apply
    pub fn apply(&self) -> Result<(), HardeningError> {
        let keep = self.kept();
        if self.seccomp && !self.no_new_privs {
            self.install_filters()?;
        }
        for cap in caps::all() {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| HardeningError::Caps(e.to_string()))?;
            }
        }
        caps::clear(None, CapSet::Inheritable).map_err(|e| HardeningError::Caps(e.to_string()))?;
        for set in [CapSet::Effective, CapSet::Permitted] {
            caps::set(None, set, &keep).map_err(|e| HardeningError::Caps(e.to_string()))?;
        }
        caps::clear(None, CapSet::Ambient).map_err(|e| HardeningError::Caps(e.to_string()))?;
        if self.no_new_privs {
            nix::sys::prctl::set_no_new_privs().map_err(HardeningError::NoNewPrivs)?;
        }
        if self.seccomp && self.no_new_privs {
            self.install_filters()?;
        }
        Ok(())
    }
    // ANCHOR_END: apply

    /// `prctl(PR_SET_SECCOMP)` for each program (seccompiler's own
    /// `apply_filter` would set no_new_privs first, which Docker does not).
    fn install_filters(&self) -> Result<(), HardeningError> {
        for program in self.seccomp_filters()? {
            let prog = libc::sock_fprog {
                len: program.len() as libc::c_ushort,
                filter: program.as_ptr() as *mut libc::sock_filter,
            };
            let done = unsafe {
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                    &prog as *const libc::sock_fprog as libc::c_ulong,
                )
            };
            nix::errno::Errno::result(done)
                .map_err(|e| HardeningError::Seccomp(format!("prctl(PR_SET_SECCOMP): {e}")))?;
        }
        Ok(())
    }

    /// The BPF programs for this profile's capabilities (see `seccomp`),
    /// or for its own Docker-format profile.
    pub fn seccomp_filters(&self) -> Result<Vec<BpfProgram>, HardeningError> {
        match &self.seccomp_profile {
            Some(json) => docker_profile::compile(json, seccomp::Arch::NATIVE, &self.keep),
            None => seccomp::filters(seccomp::Arch::NATIVE, &self.keep),
        }
        .map_err(HardeningError::Seccomp)
    }
}

/// `SYS_ADMIN`, `cap_sys_admin` or `CAP_SYS_ADMIN`; `None` for `ALL`.
pub fn canonical(name: &str) -> Result<Option<Capability>, String> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(None);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    Capability::from_str(&full)
        .map(Some)
        .map_err(|_| format!("unknown capability {name:?}: use a name from capabilities(7) such as NET_ADMIN, or ALL"))
}

/// Runs inside the container's mount namespace, after /proc is mounted:
/// covers the masked paths (/dev/null over files, an empty read-only tmpfs
/// over directories) and makes the read-only paths read-only.
// ANCHOR: mask
pub fn mask_paths() -> Result<(), HardeningError> {
    for path in MASKED_PATHS.iter().map(Path::new).filter(|p| p.exists()) {
        if path.is_dir() {
            // As runc: read-only, no options of its own.
            mounts::mount_fs("tmpfs", path, MsFlags::MS_RDONLY, None)?;
        } else {
            mounts::bind(Path::new("/dev/null"), path, false)?;
        }
    }
    for path in READ_ONLY_PATHS.iter().map(Path::new).filter(|p| p.exists()) {
        mounts::bind(path, path, true)?;
        mounts::remount_read_only(path)?;
    }
    Ok(())
}
// ANCHOR_END: mask

/// `mount -o remount,ro /`: the container's root becomes read-only.
pub fn read_only_root() -> Result<(), HardeningError> {
    Ok(mounts::remount_read_only(Path::new("/"))?)
}

/// The capability lines of /proc/self/status, decoded.
pub fn decode_capabilities(hex: &str) -> Vec<String> {
    let bits = u64::from_str_radix(hex.trim(), 16).unwrap_or(0);
    let mut names: Vec<String> = caps::all()
        .into_iter()
        .filter(|c| bits & c.bitmask() != 0)
        .map(|c| c.to_string().trim_start_matches("CAP_").to_lowercase())
        .collect();
    names.sort();
    names
}

/// Whether a path can be read at all (for showing masked files).
pub fn readable_bytes(path: &str) -> Option<usize> {
    fs::read(path).ok().map(|b| b.len())
}

#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    #[error("failed to change capabilities: {0}")]
    Caps(String),
    #[error("failed to set no_new_privs: {0}")]
    NoNewPrivs(nix::errno::Errno),
    #[error("failed to install the seccomp filter: {0}")]
    Seccomp(String),
    #[error(transparent)]
    Mount(#[from] MountError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_flags_change_the_default_set_like_docker() {
        let default = Profile::docker_default(&[], &[]).unwrap();
        assert_eq!(default.keep.len(), 14);
        assert!(!default.keep.contains("CAP_SYS_ADMIN"));
        let admin = Profile::docker_default(&["sys_admin".into()], &[]).unwrap();
        assert!(admin.keep.contains("CAP_SYS_ADMIN"));
        let minimal =
            Profile::docker_default(&["NET_BIND_SERVICE".into()], &["ALL".into()]).unwrap();
        assert_eq!(
            minimal.keep.iter().collect::<Vec<_>>(),
            ["CAP_NET_BIND_SERVICE"]
        );
        assert!(Profile::docker_default(&["FLY".into()], &[])
            .unwrap_err()
            .contains("unknown capability"));
    }

    #[test]
    fn the_seccomp_filters_build_for_this_architecture() {
        let filters = Profile::docker_default(&[], &[])
            .unwrap()
            .seccomp_filters()
            .unwrap();
        // The allow-list, and the one that answers clone3 with ENOSYS.
        assert_eq!(filters.len(), 2);
        // Docker's list as ranges of numbers (see `seccomp::compile`): far
        // fewer instructions than calls, but more than a trivial filter.
        let length = filters[0].len();
        assert!((60..300).contains(&length), "{length} instructions");
    }
}
