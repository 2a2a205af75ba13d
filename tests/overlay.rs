//! Chapter 4 checked from outside: the layers are never written, the upper
//! directory holds exactly what overlayfs is documented to put there, and
//! nothing is left mounted or on disk afterwards.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn layers_stay_unchanged_and_the_upper_holds_copy_up_whiteout_and_opaque_dir() {
    common::assert_root();
    let state = common::state_root("overlay-outside");
    let mounts_before = common::mount_points(&common::host_mountinfo());
    // A first run builds the layers; fingerprint them before the second run.
    let first = common::run(common::chapter("ch04", &state));
    assert_eq!(first.status.code(), Some(0));
    // The base is the lab's busybox image: its one layer in the image store.
    let index = fs::read_to_string(state.join("lib/images/index.json")).unwrap();
    assert!(index.contains("library/busybox:latest"), "{index}");
    let busybox = fs::read_dir(state.join("lib/images/layers/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path().join("root"))
        .find(|root| root.join("bin/busybox").is_file())
        .expect("the busybox layer");
    let busybox = busybox.strip_prefix(&state).unwrap().display().to_string();
    let layers = [
        busybox.as_str(),
        "lib/images/layers/runtime",
        "lib/images/layers/app",
    ];
    let before: Vec<_> = layers
        .iter()
        .map(|l| common::fingerprint(&state.join(l)))
        .collect();
    assert!(before[1].contains_key("etc/runtime.conf"));

    // Hold before step 7: steps 4-6 have changed the first container's files.
    let held = common::Held::start(common::chapter("ch04", &state), 7);
    let upper = state.join("run/containers/ch04/upper");
    assert_eq!(
        fs::read_to_string(upper.join("etc/runtime.conf")).unwrap(),
        "threads=8\n",
        "no copy-up"
    );
    let whiteout = fs::symlink_metadata(upper.join("etc/os-release")).unwrap();
    assert!(
        whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
        "no 0/0 whiteout"
    );
    let opaque = std::process::Command::new("getfattr")
        .args(["--only-values", "-n", "trusted.overlay.opaque"])
        .arg(upper.join("usr/lib/runtime"))
        .output();
    if let Ok(opaque) = opaque {
        if opaque.status.success() {
            assert_eq!(opaque.stdout, b"y");
        }
    }
    // The container's root is an overlay of exactly those layers, top first.
    let init = common::container_init(held.pid());
    let table = fs::read_to_string(format!("/proc/{init}/mountinfo")).unwrap();
    let root = table
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    let expected = format!(
        "lowerdir={}:{}:{}",
        state.join(layers[2]).display(),
        state.join(layers[1]).display(),
        state.join(layers[0]).display()
    );
    assert!(
        root.contains(" - overlay ") && root.contains(&expected),
        "{root}"
    );
    // None of it is mounted on the host.
    assert_eq!(
        common::mount_points(&common::host_mountinfo()),
        mounts_before
    );

    let in_container =
        common::processes_in_pid_namespace(common::ns_inode(&init.to_string(), "pid"));
    assert!(!in_container.is_empty());
    let (code, _, _) = held.interrupt();
    assert_eq!(code, Some(130));
    assert!(common::still_running(&in_container).is_empty());
    assert!(
        !state.join("run/containers/ch04").exists(),
        "the writable layer was left behind"
    );
    assert!(!state.join("run/containers/ch04-2").exists());
    let after: Vec<_> = layers
        .iter()
        .map(|l| common::fingerprint(&state.join(l)))
        .collect();
    assert_eq!(before, after, "a lower layer changed");
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
fn keep_leaves_the_upper_layer_and_says_where() {
    common::assert_root();
    let state = common::state_root("overlay-keep");
    let mut command = common::chapter("ch04", &state);
    command.arg("--keep");
    let output = common::run(command);
    assert_eq!(output.status.code(), Some(0));
    let upper = state.join("run/containers/ch04/upper");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("kept container 1's upper at: {}", upper.display())),
        "{stdout}"
    );
    assert_eq!(
        fs::read_to_string(upper.join("etc/runtime.conf")).unwrap(),
        "threads=8\n"
    );
    assert!(
        !state.join("run/containers/ch04-2").exists(),
        "only the first container's layer is kept"
    );
    // The next run with the same name reclaims it.
    assert_eq!(
        common::run(common::chapter("ch04", &state)).status.code(),
        Some(0)
    );
    assert!(!state.join("run/containers/ch04").exists());
}
