//! Networking: a bridge on the host side, one veth pair per container, an
//! address for each from the lab's subnet, a default route, and nftables
//! rules for outbound NAT and published ports.
//!
//! Links, addresses and routes are made over rtnetlink, in-process (see
//! `netlink.rs`); the firewall rules are nftables tables of the lab's own
//! (one shared, one per container with published ports), so removing them
//! is one `delete table` each. Who holds which address, links and ports is
//! written down in `registry.rs`, under the one network lock.

mod registry;

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use self::registry::{Entry, NetworkLock, Process};
use crate::engine::dirs::LabDirs;
use crate::kernel::net::links::{
    add_address, add_default_route, attach_to_bridge, bridge_ports, create_bridge, create_veth,
    delete_link, move_to_namespace, rename, set_up,
};
use crate::kernel::net::netlink::Netlink;
use crate::kernel::net::{nft, op, sysctl, NetError};
use crate::support::error::{io_err, IoError};

/// The lab's bridge and subnet: pinned, so every run and every snapshot
/// shows the same names and addresses.
pub const BRIDGE: &str = "lab0";
pub const SUBNET: Ipv4Addr = Ipv4Addr::new(172, 29, 0, 0);
pub const PREFIX: u8 = 24;
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 29, 0, 1);
/// The lab's nftables table.
pub const NFT_TABLE: &str = "container_lab";

/// The lab's shared table: masquerade for what leaves the subnet and for
/// DNATed connections into it, and the guard that `route_localnet` needs.
///
/// Publishing on the host's own 127.0.0.1 means DNATing a connection whose
/// source and destination are both 127.0.0.1 to a container. The kernel
/// calls loopback addresses on any other interface "martian" and drops
/// them: it refuses to route the DNATed packet out of the bridge with
/// source 127.0.0.1 (the masquerade that fixes the source comes later, in
/// postrouting), and it refuses the container's replies, whose destination
/// becomes 127.0.0.1 again when conntrack undoes the masquerade in
/// prerouting, before the routing decision. `route_localnet=1` on the
/// bridge lifts both checks, and with them the one that kept every
/// container away from services bound only to the host's 127.0.0.1: a
/// container that writes a frame to 127.0.0.1 at the gateway's MAC reaches
/// them (CVE-2020-8558, the same hole in kube-proxy).
///
/// The guard closes it again, as kube-proxy's fix does: after conntrack
/// and NAT (priority -90, after dstnat's -100), whatever arrives from the
/// bridge for 127.0.0.0/8 and is not part of a connection we DNATed is
/// dropped. What stays allowed is exactly the replies of published ports.
/// (Docker's other answer, a userland proxy per port, would need a
/// process of ours for each port for the container's whole life, and hides
/// the client's address from the container; the rule costs nothing and
/// keeps the whole path in the kernel, where the chapter shows it.)
// ANCHOR: nft_rules
pub fn nft_ruleset() -> String {
    format!(
        "table ip {NFT_TABLE} {{\n\
         \x20   chain postrouting {{ type nat hook postrouting priority 100;\n\
         \x20       ip saddr {SUBNET}/{PREFIX} ip daddr != {SUBNET}/{PREFIX} masquerade;\n\
         \x20       oifname \"{BRIDGE}\" ct status dnat masquerade;\n\
         \x20   }}\n\
         \x20   chain localnet_guard {{ type filter hook prerouting priority -90;\n\
         \x20       iifname \"{BRIDGE}\" ip daddr 127.0.0.0/8 ct status & dnat == 0 drop;\n\
         \x20   }}\n\
         }}\n"
    )
}
// ANCHOR_END: nft_rules

/// `nft list table ip container_lab`, or None when it does not exist.
pub fn nft_list() -> Option<String> {
    nft::list_table(NFT_TABLE)
}

