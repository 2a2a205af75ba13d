//! A running container, seen from the host: its init's PID, the namespaces
//! it was given, and the two ways into it (`exec` a command, or run a piece
//! of the lab's own code inside, the way `nsenter` and `docker exec` do).
//!
//! Dropping a `Container` that is still running kills it: a chapter that
//! fails or is interrupted half-way never leaves a process behind.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult, Pid};

use crate::kernel::init_pipe::Reporter;
use crate::kernel::namespaces::{self, Cloned, Namespace, NamespaceError};
use crate::kernel::process::{flush_stdio, status_code};
use crate::kernel::signals::{self, Interrupted};
use crate::kernel::{cgroups, init, userns};

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub namespaces: Vec<Namespace>,
    /// The main process init starts and waits for.
    pub main: Vec<String>,
    /// The environment for everything run inside; empty keeps the caller's.
    pub env: Vec<(String, String)>,
    /// `cgroup.procs` files every process of the container joins (chapter 5).
    pub cgroup_procs: Vec<PathBuf>,
    /// With `Namespace::User`: how IDs inside map to the host (chapter 7).
    pub user_map: Option<crate::kernel::userns::UserMap>,
}

type Result<T, E = ContainerError> = std::result::Result<T, E>;

#[derive(Debug)]
pub struct Container {
    init: Pid,
    namespaces: Vec<Namespace>,
    env: Vec<CString>,
    cgroup_procs: Vec<PathBuf>,
    /// Applied to every program run with `exec` (chapter 8).
    profile: Option<crate::kernel::hardening::Profile>,
    finished: bool,
}

impl Container {
    /// `clone()`s the container's init into the new namespaces and waits
    /// until its main process has started.
    // ANCHOR: start
    pub fn start(spec: &ContainerSpec) -> Result<Container> {
        let main = to_cstrings(&spec.main)?;
        let env = env_cstrings(&spec.env)?;
        // The child reports "started" by closing its end of this pipe.
        let (ready_read, ready_write) = pipe()?;
        // With a user namespace, the child waits until its maps are written.
        let (maps_read, maps_write) = pipe()?;
        let flags = namespaces::clone_flags(&spec.namespaces);
        flush_stdio();
        match unsafe { namespaces::clone_process(flags)? } {
            Cloned::Child => {
                drop((ready_read, maps_write));
                if spec.namespaces.contains(&Namespace::User) {
                    // Whoever writes our maps must own our /proc files;
                    // a creator that changed its uid made them root's.
                    let _ = nix::sys::prctl::set_dumpable(true);
                }
                if spec.user_map.is_some() {
                    // Until the parent writes uid_map, we are nobody here.
                    let _ = wait_for_eof(maps_read);
                    or_exit(userns::become_root());
                } else {
                    drop(maps_read);
                }
                // Into the cgroup first, so that everything init starts is
                // accounted and limited from its first instruction.
                or_exit(cgroups::join(&spec.cgroup_procs));
                // Keep no reference to the host's directory tree: a later
                // pivot_root would leave it reachable through our cwd.
                let _ = std::env::set_current_dir("/");
                init::run(&main, &env, Reporter::new(ready_write))
            }
            Cloned::Parent { child } => {
                drop((ready_write, maps_read));
                // From here on, dropping `container` kills the child.
                let container = Container {
                    init: child,
                    namespaces: spec.namespaces.clone(),
                    env,
                    cgroup_procs: spec.cgroup_procs.clone(),
                    profile: None,
                    finished: false,
                };
                if let Some(map) = &spec.user_map {
                    userns::write_maps(child, map, false)?;
                }
                drop(maps_write);
                wait_for_eof(ready_read)?;
                container.main_started()
            }
        }
    }
    // ANCHOR_END: start

