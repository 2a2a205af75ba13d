//! `mini-docker --runtime PATH run …`: the same container made by runc,
//! crun (Debian's packages) and lab-runc from the bundle mini-docker
//! writes, checked from the host while it runs: its cgroup beneath ours
//! with the memory limit asked for, its namespaces, its hostname, no
//! mount of its root in the host's table; then the exit code passed
//! through and nothing left (cgroup, bundle, the runtime's state).
//!
//! Needs root; a runtime that is not installed is skipped and said so.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use container_lab::kernel::cgroups::{Cgroup, Limit};

/// The runtimes: Debian's runc and crun from PATH, and the lab's own.
fn runtimes() -> Vec<(String, Option<PathBuf>)> {
    let in_path = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    vec![
        ("runc".into(), in_path("runc")),
        ("crun".into(), in_path("crun")),
        ("lab-runc".into(), Some(common::binary("lab-runc"))),
    ]
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn every_runtime_runs_the_same_container_from_the_bundle() {
    common::assert_root();
    for (name, program) in runtimes() {
        let Some(program) = program else {
            println!("skipped {name}: not installed (apt install {name})");
            continue;
        };
        same_container(&name, &program);
    }
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

    child.stdin.take().unwrap().write_all(b"7\n").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(7),
        "{name}: the exit code passed through"
    );

    // Nothing left: the cgroup, the bundle, the runtime's state.
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
    let output = common::run(common::mini_docker(
        &state,
        &[
            "--runtime",
            lab_runc.to_str().unwrap(),
            "run",
            "--rm",
            "busybox",
            "true",
        ],
    ));
    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--network bridge"), "{stderr}");
    let output = common::run(common::mini_docker(&state, &["--runtime", "runc", "ps"]));
    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--runtime works with run only"), "{stderr}");
    let _ = std::fs::remove_dir_all(&state);
}
