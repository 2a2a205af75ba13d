//! `create`, `run` and `start`: the record first, then a supervisor, in
//! the foreground (this process) or detached (a process of its own).

use super::{Lifecycle, LifecycleError};
use crate::engine::images::imported as images;
use crate::engine::logs::{self, Entry};
use crate::engine::runtime::{self, Explain};
use crate::engine::store::{NewContainer, Record};
use crate::engine::supervisor::{self, Attach, SupervisorError};

impl Lifecycle {
    /// A new container, not started: its image checked (the built-in one
    /// is made on first use, by the start), its name taken, its record
    /// written. A `--rm` container whose run was killed is nobody's: its
    /// name is free again, once what it left is reclaimed.
    pub fn create(&self, new: NewContainer) -> Result<Record, LifecycleError> {
        let dirs = self.dirs();
        dirs.prepare()?;
        if !images::is_builtin(&new.config.image) {
            images::resolve(dirs, &new.config.image)?;
        }
        if let Some(old) = new
            .name
            .as_deref()
            .and_then(|name| self.store.get(name).ok())
        {
            if old.is_abandoned() {
                let _ = supervisor::remove(&self.store, &old);
            }
        }
        let record = self.store.create(new)?;
        runtime::hold_at("record");
        Ok(record)
    }

    /// `run -d`: a supervisor of its own starts the container; returns once
    /// it runs. A run that could not start leaves nothing behind (but see
    /// [`Lifecycle::after_failed_start`]).
    pub fn run_detached(&self, record: &Record) -> Result<(), LifecycleError> {
        supervisor::spawn(&record.id).map_err(|err| self.after_failed_start(record, err))
    }

    /// `run` in the foreground: this process supervises the container,
    /// its streams connected as `attach` says, each step of its start
    /// handed to `explain`. Returns the container's exit code.
    pub fn run_attached(
        &self,
        record: &Record,
        attach: Attach,
        explain: Explain,
    ) -> Result<i32, LifecycleError> {
        supervisor::supervise(&self.store, record, attach, None, explain)
            .map_err(|err| self.after_failed_start(record, err))
    }

    /// A start failed: what it made goes, and the record too, unless the
    /// container's own program could not be run and it is not `--rm`:
    /// then it stays, exited with 126 or 127, as Docker keeps it.
    fn after_failed_start(&self, record: &Record, err: SupervisorError) -> LifecycleError {
        if err.exit_code() == 125 || record.ephemeral() {
            if let Ok(record) = self.store.get(&record.id) {
                let _ = supervisor::remove(&self.store, &record);
            }
        }
        err.into()
    }

    /// `start`: a supervisor for the container, unless it runs already.
    pub fn start(&self, key: &str) -> Result<Record, LifecycleError> {
        let record = self.find(key)?;
        if !record.effective_status().is_running() {
            supervisor::spawn(&record.id).map_err(LifecycleError::StartRefused)?;
        }
        Ok(record)
    }

    /// `start -a`: passes the log to `out` as it grows until the container
    /// has stopped, and returns its exit code.
    pub fn follow_until_exit(
        &self,
        record: &Record,
        out: impl FnMut(&Entry),
    ) -> Result<i32, LifecycleError> {
        let id = &record.id;
        logs::follow(&self.store.log_path(id), None, || self.running(id), out)?;
        Ok(self.store.get(id)?.effective_state().exit_code)
    }
}
