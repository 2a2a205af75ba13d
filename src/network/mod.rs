//! Networking: a bridge on the host side, one veth pair per container, an
//! address for each from the lab's subnet, a default route, and nftables
//! rules for outbound NAT and published ports.
//!
//! Links, addresses and routes are made over rtnetlink, in-process (see
//! `netlink.rs`); the firewall rules are one nftables table of the lab's
//! own, so removing them is one `delete table`.

pub mod netlink;

use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::fcntl::{Flock, FlockArg};

use self::netlink::{Create, Netlink};
use crate::state::LabDirs;

/// The lab's bridge and subnet: pinned, so every run and every snapshot
/// shows the same names and addresses.
pub const BRIDGE: &str = "lab0";
pub const SUBNET: Ipv4Addr = Ipv4Addr::new(172, 29, 0, 0);
pub const PREFIX: u8 = 24;
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 29, 0, 1);
/// The lab's nftables table.
pub const NFT_TABLE: &str = "container_lab";

/// `ip link add NAME type bridge; ip addr add 172.29.0.1/24 dev NAME; ip link set NAME up`
// ANCHOR: bridge
pub fn create_bridge(nl: &mut Netlink) -> Result<(), NetworkError> {
    let mut link = LinkMessage::default();
    link.attributes.push(LinkAttribute::IfName(BRIDGE.into()));
    link.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    nl.request(RouteNetlinkMessage::NewLink(link), Create::New)
        .map_err(op("create bridge", BRIDGE))?;
    add_address(nl, BRIDGE, GATEWAY, PREFIX)?;
    set_up(nl, BRIDGE)
}
// ANCHOR_END: bridge

/// `ip link add HOST type veth peer name PEER`: a pair of virtual Ethernet
/// interfaces; what goes in one end comes out of the other.
// ANCHOR: veth
pub fn create_veth(nl: &mut Netlink, host: &str, peer: &str) -> Result<(), NetworkError> {
    let mut peer_link = LinkMessage::default();
    peer_link
        .attributes
        .push(LinkAttribute::IfName(peer.into()));
    let mut link = LinkMessage::default();
    link.attributes.push(LinkAttribute::IfName(host.into()));
    link.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_link))),
    ]));
    nl.request(RouteNetlinkMessage::NewLink(link), Create::New)
        .map_err(op("create veth pair", host))
}
// ANCHOR_END: veth

/// `ip link set NAME master BRIDGE`
pub fn attach_to_bridge(nl: &mut Netlink, name: &str) -> Result<(), NetworkError> {
    let bridge = index(nl, BRIDGE)?;
    change_link(nl, name, vec![LinkAttribute::Controller(bridge)])
}

/// `ip link set NAME netns PID`: moves a link into the network namespace
/// of process PID (the container's init).
pub fn move_to_namespace(nl: &mut Netlink, name: &str, pid: u32) -> Result<(), NetworkError> {
    change_link(nl, name, vec![LinkAttribute::NetNsPid(pid)])
}

/// `ip link set NAME name NEW` (the link must be down).
pub fn rename(nl: &mut Netlink, name: &str, new_name: &str) -> Result<(), NetworkError> {
    change_link(nl, name, vec![LinkAttribute::IfName(new_name.into())])
}

/// `ip link set NAME up`
pub fn set_up(nl: &mut Netlink, name: &str) -> Result<(), NetworkError> {
    let mut link = LinkMessage::default();
    link.header.index = index(nl, name)?;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    nl.request(RouteNetlinkMessage::SetLink(link), Create::Change)
        .map_err(op("bring up", name))
}

/// `ip addr add IP/PREFIX dev NAME`
pub fn add_address(
    nl: &mut Netlink,
    name: &str,
    ip: Ipv4Addr,
    prefix: u8,
) -> Result<(), NetworkError> {
    let mut address = AddressMessage::default();
    address.header.family = AddressFamily::Inet;
    address.header.prefix_len = prefix;
    address.header.index = index(nl, name)?;
    address.attributes.push(AddressAttribute::Local(ip.into()));
    address
        .attributes
        .push(AddressAttribute::Address(ip.into()));
    nl.request(RouteNetlinkMessage::NewAddress(address), Create::New)
        .map_err(op("add an address to", name))
}

/// `ip route add default via GATEWAY`
pub fn add_default_route(nl: &mut Netlink, gateway: Ipv4Addr) -> Result<(), NetworkError> {
    let mut route = RouteMessage::default();
    route.header.address_family = AddressFamily::Inet;
    route.header.table = RouteHeader::RT_TABLE_MAIN;
    route.header.protocol = RouteProtocol::Boot;
    route.header.scope = RouteScope::Universe;
    route.header.kind = RouteType::Unicast;
    route
        .attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
    nl.request(RouteNetlinkMessage::NewRoute(route), Create::New)
        .map_err(op("add the default route via", gateway))
}

