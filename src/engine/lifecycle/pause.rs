//! `pause` and `unpause`: the cgroup freezer, then the recorded status.

use super::{Lifecycle, LifecycleError};
use crate::engine::store::Status;
use crate::kernel::cgroups;

impl Lifecycle {
    /// `pause` (`frozen`) or `unpause`: every process of the container
    /// stopped or let go at once, by its cgroup.
    // ANCHOR: pause
    pub fn set_paused(&self, key: &str, frozen: bool) -> Result<(), LifecycleError> {
        let record = self.find(key)?;
        match (frozen, record.effective_status()) {
            (true, Status::Running) | (false, Status::Paused) => {}
            (true, Status::Paused) => return Err(LifecycleError::AlreadyPaused(key.to_string())),
            (false, Status::Running) => return Err(LifecycleError::NotPaused(key.to_string())),
            _ => return Err(LifecycleError::NotRunning(key.to_string())),
        }
        let guard = self.store.lock(&record.id)?;
        cgroups::set_frozen(&record.state.cgroup_paths, frozen)?;
        let mut current = guard.read()?;
        current.state.status = if frozen {
            Status::Paused
        } else {
            Status::Running
        };
        guard.write(&current)?;
        Ok(())
    }
    // ANCHOR_END: pause
}
