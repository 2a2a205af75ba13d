//! Container records for mini-docker's lifecycle: what `create` made, what
//! state the container is in, and the locks that keep concurrent commands
//! (and each container's supervisor) from losing each other's writes.
//!
//! There is no daemon: every command reads and writes these files directly.
//! The persistent half of a record (id, name, image, command, configuration)
//! lives in `<data>/lifecycle/<id>/config.json`, the runtime half (status,
//! PIDs, exit code) in `<run>/lifecycle/<id>/state.json`, which is gone after
//! a reboot just like the processes it describes.
//!
//! Status is never taken on trust: a record that says "running" whose
//! processes are gone (or whose PID now belongs to another process) is
//! reported as exited. See [`Record::effective_state`].

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::state::LabDirs;

/// A record whose `error` starts with this is reported as `dead` once its
/// processes are gone: the container stopped but could not be cleaned up.
pub const CLEANUP_FAILED: &str = "cleanup failed";

/// The exit code a container gets when it vanished without its supervisor
/// recording one (what Docker reports after an unclean daemon restart).
pub const UNKNOWN_EXIT_CODE: i32 = 255;

/// How Docker's inspect writes a time that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
}

impl Status {
    /// Docker's `State.Running`: true while a process exists, also when it
    /// is paused or between restarts.
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The runtime half of a record, kept under `<run>/lifecycle/<id>/state.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub status: Status,
    /// Host PID of the container's init; 0 when there is none.
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` when `pid` was recorded, so a PID the
    /// kernel has since handed to another process is not mistaken for ours.
    pub pid_start_time: u64,
    pub supervisor_pid: i32,
    pub supervisor_start_time: u64,
    #[serde(with = "rfc3339_opt")]
    pub started_at: Option<SystemTime>,
    #[serde(with = "rfc3339_opt")]
    pub finished_at: Option<SystemTime>,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub restart_count: u32,
    pub error: String,
    pub ip: Option<String>,
    /// As `docker ps` shows them, e.g. `0.0.0.0:8080->80/tcp`.
    pub ports: Vec<String>,
    /// The container's cgroup directories, one per hierarchy.
    #[serde(default)]
    pub cgroup_paths: Vec<std::path::PathBuf>,
}

/// One container: what it was created from and what it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 64 lowercase hex digits.
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    #[serde(with = "rfc3339")]
    pub created: SystemTime,
    /// The run configuration, opaque to the store.
    pub config: serde_json::Value,
    /// A `--rm` container: it never outlives its supervisor, so its files
    /// are not forced to disk (no fsync), which keeps `run --rm` fast.
    #[serde(default)]
    pub ephemeral: bool,
    pub state: State,
}

/// What `create` needs; `name: None` picks a Docker-style random name.
#[derive(Debug, Clone, Default)]
pub struct NewContainer {
    pub name: Option<String>,
    pub image: String,
    pub command: Vec<String>,
    pub config: serde_json::Value,
    /// See [`Record::ephemeral`].
    pub ephemeral: bool,
    /// The creating process starts the container at once (`run`, not
    /// `create`): the record names it as the owner from the first moment,
    /// so that whoever finds the record with its owner dead knows that
    /// what the start made is left over (see [`Record::owner_alive`]).
    pub owned: bool,
}

/// A record that cannot be read: skipped by `list`, named by `get` (as an
/// error) so that `rm -f` can remove it.
#[derive(Debug, Clone)]
pub struct Broken {
    pub id: String,
    /// Known when only the state file is bad.
    pub name: Option<String>,
    /// The file that could not be read.
    pub path: PathBuf,
    pub reason: String,
}

/// The persistent half of a record, as it is written to config.json.
#[derive(Serialize, Deserialize)]
struct ConfigFile {
    id: String,
    name: String,
    image: String,
    command: Vec<String>,
    #[serde(with = "rfc3339")]
    created: SystemTime,
    config: serde_json::Value,
    #[serde(default)]
    ephemeral: bool,
}

impl Record {
    /// The first 12 hex digits, as `docker ps` shows the ID.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }

    /// The status the container really has right now: see [`Record::effective_state`].
    pub fn effective_status(&self) -> Status {
        self.effective_state().status
    }

    /// The stored state, corrected against the processes that actually
    /// exist. A running, paused or restarting record whose container and
    /// supervisor are both gone (or whose PIDs were reused) becomes
    /// `exited`, or `dead` when its error says cleanup failed. Its exit
    /// code becomes 255 unless one was recorded.
    pub fn effective_state(&self) -> State {
        let mut state = self.state.clone();
        if !state.status.is_running() {
            return state;
        }
        let container = state.pid > 0 && is_alive(state.pid, state.pid_start_time);
        let supervisor =
            state.supervisor_pid > 0 && is_alive(state.supervisor_pid, state.supervisor_start_time);
        if container || supervisor {
            return state;
        }
        state.status = if state.error.starts_with(CLEANUP_FAILED) {
            Status::Dead
        } else {
            Status::Exited
        };
        state.pid = 0;
        if state.finished_at.is_none() && state.exit_code == 0 {
            state.exit_code = UNKNOWN_EXIT_CODE;
        }
        state
    }

    /// Whether the process that owns the record's kernel objects (its
    /// supervisor, or the `run` that is about to start one) is alive. A
    /// record whose owner is dead may have left cgroups, a network and a
    /// run directory behind; they are reclaimed when it is removed.
    pub fn owner_alive(&self) -> bool {
        self.state.supervisor_pid > 0
            && is_alive(self.state.supervisor_pid, self.state.supervisor_start_time)
    }

    /// A `--rm` container whose owner died without removing it: nothing
    /// will ever use or remove it, so a new container may take its name.
    pub fn is_abandoned(&self) -> bool {
        self.ephemeral
            && self.state.supervisor_pid > 0
            && !self.effective_status().is_running()
            && !self.owner_alive()
    }

    fn config_file_json(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(&self.config_file()).map_err(|source| StoreError::Encode {
            what: "config.json",
            source,
        })
    }

    fn config_file(&self) -> ConfigFile {
        ConfigFile {
            id: self.id.clone(),
            name: self.name.clone(),
            image: self.image.clone(),
            command: self.command.clone(),
            created: self.created,
            config: self.config.clone(),
            ephemeral: self.ephemeral,
        }
    }
}

/// The first 12 characters of an ID (all of it when shorter).
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Where every container record lives; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    dirs: LabDirs,
    data: PathBuf,
    run: PathBuf,
}

/// Holds one container's lock until dropped; read and write the record
/// through it while other commands wait.
#[derive(Debug)]
pub struct Guard {
    store: Store,
    id: String,
    _lock: Flock<File>,
}

impl Guard {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The record as stored (use [`Record::effective_state`] for the truth).
    pub fn read(&self) -> Result<Record, StoreError> {
        self.store.read_record(&self.id)
    }

    /// Stores `record`, which must keep this container's ID and name.
    pub fn write(&self, record: &Record) -> Result<(), StoreError> {
        if record.id != self.id {
            return Err(StoreError::Immutable { field: "id" });
        }
        let old = self.read()?;
        if record.name != old.name {
            return Err(StoreError::Immutable { field: "name" });
        }
        if record.config_file_json()? != old.config_file_json()? {
            let durable = !record.ephemeral;
            write_json(
                &self.store.config_path(&self.id),
                &record.config_file(),
                durable,
            )?;
        }
        let run_dir = self.store.run_dir(&self.id);
        create_dir(&run_dir)?;
        // Runtime state lasts one boot (/run): atomic, but not fsynced.
        write_json(&self.store.state_path(&self.id), &record.state, false)
    }
}

