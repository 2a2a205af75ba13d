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
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::kernel::init_pipe::{Failure, FailureKind, Reporter};

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
/// `ready` (the init pipe) closes once the handlers are in place and the
/// main program has been loaded by execve, which is what the host waits
/// for; a failure is reported on it. Never returns.
// ANCHOR: init
pub fn run(main: &[CString], env: &[CString], ready: Reporter) -> ! {
    set_process_name(INIT_NAME);
    // Init lives as long as the container and never calls execve: what the
    // caller left open must be closed here, or it stays reachable through
    // /proc/1/fd. Only `ready` is still needed.
    if let Err(err) = close_fds_except(&[ready.as_raw_fd()]) {
        let why = format!("init could not close inherited descriptors: {err}");
        fail(&ready, Failure::setup(why))
    }
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
            crate::kernel::signals::reset_to_default();
            exec_or_report(main, env, &ready)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(errno) => {
            let why = format!("init could not start the main process: {errno}");
            fail(&ready, Failure::setup(why))
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

/// Marks every descriptor but 0, 1 and 2 close-on-exec, so that nothing the
/// caller left open (a shell's `exec 7</`, a leaked directory of the host)
/// passes through the next execve into the container. Descriptors the lab
/// itself still uses until then keep working. One close_range(2) call
/// (Linux 5.11); older kernels go through /proc/self/fd.
// ANCHOR: close_inherited
pub fn close_inherited_fds() -> std::io::Result<()> {
    match close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) {
        Err(nix::errno::Errno::ENOSYS | nix::errno::Errno::EINVAL) => for_each_fd_from(3, |fd| {
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
        }),
        other => other.map_err(std::io::Error::from),
    }
}
// ANCHOR_END: close_inherited

/// Closes every descriptor but 0, 1, 2 and `keep` now, for a process that
/// stays inside the container without execve (the container's own init,
/// the process `exec` waits in), or that must not hold the caller's
/// descriptors even while it prepares the container (a `-w` of
/// `/proc/self/fd/N` would otherwise enter a host directory, as in runc's
/// CVE-2024-21626).
pub fn close_fds_except(keep: &[RawFd]) -> std::io::Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|&&fd| fd > 2)
        .map(|&fd| fd as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    // The gaps between the kept ones, one call each.
    let mut gaps = Vec::new();
    let mut low = 3u32;
    for &fd in &keep {
        if fd > low {
            gaps.push((low, fd - 1));
        }
        low = fd + 1;
    }
    gaps.push((low, u32::MAX));
    for (low, high) in gaps {
        match close_range(low, high, 0) {
            Err(nix::errno::Errno::ENOSYS) => {
                return for_each_fd_from(3, |fd| {
                    if !keep.contains(&(fd as u32)) {
                        let _ = nix::unistd::close(fd);
                    }
                })
            }
            other => other.map_err(std::io::Error::from)?,
        }
    }
    Ok(())
}

fn close_range(first: u32, last: u32, flags: libc::c_uint) -> nix::Result<()> {
    if test_switch(FORCE_FD_FALLBACK_ENV) {
        return Err(nix::errno::Errno::ENOSYS);
    }
    // Safety: close_range takes plain integers.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    nix::errno::Errno::result(ret).map(drop)
}

/// Whether a test switch is set (to anything but the empty string).
/// getenv(3) directly: this runs in forked children, where std's
/// environment lock may be held by a thread that did not come along.
pub(crate) fn test_switch(name: &std::ffi::CStr) -> bool {
    // Safety: a NUL-terminated name; getenv returns NULL or a C string.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    !value.is_null() && unsafe { *value } != 0
}

/// Set by the tests only: go through /proc/self/fd as on kernels without
/// close_range(2).
pub const FORCE_FD_FALLBACK_ENV: &std::ffi::CStr = c"CONTAINER_LAB_FORCE_FD_FALLBACK";

/// Calls `act` for each open descriptor from `first` on. The numbers are
/// read from /proc/self/fd first (acting while reading the directory would
/// change it); without /proc (a root that has none mounted yet), every
/// number below the descriptor limit.
fn for_each_fd_from(first: RawFd, mut act: impl FnMut(RawFd)) -> std::io::Result<()> {
    let open: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // Safety: getrlimit fills the struct we pass.
            if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            (first..RawFd::try_from(limit.rlim_cur.min(1 << 20)).unwrap_or(1 << 20)).collect()
        }
    };
    for fd in open.into_iter().filter(|&fd| fd >= first) {
        // The directory's own descriptor is closed by now: EBADF, harmless.
        act(fd);
    }
    Ok(())
}

/// Replaces the current process with `argv`; returns only when it could
/// not, with why: missing (127) or not executable (126), as a shell (and
/// Docker) tells them apart. Nothing but 0, 1 and 2 survives the execve
/// ([`close_inherited_fds`]). An empty `argv` has nothing to run: exit 0.
pub fn execute(argv: &[CString], env: &[CString]) -> Failure {
    if let Err(err) = close_inherited_fds() {
        return Failure::setup(format!("cannot close inherited descriptors: {err}"));
    }
    let Some(program) = argv.first() else {
        exit_now(0)
    };
    let err = if env.is_empty() {
        nix::unistd::execvp(program, argv).unwrap_err()
    } else {
        nix::unistd::execvpe(program, argv, env).unwrap_err()
    };
    let name = program.to_string_lossy();
    match err {
        nix::errno::Errno::ENOENT => Failure {
            kind: FailureKind::NotFound,
            message: format!("{name}: command not found inside the container"),
        },
        other => Failure {
            kind: FailureKind::NotExecutable,
            message: format!("{name}: cannot run it: {}", other.desc().to_lowercase()),
        },
    }
}

/// [`execute`], or the failure reported on the init pipe and the exit.
pub fn exec_or_report(argv: &[CString], env: &[CString], report: &Reporter) -> ! {
    let failure = execute(argv, env);
    fail(report, failure)
}

/// Reports `failure` on the init pipe and exits with its code.
pub fn fail(report: &Reporter, failure: Failure) -> ! {
    report.fail(&failure);
    exit_now(failure.exit_code())
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
