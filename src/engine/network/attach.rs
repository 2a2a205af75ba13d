//! A container's place on a network: the veth pair between the host's
//! bridge and the container's network namespace, and its removal, also of
//! what a run that died left behind.

use std::net::Ipv4Addr;

use super::addresses::allocate;
use super::registry::{Entry, NetworkLock};
use super::shared::{ensure_bridge, teardown};
use super::{Links, Network, NetworkError, PortMapping};
use crate::engine::dirs::LabDirs;
use crate::kernel::net::links::{
    add_address, add_default_route, attach_to_bridge, create_veth, delete_link, move_to_namespace,
    rename, set_up,
};
use crate::kernel::net::netlink::Netlink;
use crate::kernel::net::{nft, op};

/// A container's place on a network. Dropping it removes the veth pair,
/// its published ports and its address; the last one gone from a network
/// also removes its bridge and its table, and the last one of all the
/// sysctl changes.
#[derive(Debug)]
pub struct Attachment {
    pub network: Network,
    pub ip: Ipv4Addr,
    pub name: String,
    pub host_end: String,
    /// The veth end that goes into the container (renamed eth0 there).
    pub peer: String,
    /// The nftables table of its published ports.
    pub table: String,
    pub(super) ports: Vec<PortMapping>,
    pub(super) dirs: LabDirs,
}

// ANCHOR: attach
/// The host's half: an address on `network`, its bridge, the veth pair
/// (named by `link_names` from the address), and the peer moved into the
/// network namespace of process `pid`.
pub fn attach(
    dirs: &LabDirs,
    network: &Network,
    name: &str,
    pid: i32,
    link_names: impl FnOnce(Ipv4Addr) -> (String, String),
) -> Result<Attachment, NetworkError> {
    // Taken once, here, for everything below, and released before the
    // Attachment exists: its Drop takes the lock itself, so it must never
    // run while we hold it (flock would wait for us for ever).
    let lock = NetworkLock::take(dirs)?;
    let entry = allocate(&lock, network, name, pid, link_names)?;
    if let Err(err) = connect(network, &entry, pid) {
        // Undone with the lock we hold.
        if let Err(cleanup) = release(&lock, |e| e.ip == entry.ip && e.name == entry.name) {
            log::warn!("{cleanup}");
        }
        return Err(err);
    }
    drop(lock);
    Ok(Attachment {
        network: network.clone(),
        ip: entry.ip,
        name: entry.name,
        host_end: entry.host_end,
        peer: entry.peer,
        table: entry.table,
        ports: Vec::new(),
        dirs: dirs.clone(),
    })
}

/// Runs inside the container: `ip link set PEER name eth0`, the address,
/// `lo` and `eth0` up, and the default route via the network's bridge.
pub fn configure_inside(network: &Network, peer: &str, ip: Ipv4Addr) -> Result<(), NetworkError> {
    let mut nl = Netlink::open().map_err(op("open a netlink socket in", "the container"))?;
    rename(&mut nl, peer, "eth0")?;
    add_address(&mut nl, "eth0", ip, network.prefix)?;
    set_up(&mut nl, "lo")?;
    set_up(&mut nl, "eth0")?;
    Ok(add_default_route(&mut nl, network.gateway)?)
}
// ANCHOR_END: attach

/// The links of `entry`: the bridge if it is missing, the veth pair on it,
/// the peer moved into process `pid`'s network namespace.
fn connect(network: &Network, entry: &Entry, pid: i32) -> Result<(), NetworkError> {
    let mut nl = Netlink::open().map_err(op("open a netlink socket in", "this namespace"))?;
    ensure_bridge(&mut nl, network)?;
    // Links with these names can only be a dead run's: the address, and
    // with it the names, are ours now.
    delete_link(&mut nl, &entry.host_end)?;
    delete_link(&mut nl, &entry.peer)?;
    create_veth(&mut nl, &entry.host_end, &entry.peer)?;
    attach_to_bridge(&mut nl, &entry.host_end, &network.bridge)?;
    set_up(&mut nl, &entry.host_end)?;
    Ok(move_to_namespace(&mut nl, &entry.peer, pid as u32)?)
}

impl Attachment {
    /// The names it was made with, for the container's record.
    pub fn links(&self) -> Links {
        Links {
            network: self.network.name.clone(),
            host_end: self.host_end.clone(),
            peer: self.peer.clone(),
            table: self.table.clone(),
        }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let result = NetworkLock::take(&self.dirs)
            .and_then(|lock| release(&lock, |e| e.ip == self.ip && e.name == self.name));
        if let Err(err) = result {
            log::warn!("{err}");
        }
    }
}

// ANCHOR: reclaim
/// Deletes the entries `release` picks and every dead one, with their
/// links and tables (by the names written down with them); returns the
/// others.
pub(super) fn remove_dead(entries: Vec<Entry>, release: impl Fn(&Entry) -> bool) -> Vec<Entry> {
    let (gone, kept): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| release(e) || !e.is_alive());
    if !gone.is_empty() {
        let mut nl = Netlink::open().ok();
        for entry in &gone {
            nft::delete_table(&entry.table);
            if let Some(nl) = nl.as_mut() {
                for link in [&entry.host_end, &entry.peer] {
                    if let Err(err) = delete_link(nl, link) {
                        log::warn!("{err}");
                    }
                }
            }
        }
    }
    kept
}

/// Under the lock: `remove_dead`, the file rewritten, and what a network's
/// containers share removed when none of them is left.
fn release(lock: &NetworkLock, which: impl Fn(&Entry) -> bool) -> Result<(), NetworkError> {
    let entries = lock.entries()?;
    // The default bridge is always looked at: a killed run may have made
    // it before it wrote anything down.
    let mut networks = vec![Network::default_bridge().name];
    networks.extend(entries.iter().map(|e| e.network.clone()));
    networks.sort();
    networks.dedup();
    let kept = remove_dead(entries, which);
    lock.save(&kept)?;
    let empty: Vec<Network> = networks
        .iter()
        .filter(|name| !kept.iter().any(|e| &e.network == *name))
        .filter_map(|name| Network::named(name))
        .collect();
    teardown(lock, &empty, kept.is_empty());
    Ok(())
}

/// What `rm -f`, `system prune` and a new run with the same name call for
/// the network part of a dead run: removes the address entry of the run
/// named `name`, its veth pair and its table of published ports, if no
/// process of it is alive (PID and start time of the process that attached
/// it and of the container's first process); and a network's bridge and
/// table when no container is left on it, the sysctls when none is left at
/// all. Every other dead run's entry goes too (nobody can use it). A live
/// container's things are never touched. Idempotent: a second call finds
/// nothing to do.
pub fn reclaim(dirs: &LabDirs, name: &str) -> Result<(), NetworkError> {
    let lock = NetworkLock::take(dirs)?;
    release(&lock, |e| e.name == name && !e.is_alive())
}
// ANCHOR_END: reclaim
