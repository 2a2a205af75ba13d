//! cgroup v1: one hierarchy per controller, each mounted on its own, and
//! the lab's cgroup is one directory in each of them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{
    cpu, create_in_shared_parent, devices, freezer, io, memory, own_cgroups, own_path_in, pids,
    CgroupError, Controller, Hierarchy, Resources, Stats, Version, Writes, Written, LAB_PARENT,
};
use crate::support::fs::read_kernel_file;

/// The v1 hierarchies on this host: where each controller's is mounted
/// (`cpu` and `cpuacct` may share one mount, and then one directory).
#[derive(Debug)]
pub struct V1 {
    mounts: BTreeMap<String, PathBuf>,
    /// /proc/self/cgroup as it was when this value was made: where this
    /// process is in each hierarchy (read once, not once per hierarchy).
    own_cgroups: String,
}

/// The v1 hierarchies a controller's files are in.
fn hierarchies(controller: Controller) -> &'static [&'static str] {
    match controller {
        Controller::Memory => memory::V1_HIERARCHIES,
        Controller::Cpu => cpu::V1_HIERARCHIES,
        Controller::Pids => pids::V1_HIERARCHIES,
        Controller::Io => io::V1_HIERARCHIES,
        Controller::Freezer => freezer::V1_HIERARCHIES,
        Controller::Devices => devices::V1_HIERARCHIES,
    }
}

impl V1 {
    /// Reads where the kernel mounted each v1 hierarchy (/proc/self/mountinfo).
    pub fn from_mountinfo() -> Result<V1, CgroupError> {
        let path = "/proc/self/mountinfo";
        let text = read_kernel_file(path).map_err(|e| CgroupError::io("read", path, e))?;
        let mut mounts = BTreeMap::new();
        for line in text.lines() {
            let Some((before, after)) = line.split_once(" - ") else {
                continue;
            };
            let mut tail = after.split(' ');
            if tail.next() != Some("cgroup") {
                continue;
            }
            let (Some(options), Some(point)) = (tail.nth(1), before.split(' ').nth(4)) else {
                continue;
            };
            for option in options.split(',') {
                mounts
                    .entry(option.to_string())
                    .or_insert_with(|| PathBuf::from(point));
            }
        }
        Ok(V1 {
            mounts,
            own_cgroups: own_cgroups()?,
        })
    }

    /// The hierarchies of `controllers`, each once, those mounted only.
    fn wanted(&self, controllers: &[Controller]) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for name in controllers.iter().flat_map(|c| hierarchies(*c)) {
            if self.mounts.contains_key(*name) && !names.contains(name) {
                names.push(name);
            }
        }
        names
    }

    /// `MOUNT/OWN/container-lab/NAME` for one hierarchy.
    fn dir_for(&self, hierarchy: &str, name: &str) -> Result<PathBuf, CgroupError> {
        let mount = &self.mounts[hierarchy];
        // Beneath the cgroup this process is in, in that hierarchy.
        Ok(mount
            .join(own_path_in(&self.own_cgroups, Some(hierarchy))?)
            .join(LAB_PARENT)
            .join(name))
    }
}

/// One cgroup's directories, looked up by hierarchy: what a controller's
/// `set_v1` and `stats_v1` are given.
pub(super) struct V1Dirs<'a> {
    v1: &'a V1,
    dirs: &'a [PathBuf],
}

impl V1Dirs<'_> {
    /// The cgroup's directory in `hierarchy`, if it has one.
    pub(super) fn get(&self, hierarchy: &str) -> Option<&Path> {
        let mount = self.v1.mounts.get(hierarchy)?;
        self.dirs
            .iter()
            .find(|d| d.starts_with(mount))
            .map(PathBuf::as_path)
    }

    /// `get`, for settings that need the hierarchy: an error naming the
    /// controller when it is not there.
    pub(super) fn require(
        &self,
        hierarchy: &str,
        controller: Controller,
    ) -> Result<&Path, CgroupError> {
        self.get(hierarchy).ok_or_else(|| CgroupError::Unavailable {
            controller: controller.name(),
            dir: self.dirs.first().cloned().unwrap_or_default(),
        })
    }

    /// A file of `hierarchy`'s directory (empty when there is none, so
    /// that reading it finds nothing).
    pub(super) fn file(&self, hierarchy: &str, name: &str) -> PathBuf {
        self.get(hierarchy)
            .map(|d| d.join(name))
            .unwrap_or_default()
    }
}

