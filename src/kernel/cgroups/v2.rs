//! cgroup v2: one hierarchy, controllers handed down explicitly through
//! `cgroup.subtree_control`, and the rule that a cgroup which hands
//! controllers down may not hold processes itself.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    own_path, read_key, read_u64, remove_dir_retrying, write, CgroupError, Counters, Limits,
    CGROUP_ROOT, CONTROLLERS,
};

#[derive(Debug)]
pub struct V2Cgroup {
    path: PathBuf,
    parent: PathBuf,
    controllers: Vec<String>,
}

impl V2Cgroup {
    /// Creates `OWN/container-lab/NAME`. The lab's own cgroup must be free
    /// to hand controllers down: either the root (allowed to hold
    /// processes), or a delegated cgroup the lab is alone in, which it then
    /// leaves for a leaf child of its own.
    // ANCHOR: create
    pub fn create(name: &str) -> Result<V2Cgroup, CgroupError> {
        let own = Path::new(CGROUP_ROOT).join(own_path(None)?);
        if own != Path::new(CGROUP_ROOT) {
            let me = std::process::id().to_string();
            let procs = fs::read_to_string(own.join("cgroup.procs"))
                .map_err(|e| CgroupError::io("read", &own, e))?;
            if procs.split_whitespace().any(|pid| pid != me) {
                return Err(CgroupError::NotDelegated(own));
            }
            // Alone here: step down into a leaf, so `own` holds no process.
            let leaf = own.join("lab-supervisor");
            if !leaf.exists() {
                fs::create_dir(&leaf).map_err(|e| CgroupError::io("create", &leaf, e))?;
            }
            write(&leaf.join("cgroup.procs"), "0")?;
        }
        enable_controllers(&own)?;
        let parent = own.join("container-lab");
        let path = parent.join(name);
        // Another run may remove the shared parent at any moment: retry.
        let mut attempts = 0;
        loop {
            match fs::create_dir(&parent) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CgroupError::io("create", &parent, e)),
            }
            let created = enable_controllers(&parent).and_then(|()| {
                match fs::create_dir(&path) {
                    // Left by a run that died: take it back, make it anew.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        super::reclaim_existing(&path)?;
                        fs::create_dir(&path)
                    }
                    other => other,
                }
                .map_err(|e| CgroupError::io("create", &path, e))
            });
            attempts += 1;
            match created {
                Err(_) if attempts < 3 && !parent.exists() => continue,
                other => break other?,
            }
        }
        let controllers = fs::read_to_string(path.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect();
        Ok(V2Cgroup {
            path,
            parent,
            controllers,
        })
    }
    // ANCHOR_END: create

    /// The directory `create(name)` makes, without making it.
    pub fn planned(name: &str) -> Result<PathBuf, CgroupError> {
        let own = Path::new(CGROUP_ROOT).join(own_path(None)?);
        Ok(own.join("container-lab").join(name))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn has(&self, controller: &str) -> bool {
        let wanted = if controller == "cpuacct" {
            "cpu"
        } else {
            controller
        };
        self.controllers.iter().any(|c| c == wanted)
    }

    // ANCHOR: limits
    pub fn set_limits(&self, limits: &Limits) -> Result<Vec<(PathBuf, String)>, CgroupError> {
        let mut written = Vec::new();
        let mut set = |controller: &str, file: &str, value: String| -> Result<(), CgroupError> {
            let path = self.path.join(file);
            if self.has(controller) && path.exists() {
                write(&path, &value)?;
                written.push((path, value));
            }
            Ok(())
        };
        if let Some(bytes) = limits.memory_bytes {
            set("memory", "memory.max", bytes.to_string())?;
            // No swap either: otherwise the kernel swaps instead of OOM-killing.
            set("memory", "memory.swap.max", "0".into())?;
        }
        if let Some(cpus) = limits.cpus {
            set(
                "cpu",
                "cpu.max",
                format!("{} 100000", (cpus * 100_000.0) as u64),
            )?;
        }
        if let Some(pids) = limits.pids {
            set("pids", "pids.max", pids.to_string())?;
        }
        Ok(written)
    }
    // ANCHOR_END: limits

    pub fn counters(&self) -> Counters {
        let file = |name: &str| self.path.join(name);
        Counters {
            oom_kills: read_key(&file("memory.events"), "oom_kill"),
            memory_peak_bytes: read_u64(&file("memory.peak")),
            cpu_usage: read_key(&file("cpu.stat"), "usage_usec").map(Duration::from_micros),
            cpu_throttled_periods: read_key(&file("cpu.stat"), "nr_throttled"),
            cpu_throttled_time: read_key(&file("cpu.stat"), "throttled_usec")
                .map(Duration::from_micros),
            pids_refused: read_key(&file("pids.events"), "max"),
        }
    }

    pub fn remove(&mut self) -> Result<(), CgroupError> {
        remove_dir_retrying(&self.path)?;
        // The shared parent goes when the last run using it is gone.
        let _ = fs::remove_dir(&self.parent);
        Ok(())
    }
}

/// `echo +memory +cpu +pids > DIR/cgroup.subtree_control`, for the
/// controllers DIR has and has not handed down yet.
// ANCHOR: subtree
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    for controller in CONTROLLERS {
        let has = |list: &str| list.split_whitespace().any(|c| c == controller);
        if has(&available) && !has(&enabled) {
            write(
                &dir.join("cgroup.subtree_control"),
                &format!("+{controller}"),
            )?;
        }
    }
    Ok(())
}
// ANCHOR_END: subtree
