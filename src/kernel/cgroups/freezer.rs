//! The freezer: `docker pause` stops every process of the cgroup where it
//! stands (no signal is sent), and `unpause` lets them go on. v1 has it as
//! a hierarchy of its own (`freezer.state`), v2 in every cgroup
//! (`cgroup.freeze`, with the outcome in `cgroup.events`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::v1::V1Dirs;
use super::{read_key, CgroupError, Writes};
use crate::support::fs::read_kernel_file;

pub(super) const V1_HIERARCHIES: &[&str] = &["freezer"];

// ANCHOR: freeze
pub(super) fn set_v1(frozen: bool, dirs: &V1Dirs, out: &mut Writes) -> Result<(), CgroupError> {
    let dir = dirs.get("freezer").ok_or(CgroupError::NoFreezer)?;
    let file = dir.join("freezer.state");
    out.write(file.clone(), if frozen { "FROZEN" } else { "THAWED" })?;
    // v1 passes through FREEZING until every task has stopped.
    wait_until(&file, || is_frozen_v1(dirs) == Some(frozen))
}

pub(super) fn set_v2(frozen: bool, dirs: &[PathBuf], out: &mut Writes) -> Result<(), CgroupError> {
    let dir = dirs.first().ok_or(CgroupError::NoFreezer)?;
    if !has_v2(dir) {
        return Err(CgroupError::NoFreezer);
    }
    let file = dir.join("cgroup.freeze");
    out.write(file.clone(), if frozen { "1" } else { "0" })?;
    // Done when cgroup.events says `frozen 1` (or 0).
    wait_until(&file, || is_frozen_v2(dir) == Some(frozen))
}
// ANCHOR_END: freeze

pub(super) fn is_frozen_v1(dirs: &V1Dirs) -> Option<bool> {
    let state = read_kernel_file(dirs.get("freezer")?.join("freezer.state")).ok()?;
    Some(state.trim() == "FROZEN")
}

pub(super) fn is_frozen_v2(dir: &Path) -> Option<bool> {
    read_key(&dir.join("cgroup.events"), "frozen").map(|v| v == 1)
}

/// Kernel 5.2 and later: `cgroup.freeze` in every cgroup but the root.
pub(super) fn has_v2(dir: &Path) -> bool {
    dir.join("cgroup.freeze").exists()
}

/// Polls for a second at most: freezing waits for every task to stop.
fn wait_until(file: &Path, mut done: impl FnMut() -> bool) -> Result<(), CgroupError> {
    for _ in 0..500 {
        if done() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(CgroupError::io(
        "wait for the freezer in",
        file,
        std::io::Error::from(std::io::ErrorKind::TimedOut),
    ))
}
