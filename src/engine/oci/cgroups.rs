//! The runtime's one adapter to the kernel floor's cgroups
//! (`kernel::cgroups`), so that the lead can switch it to the new cgroup
//! trait at merge. What the OCI runtime needs, beyond today's API (which
//! makes `container-lab/NAME` beneath the caller's cgroup with fixed
//! controllers):
//!
//! 1. a cgroup at an arbitrary path, one directory per mounted v1
//!    hierarchy (every controller the host has) or one v2 directory,
//!    beneath the caller's own cgroup (runc's rule for relative
//!    `cgroupsPath`; an absolute one must lie inside it too), naming each
//!    directory to be made before making it;
//! 2. every `linux.resources` field written to its v1 or v2 file;
//! 3. the device allow-list (`devices::DeviceRule`, `Cgroup::allow_devices`
//!    today, the v2 BPF program in `device_filter`);
//! 4. joining (a PID into cgroup.procs), listing the PIDs, freezing
//!    (`set_frozen`, `is_frozen`), and removing only what was made,
//!    deepest first, after killing what is left.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::OciError;
use crate::kernel::cgroups::devices::{Access, DeviceKind, DeviceRule};
use crate::kernel::cgroups::{self as kcg, CgroupError, Layout, CGROUP_ROOT};
use crate::support::error::io_err;

/// A container's cgroup: its directory in each hierarchy.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub version: u8,
    /// (controllers of the hierarchy, the container's directory).
    pub dirs: Vec<(Vec<String>, PathBuf)>,
    /// The directories that do not exist yet, parents first.
    pub missing: Vec<PathBuf>,
}

impl Plan {
    pub fn leaves(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, d)| d.clone()).collect()
    }

    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| self.version == 2 || c.iter().any(|n| n == controller))
            .map(|(_, d)| d.as_path())
    }
}

/// Where `cgroups_path` puts the container in every hierarchy: beneath the
/// caller's own cgroup there. `None` (no cgroupsPath) is the ID itself.
pub fn plan(cgroups_path: Option<&Path>, id: &str, systemd: bool) -> Result<Plan, OciError> {
    let wanted = match cgroups_path {
        Some(p) if systemd || is_systemd_form(p) => systemd_path(p)?,
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(id),
    };
    if wanted
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(OciError::invalid(
            "linux.cgroupsPath",
            format!("{} climbs with '..'", wanted.display()),
        ));
    }
    let layout = kcg::detect_layout()?;
    let mut plan = Plan {
        version: if layout == Layout::Unified { 2 } else { 1 },
        ..Plan::default()
    };
    let hierarchies = match layout {
        Layout::Unified => vec![(vec![], PathBuf::from(CGROUP_ROOT), None)],
        _ => v1_hierarchies()?,
    };
    // Our own cgroups, read once: `ID:controllers:path` lines.
    let own_lines =
        fs::read_to_string("/proc/self/cgroup").map_err(io_err("read", "/proc/self/cgroup"))?;
    let own_of = |name: Option<&str>| -> Result<PathBuf, OciError> {
        own_lines
            .lines()
            .find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                let matches = match name {
                    None => controllers.is_empty(),
                    Some(wanted) => controllers.split(',').any(|c| c == wanted),
                };
                matches.then(|| PathBuf::from(path.trim_start_matches('/')))
            })
            .ok_or_else(|| CgroupError::NotInHierarchy(name.unwrap_or("v2").to_string()).into())
    };
    for (controllers, mount, name) in hierarchies {
        let own = own_of(name.as_deref())?;
        let own_dir = mount.join(&own);
        let dir = if wanted.is_absolute() {
            // Absolute: from the hierarchy's root, but only inside our own.
            let dir = mount.join(wanted.strip_prefix("/").unwrap_or(&wanted));
            if !dir.starts_with(&own_dir) || dir == own_dir {
                return Err(OciError::unsupported(
                    "linux.cgroupsPath",
                    format!(
                        "{} is outside the runtime's own cgroup /{} (in {}); use a relative path, or an absolute one beneath it (podman: --cgroup-parent)",
                        wanted.display(),
                        own.display(),
                        mount.display()
                    ),
                ));
            }
            dir
        } else {
            own_dir.join(&wanted)
        };
        let mut missing = Vec::new();
        let mut at = dir.clone();
        while !at.exists() && at != own_dir {
            missing.push(at.clone());
            if !at.pop() {
                break;
            }
        }
        missing.reverse();
        plan.missing.extend(missing);
        plan.dirs.push((controllers, dir));
    }
    Ok(plan)
}

