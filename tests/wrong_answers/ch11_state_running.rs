//! A typical wrong answer, for tests/exercises.rs: the state with
//! status "running" already after create, before start.
//! Not an exercise: `lab check` must fail it with the message that explains it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use container_lab::engine::oci::OCI_VERSION;
use container_lab::lab::handoff;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, mkfifo, ForkResult, Pid};

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let run_dir = handoff::run_dir()?;
    // The container's id is its directory's name, as in /run/lab-runc/ID.
    let id = handoff::exercise_id();
    let bundle = run_dir.path().join("bundle");
    fs::create_dir_all(&bundle)?;
    fs::write(
        bundle.join("config.json"),
        format!("{{\"ociVersion\": \"{OCI_VERSION}\"}}\n"),
    )?;
    let fifo = run_dir.path().join("exec.fifo");
    mkfifo(&fifo, Mode::from_bits_truncate(0o600))?;
    // `create`: the init is made (here a plain fork) and waits for `start`.
    // Safety: this program has one thread, so the child may do anything.
    let init = match unsafe { fork() }? {
        ForkResult::Child => std::process::exit(handoff::exit_code(init(&fifo))),
        ForkResult::Parent { child } => child,
    };
    let text = serde_json::to_string_pretty(&state(&id, init, &bundle))?;
    fs::write(run_dir.path().join("state.json"), text + "\n")?;

    // The lab reads state.json, then opens exec.fifo (`start`).
    let result = handoff::init_to_lab(init);
    let _ = kill(init, Signal::SIGKILL);
    let _ = waitpid(init, None);
    result
}

/// What `state ID` prints for the container just created, whose init is
/// `init` (as the host numbers it).
fn state(id: &str, init: Pid, bundle: &Path) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": OCI_VERSION,
        "id": id,
        "status": "running",
        "pid": init.as_raw(),
        "bundle": bundle,
    })
}

/// The container's init: wait for `start`, then become the program.
fn init(fifo: &Path) -> anyhow::Result<()> {
    let mut waiting = OpenOptions::new().write(true).open(fifo)?;
    waiting.write_all(b"0")?;
    drop(waiting);
    let err = Command::new("sleep").arg("infinity").exec();
    Err(anyhow::anyhow!("could not run sleep: {err}"))
}
