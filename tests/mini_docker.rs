//! `mini-docker run`, scenario by scenario, checked by exit codes, by what
//! the container printed, and by what is left on the host afterwards.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `mini-docker run ARGS` in a network namespace of its own: the default
/// network is the bridge, which must never be made in the machine's own.
fn mini_docker(state: &Path, args: &[&str]) -> std::process::Output {
    common::run(isolated(state, args))
}

/// `run_command`, started in a network namespace of its own.
fn isolated(state: &Path, args: &[&str]) -> Command {
    let mut command = run_command(state, args);
    common::in_new_netns(&mut command);
    command
}

fn run_command(state: &Path, args: &[&str]) -> Command {
    let mut command = common::mini_docker(state, &["run"]);
    command.args(args);
    command
}

/// A container running in the background, seen from the host.
struct Background {
    mini_docker: Option<std::process::Child>,
    name: String,
}

impl Background {
    /// Starts `run --name NAME ARGS` and waits until the newest process
    /// in the container's cgroup is `program` (it has been executed).
    fn start(command: Command, name: &str, program: &str) -> Background {
        let mut command = command;
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mini_docker = command.spawn().expect("start mini-docker");
        let background = Background {
            mini_docker: Some(mini_docker),
            name: name.to_string(),
        };
        let found = common::wait_for(common::PATIENCE, || {
            let pid = *background.pids().last()?;
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == program).then_some(())
        });
        assert!(found.is_some(), "{name} never ran {program}");
        background
    }

    /// The container's processes, from its cgroup (as the host sees them).
    fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = common::cgroup_dirs(&self.name)
            .iter()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort();
        pids.dedup();
        pids
    }

    /// The newest process: the container's program, not its shell.
    fn newest_status(&self) -> String {
        let pid = *self.pids().last().expect("no process");
        fs::read_to_string(format!("/proc/{pid}/status")).unwrap()
    }

    /// SIGTERM to mini-docker (as Ctrl-C would) until it ends, then its output.
    fn stop(mut self) -> std::process::Output {
        let child = self.mini_docker.take().unwrap();
        let out = common::end_foreground(child);
        println!("--- exit: {:?}", out.status.code());
        println!("--- stdout:\n{}", String::from_utf8_lossy(&out.stdout));
        println!("--- stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        out
    }
}

impl Drop for Background {
    /// A failed test still ends its container (by mini-docker's PID).
    fn drop(&mut self) {
        if let Some(child) = self.mini_docker.take() {
            let _ = common::end_foreground(child);
        }
    }
}

/// `GET PATH` over HTTP/1.0; the body, or an error.
fn http_get(address: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let address: std::net::SocketAddr = address.parse().unwrap();
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.split_whitespace().nth(1) == Some("200") => Ok(body.to_string()),
        _ => Err(std::io::Error::other(response)),
    }
}

fn status_line<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or("")
        .trim()
}

