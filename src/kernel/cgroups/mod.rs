//! cgroups: limits and accounting for a group of processes.
//!
//! A cgroup is a directory in a special filesystem; the processes listed in
//! its `cgroup.procs` are accounted and limited by the files beside it. Two
//! versions exist side by side: cgroup v1 has one hierarchy (mount) per
//! controller, with files such as `memory.limit_in_bytes`; cgroup v2 has a
//! single hierarchy with files such as `memory.max`. Ubuntu 22.04 and later
//! boot with v2 only; older or differently configured hosts use v1, or a
//! "hybrid" of both where the v2 hierarchy holds few or no controllers.
//!
//! The lab decides by looking (statfs, in `detect_layout`, the one place
//! that tells the versions apart), never by guessing from the distribution,
//! and always creates its cgroups beneath the cgroup it runs in.
//!
//! The code is in three parts:
//! - this file: the `Version` trait, the `Cgroup` a caller holds, and the
//!   resources model (`Resources`), in Docker's and the OCI spec's terms;
//! - `v1.rs` and `v2.rs`: the two implementations of `Version`, which know
//!   where a controller's files are (a hierarchy each, or one directory);
//! - one file per controller (`memory`, `cpu`, `pids`, `io`, `freezer`,
//!   `devices`): its settings, its counters, and its files and value
//!   formats in each version. No file name leaves this module.

pub mod device_filter;
pub mod devices;
pub mod view;

mod cpu;
mod freezer;
mod io;
mod memory;
mod pids;
mod v1;
mod v2;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::support::error::IoError;
use crate::support::fs::read_kernel_file;

pub use cpu::{Cpu, CpuStats};
pub use devices::DeviceRule;
pub use io::{
    block_device, parse_blkio_weight, parse_bytes_per_second, parse_device_bps, parse_device_iops,
    DeviceNumber, Io, IoStats, Throttle, ThrottleSpec,
};
pub use memory::{Memory, MemoryStats};
pub use pids::{Pids, PidsStats};

/// The root of the cgroup filesystems.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The directory beneath our own cgroup that holds the lab's cgroups.
const LAB_PARENT: &str = "container-lab";

/// How the host mounts its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only cgroup v2, mounted at /sys/fs/cgroup.
    Unified,
    /// v1 hierarchies, plus a v2 mount at /sys/fs/cgroup/unified.
    Hybrid,
    /// v1 hierarchies only.
    Legacy,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Layout::Unified => "cgroup v2 only (unified): one hierarchy at /sys/fs/cgroup",
            Layout::Hybrid => {
                "hybrid: cgroup v1 hierarchies, plus a v2 mount at /sys/fs/cgroup/unified"
            }
            Layout::Legacy => "cgroup v1 only: one hierarchy per controller",
        }
    }
}

/// Tells the layouts apart by the filesystem types the kernel reports.
// ANCHOR: detect
pub fn detect_layout() -> Result<Layout, CgroupError> {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    let root = statfs(CGROUP_ROOT)
        .map_err(|errno| CgroupError::io("statfs", CGROUP_ROOT, errno.into()))?;
    if root.filesystem_type() == CGROUP2_SUPER_MAGIC {
        return Ok(Layout::Unified);
    }
    let unified = Path::new(CGROUP_ROOT).join("unified");
    match statfs(&unified) {
        Ok(fs) if fs.filesystem_type() == CGROUP2_SUPER_MAGIC => Ok(Layout::Hybrid),
        _ => Ok(Layout::Legacy),
    }
}
// ANCHOR_END: detect

/// The version the lab uses on this host: v2 where it is the only one,
/// v1 otherwise (a hybrid host's v2 mount holds no controllers).
pub fn this_host() -> Result<Box<dyn Version>, CgroupError> {
    Ok(match detect_layout()? {
        Layout::Unified => Box::new(v2::V2),
        Layout::Hybrid | Layout::Legacy => Box::new(v1::V1::from_mountinfo()?),
    })
}

