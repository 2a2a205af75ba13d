//! `create`: the host side. The record first (naming the cgroups it is
//! about to make), then the cgroups, the fifo, and one `clone` into the
//! new namespaces; then a short conversation with the cloned init over a
//! socket pair: "go" once its id maps and cgroup are in place, the
//! prestart and createRuntime hooks when it asks for them, and "ready"
//! when it is blocked on the fifo. Then this process exits and the init
//! stays, a child of whoever adopts orphans (conmon is a subreaper).
//!
//! Every failure undoes everything; a create that is killed outright
//! leaves a record naming its creator, which the next command on that ID
//! finds dead and cleans up after.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;

use super::spec::Bundle;
use super::state::{state_json, ContainerDir, Record, Status};
use super::{cgroups, hooks, init, process, OciError, Runtime};
use crate::kernel::namespaces::{self, Cloned};
use crate::kernel::process as kprocess;
use crate::support::time::format_rfc3339;

/// `create`'s options, as runc spells them.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
}

/// A container created by this process: its init is our child until we
/// exit. The directory stays locked while this is held.
#[derive(Debug)]
pub struct Created {
    pub dir: ContainerDir,
    pub pid: Pid,
    pub record: Record,
}

/// Test hook: `LAB_RUNC_HOLD_AT=POINT` stops `create` at that point (see
/// [`HOLD_POINTS`]) for two minutes, so that a test can kill it there.
pub const HOLD_AT_ENV: &str = "LAB_RUNC_HOLD_AT";

/// The record is written, the init is cloned, the cgroups are made, the
/// init waits on the fifo (the record not yet final).
pub const HOLD_POINTS: [&str; 4] = ["record", "cloned", "cgroup", "ready"];

fn hold_at(point: &str) {
    if std::env::var_os(HOLD_AT_ENV).is_some_and(|wanted| wanted == point) {
        log::warn!("holding at {point}");
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
}

/// Messages on the socket pair between `create` and the init.
pub(super) mod msg {
    pub const GO: u8 = b'g';
    pub const JOINED: u8 = b'j';
    pub const HOOKS: u8 = b'h';
    pub const READY: u8 = b'r';
    pub const ERROR: u8 = b'e';
}

pub(super) fn send(fd: &OwnedFd, kind: u8, body: &[u8]) -> Result<(), OciError> {
    let mut message = Vec::with_capacity(body.len() + 1);
    message.push(kind);
    message.extend_from_slice(body);
    nix::unistd::write(fd, &message)
        .map(drop)
        .map_err(OciError::sys("talk to the container's init"))
}

/// One message; `None` when the other side is gone.
pub(super) fn recv(fd: &OwnedFd) -> Option<(u8, Vec<u8>)> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => return None,
            Ok(n) => return Some((buf[0], buf[1..n].to_vec())),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

// ANCHOR: create
pub fn create(rt: &Runtime, id: &str, options: &CreateOptions) -> Result<Created, OciError> {
    create_container(rt, id, options, true)
}
// ANCHOR_END: create

/// `create`; `finish` false leaves the record's last write (the creator
/// gone) to the caller: `run` makes it while the container runs.
pub(super) fn create_container(
    rt: &Runtime,
    id: &str,
    options: &CreateOptions,
    finish: bool,
) -> Result<Created, OciError> {
    let bundle = Bundle::load(&options.bundle)?;
    let spec = &bundle.spec;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| OciError::invalid("linux", "missing"))?;
    // Without `process` the container can be created, but not started.
    let has_process = spec.process().is_some();
    let process = spec.process().clone().unwrap_or_default();
    let process = &process;
    let namespaces: Vec<(LinuxNamespaceType, Option<PathBuf>)> = linux
        .namespaces()
        .iter()
        .flatten()
        .map(|ns| (ns.typ(), ns.path().clone()))
        .collect();
    let has = |kind| namespaces.iter().any(|(t, _)| *t == kind);
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(OciError::invalid(
            "hostname",
            "setting it needs a uts namespace in linux.namespaces",
        ));
    }
    if process.terminal() == Some(true) && options.console_socket.is_none() {
        return Err(OciError::Other(
            "process.terminal is true: give --console-socket to receive the terminal".into(),
        ));
    }
    let mut plan = process::Plan::from_process(process, linux.seccomp().as_ref())?;
    plan.preserve_fds = options.preserve_fds;
    let dir = rt.new_container(id)?;
    // Planned once the ID is ours: taking it over from a killed create
    // may just have removed directories that the plan must make again.
    let cgroup_plan = match cgroups::plan(linux.cgroups_path().as_deref(), id, rt.systemd_cgroup) {
        Ok(plan) => plan,
        Err(err) => {
            let _ = dir.remove();
            return Err(err);
        }
    };
    let me = std::process::id() as i32;
    let mut record = Record {
        id: id.to_string(),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        pid: 0,
        pid_start: 0,
        creator: Some((me, kprocess::start_time(me).unwrap_or(0))),
        created: format_rfc3339(std::time::SystemTime::now()),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroups: cgroup_plan.leaves(),
        made_cgroups: cgroup_plan.missing.clone(),
        hooks: spec.hooks().clone(),
        seccomp: linux.seccomp().clone(),
        no_new_privileges: plan.no_new_privileges,
        has_process,
    };
    let mut child = None;
    let made = (|| {
        dir.save(&record)?;
        hold_at("record");
        // Made before the clone: the init binds them into its /sys/fs/cgroup.
        cgroups::create(&cgroup_plan)?;
        let _warm = cgroups::warm_up(&cgroup_plan);
        let pid = start_init(
            &bundle,
            &dir,
            &cgroup_plan,
            &namespaces,
            plan,
            options,
            &mut record,
            &mut child,
        )?;
        if finish {
            record.creator = None;
            dir.save(&record)?;
        }
        if let Some(pid_file) = &options.pid_file {
            write_pid_file(pid_file, pid)?;
        }
        Ok(pid)
    })();
    match made {
        Ok(pid) => Ok(Created { dir, pid, record }),
        Err(err) => {
            if let Some(pid) = child {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
            }
            let _ = cgroups::remove(&record.cgroups, &record.made_cgroups);
            let _ = dir.remove();
            Err(err)
        }
    }
}

