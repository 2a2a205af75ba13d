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
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::Flock;
use serde::{Deserialize, Serialize};

use crate::engine::dirs::LabDirs;
use crate::kernel::process::{is_alive, start_time as process_start_time};
use crate::support::error::{io_err, IoError};
use crate::support::fs::{lock_file, write_atomic, write_replacing};
use crate::support::ids::{pinned_id, random_bytes, random_id};
use crate::support::time::{rfc3339, rfc3339_opt};

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
        if let Err(crate::engine::dirs::StateError::Io(err)) = self.dirs.prepare() {
            return Err(err.into());
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
            let _ = crate::engine::dirs::remove_tree(&temp);
            let _ = crate::engine::dirs::remove_tree(&self.run_dir(id));
            return Err(match err {
                StoreError::Io(IoError { source, path, .. })
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
            StoreError::Io(IoError { path, source, .. }) => (path, source.to_string()),
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
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
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

/// Set by the tests: a named container's ID is then the SHA-256 of its
/// name, so snapshots show the same IDs on every run (IDs are the lab's
/// choice, and what the lab chooses is pinned, not filtered).
pub const PIN_IDS_ENV: &str = "CONTAINER_LAB_PIN_IDS";

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
    IoError::new(op, path, source).into()
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
    crate::engine::dirs::remove_tree(path).map_err(|source| io_error("remove", path, source))
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
        .map_err(io_err("create directory", path))?;
    Ok(())
}

fn create_file(path: &Path) -> Result<(), StoreError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err("create", path))?;
    Ok(())
}

/// Returns `None` when the file does not exist.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(IoError::new("read", path, source).into()),
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
        write_atomic(path, &bytes)?;
    } else {
        write_replacing(path, &bytes)?;
    }
    Ok(())
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
    #[error(transparent)]
    Io(#[from] IoError),
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
    use crate::support::time::parse_rfc3339;
    use std::process::Command;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

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
}
