//! Checks made from outside the chapters: the kernel's own view of the
//! namespaces, mounts and processes a chapter creates, while it runs and
//! after it was interrupted with SIGINT (what Ctrl-C sends).

mod common;

use std::path::Path;
use std::process::Command;

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch02_namespaces_differ_where_the_chapter_says_and_ctrl_c_leaves_nothing() {
    common::assert_root();
    let state = common::state_root("isolation-ch02");
    let hostname_before = common::hostname();
    let mounts_before = common::mount_points(&common::host_mountinfo());

    // Hold before step 5 ("compare the namespace links"): everything is set up.
    let mut command = common::chapter("ch02", &state);
    command.args(["--hostname", "outside-check"]);
    let held = common::Held::start(command, 5);
    let init = common::container_init(held.pid());
    let init_s = init.to_string();

    for kind in ["uts", "pid", "ipc", "mnt"] {
        assert_ne!(
            common::ns_inode("self", kind),
            common::ns_inode(&init_s, kind),
            "{kind} should be new"
        );
    }
    for kind in ["net", "user", "cgroup"] {
        assert_eq!(
            common::ns_inode("self", kind),
            common::ns_inode(&init_s, kind),
            "{kind} should be shared"
        );
    }
    // PID 1 inside, another PID outside: the kernel's NSpid line.
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(nspid.ends_with("\t1"), "init is not PID 1 inside: {nspid}");
    // The hostname inside, read with a tool that is not the lab's.
    let inside = Command::new("nsenter")
        .args(["--target", &init_s, "--uts", "hostname"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&inside.stdout).trim(),
        "outside-check"
    );
    assert_eq!(common::hostname(), hostname_before);
    // The container's /proc is its own: it lists only its own processes.
    let proc_entries = Command::new("nsenter")
        .args(["--target", &init_s, "--mount", "--pid", "ls", "/proc"])
        .output()
        .unwrap();
    let pids: Vec<String> = String::from_utf8_lossy(&proc_entries.stdout)
        .split_whitespace()
        .filter(|e| e.chars().all(|c| c.is_ascii_digit()))
        .map(String::from)
        .collect();
    assert!(
        pids.len() <= 4,
        "the container's /proc lists too many processes: {pids:?}"
    );
    assert!(pids.contains(&"1".to_string()));

    let in_container = common::processes_in_pid_namespace(common::ns_inode(&init_s, "pid"));
    assert!(!in_container.is_empty());
    let (code, _, stderr) = held.interrupt();
    assert_eq!(code, Some(130), "an interrupted chapter exits 130");
    assert!(stderr.contains("interrupted by SIGINT"), "stderr: {stderr}");
    assert!(
        common::still_running(&in_container).is_empty(),
        "processes survived the chapter"
    );
    assert_eq!(common::hostname(), hostname_before);
    assert_eq!(
        common::mount_points(&common::host_mountinfo()),
        mounts_before
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch03_pivot_root_leaves_only_the_new_tree_and_ctrl_c_cleans_up() {
    common::assert_root();
    let state = common::state_root("isolation-ch03");
    let mounts_before = common::mount_points(&common::host_mountinfo());

    // Hold before step 7 ("try the same escape again"): pivoted, /proc /dev /sys mounted.
    let mut command = common::chapter("ch03", &state);
    command.args(["--name", "outside"]);
    let held = common::Held::start(command, 7);
    let init = common::container_init(held.pid());
    let run_dir = state.join("run/containers/outside");
    assert!(run_dir.join("rootfs/bin/busybox").is_file());

    // The container's mount table, read by the kernel for its init.
    let table = container_lab::kernel::mounts::parse_mountinfo(
        &std::fs::read_to_string(format!("/proc/{init}/mountinfo")).unwrap(),
    )
    .unwrap();
    let points: Vec<String> = table
        .iter()
        .map(|m| m.mount_point.display().to_string())
        .collect();
    assert_eq!(
        points,
        ["/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm"],
        "{table:#?}"
    );
    assert!(table
        .iter()
        .find(|m| m.mount_point == Path::new("/sys"))
        .unwrap()
        .read_only());
    assert!(
        table.iter().all(|m| m.propagation.is_empty()),
        "every mount must be private: {table:#?}"
    );
    // Its root is the busybox tree: /proc/PID/root is the kernel's view of it.
    assert!(Path::new(&format!("/proc/{init}/root/bin/busybox")).is_file());
    assert!(!Path::new(&format!("/proc/{init}/root/.old-root")).exists());
    // Nothing of it shows on the host.
    assert!(!container_lab::kernel::mounts::has_mounts_under(&state).unwrap());
    assert_eq!(
        common::mount_points(&common::host_mountinfo()),
        mounts_before
    );

    let in_container =
        common::processes_in_pid_namespace(common::ns_inode(&init.to_string(), "pid"));
    assert!(!in_container.is_empty());
    let (code, _, _) = held.interrupt();
    assert_eq!(code, Some(130));
    assert!(
        common::still_running(&in_container).is_empty(),
        "processes survived the chapter"
    );
    assert!(!run_dir.exists(), "the run directory was left behind");
    assert_eq!(
        common::mount_points(&common::host_mountinfo()),
        mounts_before
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch03_interrupted_before_pivot_leaves_nothing() {
    common::assert_root();
    let state = common::state_root("interrupt-ch03-early");
    // Hold before step 5: the container exists, the copy is made, no pivot yet.
    let held = common::Held::start(common::chapter("ch03", &state), 5);
    let init = common::container_init(held.pid());
    let in_container =
        common::processes_in_pid_namespace(common::ns_inode(&init.to_string(), "pid"));
    assert!(!in_container.is_empty());
    let (code, _, _) = held.interrupt();
    assert_eq!(code, Some(130));
    assert!(common::still_running(&in_container).is_empty());
    assert!(!state.join("run/containers/ch03").exists());
    // The image cache is kept on purpose: it is the lab's, not the run's.
    let index = std::fs::read_to_string(state.join("lib/images/index.json")).unwrap();
    assert!(
        index.contains("docker.io/library/busybox:latest"),
        "{index}"
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch02_runs_to_the_end_and_changes_nothing_on_the_host() {
    common::assert_root();
    let state = common::state_root("isolation-ch02-full");
    let hostname_before = common::hostname();
    let mountinfo_before = common::mount_points(&common::host_mountinfo());
    let mut command = common::chapter("ch02", &state);
    command.args(["--hostname", "changed-inside", "--", "hostname"]);
    let output = common::run(command);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("\nchanged-inside\n"),
        "the user's command did not see the new hostname"
    );
    assert_eq!(common::hostname(), hostname_before);
    assert_eq!(
        common::mount_points(&common::host_mountinfo()),
        mountinfo_before
    );
}
