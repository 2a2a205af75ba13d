//! `exec`: another process in a running container. It joins the init's
//! cgroup and namespaces (the mount namespace last, which also gives it
//! the container's root), and becomes its process as the init did: the
//! same user, capability and seccomp steps, applied to `--process` (a
//! process JSON, as podman passes it) or to the container's own process
//! with runc's overrides.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::kill as send_signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{Process, Spec};

use super::state::Status;
use super::{create, process, OciError, Runtime};
use crate::kernel::init::{close_fds_except, exit_now};
use crate::kernel::namespaces::Namespace;
use crate::kernel::{process as kprocess, pty};

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// `--process FILE`: the whole process as JSON.
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// `--user UID[:GID]`.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub tty: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_new_privs: bool,
    pub preserve_fds: i32,
}

/// The process to run: `--process`, or the container's own with overrides.
fn process_of(options: &ExecOptions, bundle: &Path) -> Result<Process, OciError> {
    if let Some(path) = &options.process {
        let text = std::fs::read(path)
            .map_err(|e| OciError::Other(format!("read {}: {e}", path.display())))?;
        return serde_json::from_slice(&text).map_err(|e| {
            OciError::Other(format!(
                "{} is not a valid OCI process: {e}",
                path.display()
            ))
        });
    }
    if options.args.is_empty() {
        return Err(OciError::Other(
            "exec needs a command (or --process FILE)".into(),
        ));
    }
    let spec =
        Spec::load(bundle.join("config.json")).map_err(|e| OciError::Other(e.to_string()))?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(options.args.clone()));
    let mut env = process.env().clone().unwrap_or_default();
    for pair in &options.env {
        let key = pair.split('=').next().unwrap_or("");
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(pair.clone());
    }
    process.set_env(Some(env));
    if let Some(cwd) = &options.cwd {
        process.set_cwd(cwd.clone());
    }
    process.set_terminal(Some(options.tty));
    if let Some(user) = &options.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        let parse = |n: &str| {
            n.parse::<u32>()
                .map_err(|_| OciError::Other(format!("--user {user}: use numeric UID[:GID]")))
        };
        let mut spec_user = process.user().clone();
        spec_user.set_uid(parse(uid)?);
        spec_user.set_gid(parse(gid)?);
        process.set_user(spec_user);
    }
    if !options.additional_gids.is_empty() {
        let mut spec_user = process.user().clone();
        spec_user.set_additional_gids(Some(options.additional_gids.clone()));
        process.set_user(spec_user);
    }
    if options.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    Ok(process)
}

