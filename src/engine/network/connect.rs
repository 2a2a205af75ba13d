//! `network connect` and `network disconnect` of a running container: a
//! second veth pair into its network namespace (eth1, eth2 …, with the
//! network's subnet but no default route, as Docker does), and its
//! removal. The address is written down as any other, the container's
//! first process its life: it goes when the container does.

use std::fs;
use std::net::Ipv4Addr;

use super::addresses::link_names_on;
use super::attach::{attach_endpoint, configure_interface, release, Attachment, Endpoint};
use super::registry::NetworkLock;
use super::{Network, NetworkError};
use crate::engine::dirs::LabDirs;
use crate::kernel::net::links::link_names;
use crate::kernel::net::netlink::Netlink;
use crate::kernel::net::op;
use crate::support::error::io_err;

/// One live container on a network, as `network inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    pub name: String,
    pub network: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub aliases: Vec<String>,
}

/// Every live container on network `network` (all networks: None).
pub fn endpoints(dirs: &LabDirs, network: Option<&str>) -> Result<Vec<EndpointInfo>, NetworkError> {
    let lock = NetworkLock::take(dirs)?;
    let mut found = Vec::new();
    for entry in lock.entries()? {
        if !entry.is_alive() || network.is_some_and(|n| n != entry.network) {
            continue;
        }
        let prefix = Network::named(dirs, &entry.network)?.map_or(32, |n| n.prefix);
        found.push(EndpointInfo {
            name: entry.name,
            network: entry.network,
            ip: entry.ip,
            prefix,
            aliases: entry.aliases,
        });
    }
    Ok(found)
}

/// `network connect NETWORK CONTAINER`: the container whose first process
/// is `pid` gets an address on `network` and an interface for it; returns
/// the address.
// ANCHOR: connect
pub fn connect_running(
    dirs: &LabDirs,
    network: &Network,
    endpoint: &Endpoint,
    pid: i32,
) -> Result<Ipv4Addr, NetworkError> {
    let attachment = attach_another(dirs, network, endpoint, pid)?;
    let ip = attachment.ip;
    attachment.keep();
    Ok(ip)
}
// ANCHOR_END: connect

/// The container whose first process is `pid` on one more network: its
/// address and its next free `ethN`, outbound traffic on. Dropping the
/// attachment releases them (a start holds it for the container's life).
pub fn attach_another(
    dirs: &LabDirs,
    network: &Network,
    endpoint: &Endpoint,
    pid: i32,
) -> Result<Attachment, NetworkError> {
    let attachment = attach_endpoint(dirs, network, endpoint, pid, |ip| {
        link_names_on(network, ip)
    })
    .map_err(|err| match err {
        NetworkError::NameInUse(name, net) => NetworkError::AlreadyConnected(name, net),
        other => other,
    })?;
    // Inside the container's network namespace, on a thread of our own.
    let netns = format!("/proc/{pid}/ns/net");
    let netns = fs::File::open(&netns).map_err(io_err("open", &netns))?;
    let (peer, ip) = (attachment.peer.clone(), attachment.ip);
    let inside = network.clone();
    let configured = std::thread::spawn(move || -> Result<(), NetworkError> {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetworkError::Inside(format!("setns into the container: {e}")))?;
        let mut nl = Netlink::open().map_err(op("open a netlink socket in", "the container"))?;
        let taken = link_names(&mut nl)?;
        let interface = (1..)
            .map(|n| format!("eth{n}"))
            .find(|name| !taken.contains(name))
            .expect("a free interface name");
        configure_interface(&inside, &peer, ip, &interface, false)
    })
    .join()
    .unwrap_or_else(|_| Err(NetworkError::Inside("the set-up thread panicked".into())));
    configured?;
    attachment.enable_outbound()?;
    Ok(attachment)
}

/// `network disconnect NETWORK CONTAINER`: its veth pair on that network
/// (the interface inside goes with it), its address, its published ports;
/// and the network's bridge, table and resolver if it was the last.
pub fn disconnect(dirs: &LabDirs, network: &Network, name: &str) -> Result<(), NetworkError> {
    let lock = NetworkLock::take(dirs)?;
    let on = |e: &super::registry::Entry| e.name == name && e.network == network.name;
    if !lock.entries()?.iter().any(|e| on(e) && e.is_alive()) {
        return Err(NetworkError::NotConnected(
            name.to_string(),
            network.name.clone(),
        ));
    }
    release(&lock, on)
}

/// `rename` of a running container: its entries on every network take the
/// new name, so that the resolvers answer for it and no longer for the
/// old one (as Docker's sandbox rename does). Its /etc/hosts is left as
/// it is, as Docker leaves it.
pub fn rename(dirs: &LabDirs, old: &str, new: &str) -> Result<(), NetworkError> {
    let lock = NetworkLock::take(dirs)?;
    let mut entries = lock.entries()?;
    let mut changed = false;
    for entry in entries.iter_mut().filter(|e| e.name == old && e.is_alive()) {
        entry.name = new.to_string();
        changed = true;
    }
    if changed {
        lock.save(&entries)?;
    }
    Ok(())
}
