//! `stop`, `kill` and `restart`: signals to the container's first process,
//! and a marker that tells its supervisor not to restart what was stopped.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Lifecycle, LifecycleError};
use crate::engine::oci::monitor;
use crate::engine::store::Record;
use crate::engine::supervisor;
use crate::kernel::{cgroups, process};

impl Lifecycle {
    /// `stop`: SIGTERM (or the image's StopSignal) to the container's first process, SIGKILL after the
    /// timeout (the container's `--stop-timeout` unless given), then waits
    /// until the supervisor has recorded the exit. A container that does
    /// not run is left as it is.
    // ANCHOR: stop
    pub fn stop(&self, key: &str, timeout: Option<u32>) -> Result<(), LifecycleError> {
        let record = self.find(key)?;
        self.stop_record(&record, timeout)
    }

    fn stop_record(&self, record: &Record, timeout: Option<u32>) -> Result<(), LifecycleError> {
        if !record.effective_status().is_running() {
            return Ok(());
        }
        let timeout = Duration::from_secs(timeout.unwrap_or(record.config.stop_timeout).into());
        // First the marker: the supervisor must not restart what we stop.
        self.mark_stopped(&record.id)?;
        // Then signal whichever first process is there (a restart may have
        // just begun), until the supervisor records the exit.
        let mut signalled: Option<(i32, Instant)> = None;
        let give_up = Instant::now() + timeout + Duration::from_secs(30);
        loop {
            let state = self.store.get(&record.id)?.effective_state();
            if !state.status.is_running() {
                break;
            }
            let alive = state.pid > 0 && process::is_alive(state.pid, state.pid_start_time);
            match signalled {
                _ if !alive => {}
                Some((pid, at)) if pid == state.pid => {
                    if at.elapsed() >= timeout {
                        let _ = monitor::signal(&self.store, &record.id, pid, Signal::SIGKILL);
                    }
                }
                _ => {
                    let _ =
                        monitor::signal(&self.store, &record.id, state.pid, stop_signal(record));
                    // A frozen process cannot act on SIGTERM: thaw it (Docker does too).
                    let _ = cgroups::set_frozen(&state.cgroup_paths, false);
                    signalled = Some((state.pid, Instant::now()));
                }
            }
            if Instant::now() > give_up {
                return Err(LifecycleError::DidNotStop(record.name.clone()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.wait_for_supervisor(&record.id)
    }
    // ANCHOR_END: stop

    /// `kill -s SIGNAL`: only a running container can be signalled. A
    /// signal meant to end it is a stop: no restart after it.
    pub fn kill(&self, key: &str, signal: Signal) -> Result<(), LifecycleError> {
        let record = self.find(key)?;
        let state = record.effective_state();
        if !state.status.is_running() || state.pid == 0 {
            return Err(LifecycleError::CannotKill(key.to_string()));
        }
        if matches!(
            signal,
            Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT
        ) {
            self.mark_stopped(&record.id)?;
        }
        monitor::signal(&self.store, &record.id, state.pid, signal).map_err(|errno| {
            LifecycleError::Signal {
                key: key.to_string(),
                errno,
            }
        })
    }

    /// `restart`: a stop, then a new supervisor.
    pub fn restart(&self, key: &str, timeout: Option<u32>) -> Result<(), LifecycleError> {
        let record = self.find(key)?;
        self.stop_record(&record, timeout)?;
        supervisor::spawn(&record.id).map_err(LifecycleError::StartRefused)
    }

    /// Tells the supervisor that the exit about to come was asked for.
    pub(super) fn mark_stopped(&self, id: &str) -> Result<(), LifecycleError> {
        let marker = supervisor::stop_marker(&self.store, id);
        std::fs::write(&marker, b"").map_err(|source| LifecycleError::Marker {
            path: marker,
            source,
        })
    }

    /// Waits (up to 30 s) until the record is no longer running and its
    /// supervisor, which removes the cgroup and the network after writing
    /// the exit, has gone too.
    pub(super) fn wait_for_supervisor(&self, id: &str) -> Result<(), LifecycleError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let record = self.store.get(id)?;
            if !record.effective_status().is_running() && !record.owner_alive() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LifecycleError::StopTimeout(id.to_string()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The image's StopSignal (a name, with or without SIG, or a number), or
/// SIGTERM.
fn stop_signal(record: &Record) -> Signal {
    let Some(text) = record.config.stop_signal.as_deref() else {
        return Signal::SIGTERM;
    };
    let upper = text.to_ascii_uppercase();
    if let Ok(n) = upper.parse::<i32>() {
        return Signal::try_from(n).unwrap_or(Signal::SIGTERM);
    }
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().unwrap_or(Signal::SIGTERM)
}