/// What differs between cgroup v1 and v2, behind one interface. `dirs` are
/// one cgroup's directories: one per hierarchy on v1, the one on v2. Each
/// implementation asks the controllers' own files (`memory.rs`, `cpu.rs` …)
/// for that version's file names and formats.
// ANCHOR: version
pub trait Version: fmt::Debug + Send + Sync {
    /// 1 or 2.
    fn number(&self) -> u8;
    /// Where `create` puts cgroup `name`, without making anything.
    fn planned(&self, name: &str, controllers: &[Controller]) -> Result<Vec<PathBuf>, CgroupError>;
    /// Makes `container-lab/NAME` beneath our own cgroup, with `controllers`.
    fn create(&self, name: &str, controllers: &[Controller]) -> Result<Vec<PathBuf>, CgroupError>;
    /// Whether `controller` is available to the cgroup in `dirs`.
    fn has(&self, dirs: &[PathBuf], controller: Controller) -> bool;
    /// Writes what `resources` asks for; returns what it wrote, in order.
    fn set(&self, dirs: &[PathBuf], resources: &Resources) -> Result<Vec<Written>, CgroupError>;
    /// The kernel's counters.
    fn stats(&self, dirs: &[PathBuf]) -> Stats;
    /// Whether the freezer holds the cgroup's processes (`None`: no freezer).
    fn is_frozen(&self, dirs: &[PathBuf]) -> Option<bool>;
    /// The caller's own cgroup in each hierarchy of `controllers`: where
    /// an OCI runtime's cgroup path starts (runc's rule), not the lab's
    /// `container-lab/NAME`.
    fn own(&self, controllers: &[Controller]) -> Result<Vec<Hierarchy>, CgroupError>;
    /// Makes `dir` (nothing if it is there) beneath a cgroup that exists:
    /// on v2 its parent hands `controllers` down first, on v1 a new cpuset
    /// gets its parent's CPUs and memory nodes.
    fn make(&self, dir: &Path, controllers: &[Controller]) -> Result<(), CgroupError>;
}
// ANCHOR_END: version

/// One hierarchy the caller is in: where it is mounted, and the caller's
/// own cgroup directory in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount: PathBuf,
    pub own: PathBuf,
}

/// The controllers the lab uses. On v1 the CPU controller spans the `cpu`,
/// `cpuacct` and `cpuset` hierarchies, and `Io` is the `blkio` hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Cpu,
    Pids,
    Io,
    Freezer,
    Devices,
}

impl Controller {
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
            Controller::Io => "io",
            Controller::Freezer => "freezer",
            Controller::Devices => "devices",
        }
    }
}

/// The controllers that limit resources: what a chapter's cgroup gets.
pub const RESOURCE_CONTROLLERS: &[Controller] = &[
    Controller::Cpu,
    Controller::Memory,
    Controller::Pids,
    Controller::Io,
];

/// Every controller: what a container of the engine gets (`docker pause`
/// needs the freezer, the device allow-list the devices controller).
pub const ALL_CONTROLLERS: &[Controller] = &[
    Controller::Cpu,
    Controller::Memory,
    Controller::Pids,
    Controller::Io,
    Controller::Freezer,
    Controller::Devices,
];

/// One value of a limit: a number, or none ("max" on v2, -1 on v1). From
/// the OCI spec's integers: a negative one is `Unlimited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    Unlimited,
    At(u64),
}

impl Limit {
    pub fn from_oci(value: i64) -> Limit {
        u64::try_from(value).map_or(Limit::Unlimited, Limit::At)
    }

    /// The number, with `Unlimited` as the largest.
    pub fn number(self) -> u64 {
        match self {
            Limit::Unlimited => u64::MAX,
            Limit::At(n) => n,
        }
    }

    /// v2's spelling: the number, or `max`.
    fn v2(self) -> String {
        match self {
            Limit::Unlimited => "max".into(),
            Limit::At(n) => n.to_string(),
        }
    }

    /// v1's spelling: the number, or `-1`.
    fn v1(self) -> String {
        match self {
            Limit::Unlimited => "-1".into(),
            Limit::At(n) => n.to_string(),
        }
    }

    /// What a file holds: `max`, or v1's largest page-aligned number.
    fn parse(text: &str) -> Option<Limit> {
        match text.trim() {
            "max" | "-1" => Some(Limit::Unlimited),
            n => n.parse().ok().map(|n: u64| {
                if n >= 1 << 62 {
                    Limit::Unlimited
                } else {
                    Limit::At(n)
                }
            }),
        }
    }
}

