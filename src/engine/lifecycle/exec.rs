//! `exec`: a new process in a running container.

use super::{Lifecycle, LifecycleError};
use crate::engine::runtime::exec::{self as runtime_exec, ExecRequest};
use crate::engine::store::Status;

impl Lifecycle {
    /// Runs `request` in the running container `key` and returns its exit
    /// code. A paused or stopped container is refused.
    pub fn exec(&self, key: &str, request: ExecRequest) -> Result<i32, LifecycleError> {
        let record = self.find(key)?;
        let state = record.effective_state();
        match state.status {
            Status::Running => {}
            Status::Paused => return Err(LifecycleError::Paused(key.to_string())),
            _ => return Err(LifecycleError::NotRunning(key.to_string())),
        }
        Ok(runtime_exec::exec(
            state.pid,
            &record.config,
            &state.cgroup_paths,
            request,
        )?)
    }
}
