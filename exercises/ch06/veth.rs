//! Exercise ch06-veth, chapter 6 (a network): a veth pair with one end in
//! the container, addressed, with a default route through the host's end.
//!
//! Fill in each TODO, then run `lab check ch06-veth` (or keep `lab watch`
//! running). `lab hint ch06-veth` helps.

use std::net::Ipv4Addr;

use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::net::links;
use container_lab::kernel::net::netlink::Netlink;
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;
use container_lab::lab::steps::inside;

/// The host's end and the one for the container, before it is eth0.
const HOST_END: &str = "veth-ex06";
const PEER: &str = "ex06-peer";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);

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
    // The pair, on the host (here, the lab's stand-in host's namespace);
    // the host's end gets the gateway's address.
    let mut nl = Netlink::open()?;
    links::create_veth(&mut nl, HOST_END, PEER)?;
    links::add_address(&mut nl, HOST_END, GATEWAY, 24)?;
    links::set_up(&mut nl, HOST_END)?;
    // TODO: move PEER into the container's network namespace.
    // END TODO
    inside(&container, || {
        let mut nl = Netlink::open()?;
        // TODO: rename PEER to eth0, give it ADDRESS/24, bring it and lo
        // up, and add the default route via GATEWAY.
        // END TODO
        Ok(())
    })?;

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
