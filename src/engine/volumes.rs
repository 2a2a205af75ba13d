//! Volumes: directories from outside the image, bind-mounted into the
//! container's root before `pivot_root`, so that what a container writes
//! there outlives it (`-v`), and memory-backed scratch space (`--tmpfs`).
//!
//! A bind mount is not a copy: the container and the host see the same
//! inode, so a file written inside is on the host at once. A named volume
//! is only a bind mount of a directory the lab keeps for you, under
//! `/var/lib/container-lab/volumes/NAME/_data` (Docker keeps them in
//! `/var/lib/docker/volumes/NAME/_data`).

use std::fs;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

use crate::engine::dirs::LabDirs;
use crate::kernel::mounts::{self, MountError};
use crate::support::error::{io_err, IoError};

/// Where a volume's files come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// `-v /host/path:/target`: a directory or file of the host.
    Bind(PathBuf),
    /// `-v NAME:/target`: a named volume, created on first use.
    Named(String),
    /// `-v /target`: a volume with a generated name, removed with `--rm`.
    Anonymous,
}

/// One `-v SOURCE:TARGET[:ro]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub source: Source,
    pub target: String,
    pub read_only: bool,
}

/// One `--tmpfs TARGET[:OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsSpec {
    pub target: String,
    /// `nosuid,nodev,noexec` unless the options say otherwise, as Docker.
    pub flags: u64,
    /// What tmpfs itself understands: `size=`, `mode=`, `uid=`, `gid=`.
    pub data: String,
}

/// Parses Docker's `-v` syntax.
pub fn parse_volume(text: &str) -> Result<VolumeSpec, String> {
    let invalid = |why: &str| format!("invalid volume specification {text:?}: {why}");
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, None),
        [source, target] => (Some(*source), *target, None),
        [source, target, mode] => (Some(*source), *target, Some(*mode)),
        _ => return Err(invalid("use SOURCE:TARGET[:ro]")),
    };
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(other) => return Err(invalid(&format!("unknown mode {other:?}; use ro or rw"))),
    };
    check_target(target).map_err(|why| invalid(&why))?;
    let source = match source {
        None => Source::Anonymous,
        Some(path) if path.starts_with('/') => Source::Bind(PathBuf::from(path)),
        Some(name) => {
            check_volume_name(name).map_err(|why| invalid(&why))?;
            Source::Named(name.to_string())
        }
    };
    Ok(VolumeSpec {
        source,
        target: target.to_string(),
        read_only,
    })
}

/// Parses Docker's `--tmpfs TARGET[:OPTIONS]`.
pub fn parse_tmpfs(text: &str) -> Result<TmpfsSpec, String> {
    let invalid = |why: &str| format!("invalid --tmpfs {text:?}: {why}");
    let (target, options) = text.split_once(':').unwrap_or((text, ""));
    check_target(target).map_err(|why| invalid(&why))?;
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mut data = Vec::new();
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags -= MsFlags::MS_RDONLY,
            "exec" => flags -= MsFlags::MS_NOEXEC,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "suid" => flags -= MsFlags::MS_NOSUID,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "dev" => flags -= MsFlags::MS_NODEV,
            "nodev" => flags |= MsFlags::MS_NODEV,
            _ if ["size=", "mode=", "uid=", "gid=", "nr_inodes="]
                .iter()
                .any(|p| option.starts_with(p)) =>
            {
                data.push(option.to_string())
            }
            other => {
                return Err(invalid(&format!(
                    "unknown option {other:?}; use ro, rw, exec, noexec, suid, nosuid, dev, nodev, size=, mode=, uid=, gid="
                )))
            }
        }
    }
    Ok(TmpfsSpec {
        target: target.to_string(),
        flags: flags.bits(),
        data: data.join(","),
    })
}

