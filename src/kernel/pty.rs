//! Pseudo-terminals for `mini-docker run -t`.
//!
//! A pty is a pair of character devices joined by the kernel's terminal
//! layer: whatever is written to the *master* arrives as keyboard input on
//! the *slave*, after passing the slave's line discipline (echo, line
//! editing, Ctrl-C to SIGINT), and whatever the program writes to the slave
//! comes out of the master. The container's process gets the slave as its
//! controlling terminal and stdin/stdout/stderr; mini-docker keeps the
//! master and plays terminal emulator: it puts the user's own terminal into
//! raw mode and copies bytes both ways, and the window size with them.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::stat::Mode;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// Both ends of a pseudo-terminal, close-on-exec.
#[derive(Debug)]
pub struct Pty {
    /// Our end: read the container's output, write its input.
    pub master: OwnedFd,
    /// The container's end: becomes its controlling terminal and 0, 1, 2.
    /// Drop the parent's copy once the child has it, or the master never
    /// sees the container side close.
    pub slave: OwnedFd,
}

/// A terminal's size in character cells, as `stty size` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

/// Opens a new pty from the host's `/dev/ptmx`, sized like `size_from`
/// when that is a terminal.
pub fn open(size_from: Option<BorrowedFd>) -> Result<Pty, PtyError> {
    open_ptmx(Path::new("/dev/ptmx"), size_from)
}

/// Opens a new pty from a given `ptmx`, e.g. the one of a container's own
/// devpts instance, so that its slave is one of the container's `/dev/pts/N`.
// ANCHOR: open
pub fn open_ptmx(ptmx: &Path, size_from: Option<BorrowedFd>) -> Result<Pty, PtyError> {
    // What openpty(3) does, but every fd is close-on-exec from the start:
    // a program another thread starts meanwhile must not inherit a slave,
    // or the master would not see the container side close until it exits.
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = nix::fcntl::open(ptmx, flags, Mode::empty()).map_err(|errno| PtyError::Open {
        path: ptmx.to_path_buf(),
        errno,
    })?;
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    // A new slave starts locked, so nobody opens it before it is set up.
    let unlock: libc::c_int = 0;
    let unlocked = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    Errno::result(unlocked).map_err(|errno| PtyError::Pty {
        op: "unlock the slave (TIOCSPTLCK)",
        errno,
    })?;
    // TIOCGPTPEER opens the slave from the master, with no /dev/pts/N path
    // lookup that could find another devpts instance (Linux 4.13+).
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags.bits()) };
    let slave = Errno::result(slave).map_err(|errno| PtyError::Pty {
        op: "open the slave (TIOCGPTPEER)",
        errno,
    })?;
    let pty = Pty {
        master,
        slave: unsafe { OwnedFd::from_raw_fd(slave) },
    };
    if let Some(from) = size_from {
        copy_window_size(from, pty.master.as_fd())?;
    }
    Ok(pty)
}
// ANCHOR_END: open

/// In the container's process, before `execve`: a new session whose
/// controlling terminal is `slave`, and `slave` as stdin, stdout, stderr.
///
/// Only system calls, no allocation: safe between `clone`/`fork` and `exec`.
/// The pty's own fds are close-on-exec, so after `execve` the program holds
/// the slave only as 0, 1 and 2; a child that does not exec should drop them.
// ANCHOR: controlling
pub fn make_controlling_terminal(slave: BorrowedFd) -> Result<(), PtyError> {
    let fail = |op: &'static str| move |errno| PtyError::ControllingTerminal { op, errno };
    // A session leader with no terminal yet, the only kind that may take one.
    nix::unistd::setsid().map_err(fail("setsid"))?;
    // The slave becomes the session's controlling terminal and our process
    // group its foreground group: the one its Ctrl-C and SIGWINCH go to.
    Errno::result(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) })
        .map_err(fail("ioctl TIOCSCTTY"))?;
    for target in 0..=2 {
        if slave.as_raw_fd() == target {
            // dup2 onto itself would keep close-on-exec set.
            fcntl(target, FcntlArg::F_SETFD(FdFlag::empty())).map_err(fail("fcntl F_SETFD"))?;
        } else {
            nix::unistd::dup2(slave.as_raw_fd(), target).map_err(fail("dup2"))?;
        }
    }
    Ok(())
}
// ANCHOR_END: controlling

