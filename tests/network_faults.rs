//! Issue 10, items 7, 8 (the network half) and 12: the lab's network after
//! faults. A start that fails half-way must not wait for ever on its own
//! lock; what a killed run left (links, an address, tables, sysctls) must
//! not block the next run and must be removed, by it or by
//! `network::reclaim`; a published port belongs to one container only.
//! Every test plays "the host" in a network namespace of its own, makes the
//! leftovers there as a killed run leaves them, and checks the kernel's
//! state with `ip`, `nft` and `sysctl`.

mod common;

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use container_lab::engine::dirs::LabDirs;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long anything here may take before the test calls it a hang.
const DEADLINE: Duration = Duration::from_secs(60);

/// mini-docker, always in the test's own "host" network namespace.
struct Lab {
    host: common::HostNetns,
    state: PathBuf,
}

impl Lab {
    fn new(test: &str) -> Lab {
        Lab {
            host: common::HostNetns::new(),
            state: common::state_root(test),
        }
    }

    fn dirs(&self) -> LabDirs {
        LabDirs {
            data: self.state.join("lib"),
            run: self.state.join("run"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.host.command(common::mini_docker(&self.state, args))
    }

    /// `mini-docker ARGS`; killed, and the test failed, if it hangs.
    fn md(&self, args: &[&str]) -> Output {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let readers = [
            read_all(child.stdout.take().unwrap()),
            read_all(child.stderr.take().unwrap()),
        ];
        let status = wait_or_kill(&mut child, &format!("mini-docker {args:?}"));
        let [stdout, stderr] = readers.map(|r| r.join().unwrap());
        println!(
            "--- mini-docker {args:?}: {:?}\n{}{}",
            status.code(),
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
        Output {
            status,
            stdout,
            stderr,
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.md(args);
        assert_eq!(output.status.code(), Some(0), "mini-docker {args:?} failed");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn inspect(&self, name: &str) -> serde_json::Value {
        let text = self.ok(&["inspect", name]);
        serde_json::from_str::<serde_json::Value>(&text).unwrap()[0].clone()
    }

    /// A command in the host namespace that must succeed; its stdout.
    fn host_runs(&self, program: &str, args: &[&str]) -> String {
        let mut command = Command::new(program);
        command.args(args);
        let out = self.host.command(command).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed in the host: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn nft(&self, ruleset: &str) {
        let mut command = Command::new("nft");
        command.args(["-f", "-"]).stdin(Stdio::piped());
        let mut child = self.host.command(command).spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), ruleset.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "nft refused {ruleset}");
    }

    fn links(&self) -> Vec<String> {
        let mut links: Vec<String> = self
            .host
            .ip(&["-br", "link"])
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(|name| name.split('@').next().unwrap().to_string())
            .collect();
        links.sort();
        links
    }

    fn ip_forward(&self) -> String {
        self.host_runs("sysctl", &["-n", "net.ipv4.ip_forward"])
            .trim()
            .to_string()
    }

    fn addresses_file(&self) -> PathBuf {
        self.state.join("run/network/addresses")
    }

    fn addresses(&self) -> String {
        fs::read_to_string(self.addresses_file()).unwrap_or_default()
    }

    /// Everything the lab's network consists of, as the host sees it.
    fn network(&self) -> (Vec<String>, String, String) {
        (
            self.links(),
            self.host_runs("nft", &["list", "ruleset"]),
            self.addresses(),
        )
    }

    fn assert_network_gone(&self) {
        assert_eq!(self.links(), ["lo"], "links were left");
        let tables = self.host.nft_tables();
        assert!(
            !tables.contains("container_lab"),
            "tables were left: {tables}"
        );
        assert_eq!(self.addresses(), "", "addresses were left");
        assert_eq!(self.ip_forward(), "0", "ip_forward was not restored");
    }

    /// SIGKILLs a container's supervisor and its first process, as a
    /// crash or the OOM killer would, and waits until both are gone.
    fn kill_everything_of(&self, name: &str) {
        let id = self.inspect(name)["Id"].as_str().unwrap().to_string();
        let init = self.inspect(name)["State"]["Pid"].as_i64().unwrap() as i32;
        let mut gone = vec![init];
        for pid in common::supervisors_of(&id) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            gone.push(pid);
        }
        let _ = kill(Pid::from_raw(init), Signal::SIGKILL);
        let dead = common::wait_for(DEADLINE, || {
            gone.iter()
                .all(|pid| !container_lab::kernel::process::is_alive(*pid, 0))
                .then_some(())
        });
        assert!(dead.is_some(), "{name}'s processes did not die");
    }
}

impl Drop for Lab {
    /// A failed test still removes its containers: detached, they would
    /// outlive the test.
    fn drop(&mut self) {
        let Ok(out) = self.command(&["ps", "-a", "-q"]).output() else {
            return;
        };
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = self.command(&["rm", "-f", id]).output();
        }
    }
}

fn read_all(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn wait_or_kill(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung: killed after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `work` in the host namespace on a thread of its own; fails the
/// test if it has not returned by the deadline (a hang: the thread is
/// left behind and dies with the test process).
fn in_host_with_deadline<T: Send + 'static>(
    lab: &Lab,
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (sender, receiver) = mpsc::channel();
    let netns = lab.host.file.try_clone().unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let _ = sender.send(work());
    });
    receiver
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{what} hung for {DEADLINE:?}"))
}

/// The supervisor itself: the one of those processes (it, its logger, an
/// `--init` container's first process) whose parent is none of them.
fn supervisor_of(id: &str) -> i32 {
    let all = common::supervisors_of(id);
    let parent = |pid: i32| -> i32 {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0)
    };
    let roots: Vec<i32> = all
        .iter()
        .copied()
        .filter(|pid| !all.contains(&parent(*pid)))
        .collect();
    assert_eq!(roots.len(), 1, "not one supervisor among {all:?}");
    roots[0]
}