/// A target is an absolute path inside the container that cannot climb out.
fn check_target(target: &str) -> Result<(), String> {
    let path = Path::new(target);
    if !path.is_absolute() {
        return Err(format!("the target {target:?} must be an absolute path"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("the target {target:?} must not contain .."));
    }
    if path == Path::new("/") {
        return Err("the target cannot be / (the image is the root)".to_string());
    }
    Ok(())
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if name.len() < 2 || !first_ok || !rest_ok {
        return Err(format!(
            "{name:?} is not a valid volume name: use letters, digits, _ . - (at least two characters), or an absolute path for a bind mount"
        ));
    }
    Ok(())
}

/// `/var/lib/container-lab/volumes/NAME/_data`
pub fn volume_dir(dirs: &LabDirs, name: &str) -> PathBuf {
    dirs.data.join("volumes").join(name).join("_data")
}

/// `docker volume create NAME`: nothing happens when it exists already.
pub fn create(dirs: &LabDirs, name: &str) -> Result<PathBuf, VolumeError> {
    check_volume_name(name).map_err(VolumeError::BadName)?;
    let dir = volume_dir(dirs, name);
    // volumes/ is root's alone (a container may leave setuid files here);
    // _data keeps the default mode: it is the volume's root inside.
    dirs.create_dir(&dir)?;
    Ok(dir)
}

/// The named volumes, sorted.
pub fn list(dirs: &LabDirs) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dirs.data.join("volumes"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("_data").is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// `docker volume rm NAME`, with its files.
pub fn remove(dirs: &LabDirs, name: &str) -> Result<(), VolumeError> {
    let dir = dirs.data.join("volumes").join(name);
    if check_volume_name(name).is_err() || !dir.join("_data").is_dir() {
        return Err(VolumeError::NoSuchVolume(name.to_string()));
    }
    crate::engine::dirs::remove_tree(&dir).map_err(io_err("remove", &dir))?;
    Ok(())
}

/// The host directory (or file) a volume mounts, made when missing: a
/// named volume's directory, or a bind source (Docker creates a missing
/// bind source as a directory too).
pub fn host_path(
    dirs: &LabDirs,
    spec: &VolumeSpec,
    anonymous_name: &str,
) -> Result<PathBuf, VolumeError> {
    match &spec.source {
        Source::Bind(path) => {
            if !path.exists() {
                fs::create_dir_all(path).map_err(io_err("create the bind source", path))?;
            }
            Ok(path.clone())
        }
        Source::Named(name) => create(dirs, name),
        Source::Anonymous => create(dirs, anonymous_name),
    }
}

/// Inside the container's mount namespace, before `pivot_root`: binds
/// `source` onto `root/TARGET` (created in the container's upper layer
/// when missing), read-only at every level when asked.
// ANCHOR: mount_volume
pub fn mount_volume(root: &Path, source: &Path, spec: &VolumeSpec) -> Result<(), VolumeError> {
    let target = inside(root, &spec.target)?;
    if source.is_dir() {
        fs::create_dir_all(&target).map_err(io_err("create", &target))?;
    } else if !target.exists() {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        }
        fs::write(&target, b"").map_err(io_err("create", &target))?;
    }
    if spec.read_only {
        // Every mount beneath the source too: `-v /:/host:ro` must not
        // leave /host/proc/sys or the host's cgroups writable.
        mounts::bind_read_only(source, &target)?;
    } else {
        mounts::bind(source, &target, true)?;
    }
    Ok(())
}
// ANCHOR_END: mount_volume

/// `mount -t tmpfs -o OPTIONS tmpfs root/TARGET`
pub fn mount_tmpfs(root: &Path, spec: &TmpfsSpec) -> Result<(), VolumeError> {
    let target = inside(root, &spec.target)?;
    fs::create_dir_all(&target).map_err(io_err("create", &target))?;
    let flags = MsFlags::from_bits_truncate(spec.flags);
    let data = (!spec.data.is_empty()).then_some(spec.data.as_str());
    mounts::mount_fs("tmpfs", &target, flags, data)?;
    Ok(())
}

/// `root/TARGET`, refusing a target whose existing parts are symlinks: an
/// image could otherwise point `/data` at a host path.
fn inside(root: &Path, target: &str) -> Result<PathBuf, VolumeError> {
    let mut path = root.to_path_buf();
    for part in Path::new(target).components().skip(1) {
        path.push(part);
        if path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(VolumeError::SymlinkTarget(target.to_string()));
        }
    }
    Ok(path)
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{0}")]
    BadName(String),
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    #[error("the mount target {0} is a symlink in the image; pick another target")]
    SymlinkTarget(String),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    State(#[from] crate::engine::dirs::StateError),
    #[error(transparent)]
    Io(#[from] IoError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_specs_parse_like_docker() {
        assert_eq!(
            parse_volume("/srv/data:/data:ro").unwrap(),
            VolumeSpec {
                source: Source::Bind("/srv/data".into()),
                target: "/data".into(),
                read_only: true
            }
        );
        assert_eq!(
            parse_volume("cache:/var/cache").unwrap().source,
            Source::Named("cache".into())
        );
        assert_eq!(parse_volume("/scratch").unwrap().source, Source::Anonymous);
        for bad in [
            "data",
            "a:b:c:d",
            "/x:relative",
            "/x:/y:rx",
            "/x:/../etc",
            "c:/",
            "-x:/y",
        ] {
            let err = parse_volume(bad).unwrap_err();
            assert!(
                err.starts_with("invalid volume specification"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn tmpfs_options_start_from_dockers_defaults() {
        let spec = parse_tmpfs("/run:exec,size=1m").unwrap();
        let flags = MsFlags::from_bits_truncate(spec.flags);
        assert!(flags.contains(MsFlags::MS_NOSUID | MsFlags::MS_NODEV));
        assert!(!flags.contains(MsFlags::MS_NOEXEC));
        assert_eq!(spec.data, "size=1m");
        assert!(parse_tmpfs("/run:bogus").is_err());
        assert!(parse_tmpfs("run").is_err());
    }
}
