//! A lab inside a network namespace that plays "the host", for the tests
//! of networks and of the containers on them: `mini-docker` run there with
//! a resolv.conf of the test's own, and every container and network it
//! made removed when it is dropped, also when the test fails.

use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};

use container_lab::engine::dirs::LabDirs;
use container_lab::engine::network::dns;
use serde_json::Value;

/// busybox ping until one answer comes, for at most three seconds (one
/// echo request a second). A slow guest may lose the first one to ARP; a
/// "no" must have waited as long as a "yes" may take.
pub const PING: [&str; 4] = ["ping", "-c1", "-w3", "-W1"];

pub struct Lab {
    pub state: PathBuf,
    pub host: super::HostNetns,
    /// The host's resolv.conf as the lab's resolvers read it.
    pub resolv_conf: PathBuf,
}

impl Lab {
    pub fn new(test: &str) -> Lab {
        super::assert_root();
        let state = super::state_root(test);
        let resolv_conf = state.join("resolv.conf");
        // No upstream unless a test gives one: unknown names fail at once.
        fs::write(&resolv_conf, "# no resolvers\n").unwrap();
        Lab {
            state,
            host: super::HostNetns::new(),
            resolv_conf,
        }
    }

    pub fn dirs(&self) -> LabDirs {
        LabDirs {
            data: self.state.join("lib"),
            run: self.state.join("run"),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = super::mini_docker(&self.state, args);
        command.env(dns::RESOLV_CONF_ENV, &self.resolv_conf);
        self.host.command(command)
    }

    pub fn md(&self, args: &[&str]) -> Output {
        println!("--- mini-docker {}", args.join(" "));
        super::run(self.command(args))
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.md(args);
        assert_eq!(out.status.code(), Some(0), "mini-docker {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `nslookup NAME SERVER` in a new container on `network`: the
    /// address it got, if any.
    pub fn lookup(&self, network: &str, name: &str, server: &str) -> Option<Ipv4Addr> {
        let out = self.md(&[
            "run",
            "--rm",
            "--network",
            network,
            "busybox",
            "nslookup",
            name,
            server,
        ]);
        answer(&String::from_utf8_lossy(&out.stdout), name)
    }

    /// Whether a new container on `network` gets an answer from `ip`.
    pub fn ping(&self, network: &str, ip: &str) -> bool {
        let mut args = vec!["run", "--rm", "--network", network, "busybox"];
        args.extend(PING);
        args.push(ip);
        self.md(&args).status.code() == Some(0)
    }

    pub fn ip_of(&self, container: &str) -> Ipv4Addr {
        let doc: Value = serde_json::from_str(&self.ok(&["inspect", container])).unwrap();
        doc[0]["NetworkSettings"]["IPAddress"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// `run -d --name NAME --network NETWORK busybox sleep 60`: a
    /// container that stays while the test looks at it.
    pub fn sleeper(&self, name: &str, network: &str) {
        self.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "busybox",
            "sleep",
            "60",
        ]);
    }

    /// The host PID of a running container's first process.
    pub fn pid(&self, container: &str) -> i32 {
        let doc: Value = serde_json::from_str(&self.ok(&["inspect", container])).unwrap();
        doc[0]["State"]["Pid"].as_i64().unwrap() as i32
    }

    /// `mini-docker ARGS` that must fail with Docker's 125 for a bad
    /// value; its stderr, which must say `says`.
    pub fn refused(&self, args: &[&str], says: &str) -> String {
        let out = self.md(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(125), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        stderr
    }

    pub fn resolver(&self, network: &str) -> Option<i32> {
        dns::resolver_pid(&self.dirs(), network)
    }

    /// Nothing of network `name` is left: no link, no table, no resolver
    /// (`pid`, when it had one), no file.
    pub fn assert_network_gone(&self, name: &str, bridge: &str, pid: Option<i32>) {
        let links = self.host.ip(&["-br", "link"]);
        assert!(
            !links.contains(bridge),
            "bridge {bridge} was left:\n{links}"
        );
        assert_eq!(links.lines().count(), 1, "links were left:\n{links}");
        let tables = self.host.nft_tables();
        assert!(!tables.contains("container_lab"), "tables left:\n{tables}");
        if let Some(pid) = pid {
            assert!(!alive(pid), "the resolver {pid} still runs");
        }
        let dns_dir = self.state.join("run/network/dns");
        let left: Vec<_> = fs::read_dir(&dns_dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "resolver files left: {left:?}");
        assert!(
            !self
                .state
                .join(format!("lib/networks/{name}.json"))
                .exists(),
            "the network's definition was left"
        );
    }
}

impl Drop for Lab {
    /// A failed test still removes its containers and networks (and so the
    /// resolvers): detached, they would outlive it.
    fn drop(&mut self) {
        if let Ok(out) = self.command(&["ps", "-a", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.command(&["rm", "-f", id]).output();
            }
        }
        let _ = self.command(&["network", "prune", "-f"]).output();
    }
}

/// The address busybox's nslookup printed for `name` (after the server's
/// own lines).
pub fn answer(out: &str, name: &str) -> Option<Ipv4Addr> {
    let (_, after) = out.split_once(&format!("Name:\t{name}"))?;
    after
        .lines()
        .find_map(|l| l.trim().strip_prefix("Address: "))
        .and_then(|a| a.trim().parse().ok())
}

pub fn alive(pid: i32) -> bool {
    container_lab::kernel::process::is_alive(pid, 0)
}

pub fn bridge_of(lab: &Lab, network: &str) -> String {
    let doc: Value = serde_json::from_str(&lab.ok(&["network", "inspect", network])).unwrap();
    doc[0]["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Where the mount at `target` in process `pid`'s view comes from, as its
/// mountinfo says: the device and the path inside that filesystem (two
/// bind mounts of one file have the same).
pub fn mount_source(pid: i32, target: &str) -> Option<(String, String)> {
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    mountinfo.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(4) == Some(&target)).then(|| (fields[2].to_string(), fields[3].to_string()))
    })
}