/// `ip link del NAME` (deleting one end of a veth pair deletes both).
pub fn delete_link(nl: &mut Netlink, name: &str) -> Result<(), NetworkError> {
    let Some(index) = nl.index_of(name).map_err(op("list links for", name))? else {
        return Ok(());
    };
    let mut link = LinkMessage::default();
    link.header.index = index;
    match nl.request(RouteNetlinkMessage::DelLink(link), Create::Change) {
        // Gone meanwhile: a veth dies with the network namespace of its
        // peer, and the kernel may finish that just after our lookup.
        Err(err) if err.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        other => other.map_err(op("delete", name)),
    }
}

/// The names of every link in the current network namespace.
pub fn link_names(nl: &mut Netlink) -> Result<Vec<String>, NetworkError> {
    let links = nl.links().map_err(op("list links in", "this namespace"))?;
    Ok(links
        .iter()
        .filter_map(|l| {
            l.attributes.iter().find_map(|a| {
                if let LinkAttribute::IfName(n) = a {
                    Some(n.clone())
                } else {
                    None
                }
            })
        })
        .collect())
}

fn change_link(
    nl: &mut Netlink,
    name: &str,
    attributes: Vec<LinkAttribute>,
) -> Result<(), NetworkError> {
    let mut link = LinkMessage::default();
    link.header.index = index(nl, name)?;
    link.attributes = attributes;
    nl.request(RouteNetlinkMessage::SetLink(link), Create::Change)
        .map_err(op("change", name))
}

fn index(nl: &mut Netlink, name: &str) -> Result<u32, NetworkError> {
    nl.index_of(name)
        .map_err(op("look up", name))?
        .ok_or_else(|| NetworkError::NoSuchLink(name.to_string()))
}

/// Writes a sysctl of the current network namespace (`sysctl -w`).
pub fn set_sysctl(key: &str, value: &str) -> Result<String, NetworkError> {
    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    let old = fs::read_to_string(&path).map_err(|e| NetworkError::Io {
        what: "read",
        path: path.clone(),
        source: e,
    })?;
    fs::write(&path, value).map_err(|e| NetworkError::Io {
        what: "write",
        path: path.clone(),
        source: e,
    })?;
    Ok(old.trim().to_string())
}

/// The rules: masquerade what leaves the lab's subnet, and DNAT each
/// published port, for packets arriving from outside (prerouting) and for
/// the host's own connections (output), which never pass prerouting.
// ANCHOR: nft_rules
pub fn nft_ruleset(published: &[(u16, Ipv4Addr, u16)]) -> String {
    let mut dnat = String::new();
    for (host_port, ip, port) in published {
        dnat.push_str(&format!(
            "    chain prerouting {{ type nat hook prerouting priority -100; fib daddr type local tcp dport {host_port} dnat to {ip}:{port}; }}\n\
             \x20   chain output {{ type nat hook output priority -100; fib daddr type local tcp dport {host_port} dnat to {ip}:{port}; }}\n"
        ));
    }
    format!(
        "table ip {NFT_TABLE} {{\n\
         \x20   chain postrouting {{ type nat hook postrouting priority 100;\n\
         \x20       ip saddr {SUBNET}/{PREFIX} ip daddr != {SUBNET}/{PREFIX} masquerade;\n\
         \x20       oifname \"{BRIDGE}\" ct status dnat masquerade;\n\
         \x20   }}\n{dnat}}}\n"
    )
}
// ANCHOR_END: nft_rules

