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
//! The lab decides by looking (statfs and the controller lists), never by
//! guessing from the distribution, and always creates its cgroups beneath
//! the cgroup it runs in.

pub mod device_filter;
pub mod devices;
mod v1;
mod v2;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use v1::V1Cgroup;
pub use v2::V2Cgroup;

/// The root of the cgroup filesystems.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

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
    let root = statfs(CGROUP_ROOT).map_err(|errno| CgroupError::Sys {
        op: "statfs",
        path: PathBuf::from(CGROUP_ROOT),
        errno,
    })?;
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

/// The limits a chapter sets; `None` leaves a resource unlimited.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// CPU time per period, as a fraction of one CPU (0.2 = 20 ms per 100 ms).
    pub cpus: Option<f64>,
    pub pids: Option<u64>,
}

/// The kernel's own counters, read back from the cgroup's files.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    /// Processes the OOM killer ended in this cgroup.
    pub oom_kills: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub cpu_usage: Option<Duration>,
    pub cpu_throttled_periods: Option<u64>,
    pub cpu_throttled_time: Option<Duration>,
    /// Forks refused because of pids.max.
    pub pids_refused: Option<u64>,
}

/// The controllers the lab uses.
pub const CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// The v1 hierarchies `create_freezable` adds to the usual ones.
const FREEZABLE_V1: [&str; 2] = ["freezer", "devices"];

/// A container's cgroup, in whichever version the host offers.
#[derive(Debug)]
pub enum Cgroup {
    V1(V1Cgroup),
    V2(V2Cgroup),
}

impl Cgroup {
    /// Creates `container-lab/NAME` beneath the lab's own cgroup, with the
    /// memory, cpu and pids controllers where the host has them.
    pub fn create(name: &str) -> Result<Cgroup, CgroupError> {
        match detect_layout()? {
            Layout::Unified => Ok(Cgroup::V2(V2Cgroup::create(name)?)),
            Layout::Hybrid | Layout::Legacy => Ok(Cgroup::V1(V1Cgroup::create(name)?)),
        }
    }

    /// `create`, plus (on v1) the freezer hierarchy that `docker pause`
    /// needs and the devices hierarchy of the device allow-list; v2 has
    /// `cgroup.freeze` in every cgroup, and BPF programs for devices.
    pub fn create_freezable(name: &str) -> Result<Cgroup, CgroupError> {
        match detect_layout()? {
            Layout::Unified => Ok(Cgroup::V2(V2Cgroup::create(name)?)),
            Layout::Hybrid | Layout::Legacy => {
                Ok(Cgroup::V1(V1Cgroup::create_with(name, &FREEZABLE_V1)?))
            }
        }
    }

    /// The directories `create_freezable(name)` makes, before it makes
    /// them: a record names them first, so that they can be found again
    /// if the process making them is killed half-way.
    pub fn planned_freezable(name: &str) -> Result<Vec<PathBuf>, CgroupError> {
        match detect_layout()? {
            Layout::Unified => Ok(vec![V2Cgroup::planned(name)?]),
            Layout::Hybrid | Layout::Legacy => V1Cgroup::planned(name, &FREEZABLE_V1),
        }
    }

    pub fn version(&self) -> u8 {
        match self {
            Cgroup::V1(_) => 1,
            Cgroup::V2(_) => 2,
        }
    }