/// What a container may use: the union of what Docker's `run` flags and
/// the OCI spec's `linux.resources` can ask for. Each `None` (or empty
/// list) leaves that setting as the kernel has it.
///
/// From OCI's `LinuxResources`: `memory.{limit,reservation,swap}`,
/// `cpu.{shares,quota,period,cpus,mems}`, `pids.limit`,
/// `blockIO.{weight,throttle*Device}` and `devices` map field by field
/// onto the same names here; a negative number is `Limit::Unlimited`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub memory: Memory,
    #[serde(default)]
    pub cpu: Cpu,
    #[serde(default)]
    pub pids: Pids,
    #[serde(default)]
    pub io: Io,
    /// The device allow-list, in order (a later rule wins over an earlier).
    #[serde(default)]
    pub devices: Option<Vec<DeviceRule>>,
    /// Frozen (`docker pause`) or thawed.
    #[serde(default)]
    pub frozen: Option<bool>,
}

/// The limits in Docker's own terms (`docker run -m 32m --cpus 0.5 …`), as
/// a run configuration stores them; `resources()` turns them into the
/// kernel's. `None` (or an empty list) is Docker's default: no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// CPU time per period, as a fraction of one CPU (0.2 = 20 ms per 100 ms).
    pub cpus: Option<f64>,
    pub pids: Option<u64>,
    /// `--blkio-weight`, 10 to 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_weight: Option<u16>,
    /// `--device-read-bps PATH:RATE`, bytes per second.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<ThrottleSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<ThrottleSpec>,
    /// `--device-read-iops PATH:RATE`, operations per second.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<ThrottleSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<ThrottleSpec>,
    /// Memory and swap together (`--memory-swap`; mini-docker's default is
    /// twice the memory, as Docker's). `None`: no swap at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<Limit>,
    /// `--memory-reservation`: a soft limit, reclaimed down to under pressure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<u64>,
    /// `--cpu-shares`: the weight against sibling cgroups (1024 the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`: the CPUs it may run on ("0-1", "0,2").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<String>,
}

/// The CFS period Docker uses with `--cpus`: 100 ms.
pub const CPU_PERIOD_US: u64 = 100_000;

impl Limits {
    /// What Docker's daemon makes of its flags. A memory limit allows only
    /// the swap `memory_swap` says (none without it: the chapters' choice,
    /// so that the OOM killer, not swapping, shows the limit). Device paths are looked up now: a device gone since the
    /// flags were checked is an error naming it.
    pub fn resources(&self) -> Result<Resources, CgroupError> {
        let throttles = |specs: &[ThrottleSpec]| -> Result<Vec<Throttle>, CgroupError> {
            specs.iter().map(ThrottleSpec::resolve).collect()
        };
        Ok(Resources {
            memory: Memory {
                limit: self.memory_bytes.map(Limit::At),
                swap: self
                    .memory_swap
                    .or(self.memory_bytes.map(Limit::At))
                    .filter(|_| self.memory_bytes.is_some()),
                reservation: self.memory_reservation.map(Limit::At),
            },
            cpu: Cpu {
                shares: self.cpu_shares,
                quota: self
                    .cpus
                    .map(|cpus| Limit::At((cpus * CPU_PERIOD_US as f64) as u64)),
                period: self.cpus.map(|_| CPU_PERIOD_US),
                cpus: self.cpuset_cpus.clone(),
                ..Cpu::default()
            },
            pids: Pids {
                limit: self.pids.map(Limit::At),
            },
            io: Io {
                weight: self.blkio_weight,
                read_bps: throttles(&self.device_read_bps)?,
                write_bps: throttles(&self.device_write_bps)?,
                read_iops: throttles(&self.device_read_iops)?,
                write_iops: throttles(&self.device_write_iops)?,
            },
            ..Resources::default()
        })
    }
}

/// The kernel's own counters, read back from the cgroup's files; what
/// `docker stats` shows. `None` where this kernel does not report one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub memory: MemoryStats,
    pub cpu: CpuStats,
    pub pids: PidsStats,
    /// One entry per device the cgroup has done I/O on.
    pub io: Vec<IoStats>,
}

impl Stats {
    /// The I/O counters of one device (zero when it saw no I/O yet).
    pub fn io_of(&self, device: DeviceNumber) -> IoStats {
        self.io
            .iter()
            .find(|s| s.device == device)
            .copied()
            .unwrap_or(IoStats {
                device,
                ..IoStats::default()
            })
    }
}

