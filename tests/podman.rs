//! Podman (Debian's 4.3, through conmon) driving lab-runc, one test per
//! command, each checked from the host: lab-runc's own state, /proc, the
//! cgroup files. Podman runs on an image it imported from the lab's
//! busybox tree, with its storage in the test's own directory (the vfs
//! driver: no mounts of its own), cgroupfs beneath our cgroup, no network,
//! events to a file.
//!
//! Needs root and podman; without podman each test says it was skipped.

mod common;
mod oci;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// One podman installation of its own, and the image.
struct Podman {
    dir: PathBuf,
    parent: String,
}

const IMAGE: &str = "localhost/labbox:1";

impl Podman {
    /// `None` (and a note) when podman or conmon is missing.
    fn new(test: &str) -> Option<Podman> {
        common::assert_root();
        for tool in ["podman", "conmon"] {
            if Command::new(tool).arg("--version").output().is_err() {
                println!("skipped: {tool} is not installed (scripts/provision.sh --with-bench installs it)");
                return None;
            }
        }
        let dir = common::state_root(&format!("podman-{test}"));
        let podman = Podman {
            dir: dir.clone(),
            parent: format!("lab-podman-{test}"),
        };
        // The lab's own busybox tree, as a tarball podman imports.
        let tree = oci::busybox_tree(&dir);
        let tar = dir.join("busybox.tar");
        let made = Command::new("tar")
            .arg("-C")
            .arg(&tree)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(made.success());
        let imported = podman.run(&["import", tar.to_str().unwrap(), IMAGE]);
        assert!(imported.status.success(), "podman import failed");
        Some(podman)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file", "--runtime"])
            .arg(common::binary("lab-runc"))
            .args(args)
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        println!("--- podman {}", args.join(" "));
        common::run(self.command(args))
    }

