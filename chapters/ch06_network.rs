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

use clap::Parser;
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::network::{self, Network, PortMapping};
use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::net::netlink::Netlink;
use container_lab::kernel::net::{links, nft, sysctl};
use container_lab::lab;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::narrate::yes_no;
use container_lab::lab::steps::{connect_to_network, show, BusyboxContainer};

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
    cli::finish(run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut book = lab::begin!(&cli.chapter)?;
    let dirs = LabDirs::from_env();
    let net = Network::default_bridge();
    let gateway = net.gateway.to_string();

    book.next(narration::empty())?;
    // ANCHOR: empty
    let a = start_container(&dirs, &format!("{}-a", cli.name), cli)?;
    show(&book, &a.container, &["ip", "link"])?;
    show(
        &book,
        &a.container,
        &["ping", "-c", "1", "-W", "1", &gateway],
    )?;
    // ANCHOR_END: empty

    book.next(narration::veth())?;
    // ANCHOR: veth
    let mut a_net = connect_to_network(&dirs, &a.name, &a.container)?;
    let bridge = format!("bridge {} {gateway}/24", net.bridge);
    let host_end = &a_net.host_end;
    book.fact("host side", format!("{bridge}, {host_end} attached to it"));
    show(&book, &a.container, &["ip", "-4", "addr", "show", "eth0"])?;
    show(&book, &a.container, &["ip", "route"])?;
    show(
        &book,
        &a.container,
        &["ping", "-c", "1", "-W", "2", "-q", &gateway],
    )?;
    // ANCHOR_END: veth

    book.next(narration::two())?;
    // ANCHOR: two
    let b = start_container(&dirs, &format!("{}-b", cli.name), cli)?;
    let mut b_net = connect_to_network(&dirs, &b.name, &b.container)?;
    let (a_ip, b_ip) = (a_net.ip, b_net.ip);
    let who = format!("{} has {a_ip}, {} has {b_ip}", a.name, b.name);
    book.fact("addresses", who);
    for web in [&a.container, &b.container] {
        show(&book, web, &["httpd", "-p", "80", "-h", "/www"])?;
    }
    let to_b = b_ip.to_string();
    show(
        &book,
        &a.container,
        &["ping", "-c", "1", "-W", "2", "-q", &to_b],
    )?;
    let b_url = format!("http://{b_ip}/");
    show(&book, &a.container, &["wget", "-q", "-O", "-", &b_url])?;
    for ip in [a_ip, b_ip] {
        let page = http_get(SocketAddr::from((ip, 80)));
        book.fact(&format!("host GET http://{ip}/"), page);
    }
    // ANCHOR_END: two

    book.next(narration::nat(cli.publish, &a.name))?;
    // ANCHOR: nat
    let port = PortMapping {
        host_ip: None,
        host_port: cli.publish,
        container_port: 80,
        protocol: "tcp".into(),
    };
    a_net.publish(std::slice::from_ref(&port))?;
    // The shared table, then the one of a's published port.
    for table in [&net.table, &a_net.table] {
        book.on_host(&format!("nft list table ip {table}"));
        book.output(&nft::list_table(table).unwrap_or_default());
    }
    let localnet = format!("net.ipv4.conf.{}.route_localnet", net.bridge);
    book.fact(&localnet, sysctl::get(&localnet)?);
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, cli.publish));
    book.fact(&format!("host GET http://{local}/"), http_get(local));
    let url = format!("http://{gateway}:{}/", cli.publish);
    show(&book, &b.container, &["wget", "-q", "-O", "-", &url])?;
    // A host port leads to one container: the lab refuses a second claim.
    let second = match b_net.publish(std::slice::from_ref(&port)) {
        Ok(()) => "accepted".to_string(),
        Err(err) => format!("refused: {err}"),
    };
    book.fact(
        &format!("publish {} to {} too", cli.publish, b.name),
        second,
    );
    // ANCHOR_END: nat

    book.user_command_step(&a.container, &cli.container.command)?;

    book.next(narration::cleanup())?;
    // ANCHOR: cleanup
    drop((a_net, b_net));
    a.container.stop(Duration::from_secs(10))?;
    b.container.stop(Duration::from_secs(10))?;
    let left = links::link_names(&mut Netlink::open()?)?;
    book.fact("interfaces left on the host side", left.join(" "));
    let table = network::nft_list(&net).is_some();
    book.fact("lab nftables table left", yes_no(table));
    // ANCHOR_END: cleanup

    book.done(
        "two containers, each with its own network stack, joined by a bridge, \
         reachable through NAT. chapter 7 takes root away from them.",
    );
    Ok(())
}

