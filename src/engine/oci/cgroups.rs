//! The runtime's adapter to the kernel floor's cgroups
//! (`kernel::cgroups`): runc's rules for `cgroupsPath` (beneath the
//! runtime's own cgroup, in every hierarchy it uses), `linux.resources`
//! translated into the kernel's `Resources` and written by its `Version`
//! (v1 or v2), joining, freezing, and removing only what was made.
//! No cgroup file name is spelt here: the kernel module knows them.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::OciError;
use crate::kernel::cgroups::devices::{Access, DeviceKind, DeviceRule};
use crate::kernel::cgroups::{
    self as kcg, CgroupError, Cpu, DeviceNumber, Io, Limit, Memory, Pids, Resources, Throttle,
    Version, ALL_CONTROLLERS,
};
use crate::support::error::io_err;

/// A container's cgroup: its directory in each hierarchy, and the version
/// that knows their files.
#[derive(Debug)]
pub struct Plan {
    host: Box<dyn Version>,
    pub version: u8,
    pub dirs: Vec<PathBuf>,
    /// The directories that do not exist yet, parents first.
    pub missing: Vec<PathBuf>,
}

impl Plan {
    pub fn leaves(&self) -> Vec<PathBuf> {
        self.dirs.clone()
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
    let host = kcg::this_host()?;
    let mut plan = Plan {
        version: host.number(),
        dirs: Vec::new(),
        missing: Vec::new(),
        host,
    };
    for hierarchy in plan.host.own(ALL_CONTROLLERS)? {
        let own_dir = hierarchy.own;
        let dir = if wanted.is_absolute() {
            // Absolute: from the hierarchy's root, but only inside our own.
            let dir = hierarchy
                .mount
                .join(wanted.strip_prefix("/").unwrap_or(&wanted));
            if !dir.starts_with(&own_dir) || dir == own_dir {
                return Err(OciError::unsupported(
                    "linux.cgroupsPath",
                    format!(
                        "{} is outside the runtime's own cgroup {}; use a relative path, or an absolute one beneath it (podman: --cgroup-parent)",
                        wanted.display(),
                        own_dir.display(),
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
        plan.dirs.push(dir);
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

/// Makes the missing directories, parents first (a new v1 cpuset gets its
/// parent's CPUs and memory nodes; a v2 parent hands its controllers down,
/// also to a leaf that was already there).
pub fn create(plan: &Plan) -> Result<(), OciError> {
    for dir in plan.missing.iter().chain(&plan.dirs) {
        plan.host.make(dir, ALL_CONTROLLERS).map_err(|e| {
            if plan.version == 2 {
                OciError::Other(format!(
                    "{e}; on cgroup v2 a cgroup that hands controllers down may hold no processes: run lab-runc from a cgroup of its own"
                ))
            } else {
                e.into()
            }
        })?;
    }
    // A leaf that was already there must be empty: never two containers in one.
    for leaf in &plan.dirs {
        if !plan.missing.contains(leaf) && !pids_in(leaf).is_empty() {
            return Err(OciError::Other(format!(
                "cgroup {} is in use by other processes; give the container a cgroupsPath of its own",
                leaf.display()
            )));
        }
    }
    Ok(())
}

/// [`kcg::WarmUp`] on the container's first leaf (v1 only, as measured).
pub fn warm_up(plan: &Plan) -> Option<kcg::WarmUp> {
    let leaf = plan.dirs.first()?;
    (plan.version == 1).then(|| kcg::WarmUp::start(&leaf.join("cgroup.procs")))
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

/// Writes `linux.resources` and the device allow-list: the spec's
/// `linux.resources.devices`, in order (later entries win), then what every
/// container may use whatever the list says (runc's: the devices it makes
/// in /dev, the terminals, mknod) and the nodes of `linux.devices`. A
/// field the kernel's resources model has no place for is refused by name.
pub fn apply(
    plan: &Plan,
    resources: Option<&LinuxResources>,
    nodes: &[oci_spec::runtime::LinuxDevice],
) -> Result<(), OciError> {
    let mut wanted = match resources {
        Some(resources) => translate(resources, plan.version)?,
        None => Resources::default(),
    };
    let mut list = Vec::new();
    for rule in resources
        .and_then(|r| r.devices().as_ref())
        .into_iter()
        .flatten()
    {
        list.push(device_rule(rule)?);
    }
    list.extend_from_slice(&kcg::devices::DOCKER_DEFAULT[1..]);
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
    wanted.devices = Some(list);
    plan.host.set(&plan.dirs, &wanted).map_err(|e| match e {
        CgroupError::NoDevicesController => OciError::unsupported(
            "linux.resources.devices",
            "this host has no devices cgroup hierarchy",
        ),
        other => OciError::Other(format!("linux.resources: {other}")),
    })?;
    Ok(())
}

/// The spec's resources in the kernel's model, field by field; what the
/// model (or this cgroup version) has no place for is refused by name.
fn translate(resources: &LinuxResources, version: u8) -> Result<Resources, OciError> {
    // (section, key): "linux.resources.SECTION.KEY", or SECTION alone.
    let refuse = |section: &str, key: &str, why: &str| {
        let field = match key {
            "" => format!("linux.resources.{section}"),
            key => format!("linux.resources.{section}.{key}"),
        };
        Err(OciError::unsupported(&field, why))
    };
    let mut out = Resources::default();
    if let Some(asked) = resources.memory() {
        if asked.kernel().is_some() || asked.kernel_tcp().is_some() {
            return refuse(
                "memory",
                "kernel",
                "kernel memory limits are gone from Linux (6.1 ignores them); leave kernel and kernelTCP out",
            );
        }
        if asked.swappiness().is_some() {
            return refuse(
                "memory",
                "swappiness",
                "lab-runc sets no per-cgroup swappiness (cgroup v2 has none)",
            );
        }
        if asked.disable_oom_killer() == Some(true) {
            return refuse(
                "memory",
                "disableOOMKiller",
                "lab-runc never switches the OOM killer off (cgroup v2 cannot)",
            );
        }
        if asked.use_hierarchy().is_some() {
            return refuse(
                "memory",
                "useHierarchy",
                "cgroup v1's use_hierarchy is always on in current kernels",
            );
        }
        out.memory = Memory {
            limit: asked.limit().map(Limit::from_oci),
            reservation: asked.reservation().map(Limit::from_oci),
            swap: asked.swap().map(Limit::from_oci),
        };
    }
    if let Some(asked) = resources.cpu() {
        if asked.realtime_runtime().is_some() || asked.realtime_period().is_some() {
            return refuse(
                "cpu",
                "realtimeRuntime",
                "lab-runc sets no real-time CPU limits (cgroup v2 has none)",
            );
        }
        if asked.idle().is_some() || asked.burst().is_some() {
            return refuse("cpu", "idle", "lab-runc sets neither cpu idle nor burst");
        }
        out.cpu = Cpu {
            shares: asked.shares(),
            quota: asked.quota().map(Limit::from_oci),
            period: asked.period(),
            cpus: asked.cpus().clone(),
            mems: asked.mems().clone(),
        };
    }
    if let Some(pids) = resources.pids() {
        // runc's reading: 0 or less is no limit.
        let limit = u64::try_from(pids.limit()).ok().filter(|n| *n > 0);
        out.pids = Pids {
            limit: Some(limit.map_or(Limit::Unlimited, Limit::At)),
        };
    }
    if let Some(asked) = resources.block_io() {
        out.io = block_io(asked)?;
    }
    if resources
        .hugepage_limits()
        .as_ref()
        .is_some_and(|l| !l.is_empty())
    {
        return refuse(
            "hugepageLimits",
            "",
            "lab-runc has no hugetlb controller support",
        );
    }
    if resources.network().is_some() {
        return refuse(
            "network",
            "",
            "lab-runc has no net_cls or net_prio support (cgroup v2 has neither)",
        );
    }
    if resources.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        return refuse("rdma", "", "no rdma controller support");
    }
    if resources.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        let why = if version == 2 {
            "lab-runc writes no cgroup v2 file by name; use the typed fields"
        } else {
            "it names cgroup v2 files, and this host runs cgroup v1"
        };
        return refuse("unified", "", why);
    }
    Ok(out)
}

fn block_io(asked: &oci_spec::runtime::LinuxBlockIo) -> Result<Io, OciError> {
    if asked.leaf_weight().is_some() {
        return Err(OciError::unsupported(
            "linux.resources.blockIO.leafWeight",
            "CFQ's leaf weight is gone from Linux (5.0 and later have no CFQ)",
        ));
    }
    if asked
        .weight_device()
        .as_ref()
        .is_some_and(|d| !d.is_empty())
    {
        return Err(OciError::unsupported(
            "linux.resources.blockIO.weightDevice",
            "lab-runc sets a weight for the whole cgroup only (blockIO.weight)",
        ));
    }
    let throttles = |devices: &Option<Vec<oci_spec::runtime::LinuxThrottleDevice>>| {
        devices
            .iter()
            .flatten()
            .map(|d| {
                let number = |n: i64| {
                    u32::try_from(n).map_err(|_| {
                        OciError::invalid(
                            "linux.resources.blockIO",
                            format!("device number {n} is out of range"),
                        )
                    })
                };
                Ok(Throttle {
                    device: DeviceNumber {
                        major: number(d.major())?,
                        minor: number(d.minor())?,
                    },
                    rate: d.rate(),
                })
            })
            .collect::<Result<Vec<_>, OciError>>()
    };
    Ok(Io {
        weight: asked.weight(),
        read_bps: throttles(asked.throttle_read_bps_device())?,
        write_bps: throttles(asked.throttle_write_bps_device())?,
        read_iops: throttles(asked.throttle_read_iops_device())?,
        write_iops: throttles(asked.throttle_write_iops_device())?,
    })
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