impl Version for V1 {
    fn number(&self) -> u8 {
        1
    }

    fn planned(&self, name: &str, controllers: &[Controller]) -> Result<Vec<PathBuf>, CgroupError> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for hierarchy in self.wanted(controllers) {
            let dir = self.dir_for(hierarchy, name)?;
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        Ok(dirs)
    }

    // ANCHOR: create
    fn create(&self, name: &str, controllers: &[Controller]) -> Result<Vec<PathBuf>, CgroupError> {
        let mut made: Vec<PathBuf> = Vec::new();
        for dir in self.planned(name, controllers)? {
            let parent = dir.parent().unwrap_or(&dir).to_path_buf();
            if let Err(err) = create_in_shared_parent(&parent, &dir, cpu::prepare_v1) {
                // Not half a cgroup: what was made goes again.
                for made in made.iter().rev() {
                    let _ = fs::remove_dir(made);
                    let _ = made.parent().map(fs::remove_dir);
                }
                return Err(err);
            }
            made.push(dir);
        }
        Ok(made)
    }
    // ANCHOR_END: create

    fn has(&self, dirs: &[PathBuf], controller: Controller) -> bool {
        let dirs = V1Dirs { v1: self, dirs };
        hierarchies(controller)
            .first()
            .is_some_and(|h| dirs.get(h).is_some())
    }

    // ANCHOR: set
    fn set(&self, dirs: &[PathBuf], resources: &Resources) -> Result<Vec<Written>, CgroupError> {
        let dirs = V1Dirs { v1: self, dirs };
        let mut out = Writes::default();
        resources.memory.set_v1(&dirs, &mut out)?;
        resources.cpu.set_v1(&dirs, &mut out)?;
        resources.pids.set_v1(&dirs, &mut out)?;
        resources.io.set_v1(&dirs, &mut out)?;
        if let Some(rules) = &resources.devices {
            devices::set_v1(rules, &dirs, &mut out)?;
        }
        if let Some(frozen) = resources.frozen {
            freezer::set_v1(frozen, &dirs, &mut out)?;
        }
        Ok(out.0)
    }
    // ANCHOR_END: set

    fn stats(&self, dirs: &[PathBuf]) -> Stats {
        let dirs = V1Dirs { v1: self, dirs };
        Stats {
            memory: memory::stats_v1(&dirs),
            cpu: cpu::stats_v1(&dirs),
            pids: pids::stats_v1(&dirs),
            io: io::stats_v1(&dirs),
        }
    }

    fn is_frozen(&self, dirs: &[PathBuf]) -> Option<bool> {
        freezer::is_frozen_v1(&V1Dirs { v1: self, dirs })
    }

    fn own(&self, controllers: &[Controller]) -> Result<Vec<Hierarchy>, CgroupError> {
        let mut found: Vec<Hierarchy> = Vec::new();
        for hierarchy in self.wanted(controllers) {
            let mount = self.mounts[hierarchy].clone();
            let own = mount.join(own_path_in(&self.own_cgroups, Some(hierarchy))?);
            if !found.iter().any(|h| h.own == own) {
                found.push(Hierarchy { mount, own });
            }
        }
        Ok(found)
    }

    fn make(&self, dir: &Path, _: &[Controller]) -> Result<(), CgroupError> {
        match fs::create_dir(dir) {
            Ok(()) => cpu::prepare_v1(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(CgroupError::io("create", dir, e)),
        }
    }
}