/// A process that existed and is gone: "PID:START" as the address file
/// writes it.
fn dead_process() -> String {
    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.id() as i32;
    let start = container_lab::kernel::process::start_time(pid).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    format!("{pid}:{start}")
}

/// An address entry of a run that was SIGKILLed (the format is described
/// in src/network/registry.rs).
fn dead_entry(ip_last: u8, name: &str, ports: &str) -> String {
    let dead = dead_process();
    format!("172.29.0.{ip_last} {name} {dead} {dead} vh-lab{ip_last} vc-lab{ip_last} {ports}\n")
}

/// What a run SIGKILLed after making its veth pair leaves: the bridge, the
/// pair (both ends still on the host), its table and a half-made shared
/// table, forwarding on with its old value written down, its entry.
fn leave_a_killed_run(lab: &Lab, ip_last: u8, name: &str, port: u16) {
    let (host_end, peer) = (format!("vh-lab{ip_last}"), format!("vc-lab{ip_last}"));
    if !lab.links().contains(&"lab0".to_string()) {
        lab.host_runs("ip", &["link", "add", "lab0", "type", "bridge"]);
        lab.host_runs("ip", &["addr", "add", "172.29.0.1/24", "dev", "lab0"]);
        lab.host_runs("ip", &["link", "set", "lab0", "up"]);
        lab.nft("table ip container_lab {\n chain postrouting { type nat hook postrouting priority 100; }\n}\n");
        lab.host_runs("sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"]);
        fs::create_dir_all(lab.state.join("run/network")).unwrap();
        fs::write(
            lab.state.join("run/network/sysctl.orig"),
            "net.ipv4.ip_forward 0\n",
        )
        .unwrap();
    }
    lab.host_runs(
        "ip",
        &[
            "link", "add", &host_end, "type", "veth", "peer", "name", &peer,
        ],
    );
    lab.host_runs("ip", &["link", "set", &host_end, "master", "lab0", "up"]);
    lab.nft(&format!(
        "table ip container_lab_{ip_last} {{\n chain prerouting {{ type nat hook prerouting priority -100; tcp dport {port} dnat to 172.29.0.{ip_last}:80; }}\n}}\n"
    ));
    let mut addresses = lab.addresses();
    addresses.push_str(&dead_entry(
        ip_last,
        name,
        &format!("tcp/0.0.0.0:{port}:80"),
    ));
    fs::write(lab.addresses_file(), addresses).unwrap();
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_start_that_fails_after_its_veth_exists_undoes_it_without_waiting_on_its_own_lock() {
    common::assert_root();
    let lab = Lab::new("network-faults-lock");
    let dirs = lab.dirs();
    // Moving the peer into the namespace of a process that cannot exist
    // (above the kernel's PID limit) fails after the bridge and the veth
    // pair were made: the error path that once waited for ever.
    let result = in_host_with_deadline(&lab, "attach's error path", move || {
        container_lab::engine::network::attach(
            &dirs,
            &container_lab::engine::network::Network::default_bridge(),
            "doomed",
            4_194_305,
            container_lab::engine::network::runtime_link_names,
        )
        .map(drop)
        .map_err(|e| e.to_string())
    });
    let err = result.expect_err("attaching to a process that cannot exist succeeded");
    assert!(err.contains("vc-lab2"), "{err}");
    // Everything made is gone, and the lock is free for another process.
    assert_eq!(lab.links(), ["lo"], "links were left");
    assert_eq!(lab.addresses(), "", "the address was left allocated");
    assert!(!lab.host.nft_tables().contains("container_lab"));
    let lock = fs::File::open(lab.state.join("run/network/lock")).unwrap();
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .expect("the network lock is still held");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_killed_runs_leftovers_are_removed_by_the_next_run_which_still_ends_on_sigterm() {
    common::assert_root();
    let lab = Lab::new("network-faults-leftovers");
    // Two killed runs: ghost (veth pair, table, entry) and other, whose
    // port 9090 must not block either.
    leave_a_killed_run(&lab, 2, "ghost", 8080);
    leave_a_killed_run(&lab, 3, "other", 9090);
    assert_eq!(lab.addresses().lines().count(), 2);

    // The same name, the same ports, the same address: all of it free.
    let id = lab.ok(&[
        "run", "-d", "--name", "ghost", "-p", "8080:80", "-p", "9090:90", "--init", "busybox",
        "sleep", "300",
    ]);
    let addresses = lab.addresses();
    assert_eq!(addresses.lines().count(), 1, "{addresses}");
    assert!(addresses.starts_with("172.29.0.2 ghost "), "{addresses}");
    // The dead runs' links are gone; the new vc-lab2 is in the container.
    assert_eq!(lab.links(), ["lab0", "lo", "vh-lab2"]);
    let table = lab.host_runs("nft", &["list", "table", "ip", "container_lab_2"]);
    assert!(
        table.contains("tcp dport 8080 dnat to 172.29.0.2:80"),
        "{table}"
    );
    assert!(
        table.contains("tcp dport 9090 dnat to 172.29.0.2:90"),
        "{table}"
    );
    assert!(!lab.host.nft_tables().contains("container_lab_3"));
    // The half-made shared table was replaced whole.
    let shared = lab.host_runs("nft", &["list", "table", "ip", "container_lab"]);
    assert!(
        shared.contains("masquerade") && shared.contains("localnet_guard"),
        "{shared}"
    );

    // `run -d`'s supervisor ends on SIGTERM: it passes it on, the container
    // ends of it (143), and everything goes, the sysctl too.
    kill(Pid::from_raw(supervisor_of(&id)), Signal::SIGTERM).unwrap();
    let ended = common::wait_for(DEADLINE, || {
        common::supervisors_of(&id).is_empty().then_some(())
    });
    assert!(ended.is_some(), "the supervisor ignored SIGTERM");
    assert_eq!(
        lab.inspect("ghost")["State"]["ExitCode"].as_i64(),
        Some(143)
    );
    lab.assert_network_gone();
    lab.ok(&["rm", "ghost"]);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn port_conflicts_are_refused_as_docker_does_and_leave_nothing_behind() {
    common::assert_root();
    let lab = Lab::new("network-faults-ports");
    lab.ok(&[
        "run", "-d", "--name", "first", "-p", "8080:80", "busybox", "sleep", "300",
    ]);
    let before = lab.network();
    for (name, args, refused) in [
        ("second", &["-p", "8080:81"][..], "0.0.0.0:8080"),
        (
            "third",
            &["-d", "-p", "127.0.0.1:8080:80"],
            "127.0.0.1:8080",
        ),
        ("twice", &["-p", "9000:80", "-p", "9000:81"], "0.0.0.0:9000"),
    ] {
        let mut full = vec!["run", "--name", name];
        full.extend_from_slice(args);
        full.extend_from_slice(&["busybox", "true"]);
        let out = lab.md(&full);
        assert_eq!(out.status.code(), Some(125), "{full:?} was not refused");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "Bind for {refused} failed: port is already allocated"
            )),
            "{stderr}"
        );
        // Nothing of the refused container: no link, table or address, no
        // record; and nothing of the first one was disturbed.
        assert_eq!(lab.network(), before, "{name} left something or changed it");
        let listed = lab.ok(&["ps", "-a"]);
        assert!(
            !listed
                .lines()
                .any(|l| l.split_whitespace().last() == Some(name)),
            "{name} left a record: {listed}"
        );
    }
    // Another protocol is no conflict.
    lab.ok(&[
        "run",
        "--rm",
        "--name",
        "udp",
        "-p",
        "8080:80/udp",
        "busybox",
        "true",
    ]);
    // The ports of a dead run do not block.
    lab.kill_everything_of("first");
    lab.ok(&[
        "run", "--rm", "--name", "after", "-p", "8080:80", "busybox", "true",
    ]);
    lab.ok(&["rm", "first"]);
    lab.assert_network_gone();
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn reclaim_removes_a_dead_runs_network_and_never_a_live_ones() {
    common::assert_root();
    let lab = Lab::new("network-faults-reclaim");
    lab.ok(&[
        "run", "-d", "--name", "alive", "-p", "8080:80", "busybox", "sleep", "300",
    ]);
    let alone = lab.network();
    leave_a_killed_run(&lab, 5, "dead", 9090);
    assert!(lab.links().contains(&"vc-lab5".to_string()));
    let reclaim = |name: &'static str| {
        let dirs = lab.dirs();
        in_host_with_deadline(&lab, "reclaim", move || {
            container_lab::engine::network::reclaim(&dirs, name).map_err(|e| e.to_string())
        })
        .unwrap();
    };

    // The dead run's veth pair, table and entry go; the live one keeps all.
    reclaim("dead");
    assert_eq!(lab.network(), alone);
    // A live container is never touched, and a second call does nothing.
    reclaim("alive");
    reclaim("dead");
    assert_eq!(lab.network(), alone);

    // Once it is dead too, nothing of the network is left.
    lab.kill_everything_of("alive");
    reclaim("alive");
    lab.assert_network_gone();
    reclaim("alive");
    lab.assert_network_gone();
    lab.ok(&["rm", "alive"]);
}