    /// The directories that were created, one per hierarchy.
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            Cgroup::V1(c) => c.paths(),
            Cgroup::V2(c) => vec![c.path().to_path_buf()],
        }
    }

    /// The `cgroup.procs` files a process writes "0" into to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.paths()
            .iter()
            .map(|p| p.join("cgroup.procs"))
            .collect()
    }

    /// Whether a controller is available to this cgroup.
    pub fn has(&self, controller: &str) -> bool {
        match self {
            Cgroup::V1(c) => c.has(controller),
            Cgroup::V2(c) => c.has(controller),
        }
    }

    /// Writes the limits; returns `(file, value)` pairs for narration.
    pub fn set_limits(&self, limits: &Limits) -> Result<Vec<(PathBuf, String)>, CgroupError> {
        match self {
            Cgroup::V1(c) => c.set_limits(limits),
            Cgroup::V2(c) => c.set_limits(limits),
        }
    }

    /// Applies a device allow-list (see `devices`): v1 writes it to
    /// `devices.deny` and `devices.allow`, v2 attaches a BPF program.
    /// Returns what was done, as shell lines or system calls.
    pub fn allow_devices(&self, rules: &[devices::DeviceRule]) -> Result<Vec<String>, CgroupError> {
        match self {
            Cgroup::V1(c) => c.allow_devices(rules),
            Cgroup::V2(c) => device_filter::attach(c.path(), rules),
        }
    }

    pub fn counters(&self) -> Counters {
        match self {
            Cgroup::V1(c) => c.counters(),
            Cgroup::V2(c) => c.counters(),
        }
    }

    /// The PIDs (host numbering) of the processes in the cgroup.
    pub fn processes(&self) -> Vec<i32> {
        let Some(first) = self.paths().into_iter().next() else {
            return Vec::new();
        };
        fs::read_to_string(first.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

/// The file that freezes a cgroup, and the values for frozen and thawed:
/// v2's `cgroup.freeze` (1/0), or v1's `freezer.state` (FROZEN/THAWED).
/// `paths` are the container's cgroup directories, as recorded.
pub fn freezer_file(paths: &[PathBuf]) -> Option<(PathBuf, &'static str, &'static str)> {
    paths.iter().find_map(|dir| {
        if dir.join("cgroup.freeze").exists() {
            Some((dir.join("cgroup.freeze"), "1", "0"))
        } else if dir.join("freezer.state").exists() {
            Some((dir.join("freezer.state"), "FROZEN", "THAWED"))
        } else {
            None
        }
    })
}

/// `docker pause` / `unpause`: freezes or thaws every process of the
/// cgroup, then waits until the kernel says it is done (v1 passes through
/// FREEZING, v2 reports `frozen 1` in cgroup.events).
// ANCHOR: freeze
pub fn set_frozen(paths: &[PathBuf], frozen: bool) -> Result<(), CgroupError> {
    let (file, on, off) = freezer_file(paths).ok_or(CgroupError::NoFreezer)?;
    write(&file, if frozen { on } else { off })?;
    for _ in 0..500 {
        if is_frozen(paths) == Some(frozen) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(CgroupError::io(
        "wait for the freezer in",
        &file,
        std::io::Error::from(std::io::ErrorKind::TimedOut),
    ))
}
// ANCHOR_END: freeze

/// What the kernel reports: v2 `frozen` in cgroup.events, v1 freezer.state.
pub fn is_frozen(paths: &[PathBuf]) -> Option<bool> {
    let (file, _, _) = freezer_file(paths)?;
    if file.ends_with("cgroup.freeze") {
        read_key(&file.with_file_name("cgroup.events"), "frozen").map(|v| v == 1)
    } else {
        let state = fs::read_to_string(&file).ok()?;
        Some(state.trim() == "FROZEN")
    }
}

/// Removes cgroups left by a container whose supervisor was killed: ends
/// the processes still in them (they are the container's), then removes
/// the directories, and the shared parent when it is empty.
pub fn remove_leftover(paths: &[PathBuf]) -> Result<(), CgroupError> {
    // A frozen process cannot die: thaw first.
    let _ = set_frozen(paths, false);
    for dir in paths.iter().filter(|d| d.exists()) {
        for _ in 0..500 {
            let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<i32> = procs
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        remove_dir_retrying(dir)?;
        if let Some(parent) = dir.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
    Ok(())
}

/// A container's cgroup directory that is already there when it is to be
/// made: left by a run that died before removing it. Empty, it is taken
/// back (removed, so that the new run starts without the old limits);
/// with processes in it, it belongs to a container that still runs.
pub(crate) fn reclaim_existing(dir: &Path) -> Result<(), CgroupError> {
    let procs = fs::read_to_string(dir.join("cgroup.procs"))
        .map_err(|e| CgroupError::io("read", dir.join("cgroup.procs"), e))?;
    let pids: Vec<&str> = procs.split_whitespace().collect();
    if !pids.is_empty() {
        return Err(CgroupError::InUse {
            path: dir.to_path_buf(),
            pids: pids.join(" "),
        });
    }
    remove_dir_retrying(dir)
}

/// `system prune`: removes the empty directories beneath the lab's parent
/// cgroups (`container-lab/` beneath our own cgroup, in each hierarchy it
/// uses) that are not in `keep`, the cgroups of live containers. A
/// directory with processes in it is left alone: rmdir refuses it.
/// Returns what was removed.
pub fn remove_orphans(keep: &[PathBuf]) -> Vec<PathBuf> {
    let Ok(planned) = Cgroup::planned_freezable("any") else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for parent in planned.iter().filter_map(|p| p.parent()) {
        let Ok(entries) = fs::read_dir(parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.is_dir() || keep.contains(&dir) {
                continue;
            }
            if fs::remove_dir(&dir).is_ok() {
                removed.push(dir);
            }
        }
        // The shared parent goes with its last child, as in `remove`.
        let _ = fs::remove_dir(parent);
    }
    removed
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let removed = match self {
            Cgroup::V1(c) => c.remove(),
            Cgroup::V2(c) => c.remove(),
        };
        if let Err(err) = removed {
            eprintln!("warning: {err}");
        }
    }
}

/// Writes "0" (meaning "the writing process") into each `cgroup.procs`.
/// Used by the container's init before it starts anything, and by every
/// process the lab runs inside, so that nothing escapes accounting.
// ANCHOR: join
pub fn join(procs_files: &[PathBuf]) -> Result<(), CgroupError> {
    for file in procs_files {
        write(file, "0")?;
    }
    Ok(())
}
// ANCHOR_END: join

/// The cgroup path (relative to a hierarchy's root) that the calling
/// process is in: for v2 the `0::` line of /proc/self/cgroup, for v1 the
/// line naming `controller`.
pub fn own_path(controller: Option<&str>) -> Result<PathBuf, CgroupError> {
    let text = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| CgroupError::io("read", "/proc/self/cgroup", e))?;
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

/// Removes a cgroup directory. The kernel refuses (EBUSY) while a process
/// is still in it, which can last a moment after the last one was killed.
pub(crate) fn remove_dir_retrying(path: &Path) -> Result<(), CgroupError> {
    for _ in 0..200 {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(CgroupError::io("remove", path, e)),
        }
    }
    Err(CgroupError::io(
        "remove",
        path,
        io::Error::from_raw_os_error(libc::EBUSY),
    ))
}

pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|e| CgroupError::io(&format!("write {value:?} to"), path, e))
}

pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A `key value` line of a flat-keyed file such as `cpu.stat`.
pub(crate) fn read_key(path: &Path, key: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.lines().find_map(|line| {
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
    #[error(
        "the container's cgroup has no freezer; pause needs cgroup v2 or the v1 freezer hierarchy"
    )]
    NoFreezer,
    #[error("failed to {op} {}: {errno}", path.display())]
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error("failed to {op} {}: {source}", path.display())]
    Io {
        op: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to {op}: {errno}{log}")]
    Bpf {
        op: String,
        errno: nix::errno::Errno,
        log: String,
    },
    #[error("this host mounts no cgroup v1 devices hierarchy, so containers could open any device node; mount it (mount -t cgroup -o devices devices /sys/fs/cgroup/devices) or boot with cgroup v2")]
    NoDevicesController,
    #[error("the cgroup {} is already there with processes in it ({pids}): a container of that name still runs; stop it or pick another name", path.display())]
    InUse { path: PathBuf, pids: String },
    #[error("this process is in no {0} cgroup hierarchy (/proc/self/cgroup); is /sys/fs/cgroup mounted?")]
    NotInHierarchy(String),
    #[error("cgroup v2: the lab's cgroup {} also holds other processes, so no controller can be enabled beneath it (the no-internal-process rule); run the chapter in a delegated cgroup of its own, e.g. sudo systemd-run --scope -p Delegate=yes cargo run --bin ch05", .0.display())]
    NotDelegated(PathBuf),
}

impl CgroupError {
    pub(crate) fn io(op: &str, path: impl AsRef<Path>, source: io::Error) -> CgroupError {
        CgroupError::Io {
            op: op.to_string(),
            path: path.as_ref().to_path_buf(),
            source,
        }
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
    eprintln!("note: this cgroup v2 host puts the lab in a cgroup with other processes; running it again in a delegated systemd scope");
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
}
