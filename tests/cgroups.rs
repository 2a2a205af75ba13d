//! Chapter 5 checked from outside: the container's cgroup sits beneath the
//! test's own cgroup in every hierarchy, holds the container's processes,
//! carries the limits, and its kernel counters record the OOM kill, the
//! throttling and the refused forks; afterwards no cgroup of the lab is left.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use container_lab::kernel::cgroups::{detect_layout, Layout};

/// Where the chapter must put a cgroup named `name`, per hierarchy,
/// computed independently from this process's /proc/self/cgroup.
fn expected_dirs(name: &str) -> Vec<(String, PathBuf)> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut dirs = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let path = path.trim_start_matches('/');
        match detect_layout().unwrap() {
            Layout::Unified if controllers.is_empty() => dirs.push((
                "v2".into(),
                Path::new("/sys/fs/cgroup")
                    .join(path)
                    .join("container-lab")
                    .join(name),
            )),
            Layout::Hybrid | Layout::Legacy => {
                for controller in ["memory", "pids", "cpu"] {
                    if controllers.split(',').any(|c| c == controller) {
                        let mount = Path::new("/sys/fs/cgroup").join(controllers);
                        dirs.push((
                            controller.into(),
                            mount.join(path).join("container-lab").join(name),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(
        !dirs.is_empty(),
        "no cgroup hierarchy found for this test process"
    );
    dirs
}

fn read_key(path: &Path, key: &str) -> u64 {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{} has no {key}", path.display()))
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn limits_counters_membership_and_cleanup_seen_from_outside() {
    common::assert_root();
    let state = common::state_root("cgroups-outside");
    let dirs = expected_dirs("outside");
    let dir = |controller: &str| {
        dirs.iter()
            .find(|(c, _)| c == controller || c == "v2")
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no {controller} hierarchy"))
    };

    // Held before step 7: the hog, the busy loop and the fork bomb have run.
    let mut command = common::chapter("ch05", &state);
    command.args(["--name", "outside", "--memory", "48m", "--pids-limit", "24"]);
    let held = common::Held::start(command, 7);
    let init = common::container_init(held.pid());
    for (_, path) in &dirs {
        assert!(path.is_dir(), "{} was not created", path.display());
        let procs = fs::read_to_string(path.join("cgroup.procs")).unwrap();
        assert!(
            procs.split_whitespace().any(|p| p == init.to_string()),
            "init is not in {}",
            path.display()
        );
    }
    let membership = fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    assert!(
        membership.contains("/container-lab/outside"),
        "{membership}"
    );

    let is_v2 = dirs[0].0 == "v2";
    let memory = dir("memory");
    let pids = dir("pids");
    let cpu = dir("cpu");
    if is_v2 {
        assert_eq!(
            fs::read_to_string(memory.join("memory.max"))
                .unwrap()
                .trim(),
            "50331648"
        );
        assert!(
            read_key(&memory.join("memory.events"), "oom_kill ") >= 1,
            "the OOM kill was not counted"
        );
        assert_eq!(
            fs::read_to_string(cpu.join("cpu.max")).unwrap().trim(),
            "20000 100000"
        );
        assert!(
            read_key(&cpu.join("cpu.stat"), "nr_throttled ") > 0,
            "no throttling counted"
        );
    } else {
        assert_eq!(
            fs::read_to_string(memory.join("memory.limit_in_bytes"))
                .unwrap()
                .trim(),
            "50331648"
        );
        assert!(
            read_key(&memory.join("memory.oom_control"), "oom_kill ") >= 1,
            "the OOM kill was not counted"
        );
        assert_eq!(
            fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
                .unwrap()
                .trim(),
            "20000"
        );
        assert!(
            read_key(&cpu.join("cpu.stat"), "nr_throttled ") > 0,
            "no throttling counted"
        );
    }
    assert_eq!(
        fs::read_to_string(pids.join("pids.max")).unwrap().trim(),
        "24"
    );
    assert!(
        read_key(&pids.join("pids.events"), "max ") >= 1,
        "the refused forks were not counted"
    );

    let in_container =
        common::processes_in_pid_namespace(common::ns_inode(&init.to_string(), "pid"));
    let (code, stdout, _) = held.interrupt();
    assert_eq!(code, Some(130));
    assert!(
        stdout.contains("137 = 128 + 9: killed by SIGKILL"),
        "the hog was not OOM-killed"
    );
    assert!(common::still_running(&in_container).is_empty());
    for (_, path) in &dirs {
        assert!(!path.exists(), "{} was left behind", path.display());
    }

    // A complete run leaves nothing either, not even the shared parent.
    let mut command = common::chapter("ch05", &state);
    command.args(["--name", "outside-full"]);
    assert_eq!(common::run(command).status.code(), Some(0));
    for (_, path) in expected_dirs("outside-full") {
        assert!(!path.exists(), "{} was left behind", path.display());
        // The shared parent goes with its last child; another run of the lab
        // on this machine may still be using it.
        let parent = path.parent().unwrap();
        let others = fs::read_dir(parent)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().is_dir())
                    .count()
            })
            .unwrap_or(0);
        assert!(
            !parent.exists() || others > 0,
            "{} was left behind empty",
            parent.display()
        );
    }
}
