//! Published ports (`docker run -p`): which host ports a container has,
//! checked against every other live container's under the network lock,
//! and DNATed to it in an nftables table of its own.

use std::net::Ipv4Addr;

use super::attach::{remove_dead, Attachment};
use super::registry::{Entry, NetworkLock};
use super::shared::enable_outbound;
use super::NetworkError;
use crate::kernel::net::{nft, sysctl};
use crate::support::error::io_err;

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
    /// DNATs each port to this container in its own table (named when its
    /// address was allocated: `container_lab_NN`).
    // ANCHOR: publish
    pub fn publish(&mut self, ports: &[PortMapping]) -> Result<(), NetworkError> {
        if ports.is_empty() {
            return Ok(());
        }
        let lock = NetworkLock::take(&self.dirs)?;
        let mut entries = remove_dead(lock.entries()?, |_| false);
        let chosen = choose_ports(&entries, &self.name, ports)?;
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
        enable_outbound(&lock, &self.network)?;
        let localnet = format!("net.ipv4.conf.{}.route_localnet", self.network.bridge);
        sysctl::set(&localnet, "1")?;
        let rules = nft_container_ruleset(&self.table, self.ip, &self.ports);
        Ok(nft::replace_table(&self.table, &rules)?)
    }
    // ANCHOR_END: publish

    /// What Docker's bridge network does for every container: forwarding
    /// on, and the network's table (masquerade, the loopback guard), so
    /// that containers reach beyond the host and replies (and hairpin
    /// traffic) find their way back. Undone by the last container to go.
    pub fn enable_outbound(&self) -> Result<(), NetworkError> {
        let lock = NetworkLock::take(&self.dirs)?;
        enable_outbound(&lock, &self.network)
    }

    /// The published ports, with the host ports that were picked.
    pub fn ports(&self) -> &[PortMapping] {
        &self.ports
    }
}

/// The ports as published: each checked against what the other live
/// containers (and the earlier `-p` of this run) publish, `-p PORT` given a
/// free port.
fn choose_ports(
    entries: &[Entry],
    own_name: &str,
    wanted: &[PortMapping],
) -> Result<Vec<PortMapping>, NetworkError> {
    let others: Vec<(&str, &PortMapping)> = entries
        .iter()
        .filter(|e| e.name != own_name)
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
        .map_err(io_err("pick a free port on", ip.to_string()))?
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
