//! Where the lab keeps things: persistent data (the cached root filesystem)
//! and per-run trees (a container's copy of it). Nothing the lab makes lives
//! anywhere else.
//!
//! `CONTAINER_LAB_ROOT=/some/dir` moves both under one directory; the tests
//! pin it so that the paths in the snapshots are the same on every machine.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::support::error::{io_err, IoError};

/// The environment variable that relocates every lab directory.
pub const ROOT_ENV: &str = "CONTAINER_LAB_ROOT";

#[derive(Debug, Clone)]
pub struct LabDirs {
    /// Kept between runs: images and other caches (`/var/lib/container-lab`).
    pub data: PathBuf,
    /// Per-run state, gone after a reboot (`/run/container-lab`).
    pub run: PathBuf,
}

impl LabDirs {
    pub fn from_env() -> LabDirs {
        match std::env::var_os(ROOT_ENV) {
            Some(root) if !root.is_empty() => {
                let root = PathBuf::from(root);
                LabDirs {
                    data: root.join("lib"),
                    run: root.join("run"),
                }
            }
            _ => LabDirs {
                data: PathBuf::from("/var/lib/container-lab"),
                run: PathBuf::from("/run/container-lab"),
            },
        }
    }

    /// The directory of one named container's per-run files.
    pub fn container_dir(&self, name: &str) -> PathBuf {
        self.run.join("containers").join(name)
    }

    /// The lab's own directories with their modes, parents first.
    fn layout(&self) -> Vec<(PathBuf, u32)> {
        let data = |p: &str| self.data.join(p);
        let run = |p: &str| self.run.join(p);
        vec![
            (self.data.clone(), TRAVERSE_ONLY),
            (data("images"), TRAVERSE_ONLY),
            (data("images/imported"), PRIVATE),
            (data("images/layers"), PRIVATE),
            (data("lifecycle"), PRIVATE),
            (data("networks"), PRIVATE),
            (data("volumes"), PRIVATE),
            (self.run.clone(), TRAVERSE_ONLY),
            (run("containers"), TRAVERSE_ONLY),
            (run("lifecycle"), PRIVATE),
            (run("network"), PRIVATE),
        ]
    }

    /// Creates the two roots and tightens every lab directory that exists
    /// already, so that an install made before the modes were set is
    /// closed the next time the lab starts.
    // ANCHOR: prepare
    pub fn prepare(&self) -> Result<(), StateError> {
        for root in [&self.data, &self.run] {
            self.create_dir(root)?;
        }
        for (path, mode) in self.layout() {
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => set_mode(&path, meta.permissions().mode(), mode)?,
                _ => {}
            }
        }
        Ok(())
    }
    // ANCHOR_END: prepare

    /// `mkdir -p PATH`, where every lab directory on the way (see
    /// `layout`) gets its mode; below them, directories get the default.
    pub fn create_dir(&self, path: &Path) -> Result<(), StateError> {
        let layout = self.layout();
        let mut ours: Vec<&(PathBuf, u32)> = layout
            .iter()
            .filter(|(dir, _)| path.starts_with(dir))
            .collect();
        ours.sort_by_key(|(dir, _)| dir.components().count());
        if let Some((top, _)) = ours.first() {
            if let Some(parent) = top.parent() {
                fs::create_dir_all(parent).map_err(io_err("create", parent))?;
            }
        }
        for (dir, mode) in ours {
            match fs::DirBuilder::new().mode(*mode).create(dir) {
                Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(IoError::new("create", dir, err).into())
                }
                _ => {}
            }
            // mkdir applies the umask, and an older install had other modes.
            let meta = fs::metadata(dir).map_err(io_err("stat", dir))?;
            set_mode(dir, meta.permissions().mode(), *mode)?;
        }
        Ok(fs::create_dir_all(path).map_err(io_err("create", path))?)
    }
}

/// Who may enter the lab's directories. As Docker keeps /var/lib/docker:
/// nothing a container made (writable layers, volumes, setuid files in
/// them), no record (with its `-e` values) and no log is reachable by a
/// host user.
///
/// `PRIVATE` (0700): root only: records, logs, layers, volumes, imported
/// images (their setuid files).
pub const PRIVATE: u32 = 0o700;
/// `TRAVERSE_ONLY` (0711): others may pass through but not list: the two
/// roots, `images/` and `run/containers/`. Chapter 7's rootless step mounts
/// the built-in busybox image (made by the lab, no setuid file) as user
/// nobody, who must reach it; everything else below sits in a 0700 or 0710
/// directory.
pub const TRAVERSE_ONLY: u32 = 0o711;
/// A container's run directory (`run/containers/NAME`): 0710, group the
/// host gid that a user namespace's root is mapped to (chapter 7): that
/// root must pass through to reach the copy of the image it owns, as
/// Docker's remapped root does through its 0710 root:REMAPPED directories.
/// No host user is in that group.
pub const RUN_DIR_MODE: u32 = 0o710;

fn set_mode(path: &Path, current: u32, wanted: u32) -> Result<(), StateError> {
    if current & 0o7777 == wanted {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(wanted))
        .map_err(io_err("set the mode of", path))?;
    Ok(())
}

/// A per-run directory that is removed when dropped, whatever happened.
///
/// Creating it fails when another run with the same name is still alive, so
/// two chapters never share (and then delete) each other's files.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    pub fn create(dirs: &LabDirs, name: &str) -> Result<RunDir, StateError> {
        dirs.prepare()?;
        let path = dirs.container_dir(name);
        let pid_file = path.join("owner.pid");
        if path.exists() {
            let owner = fs::read_to_string(&pid_file).ok();
            let alive = owner
                .as_deref()
                .and_then(|pid| pid.trim().parse::<i32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if alive {
                return Err(StateError::InUse {
                    name: name.to_string(),
                });
            }
            // Left over from a run that was killed with SIGKILL: reclaim it.
            remove_tree(&path).map_err(io_err("remove stale", &path))?;
        }
        dirs.create_dir(&dirs.run.join("containers"))?;
        fs::DirBuilder::new()
            .mode(RUN_DIR_MODE)
            .create(&path)
            .map_err(|source| match source.kind() {
                // Another run with this name made it just now.
                io::ErrorKind::AlreadyExists => StateError::InUse {
                    name: name.to_string(),
                },
                _ => IoError::new("create", &path, source).into(),
            })?;
        let run_dir = RunDir { path, keep: false };
        let path = &run_dir.path;
        fs::set_permissions(path, fs::Permissions::from_mode(RUN_DIR_MODE))
            .map_err(io_err("set the mode of", path))?;
        if nix::unistd::geteuid().is_root() {
            let gid = crate::kernel::userns::container_root_map().gid.outside;
            std::os::unix::fs::chown(path, Some(0), Some(gid)).map_err(io_err("chown", path))?;
        }
        fs::write(&pid_file, std::process::id().to_string()).map_err(io_err("write", &pid_file))?;
        Ok(run_dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place for inspection (until the next run
    /// with the same name reclaims it) and returns where it is.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Err(err) = remove_tree(&self.path) {
            log::warn!("could not remove {}: {err}", self.path.display());
        }
    }
}

/// Removes a directory tree without ever crossing into a mount point: if the
/// tree still had something mounted in it, deleting through the mount would
/// delete the mounted files, so refuse instead.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    if crate::kernel::mounts::has_mounts_under(path)? {
        return Err(io::Error::other(format!(
            "{} still has mounts beneath it; unmount them first",
            path.display()
        )));
    }
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("a container named {name} is already running; wait for it or pick another --name")]
    InUse { name: String },
    #[error(transparent)]
    Io(#[from] IoError),
}