fn is_systemd_form(path: &Path) -> bool {
    let text = path.to_string_lossy();
    !text.starts_with('/') && text.matches(':').count() == 2
}

/// `slice:prefix:name` (`--systemd-cgroup`) as the path systemd would
/// make: `SLICE/PREFIX-NAME.scope`. lab-runc has no systemd manager: it
/// makes the same directories itself, beneath its own cgroup.
fn systemd_path(path: &Path) -> Result<PathBuf, OciError> {
    let text = path.to_string_lossy();
    let parts: Vec<&str> = text.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(OciError::invalid(
            "linux.cgroupsPath",
            format!("{text} is not slice:prefix:name, as --systemd-cgroup needs"),
        ));
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    Ok(PathBuf::from(slice).join(format!("{prefix}-{name}.scope")))
}

/// Every mounted v1 hierarchy: its controllers, its mount point, and the
/// controller naming it in /proc/self/cgroup. Named hierarchies (systemd's)
/// are left alone.
/// A hierarchy: its controllers, its mount point, the controller that
/// names it in /proc/self/cgroup (`None`: cgroup v2).
type Hierarchy = (Vec<String>, PathBuf, Option<String>);

fn v1_hierarchies() -> Result<Vec<Hierarchy>, OciError> {
    let text = fs::read_to_string("/proc/self/mountinfo")
        .map_err(io_err("read", "/proc/self/mountinfo"))?;
    let mut found: Vec<Hierarchy> = Vec::new();
    for line in text.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let mut tail = after.split(' ');
        if tail.next() != Some("cgroup") {
            continue;
        }
        let options = tail.nth(1).unwrap_or("");
        let known = [
            "cpuset",
            "cpu",
            "cpuacct",
            "memory",
            "devices",
            "freezer",
            "net_cls",
            "net_prio",
            "blkio",
            "perf_event",
            "hugetlb",
            "pids",
            "rdma",
            "misc",
        ];
        let controllers: Vec<String> = options
            .split(',')
            .filter(|o| known.contains(o))
            .map(String::from)
            .collect();
        if controllers.is_empty() {
            continue;
        }
        let mount = PathBuf::from(before.split(' ').nth(4).unwrap_or(""));
        if found.iter().any(|(_, m, _)| *m == mount) {
            continue;
        }
        let first = controllers[0].clone();
        found.push((controllers, mount, Some(first)));
    }
    Ok(found)
}

/// Makes the missing directories, parents first (a new v1 cpuset gets its
/// parent's CPUs and memory nodes; a v2 parent hands its controllers down).
pub fn create(plan: &Plan) -> Result<(), OciError> {
    if plan.version == 2 {
        for (_, leaf) in &plan.dirs {
            enable_v2_controllers(leaf)?;
        }
    }
    for dir in &plan.missing {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create the cgroup", dir)(e).into()),
        }
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let path = dir.join(file);
            if plan.version == 1 && path.exists() {
                let parent = dir.parent().unwrap_or(dir).join(file);
                let value = fs::read_to_string(&parent).unwrap_or_default();
                write(&path, value.trim())?;
            }
        }
    }
    // A leaf that was already there must be empty: never two containers in one.
    for leaf in plan.leaves() {
        if !plan.missing.contains(&leaf) && !pids_in(&leaf).is_empty() {
            return Err(OciError::Other(format!(
                "cgroup {} is in use by other processes; give the container a cgroupsPath of its own",
                leaf.display()
            )));
        }
    }
    Ok(())
}