/// The user's terminal in raw mode, restored when this guard is dropped
/// (also when the caller returns early with an error or panics).
#[derive(Debug)]
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Switches `fd`'s terminal to raw mode; `None` when `fd` is not a
    /// terminal (stdin from a pipe or a file needs nothing).
    // ANCHOR: raw
    pub fn enter(fd: BorrowedFd) -> Result<Option<RawMode>, PtyError> {
        let saved = match tcgetattr(fd) {
            Ok(termios) => termios,
            Err(Errno::ENOTTY) => return Ok(None),
            Err(errno) => return Err(terminal("get the attributes (tcgetattr)", fd, errno)),
        };
        // Our own copy of the fd, taken first so that nothing can fail
        // between switching to raw mode and holding the guard.
        let own = fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(0))
            .map_err(|errno| terminal("duplicate", fd, errno))?;
        let guard = RawMode {
            fd: unsafe { OwnedFd::from_raw_fd(own) },
            saved: saved.clone(),
        };
        // No echo, no line editing, no signals from Ctrl-C, no \n to \r\n:
        // every byte goes to the container's pty, whose line discipline
        // does all of that for the program inside.
        let mut raw = saved;
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSANOW, &raw)
            .map_err(|errno| terminal("set raw mode (tcsetattr)", fd, errno))?;
        Ok(Some(guard))
    }
    // ANCHOR_END: raw
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(&self.fd, SetArg::TCSANOW, &self.saved);
    }
}

/// The size of the terminal on `fd`; `None` when it is not a terminal.
pub fn window_size(fd: BorrowedFd) -> Result<Option<WindowSize>, PtyError> {
    Ok(get_winsize(fd)?.map(|w| WindowSize {
        rows: w.ws_row,
        cols: w.ws_col,
    }))
}

/// Sets the size of the terminal on `fd`; the kernel sends SIGWINCH to its
/// foreground process group when the size changes.
pub fn set_window_size(fd: BorrowedFd, size: WindowSize) -> Result<(), PtyError> {
    let winsize = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    set_winsize(fd, &winsize)
}

/// Gives `to` the window size of `from`; `false` when `from` is not a
/// terminal (then `to` keeps its size).
pub fn copy_window_size(from: BorrowedFd, to: BorrowedFd) -> Result<bool, PtyError> {
    match get_winsize(from)? {
        Some(winsize) => set_winsize(to, &winsize).map(|()| true),
        None => Ok(false),
    }
}

fn get_winsize(fd: BorrowedFd) -> Result<Option<libc::winsize>, PtyError> {
    let mut winsize: libc::winsize = unsafe { std::mem::zeroed() };
    match Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut winsize) }) {
        Ok(_) => Ok(Some(winsize)),
        Err(Errno::ENOTTY) => Ok(None),
        Err(errno) => Err(terminal("read the window size (TIOCGWINSZ)", fd, errno)),
    }
}

fn set_winsize(fd: BorrowedFd, winsize: &libc::winsize) -> Result<(), PtyError> {
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, winsize) })
        .map(drop)
        .map_err(|errno| terminal("set the window size (TIOCSWINSZ)", fd, errno))
}

