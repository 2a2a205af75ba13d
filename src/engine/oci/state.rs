//! A container's state directory: `ROOT/ID/` holds `state.json` (the
//! record), `exec.fifo` (while the container is created and not yet
//! started) and `lock`. Every command that changes a container holds the
//! lock, so concurrent commands on one container take turns; the status
//! itself is never stored but read from the kernel each time (is the init
//! alive, is the fifo there, is the cgroup frozen), so it cannot go stale.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::Flock;
use serde::{Deserialize, Serialize};

use super::{OciError, Runtime, OCI_VERSION};
use crate::kernel::process;
use crate::support::error::io_err;
use crate::support::fs::{lock_file, write_replacing};

/// The statuses of the runtime spec, plus paused (as runc reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What `state.json` records. Written by `create` before it makes
/// anything (with the creator's PID, so that a later command can tell a
/// create in progress from one that was killed), then again once the init
/// is ready.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The init, as the host numbers it; 0 until it is cloned.
    pub pid: i32,
    /// Its start time (field 22 of /proc/PID/stat): PIDs are reused.
    pub pid_start: u64,
    /// The `create` process while it runs; `None` once it is done.
    pub creator: Option<(i32, u64)>,
    /// RFC 3339, as runc's `state` prints it.
    pub created: String,
    pub annotations: HashMap<String, String>,
    /// The container's cgroup directories, one per hierarchy, named here
    /// before they are made.
    pub cgroups: Vec<PathBuf>,
    /// The directories lab-runc made for them (leaves and the parents it
    /// had to make, parents first): delete removes these and no others.
    pub made_cgroups: Vec<PathBuf>,
    /// The hooks delete and start still run.
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// Applied to `exec`'d processes too, as runc does.
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    pub no_new_privileges: bool,
    /// `process` was set: without it `start` is refused.
    #[serde(default = "yes")]
    pub has_process: bool,
}

fn yes() -> bool {
    true
}

/// The spec's state JSON (runtime.md, "state"), with runc's extra fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty", default)]
    pub annotations: HashMap<String, String>,
}

/// One container's directory under the root, locked while held.
#[derive(Debug)]
pub struct ContainerDir {
    pub id: String,
    pub path: PathBuf,
    _lock: Flock<File>,
}

/// The names of a container directory's files.
pub const RECORD: &str = "state.json";
pub const FIFO: &str = "exec.fifo";
const LOCK: &str = "lock";

/// runc's rule for IDs: `[\w+.-]+`, and never `.` or `..`.
pub fn check_id(id: &str) -> Result<(), OciError> {
    let valid = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(OciError::BadId(id.to_string()))
    }
}

impl Runtime {
    /// The root directory, made root's alone (0700) when missing.
    pub fn ensure_root(&self) -> Result<(), OciError> {
        match fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
        {
            Ok(()) => Ok(()),
            Err(e) => Err(io_err("create the state root", &self.root)(e).into()),
        }
    }

    /// Makes `ROOT/ID` for a new container and locks it; an ID in use is
    /// refused, unless its directory was left by a create that was killed
    /// (then it is cleaned up and taken).
    pub fn new_container(&self, id: &str) -> Result<ContainerDir, OciError> {
        check_id(id)?;
        self.ensure_root()?;
        let path = self.root.join(id);
        for _ in 0..2 {
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let lock = lock_file(&path.join(LOCK), true)?;
                    return Ok(ContainerDir {
                        id: id.to_string(),
                        path,
                        _lock: lock,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let dir = self.open(id)?;
                    if dir.status()? != Status::Stopped || dir.record()?.creator.is_none() {
                        return Err(OciError::Exists(id.to_string()));
                    }
                    // A create that died: what it made goes, then retry.
                    super::lifecycle::remove_leftovers(&dir)?;
                    dir.remove()?;
                }
                Err(e) => return Err(io_err("create", &path)(e).into()),
            }
        }
        Err(OciError::Exists(id.to_string()))
    }

    /// Opens and locks an existing container's directory.
    pub fn open(&self, id: &str) -> Result<ContainerDir, OciError> {
        check_id(id)?;
        let path = self.root.join(id);
        let lock = match lock_file(&path.join(LOCK), false) {
            Ok(lock) => lock,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OciError::NotFound(id.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        // Deleted while we waited for the lock.
        if !path.join(LOCK).exists() {
            return Err(OciError::NotFound(id.to_string()));
        }
        Ok(ContainerDir {
            id: id.to_string(),
            path,
            _lock: lock,
        })
    }

    /// The IDs of every container under the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>, OciError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &self.root)(e).into()),
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(LOCK).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

impl ContainerDir {
    pub fn record_path(&self) -> PathBuf {
        self.path.join(RECORD)
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(FIFO)
    }

    pub fn record(&self) -> Result<Record, OciError> {
        let path = self.record_path();
        let text = fs::read(&path).map_err(io_err("read", &path))?;
        serde_json::from_slice(&text).map_err(|e| {
            OciError::Other(format!(
                "{} is damaged ({e}); remove {} by hand",
                path.display(),
                self.path.display()
            ))
        })
    }

    pub fn save(&self, record: &Record) -> Result<(), OciError> {
        let json = serde_json::to_vec(record).map_err(|e| OciError::Other(e.to_string()))?;
        Ok(write_replacing(&self.record_path(), &json)?)
    }

    /// The status, read from the kernel: a create still running (or one
    /// that was killed: stopped), the init alive, the fifo, the freezer.
    pub fn status(&self) -> Result<Status, OciError> {
        let record = match self.record() {
            Ok(record) => record,
            // Made but not yet written: a create this instant.
            Err(OciError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Status::Creating)
            }
            Err(e) => return Err(e),
        };
        Ok(status_of(&record, &self.fifo_path()))
    }

    /// The state JSON `state` prints and hooks read on their stdin.
    pub fn state(&self) -> Result<ContainerState, OciError> {
        let record = self.record()?;
        let status = status_of(&record, &self.fifo_path());
        Ok(state_json(&record, status))
    }

    /// Removes the directory (the lock goes with it).
    pub fn remove(self) -> Result<(), OciError> {
        fs::remove_dir_all(&self.path).map_err(io_err("remove", &self.path))?;
        Ok(())
    }
}

pub fn status_of(record: &Record, fifo: &Path) -> Status {
    if let Some((pid, start)) = record.creator {
        if process::is_alive(pid, start) {
            return Status::Creating;
        }
        return Status::Stopped;
    }
    if record.pid <= 0 || !process::is_alive(record.pid, record.pid_start) {
        return Status::Stopped;
    }
    if fifo.exists() {
        return Status::Created;
    }
    if super::cgroups::is_frozen(&record.cgroups) {
        return Status::Paused;
    }
    Status::Running
}

pub fn state_json(record: &Record, status: Status) -> ContainerState {
    ContainerState {
        oci_version: OCI_VERSION.to_string(),
        id: record.id.clone(),
        status,
        // runc reports 0 once the init is gone.
        pid: if status == Status::Stopped && record.creator.is_none() {
            0
        } else {
            record.pid
        },
        bundle: record.bundle.clone(),
        rootfs: record.rootfs.clone(),
        created: record.created.clone(),
        owner: String::new(),
        annotations: record.annotations.clone(),
    }
}
