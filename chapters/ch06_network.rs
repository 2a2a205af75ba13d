//! Chapter 6: a network of its own.
//!
//! A container in a new network namespace has nothing but a loopback
//! interface that is down. This chapter connects two containers to a bridge
//! on the host with veth pairs, gives them addresses and a default route,
//! lets them serve HTTP on the same port, and publishes one of them on a
//! host port with nftables NAT, on 127.0.0.1 too, without opening the
//! host's loopback to the containers. Then two user-defined networks, as
//! `docker network create` makes them: a bridge and a subnet each, a wall
//! between them, and a resolver each that knows its containers by name.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::network::defined::{self, Request};
use container_lab::engine::network::{self, dns, Network, PortMapping};
use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::net::netlink::Netlink;
use container_lab::kernel::net::{links, nft, sysctl};
use container_lab::lab;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::narrate::yes_no;
use container_lab::lab::steps::{
    connect_to_network, join_network, show, BusyboxContainer,
};
use container_lab::support::ids::pinned_id;

/// Networking: veth pairs, a bridge, NAT and a published port.
#[derive(Debug, Parser)]
#[command(name = "ch06", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
    #[command(flatten)]
    container: ContainerArgs,
    /// Name of this run: containers NAME-a to NAME-e, networks NAME-front and NAME-back
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

    book.next(narration::networks(&cli.name))?;
    // ANCHOR: networks
    let front = create_network(&dirs, &format!("{}-front", cli.name))?;
    let back = create_network(&dirs, &format!("{}-back", cli.name))?;
    for n in [&front, &back] {
        let what = format!("bridge {}, subnet {}", n.bridge, n.cidr());
        book.fact(&format!("network {}", n.name), what);
    }
    let c = start_container(&dirs, &format!("{}-c", cli.name), cli)?;
    let c_net = join_network(&dirs, &front, &c.name, &["web"], &c.container)?;
    let d = start_container(&dirs, &format!("{}-d", cli.name), cli)?;
    let d_net = join_network(&dirs, &front, &d.name, &[], &d.container)?;
    let e = start_container(&dirs, &format!("{}-e", cli.name), cli)?;
    let e_net = join_network(&dirs, &back, &e.name, &[], &e.container)?;
    let who = format!(
        "{} {} and {} {} on {}, {} {} on {}",
        c.name,
        c_net.ip,
        d.name,
        d_net.ip,
        front.name,
        e.name,
        e_net.ip,
        back.name
    );
    book.fact("addresses", who);
    // By name and by alias, from a neighbour, through the front resolver.
    let resolver = front.gateway.to_string();
    show(&book, &d.container, &["nslookup", &c.name, &resolver])?;
    show(&book, &d.container, &["nslookup", "web", &resolver])?;
    // The other network's container: no name here, and no way there.
    show(&book, &d.container, &["nslookup", &e.name, &resolver])?;
    let to_e = e_net.ip.to_string();
    show(
        &book,
        &d.container,
        &["ping", "-c", "1", "-W", "1", "-q", &to_e],
    )?;
    // ANCHOR_END: networks

    book.next(narration::resolver(&cli.name))?;
    // ANCHOR: resolver
    let pid = dns::resolver_pid(&dirs, &front.name).unwrap_or(0);
    let pid_file = dns::pid_file(&dirs, &front.name);
    book.fact(
        &format!("resolver of {}", front.name),
        format!("/proc/{pid}"),
    );
    book.fact("written down in", pid_file.display());
    let names = dns::names_file(&dirs, &front.name);
    book.on_host(&format!("cat {}   (IP, processes, names)", names.display()));
    book.output(&without_processes(&std::fs::read_to_string(&names)?));
    book.on_host(&format!("busybox nslookup web {resolver}"));
    book.output(&host_nslookup("web", &resolver));
    let isolation = format!("nft list chain ip {} isolation", front.table);
    book.on_host(&isolation);
    book.output(&nft_chain(&front.table, "isolation"));
    // ANCHOR_END: resolver

    book.user_command_step(&a.container, &cli.container.command)?;

    book.next(narration::cleanup())?;
    // ANCHOR: cleanup
    drop((a_net, b_net, c_net, d_net, e_net));
    for one in [a, b, c, d, e] {
        one.container.stop(Duration::from_secs(10))?;
    }
    for n in [&front, &back] {
        defined::remove(&dirs, &n.name)?;
    }
    let left = links::link_names(&mut Netlink::open()?)?;
    book.fact("interfaces left on the host side", left.join(" "));
    let table = network::nft_list(&net).is_some();
    book.fact("lab nftables table left", yes_no(table));
    let gone = !container_lab::kernel::process::is_alive(pid, 0);
    book.fact(&format!("resolver of {} gone", front.name), yes_no(gone));
    // ANCHOR_END: cleanup

    book.done(
        "containers, each with its own network stack, joined by bridges, \
         reachable through NAT, known by name on their own network and \
         walled off from the others. chapter 7 takes root away from them.",
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

/// `docker network create NAME`, with an ID pinned by its name (so that
/// its bridge has the same name on every run); one that an interrupted
/// run left is removed first.
fn create_network(dirs: &LabDirs, name: &str) -> anyhow::Result<Network> {
    let _ = defined::remove(dirs, name);
    let request = Request {
        name: name.to_string(),
        id: Some(pinned_id(&format!("network:{name}"))),
        ..Request::default()
    };
    Ok(defined::create(dirs, &request)?.network())
}

/// A names file without its PID:START columns (the kernel's numbers).
fn without_processes(text: &str) -> String {
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let names = words.get(3..).unwrap_or_default().join(" ");
            format!("{}  {names}\n", words.first().unwrap_or(&""))
        })
        .collect()
}

