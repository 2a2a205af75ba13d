//! `mini-docker run`, scenario by scenario, checked by exit codes, by what
//! the container printed, and by what is left on the host afterwards.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn mini_docker(state: &Path, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(common::binary("mini-docker"));
    command
        .env(lab::state::ROOT_ENV, state)
        .stdin(std::process::Stdio::null())
        .arg("run")
        .args(args);
    common::run(command)
}

/// The cgroup directories a container called `name` would have had.
fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    own.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let mount = if controllers.is_empty() {
                "unified".to_string()
            } else {
                controllers.to_string()
            };
            let base = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                PathBuf::from("/sys/fs/cgroup")
            } else {
                Path::new("/sys/fs/cgroup").join(mount)
            };
            Some(
                base.join(path.trim_start_matches('/'))
                    .join("container-lab")
                    .join(name),
            )
        })
        .collect()
}

fn assert_nothing_left(state: &Path, name: &str) {
    assert!(
        !state.join("run/containers").join(name).exists(),
        "the run directory of {name} was left"
    );
    for dir in cgroup_dirs(name) {
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
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unable to find image 'nginx'"));
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
