//! Networking: a bridge on the host side, one veth pair per container, an
//! address for each from its network's subnet, a default route, and
//! nftables rules for outbound NAT and published ports.
//!
//! A network is a value ([`Network`]): its name, bridge, subnet and
//! gateway. The lab's default bridge is one such value; another network is
//! another value, with a bridge and a subnet of its own.
//!
//! Links, addresses and routes are made over rtnetlink, in-process (see
//! `kernel::net`); the firewall rules are nftables tables of the lab's own
//! (one per network, one per container with published ports), so removing
//! them is one `delete table` each. Who holds which address, links and
//! ports is written down in one file, under one lock (`registry.rs`):
//!
//! - `addresses.rs`: an address and the names of its links, written down
//!   before anything exists;
//! - `attach.rs`: the veth pair, and its removal (also of a dead run's);
//! - `ports.rs`: published ports (`-p`);
//! - `shared.rs`: what a network's containers share (the bridge, its
//!   table, the sysctls), made by the first and removed by the last.

mod addresses;
mod attach;
mod ports;
mod registry;
mod shared;

use std::net::Ipv4Addr;

pub use self::addresses::{runtime_link_names, veth_names};
pub use self::attach::{attach, configure_inside, reclaim, Attachment};
pub use self::ports::{nft_container_ruleset, PortMapping};
pub use self::shared::{nft_list, nft_ruleset};
use crate::kernel::net::NetError;
use crate::support::error::IoError;

/// The prefix of every nftables table of the lab: a network's own is
/// named by it, a container's is `container_lab_NN`.
pub const NFT_TABLE: &str = "container_lab";

/// One network: a bridge on the host, a subnet, and the bridge's own
/// address as the containers' gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// As `--network NAME` names it; `bridge` is the lab's default.
    pub name: String,
    /// The host's bridge that the containers' veth pairs join.
    pub bridge: String,
    /// `subnet/prefix`: where the containers' addresses come from.
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    /// The bridge's address, the containers' default route.
    pub gateway: Ipv4Addr,
    /// Its nftables table: masquerade and the loopback guard.
    pub table: String,
}

impl Network {
    /// The lab's default bridge network (Docker's `bridge`), pinned so that
    /// every run and every snapshot shows the same names and addresses.
    pub fn default_bridge() -> Network {
        Network {
            name: "bridge".to_string(),
            bridge: "lab0".to_string(),
            subnet: Ipv4Addr::new(172, 29, 0, 0),
            prefix: 24,
            gateway: Ipv4Addr::new(172, 29, 0, 1),
            table: NFT_TABLE.to_string(),
        }
    }

    /// The network called `name`. (The default bridge is the only one
    /// yet; user-defined networks will be looked up here too.)
    pub fn named(name: &str) -> Option<Network> {
        let bridge = Network::default_bridge();
        (name == bridge.name).then_some(bridge)
    }

    /// `172.29.0.0/24`
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.subnet, self.prefix)
    }

    /// The addresses a container may get, lowest first: all of the subnet
    /// but its own, its broadcast and the gateway's.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let size = 1u32 << (32 - u32::from(self.prefix.min(30)));
        let base = u32::from(self.subnet);
        (1..size - 1)
            .map(move |offset| Ipv4Addr::from(base + offset))
            .filter(move |ip| *ip != self.gateway)
    }
}

/// The names of what a container got on a network, as they were made:
/// kept in its record, so that nothing has to guess them again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Links {
    /// The network's name (`bridge` for the lab's default one).
    pub network: String,
    /// The veth end on the host, on the network's bridge.
    pub host_end: String,
    /// The veth end moved into the container (renamed eth0 there).
    pub peer: String,
    /// The nftables table of its published ports.
    pub table: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("setting up the container's side failed: {0}")]
    Inside(String),
    #[error("a container named {0} already has an address; pick another --name")]
    NameInUse(String),
    #[error("the network interface {0} belongs to a running container; pick another --name")]
    LinkInUse(String),
    #[error("the lab's subnet {0} is full; stop some containers")]
    SubnetFull(String),
    /// Docker's words, then ours.
    #[error("Bind for {ip}:{port} failed: port is already allocated; {why}")]
    PortAllocated {
        ip: Ipv4Addr,
        port: u16,
        why: String,
    },
    #[error("no free host port left to publish {0}; name one with -p HOST_PORT:PORT")]
    NoFreePort(String),
    #[error("the address of {0} is no longer allocated; stop the container and start it again")]
    NotAllocated(String),
    #[error(
        "this process already holds the lab's network lock (a bug: taking it again would wait for ever)"
    )]
    LockHeld,
    #[error(transparent)]
    State(#[from] crate::engine::dirs::StateError),
    #[error(transparent)]
    Io(#[from] IoError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_bridge_hands_out_2_to_254() {
        let bridge = Network::default_bridge();
        assert_eq!(bridge.cidr(), "172.29.0.0/24");
        let hosts: Vec<Ipv4Addr> = bridge.hosts().collect();
        assert_eq!(hosts.len(), 253);
        assert_eq!(hosts[0], Ipv4Addr::new(172, 29, 0, 2));
        assert_eq!(hosts[252], Ipv4Addr::new(172, 29, 0, 254));
        let other = Network {
            subnet: Ipv4Addr::new(10, 9, 0, 0),
            prefix: 30,
            gateway: Ipv4Addr::new(10, 9, 0, 2),
            ..bridge
        };
        assert_eq!(
            other.hosts().collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 9, 0, 1)]
        );
    }
}