impl Store {
    pub fn new(dirs: &LabDirs) -> Store {
        Store {
            dirs: dirs.clone(),
            // Not `containers/`: RunDir already keys that one by name.
            data: dirs.data.join("lifecycle"),
            run: dirs.run.join("lifecycle"),
        }
    }

    /// The lab directories this store lives in.
    pub fn dirs(&self) -> &LabDirs {
        &self.dirs
    }

    /// `<data>/lifecycle/<id>`: config.json, the log and the lock.
    pub fn data_dir(&self, id: &str) -> PathBuf {
        self.data.join(id)
    }

    /// `<run>/lifecycle/<id>`: state.json and whatever the runtime keeps
    /// there while the container runs.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.run.join(id)
    }

    /// Docker's json-file log, `<data>/lifecycle/<id>/<id>-json.log`.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.data_dir(id).join(format!("{id}-json.log"))
    }

    fn config_path(&self, id: &str) -> PathBuf {
        self.data_dir(id).join("config.json")
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("state.json")
    }

    fn lock_path(&self, id: &str) -> PathBuf {
        self.data_dir(id).join("lock")
    }

    /// Creates a record in status `created`. Names are checked and taken
    /// under a store-wide lock, so two `create --name web` never both win.
    pub fn create(&self, new: NewContainer) -> Result<Record, StoreError> {
        let id = match (&new.name, std::env::var_os(PIN_IDS_ENV)) {
            (Some(name), Some(_)) => pinned_id(name),
            _ => random_id()?,
        };
        self.create_with(new, id, SystemTime::now())
    }

    // The tests pin the ID and creation time; `create` picks them.
    fn create_with(
        &self,
        new: NewContainer,
        id: String,
        created: SystemTime,
    ) -> Result<Record, StoreError> {
        check_id(&id)?;
        if let Some(name) = &new.name {
            validate_name(name)?;
        }
        if let Err(crate::state::StateError::Io { op, path, source }) = self.dirs.prepare() {
            return Err(StoreError::Io { op, path, source });
        }
        create_dir(&self.data)?;
        let _names = lock_file(&self.data.join("names.lock"), true)?;
        // What a create killed half-way left goes first (its maker is dead).
        self.remove_stale_temporaries()?;

        let (existing, broken) = self.list_all()?;
        let taken = |candidate: &str| {
            existing.iter().any(|r| r.name == candidate)
                || broken.iter().any(|b| b.name.as_deref() == Some(candidate))
        };
        let name = match new.name {
            Some(name) => {
                let name = name.strip_prefix('/').unwrap_or(&name).to_string();
                if taken(&name) {
                    let other = existing
                        .iter()
                        .find(|r| r.name == name)
                        .map(|r| r.id.clone())
                        .or_else(|| {
                            broken
                                .iter()
                                .find(|b| b.name.as_deref() == Some(name.as_str()))
                                .map(|b| b.id.clone())
                        })
                        .unwrap_or_default();
                    return Err(StoreError::Conflict { name, id: other });
                }
                name
            }
            None => generate_name(taken)?,
        };
        let mut state = State::default();
        if new.owned {
            let me = std::process::id() as i32;
            state.supervisor_pid = me;
            state.supervisor_start_time = process_start_time(me).unwrap_or(0);
        }
        let record = Record {
            id,
            name,
            image: new.image,
            command: new.command,
            created,
            config: new.config,
            ephemeral: new.ephemeral,
            state,
        };
        let id = &record.id;
        // Made aside and renamed into place: a record appears whole or not
        // at all, also when the disk fills or the process is killed. The
        // temporary's name says who makes it, so that a stale one can be
        // told from one being made (see `remove_stale_temporaries`).
        let temp = self.data.join(format!("{CREATING}{}.{id}", owner_tag()));
        let made = (|| {
            create_dir_new(&temp)?;
            create_file(&temp.join("lock"))?;
            write_json(
                &temp.join("config.json"),
                &record.config_file(),
                !record.ephemeral,
            )?;
            // The runtime half first: it means nothing without the record.
            create_dir(&self.run_dir(id))?;
            write_json(&self.state_path(id), &record.state, false)?;
            let target = self.data_dir(id);
            if target.join("config.json").exists() {
                return Err(io_error(
                    "create",
                    &target,
                    io::Error::from(io::ErrorKind::AlreadyExists),
                ));
            }
            if target.exists() {
                // Only a removal killed half-way leaves one (its config.json
                // goes first, so no command sees it): finish it.
                remove_tree_store(&target)?;
            }
            fs::rename(&temp, &target).map_err(|source| io_error("create", &target, source))?;
            if !record.ephemeral {
                sync_dir(&self.data)?;
            }
            Ok(())
        })();
        if let Err(err) = made {
            let _ = crate::state::remove_tree(&temp);
            let _ = crate::state::remove_tree(&self.run_dir(id));
            return Err(match err {
                StoreError::Io { source, path, .. }
                    if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) =>
                {
                    StoreError::NoSpace {
                        dir: if path.starts_with(&self.run) {
                            self.run.clone()
                        } else {
                            self.data.clone()
                        },
                    }
                }
                other => other,
            });
        }
        Ok(record)
    }

    /// Finds a container the way Docker does: exact name (with or without
    /// the leading `/`), then exact ID, then a unique ID prefix. A record
    /// that cannot be read is an error naming its file
    /// ([`StoreError::Broken`]); the others are found as usual.
    pub fn get(&self, key: &str) -> Result<Record, StoreError> {
        let name = key.strip_prefix('/').unwrap_or(key);
        if name.is_empty() {
            return Err(StoreError::NoSuchContainer(key.to_string()));
        }
        let (mut records, broken) = self.list_all()?;
        let broken_error = |b: &Broken| StoreError::Broken {
            id: b.id.clone(),
            path: b.path.clone(),
            reason: b.reason.clone(),
        };
        if let Some(at) = records.iter().position(|r| r.name == name) {
            return Ok(records.swap_remove(at));
        }
        if let Some(b) = broken.iter().find(|b| b.name.as_deref() == Some(name)) {
            return Err(broken_error(b));
        }
        if let Some(at) = records.iter().position(|r| r.id == key) {
            return Ok(records.swap_remove(at));
        }
        if !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::NoSuchContainer(key.to_string()));
        }
        let key_lower = key.to_ascii_lowercase();
        let mut matches: Vec<Record> = records
            .into_iter()
            .filter(|r| r.id.starts_with(&key_lower))
            .collect();
        let broken_matches: Vec<&Broken> = broken
            .iter()
            .filter(|b| b.id.starts_with(&key_lower))
            .collect();
        match (matches.len(), broken_matches.as_slice()) {
            (0, []) => Err(StoreError::NoSuchContainer(key.to_string())),
            (1, []) => Ok(matches.remove(0)),
            (0, [b]) => Err(broken_error(b)),
            _ => Err(StoreError::Ambiguous(key.to_string())),
        }
    }

    /// Every container, newest first, as stored. A record that cannot be
    /// read is skipped with a one-line warning on stderr (once per file and
    /// process), so that one bad file does not stop commands on the others.
    pub fn list(&self) -> Result<Vec<Record>, StoreError> {
        let (records, broken) = self.list_all()?;
        for b in &broken {
            warn_once(b);
        }
        Ok(records)
    }

    /// Every record that can be read, newest first, and those that cannot.
    pub fn list_all(&self) -> Result<(Vec<Record>, Vec<Broken>), StoreError> {
        let entries = match fs::read_dir(&self.data) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()))
            }
            Err(source) => return Err(io_error("list", &self.data, source)),
        };
        let mut records = Vec::new();
        let mut broken = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| io_error("list", &self.data, source))?;
            // Temporaries (".creating...") and lock files are not records.
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_id(&id) {
                continue;
            }
            match self.read_record(&id) {
                Ok(record) => records.push(record),
                // Being removed right now: not a container.
                Err(StoreError::NoSuchContainer(_)) => continue,
                Err(err) => broken.push(self.broken(&id, err)),
            }
        }
        records.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        broken.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((records, broken))
    }

    /// What is known of a record that failed to read with `err`.
    fn broken(&self, id: &str, err: StoreError) -> Broken {
        let (path, reason) = match err {
            StoreError::Corrupt { path, source } => (path, source.to_string()),
            StoreError::Io { path, source, .. } => (path, source.to_string()),
            other => (self.config_path(id), other.to_string()),
        };
        // The name survives when only the state file is bad.
        let name = read_json::<ConfigFile>(&self.config_path(id))
            .ok()
            .flatten()
            .map(|c| c.name);
        Broken {
            id: id.to_string(),
            name,
            path,
            reason,
        }
    }

    /// Removes what killed `create`s left: temporaries whose maker is
    /// dead, and runtime halves whose record is gone. Returns how many.
    pub fn remove_stale_temporaries(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        if let Ok(entries) = fs::read_dir(&self.data) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(tag) = name.strip_prefix(CREATING) else {
                    continue;
                };
                if maker_alive(tag) {
                    continue;
                }
                remove_tree_store(&entry.path())?;
                removed += 1;
            }
        }
        if let Ok(entries) = fs::read_dir(&self.run) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                if !is_id(&id) || self.data_dir(&id).exists() {
                    continue;
                }
                // A `create` in progress writes this half first; its owner
                // is named in it.
                let state: Option<State> = read_json(&self.state_path(&id)).ok().flatten();
                let owner_alive = state.is_some_and(|s| {
                    s.supervisor_pid > 0 && is_alive(s.supervisor_pid, s.supervisor_start_time)
                });
                if owner_alive {
                    continue;
                }
                remove_tree_store(&entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Locks the container against every other command and supervisor
    /// until the guard is dropped.
    pub fn lock(&self, id: &str) -> Result<Guard, StoreError> {
        check_id(id)?;
        let lock = match lock_file(&self.lock_path(id), false) {
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchContainer(id.to_string()))
            }
            other => other?,
        };
        // Removed while we waited: the lock file we hold is unlinked.
        if !self.config_path(id).exists() {
            return Err(StoreError::NoSuchContainer(id.to_string()));
        }
        Ok(Guard {
            store: self.clone(),
            id: id.to_string(),
            _lock: lock,
        })
    }

    /// Read-modify-write under the container's lock; `change` must not
    /// touch the ID or the name. Returns the stored record.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Record)) -> Result<Record, StoreError> {
        let guard = self.lock(id)?;
        let mut record = guard.read()?;
        change(&mut record);
        guard.write(&record)?;
        Ok(record)
    }

    /// Deletes the container's files (record, state, log). Stopping it and
    /// undoing its mounts is the caller's job first: this refuses to delete
    /// through a mount.
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        // A record whose lock file is gone (half-made by an older version)
        // has nobody to wait for: remove it all the same.
        let _guard = match self.lock(id) {
            Ok(guard) => Some(guard),
            Err(StoreError::NoSuchContainer(_)) if self.data_dir(id).exists() => None,
            Err(err) => return Err(err),
        };
        // config.json first: from then on no command sees the record, so a
        // removal killed half-way leaves nothing that looks like one.
        match fs::remove_file(self.config_path(id)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(io_error("remove", &self.config_path(id), err))
            }
            _ => {}
        }
        for dir in [self.run_dir(id), self.data_dir(id)] {
            remove_tree_store(&dir)?;
        }
        Ok(())
    }

    fn read_record(&self, id: &str) -> Result<Record, StoreError> {
        check_id(id)?;
        let config_path = self.config_path(id);
        let config: ConfigFile = match read_json(&config_path)? {
            Some(config) => config,
            None => return Err(StoreError::NoSuchContainer(id.to_string())),
        };
        // No state.json: the machine rebooted since, nothing of it runs, and
        // like a fresh container it can be started again.
        let state: State = read_json(&self.state_path(id))?.unwrap_or_default();
        Ok(Record {
            id: config.id,
            name: config.name,
            image: config.image,
            command: config.command,
            created: config.created,
            config: config.config,
            ephemeral: config.ephemeral,
            state,
        })
    }
}

