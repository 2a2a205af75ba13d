//! `mini-docker --runtime PATH run …`: the same container made by runc,
//! crun (Debian's packages) and lab-runc from the bundle mini-docker
//! writes, checked from the host while it runs: its cgroup beneath ours
//! with the memory limit asked for, its namespaces, its hostname, no
//! mount of its root in the host's table; then the exit code passed
//! through and nothing left (cgroup, bundle, the runtime's state).
//!
//! And `-d` on the lab's bridge through each of them: the container
//! keeps running under mini-docker's monitor after `run` returns, in its
//! namespaces, its address inside its own network namespace, `ps` and
//! `logs` show it, `stop` ends it through the runtime's `kill` (its
//! SIGTERM trap answers), `rm` leaves nothing (state, cgroups, mounts,
//! processes, veths). Networks only inside a namespace playing the host.
//!
//! Needs root; a runtime that is not installed is skipped and said so.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use container_lab::kernel::cgroups::{Cgroup, Limit};

/// The containers share the parent cgroup `container-lab`, and each test
/// checks that it goes with the last one: one test at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The runtimes: Debian's runc and crun from PATH, and the lab's own;
/// one that is not installed is said to be skipped.
fn runtimes() -> Vec<(String, PathBuf)> {
    let in_path = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    let found = [
        ("runc", in_path("runc")),
        ("crun", in_path("crun")),
        ("lab-runc", Some(common::binary("lab-runc"))),
    ];
    let mut installed = Vec::new();
    for (name, program) in found {
        match program {
            Some(program) => installed.push((name.to_string(), program)),
            None => println!("skipped {name}: not installed (apt install {name})"),
        }
    }
    installed
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn every_runtime_runs_the_same_container_from_the_bundle() {
    common::assert_root();
    let _one = one_at_a_time();
    for (name, program) in runtimes() {
        same_container(&name, &program);
        // In the same test, one after the other: both check that the
        // shared parent cgroup goes with the last container.
        detached_on_the_bridge(&name, &program, "bridge");
    }
    // A network of `network create`, through the lab's own runtime.
    detached_on_the_bridge("lab-runc", &common::binary("lab-runc"), "seamnet");
}

fn same_container(name: &str, program: &Path) {
    let state = common::state_root(&format!("seam-{name}"));
    let container = format!("seam-{name}");
    let before = common::mount_points(&common::host_mountinfo());
    let mut command = common::mini_docker(
        &state,
        &[
            "--runtime",
            program.to_str().unwrap(),
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "-m",
            "32m",
            "--name",
            &container,
            "--hostname",
            "seam",
            "busybox",
            "sh",
            "-c",
            "echo ready $$ $(hostname); read code; exit $code",
        ],
    );
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        "ready 1 seam",
        "{name}: PID 1 and the hostname"
    );

    // From the host: the cgroup beneath ours, with the limit in its file.
    let dirs: Vec<PathBuf> = common::cgroup_dirs(&container)
        .into_iter()
        .filter(|d| d.is_dir())
        .collect();
    let cgroup = Cgroup::open(&dirs).unwrap();
    let pids = cgroup.processes();
    assert_eq!(pids.len(), 1, "{name}: one process in {dirs:?}");
    assert_eq!(
        cgroup.stats().memory.max,
        Some(Limit::At(32 << 20)),
        "{name}: the memory limit"
    );
    let pid = pids[0].to_string();
    for kind in ["pid", "mnt", "uts", "ipc", "net", "cgroup"] {
        assert_ne!(
            common::ns_inode(&pid, kind),
            common::ns_inode("self", kind),
            "{name}: its own {kind} namespace"
        );
    }
    let now = common::mount_points(&common::host_mountinfo());
    assert_eq!(
        now, before,
        "{name}: its root is mounted in its namespace only"
    );
    // The engine's seccomp filter (mode 2) and no_new_privs off, as the
    // engine's own containers have them, whoever installed them.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    assert_eq!(field("Seccomp:"), "2", "{name}: a seccomp filter");
    assert_eq!(
        field("NoNewPrivs:"),
        "0",
        "{name}: no_new_privs as Docker's"
    );

    child.stdin.take().unwrap().write_all(b"7\n").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(7),
        "{name}: the exit code passed through"
    );

    // Nothing left: the cgroup, the bundle, the runtime's state, and
    // nothing in the directory beneath a hybrid host's v2 mount.
    let hidden = common::beneath_hybrid_v2_mount();
    assert!(
        !hidden.iter().any(|p| p.contains(&container)),
        "{name}: left beneath the host's v2 mount: {hidden:?}"
    );
    let gone = common::wait_for(Duration::from_secs(5), || {
        dirs.iter().all(|d| !d.exists()).then_some(())
    });
    assert!(gone.is_some(), "{name}: its cgroup is gone: {dirs:?}");
    // And the shared parent with it: no other container here uses it.
    for dir in &dirs {
        let parent = dir.parent().unwrap();
        assert!(!parent.exists(), "{name}: {} is left", parent.display());
    }
    let bundles = state.join("run/bundles");
    let left: Vec<_> = std::fs::read_dir(&bundles)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{name}: bundles left: {left:?}");
    let runtime_state = state
        .join("run/runtimes")
        .join(program.file_name().unwrap());
    let left: Vec<_> = std::fs::read_dir(&runtime_state)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{name}: runtime state left: {left:?}");
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn what_a_bundle_cannot_carry_is_refused_by_its_flag() {
    common::assert_root();
    let state = common::state_root("seam-refused");
    let lab_runc = common::binary("lab-runc");
    for (flag, value) in [
        ("--network container:web", "--network=container:web"),
        ("--restart", "--restart=always"),
    ] {
        let output = common::run(common::mini_docker(
            &state,
            &[
                "--runtime",
                lab_runc.to_str().unwrap(),
                "run",
                value,
                "busybox",
                "true",
            ],
        ));
        assert_eq!(output.status.code(), Some(125));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{stderr}");
    }
    let output = common::run(common::mini_docker(&state, &["--runtime", "runc", "ps"]));
    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--runtime works with run only"), "{stderr}");
    let _ = std::fs::remove_dir_all(&state);
}