/// One change `set` made, for a chapter or `--explain` to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// A value written into a cgroup file.
    File { path: PathBuf, value: String },
    /// A system call other than a write (v2's device program), described.
    Call(String),
}

impl Written {
    /// As a shell line: `echo VALUE > FILE`, or the call's description.
    pub fn shell(&self) -> String {
        match self {
            Written::File { path, value } if value.chars().all(|c| c.is_ascii_digit()) => {
                format!("echo {value} > {}", path.display())
            }
            Written::File { path, value } => format!("echo '{value}' > {}", path.display()),
            Written::Call(text) => text.clone(),
        }
    }
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Written::File { path, value } => write!(f, "{} = {value}", path.display()),
            Written::Call(text) => f.write_str(text),
        }
    }
}

/// Where the controllers' `set_v1`/`set_v2` record what they wrote.
#[derive(Debug, Default)]
struct Writes(Vec<Written>);

impl Writes {
    fn write(&mut self, path: PathBuf, value: impl Into<String>) -> Result<(), CgroupError> {
        let value = value.into();
        fs::write(&path, &value)
            .map_err(|e| CgroupError::io(&format!("write {value:?} to"), &path, e))?;
        self.0.push(Written::File { path, value });
        Ok(())
    }

    fn call(&mut self, text: String) {
        self.0.push(Written::Call(text));
    }
}

/// A container's cgroup, in whichever version the host offers: the
/// directories it is made of, and the version that knows their files.
/// Dropping one that `create` made removes it.
#[derive(Debug)]
pub struct Cgroup {
    version: Box<dyn Version>,
    dirs: Vec<PathBuf>,
    /// Made by this value (and so removed with it), or only opened.
    owned: bool,
}

impl Cgroup {
    /// Creates `container-lab/NAME` beneath the lab's own cgroup, with the
    /// resource controllers (memory, cpu, pids, io) where the host has them.
    pub fn create(name: &str) -> Result<Cgroup, CgroupError> {
        Cgroup::create_with(name, RESOURCE_CONTROLLERS)
    }

    /// `create`, plus (on v1) the freezer hierarchy that `docker pause`
    /// needs and the devices hierarchy of the device allow-list; v2 has
    /// `cgroup.freeze` in every cgroup, and BPF programs for devices.
    pub fn create_freezable(name: &str) -> Result<Cgroup, CgroupError> {
        Cgroup::create_with(name, ALL_CONTROLLERS)
    }

    fn create_with(name: &str, controllers: &[Controller]) -> Result<Cgroup, CgroupError> {
        let version = this_host()?;
        let dirs = version.create(name, controllers)?;
        Ok(Cgroup {
            version,
            dirs,
            owned: true,
        })
    }

    /// The directories `create_freezable(name)` makes, before it makes
    /// them: a record names them first, so that they can be found again
    /// if the process making them is killed half-way.
    pub fn planned_freezable(name: &str) -> Result<Vec<PathBuf>, CgroupError> {
        this_host()?.planned(name, ALL_CONTROLLERS)
    }

    /// A cgroup made earlier, by another process, from the directories its
    /// record names (`docker update`, `pause`); dropping it removes nothing.
    pub fn open(dirs: &[PathBuf]) -> Result<Cgroup, CgroupError> {
        Ok(Cgroup {
            version: this_host()?,
            dirs: dirs.iter().filter(|d| d.is_dir()).cloned().collect(),
            owned: false,
        })
    }

    pub fn version(&self) -> u8 {
        self.version.number()
    }