/// `echo +CONTROLLER > cgroup.subtree_control` from our own cgroup down
/// to the leaf's parent, for every controller the parent has.
fn enable_v2_controllers(leaf: &Path) -> Result<(), OciError> {
    let own = Path::new(CGROUP_ROOT).join(kcg::own_path(None)?);
    let mut chain = Vec::new();
    let mut at = leaf.parent().map(Path::to_path_buf);
    while let Some(dir) = at {
        if !dir.starts_with(&own) {
            break;
        }
        chain.push(dir.clone());
        at = dir.parent().map(Path::to_path_buf);
    }
    chain.reverse();
    for dir in chain {
        if !dir.exists() {
            fs::create_dir(&dir).map_err(io_err("create the cgroup", &dir))?;
        }
        let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let enabled = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        let missing: Vec<String> = available
            .split_whitespace()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            write(&dir.join("cgroup.subtree_control"), &missing.join(" ")).map_err(|e| {
                OciError::Other(format!(
                    "{e}; on cgroup v2 a cgroup that hands controllers down may hold no processes: run lab-runc from a cgroup of its own"
                ))
            })?;
        }
    }
    Ok(())
}

/// On cgroup v1 the first write to any cgroup.procs after a quiet spell
/// waits for an RCU grace period (the kernel's cgroup_threadgroup_rwsem
/// switching its readers to the slow path): milliseconds. A helper
/// process starts that wait as soon as the cgroup exists, by joining it
/// (and leaving at once), so that the init's own join, a moment later,
/// finds it over or half over. Reaped when dropped.
#[derive(Debug)]
pub struct Warm(Option<nix::unistd::Pid>);

impl Warm {
    pub fn start(plan: &Plan) -> Warm {
        let Some(leaf) = plan.dirs.first().map(|(_, d)| d.join("cgroup.procs")) else {
            return Warm(None);
        };
        if plan.version != 1 {
            return Warm(None);
        }
        let Ok(path) = std::ffi::CString::new(leaf.as_os_str().as_encoded_bytes()) else {
            return Warm(None);
        };
        crate::kernel::process::flush_stdio();
        // Safety: lab-runc is single-threaded; the child makes three
        // system calls and leaves.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::write(fd, b"0".as_ptr().cast(), 1);
                }
                libc::_exit(0)
            },
            Ok(nix::unistd::ForkResult::Parent { child }) => Warm(Some(child)),
            Err(_) => Warm(None),
        }
    }
}

impl Drop for Warm {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// Moves `pid` into the container's cgroup, in every hierarchy.
pub fn join(plan_leaves: &[PathBuf], pid: i32) -> Result<(), OciError> {
    for dir in plan_leaves {
        write(&dir.join("cgroup.procs"), &pid.to_string())?;
    }
    Ok(())
}

/// The PIDs in the container's cgroup (host numbering).
pub fn pids(leaves: &[PathBuf]) -> Vec<i32> {
    leaves.first().map(|d| pids_in(d)).unwrap_or_default()
}

fn pids_in(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

pub fn is_frozen(leaves: &[PathBuf]) -> bool {
    kcg::is_frozen(leaves).unwrap_or(false)
}

pub fn set_frozen(leaves: &[PathBuf], frozen: bool) -> Result<(), OciError> {
    kcg::set_frozen(leaves, frozen).map_err(|e| match e {
        CgroupError::NoFreezer => OciError::Other(
            "this container's cgroup has no freezer (no freezer hierarchy on this host)".into(),
        ),
        other => other.into(),
    })
}

/// Kills what is left in the container's cgroup, then removes the
/// directories lab-runc made, deepest first. Never one it did not make.
pub fn remove(leaves: &[PathBuf], made: &[PathBuf]) -> Result<(), OciError> {
    // A frozen process cannot die: thaw first.
    if is_frozen(leaves) {
        let _ = kcg::set_frozen(leaves, false);
    }
    for _ in 0..500 {
        let left: Vec<i32> = leaves.iter().flat_map(|d| pids_in(d)).collect();
        if left.is_empty() {
            break;
        }
        for pid in left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    for dir in made.iter().rev() {
        remove_dir_retrying(dir)?;
    }
    Ok(())
}

fn remove_dir_retrying(dir: &Path) -> Result<(), OciError> {
    // Busy for a moment after the last process left: retry often, briefly.
    for _ in 0..15_000 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_micros(100))
            }
            Err(e) => return Err(io_err("remove the cgroup", dir)(e).into()),
        }
    }
    Err(OciError::Other(format!(
        "cgroup {} is still busy; remove it with rmdir once its processes are gone",
        dir.display()
    )))
}

