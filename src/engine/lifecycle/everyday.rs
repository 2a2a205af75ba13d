//! The everyday commands beyond start and stop: `wait`, `rename`,
//! `update`, `top` and `stats` (the processes and counters of the
//! container's cgroup), `port`, and the paths `cp` reads and writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Lifecycle, LifecycleError};
use crate::engine::runtime::NetworkMode;
use crate::engine::store::{Record, Status};
use crate::kernel::cgroups::{Cgroup, Limits, Stats};

/// What `update` may change, in Docker's terms; `None` leaves it.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub memory_bytes: Option<u64>,
    pub memory_swap: Option<crate::kernel::cgroups::Limit>,
    pub memory_reservation: Option<u64>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub pids: Option<u64>,
    pub blkio_weight: Option<u16>,
    pub restart: Option<crate::engine::runtime::config::RestartPolicy>,
}

/// Where `cp` finds a container's files.
#[derive(Debug, Clone)]
pub enum FilesRoot {
    /// A running container: its root as its processes see it, with its
    /// volumes (`/proc/PID/root`).
    Running(PathBuf),
    /// A stopped one: its writable layer over the image's layers, topmost
    /// first. What it wrote is in the first; writes go there.
    Layers(Vec<PathBuf>),
}

impl Lifecycle {
    /// `wait`: blocks until the container no longer runs; its exit code.
    /// A container removed meanwhile (`--rm`) answers with the last code seen.
    pub fn wait(&self, key: &str) -> Result<i32, LifecycleError> {
        let record = self.find(key)?;
        let mut code = record.effective_state().exit_code;
        loop {
            let Ok(now) = self.store.get(&record.id) else {
                return Ok(code);
            };
            let state = now.effective_state();
            code = state.exit_code;
            if !state.status.is_running() && state.status != Status::Restarting {
                return Ok(code);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `rename OLD NEW`: the record and the name index; a running
    /// container's names on its networks too (its resolvers answer for the
    /// new name only). Its cgroup and run directory keep the name they
    /// were made under until it stops; /etc/hosts and the hostname stay,
    /// as Docker leaves them.
    pub fn rename(&self, key: &str, new_name: &str) -> Result<(), LifecycleError> {
        let record = self.find(key)?;
        let wanted = new_name.strip_prefix('/').unwrap_or(new_name);
        if wanted == record.name {
            return Err(LifecycleError::RenameSame);
        }
        self.store.rename(&record.id, wanted)?;
        if record.effective_status().is_running() {
            crate::engine::network::rename(self.dirs(), &record.name, wanted)?;
        }
        Ok(())
    }

    /// `network connect`, written down: the next start attaches it too.
    /// False when it was already on that network (as Docker, nothing to do).
    pub fn remember_network(
        &self,
        key: &str,
        connection: &crate::engine::runtime::extra::Connection,
    ) -> Result<bool, LifecycleError> {
        let record = self.find(key)?;
        let mut added = false;
        self.store.update(&record.id, |r| {
            let on = primary_network(&r.config).as_deref() == Some(&connection.network)
                || r.config
                    .extra
                    .networks
                    .iter()
                    .any(|c| c.network == connection.network);
            if !on {
                r.config.extra.networks.push(connection.clone());
                added = true;
            }
        })?;
        Ok(added)
    }

    /// `network disconnect`, written down: the next start leaves it out
    /// (its `--network` one too: it then starts with loopback only).
    /// False when it was not on that network.
    pub fn forget_network(&self, key: &str, network: &str) -> Result<bool, LifecycleError> {
        let record = self.find(key)?;
        let mut removed = false;
        self.store.update(&record.id, |r| {
            let before = r.config.extra.networks.len();
            r.config.extra.networks.retain(|c| c.network != network);
            removed = r.config.extra.networks.len() != before;
            if primary_network(&r.config).as_deref() == Some(network) {
                r.config.network = NetworkMode::None;
                r.config.network_aliases.clear();
                r.config.ip = None;
                removed = true;
            }
        })?;
        Ok(removed)
    }

    /// `update`: new limits, stored, and written to the cgroup of a
    /// running container at once.
    pub fn update(&self, key: &str, update: &Update) -> Result<(), LifecycleError> {
        let record = self.find(key)?;
        let mut limits = record.config.limits.clone();
        let changed = Limits {
            memory_bytes: update.memory_bytes,
            memory_swap: update.memory_swap,
            memory_reservation: update.memory_reservation,
            cpus: update.cpus,
            cpu_shares: update.cpu_shares,
            cpuset_cpus: update.cpuset_cpus.clone(),
            pids: update.pids,
            blkio_weight: update.blkio_weight,
            ..Limits::default()
        };
        macro_rules! take {
            ($($field:ident),*) => {$(
                if changed.$field.is_some() {
                    limits.$field = changed.$field.clone();
                }
            )*};
        }
        take!(
            memory_bytes,
            memory_swap,
            memory_reservation,
            cpus,
            cpu_shares,
            cpuset_cpus,
            pids,
            blkio_weight
        );
        // A new -m without --memory-swap keeps Docker's "as much again".
        if update.memory_bytes.is_some() && update.memory_swap.is_none() {
            limits.memory_swap = update
                .memory_bytes
                .map(|m| crate::kernel::cgroups::Limit::At(m.saturating_mul(2)));
        }
        let state = record.effective_state();
        if state.status.is_running() {
            let mut resources = changed.resources()?;
            if update.memory_bytes.is_some() {
                let wanted = &mut resources.memory;
                wanted.swap = limits.memory_swap;
            }
            Cgroup::open(&state.cgroup_paths)?.update(&resources)?;
        }
        self.store.update(&record.id, |r| {
            r.config.limits = limits;
            if let Some(policy) = update.restart {
                r.config.restart = policy;
            }
        })?;
        Ok(())
    }

    /// `top`: the host PIDs of the container's processes.
    pub fn processes(&self, key: &str) -> Result<Vec<i32>, LifecycleError> {
        let record = self.running_record(key)?;
        Ok(Cgroup::open(&record.effective_state().cgroup_paths)?.processes())
    }

    /// `stats`: the kernel's counters for a running container.
    pub fn stats(&self, key: &str) -> Result<(Record, Stats), LifecycleError> {
        let record = self.running_record(key)?;
        let stats = Cgroup::open(&record.effective_state().cgroup_paths)?.stats();
        Ok((record, stats))
    }

    /// Where `cp` reads and writes the container's files.
    pub fn files_root(&self, key: &str) -> Result<FilesRoot, LifecycleError> {
        let record = self.find(key)?;
        let state = record.effective_state();
        if state.status.is_running() && state.pid > 0 {
            return Ok(FilesRoot::Running(PathBuf::from(format!(
                "/proc/{}/root",
                state.pid
            ))));
        }
        let mut layers =
            vec![crate::engine::supervisor::layer_dir(&self.store, &record.id).join("upper")];
        let image = crate::engine::runtime::image_layers(self.dirs(), &record.config)?;
        layers.extend(image.iter().rev().map(|l| l.path.clone()));
        Ok(FilesRoot::Layers(layers))
    }

    fn running_record(&self, key: &str) -> Result<Record, LifecycleError> {
        let record = self.find(key)?;
        if !record.effective_status().is_running() {
            return Err(LifecycleError::NotRunning(key.to_string()));
        }
        Ok(record)
    }
}

/// The network `--network` put it on, by name (`bridge` for the default).
pub fn primary_network(config: &crate::engine::runtime::RunConfig) -> Option<String> {
    match &config.network {
        NetworkMode::Bridge => Some(crate::engine::network::Network::default_bridge().name),
        NetworkMode::Named(name) => Some(name.clone()),
        _ => None,
    }
}

/// Docker's `port` lines: `80/tcp -> 0.0.0.0:8080`, from the state's
/// `0.0.0.0:8080->80/tcp`.
pub fn port_lines(ports: &[String], wanted: Option<&str>) -> Vec<String> {
    let mut lines = Vec::new();
    for port in ports {
        let Some((host, container)) = port.split_once("->") else {
            continue;
        };
        let container = if container.contains('/') {
            container.to_string()
        } else {
            format!("{container}/tcp")
        };
        let matches = match wanted {
            None => true,
            Some(w) if w.contains('/') => w == container,
            Some(w) => container.split('/').next() == Some(w),
        };
        if matches {
            lines.push(if wanted.is_some() {
                host.to_string()
            } else {
                format!("{container} -> {host}")
            });
        }
    }
    lines
}

/// In a stopped container's layers: the topmost copy of `path`, unless a
/// whiteout (a 0:0 character device) hides it. A path through a symlink
/// is not followed: on the host it could lead anywhere.
pub fn find_in_layers(layers: &[PathBuf], path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let relative = path.strip_prefix("/").unwrap_or(path);
    for layer in layers {
        let candidate = layer.join(relative);
        let through_symlink = candidate
            .ancestors()
            .skip(1)
            .take_while(|a| a.starts_with(layer) && *a != layer.as_path())
            .any(|a| std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()));
        if through_symlink {
            return None;
        }
        if let Ok(meta) = std::fs::symlink_metadata(&candidate) {
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                return None;
            }
            return Some(candidate);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lines_read_as_dockers() {
        let ports = vec![
            "0.0.0.0:8080->80/tcp".to_string(),
            "443/tcp".to_string(),
            "127.0.0.1:5353->53/udp".to_string(),
        ];
        assert_eq!(
            port_lines(&ports, None),
            ["80/tcp -> 0.0.0.0:8080", "53/udp -> 127.0.0.1:5353"]
        );
        assert_eq!(port_lines(&ports, Some("80")), ["0.0.0.0:8080"]);
        assert_eq!(port_lines(&ports, Some("53/udp")), ["127.0.0.1:5353"]);
        assert!(port_lines(&ports, Some("81")).is_empty());
    }
}
