//! A container's place on a network: the veth pair between the host's
//! bridge and the container's network namespace, and its removal, also of
//! what a run that died left behind.

use std::net::Ipv4Addr;

use super::addresses::allocate;
use super::registry::{Entry, NetworkLock};
use super::shared::{ensure_bridge, teardown};
use super::{dns, Links, Network, NetworkError, PortMapping};
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
    /// Whether dropping it releases the address (`network connect` hands
    /// it to the container instead: see `keep`).
    pub(super) release_on_drop: bool,
}

/// Who a container is on a network: its name, the aliases it is also
/// known by there (`--network-alias`), and the address it asked for
/// (`--ip`), if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    pub aliases: Vec<String>,
    pub ip: Option<Ipv4Addr>,
}

impl Endpoint {
    pub fn named(name: &str) -> Endpoint {
        Endpoint {
            name: name.to_string(),
            ..Endpoint::default()
        }
    }
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
    attach_endpoint(dirs, network, &Endpoint::named(name), pid, link_names)
}

/// `attach`, with the aliases and the address of `endpoint`; on a network
/// with name resolution, its resolver is started if it does not run yet.
pub fn attach_endpoint(
    dirs: &LabDirs,
    network: &Network,
    endpoint: &Endpoint,
    pid: i32,
    link_names: impl FnOnce(Ipv4Addr) -> (String, String),
) -> Result<Attachment, NetworkError> {
    // Taken once, here, for everything below, and released before the
    // Attachment exists: its Drop takes the lock itself, so it must never
    // run while we hold it (flock would wait for us for ever).
    let lock = NetworkLock::take(dirs)?;
    // A user-defined network may have been removed (or made again) since
    // the caller looked it up: only `network rm` under this lock decides.
    if network.dns && Network::named(dirs, &network.name)?.as_ref() != Some(network) {
        return Err(NetworkError::NotFound(network.name.clone()));
    }
    let entry = allocate(&lock, network, endpoint, pid, link_names)?;
    let connected = connect(network, &entry, pid).and_then(|()| {
        if network.dns {
            dns::ensure_resolver(&lock, network)?;
        }
        Ok(())
    });
    if let Err(err) = connected {
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
        release_on_drop: true,
    })
}

/// Runs inside the container: `ip link set PEER name eth0`, the address,
/// `lo` and `eth0` up, and the default route via the network's bridge.
pub fn configure_inside(network: &Network, peer: &str, ip: Ipv4Addr) -> Result<(), NetworkError> {
    configure_interface(network, peer, ip, "eth0", true)
}

/// `configure_inside` for any interface name; the default route only when
/// `route` (a second network, `network connect`, adds its subnet alone).
pub fn configure_interface(
    network: &Network,
    peer: &str,
    ip: Ipv4Addr,
    interface: &str,
    route: bool,
) -> Result<(), NetworkError> {
    let mut nl = Netlink::open().map_err(op("open a netlink socket in", "the container"))?;
    rename(&mut nl, peer, interface)?;
    add_address(&mut nl, interface, ip, network.prefix)?;
    set_up(&mut nl, "lo")?;
    set_up(&mut nl, interface)?;
    if route {
        add_default_route(&mut nl, network.gateway)?;
    }
    Ok(())
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

    /// The names the container is known by on this network: its own,
    /// then its aliases (what the network's resolver answers for).
    pub fn names(&self) -> Vec<String> {
        let lock = NetworkLock::take(&self.dirs);
        let aliases = lock
            .and_then(|lock| lock.entries())
            .unwrap_or_default()
            .into_iter()
            .find(|e| e.ip == self.ip && e.name == self.name)
            .map(|e| e.aliases)
            .unwrap_or_default();
        std::iter::once(self.name.clone()).chain(aliases).collect()
    }

    /// Leaves the address to the container: it stays while the container's
    /// first process lives, and the next holder of the lock after that
    /// removes it (`network connect`, whose own process ends at once).
    pub fn keep(mut self) {
        self.release_on_drop = false;
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if !self.release_on_drop {
            return;
        }
        // By address on its network, not by name: `rename` may have
        // changed the name since.
        let network = &self.network.name;
        let result = NetworkLock::take(&self.dirs)
            .and_then(|lock| release(&lock, |e| e.ip == self.ip && &e.network == network));
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
pub(super) fn release(
    lock: &NetworkLock,
    which: impl Fn(&Entry) -> bool,
) -> Result<(), NetworkError> {
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
        .filter_map(|name| Network::named(lock.dirs(), name).ok().flatten())
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
