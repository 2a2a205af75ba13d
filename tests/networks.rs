//! User-defined networks (`mini-docker network …`), each test inside a
//! network namespace of its own that plays "the host": name resolution by
//! name and alias through the network's resolver, isolation between
//! networks, a name gone after `rm`, other names forwarded to the host's
//! resolvers (a fake one on the test's loopback), `connect` and
//! `disconnect` of a running container, twenty containers on one network,
//! `--network container:NAME`, and nothing left after `network rm`:
//! links, nftables tables, resolver processes, files. Every check is made
//! from outside: `ip` and `nft` in the test's namespace, /proc, the lab's
//! files, and busybox's own `nslookup` and `ping` in the containers.

mod common;

use std::fs;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::lab::{alive, answer, bridge_of, mount_source, Lab, PING};
use container_lab::engine::network::dns;
use serde_json::Value;

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn names_and_aliases_resolve_on_a_user_defined_network_only() {
    let lab = Lab::new("networks-names");
    lab.ok(&["network", "create", "front"]);
    lab.ok(&[
        "run",
        "-d",
        "--name",
        "nweb",
        "--network",
        "front",
        "--network-alias",
        "www",
        "busybox",
        "sleep",
        "60",
    ]);
    let web = lab.ip_of("nweb");
    assert_eq!(web, Ipv4Addr::new(10, 89, 0, 2));
    assert_eq!(lab.lookup("front", "nweb", "10.89.0.1"), Some(web));
    assert_eq!(lab.lookup("front", "WWW", "10.89.0.1"), Some(web));
    assert_eq!(lab.lookup("front", "nosuch", "10.89.0.1"), None);
    // The resolver runs on the host, at the gateway, seen from outside.
    let pid = lab.resolver("front").expect("front has a resolver");
    let sockets = {
        let mut ss = Command::new("ss");
        ss.args(["-uanp"]);
        String::from_utf8_lossy(&lab.host.command(ss).output().unwrap().stdout).into_owned()
    };
    assert!(
        sockets.contains("10.89.0.1:53") && sockets.contains(&format!("pid={pid},")),
        "no resolver of pid {pid} on 10.89.0.1:53:\n{sockets}"
    );
    // The default bridge has no name resolution, as in Docker.
    assert_eq!(lab.lookup("bridge", "nweb", "172.29.0.1"), None);
    assert!(lab.resolver("bridge").is_none());
    // What a container's /etc/resolv.conf should say there.
    let net = container_lab::engine::network::Network::named(&lab.dirs(), "front")
        .unwrap()
        .unwrap();
    assert_eq!(
        net.resolv_conf().as_deref(),
        Some("nameserver 10.89.0.1\noptions ndots:0\n")
    );
    assert_eq!(
        container_lab::engine::network::Network::default_bridge().resolv_conf(),
        None
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn containers_on_different_networks_cannot_reach_each_other() {
    let lab = Lab::new("networks-isolation");
    lab.ok(&["network", "create", "front"]);
    lab.ok(&[
        "network",
        "create",
        "--subnet",
        "10.50.0.0/24",
        "--gateway",
        "10.50.0.254",
        "back",
    ]);
    lab.sleeper("iweb", "front");
    lab.ok(&[
        "run",
        "-d",
        "--name",
        "idb",
        "--network",
        "back",
        "--ip",
        "10.50.0.9",
        "busybox",
        "sleep",
        "60",
    ]);
    lab.ok(&["run", "-d", "--name", "iplain", "busybox", "sleep", "60"]);
    assert_eq!(lab.ip_of("idb"), Ipv4Addr::new(10, 50, 0, 9));
    // Within a network: yes.
    assert!(lab.ping("front", "10.89.0.2"), "front to iweb");
    assert!(lab.ping("back", "10.50.0.9"), "back to idb");
    // Across networks, and to and from the default bridge: no.
    assert!(!lab.ping("front", "10.50.0.9"), "front to idb");
    assert!(!lab.ping("back", "10.89.0.2"), "back to iweb");
    assert!(!lab.ping("bridge", "10.89.0.2"), "bridge to iweb");
    assert!(!lab.ping("front", "172.29.0.2"), "front to iplain");
    // Nor does another network's resolver answer.
    assert_eq!(lab.lookup("back", "iweb", "10.89.0.1"), None);
    assert_eq!(
        lab.lookup("front", "iweb", "10.89.0.1"),
        Some(Ipv4Addr::new(10, 89, 0, 2))
    );
    // The rules that do it, in the network's own table.
    let bridge = bridge_of(&lab, "front");
    let table = format!("container_lab_{}", &bridge[3..]);
    let mut list = Command::new("nft");
    list.args(["list", "table", "ip", &table]);
    let rules =
        String::from_utf8_lossy(&lab.host.command(list).output().unwrap().stdout).into_owned();
    assert!(
        rules.contains(&format!(
            "iifname \"{bridge}\" oifname != \"{bridge}\" oifname \"br-*\" drop"
        )),
        "{rules}"
    );
    // Taken addresses and overlapping subnets are refused, with exit 125
    // for run and 1 for the daemon's refusals.
    let taken = lab.md(&[
        "run",
        "--rm",
        "--network",
        "back",
        "--ip",
        "10.50.0.9",
        "busybox",
        "true",
    ]);
    assert_eq!(taken.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("10.50.0.9 belongs to container idb"));
    let overlap = lab.md(&["network", "create", "--subnet", "10.50.0.0/16", "other"]);
    assert_eq!(overlap.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&overlap.stderr).contains("overlaps with network back"));
    let missing = lab.md(&["run", "--rm", "--network", "nosuch", "busybox", "true"]);
    assert_eq!(missing.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("network nosuch not found"));
    let busy = lab.md(&["network", "rm", "back"]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&busy.stderr).contains("active endpoints (idb)"));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn a_removed_container_is_a_name_gone() {
    let lab = Lab::new("networks-gone");
    lab.ok(&["network", "create", "front"]);
    lab.sleeper("gweb", "front");
    lab.sleeper("gkeep", "front");
    assert!(lab.lookup("front", "gweb", "10.89.0.1").is_some());
    lab.ok(&["rm", "-f", "gweb"]);
    assert_eq!(lab.lookup("front", "gweb", "10.89.0.1"), None);
    let names = fs::read_to_string(dns::names_file(&lab.dirs(), "front")).unwrap();
    assert!(!names.contains(" gweb"), "{names}");
    assert!(names.contains(" gkeep"), "{names}");
    // A container killed behind the lab's back is a name gone at once:
    // the resolver answers only for live processes.
    let doc: Value = serde_json::from_str(&lab.ok(&["inspect", "gkeep"])).unwrap();
    let pid = doc[0]["State"]["Pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    common::wait_for(common::PATIENCE, || (!alive(pid)).then_some(())).unwrap();
    lab.sleeper("gprobe", "front");
    let out = lab.md(&["exec", "gprobe", "nslookup", "gkeep", "10.89.0.1"]);
    assert_eq!(answer(&String::from_utf8_lossy(&out.stdout), "gkeep"), None);
}

/// A fake upstream resolver on the test host's loopback: answers every A
/// question with 192.0.2.7, until `stop`; counts what it answered.
fn fake_upstream(lab: &Lab, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    let netns = lab.host.file.try_clone().unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:53").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut answered = 0;
        let mut buffer = [0u8; 1500];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = socket.recv_from(&mut buffer) else {
                continue;
            };
            let Ok(query) = simple_dns::Packet::parse(&buffer[..n]) else {
                continue;
            };
            let mut reply = simple_dns::Packet::new_reply(query.id());
            reply.questions = query.questions.clone();
            if let Some(q) = query.questions.first() {
                if q.qtype == simple_dns::QTYPE::TYPE(simple_dns::TYPE::A) {
                    reply.answers.push(simple_dns::ResourceRecord::new(
                        q.qname.clone(),
                        simple_dns::CLASS::IN,
                        30,
                        simple_dns::rdata::RData::A(Ipv4Addr::new(192, 0, 2, 7).into()),
                    ));
                }
            }
            let _ = socket.send_to(&reply.build_bytes_vec().unwrap(), from);
            answered += 1;
        }
        answered
    })
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn other_names_are_forwarded_to_the_hosts_resolvers() {
    let lab = Lab::new("networks-forward");
    fs::write(&lab.resolv_conf, "nameserver 127.0.0.1\n").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let upstream = fake_upstream(&lab, stop.clone());
    lab.ok(&["network", "create", "front"]);
    lab.ok(&["network", "create", "--internal", "sealed"]);
    lab.sleeper("fweb", "front");
    let external = lab.lookup("front", "example.test", "10.89.0.1");
    // Its own names are still its own, never asked upstream.
    let own = lab.lookup("front", "fweb", "10.89.0.1");
    // An internal network forwards nothing.
    lab.sleeper("finside", "sealed");
    let sealed = lab.lookup("sealed", "example.test", "10.89.1.1");
    let sealed_own = lab.lookup("sealed", "finside", "10.89.1.1");
    stop.store(true, Ordering::Relaxed);
    let answered = upstream.join().unwrap();
    assert_eq!(external, Some(Ipv4Addr::new(192, 0, 2, 7)));
    assert_eq!(own, Some(Ipv4Addr::new(10, 89, 0, 2)));
    assert_eq!(sealed, None);
    assert_eq!(sealed_own, Some(Ipv4Addr::new(10, 89, 1, 2)));
    // busybox asks for A and AAAA: two questions, both about example.test.
    assert!((1..=4).contains(&answered), "upstream answered {answered}");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn a_running_container_is_connected_and_disconnected() {
    let lab = Lab::new("networks-connect");
    lab.ok(&["network", "create", "front"]);
    lab.ok(&["network", "create", "back"]);
    lab.sleeper("cweb", "front");
    lab.sleeper("cdb", "back");
    let db = lab.ip_of("cdb");
    let db = db.to_string();
    let reach = |lab: &Lab| {
        let mut args = vec!["exec", "cweb"];
        args.extend(PING);
        args.push(&db);
        lab.md(&args)
    };
    assert_ne!(reach(&lab).status.code(), Some(0));
    lab.ok(&["network", "connect", "--alias", "api", "back", "cweb"]);
    let addresses = lab.ok(&["exec", "cweb", "ip", "-o", "-4", "addr"]);
    assert!(
        addresses.contains("eth1") && addresses.contains("10.89.1.3/24"),
        "{addresses}"
    );
    assert_eq!(reach(&lab).status.code(), Some(0));
    // Known on the new network by its name and the alias.
    let out = lab.ok(&["exec", "cdb", "nslookup", "api", "10.89.1.1"]);
    assert_eq!(answer(&out, "api"), Some(Ipv4Addr::new(10, 89, 1, 3)));
    let again = lab.md(&["network", "connect", "back", "cweb"]);
    assert_eq!(again.status.code(), Some(1));
    lab.ok(&["network", "disconnect", "back", "cweb"]);
    let addresses = lab.ok(&["exec", "cweb", "ip", "-o", "-4", "addr"]);
    assert!(!addresses.contains("eth1"), "{addresses}");
    assert_ne!(reach(&lab).status.code(), Some(0));
    let out = lab.md(&["exec", "cdb", "nslookup", "cweb", "10.89.1.1"]);
    assert_eq!(answer(&String::from_utf8_lossy(&out.stdout), "cweb"), None);
    let gone = lab.md(&["network", "disconnect", "back", "cweb"]);
    assert_eq!(gone.status.code(), Some(1));
    // Connected again, then the container removed: its second address
    // goes with it.
    lab.ok(&["network", "connect", "back", "cweb"]);
    lab.ok(&["rm", "-f", "cweb"]);
    let addresses = fs::read_to_string(lab.state.join("run/network/addresses")).unwrap();
    assert!(!addresses.contains(" cweb "), "{addresses}");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn twenty_containers_share_one_network_and_nothing_is_left_after_network_rm() {
    let lab = Lab::new("networks-twenty");
    lab.ok(&["network", "create", "many"]);
    let bridge = bridge_of(&lab, "many");
    let names: Vec<String> = (1..=20).map(|n| format!("t{n:02}")).collect();
    for name in &names {
        lab.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "many",
            "busybox",
            "sleep",
            "120",
        ]);
    }
    let mut ips: Vec<Ipv4Addr> = names.iter().map(|n| lab.ip_of(n)).collect();
    // Each one's name, asked from inside another.
    for (name, ip) in names.iter().zip(&ips) {
        let out = lab.ok(&["exec", "t01", "nslookup", name, "10.89.0.1"]);
        assert_eq!(answer(&out, name), Some(*ip), "{name}");
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20);
    let doc: Value = serde_json::from_str(&lab.ok(&["network", "inspect", "many"])).unwrap();
    assert_eq!(doc[0]["Containers"].as_object().unwrap().len(), 20);
    let resolver = lab.resolver("many").expect("a resolver");
    let mut rm = vec!["rm", "-f"];
    rm.extend(names.iter().map(String::as_str));
    lab.ok(&rm);
    // The last container gone took the bridge and the resolver with it.
    assert!(!alive(resolver), "the resolver outlived the last container");
    assert!(!lab.host.ip(&["-br", "link"]).contains(&bridge));
    lab.ok(&["network", "rm", "many"]);
    lab.assert_network_gone("many", &bridge, Some(resolver));
    let listed = lab.ok(&["network", "ls"]);
    assert!(!listed.contains("many"), "{listed}");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn network_rm_of_a_network_a_killed_run_left_removes_everything() {
    let lab = Lab::new("networks-killed");
    lab.ok(&["network", "create", "front"]);
    let bridge = bridge_of(&lab, "front");
    lab.sleeper("kweb", "front");
    let resolver = lab.resolver("front").expect("a resolver");
    // The supervisor and the container killed: nobody cleans up but the
    // next command.
    let doc: Value = serde_json::from_str(&lab.ok(&["inspect", "kweb"])).unwrap();
    let pid = doc[0]["State"]["Pid"].as_i64().unwrap() as i32;
    for supervisor in common::supervisors_of(doc[0]["Id"].as_str().unwrap()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(supervisor),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    common::wait_for(common::PATIENCE, || (!alive(pid)).then_some(())).unwrap();
    lab.ok(&["rm", "-f", "kweb"]);
    lab.ok(&["network", "rm", "front"]);
    lab.assert_network_gone("front", &bridge, Some(resolver));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn network_container_shares_another_containers_namespace() {
    let lab = Lab::new("networks-shared");
    lab.ok(&["network", "create", "front"]);
    lab.sleeper("sweb", "front");
    lab.sleeper("sside", "container:sweb");
    let pid = |name: &str| lab.pid(name);
    let netns = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let uts = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/uts")).unwrap();
    assert_eq!(netns(pid("sweb")), netns(pid("sside")));
    assert_ne!(uts(pid("sweb")), uts(pid("sside")));
    // Docker bind-mounts the same /etc/hosts, resolv.conf and hostname
    // (the same file: the same device and path in the kernel's mountinfo),
    // and the hostname is the other container's, in a UTS namespace of
    // its own.
    for file in ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"] {
        let web = mount_source(pid("sweb"), file).expect("a mount at the file");
        assert_eq!(Some(web), mount_source(pid("sside"), file), "{file}");
        assert_eq!(
            lab.ok(&["exec", "sweb", "cat", file]),
            lab.ok(&["exec", "sside", "cat", file]),
            "{file}"
        );
    }
    // The kernel's hostname in each one's UTS namespace, read from outside.
    let hostname = |name: &str| {
        let out = Command::new("nsenter")
            .args(["-t", &pid(name).to_string(), "-u", "hostname"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(hostname("sside"), hostname("sweb"));
    let resolv = lab.ok(&["exec", "sside", "cat", "/etc/resolv.conf"]);
    assert!(resolv.starts_with("nameserver 10.89.0.1\n"), "{resolv}");
    let doc: Value = serde_json::from_str(&lab.ok(&["inspect", "sweb"])).unwrap();
    let web_hostname = doc[0]["Config"]["Hostname"].as_str().unwrap().to_string();
    assert_eq!(hostname("sside").trim(), web_hostname);
    let doc: Value = serde_json::from_str(&lab.ok(&["inspect", "sside"])).unwrap();
    assert_eq!(doc[0]["Config"]["Hostname"], web_hostname.as_str());
    // What is the other container's to decide is refused, as Docker does.
    for (flag, value, says) in [
        (
            "-h",
            "mine",
            "conflicting options: hostname and the network mode",
        ),
        (
            "--dns",
            "192.0.2.1",
            "conflicting options: dns and the network mode",
        ),
        (
            "--add-host",
            "db:192.0.2.2",
            "conflicting options: custom host-to-IP mapping and the network mode",
        ),
        (
            "-p",
            "8080:80",
            "conflicting options: port publishing and the container type network mode",
        ),
    ] {
        lab.refused(
            &[
                "run",
                "--rm",
                "--network",
                "container:sweb",
                flag,
                value,
                "busybox",
                "true",
            ],
            says,
        );
    }
    let addresses = lab.ok(&["exec", "sside", "ip", "-o", "-4", "addr"]);
    assert!(addresses.contains("10.89.0.2/24"), "{addresses}");
    let doc: Value = serde_json::from_str(&lab.ok(&["inspect", "sside"])).unwrap();
    assert_eq!(doc[0]["HostConfig"]["NetworkMode"], "container:sweb");
    let stopped = lab.md(&[
        "run",
        "--rm",
        "--network",
        "container:nosuch",
        "busybox",
        "true",
    ]);
    assert_eq!(stopped.status.code(), Some(125));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn network_ls_and_inspect_are_shaped_as_dockers_and_prune_keeps_used_ones() {
    let lab = Lab::new("networks-ls");
    lab.ok(&["network", "create", "--subnet", "10.60.0.0/24", "front"]);
    lab.ok(&["network", "create", "--internal", "unused"]);
    lab.ok(&[
        "run",
        "-d",
        "--name",
        "lweb",
        "--network",
        "front",
        "--network-alias",
        "www",
        "busybox",
        "sleep",
        "60",
    ]);
    let ls = lab.ok(&["network", "ls"]);
    let inspect = lab.ok(&["network", "inspect", "front", "unused"]);
    // A restarted container is known again by its name.
    lab.ok(&["restart", "-t", "0", "lweb"]);
    let again = lab.lookup("front", "www", "10.60.0.1");
    let pruned = lab.ok(&["network", "prune", "-f"]);
    let left = lab.ok(&["network", "ls", "-q"]);
    let missing = lab.md(&["network", "inspect", "nosuch"]);
    let predefined = lab.md(&["network", "rm", "bridge"]);
    assert_eq!(again, Some(Ipv4Addr::new(10, 60, 0, 2)));
    assert_eq!(pruned, "Deleted Networks:\nunused\n");
    assert_eq!(left.lines().count(), 4, "{left}");
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(predefined.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&predefined.stderr).contains("pre-defined network"));
    let mut settings = insta::Settings::clone_current();
    // Only what the clock chooses.
    settings.add_filter(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIME]");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        insta::assert_snapshot!("mini-docker-network-ls", ls);
        insta::assert_snapshot!("mini-docker-network-inspect", inspect);
    });
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn concurrent_creates_and_runs_never_share_a_subnet_or_an_address() {
    let lab = Lab::new("networks-concurrent");
    // Eight creates at once: eight names, eight subnets.
    let creates: Vec<_> = (0..8)
        .map(|n| {
            lab.command(&["network", "create", &format!("par{n}")])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in creates {
        assert!(child.wait().unwrap().success());
    }
    let mut subnets: Vec<String> = (0..8)
        .map(|n| {
            let doc: Value =
                serde_json::from_str(&lab.ok(&["network", "inspect", &format!("par{n}")])).unwrap();
            doc[0]["IPAM"]["Config"][0]["Subnet"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    subnets.sort();
    subnets.dedup();
    assert_eq!(subnets.len(), 8, "{subnets:?}");
    // Ten runs at once on one network: ten addresses, one resolver.
    let runs: Vec<_> = (0..10)
        .map(|n| {
            lab.command(&[
                "run",
                "-d",
                "--name",
                &format!("par-{n}"),
                "--network",
                "par0",
                "busybox",
                "sleep",
                "60",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut child in runs {
        assert!(child.wait().unwrap().success());
    }
    let mut ips: Vec<Ipv4Addr> = (0..10).map(|n| lab.ip_of(&format!("par-{n}"))).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 10, "{ips:?}");
    let names = fs::read_to_string(dns::names_file(&lab.dirs(), "par0")).unwrap();
    assert_eq!(names.lines().count(), 10, "{names}");
    let resolver = lab.resolver("par0").expect("a resolver");
    // Seen from /proc: the processes of this host namespace that hold a
    // socket and nothing else but /dev/null, as the resolver does.
    let netns = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/net")).ok();
    let only_a_socket = |pid: i32| {
        let fds: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| fs::read_link(e.path()).ok())
                    .map(|t| t.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        fds.iter().filter(|t| t.starts_with("socket:")).count() == 1
            && fds
                .iter()
                .all(|t| t.starts_with("socket:") || t == "/dev/null")
    };
    let resolvers: Vec<i32> = common::processes_with("__supervise")
        .into_iter()
        .filter(|pid| netns(*pid) == netns(resolver) && only_a_socket(*pid))
        .collect();
    assert_eq!(
        resolvers,
        [resolver],
        "one resolver for the network, not one per run"
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn a_running_container_renamed_resolves_by_its_new_name_only() {
    let lab = Lab::new("networks-rename");
    lab.ok(&["network", "create", "front"]);
    lab.sleeper("before", "front");
    lab.sleeper("asker", "front");
    let ip = lab.ip_of("before");
    let ask = |name: &str| {
        let out = lab.md(&["exec", "asker", "nslookup", name, "10.89.0.1"]);
        answer(&String::from_utf8_lossy(&out.stdout), name)
    };
    assert_eq!(ask("before"), Some(ip));
    let hosts = lab.ok(&["exec", "before", "cat", "/etc/hosts"]);
    let pid = lab.pid("before");
    lab.ok(&["rename", "before", "after"]);
    // The record and the name index: the new name finds it, the old none.
    assert_eq!(lab.pid("after"), pid);
    assert_eq!(lab.md(&["inspect", "before"]).status.code(), Some(1));
    let names = lab.ok(&["ps", "--format", "{{.Names}}"]);
    assert!(names.lines().any(|n| n == "after"), "{names}");
    assert!(!names.lines().any(|n| n == "before"), "{names}");
    // The network's resolver: the new name answers, the old one does not.
    assert_eq!(ask("after"), Some(ip));
    assert_eq!(ask("before"), None);
    let file = fs::read_to_string(dns::names_file(&lab.dirs(), "front")).unwrap();
    assert!(
        file.contains(" after") && !file.contains(" before"),
        "{file}"
    );
    // /etc/hosts as Docker leaves it: unchanged.
    assert_eq!(lab.ok(&["exec", "after", "cat", "/etc/hosts"]), hosts);
    // Docker's refusals: the same name, a name in use.
    let same = lab.md(&["rename", "after", "after"]);
    assert_eq!(same.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&same.stderr)
        .contains("Renaming a container with the same name as its current name"));
    let taken = lab.md(&["rename", "after", "asker"]);
    assert_eq!(taken.status.code(), Some(1), "{taken:?}");
    // While it runs, its old name still names its cgroup and run directory:
    // a new container cannot take it yet, and says why.
    let reuse = lab.md(&["run", "-d", "--name", "before", "busybox", "true"]);
    assert_ne!(reuse.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&reuse.stderr).contains("already in use"),
        "{reuse:?}"
    );
    // Stopped and removed by its new name, nothing of it is left: its
    // address, its names, its run directory under the old name.
    lab.ok(&["rm", "-f", "after"]);
    // (Asked from a new container: the bridge's MAC may have changed with
    // the port that went, and asker's ARP cache would still name the old.)
    assert_eq!(lab.lookup("front", "after", "10.89.0.1"), None);
    assert!(lab.lookup("front", "asker", "10.89.0.1").is_some());
    assert!(!lab.state.join("run/containers/before").exists());
    assert!(!lab.state.join("run/containers/after").exists());
    let file = fs::read_to_string(dns::names_file(&lab.dirs(), "front")).unwrap();
    assert!(!file.contains(" after"), "{file}");
    // And now the old name is free again.
    lab.sleeper("before", "front");
    let again = lab.ip_of("before");
    assert_eq!(lab.lookup("front", "before", "10.89.0.1"), Some(again));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn system_prune_removes_unused_networks_and_never_the_default_ones() {
    let lab = Lab::new("networks-sysprune");
    lab.ok(&["network", "create", "--subnet", "10.61.0.0/24", "used"]);
    lab.ok(&["network", "create", "--subnet", "10.62.0.0/24", "idle"]);
    lab.ok(&["network", "create", "--subnet", "10.63.0.0/24", "left"]);
    lab.sleeper("stays", "used");
    // A stopped container is pruned first; its network, unused then, too.
    lab.ok(&[
        "run",
        "--name",
        "ended",
        "--network",
        "left",
        "busybox",
        "true",
    ]);
    let idle_bridge = bridge_of(&lab, "idle");
    let out = lab.ok(&["system", "prune", "-f"]);
    let (containers, rest) = out.split_once("Deleted Networks:\n").expect(&out);
    assert!(containers.starts_with("Deleted Containers:\n"), "{out}");
    let deleted: Vec<&str> = rest.split("\n\n").next().unwrap().lines().collect();
    assert_eq!(deleted, ["idle", "left"], "{out}");
    let listed: Vec<String> = lab
        .ok(&["network", "ls"])
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    assert_eq!(listed, ["bridge", "host", "none", "used"]);
    for gone in ["idle", "left"] {
        assert!(!lab.state.join(format!("lib/networks/{gone}.json")).exists());
    }
    let links = lab.host.ip(&["-br", "link"]);
    assert!(!links.contains(&idle_bridge), "{links}");
    // Nothing to prune: no section at all.
    let again = lab.ok(&["system", "prune", "-f"]);
    assert!(!again.contains("Deleted Networks:"), "{again}");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: networks, namespaces and nftables (run with sudo)"
)]
fn a_stopped_container_is_connected_when_it_starts_and_disconnected_for_the_next() {
    let lab = Lab::new("networks-connect-stopped");
    lab.ok(&["network", "create", "front"]);
    lab.ok(&["network", "create", "back"]);
    let back_bridge = bridge_of(&lab, "back");
    lab.sleeper("bprobe", "back");
    lab.ok(&[
        "create",
        "--name",
        "later",
        "--network",
        "front",
        "busybox",
        "sleep",
        "60",
    ]);
    // Created: written down, nothing made yet.
    lab.ok(&["network", "connect", "--alias", "wall", "back", "later"]);
    let doc: Value = serde_json::from_str(&lab.ok(&["inspect", "later"])).unwrap();
    assert_eq!(
        doc[0]["NetworkSettings"]["Networks"]["back"]["IPAddress"],
        ""
    );
    let on_back = || {
        lab.host
            .ip(&["-br", "link", "show", "master", &back_bridge])
    };
    assert_eq!(on_back().lines().count(), 1, "{}", on_back());
    // Connecting it again is nothing to do, as in Docker.
    lab.ok(&["network", "connect", "back", "later"]);
    // Started: eth1 on back, a second port on back's bridge, and known
    // there by its name and alias.
    lab.ok(&["start", "later"]);
    let addresses = lab.ok(&["exec", "later", "ip", "-o", "-4", "addr", "show", "eth1"]);
    let ip: Ipv4Addr = addresses
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect(&addresses);
    assert!(ip.to_string().starts_with("10.89.1."), "{addresses}");
    assert_eq!(on_back().lines().count(), 2, "{}", on_back());
    for name in ["later", "wall"] {
        let out = lab.ok(&["exec", "bprobe", "nslookup", name, "10.89.1.1"]);
        assert_eq!(answer(&out, name), Some(ip), "{name}: {out}");
    }
    let doc: Value = serde_json::from_str(&lab.ok(&["inspect", "later"])).unwrap();
    assert_eq!(
        doc[0]["NetworkSettings"]["Networks"]["back"]["IPAddress"],
        ip.to_string().as_str()
    );
    // Exited: disconnected for the next start; twice is Docker's error.
    lab.ok(&["stop", "-t", "0", "later"]);
    assert_eq!(on_back().lines().count(), 1, "{}", on_back());
    lab.ok(&["network", "disconnect", "back", "later"]);
    let again = lab.md(&["network", "disconnect", "back", "later"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not connected to the network back"));
    lab.ok(&["start", "later"]);
    let links = lab.ok(&["exec", "later", "ip", "-o", "link"]);
    assert!(links.contains("eth0") && !links.contains("eth1"), "{links}");
    assert_eq!(on_back().lines().count(), 1, "{}", on_back());
    // (From a new container: see the rename test on the bridge's MAC.)
    assert_eq!(lab.lookup("back", "wall", "10.89.1.1"), None);
    assert!(lab.lookup("back", "bprobe", "10.89.1.1").is_some());
    // `--network none` cannot be on another network (Docker's refusal).
    lab.ok(&[
        "create",
        "--name",
        "lonely",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let none = lab.md(&["network", "connect", "back", "lonely"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("private (none) mode"));
    // Removed: nothing of it is left on the networks.
    lab.ok(&["rm", "-f", "later"]);
    let addresses = fs::read_to_string(lab.state.join("run/network/addresses")).unwrap();
    assert!(!addresses.contains(" later "), "{addresses}");
}