    /// The directories, one per hierarchy.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.clone()
    }

    /// The `cgroup.procs` files a process writes "0" into to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|p| p.join("cgroup.procs")).collect()
    }

    /// Whether a controller is available to this cgroup.
    pub fn has(&self, controller: Controller) -> bool {
        self.version.has(&self.dirs, controller)
    }

    /// Writes the limits; returns every file and value it wrote, in order.
    // ANCHOR: set
    pub fn set(&self, resources: &Resources) -> Result<Vec<Written>, CgroupError> {
        self.version.set(&self.dirs, resources)
    }
    // ANCHOR_END: set

    /// `docker update`: new limits for a cgroup whose processes run. Only
    /// what `resources` names changes; the device allow-list stays as the
    /// container was started with (Docker cannot change it either).
    pub fn update(&self, resources: &Resources) -> Result<Vec<Written>, CgroupError> {
        if resources.devices.is_some() {
            return Err(CgroupError::DevicesFixed);
        }
        self.set(resources)
    }

    /// Applies a device allow-list (see `devices`): v1 writes it to
    /// `devices.deny` and `devices.allow`, v2 attaches a BPF program.
    /// Returns what was done, as shell lines or system calls.
    pub fn allow_devices(&self, rules: &[DeviceRule]) -> Result<Vec<String>, CgroupError> {
        let resources = Resources {
            devices: Some(rules.to_vec()),
            ..Resources::default()
        };
        Ok(self.set(&resources)?.iter().map(Written::shell).collect())
    }

    /// `docker pause` / `unpause`: freezes or thaws every process, and
    /// returns once the kernel says it is done.
    pub fn freeze(&self, frozen: bool) -> Result<Vec<Written>, CgroupError> {
        self.set(&Resources {
            frozen: Some(frozen),
            ..Resources::default()
        })
    }

    pub fn is_frozen(&self) -> Option<bool> {
        self.version.is_frozen(&self.dirs)
    }

    /// The kernel's counters.
    pub fn stats(&self) -> Stats {
        self.version.stats(&self.dirs)
    }

    /// The PIDs (host numbering) of the processes in the cgroup.
    pub fn processes(&self) -> Vec<i32> {
        self.dirs
            .first()
            .map(|dir| read_pids(&dir.join("cgroup.procs")))
            .unwrap_or_default()
    }

    fn remove(&mut self) -> Result<(), CgroupError> {
        while let Some(dir) = self.dirs.pop() {
            remove_dir_retrying(&dir)?;
            // The shared parent goes with its last child, whoever made it;
            // while another run still uses it, rmdir fails and it stays.
            if let Some(parent) = dir.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
        Ok(())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if let Err(err) = self.remove() {
            log::warn!("{err}");
        }
    }
}

/// `docker pause` / `unpause` of a container known by the directories its
/// record names: freezes or thaws every process of the cgroup, then waits
/// until the kernel says it is done.
pub fn set_frozen(paths: &[PathBuf], frozen: bool) -> Result<(), CgroupError> {
    Cgroup::open(paths)?.freeze(frozen).map(drop)
}

/// What the kernel reports about the freezer of the cgroup in `paths`.
pub fn is_frozen(paths: &[PathBuf]) -> Option<bool> {
    Cgroup::open(paths).ok()?.is_frozen()
}

/// Removes cgroups left by a container whose supervisor was killed: ends
/// the processes still in them (they are the container's), then removes
/// the directories, and the shared parent when it is empty.
pub fn remove_leftover(paths: &[PathBuf]) -> Result<(), CgroupError> {
    // A frozen process cannot die: thaw first.
    let _ = set_frozen(paths, false);
    for dir in paths.iter().filter(|d| d.exists()) {
        // Until rmdir succeeds: a container's init that outlived its
        // supervisor may still be joining it.
        let mut attempts = 0;
        loop {
            for pid in read_pids(&dir.join("cgroup.procs")) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            match fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                // Processes in it, or dying ones not yet gone.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempts < 1000 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(CgroupError::io("remove", dir, e)),
            }
        }
    }
    remove_empty_parents();
    Ok(())
}

