//! Exercise ch04-whiteout, chapter 4 (overlay layers): change one file and
//! delete another through the overlay, and see what the upper layer keeps.
//!
//! Fill in the TODO, then run `lab check ch04-whiteout` (or keep `lab
//! watch` running). `lab hint ch04-whiteout` helps.

use std::fs;

use container_lab::engine::dirs::LabDirs;
use container_lab::kernel::mounts;
use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::overlay::{self, OverlayDirs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;
use container_lab::lab::layers;
use container_lab::lab::steps::inside;

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let layers = layers::image_layers(&LabDirs::from_env())?;
    let run_dir = handoff::run_dir()?;
    let dirs = OverlayDirs::create(run_dir.path())?;
    let container = Container::start(&ContainerSpec {
        namespaces: vec![Namespace::Uts, Namespace::Pid, Namespace::Mount],
        main: vec!["sleep".into(), "infinity".into()],
        ..Default::default()
    })?;
    inside(&container, || {
        mounts::make_tree_private()?;
        overlay::mount_overlay(&layers, &dirs)?;
        let merged = &dirs.merged;
        // TODO: through `merged`, write a new etc/motd and delete
        // usr/lib/runtime/libgreet.txt.
        // END TODO
        Ok(())
    })?;

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
