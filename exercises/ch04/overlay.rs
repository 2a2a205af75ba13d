//! Exercise ch04-overlay, chapter 4 (overlay layers): stack chapter 4's
//! three layers under a writable one, as an image under a container.
//!
//! Fill in the TODO, then run `lab check ch04-overlay` (or keep `lab watch`
//! running). `lab hint ch04-overlay` helps.

use container_lab::engine::dirs::LabDirs;
use container_lab::kernel::mounts;
use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::overlay::OverlayDirs;
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;
use container_lab::lab::layers;
use container_lab::lab::steps::inside;
use nix::mount::MsFlags;

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    // The layers bottom first (base, runtime, app), and upper/, work/ and
    // merged/ in this exercise's run directory.
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
        // TODO: mount an overlay on dirs.merged: the layers as lowerdir
        // (top first), dirs.upper as upperdir and dirs.work as workdir.
        // END TODO
        Ok(())
    })?;

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
