//! The container's PID 1.
//!
//! The first process in a new PID namespace has two jobs the kernel gives to
//! no one else. Signals: the kernel drops every signal sent to it from inside
//! its namespace unless it has a handler, so a plain program running as PID 1
//! ignores Ctrl-C and `docker stop`; this init installs handlers and passes
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT on to its child. Orphans: every process
//! whose parent dies is re-parented to PID 1, which must `wait` for it or it
//! stays a zombie; this init reaps them all.
//!
//! When its main child exits, init exits with the same status, and the
//! kernel then kills whatever else is left in the namespace.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// The name init shows in `ps` inside the container.
pub const INIT_NAME: &str = "lab-init";

static MAIN_CHILD: AtomicI32 = AtomicI32::new(0);

// ANCHOR: forward
extern "C" fn forward(signal: libc::c_int) {
    let child = MAIN_CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // kill(2) is async-signal-safe.
        unsafe {
            libc::kill(child, signal);
        }
    }
}
// ANCHOR_END: forward

/// Becomes the container's init: starts `main` as its child, forwards
/// signals to it, reaps every zombie, and exits with `main`'s status.
/// `ready` closes once the handlers are in place and the main program has
/// been loaded by execve, which is what the host waits for. Never returns.
// ANCHOR: init
pub fn run(main: &[CString], env: &[CString], ready: OwnedFd) -> ! {
    set_process_name(INIT_NAME);
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        unsafe {
            let _ = sigaction(signal, &action);
        }
    }

    // Hold signals until MAIN_CHILD is set, so none is forwarded to nobody.
    let mut held = SigSet::empty();
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        held.add(signal);
    }
    let _ = held.thread_block();
    let main_pid = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // `ready` is close-on-exec: the host sees it close only once
            // this execve has loaded the main program.
            crate::signals::reset_to_default();
            exec_or_exit(main, env)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(errno) => {
            eprintln!("error: init could not start the main process: {errno}");
            exit_now(125)
        }
    };
    MAIN_CHILD.store(main_pid.as_raw(), Ordering::SeqCst);
    let _ = held.thread_unblock();
    drop(ready);

    loop {
        // Wait for any child: the main one, or an orphan re-parented to us.
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == main_pid => exit_now(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == main_pid => {
                exit_now(128 + signal as i32)
            }
            Ok(_) => continue, // a reaped orphan
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => exit_now(125),
        }
    }
}
// ANCHOR_END: init

/// Replaces the current process with `argv`, or exits 127/126 the way a
/// shell (and Docker) does when the command is missing or not executable.
pub fn exec_or_exit(argv: &[CString], env: &[CString]) -> ! {
    if let Some(program) = argv.first() {
        let err = if env.is_empty() {
            nix::unistd::execvp(program, argv).unwrap_err()
        } else {
            nix::unistd::execvpe(program, argv, env).unwrap_err()
        };
        let name = program.to_string_lossy();
        match err {
            nix::errno::Errno::ENOENT => {
                eprintln!("error: {name}: command not found inside the container");
                exit_now(127)
            }
            other => {
                eprintln!(
                    "error: {name}: cannot run it: {}",
                    other.desc().to_lowercase()
                );
                exit_now(126)
            }
        }
    }
    exit_now(0)
}

/// Leaves at once: no destructors, no atexit handlers, no second flush of
/// buffers the parent will flush too. Used in every forked child.
pub fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    unsafe { libc::_exit(code) }
}

/// Sets the name `ps` shows (`/proc/PID/comm`, 15 bytes at most).
pub fn set_process_name(name: &str) {
    if let Ok(name) = CString::new(name) {
        let _ = nix::sys::prctl::set_name(&name);
    }
}

/// Sends `signal` to the container's init, which forwards it to its child.
pub fn signal_init(init: Pid, signal: Signal) -> nix::Result<()> {
    kill(init, signal)
}
