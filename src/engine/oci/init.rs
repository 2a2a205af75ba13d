//! The container's side of `create`: what the cloned init does, in the
//! new namespaces, until it blocks on `exec.fifo`, and what it does once
//! `start` opens the fifo (the startContainer hooks, the process's user,
//! capabilities and seccomp filter, execve). Until it is ready it dies
//! with `create` (PR_SET_PDEATHSIG), and reports any failure over the
//! socket pair so that `create` can say what went wrong and undo it.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use oci_spec::runtime::LinuxNamespaceType;

use super::create::{msg, recv, send};
use super::spec::Bundle;
use super::state::ContainerState;
use super::{hooks, process, rootfs, OciError};
use crate::kernel::init::{close_fds_except, exit_now};

/// Everything the init needs, prepared by `create` before the clone.
pub(super) struct Context<'a> {
    pub id: String,
    pub bundle: &'a Bundle,
    /// The socket pair to `create`; closed once the init is ready.
    pub sync: Option<OwnedFd>,
    /// `exec.fifo`, opened O_PATH: reachable after the pivot.
    pub fifo: OwnedFd,
    /// Our /proc/self/fd on the host's /proc, opened before the root
    /// changes: the fifo is reopened for writing through it, whether or
    /// not the container mounts a /proc. Close-on-exec, never inherited.
    pub fd_dir: Option<OwnedFd>,
    /// Namespaces to join by path (not PID: `create` joined that).
    pub join: Vec<(LinuxNamespaceType, OwnedFd)>,
    pub console: Option<OwnedFd>,
    pub plan: process::Plan,
    pub cgroups: Vec<PathBuf>,
    pub cgroup_version: u8,
    pub new_cgroupns: bool,
    pub new_userns: bool,
    pub new_mntns: bool,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: HashMap<String, String>,
    pub readonly_root: bool,
    pub setgroups_denied: bool,
    pub has_process: bool,
}

/// Signals that end a created (not yet started) container. As the first
/// process of a PID namespace the init would ignore them without a handler.
const ENDING: [Signal; 8] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGPIPE,
];

extern "C" fn end_now(signal: libc::c_int) {
    // Safety: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + signal) }
}

fn handle_ending_signals(handler: SigHandler) {
    let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    for signal in ENDING {
        // Safety: the handler only calls _exit.
        unsafe {
            let _ = sigaction(signal, &action);
        }
    }
}

/// Runs in the cloned child; never returns.
pub(super) fn run(mut cx: Context) -> ! {
    let Some(sync) = cx.sync.take() else {
        exit_now(1)
    };
    match prepare(&mut cx, &sync) {
        Ok(state) => {
            let _ = send(&sync, msg::READY, b"");
            drop(sync);
            let (fifo, err) = wait_and_exec(&mut cx, state);
            // Its stderr is the container's: the message goes to `start`,
            // which reads the fifo until it closes.
            if let Some(fifo) = fifo {
                let _ = nix::unistd::write(&fifo, err.to_string().as_bytes());
            }
            exit_now(127)
        }
        Err(err) => {
            let _ = send(&sync, msg::ERROR, err.to_string().as_bytes());
            exit_now(1)
        }
    }
}