/// `nft -f -` with the given ruleset text.
pub fn nft_apply(ruleset: &str) -> Result<(), NetworkError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetworkError::Io {
            what: "run",
            path: PathBuf::from("nft"),
            source: e,
        })?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(ruleset.as_bytes())
        .map_err(|e| NetworkError::Io {
            what: "write to",
            path: PathBuf::from("nft"),
            source: e,
        })?;
    let output = child.wait_with_output().map_err(|e| NetworkError::Io {
        what: "run",
        path: PathBuf::from("nft"),
        source: e,
    })?;
    if !output.status.success() {
        return Err(NetworkError::Nft(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// `nft list table ip container_lab`, or None when it does not exist.
pub fn nft_list() -> Option<String> {
    let output = Command::new("nft")
        .args(["list", "table", "ip", NFT_TABLE])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The addresses in use, one line per container: "IP NAME PID", kept in a
/// file under the run directory and changed only under an exclusive lock,
/// so containers started at the same moment never get the same address.
#[derive(Debug)]
pub struct Allocation {
    pub ip: Ipv4Addr,
    pub name: String,
    file: PathBuf,
}

impl Allocation {
    // ANCHOR: allocate
    pub fn allocate(dirs: &LabDirs, name: &str) -> Result<Allocation, NetworkError> {
        let file = dirs.run.join("network").join("addresses");
        with_lock(&file, |entries| {
            // Entries of processes that died without cleaning up are stale.
            // (their veths went with their network namespaces; their
            // published ports did not).
            entries.retain(|e| {
                let alive = Path::new(&format!("/proc/{}", e.2)).exists();
                if !alive {
                    nft_delete_table(&container_table(e.0));
                }
                alive
            });
            if entries.iter().any(|e| e.1 == name) {
                return Err(NetworkError::NameInUse(name.to_string()));
            }
            let taken: Vec<Ipv4Addr> = entries.iter().map(|e| e.0).collect();
            let ip = (2..=254u8)
                .map(|host| Ipv4Addr::new(172, 29, 0, host))
                .find(|ip| !taken.contains(ip))
                .ok_or(NetworkError::SubnetFull)?;
            entries.push((ip, name.to_string(), std::process::id()));
            Ok(Allocation {
                ip,
                name: name.to_string(),
                file: file.clone(),
            })
        })
    }
    // ANCHOR_END: allocate

    /// Releases the address; returns how many allocations remain.
    pub fn release(&self) -> Result<usize, NetworkError> {
        with_lock(&self.file, |entries| {
            entries.retain(|e| e.1 != self.name);
            Ok(entries.len())
        })
    }
}

type Entry = (Ipv4Addr, String, u32);

fn with_lock<T>(
    file: &Path,
    change: impl FnOnce(&mut Vec<Entry>) -> Result<T, NetworkError>,
) -> Result<T, NetworkError> {
    let io = |what, source| NetworkError::Io {
        what,
        path: file.to_path_buf(),
        source,
    };
    fs::create_dir_all(file.parent().unwrap_or(Path::new("/")))
        .map_err(|e| io("create the directory of", e))?;
    let lock_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file.with_extension("lock"))
        .map_err(|e| io("open", e))?;
    // Held until this function returns: the whole read-change-write is atomic.
    let _lock =
        Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, e)| io("lock", e.into()))?;
    let text = fs::read_to_string(file).unwrap_or_default();
    let mut entries: Vec<Entry> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some((
                parts.next()?.parse().ok()?,
                parts.next()?.to_string(),
                parts.next()?.parse().ok()?,
            ))
        })
        .collect();
    let result = change(&mut entries)?;
    let text: String = entries
        .iter()
        .map(|(ip, name, pid)| format!("{ip} {name} {pid}\n"))
        .collect();
    let temporary = file.with_extension("new");
    fs::write(&temporary, text).map_err(|e| io("write", e))?;
    fs::rename(&temporary, file).map_err(|e| io("replace", e))?;
    Ok(result)
}

fn op<D: std::fmt::Display>(what: &'static str, name: D) -> impl FnOnce(io::Error) -> NetworkError {
    let name = name.to_string();
    move |source| NetworkError::Netlink { what, name, source }
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("failed to {what} {name}: {source}")]
    Netlink {
        what: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("setting up the container's side failed: {0}")]
    Inside(String),
    #[error("no network interface called {0}")]
    NoSuchLink(String),
    #[error("a container named {0} already has an address; pick another --name")]
    NameInUse(String),
    #[error("the lab's subnet 172.29.0.0/24 is full; stop some containers")]
    SubnetFull,
    #[error(
        "nft refused the lab's rules: {0}; is the nftables package installed and nf_tables loaded?"
    )]
    Nft(String),
    #[error("failed to {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A container's place on the lab's network. Dropping it removes the veth
/// pair, its published ports and its address; the last one gone also
/// removes the bridge, the nftables table and the sysctl changes.
#[derive(Debug)]
pub struct Attachment {
    pub ip: Ipv4Addr,
    pub host_end: String,
    /// The veth end that goes into the container (renamed eth0 there).
    pub peer: String,
    /// `container_lab_NN`: this container's own table of published ports.
    published: Option<String>,
    ports: Vec<PortMapping>,
    allocation: Allocation,
    dirs: LabDirs,
}