fn is_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

// IDs become path components: anything else could escape the store.
fn check_id(id: &str) -> Result<(), StoreError> {
    if is_id(id) {
        Ok(())
    } else {
        Err(StoreError::InvalidId(id.to_string()))
    }
}

/// Docker's rule: `/?[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut bytes = bare.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bare.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_string()))
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| StoreError::Io {
            op: "read",
            path: PathBuf::from("/dev/urandom"),
            source,
        })?;
    Ok(bytes)
}

/// Set by the tests: a named container's ID is then the SHA-256 of its
/// name, so snapshots show the same IDs on every run (IDs are the lab's
/// choice, and what the lab chooses is pinned, not filtered).
pub const PIN_IDS_ENV: &str = "CONTAINER_LAB_PIN_IDS";

fn pinned_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(format!("container-lab:{name}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 256 random bits as 64 lowercase hex digits, like Docker's IDs.
pub fn random_id() -> Result<String, StoreError> {
    let bytes: [u8; 32] = random_bytes()?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

const ADJECTIVES: [&str; 30] = [
    "admiring", "agitated", "amazing", "awesome", "blissful", "bold", "brave", "clever", "cool",
    "dazzling", "eager", "ecstatic", "elegant", "epic", "festive", "focused", "friendly",
    "gallant", "happy", "hopeful", "jolly", "keen", "loving", "modest", "nifty", "quirky",
    "serene", "trusting", "vibrant", "zealous",
];

const SCIENTISTS: [&str; 30] = [
    "albattani",
    "bohr",
    "curie",
    "darwin",
    "einstein",
    "euler",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "goodall",
    "hopper",
    "hypatia",
    "kepler",
    "lamarr",
    "lovelace",
    "meitner",
    "newton",
    "noether",
    "pasteur",
    "planck",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yalow",
    "zhukovsky",
];

/// A Docker-style `adjective_scientist` name that `taken` does not know;
/// after a few collisions a digit is appended, as Docker does.
pub fn generate_name(taken: impl Fn(&str) -> bool) -> Result<String, StoreError> {
    for attempt in 0..1000u32 {
        let [a, b, c, d] = random_bytes::<4>()?;
        let mut name = format!(
            "{}_{}",
            ADJECTIVES[usize::from(a) % ADJECTIVES.len()],
            SCIENTISTS[usize::from(b) % SCIENTISTS.len()]
        );
        if attempt >= 10 {
            name.push_str(&(u16::from_le_bytes([c, d]) % 100).to_string());
        }
        if !taken(&name) {
            return Ok(name);
        }
    }
    Err(StoreError::NamesExhausted)
}

/// The prefix of a record being created: `.creating.PID.START.ID`.
const CREATING: &str = ".creating.";

/// `PID.START` of this process, for the names of its temporaries.
fn owner_tag() -> String {
    let me = std::process::id() as i32;
    format!("{me}.{}", process_start_time(me).unwrap_or(0))
}

/// Whether the process named by a temporary's `PID.START.ID` tag lives.
fn maker_alive(tag: &str) -> bool {
    let mut parts = tag.splitn(3, '.');
    let pid = parts.next().and_then(|p| p.parse().ok());
    let start = parts.next().and_then(|s| s.parse().ok());
    match (pid, start) {
        (Some(pid), Some(start)) => is_alive(pid, start),
        // Not ours to judge: leave it.
        _ => true,
    }
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// `mkdir`, failing when it exists: a temporary is never shared.
fn create_dir_new(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(|source| io_error("create directory", path, source))
}

fn remove_tree_store(path: &Path) -> Result<(), StoreError> {
    crate::state::remove_tree(path).map_err(|source| io_error("remove", path, source))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| io_error("fsync", dir, source))
}

/// A broken record is reported once per process, however often it is listed.
fn warn_once(broken: &Broken) {
    use std::sync::Mutex;
    static WARNED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let Ok(mut warned) = WARNED.lock() else {
        return;
    };
    if warned.contains(&broken.path) {
        return;
    }
    warned.push(broken.path.clone());
    eprintln!(
        "warning: skipping container {}: {} cannot be read ({}); `rm -f {}` removes it",
        short_id(&broken.id),
        broken.path.display(),
        broken.reason,
        short_id(&broken.id)
    );
}

/// Record directories are root's alone (0700), as their parents.
fn create_dir(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| StoreError::Io {
            op: "create directory",
            path: path.to_path_buf(),
            source,
        })
}

fn create_file(path: &Path) -> Result<(), StoreError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|source| StoreError::Io {
            op: "create",
            path: path.to_path_buf(),
            source,
        })
}

