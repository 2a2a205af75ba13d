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
//!   table, the sysctls), made by the first and removed by the last;
//! - `defined.rs`: user-defined networks (`network create`): each its own
//!   bridge, subnet and table, kept in a file of its own;
//! - `dns.rs`: the resolver of a user-defined network, a small process
//!   fed by a file per network (podman's aardvark-dns shape);
//! - `connect.rs`: `network connect` and `disconnect` of a running
//!   container.

mod addresses;
mod attach;
mod connect;
pub mod defined;
pub mod dns;
mod ports;
mod registry;
mod shared;

use std::net::Ipv4Addr;

pub use self::addresses::{link_names_on, runtime_link_names, veth_names};
pub use self::attach::{
    attach, attach_endpoint, configure_inside, configure_interface, reclaim, Attachment, Endpoint,
};
pub use self::connect::{
    attach_another, connect_running, disconnect, endpoints, rename, EndpointInfo,
};
pub use self::ports::{nft_container_ruleset, PortMapping};
pub use self::shared::{nft_list, nft_ruleset};
use crate::engine::dirs::LabDirs;
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
    /// Its nftables table: masquerade and the loopback guard (and, on a
    /// user-defined network, the isolation from the others).
    pub table: String,
    /// `--internal`: no traffic leaves the bridge, no names are forwarded.
    pub internal: bool,
    /// Whether its containers resolve each other's names (user-defined
    /// networks do; Docker's default bridge does not).
    pub dns: bool,
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
            internal: false,
            dns: false,
        }
    }

    /// The network called `name`: the default bridge, or one that
    /// `network create` made (None when there is none of that name).
    pub fn named(dirs: &LabDirs, name: &str) -> Result<Option<Network>, NetworkError> {
        if name == "bridge" || name == "default" {
            return Ok(Some(Network::default_bridge()));
        }
        Ok(defined::find(dirs, name)?.map(|d| d.network()))
    }

    /// The nameserver a container on this network should use, its
    /// `/etc/resolv.conf` whole: the network's resolver at its gateway. None
    /// on the default bridge, where Docker gives containers a copy of the
    /// host's resolvers instead.
    // ANCHOR: resolv_conf
    pub fn resolv_conf(&self) -> Option<String> {
        self.dns
            .then(|| format!("nameserver {}\noptions ndots:0\n", self.gateway))
    }
    // ANCHOR_END: resolv_conf

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
    #[error("a container named {0} already has an address on network {1}; pick another --name")]
    NameInUse(String, String),
    #[error(
        "Address already in use: {0} belongs to container {1} on network {2}; pick another --ip"
    )]
    AddressInUse(Ipv4Addr, String, String),
    #[error("invalid --ip {0}: not one of the addresses of network {1} ({2}, gateway {3})")]
    AddressOutside(Ipv4Addr, String, String, Ipv4Addr),
    #[error("user specified IP address is supported on user defined networks only; create one with `network create` and use --network")]
    AddressOnDefault,
    #[error(
        "network {0} not found; create it with `network create {0}` or list them with `network ls`"
    )]
    NotFound(String),
    #[error("network with name {0} already exists; pick another name or `network rm {0}` first")]
    Exists(String),
    #[error("{0} is a pre-defined network and cannot be {1}")]
    Predefined(String, &'static str),
    #[error("invalid network name {0:?}: use letters, digits and _ . - (starting with a letter or digit)")]
    BadName(String),
    #[error("invalid subnet {0:?}: {1}")]
    BadSubnet(String, String),
    #[error("invalid gateway {0}: {1}")]
    BadGateway(String, String),
    #[error("subnet {0} overlaps with network {1} ({2}); pick another --subnet")]
    Overlap(String, String, String),
    #[error("no free subnet left in 10.89.0.0/16; give one with --subnet or remove networks")]
    NoFreeSubnet,
    #[error("error while removing network {0}: it has active endpoints ({1}); stop them or `network disconnect` them first")]
    ActiveEndpoints(String, String),
    #[error("container {0} is already connected to network {1}")]
    AlreadyConnected(String, String),
    #[error("container {0} is not connected to network {1}")]
    NotConnected(String, String),
    #[error("the network's resolver failed: {0}")]
    Resolver(String),
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
