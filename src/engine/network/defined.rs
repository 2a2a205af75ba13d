//! User-defined networks (`docker network create`): each one its own
//! bridge (`br-` and the first 12 digits of its ID, as Docker names it),
//! its own subnet (podman's 10.89.N.0/24 unless `--subnet` says otherwise)
//! and its own nftables table, which also keeps it apart from every other
//! network of the lab. A network is a small JSON file in
//! `DATA/networks/NAME.json`, written and removed under the network lock,
//! so two commands never create one name or one subnet twice, and a
//! network is never removed while a container joins it. Its bridge, table
//! and resolver exist only while a container is on it.

use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::attach::remove_dead;
use super::registry::NetworkLock;
use super::shared::teardown;
use super::{Network, NetworkError, NFT_TABLE};
use crate::engine::dirs::LabDirs;
use crate::support::error::{io_err, IoError};
use crate::support::fs::write_atomic;
use crate::support::ids::{pinned_id, random_id};

/// The names Docker has for its own networks: they cannot be created,
/// removed or pruned.
pub const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// One user-defined network, as it is kept on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    pub name: String,
    /// 64 hex digits, as Docker's network IDs.
    pub id: String,
    /// RFC 3339, as Docker writes it.
    pub created: String,
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub internal: bool,
}

impl Definition {
    /// The network value the rest of the engine works with.
    pub fn network(&self) -> Network {
        let short = self.id.get(..12).unwrap_or(&self.id);
        Network {
            name: self.name.clone(),
            bridge: format!("br-{short}"),
            subnet: self.subnet,
            prefix: self.prefix,
            gateway: self.gateway,
            table: format!("{NFT_TABLE}_{short}"),
            internal: self.internal,
            dns: true,
        }
    }
}

/// What `network create` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub name: String,
    /// `--subnet 10.1.2.0/24`
    pub subnet: Option<String>,
    /// `--gateway 10.1.2.1`
    pub gateway: Option<String>,
    pub internal: bool,
    /// The ID to give it (a chapter pins its own); None: a random one,
    /// or a pinned one when the tests ask for pinned IDs.
    pub id: Option<String>,
}

fn dir(dirs: &LabDirs) -> PathBuf {
    dirs.data.join("networks")
}

fn file(dirs: &LabDirs, name: &str) -> PathBuf {
    dir(dirs).join(format!("{name}.json"))
}

/// Docker's rule for network names; it also keeps them safe as file names.
pub fn check_name(name: &str) -> Result<(), NetworkError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if first_ok && rest_ok && name.len() <= 64 {
        Ok(())
    } else {
        Err(NetworkError::BadName(name.to_string()))
    }
}

/// The network called `name`, if `network create` made it.
pub fn find(dirs: &LabDirs, name: &str) -> Result<Option<Definition>, NetworkError> {
    if check_name(name).is_err() {
        return Ok(None);
    }
    let path = file(dirs, name);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| NetworkError::Io(IoError::new("parse", &path, std::io::Error::other(e)))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NetworkError::Io(IoError::new("read", &path, e))),
    }
}