fn write(path: &Path, value: &str) -> Result<(), OciError> {
    fs::write(path, value)
        .map_err(|e| io_err(&format!("write {value:?} to"), path)(e))
        .map_err(OciError::from)
}

/// Writes every field of `linux.resources` to its file; a field this host
/// has no file for is refused, naming both.
pub fn apply(plan: &Plan, resources: &LinuxResources) -> Result<(), OciError> {
    let set = |controller: &str, file: &str, value: String, field: &str| {
        let Some(dir) = plan.dir_of(controller) else {
            return Err(OciError::unsupported(
                field,
                format!("this host has no {controller} cgroup hierarchy"),
            ));
        };
        let path = dir.join(file);
        if !path.exists() {
            return Err(OciError::unsupported(
                field,
                format!(
                    "this kernel has no {} (cgroup v{})",
                    path.display(),
                    plan.version
                ),
            ));
        }
        write(&path, &value)
    };
    let v2 = plan.version == 2;
    if let Some(memory) = resources.memory() {
        let limit = memory.limit();
        if v2 {
            if let Some(limit) = limit {
                set(
                    "memory",
                    "memory.max",
                    max_or(limit),
                    "linux.resources.memory.limit",
                )?;
            }
            if let Some(low) = memory.reservation() {
                set(
                    "memory",
                    "memory.low",
                    max_or(low),
                    "linux.resources.memory.reservation",
                )?;
            }
            if let Some(swap) = memory.swap() {
                // v1's swap is memory plus swap; v2's swap.max is swap alone.
                let value = match (swap, limit) {
                    (s, _) if s < 0 => "max".to_string(),
                    (s, Some(l)) if l > 0 => s.saturating_sub(l).max(0).to_string(),
                    (s, _) => s.to_string(),
                };
                set(
                    "memory",
                    "memory.swap.max",
                    value,
                    "linux.resources.memory.swap",
                )?;
            }
            if memory.kernel().is_some() || memory.kernel_tcp().is_some() {
                return Err(OciError::unsupported(
                    "linux.resources.memory.kernel",
                    "cgroup v2 has no kernel memory limit",
                ));
            }
            if memory.swappiness().is_some() {
                return Err(OciError::unsupported(
                    "linux.resources.memory.swappiness",
                    "cgroup v2 has no per-cgroup swappiness",
                ));
            }
            if memory.disable_oom_killer() == Some(true) {
                return Err(OciError::unsupported(
                    "linux.resources.memory.disableOOMKiller",
                    "cgroup v2 cannot switch the OOM killer off",
                ));
            }
        } else {
            // memsw must never be below the limit: the order matters.
            if let Some(limit) = limit {
                let _ = fs::write(
                    plan.dir_of("memory")
                        .unwrap_or(Path::new("/"))
                        .join("memory.memsw.limit_in_bytes"),
                    "-1",
                );
                set(
                    "memory",
                    "memory.limit_in_bytes",
                    limit.to_string(),
                    "linux.resources.memory.limit",
                )?;
            }
            if let Some(swap) = memory.swap() {
                set(
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    swap.to_string(),
                    "linux.resources.memory.swap",
                )?;
            }
            if let Some(low) = memory.reservation() {
                set(
                    "memory",
                    "memory.soft_limit_in_bytes",
                    low.to_string(),
                    "linux.resources.memory.reservation",
                )?;
            }
            if let Some(kernel) = memory.kernel() {
                set(
                    "memory",
                    "memory.kmem.limit_in_bytes",
                    kernel.to_string(),
                    "linux.resources.memory.kernel",
                )?;
            }
            if let Some(tcp) = memory.kernel_tcp() {
                set(
                    "memory",
                    "memory.kmem.tcp.limit_in_bytes",
                    tcp.to_string(),
                    "linux.resources.memory.kernelTCP",
                )?;
            }
            if let Some(swappiness) = memory.swappiness() {
                set(
                    "memory",
                    "memory.swappiness",
                    swappiness.to_string(),
                    "linux.resources.memory.swappiness",
                )?;
            }
            if let Some(off) = memory.disable_oom_killer() {
                set(
                    "memory",
                    "memory.oom_control",
                    u8::from(off).to_string(),
                    "linux.resources.memory.disableOOMKiller",
                )?;
            }
            if let Some(hierarchy) = memory.use_hierarchy() {
                set(
                    "memory",
                    "memory.use_hierarchy",
                    u8::from(hierarchy).to_string(),
                    "linux.resources.memory.useHierarchy",
                )?;
            }
        }
    }
    if let Some(cpu) = resources.cpu() {
        if let Some(cpus) = cpu.cpus() {
            set(
                "cpuset",
                "cpuset.cpus",
                cpus.clone(),
                "linux.resources.cpu.cpus",
            )?;
        }
        if let Some(mems) = cpu.mems() {
            set(
                "cpuset",
                "cpuset.mems",
                mems.clone(),
                "linux.resources.cpu.mems",
            )?;
        }
        if v2 {
            if let Some(shares) = cpu.shares() {
                // runc's conversion of shares [2, 262144] to weight [1, 10000].
                let weight = 1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142;
                set(
                    "cpu",
                    "cpu.weight",
                    weight.to_string(),
                    "linux.resources.cpu.shares",
                )?;
            }
            if cpu.quota().is_some() || cpu.period().is_some() {
                let quota = cpu
                    .quota()
                    .filter(|q| *q > 0)
                    .map_or("max".to_string(), |q| q.to_string());
                let period = cpu.period().unwrap_or(100_000);
                set(
                    "cpu",
                    "cpu.max",
                    format!("{quota} {period}"),
                    "linux.resources.cpu.quota",
                )?;
            }
            if cpu.realtime_runtime().is_some() || cpu.realtime_period().is_some() {
                return Err(OciError::unsupported(
                    "linux.resources.cpu.realtimeRuntime",
                    "cgroup v2 has no real-time CPU limits",
                ));
            }
        } else {
            if let Some(shares) = cpu.shares() {
                set(
                    "cpu",
                    "cpu.shares",
                    shares.to_string(),
                    "linux.resources.cpu.shares",
                )?;
            }
            if let Some(period) = cpu.period() {
                set(
                    "cpu",
                    "cpu.cfs_period_us",
                    period.to_string(),
                    "linux.resources.cpu.period",
                )?;
            }
            if let Some(quota) = cpu.quota() {
                set(
                    "cpu",
                    "cpu.cfs_quota_us",
                    quota.to_string(),
                    "linux.resources.cpu.quota",
                )?;
            }
            if let Some(period) = cpu.realtime_period() {
                set(
                    "cpu",
                    "cpu.rt_period_us",
                    period.to_string(),
                    "linux.resources.cpu.realtimePeriod",
                )?;
            }
            if let Some(runtime) = cpu.realtime_runtime() {
                set(
                    "cpu",
                    "cpu.rt_runtime_us",
                    runtime.to_string(),
                    "linux.resources.cpu.realtimeRuntime",
                )?;
            }
        }
        if let Some(idle) = cpu.idle() {
            set(
                "cpu",
                "cpu.idle",
                idle.to_string(),
                "linux.resources.cpu.idle",
            )?;
        }
        if let Some(burst) = cpu.burst() {
            let file = if v2 {
                "cpu.max.burst"
            } else {
                "cpu.cfs_burst_us"
            };
            set("cpu", file, burst.to_string(), "linux.resources.cpu.burst")?;
        }
    }
    if let Some(pids) = resources.pids() {
        let limit = if pids.limit() > 0 {
            pids.limit().to_string()
        } else {
            "max".into()
        };
        set("pids", "pids.max", limit, "linux.resources.pids.limit")?;
    }
    if let Some(blkio) = resources.block_io() {
        apply_blkio(plan, blkio, &set)?;
    }
    if let Some(limits) = resources.hugepage_limits() {
        for limit in limits {
            let file = if v2 {
                format!("hugetlb.{}.max", limit.page_size())
            } else {
                format!("hugetlb.{}.limit_in_bytes", limit.page_size())
            };
            set(
                "hugetlb",
                &file,
                limit.limit().to_string(),
                "linux.resources.hugepageLimits",
            )?;
        }
    }
    if let Some(network) = resources.network() {
        if v2 {
            return Err(OciError::unsupported(
                "linux.resources.network",
                "cgroup v2 has no net_cls or net_prio controller",
            ));
        }
        if let Some(class) = network.class_id() {
            set(
                "net_cls",
                "net_cls.classid",
                class.to_string(),
                "linux.resources.network.classID",
            )?;
        }
        for priority in network.priorities().iter().flatten() {
            set(
                "net_prio",
                "net_prio.ifpriomap",
                format!("{} {}", priority.name(), priority.priority()),
                "linux.resources.network.priorities",
            )?;
        }
    }
    if resources.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(OciError::unsupported(
            "linux.resources.rdma",
            "no rdma controller support",
        ));
    }
    if let Some(unified) = resources.unified() {
        if !v2 {
            return Err(OciError::unsupported(
                "linux.resources.unified",
                "it names cgroup v2 files, and this host runs cgroup v1",
            ));
        }
        for (key, value) in unified {
            if key.contains('/') || key.starts_with('.') || key.starts_with("cgroup.") {
                return Err(OciError::invalid(
                    "linux.resources.unified",
                    format!("{key} is not a controller file"),
                ));
            }
            let controller = key.split('.').next().unwrap_or("");
            set(controller, key, value.clone(), "linux.resources.unified")?;
        }
    }
    Ok(())
}

