//! Ctrl-C handling for the chapter (the host side).
//!
//! SIGINT, SIGTERM and SIGHUP only set a flag. They are installed without
//! `SA_RESTART`, so a blocking `waitpid` or `read` returns `EINTR` and the
//! chapter notices at once; it then stops the container and runs every
//! cleanup guard on the way out, instead of dying with mounts still in place.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Installs the flag-setting handler for SIGINT, SIGTERM and SIGHUP.
pub fn install_interrupt_handler() {
    let action = SigAction::new(
        SigHandler::Handler(remember),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // Safety: the handler only stores into an atomic.
        unsafe {
            let _ = sigaction(signal, &action);
        }
    }
}

/// `docker run --sig-proxy`: also SIGQUIT, SIGUSR1 and SIGUSR2 set the
/// flag, for a foreground run to pass them on to its container.
pub fn install_forwarding_handler() {
    install_interrupt_handler();
    let action = SigAction::new(
        SigHandler::Handler(remember),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2] {
        // Safety: the handler only stores into an atomic.
        unsafe {
            let _ = sigaction(signal, &action);
        }
    }
}

/// The signal that interrupted the chapter, if any.
pub fn interrupted() -> Option<Signal> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        n => Signal::try_from(n).ok(),
    }
}

/// Forgets the last signal (after it was passed on to a container).
pub fn clear() {
    RECEIVED.store(0, Ordering::SeqCst);
}

/// Error returned up the stack when the learner pressed Ctrl-C.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {0}; everything the chapter set up has been removed")]
pub struct Interrupted(pub Signal);

/// Returns `Err(Interrupted)` once a signal has arrived.
pub fn check() -> Result<(), Interrupted> {
    match interrupted() {
        Some(signal) => Err(Interrupted(signal)),
        None => Ok(()),
    }
}

/// Restores default dispositions; used in a freshly forked child before exec.
pub fn reset_to_default() {
    let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGCHLD,
        Signal::SIGPIPE,
    ] {
        unsafe {
            let _ = sigaction(signal, &action);
        }
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
}
