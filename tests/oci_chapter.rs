//! Chapter 11's snapshot: its whole output, run as CI runs it. The book's
//! page includes this very file. (Its own file: it needs lab-runc, runc,
//! crun and podman beside the chapter.)
//!
//! Needs root; a normal user's `cargo test` lists it as ignored.

mod common;

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ch11_snapshot() {
    common::assert_root();
    let state = common::state_root("snapshot-ch11");
    let output = common::run(common::chapter("ch11", &state));
    assert_eq!(output.status.code(), Some(0), "ch11 failed");
    assert!(output.stderr.is_empty(), "ch11 wrote to stderr");
    assert!(!state.join("run/ch11").exists(), "ch11 left its directory");
    assert_chapter_snapshot!("ch11", String::from_utf8(output.stdout).unwrap());
}
