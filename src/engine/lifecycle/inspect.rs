//! What `inspect` and `logs` show: data, for the front end to present.

use std::path::PathBuf;

use super::{Lifecycle, LifecycleError};
use crate::engine::logs::{self, Entry};
use crate::engine::store::{Record, State};

/// One container as `inspect` sees it.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub record: Record,
    /// Its state as it really is now (see `Record::effective_state`).
    pub state: State,
    /// Its json-file log.
    pub log_path: PathBuf,
    /// `(kind, /proc/PID/ns/KIND)` of its namespaces while it runs.
    pub namespaces: Vec<(&'static str, PathBuf)>,
}

impl Lifecycle {
    pub fn inspect(&self, key: &str) -> Result<Inspection, LifecycleError> {
        let record = self.find(key)?;
        let state = record.effective_state();
        let namespaces = if state.pid > 0 {
            ["ipc", "mnt", "net", "pid", "uts"]
                .into_iter()
                .map(|ns| (ns, PathBuf::from(format!("/proc/{}/ns/{ns}", state.pid))))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Inspection {
            log_path: self.store.log_path(&record.id),
            record,
            state,
            namespaces,
        })
    }

    /// The container's log, or its last `tail` entries.
    pub fn logs(&self, key: &str, tail: Option<usize>) -> Result<Vec<Entry>, LifecycleError> {
        let record = self.find(key)?;
        Ok(logs::read(&self.store.log_path(&record.id), tail)?)
    }

    /// `logs -f`: the log (or its last `tail` entries), then every entry as
    /// it is written, until the container has stopped.
    pub fn follow_logs(
        &self,
        key: &str,
        tail: Option<usize>,
        out: impl FnMut(&Entry),
    ) -> Result<(), LifecycleError> {
        let record = self.find(key)?;
        let id = &record.id;
        logs::follow(&self.store.log_path(id), tail, || self.running(id), out)?;
        Ok(())
    }
}
