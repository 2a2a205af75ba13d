//! Container records: what `create` made, what state the container is
//! in, and the locks that keep concurrent commands (and each container's
//! supervisor) from losing each other's writes.
//!
//! There is no daemon: every command reads and writes these files directly.
//! The persistent half of a record (id, name, creation time, the typed run
//! configuration) lives in `<data>/lifecycle/<id>/config.json`, the runtime
//! half (status, PIDs, exit code) in `<run>/lifecycle/<id>/state.json`,
//! which is gone after a reboot just like the processes it describes.
//!
//! Status is never taken on trust: a record that says "running" whose
//! processes are gone (or whose PID now belongs to another process) is
//! reported as exited. See [`Record::effective_state`].
//!
//! - `record.rs`: the record and its state;
//! - `lock.rs`: one lock per container, and updates under it;
//! - `names.rs`: Docker's names, checked or generated;
//! - `ids.rs`: Docker's IDs;
//! - `janitor.rs`: the helper that deletes a `run --rm`'s directory after it.

mod ids;
mod janitor;
mod lock;
mod names;
mod record;
#[cfg(test)]
mod tests;

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use self::ids::{check_id, is_id, new_id};
pub use self::ids::{short_id, PIN_IDS_ENV};
pub use self::lock::Guard;
pub use self::names::{generate_name, validate_name};
pub use self::record::{
    Broken, NewContainer, Record, State, Status, CLEANUP_FAILED, UNKNOWN_EXIT_CODE,
};
use crate::engine::dirs::LabDirs;
use crate::engine::runtime::config::RunConfig;
use crate::kernel::process::{is_alive, start_time as process_start_time};
use crate::support::error::{io_err, IoError};
use crate::support::fs::{lock_file, sync_dir, write_atomic, write_replacing};
use crate::support::time::rfc3339;

/// Where every container record lives; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    dirs: LabDirs,
    data: PathBuf,
    run: PathBuf,
    /// The helper that deletes what this process moves into the trash,
    /// once it has exited: see [`Store::hire_janitor`].
    janitor: Option<Arc<janitor::Janitor>>,
}

/// The persistent half of a record, as it is written to config.json.
/// (Records of the previous version also held `image`, `command` and
/// `ephemeral`, which the configuration says: they are read the same.)
#[derive(Serialize, Deserialize)]
struct ConfigFile {
    id: String,
    name: String,
    #[serde(with = "rfc3339")]
    created: SystemTime,
    config: RunConfig,
}

impl ConfigFile {
    fn of(record: &Record) -> ConfigFile {
        ConfigFile {
            id: record.id.clone(),
            name: record.name.clone(),
            created: record.created,
            config: record.config.clone(),
        }
    }
}

impl Store {
    pub fn new(dirs: &LabDirs) -> Store {
        Store {
            dirs: dirs.clone(),
            // Not `containers/`: RunDir already keys that one by name.
            data: dirs.data.join("lifecycle"),
            run: dirs.run.join("lifecycle"),
            janitor: None,
        }
    }

    /// For a process about to `run --rm` and exit: a helper forked now,
    /// while this process is small, deletes what
    /// [`remove_in_background`](Store::remove_in_background) moves into
    /// the trash after this process has exited, instead of an `rm`
    /// spawned then. Only where nothing but this thread runs.
    pub fn hire_janitor(&mut self) {
        self.janitor = janitor::Janitor::start(&self.trash_dir(), &owner_tag()).map(Arc::new);
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
        let id = new_id(new.name.as_deref())?;
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
        let owner_of = |candidate: &str| {
            existing
                .iter()
                .find(|r| r.holds_name(candidate))
                .map(|r| r.id.clone())
                .or_else(|| {
                    broken
                        .iter()
                        .find(|b| b.name.as_deref() == Some(candidate))
                        .map(|b| b.id.clone())
                })
        };
        let name = match new.name {
            Some(name) => {
                let name = name.strip_prefix('/').unwrap_or(&name).to_string();
                if let Some(other) = owner_of(&name) {
                    return Err(StoreError::Conflict { name, id: other });
                }
                name
            }
            None => generate_name(|candidate| owner_of(candidate).is_some())?,
        };
        let mut state = State::default();
        if new.owned {
            let me = std::process::id() as i32;
            state.supervisor_pid = me;
            state.supervisor_start_time = process_start_time(me).unwrap_or(0);
        }
        // The configuration names the container as its record does, and
        // its hostname is Docker's default (the short ID) unless asked.
        let mut config = new.config;
        config.name = name.clone();
        config.hostname = new.hostname.unwrap_or_else(|| short_id(&id).to_string());
        let record = Record {
            id,
            name,
            created,
            config,
            state,
        };
        self.write_new(&record)?;
        Ok(record)
    }