/// Chapter 3's container with a network namespace too, and a web page
/// that names it.
fn start_container(
    dirs: &LabDirs,
    name: &str,
    cli: &Cli,
) -> anyhow::Result<BusyboxContainer> {
    let page = format!("hello from {name}\n");
    let hostname = &cli.container.hostname;
    BusyboxContainer::start(dirs, name, &NAMESPACES, hostname, |root| {
        std::fs::create_dir_all(root.join("www"))?;
        std::fs::write(root.join("www/index.html"), page)
    })
}

/// A minimal HTTP/1.0 GET from the chapter's own process, in the host's
/// network namespace: the body, or what went wrong.
fn http_get(address: SocketAddr) -> String {
    let get = || -> std::io::Result<String> {
        let mut stream =
            TcpStream::connect_timeout(&address, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
        Ok(body.trim().to_string())
    };
    get().unwrap_or_else(|e| format!("failed: {e}"))
}

/// What the narrator says before each step: its title, the primitive it
/// applies, the shell command that does the same, and what to look at.
mod narration {
    use container_lab::engine::network::Network;
    use container_lab::lab::narrate::Step;

    pub fn empty() -> Step {
        Step::new("a container in a new network namespace")
            .primitive(
                "clone(CLONE_NEWNET | …): a network stack with only a loopback interface, down",
            )
            .shell("unshare --net … ip link")
            .look("nothing but lo, and no route anywhere")
    }

    pub fn veth() -> Step {
        let net = Network::default_bridge();
        let (bridge, gateway) = (&net.bridge, net.gateway);
        Step::new("a bridge on the host and a veth pair into the container")
            .primitive(
                "rtnetlink RTM_NEWLINK (bridge, veth), RTM_SETLINK (master, netns, name, up), \
                 RTM_NEWADDR, RTM_NEWROUTE",
            )
            .shell(format!(
                "ip link add {bridge} type bridge; ip addr add {gateway}/24 dev {bridge}; \
                 ip link add vh-NAME type veth peer name vc-NAME; \
                 ip link set vh-NAME master {bridge} up; ip link set vc-NAME netns PID; \
                 (inside) ip link set vc-NAME name eth0; \
                 ip addr add 172.29.0.2/24 dev eth0; ip link set eth0 up; \
                 ip route add default via {gateway}"
            ))
            .look("eth0 with an address inside, the other end on the bridge, and the gateway answering")
    }

    pub fn two() -> Step {
        Step::new("a second container on the same bridge, both serving port 80")
            .primitive(
                "a second veth pair; each container has its own port 80 in its own network namespace",
            )
            .shell("httpd -p 80 -h /www   (in each container)")
            .look(
                "the containers reach each other by address; the host reaches both; \
                 no port conflict",
            )
    }

    pub fn nat(port: u16, name: &str) -> Step {
        let bridge = Network::default_bridge().bridge;
        Step::new(format!(
            "NAT: masquerade outgoing traffic, publish port {port} to {name}:80"
        ))
        .primitive(
            "nftables: masquerade in postrouting, dnat in prerouting and output, \
             a conntrack guard for route_localnet",
        )
        .shell(format!(
            "nft -f rules.nft; \
             sysctl -w net.ipv4.ip_forward=1 net.ipv4.conf.{bridge}.route_localnet=1"
        ))
        .look(
            "the published port answers on the host's own 127.0.0.1 and on the bridge \
             address from the other container; a second claim on it is refused",
        )
    }

    pub fn cleanup() -> Step {
        let net = Network::default_bridge();
        let (bridge, table) = (&net.bridge, &net.table);
        Step::new("stop both containers and take the network down")
            .primitive(
                "RTM_DELLINK for each host end (its peer goes with it), \
                 a container's table with it, \
                 then the bridge and the shared table with the last container",
            )
            .shell(format!(
                "ip link del vh-NAME; nft delete table ip {table}_2; \
                 ip link del {bridge}; nft delete table ip {table}"
            ))
            .look("the host is back to its loopback interface and no lab rules")
    }
}
