//! The commands after `create`: each opens the container's directory
//! (and holds its lock), reads the status from the kernel, and acts.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill as send_signal, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::create::CreateOptions;
use super::state::{state_json, ContainerDir, ContainerState, Record, Status};
use super::{cgroups, hooks, OciError, Runtime};
use crate::kernel::process as kprocess;

fn wrong(id: &str, status: Status, wanted: &'static str) -> OciError {
    OciError::WrongStatus {
        id: id.to_string(),
        status,
        wanted,
    }
}

// ANCHOR: start
/// `start`: opens the fifo the init is blocked on; the init goes on to
/// execve the container's program. Then the poststart hooks.
pub fn start(rt: &Runtime, id: &str) -> Result<(), OciError> {
    let dir = rt.open(id)?;
    let status = dir.status()?;
    if status != Status::Created {
        return Err(wrong(
            id,
            status,
            "and only a created container can be started",
        ));
    }
    let record = dir.record()?;
    if !record.has_process {
        // Nothing can ever run in it: it stops, for delete to remove.
        let _ = send_signal(Pid::from_raw(record.pid), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while kprocess::is_alive(record.pid, record.pid_start) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        return Err(OciError::invalid(
            "process",
            "not set: this container has nothing to start",
        ));
    }
    release(&dir, &record)
}

fn release(dir: &ContainerDir, record: &Record) -> Result<(), OciError> {
    let path = dir.fifo_path();
    // Non-blocking, so that a dead init cannot leave us waiting forever.
    let fd = nix::fcntl::open(
        &path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(OciError::sys(format!("open {}", path.display())))?;
    // Safety: just opened, ours alone.
    let fifo = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut buf = [0u8; 512];
    let mut started = false;
    // After "0": why the init could not execute the program, if it could not.
    let mut failure = Vec::new();
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {
                if !kprocess::is_alive(record.pid, record.pid_start) {
                    if started {
                        break;
                    }
                    return Err(OciError::Other(format!(
                        "container {}'s init is gone; delete it and create it again",
                        record.id
                    )));
                }
                continue;
            }
            Ok(_) => {}
            Err(errno) => return Err(OciError::sys("wait for the init")(errno)),
        }
        match nix::unistd::read(fifo.as_raw_fd(), &mut buf) {
            // "0": released. The init keeps its end open, close-on-exec:
            // end of file once its program has been executed (or it died).
            Ok(0) if started => break,
            Ok(n) if n > 0 => {
                let rest = if started { &buf[..n] } else { &buf[1..n] };
                failure.extend_from_slice(rest);
                started = true;
            }
            Ok(_) => {
                return Err(OciError::Other(format!(
                    "container {}'s init closed exec.fifo without starting",
                    record.id
                )))
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(OciError::sys("read exec.fifo")(errno)),
        }
    }
    std::fs::remove_file(&path)
        .map_err(|e| OciError::Other(format!("remove {}: {e}", path.display())))?;
    if !failure.is_empty() {
        return Err(OciError::Other(format!(
            "container {}'s process did not start: {}",
            record.id,
            String::from_utf8_lossy(&failure)
        )));
    }
    let state = state_json(record, Status::Running);
    if let Err(err) = hooks::run(record.hooks.as_ref(), hooks::Point::Poststart, &state) {
        log::warn!("{err}");
    }
    Ok(())
}
// ANCHOR_END: start

pub fn state(rt: &Runtime, id: &str) -> Result<ContainerState, OciError> {
    rt.open(id)?.state()
}

/// `kill ID SIGNAL`: to the init, or with `all` to every process of the
/// container's cgroup.
pub fn kill(rt: &Runtime, id: &str, signal: Signal, all: bool) -> Result<(), OciError> {
    let dir = rt.open(id)?;
    let status = dir.status()?;
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        return Err(wrong(id, status, "so it cannot be signalled"));
    }
    let record = dir.record()?;
    if all {
        for pid in cgroups::pids(&record.cgroups) {
            let _ = send_signal(Pid::from_raw(pid), signal);
        }
        // A frozen process only dies once thawed.
        if signal == Signal::SIGKILL && status == Status::Paused {
            cgroups::set_frozen(&record.cgroups, false)?;
        }
        return Ok(());
    }
    send_signal(Pid::from_raw(record.pid), signal)
        .map_err(OciError::sys(format!("kill {}", record.pid)))
}

/// `delete`: a stopped (or created) container's cgroups, state and
/// poststop hooks; `force` kills a running one first.
pub fn delete(rt: &Runtime, id: &str, force: bool) -> Result<(), OciError> {
    let dir = match rt.open(id) {
        Err(OciError::NotFound(_)) if force => return Ok(()),
        other => other?,
    };
    let status = dir.status()?;
    let record = dir.record()?;
    match status {
        Status::Stopped => {}
        Status::Creating => return Err(wrong(id, status, "wait for its create to finish")),
        Status::Created | Status::Running | Status::Paused if force => {}
        Status::Created | Status::Running | Status::Paused => {
            return Err(OciError::Other(format!(
                "cannot delete container {id} that is not stopped: {status} (delete --force kills it)"
            )))
        }
    }
    let was_created = record.creator.is_none();
    remove_leftovers(&dir)?;
    if was_created {
        let state = state_json(&record, Status::Stopped);
        if let Err(err) = hooks::run(record.hooks.as_ref(), hooks::Point::Poststop, &state) {
            log::warn!("{err}");
        }
    }
    dir.remove()
}