/// Every user-defined network, by name.
pub fn list(dirs: &LabDirs) -> Result<Vec<Definition>, NetworkError> {
    let mut all = Vec::new();
    let entries = match fs::read_dir(dir(dirs)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(all),
        Err(e) => return Err(NetworkError::Io(IoError::new("read", dir(dirs), e))),
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(name) = file_name.strip_suffix(".json") {
            if let Some(definition) = find(dirs, name)? {
                all.push(definition);
            }
        }
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// `network create`: checks the name, the subnet and the gateway against
/// every other network under the lock, then writes the definition. No
/// link exists until the first container joins.
// ANCHOR: create
pub fn create(dirs: &LabDirs, request: &Request) -> Result<Definition, NetworkError> {
    let name = &request.name;
    check_name(name)?;
    if PREDEFINED.contains(&name.as_str()) || name == "default" {
        return Err(NetworkError::Exists(name.clone()));
    }
    let _lock = NetworkLock::take(dirs)?;
    if find(dirs, name)?.is_some() {
        return Err(NetworkError::Exists(name.clone()));
    }
    let mut taken: Vec<Network> = vec![Network::default_bridge()];
    taken.extend(list(dirs)?.iter().map(Definition::network));
    let (subnet, prefix) = match &request.subnet {
        Some(text) => {
            let (subnet, prefix) = parse_subnet(text)?;
            if let Some(other) = taken.iter().find(|n| overlaps(n, subnet, prefix)) {
                return Err(NetworkError::Overlap(
                    text.clone(),
                    other.name.clone(),
                    other.cidr(),
                ));
            }
            (subnet, prefix)
        }
        // podman's choice for the networks it creates: 10.89.N.0/24.
        None => (0..=255u8)
            .map(|n| Ipv4Addr::new(10, 89, n, 0))
            .find(|subnet| !taken.iter().any(|n| overlaps(n, *subnet, 24)))
            .map(|subnet| (subnet, 24))
            .ok_or(NetworkError::NoFreeSubnet)?,
    };
    let gateway = match &request.gateway {
        Some(text) => parse_gateway(text, subnet, prefix)?,
        None => Ipv4Addr::from(u32::from(subnet) + 1),
    };
    let id = match (
        &request.id,
        std::env::var_os(crate::engine::store::PIN_IDS_ENV),
    ) {
        (Some(id), _) => id.clone(),
        (None, Some(_)) => pinned_id(&format!("network:{name}")),
        (None, None) => random_id()?,
    };
    let definition = Definition {
        name: name.clone(),
        id,
        created: crate::support::time::format_rfc3339(SystemTime::now()),
        subnet,
        prefix,
        gateway,
        internal: request.internal,
    };
    dirs.create_dir(&dir(dirs))?;
    let json = serde_json::to_vec_pretty(&definition).expect("a definition serializes");
    write_atomic(&file(dirs, name), &json)?;
    Ok(definition)
}
// ANCHOR_END: create

/// `network rm`: refused while a live container is on it; what dead runs
/// left on it (links, tables, the resolver, its file) goes with it.
pub fn remove(dirs: &LabDirs, name: &str) -> Result<(), NetworkError> {
    if PREDEFINED.contains(&name) {
        return Err(NetworkError::Predefined(name.to_string(), "removed"));
    }
    let lock = NetworkLock::take(dirs)?;
    remove_locked(&lock, name)
}

fn remove_locked(lock: &NetworkLock, name: &str) -> Result<(), NetworkError> {
    let dirs = lock.dirs();
    let Some(definition) = find(dirs, name)? else {
        return Err(NetworkError::NotFound(name.to_string()));
    };
    let entries = remove_dead(lock.entries()?, |_| false);
    let active: Vec<&str> = entries
        .iter()
        .filter(|e| e.network == name)
        .map(|e| e.name.as_str())
        .collect();
    if !active.is_empty() {
        return Err(NetworkError::ActiveEndpoints(
            name.to_string(),
            active.join(", "),
        ));
    }
    lock.save(&entries)?;
    teardown(lock, &[definition.network()], entries.is_empty());
    let path = file(dirs, name);
    fs::remove_file(&path).map_err(io_err("remove", &path))?;
    Ok(())
}

/// `network prune`: every user-defined network no live container is on;
/// returns their names.
pub fn prune(dirs: &LabDirs) -> Result<Vec<String>, NetworkError> {
    let lock = NetworkLock::take(dirs)?;
    let entries = remove_dead(lock.entries()?, |_| false);
    lock.save(&entries)?;
    let mut removed = Vec::new();
    for definition in list(dirs)? {
        if !entries.iter().any(|e| e.network == definition.name) {
            remove_locked(&lock, &definition.name)?;
            removed.push(definition.name);
        }
    }
    Ok(removed)
}

/// `10.1.2.0/24`: the network's own address and a prefix between 16 and
/// 30 (the lab names each container's links by its offset in the subnet,
/// which must fit in an interface name).
pub fn parse_subnet(text: &str) -> Result<(Ipv4Addr, u8), NetworkError> {
    let bad = |why: &str| NetworkError::BadSubnet(text.to_string(), why.to_string());
    let (ip, prefix) = text
        .split_once('/')
        .ok_or_else(|| bad("write it as ADDRESS/PREFIX, e.g. 10.1.2.0/24"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| bad("the address is not an IPv4 address"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| bad("the prefix is not a number"))?;
    if !(16..=30).contains(&prefix) {
        return Err(bad("the lab takes prefixes from /16 to /30"));
    }
    let mask = u32::MAX << (32 - u32::from(prefix));
    if u32::from(ip) & !mask != 0 {
        let base = Ipv4Addr::from(u32::from(ip) & mask);
        return Err(bad(&format!(
            "the address has host bits set; the subnet is {base}/{prefix}"
        )));
    }
    Ok((ip, prefix))
}

fn parse_gateway(text: &str, subnet: Ipv4Addr, prefix: u8) -> Result<Ipv4Addr, NetworkError> {
    let gateway: Ipv4Addr = text.parse().map_err(|_| {
        NetworkError::BadGateway(text.to_string(), "not an IPv4 address".to_string())
    })?;
    let probe = Network {
        subnet,
        prefix,
        gateway: Ipv4Addr::UNSPECIFIED,
        ..Network::default_bridge()
    };
    if !probe.hosts().any(|ip| ip == gateway) {
        return Err(NetworkError::BadGateway(
            text.to_string(),
            format!("not a host address of the subnet {}", probe.cidr()),
        ));
    }
    Ok(gateway)
}

/// Whether `network` and `subnet/prefix` share an address.
fn overlaps(network: &Network, subnet: Ipv4Addr, prefix: u8) -> bool {
    let shorter = network.prefix.min(prefix);
    let mask = u32::MAX << (32 - u32::from(shorter));
    u32::from(network.subnet) & mask == u32::from(subnet) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_and_gateways_are_checked() {
        assert_eq!(
            parse_subnet("10.1.2.0/24").unwrap(),
            (Ipv4Addr::new(10, 1, 2, 0), 24)
        );
        for bad in [
            "10.1.2.0",
            "10.1.2.5/24",
            "10.1.2.0/8",
            "x/24",
            "10.1.2.0/x",
        ] {
            assert!(parse_subnet(bad).is_err(), "{bad}");
        }
        let subnet = Ipv4Addr::new(10, 1, 2, 0);
        assert_eq!(
            parse_gateway("10.1.2.254", subnet, 24).unwrap(),
            Ipv4Addr::new(10, 1, 2, 254)
        );
        for bad in ["10.1.3.1", "10.1.2.0", "10.1.2.255", "gw"] {
            assert!(parse_gateway(bad, subnet, 24).is_err(), "{bad}");
        }
        let bridge = Network::default_bridge();
        assert!(overlaps(&bridge, Ipv4Addr::new(172, 29, 0, 0), 16));
        assert!(!overlaps(&bridge, Ipv4Addr::new(172, 30, 0, 0), 16));
    }

    #[test]
    fn names_follow_dockers_rule() {
        for good in ["web", "a", "my_net.1-x"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "../x", "a/b", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