    /// `podman run` with the flags this machine needs: no network, our
    /// cgroup (conmon stays in ours: it would make its cgroup at the same
    /// absolute path in every hierarchy), limits within the hard ones.
    fn run_container(&self, extra: &[&str], command: &[&str]) -> Output {
        let parent = format!("--cgroup-parent={}", self.parent);
        let mut args = vec![
            "run",
            "--network",
            "none",
            "--cgroups=no-conmon",
            &parent,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(command);
        self.run(&args)
    }

    fn stdout(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.status.success(), "podman {args:?} failed");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn id(&self, name: &str) -> String {
        self.stdout(&["inspect", "--format", "{{.Id}}", name])
    }

    /// lab-runc's view of a container (its default root, as podman's `state`).
    fn lab_state(&self, id: &str) -> Option<serde_json::Value> {
        let output = Command::new(common::binary("lab-runc"))
            .args(["state", id])
            .output()
            .unwrap();
        output
            .status
            .success()
            .then(|| serde_json::from_slice(&output.stdout).unwrap())
    }

    /// The container's cgroup directories that exist now.
    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        oci::cgroup_dirs(&self.parent)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .command(&["rm", "--all", "--force", "--time", "0"])
            .output();
        let _ = self.command(&["system", "reset", "--force"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
        for dir in self.cgroup_dirs() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// After a container is gone: no state under lab-runc's root, no cgroup.
fn assert_gone(podman: &Podman, id: &str) {
    assert!(podman.lab_state(id).is_none(), "lab-runc still knows {id}");
    assert!(!Path::new("/run/lab-runc").join(id).exists());
    let left = podman.cgroup_dirs();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn podman_run_rm_echo() {
    let Some(podman) = Podman::new("echo") else {
        return;
    };
    let output = podman.run_container(&["--rm", "--name", "echo"], &["echo", "hi"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text(&output), "hi\n");
    assert!(
        podman.stdout(&["ps", "-aq"]).is_empty(),
        "--rm left the container"
    );
    assert!(podman.cgroup_dirs().is_empty());
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn podman_exit_code_passes_through() {
    let Some(podman) = Podman::new("exit") else {
        return;
    };
    let output = podman.run_container(&["--rm"], &["sh", "-c", "exit 3"]);
    assert_eq!(output.status.code(), Some(3));
    let missing = podman.run_container(&["--rm"], &["no-such-program"]);
    assert_eq!(missing.status.code(), Some(127), "a missing command is 127");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn podman_run_detached_and_ps() {
    let Some(podman) = Podman::new("ps") else {
        return;
    };
    let output = podman.run_container(&["-d", "--name", "web"], &["sleep", "100"]);
    assert!(output.status.success());
    let ps = podman.stdout(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("web Up"), "podman ps: {ps}");
    let id = podman.id("web");
    let state = podman.lab_state(&id).expect("lab-runc knows the container");
    assert_eq!(state["status"], "running");
    let pid = state["pid"].as_i64().unwrap();
    // The init runs `sleep`, a child of conmon (the subreaper), in
    // namespaces of its own.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");
    let ppid = oci::parent_of(pid as i32);
    let parent = std::fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap();
    assert_eq!(parent.trim(), "conmon");
    assert_ne!(
        common::ns_inode(&pid.to_string(), "pid"),
        common::ns_inode("self", "pid")
    );
    assert_ne!(
        common::ns_inode(&pid.to_string(), "mnt"),
        common::ns_inode("self", "mnt")
    );
    let procs: Vec<String> = podman
        .cgroup_dirs()
        .iter()
        .filter(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libpod-"))
        })
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .collect();
    assert!(!procs.is_empty() && procs.iter().all(|p| p.contains(&pid.to_string())));
    assert!(podman.run(&["rm", "-f", "-t", "0", "web"]).status.success());
    assert_gone(&podman, &id);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn podman_exec_joins_the_container() {
    let Some(podman) = Podman::new("exec") else {
        return;
    };
    podman.run_container(&["-d", "--name", "box"], &["sleep", "100"]);
    let id = podman.id("box");
    let pid = podman.lab_state(&id).unwrap()["pid"].as_i64().unwrap();
    let inside = podman.stdout(&[
        "exec",
        "box",
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; readlink /proc/self/ns/mnt; echo $$",
    ]);
    let lines: Vec<&str> = inside.lines().collect();
    let host_pid_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    let host_mnt_ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_eq!(lines[0], host_pid_ns.to_str().unwrap());
    assert_eq!(lines[1], host_mnt_ns.to_str().unwrap());
    // A small PID: numbered in the container's PID namespace.
    assert!(
        lines[2].parse::<u32>().unwrap() < 100,
        "exec's PID {}",
        lines[2]
    );
    let code = podman.run(&["exec", "box", "sh", "-c", "exit 5"]);
    assert_eq!(code.status.code(), Some(5));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn podman_logs_show_the_output() {
    let Some(podman) = Podman::new("logs") else {
        return;
    };
    podman.run_container(
        &["-d", "--name", "talk"],
        &["sh", "-c", "echo one; echo two >&2; sleep 100"],
    );
    let logs = common::wait_for(common::PATIENCE, || {
        let output = podman.run(&["logs", "talk"]);
        let all = format!(
            "{}{}",
            text(&output),
            String::from_utf8_lossy(&output.stderr)
        );
        (all.contains("one") && all.contains("two")).then_some(all)
    });
    assert!(logs.is_some(), "podman logs never showed both lines");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn podman_stop_sends_term_then_kill() {
    let Some(podman) = Podman::new("stop") else {
        return;
    };
    // A shell that ends on SIGTERM by itself.
    podman.run_container(
        &["-d", "--name", "polite"],
        &[
            "sh",
            "-c",
            "trap 'echo term; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        ],
    );
    common::wait_for(common::PATIENCE, || {
        podman
            .stdout(&["logs", "polite"])
            .contains("ready")
            .then_some(())
    });
    assert!(podman.run(&["stop", "-t", "10", "polite"]).status.success());
    assert_eq!(
        podman.stdout(&["inspect", "--format", "{{.State.ExitCode}}", "polite"]),
        "0"
    );
    assert!(podman.stdout(&["logs", "polite"]).contains("term"));
    // `sleep` as PID 1 has no handler: the kernel drops SIGTERM, SIGKILL follows.
    podman.run_container(&["-d", "--name", "stubborn"], &["sleep", "100"]);
    let id = podman.id("stubborn");
    assert!(podman
        .run(&["stop", "-t", "1", "stubborn"])
        .status
        .success());
    assert_eq!(
        podman.stdout(&["inspect", "--format", "{{.State.ExitCode}}", "stubborn"]),
        "137"
    );
    // Stopped, or already deleted by podman's cleanup.
    if let Some(state) = podman.lab_state(&id) {
        assert_eq!(state["status"], "stopped");
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn podman_kill_ends_the_container() {
    let Some(podman) = Podman::new("kill") else {
        return;
    };
    podman.run_container(&["-d", "--name", "victim"], &["sleep", "100"]);
    let id = podman.id("victim");
    let pid = podman.lab_state(&id).unwrap()["pid"].as_i64().unwrap();
    assert!(podman.run(&["kill", "victim"]).status.success());
    assert_eq!(podman.stdout(&["wait", "victim"]), "137");
    assert!(!Path::new(&format!("/proc/{pid}")).exists() || oci::is_zombie(pid as i32));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn podman_pause_and_unpause_freeze_the_cgroup() {
    let Some(podman) = Podman::new("pause") else {
        return;
    };
    podman.run_container(&["-d", "--name", "ice"], &["sleep", "100"]);
    let id = podman.id("ice");
    let freezer = |wanted: &str| -> bool {
        let files: Vec<String> = podman
            .cgroup_dirs()
            .iter()
            .filter(|d| d.ends_with(format!("libpod-{id}")))
            .flat_map(|d| [d.join("freezer.state"), d.join("cgroup.events")])
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect();
        files.iter().any(|t| {
            t.trim() == wanted || t.contains(&format!("frozen {}", u8::from(wanted == "FROZEN")))
        })
    };
    assert!(podman.run(&["pause", "ice"]).status.success());
    assert!(freezer("FROZEN"), "the container's cgroup is not frozen");
    assert_eq!(podman.lab_state(&id).unwrap()["status"], "paused");
    assert_eq!(
        podman.stdout(&["inspect", "--format", "{{.State.Status}}", "ice"]),
        "paused"
    );
    assert!(podman.run(&["unpause", "ice"]).status.success());
    assert!(freezer("THAWED"), "the container's cgroup is still frozen");
    assert_eq!(podman.lab_state(&id).unwrap()["status"], "running");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn podman_rm_removes_everything() {
    let Some(podman) = Podman::new("rm") else {
        return;
    };
    podman.run_container(&["-d", "--name", "gone"], &["sleep", "100"]);
    let id = podman.id("gone");
    assert!(!podman.cgroup_dirs().is_empty());
    assert!(podman.run(&["stop", "-t", "0", "gone"]).status.success());
    assert!(podman.run(&["rm", "gone"]).status.success());
    assert!(podman.stdout(&["ps", "-aq"]).is_empty());
    assert_gone(&podman, &id);
    // Nothing of it is mounted on the host either.
    assert!(!common::host_mountinfo().contains(&id));
    std::thread::sleep(Duration::from_millis(1));
}
