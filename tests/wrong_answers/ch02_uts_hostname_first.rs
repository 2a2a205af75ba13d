//! A typical wrong answer, for tests/exercises.rs: the right namespaces, but the hostname set before cloning.
//! Not an exercise: `lab check` must fail it with the message that explains it.
use container_lab::kernel::hostname;
use container_lab::kernel::namespaces::Namespace;
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    // Wrong: the hostname set before the child has a UTS namespace of its own.
    hostname::set("ex02")?;
    let container = Container::start(&ContainerSpec {
        // TODO: clone the child into new UTS and PID namespaces.
        namespaces: vec![Namespace::Uts, Namespace::Pid],
        // END TODO
        main: vec!["sleep".into(), "infinity".into()],
        ..Default::default()
    })?;

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
