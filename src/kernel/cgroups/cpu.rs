//! The CPU controllers: a share of the CPUs against sibling cgroups, a
//! quota of CPU time per period (the CFS bandwidth controller), and the
//! CPUs and memory nodes the processes may run on (cpuset).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::v1::V1Dirs;
use super::{read_key, read_u64, v2, CgroupError, Controller, Limit, Writes};
use crate::support::fs::read_kernel_file;

/// v1 splits this into three hierarchies: `cpu` (shares, quota), `cpuacct`
/// (usage) and `cpuset`.
pub(super) const V1_HIERARCHIES: &[&str] = &["cpu", "cpuacct", "cpuset"];
pub(super) const V2_CONTROLLERS: &[&str] = &["cpu", "cpuset"];

/// `docker run --cpu-shares`, `--cpus` (a quota per 100 ms period),
/// `--cpu-quota`, `--cpu-period`, `--cpuset-cpus` and `--cpuset-mems`;
/// the OCI spec's `linux.resources.cpu`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// Weight against sibling cgroups; 1024 is the default (OCI `shares`).
    pub shares: Option<u64>,
    /// CPU time per period, in microseconds (OCI `quota`).
    pub quota: Option<Limit>,
    /// The period, in microseconds (OCI `period`).
    pub period: Option<u64>,
    /// The CPUs it may run on, as the kernel lists them: "0-2,4".
    pub cpus: Option<String>,
    /// The memory nodes it may allocate from.
    pub mems: Option<String>,
}

/// What `docker stats` shows of the CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStats {
    pub usage: Option<Duration>,
    /// Periods in which the quota ran out.
    pub throttled_periods: Option<u64>,
    pub throttled_time: Option<Duration>,
}

impl Cpu {
    fn is_empty(&self) -> bool {
        *self == Cpu::default()
    }

    // ANCHOR: v1
    pub(super) fn set_v1(&self, dirs: &V1Dirs, out: &mut Writes) -> Result<(), CgroupError> {
        if self.is_empty() {
            return Ok(());
        }
        if self.shares.is_some() || self.quota.is_some() || self.period.is_some() {
            let dir = dirs.require("cpu", Controller::Cpu)?;
            if let Some(shares) = self.shares {
                out.write(dir.join("cpu.shares"), shares.to_string())?;
            }
            if let Some(period) = self.period {
                out.write(dir.join("cpu.cfs_period_us"), period.to_string())?;
            }
            if let Some(quota) = self.quota {
                out.write(dir.join("cpu.cfs_quota_us"), quota.v1())?;
            }
        }
        if self.cpus.is_some() || self.mems.is_some() {
            let dir = dirs.require("cpuset", Controller::Cpu)?;
            self.set_cpuset(dir, out)?;
        }
        Ok(())
    }
    // ANCHOR_END: v1

    /// v2 keeps quota and period in one file, `cpu.max` ("QUOTA PERIOD"),
    /// and weighs from 1 to 10000 where v1's shares go from 2 to 262144.
    // ANCHOR: v2
    pub(super) fn set_v2(&self, dirs: &[PathBuf], out: &mut Writes) -> Result<(), CgroupError> {
        if self.is_empty() {
            return Ok(());
        }
        if self.shares.is_some() || self.quota.is_some() || self.period.is_some() {
            let dir = v2::require(dirs, Controller::Cpu)?;
            if let Some(shares) = self.shares {
                out.write(dir.join("cpu.weight"), weight_of_shares(shares).to_string())?;
            }
            if self.quota.is_some() || self.period.is_some() {
                // The half not given stays as it is.
                let file = dir.join("cpu.max");
                let now = read_kernel_file(&file).unwrap_or_default();
                let mut now = now.split_whitespace();
                let quota = self
                    .quota
                    .map(Limit::v2)
                    .or(now.next().map(String::from))
                    .unwrap_or_else(|| "max".into());
                let period = self
                    .period
                    .map(|p| p.to_string())
                    .or(now.next().map(String::from))
                    .unwrap_or_else(|| "100000".into());
                out.write(file, format!("{quota} {period}"))?;
            }
        }
        if self.cpus.is_some() || self.mems.is_some() {
            let dir = dirs.first().map(PathBuf::as_path).unwrap_or(Path::new(""));
            if !v2::listed(dir, "cpuset") {
                return Err(CgroupError::Unavailable {
                    controller: "cpuset",
                    dir: dir.to_path_buf(),
                });
            }
            self.set_cpuset(dir, out)?;
        }
        Ok(())
    }
    // ANCHOR_END: v2

    /// `cpuset.cpus` and `cpuset.mems`: the same names in both versions.
    fn set_cpuset(&self, dir: &Path, out: &mut Writes) -> Result<(), CgroupError> {
        if let Some(cpus) = &self.cpus {
            out.write(dir.join("cpuset.cpus"), cpus.clone())?;
        }
        if let Some(mems) = &self.mems {
            out.write(dir.join("cpuset.mems"), mems.clone())?;
        }
        Ok(())
    }
}

/// runc's conversion of v1 shares to a v2 weight: 2 → 1, 1024 → 39,
/// 262144 → 10000.
fn weight_of_shares(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// A new v1 cpuset has no CPUs and no memory nodes, and a process cannot
/// join it (ENOSPC) until it gets some: copy the parent's, as runc does.
/// Directories of other hierarchies have no cpuset files and are left alone.
pub(super) fn prepare_v1(dir: &Path) -> Result<(), CgroupError> {
    for name in ["cpuset.cpus", "cpuset.mems"] {
        let file = dir.join(name);
        let Ok(own) = read_kernel_file(&file) else {
            continue;
        };
        if !own.trim().is_empty() {
            continue;
        }
        let parent = dir.parent().unwrap_or(dir).join(name);
        let inherited =
            read_kernel_file(&parent).map_err(|e| CgroupError::io("read", &parent, e))?;
        fs::write(&file, inherited.trim())
            .map_err(|e| CgroupError::io(&format!("write {:?} to", inherited.trim()), &file, e))?;
    }
    Ok(())
}

pub(super) fn stats_v1(dirs: &V1Dirs) -> CpuStats {
    let stat = dirs.file("cpu", "cpu.stat");
    CpuStats {
        usage: read_u64(&dirs.file("cpuacct", "cpuacct.usage")).map(Duration::from_nanos),
        throttled_periods: read_key(&stat, "nr_throttled"),
        throttled_time: read_key(&stat, "throttled_time").map(Duration::from_nanos),
    }
}

pub(super) fn stats_v2(dir: &Path) -> CpuStats {
    let stat = dir.join("cpu.stat");
    CpuStats {
        usage: read_key(&stat, "usage_usec").map(Duration::from_micros),
        throttled_periods: read_key(&stat, "nr_throttled"),
        throttled_time: read_key(&stat, "throttled_usec").map(Duration::from_micros),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_become_weights_as_runc_converts_them() {
        assert_eq!(weight_of_shares(2), 1);
        assert_eq!(weight_of_shares(1024), 39);
        assert_eq!(weight_of_shares(262_144), 10_000);
        assert_eq!(weight_of_shares(0), 1);
    }
}