/// The fifo, the namespaces to join, the clone, and the conversation.
#[allow(clippy::too_many_arguments)]
fn start_init(
    bundle: &Bundle,
    dir: &ContainerDir,
    cgroup_plan: &cgroups::Plan,
    namespaces: &[(LinuxNamespaceType, Option<PathBuf>)],
    plan: process::Plan,
    options: &CreateOptions,
    record: &mut Record,
    child: &mut Option<Pid>,
) -> Result<Pid, OciError> {
    let spec = &bundle.spec;
    let fifo_path = dir.fifo_path();
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o622))
        .map_err(OciError::sys(format!("mkfifo {}", fifo_path.display())))?;
    // The init opens it for writing as the container's root, which a
    // user namespace maps to another user of the host (mode 0622 as runc's,
    // after the umask).
    nix::sys::stat::fchmodat(
        None,
        &fifo_path,
        Mode::from_bits_truncate(0o622),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(OciError::sys(format!("chmod {}", fifo_path.display())))?;
    if let Some(root) = container_root(spec) {
        nix::unistd::chown(
            &fifo_path,
            Some(nix::unistd::Uid::from_raw(root.0)),
            Some(nix::unistd::Gid::from_raw(root.1)),
        )
        .map_err(OciError::sys(format!("chown {}", fifo_path.display())))?;
    }
    // The init reopens this after its pivot_root, through /proc/self/fd.
    let fifo = open_owned(&fifo_path, OFlag::O_PATH | OFlag::O_CLOEXEC)?;
    let console = match &options.console_socket {
        Some(path) => Some(connect_console(path)?),
        None => None,
    };
    let mut join = Vec::new();
    let mut pid_ns = None;
    let mut flags = CloneFlags::empty();
    let mut new_cgroupns = false;
    for (kind, path) in namespaces {
        match (kind, path) {
            (LinuxNamespaceType::Pid, Some(path)) => pid_ns = Some(open_ns(path, *kind)?),
            (kind, Some(path)) => join.push((*kind, open_ns(path, *kind)?)),
            // A new cgroup namespace is made once the init is in its
            // cgroup, so that the cgroup becomes the namespace's root.
            (LinuxNamespaceType::Cgroup, None) => new_cgroupns = true,
            (kind, None) => flags |= CloneFlags::from_bits_truncate(*kind as i32),
        }
    }
    let new_userns = flags.contains(CloneFlags::CLONE_NEWUSER);
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(OciError::sys("socketpair"))?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| OciError::invalid("linux", "missing"))?;
    let context = init::Context {
        id: record.id.clone(),
        bundle,
        sync: Some(theirs),
        fifo,
        fd_dir: None,
        join,
        console,
        plan,
        cgroups: cgroup_plan.leaves(),
        cgroup_version: cgroup_plan.version,
        new_cgroupns,
        new_userns,
        new_mntns: flags.contains(CloneFlags::CLONE_NEWNS)
            || namespaces
                .iter()
                .any(|(t, _)| *t == LinuxNamespaceType::Mount),
        no_pivot: options.no_pivot,
        no_new_keyring: options.no_new_keyring,
        hostname: spec.hostname().clone(),
        domainname: spec.domainname().clone(),
        sysctl: linux.sysctl().clone().unwrap_or_default(),
        readonly_root: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        setgroups_denied: false,
        has_process: record.has_process,
    };
    // Joining a PID namespace only moves our future children: join it
    // for the clone, then come back.
    let own_pid_ns = match &pid_ns {
        Some(ns) => {
            let own = open_owned(
                Path::new("/proc/self/ns/pid"),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            )?;
            nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWPID)
                .map_err(OciError::sys("join the PID namespace"))?;
            Some(own)
        }
        None => None,
    };
    kprocess::flush_stdio();
    // Safety: lab-runc is single-threaded; the child only runs init::run.
    let cloned = unsafe { namespaces::clone_process(flags) };
    // The child never comes back from init::run: nothing below runs in it.
    if let Ok(Cloned::Child) = cloned {
        drop(ours);
        init::run(context)
    }
    if let Some(own) = &own_pid_ns {
        nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWPID)
            .map_err(OciError::sys("return to our PID namespace"))?;
    }
    let Cloned::Parent { child: pid } = cloned? else {
        unreachable!("the child runs init::run")
    };
    *child = Some(pid);
    drop(context);
    record.pid = pid.as_raw();
    record.pid_start = kprocess::start_time(pid.as_raw()).unwrap_or(0);
    hold_at("cloned");
    if new_userns {
        write_id_maps(pid, linux)?;
    }
    // "go" first: on cgroup v1 the first write to a cgroup.procs waits
    // for an RCU grace period (milliseconds), and the init builds its
    // filesystem meanwhile. It waits for "joined" before it runs anything
    // else (a hook, its program), and before a cgroup namespace is made.
    send(&ours, msg::GO, b"")?;
    // The record names the init, and the cgroup is limited and joined,
    // meanwhile.
    dir.save(record)?;
    cgroups::apply(
        cgroup_plan,
        linux.resources().as_ref(),
        linux.devices().as_deref().unwrap_or(&[]),
    )?;
    hold_at("cgroup");
    cgroups::join(&record.cgroups, pid.as_raw())?;
    // With the state the init's createContainer hooks read.
    let json = serde_json::to_vec(&state_json(record, Status::Creating))
        .map_err(|e| OciError::Other(e.to_string()))?;
    if let Err(err) = send(&ours, msg::JOINED, &json) {
        // Gone already: it said why.
        return Err(match recv(&ours) {
            Some((msg::ERROR, text)) => OciError::Init(String::from_utf8_lossy(&text).into_owned()),
            _ => err,
        });
    }
    loop {
        match recv(&ours) {
            Some((msg::HOOKS, _)) => {
                let state = state_json(record, Status::Creating);
                hooks::run(record.hooks.as_ref(), hooks::Point::Prestart, &state)?;
                hooks::run(record.hooks.as_ref(), hooks::Point::CreateRuntime, &state)?;
                let json =
                    serde_json::to_vec(&state).map_err(|e| OciError::Other(e.to_string()))?;
                send(&ours, msg::GO, &json)?;
            }
            Some((msg::READY, _)) => break,
            Some((msg::ERROR, text)) => {
                return Err(OciError::Init(String::from_utf8_lossy(&text).into_owned()))
            }
            _ => {
                return Err(OciError::Init(
                    "the container's init ended during its set-up".into(),
                ))
            }
        }
    }
    hold_at("ready");
    Ok(pid)
}

