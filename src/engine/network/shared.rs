//! What the containers of a network share: its bridge, its nftables table
//! (masquerade and the loopback guard), forwarding on. The first container
//! makes (or repairs) them; the last one gone removes them, and the
//! sysctls get back the values they had.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use super::registry::NetworkLock;
use super::{Network, NetworkError, NFT_TABLE};
use crate::kernel::net::links::{add_address, bridge_ports, create_bridge, delete_link, set_up};
use crate::kernel::net::netlink::Netlink;
use crate::kernel::net::{nft, op, sysctl, NetError};
use crate::support::error::io_err;

/// A network's own table: masquerade for what leaves its subnet and for
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
pub fn nft_ruleset(network: &Network) -> String {
    let Network { bridge, table, .. } = network;
    let subnet = network.cidr();
    // An internal network's traffic never leaves its bridge.
    let masquerade = if network.internal {
        String::new()
    } else {
        format!("\x20       ip saddr {subnet} ip daddr != {subnet} masquerade;\n")
    };
    format!(
        "table ip {table} {{\n\
         \x20   chain postrouting {{ type nat hook postrouting priority 100;\n\
         {masquerade}\
         \x20       oifname \"{bridge}\" ct status dnat masquerade;\n\
         \x20   }}\n\
         \x20   chain localnet_guard {{ type filter hook prerouting priority -90;\n\
         \x20       iifname \"{bridge}\" ip daddr 127.0.0.0/8 ct status & dnat == 0 drop;\n\
         \x20   }}\n\
         {}\
         }}\n",
        isolation(network)
    )
}
// ANCHOR_END: nft_rules

/// A user-defined network's chains that keep it apart (Docker's
/// DOCKER-ISOLATION chains): nothing is routed between its bridge and
/// another of the lab's (the default `lab0` or a `br-…`), in either
/// direction; its resolver answers only what comes from its own bridge
/// (or from the host itself); an internal network routes nothing at all.
/// The default bridge needs none of its own: each user-defined network
/// drops both directions.
// ANCHOR: isolation
fn isolation(network: &Network) -> String {
    if !network.dns {
        return String::new();
    }
    let Network {
        bridge, gateway, ..
    } = network;
    let default = Network::default_bridge().bridge;
    let internal = if network.internal {
        format!(
            "\x20       iifname \"{bridge}\" oifname != \"{bridge}\" drop;\n\
             \x20       oifname \"{bridge}\" iifname != \"{bridge}\" drop;\n"
        )
    } else {
        String::new()
    };
    format!(
        "\x20   chain isolation {{ type filter hook forward priority -1;\n\
         \x20       iifname \"{bridge}\" oifname != \"{bridge}\" oifname \"br-*\" drop;\n\
         \x20       iifname \"{bridge}\" oifname \"{default}\" drop;\n\
         \x20       oifname \"{bridge}\" iifname \"{default}\" drop;\n\
         {internal}\
         \x20   }}\n\
         \x20   chain resolver {{ type filter hook input priority -1;\n\
         \x20       iifname != \"{bridge}\" iifname \"br-*\" ip daddr {gateway} udp dport 53 drop;\n\
         \x20       iifname \"{default}\" ip daddr {gateway} udp dport 53 drop;\n\
         \x20   }}\n"
    )
}
// ANCHOR_END: isolation

/// `nft list table ip TABLE` of the network, or None when it does not exist.
pub fn nft_list(network: &Network) -> Option<String> {
    nft::list_table(&network.table)
}

/// One of the lab's tables: the default network's (`container_lab`), a
/// user-defined network's (`container_lab_ID12`) or a container's
/// (`container_lab_NN`, `container_lab_ID6_NN`).
fn is_lab_table(name: &str) -> bool {
    name == NFT_TABLE
        || name
            .strip_prefix(NFT_TABLE)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|n| {
                !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_digit() || matches!(b, b'a'..=b'f' | b'_'))
            })
}

/// The bridge, complete: a run killed while making it may have left it
/// without its address or down.
pub(super) fn ensure_bridge(nl: &mut Netlink, network: &Network) -> Result<(), NetworkError> {
    let Network {
        bridge,
        gateway,
        prefix,
        ..
    } = network;
    if nl
        .index_of(bridge)
        .map_err(op("look up", bridge))?
        .is_none()
    {
        return Ok(create_bridge(nl, bridge, *gateway, *prefix)?);
    }
    match add_address(nl, bridge, *gateway, *prefix) {
        Err(NetError::Netlink { source, .. }) if source.raw_os_error() == Some(libc::EEXIST) => {}
        other => other?,
    }
    Ok(set_up(nl, bridge)?)
}

/// Forwarding on (its old value kept for the last container to restore),
/// and the network's table written whole: every start repairs what a
/// killed run may have left half-done, with no "already done" marker to
/// trust.
pub(super) fn enable_outbound(lock: &NetworkLock, network: &Network) -> Result<(), NetworkError> {
    remember_sysctl(lock, "net.ipv4.ip_forward", "1")?;
    Ok(nft::replace_table(&network.table, &nft_ruleset(network))?)
}

/// Sets a sysctl, its original value written down first (once), so that
/// a run killed in between never loses the value to restore.
pub(super) fn remember_sysctl(
    lock: &NetworkLock,
    key: &str,
    value: &str,
) -> Result<(), NetworkError> {
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

/// The networks in `empty` have no container left: their bridges (and any
/// port a killed run left on them) and their tables go. With no container
/// left at all (`last`), every lab table and the sysctls go too. The
/// tables are listed once, and only those that exist are deleted (a
/// deletion that fails costs nft far more than a listing). Without the
/// sysctl file there is no table to look for: it is written before the
/// first table is made and removed after the last one went, so a
/// `--network none` run never starts nft at all.
pub(super) fn teardown(lock: &NetworkLock, empty: &[Network], last: bool) {
    let file = lock.dirs().run.join("network").join("sysctl.orig");
    // The resolvers first: they listen on the bridges' addresses.
    for network in empty.iter().filter(|n| n.dns) {
        super::dns::stop_resolver(lock, network);
    }
    if let Ok(mut nl) = Netlink::open() {
        for network in empty {
            // Deleting a bridge does not delete the links enslaved to it.
            for port in bridge_ports(&mut nl, &network.bridge).unwrap_or_default() {
                let _ = delete_link(&mut nl, &port);
            }
            if let Err(err) = delete_link(&mut nl, &network.bridge) {
                log::warn!("{err}");
            }
        }
    }
    if !file.exists() {
        return;
    }
    for table in nft::tables() {
        if (last && is_lab_table(&table)) || empty.iter().any(|n| n.table == table) {
            nft::delete_table(&table);
        }
    }
    if !last {
        return;
    }
    for line in fs::read_to_string(&file).unwrap_or_default().lines() {
        if let Some((key, value)) = line.split_once(' ') {
            let _ = sysctl::set(key, value);
        }
    }
    let _ = fs::remove_file(&file);
}
