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
    wake();
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

/// The write end of the pipe a [`ChildWait`] sleeps on, or -1.
static WAKE: AtomicI32 = AtomicI32::new(-1);

/// One byte into the wake-up pipe, if a [`ChildWait`] listens: `write` is
/// async-signal-safe, the pipe never blocks, and errno is kept for the
/// code the signal interrupted.
fn wake() {
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        // Safety: a plain write of one byte; errno saved and restored.
        unsafe {
            let errno = *libc::__errno_location();
            let _ = libc::write(fd, b"!".as_ptr().cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

extern "C" fn child_changed(_: libc::c_int) {
    wake();
}

/// Sleeping until a child changes state or a signal sets the flag,
/// without polling and without a lost wake-up (the self-pipe trick): the
/// handlers write a byte into a pipe, and [`ChildWait::sleep`] waits for
/// the pipe to be readable. A signal that comes between a check and the
/// sleep has left its byte, so the sleep returns at once; and it does not
/// matter which thread the kernel runs the handler on. (SIGCHLD is
/// ignored by default: it gets a handler while this lives.)
pub struct ChildWait {
    read: std::os::fd::OwnedFd,
    write: std::os::fd::OwnedFd,
    old_chld: SigAction,
}

impl ChildWait {
    pub fn begin() -> nix::Result<ChildWait> {
        use std::os::fd::AsRawFd;
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)?;
        WAKE.store(write.as_raw_fd(), Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(child_changed),
            SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
            SigSet::empty(),
        );
        // Safety: the handler only writes a byte into a pipe.
        let old_chld = unsafe { sigaction(Signal::SIGCHLD, &action) }?;
        Ok(ChildWait {
            read,
            write,
            old_chld,
        })
    }

    /// Returns once a signal came since the last call (the flag's or
    /// SIGCHLD), at once if one did meanwhile.
    pub fn sleep(&self) {
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(
            self.read.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE);
        let mut drain = [0u8; 64];
        use std::os::fd::AsRawFd;
        while matches!(nix::unistd::read(self.read.as_raw_fd(), &mut drain), Ok(n) if n > 0) {}
    }
}

impl Drop for ChildWait {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // Safety: restores the action that was there.
        unsafe {
            let _ = sigaction(Signal::SIGCHLD, &self.old_chld);
        }
        let _ = WAKE.compare_exchange(
            self.write.as_raw_fd(),
            -1,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
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
