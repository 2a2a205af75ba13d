//! Snapshot tests: each chapter's complete output, run as CI runs it (root,
//! no terminal, no colour). The book includes these very files, so what a
//! page shows is what the code printed.
//!
//! Needs root; a normal user's `cargo test` lists these as ignored.

mod common;

/// Runs a chapter, checks it succeeded, and returns its stdout.
fn chapter_output(name: &str, args: &[&str]) -> String {
    common::assert_root();
    let state = common::state_root(&format!("snapshot-{name}"));
    let mut command = common::chapter(name, &state);
    command.args(args);
    if name == "ch06" {
        common::in_new_netns(&mut command);
    }
    let output = common::run(command);
    assert_eq!(output.status.code(), Some(0), "{name} failed");
    assert!(output.stderr.is_empty(), "{name} wrote to stderr");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: ch01's snapshot pins uid 0 (sudo -E cargo test)"
)]
fn ch01_snapshot() {
    assert_chapter_snapshot!("ch01", chapter_output("ch01", &[]));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch02_snapshot() {
    assert_chapter_snapshot!("ch02", chapter_output("ch02", &["--hostname", "lab-ch02"]));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch03_snapshot() {
    assert_chapter_snapshot!(
        "ch03",
        chapter_output(
            "ch03",
            &["--hostname", "lab-ch03", "--", "sh", "-c", "hostname; id"]
        )
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch04_snapshot() {
    assert_chapter_snapshot!("ch04", chapter_output("ch04", &["--hostname", "lab-ch04"]));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch05_snapshot() {
    // The files differ between cgroup v1 and v2, so each layout has its own.
    let suffix = match container_lab::kernel::cgroups::detect_layout().unwrap() {
        container_lab::kernel::cgroups::Layout::Unified => "v2",
        _ => "v1",
    };
    insta::with_settings!({ snapshot_suffix => suffix }, {
        assert_chapter_snapshot!("ch05", chapter_output("ch05", &["--hostname", "lab-ch05"]));
    });
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch06_snapshot() {
    assert_chapter_snapshot!("ch06", chapter_output("ch06", &["--hostname", "lab-ch06"]));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch07_snapshot() {
    assert_chapter_snapshot!("ch07", chapter_output("ch07", &["--hostname", "lab-ch07"]));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch08_snapshot() {
    // The device allow-list is v1's devices files or a v2 BPF program.
    let suffix = match container_lab::kernel::cgroups::detect_layout().unwrap() {
        container_lab::kernel::cgroups::Layout::Unified => "v2",
        _ => "v1",
    };
    insta::with_settings!({ snapshot_suffix => suffix }, {
        assert_chapter_snapshot!("ch08", chapter_output("ch08", &["--hostname", "lab-ch08"]));
    });
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch09_snapshot() {
    let output = chapter_output(
        "ch09",
        &["--hostname", "lab-ch09", "--", "cat", "/etc/motd"],
    );
    // The registry's port is the kernel's pick; every digest depends on
    // the host's busybox-static, whose tree is the base layer.
    let port = regex::Regex::new(r"127\.0\.0\.1:\d+").unwrap();
    let output = port.replace_all(&output, "127.0.0.1:[PORT]");
    let digest = regex::Regex::new(r"sha256:[0-9a-f]{64}").unwrap();
    let output = digest.replace_all(&output, "sha256:[DIGEST]");
    let short = regex::Regex::new(r"\b[0-9a-f]{12}:").unwrap();
    let output = short.replace_all(&output, "[LAYER]:");
    assert_chapter_snapshot!("ch09", output.into_owned());
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch10_snapshot() {
    // The busybox layer's digest depends on when the lab built its tree
    // (the files keep their times), and so do the image ids above it;
    // every layer the chapter makes is pinned (SOURCE_DATE_EPOCH).
    let output = chapter_output("ch10", &[]);
    let output = regex::Regex::new(r"(image id:\s+)sha256:[0-9a-f]{64}")
        .unwrap()
        .replace_all(&output, "${1}[IMAGE ID]");
    let output = regex::Regex::new(r"(base layer:\s+)\S+")
        .unwrap()
        .replace_all(&output, "${1}[BUSYBOX LAYER]")
        .into_owned();
    assert_chapter_snapshot!("ch10", output);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch11_snapshot() {
    // lab-runc, runc, crun and podman run beside the chapter; a peer that
    // is missing shows as skipped in its step.
    let output = chapter_output("ch11", &[]);
    let work = std::path::Path::new("/run/container-lab-tests/snapshot-ch11/run/ch11");
    assert!(!work.exists(), "ch11 left its directory");
    assert_chapter_snapshot!("ch11", output);
}
