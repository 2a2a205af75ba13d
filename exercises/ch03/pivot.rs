//! Exercise ch03-pivot, chapter 3 (a root filesystem): pivot_root into the
//! copied tree, so that no path leads back to the host.
//!
//! Fill in the TODO, then run `lab check ch03-pivot` (or keep `lab watch`
//! running). `lab hint ch03-pivot` helps.

use std::fs;
use std::path::Path;

use container_lab::engine::dirs::LabDirs;
use container_lab::engine::images::busybox;
use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::{mounts, rootfs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;
use container_lab::lab::steps::inside;

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    // A copy of the busybox image, in this exercise's run directory.
    let run_dir = handoff::run_dir()?;
    let root = run_dir.path().join("rootfs");
    let (image, _) = busybox::image(&LabDirs::from_env())?;
    rootfs::copy_tree(&image, &root)?;
    let container = Container::start(&ContainerSpec {
        namespaces: vec![
            Namespace::Uts,
            Namespace::Pid,
            Namespace::Ipc,
            Namespace::Mount,
        ],
        // The image's static sleep: it runs on after the host's files go.
        main: vec![
            root.join("bin/sleep").display().to_string(),
            "infinity".into(),
        ],
        ..Default::default()
    })?;
    inside(&container, || {
        // TODO: make the tree private, bind `root` onto itself, pivot_root
        // into it with the old root on .old-root, and detach the old root.
        // END TODO
        Ok(())
    })?;

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
