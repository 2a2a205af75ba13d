//! An exercise's side of `lab check`: the learner's program builds a
//! container, then hands it to the lab, which looks at it from outside
//! (namespace links, mountinfo, cgroup files, maps, capability sets, links
//! and routes) while the program waits, and releases it when done.
//!
//! The lab starts the exercise with one end of a Unix socket as
//! `LAB_HANDOFF_FD`. The socket carries the sender's credentials
//! (`SO_PASSCRED`), so a process inside the container's PID namespace can
//! announce itself too: the kernel translates its PID for the lab.

use std::io::IsTerminal;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::engine::dirs::{LabDirs, RunDir};
use crate::lab::container::Container;

/// The descriptor of the socket to the lab, set by `lab check`.
pub const FD_ENV: &str = "LAB_HANDOFF_FD";
/// The exercise being checked (its id in the manifest).
pub const ID_ENV: &str = "LAB_EXERCISE";
/// The cgroup directories the lab made for the exercise, as
/// `controller=DIR` pairs separated by `:` (`*=DIR` on cgroup v2).
pub const CGROUPS_ENV: &str = "LAB_CGROUPS";

/// What an exercise's `main` returns: 0 when it handed its container
/// over, 1 with its error on one line otherwise.
pub fn main(run: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    let result = run();
    crate::kernel::process::flush_stdio();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", crate::lab::cli::one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// What a process the exercise runs inside the container returns: 0, or
/// 1 after saying its error.
pub fn exit_code(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {}", crate::lab::cli::one_line(&err));
            1
        }
    }
}

/// Hands the container to the lab (its init's PID, as the host sees it)
/// and waits until the lab has looked at it.
pub fn to_lab(container: &Container) -> anyhow::Result<()> {
    send_and_wait(&format!("container {}", container.pid()), container.pid())
}

/// Hands a process the exercise made itself (a runtime's init, not a
/// `Container`) to the lab as its container, and waits until it looked.
pub fn init_to_lab(init: nix::unistd::Pid) -> anyhow::Result<()> {
    send_and_wait(&format!("container {init}"), init)
}

/// Hands the calling process itself to the lab, from anywhere (inside the
/// container's PID namespace too), and waits until the lab has looked.
pub fn this_process_to_lab() -> anyhow::Result<()> {
    send_and_wait("process", nix::unistd::getpid())
}

fn send_and_wait(message: &str, pid: nix::unistd::Pid) -> anyhow::Result<()> {
    let Some(fd) = socket() else {
        return wait_by_hand(pid);
    };
    nix::sys::socket::send(fd, message.as_bytes(), nix::sys::socket::MsgFlags::empty())
        .map_err(|errno| anyhow::anyhow!("failed to reach the lab ({FD_ENV}={fd}): {errno}"))?;
    // Any answer, or the lab's end closing, releases us.
    let mut answer = [0u8; 64];
    loop {
        match nix::sys::socket::recv(fd, &mut answer, nix::sys::socket::MsgFlags::empty()) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return Ok(()),
        }
    }
}

fn socket() -> Option<RawFd> {
    std::env::var(FD_ENV).ok()?.parse().ok()
}

/// Started by hand, not by `lab check`: say where to look, and wait for
/// Enter on a terminal.
fn wait_by_hand(pid: nix::unistd::Pid) -> anyhow::Result<()> {
    println!("this is an exercise: `lab check` runs it and checks what it built.");
    println!("its process on the host: PID {pid} (sudo lsns -p {pid})");
    if std::io::stdin().is_terminal() {
        println!("press Enter to end it");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    Ok(())
}

/// The exercise's id: the one the lab is checking, or this program's name.
pub fn exercise_id() -> String {
    std::env::var(ID_ENV).unwrap_or_else(|_| {
        std::env::args()
            .next()
            .and_then(|p| Some(PathBuf::from(p).file_name()?.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "exercise".into())
    })
}

/// The exercise's run directory (removed when dropped), named after it,
/// in the lab's usual place.
pub fn run_dir() -> anyhow::Result<RunDir> {
    Ok(RunDir::create(&LabDirs::from_env(), &exercise_id())?)
}

/// The cgroup directory the lab made for the exercise in `controller`'s
/// hierarchy (on cgroup v2, the one directory for every controller).
pub fn cgroup_dir(controller: &str) -> anyhow::Result<PathBuf> {
    let given = std::env::var(CGROUPS_ENV).unwrap_or_default();
    cgroup_dirs_of(&given)
        .into_iter()
        .find(|(c, _)| c == "*" || c == controller)
        .map(|(_, dir)| dir)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the lab made no cgroup for {controller} ({CGROUPS_ENV} is {given:?}); \
                 run this exercise with `lab check`"
            )
        })
}

/// The `cgroup.procs` files of every cgroup directory the lab made.
pub fn cgroup_procs() -> Vec<PathBuf> {
    let given = std::env::var(CGROUPS_ENV).unwrap_or_default();
    let mut files: Vec<PathBuf> = cgroup_dirs_of(&given)
        .into_iter()
        .map(|(_, dir)| dir.join("cgroup.procs"))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// `memory=/a:pids=/b` as pairs.
pub fn cgroup_dirs_of(text: &str) -> Vec<(String, PathBuf)> {
    text.split(':')
        .filter_map(|pair| {
            let (controller, dir) = pair.split_once('=')?;
            Some((controller.to_string(), PathBuf::from(dir)))
        })
        .collect()
}

/// `controller=DIR` pairs as `LAB_CGROUPS` carries them.
pub fn cgroup_env(dirs: &[(String, PathBuf)]) -> String {
    let pairs: Vec<String> = dirs
        .iter()
        .map(|(c, d)| format!("{c}={}", d.display()))
        .collect();
    pairs.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_dirs_round_trip() {
        let dirs = vec![
            (
                "memory".to_string(),
                PathBuf::from("/sys/fs/cgroup/memory/x"),
            ),
            ("pids".to_string(), PathBuf::from("/sys/fs/cgroup/pids/x")),
        ];
        assert_eq!(cgroup_dirs_of(&cgroup_env(&dirs)), dirs);
        assert!(cgroup_dirs_of("").is_empty());
    }
}