// ANCHOR: exec
pub fn exec(rt: &Runtime, id: &str, options: &ExecOptions) -> Result<i32, OciError> {
    let record = {
        let dir = rt.open(id)?;
        let status = dir.status()?;
        if !matches!(status, Status::Running | Status::Created) {
            return Err(OciError::WrongStatus {
                id: id.to_string(),
                status,
                wanted: "and exec needs a running container",
            });
        }
        dir.record()?
    };
    let process = process_of(options, &record.bundle)?;
    let mut plan = process::Plan::from_process(&process, record.seccomp.as_ref())?;
    plan.no_new_privileges |= record.no_new_privileges;
    plan.preserve_fds = options.preserve_fds;
    let init = Pid::from_raw(record.pid);
    // The init's namespaces that differ from ours (joining our own user
    // namespace again is refused), opened before anything moves.
    let mut join = Vec::new();
    for ns in [
        Namespace::User,
        Namespace::Ipc,
        Namespace::Uts,
        Namespace::Net,
        Namespace::Pid,
        Namespace::Cgroup,
        Namespace::Mount,
    ] {
        let theirs = crate::kernel::namespaces::inode(init, ns);
        if theirs.is_ok() && theirs.ok() == crate::kernel::namespaces::own_inode(ns).ok() {
            continue;
        }
        let path = format!("/proc/{init}/ns/{}", ns.proc_name());
        let fd = nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(OciError::sys(format!("open {path}")))?;
        // Safety: just opened, ours alone.
        join.push((ns, unsafe {
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
        }));
    }
    let terminal = process.terminal() == Some(true);
    // -t without --console-socket: we play the terminal ourselves.
    let (console, relay) = match (&options.console_socket, terminal) {
        (Some(path), _) => (Some(connect(path)?), None),
        (None, true) => {
            let (ours, theirs) =
                pty::console_socket().map_err(|e| OciError::Other(e.to_string()))?;
            (Some(theirs), Some(ours))
        }
        (None, false) => (None, None),
    };
    if relay.is_some() && options.detach {
        return Err(OciError::Other(
            "exec -t --detach needs --console-socket".into(),
        ));
    }
    let (errors_read, errors_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(OciError::sys("pipe"))?;
    let own_pid_ns = match join.iter().find(|(ns, _)| *ns == Namespace::Pid) {
        Some((_, fd)) => {
            let own = std::fs::File::open("/proc/self/ns/pid")
                .map_err(|e| OciError::Other(e.to_string()))?;
            nix::sched::setns(fd.as_fd(), CloneFlags::CLONE_NEWPID)
                .map_err(OciError::sys("join the PID namespace"))?;
            Some(own)
        }
        None => None,
    };
    kprocess::flush_stdio();
    // Safety: lab-runc is single-threaded.
    let forked = unsafe { nix::unistd::fork() };
    if let Some(own) = &own_pid_ns {
        let _ = nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWPID);
    }
    let child = match forked.map_err(OciError::sys("fork"))? {
        ForkResult::Child => {
            drop(errors_read);
            drop(relay);
            let err = enter_and_exec(&record.cgroups, join, console, plan, &errors_write);
            let _ = nix::unistd::write(&errors_write, err.to_string().as_bytes());
            exit_now(127)
        }
        ForkResult::Parent { child } => child,
    };
    drop(errors_write);
    drop(console);
    drop(join);
    // EOF: the program was executed (the pipe is close-on-exec).
    let mut message = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(errors_read.as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => message.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    if !message.is_empty() {
        let _ = waitpid(child, None);
        return Err(OciError::Init(
            String::from_utf8_lossy(&message).into_owned(),
        ));
    }
    if let Some(pid_file) = &options.pid_file {
        create::write_pid_file(pid_file, child)?;
    }
    if options.detach {
        return Ok(0);
    }
    crate::kernel::signals::install_interrupt_handler();
    if let Some(socket) = relay {
        if let Ok(Some(master)) = pty::receive_master(socket.as_fd()) {
            let stdin = std::io::stdin();
            let stdout = std::io::stdout();
            let _raw = pty::RawMode::enter(stdin.as_fd()).ok().flatten();
            let _ = pty::relay(master.as_fd(), stdin.as_fd(), stdout.as_fd());
        }
    }
    loop {
        if let Some(signal) = crate::kernel::signals::interrupted() {
            crate::kernel::signals::clear();
            let _ = send_signal(child, signal);
        }
        match waitpid(child, None) {
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                return Ok(kprocess::status_code(status))
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(OciError::sys("wait for the process")(errno)),
        }
    }
}
// ANCHOR_END: exec

/// In the forked child: cgroup, namespaces, terminal, process, execve.
fn enter_and_exec(
    cgroups: &[PathBuf],
    join: Vec<(Namespace, OwnedFd)>,
    console: Option<OwnedFd>,
    mut plan: process::Plan,
    errors: &OwnedFd,
) -> OciError {
    let result = (|| -> Result<(), OciError> {
        let mut keep: Vec<i32> = vec![errors.as_raw_fd()];
        keep.extend(join.iter().map(|(_, fd)| fd.as_raw_fd()));
        keep.extend(console.iter().map(|fd| fd.as_raw_fd()));
        keep.extend(3..3 + plan.preserve_fds);
        close_fds_except(&keep).map_err(|e| OciError::Other(format!("close descriptors: {e}")))?;
        for dir in cgroups {
            std::fs::write(dir.join("cgroup.procs"), "0")
                .map_err(|e| OciError::Other(format!("join {}: {e}", dir.display())))?;
        }
        for (ns, fd) in &join {
            if *ns == Namespace::Pid {
                continue;
            }
            nix::sched::setns(fd.as_fd(), ns.clone_flag()).map_err(OciError::sys(format!(
                "join the {} namespace",
                ns.proc_name()
            )))?;
        }
        nix::unistd::chdir("/").map_err(OciError::sys("chdir /"))?;
        if let Some(console) = console {
            pty::attach_console(console.as_fd()).map_err(|e| OciError::Other(e.to_string()))?;
        }
        plan.resolve_program()?;
        plan.apply_as_root()?;
        plan.become_process()
    })();
    match result {
        Ok(()) => plan.exec(),
        Err(err) => err,
    }
}

fn connect(path: &Path) -> Result<OwnedFd, OciError> {
    std::os::unix::net::UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(|e| {
            OciError::Other(format!(
                "connect to the console socket {}: {e}",
                path.display()
            ))
        })
}
