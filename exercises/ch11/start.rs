//! Exercise ch11-start, chapter 11 (the OCI runtime): the create/start
//! split. `create` makes the init and leaves it waiting on exec.fifo;
//! `start` opens the fifo, and only then does the init run the program.
//!
//! Fill in the TODO, then run `lab check ch11-start` (or keep `lab
//! watch` running). `lab hint ch11-start` helps. The lab plays `start`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use container_lab::lab::handoff;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, mkfifo, ForkResult};

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let run_dir = handoff::run_dir()?;
    let fifo = run_dir.path().join("exec.fifo");
    mkfifo(&fifo, Mode::from_bits_truncate(0o600))?;
    // `create`: the init is made (here a plain fork) and must wait.
    // Safety: this program has one thread, so the child may do anything.
    let init = match unsafe { fork() }? {
        ForkResult::Child => std::process::exit(handoff::exit_code(init(&fifo))),
        ForkResult::Parent { child } => child,
    };

    // The lab looks at the init, then opens exec.fifo (`start`).
    let result = handoff::init_to_lab(init);
    let _ = kill(init, Signal::SIGKILL);
    let _ = waitpid(init, None);
    result
}

/// The container's init: wait for `start`, then become the program.
fn init(fifo: &Path) -> anyhow::Result<()> {
    // TODO: wait for `start` as runc's init does: open `fifo` for writing
    // (the open blocks until someone opens it to read) and write "0".
    // END TODO
    let err = Command::new("sleep").arg("infinity").exec();
    Err(anyhow::anyhow!("could not run sleep: {err}"))
}
