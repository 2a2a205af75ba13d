//! `mini-docker run --explain`: every step printed as it is applied, with
//! the shell command that would do the same, so a learner can follow a
//! whole run primitive by primitive. Written to stderr, so the container's
//! own output on stdout stays untouched.

use std::fmt::Display;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// Where the steps go: our stderr, or (in the container's first process,
/// once its stderr is the container's) a copy of the stderr it started with.
static OUTPUT: AtomicI32 = AtomicI32::new(2);

#[derive(Debug, Clone, Copy, Default)]
pub struct Explain {
    pub on: bool,
}

impl Explain {
    /// `-- what` then `   $ shell`.
    pub fn step(&self, what: impl Display, shell: impl Display) {
        if !self.on {
            return;
        }
        let text = format!("-- {what}\n   $ {shell}\n");
        let fd = OUTPUT.load(Ordering::Relaxed);
        if fd == 2 {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        } else {
            // Safety: the fd stays open (kept) until execve closes it.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let _ = nix::unistd::write(fd, text.as_bytes());
        }
    }

    /// Keeps the steps on our stderr after fd 2 is pointed elsewhere (the
    /// container's log pipe): called in the child before it does that.
    pub fn keep_stderr(&self) {
        if !self.on {
            return;
        }
        if let Ok(copy) = nix::fcntl::fcntl(2, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)) {
            // Safety: a new descriptor of our own; leaked on purpose, so
            // that it lives until execve closes it (close-on-exec).
            let copy: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(copy) };
            OUTPUT.store(copy.as_raw_fd(), Ordering::Relaxed);
            std::mem::forget(copy);
        }
    }
}
