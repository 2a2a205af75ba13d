//! An address for a container, and the names of everything it will get
//! with it (its veth pair, its table of published ports), written down in
//! the registry before any of it exists: a run killed at any later point
//! is found there, by those names.

use std::net::Ipv4Addr;

use super::attach::{remove_dead, Endpoint};
use super::registry::{Entry, NetworkLock, Process};
use super::{Network, NetworkError, NFT_TABLE};

/// An address on `network` for container `name`, written down (with the
/// names its links will have) before any link exists. Entries of dead
/// runs are removed first, their links and tables with them: a run killed
/// at any point leaves nothing that blocks this one.
// ANCHOR: allocate
pub(super) fn allocate(
    lock: &NetworkLock,
    network: &Network,
    endpoint: &Endpoint,
    pid: i32,
    link_names: impl FnOnce(Ipv4Addr) -> (String, String),
) -> Result<Entry, NetworkError> {
    let name = endpoint.name.as_str();
    let mut entries = remove_dead(lock.entries()?, |_| false);
    if entries
        .iter()
        .any(|e| e.name == name && e.network == network.name)
    {
        return Err(NetworkError::NameInUse(
            name.to_string(),
            network.name.clone(),
        ));
    }
    let holder = |ip: Ipv4Addr| entries.iter().find(|e| e.ip == ip);
    let ip = match endpoint.ip {
        // `--ip`: Docker takes it on user-defined networks only.
        Some(_) if !network.dns => return Err(NetworkError::AddressOnDefault),
        Some(ip) if !network.hosts().any(|host| host == ip) => {
            return Err(NetworkError::AddressOutside(
                ip,
                network.name.clone(),
                network.cidr(),
                network.gateway,
            ))
        }
        Some(ip) => match holder(ip) {
            Some(e) => {
                return Err(NetworkError::AddressInUse(
                    ip,
                    e.name.clone(),
                    e.network.clone(),
                ))
            }
            None => ip,
        },
        None => network
            .hosts()
            .find(|ip| holder(*ip).is_none())
            .ok_or_else(|| NetworkError::SubnetFull(network.cidr()))?,
    };
    let (host_end, peer) = link_names(ip);
    for link in [&host_end, &peer] {
        if entries
            .iter()
            .any(|e| &e.host_end == link || &e.peer == link)
        {
            return Err(NetworkError::LinkInUse(link.clone()));
        }
    }
    let entry = Entry {
        ip,
        name: name.to_string(),
        owner: Process::current(),
        container: Process::of(pid),
        host_end,
        peer,
        ports: Vec::new(),
        table: ports_table(network, ip),
        network: network.name.clone(),
        aliases: endpoint.aliases.clone(),
    };
    entries.push(entry.clone());
    lock.save(&entries)?;
    Ok(entry)
}
// ANCHOR_END: allocate

/// mini-docker's names for a container's veth pair: the last number of its
/// address, unique while the address is (`vh-lab7` on the host side).
pub fn runtime_link_names(ip: Ipv4Addr) -> (String, String) {
    let n = ip.octets()[3];
    (format!("vh-lab{n}"), format!("vc-lab{n}"))
}

/// mini-docker's names for a container's veth pair on `network`: on the
/// default bridge as above; on a user-defined one the first 6 digits of
/// the network's ID (from its bridge's name) and the address's offset in
/// its subnet (`vh-3f2a1b-2`), at most 15 bytes for a /16.
pub fn link_names_on(network: &Network, ip: Ipv4Addr) -> (String, String) {
    match network_tag(network) {
        None => runtime_link_names(ip),
        Some(tag) => {
            let n = offset(network, ip);
            (format!("vh-{tag}-{n}"), format!("vc-{tag}-{n}"))
        }
    }
}

/// The first 6 digits of a user-defined network's ID; None for the
/// default bridge.
fn network_tag(network: &Network) -> Option<&str> {
    network
        .bridge
        .strip_prefix("br-")
        .map(|id| id.get(..6).unwrap_or(id))
}

fn offset(network: &Network, ip: Ipv4Addr) -> u32 {
    u32::from(ip) - u32::from(network.subnet)
}

/// The veth pair of a container named `name` (a chapter's): `vh-NAME` on
/// the host, `vc-NAME` into the container; interface names are at most 15
/// bytes, so the name is cut to 12.
pub fn veth_names(name: &str) -> (String, String) {
    (format!("vh-{}", short(name)), format!("vc-{}", short(name)))
}

/// Interface names are at most 15 bytes: keep the prefix plus 12.
fn short(name: &str) -> &str {
    let end = name.char_indices().nth(12).map_or(name.len(), |(i, _)| i);
    &name[..end]
}

/// The name the table of published ports gets with the address
/// (`container_lab_7`, or `container_lab_3f2a1b_2` on a user-defined
/// network); kept in the entry from then on.
fn ports_table(network: &Network, ip: Ipv4Addr) -> String {
    match network_tag(network) {
        None => format!("{NFT_TABLE}_{}", ip.octets()[3]),
        Some(tag) => format!("{NFT_TABLE}_{tag}_{}", offset(network, ip)),
    }
}
