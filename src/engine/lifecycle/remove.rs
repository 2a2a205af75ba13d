//! `rm` and `system prune`: a container's record, log and layer, and
//! whatever a run that died left on the host; and the images and volumes
//! no container uses any more (`rmi`, `volume rm`).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Lifecycle, LifecycleError};
use crate::engine::images::{local, Reference, Removed};
use crate::engine::oci::monitor;
use crate::engine::store::{self, Record, StoreError};
use crate::engine::supervisor;
use crate::engine::volumes;
use crate::kernel::{cgroups, process};

impl Lifecycle {
    /// `rm [-f]`: a running container only with `force` (killed first).
    /// What a run that died left (cgroups, network, run directory) goes
    /// with it; a record that cannot be read only with `force`, and with
    /// what can still be found of it.
    pub fn remove(&self, key: &str, force: bool) -> Result<(), LifecycleError> {
        let record = match self.store.get(key) {
            Ok(record) => record,
            Err(StoreError::Broken { id, .. }) if force => return self.remove_broken(&id),
            Err(err) => return Err(LifecycleError::Lookup(err)),
        };
        let record = self.settle(record)?;
        let state = record.effective_state();
        if state.status.is_running() {
            if !force {
                return Err(LifecycleError::MustForce {
                    key: key.to_string(),
                    status: state.status,
                });
            }
            self.mark_stopped(&record.id)?;
            let _ = cgroups::set_frozen(&state.cgroup_paths, false);
            if state.pid > 0 && process::is_alive(state.pid, state.pid_start_time) {
                let _ = monitor::signal(&self.store, &record.id, state.pid, Signal::SIGKILL);
            }
            self.wait_for_supervisor(&record.id)?;
        }
        let record = self.store.get(&record.id)?;
        // What a killed monitor of an external runtime left (see oci::monitor).
        monitor::reclaim(&self.store, &record.id);
        if let Err(err) = supervisor::remove(&self.store, &record) {
            let message = format!("{}: {err}", store::CLEANUP_FAILED);
            let _ = self.store.update(&record.id, |r| r.state.error = message);
            return Err(LifecycleError::RemoveFailed {
                key: key.to_string(),
                source: err,
            });
        }
        Ok(())
    }

    /// A record whose owner is alive but not running the container is
    /// being started (or is finishing): waits until it runs or its owner
    /// is gone, so that rm never races a start for the kernel objects.
    fn settle(&self, record: Record) -> Result<Record, LifecycleError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut record = record;
        while !record.effective_status().is_running() && record.owner_alive() {
            if Instant::now() > deadline {
                return Err(LifecycleError::StillStarting {
                    name: record.name.clone(),
                    pid: record.state.supervisor_pid,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
            record = self.find(&record.id)?;
        }
        Ok(record)
    }

    /// `rm -f` of a record that cannot be read: what its name (when the
    /// configuration survived) still finds, then its files.
    fn remove_broken(&self, id: &str) -> Result<(), LifecycleError> {
        let (_, broken) = self.store.list_all()?;
        let name = broken
            .iter()
            .find(|b| b.id == id)
            .and_then(|b| b.name.clone());
        if let Some(name) = name {
            // The state is lost: its cgroups are where this name would have
            // them (a container still in them is killed: that is what -f is for).
            let state = store::State {
                cgroup_paths: cgroups::Cgroup::planned_freezable(&name).unwrap_or_default(),
                ..store::State::default()
            };
            supervisor::reclaim(&self.store, &name, &state)?;
        }
        self.store.remove(id)?;
        Ok(())
    }

    /// `system prune`: every stopped container and what it left behind, and
    /// what killed runs and creates left that no record names any more.
    /// Returns the IDs of the containers removed.
    pub fn prune(&self) -> Result<Vec<String>, LifecycleError> {
        let mut removed = Vec::new();
        // Running, or being started or finished by a live owner: not stopped.
        let live = |record: &Record| record.effective_status().is_running() || record.owner_alive();
        for record in self.store.list()? {
            if live(&record) {
                continue;
            }
            supervisor::remove(&self.store, &record).map_err(|source| {
                LifecycleError::RemoveFailed {
                    key: record.name.clone(),
                    source,
                }
            })?;
            removed.push(record.id);
        }
        self.store.remove_stale_temporaries()?;
        // A cgroup that no record here names is left alone: it may be the
        // start in progress of another data root, a chapter or a build
        // (all make theirs beneath the same parent, empty until their init
        // joins). A new run of its name takes an empty one back. The
        // shared parent goes when it is empty.
        cgroups::remove_empty_parents();
        Ok(removed)
    }

    /// `rmi [-f]`: never the image of a running container (its overlay
    /// stands on the image's layers), of a stopped one only with `force`,
    /// as Docker; a name the image has besides others is only untagged.
    /// Layers go only when no image left needs them.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<Removed, LifecycleError> {
        let dirs = self.dirs();
        let store = local::open(dirs)?;
        let image = store.find(name)?;
        let by_name = Reference::parse(name).is_ok_and(|r| r == image.reference);
        let names = store
            .list()?
            .into_iter()
            .filter(|i| i.id() == image.id())
            .count();
        // Untagging one of several names deletes nothing.
        if !(by_name && names > 1) {
            let short_image = image.short_id().to_string();
            let users: Vec<Record> = self
                .store
                .list()?
                .into_iter()
                .filter(|record| match &record.config.image_id {
                    Some(id) => id == image.id(),
                    None => Reference::parse(record.image()).is_ok_and(|r| r == image.reference),
                })
                .collect();
            if let Some(running) = users.iter().find(|r| r.effective_status().is_running()) {
                return Err(LifecycleError::ImageInUse {
                    image: short_image,
                    container: running.short_id().to_string(),
                });
            }
            if let (Some(stopped), false) = (users.first(), force) {
                return Err(LifecycleError::ImageMustForce {
                    reference: name.to_string(),
                    container: stopped.short_id().to_string(),
                    image: short_image,
                });
            }
        }
        Ok(store.remove(name)?)
    }

    /// `volume rm`: as Docker, not while a container (running or not)
    /// names it.
    pub fn remove_volume(&self, name: &str) -> Result<(), LifecycleError> {
        let users: Vec<String> = self
            .store
            .list()?
            .into_iter()
            .filter(|record| {
                record
                    .config
                    .volumes
                    .iter()
                    .any(|v| v.source == volumes::Source::Named(name.to_string()))
            })
            .map(|record| record.name)
            .collect();
        if !users.is_empty() {
            return Err(LifecycleError::VolumeInUse {
                name: name.to_string(),
                users,
            });
        }
        volumes::remove(self.dirs(), name).map_err(LifecycleError::VolumeRefused)
    }
}
