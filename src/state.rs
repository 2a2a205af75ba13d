//! Where the lab keeps things: persistent data (the cached root filesystem)
//! and per-run trees (a container's copy of it). Nothing the lab makes lives
//! anywhere else.
//!
//! `CONTAINER_LAB_ROOT=/some/dir` moves both under one directory; the tests
//! pin it so that the paths in the snapshots are the same on every machine.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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
            remove_tree(&path).map_err(|source| StateError::Io {
                op: "remove stale",
                path: path.clone(),
                source,
            })?;
        }
        fs::create_dir_all(&path).map_err(|source| StateError::Io {
            op: "create",
            path: path.clone(),
            source,
        })?;
        fs::write(&pid_file, std::process::id().to_string()).map_err(|source| StateError::Io {
            op: "write",
            path: pid_file,
            source,
        })?;
        Ok(RunDir { path, keep: false })
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
            eprintln!("warning: could not remove {}: {err}", self.path.display());
        }
    }
}

/// Removes a directory tree without ever crossing into a mount point: if the
/// tree still had something mounted in it, deleting through the mount would
/// delete the mounted files, so refuse instead.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    if crate::mounts::has_mounts_under(path)? {
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
    #[error("failed to {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