/// Everything `docker network connect` would do for one container: an
/// address, the bridge if it is missing, a veth pair with one end on the
/// bridge and the other moved into the container as eth0, and the
/// container's address and default route set from inside it.
// ANCHOR: attach
pub fn attach(
    dirs: &LabDirs,
    name: &str,
    container: &crate::container::Container,
) -> Result<Attachment, NetworkError> {
    let host_end = format!("vh-{}", short(name));
    let peer = format!("vc-{}", short(name));
    let pid = container.pid().as_raw();
    let names = (host_end, peer.clone());
    let attachment = attach_process(dirs, name, pid, |_| names)?;
    // The rest happens inside the container's network namespace.
    let ip = attachment.ip;
    let code = container
        .run_inside(move || match configure_inside(&peer, ip) {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("error: {err}");
                1
            }
        })
        .map_err(|e| NetworkError::Inside(e.to_string()))?;
    if code != 0 {
        return Err(NetworkError::Inside(format!(
            "configuring eth0 failed (exit code {code})"
        )));
    }
    Ok(attachment)
}

/// The host's half: an address, the bridge, the veth pair (named by
/// `link_names` from the address), and the peer moved into the network
/// namespace of process `pid`.
pub fn attach_process(
    dirs: &LabDirs,
    name: &str,
    pid: i32,
    link_names: impl FnOnce(Ipv4Addr) -> (String, String),
) -> Result<Attachment, NetworkError> {
    // Creating the bridge and removing it with the last container happen
    // under one lock, so a container never joins a bridge being deleted.
    let _lock = lock_bridge(dirs)?;
    let allocation = Allocation::allocate(dirs, name)?;
    let (host_end, peer) = link_names(allocation.ip);
    let (host_end, peer) = (host_end.as_str(), peer.as_str());
    let attachment = Attachment {
        ip: allocation.ip,
        host_end: host_end.to_string(),
        peer: peer.to_string(),
        published: None,
        ports: Vec::new(),
        allocation,
        dirs: dirs.clone(),
    };
    let mut nl = Netlink::open().map_err(op("open a netlink socket in", "this namespace"))?;
    if nl
        .index_of(BRIDGE)
        .map_err(op("look up", BRIDGE))?
        .is_none()
    {
        create_bridge(&mut nl)?;
    }
    create_veth(&mut nl, host_end, peer)?;
    attach_to_bridge(&mut nl, host_end)?;
    set_up(&mut nl, host_end)?;
    move_to_namespace(&mut nl, peer, pid as u32)?;
    Ok(attachment)
}

/// Runs inside the container: `ip link set PEER name eth0`, the address,
/// `lo` and `eth0` up, and the default route via the bridge.
pub fn configure_inside(peer: &str, ip: Ipv4Addr) -> Result<(), NetworkError> {
    let mut nl = Netlink::open().map_err(op("open a netlink socket in", "the container"))?;
    rename(&mut nl, peer, "eth0")?;
    add_address(&mut nl, "eth0", ip, PREFIX)?;
    set_up(&mut nl, "lo")?;
    set_up(&mut nl, "eth0")?;
    add_default_route(&mut nl, GATEWAY)
}
// ANCHOR_END: attach

/// Publishes `host_port` on the host to `ip:port` in a container, and turns
/// on what NAT needs: forwarding, and (for connections to 127.0.0.1)
/// routing of loopback-sourced packets out of the bridge.
// ANCHOR: publish
pub fn publish(
    dirs: &LabDirs,
    host_port: u16,
    ip: Ipv4Addr,
    port: u16,
) -> Result<(), NetworkError> {
    remember_sysctl(dirs, "net.ipv4.ip_forward", "1")?;
    remember_sysctl(dirs, &format!("net.ipv4.conf.{BRIDGE}.route_localnet"), "1")?;
    nft_apply(&nft_ruleset(&[(host_port, ip, port)]))
}
// ANCHOR_END: publish

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

