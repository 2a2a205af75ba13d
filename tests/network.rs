//! Chapter 6 checked from outside, in a network namespace each test makes
//! to play "the host": traffic between the containers and from the host
//! side, the published port on the host's own 127.0.0.1, distinct addresses
//! for concurrent runs, and nothing left once the chapter has gone.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

fn get(address: &str) -> Result<String, String> {
    let address: SocketAddr = address.parse().unwrap();
    let mut stream =
        TcpStream::connect_timeout(&address, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n".as_slice())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    Ok(response)
}

fn links_and_rules() -> (Vec<String>, String) {
    let mut nl = container_lab::kernel::net::netlink::Netlink::open().unwrap();
    let links = container_lab::kernel::net::links::link_names(&mut nl).unwrap();
    let rules = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    (links, String::from_utf8_lossy(&rules.stdout).into_owned())
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn traffic_flows_only_after_the_veth_step_and_everything_is_removed() {
    common::assert_root();
    let state = common::state_root("network-outside");

    // Before step 2 the container exists but has no link to anyone.
    let mut command = common::chapter("ch06", &state);
    common::in_new_netns(&mut command);
    let held = common::Held::start(command, 2);
    let netns = fs::File::open(format!("/proc/{}/ns/net", held.pid())).unwrap();
    let early = common::in_netns(&netns, || get("172.29.0.2:80"));
    assert!(
        early.is_err(),
        "the container answered before it had a network: {early:?}"
    );
    let (code, _, _) = held.interrupt();
    assert_eq!(code, Some(130));
    let (links, rules) = common::in_netns(&netns, links_and_rules);
    assert_eq!(links, ["lo"], "interfaces left behind");
    assert!(rules.trim().is_empty(), "rules left behind: {rules}");

    // Before step 5 everything is up: check it with our own client.
    let mut command = common::chapter("ch06", &state);
    common::in_new_netns(&mut command);
    let held = common::Held::start(command, 5);
    let netns = fs::File::open(format!("/proc/{}/ns/net", held.pid())).unwrap();
    let (a, b, published, rules) = common::in_netns(&netns, || {
        let rules = Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap();
        (
            get("172.29.0.2:80"),
            get("172.29.0.3:80"),
            get("127.0.0.1:8080"),
            String::from_utf8_lossy(&rules.stdout).into_owned(),
        )
    });
    // From inside container a's own network namespace to container b.
    let own_net = common::ns_inode(&held.pid().to_string(), "net");
    let inits: Vec<i32> = common::children(held.pid())
        .into_iter()
        .filter(|pid| common::ns_inode(&pid.to_string(), "net") != own_net)
        .collect();
    assert_eq!(
        inits.len(),
        2,
        "expected two containers with their own network namespaces"
    );
    let a_netns = fs::File::open(format!("/proc/{}/ns/net", inits[0])).unwrap();
    let between = common::in_netns(&a_netns, || (get("172.29.0.3:80"), get("172.29.0.2:80")));
    assert!(
        between.0.unwrap().ends_with("hello from ch06-b\n"),
        "a could not reach b"
    );
    assert!(between.1.unwrap().ends_with("hello from ch06-a\n"));
    assert!(a.unwrap().ends_with("hello from ch06-a\n"));
    assert!(b.unwrap().ends_with("hello from ch06-b\n"));
    assert!(
        published.unwrap().ends_with("hello from ch06-a\n"),
        "the published port did not answer on 127.0.0.1"
    );
    assert!(
        rules.contains("dnat to 172.29.0.2:80") && rules.contains("masquerade"),
        "{rules}"
    );
    // route_localnet is on for the published 127.0.0.1, and so is its guard.
    assert!(
        rules.contains("chain localnet_guard") && rules.contains("ip daddr 127.0.0.0/8"),
        "{rules}"
    );
    let addresses = fs::read_to_string(state.join("run/network/addresses")).unwrap();
    assert_eq!(addresses.lines().count(), 2, "{addresses}");

    let (code, _, _) = held.interrupt();
    assert_eq!(code, Some(130));
    let (links, rules) = common::in_netns(&netns, links_and_rules);
    assert_eq!(links, ["lo"], "interfaces left behind");
    assert!(rules.trim().is_empty(), "rules left behind: {rules}");
    let addresses = fs::read_to_string(state.join("run/network/addresses")).unwrap_or_default();
    assert!(
        addresses.trim().is_empty(),
        "addresses still allocated: {addresses}"
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn concurrent_runs_on_one_host_get_distinct_addresses() {
    use std::os::unix::process::CommandExt;
    common::assert_root();
    let state = common::state_root("network-concurrent");
    let mut first = common::chapter("ch06", &state);
    common::in_new_netns(&mut first);
    let first = common::Held::start(first, 4);
    let netns = fs::File::open(format!("/proc/{}/ns/net", first.pid())).unwrap();

    // The second run joins the first one's "host" namespace.
    let mut second = common::chapter("ch06", &state);
    second.args(["--name", "other"]);
    let fd = netns.try_clone().unwrap();
    unsafe {
        second.pre_exec(move || {
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
        });
    }
    let second = common::Held::start(second, 4);
    let addresses = fs::read_to_string(state.join("run/network/addresses")).unwrap();
    let ips: Vec<&str> = addresses
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ips.len(), 4, "{addresses}");
    assert_eq!(
        unique.len(),
        4,
        "two containers got the same address: {addresses}"
    );
    let replies = common::in_netns(&netns, || (get("172.29.0.4:80"), get("172.29.0.5:80")));
    assert!(replies.0.unwrap().ends_with("hello from other-a\n"));
    assert!(replies.1.unwrap().ends_with("hello from other-b\n"));

    assert_eq!(first.interrupt().0, Some(130));
    // The bridge stays while the second run still uses it.
    let (links, _) = common::in_netns(&netns, links_and_rules);
    assert!(links.contains(&"lab0".to_string()), "{links:?}");
    assert_eq!(second.interrupt().0, Some(130));
    let (links, rules) = common::in_netns(&netns, links_and_rules);
    assert_eq!(links, ["lo"]);
    assert!(rules.trim().is_empty(), "{rules}");
}

/// The kernel finds a link by its name (one request, not a dump of every
/// link): checked against `ip link` in a namespace of the test's own, with
/// a link made there, one that is missing, and a name too long for any.
#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_link_is_found_by_its_name_as_ip_link_shows_it() {
    use container_lab::kernel::net::netlink::Netlink;
    common::assert_root();
    let host = common::HostNetns::new();
    let mut add = Command::new("ip");
    add.args([
        "link", "add", "labfind0", "type", "veth", "peer", "name", "labfind1",
    ]);
    assert!(host.command(add).status().unwrap().success());
    let shown = host.ip(&["-o", "link", "show", "labfind1"]);
    let index: u32 = shown.split(':').next().unwrap().trim().parse().unwrap();
    let found = common::in_netns(&host.file, || {
        let mut nl = Netlink::open().unwrap();
        [
            nl.index_of("lo").unwrap(),
            nl.index_of("labfind1").unwrap(),
            nl.index_of("labfind9").unwrap(),
            nl.index_of("a-name-longer-than-ifnamsiz").unwrap(),
            nl.index_of("").unwrap(),
        ]
    });
    assert_eq!(found, [Some(1), Some(index), None, None, None], "{shown}");
}