/// Writes one value to a controller's file, naming the field on failure.
type Setter<'a> = dyn Fn(&str, &str, String, &str) -> Result<(), OciError> + 'a;

fn apply_blkio(
    plan: &Plan,
    blkio: &oci_spec::runtime::LinuxBlockIo,
    set: &Setter<'_>,
) -> Result<(), OciError> {
    let v2 = plan.version == 2;
    let weight_file = |bfq: &str, plain: &str| -> String {
        let dir = plan.dir_of(if v2 { "io" } else { "blkio" });
        match dir {
            Some(d) if d.join(bfq).exists() => bfq.to_string(),
            _ => plain.to_string(),
        }
    };
    if let Some(weight) = blkio.weight() {
        let (file, controller) = if v2 {
            (weight_file("io.bfq.weight", "io.weight"), "io")
        } else {
            (weight_file("blkio.bfq.weight", "blkio.weight"), "blkio")
        };
        set(
            controller,
            &file,
            weight.to_string(),
            "linux.resources.blockIO.weight",
        )?;
    }
    if let Some(weight) = blkio.leaf_weight() {
        if v2 {
            return Err(OciError::unsupported(
                "linux.resources.blockIO.leafWeight",
                "cgroup v2 has no leaf weight",
            ));
        }
        set(
            "blkio",
            "blkio.leaf_weight",
            weight.to_string(),
            "linux.resources.blockIO.leafWeight",
        )?;
    }
    for device in blkio.weight_device().iter().flatten() {
        let (maj, min) = (device.major(), device.minor());
        if let Some(weight) = device.weight() {
            let (file, controller) = if v2 {
                (weight_file("io.bfq.weight", "io.weight"), "io")
            } else {
                (
                    weight_file("blkio.bfq.weight_device", "blkio.weight_device"),
                    "blkio",
                )
            };
            set(
                controller,
                &file,
                format!("{maj}:{min} {weight}"),
                "linux.resources.blockIO.weightDevice",
            )?;
        }
        if let Some(weight) = device.leaf_weight() {
            if v2 {
                return Err(OciError::unsupported(
                    "linux.resources.blockIO.weightDevice.leafWeight",
                    "cgroup v2 has no leaf weight",
                ));
            }
            set(
                "blkio",
                "blkio.leaf_weight_device",
                format!("{maj}:{min} {weight}"),
                "linux.resources.blockIO.weightDevice.leafWeight",
            )?;
        }
    }
    let throttles = [
        (
            blkio.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
            "throttleReadBpsDevice",
        ),
        (
            blkio.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
            "throttleWriteBpsDevice",
        ),
        (
            blkio.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
            "throttleReadIOPSDevice",
        ),
        (
            blkio.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
            "throttleWriteIOPSDevice",
        ),
    ];
    for (devices, v1_file, v2_key, field) in throttles {
        let field = format!("linux.resources.blockIO.{field}");
        for device in devices.iter().flatten() {
            let (maj, min, rate) = (device.major(), device.minor(), device.rate());
            if v2 {
                set(
                    "io",
                    "io.max",
                    format!("{maj}:{min} {v2_key}={rate}"),
                    &field,
                )?;
            } else {
                set("blkio", v1_file, format!("{maj}:{min} {rate}"), &field)?;
            }
        }
    }
    Ok(())
}