/// The host's own busybox asking the resolver: it listens on the host.
fn host_nslookup(name: &str, server: &str) -> String {
    std::process::Command::new("busybox")
        .args(["nslookup", name, server])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_else(|e| format!("busybox: {e}\n"))
}

/// `nft list chain ip TABLE CHAIN`, or nothing.
fn nft_chain(table: &str, chain: &str) -> String {
    std::process::Command::new("nft")
        .args(["list", "chain", "ip", table, chain])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
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

    pub fn networks(name: &str) -> Step {
        Step::new("two user-defined networks, each with a resolver")
            .primitive(
                "a bridge, a subnet and an nftables table per network; \
                 a small DNS server per network on its gateway",
            )
            .shell(format!(
                "docker network create {name}-front; \
                 docker network create {name}-back; \
                 docker run --network {name}-front --network-alias web …"
            ))
            .look(
                "names and the alias resolve on one network; \
                 the other network's container has no name there and no route",
            )
    }

    pub fn resolver(name: &str) -> Step {
        Step::new("the resolver, seen from the host")
            .primitive(
                "a process of the lab's on the host, bound to the gateway's \
                 port 53, fed by a file; nft chains keep the networks apart",
            )
            .shell(format!(
                "cat /run/container-lab/network/dns/{name}-front.names; \
                 nslookup web GATEWAY; nft list chain ip TABLE isolation"
            ))
            .look(
                "no daemon: one process per network, its names in a file, \
                 and drop rules between the bridges",
            )
    }

    pub fn cleanup() -> Step {
        let net = Network::default_bridge();
        let (bridge, table) = (&net.bridge, &net.table);
        Step::new("stop the containers and take the networks down")
            .primitive(
                "RTM_DELLINK for each host end (its peer goes with it), \
                 a container's table with it, \
                 then a network's bridge, table and resolver with its last container",
            )
            .shell(format!(
                "ip link del vh-NAME; nft delete table ip {table}_2; \
                 ip link del {bridge}; nft delete table ip {table}"
            ))
            .look(
                "the host is back to its loopback interface, no lab rules, \
                 and no resolver",
            )
    }
}
