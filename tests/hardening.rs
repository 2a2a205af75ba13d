//! Chapter 8 checked from outside: the kernel's own view of a hardened
//! process inside the container (capability sets, no_new_privs, seccomp
//! mode) and of the container's mounts (read-only root, masked and
//! read-only /proc paths).

mod common;

use std::fs;

fn status_field(pid: i32, key: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {key} for {pid}"))
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn the_kernel_sees_the_profile_and_the_read_only_mounts() {
    common::assert_root();
    let state = common::state_root("hardening-outside");
    // Held before step 8: httpd from step 7 runs with the least profile.
    let held = common::Held::start(common::chapter("ch08", &state), 8);
    let init = common::container_init(held.pid());
    let pid_ns = common::ns_inode(&init.to_string(), "pid");
    let in_container = common::processes_in_pid_namespace(pid_ns);
    let httpd = in_container
        .iter()
        .map(|(pid, _)| *pid)
        .find(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "httpd")
        })
        .expect("httpd is not running in the container");
    assert_eq!(
        status_field(httpd, "CapEff:"),
        "0000000000000400",
        "only CAP_NET_BIND_SERVICE"
    );
    assert_eq!(
        status_field(httpd, "CapBnd:"),
        "0000000000000400",
        "bounding set not reduced"
    );
    assert_eq!(status_field(httpd, "NoNewPrivs:"), "1");
    assert_eq!(status_field(httpd, "Seccomp:"), "2", "no seccomp filter");

    let table = lab::mounts::parse_mountinfo(
        &fs::read_to_string(format!("/proc/{init}/mountinfo")).unwrap(),
    )
    .unwrap();
    let find = |point: &str| table.iter().find(|m| m.mount_point.to_str() == Some(point));
    assert!(find("/").unwrap().read_only(), "the root is writable");
    assert!(
        find("/proc/sys").unwrap().read_only(),
        "/proc/sys is writable"
    );
    assert!(find("/proc/keys").is_some(), "/proc/keys is not masked");
    assert_eq!(
        fs::read(format!("/proc/{init}/root/proc/keys"))
            .unwrap_or_default()
            .len(),
        0
    );

    let (code, _, _) = held.interrupt();
    assert_eq!(code, Some(130));
    assert!(common::still_running(&in_container).is_empty());
    assert!(!state.join("run/containers/ch08").exists());
}
