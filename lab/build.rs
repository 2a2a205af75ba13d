//! Building one exercise: `cargo build -p lab-exercises --bin ID`, run as
//! the learner (never as root, which would leave root's files in their
//! `target/`), so that only that exercise is compiled and a half-done file
//! elsewhere never gets in the way.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use container_lab::lab::exercises::{Exercise, PACKAGE};

use crate::checkout::Checkout;

/// Runs prebuilt binaries from this directory instead of building (the
/// tests, and the cgroup v2 guest, where there is no cargo).
pub const BINARIES_ENV: &str = "LAB_EXERCISE_BINARIES";

pub enum Built {
    Binary(PathBuf),
    /// It did not compile: the compiler's message.
    Failed(String),
}

pub fn build(checkout: &Checkout, ex: &Exercise) -> anyhow::Result<Built> {
    if let Some(dir) = std::env::var_os(BINARIES_ENV).filter(|v| !v.is_empty()) {
        let binary = Path::new(&dir).join(ex.id);
        anyhow::ensure!(
            binary.is_file(),
            "{BINARIES_ENV} is set, but {} is not there",
            binary.display()
        );
        return Ok(Built::Binary(binary));
    }
    let mut cargo = cargo_command(&checkout.root)?;
    cargo
        .args(["build", "--quiet", "--package", PACKAGE, "--bin", ex.id])
        .arg("--manifest-path")
        .arg(checkout.root.join("Cargo.toml"))
        .arg(if crate::report::colour() {
            "--color=always"
        } else {
            "--color=never"
        })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let output = cargo
        .output()
        .map_err(|err| anyhow::anyhow!("failed to run cargo ({err}); is Rust installed?"))?;
    let message = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Ok(Built::Failed(message));
    }
    // Warnings are the learner's business: show them, as cargo would.
    eprint!("{message}");
    Ok(Built::Binary(
        target_dir(&checkout.root).join("debug").join(ex.id),
    ))
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// cargo, as the user who ran `sudo` when there is one, with their home
/// and the toolchain that built the lab.
fn cargo_command(root: &Path) -> anyhow::Result<Command> {
    let sudo_user = sudo_user();
    let cargo = find_cargo(sudo_user.as_ref().map(|u| u.home.as_path()));
    let mut command = Command::new(&cargo);
    command.current_dir(root);
    if let Some(user) = sudo_user {
        // The directory of the cargo found holds its rustc too.
        let mut path = cargo
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        path.push_str(&format!(":{}/.cargo/bin", user.home.display()));
        if let Some(rest) = std::env::var_os("PATH") {
            path.push(':');
            path.push_str(&rest.to_string_lossy());
        }
        command
            .env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name)
            .env("PATH", path)
            .uid(user.uid)
            .gid(user.gid);
        // Its own groups, as a login would give them.
        let (name, gid) = (user.name.clone(), user.gid);
        unsafe {
            command.pre_exec(move || {
                let name = std::ffi::CString::new(name.as_str()).unwrap_or_default();
                nix::unistd::initgroups(&name, nix::unistd::Gid::from_raw(gid))
                    .map_err(std::io::Error::from)
            });
        }
    }
    Ok(command)
}

struct SudoUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

/// The user behind `sudo`, when the lab runs as root through it.
fn sudo_user() -> Option<SudoUser> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let uid: u32 = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    if uid == 0 {
        return None;
    }
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
    Some(SudoUser {
        name: user.name,
        uid,
        gid: user.gid.as_raw(),
        home: user.dir,
    })
}

/// The cargo that ran us (`cargo run` sets CARGO, and the lab keeps it
/// across sudo), else the user's `~/.cargo/bin/cargo`, else PATH's.
fn find_cargo(home: Option<&Path>) -> PathBuf {
    if let Some(cargo) = std::env::var_os("CARGO").map(PathBuf::from) {
        if cargo.is_file() {
            return cargo;
        }
    }
    if let Some(cargo) = home.map(|h| h.join(".cargo/bin/cargo")) {
        if cargo.is_file() {
            return cargo;
        }
    }
    PathBuf::from("cargo")
}