/// Removes the lab's shared parent (`container-lab/`) in every hierarchy
/// where it is empty: a run killed between making it and making its own
/// cgroup in it leaves it so. rmdir refuses a
/// parent that still has a cgroup in it, and a run that is making one
/// meanwhile makes the parent again (see `create_in_shared_parent`).
pub fn remove_empty_parents() {
    for dir in Cgroup::planned_freezable("any").unwrap_or_default() {
        if let Some(parent) = dir.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

/// A container's cgroup directory that is already there when it is to be
/// made: left by a run that died before removing it. Empty, it is taken
/// back (removed, so that the new run starts without the old limits);
/// with processes in it, it belongs to a container that still runs.
fn reclaim_existing(dir: &Path) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    let text = read_kernel_file(&procs).map_err(|e| CgroupError::io("read", &procs, e))?;
    let pids: Vec<&str> = text.split_whitespace().collect();
    if !pids.is_empty() {
        return Err(CgroupError::InUse {
            path: dir.to_path_buf(),
            pids: pids.join(" "),
        });
    }
    remove_dir_retrying(dir)
}

/// Moves the calling process into the cgroup of each `cgroup.procs` in
/// `procs_files`, by writing "0" (meaning "the writing process"). Used by
/// the container's init before it starts anything, and by every process
/// the lab runs inside, so that nothing escapes accounting.
///
/// A process of one thread writes to the `tasks` file beside it instead,
/// where there is one (v1). There, the kernel moves only the writing
/// thread, and it does so without the system-wide lock it takes to move a
/// whole process (`cgroup_threadgroup_rwsem`; since Linux 6.0 and the
/// long-term kernels of September 2022). The first taking of that lock
/// after a quiet spell waits for an RCU grace period. With one thread,
/// moving the thread moves the whole process.
// ANCHOR: join
pub fn join(procs_files: &[PathBuf]) -> Result<(), CgroupError> {
    let one_thread = crate::kernel::process::thread_count() == Some(1);
    for procs in procs_files {
        let tasks = procs.with_file_name("tasks");
        let file = if one_thread && tasks.exists() {
            &tasks
        } else {
            procs
        };
        fs::write(file, "0").map_err(|e| CgroupError::io("write \"0\" to", file, e))?;
    }
    Ok(())
}
// ANCHOR_END: join

/// The first move of a whole process into a cgroup after a quiet spell
/// waits for an RCU grace period (the kernel's cgroup_threadgroup_rwsem
/// switching its readers to the slow path): milliseconds, on every cgroup
/// version without `favordynmods`. A process that moves itself with one
/// thread does not take that lock (see [`join`]); a runtime that moves
/// another process by its PID, as `lab-runc create` moves its init, does.
/// A helper process begins that wait as soon as the cgroup exists, by
/// joining it and leaving at once, so that the move a moment later finds
/// it over or half over. It makes two system calls and exits (safe after
/// fork, also beside threads); reaped when dropped.
#[derive(Debug)]
pub struct WarmUp(Option<nix::unistd::Pid>);

impl WarmUp {
    /// Starts the wait with a join of `procs` (a `cgroup.procs` we made).
    pub fn start(procs: &Path) -> WarmUp {
        let Ok(path) = std::ffi::CString::new(procs.as_os_str().as_encoded_bytes()) else {
            return WarmUp(None);
        };
        crate::kernel::process::flush_stdio();
        // Safety: the child only calls open, write and _exit, all
        // async-signal-safe.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::write(fd, b"0".as_ptr().cast(), 1);
                }
                libc::_exit(0)
            },
            Ok(nix::unistd::ForkResult::Parent { child }) => WarmUp(Some(child)),
            Err(_) => WarmUp(None),
        }
    }
}

impl Drop for WarmUp {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// The cgroup path (relative to a hierarchy's root) that the calling
/// process is in: for v2 the `0::` line of /proc/self/cgroup, for v1 the
/// line naming `controller`.
pub fn own_path(controller: Option<&str>) -> Result<PathBuf, CgroupError> {
    own_path_in(&own_cgroups()?, controller)
}

/// /proc/self/cgroup, for `own_path_in`.
fn own_cgroups() -> Result<String, CgroupError> {
    read_kernel_file("/proc/self/cgroup")
        .map_err(|e| CgroupError::io("read", "/proc/self/cgroup", e))
}

/// `own_path`, from /proc/self/cgroup's text read once.
fn own_path_in(text: &str, controller: Option<&str>) -> Result<PathBuf, CgroupError> {
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let matches = match controller {
            None => controllers.is_empty(),
            Some(wanted) => controllers.split(',').any(|c| c == wanted),
        };
        if matches {
            return Ok(PathBuf::from(path.trim_start_matches('/')));
        }
    }
    Err(CgroupError::NotInHierarchy(
        controller.unwrap_or("v2").to_string(),
    ))
}

