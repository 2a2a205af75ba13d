//! Chapter 11: the OCI runtime's create/start split, seen in /proc: the
//! lab looks at the init after `create`, then plays `start` itself by
//! opening exec.fifo, and looks again.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::{Check, Subject};
use crate::evidence;

/// How long the init may take to reach a state the lab can judge (it
/// waits for a state, it does not time anything).
const SETTLE: Duration = Duration::from_secs(10);

pub fn verify(s: &Subject, pid: Pid) -> Vec<Check> {
    create_start(&s.run_dir.join("exec.fifo"), pid)
}

fn exe(pid: Pid) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

fn runs_sleep(pid: Pid) -> bool {
    evidence::proc_file(pid, "comm") == "sleep"
}

/// Blocked in open(2) of a fifo: where the kernel has it wait.
fn waits_on_fifo(pid: Pid) -> bool {
    let stack = evidence::proc_file(pid, "stack");
    let wchan = evidence::proc_file(pid, "wchan");
    stack.contains("fifo_open") || wchan.contains("fifo") || wchan.contains("wait_for_partner")
}

enum After {
    Waits,
    RunsSleep,
    Gone,
    Neither(String),
}

fn after_create(pid: Pid) -> After {
    let deadline = Instant::now() + SETTLE;
    loop {
        match exe(pid) {
            None => return After::Gone,
            Some(_) if runs_sleep(pid) => return After::RunsSleep,
            Some(_) if waits_on_fifo(pid) => return After::Waits,
            Some(path) if Instant::now() > deadline => {
                return After::Neither(path.display().to_string())
            }
            Some(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// `start`: opens exec.fifo to read (which releases the init's open) and
/// reads what the init wrote.
fn start(fifo: &Path) -> Result<String, String> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(fifo)
        .map_err(|err| format!("could not open {}: {err}", fifo.display()))?;
    let deadline = Instant::now() + SETTLE;
    let mut got = String::new();
    let mut buf = [0u8; 16];
    while Instant::now() < deadline {
        match file.read(&mut buf) {
            Ok(0) if !got.is_empty() => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(format!("could not read {}: {err}", fifo.display())),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(got)
}

fn create_start(fifo: &Path, pid: Pid) -> Vec<Check> {
    let created = after_create(pid);
    let waited = matches!(created, After::Waits);
    let mut checks = vec![Check::new(
        waited,
        format!(
            "after create the init waits in fifo_open (exec.fifo), still {}: not yet the program",
            exe(pid).map_or("?".into(), |p| p.display().to_string())
        ),
        match &created {
            After::RunsSleep => "after create the init already runs sleep: it must wait on \
                                 exec.fifo until start opens it"
                .to_string(),
            After::Gone => "after create the init is gone: it must wait on exec.fifo".to_string(),
            After::Neither(exe) => {
                format!("after create the init ({exe}) neither waits on exec.fifo nor runs sleep")
            }
            After::Waits => String::new(),
        },
    )];
    if !waited {
        return checks;
    }
    let said = start(fifo);
    let deadline = Instant::now() + SETTLE;
    while !runs_sleep(pid) && exe(pid).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    checks.push(Check::new(
        said.as_deref() == Ok("0"),
        "start opened exec.fifo and read \"0\" from the init",
        match &said {
            Ok(text) => format!("start opened exec.fifo and read {text:?}, not \"0\""),
            Err(err) => err.clone(),
        },
    ));
    checks.push(Check::new(
        runs_sleep(pid),
        format!(
            "after start the init runs the program: {} (comm sleep)",
            exe(pid).map_or("?".into(), |p| p.display().to_string())
        ),
        "after start the init does not run sleep",
    ));
    checks
}
