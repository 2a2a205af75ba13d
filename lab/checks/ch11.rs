//! Chapter 11: the OCI runtime's create/start split, seen in /proc: the
//! lab looks at the init after `create`, then plays `start` itself by
//! opening exec.fifo, and looks again; and the runtime's state document,
//! read with the runtime spec's own type and held against /proc.

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
    match s.ex.id {
        "ch11-state" => state(s, pid),
        _ => create_start(&s.run_dir.join("exec.fifo"), pid),
    }
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

/// The fields the runtime spec requires of a state (`pid` while the
/// container is created or running).
const REQUIRED: [&str; 5] = ["ociVersion", "id", "status", "pid", "bundle"];

/// ch11-state: state.json after `create`, then `start` played as above.
fn state(s: &Subject, init: Pid) -> Vec<Check> {
    let path = s.run_dir.join("state.json");
    let Ok(text) = fs::read_to_string(&path) else {
        return vec![Check::fail(
            "state.json is missing: keep the given lines that write it",
        )];
    };
    let parsed = serde_json::from_str::<oci_spec::runtime::State>(&text);
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|k| raw.get(k).is_none())
        .collect();
    let state = match parsed {
        Ok(state) if missing.is_empty() => state,
        Ok(_) => {
            return vec![Check::fail(format!(
                "state.json lacks {}: the runtime spec's state has ociVersion, id, status, \
                 bundle, and pid while the container is created or running",
                missing.join(", ")
            ))]
        }
        Err(err) => {
            return vec![Check::fail(format!(
                "state.json is not the runtime spec's state (oci-spec's State refuses it: {err})"
            ))]
        }
    };
    let mut checks = vec![Check::pass(format!(
        "state.json parses as the runtime spec's State (oci-spec), ociVersion {}",
        state.version()
    ))];
    let bundle = state.bundle();
    checks.push(Check::new(
        state.id() == s.ex.id
            && bundle.is_absolute()
            && bundle.join("config.json").is_file()
            && state.version().starts_with("1."),
        format!(
            "id {}, and the bundle {} holds config.json",
            state.id(),
            bundle.display()
        ),
        format!(
            "id {:?}, bundle {:?}, ociVersion {:?}: the id is the container's ({}), the \
             bundle the absolute path of the directory with config.json, the version the \
             runtime spec's (OCI_VERSION)",
            state.id(),
            bundle.display().to_string(),
            state.version(),
            s.ex.id
        ),
    ));
    let pid = state.pid().unwrap_or(0);
    let named = Pid::from_raw(pid);
    let waits = matches!(after_create(init), After::Waits);
    let parent = evidence::status(named, "PPid");
    let is_init = pid == init.as_raw() && waits && parent == s.host.to_string();
    checks.push(Check::new(
        is_init,
        format!(
            "pid {pid} is the container's init: alive, a child of the runtime, waiting in \
             fifo_open on exec.fifo"
        ),
        if pid > 0 && named == s.host {
            format!(
                "pid {pid} is your program itself, the runtime, not the container's init: the \
                 state names the init that create forked (PID {init}), the process waiting on \
                 exec.fifo"
            )
        } else if pid <= 0 || exe(named).is_none() {
            format!(
                "pid {pid} is no running process: the state names the container's init \
                 (PID {init})"
            )
        } else if !waits {
            format!("the init (PID {init}) does not wait on exec.fifo: keep the given init")
        } else if pid == init.as_raw() {
            format!(
                "pid {pid}'s parent is {parent}, not the runtime (PID {})",
                s.host
            )
        } else {
            format!(
                "pid {pid} is not the container's init (PID {init}, waiting in fifo_open on \
                 exec.fifo)"
            )
        },
    ));
    let status = state.status().to_string();
    checks.push(Check::new(
        status == "created" && waits,
        "status created: the init waits on exec.fifo and has not run the program yet",
        if status == "running" && waits {
            format!(
                "status is \"running\" before start: the init (PID {init}) still waits in \
                 fifo_open on exec.fifo and has not run the program; until start opens \
                 exec.fifo, a state says \"created\""
            )
        } else {
            format!("status is {status:?}, not \"created\", after create and before start")
        },
    ));
    if !is_init {
        return checks;
    }
    // `start`: what the state named must be what starts the program.
    let _ = start(&s.run_dir.join("exec.fifo"));
    let deadline = Instant::now() + SETTLE;
    while !runs_sleep(named) && exe(named).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    checks.push(Check::new(
        runs_sleep(named),
        format!("after the lab played start, pid {pid} runs the program (comm sleep)"),
        format!("after the lab played start, pid {pid} does not run sleep"),
    ));
    checks
}
