//! Docker's seccomp allow-list, tried from inside a container: a small
//! static program (tests/helpers/probe.c, compiled here) makes each system
//! call directly and prints the kernel's answer. The namespace, mount and
//! io_uring calls must be refused, clone3 must look absent (ENOSYS), and
//! what every program needs must still work.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Probes whose arguments the kernel checks before any capability: an
/// EPERM from them comes from the filter (the test below without a filter
/// shows it).
const FILTER_ONLY: &[&str] = &[
    "clone-newuser",
    "unshare-user",
    "setns",
    "mount",
    "umount2",
    "fsconfig",
    "open_tree",
    "mount_setattr",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "perf_event_open",
    "personality-bsd",
    "socket-alg",
    "socket-vsock",
];

/// Refused as well, though without CAP_SYS_ADMIN (bpf: CAP_BPF, on older
/// kernels) the kernel would refuse them too.
const NEED_CAPS: &[&str] = &[
    "bpf",
    "unshare-ns",
    "pivot_root",
    "fsopen",
    "fsmount",
    "fspick",
    "move_mount",
];

/// What every program needs.
const NEEDED: &[&str] = &["fork", "clone", "exec", "personality-query", "socket-unix"];

/// Asked only where a filter refuses them: a kernel that really creates
/// such a socket first loads its module, and the host is not ours to change.
const LOADS_MODULES: &[&str] = &["socket-alg", "socket-vsock"];

/// Every probe but those, for the runs without a filter.
fn unfiltered_probes() -> Vec<&'static str> {
    FILTER_ONLY
        .iter()
        .chain(NEED_CAPS)
        .chain(NEEDED)
        .chain(&["clone3"])
        .copied()
        .filter(|name| !LOADS_MODULES.contains(name))
        .collect()
}

/// Compiles the probe once, statically, into this test binary's own
/// directory.
fn probe_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from("/run/container-lab-tests/escapes-seccomp-probe");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/probe.c");
        let out = Command::new("cc")
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(dir.join("probe"))
            .arg(&source)
            .output()
            .expect("cc is missing (build-essential)");
        assert!(
            out.status.success(),
            "cc -static failed (is glibc's static libc installed?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// `probe syscalls [NAMES]` (all without) in a container made by
/// `mini-docker run EXTRA…`.
fn probe_in_container(test: &str, extra: &[&str], names: &[&str]) -> BTreeMap<String, String> {
    let state = common::state_root(test);
    let volume = format!("{}:/probe:ro", probe_dir().display());
    let mut args = vec![
        "run",
        "--rm",
        "--name",
        test,
        "--network",
        "none",
        "-v",
        &volume,
    ];
    args.extend_from_slice(extra);
    args.extend(["busybox", "/probe/probe", "syscalls"]);
    args.extend_from_slice(names);
    let out = common::run(common::mini_docker(&state, &args));
    assert_eq!(
        out.status.code(),
        Some(0),
        "mini-docker {args:?} failed: {:?}",
        out.status
    );
    for dir in common::cgroup_dirs(test) {
        assert!(!dir.exists(), "{} was left", dir.display());
    }
    answers(&String::from_utf8_lossy(&out.stdout))
}

fn answers(text: &str) -> BTreeMap<String, String> {
    let answers: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(name, answer)| (name.to_string(), answer.to_string()))
        .collect();
    assert!(answers.len() >= 25, "the probe printed too little:\n{text}");
    answers
}

fn assert_answers(answers: &BTreeMap<String, String>, names: &[&str], wanted: &str) {
    for name in names {
        assert_eq!(
            answers.get(*name).map(String::as_str),
            Some(wanted),
            "{name}: all answers {answers:?}"
        );
    }
}