fn detached_on_the_bridge(name: &str, program: &Path, network: &str) {
    let host = common::HostNetns::new();
    let state = common::state_root(&format!("seam-d-{name}"));
    let container = format!("seam-d-{name}");
    let _cleanup = Cleanup {
        host: &host,
        state: &state,
        container: &container,
    };
    let before = common::mount_points(&common::host_mountinfo());
    let links_before = link_names(&host);
    let tables_before = host.nft_tables();
    let md = |args: &[&str]| {
        let mut all = vec!["--runtime", program.to_str().unwrap()];
        all.extend_from_slice(args);
        let output = common::run(host.command(common::mini_docker(&state, &all)));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code(), stdout)
    };
    let plain = |args: &[&str]| {
        let output = common::run(host.command(common::mini_docker(&state, args)));
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: mini-docker {args:?}"
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    if network != "bridge" {
        plain(&["network", "create", network]);
    }
    let (code, id) = md(&[
        "run",
        "-d",
        "--network",
        network,
        "-p",
        "18090:80",
        "--name",
        &container,
        "busybox",
        "sh",
        "-c",
        "trap 'exit 3' TERM; echo up; sleep 1000 & wait",
    ]);
    assert_eq!(code, Some(0), "{name}: run -d");
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{name}: the ID printed: {id:?}");

    // Still running after `run` returned, and `ps` shows it, its port too.
    let ps = plain(&["ps"]);
    assert!(ps.contains(&container), "{name}: ps lists it");
    assert!(ps.contains("0.0.0.0:18090->80/tcp"), "{name}: ps: {ps}");
    let pid: i32 = plain(&["inspect", "-f", "{{.State.Pid}}", &container])
        .trim()
        .parse()
        .unwrap();
    assert!(pid > 0, "{name}: its PID");
    let pid_text = pid.to_string();
    for kind in ["pid", "mnt", "uts", "ipc", "net", "cgroup"] {
        assert_ne!(
            common::ns_inode(&pid_text, kind),
            common::ns_inode("self", kind),
            "{name}: its own {kind} namespace"
        );
    }
    // Its parent is our monitor (the runtime has exited).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let monitor = std::fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap();
    assert_eq!(
        monitor.trim(),
        "mini-docker-mon",
        "{name}: the init's parent"
    );
    // Its cgroup beneath ours holds it.
    let dirs: Vec<PathBuf> = common::cgroup_dirs(&container)
        .into_iter()
        .filter(|d| d.is_dir())
        .collect();
    assert!(!dirs.is_empty(), "{name}: its cgroup");
    let procs = Cgroup::open(&dirs).unwrap().processes();
    assert!(procs.contains(&pid), "{name}: cgroup.procs {procs:?}");
    // The address the record names is on eth0 inside its network
    // namespace, and not in the host's.
    let ip = plain(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.IPAddress}}",
        &container,
    ]);
    let ip = ip.trim();
    let parsed: Option<std::net::Ipv4Addr> = ip.parse().ok();
    assert!(
        parsed.is_some_and(|a| a.is_private()),
        "{name}: an address on {network}: {ip:?}"
    );
    let inside = std::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["ip", "-4", "-o", "addr", "show", "eth0"])
        .output()
        .unwrap();
    let inside = String::from_utf8_lossy(&inside.stdout);
    assert!(
        inside.contains(&format!("{ip}/")),
        "{name}: eth0 inside: {inside}"
    );
    assert!(
        !host.ip(&["-4", "-o", "addr"]).contains(&format!("{ip}/")),
        "{name}: not on the host"
    );
    // Docker's capabilities, as the engine's own start gives them.
    let caps = |status: &str| {
        status
            .lines()
            .find(|l| l.starts_with("CapEff:"))
            .unwrap_or("")
            .to_string()
    };
    let engine = plain(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "cat",
        "/proc/self/status",
    ]);
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(caps(&theirs), caps(&engine), "{name}: the capabilities");
    assert!(
        !caps(&engine).ends_with("0000000000000000"),
        "{name}: some capabilities"
    );
    // Its /etc/hosts names its address, as Docker's does; on a network
    // with a resolver, resolv.conf names the network's gateway.
    let hosts = std::fs::read_to_string(format!("/proc/{pid}/root/etc/hosts")).unwrap();
    assert!(
        hosts.contains(&format!("{ip}\t")),
        "{name}: /etc/hosts: {hosts}"
    );
    if network != "bridge" {
        let resolv = std::fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf")).unwrap();
        let inspect: serde_json::Value =
            serde_json::from_str(&plain(&["network", "inspect", network])).unwrap();
        let gateway = inspect[0]["IPAM"]["Config"][0]["Gateway"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        assert!(
            resolv.contains(&format!("nameserver {}", gateway.trim())),
            "{name}: resolv.conf: {resolv}"
        );
    }
    let logged = common::wait_for(Duration::from_secs(10), || {
        plain(&["logs", &container]).contains("up").then_some(())
    });
    assert!(logged.is_some(), "{name}: logs show its output");

    // stop: SIGTERM through the runtime's kill, the trap's exit code.
    plain(&["stop", &container]);
    assert!(!plain(&["ps"]).contains(&container), "{name}: stopped");
    let code = plain(&["inspect", "-f", "{{.State.ExitCode}}", &container]);
    assert_eq!(code.trim(), "3", "{name}: the trap answered SIGTERM");
    assert!(
        !common::processes_with("").contains(&pid),
        "{name}: its process is gone"
    );
    // (A zombie has exited: whoever it was reparented to reaps it.)
    assert!(
        !common::processes_with("mini-docker").contains(&ppid),
        "{name}: the monitor is gone"
    );
    plain(&["rm", &container]);
    if network != "bridge" {
        plain(&["network", "rm", network]);
    }

    // Nothing left: cgroups, mounts, veths, the runtime's state, bundles.
    for dir in &dirs {
        assert!(!dir.exists(), "{name}: {} is left", dir.display());
        assert!(
            !dir.parent().unwrap().exists(),
            "{name}: the parent cgroup is left"
        );
    }
    assert_eq!(
        common::mount_points(&common::host_mountinfo()),
        before,
        "{name}: no mount left"
    );
    assert_eq!(
        link_names(&host),
        links_before,
        "{name}: links left (veth, bridge)"
    );
    assert_eq!(
        host.nft_tables(),
        tables_before,
        "{name}: firewall tables left"
    );
    assert_no_bundle_or_runtime_state(&state, program, name);
    assert!(
        plain(&["ps", "-a", "-q"]).trim().is_empty(),
        "{name}: the record is gone"
    );
    let _ = std::fs::remove_dir_all(&state);
}