/// The host's uid and gid for the container's root, when a user
/// namespace maps them.
fn container_root(spec: &oci_spec::runtime::Spec) -> Option<(u32, u32)> {
    let linux = spec.linux().as_ref()?;
    let find = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .find_map(|m| (m.container_id() == 0 && m.size() > 0).then_some(m.host_id()))
    };
    Some((find(linux.uid_mappings())?, find(linux.gid_mappings())?))
}

/// `/proc/PID/uid_map` and `gid_map`, every line of the configuration.
fn write_id_maps(pid: Pid, linux: &oci_spec::runtime::Linux) -> Result<(), OciError> {
    let lines = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| -> String {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect()
    };
    for (file, text) in [
        ("gid_map", lines(linux.gid_mappings())),
        ("uid_map", lines(linux.uid_mappings())),
    ] {
        if text.is_empty() {
            continue;
        }
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, &text)
            .map_err(|e| OciError::Other(format!("write {:?} to {path}: {e}", text.trim())))?;
    }
    Ok(())
}

fn open_owned(path: &Path, flags: OFlag) -> Result<OwnedFd, OciError> {
    let fd = open(path, flags, Mode::empty())
        .map_err(OciError::sys(format!("open {}", path.display())))?;
    // Safety: a descriptor open just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_ns(path: &Path, kind: LinuxNamespaceType) -> Result<OwnedFd, OciError> {
    open_owned(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .map_err(|e| OciError::invalid(&format!("linux.namespaces[{kind}].path"), e.to_string()))
}

fn connect_console(path: &Path) -> Result<OwnedFd, OciError> {
    let stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        OciError::Other(format!(
            "connect to the console socket {}: {e}",
            path.display()
        ))
    })?;
    Ok(OwnedFd::from(stream))
}

/// The PID, written beside and renamed into place (podman reads it at once).
pub fn write_pid_file(path: &Path, pid: Pid) -> Result<(), OciError> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    Ok(crate::support::fs::write_replacing(
        &path,
        pid.to_string().as_bytes(),
    )?)
}
