//! Chapter 6: a network of its own.
//!
//! A container in a new network namespace has nothing but a loopback
//! interface that is down. This chapter connects two containers to a bridge
//! on the host with veth pairs, gives them addresses and a default route,
//! lets them serve HTTP on the same port, and publishes one of them on a
//! host port with nftables NAT, on 127.0.0.1 too, without opening the
//! host's loopback to the containers.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::images::busybox;
use container_lab::engine::network::{self, Network, PortMapping};
use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::net::netlink::Netlink;
use container_lab::kernel::net::{links, nft, sysctl};
use container_lab::lab::chapters;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::narrate::{yes_no, Narrator};
use container_lab::lab::steps::{self, show, BusyboxContainer};
use container_lab::{kernel::signals, lab::privilege};

/// Networking: veth pairs, a bridge, NAT and a published port.
#[derive(Debug, Parser)]
#[command(name = "ch06", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
    #[command(flatten)]
    container: ContainerArgs,
    /// Name of this run; the two containers are NAME-a and NAME-b
    #[arg(long, default_value = "ch06", value_parser = cli::parse_name)]
    name: String,
    /// Host port published to port 80 of the first container (docker's -p HOST:80)
    #[arg(short = 'p', long = "publish", default_value = "8080", value_parser = clap::value_parser!(u16).range(1..))]
    publish: u16,
}

