//! The pids controller: how many processes (and threads) the cgroup may
//! hold; fork and clone fail with EAGAIN past it. Its files have the same
//! names in both versions.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::v1::V1Dirs;
use super::{read_key, read_u64, v2, CgroupError, Controller, Limit, Writes};

pub(super) const V1_HIERARCHIES: &[&str] = &["pids"];
pub(super) const V2_CONTROLLERS: &[&str] = &["pids"];

/// `docker run --pids-limit`; the OCI spec's `linux.resources.pids`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pids {
    pub limit: Option<Limit>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidsStats {
    pub current: Option<u64>,
    /// Forks refused because of the limit.
    pub refused: Option<u64>,
}

impl Pids {
    pub(super) fn set_v1(&self, dirs: &V1Dirs, out: &mut Writes) -> Result<(), CgroupError> {
        match self.limit {
            Some(limit) => set(dirs.require("pids", Controller::Pids)?, limit, out),
            None => Ok(()),
        }
    }

    pub(super) fn set_v2(&self, dirs: &[PathBuf], out: &mut Writes) -> Result<(), CgroupError> {
        match self.limit {
            Some(limit) => set(v2::require(dirs, Controller::Pids)?, limit, out),
            None => Ok(()),
        }
    }
}

// ANCHOR: set
fn set(dir: &Path, limit: Limit, out: &mut Writes) -> Result<(), CgroupError> {
    out.write(dir.join("pids.max"), limit.v2())
}
// ANCHOR_END: set

fn stats(dir: &Path) -> PidsStats {
    PidsStats {
        current: read_u64(&dir.join("pids.current")),
        refused: read_key(&dir.join("pids.events"), "max"),
    }
}

pub(super) fn stats_v1(dirs: &V1Dirs) -> PidsStats {
    dirs.get("pids").map(stats).unwrap_or_default()
}

pub(super) fn stats_v2(dir: &Path) -> PidsStats {
    stats(dir)
}
