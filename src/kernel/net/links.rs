//! Links, addresses and routes over rtnetlink: what `ip link`, `ip addr`
//! and `ip route` do, in-process.

use std::net::Ipv4Addr;

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::netlink::{Create, Netlink};
use super::{op, NetError};

/// `ip link add NAME type bridge; ip addr add ADDRESS/PREFIX dev NAME; ip link set NAME up`
// ANCHOR: bridge
pub fn create_bridge(
    nl: &mut Netlink,
    name: &str,
    address: Ipv4Addr,
    prefix: u8,
) -> Result<(), NetError> {
    let mut link = LinkMessage::default();
    link.attributes.push(LinkAttribute::IfName(name.into()));
    link.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    // A MAC of its own (02:42 and the address, locally administered, as
    // Docker's): without one a bridge takes the lowest of its ports', and
    // when that container goes the gateway's MAC changes under the others'
    // ARP caches, which then lose it for half a minute.
    let [a, b, c, d] = address.octets();
    link.attributes
        .push(LinkAttribute::Address(vec![0x02, 0x42, a, b, c, d]));
    nl.request(RouteNetlinkMessage::NewLink(link), Create::New)
        .map_err(op("create bridge", name))?;
    add_address(nl, name, address, prefix)?;
    set_up(nl, name)
}
// ANCHOR_END: bridge

/// `ip link add HOST type veth peer name PEER`: a pair of virtual Ethernet
/// interfaces; what goes in one end comes out of the other.
// ANCHOR: veth
pub fn create_veth(nl: &mut Netlink, host: &str, peer: &str) -> Result<(), NetError> {
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
pub fn attach_to_bridge(nl: &mut Netlink, name: &str, bridge: &str) -> Result<(), NetError> {
    let bridge = index(nl, bridge)?;
    change_link(nl, name, vec![LinkAttribute::Controller(bridge)])
}

/// `ip link set NAME netns PID`: moves a link into the network namespace
/// of process PID (the container's init).
pub fn move_to_namespace(nl: &mut Netlink, name: &str, pid: u32) -> Result<(), NetError> {
    change_link(nl, name, vec![LinkAttribute::NetNsPid(pid)])
}

/// `ip link set NAME name NEW` (the link must be down).
pub fn rename(nl: &mut Netlink, name: &str, new_name: &str) -> Result<(), NetError> {
    change_link(nl, name, vec![LinkAttribute::IfName(new_name.into())])
}

/// `ip link set NAME up`
pub fn set_up(nl: &mut Netlink, name: &str) -> Result<(), NetError> {
    let mut link = LinkMessage::default();
    link.header.index = index(nl, name)?;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    nl.request(RouteNetlinkMessage::SetLink(link), Create::Change)
        .map_err(op("bring up", name))
}

/// `ip addr add IP/PREFIX dev NAME`
pub fn add_address(nl: &mut Netlink, name: &str, ip: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
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
pub fn add_default_route(nl: &mut Netlink, gateway: Ipv4Addr) -> Result<(), NetError> {
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
pub fn delete_link(nl: &mut Netlink, name: &str) -> Result<(), NetError> {
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
pub fn link_names(nl: &mut Netlink) -> Result<Vec<String>, NetError> {
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
) -> Result<(), NetError> {
    let mut link = LinkMessage::default();
    link.header.index = index(nl, name)?;
    link.attributes = attributes;
    nl.request(RouteNetlinkMessage::SetLink(link), Create::Change)
        .map_err(op("change", name))
}

fn index(nl: &mut Netlink, name: &str) -> Result<u32, NetError> {
    nl.index_of(name)
        .map_err(op("look up", name))?
        .ok_or_else(|| NetError::NoSuchLink(name.to_string()))
}

/// The names of the links enslaved to `bridge`.
pub fn bridge_ports(nl: &mut Netlink, bridge: &str) -> Result<Vec<String>, NetError> {
    let Some(bridge) = nl.index_of(bridge).map_err(op("look up", bridge))? else {
        return Ok(Vec::new());
    };
    let links = nl.links().map_err(op("list links in", "this namespace"))?;
    Ok(links
        .iter()
        .filter(|l| {
            l.attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::Controller(index) if *index == bridge))
        })
        .filter_map(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })
        })
        .collect())
}