/// Takes an exclusive flock on `path`, waiting for other holders. Each call
/// opens the file anew, so threads of one process exclude each other too.
fn lock_file(path: &Path, create: bool) -> Result<Flock<File>, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| StoreError::Io {
            op: "open lock",
            path: path.to_path_buf(),
            source,
        })?;
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(lock) => return Ok(lock),
            Err((again, Errno::EINTR)) => file = again,
            Err((_, errno)) => {
                return Err(StoreError::Io {
                    op: "lock",
                    path: path.to_path_buf(),
                    source: io::Error::from(errno),
                })
            }
        }
    }
}

/// Returns `None` when the file does not exist.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                op: "read",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StoreError::Corrupt {
            path: path.to_path_buf(),
            source,
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T, durable: bool) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| StoreError::Encode {
        what: "record",
        source,
    })?;
    bytes.push(b'\n');
    if durable {
        write_atomic(path, &bytes)
    } else {
        write_replacing(path, &bytes)
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` so that readers see the old file or the new one, never
/// half of either, even across a crash: write a temporary file in the same
/// directory, fsync it, rename it over, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_then_rename(path, bytes, true)
}

/// `write_atomic` without the fsyncs: readers still never see half a
/// file, but a power cut may lose the last change. For what does not
/// outlive a boot or a process.
pub fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_then_rename(path, bytes, false)
}

fn write_then_rename(path: &Path, bytes: &[u8], durable: bool) -> Result<(), StoreError> {
    let io_err = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { op, path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            // Records hold -e values: root's only, as Docker's config.v2.json.
            .mode(0o600)
            .open(&temp)
            .map_err(io_err("create", &temp))?;
        file.write_all(bytes).map_err(io_err("write", &temp))?;
        if durable {
            file.sync_all().map_err(io_err("fsync", &temp))?;
        }
        fs::rename(&temp, path).map_err(io_err("rename into place", path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
        return written;
    }
    if !durable {
        return Ok(());
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

/// Field 3 (state) and field 22 (start time in clock ticks since boot) of
/// `/proc/<pid>/stat`.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields we want come after its last closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// When the process started (field 22 of `/proc/<pid>/stat`), or `None`
/// when there is no such process.
pub fn process_start_time(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|(_, start)| start)
}

/// Whether `pid` is still the process that started at `start_time` and has
/// not exited: a zombie has exited, a different start time means the kernel
/// reused the PID. A `start_time` of 0 means unknown and matches any.
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    match proc_stat(pid) {
        Some((state, start)) => {
            !matches!(state, 'Z' | 'X' | 'x') && (start_time == 0 || start == start_time)
        }
        None => false,
    }
}

// ---------------------------------------------------------------------------
// Times: RFC 3339 in UTC, as Go's RFC3339Nano writes them (Docker's format).

/// `2026-11-29T18:00:00.123456789Z`, with trailing zeros of the fraction
/// dropped as Go's `RFC3339Nano` does. Times before 1970 are written as 1970.
pub fn format_rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    let nanos = since.subsec_nanos();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Parses what [`format_rfc3339`] writes, plus any fraction length and a
/// `±hh:mm` offset. `None` for malformed text or times before 1970.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let s = text.get(range)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0u32;
    if b[at] == b'.' {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        for (i, c) in b[at + 1..at + 1 + digits].iter().enumerate() {
            if i < 9 {
                nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
            }
        }
        at += 1 + digits;
    }
    let offset: i64 = match &text[at..] {
        "Z" | "z" => 0,
        zone if zone.len() == 6 && zone.as_bytes()[3] == b':' => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours = num(at + 1..at + 3)? as i64;
            let minutes = num(at + 4..at + 6)? as i64;
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year as i64, month as u32, day as u32);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

// Howard Hinnant's algorithms: days since 1970-01-01 <-> proleptic Gregorian date.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// serde `with` module: a `SystemTime` as an RFC 3339 string.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 time {text:?}")))
    }
}

/// serde `with` module: `None` is Docker's zero time `0001-01-01T00:00:00Z`.
pub mod rfc3339_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(time: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => s.serialize_str(&super::format_rfc3339(*time)),
            None => s.serialize_str(super::ZERO_TIME),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        if text.starts_with("0001-01-01T") {
            return Ok(None);
        }
        super::parse_rfc3339(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 time {text:?}")))
    }
}

// ---------------------------------------------------------------------------
// What `docker ps` and `docker inspect` show.

/// Docker's `units.HumanDuration` (github.com/docker/go-units).
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let hours_f = d.as_secs_f64() / 3600.0;
    if seconds < 1 {
        return "Less than a second".to_string();
    }
    if seconds == 1 {
        return "1 second".to_string();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".to_string();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Hours round to nearest from here on, as Go's int(d.Hours() + 0.5).
    let hours = (hours_f + 0.5) as u64;
    if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours_f as u64 / 24 / 365)
    }
}

fn since(now: SystemTime, then: SystemTime) -> String {
    human_duration(now.duration_since(then).unwrap_or_default())
}

/// Docker's STATUS column (moby's `State.String`). One difference: an
/// exit nobody recorded (no `finished_at`) shows as `Exited (255)` where
/// Docker would show an empty status.
pub fn status_text(state: &State, now: SystemTime) -> String {
    let finished = |word: &str| match state.finished_at {
        Some(at) => format!("{word} ({}) {} ago", state.exit_code, since(now, at)),
        None => format!("{word} ({})", state.exit_code),
    };
    let up = || match state.started_at {
        Some(at) => format!("Up {}", since(now, at)),
        None => "Up".to_string(),
    };
    match state.status {
        Status::Created => "Created".to_string(),
        Status::Running => up(),
        Status::Paused => format!("{} (Paused)", up()),
        Status::Restarting => finished("Restarting"),
        Status::Exited => finished("Exited"),
        Status::Dead => "Dead".to_string(),
    }
}

/// The command as `docker ps` shows it: joined, cut to 20 display columns
/// with `…`, then quoted like Go's `strconv.Quote`.
pub fn ps_command(command: &[String]) -> String {
    go_quote(&ellipsis(&command.join(" "), 20))
}

// docker/cli's formatter.Ellipsis: East Asian wide characters count twice.
fn ellipsis(text: &str, max_width: usize) -> String {
    let width: usize = text.chars().map(char_width).sum();
    if width <= max_width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        if used + char_width(c) > max_width - 1 {
            break;
        }
        used += char_width(c);
        out.push(c);
    }
    out.push('…');
    out
}

fn char_width(c: char) -> usize {
    let c = c as u32;
    let wide = matches!(c,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF | 0x20000..=0x3FFFD);
    if wide {
        2
    } else {
        1
    }
}

// Go's strconv.Quote for the characters a command line plausibly holds.
fn go_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (0x80..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `docker ps` output for `records` (already filtered), at time `now`.
/// `quiet` prints only the short IDs, one a line.
pub fn ps_table(records: &[Record], now: SystemTime, quiet: bool) -> String {
    if quiet {
        return records
            .iter()
            .map(|r| format!("{}\n", r.short_id()))
            .collect();
    }
    let mut rows = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .map(String::from)];
    for record in records {
        let state = record.effective_state();
        rows.push([
            record.short_id().to_string(),
            record.image.clone(),
            ps_command(&record.command),
            format!("{} ago", since(now, record.created)),
            status_text(&state, now),
            state.ports.join(", "),
            record.name.clone(),
        ]);
    }
    tabulate(&rows)
}

// Go's tabwriter as docker/cli configures it: minimum cell width 10,
// padding 3, spaces; widths count characters; the last cell is not padded.
fn tabulate<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [10usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count() + 3);
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// A subset of `docker inspect` for one container, with the effective
/// state. The caller adds what the runtime knows (mounts, cgroup, ...).
pub fn inspect_json(record: &Record) -> serde_json::Value {
    let state = record.effective_state();
    let time = |t: Option<SystemTime>| t.map_or_else(|| ZERO_TIME.to_string(), format_rfc3339);
    serde_json::json!({
        "Id": record.id,
        "Created": format_rfc3339(record.created),
        "Path": record.command.first().cloned().unwrap_or_default(),
        "Args": record.command.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": state.status.as_str(),
            "Running": state.status.is_running(),
            "Paused": state.status == Status::Paused,
            "Restarting": state.status == Status::Restarting,
            "OOMKilled": state.oom_killed,
            "Dead": state.status == Status::Dead,
            "Pid": if state.status.is_running() { state.pid } else { 0 },
            "ExitCode": state.exit_code,
            "Error": state.error,
            "StartedAt": time(state.started_at),
            "FinishedAt": time(state.finished_at),
        },
        "Image": record.image,
        "Name": format!("/{}", record.name),
        "RestartCount": state.restart_count,
        "Config": record.config,
        "NetworkSettings": {
            "IPAddress": state.ip.clone().unwrap_or_default(),
            "Ports": inspect_ports(&state.ports),
        },
    })
}

// "0.0.0.0:8080->80/tcp" becomes Docker's {"80/tcp": [{"HostIp", "HostPort"}]};
// a port without "->" is exposed only and maps to null.
fn inspect_ports(ports: &[String]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for port in ports {
        let (host, container) = match port.split_once("->") {
            Some((host, container)) => (Some(host), container),
            None => (None, port.as_str()),
        };
        let key = if container.contains('/') {
            container.to_string()
        } else {
            format!("{container}/tcp")
        };
        let entry = map.entry(key).or_insert(serde_json::Value::Null);
        if let Some(host) = host {
            let (ip, host_port) = match host.rsplit_once(':') {
                Some((ip, p)) => (ip.trim_start_matches('[').trim_end_matches(']'), p),
                None => ("", host),
            };
            let binding = serde_json::json!({"HostIp": ip, "HostPort": host_port});
            match entry {
                serde_json::Value::Array(list) => list.push(binding),
                other => *other = serde_json::Value::Array(vec![binding]),
            }
        }
    }
    serde_json::Value::Object(map)
}

/// What to do about a full disk, after its error.
fn space_hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => "; free some space on that filesystem and try again",
        _ => "",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("multiple containers found with prefix {0}; use more characters or the name")]
    Ambiguous(String),
    #[error("the container name \"/{name}\" is already in use by container \"{id}\"; remove it or pick another --name")]
    Conflict { name: String, id: String },
    #[error("invalid container name \"{0}\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least 2 characters")]
    InvalidName(String),
    #[error("invalid container id \"{0}\": expected 64 lowercase hex digits; look the container up by name or prefix first")]
    InvalidId(String),
    #[error("an update cannot change the container's {field}; create a new container instead")]
    Immutable { field: &'static str },
    #[error("could not find a free container name; pick one with --name")]
    NamesExhausted,
    #[error("failed to {op} {}: {source}{}", path.display(), space_hint(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no space left on device for a new container record in {}; free some space there and try again", dir.display())]
    NoSpace { dir: PathBuf },
    #[error("the record of container {} cannot be read: {}: {reason}; `mini-docker rm -f {}` removes it", short_id(id), path.display(), short_id(id))]
    Broken {
        id: String,
        path: PathBuf,
        reason: String,
    },
    #[error("failed to parse {}: {source}; fix the file or remove its container directory", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to encode the {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::sync::Arc;

    /// A store under /tmp, removed when the test ends (also on failure).
    struct TempStore {
        root: PathBuf,
        store: Store,
    }

    impl TempStore {
        fn new(test: &str) -> TempStore {
            let root = PathBuf::from(format!("/tmp/lab-store-{test}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(&root).unwrap();
            let store = Store::new(&LabDirs {
                data: root.join("lib"),
                run: root.join("run"),
            });
            TempStore { root, store }
        }
    }

    impl Drop for TempStore {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    fn named(name: &str) -> NewContainer {
        NewContainer {
            name: Some(name.to_string()),
            image: "busybox".to_string(),
            command: vec!["sh".to_string()],
            config: serde_json::json!({"tty": false}),
            ephemeral: false,
            owned: false,
        }
    }

    fn id_with(prefix: &str) -> String {
        format!("{prefix}{}", "0".repeat(64 - prefix.len()))
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// A process that no longer exists, with the start time it had.
    fn dead_process() -> (i32, u64) {
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        let pid = child.id() as i32;
        let start = process_start_time(pid).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        (pid, start)
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn times_are_written_as_docker_writes_them() {
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(at(4_102_444_799)), "2099-12-31T23:59:59Z");
        let nanos = at(1_709_210_096) + Duration::from_nanos(123_456_789);
        assert_eq!(format_rfc3339(nanos), "2024-02-29T12:34:56.123456789Z");
        // Go's RFC3339Nano drops trailing zeros of the fraction.
        let half = at(1_800_000_000) + Duration::from_millis(500);
        assert_eq!(format_rfc3339(half), "2027-01-15T08:00:00.5Z");

        for time in [UNIX_EPOCH, nanos, half, at(951_782_400), SystemTime::now()] {
            assert_eq!(parse_rfc3339(&format_rfc3339(time)), Some(time));
        }
        assert_eq!(
            parse_rfc3339("2024-02-29T14:34:56.123456789+02:00"),
            Some(nanos)
        );
        for bad in [
            "",
            "2024-02-29",
            "2024-13-01T00:00:00Z",
            "2024-02-29T12:34:56",
            "x024-02-29T12:34:56Z",
            "2024-02-29T12:34:56.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn human_durations_match_docker_at_the_boundaries() {
        let s = Duration::from_secs;
        let (min, hour, day) = (60, 3600, 86_400);
        let (week, month, year) = (7 * day, 30 * day, 365 * day);
        let cases = [
            (Duration::from_millis(999), "Less than a second"),
            (s(1), "1 second"),
            (s(2), "2 seconds"),
            (s(59), "59 seconds"),
            (s(60), "About a minute"),
            (s(119), "About a minute"),
            (s(120), "2 minutes"),
            (s(59 * min + 59), "59 minutes"),
            (s(hour), "About an hour"),
            (s(hour + 29 * min), "About an hour"),
            (s(hour + 31 * min), "2 hours"),
            (s(3 * hour + 29 * min), "3 hours"),
            (s(3 * hour + 31 * min), "4 hours"),
            (s(47 * hour + 29 * min), "47 hours"),
            (s(47 * hour + 30 * min), "2 days"),
            (s(13 * day + 5 * hour), "13 days"),
            (s(2 * week), "2 weeks"),
            (s(2 * week + 4 * day), "2 weeks"),
            (s(month + 2 * week), "6 weeks"),
            (s(2 * month), "2 months"),
            (s(24 * month), "24 months"),
            (s(24 * month + 2 * week), "2 years"),
            (s(3 * year + 2 * month), "3 years"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn create_writes_config_and_state_atomically_without_temp_files() {
        let t = TempStore::new("atomic");
        let record = t.store.create(named("web")).unwrap();
        assert!(is_id(&record.id), "{}", record.id);
        assert_eq!(record.state.status, Status::Created);
        for _ in 0..20 {
            t.store
                .update(&record.id, |r| r.state.restart_count += 1)
                .unwrap();
        }
        assert_eq!(
            files_in(&t.store.data_dir(&record.id)),
            ["config.json", "lock"]
        );
        assert_eq!(files_in(&t.store.run_dir(&record.id)), ["state.json"]);

        let state: serde_json::Value =
            serde_json::from_slice(&fs::read(t.store.state_path(&record.id)).unwrap()).unwrap();
        assert_eq!(state["status"], "created");
        assert_eq!(state["restart_count"], 20);
        assert_eq!(state["started_at"], ZERO_TIME);
        let config: serde_json::Value =
            serde_json::from_slice(&fs::read(t.store.config_path(&record.id)).unwrap()).unwrap();
        assert_eq!(config["name"], "web");
        assert_eq!(config["config"]["tty"], false);
        let created = config["created"].as_str().unwrap();
        assert_eq!(parse_rfc3339(created), Some(record.created), "{created}");
    }

    #[test]
    fn a_failed_atomic_write_keeps_the_old_file_and_removes_its_temp_file() {
        let t = TempStore::new("atomic-fail");
        let target = t.root.join("target");
        // rename() cannot replace a non-empty directory.
        fs::create_dir_all(target.join("occupied")).unwrap();
        let err = write_atomic(&target, b"new").unwrap_err();
        assert!(err.to_string().contains("rename into place"), "{err}");
        assert_eq!(files_in(&t.root), ["target"]);

        let file = t.root.join("file");
        write_atomic(&file, b"old").unwrap();
        write_atomic(&file, b"new").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"new");
        assert_eq!(files_in(&t.root), ["file", "target"]);
    }

    #[test]
    fn concurrent_updates_under_the_lock_lose_nothing() {
        let t = TempStore::new("concurrent");
        let id = t.store.create(named("counter")).unwrap().id;
        let store = Arc::new(t.store.clone());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                let id = id.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        store
                            .update(&id, |r| {
                                // Widen the window between read and write.
                                std::thread::yield_now();
                                r.state.restart_count += 1;
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(t.store.get(&id).unwrap().state.restart_count, 400);
    }

    #[test]
    fn concurrent_updates_from_processes_lose_nothing() {
        let t = TempStore::new("forked");
        let id = t.store.create(named("counter")).unwrap().id;
        let mut children = Vec::new();
        for _ in 0..4 {
            // SAFETY: the child only touches the store and exits without
            // returning into the test harness.
            match unsafe { nix::unistd::fork() }.unwrap() {
                nix::unistd::ForkResult::Child => {
                    let ok = (0..25)
                        .all(|_| t.store.update(&id, |r| r.state.restart_count += 1).is_ok());
                    unsafe { libc::_exit(if ok { 0 } else { 1 }) };
                }
                nix::unistd::ForkResult::Parent { child } => children.push(child),
            }
        }
        for child in children {
            let status = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
        }
        assert_eq!(t.store.get(&id).unwrap().state.restart_count, 100);
    }

    #[test]
    fn only_one_of_many_concurrent_creates_gets_a_name() {
        let t = TempStore::new("name-race");
        let store = Arc::new(t.store.clone());
        let results: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || store.create(named("web")))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect();
        let winners: Vec<&Record> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for result in &results {
            if let Err(err) = result {
                assert_eq!(
                    err.to_string(),
                    format!(
                        "the container name \"/web\" is already in use by container \"{}\"; remove it or pick another --name",
                        winners[0].id
                    )
                );
            }
        }
        assert_eq!(t.store.list().unwrap().len(), 1);
    }

    #[test]
    fn lookup_tries_name_then_id_then_unique_prefix() {
        let t = TempStore::new("lookup");
        let create = |name: &str, id: &str, secs| {
            t.store
                .create_with(named(name), id_with(id), at(secs))
                .unwrap()
        };
        let web = create("web", "abc1", 1);
        let db = create("db", "abc2", 2);
        // A name that is another container's ID prefix: the name wins.
        let tricky = create("abc2", "ddd", 3);

        assert_eq!(t.store.get("web").unwrap().id, web.id);
        assert_eq!(t.store.get("/web").unwrap().id, web.id);
        assert_eq!(t.store.get(&db.id).unwrap().name, "db");
        assert_eq!(t.store.get("abc1").unwrap().id, web.id);
        assert_eq!(t.store.get("ABC1").unwrap().id, web.id);
        assert_eq!(t.store.get("abc2").unwrap().id, tricky.id);
        assert_eq!(t.store.get("d").unwrap().id, tricky.id);

        let err = t.store.get("abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "multiple containers found with prefix abc; use more characters or the name"
        );
        for missing in ["nope", "abc3", "", "/", "../../etc"] {
            let err = t.store.get(missing).unwrap_err();
            assert!(
                matches!(err, StoreError::NoSuchContainer(_)),
                "{missing}: {err}"
            );
        }
        assert_eq!(
            t.store.get("nope").unwrap_err().to_string(),
            "no such container: nope"
        );

        let names: Vec<String> = t
            .store
            .list()
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["abc2", "db", "web"], "newest first");
    }

    #[test]
    fn names_follow_dockers_rules() {
        let t = TempStore::new("names");
        for good in ["web", "/web", "a1", "my_app.v2-x", "9lives"] {
            validate_name(good).unwrap();
        }
        for bad in [
            "", "/", "a", "_web", "-web", ".web", "we b", "web/1", "wéb", "web:1",
        ] {
            let err = validate_name(bad).unwrap_err();
            assert!(matches!(err, StoreError::InvalidName(_)), "{bad}");
            assert!(t.store.create(named(bad)).is_err(), "{bad}");
        }
        assert!(t.store.list().unwrap().is_empty());

        let record = t.store.create(named("/slashed")).unwrap();
        assert_eq!(record.name, "slashed");

        let generated = t
            .store
            .create(NewContainer {
                name: None,
                ..named("x")
            })
            .unwrap();
        let (adjective, scientist) = generated.name.split_once('_').unwrap();
        assert!(ADJECTIVES.contains(&adjective), "{}", generated.name);
        assert!(SCIENTISTS.contains(&scientist), "{}", generated.name);

        // With every plain name taken, a digit is appended.
        let name = generate_name(|n| !n.ends_with(|c: char| c.is_ascii_digit())).unwrap();
        assert!(name.ends_with(|c: char| c.is_ascii_digit()), "{name}");
    }

    #[test]
    fn update_and_remove_check_their_input() {
        let t = TempStore::new("update");
        let record = t.store.create(named("web")).unwrap();
        let err = t
            .store
            .update(&record.id, |r| r.name = "other".to_string())
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Immutable { field: "name" }),
            "{err}"
        );
        assert_eq!(t.store.get("web").unwrap(), record);

        let updated = t
            .store
            .update(&record.id, |r| {
                r.config = serde_json::json!({"tty": true});
                r.state.status = Status::Exited;
                r.state.exit_code = 3;
            })
            .unwrap();
        assert_eq!(t.store.get("web").unwrap(), updated);

        for bad in ["../etc", "abc", &record.id.to_uppercase()] {
            assert!(matches!(
                t.store.update(bad, |_| {}).unwrap_err(),
                StoreError::InvalidId(_)
            ));
        }

        t.store.remove(&record.id).unwrap();
        assert!(!t.store.data_dir(&record.id).exists());
        assert!(!t.store.run_dir(&record.id).exists());
        assert!(matches!(
            t.store.get("web").unwrap_err(),
            StoreError::NoSuchContainer(_)
        ));
        assert!(matches!(
            t.store.update(&record.id, |_| {}).unwrap_err(),
            StoreError::NoSuchContainer(_)
        ));
        // The name is free again.
        t.store.create(named("web")).unwrap();
    }

    #[test]
    fn a_record_without_state_after_a_reboot_reads_as_created() {
        let t = TempStore::new("reboot");
        let record = t.store.create(named("web")).unwrap();
        t.store
            .update(&record.id, |r| r.state.status = Status::Exited)
            .unwrap();
        fs::remove_dir_all(&t.store.run).unwrap();
        let read = t.store.get("web").unwrap();
        assert_eq!(read.state, State::default());
        // Writing recreates the run directory.
        t.store
            .update(&record.id, |r| r.state.status = Status::Exited)
            .unwrap();
        assert_eq!(t.store.get("web").unwrap().state.status, Status::Exited);
    }

    #[test]
    fn a_corrupt_record_is_skipped_and_named_by_get() {
        let t = TempStore::new("corrupt");
        let web = t.store.create(named("web")).unwrap();
        let db = t.store.create(named("db")).unwrap();
        let cache = t.store.create(named("cache")).unwrap();
        // A truncated config, and a garbage state file.
        let config = fs::read(t.store.config_path(&web.id)).unwrap();
        fs::write(t.store.config_path(&web.id), &config[..config.len() / 2]).unwrap();
        fs::write(t.store.state_path(&db.id), b"\x00\x01garbage").unwrap();

        let names: Vec<String> = t
            .store
            .list()
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["cache"]);
        let (_, broken) = t.store.list_all().unwrap();
        assert_eq!(broken.len(), 2);
        let of = |id: &str| broken.iter().find(|b| b.id == id).unwrap().clone();
        assert_eq!(of(&web.id).path, t.store.config_path(&web.id));
        assert_eq!(of(&web.id).name, None);
        assert_eq!(of(&db.id).path, t.store.state_path(&db.id));
        assert_eq!(of(&db.id).name.as_deref(), Some("db"));

        // The others work; the broken ones are errors that name the file.
        assert_eq!(t.store.get("cache").unwrap().id, cache.id);
        t.store
            .update(&cache.id, |r| r.state.restart_count = 1)
            .unwrap();
        for (key, path) in [
            (web.id.as_str(), t.store.config_path(&web.id)),
            (&web.id[..12], t.store.config_path(&web.id)),
            ("db", t.store.state_path(&db.id)),
        ] {
            let err = t.store.get(key).unwrap_err();
            assert!(matches!(err, StoreError::Broken { .. }), "{key}: {err}");
            let text = err.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("rm -f"), "{text}");
        }
        // The name of a record whose config survived stays taken.
        assert!(matches!(
            t.store.create(named("db")).unwrap_err(),
            StoreError::Conflict { .. }
        ));
        // And they can be removed.
        t.store.remove(&web.id).unwrap();
        t.store.remove(&db.id).unwrap();
        assert!(t.store.list_all().unwrap().1.is_empty());
        assert!(!t.store.data_dir(&web.id).exists() && !t.store.run_dir(&db.id).exists());
    }

    #[test]
    fn a_record_appears_whole_and_stale_temporaries_are_removed() {
        let t = TempStore::new("temporaries");
        let record = t.store.create(named("web")).unwrap();
        // Nothing but the records themselves in the data directory.
        assert_eq!(files_in(&t.store.data), [record.id.as_str(), "names.lock"]);
        // A create killed half-way (its maker is dead), one in progress
        // (this process), and a runtime half without its record.
        let (dead, dead_start) = dead_process();
        let stale = t
            .store
            .data
            .join(format!("{CREATING}{dead}.{dead_start}.{}", id_with("5")));
        let live = t
            .store
            .data
            .join(format!("{CREATING}{}.{}", owner_tag(), id_with("6")));
        fs::create_dir_all(stale.join("x")).unwrap();
        fs::create_dir_all(&live).unwrap();
        let orphan = t.store.run_dir(&id_with("7"));
        fs::create_dir_all(&orphan).unwrap();
        fs::write(orphan.join("state.json"), b"{}").unwrap();
        assert_eq!(
            t.store.list().unwrap().len(),
            1,
            "temporaries are not records"
        );
        assert_eq!(t.store.remove_stale_temporaries().unwrap(), 2);
        assert!(!stale.exists() && !orphan.exists());
        assert!(live.exists(), "a create in progress is left alone");
        assert!(t.store.run_dir(&record.id).exists());
    }

    #[test]
    fn an_owned_record_names_its_owner_from_the_start() {
        let t = TempStore::new("owned");
        let mut new = named("web");
        new.owned = true;
        new.ephemeral = true;
        let record = t.store.create(new).unwrap();
        assert_eq!(record.state.supervisor_pid, std::process::id() as i32);
        assert!(record.owner_alive());
        assert!(!record.is_abandoned());
        let mut dead = t.store.get("web").unwrap();
        let (pid, start) = dead_process();
        dead.state.supervisor_pid = pid;
        dead.state.supervisor_start_time = start;
        assert!(!dead.owner_alive());
        assert!(dead.is_abandoned());
        dead.ephemeral = false;
        assert!(!dead.is_abandoned(), "only --rm containers are abandoned");
        assert_eq!(t.store.create(named("db")).unwrap().state.supervisor_pid, 0);
    }

    fn running(pid: i32, start: u64) -> Record {
        Record {
            id: id_with("1"),
            name: "web".to_string(),
            image: "busybox".to_string(),
            command: vec!["top".to_string()],
            created: at(1),
            config: serde_json::Value::Null,
            ephemeral: false,
            state: State {
                status: Status::Running,
                pid,
                pid_start_time: start,
                ..State::default()
            },
        }
    }

    #[test]
    fn process_start_time_reads_proc_stat() {
        let me = std::process::id() as i32;
        let mine = process_start_time(me).unwrap();
        let mut child: Child = Command::new("sleep").arg("1000").spawn().unwrap();
        let theirs = process_start_time(child.id() as i32).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(theirs >= mine, "a child cannot start before its parent");
        assert_eq!(process_start_time(0), None);
        assert_eq!(process_start_time(-1), None);
        // Above the kernel's PID_MAX_LIMIT: never a process.
        assert_eq!(process_start_time(4_194_305), None);
    }

    #[test]
    fn effective_status_does_not_trust_a_dead_or_reused_pid() {
        let me = std::process::id() as i32;
        let my_start = process_start_time(me).unwrap();

        let alive = running(me, my_start);
        assert_eq!(alive.effective_status(), Status::Running);
        assert_eq!(alive.effective_state(), alive.state);

        let (dead, dead_start) = dead_process();
        let gone = running(dead, dead_start);
        let state = gone.effective_state();
        assert_eq!(state.status, Status::Exited);
        assert_eq!(state.pid, 0);
        assert_eq!(state.exit_code, UNKNOWN_EXIT_CODE);

        // Our PID, but not the process that was recorded.
        let reused = running(me, my_start + 1);
        assert_eq!(reused.effective_status(), Status::Exited);

        // The container is gone but its supervisor is alive and about to
        // record the exit: still running until it does.
        let mut supervised = running(dead, dead_start);
        supervised.state.supervisor_pid = me;
        supervised.state.supervisor_start_time = my_start;
        assert_eq!(supervised.effective_status(), Status::Running);
        supervised.state.supervisor_start_time = my_start + 1;
        assert_eq!(supervised.effective_status(), Status::Exited);

        let mut paused = running(dead, dead_start);
        paused.state.status = Status::Paused;
        paused.state.error = format!("{CLEANUP_FAILED}: could not remove the cgroup");
        assert_eq!(paused.effective_status(), Status::Dead);

        let mut recorded = running(dead, dead_start);
        recorded.state.exit_code = 137;
        assert_eq!(recorded.effective_state().exit_code, 137);

        // Stopped states are taken as stored, whatever the PID says.
        let mut exited = running(me, my_start);
        exited.state.status = Status::Exited;
        assert_eq!(exited.effective_status(), Status::Exited);
    }

    #[test]
    fn a_zombie_is_not_alive() {
        use nix::sys::wait::{waitid, Id, WaitPidFlag};
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        let pid = child.id() as i32;
        let start = process_start_time(pid).unwrap();
        assert!(is_alive(pid, start));
        child.kill().unwrap();
        // Wait for the exit but leave the child unreaped: a zombie.
        waitid(
            Id::Pid(nix::unistd::Pid::from_raw(pid)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        )
        .unwrap();
        assert_eq!(proc_stat(pid).map(|(state, _)| state), Some('Z'));
        assert!(!is_alive(pid, start));
        child.wait().unwrap();
    }

    fn golden_records() -> (Vec<Record>, SystemTime) {
        let now = at(1_800_000_000);
        let ago = |secs: u64| now - Duration::from_secs(secs);
        let me = std::process::id() as i32;
        let my_start = process_start_time(me).unwrap();
        let (dead, dead_start) = dead_process();
        let record = |id: &str, name: &str, command: &[&str], created, state| Record {
            id: id_with(id),
            name: name.to_string(),
            image: "busybox".to_string(),
            command: command.iter().map(|s| s.to_string()).collect(),
            created,
            config: serde_json::Value::Null,
            ephemeral: false,
            state,
        };
        let live = State {
            pid: me,
            pid_start_time: my_start,
            ..State::default()
        };
        let records = vec![
            record(
                "a1b2c3d4e5f6",
                "web",
                &["sh", "-c", "while true; do echo hi; sleep 1; done"],
                ago(5),
                State {
                    status: Status::Running,
                    started_at: Some(ago(3)),
                    ports: vec!["0.0.0.0:8080->80/tcp".to_string(), "443/tcp".to_string()],
                    ip: Some("172.18.0.2".to_string()),
                    ..live.clone()
                },
            ),
            record(
                "b2",
                "paused_one",
                &["top"],
                ago(90),
                State {
                    status: Status::Paused,
                    started_at: Some(ago(65)),
                    ..live.clone()
                },
            ),
            record(
                "c3",
                "flaky",
                &["sh", "-c", "exit 1"],
                ago(2 * 3600),
                State {
                    status: Status::Restarting,
                    pid: 0,
                    supervisor_pid: me,
                    supervisor_start_time: my_start,
                    finished_at: Some(ago(2)),
                    exit_code: 1,
                    restart_count: 3,
                    ..live.clone()
                },
            ),
            record(
                "d4",
                "done",
                &["echo", "say \"hi\"\tnow"],
                ago(3 * 86_400),
                State {
                    status: Status::Exited,
                    started_at: Some(ago(3 * 86_400)),
                    finished_at: Some(ago(5)),
                    ..State::default()
                },
            ),
            record(
                "e5",
                "fresh",
                &["true"],
                now - Duration::from_millis(500),
                State::default(),
            ),
            record(
                "f6",
                "broken",
                &["true"],
                ago(59),
                State {
                    status: Status::Dead,
                    ..State::default()
                },
            ),
            record(
                "0f",
                "vanished",
                &["世界世界世界世界世界世界"],
                ago(61),
                State {
                    status: Status::Running,
                    pid: dead,
                    pid_start_time: dead_start,
                    started_at: Some(ago(60)),
                    ..State::default()
                },
            ),
        ];
        (records, now)
    }

    #[test]
    fn ps_table_matches_docker_ps() {
        let (records, now) = golden_records();
        let table = ps_table(&records, now, false);
        println!("{table}");
        let want = [
            "CONTAINER ID   IMAGE     COMMAND                  CREATED                  STATUS                         PORTS                           NAMES",
            "a1b2c3d4e5f6   busybox   \"sh -c while true; d…\"   5 seconds ago            Up 3 seconds                   0.0.0.0:8080->80/tcp, 443/tcp   web",
            "b20000000000   busybox   \"top\"                    About a minute ago       Up About a minute (Paused)                                     paused_one",
            "c30000000000   busybox   \"sh -c exit 1\"           2 hours ago              Restarting (1) 2 seconds ago                                   flaky",
            "d40000000000   busybox   \"echo say \\\"hi\\\"\\tnow\"   3 days ago               Exited (0) 5 seconds ago                                       done",
            "e50000000000   busybox   \"true\"                   Less than a second ago   Created                                                        fresh",
            "f60000000000   busybox   \"true\"                   59 seconds ago           Dead                                                           broken",
            // Docker's Ellipsis counts wide characters twice, its tabwriter once.
            "0f0000000000   busybox   \"世界世界世界世界世…\"             About a minute ago       Exited (255)                                                   vanished",
        ];
        assert_eq!(table, want.map(|l| format!("{l}\n")).concat());

        let quiet = ps_table(&records, now, true);
        assert_eq!(
            quiet,
            "a1b2c3d4e5f6\nb20000000000\nc30000000000\nd40000000000\ne50000000000\nf60000000000\n0f0000000000\n"
        );
        assert_eq!(ps_table(&[], now, true), "");
        assert_eq!(
            ps_table(&[], now, false),
            "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
        );
    }

    #[test]
    fn inspect_json_is_shaped_like_docker_inspect() {
        let (records, _) = golden_records();
        let web = inspect_json(&records[0]);
        assert_eq!(web["Id"], records[0].id);
        assert_eq!(web["Name"], "/web");
        assert_eq!(web["Path"], "sh");
        assert_eq!(
            web["Args"],
            serde_json::json!(["-c", "while true; do echo hi; sleep 1; done"])
        );
        assert_eq!(web["Created"], "2027-01-15T07:59:55Z");
        let state = &web["State"];
        assert_eq!(state["Status"], "running");
        assert_eq!(state["Running"], true);
        assert_eq!(state["Paused"], false);
        assert_eq!(state["Pid"], std::process::id());
        assert_eq!(state["StartedAt"], "2027-01-15T07:59:57Z");
        assert_eq!(state["FinishedAt"], ZERO_TIME);
        assert_eq!(web["NetworkSettings"]["IPAddress"], "172.18.0.2");
        assert_eq!(
            web["NetworkSettings"]["Ports"],
            serde_json::json!({
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                "443/tcp": null,
            })
        );

        let paused = inspect_json(&records[1]);
        assert_eq!(paused["State"]["Status"], "paused");
        assert_eq!(paused["State"]["Running"], true);
        assert_eq!(paused["State"]["Paused"], true);

        let vanished = inspect_json(&records[6]);
        assert_eq!(vanished["State"]["Status"], "exited");
        assert_eq!(vanished["State"]["Running"], false);
        assert_eq!(vanished["State"]["Pid"], 0);
        assert_eq!(vanished["State"]["ExitCode"], 255);

        let dead = inspect_json(&records[5]);
        assert_eq!(dead["State"]["Dead"], true);
        assert_eq!(dead["NetworkSettings"]["IPAddress"], "");
        assert_eq!(dead["NetworkSettings"]["Ports"], serde_json::json!({}));
    }
}