/// The names of the links in the namespace playing the host.
fn link_names(host: &common::HostNetns) -> Vec<String> {
    host.ip(&["-o", "link"])
        .lines()
        .filter_map(|line| line.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

/// `rm -f` of the test's container even when an assertion failed, so
/// that no container, cgroup or veth outlives the test.
struct Cleanup<'a> {
    host: &'a common::HostNetns,
    state: &'a Path,
    container: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let rm = common::mini_docker(self.state, &["rm", "-f", self.container]);
        let _ = self.host.command(rm).output();
        let _ = std::fs::remove_dir_all(self.state);
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn every_runtime_gives_a_terminal_over_the_console_socket() {
    use container_lab::kernel::pty;
    use std::io::Read;
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::os::unix::process::CommandExt;
    common::assert_root();
    let _one = one_at_a_time();
    for (name, program) in runtimes() {
        let state = common::state_root(&format!("seam-t-{name}"));
        // The user's terminal, played by a pty of ours.
        let terminal = pty::open(None).unwrap();
        let mut command = common::mini_docker(
            &state,
            &[
                "--runtime",
                program.to_str().unwrap(),
                "run",
                "--rm",
                "-it",
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                "tty; [ -t 1 ] && echo on-a-terminal; exit 4",
            ],
        );
        let slave = terminal.slave.as_raw_fd();
        command
            .stdin(terminal.slave.try_clone().unwrap())
            .stdout(terminal.slave.try_clone().unwrap())
            .stderr(terminal.slave.try_clone().unwrap());
        // Safety: between fork and exec only system calls.
        unsafe {
            command.pre_exec(move || {
                pty::make_controlling_terminal(BorrowedFd::borrow_raw(slave))
                    .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
            });
        }
        let mut child = command.spawn().unwrap();
        drop(command);
        drop(terminal.slave);
        let mut master = std::fs::File::from(terminal.master);
        let mut seen = Vec::new();
        // Read until the slave's last holder closes it (EIO).
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        let status = child.wait().unwrap();
        let seen = String::from_utf8_lossy(&seen);
        println!("{name}: {seen:?}");
        assert!(
            seen.contains("/dev/pts/") && seen.contains("on-a-terminal"),
            "{name}: the container's stdout is a terminal: {seen:?}"
        );
        assert!(!seen.contains("not a tty"), "{name}: {seen:?}");
        assert_eq!(status.code(), Some(4), "{name}: the exit code");
        let left: Vec<_> = std::fs::read_dir(state.join("run/bundles"))
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{name}: bundles left: {left:?}");
        let _ = std::fs::remove_dir_all(&state);
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn rm_f_after_the_monitor_was_killed_leaves_nothing() {
    common::assert_root();
    let _one = one_at_a_time();
    for (name, program) in runtimes() {
        killed_monitor(&name, &program);
    }
}

fn killed_monitor(name: &str, program: &Path) {
    let host = common::HostNetns::new();
    let state = common::state_root(&format!("seam-k-{name}"));
    let container = format!("seam-k-{name}");
    let _cleanup = Cleanup {
        host: &host,
        state: &state,
        container: &container,
    };
    let before = common::mount_points(&common::host_mountinfo());
    let links_before = link_names(&host);
    let tables_before = host.nft_tables();
    let md = |args: &[&str]| {
        let output = common::run(host.command(common::mini_docker(&state, args)));
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: mini-docker {args:?}"
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    md(&[
        "--runtime",
        program.to_str().unwrap(),
        "run",
        "-d",
        "--name",
        &container,
        "busybox",
        "sleep",
        "1000",
    ]);
    let pid: i32 = md(&["inspect", "-f", "{{.State.Pid}}", &container])
        .trim()
        .parse()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let monitor: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{monitor}/comm")).unwrap();
    assert_eq!(comm.trim(), "mini-docker-mon", "{name}: the monitor");
    let dirs: Vec<PathBuf> = common::cgroup_dirs(&container)
        .into_iter()
        .filter(|d| d.is_dir())
        .collect();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let gone = common::wait_for(common::PATIENCE, || {
        (!common::processes_with("").contains(&monitor)).then_some(())
    });
    assert!(gone.is_some(), "{name}: the monitor was killed");
    // As with conmon killed: the container itself still runs.
    assert!(
        common::processes_with("").contains(&pid),
        "{name}: the container runs on"
    );

    md(&["rm", "-f", &container]);
    assert!(
        !common::processes_with("").contains(&pid),
        "{name}: its process is gone"
    );
    for dir in &dirs {
        assert!(!dir.exists(), "{name}: {} is left", dir.display());
        let parent = dir.parent().unwrap();
        assert!(!parent.exists(), "{name}: {} is left", parent.display());
    }
    assert_eq!(
        common::mount_points(&common::host_mountinfo()),
        before,
        "{name}: mounts"
    );
    assert_eq!(link_names(&host), links_before, "{name}: links left");
    assert_eq!(
        host.nft_tables(),
        tables_before,
        "{name}: firewall tables left"
    );
    assert_no_bundle_or_runtime_state(&state, program, name);
    assert!(
        md(&["ps", "-a", "-q"]).trim().is_empty(),
        "{name}: the record is gone"
    );
}

/// Nothing of the run is left in the lab's bundles or in the runtime's
/// state directory (its `--root`).
fn assert_no_bundle_or_runtime_state(
    state: &std::path::Path,
    program: &std::path::Path,
    name: &str,
) {
    for dir in [
        "run/bundles".to_string(),
        format!(
            "run/runtimes/{}",
            program.file_name().unwrap().to_string_lossy()
        ),
    ] {
        let left: Vec<_> = std::fs::read_dir(state.join(&dir))
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{name}: left in {dir}: {left:?}");
    }
}
