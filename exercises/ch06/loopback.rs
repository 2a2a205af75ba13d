//! Exercise ch06-loopback, chapter 6 (a network): a network namespace of
//! its own, with its loopback up.
//!
//! Fill in the TODO, then run `lab check ch06-loopback` (or keep `lab
//! watch` running). `lab hint ch06-loopback` helps.

use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::net::links;
use container_lab::kernel::net::netlink::Netlink;
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;
use container_lab::lab::steps::inside;

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let container = Container::start(&ContainerSpec {
        namespaces: vec![
            Namespace::Uts,
            Namespace::Pid,
            Namespace::Mount,
            Namespace::Net,
        ],
        main: vec!["sleep".into(), "infinity".into()],
        ..Default::default()
    })?;
    inside(&container, || {
        // TODO: bring the container's lo up, over rtnetlink.
        // END TODO
        Ok(())
    })?;

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
