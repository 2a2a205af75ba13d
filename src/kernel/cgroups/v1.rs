//! cgroup v1: one hierarchy per controller, each mounted on its own, and
//! the lab's cgroup is one directory in each of them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::devices::DeviceRule;
use super::{
    own_path, read_key, read_u64, remove_dir_retrying, write, CgroupError, Counters, Limits,
};

/// The container's directories, keyed by controller (`cpu` and `cpuacct`
/// may share one hierarchy, and then one directory).
#[derive(Debug)]
pub struct V1Cgroup {
    dirs: BTreeMap<&'static str, PathBuf>,
    /// The container's directories, one per hierarchy, removed in reverse.
    created: Vec<PathBuf>,
}

/// The v1 controllers the lab uses, with `cpuacct` for CPU usage.
const V1_CONTROLLERS: [&str; 4] = ["memory", "cpu", "cpuacct", "pids"];

impl V1Cgroup {
    // ANCHOR: create
    pub fn create(name: &str) -> Result<V1Cgroup, CgroupError> {
        V1Cgroup::create_with(name, &[])
    }

    /// `create`, in the hierarchies of `extra` controllers too.
    pub fn create_with(name: &str, extra: &[&'static str]) -> Result<V1Cgroup, CgroupError> {
        let mut cgroup = V1Cgroup {
            dirs: BTreeMap::new(),
            created: Vec::new(),
        };
        for controller in V1_CONTROLLERS.iter().chain(extra).copied() {
            let Some(mount) = hierarchy_mount(controller) else {
                continue;
            };
            // Beneath the cgroup this process is in, in that hierarchy.
            let own = own_path(Some(controller))?;
            let parent = mount.join(own).join("container-lab");
            let dir = parent.join(name);
            if !cgroup.created.contains(&dir) {
                if let Err(err) = create_in_shared_parent(&parent, &dir) {
                    // Not half a cgroup: what was made goes again.
                    let _ = cgroup.remove();
                    return Err(err);
                }
                cgroup.created.push(dir.clone());
            }
            cgroup.dirs.insert(controller, dir);
        }
        Ok(cgroup)
    }
    // ANCHOR_END: create

    /// The directories `create_with(name, extra)` makes, without making
    /// them (the same loop).
    pub fn planned(name: &str, extra: &[&'static str]) -> Result<Vec<PathBuf>, CgroupError> {
        let mut paths = Vec::new();
        for controller in V1_CONTROLLERS.iter().chain(extra).copied() {
            let Some(mount) = hierarchy_mount(controller) else {
                continue;
            };
            let own = own_path(Some(controller))?;
            paths.push(mount.join(own).join("container-lab").join(name));
        }
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.dirs.values().cloned().collect();
        paths.sort();
        paths.dedup();
        paths
    }

    pub fn has(&self, controller: &str) -> bool {
        self.dirs.contains_key(controller)
    }

    /// The freezer hierarchy's directory, when it was asked for.
    pub fn freezer(&self) -> Option<&Path> {
        self.dirs.get("freezer").map(PathBuf::as_path)
    }

    fn file(&self, controller: &str, name: &str) -> Option<PathBuf> {
        self.dirs.get(controller).map(|dir| dir.join(name))
    }

    /// Writes the rules in order: `a` to devices.deny first (all
    /// refused), then each exception. Returns the shell lines.
    // ANCHOR: devices
    pub fn allow_devices(&self, rules: &[DeviceRule]) -> Result<Vec<String>, CgroupError> {
        let dir = self
            .dirs
            .get("devices")
            .ok_or(CgroupError::NoDevicesController)?;
        let mut shell = Vec::new();
        for (file, line) in rules.iter().flat_map(DeviceRule::v1_lines) {
            let path = dir.join(file);
            write(&path, &line)?;
            shell.push(format!("echo '{line}' > {}", path.display()));
        }
        Ok(shell)
    }
    // ANCHOR_END: devices

    // ANCHOR: limits
    pub fn set_limits(&self, limits: &Limits) -> Result<Vec<(PathBuf, String)>, CgroupError> {
        let mut written = Vec::new();
        let mut set = |controller: &str, file: &str, value: String| -> Result<(), CgroupError> {
            if let Some(path) = self.file(controller, file) {
                if path.exists() {
                    write(&path, &value)?;
                    written.push((path, value));
                }
            }
            Ok(())
        };
        if let Some(bytes) = limits.memory_bytes {
            set("memory", "memory.limit_in_bytes", bytes.to_string())?;
            // Memory plus swap, too: otherwise the kernel swaps instead of OOM-killing.
            set("memory", "memory.memsw.limit_in_bytes", bytes.to_string())?;
        }
        if let Some(cpus) = limits.cpus {
            set("cpu", "cpu.cfs_period_us", "100000".into())?;
            set(
                "cpu",
                "cpu.cfs_quota_us",
                ((cpus * 100_000.0) as u64).to_string(),
            )?;
        }
        if let Some(pids) = limits.pids {
            set("pids", "pids.max", pids.to_string())?;
        }
        Ok(written)
    }
    // ANCHOR_END: limits

    pub fn counters(&self) -> Counters {
        let path = |controller, name| self.file(controller, name).unwrap_or_default();
        Counters {
            oom_kills: read_key(&path("memory", "memory.oom_control"), "oom_kill"),
            memory_peak_bytes: read_u64(&path("memory", "memory.max_usage_in_bytes")),
            cpu_usage: read_u64(&path("cpuacct", "cpuacct.usage")).map(Duration::from_nanos),
            cpu_throttled_periods: read_key(&path("cpu", "cpu.stat"), "nr_throttled"),
            cpu_throttled_time: read_key(&path("cpu", "cpu.stat"), "throttled_time")
                .map(Duration::from_nanos),
            pids_refused: read_key(&path("pids", "pids.events"), "max"),
        }
    }

    pub fn remove(&mut self) -> Result<(), CgroupError> {
        while let Some(path) = self.created.pop() {
            remove_dir_retrying(&path)?;
            // The shared parent goes with its last child, whoever made it;
            // while another run still uses it, rmdir fails and it stays.
            if let Some(parent) = path.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
        Ok(())
    }
}

/// mkdir PARENT (shared by every run) and PARENT/NAME. Another run may
/// remove the empty parent between the two: then make it again.
fn create_in_shared_parent(parent: &Path, dir: &Path) -> Result<(), CgroupError> {
    for _ in 0..3 {
        match fs::create_dir(parent) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(CgroupError::io("create", parent, e)),
        }
        match fs::create_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // Left by a run that died: take it back, then make it anew.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                super::reclaim_existing(dir)?;
                continue;
            }
            Err(e) => return Err(CgroupError::io("create", dir, e)),
        }
    }
    Err(CgroupError::io(
        "create",
        dir,
        std::io::Error::from(std::io::ErrorKind::NotFound),
    ))
}

/// Where the v1 hierarchy holding `controller` is mounted.
fn hierarchy_mount(controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let mut tail = after.split(' ');
        if tail.next()? != "cgroup" {
            return None;
        }
        let super_options = tail.nth(1)?;
        super_options
            .split(',')
            .any(|o| o == controller)
            .then(|| Path::new(before.split(' ').nth(4).unwrap_or("")).to_path_buf())
    })
}
