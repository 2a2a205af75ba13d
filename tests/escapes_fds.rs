//! Inherited file descriptors: mini-docker is started with a descriptor
//! open on the host's `/` at number 7 (what `exec 7</` in a shell does),
//! for a foreground `run`, `run --init`, `run -d` (and its supervisor),
//! `exec`, and `-w /proc/self/fd/7` (the shape of runc's CVE-2024-21626).
//! Inside, nothing but 0, 1 and 2 is open and the host's files are out of
//! reach; from the host, no process in the container's cgroup holds a
//! descriptor to a directory.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// The descriptor number a careless caller leaves open.
const LEAKED: i32 = 7;

/// What every container here runs: its own descriptors, then the attack
/// (whose output, the host's shadow file, never reaches the test log),
/// then a sleep for the host to look at it.
const PROBE: &str = "echo fds: $(ls /proc/self/fd | tr '\\n' ' '); \
    if cat /proc/self/fd/7/etc/shadow >/dev/null 2>&1; then echo shadow: read; else echo shadow: refused; fi; \
    exec sleep 1000";

struct Lab {
    state: PathBuf,
}

impl Lab {
    fn new(test: &str) -> Lab {
        common::assert_root();
        Lab {
            state: common::state_root(test),
        }
    }

    /// `mini-docker ARGS` in a network namespace of its own, with `/`
    /// open at descriptor 7, not close-on-exec.
    fn leaky(&self, args: &[&str]) -> Command {
        let mut command = common::mini_docker(&self.state, args);
        common::in_new_netns(&mut command);
        unsafe {
            command.pre_exec(|| {
                let fd = libc::open(c"/".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
                if fd < 0 || libc::dup2(fd, LEAKED) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if fd != LEAKED {
                    libc::close(fd);
                }
                Ok(())
            });
        }
        command
    }

    fn md(&self, args: &[&str]) -> Output {
        println!("--- mini-docker {}", args.join(" "));
        common::run(self.leaky(args))
    }

    /// The container's record's state.json, as root reads it.
    fn state_json(&self, name: &str) -> serde_json::Value {
        let out = self.md(&["inspect", name]);
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = all[0]["Id"].as_str().unwrap().to_string();
        let text = fs::read_to_string(self.state.join("run/lifecycle").join(id).join("state.json"))
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Lab {
    /// Whatever a failed test left running goes (by name, through mini-docker).
    fn drop(&mut self) {
        for name in ["fds-detached", "fds-exec"] {
            let mut command = self.leaky(&["rm", "-f", name]);
            command.stdout(Stdio::null()).stderr(Stdio::null());
            let _ = command.status();
        }
    }
}

/// A foreground `mini-docker run`, read line by line.
struct Foreground {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
    seen: Vec<String>,
}

impl Foreground {
    fn start(mut command: Command) -> Foreground {
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start mini-docker");
        let lines = BufReader::new(child.stdout.take().unwrap());
        Foreground {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line that starts with `prefix`.
    fn line(&mut self, prefix: &str) -> String {
        loop {
            let mut line = String::new();
            let n = self.lines.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "the container ended before {prefix:?}: {:?}",
                self.seen
            );
            println!("container: {}", line.trim_end());
            self.seen.push(line.clone());
            if line.starts_with(prefix) {
                return line.trim_end().to_string();
            }
        }
    }
}

impl Drop for Foreground {
    /// SIGTERM to mini-docker, which stops the container; SIGKILL if it
    /// is still there after a while (`exec` waits for its command).
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let ended = common::wait_for(common::PATIENCE, || self.child.try_wait().ok().flatten());
        if ended.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every process in the cgroup of container `name`.
fn cgroup_pids(name: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = common::cgroup_dirs(name)
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

/// The open descriptors of a process, with what each points at.
fn descriptors(pid: i32) -> Vec<(i32, String)> {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let mut fds: Vec<(i32, String)> = fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let fd = e.file_name().to_str()?.parse().ok()?;
                    let target = fs::read_link(e.path()).ok()?;
                    Some((fd, target.display().to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    fds.sort();
    fds
}

/// From the host: the process has only 0, 1 and 2, and none of its
/// descriptors is a directory (of the host or any other).
fn assert_only_stdio(pid: i32, what: &str) {
    let fds = descriptors(pid);
    println!("{what} (pid {pid}): {fds:?}");
    let numbers: Vec<i32> = fds.iter().map(|(fd, _)| *fd).collect();
    assert_eq!(numbers, [0, 1, 2], "{what} (pid {pid}) holds {fds:?}");
    for (fd, _) in &fds {
        let meta = fs::metadata(format!("/proc/{pid}/fd/{fd}"));
        assert!(
            !meta.is_ok_and(|m| m.is_dir()),
            "{what} (pid {pid}) holds a directory at {fd}"
        );
    }
}

fn assert_every_process_clean(name: &str) {
    let pids = cgroup_pids(name);
    assert!(!pids.is_empty(), "no process in the cgroup of {name}");
    for pid in pids {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert_only_stdio(pid, comm.trim());
    }
}

/// Inside: `ls /proc/self/fd` lists 0 1 2 and 3, ls's own handle on the
/// directory it reads; the leaked 7 is gone and the shadow file with it.
fn assert_probe(foreground: &mut Foreground) {
    assert_eq!(foreground.line("fds:"), "fds: 0 1 2 3");
    assert_eq!(foreground.line("shadow:"), "shadow: refused");
}

fn check_foreground(lab: &Lab, name: &str, extra: &[&str], fallback: bool) {
    let mut args = vec![
        "run",
        "--rm",
        "--network",
        "none",
        "--stop-timeout",
        "1",
        "--name",
        name,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", PROBE]);
    let mut command = lab.leaky(&args);
    if fallback {
        command.env(
            container_lab::kernel::init::FORCE_FD_FALLBACK_ENV
                .to_str()
                .unwrap(),
            "1",
        );
    }
    let mut run = Foreground::start(command);
    assert_probe(&mut run);
    let asleep = common::wait_for(common::PATIENCE, || {
        cgroup_pids(name)
            .iter()
            .any(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
            })
            .then_some(())
    });
    assert!(asleep.is_some(), "{name} never ran sleep");
    assert_every_process_clean(name);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_foreground_run_passes_no_inherited_descriptor() {
    let lab = Lab::new("escapes-fds-run");
    check_foreground(&lab, "fds-run", &[], false);
    // The same without close_range(2), as on kernels before 5.11.
    check_foreground(&lab, "fds-run-old", &[], true);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn run_init_closes_inherited_descriptors_in_pid_1() {
    let lab = Lab::new("escapes-fds-init");
    // lab-init stays as PID 1 without execve: it must close them itself.
    check_foreground(&lab, "fds-init", &["--init"], false);
    check_foreground(&lab, "fds-init-old", &["--init"], true);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_detached_container_and_its_supervisor_hold_no_inherited_descriptor() {
    let lab = Lab::new("escapes-fds-detached");
    let out = lab.md(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "fds-detached",
        "busybox",
        "sh",
        "-c",
        PROBE,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let logged = common::wait_for(common::PATIENCE, || {
        let logs = lab.md(&["logs", "fds-detached"]);
        let text = String::from_utf8_lossy(&logs.stdout).into_owned();
        text.contains("shadow:").then_some(text)
    })
    .expect("the container never logged its probe");
    assert!(logged.contains("fds: 0 1 2 3\n"), "{logged}");
    assert!(logged.contains("shadow: refused\n"), "{logged}");
    assert_every_process_clean("fds-detached");
    // The supervisor, started in the caller's shell, keeps none of its
    // descriptors either: it starts every later restart.
    let supervisor = lab.state_json("fds-detached")["supervisor_pid"]
        .as_i64()
        .unwrap() as i32;
    let fds = descriptors(supervisor);
    println!("supervisor (pid {supervisor}): {fds:?}");
    assert!(
        !fds.iter()
            .any(|(fd, target)| *fd == LEAKED || target == "/"),
        "the supervisor kept the caller's descriptor: {fds:?}"
    );
    for (fd, _) in &fds {
        let meta = fs::metadata(format!("/proc/{supervisor}/fd/{fd}"));
        assert!(
            !meta.is_ok_and(|m| m.is_dir()),
            "supervisor holds a directory at {fd}"
        );
    }
    assert_eq!(lab.md(&["rm", "-f", "fds-detached"]).status.code(), Some(0));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn exec_passes_no_inherited_descriptor() {
    let lab = Lab::new("escapes-fds-exec");
    let out = lab.md(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "fds-exec",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let mut exec = Foreground::start(lab.leaky(&["exec", "fds-exec", "sh", "-c", PROBE]));
    assert_probe(&mut exec);
    let both = common::wait_for(common::PATIENCE, || {
        let sleeps = cgroup_pids("fds-exec")
            .iter()
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
            })
            .count();
        (sleeps == 2).then_some(())
    });
    assert!(both.is_some(), "the exec'd sleep never ran");
    // Also the process exec waits in, inside the container's cgroup.
    assert_every_process_clean("fds-exec");
    // The container first: exec waits for its command until it is gone.
    assert_eq!(lab.md(&["rm", "-f", "fds-exec"]).status.code(), Some(0));
    drop(exec);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_working_directory_through_a_leaked_descriptor_is_refused() {
    // runc's CVE-2024-21626: the process's cwd set to /proc/self/fd/N,
    // where N was a host directory the runtime had left open.
    let lab = Lab::new("escapes-fds-cwd");
    let out = lab.md(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-w",
        "/proc/self/fd/7",
        "busybox",
        "sh",
        "-c",
        "if test -e etc/shadow; then echo host: reached; fi",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("host: reached"), "{stdout}");
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("workdir /proc/self/fd/7"),
        "the refusal does not name the working directory"
    );
    let left = fs::read_dir(lab.state.join("run/containers"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "the refused run left its run directory");
}