/// The lab's tables in this namespace: the shared one and every
/// container's (`container_lab_NN`).
fn nft_lab_tables() -> Vec<String> {
    nft::tables()
        .into_iter()
        .filter(|name| {
            name == NFT_TABLE
                || name
                    .strip_prefix(NFT_TABLE)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect()
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
    #[error("the lab's subnet 172.29.0.0/24 is full; stop some containers")]
    SubnetFull,
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

/// A container's place on the lab's network. Dropping it removes the veth
/// pair, its published ports and its address; the last one gone also
/// removes the bridge, the nftables table and the sysctl changes.
#[derive(Debug)]
pub struct Attachment {
    pub ip: Ipv4Addr,
    pub name: String,
    pub host_end: String,
    /// The veth end that goes into the container (renamed eth0 there).
    pub peer: String,
    ports: Vec<PortMapping>,
    dirs: LabDirs,
}

// ANCHOR: attach
/// The host's half: an address, the bridge, the veth pair (named by
/// `link_names` from the address), and the peer moved into the network
/// namespace of process `pid`.
pub fn attach_process(
    dirs: &LabDirs,
    name: &str,
    pid: i32,
    link_names: impl FnOnce(Ipv4Addr) -> (String, String),
) -> Result<Attachment, NetworkError> {
    // Taken once, here, for everything below, and released before the
    // Attachment exists: its Drop takes the lock itself, so it must never
    // run while we hold it (flock would wait for us for ever).
    let lock = NetworkLock::take(dirs)?;
    let entry = allocate(&lock, name, pid, link_names)?;
    if let Err(err) = connect(&entry, pid) {
        // Undone with the lock we hold.
        if let Err(cleanup) = release(&lock, |e| e.ip == entry.ip) {
            eprintln!("warning: {cleanup}");
        }
        return Err(err);
    }
    drop(lock);
    Ok(Attachment {
        ip: entry.ip,
        name: entry.name,
        host_end: entry.host_end,
        peer: entry.peer,
        ports: Vec::new(),
        dirs: dirs.clone(),
    })
}

/// Runs inside the container: `ip link set PEER name eth0`, the address,
/// `lo` and `eth0` up, and the default route via the bridge.
pub fn configure_inside(peer: &str, ip: Ipv4Addr) -> Result<(), NetworkError> {
    let mut nl = Netlink::open().map_err(op("open a netlink socket in", "the container"))?;
    rename(&mut nl, peer, "eth0")?;
    add_address(&mut nl, "eth0", ip, PREFIX)?;
    set_up(&mut nl, "lo")?;
    set_up(&mut nl, "eth0")?;
    Ok(add_default_route(&mut nl, GATEWAY)?)
}
// ANCHOR_END: attach

/// An address for container `name`, written down (with the names its
/// links will have) before any link exists. Entries of dead runs are
/// removed first, their links and tables with them: a run killed at any
/// point leaves nothing that blocks this one.
// ANCHOR: allocate
fn allocate(
    lock: &NetworkLock,
    name: &str,
    pid: i32,
    link_names: impl FnOnce(Ipv4Addr) -> (String, String),
) -> Result<Entry, NetworkError> {
    let mut entries = remove_dead(lock.entries()?, |_| false);
    if entries.iter().any(|e| e.name == name) {
        return Err(NetworkError::NameInUse(name.to_string()));
    }
    let taken: Vec<Ipv4Addr> = entries.iter().map(|e| e.ip).collect();
    let ip = (2..=254u8)
        .map(|host| Ipv4Addr::new(172, 29, 0, host))
        .find(|ip| !taken.contains(ip))
        .ok_or(NetworkError::SubnetFull)?;
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
    };
    entries.push(entry.clone());
    lock.save(&entries)?;
    Ok(entry)
}
// ANCHOR_END: allocate

/// The links of `entry`: the bridge if it is missing, the veth pair on it,
/// the peer moved into process `pid`'s network namespace.
fn connect(entry: &Entry, pid: i32) -> Result<(), NetworkError> {
    let mut nl = Netlink::open().map_err(op("open a netlink socket in", "this namespace"))?;
    ensure_bridge(&mut nl)?;
    // Links with these names can only be a dead run's: the address, and
    // with it the names, are ours now.
    delete_link(&mut nl, &entry.host_end)?;
    delete_link(&mut nl, &entry.peer)?;
    create_veth(&mut nl, &entry.host_end, &entry.peer)?;
    attach_to_bridge(&mut nl, &entry.host_end, BRIDGE)?;
    set_up(&mut nl, &entry.host_end)?;
    Ok(move_to_namespace(&mut nl, &entry.peer, pid as u32)?)
}

/// The bridge, complete: a run killed while making it may have left it
/// without its address or down.
fn ensure_bridge(nl: &mut Netlink) -> Result<(), NetworkError> {
    if nl
        .index_of(BRIDGE)
        .map_err(op("look up", BRIDGE))?
        .is_none()
    {
        return Ok(create_bridge(nl, BRIDGE, GATEWAY, PREFIX)?);
    }
    match add_address(nl, BRIDGE, GATEWAY, PREFIX) {
        Err(NetError::Netlink { source, .. }) if source.raw_os_error() == Some(libc::EEXIST) => {}
        other => other?,
    }
    Ok(set_up(nl, BRIDGE)?)
}

// ANCHOR: reclaim
/// Deletes the entries `release` picks and every dead one, with their
/// links and tables (by their names); returns the others.
fn remove_dead(entries: Vec<Entry>, release: impl Fn(&Entry) -> bool) -> Vec<Entry> {
    let (gone, kept): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| release(e) || !e.is_alive());
    if !gone.is_empty() {
        let mut nl = Netlink::open().ok();
        for entry in &gone {
            nft::delete_table(&container_table(entry.ip));
            if let Some(nl) = nl.as_mut() {
                for link in [&entry.host_end, &entry.peer] {
                    if let Err(err) = delete_link(nl, link) {
                        eprintln!("warning: {err}");
                    }
                }
            }
        }
    }
    kept
}

/// Under the lock: `remove_dead`, the file rewritten, and the shared
/// things removed when no container is left.
fn release(lock: &NetworkLock, which: impl Fn(&Entry) -> bool) -> Result<(), NetworkError> {
    let kept = remove_dead(lock.entries()?, which);
    lock.save(&kept)?;
    if kept.is_empty() {
        teardown_shared(lock);
    }
    Ok(())
}

/// What `rm -f`, `system prune` and a new run with the same name call for
/// the network part of a dead run: removes the address entry of the run
/// named `name`, its veth pair and its table of published ports, if no
/// process of it is alive (PID and start time of the process that attached
/// it and of the container's first process); and the bridge, the shared
/// table and the sysctls when no container is left. Every other dead run's
/// entry goes too (nobody can use it). A live container's things are never
/// touched. Idempotent: a second call finds nothing to do.
pub fn reclaim(dirs: &LabDirs, name: &str) -> Result<(), NetworkError> {
    let lock = NetworkLock::take(dirs)?;
    release(&lock, |e| e.name == name && !e.is_alive())
}
// ANCHOR_END: reclaim

/// One `-p` of `docker run`: `[HOST_IP:][HOST_PORT:]PORT[/tcp|udp]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

impl std::fmt::Display for PortMapping {
    /// As `docker ps` shows it: `0.0.0.0:8080->80/tcp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(
            f,
            "{ip}:{}->{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

impl PortMapping {
    /// Whether both would receive the same packets: one protocol, one
    /// port, and one address or either on all of them (0.0.0.0).
    fn overlaps(&self, other: &PortMapping) -> bool {
        let any = |ip: Option<Ipv4Addr>| ip.is_none_or(|ip| ip.is_unspecified());
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && (any(self.host_ip) || any(other.host_ip) || self.host_ip == other.host_ip)
    }
}

/// The rules for one container's published ports, in a table of its own,
/// so that removing them is one `nft delete table` and never touches the
/// rules of another container. Prerouting DNATs what arrives from outside;
/// output DNATs the host's own connections, which never pass prerouting.
// ANCHOR: container_rules
pub fn nft_container_ruleset(table: &str, ip: Ipv4Addr, ports: &[PortMapping]) -> String {
    let mut rules = String::new();
    for port in ports {
        let to_host = match port.host_ip {
            Some(host_ip) if !host_ip.is_unspecified() => format!("ip daddr {host_ip}"),
            _ => "fib daddr type local".to_string(),
        };
        rules.push_str(&format!(
            "{to_host} {} dport {} dnat to {ip}:{}; ",
            port.protocol, port.host_port, port.container_port
        ));
    }
    format!(
        "table ip {table} {{\n\
         \x20   chain prerouting {{ type nat hook prerouting priority -100; {rules}}}\n\
         \x20   chain output {{ type nat hook output priority -100; {rules}}}\n\
         }}\n"
    )
}
// ANCHOR_END: container_rules

impl Attachment {
    /// `docker run -p`: refuses a host port another container (or this
    /// one, twice) already publishes, picks a free one for `-p PORT`, then
    /// DNATs each port to this container in its table `container_lab_NN`
    /// (NN: the last number of its address).
    // ANCHOR: publish
    pub fn publish(&mut self, ports: &[PortMapping]) -> Result<(), NetworkError> {
        if ports.is_empty() {
            return Ok(());
        }
        let lock = NetworkLock::take(&self.dirs)?;
        let mut entries = remove_dead(lock.entries()?, |_| false);
        let chosen = choose_ports(&entries, self.ip, ports)?;
        // Written down before the table exists: a run killed after this is
        // found, table and all, by its entry.
        let ours = entries
            .iter_mut()
            .find(|e| e.ip == self.ip && e.name == self.name)
            .ok_or_else(|| NetworkError::NotAllocated(self.name.clone()))?;
        ours.ports = chosen.clone();
        lock.save(&entries)?;
        self.ports = chosen;
        // The guard first, then the sysctl it guards (the sysctl belongs to
        // the bridge, and goes with it).
        enable_outbound(&lock)?;
        sysctl::set(&format!("net.ipv4.conf.{BRIDGE}.route_localnet"), "1")?;
        let table = container_table(self.ip);
        Ok(nft::replace_table(
            &table,
            &nft_container_ruleset(&table, self.ip, &self.ports),
        )?)
    }
    // ANCHOR_END: publish

    /// What Docker's bridge network does for every container: forwarding
    /// on, and the shared table (masquerade, the loopback guard), so that
    /// containers reach beyond the host and replies (and hairpin traffic)
    /// find their way back. Undone by the last container to go.
    pub fn enable_outbound(&self) -> Result<(), NetworkError> {
        let lock = NetworkLock::take(&self.dirs)?;
        enable_outbound(&lock)
    }

    pub fn ports(&self) -> &[PortMapping] {
        &self.ports
    }

    pub fn links(&self) -> Links {
        Links {
            network: "bridge".to_string(),
            host_end: self.host_end.clone(),
            peer: self.peer.clone(),
            table: container_table(self.ip),
        }
    }
}

/// Forwarding on (its old value kept for the last container to restore),
/// and the shared table written whole: every start repairs what a killed
/// run may have left half-done, with no "already done" marker to trust.
fn enable_outbound(lock: &NetworkLock) -> Result<(), NetworkError> {
    remember_sysctl(lock, "net.ipv4.ip_forward", "1")?;
    Ok(nft::replace_table(NFT_TABLE, &nft_ruleset())?)
}

/// The ports as published: each checked against what the live containers
/// (and the earlier `-p` of this run) publish, `-p PORT` given a free port.
fn choose_ports(
    entries: &[Entry],
    own_ip: Ipv4Addr,
    wanted: &[PortMapping],
) -> Result<Vec<PortMapping>, NetworkError> {
    let others: Vec<(&str, &PortMapping)> = entries
        .iter()
        .filter(|e| e.ip != own_ip)
        .flat_map(|e| e.ports.iter().map(move |p| (e.name.as_str(), p)))
        .collect();
    let mut chosen: Vec<PortMapping> = Vec::new();
    for port in wanted {
        let mut port = port.clone();
        if port.host_port == 0 {
            port.host_port = free_port(&port, |p| {
                others.iter().any(|(_, o)| o.overlaps(p)) || chosen.iter().any(|c| c.overlaps(p))
            })?;
        }
        let refused = |why: String| NetworkError::PortAllocated {
            ip: port.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            port: port.host_port,
            why,
        };
        if let Some((name, _)) = others.iter().find(|(_, o)| o.overlaps(&port)) {
            return Err(refused(format!(
                "container {name} publishes it: pick another host port or stop {name}"
            )));
        }
        if let Some(earlier) = chosen.iter().find(|c| c.overlaps(&port)) {
            return Err(refused(format!(
                "this run publishes it twice ({earlier} and {port}): give each -p its own host port"
            )));
        }
        chosen.push(port);
    }
    Ok(chosen)
}

/// A port the host has free (the kernel picks it when we bind port 0)
/// that no container publishes either.
fn free_port(
    port: &PortMapping,
    published: impl Fn(&PortMapping) -> bool,
) -> Result<u16, NetworkError> {
    let ip = port.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    for _ in 0..64 {
        let picked = if port.protocol == "udp" {
            std::net::UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr())
        } else {
            std::net::TcpListener::bind((ip, 0)).and_then(|s| s.local_addr())
        }
        .map_err(io_err("pick a free port on", PathBuf::from(ip.to_string())))?
        .port();
        let candidate = PortMapping {
            host_port: picked,
            ..port.clone()
        };
        if !published(&candidate) {
            return Ok(picked);
        }
    }
    Err(NetworkError::NoFreePort(port.to_string()))
}

/// mini-docker's names for a container's veth pair: the last number of its
/// address, unique while the address is (`vh-lab7` on the host side).
pub fn runtime_link_names(ip: Ipv4Addr) -> (String, String) {
    let n = ip.octets()[3];
    (format!("vh-lab{n}"), format!("vc-lab{n}"))
}

fn container_table(ip: Ipv4Addr) -> String {
    format!("{NFT_TABLE}_{}", ip.octets()[3])
}

/// Sets a sysctl, its original value written down first (once), so that
/// a run killed in between never loses the value to restore.
fn remember_sysctl(lock: &NetworkLock, key: &str, value: &str) -> Result<(), NetworkError> {
    let file = lock.dirs().run.join("network").join("sysctl.orig");
    let known = fs::read_to_string(&file).unwrap_or_default();
    if !known
        .lines()
        .any(|l| l.split_whitespace().next() == Some(key))
    {
        let old = sysctl::get(key)?;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&file)
            .map_err(io_err("open", &file))?;
        writeln!(f, "{key} {old}").map_err(io_err("write", &file))?;
        f.sync_all().map_err(io_err("write", &file))?;
    }
    Ok(sysctl::set(key, value)?)
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let result = NetworkLock::take(&self.dirs)
            .and_then(|lock| release(&lock, |e| e.ip == self.ip && e.name == self.name));
        if let Err(err) = result {
            eprintln!("warning: {err}");
        }
    }
}

/// No container is left: the bridge (and any port a killed run left on
/// it), every lab table and the sysctls go too.
fn teardown_shared(lock: &NetworkLock) {
    if let Ok(mut nl) = Netlink::open() {
        // Deleting a bridge does not delete the links enslaved to it.
        for port in bridge_ports(&mut nl, BRIDGE).unwrap_or_default() {
            let _ = delete_link(&mut nl, &port);
        }
        if let Err(err) = delete_link(&mut nl, BRIDGE) {
            eprintln!("warning: {err}");
        }
    }
    for table in nft_lab_tables() {
        nft::delete_table(&table);
    }
    let file = lock.dirs().run.join("network").join("sysctl.orig");
    for line in fs::read_to_string(&file).unwrap_or_default().lines() {
        if let Some((key, value)) = line.split_once(' ') {
            let _ = sysctl::set(key, value);
        }
    }
    let _ = fs::remove_file(&file);
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