/// mkdir PARENT (shared by every run) and PARENT/NAME; `prepare` runs on
/// each directory made (v1's cpuset needs its CPUs copied in). Another run
/// may remove the empty parent between the two: then make it again.
fn create_in_shared_parent(
    parent: &Path,
    dir: &Path,
    prepare: impl Fn(&Path) -> Result<(), CgroupError>,
) -> Result<(), CgroupError> {
    for _ in 0..3 {
        match fs::create_dir(parent) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(CgroupError::io("create", parent, e)),
        }
        prepare(parent)?;
        match fs::create_dir(dir) {
            Ok(()) => return prepare(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // Left by a run that died: take it back, then make it anew.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                reclaim_existing(dir)?;
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

/// Removes a cgroup directory. The kernel refuses (EBUSY) while a process
/// is still in it, which can last a moment after the last one was killed.
fn remove_dir_retrying(path: &Path) -> Result<(), CgroupError> {
    for _ in 0..200 {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(CgroupError::io("remove", path, e)),
        }
    }
    Err(CgroupError::io(
        "remove",
        path,
        std::io::Error::from_raw_os_error(libc::EBUSY),
    ))
}

fn read_pids(procs: &Path) -> Vec<i32> {
    read_kernel_file(procs)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn read_u64(path: &Path) -> Option<u64> {
    read_kernel_file(path).ok()?.trim().parse().ok()
}

fn read_limit(path: &Path) -> Option<Limit> {
    Limit::parse(&read_kernel_file(path).ok()?)
}

/// A `key value` line of a flat-keyed file such as `cpu.stat`.
fn read_key(path: &Path, key: &str) -> Option<u64> {
    read_kernel_file(path).ok()?.lines().find_map(|line| {
        line.strip_prefix(key)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Parses Docker-style sizes: 32m, 1g, 512k, 1048576 (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, unit) = match lower.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => lower.split_at(at),
        None => (lower, ""),
    };
    let multiplier: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size {text:?}: use a number with an optional unit b, k, m or g, e.g. 32m"
            ))
        }
    };
    let value: u64 = digits.parse().map_err(|_| {
        format!("invalid size {text:?}: use a number with an optional unit b, k, m or g, e.g. 32m")
    })?;
    let bytes = value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))?;
    if bytes < 6 << 20 {
        return Err(format!(
            "invalid size {text:?}: the minimum is 6m, as for docker run --memory"
        ));
    }
    Ok(bytes)
}

/// Parses `--cpus`: a positive fraction of one CPU, at most the CPUs online.
pub fn parse_cpus(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("invalid --cpus {text:?}: use a number of CPUs such as 0.5 or 2"))?;
    let online = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    if !(value >= 0.01 && value <= online) {
        return Err(format!(
            "invalid --cpus {text:?}: use a value from 0.01 to {online} (the CPUs online)"
        ));
    }
    Ok(value)
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(
        "the container's cgroup has no freezer; pause needs cgroup v2 or the v1 freezer hierarchy"
    )]
    NoFreezer,
    #[error("failed to {op}: {errno}{log}")]
    Bpf {
        op: String,
        errno: nix::errno::Errno,
        log: String,
    },
    #[error("this host mounts no cgroup v1 devices hierarchy, so containers could open any device node; mount it (mount -t cgroup -o devices devices /sys/fs/cgroup/devices) or boot with cgroup v2")]
    NoDevicesController,
    #[error("the {controller} controller is not available to the cgroup {}, so its limits cannot be set; mount its hierarchy (v1) or enable it for the lab's parent cgroup (v2)", dir.display())]
    Unavailable {
        controller: &'static str,
        dir: PathBuf,
    },
    #[error("this kernel offers no block I/O weight for {} (it comes with the BFQ I/O scheduler, or io.cost on cgroup v2); leave --blkio-weight out", dir.display())]
    NoIoWeight { dir: PathBuf },
    #[error("the device allow-list of a running container cannot be changed; start a new container with other --device flags")]
    DevicesFixed,
    #[error("cannot limit I/O on {}: {source}; name the block device of a whole disk, such as /dev/sda", path.display())]
    NoSuchDevice {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a block device; I/O limits apply to disks, such as /dev/sda", path.display())]
    NotABlockDevice { path: PathBuf },
    #[error("{} is a partition, but the kernel limits I/O per whole disk only; name the disk, {}", path.display(), disk.display())]
    Partition { path: PathBuf, disk: PathBuf },
    #[error("the cgroup {} is already there with processes in it ({pids}): a container of that name still runs; stop it or pick another name", path.display())]
    InUse { path: PathBuf, pids: String },
    #[error("this process is in no {0} cgroup hierarchy (/proc/self/cgroup); is /sys/fs/cgroup mounted?")]
    NotInHierarchy(String),
    #[error("cgroup v2: the lab's cgroup {} also holds other processes, so no controller can be enabled beneath it (the no-internal-process rule); run the chapter in a delegated cgroup of its own, e.g. sudo systemd-run --scope -p Delegate=yes cargo run --bin ch05", .0.display())]
    NotDelegated(PathBuf),
}

