//! lab-runc driven as podman and the OCI suite drive it, checked from the
//! host: the blocked init between `create` and `start`, the state JSON,
//! kill and delete, exec, a `create` killed at each of its steps, and the
//! refusal of what it does not support. Every test leaves nothing behind:
//! no state directory, cgroup, mount or process.
//!
//! Needs root; a normal user's `cargo test` lists these as ignored.

mod common;
mod oci;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// lab-runc with a root of the test's own.
struct LabRunc {
    root: PathBuf,
    dir: PathBuf,
}

impl LabRunc {
    fn new(test: &str) -> LabRunc {
        common::assert_root();
        let dir = common::state_root(&format!("oci-{test}"));
        LabRunc {
            root: dir.join("state"),
            dir,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(common::binary("lab-runc"));
        command
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        println!("--- lab-runc {}", args.join(" "));
        common::run(self.command(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.status.success(), "lab-runc {args:?} failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A command whose container outlives it (create, run --detach): the
    /// container's stdio goes to files, so that nothing waits for it.
    fn detached(&self, args: &[&str]) {
        println!("--- lab-runc {}", args.join(" "));
        let out = std::fs::File::create(self.dir.join("container.out")).unwrap();
        let err = std::fs::File::create(self.dir.join("container.err")).unwrap();
        let status = self.command(args).stdout(out).stderr(err).status().unwrap();
        let stderr = std::fs::read_to_string(self.dir.join("container.err")).unwrap_or_default();
        assert!(status.success(), "lab-runc {args:?} failed: {stderr}");
    }

    fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// Nothing of container `id` is left: state, cgroups, processes.
    fn assert_clean(&self, id: &str, cgroup: &str, pid: i32) {
        assert!(!self.root.join(id).exists(), "the state directory is left");
        let left = oci::cgroup_dirs(cgroup);
        assert!(left.is_empty(), "cgroups left: {left:?}");
        if pid > 0 {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists() || oci::is_zombie(pid),
                "the init {pid} still runs"
            );
        }
        assert!(
            !common::host_mountinfo().contains(self.dir.to_str().unwrap()),
            "mounts are left"
        );
    }
}

impl Drop for LabRunc {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                let _ = self.command(&["delete", "--force", &id]).output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sleeper(cgroup: &str) -> impl FnOnce(&mut serde_json::Value) + '_ {
    move |config| {
        config["process"]["args"] = serde_json::json!(["sleep", "100"]);
        config["linux"]["cgroupsPath"] = cgroup.into();
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn create_leaves_a_blocked_init_that_start_releases() {
    let lab = LabRunc::new("lifecycle");
    let bundle = oci::bundle(&lab.dir, sleeper("oci-test-lifecycle"));
    let pid_file = lab.dir.join("pid");
    lab.detached(&[
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "c1",
    ]);
    // create has exited; the init waits on exec.fifo, in its namespaces.
    let state = lab.state("c1");
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], "c1");
    assert_eq!(state["bundle"], bundle.to_str().unwrap());
    let pid = state["pid"].as_i64().unwrap() as i32;
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(lab.root.join("c1/exec.fifo").exists());
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    println!("the created init waits in {wchan}");
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmd).contains("create"),
        "not exec'd yet: still lab-runc"
    );
    for ns in ["pid", "mnt", "uts", "ipc", "net"] {
        assert_ne!(
            common::ns_inode(&pid.to_string(), ns),
            common::ns_inode("self", ns),
            "{ns} namespace"
        );
    }
    let procs: Vec<String> = oci::cgroup_dirs("oci-test-lifecycle")
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .collect();
    assert!(!procs.is_empty() && procs.iter().all(|p| p.trim() == pid.to_string()));
    // start: the fifo is gone, the init has become `sleep`.
    lab.ok(&["start", "c1"]);
    assert_eq!(lab.state("c1")["status"], "running");
    assert!(!lab.root.join("c1/exec.fifo").exists());
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "sleep"
    );
    assert!(
        !lab.run(&["start", "c1"]).status.success(),
        "a second start is refused"
    );
    assert!(
        !lab.run(&["delete", "c1"]).status.success(),
        "a running container is not deleted"
    );
    lab.ok(&["kill", "c1", "KILL"]);
    common::wait_for(common::PATIENCE, || {
        (lab.state("c1")["status"] == "stopped").then_some(())
    })
    .expect("the container never stopped");
    lab.ok(&["delete", "c1"]);
    lab.assert_clean("c1", "oci-test-lifecycle", pid);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn run_passes_the_exit_code_and_cleans_up() {
    let lab = LabRunc::new("run");
    let bundle = oci::bundle(&lab.dir, |config| {
        config["process"]["args"] = serde_json::json!(["sh", "-c", "hostname; exit 7"]);
        config["linux"]["cgroupsPath"] = "oci-test-run".into();
    });
    let output = lab.run(&["run", "--bundle", bundle.to_str().unwrap(), "r1"]);
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "lab-runc\n");
    lab.assert_clean("r1", "oci-test-run", 0);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn exec_joins_the_running_container() {
    let lab = LabRunc::new("exec");
    let bundle = oci::bundle(&lab.dir, sleeper("oci-test-exec"));
    lab.detached(&[
        "run",
        "--detach",
        "--bundle",
        bundle.to_str().unwrap(),
        "e1",
    ]);
    let pid = lab.state("e1")["pid"].as_i64().unwrap();
    let inside = lab.ok(&[
        "exec",
        "e1",
        "sh",
        "-c",
        "readlink /proc/self/ns/mnt; hostname",
    ]);
    let mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_eq!(inside, format!("{}\nlab-runc\n", mnt.display()));
    let missing = lab.run(&["exec", "e1", "no-such-program"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("executable file not found"));
    lab.ok(&["delete", "--force", "e1"]);
    lab.assert_clean("e1", "oci-test-exec", pid as i32);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn pause_and_resume_use_the_freezer() {
    let lab = LabRunc::new("pause");
    let bundle = oci::bundle(&lab.dir, sleeper("oci-test-pause"));
    lab.detached(&[
        "run",
        "--detach",
        "--bundle",
        bundle.to_str().unwrap(),
        "p1",
    ]);
    lab.ok(&["pause", "p1"]);
    assert_eq!(lab.state("p1")["status"], "paused");
    let pid = lab.state("p1")["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    println!("{status}");
    lab.ok(&["resume", "p1"]);
    assert_eq!(lab.state("p1")["status"], "running");
    let ps: Vec<i64> = serde_json::from_str(&lab.ok(&["ps", "--format", "json", "p1"])).unwrap();
    assert_eq!(ps, [pid]);
    lab.ok(&["delete", "--force", "p1"]);
    lab.assert_clean("p1", "oci-test-pause", pid as i32);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn unsupported_fields_are_refused_by_name() {
    let lab = LabRunc::new("refused");
    for (field, value) in [
        ("intelRdt", serde_json::json!({"closID": "x"})),
        ("personality", serde_json::json!({"domain": "LINUX32"})),
        (
            "mountLabel",
            serde_json::json!("system_u:object_r:container_file_t:s0"),
        ),
    ] {
        let bundle = oci::bundle(&lab.dir, |config| {
            config["linux"][field] = value.clone();
            config["linux"]["cgroupsPath"] = "oci-test-refused".into();
        });
        let output = lab.run(&["create", "--bundle", bundle.to_str().unwrap(), "x1"]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("linux.{field}")), "{stderr}");
        lab.assert_clean("x1", "oci-test-refused", 0);
    }
    // A cgroup outside our own is refused too: never written. (In the
    // root cgroup, as in the v2 guest, every path is beneath our own.)
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    if own.lines().all(|line| line.ends_with(":/")) {
        println!("skipped the outside-cgroup check: this test runs in the root cgroup");
        return;
    }
    let bundle = oci::bundle(&lab.dir, |config| {
        config["linux"]["cgroupsPath"] = "/somewhere-else".into();
    });
    let mut command = lab.command(&["create", "--bundle", bundle.to_str().unwrap(), "x2"]);
    // Not our stdout: were it created, its init would hold that open.
    let output = command.stdout(Stdio::null()).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("outside the runtime's own cgroup"));
    assert!(!Path::new("/sys/fs/cgroup/pids/somewhere-else").exists());
    assert!(!Path::new("/sys/fs/cgroup/somewhere-else").exists());
}

/// `create` killed at each of its steps: the next `delete` (and a new
/// `create` of the same ID) finds it dead and removes what it left.
#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_killed_create_leaves_nothing_behind() {
    let lab = LabRunc::new("killed");
    let bundle = oci::bundle(&lab.dir, sleeper("oci-test-killed"));
    for (round, point) in container_lab::engine::oci::create::HOLD_POINTS
        .iter()
        .enumerate()
    {
        let id = format!("k{round}");
        let mut command = lab.command(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
        command
            .env(container_lab::engine::oci::create::HOLD_AT_ENV, point)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(line.contains(&format!("holding at {point}")), "{line}");
        let init = std::fs::read_to_string(lab.root.join(&id).join("state.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|r| r["pid"].as_i64())
            .unwrap_or(0) as i32;
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        // Dead creator: the container is stopped.
        assert_eq!(
            lab.state(&id)["status"],
            "stopped",
            "after a kill at {point}"
        );
        if round % 2 == 0 {
            lab.ok(&["delete", &id]);
        } else {
            // Or the same ID is created anew over what was left.
            lab.detached(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
            lab.ok(&["delete", "--force", &id]);
        }
        lab.assert_clean(&id, "oci-test-killed", init);
    }
}
