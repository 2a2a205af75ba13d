//! The device allow-list: which device nodes a container's processes may
//! create (mknod), read and write.
//!
//! Root in a container keeps CAP_MKNOD, so it can make a node for any
//! major:minor, the host's disks included. The kernel asks the devices
//! cgroup before a node is opened or made: cgroup v1 has a `devices`
//! controller with `devices.allow` and `devices.deny` files; cgroup v2 has
//! no files for it, but runs a BPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup (`device_filter.rs`).
//! Both are fed from the same list of rules, in the shape of the OCI
//! runtime spec's `linux.resources.devices` entries.

use std::fmt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::v1::V1Dirs;
use super::{CgroupError, Writes};

/// `a` (every device), `c` (character) or `b` (block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    #[serde(rename = "a")]
    All,
    #[serde(rename = "c")]
    Char,
    #[serde(rename = "b")]
    Block,
}

impl DeviceKind {
    pub fn letter(self) -> char {
        match self {
            DeviceKind::All => 'a',
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        }
    }
}

/// What a rule grants or refuses: `r`ead, `w`rite, `m`knod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl Access {
    pub const RWM: Access = Access {
        read: true,
        write: true,
        mknod: true,
    };
    pub const MKNOD: Access = Access {
        read: false,
        write: false,
        mknod: true,
    };
}

impl FromStr for Access {
    type Err = String;

    /// Docker's and the kernel's spelling: some of `rwm`, each once.
    fn from_str(text: &str) -> Result<Access, String> {
        let mut access = Access {
            read: false,
            write: false,
            mknod: false,
        };
        for c in text.chars() {
            let flag = match c {
                'r' => &mut access.read,
                'w' => &mut access.write,
                'm' => &mut access.mknod,
                _ => {
                    return Err(format!(
                        "invalid device permissions {text:?}: use r, w and m (such as rwm or r)"
                    ))
                }
            };
            if *flag {
                return Err(format!(
                    "invalid device permissions {text:?}: {c} is given twice"
                ));
            }
            *flag = true;
        }
        if text.is_empty() {
            return Err("empty device permissions: use r, w and m (such as rwm)".to_string());
        }
        Ok(access)
    }
}

impl TryFrom<String> for Access {
    type Error = String;
    fn try_from(text: String) -> Result<Access, String> {
        text.parse()
    }
}

impl From<Access> for String {
    fn from(access: Access) -> String {
        access.to_string()
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (on, letter) in [(self.read, "r"), (self.write, "w"), (self.mknod, "m")] {
            if on {
                f.write_str(letter)?;
            }
        }
        Ok(())
    }
}

/// One rule. `None` for major or minor means any (`*`). In a list, a
/// later rule wins over an earlier one, as in the kernel's v1 lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    pub allow: bool,
    #[serde(rename = "type")]
    pub kind: DeviceKind,
    #[serde(default)]
    pub major: Option<u32>,
    #[serde(default)]
    pub minor: Option<u32>,
    pub access: Access,
}

impl DeviceRule {
    /// `a *:* rwm`, refused: the list starts from nothing.
    pub const DENY_ALL: DeviceRule = DeviceRule {
        allow: false,
        kind: DeviceKind::All,
        major: None,
        minor: None,
        access: Access::RWM,
    };
    /// `a *:* rwm`, allowed: what `--privileged` gets.
    pub const ALLOW_ALL: DeviceRule = DeviceRule {
        allow: true,
        ..DeviceRule::DENY_ALL
    };

    /// `c *:* m` or `b *:* m`: mknod of any node of that kind.
    pub const fn mknod_any(kind: DeviceKind) -> Self {
        DeviceRule {
            allow: true,
            kind,
            major: None,
            minor: None,
            access: Access::MKNOD,
        }
    }

    pub const fn allow(kind: DeviceKind, major: u32, minor: Option<u32>, access: Access) -> Self {
        DeviceRule {
            allow: true,
            kind,
            major: Some(major),
            minor,
            access,
        }
    }

    /// The lines this rule is written as in v1's `devices.allow` or
    /// `devices.deny` (the file is the second item). v1 reads a bare `a`
    /// as all access, so a partial `a` rule becomes a `c` and a `b` one.
    pub fn v1_lines(&self) -> Vec<(&'static str, String)> {
        let file = if self.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        let number = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let line = |kind: DeviceKind| {
            format!(
                "{} {}:{} {}",
                kind.letter(),
                number(self.major),
                number(self.minor),
                self.access
            )
        };
        match self.kind {
            DeviceKind::All
                if self.access == Access::RWM && self.major.is_none() && self.minor.is_none() =>
            {
                vec![(file, "a".to_string())]
            }
            DeviceKind::All => vec![
                (file, line(DeviceKind::Char)),
                (file, line(DeviceKind::Block)),
            ],
            kind => vec![(file, line(kind))],
        }
    }
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let lines: Vec<String> = self.v1_lines().into_iter().map(|(_, l)| l).collect();
        let verb = if self.allow { "allow" } else { "deny" };
        write!(f, "{verb} {}", lines.join(", "))
    }
}

