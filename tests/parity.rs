//! Docker parity, checked from outside: what a container sees of itself
//! (/etc files, its own cgroup, Docker's default profile), how a foreground
//! run treats signals and terminals, and the everyday commands.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A name of its own for each container: pinned IDs would otherwise give
/// two tests' unnamed containers the same name, and so the same cgroup.
fn fresh_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("parity{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// `mini-docker run --name FRESH ARGS` in a network namespace of its own.
fn run(state: &Path, args: &[&str]) -> Output {
    let mut command = common::mini_docker(state, &["run", "--name", &fresh_name()]);
    command.args(args);
    common::in_new_netns(&mut command);
    common::run(command)
}

/// The container's stdout, after asserting that it exited 0.
fn stdout_of(state: &Path, args: &[&str]) -> String {
    let out = run(state, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// What the container says after `=== NAME` lines: its sections by name.
fn sections(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut map = std::collections::BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            current = name.to_string();
            map.insert(current.clone(), String::new());
        } else if let Some(section) = map.get_mut(&current) {
            section.push_str(line);
            section.push('\n');
        }
    }
    map
}

const LOOK: &str = "\
echo '=== hosts'; cat /etc/hosts; \
echo '=== hostname'; cat /etc/hostname; \
echo '=== resolv'; cat /etc/resolv.conf; \
echo '=== lo'; ip link show lo; \
echo '=== localhost'; ping -c 1 -W 5 localhost >/dev/null && echo reached; \
echo '=== status'; grep -E '^(CapInh|CapEff|NoNewPrivs|Seccomp):' /proc/self/status; \
echo '=== cgroup'; cat /proc/self/cgroup; \
echo '=== mounts'; cat /proc/self/mountinfo; \
echo '=== env'; env; \
echo '=== write'; touch /sys/fs/cgroup/x 2>&1; true";

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_container_sees_its_own_files_cgroup_and_dockers_profile() {
    common::assert_root();
    let state = common::state_root("parity-view");
    let mut command = common::mini_docker(&state, &["run", "--name", "view"]);
    command.env_remove("PARITY_UNSET").args([
        "--rm",
        "--network",
        "none",
        "-h",
        "box",
        "-m",
        "32m",
        "--pids-limit",
        "20",
        "--cpus",
        "0.5",
        "-e",
        "PARITY_UNSET",
        "busybox",
        "sh",
        "-c",
        LOOK,
    ]);
    common::in_new_netns(&mut command);
    let out = common::run(command);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = sections(&String::from_utf8_lossy(&out.stdout));
    // Docker's /etc files, the container's own.
    assert!(
        seen["hosts"]
            .starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
        "{}",
        seen["hosts"]
    );
    assert_eq!(seen["hostname"], "box\n");
    assert!(seen["resolv"].contains("nameserver "), "{}", seen["resolv"]);
    assert!(
        !seen["resolv"].contains("nameserver 127."),
        "{}",
        seen["resolv"]
    );
    // --network none: loopback only, but up, and localhost answers.
    assert!(seen["lo"].contains(",UP"), "{}", seen["lo"]);
    assert_eq!(seen["localhost"], "reached\n");
    // Docker's profile: no inheritable capabilities, no no_new_privs,
    // its 14 capabilities, a seccomp filter.
    let status = &seen["status"];
    assert!(status.contains("CapInh:\t0000000000000000"), "{status}");
    assert!(status.contains("CapEff:\t00000000a80425fb"), "{status}");
    assert!(status.contains("NoNewPrivs:\t0"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    // The image's PATH (Docker's when it has none); -e of a variable we
    // do not have is left out.
    assert!(
        seen["env"].lines().any(|l| l.starts_with("PATH=/")),
        "{}",
        seen["env"]
    );
    assert!(!seen["env"].contains("PARITY_UNSET"), "{}", seen["env"]);
    // Its own cgroup at the root of every hierarchy it has, read-only.
    for line in seen["cgroup"].lines() {
        assert!(
            line.ends_with(":/"),
            "a host path in /proc/self/cgroup: {line}"
        );
    }
    assert!(
        seen["write"].contains("Read-only file system"),
        "{}",
        seen["write"]
    );
    let mounts = &seen["mounts"];
    let mount = |point: &str| {
        mounts
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(point))
            .unwrap_or_else(|| panic!("no mount at {point}:\n{mounts}"))
            .to_string()
    };
    assert!(mount("/dev/mqueue").contains(" - mqueue "), "{mounts}");
    assert!(
        mount("/dev/mqueue").contains("rw,nosuid,nodev,noexec"),
        "{mounts}"
    );
    // Docker's options for the read-only parts of /proc.
    assert!(
        mount("/proc/sys").contains(" ro,nosuid,nodev,noexec,relatime "),
        "{mounts}"
    );
    assert!(
        mount("/proc/acpi").contains(" ro,relatime - tmpfs "),
        "{mounts}"
    );
    if unified() {
        assert_eq!(seen["cgroup"], "0::/\n");
        assert!(
            mount("/sys/fs/cgroup").contains(" / /sys/fs/cgroup ro,"),
            "{mounts}"
        );
    } else {
        assert!(mount("/sys/fs/cgroup/memory").contains(" / /sys/fs/cgroup/memory ro,"));
    }
    assert!(!state
        .join("run/containers")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some()));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn limits_are_readable_inside_and_swap_is_dockers() {
    common::assert_root();
    let state = common::state_root("parity-limits");
    let (memory, pids, cpu, swap) = if unified() {
        ("memory.max", "pids.max", "cpu.max", "memory.swap.max")
    } else {
        (
            "memory/memory.limit_in_bytes",
            "pids/pids.max",
            "cpu/cpu.cfs_quota_us",
            "memory/memory.memsw.limit_in_bytes",
        )
    };
    let script = format!(
        "cd /sys/fs/cgroup; cat {memory} {pids} {cpu}; cat {swap} 2>/dev/null || echo no-swap-accounting"
    );
    let read = |extra: &[&str]| {
        let mut args = vec![
            "--rm",
            "--network",
            "none",
            "-m",
            "32m",
            "--pids-limit",
            "20",
            "--cpus",
            "0.5",
        ];
        args.extend(extra);
        args.extend(["busybox", "sh", "-c", &script]);
        stdout_of(&state, &args)
    };
    let lines: Vec<String> = read(&[]).lines().map(String::from).collect();
    assert_eq!(lines[0], "33554432");
    assert_eq!(lines[1], "20");
    assert!(
        lines[2] == "50000 100000" || lines[2] == "50000",
        "{lines:?}"
    );
    // -m alone: as much swap again (v1 counts memory and swap together).
    if lines[3] != "no-swap-accounting" {
        let doubled = if unified() { "33554432" } else { "67108864" };
        assert_eq!(lines[3], doubled);
        let limited = read(&["--memory-swap", "48m"]);
        let expected = if unified() { "16777216" } else { "50331648" };
        assert_eq!(limited.lines().nth(3), Some(expected), "{limited}");
    }
    let bad = run(
        &state,
        &["--memory-swap", "16m", "-m", "32m", "busybox", "true"],
    );
    assert_eq!(bad.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("memoryswap limit should be larger"));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn bridge_and_host_networks_give_dockers_hosts_and_hostname() {
    common::assert_root();
    let state = common::state_root("parity-hosts");
    let host = common::HostNetns::new();
    let mut command = common::mini_docker(
        &state,
        &[
            "run",
            "--rm",
            "--name",
            "hosts",
            "-h",
            "web",
            "--add-host",
            "db:10.1.2.3",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "example.org",
            "busybox",
            "sh",
            "-c",
            "cat /etc/hosts; echo ===; cat /etc/resolv.conf; echo ===; ip -4 -o addr show eth0",
        ],
    );
    command = host.command(command);
    let out = common::run(command);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let parts: Vec<&str> = text.split("===\n").collect();
    let ip = parts[2]
        .split_whitespace()
        .nth(3)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert!(
        parts[0].ends_with(&format!("10.1.2.3\tdb\n{ip}\tweb\n")),
        "{}",
        parts[0]
    );
    assert!(
        parts[1].ends_with("search example.org\nnameserver 192.0.2.53\n"),
        "{}",
        parts[1]
    );
    drop(host);

    // --network host: the host's hostname, its hosts file.
    let mut command = common::mini_docker(
        &state,
        &[
            "run",
            "--rm",
            "--name",
            "hostnet",
            "--network",
            "host",
            "busybox",
            "sh",
            "-c",
            "hostname; cat /etc/hostname",
        ],
    );
    common::in_new_netns(&mut command);
    let out = common::run(command);
    let name = common::hostname();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{name}\n{name}\n")
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn security_opts_follow_docker() {
    common::assert_root();
    let state = common::state_root("parity-secopt");
    let status = |opt: &str| {
        stdout_of(
            &state,
            &[
                "--rm",
                "--network",
                "none",
                "--security-opt",
                opt,
                "busybox",
                "grep",
                "-E",
                "^(NoNewPrivs|Seccomp):",
                "/proc/self/status",
            ],
        )
    };
    assert_eq!(status("no-new-privileges"), "NoNewPrivs:\t1\nSeccomp:\t2\n");
    assert_eq!(
        status("no-new-privileges=false"),
        "NoNewPrivs:\t0\nSeccomp:\t2\n"
    );
    assert_eq!(
        status("seccomp=unconfined"),
        "NoNewPrivs:\t0\nSeccomp:\t0\n"
    );
    // A profile in Docker's JSON format: mkdir answered with EACCES.
    let profile = state.join("profile.json");
    fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = run(
        &state,
        &[
            "--rm",
            "--network",
            "none",
            "--security-opt",
            &opt,
            "busybox",
            "sh",
            "-c",
            "mkdir /made 2>&1; touch /touched && echo touched",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Permission denied"), "{text}");
    assert!(text.contains("touched"), "{text}");
    for bad in [
        "seccomp=/no/such/profile.json",
        "apparmor=unconfined",
        "fly",
    ] {
        let out = run(&state, &["--rm", "--security-opt", bad, "busybox", "true"]);
        assert_eq!(out.status.code(), Some(125), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("security-opt")
                || bad.contains("profile"),
            "{bad}"
        );
    }
    fs::write(&profile, "{ not json").unwrap();
    let out = run(&state, &["--rm", "--security-opt", &opt, "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Docker's JSON format"));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn init_shows_dockers_shape_and_it_needs_a_terminal() {
    common::assert_root();
    let state = common::state_root("parity-init");
    let out = stdout_of(
        &state,
        &[
            "--rm",
            "--network",
            "none",
            "--init",
            "busybox",
            "sh",
            "-c",
            "tr '\\0' '|' < /proc/1/cmdline",
        ],
    );
    assert_eq!(out, "lab-init|--|sh|-c|tr '\\0' '|' < /proc/1/cmdline|");
    // -it with a stdin that is not a terminal: refused as Docker refuses it.
    let out = run(&state, &["--rm", "-it", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the input device is not a TTY"));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_foreground_run_forwards_signals_and_waits() {
    common::assert_root();
    let state = common::state_root("parity-sigproxy");
    let out_dir = state.join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let volume = format!("{}:/out", out_dir.display());
    // The container notes each signal; after TERM it waits for the host's go.
    let script = "trap 'echo usr1 >> /out/seen' USR1; \
                  trap 'echo term >> /out/seen; while [ ! -e /out/go ]; do sleep 0.1; done; exit 7' TERM; \
                  touch /out/ready; while true; do sleep 0.1; done";
    let mut command = common::mini_docker(
        &state,
        &[
            "run",
            "--rm",
            "--name",
            "sigproxy",
            "--network",
            "none",
            "--stop-timeout",
            "1",
            "-v",
            &volume,
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    common::in_new_netns(&mut command);
    let mut child = command.spawn().unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let ready = common::wait_for(common::PATIENCE, || {
        out_dir.join("ready").exists().then_some(())
    });
    assert!(ready.is_some(), "the container never started");
    let seen =
        |what: &str| fs::read_to_string(out_dir.join("seen")).is_ok_and(|t| t.contains(what));
    use nix::sys::signal::{kill, Signal};
    kill(pid, Signal::SIGUSR1).unwrap();
    assert!(
        common::wait_for(common::PATIENCE, || seen("usr1").then_some(())).is_some(),
        "SIGUSR1 was not passed on"
    );
    kill(pid, Signal::SIGTERM).unwrap();
    assert!(
        common::wait_for(common::PATIENCE, || seen("term").then_some(())).is_some(),
        "SIGTERM was not passed on"
    );
    // Past --stop-timeout, it still runs: a foreground run does not kill.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before the container did"
    );
    fs::write(out_dir.join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mini-docker ARGS` (not `run`), its output, in a namespace of its own.
#[allow(dead_code)]
fn md(state: &Path, args: &[&str]) -> Output {
    let mut command: Command = common::mini_docker(state, args);
    common::in_new_netns(&mut command);
    common::run(command)
}

/// `mini-docker ARGS`, its stdout, asserting that it succeeded.
fn md_ok(state: &Path, args: &[&str]) -> String {
    let out = md(state, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn inspect_is_shaped_as_dockers_and_takes_a_template() {
    common::assert_root();
    let state = common::state_root("parity-inspect");
    md_ok(
        &state,
        &[
            "create",
            "--name",
            "shaped",
            "-h",
            "shaped-host",
            "-e",
            "A=1",
            "-w",
            "/tmp",
            "-u",
            "nobody",
            "-l",
            "team=lab",
            "-l",
            "tier=web",
            "--entrypoint",
            "sh",
            "--network",
            "none",
            "-m",
            "32m",
            "busybox",
            "-c",
            "echo 'two words'",
        ],
    );
    let doc: serde_json::Value =
        serde_json::from_str(&md_ok(&state, &["inspect", "shaped"])).unwrap();
    let doc = &doc[0];
    let config = &doc["Config"];
    assert_eq!(config["Hostname"], "shaped-host");
    assert_eq!(config["Image"], "busybox");
    assert_eq!(config["Entrypoint"], serde_json::json!(["sh"]));
    assert_eq!(config["Cmd"], serde_json::json!(["-c", "echo 'two words'"]));
    assert_eq!(config["WorkingDir"], "/tmp");
    assert_eq!(config["User"], "nobody");
    assert_eq!(
        config["Labels"],
        serde_json::json!({"team": "lab", "tier": "web"})
    );
    // The image's environment, then -e.
    let env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.iter().any(|e| e.starts_with("PATH=/")), "{env:?}");
    assert_eq!(env.last(), Some(&"A=1"), "{env:?}");
    // Image is the image's ID, as Docker gives it.
    let image = doc["Image"].as_str().unwrap();
    assert!(image.starts_with("sha256:") && image.len() == 71, "{image}");
    let host = &doc["HostConfig"];
    assert_eq!(host["NetworkMode"], "none");
    assert_eq!(host["Memory"], 33554432);
    assert_eq!(host["MemorySwap"], 67108864);
    assert_eq!(
        host["RestartPolicy"],
        serde_json::json!({"Name": "no", "MaximumRetryCount": 0})
    );
    assert_eq!(host["LogConfig"]["Type"], "json-file");
    assert!(doc["NetworkSettings"]["Networks"]["none"].is_object());

    // -f: Go templates for the fields people use.
    let f = |template: &str| md_ok(&state, &["inspect", "-f", template, "shaped"]);
    assert_eq!(f("{{.State.Status}}"), "created\n");
    assert_eq!(f("{{.NetworkSettings.IPAddress}}"), "\n");
    assert_eq!(
        f("{{json .Config.Labels}}"),
        "{\"team\":\"lab\",\"tier\":\"web\"}\n"
    );
    assert_eq!(
        f("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}"),
        "team=lab tier=web \n"
    );
    assert_eq!(f("{{index .Config.Labels \"tier\"}}"), "web\n");
    assert_eq!(f("{{.Config.Cmd}}"), "[-c echo 'two words']\n");
    assert_eq!(f("{{.Name}} {{.Config.Hostname}}"), "/shaped shaped-host\n");
    let config_json: serde_json::Value = serde_json::from_str(&f("{{json .Config}}")).unwrap();
    assert_eq!(&config_json, config);
    let bad = md(&state, &["inspect", "-f", "{{.State", "shaped"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("template parsing error"));
    md_ok(&state, &["rm", "shaped"]);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ps_filters_formats_and_quotes_like_docker() {
    common::assert_root();
    let state = common::state_root("parity-ps");
    for (name, label, cmd) in [
        ("first", "a", "exit 3"),
        ("second", "b", "true"),
        ("third", "a", "exit 0"),
    ] {
        let label = format!("group={label}");
        md(
            &state,
            &[
                "run",
                "--name",
                name,
                "--network",
                "none",
                "-l",
                &label,
                "busybox",
                "sh",
                "-c",
                cmd,
            ],
        );
    }
    let ps = |args: &[&str]| {
        let mut all = vec!["ps"];
        all.extend(args);
        md_ok(&state, &all)
    };
    // Newest first; -n, -l; filters.
    assert_eq!(
        ps(&["-a", "--format", "{{.Names}}"]),
        "third\nsecond\nfirst\n"
    );
    assert_eq!(
        ps(&["-n", "2", "--format", "{{.Names}}"]),
        "third\nsecond\n"
    );
    assert_eq!(ps(&["-l", "--format", "{{.Names}}"]), "third\n");
    assert_eq!(
        ps(&["-a", "--filter", "label=group=a", "--format", "{{.Names}}"]),
        "third\nfirst\n"
    );
    assert_eq!(
        ps(&["--filter", "exited=3", "--format", "{{.Names}} {{.State}}"]),
        "first exited\n"
    );
    assert_eq!(
        ps(&["-a", "-f", "name=sec", "--format", "{{.Names}} {{.Labels}}"]),
        "second group=b\n"
    );
    assert_eq!(ps(&["--filter", "status=exited", "-q"]).lines().count(), 3);
    assert_eq!(ps(&["--filter", "status=running", "-q"]), "");
    // COMMAND as Docker's: an argument with a space in single quotes.
    assert_eq!(
        ps(&["-l", "--format", "{{.Command}}"]),
        "\"sh -c 'exit 0'\"\n"
    );
    let table = ps(&["-a", "-s", "--format", "table {{.Names}}\t{{.Status}}"]);
    let mut lines = table.lines();
    assert!(
        lines.next().unwrap().starts_with("NAMES     STATUS"),
        "{table}"
    );
    assert!(
        lines.next().unwrap().starts_with("third     Exited (0) "),
        "{table}"
    );
    let sized = ps(&["-a", "-s"]);
    assert!(sized.lines().next().unwrap().ends_with("SIZE"), "{sized}");
    let json: serde_json::Value =
        serde_json::from_str(ps(&["-l", "--format", "json"]).trim()).unwrap();
    assert_eq!(json["Names"], "third");
    let bad = md(&state, &["ps", "--filter", "colour=blue"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid filter"));
    md_ok(&state, &["rm", "first", "second", "third"]);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn the_everyday_commands_work_as_dockers() {
    common::assert_root();
    let state = common::state_root("parity-everyday");
    // However the test ends, its container goes (by the lab's own rm).
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for name in ["daily", "hourly", "weekly"] {
                let _ = md(&self.0, &["rm", "-f", "-v", name]);
            }
        }
    }
    let _cleanup = Cleanup(state.clone());
    let id = md_ok(
        &state,
        &[
            "run",
            "-d",
            "--name",
            "daily",
            "--network",
            "none",
            "-m",
            "32m",
            "-v",
            "/scratch",
            "busybox",
            "sh",
            "-c",
            "echo early; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo late; exit 4",
        ],
    );
    assert_eq!(id.trim().len(), 64);
    // top: the host's ps, the container's processes only.
    let top = md_ok(&state, &["top", "daily"]);
    assert!(top.starts_with("UID "), "{top}");
    assert!(top.contains("while [ ! -e /tmp/go ]"), "{top}");
    assert!(!top.contains("cargo"), "{top}");
    // stats --no-stream: one table, the limit as Docker writes it.
    let stats = md_ok(&state, &["stats", "--no-stream", "daily"]);
    let mut lines = stats.lines();
    assert!(
        lines.next().unwrap().starts_with("CONTAINER ID   NAME"),
        "{stats}"
    );
    let row = lines.next().unwrap();
    assert!(row.contains("daily") && row.contains("/ 32MiB"), "{stats}");
    // update: the running container's cgroup changes at once.
    md_ok(
        &state,
        &["update", "-m", "48m", "--pids-limit", "30", "daily"],
    );
    let (memory_file, pids_file) = if unified() {
        ("memory.max", "pids.max")
    } else {
        ("memory.limit_in_bytes", "pids.max")
    };
    let dirs = common::cgroup_dirs("daily");
    let read = |file: &str| {
        dirs.iter()
            .map(|d| d.join(file))
            .find(|p| p.exists())
            .map(|p| fs::read_to_string(p).unwrap().trim().to_string())
    };
    assert_eq!(read(memory_file).as_deref(), Some("50331648"));
    assert_eq!(read(pids_file).as_deref(), Some("30"));
    assert_eq!(
        md_ok(
            &state,
            &["inspect", "-f", "{{.HostConfig.Memory}}", "daily"]
        ),
        "50331648\n"
    );
    // cp in and out, Docker's rules; a symlink inside cannot lead out.
    let host_dir = state.join("files");
    fs::create_dir_all(host_dir.join("tree/sub")).unwrap();
    fs::write(host_dir.join("tree/sub/leaf"), "leaf\n").unwrap();
    fs::write(host_dir.join("secret"), "host only\n").unwrap();
    md_ok(
        &state,
        &["cp", host_dir.join("tree").to_str().unwrap(), "daily:/tmp"],
    );
    md_ok(
        &state,
        &[
            "cp",
            &format!("{}/.", host_dir.join("tree").display()),
            "daily:/tmp/flat",
        ],
    );
    let listing = md_ok(
        &state,
        &[
            "exec",
            "daily",
            "sh",
            "-c",
            "cat /tmp/tree/sub/leaf /tmp/flat/sub/leaf",
        ],
    );
    assert_eq!(listing, "leaf\nleaf\n");
    let secret = host_dir.join("secret");
    md_ok(
        &state,
        &[
            "exec",
            "daily",
            "ln",
            "-s",
            secret.to_str().unwrap(),
            "/leak",
        ],
    );
    let out_dir = host_dir.join("out");
    fs::create_dir_all(&out_dir).unwrap();
    md_ok(
        &state,
        &["cp", "daily:/etc/hostname", out_dir.to_str().unwrap()],
    );
    assert_eq!(
        fs::read_to_string(out_dir.join("hostname")).unwrap(),
        md_ok(&state, &["exec", "daily", "cat", "/etc/hostname"])
    );
    let leak = md(
        &state,
        &[
            "cp",
            "daily:/leak",
            out_dir.join("leaked").to_str().unwrap(),
        ],
    );
    assert_ne!(
        leak.status.code(),
        Some(0),
        "cp followed a symlink out of the container"
    );
    assert!(!out_dir.join("leaked").exists());
    // rename of a running container, as Docker's: and back again.
    md_ok(&state, &["rename", "daily", "hourly"]);
    assert_eq!(md_ok(&state, &["ps", "--format", "{{.Names}}"]), "hourly\n");
    md_ok(&state, &["rename", "hourly", "daily"]);
    // exec -d runs in the background.
    // attach: the output from now on, and the exit code.
    let mut attach = common::mini_docker(&state, &["attach", "daily"]);
    attach.stdout(Stdio::piped()).stderr(Stdio::piped());
    let attached = attach.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    md_ok(&state, &["exec", "-d", "daily", "touch", "/tmp/go"]);
    let out = attached.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "late\n");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(md_ok(&state, &["wait", "daily"]), "4\n");
    // logs -t, --since, --until.
    let stamped = md_ok(&state, &["logs", "-t", "daily"]);
    let first = stamped.lines().next().unwrap();
    let (stamp, text) = first.split_once(' ').unwrap();
    assert_eq!(text, "early");
    assert!(stamp.len() == 30 && stamp.ends_with('Z'), "{stamp}");
    assert_eq!(
        md_ok(
            &state,
            &["logs", "--until", "2000-01-01T00:00:00Z", "daily"]
        ),
        ""
    );
    assert_eq!(
        md_ok(&state, &["logs", "--since", "1h", "daily"]),
        "early\nlate\n"
    );
    assert!(
        md(&state, &["logs", "--since", "soon", "daily"])
            .status
            .code()
            == Some(125)
    );
    // A stopped container: cp out of its layers, rename.
    md_ok(
        &state,
        &[
            "cp",
            "daily:/tmp/tree/sub/leaf",
            out_dir.join("from-layer").to_str().unwrap(),
        ],
    );
    assert_eq!(
        fs::read_to_string(out_dir.join("from-layer")).unwrap(),
        "leaf\n"
    );
    md_ok(&state, &["rename", "daily", "weekly"]);
    assert_eq!(
        md_ok(&state, &["container", "ls", "-a", "--format", "{{.Names}}"]),
        "weekly\n"
    );
    // rm -v: its anonymous volume goes too.
    let listed = md_ok(&state, &["volume", "ls"]);
    let anonymous = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let doc: serde_json::Value =
        serde_json::from_str(&md_ok(&state, &["volume", "inspect", &anonymous])).unwrap();
    assert_eq!(doc[0]["Name"], anonymous.as_str());
    assert_eq!(doc[0]["Driver"], "local");
    md_ok(&state, &["rm", "-v", "weekly"]);
    assert!(!md_ok(&state, &["volume", "ls"]).contains(&anonymous));
    // volume prune: the unused ones.
    md_ok(&state, &["volume", "create", "spare"]);
    let pruned = md_ok(&state, &["volume", "prune", "-f"]);
    assert!(pruned.contains("spare"), "{pruned}");
    assert_eq!(md(&state, &["wait", "nosuch"]).status.code(), Some(1));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn port_lists_the_published_ports() {
    common::assert_root();
    let state = common::state_root("parity-port");
    let host = common::HostNetns::new();
    let run = |args: &[&str]| {
        let command = host.command(common::mini_docker(&state, args));
        common::run(command)
    };
    let out = run(&[
        "run",
        "-d",
        "--name",
        "ported",
        "-p",
        "127.0.0.1:8089:80",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = run(&[
        "run",
        "-d",
        "--name",
        "every",
        "--expose",
        "7000-7001",
        "-P",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(
        all.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let every = String::from_utf8_lossy(&run(&["port", "every"]).stdout).into_owned();
    let lines: Vec<&str> = every.lines().collect();
    assert_eq!(lines.len(), 2, "{every}");
    assert!(
        lines[0].starts_with("7000/tcp -> 0.0.0.0:")
            && lines[1].starts_with("7001/tcp -> 0.0.0.0:"),
        "{every}"
    );
    assert_eq!(run(&["rm", "-f", "every"]).status.code(), Some(0));
    let port = run(&["port", "ported"]);
    assert_eq!(
        String::from_utf8_lossy(&port.stdout),
        "80/tcp -> 127.0.0.1:8089\n"
    );
    let one = run(&["port", "ported", "80"]);
    assert_eq!(String::from_utf8_lossy(&one.stdout), "127.0.0.1:8089\n");
    assert_eq!(run(&["port", "ported", "81"]).status.code(), Some(1));
    assert_eq!(run(&["rm", "-f", "ported"]).status.code(), Some(0));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn the_run_flags_reach_the_kernel() {
    common::assert_root();
    let state = common::state_root("parity-flags");
    let bind = state.join("bind");
    fs::create_dir_all(&bind).unwrap();
    fs::write(bind.join("note"), "from the host\n").unwrap();
    let cidfile = state.join("cid");
    let mount_bind = format!("type=bind,source={},target=/b,readonly", bind.display());
    let script = "echo \"=== limits\"; grep 'open files' /proc/self/limits; \
                  echo \"=== shm\"; grep ' /dev/shm ' /proc/self/mountinfo; \
                  echo \"=== t\"; grep ' /t ' /proc/self/mountinfo; \
                  echo \"=== sysctl\"; cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_unprivileged_port_start; \
                  echo \"=== groups\"; id -G; \
                  echo \"=== ns\"; readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; \
                  echo \"=== bind\"; cat /b/note; touch /b/x 2>&1; \
                  echo \"=== volume\"; echo kept > /v/file; cat /v/file";
    let out = stdout_of(
        &state,
        &[
            "--network",
            "none",
            "--cidfile",
            cidfile.to_str().unwrap(),
            "--ulimit",
            "nofile=1024:2048",
            "--shm-size",
            "16m",
            "--sysctl",
            "kernel.shmmax=123456",
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=80",
            "--group-add",
            "10",
            "--group-add",
            "27",
            "--pid",
            "host",
            "--mount",
            "type=tmpfs,target=/t,tmpfs-size=1m",
            "--mount",
            &mount_bind,
            "--mount",
            "type=volume,source=flagvol,target=/v",
            "--log-driver",
            "none",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    let seen = sections(&out);
    let limits: Vec<&str> = seen["limits"].split_whitespace().collect();
    assert_eq!(&limits[3..5], ["1024", "2048"], "{}", seen["limits"]);
    assert!(seen["shm"].contains("size=16384k"), "{}", seen["shm"]);
    assert!(
        seen["t"].contains(" - tmpfs ") && seen["t"].contains("size=1024k"),
        "{}",
        seen["t"]
    );
    assert_eq!(seen["sysctl"], "123456\n80\n");
    assert_eq!(seen["groups"], "0 10 27\n");
    let host_ns = |kind: &str| {
        fs::read_link(format!("/proc/self/ns/{kind}"))
            .unwrap()
            .display()
            .to_string()
    };
    // --pid host: the host's PID namespace; the IPC namespace its own
    // (its kernel.shmmax is the container's alone).
    let ns: Vec<&str> = seen["ns"].lines().collect();
    assert_eq!(ns[0], host_ns("pid"));
    assert_ne!(ns[1], host_ns("ipc"));
    assert_ne!(
        fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        "123456\n"
    );
    let ipc = stdout_of(
        &state,
        &[
            "--rm",
            "--network",
            "none",
            "--ipc",
            "host",
            "busybox",
            "readlink",
            "/proc/self/ns/ipc",
        ],
    );
    assert_eq!(ipc, format!("{}\n", host_ns("ipc")));
    assert!(
        seen["bind"].starts_with("from the host\n")
            && seen["bind"].contains("Read-only file system"),
        "{}",
        seen["bind"]
    );
    assert_eq!(seen["volume"], "kept\n");
    assert!(state.join("lib/volumes/flagvol/_data/file").exists());
    // --cidfile holds the ID; a second run with it is refused.
    let id = fs::read_to_string(&cidfile).unwrap();
    assert_eq!(id.len(), 64);
    let again = run(
        &state,
        &[
            "--rm",
            "--cidfile",
            cidfile.to_str().unwrap(),
            "busybox",
            "true",
        ],
    );
    assert_eq!(again.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&again.stderr).contains("container ID file found"));
    // --log-driver none: nothing to read back.
    let names = md_ok(&state, &["ps", "-a", "--format", "{{.Names}}"]);
    let name = names.trim();
    let logs = md(&state, &["logs", name]);
    assert_eq!(logs.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&logs.stderr).contains("does not support reading"));
    assert_eq!(
        md_ok(
            &state,
            &[
                "inspect",
                "-f",
                "{{.HostConfig.LogConfig.Type}} {{.HostConfig.PidMode}}",
                name
            ]
        ),
        "none host\n"
    );
    md_ok(&state, &["rm", name]);
    md_ok(&state, &["volume", "rm", "flagvol"]);
    // Bad values: Docker's kind of error, exit 125, nothing made.
    for (bad, says) in [
        (&["--sysctl", "vm.swappiness=1"][..], "not whitelisted"),
        (
            &["--ipc", "host", "--sysctl", "kernel.shmmax=1"],
            "not allowed in host IPC namespace",
        ),
        (&["--ip", "172.18.0.9"], "user defined networks only"),
        (&["--ulimit", "bogus=1"], "invalid ulimit type"),
        (&["--ulimit", "nofile=10:5"], "soft limit must be less"),
        (
            &["--mount", "type=bind,source=/no/such/dir,target=/x"],
            "bind source path does not exist",
        ),
        (&["--mount", "type=disk,target=/x"], "unknown mount type"),
        (&["--expose", "0"], "invalid range format"),
        (&["--log-driver", "syslog"], "not supported"),
        (&["--pull", "sometimes"], "invalid value"),
        (&["--pull", "never"], "No such image"),
        (&["--cpuset-cpus", "0-999"], "not available"),
        (&["--memory-swap", "64m"], "always set the memory limit"),
        (&["--add-host", "db"], "bad format for add-host"),
        (&["--dns", "nine"], "invalid IP address"),
        (&["--security-opt", "seccomp="], "security-opt"),
    ] {
        let mut args = vec!["--rm"];
        args.extend(bad);
        let image = if bad.get(1) == Some(&"never") {
            "nosuchimage"
        } else {
            "busybox"
        };
        args.extend([image, "true"]);
        let out = run(&state, &args);
        assert_eq!(out.status.code(), Some(125), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{bad:?}: {stderr}");
    }
    assert_eq!(md_ok(&state, &["ps", "-a", "-q"]), "");
}

/// `mini-docker ARGS` on a terminal of its own (util-linux `script`), our
/// pipe as the terminal's keyboard.
fn on_a_terminal(state: &Path, args: &[&str]) -> std::process::Child {
    let binary = common::binary("mini-docker");
    let line = std::iter::once(binary.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut command = Command::new("script");
    command
        .args(["-qfec", &line, "/dev/null"])
        .env(container_lab::engine::dirs::ROOT_ENV, state)
        .env(container_lab::engine::store::PIN_IDS_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    common::in_new_netns(&mut command);
    command.spawn().expect("start script")
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn stats_redraws_on_a_terminal_and_attach_detaches_with_ctrl_p_ctrl_q() {
    use std::io::{Read, Write};
    common::assert_root();
    let state = common::state_root("parity-terminal");
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = md(&self.0, &["rm", "-f", "live"]);
        }
    }
    let _cleanup = Cleanup(state.clone());
    md_ok(
        &state,
        &[
            "run",
            "-d",
            "--name",
            "live",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "while true; do echo tick; sleep 0.2; done",
        ],
    );
    // stats on a terminal: the table again and again, until Ctrl-C.
    let mut stats = on_a_terminal(&state, &["stats", "live"]);
    let mut stdout = stats.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let redraws = |bytes: &[u8]| bytes.windows(7).filter(|w| *w == b"\x1b[H\x1b[2J").count();
    let twice = common::wait_for(common::PATIENCE, || {
        (redraws(&seen.lock().unwrap()) >= 2).then_some(())
    });
    assert!(
        twice.is_some(),
        "stats did not redraw: {}",
        String::from_utf8_lossy(&seen.lock().unwrap())
    );
    stats.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    // Ctrl-C ends it (0 here; Docker's client dies of the SIGINT, 130).
    let status = stats.wait().unwrap();
    reader.join().unwrap();
    assert!(matches!(status.code(), Some(0 | 130)), "{status:?}");
    assert!(String::from_utf8_lossy(&seen.lock().unwrap()).contains("live"));
    // attach: the output, then Ctrl-P Ctrl-Q detaches and leaves it running.
    let mut attach = on_a_terminal(&state, &["attach", "live"]);
    let mut out = attach.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let n = out.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).contains("tick"));
    attach
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"\x10\x11")
        .unwrap();
    let status = attach.wait().unwrap();
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    assert!(status.success(), "{status:?}");
    assert!(rest.contains("read escape sequence"), "{rest}");
    assert_eq!(
        md_ok(&state, &["inspect", "-f", "{{.State.Status}}", "live"]),
        "running\n"
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_user_defined_network_gives_its_resolver_in_resolv_conf() {
    common::assert_root();
    let state = common::state_root("parity-netresolv");
    let host = common::HostNetns::new();
    let upstream = state.join("resolv.conf");
    fs::write(&upstream, "# no resolvers\n").unwrap();
    let md_here = |args: &[&str]| {
        let mut command = common::mini_docker(&state, args);
        command.env(
            container_lab::engine::network::dns::RESOLV_CONF_ENV,
            &upstream,
        );
        common::run(host.command(command))
    };
    let made = md_here(&["network", "create", "--subnet", "10.77.0.0/24", "parnet"]);
    assert_eq!(
        made.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let out = md_here(&[
        "run",
        "--rm",
        "--name",
        "resolving",
        "--network",
        "parnet",
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf; echo ===; tail -n 1 /etc/hosts",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = md_here(&["network", "rm", "parnet"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (resolv, hosts) = text.split_once("===\n").unwrap();
    assert_eq!(resolv, "nameserver 10.77.0.1\noptions ndots:0\n");
    assert!(
        hosts.starts_with("10.77.0.") && hosts.split_whitespace().count() == 2,
        "{hosts}"
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ipc_container_joins_a_shareable_ipc_namespace_only() {
    let lab = common::lab::Lab::new("parity-ipc");
    let sleeper = |name: &str, ipc: Option<&str>| {
        let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
        if let Some(mode) = ipc {
            args.extend(["--ipc", mode]);
        }
        args.extend(["busybox", "sleep", "60"]);
        lab.ok(&args);
    };
    sleeper("donor", Some("shareable"));
    sleeper("joiner", Some("container:donor"));
    let ipc = |name: &str| fs::read_link(format!("/proc/{}/ns/ipc", lab.pid(name))).unwrap();
    let own = fs::read_link("/proc/self/ns/ipc").unwrap();
    assert_eq!(ipc("joiner"), ipc("donor"));
    assert_ne!(ipc("donor"), own);
    // Its /dev/mqueue is that namespace's: a queue made in one is in the other.
    lab.ok(&["exec", "donor", "touch", "/dev/mqueue/shared-queue"]);
    let queues = lab.ok(&["exec", "joiner", "ls", "/dev/mqueue"]);
    assert_eq!(queues, "shared-queue\n");
    let doc: serde_json::Value = serde_json::from_str(&lab.ok(&["inspect", "joiner"])).unwrap();
    assert_eq!(doc[0]["HostConfig"]["IpcMode"], "container:donor");
    // Docker 20.10's default is "private": not shareable.
    sleeper("private", None);
    lab.refused(
        &["run", "--rm", "--network", "none", "--ipc", "container:private", "busybox", "true"],
        "can't join IPC of container private: non-shareable IPC (hint: use IpcMode:shareable for the donor container)",
    );
    lab.refused(
        &[
            "run",
            "--rm",
            "--ipc",
            "container:nosuch",
            "busybox",
            "true",
        ],
        "can't join IPC of container nosuch",
    );
    lab.refused(
        &["run", "--rm", "--ipc", "bogus", "busybox", "true"],
        "invalid IPC mode: bogus",
    );
    lab.refused(
        &["run", "--rm", "--ipc", "container:", "busybox", "true"],
        "invalid IPC mode: container:",
    );
    // An IPC sysctl would be the other container's setting: refused, and
    // neither the host's nor the donor's value changes.
    // (An IPC sysctl reads the reader's namespace: the donor's is read there.)
    let host_shmmax = || fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let donor_shmmax = || lab.ok(&["exec", "donor", "cat", "/proc/sys/kernel/shmmax"]);
    let (host_before, donor_before) = (host_shmmax(), donor_shmmax());
    lab.refused(
        &[
            "run",
            "--rm",
            "--ipc",
            "container:donor",
            "--sysctl",
            "kernel.shmmax=4096",
            "busybox",
            "true",
        ],
        "not allowed with --ipc container:donor",
    );
    assert_eq!(host_shmmax(), host_before);
    assert_eq!(donor_shmmax(), donor_before);
    lab.ok(&["stop", "-t", "0", "donor"]);
    lab.refused(
        &["run", "--rm", "--ipc", "container:donor", "busybox", "true"],
        "is not running",
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn attach_forwards_stdin_to_a_detached_interactive_container() {
    use std::io::Write;
    let lab = common::lab::Lab::new("parity-attach");
    lab.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "reader",
        "--network",
        "none",
        "busybox",
        "cat",
    ]);
    lab.ok(&[
        "run",
        "-d",
        "--name",
        "deaf",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    // From outside: the one's stdin is its fifo, the other's /dev/null
    // (the character device 1:3).
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let stdin_of = |name: &str| fs::metadata(format!("/proc/{}/fd/0", lab.pid(name))).unwrap();
    assert!(stdin_of("reader").file_type().is_fifo());
    let deaf = stdin_of("deaf");
    assert!(deaf.file_type().is_char_device());
    assert_eq!(deaf.rdev(), libc::makedev(1, 3));
    let attach_with = |input: &str| {
        let mut command = lab.command(&["attach", "--sig-proxy=false", "reader"]);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        // Written, then our end closed: end of file for attach, not for cat.
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child
    };
    let logs_say = |text: &str| {
        common::wait_for(common::PATIENCE, || {
            (lab.ok(&["logs", "reader"]) == text).then_some(())
        })
        .is_some()
    };
    let first = attach_with("hi\n");
    assert!(logs_say("hi\n"), "{}", lab.ok(&["logs", "reader"]));
    // attach follows the output until interrupted (no signal proxy).
    let out = common::end_foreground(first);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The container's stdin stayed open: a second attacher is heard too.
    let second = attach_with("again\n");
    assert!(logs_say("hi\nagain\n"), "{}", lab.ok(&["logs", "reader"]));
    let _ = common::end_foreground(second);
    let doc: serde_json::Value = serde_json::from_str(&lab.ok(&["inspect", "reader"])).unwrap();
    assert_eq!(doc[0]["State"]["Running"], true);
}