/// Kills what is left of a container, waits for its init, removes its
/// cgroups: also for a create that was killed half-way.
pub(super) fn remove_leftovers(dir: &ContainerDir) -> Result<(), OciError> {
    let record = dir.record()?;
    if record.pid > 0 && kprocess::is_alive(record.pid, record.pid_start) {
        let _ = send_signal(Pid::from_raw(record.pid), Signal::SIGKILL);
    }
    cgroups::remove(&record.cgroups, &record.made_cgroups)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while record.pid > 0
        && kprocess::is_alive(record.pid, record.pid_start)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = std::fs::remove_file(dir.fifo_path());
    Ok(())
}

pub fn pause(rt: &Runtime, id: &str) -> Result<(), OciError> {
    let dir = rt.open(id)?;
    let status = dir.status()?;
    if status != Status::Running {
        return Err(wrong(
            id,
            status,
            "and only a running container can be paused",
        ));
    }
    cgroups::set_frozen(&dir.record()?.cgroups, true)
}

pub fn resume(rt: &Runtime, id: &str) -> Result<(), OciError> {
    let dir = rt.open(id)?;
    let status = dir.status()?;
    if status != Status::Paused {
        return Err(wrong(
            id,
            status,
            "and only a paused container can be resumed",
        ));
    }
    cgroups::set_frozen(&dir.record()?.cgroups, false)
}

/// `ps`: the container's processes (host PIDs), from its cgroup.
pub fn ps(rt: &Runtime, id: &str) -> Result<Vec<i32>, OciError> {
    let dir = rt.open(id)?;
    Ok(cgroups::pids(&dir.record()?.cgroups))
}

/// `list`: every container's state.
pub fn list(rt: &Runtime) -> Result<Vec<ContainerState>, OciError> {
    let mut states = Vec::new();
    for id in rt.ids()? {
        match rt.open(&id).and_then(|dir| dir.state()) {
            Ok(state) => states.push(state),
            Err(OciError::NotFound(_)) => {}
            // A create in progress has no record yet.
            Err(_) => {}
        }
    }
    Ok(states)
}

// ANCHOR: run
/// `run`: create, start, wait, delete, in one process; the exit status
/// is the container's. With `detach`, returns once it runs.
pub fn run(rt: &Runtime, id: &str, options: &CreateOptions, detach: bool) -> Result<i32, OciError> {
    let created = super::create::create_container(rt, id, options, false)?;
    let pid = created.pid;
    let mut record = created.record.clone();
    let started = release(&created.dir, &created.record);
    // The record's last write, while the container runs.
    record.creator = None;
    let started = started.and_then(|()| created.dir.save(&record));
    // Other commands (state, kill) may use the container while it runs.
    drop(created);
    if let Err(err) = started {
        let _ = delete(rt, id, true);
        let _ = waitpid(pid, None);
        return Err(err);
    }
    if detach {
        return Ok(0);
    }
    crate::kernel::signals::install_interrupt_handler();
    let code = loop {
        if let Some(signal) = crate::kernel::signals::interrupted() {
            crate::kernel::signals::clear();
            let _ = send_signal(pid, signal);
        }
        match waitpid(pid, None) {
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                break kprocess::status_code(status)
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(OciError::sys("wait for the container")(errno)),
        }
    };
    // Our child is reaped: what is left to remove is what the record
    // names (a process that outlived the init is killed with the cgroup).
    let dir = rt.open(id)?;
    cgroups::remove(&record.cgroups, &record.made_cgroups)?;
    let state = state_json(&record, Status::Stopped);
    if let Err(err) = hooks::run(record.hooks.as_ref(), hooks::Point::Poststop, &state) {
        log::warn!("{err}");
    }
    dir.remove()?;
    Ok(code)
}
// ANCHOR_END: run

/// `features` (features.md): what this runtime honours.
pub fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": super::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "iversion",
            "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime", "noexec", "noiversion",
            "nolazytime", "nomand", "norelatime", "nostrictatime", "nosuid", "private", "rbind",
            "relatime", "remount", "ro", "rprivate", "rro", "rshared", "rslave", "runbindable", "rw",
            "shared", "silent", "slave", "strictatime", "suid", "sync", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps::all().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": [if cfg!(target_arch = "aarch64") { "SCMP_ARCH_AARCH64" } else { "SCMP_ARCH_X86_64" }]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {"org.opencontainers.runtime-spec.features.runtime": "lab-runc"}
    })
}
