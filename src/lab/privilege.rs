//! Getting root for a chapter without making the learner type sudo.
//!
//! Namespaces (other than user namespaces), mounts and cgroups all need
//! CAP_SYS_ADMIN in the host's user namespace. When a chapter is started by
//! an ordinary user, it says why it needs root and runs itself again through
//! `sudo`, keeping its arguments and the few variables that change its output.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::unistd::geteuid;

/// Set on the re-run, so a sudo that did not give us root cannot loop.
const RERUN_MARK: &str = "CONTAINER_LAB_VIA_SUDO";

/// Variables worth keeping across sudo.
const KEPT_VARIABLES: &[&str] = &[
    "NO_COLOR",
    "TERM",
    crate::engine::dirs::ROOT_ENV,
    "CONTAINER_LAB_HOLD_AT_STEP",
];

/// Returns when running as root; otherwise re-executes the program with sudo
/// (never returns then), or explains why that is impossible.
pub fn ensure_root(chapter: &str, why: &str) -> Result<(), PrivilegeError> {
    if geteuid().is_root() {
        return Ok(());
    }
    if std::env::var_os(RERUN_MARK).is_some() {
        return Err(PrivilegeError::SudoWithoutRoot {
            chapter: chapter.to_string(),
        });
    }
    let Some(sudo) = find_in_path("sudo") else {
        return Err(PrivilegeError::NoSudo {
            chapter: chapter.to_string(),
            why: why.to_string(),
            how: as_root_hint(chapter),
        });
    };
    let exe = std::env::current_exe().map_err(PrivilegeError::OwnPath)?;
    eprintln!("{chapter} needs root: {why}. running it again with sudo…");

    let mut command = Command::new(sudo);
    // Without a terminal sudo cannot ask for a password: fail fast instead.
    if !nix::unistd::isatty(0).unwrap_or(false) {
        command.arg("--non-interactive");
    }
    command.arg(format!("--preserve-env={}", KEPT_VARIABLES.join(",")));
    command
        .arg("--")
        .arg("env")
        .arg(format!("{RERUN_MARK}=1"))
        .arg(exe);
    command.args(crate::lab::cli::current_args());
    let err = command.exec();
    Err(PrivilegeError::Exec(err))
}

/// How to run this again as root: a chapter through cargo, mini-docker as
/// it was typed.
fn as_root_hint(chapter: &str) -> String {
    if !chapter.contains(' ') && chapter.starts_with("ch") {
        return format!("su -c 'cargo run --bin {chapter}'");
    }
    let words: Vec<String> = std::env::args().collect();
    format!("su -c \"{}\"", crate::support::shell::shell_words(&words))
}

fn find_in_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("{chapter} needs root ({why}) and sudo is not installed; run it as root, e.g. {how}")]
    NoSudo {
        chapter: String,
        why: String,
        how: String,
    },
    #[error("sudo ran {chapter} but not as root; check your sudoers entry or run it as root")]
    SudoWithoutRoot { chapter: String },
    #[error("cannot find the chapter's own executable: {0}")]
    OwnPath(std::io::Error),
    #[error("failed to run sudo: {0}")]
    Exec(std::io::Error),
    #[error("failed to change the effective user or group: {0}")]
    Switch(#[from] nix::errno::Errno),
}

// ANCHOR: as_user
/// Runs `work` with the effective user and group IDs of an unprivileged
/// user, and no supplementary groups, then takes root's back. What the
/// kernel checks in between (who owns a new user namespace, who may write
/// its maps) it checks against that user, whose effective capabilities
/// are none: chapter 7's rootless step. Only the effective IDs change, so
/// the real and saved ones (root's) are the way back.
pub fn as_user<T, F>(uid: u32, gid: u32, work: F) -> Result<T, PrivilegeError>
where
    F: FnOnce() -> T,
{
    use nix::sys::prctl;
    use nix::unistd::{getegid, geteuid, setegid, seteuid, setgroups, Gid, Uid};
    let (euid, egid) = (geteuid(), getegid());
    let groups = nix::unistd::getgroups()?;
    let dumpable = prctl::get_dumpable().unwrap_or(true);
    setgroups(&[])?;
    setegid(Gid::from_raw(gid))?;
    seteuid(Uid::from_raw(uid))?;
    let result = work();
    // Back in the reverse order: the gid may only change as root.
    seteuid(euid)?;
    setegid(egid)?;
    setgroups(&groups)?;
    // A change of uid made the process undumpable (its /proc files root's).
    let _ = prctl::set_dumpable(dumpable);
    Ok(result)
}
// ANCHOR_END: as_user