const NAMESPACES: [Namespace; 5] = [
    Namespace::Uts,
    Namespace::Pid,
    Namespace::Ipc,
    Namespace::Mount,
    Namespace::Net,
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    signals::install_interrupt_handler();
    cli::finish(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let chapter = chapters::chapter("ch06").context("ch06 is missing from the manifest")?;
    privilege::ensure_root(
        "ch06",
        "network namespaces, links and firewall rules need CAP_NET_ADMIN",
    )?;
    busybox::find_static()?;
    let mut book = Narrator::new(chapter, &cli.chapter);
    let dirs = LabDirs::from_env();
    let net = Network::default_bridge();
    let (bridge, gateway) = (&net.bridge, net.gateway);
    // The host's loopback must be up for the published port on 127.0.0.1.
    links::set_up(&mut Netlink::open()?, "lo")?;

    // ANCHOR: empty
    book.step("a container in a new network namespace")
        .primitive("clone(CLONE_NEWNET | …): a network stack with only a loopback interface, down")
        .shell("unshare --net … ip link")
        .look("nothing but lo, and no route anywhere")
        .begin()?;
    let a = start_container(&dirs, &format!("{}-a", cli.name), &cli.container.hostname)?;
    show(&book, &a.container, &["ip", "link"])?;
    show(
        &book,
        &a.container,
        &["ping", "-c", "1", "-W", "1", &gateway.to_string()],
    )?;
    // ANCHOR_END: empty

    // ANCHOR: veth
    book.step("a bridge on the host and a veth pair into the container")
        .primitive("rtnetlink RTM_NEWLINK (bridge, veth), RTM_SETLINK (master, netns, name, up), RTM_NEWADDR, RTM_NEWROUTE")
        .shell(format!(
            "ip link add {bridge} type bridge; ip addr add {gateway}/24 dev {bridge}; ip link add vh-NAME type veth peer name vc-NAME; \
             ip link set vh-NAME master {bridge} up; ip link set vc-NAME netns PID; (inside) ip link set vc-NAME name eth0; \
             ip addr add 172.29.0.2/24 dev eth0; ip link set eth0 up; ip route add default via {gateway}"
        ))
        .look("eth0 with an address inside, the other end on the bridge, and the gateway answering")
        .begin()?;
    let mut a_net = steps::connect_to_network(&dirs, &a.name, &a.container)?;
    book.fact(
        "host side",
        format!(
            "bridge {bridge} {gateway}/24, {} attached to it",
            a_net.host_end
        ),
    );
    show(&book, &a.container, &["ip", "-4", "addr", "show", "eth0"])?;
    show(&book, &a.container, &["ip", "route"])?;
    show(
        &book,
        &a.container,
        &["ping", "-c", "1", "-W", "2", "-q", &gateway.to_string()],
    )?;
    // ANCHOR_END: veth

    // ANCHOR: two
    book.step("a second container on the same bridge, both serving port 80")
        .primitive(
            "a second veth pair; each container has its own port 80 in its own network namespace",
        )
        .shell("httpd -p 80 -h /www   (in each container)")
        .look("the containers reach each other by address; the host reaches both; no port conflict")
        .begin()?;
    let b = start_container(&dirs, &format!("{}-b", cli.name), &cli.container.hostname)?;
    let mut b_net = steps::connect_to_network(&dirs, &b.name, &b.container)?;
    book.fact(
        "addresses",
        format!("{} has {}, {} has {}", a.name, a_net.ip, b.name, b_net.ip),
    );
    for container in [&a, &b] {
        show(
            &book,
            &container.container,
            &["httpd", "-p", "80", "-h", "/www"],
        )?;
    }
    show(
        &book,
        &a.container,
        &["ping", "-c", "1", "-W", "2", "-q", &b_net.ip.to_string()],
    )?;
    show(
        &book,
        &a.container,
        &["wget", "-q", "-O", "-", &format!("http://{}/", b_net.ip)],
    )?;
    for (name, net) in [(&a.name, &a_net), (&b.name, &b_net)] {
        book.fact(
            &format!("host GET http://{}/", net.ip),
            http_get(SocketAddr::from((net.ip, 80))).unwrap_or_else(|e| format!("failed: {e}")),
        );
        let _ = name;
    }
    // ANCHOR_END: two

    // ANCHOR: nat
    book.step(format!("NAT: masquerade outgoing traffic, publish port {} to {}:80", cli.publish, a.name))
        .primitive("nftables: masquerade in postrouting, dnat in prerouting and output, a conntrack guard for route_localnet")
        .shell(format!("nft -f rules.nft; sysctl -w net.ipv4.ip_forward=1 net.ipv4.conf.{bridge}.route_localnet=1"))
        .look("the published port answers on the host's own 127.0.0.1 and on the bridge address from the other container; a second claim on it is refused")
        .begin()?;
    let port = PortMapping {
        host_ip: None,
        host_port: cli.publish,
        container_port: 80,
        protocol: "tcp".into(),
    };
    a_net.publish(std::slice::from_ref(&port))?;
    book.on_host(&format!("nft list table ip {}", net.table));
    book.output(&network::nft_list(&net).unwrap_or_default());
    let table = &a_net.table;
    book.on_host(&format!("nft list table ip {table}"));
    book.output(&nft::list_table(table).unwrap_or_default());
    let localnet = format!("net.ipv4.conf.{bridge}.route_localnet");
    book.fact(&localnet, sysctl::get(&localnet)?);
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, cli.publish));
    book.fact(
        &format!("host GET http://{local}/"),
        http_get(local).unwrap_or_else(|e| format!("failed: {e}")),
    );
    show(
        &book,
        &b.container,
        &[
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{gateway}:{}/", cli.publish),
        ],
    )?;
    // A host port leads to one container: the lab refuses a second claim.
    let refused = b_net.publish(std::slice::from_ref(&port));
    book.fact(
        &format!("publish {} to {} too", cli.publish, b.name),
        match refused {
            Ok(()) => "accepted".to_string(),
            Err(err) => format!("refused: {err}"),
        },
    );
    // ANCHOR_END: nat
    // ANCHOR_END: nat

    book.user_command_step(&a.container, &cli.container.command)?;

    // ANCHOR: cleanup
    book.step("stop both containers and take the network down")
        .primitive("RTM_DELLINK for each host end (its peer goes with it), a container's table with it, then the bridge and the shared table with the last container")
        .shell(format!("ip link del vh-NAME; nft delete table ip {0}_2; ip link del {bridge}; nft delete table ip {0}", net.table))
        .look("the host is back to its loopback interface and no lab rules")
        .begin()?;
    drop((a_net, b_net));
    a.container.stop(Duration::from_secs(10))?;
    b.container.stop(Duration::from_secs(10))?;
    let links = links::link_names(&mut Netlink::open()?)?;
    book.fact("interfaces left on the host side", links.join(" "));
    book.fact(
        "lab nftables table left",
        yes_no(network::nft_list(&net).is_some()),
    );
    // ANCHOR_END: cleanup

    book.done("two containers, each with its own network stack, joined by a bridge, reachable through NAT. chapter 7 takes root away from them.");
    Ok(())
}

/// Chapter 3's container with a network namespace too, and a web page
/// that names it.
fn start_container(dirs: &LabDirs, name: &str, hostname: &str) -> anyhow::Result<BusyboxContainer> {
    let page = format!("hello from {name}\n");
    BusyboxContainer::start(dirs, name, &NAMESPACES, hostname, |root| {
        std::fs::create_dir_all(root.join("www"))?;
        std::fs::write(root.join("www/index.html"), page)
    })
}

/// A minimal HTTP/1.0 GET from the chapter's own process, in the host's
/// network namespace: the body, or the error.
fn http_get(address: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string())
}