/// The rules for one container's published ports, in a table of its own,
/// so that removing them is one `nft delete table` and never touches the
/// rules of another container.
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
    /// `docker run -p`: DNATs each port to this container, in the table
    /// `container_lab_NN` (NN: the last number of its address).
    pub fn publish(&mut self, ports: &[PortMapping]) -> Result<(), NetworkError> {
        if ports.is_empty() {
            return Ok(());
        }
        self.enable_outbound()?;
        remember_sysctl(
            &self.dirs,
            &format!("net.ipv4.conf.{BRIDGE}.route_localnet"),
            "1",
        )?;
        let table = container_table(self.ip);
        nft_apply(&nft_container_ruleset(&table, self.ip, ports))?;
        self.published = Some(table);
        self.ports = ports.to_vec();
        Ok(())
    }

    /// What Docker's bridge network does for every container: forwarding
    /// on, and the shared table's masquerade rules, so that containers
    /// reach beyond the host and replies (and hairpin traffic) find their
    /// way back. Done once, by the first container; undone by the last.
    pub fn enable_outbound(&self) -> Result<(), NetworkError> {
        let _lock = lock_bridge(&self.dirs)?;
        let marker = self.dirs.run.join("network").join("outbound");
        if marker.exists() {
            return Ok(());
        }
        remember_sysctl(&self.dirs, "net.ipv4.ip_forward", "1")?;
        if nft_list().is_none() {
            nft_apply(&nft_ruleset(&[]))?;
        }
        fs::write(&marker, b"").map_err(|e| NetworkError::Io {
            what: "write",
            path: marker.clone(),
            source: e,
        })
    }

    pub fn ports(&self) -> &[PortMapping] {
        &self.ports
    }
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

fn nft_delete_table(table: &str) {
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", table])
        .stderr(Stdio::null())
        .status();
}

/// Sets a sysctl, keeping its first original value to restore later.
fn remember_sysctl(dirs: &LabDirs, key: &str, value: &str) -> Result<(), NetworkError> {
    let file = dirs.run.join("network").join("sysctl.orig");
    let old = set_sysctl(key, value)?;
    let known = fs::read_to_string(&file).unwrap_or_default();
    if !known
        .lines()
        .any(|l| l.split_whitespace().next() == Some(key))
    {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(|e| NetworkError::Io {
                what: "open",
                path: file.clone(),
                source: e,
            })?;
        writeln!(f, "{key} {old}").map_err(|e| NetworkError::Io {
            what: "write",
            path: file.clone(),
            source: e,
        })?;
    }
    Ok(())
}

/// Serialises bridge creation and removal between containers.
fn lock_bridge(dirs: &LabDirs) -> Result<Flock<fs::File>, NetworkError> {
    let path = dirs.run.join("network").join("bridge.lock");
    let io = |what, source| NetworkError::Io {
        what,
        path: path.clone(),
        source,
    };
    fs::create_dir_all(dirs.run.join("network")).map_err(|e| io("create the directory of", e))?;
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io("open", e))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io("lock", e.into()))
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let _lock = lock_bridge(&self.dirs);
        if let Some(table) = &self.published {
            nft_delete_table(table);
        }
        let Ok(mut nl) = Netlink::open() else { return };
        if let Err(err) = delete_link(&mut nl, &self.host_end) {
            eprintln!("warning: {err}");
        }
        match self.allocation.release() {
            Ok(0) => teardown_shared(&mut nl, &self.dirs),
            Ok(_) => {}
            Err(err) => eprintln!("warning: {err}"),
        }
    }
}

/// Removes what a container whose supervisor was killed left behind: its
/// published ports, its veth and its address, if the address is still
/// its own (a stale address may have gone to a new container since).
pub fn remove_leftover(dirs: &LabDirs, name: &str, ip: Ipv4Addr) {
    let _lock = lock_bridge(dirs);
    let file = dirs.run.join("network").join("addresses");
    let remaining = with_lock(&file, |entries| {
        if entries.iter().any(|e| e.0 == ip && e.1 != name) {
            return Ok(None);
        }
        entries.retain(|e| e.0 != ip);
        Ok(Some(entries.len()))
    });
    let Ok(Some(remaining)) = remaining else {
        return;
    };
    nft_delete_table(&container_table(ip));
    let Ok(mut nl) = Netlink::open() else { return };
    let _ = delete_link(&mut nl, &runtime_link_names(ip).0);
    if remaining == 0 {
        teardown_shared(&mut nl, dirs);
    }
}

/// The last container is gone: the bridge, the rules and the sysctls go too.
fn teardown_shared(nl: &mut Netlink, dirs: &LabDirs) {
    if let Err(err) = delete_link(nl, BRIDGE) {
        eprintln!("warning: {err}");
    }
    if nft_list().is_some() {
        nft_delete_table(NFT_TABLE);
    }
    let file = dirs.run.join("network").join("sysctl.orig");
    for line in fs::read_to_string(&file).unwrap_or_default().lines() {
        if let Some((key, value)) = line.split_once(' ') {
            let _ = set_sysctl(key, value);
        }
    }
    let _ = fs::remove_file(&file);
    let _ = fs::remove_file(dirs.run.join("network").join("outbound"));
}

/// Interface names are at most 15 bytes: keep the prefix plus 12.
fn short(name: &str) -> &str {
    let end = name.char_indices().nth(12).map_or(name.len(), |(i, _)| i);
    &name[..end]
}