// ANCHOR: init
/// Until the container is complete: namespaces, filesystem, hooks, then
/// the last checks of the process; returns the state for the hooks.
fn prepare(cx: &mut Context, sync: &OwnedFd) -> Result<ContainerState, OciError> {
    let mut keep: Vec<i32> = vec![sync.as_raw_fd(), cx.fifo.as_raw_fd()];
    keep.extend(cx.join.iter().map(|(_, fd)| fd.as_raw_fd()));
    keep.extend(cx.console.iter().map(|fd| fd.as_raw_fd()));
    keep.extend(3..3 + cx.plan.preserve_fds);
    close_fds_except(&keep)
        .map_err(|e| OciError::Other(format!("close inherited descriptors: {e}")))?;
    let fd_dir = nix::fcntl::open(
        "/proc/self/fd",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(OciError::sys("open /proc/self/fd"))?;
    // Safety: just opened, ours alone.
    cx.fd_dir = Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd_dir) });
    // Die with `create` until the container is ready. Had it died
    // already, the socket pair is closed and "go" never comes.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(OciError::sys("prctl(PR_SET_PDEATHSIG)"))?;
    // "go": the id maps are written and we are in the cgroup.
    match recv(sync) {
        Some((msg::GO, _)) => {}
        _ => exit_now(1),
    }
    if cx.new_userns {
        // Root of the new namespace where 0 is mapped; where it is not,
        // the process's own user is set before execve anyway.
        let root_gid = nix::unistd::Gid::from_raw(0);
        let root_uid = nix::unistd::Uid::from_raw(0);
        match nix::unistd::setresgid(root_gid, root_gid, root_gid) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
            Err(errno) => return Err(OciError::sys("setresgid 0")(errno)),
        }
        match nix::unistd::setresuid(root_uid, root_uid, root_uid) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
            Err(errno) => return Err(OciError::sys("setresuid 0")(errno)),
        }
    }
    // Joined by path: the mount namespace last, it changes our root.
    cx.join
        .sort_by_key(|(kind, _)| *kind == LinuxNamespaceType::Mount);
    for (kind, fd) in &cx.join {
        nix::sched::setns(fd.as_fd(), CloneFlags::from_bits_truncate(*kind as i32))
            .map_err(OciError::sys(format!("join the {kind} namespace")))?;
    }
    cx.join.clear();
    // In its cgroup before a cgroup namespace is made (the cgroup becomes
    // its root); otherwise the filesystem is built while `create` moves us.
    let mut state = None;
    if cx.new_cgroupns {
        state = Some(wait_joined(sync)?);
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(OciError::sys("unshare the cgroup namespace"))?;
    }
    let spec = &cx.bundle.spec;
    let rootfs = &cx.bundle.rootfs;
    if cx.new_mntns {
        rootfs::prepare_root(spec, rootfs)?;
        let mounts = rootfs::MountContext {
            rootfs,
            bundle: &cx.bundle.dir,
            cgroups: &cx.cgroups,
            cgroup_version: cx.cgroup_version,
            new_cgroupns: cx.new_cgroupns,
            userns: cx.new_userns,
        };
        rootfs::mount_all(spec, &mounts)?;
        rootfs::create_devices(spec, rootfs, cx.new_userns)?;
    }
    let state = match state {
        Some(state) => state,
        None => wait_joined(sync)?,
    };
    // prestart and createRuntime run on the host, when there are any;
    // then ours.
    let on_host = spec.hooks().as_ref().is_some_and(|h| {
        !hooks::Point::Prestart.of(h).is_empty() || !hooks::Point::CreateRuntime.of(h).is_empty()
    });
    if on_host {
        send(sync, msg::HOOKS, b"")?;
        match recv(sync) {
            Some((msg::GO, _)) => {}
            _ => exit_now(1),
        }
    }
    hooks::run(spec.hooks().as_ref(), hooks::Point::CreateContainer, &state)?;
    if cx.new_mntns {
        rootfs::enter(rootfs, cx.no_pivot)?;
        rootfs::apply_root_propagation(spec)?;
    } else {
        nix::unistd::chroot(rootfs).map_err(OciError::sys("chroot"))?;
        nix::unistd::chdir("/").map_err(OciError::sys("chdir /"))?;
    }
    if let Some(name) = cx.hostname.as_deref().filter(|h| !h.is_empty()) {
        crate::kernel::hostname::set(name).map_err(|e| OciError::Other(e.to_string()))?;
    }
    if let Some(name) = cx.domainname.as_deref().filter(|h| !h.is_empty()) {
        // Safety: a buffer and its length.
        let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        nix::errno::Errno::result(ret).map_err(OciError::sys(format!("setdomainname {name}")))?;
    }
    for (key, value) in &cx.sysctl {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value)
            .map_err(|e| OciError::Other(format!("sysctl {key}={value}: {e}")))?;
    }
    if !cx.no_new_keyring {
        join_session_keyring(&cx.id);
    }
    if let Some(console) = cx.console.take() {
        attach_console(console, spec)?;
    }
    rootfs::mask_and_protect(spec)?;
    let _ = std::fs::create_dir_all(&cx.plan.cwd);
    if cx.readonly_root {
        rootfs::read_only_root()?;
    }
    cx.plan.setgroups_denied = cx.setgroups_denied;
    if cx.has_process {
        cx.plan.resolve_program()?;
        cx.plan.apply_as_root()?;
    }
    // Ready: from here on the init outlives `create`, and a signal to
    // the created container ends it.
    handle_ending_signals(SigHandler::Handler(end_now));
    nix::sys::prctl::set_pdeathsig(None).map_err(OciError::sys("prctl(PR_SET_PDEATHSIG)"))?;
    Ok(state)
}
// ANCHOR_END: init