/// Copies `input` to the master and the master to `output` until the
/// container side is closed, and gives the pty `output`'s (or `input`'s)
/// window size at the start and after every SIGWINCH.
///
/// Returns once every slave fd is closed and all the output the container
/// wrote has been copied. EOF on `input` only stops forwarding input, as
/// with Docker: the session lasts as long as the container's program.
/// Signals that interrupt the wait (SIGTERM, handled by `signals`) are
/// retried; run this on its own thread if another must see them. One relay
/// per process at a time: SIGWINCH is process-wide and wakes only one.
// ANCHOR: relay
pub fn relay(master: BorrowedFd, input: BorrowedFd, output: BorrowedFd) -> Result<(), PtyError> {
    let resized = resize_wakeups()?;
    // Never block on the master: a program that prints without reading
    // its input must not stall us while its input buffer is full.
    fcntl(master.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map_err(|errno| relay_err("fcntl O_NONBLOCK on the master", errno))?;
    let mut buf = [0u8; 4096];
    let mut to_master: Vec<u8> = Vec::new();
    let mut input_open = true;
    let mut resize = true;
    loop {
        if resize {
            drain(resized);
            if !copy_window_size(output, master)? {
                copy_window_size(input, master)?;
            }
        }
        let mut want_master = PollFlags::POLLIN;
        if !to_master.is_empty() {
            want_master |= PollFlags::POLLOUT;
        }
        let mut fds = [
            PollFd::new(master, want_master),
            PollFd::new(resized, PollFlags::POLLIN),
            PollFd::new(input, PollFlags::POLLIN),
        ];
        // Read more input only when the last has reached the master.
        let watched = if input_open && to_master.is_empty() {
            3
        } else {
            2
        };
        match poll(&mut fds[..watched], PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(relay_err("poll", errno)),
        }
        let ready = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
        let (from_master, from_resize, from_input) = (ready(0), ready(1), ready(2));
        resize = !from_resize.is_empty();

        if from_master.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            // Output still buffered is read first; EIO comes only after it,
            // once no process holds the slave open any more.
            match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                Ok(0) | Err(Errno::EIO) => return Ok(()),
                Ok(n) => write_all(output, &buf[..n])?,
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(errno) => return Err(relay_err("read from the container's pty", errno)),
            }
        }
        if from_master.contains(PollFlags::POLLOUT) {
            match nix::unistd::write(master, &to_master) {
                Ok(n) => drop(to_master.drain(..n)),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                // The container side is gone; the next read says so.
                Err(Errno::EIO) => to_master.clear(),
                Err(errno) => return Err(relay_err("write to the container's pty", errno)),
            }
        }
        if watched == 3 && !from_input.is_empty() {
            match nix::unistd::read(input.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => to_master.extend_from_slice(&buf[..n]),
                // EOF, a hung-up terminal, a closed fd: stop forwarding only.
                Ok(_) | Err(Errno::EIO) => input_open = false,
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(errno) => return Err(relay_err("read from the terminal", errno)),
            }
        }
    }
}
// ANCHOR_END: relay

/// Writes everything to `fd`, waiting when it is non-blocking and full.
fn write_all(fd: BorrowedFd, mut bytes: &[u8]) -> Result<(), PtyError> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(errno) => return Err(relay_err("poll", errno)),
                }
            }
            Err(errno) => return Err(relay_err("write to the terminal", errno)),
        }
    }
    Ok(())
}

// SIGWINCH arrives as a signal, but the relay waits in poll: the handler
// writes a byte into a pipe that poll watches (the self-pipe trick).
static WAKE_WRITE: AtomicI32 = AtomicI32::new(-1);
static WAKE_PIPE: OnceLock<Result<(OwnedFd, OwnedFd), Errno>> = OnceLock::new();

extern "C" fn on_sigwinch(_: libc::c_int) {
    // write() may change errno under the code the signal interrupted.
    let saved = Errno::last_raw();
    let fd = WAKE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        // Non-blocking: when the pipe is full, a wakeup is pending anyway.
        unsafe { libc::write(fd, [0u8].as_ptr().cast(), 1) };
    }
    Errno::set_raw(saved);
}