fn assert_nothing_left(state: &Path, name: &str) {
    assert!(
        !state.join("run/containers").join(name).exists(),
        "the run directory of {name} was left"
    );
    for dir in common::cgroup_dirs(name) {
        assert!(!dir.exists(), "{} was left", dir.display());
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn exit_codes_follow_docker() {
    common::assert_root();
    let state = common::state_root("mini-docker-codes");
    let out = mini_docker(
        &state,
        &["--rm", "--name", "hello", "busybox", "echo", "hi"],
    );
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(0), b"hi\n".as_slice())
    );
    assert_eq!(
        mini_docker(&state, &["busybox", "sh", "-c", "exit 3"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        mini_docker(&state, &["busybox", "no-such-command"])
            .status
            .code(),
        Some(127)
    );
    assert_eq!(
        mini_docker(&state, &["busybox", "/etc"]).status.code(),
        Some(126)
    );
    let unknown = mini_docker(&state, &["nginx"]);
    assert_eq!(unknown.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("unable to find image 'nginx:latest'")
    );
    for bad in [
        &["--memory", "12q", "busybox", "true"][..],
        &["--cap-add", "FLY", "busybox", "true"],
        &["--network", "moon", "busybox", "true"],
    ] {
        let out = mini_docker(&state, bad);
        assert_eq!(out.status.code(), Some(125), "{bad:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
    assert_nothing_left(&state, "hello");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn the_flags_reach_the_container() {
    common::assert_root();
    let state = common::state_root("mini-docker-flags");
    let out = mini_docker(
        &state,
        &[
            "--name",
            "flags",
            "-h",
            "web",
            "-e",
            "FOO=bar",
            "-w",
            "/srv",
            "busybox",
            "sh",
            "-c",
            "echo $FOO $(hostname) $(pwd)",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bar web /srv\n");
    let ro = mini_docker(&state, &["--read-only", "busybox", "touch", "/x"]);
    assert_eq!(ro.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&ro.stderr).contains("Read-only file system"));
    let caps = mini_docker(
        &state,
        &[
            "--cap-drop",
            "ALL",
            "busybox",
            "grep",
            "CapEff",
            "/proc/self/status",
        ],
    );
    assert!(String::from_utf8_lossy(&caps.stdout).contains("0000000000000000"));
    let default = mini_docker(&state, &["busybox", "grep", "CapBnd", "/proc/self/status"]);
    assert!(
        String::from_utf8_lossy(&default.stdout).contains("00000000a80425fb"),
        "not Docker's default set"
    );
    assert_nothing_left(&state, "flags");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn limits_are_enforced_by_the_kernel() {
    common::assert_root();
    let state = common::state_root("mini-docker-limits");
    let hog = mini_docker(
        &state,
        &[
            "--name",
            "hog",
            "-m",
            "8m",
            "busybox",
            "sh",
            "-c",
            "x=$(head -c 30000000 /dev/zero | tr '\\0' a); echo ${#x}",
        ],
    );
    assert_eq!(hog.status.code(), Some(137), "not OOM-killed");
    let forks = mini_docker(
        &state,
        &[
            "--name",
            "forks",
            "--pids-limit",
            "5",
            "busybox",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6; do sleep 1 & done; wait",
        ],
    );
    assert!(
        String::from_utf8_lossy(&forks.stderr).contains("can't fork"),
        "the pids limit did not hold"
    );
    assert_nothing_left(&state, "hog");
    assert_nothing_left(&state, "forks");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn parallel_runs_all_succeed_and_leave_nothing() {
    common::assert_root();
    let state = common::state_root("mini-docker-parallel");
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let state = state.clone();
            std::thread::spawn(move || {
                mini_docker(
                    &state,
                    &["--rm", "--name", &format!("p{i}"), "busybox", "true"],
                )
                .status
                .code()
            })
        })
        .collect();
    for run in runs {
        assert_eq!(run.join().unwrap(), Some(0));
    }
    for i in 0..8 {
        assert_nothing_left(&state, &format!("p{i}"));
    }
}

#[test]
fn run_help_lists_dockers_flags() {
    let state = common::state_root("mini-docker-help");
    let out = mini_docker(&state, &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("mini-docker-run-help", String::from_utf8_lossy(&out.stdout));
    });
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_published_port_answers_and_everything_goes_at_exit() {
    common::assert_root();
    let state = common::state_root("mini-docker-publish");
    let host = common::HostNetns::new();
    let web = Background::start(
        host.command(run_command(
            &state,
            &[
                "--name",
                "web",
                "-h",
                "web",
                "-p",
                "8080:80",
                "--stop-timeout",
                "1",
                "busybox",
                "sh",
                "-c",
                "echo served-by-$(hostname) > /www; exec httpd -f -p 80 -h /",
            ],
        )),
        "web",
        "httpd",
    );
    // The published port, through the host's loopback and the host's
    // own address on the bridge.
    let page = common::in_netns(&host.file, || {
        common::wait_for(common::PATIENCE, || http_get("127.0.0.1:8080", "/www").ok())
    });
    assert_eq!(page.as_deref(), Some("served-by-web\n"));
    // The container's own namespace: eth0 with the first address.
    let init = web.pids()[0];
    let mut ip = Command::new("nsenter");
    ip.args([
        "-t",
        &init.to_string(),
        "-n",
        "ip",
        "-4",
        "-br",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(String::from_utf8_lossy(&ip.output().unwrap().stdout).contains("172.29.0.2/24"));
    // From the host's side: the bridge, the host end of the veth on it,
    // the container's own table of DNAT rules.
    assert!(host
        .ip(&["-br", "addr", "show", "lab0"])
        .contains("172.29.0.1/24"));
    assert!(host
        .ip(&["link", "show", "master", "lab0"])
        .contains("vh-lab2"));
    assert!(host.nft_tables().contains("table ip container_lab_2"));
    // httpd as PID 1 ignores SIGTERM: the third one kills it, as the lab adds.
    let out = web.stop();
    assert_eq!(out.status.code(), Some(137));
    assert_eq!(
        host.ip(&["-br", "link"]).lines().count(),
        1,
        "links were left"
    );
    assert!(
        !host.nft_tables().contains("container_lab"),
        "nft tables were left"
    );
    let addresses = fs::read_to_string(state.join("run/network/addresses")).unwrap_or_default();
    assert_eq!(addresses, "", "addresses were left allocated");
    assert_nothing_left(&state, "web");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn twenty_parallel_runs_get_distinct_addresses_and_leave_nothing() {
    common::assert_root();
    let state = common::state_root("mini-docker-twenty");
    let host = common::HostNetns::new();
    let shared = state.join("shared");
    fs::create_dir_all(&shared).unwrap();
    let volume = format!("{}:/shared", shared.display());
    // Each container writes its address, then waits until all twenty have:
    // they are all alive at once, so their addresses must all differ.
    let script = "ip -4 -o addr show eth0 | awk '{print $4}' > /shared/$HOSTNAME; \
                  i=0; while [ $(ls /shared | wc -l) -lt 20 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done";
    let runs: Vec<_> = (0..20)
        .map(|i| {
            let name = format!("par{i}");
            let mut command = host.command(run_command(
                &state,
                &[
                    "--rm", "--name", &name, "-h", &name, "-v", &volume, "busybox", "sh", "-c",
                    script,
                ],
            ));
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut addresses: Vec<String> = (0..20)
        .map(|i| {
            fs::read_to_string(shared.join(format!("par{i}")))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    assert!(
        addresses
            .iter()
            .all(|a| a.starts_with("172.29.0.") && a.ends_with("/24")),
        "{addresses:?}"
    );
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 20, "two containers shared an address");
    assert_eq!(
        host.ip(&["-br", "link"]).lines().count(),
        1,
        "links were left"
    );
    assert!(!host.nft_tables().contains("container_lab"));
    assert!(
        !common::host_mountinfo().contains("mini-docker-twenty"),
        "mounts were left"
    );
    for i in 0..20 {
        assert_nothing_left(&state, &format!("par{i}"));
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn volumes_and_tmpfs_are_mounted_as_asked() {
    common::assert_root();
    let state = common::state_root("mini-docker-volumes");
    let host_dir = state.join("host-dir");
    let bind = format!("{}:/data", host_dir.display());
    let out = mini_docker(
        &state,
        &[
            "--rm", "-v", &bind, "-v", "notes:/notes", "--tmpfs", "/scratch:size=1m", "busybox", "sh", "-c",
            "echo from-inside > /data/file; echo kept > /notes/n; grep -E ' /scratch ' /proc/mounts",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    // The bind mount is the host's directory itself; the named volume is
    // kept in the lab's state directory and outlives the container.
    assert_eq!(
        fs::read_to_string(host_dir.join("file")).unwrap(),
        "from-inside\n"
    );
    let volume = state.join("lib/volumes/notes/_data/n");
    assert_eq!(fs::read_to_string(&volume).unwrap(), "kept\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("tmpfs /scratch tmpfs rw,nosuid,nodev,noexec"),
        "{stdout}"
    );
    assert!(stdout.contains("size=1024k"), "{stdout}");
    // A second container sees the named volume's file; :ro refuses writes.
    let again = mini_docker(
        &state,
        &[
            "--rm",
            "-v",
            "notes:/notes:ro",
            "busybox",
            "sh",
            "-c",
            "cat /notes/n; echo x > /notes/n",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&again.stdout), "kept\n");
    assert!(String::from_utf8_lossy(&again.stderr).contains("Read-only file system"));
    assert_eq!(again.status.code(), Some(1));
    assert!(
        !common::host_mountinfo().contains("mini-docker-volumes"),
        "mounts were left"
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn user_entrypoint_env_file_and_stdin() {
    common::assert_root();
    let state = common::state_root("mini-docker-user");
    // -u: the kernel's view of the process, from the host.
    let sleeper = Background::start(
        isolated(
            &state,
            &[
                "--name",
                "user",
                "-u",
                "1000:1001",
                "--network",
                "none",
                "busybox",
                "sleep",
                "60",
            ],
        ),
        "user",
        "sleep",
    );
    let status = sleeper.newest_status();
    assert_eq!(status_line(&status, "Uid:"), "1000\t1000\t1000\t1000");
    assert_eq!(status_line(&status, "Gid:"), "1001\t1001\t1001\t1001");
    assert_eq!(status_line(&status, "CapEff:"), "0000000000000000");
    sleeper.stop();
    let named = mini_docker(&state, &["--rm", "-u", "nobody", "busybox", "id", "-u"]);
    assert_eq!(String::from_utf8_lossy(&named.stdout), "65534\n");
    let unknown = mini_docker(&state, &["--rm", "-u", "ghost", "busybox", "true"]);
    assert_eq!(unknown.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unable to find user ghost"));
    // --entrypoint replaces the program, the rest are its arguments.
    let entry = mini_docker(
        &state,
        &["--rm", "--entrypoint", "echo", "busybox", "one", "two"],
    );
    assert_eq!(String::from_utf8_lossy(&entry.stdout), "one two\n");
    // --env-file, then -e on top.
    let env_file = state.join("env");
    fs::write(&env_file, "# settings\nA=from-file\nB=b\n").unwrap();
    let env = mini_docker(
        &state,
        &[
            "--rm",
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "B=from-flag",
            "busybox",
            "sh",
            "-c",
            "echo $A $B",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&env.stdout),
        "from-file from-flag\n"
    );
    // -i passes our stdin; without it the container reads /dev/null.
    for (flag, expected) in [("-i", "typed\n"), ("--rm", "")] {
        let mut command = run_command(&state, &[flag, "busybox", "cat"]);
        common::in_new_netns(&mut command);
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = command.spawn().unwrap();
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(b"typed\n");
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{flag}");
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn privileged_keeps_every_capability_and_no_filter() {
    common::assert_root();
    let state = common::state_root("mini-docker-privileged");
    let container = Background::start(
        isolated(
            &state,
            &["--name", "priv", "--privileged", "busybox", "sleep", "60"],
        ),
        "priv",
        "sleep",
    );
    let status = container.newest_status();
    // Every capability the host itself has (its bounding set may lack some).
    let own = fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        status_line(&status, "CapEff:"),
        status_line(&own, "CapBnd:")
    );
    assert_eq!(status_line(&status, "Seccomp:"), "0");
    let pid = container.pids()[0];
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert!(
        !mountinfo.contains(" /proc/kcore "),
        "/proc/kcore is masked"
    );
    container.stop();
    let out = mini_docker(
        &state,
        &["--rm", "busybox", "grep", "Seccomp:", "/proc/self/status"],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2"),
        "not filtered by default"
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn bad_input_exits_125_and_creates_nothing() {
    common::assert_root();
    let state = common::state_root("mini-docker-bad");
    for (args, message) in [
        (
            &["-p", "99999:80", "busybox"][..],
            "invalid port specification",
        ),
        (
            &["-p", "80", "--network", "none", "busybox"],
            "-p needs the bridge network",
        ),
        (&["-v", "data", "busybox"], "invalid volume specification"),
        (
            &["-v", "/x:relative", "busybox"],
            "invalid volume specification",
        ),
        (&["--tmpfs", "/t:bogus", "busybox"], "invalid --tmpfs"),
        (
            &["--env-file", "/nonexistent/env", "busybox"],
            "cannot read the env file",
        ),
        (&["-m", "12q", "busybox"], "12q"),
        (&["nginx"], "unable to find image 'nginx:latest'"),
        (
            &["--name", "bad", "-u", "ghost", "busybox", "true"],
            "unable to find user ghost",
        ),
    ] {
        let out = mini_docker(&state, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}");
    }
    assert_nothing_left(&state, "bad");
    assert!(!state.join("lib/volumes").exists(), "a volume was created");
    // A name in use: the second run is refused while the first runs.
    let first = Background::start(
        isolated(
            &state,
            &[
                "--name",
                "taken",
                "--network",
                "none",
                "busybox",
                "sleep",
                "60",
            ],
        ),
        "taken",
        "sleep",
    );
    let second = mini_docker(&state, &["--name", "taken", "busybox", "true"]);
    assert_eq!(second.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&second.stderr).contains("already"));
    assert_eq!(first.pids().len(), 1, "the first container was disturbed");
    first.stop();
    assert_nothing_left(&state, "taken");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn explain_prints_every_step() {
    common::assert_root();
    let state = common::state_root("mini-docker-explain");
    let out = mini_docker(
        &state,
        &[
            "--rm",
            "--explain",
            "--name",
            "explained",
            "-h",
            "box",
            "-m",
            "64m",
            "-p",
            "8080:80",
            "-v",
            "notes:/notes",
            "busybox",
            "echo",
            "hello",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in common::filters() {
        settings.add_filter(pattern, replacement);
    }
    for (pattern, replacement) in common::own_cgroup_filters() {
        settings.add_filter(&pattern, replacement);
    }
    settings.add_filter(r"netns \d+", "netns [PID]");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    // The cgroup files differ between v1 and v2: one snapshot for each.
    let suffix = match container_lab::kernel::cgroups::detect_layout().unwrap() {
        container_lab::kernel::cgroups::Layout::Unified => "v2",
        _ => "v1",
    };
    settings.set_snapshot_suffix(suffix);
    settings.bind(|| {
        insta::assert_snapshot!("mini-docker-explain", String::from_utf8_lossy(&out.stderr));
    });
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn an_imported_tarball_runs_as_an_image() {
    common::assert_root();
    let state = common::state_root("mini-docker-import");
    // A root filesystem of our own: the busybox tree plus a marker file.
    let tree = state.join("tree");
    let busybox = container_lab::engine::images::busybox::find_static().unwrap();
    for dir in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        fs::create_dir_all(tree.join(dir)).unwrap();
    }
    fs::copy(&busybox, tree.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", tree.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", tree.join("bin/cat")).unwrap();
    fs::write(tree.join("etc/marker"), "imported\n").unwrap();
    fs::write(
        tree.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:4242:4343::/:/bin/sh\n",
    )
    .unwrap();
    let tarball = state.join("rootfs.tar");
    let tar = Command::new("tar")
        .args([
            "-C",
            tree.to_str().unwrap(),
            "-cf",
            tarball.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(tar.success());
    let mini = |args: &[&str]| common::run(common::mini_docker(&state, args));
    let imported = mini(&["import", tarball.to_str().unwrap(), "mybox:1"]);
    assert_eq!(imported.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&imported.stdout).starts_with("sha256:"));
    let listed = String::from_utf8_lossy(&mini(&["images"]).stdout).into_owned();
    assert!(listed.starts_with("REPOSITORY"), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("mybox ") && l.contains(" 1 ")),
        "{listed}"
    );
    // The container's root is the imported layer (and its user database).
    let out = mini_docker(
        &state,
        &[
            "--rm",
            "-u",
            "app",
            "mybox:1",
            "sh",
            "-c",
            "cat /etc/marker; echo $(id -u)",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "imported\n4242\n");
    // The layer itself did not change: the container wrote to its own upper.
    let layers = state.join("lib/images/layers");
    let out = mini_docker(
        &state,
        &["--rm", "mybox:1", "sh", "-c", "echo changed > /etc/marker"],
    );
    assert_eq!(out.status.code(), Some(0));
    let marker: Vec<_> = walk(&layers)
        .into_iter()
        .filter(|p| p.ends_with("etc/marker"))
        .collect();
    assert_eq!(marker.len(), 1);
    assert_eq!(fs::read_to_string(&marker[0]).unwrap(), "imported\n");
    assert_eq!(mini(&["rmi", "mybox:1"]).status.code(), Some(0));
    let gone = mini_docker(&state, &["--rm", "mybox:1", "true"]);
    assert_eq!(gone.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("unable to find image"));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Runs mini-docker with a pseudo-terminal of our own as its stdin,
/// stdout and stderr (33 rows, 101 columns), typing `keys` once `prompt`
/// has appeared; returns the exit code, everything the terminal showed,
/// and whether our terminal's settings came back unchanged.
fn on_a_terminal(
    state: &Path,
    args: &[&str],
    prompt: &str,
    keys: &[u8],
) -> (Option<i32>, String, bool) {
    with_a_terminal(isolated(state, args), prompt, keys)
}

/// `on_a_terminal` for any mini-docker command.
fn with_a_terminal(mut command: Command, prompt: &str, keys: &[u8]) -> (Option<i32>, String, bool) {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    let terminal = container_lab::kernel::pty::open(None).unwrap();
    let size = container_lab::kernel::pty::WindowSize {
        rows: 33,
        cols: 101,
    };
    container_lab::kernel::pty::set_window_size(terminal.slave.as_fd(), size).unwrap();
    let before = nix::sys::termios::tcgetattr(terminal.master.as_fd()).unwrap();
    let slave = || Stdio::from(terminal.slave.try_clone().unwrap());
    command.stdin(slave()).stdout(slave()).stderr(slave());
    let mut child = command.spawn().unwrap();
    // Only mini-docker holds the terminal now (the Command kept copies):
    // the master reads EIO once it has exited.
    drop(command);
    drop(terminal.slave);
    let mut master = fs::File::from(terminal.master);
    let mut writer = master.try_clone().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = master.read(&mut buffer) {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buffer[..n]);
            let _ = seen_tx.send(String::from_utf8_lossy(&text).into_owned());
        }
        (String::from_utf8_lossy(&text).into_owned(), master)
    });
    let mut shown = String::new();
    while !shown.contains(prompt) {
        // A hang guard, not a timing: the v2 guest emulates its CPU, and
        // with two tests at a time a start can take twenty seconds there.
        match seen_rx.recv_timeout(Duration::from_secs(90)) {
            Ok(text) => shown = text,
            Err(_) => break,
        }
    }
    assert!(shown.contains(prompt), "never saw {prompt:?}: {shown:?}");
    // Raw mode while mini-docker runs with -i: no echo, no line editing.
    let during = nix::sys::termios::tcgetattr(writer.as_fd()).unwrap();
    let raw = !during
        .local_flags
        .contains(nix::sys::termios::LocalFlags::ECHO);
    writer.write_all(keys).unwrap();
    let code = child.wait().unwrap().code();
    let (text, master) = reader.join().unwrap();
    let after = nix::sys::termios::tcgetattr(master.as_fd()).unwrap();
    let restored = raw
        && after.local_flags == before.local_flags
        && after.input_flags == before.input_flags
        && after.output_flags == before.output_flags;
    println!("--- terminal:\n{text}");
    (code, text, restored)
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn dash_it_gives_a_terminal_of_its_own_and_ctrl_c_reaches_it() {
    common::assert_root();
    let state = common::state_root("mini-docker-tty");
    // The container's terminal is one of its own /dev/pts (not the host's),
    // with our window size; what we type reaches the shell.
    let (code, text, restored) = on_a_terminal(
        &state,
        &[
            "--rm",
            "-it",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "tty; stty size; echo ready; read line; echo got-$line; exit 3",
        ],
        "ready",
        b"typed\r",
    );
    assert_eq!(code, Some(3));
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("33 101"), "{text}");
    assert!(text.contains("got-typed"), "{text}");
    assert!(
        restored,
        "our terminal was not in raw mode, or not restored"
    );
    // Ctrl-C is the byte 0x03: the container's line discipline turns it
    // into SIGINT for its foreground group; sleep dies, and the shell with
    // it (130). (sleep must not be the last command: sh would exec it, and
    // as PID 1 it would ignore SIGINT, as it does under Docker.)
    let (code, _, _) = on_a_terminal(
        &state,
        &[
            "--rm",
            "-it",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo ready; sleep 100; echo after",
        ],
        "ready",
        b"\x03",
    );
    assert_eq!(code, Some(130));
    // exec -it: a terminal of its own too, inside a running container.
    let started = mini_docker(
        &state,
        &[
            "-d",
            "--name",
            "ttybox",
            "--network",
            "none",
            "busybox",
            "sleep",
            "300",
        ],
    );
    assert_eq!(started.status.code(), Some(0));
    let exec = common::mini_docker(
        &state,
        &[
            "exec",
            "-it",
            "ttybox",
            "sh",
            "-c",
            "tty; echo ready; read line; echo got-$line; exit 4",
        ],
    );
    let (code, text, restored) = with_a_terminal(exec, "ready", b"typed\r");
    let rm = common::mini_docker(&state, &["rm", "-f", "ttybox"]);
    assert_eq!(common::run(rm).status.code(), Some(0));
    assert_eq!(code, Some(4));
    assert!(
        text.contains("/dev/pts/0") && text.contains("got-typed"),
        "{text}"
    );
    assert!(restored, "exec -it left our terminal changed");
    assert!(
        !common::host_mountinfo().contains("mini-docker-tty"),
        "mounts were left"
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn init_forwards_sigterm_and_reaps() {
    common::assert_root();
    let state = common::state_root("mini-docker-init");
    let container = Background::start(
        isolated(
            &state,
            &[
                "--name",
                "with-init",
                "--init",
                "--network",
                "none",
                "busybox",
                "sleep",
                "100",
            ],
        ),
        "with-init",
        "sleep",
    );
    // From the host: PID 1 of the container is the lab's init, and sleep
    // is its child.
    let pids = container.pids();
    let (init, sleep) = (pids[0], *pids.last().unwrap());
    let stat = fs::read_to_string(format!("/proc/{sleep}/stat")).unwrap();
    let parent: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(parent, init);
    assert_ne!(
        fs::read_to_string(format!("/proc/{init}/comm"))
            .unwrap()
            .trim(),
        "sleep"
    );
    // SIGTERM reaches sleep through init: 143 at once, not 137 after the
    // ten-second stop timeout.
    let out = container.stop();
    assert_eq!(out.status.code(), Some(143));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_rm_runs_directory_is_deleted_after_it_by_the_helper_it_forked() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::MetadataExt;
    common::assert_root();
    let state = common::state_root("janitor");
    let mut command = common::mini_docker(
        &state,
        &[
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "--name",
            "swept",
            "busybox",
            "sh",
            "-c",
            "echo up; read line",
        ],
    );
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut run = command.spawn().unwrap();
    let mut stdout = BufReader::new(run.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "up");
    // From the host: the run's helper, a child of its own, in a process
    // group of its own (a Ctrl-C is the run's), holding nothing of the
    // run's but its pipe: stdio on /dev/null.
    let helpers: Vec<i32> = common::children(run.id() as i32)
        .into_iter()
        .filter(|pid| {
            // Not the cgroup warm-up's helper, exited and not yet reaped.
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.contains("(mini-docker) ") && !stat.contains(") Z ")
        })
        .collect();
    assert_eq!(helpers.len(), 1, "one helper: {helpers:?}");
    let helper = helpers[0];
    let pgid = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(helper))).unwrap();
    assert_eq!(pgid.as_raw(), helper, "its own process group");
    let null = fs::metadata("/dev/null").unwrap().rdev();
    let mut pipes = 0;
    for fd in fs::read_dir(format!("/proc/{helper}/fd"))
        .unwrap()
        .flatten()
    {
        let target = fs::read_link(fd.path()).unwrap();
        let fd: i32 = fd.file_name().to_string_lossy().parse().unwrap();
        if fd < 3 {
            assert_eq!(
                fs::metadata(&target).unwrap().rdev(),
                null,
                "fd {fd}: {target:?}"
            );
        } else {
            assert!(
                target.to_string_lossy().starts_with("pipe:"),
                "fd {fd}: {target:?}"
            );
            pipes += 1;
        }
    }
    assert_eq!(pipes, 1, "one pipe, its own");

    // The run ends: its output ends with it (the helper holds none of it),
    // and the helper deletes the container's directory from the trash.
    run.stdin.take().unwrap().write_all(b"done\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(run.wait().unwrap().success());
    let trash = state.join("lib/trash");
    let swept = common::wait_for(Duration::from_secs(10), || {
        let empty = fs::read_dir(&trash).is_ok_and(|mut d| d.next().is_none());
        let gone = !Path::new(&format!("/proc/{helper}")).exists();
        (empty && gone).then_some(())
    });
    assert!(
        swept.is_some(),
        "left in {}: {:?}",
        trash.display(),
        fs::read_dir(&trash).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    assert!(!state
        .join("lib/lifecycle")
        .read_dir()
        .unwrap()
        .flatten()
        .any(|e| { e.file_name().len() == 64 }));
}
