//! Marks the build when it runs as root, so that tests which need root are
//! reported as "ignored, needs root" in a normal user's `cargo test` instead
//! of passing without doing anything.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(lab_root)");
    println!("cargo::rerun-if-env-changed=USER");
    println!("cargo::rerun-if-env-changed=SUDO_USER");
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid_is_root = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .and_then(|line| line.split_whitespace().nth(2))
        == Some("0");
    // lab-runc starts for every container command, mini-docker for every
    // run: linked as fixed-address executables, the loader has no
    // relocations to apply (as PIEs, a third of lab-runc's start-up time
    // and 22,000 relocations for mini-docker, its tables of &str).
    for bin in ["lab-runc", "mini-docker"] {
        println!("cargo::rustc-link-arg-bin={bin}=-no-pie");
    }
    if euid_is_root {
        println!("cargo::rustc-cfg=lab_root");
    }
}
