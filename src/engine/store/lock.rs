//! One lock per container: every command and the container's supervisor
//! read and write its record only while holding it, so that no write is
//! lost between two of them.

use std::fs::File;
use std::io;

use nix::fcntl::Flock;

use super::ids::check_id;
use super::{write_json, Record, Store, StoreError};
use crate::support::fs::lock_file;

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
        self.replace(&self.read()?, record)
    }

    /// Stores `record` in place of `old`, the record as read under this
    /// lock: only the files whose part changed are written.
    fn replace(&self, old: &Record, record: &Record) -> Result<(), StoreError> {
        if record.id != self.id {
            return Err(StoreError::Immutable { field: "id" });
        }
        if record.name != old.name {
            return Err(StoreError::Immutable { field: "name" });
        }
        if record.config != old.config || record.created != old.created {
            let durable = !record.ephemeral();
            write_json(
                &self.store.config_path(&self.id),
                &super::ConfigFile::of(record),
                durable,
            )?;
        }
        let run_dir = self.store.run_dir(&self.id);
        super::create_dir(&run_dir)?;
        // Runtime state lasts one boot (/run): atomic, but not fsynced.
        write_json(&self.store.state_path(&self.id), &record.state, false)
    }
}

impl Store {
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

    /// `docker rename`: a new name, unique among the containers (checked
    /// under the names lock, as `create` checks it). The configuration's
    /// name follows: the next start names its kernel objects so.
    pub fn rename(&self, id: &str, new_name: &str) -> Result<(), StoreError> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        super::validate_name(new_name)?;
        let _names = crate::support::fs::lock_file(&self.data.join("names.lock"), true)?;
        let (existing, _) = self.list_all()?;
        if let Some(other) = existing
            .iter()
            .find(|r| r.holds_name(new_name) && r.id != id)
        {
            return Err(StoreError::Conflict {
                name: new_name.to_string(),
                id: other.id.clone(),
            });
        }
        let guard = self.lock(id)?;
        let mut record = guard.read()?;
        record.name = new_name.to_string();
        record.config.name = new_name.to_string();
        let durable = !record.ephemeral();
        write_json(
            &self.config_path(id),
            &super::ConfigFile::of(&record),
            durable,
        )
    }

    /// Read-modify-write under the container's lock; `change` must not
    /// touch the ID or the name. Returns the stored record.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Record)) -> Result<Record, StoreError> {
        let guard = self.lock(id)?;
        let old = guard.read()?;
        let mut record = old.clone();
        change(&mut record);
        guard.replace(&old, &record)?;
        Ok(record)
    }
}
