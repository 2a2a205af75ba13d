//! Chapter 7 checked from outside: the kernel's maps for the container's
//! init, the host-side owner of a file made inside, and cleanup after
//! Ctrl-C.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn root_inside_is_an_unprivileged_uid_outside() {
    common::assert_root();
    let state = common::state_root("userns-outside");
    // Held before step 4: the file was made in step 3.
    let mut command = common::chapter("ch07", &state);
    command.env_remove("SUDO_USER");
    let held = common::Held::start(command, 4);
    let init = common::container_init(held.pid());
    let uid_map = fs::read_to_string(format!("/proc/{init}/uid_map")).unwrap();
    assert_eq!(
        uid_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    let status = fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uids.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["100000"; 4],
        "{uids}"
    );
    let made = fs::metadata(state.join("run/containers/ch07/rootfs/root/made-inside")).unwrap();
    assert_eq!((made.uid(), made.gid()), (100_000, 100_000));
    // The container's user namespace is not the host's.
    assert_ne!(
        common::ns_inode("self", "user"),
        common::ns_inode(&init.to_string(), "user")
    );

    let in_container =
        common::processes_in_pid_namespace(common::ns_inode(&init.to_string(), "pid"));
    let (code, stdout, _) = held.interrupt();
    assert_eq!(code, Some(130));
    assert!(
        stdout.contains("uid=0(root) gid=0(root)"),
        "not root inside"
    );
    assert!(common::still_running(&in_container).is_empty());
    assert!(!state.join("run/containers/ch07").exists());
}