impl CgroupError {
    pub(crate) fn io(op: &str, path: impl AsRef<Path>, source: std::io::Error) -> CgroupError {
        CgroupError::Io(IoError::new(op, path, source))
    }
}

/// Set on the re-run under systemd-run, so it cannot loop.
const DELEGATED_MARK: &str = "CONTAINER_LAB_DELEGATED";

/// On a cgroup v2 host where the lab shares its cgroup with other processes
/// (a login session, say), runs the program again in a transient systemd
/// scope with `Delegate=yes`: a cgroup of its own that it may manage. This
/// is how rootless Podman gets its cgroups too. Returns only on failure.
pub fn reexec_in_delegated_scope() -> Result<std::convert::Infallible, CgroupError> {
    use std::os::unix::process::CommandExt;
    let own = Path::new(CGROUP_ROOT).join(own_path(None)?);
    if std::env::var_os(DELEGATED_MARK).is_some() || !Path::new("/run/systemd/system").exists() {
        return Err(CgroupError::NotDelegated(own));
    }
    let exe = std::env::current_exe().map_err(|e| CgroupError::io("find", "/proc/self/exe", e))?;
    log::warn!(
        "this cgroup v2 host puts the lab in a cgroup with other processes; \
         running it again in a delegated systemd scope"
    );
    let err = std::process::Command::new("systemd-run")
        .args([
            "--scope",
            "--quiet",
            "--collect",
            "--property=Delegate=yes",
            "--",
        ])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(DELEGATED_MARK, "1")
        .exec();
    Err(CgroupError::io("run", "systemd-run", err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_size("32m"), Ok(32 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("8388608"), Ok(8 << 20));
        assert!(parse_size("12q").unwrap_err().contains("invalid size"));
        assert!(parse_size("1k").unwrap_err().contains("minimum is 6m"));
        assert!(parse_size("").is_err());
    }

    #[test]
    fn cpus_must_be_positive() {
        assert_eq!(parse_cpus("0.2"), Ok(0.2));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("-1").is_err());
        assert!(parse_cpus("lots").is_err());
    }

    #[test]
    fn limits_read_as_each_version_writes_them() {
        assert_eq!(Limit::from_oci(-1), Limit::Unlimited);
        assert_eq!(Limit::from_oci(4096), Limit::At(4096));
        assert_eq!(Limit::parse("max\n"), Some(Limit::Unlimited));
        assert_eq!(Limit::parse("9223372036854771712"), Some(Limit::Unlimited));
        assert_eq!(Limit::parse("33554432"), Some(Limit::At(33554432)));
        assert_eq!(
            (Limit::Unlimited.v1(), Limit::Unlimited.v2()),
            ("-1".into(), "max".into())
        );
    }

    #[test]
    fn docker_flags_become_resources() {
        let limits = Limits {
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
            pids: Some(20),
            blkio_weight: Some(300),
            ..Limits::default()
        };
        let r = limits.resources().unwrap();
        assert_eq!(r.memory.limit, Some(Limit::At(64 << 20)));
        assert_eq!(r.memory.swap, r.memory.limit);
        assert_eq!(r.cpu.quota, Some(Limit::At(50_000)));
        assert_eq!(r.cpu.period, Some(100_000));
        assert_eq!(r.pids.limit, Some(Limit::At(20)));
        assert_eq!(r.io.weight, Some(300));
        assert_eq!(r.devices, None);
        assert_eq!(Limits::default().resources().unwrap(), Resources::default());
    }

    #[test]
    fn writes_show_as_shell_lines() {
        let file = |value: &str| Written::File {
            path: PathBuf::from("/sys/fs/cgroup/x/f"),
            value: value.into(),
        };
        assert_eq!(file("42").shell(), "echo 42 > /sys/fs/cgroup/x/f");
        assert_eq!(file("a").shell(), "echo 'a' > /sys/fs/cgroup/x/f");
        assert_eq!(
            file("7:0 rbps=1").to_string(),
            "/sys/fs/cgroup/x/f = 7:0 rbps=1"
        );
    }
}
