//! Exercise ch02-uts, chapter 2 (namespaces): a hostname of its own.
//!
//! Fill in each TODO, then run `lab check ch02-uts` (or keep `lab watch`
//! running: it checks again on every save). `lab hint ch02-uts` helps.

use container_lab::kernel::hostname;
use container_lab::kernel::namespaces::Namespace;
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;
use container_lab::lab::steps::inside;

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let container = Container::start(&ContainerSpec {
        // TODO: clone the child into new UTS and PID namespaces.
        // END TODO
        main: vec!["sleep".into(), "infinity".into()],
        ..Default::default()
    })?;
    // TODO: set the container's hostname to "ex02", from inside it.
    // END TODO

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
