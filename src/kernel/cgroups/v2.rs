//! cgroup v2: one hierarchy, controllers handed down explicitly through
//! `cgroup.subtree_control`, and the rule that a cgroup which hands
//! controllers down may not hold processes itself.

use std::fs;
use std::path::{Path, PathBuf};

use super::{
    cpu, devices, freezer, io, memory, own_path, pids, reclaim_existing, CgroupError, Controller,
    Hierarchy, Resources, Stats, Version, Writes, Written, CGROUP_ROOT, LAB_PARENT,
};
use crate::support::fs::read_kernel_file;

/// The unified hierarchy at /sys/fs/cgroup.
#[derive(Debug)]
pub struct V2;

/// The names `cgroup.subtree_control` hands down for a controller (none
/// for the freezer and devices: every v2 cgroup has those built in).
fn enabled_by(controller: Controller) -> &'static [&'static str] {
    match controller {
        Controller::Memory => memory::V2_CONTROLLERS,
        Controller::Cpu => cpu::V2_CONTROLLERS,
        Controller::Pids => pids::V2_CONTROLLERS,
        Controller::Io => io::V2_CONTROLLERS,
        Controller::Freezer | Controller::Devices => &[],
    }
}

/// Whether `dir`'s `cgroup.controllers` lists `name`.
pub(super) fn listed(dir: &Path, name: &str) -> bool {
    read_kernel_file(dir.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .any(|c| c == name)
}

/// The one directory, or an error naming the controller that needs it.
pub(super) fn require(dirs: &[PathBuf], controller: Controller) -> Result<&Path, CgroupError> {
    let dir = dirs.first().map(PathBuf::as_path).unwrap_or(Path::new(""));
    let name = enabled_by(controller).first().copied();
    if name.is_some_and(|name| !listed(dir, name)) {
        return Err(CgroupError::Unavailable {
            controller: controller.name(),
            dir: dir.to_path_buf(),
        });
    }
    Ok(dir)
}

fn own() -> Result<PathBuf, CgroupError> {
    Ok(Path::new(CGROUP_ROOT).join(own_path(None)?))
}

impl Version for V2 {
    fn number(&self) -> u8 {
        2
    }

    fn planned(&self, name: &str, _: &[Controller]) -> Result<Vec<PathBuf>, CgroupError> {
        Ok(vec![own()?.join(LAB_PARENT).join(name)])
    }

    /// Creates `OWN/container-lab/NAME`. The lab's own cgroup must be free
    /// to hand controllers down: either the root (allowed to hold
    /// processes), or a delegated cgroup the lab is alone in, which it then
    /// leaves for a leaf child of its own.
    // ANCHOR: create
    fn create(&self, name: &str, controllers: &[Controller]) -> Result<Vec<PathBuf>, CgroupError> {
        let own = own()?;
        if own != Path::new(CGROUP_ROOT) {
            let me = std::process::id().to_string();
            let procs = read_kernel_file(own.join("cgroup.procs"))
                .map_err(|e| CgroupError::io("read", &own, e))?;
            if procs.split_whitespace().any(|pid| pid != me) {
                return Err(CgroupError::NotDelegated(own));
            }
            // Alone here: step down into a leaf, so `own` holds no process.
            let leaf = own.join("lab-supervisor");
            if !leaf.exists() {
                fs::create_dir(&leaf).map_err(|e| CgroupError::io("create", &leaf, e))?;
            }
            super::join(&[leaf.join("cgroup.procs")])?;
        }
        enable_controllers(&own, controllers)?;
        let parent = own.join(LAB_PARENT);
        let path = parent.join(name);
        // Another run may remove the shared parent at any moment: retry.
        let mut attempts = 0;
        loop {
            match fs::create_dir(&parent) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CgroupError::io("create", &parent, e)),
            }
            let created = enable_controllers(&parent, controllers).and_then(|()| {
                match fs::create_dir(&path) {
                    // Left by a run that died: take it back, make it anew.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        reclaim_existing(&path)?;
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
        Ok(vec![path])
    }
    // ANCHOR_END: create

    fn has(&self, dirs: &[PathBuf], controller: Controller) -> bool {
        let Some(dir) = dirs.first() else {
            return false;
        };
        match enabled_by(controller).first() {
            Some(name) => listed(dir, name),
            None if controller == Controller::Freezer => freezer::has_v2(dir),
            None => true,
        }
    }

    // ANCHOR: set
    fn set(&self, dirs: &[PathBuf], resources: &Resources) -> Result<Vec<Written>, CgroupError> {
        let mut out = Writes::default();
        resources.memory.set_v2(dirs, &mut out)?;
        resources.cpu.set_v2(dirs, &mut out)?;
        resources.pids.set_v2(dirs, &mut out)?;
        resources.io.set_v2(dirs, &mut out)?;
        if let Some(rules) = &resources.devices {
            devices::set_v2(rules, dirs, &mut out)?;
        }
        if let Some(frozen) = resources.frozen {
            freezer::set_v2(frozen, dirs, &mut out)?;
        }
        Ok(out.0)
    }
    // ANCHOR_END: set

    fn stats(&self, dirs: &[PathBuf]) -> Stats {
        let Some(dir) = dirs.first() else {
            return Stats::default();
        };
        Stats {
            memory: memory::stats_v2(dir),
            cpu: cpu::stats_v2(dir),
            pids: pids::stats_v2(dir),
            io: io::stats_v2(dir),
        }
    }

    fn is_frozen(&self, dirs: &[PathBuf]) -> Option<bool> {
        freezer::is_frozen_v2(dirs.first()?)
    }

    fn own(&self, _: &[Controller]) -> Result<Vec<Hierarchy>, CgroupError> {
        Ok(vec![Hierarchy {
            mount: PathBuf::from(CGROUP_ROOT),
            own: own()?,
        }])
    }

    /// A cgroup that hands controllers down may hold no process (unless
    /// it is the root): the parent must be empty, or this fails (EBUSY).
    fn make(&self, dir: &Path, controllers: &[Controller]) -> Result<(), CgroupError> {
        if let Some(parent) = dir.parent() {
            enable_controllers(parent, controllers)?;
        }
        match fs::create_dir(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(CgroupError::io("create", dir, e)),
        }
    }
}

/// `echo +memory +cpu … > DIR/cgroup.subtree_control`, for the
/// controllers DIR has and has not handed down yet (`+io` for the block
/// I/O limits, `+cpuset` for the CPUs a container may run on).
// ANCHOR: subtree
fn enable_controllers(dir: &Path, controllers: &[Controller]) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.subtree_control");
    let available = read_kernel_file(dir.join("cgroup.controllers")).unwrap_or_default();
    let enabled = read_kernel_file(&file).unwrap_or_default();
    let has = |list: &str, name: &str| list.split_whitespace().any(|c| c == name);
    for name in controllers.iter().flat_map(|c| enabled_by(*c)) {
        if has(&available, name) && !has(&enabled, name) {
            fs::write(&file, format!("+{name}"))
                .map_err(|e| CgroupError::io(&format!("write \"+{name}\" to"), &file, e))?;
        }
    }
    Ok(())
}
// ANCHOR_END: subtree