    /// The ready pipe also closes when the main program could not be run
    /// at all: init then exits with 126 or 127 at once.
    fn main_started(mut self) -> Result<Container> {
        std::thread::sleep(Duration::from_millis(1));
        let status = waitpid(self.init, Some(WaitPidFlag::WNOHANG));
        if let Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) = status {
            self.finished = true;
            return Err(ContainerError::MainFailed(status_code(status)));
        }
        Ok(self)
    }

    /// The PID of the container's init, as the host sees it.
    pub fn pid(&self) -> Pid {
        self.init
    }

    pub fn namespaces(&self) -> &[Namespace] {
        &self.namespaces
    }

    /// Runs `argv` inside the container with its output going to ours, and
    /// returns its exit code (127 when the command does not exist there).
    // ANCHOR: exec
    pub fn exec(&self, argv: &[&str]) -> Result<i32> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let argv = to_cstrings(&argv)?;
        let env = self.env.clone();
        self.run_hardened(move || exec_or_exit(&argv, &env))
    }
    // ANCHOR_END: exec

    /// Runs `argv` inside the container and returns its exit code and what
    /// it printed (stdout and stderr together), for showing it indented.
    pub fn exec_output(&self, argv: &[&str]) -> Result<(i32, String)> {
        let (read_end, write_end) = pipe()?;
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let argv = to_cstrings(&argv)?;
        let env = self.env.clone();
        // The reader must run while the command writes, or a long output
        // would fill the pipe and block it: read in a thread.
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut text);
            text
        });
        let code = self.run_hardened(move || {
            let _ = nix::unistd::dup2(write_end.as_raw_fd(), 1);
            let _ = nix::unistd::dup2(write_end.as_raw_fd(), 2);
            drop(write_end);
            exec_or_exit(&argv, &env)
        });
        let text = reader.join().unwrap_or_default();
        Ok((code?, text))
    }

    /// Runs `work` in a new process inside the container's namespaces and
    /// returns its exit code. This is how the chapters apply each step from
    /// the outside, one at a time, so a learner can pause between them.
    // ANCHOR: run_inside
    pub fn run_inside<F>(&self, work: F) -> Result<i32>
    where
        F: FnOnce() -> i32,
    {
        self.run_in(&self.namespaces, work)
    }

    /// `run_inside`, joining only some of the container's namespaces.
    pub fn run_in<F>(&self, joined: &[Namespace], work: F) -> Result<i32>
    where
        F: FnOnce() -> i32,
    {
        let user = joined.contains(&Namespace::User);
        flush_stdio();
        match unsafe { fork() }.map_err(ContainerError::Fork)? {
            ForkResult::Child => {
                // 0. join the container's cgroup (docker exec does too),
                //    while the host's /sys/fs/cgroup is still what we see;
                or_exit(cgroups::join(&self.cgroup_procs));
                // 1. join the namespaces (setns), as nsenter does, with
                //    none of host root's groups (a user namespace may
                //    refuse setgroups(2) once we are in);
                if user {
                    let _ = nix::unistd::setgroups(&[]);
                }
                or_exit(namespaces::enter(self.init, &setns_order(joined)));
                let _ = std::env::set_current_dir("/");
                // In a user namespace, become its root (the container's
                // mapped uid 0), as the container's own processes are.
                if user {
                    or_exit(userns::become_root());
                }
                // 2. fork once more: a new PID namespace only holds children
                //    created after setns, never the caller itself.
                let code = match unsafe { fork() } {
                    Ok(ForkResult::Child) => {
                        signals::reset_to_default();
                        work()
                    }
                    Ok(ForkResult::Parent { child }) => wait_code(child),
                    Err(_) => 125,
                };
                init::exit_now(code)
            }
            ForkResult::Parent { child } => self.wait_step(child),
        }
    }
    // ANCHOR_END: run_inside

    /// From now on, every program run with `exec` gets this profile
    /// (capabilities, no_new_privs, seccomp) just before it starts, as
    /// every process of a Docker container does. The lab's own set-up steps
    /// (`run_inside`) are not affected.
    pub fn harden(&mut self, profile: Option<crate::kernel::hardening::Profile>) {
        self.profile = profile;
    }

    /// From now on, every process run inside joins these cgroups first
    /// (their `cgroup.procs` files), as `docker exec` joins the container's.
    pub fn join_cgroups(&mut self, procs_files: Vec<PathBuf>) {
        self.cgroup_procs = procs_files;
    }

    /// `run_inside`, with the container's profile applied first.
    pub fn run_hardened<F>(&self, work: F) -> Result<i32>
    where
        F: FnOnce() -> i32,
    {
        let profile = self.profile.clone();
        self.run_inside(move || {
            if let Some(profile) = profile {
                if let Err(err) = profile.apply() {
                    eprintln!("error: {err}");
                    return 126;
                }
            }
            work()
        })
    }

    /// Stops the container the way `docker stop` does: SIGTERM to init
    /// (which forwards it), then SIGKILL if it is still there after `grace`.
    /// Returns init's exit code.
    pub fn stop(mut self, grace: Duration) -> Result<i32> {
        let _ = init::signal_init(self.init, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        loop {
            match waitpid(self.init, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
                Ok(status) => {
                    self.finished = true;
                    return Ok(status_code(status));
                }
                Err(errno) => return Err(ContainerError::Wait(errno)),
            }
            if Instant::now() >= deadline {
                let _ = kill(self.init, Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for a helper process, giving up (and killing it) on Ctrl-C.
    fn wait_step(&self, child: Pid) -> Result<i32> {
        loop {
            match waitpid(child, None) {
                Ok(status) => return Ok(status_code(status)),
                Err(Errno::EINTR) => {
                    if let Some(signal) = signals::interrupted() {
                        let _ = kill(child, Signal::SIGKILL);
                        let _ = waitpid(child, None);
                        return Err(ContainerError::Interrupted(Interrupted(signal)));
                    }
                }
                Err(errno) => return Err(ContainerError::Wait(errno)),
            }
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.finished {
            // Killing PID 1 of a PID namespace kills every process in it.
            let _ = kill(self.init, Signal::SIGKILL);
            let _ = waitpid(self.init, None);
        }
    }
}

/// Namespaces in the order setns must join them: user first, mount last,
/// because joining it moves our root into the container and the other
/// `/proc/PID/ns/*` links must still be reachable before that.
fn setns_order(namespaces: &[Namespace]) -> Vec<Namespace> {
    use Namespace::{Mount, User};
    // The user namespace first: it owns the others, and joining it is
    // what gives the capabilities needed to join them.
    let mut order: Vec<Namespace> = namespaces
        .iter()
        .copied()
        .filter(|ns| *ns == User)
        .collect();
    order.extend(
        namespaces
            .iter()
            .copied()
            .filter(|ns| *ns != Mount && *ns != User),
    );
    if namespaces.contains(&Mount) {
        order.push(Mount);
    }
    order
}

/// In a process of our own making: on an error, say it and exit with 125
/// (the code runc and Docker use for their own failures).
fn or_exit<E: std::fmt::Display>(result: Result<(), E>) {
    if let Err(err) = result {
        eprintln!("error: {err}");
        init::exit_now(125);
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    pipe2(OFlag::O_CLOEXEC).map_err(ContainerError::Pipe)
}

fn wait_for_eof(fd: OwnedFd) -> Result<()> {
    let mut file = std::fs::File::from(fd);
    let mut buf = [0u8; 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => continue,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {
                signals::check().map_err(ContainerError::Interrupted)?;
            }
            Err(err) => return Err(ContainerError::Ready(err)),
        }
    }
}

/// execve, or why not on stderr and the shell's exit code (127, 126).
fn exec_or_exit(argv: &[CString], env: &[CString]) -> ! {
    let failure = init::execute(argv, env);
    eprintln!("error: {failure}");
    init::exit_now(failure.exit_code())
}

fn wait_code(child: Pid) -> i32 {
    loop {
        match waitpid(child, None) {
            Ok(status) => return status_code(status),
            Err(Errno::EINTR) => continue,
            Err(_) => return 125,
        }
    }
}

fn to_cstrings(args: &[String]) -> Result<Vec<CString>> {
    args.iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| ContainerError::NulByte(a.clone())))
        .collect()
}

fn env_cstrings(env: &[(String, String)]) -> Result<Vec<CString>> {
    let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    to_cstrings(&pairs)
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Interrupted(Interrupted),
    #[error("argument contains a NUL byte: {0:?}")]
    NulByte(String),
    #[error("failed to create a pipe: {0}")]
    Pipe(Errno),
    #[error("failed to fork: {0}")]
    Fork(Errno),
    #[error("failed to wait for the container: {0}")]
    Wait(Errno),
    #[error(transparent)]
    UserMap(#[from] crate::kernel::userns::UsernsError),
    #[error("the container's main process could not start (exit code {0}); see the message above")]
    MainFailed(i32),
    #[error("failed to hear from the container's init: {0}")]
    Ready(std::io::Error),
}
