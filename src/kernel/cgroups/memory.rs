//! The memory controller: a ceiling on the pages the cgroup's processes
//! use (their own and the page cache they fill), and the OOM killer once
//! the kernel cannot keep them under it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::v1::V1Dirs;
use super::{read_key, read_limit, read_u64, v2, CgroupError, Controller, Limit, Writes};

pub(super) const V1_HIERARCHIES: &[&str] = &["memory"];
pub(super) const V2_CONTROLLERS: &[&str] = &["memory"];

/// `docker run -m`, `--memory-reservation` and `--memory-swap`; the OCI
/// spec's `linux.resources.memory`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// The hard limit (`-m`, OCI `limit`).
    pub limit: Option<Limit>,
    /// A soft limit the kernel reclaims down to under pressure
    /// (`--memory-reservation`, OCI `reservation`).
    pub reservation: Option<Limit>,
    /// Memory and swap together (`--memory-swap`, OCI `swap`): equal to
    /// `limit`, no swap at all.
    pub swap: Option<Limit>,
}

/// What `docker stats` shows of memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub current: Option<u64>,
    /// The limit in force.
    pub max: Option<Limit>,
    /// The highest usage so far (v2: kernel 5.19 and later).
    pub peak: Option<u64>,
    /// Processes the OOM killer ended in this cgroup.
    pub oom_kills: Option<u64>,
}

impl Memory {
    fn is_empty(&self) -> bool {
        *self == Memory::default()
    }

    /// `memory.limit_in_bytes`, and memory plus swap in
    /// `memory.memsw.limit_in_bytes`, which may never be below it: when the
    /// limit grows past the current memsw, memsw is raised first.
    // ANCHOR: v1
    pub(super) fn set_v1(&self, dirs: &V1Dirs, out: &mut Writes) -> Result<(), CgroupError> {
        if self.is_empty() {
            return Ok(());
        }
        let dir = dirs.require("memory", Controller::Memory)?;
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        // Without swap accounting the kernel has no memsw file: no swap to limit.
        let swap = self.swap.filter(|_| memsw.exists());
        let current_memsw = read_limit(&memsw).unwrap_or(Limit::Unlimited);
        let swap_first = self
            .limit
            .is_some_and(|l| l.number() > current_memsw.number());
        if let (Some(swap), true) = (swap, swap_first) {
            out.write(memsw.clone(), swap.v1())?;
        }
        if let Some(limit) = self.limit {
            out.write(dir.join("memory.limit_in_bytes"), limit.v1())?;
        }
        if let (Some(swap), false) = (swap, swap_first) {
            out.write(memsw, swap.v1())?;
        }
        if let Some(reservation) = self.reservation {
            out.write(dir.join("memory.soft_limit_in_bytes"), reservation.v1())?;
        }
        Ok(())
    }
    // ANCHOR_END: v1

    /// `memory.max`, and `memory.swap.max`, which counts swap alone: the
    /// OCI total less the limit.
    // ANCHOR: v2
    pub(super) fn set_v2(&self, dirs: &[PathBuf], out: &mut Writes) -> Result<(), CgroupError> {
        if self.is_empty() {
            return Ok(());
        }
        let dir = v2::require(dirs, Controller::Memory)?;
        if let Some(limit) = self.limit {
            out.write(dir.join("memory.max"), limit.v2())?;
        }
        let swap_file = dir.join("memory.swap.max");
        if let (Some(total), true) = (self.swap, swap_file.exists()) {
            let limit = self.limit.or_else(|| read_limit(&dir.join("memory.max")));
            let swap = match (total, limit) {
                (Limit::At(total), Some(Limit::At(limit))) => {
                    Limit::At(total.saturating_sub(limit))
                }
                _ => Limit::Unlimited,
            };
            out.write(swap_file, swap.v2())?;
        }
        if let Some(reservation) = self.reservation {
            out.write(dir.join("memory.low"), reservation.v2())?;
        }
        Ok(())
    }
    // ANCHOR_END: v2
}

pub(super) fn stats_v1(dirs: &V1Dirs) -> MemoryStats {
    let file = |name| dirs.file("memory", name);
    MemoryStats {
        current: read_u64(&file("memory.usage_in_bytes")),
        max: read_limit(&file("memory.limit_in_bytes")),
        peak: read_u64(&file("memory.max_usage_in_bytes")),
        oom_kills: read_key(&file("memory.oom_control"), "oom_kill"),
    }
}

pub(super) fn stats_v2(dir: &Path) -> MemoryStats {
    MemoryStats {
        current: read_u64(&dir.join("memory.current")),
        max: read_limit(&dir.join("memory.max")),
        peak: read_u64(&dir.join("memory.peak")),
        oom_kills: read_key(&dir.join("memory.events"), "oom_kill"),
    }
}
