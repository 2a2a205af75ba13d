//! Exercise ch05-join, chapter 5 (cgroups): every process of the container
//! in the cgroup, from its first instruction.
//!
//! Fill in the TODO, then run `lab check ch05-join` (or keep `lab watch`
//! running). `lab hint ch05-join` helps.

use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    // The cgroup.procs files of the cgroup the lab made beneath its own.
    let procs_files = handoff::cgroup_procs();
    let container = Container::start(&ContainerSpec {
        main: vec!["sleep".into(), "infinity".into()],
        // TODO: have the container's init join the cgroup before it starts
        // anything: give it the cgroup.procs files.
        // END TODO
        ..Default::default()
    })?;

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