/// Until `create` has moved us into the container's cgroup; it sends
/// the state our hooks read.
fn wait_joined(sync: &OwnedFd) -> Result<ContainerState, OciError> {
    match recv(sync) {
        Some((msg::JOINED, json)) => {
            serde_json::from_slice(&json).map_err(|e| OciError::Other(e.to_string()))
        }
        _ => exit_now(1),
    }
}

// ANCHOR: wait
/// Blocks until `start` opens the fifo, then becomes the process.
fn wait_and_exec(cx: &mut Context, mut state: ContainerState) -> (Option<OwnedFd>, OciError) {
    // Opening a fifo for writing blocks until a reader opens it.
    let name = cx.fifo.as_raw_fd().to_string();
    let Some(fd_dir) = cx.fd_dir.take() else {
        return (
            None,
            OciError::Other("no /proc/self/fd to reopen exec.fifo through".into()),
        );
    };
    let opened = loop {
        match nix::fcntl::openat(
            Some(fd_dir.as_raw_fd()),
            name.as_str(),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other,
        }
    };
    drop(fd_dir);
    let fifo = match opened {
        // Safety: just opened, ours alone.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
        Err(errno) => return (None, OciError::sys("open exec.fifo")(errno)),
    };
    // It stays open, close-on-exec, so that `start` sees it close when the
    // program has been executed.
    let _ = nix::unistd::write(&fifo, b"0");
    handle_ending_signals(SigHandler::SigDfl);
    state.status = super::state::Status::Running;
    if let Err(err) = hooks::run(
        cx.bundle.spec.hooks().as_ref(),
        hooks::Point::StartContainer,
        &state,
    ) {
        return (Some(fifo), err);
    }
    if let Err(err) = cx.plan.become_process() {
        return (Some(fifo), err);
    }
    (Some(fifo), cx.plan.exec())
}
// ANCHOR_END: wait

/// A session keyring of the container's own (runc's default), so that
/// keys are not shared with the host's session.
fn join_session_keyring(id: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    if let Ok(name) = CString::new(id) {
        // Safety: a NUL-terminated name. Failure (no keyctl) is harmless.
        unsafe {
            libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr());
        }
    }
}

/// `process.terminal`: a pty from the container's own /dev/ptmx, its
/// master sent over the console socket, its slave our terminal and stdio
/// and bound onto /dev/console.
fn attach_console(socket: OwnedFd, spec: &oci_spec::runtime::Spec) -> Result<(), OciError> {
    crate::kernel::pty::attach_console(socket.as_fd())
        .map_err(|e| OciError::Other(e.to_string()))?;
    let slave = std::fs::read_link("/proc/self/fd/0")
        .map_err(|e| OciError::Other(format!("find the terminal's name: {e}")))?;
    if let Some(size) = spec.process().as_ref().and_then(|p| p.console_size()) {
        let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
        let _ = crate::kernel::pty::set_window_size(
            stdin,
            crate::kernel::pty::WindowSize {
                rows: size.height() as u16,
                cols: size.width() as u16,
            },
        );
    }
    let console = std::path::Path::new("/dev/console");
    if std::path::Path::new("/dev").is_dir() {
        if !console.exists() {
            let _ = std::fs::File::create(console);
        }
        nix::mount::mount(
            Some(&slave),
            console,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(OciError::sys(format!(
            "bind {} onto /dev/console",
            slave.display()
        )))?;
    }
    Ok(())
}