fn max_or(value: i64) -> String {
    if value < 0 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

/// The device allow-list: the spec's `linux.resources.devices`, in order
/// (later entries win), then what every container may use whatever the
/// list says (runc's: the devices it makes in /dev, the terminals, mknod)
/// and the nodes of `linux.devices`.
pub fn apply_devices(
    plan: &Plan,
    rules: &[LinuxDeviceCgroup],
    nodes: &[oci_spec::runtime::LinuxDevice],
) -> Result<(), OciError> {
    let mut list = Vec::new();
    for rule in rules {
        list.push(device_rule(rule)?);
    }
    list.extend_from_slice(&crate::kernel::cgroups::devices::DOCKER_DEFAULT[1..]);
    for node in nodes {
        let kind = match node.typ() {
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            _ => continue,
        };
        let (Ok(major), Ok(minor)) = (u32::try_from(node.major()), u32::try_from(node.minor()))
        else {
            continue;
        };
        list.push(DeviceRule::allow(kind, major, Some(minor), Access::RWM));
    }
    if plan.version == 2 {
        let leaf = plan.leaves().into_iter().next().unwrap_or_default();
        // The BPF program decides by the last matching rule, as v1 does.
        crate::kernel::cgroups::device_filter::attach(&leaf, &list)?;
        return Ok(());
    }
    let Some(dir) = plan.dir_of("devices") else {
        return Err(OciError::unsupported(
            "linux.resources.devices",
            "this host has no devices cgroup hierarchy",
        ));
    };
    for (file, line) in list.iter().flat_map(DeviceRule::v1_lines) {
        write(&dir.join(file), &line)?;
    }
    Ok(())
}

fn device_rule(rule: &LinuxDeviceCgroup) -> Result<DeviceRule, OciError> {
    let field = "linux.resources.devices";
    let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => DeviceKind::All,
        LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
        LinuxDeviceType::B => DeviceKind::Block,
        LinuxDeviceType::P => {
            return Err(OciError::unsupported(
                field,
                "type p (fifo) has no cgroup rule",
            ))
        }
    };
    let number = |n: Option<i64>| -> Result<Option<u32>, OciError> {
        match n {
            None => Ok(None),
            Some(n) if n < 0 => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| OciError::invalid(field, format!("device number {n} is too large"))),
        }
    };
    let access: Access = match rule.access().as_deref() {
        None | Some("") => Access::RWM,
        Some(text) => text
            .parse()
            .map_err(|e: String| OciError::invalid(field, e))?,
    };
    Ok(DeviceRule {
        allow: rule.allow(),
        kind,
        major: number(rule.major())?,
        minor: number(rule.minor())?,
        access,
    })
}