/// Docker's list: moby's default spec (all refused, then null, zero,
/// random, urandom, tty, console) followed by runc's defaults (mknod of
/// any node, full, ptmx, the pseudo-terminals and tun). Docker also
/// refuses /dev/fuse explicitly; here nothing allowed it in the first place.
// ANCHOR: default_rules
pub const DOCKER_DEFAULT: &[DeviceRule] = {
    use DeviceKind::{Block, Char};
    const RWM: Access = Access::RWM;
    &[
        DeviceRule::DENY_ALL,
        // Making a node is harmless; opening it is what the list decides.
        DeviceRule::mknod_any(Char),
        DeviceRule::mknod_any(Block),
        DeviceRule::allow(Char, 1, Some(3), RWM), // /dev/null
        DeviceRule::allow(Char, 1, Some(5), RWM), // /dev/zero
        DeviceRule::allow(Char, 1, Some(7), RWM), // /dev/full
        DeviceRule::allow(Char, 1, Some(8), RWM), // /dev/random
        DeviceRule::allow(Char, 1, Some(9), RWM), // /dev/urandom
        DeviceRule::allow(Char, 5, Some(0), RWM), // /dev/tty
        DeviceRule::allow(Char, 5, Some(1), RWM), // /dev/console
        DeviceRule::allow(Char, 5, Some(2), RWM), // /dev/ptmx
        DeviceRule::allow(Char, 136, None, RWM),  // /dev/pts/*
        DeviceRule::allow(Char, 10, Some(200), RWM), // /dev/net/tun
    ]
};
// ANCHOR_END: default_rules

pub(super) const V1_HIERARCHIES: &[&str] = &["devices"];

/// v1: the rules in order into `devices.deny` and `devices.allow`, `a`
/// (all refused) first, then each exception.
// ANCHOR: devices
pub(super) fn set_v1(
    rules: &[DeviceRule],
    dirs: &V1Dirs,
    out: &mut Writes,
) -> Result<(), CgroupError> {
    let dir = dirs
        .get("devices")
        .ok_or(CgroupError::NoDevicesController)?;
    for (file, line) in rules.iter().flat_map(DeviceRule::v1_lines) {
        out.write(dir.join(file), line)?;
    }
    Ok(())
}
// ANCHOR_END: devices

/// v2: no files; a BPF program attached to the cgroup decides each open
/// and mknod (`device_filter.rs`).
pub(super) fn set_v2(
    rules: &[DeviceRule],
    dirs: &[PathBuf],
    out: &mut Writes,
) -> Result<(), CgroupError> {
    let dir = dirs.first().ok_or(CgroupError::NoDevicesController)?;
    for call in super::device_filter::attach(dir, rules)? {
        out.call(call);
    }
    Ok(())
}

/// `--device HOST_PATH[:CONTAINER_PATH][:PERMS]`, as Docker spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
    pub access: Access,
}

/// Parses Docker's `--device` syntax: the second part is the permissions
/// when it reads as such (`/dev/sdc:r`), the container's path otherwise.
pub fn parse_device(text: &str) -> Result<DeviceSpec, String> {
    let invalid = |why: String| format!("invalid --device {text:?}: {why}");
    let parts: Vec<&str> = text.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [host] => (*host, *host, "rwm"),
        [host, second] if second.parse::<Access>().is_ok() => (*host, *host, *second),
        [host, container] => (*host, *container, "rwm"),
        [host, container, perms] => (*host, *container, *perms),
        _ => {
            return Err(invalid(
                "use HOST_PATH[:CONTAINER_PATH][:PERMISSIONS], e.g. /dev/loop0:/dev/disk:r".into(),
            ))
        }
    };
    let access = perms.parse::<Access>().map_err(invalid)?;
    for (which, path) in [("host", host), ("container", container)] {
        if !path.starts_with('/') {
            return Err(invalid(format!(
                "the {which} path {path:?} is not absolute; use a path such as /dev/loop0"
            )));
        }
    }
    Ok(DeviceSpec {
        host_path: PathBuf::from(host),
        container_path: PathBuf::from(container),
        access,
    })
}

/// A device node to make in the container: what `stat` said of the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    pub path: PathBuf,
    pub kind: DeviceKind,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub access: Access,
}

