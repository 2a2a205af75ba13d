//! Exercise ch08-read-only, chapter 8 (hardening): a root filesystem the
//! container cannot write to.
//!
//! Fill in the TODO, then run `lab check ch08-read-only` (or keep `lab
//! watch` running). `lab hint ch08-read-only` helps.

use std::path::Path;

use container_lab::engine::dirs::LabDirs;
use container_lab::kernel::mounts;
use container_lab::kernel::namespaces::Namespace;
use container_lab::lab::handoff;
use container_lab::lab::steps::{inside, BusyboxContainer};

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    // Chapter 3's container in one call: a copy of busybox, pivot_root,
    // /proc, /sys and /dev.
    let namespaces = [
        Namespace::Uts,
        Namespace::Pid,
        Namespace::Ipc,
        Namespace::Mount,
    ];
    let id = handoff::exercise_id();
    let dirs = LabDirs::from_env();
    let started = BusyboxContainer::start(&dirs, &id, &namespaces, "ex08", |_| Ok(()))?;
    let container = &started.container;
    inside(container, || {
        // TODO: remount the container's root read-only.
        mounts::remount_read_only(Path::new("/"))?;
        // END TODO
        Ok(())
    })?;

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(container)
}
