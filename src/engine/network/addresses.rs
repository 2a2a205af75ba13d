//! An address for a container, and the names of everything it will get
//! with it (its veth pair, its table of published ports), written down in
//! the registry before any of it exists: a run killed at any later point
//! is found there, by those names.

use std::net::Ipv4Addr;

use super::attach::remove_dead;
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
    name: &str,
    pid: i32,
    link_names: impl FnOnce(Ipv4Addr) -> (String, String),
) -> Result<Entry, NetworkError> {
    let mut entries = remove_dead(lock.entries()?, |_| false);
    if entries.iter().any(|e| e.name == name) {
        return Err(NetworkError::NameInUse(name.to_string()));
    }
    let taken: Vec<Ipv4Addr> = entries
        .iter()
        .filter(|e| e.network == network.name)
        .map(|e| e.ip)
        .collect();
    let ip = network
        .hosts()
        .find(|ip| !taken.contains(ip))
        .ok_or_else(|| NetworkError::SubnetFull(network.cidr()))?;
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
        table: ports_table(ip),
        network: network.name.clone(),
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
/// (`container_lab_7`); kept in the entry from then on.
fn ports_table(ip: Ipv4Addr) -> String {
    format!("{NFT_TABLE}_{}", ip.octets()[3])
}
