//! Chapter 6: a network of its own, seen with `ip` in each namespace.

use container_lab::kernel::namespaces::Namespace;
use nix::unistd::Pid;

use super::{own_namespace, Check, Subject};
use crate::evidence::{self, Link};

/// The names and addresses the veth exercise uses.
const HOST_END: &str = "veth-ex06";
const PEER: &str = "ex06-peer";
const ADDRESS: &str = "10.200.0.2/24";
const GATEWAY: &str = "10.200.0.1";

pub fn verify(s: &Subject, pid: Pid) -> Vec<Check> {
    match s.ex.id {
        "ch06-loopback" => loopback(s, pid),
        _ => veth(s, pid),
    }
}

fn find<'a>(links: &'a [Link], name: &str) -> Option<&'a Link> {
    links.iter().find(|l| l.name == name)
}

fn state(link: &Link) -> &'static str {
    if link.up {
        "UP"
    } else {
        "DOWN"
    }
}

fn loopback(s: &Subject, pid: Pid) -> Vec<Check> {
    let links = evidence::links(pid);
    let lo = find(&links, "lo");
    vec![
        own_namespace(s, pid, Namespace::Net),
        Check::new(
            lo.is_some_and(|l| l.up),
            "lo is UP inside",
            format!(
                "lo is {} inside: a new network namespace starts with lo down",
                lo.map_or("missing", state)
            ),
        ),
        Check::new(
            lo.is_some_and(|l| l.addresses.iter().any(|a| a == "127.0.0.1/8")),
            "lo has 127.0.0.1/8",
            "lo has no 127.0.0.1/8: the kernel adds it when lo comes up",
        ),
    ]
}

fn veth(s: &Subject, pid: Pid) -> Vec<Check> {
    let inside = evidence::links(pid);
    let host = evidence::links(s.host);
    let eth0 = find(&inside, "eth0");
    let names: Vec<&str> = inside.iter().map(|l| l.name.as_str()).collect();
    let route = evidence::default_route(pid);
    let host_end = find(&host, HOST_END);
    vec![
        Check::new(
            eth0.is_some(),
            format!("the container's links: {}", names.join(", ")),
            if find(&host, PEER).is_some() {
                format!(
                    "{PEER} is still on the host: move it into the container's network \
                     namespace, then rename it eth0"
                )
            } else if find(&inside, PEER).is_some() {
                format!("{PEER} is in the container, but not renamed to eth0")
            } else {
                format!("the container has no eth0; its links: {}", names.join(", "))
            },
        ),
        Check::new(
            eth0.is_some_and(|l| l.up && l.addresses.iter().any(|a| a == ADDRESS)),
            format!("eth0 is UP with {ADDRESS}"),
            match eth0 {
                Some(l) => format!(
                    "eth0 is {} with {}: it needs {ADDRESS}, and to be up",
                    state(l),
                    if l.addresses.is_empty() {
                        "no address".to_string()
                    } else {
                        l.addresses.join(", ")
                    }
                ),
                None => format!("there is no eth0 to carry {ADDRESS}"),
            },
        ),
        Check::new(
            route
                .as_ref()
                .is_some_and(|(gw, dev)| gw == GATEWAY && dev == "eth0"),
            format!("the default route goes via {GATEWAY} on eth0"),
            match &route {
                Some((gw, dev)) => {
                    format!("the default route goes via {gw} on {dev}, not {GATEWAY} on eth0")
                }
                None => format!("the container has no default route: add one via {GATEWAY}"),
            },
        ),
        Check::new(
            host_end.is_some_and(|l| l.up && l.addresses.iter().any(|a| a.starts_with(GATEWAY))),
            format!("the host's end {HOST_END} stayed on the host, UP with {GATEWAY}/24"),
            format!(
                "the host's end {HOST_END} is not on the host as it was: move the peer \
                 ({PEER}), not the host's end"
            ),
        ),
    ]
}