fn refused_unless_kernel_says_so(answers: &BTreeMap<String, String>, names: &[&str]) {
    for name in names {
        let answer = answers.get(*name).map(String::as_str).unwrap_or("missing");
        // A kernel set to refuse io_uring to everyone says EPERM itself.
        let io_uring_off = name.starts_with("io_uring_setup")
            && std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .is_ok_and(|v| v.trim() == "2");
        assert!(
            answer != "EPERM" || io_uring_off,
            "{name} refused without a filter: all answers {answers:?}"
        );
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: containers need namespaces, mounts and cgroups (sudo -E cargo test)"
)]
fn the_default_profile_refuses_what_docker_refuses() {
    common::assert_root();
    let answers = probe_in_container("seccomp-default", &[], &[]);
    assert_answers(&answers, FILTER_ONLY, "EPERM");
    assert_answers(&answers, NEED_CAPS, "EPERM");
    // Answered as if absent, so that glibc falls back to clone.
    assert_answers(&answers, &["clone3"], "ENOSYS");
    assert_answers(&answers, NEEDED, "OK");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: it drops root's capabilities for the probe (sudo -E cargo test)"
)]
fn without_a_filter_the_filter_only_probes_are_not_refused() {
    common::assert_root();
    // On the host, as root without a single capability, and no filter.
    let out = Command::new("setpriv")
        .args([
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(probe_dir().join("probe"))
        .arg("syscalls")
        .args(unfiltered_probes())
        .output()
        .expect("setpriv (util-linux) is missing");
    assert!(out.status.success());
    let answers = answers(&String::from_utf8_lossy(&out.stdout));
    let filter_only: Vec<&str> = FILTER_ONLY
        .iter()
        .copied()
        .filter(|name| !LOADS_MODULES.contains(name))
        .collect();
    refused_unless_kernel_says_so(&answers, &filter_only);
    assert_answers(&answers, &["clone3"], "OK");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: containers need namespaces, mounts and cgroups (sudo -E cargo test)"
)]
fn cap_add_sys_admin_opens_the_admin_calls_as_in_docker() {
    common::assert_root();
    let answers = probe_in_container("seccomp-admin", &["--cap-add", "SYS_ADMIN"], &[]);
    assert_answers(
        &answers,
        &[
            "unshare-ns",
            "unshare-user",
            "clone-newuser",
            "clone3",
            "open_tree",
        ],
        "OK",
    );
    // Reached the kernel, which found the arguments wrong.
    assert_answers(&answers, &["mount"], "EFAULT");
    assert_answers(&answers, &["fsopen", "mount_setattr"], "EINVAL");
    assert_answers(&answers, &["setns", "fsmount"], "EBADF");
    // Docker allows these to no one.
    assert_answers(
        &answers,
        &["pivot_root", "keyctl", "io_uring_setup", "socket-vsock"],
        "EPERM",
    );
    assert_answers(&answers, NEEDED, "OK");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: containers need namespaces, mounts and cgroups (sudo -E cargo test)"
)]
fn privileged_has_no_filter() {
    common::assert_root();
    let answers = probe_in_container(
        "seccomp-privileged",
        &["--privileged"],
        &unfiltered_probes(),
    );
    let filter_only: Vec<&str> = FILTER_ONLY
        .iter()
        .copied()
        .filter(|name| !LOADS_MODULES.contains(name))
        .collect();
    refused_unless_kernel_says_so(&answers, &filter_only);
    refused_unless_kernel_says_so(&answers, NEED_CAPS);
    assert_answers(&answers, &["clone3", "unshare-ns"], "OK");
    assert_answers(&answers, NEEDED, "OK");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: containers need namespaces, mounts and cgroups (sudo -E cargo test)"
)]
fn the_busybox_shell_still_works_under_the_filter() {
    common::assert_root();
    let state = common::state_root("seccomp-shell");
    let mut command = common::mini_docker(
        &state,
        &["run", "--rm", "--network", "none", "busybox", "sh", "-c"],
    );
    command.arg("echo $((6 * 7)) | cat; ls /bin/sh >/dev/null && sleep 0 & wait; grep Seccomp_filters /proc/self/status");
    let out = common::run(command);
    assert_eq!(out.status.code(), Some(0), "{:?}", out.status);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "42\nSeccomp_filters:\t2\n"
    );
}