/// The read end of the self-pipe, with the SIGWINCH handler installed.
fn resize_wakeups() -> Result<BorrowedFd<'static>, PtyError> {
    let pipe = WAKE_PIPE.get_or_init(|| {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        WAKE_WRITE.store(write.as_raw_fd(), Ordering::Relaxed);
        // SA_RESTART: a resize must not interrupt other system calls.
        let action = SigAction::new(
            SigHandler::Handler(on_sigwinch),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // Safety: the handler only calls write(2) and touches errno.
        unsafe { sigaction(Signal::SIGWINCH, &action) }?;
        Ok((read, write))
    });
    match pipe {
        Ok((read, _)) => Ok(read.as_fd()),
        Err(errno) => Err(relay_err("set up the SIGWINCH handler", *errno)),
    }
}

fn drain(fd: BorrowedFd) {
    let mut buf = [0u8; 64];
    while matches!(nix::unistd::read(fd.as_raw_fd(), &mut buf), Ok(n) if n > 0) {}
}

fn terminal(op: &'static str, fd: BorrowedFd, errno: Errno) -> PtyError {
    PtyError::Terminal {
        op,
        fd: fd.as_raw_fd(),
        errno,
    }
}

fn relay_err(op: &'static str, errno: Errno) -> PtyError {
    PtyError::Relay { op, errno }
}

/// The console socket, as runc's `--console-socket`: the container opens
/// its terminal from its own devpts (so that `tty` names a `/dev/pts/N`
/// that exists inside) and hands the master to us over a Unix socket.
/// Returns (our end, the container's end).
// ANCHOR: console
pub fn console_socket() -> Result<(OwnedFd, OwnedFd), PtyError> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|errno| PtyError::Relay {
        op: "socketpair",
        errno,
    })
}

/// In the container, after /dev/pts is its own: a new pty from its
/// /dev/ptmx, the master sent over `socket` (SCM_RIGHTS passes the open
/// file itself), the slave made our controlling terminal and stdio.
pub fn attach_console(socket: BorrowedFd) -> Result<(), PtyError> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let pty = open_ptmx(Path::new("/dev/ptmx"), None)?;
    let fds = [pty.master.as_raw_fd()];
    let data = [std::io::IoSlice::new(b"m")];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &data,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|errno| PtyError::Relay {
        op: "send the terminal",
        errno,
    })?;
    drop(pty.master);
    make_controlling_terminal(pty.slave.as_fd())
}

/// Our side: waits for the container's master; `None` when the container
/// ended before sending one.
pub fn receive_master(socket: BorrowedFd) -> Result<Option<OwnedFd>, PtyError> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut byte = [0u8; 1];
    let mut data = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    loop {
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut data,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(message) => {
                for cmsg in message.cmsgs().map_err(|errno| PtyError::Relay {
                    op: "read the terminal message",
                    errno,
                })? {
                    if let ControlMessageOwned::ScmRights(fds) = cmsg {
                        if let Some(&fd) = fds.first() {
                            return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
                        }
                    }
                }
                return Ok(None);
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                return Err(PtyError::Relay {
                    op: "receive the terminal",
                    errno,
                })
            }
        }
    }
}
// ANCHOR_END: console

#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    #[error("cannot open a pseudo-terminal at {}: {errno}; is devpts mounted on /dev/pts?", path.display())]
    Open { path: PathBuf, errno: Errno },
    #[error("cannot {op} of a new pseudo-terminal: {errno}; the kernel needs Linux 4.13 or later")]
    Pty { op: &'static str, errno: Errno },
    #[error("cannot make the pty the controlling terminal ({op}): {errno}; call it in a new child before execve")]
    ControllingTerminal { op: &'static str, errno: Errno },
    #[error("cannot {op} on terminal fd {fd}: {errno}; is it still open?")]
    Terminal {
        op: &'static str,
        fd: RawFd,
        errno: Errno,
    },
    #[error("cannot relay between the terminal and the container ({op}): {errno}")]
    Relay { op: &'static str, errno: Errno },
}