    /// Made aside and renamed into place: a record appears whole or not at
    /// all, also when the disk fills or the process is killed. The
    /// temporary's name says who makes it, so that a stale one can be told
    /// from one being made (see `remove_stale_temporaries`).
    fn write_new(&self, record: &Record) -> Result<(), StoreError> {
        let id = &record.id;
        let durable = !record.ephemeral();
        let temp = self.data.join(format!("{CREATING}{}.{id}", owner_tag()));
        let made = (|| {
            create_dir_new(&temp)?;
            create_file(&temp.join("lock"))?;
            write_json(&temp.join("config.json"), &ConfigFile::of(record), durable)?;
            // The runtime half first: it means nothing without the record.
            create_dir(&self.run_dir(id))?;
            write_json(&self.state_path(id), &record.state, false)?;
            let target = self.data_dir(id);
            if target.join("config.json").exists() {
                let exists = io::Error::from(io::ErrorKind::AlreadyExists);
                return Err(IoError::new("create", &target, exists).into());
            }
            if target.exists() {
                // Only a removal killed half-way leaves one (its config.json
                // goes first, so no command sees it): finish it.
                remove_tree(&target)?;
            }
            fs::rename(&temp, &target).map_err(io_err("create", &target))?;
            if durable {
                sync_dir(&self.data)?;
            }
            Ok(())
        })();
        let Err(err) = made else {
            return Ok(());
        };
        let _ = crate::engine::dirs::remove_tree(&temp);
        let _ = crate::engine::dirs::remove_tree(&self.run_dir(id));
        Err(match err {
            StoreError::Io(err)
                if matches!(err.source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) =>
            {
                StoreError::NoSpace {
                    dir: if err.path.starts_with(&self.run) {
                        self.run.clone()
                    } else {
                        self.data.clone()
                    },
                }
            }
            other => other,
        })
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
    /// read is skipped with a warning (once per file and process, through
    /// the `log` facade: the front end decides how to show it), so that
    /// one bad file does not stop commands on the others.
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
            Err(source) => return Err(IoError::new("list", &self.data, source).into()),
        };
        let mut records = Vec::new();
        let mut broken = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", &self.data))?;
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
        #[derive(Deserialize)]
        struct NameOnly {
            name: String,
        }
        let name = read_json::<NameOnly>(&self.config_path(id))
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
                remove_tree(&entry.path())?;
                removed += 1;
            }
        }
        // Deletions whose process was killed half-way (one that still
        // runs may finish first: then there is nothing left to do).
        if let Ok(entries) = fs::read_dir(self.trash_dir()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !maker_alive(&name) && remove_tree(&entry.path()).is_ok() {
                    removed += 1;
                }
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
                if state.is_some_and(|s| s.owner_alive()) {
                    continue;
                }
                remove_tree(&entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
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
                return Err(IoError::new("remove", self.config_path(id), err).into())
            }
            _ => {}
        }
        for dir in [self.run_dir(id), self.data_dir(id)] {
            remove_tree(&dir)?;
        }
        Ok(())
    }

    /// `remove`, with the deletion of the record's directory left to a
    /// process that this does not wait for: the directory is renamed into
    /// `<data>/trash` first (one rename: gone from every listing at once),
    /// and `rm --one-file-system` deletes it there. Where freed blocks are
    /// discarded at once (ext4 without a journal, mounted with `discard`),
    /// each one waits for the device, milliseconds per directory, and
    /// `run --rm` need not wait for that. With a janitor hired, nothing is
    /// spawned: the janitor deletes it once this process has exited. What
    /// a deletion killed half-way leaves, the next `create` finishes.
    pub fn remove_in_background(&self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        let _guard = match self.lock(id) {
            Ok(guard) => Some(guard),
            Err(StoreError::NoSuchContainer(_)) if self.data_dir(id).exists() => None,
            Err(err) => return Err(err),
        };
        match fs::remove_file(self.config_path(id)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(IoError::new("remove", self.config_path(id), err).into())
            }
            _ => {}
        }
        remove_tree(&self.run_dir(id))?;
        let dir = self.data_dir(id);
        if crate::kernel::mounts::has_mounts_under(&dir).map_err(io_err("read mounts of", &dir))? {
            // remove_tree refuses it, and says why.
            return remove_tree(&dir);
        }
        let trash = self.trash_dir();
        create_dir(&trash)?;
        // Numbered: one process may trash two directories of one ID (the
        // record of a killed run it reclaimed, then its own, with pinned
        // IDs), and the janitor deletes them only after it has exited.
        static TRASHED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = TRASHED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let target = trash.join(format!("{}.{n}.{id}", owner_tag()));
        match fs::rename(&dir, &target) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(IoError::new("remove", &dir, err).into()),
            Ok(()) => {}
        }
        if self.janitor.is_some() {
            // Deleted by the janitor once this process has exited.
            return Ok(());
        }
        use std::os::unix::process::CommandExt;
        let spawned = std::process::Command::new("/bin/rm")
            .args(["-rf", "--one-file-system", "--"])
            .arg(&target)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Out of our process group: a Ctrl-C at the terminal is not its.
            .process_group(0)
            .spawn();
        if spawned.is_err() {
            remove_tree(&target)?;
        }
        Ok(())
    }

    /// `<data>/trash`: directories of removed containers, being deleted.
    fn trash_dir(&self) -> PathBuf {
        self.dirs.data.join("trash")
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
            created: config.created,
            config: config.config,
            state,
        })
    }
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

/// `mkdir`, failing when it exists: a temporary is never shared.
fn create_dir_new(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(io_err("create directory", path))?;
    Ok(())
}

fn remove_tree(path: &Path) -> Result<(), StoreError> {
    crate::engine::dirs::remove_tree(path).map_err(io_err("remove", path))?;
    Ok(())
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
    log::warn!("{broken}");
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
