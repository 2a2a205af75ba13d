//! Chapter 8 checked from outside: the kernel's own view of a hardened
//! process inside the container (capability sets, no_new_privs, seccomp
//! mode and filters, its device cgroup) and of the container's mounts
//! (read-only root, masked and read-only /proc paths).

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
    // Held before the last step (stop): httpd from the one before runs
    // with the least profile.
    let held = common::Held::start(common::chapter("ch08", &state), 11);
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
    // The allow-list, and the filter that answers clone3 with ENOSYS.
    assert_eq!(status_field(httpd, "Seccomp_filters:"), "2");

    // httpd is in the chapter's cgroup, and the kernel holds Docker's
    // device list for it: v1's devices.list, or one BPF program on v2.
    let membership = fs::read_to_string(format!("/proc/{httpd}/cgroup")).unwrap();
    assert!(
        membership.contains("/container-lab/ch08"),
        "httpd is not in the chapter's cgroup:\n{membership}"
    );
    let dirs: Vec<_> = common::cgroup_dirs("ch08")
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    let mut program = None;
    if let Some(v1) = dirs
        .iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/devices"))
    {
        let list = fs::read_to_string(v1.join("devices.list")).unwrap();
        assert_eq!(
            list.lines().collect::<Vec<_>>(),
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:1 rwm",
                "c 5:2 rwm",
                "c 136:* rwm",
                "c 10:200 rwm",
            ],
            "devices.list of {}",
            v1.display()
        );
    } else {
        let v2 = dirs
            .iter()
            .find(|d| d.join("cgroup.controllers").exists())
            .unwrap();
        let ids = container_lab::kernel::cgroups::device_filter::attached(v2).unwrap();
        assert_eq!(ids.len(), 1, "device programs on {}: {ids:?}", v2.display());
        assert_eq!(
            container_lab::kernel::cgroups::device_filter::program_name(ids[0]).as_deref(),
            Some(container_lab::kernel::cgroups::device_filter::PROGRAM_NAME)
        );
        program = Some(ids[0]);
    }

    let table = container_lab::kernel::mounts::parse_mountinfo(
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
    for dir in &dirs {
        assert!(!dir.exists(), "{} was left", dir.display());
    }
    // The kernel frees the program with its cgroup (a moment later).
    if let Some(id) = program {
        let freed = common::wait_for(std::time::Duration::from_secs(10), || {
            container_lab::kernel::cgroups::device_filter::program_name(id)
                .is_none()
                .then_some(())
        });
        assert!(freed.is_some(), "device program {id} outlived its cgroup");
    }
}