impl DeviceSpec {
    /// Looks at the host's node (through symbolic links, as Docker does).
    pub fn resolve(&self) -> Result<DeviceNode, String> {
        let host = self.host_path.display();
        let meta = std::fs::metadata(&self.host_path)
            .map_err(|e| format!("--device {host}: {e}; name an existing device node"))?;
        let kind = if meta.file_type().is_char_device() {
            DeviceKind::Char
        } else if meta.file_type().is_block_device() {
            DeviceKind::Block
        } else {
            return Err(format!(
                "--device {host}: not a device node; name a character or block device such as /dev/loop0"
            ));
        };
        Ok(DeviceNode {
            path: self.container_path.clone(),
            kind,
            major: nix::sys::stat::major(meta.rdev()) as u32,
            minor: nix::sys::stat::minor(meta.rdev()) as u32,
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            access: self.access,
        })
    }
}

impl DeviceNode {
    /// The rule that lets the container use this node, and only this one.
    pub fn rule(&self) -> DeviceRule {
        DeviceRule::allow(self.kind, self.major, Some(self.minor), self.access)
    }

    /// `mknod PATH c|b MAJOR MINOR`, with the host node's mode and owner;
    /// run inside the container, after its /dev is mounted.
    pub fn create(&self) -> Result<(), String> {
        use nix::sys::stat::{makedev, mknod, Mode, SFlag};
        let fail =
            |op: &str, e: &dyn fmt::Display| format!("failed to {op} {}: {e}", self.path.display());
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail("create the directory of", &e))?;
        }
        // A node of the image's own (or a default one) gives way, as in runc.
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(fail("replace", &e));
            }
        }
        let kind = match self.kind {
            DeviceKind::Block => SFlag::S_IFBLK,
            _ => SFlag::S_IFCHR,
        };
        let dev = makedev(self.major.into(), self.minor.into());
        mknod(&self.path, kind, Mode::from_bits_truncate(self.mode), dev)
            .map_err(|e| fail("mknod", &e))?;
        // mknod applies the umask: set the host's mode exactly.
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(self.mode))
            .map_err(|e| fail("chmod", &e))?;
        std::os::unix::fs::chown(&self.path, Some(self.uid), Some(self.gid))
            .map_err(|e| fail("chown", &e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_defaults_read_as_the_kernel_writes_them() {
        let lines: Vec<String> = DOCKER_DEFAULT
            .iter()
            .flat_map(|r| r.v1_lines())
            .map(|(file, line)| format!("{file} {line}"))
            .collect();
        assert_eq!(lines[0], "devices.deny a");
        assert_eq!(lines[1], "devices.allow c *:* m");
        assert_eq!(lines[2], "devices.allow b *:* m");
        assert!(lines.contains(&"devices.allow c 136:* rwm".to_string()));
        assert!(lines.contains(&"devices.allow c 10:200 rwm".to_string()));
        assert_eq!(lines.len(), 13);
    }

    #[test]
    fn device_flags_parse_like_docker() {
        let spec = parse_device("/dev/loop3").unwrap();
        assert_eq!(spec.container_path, Path::new("/dev/loop3"));
        assert_eq!(spec.access, Access::RWM);
        let spec = parse_device("/dev/loop3:r").unwrap();
        assert_eq!(spec.container_path, Path::new("/dev/loop3"));
        assert_eq!(spec.access.to_string(), "r");
        let spec = parse_device("/dev/loop3:/dev/disk:rw").unwrap();
        assert_eq!(spec.container_path, Path::new("/dev/disk"));
        assert_eq!(spec.access.to_string(), "rw");
        for bad in [
            "dev/loop3",
            "/dev/loop3:disk",
            "/dev/loop3:/dev/disk:rwx",
            "/dev/loop3:/dev/disk:rr",
            "/dev/loop3:/dev/disk:",
            "/a:/b:r:w",
        ] {
            assert!(
                parse_device(bad)
                    .unwrap_err()
                    .starts_with("invalid --device"),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_device_nodes_resolve() {
        let null = parse_device("/dev/null:/dev/mine:r")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(
            (null.kind, null.major, null.minor),
            (DeviceKind::Char, 1, 3)
        );
        assert_eq!(null.rule().v1_lines()[0].1, "c 1:3 r");
        let err = parse_device("/etc/hostname")
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(err.contains("not a device node"), "{err}");
        assert!(parse_device("/no/such/node").unwrap().resolve().is_err());
    }

    #[test]
    fn rules_round_trip_in_the_oci_shape() {
        let json = serde_json::to_string(&DOCKER_DEFAULT[11]).unwrap();
        assert_eq!(
            json,
            r#"{"allow":true,"type":"c","major":136,"minor":null,"access":"rwm"}"#
        );
        let back: DeviceRule =
            serde_json::from_str(r#"{"allow":false,"type":"b","access":"w"}"#).unwrap();
        assert_eq!(
            back.v1_lines(),
            vec![("devices.deny", "b *:* w".to_string())]
        );
    }
}
