//! A container's supervisor, the daemonless way (as Podman's `conmon`): one
//! small process per container that owns its lifetime. It starts the
//! container, copies its output into the log, waits for it, records the
//! exit code and whether the OOM killer ended it, applies the restart
//! policy, and finally removes what the container used on the host.
//!
//! `mini-docker run -d` and `start` launch it as a process of its own, in a
//! new session, so the command that started it can exit (or be killed)
//! without touching the container. A foreground `run` is its own
//! supervisor: the same code, with the container's output on the terminal.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe2, ForkResult};

use crate::engine::dirs::LabDirs;
use crate::engine::logs::LogWriter;
use crate::engine::runtime::config::{next_backoff, RunConfig};
use crate::engine::runtime::{self, Explain, RuntimeError, Started, StdinMode, Stdio};
use crate::engine::store::{self, Record, Status, Store, StoreError};
use crate::kernel::{init, process, signals};

/// The hidden subcommand a supervisor runs as: `mini-docker __supervise ID`.
pub const SUPERVISE_COMMAND: &str = "__supervise";

/// Written by `stop` and `kill` before they signal the container: the
/// supervisor then knows the exit was asked for and does not restart it.
pub fn stop_marker(store: &Store, id: &str) -> PathBuf {
    store.run_dir(id).join("stopped-by-user")
}

/// Where the container's writable layer lives: with its record, so that
/// `start` and restarts find the files the container wrote.
pub fn layer_dir(store: &Store, id: &str) -> PathBuf {
    store.data_dir(id).join("layer")
}

/// `run -d -i`: the fifo the container reads as its stdin and `attach`
/// writes to; root's alone, beside the container's state.
pub fn stdin_fifo(store: &Store, id: &str) -> PathBuf {
    store.run_dir(id).join("stdin")
}

/// The stdin fifo of a detached `-i` container, made by its supervisor and
/// held open for writing by it for the container's whole life: an attacher
/// that leaves never gives the container end of file (Docker's
/// `StdinOnce: false`), and each start reads the same fifo.
struct StdinFifo {
    path: PathBuf,
    _held: OwnedFd,
}

impl StdinFifo {
    fn create(path: PathBuf) -> Result<StdinFifo, SupervisorError> {
        use nix::sys::stat::Mode;
        let failed = |e: nix::errno::Errno| {
            SupervisorError::Spawn(format!("make the stdin fifo {}: {e}", path.display()))
        };
        let _ = std::fs::remove_file(&path);
        nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR).map_err(failed)?;
        // Read and write: a fifo opened so never waits for the other end.
        // (std opens with O_CLOEXEC: the container gets only its own end.)
        let held = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| SupervisorError::Spawn(format!("open {}: {e}", path.display())))?;
        Ok(StdinFifo {
            _held: held.into(),
            path,
        })
    }

    /// The container's end, for one start.
    fn reader(&self) -> Result<StdinMode, SupervisorError> {
        let fd = std::fs::File::open(&self.path)
            .map_err(|e| SupervisorError::Spawn(format!("open {}: {e}", self.path.display())))?;
        Ok(StdinMode::Fd(fd.into()))
    }
}

/// How the supervised container's streams are connected.
pub enum Attach {
    /// Detached: stdout and stderr go to the log; stdin is /dev/null, or
    /// with `-i` a fifo that `attach` writes to.
    Log,
    /// A foreground `run`: the container's stdin, and its stdout and
    /// stderr logged and also copied, as they come, to these (the front
    /// end's own).
    Echo {
        stdin: StdinMode,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A foreground `run -t`: the container's end of the console socket;
    /// the front end relays the terminal, which is not logged.
    Terminal(Stdio),
}

/// Starts a supervisor for container `id` as a process of its own and
/// waits until it reports the container running (or why it is not).
// ANCHOR: spawn
pub fn spawn(id: &str) -> Result<(), SupervisorError> {
    let exe = std::env::current_exe().map_err(|e| SupervisorError::Spawn(e.to_string()))?;
    let (ready_read, ready_write) =
        pipe2(OFlag::empty()).map_err(|e| SupervisorError::Spawn(e.to_string()))?;
    let ready_fd = ready_write.as_raw_fd();
    let mut command = std::process::Command::new(exe);
    command
        .arg(SUPERVISE_COMMAND)
        .arg(id)
        .arg(ready_fd.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // A session of its own: no terminal, and Ctrl-C in ours is not its.
    // And none of our caller's descriptors: the supervisor starts every
    // container after this one (restarts, `start`), long after we exit.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            init::close_inherited_fds()?;
            nix::fcntl::fcntl(
                ready_fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )
            .map(drop)
            .map_err(std::io::Error::from)
        });
    }
    let child = command
        .spawn()
        .map_err(|e| SupervisorError::Spawn(e.to_string()))?;
    drop(ready_write);
    drop(command);
    // The supervisor writes one line: "ok", or "failed CODE ERROR". (Read a
    // line, not to the end: its logger, forked later, may still hold it.)
    let mut report = String::new();
    let _ = std::io::BufRead::read_line(
        &mut std::io::BufReader::new(std::fs::File::from(ready_read)),
        &mut report,
    );
    // Not waited for: it outlives us, and init reaps it when it exits.
    std::mem::forget(child);
    let report = report.trim();
    let failed = report.strip_prefix("failed ").and_then(|rest| {
        let (code, message) = rest.split_once(' ')?;
        Some((code.parse().ok()?, message))
    });
    match (report, failed) {
        ("ok", _) => Ok(()),
        (_, Some((code, message))) => Err(SupervisorError::Start {
            code,
            message: message.to_string(),
        }),
        ("", _) => Err(SupervisorError::Spawn(
            "the supervisor exited before starting the container".into(),
        )),
        (other, None) => Err(SupervisorError::Start {
            code: 125,
            message: other.to_string(),
        }),
    }
}
// ANCHOR_END: spawn

/// A supervisor of its own process (`mini-docker __supervise ID`): the
/// container's record, then [`supervise`]. `ready` receives "ok" once the
/// first start succeeded, or the error.
pub fn supervise_detached(
    dirs: &LabDirs,
    id: &str,
    ready: OwnedFd,
) -> Result<i32, SupervisorError> {
    let store = Store::new(dirs);
    let record = store.get(id)?;
    supervise(&store, &record, Attach::Log, Some(ready), Explain::none())
}

/// The supervisor's whole life: start, wait, record, maybe restart, clean
/// up. Returns the last exit code. `ready` receives "ok" once the first
/// start succeeded, or the error; each step of the first start goes to
/// `explain` (`run --explain`).
// ANCHOR: supervise
pub fn supervise(
    store: &Store,
    record: &Record,
    attach: Attach,
    ready: Option<OwnedFd>,
    explain: Explain,
) -> Result<i32, SupervisorError> {
    let (id, mut config) = (record.id.as_str(), record.config.clone());
    claim(store, record, &config)?;
    runtime::hold_at("claimed");
    let _ = std::fs::remove_file(stop_marker(store, id));
    let mut ready = ready;
    let stdin = match (&attach, config.interactive) {
        (Attach::Log, true) => Some(StdinFifo::create(stdin_fifo(store, id))?),
        _ => None,
    };
    let mut attach = Some(attach);
    let mut delay = Duration::ZERO;
    let mut restarts = record.state.restart_count;
    let code = loop {
        let (io, logger) = match attach.take() {
            // A terminal (-t) is relayed by the caller, not logged.
            Some(Attach::Terminal(io)) => (io, None),
            // In the foreground the output is shown and logged.
            Some(Attach::Echo {
                stdin,
                stdout,
                stderr,
            }) => {
                let (io, logger) = log_pipes(store, record, stdin, Some((stdout, stderr)))?;
                (io, Some(logger))
            }
            _ => {
                let stdin = match &stdin {
                    Some(fifo) => fifo.reader()?,
                    None => StdinMode::Null,
                };
                let (io, logger) = log_pipes(store, record, stdin, None)?;
                (io, Some(logger))
            }
        };
        let began = Instant::now();
        let explain = if restarts == record.state.restart_count {
            explain
        } else {
            Explain::none()
        };
        let started = runtime::start(
            store.dirs(),
            &config,
            explain,
            io,
            Some(&layer_dir(store, id)),
        );
        let mut started = match started {
            Ok(started) => started,
            Err(err) => {
                wait_logger(logger);
                record_failure(store, id, &err)?;
                report(&mut ready, &format!("failed {} {err}", err.exit_code()));
                return Err(SupervisorError::Runtime(err));
            }
        };
        record_running(store, id, &config.name, &started)?;
        report(&mut ready, "ok");

        let code = started.wait_forwarding_signals(!config.extra.no_sig_proxy);
        let oom_killed = started.oom_killed();
        explain.step(
            format!("the container exited with {code}; its network and cgroup go"),
            started.teardown_shell(),
        );
        // Network, cgroup and run directory go now, before the next start.
        drop(started);
        wait_logger(logger);
        let stopped = stop_marker(store, id).exists() || signals::interrupted().is_some();
        // Decided before the state is written, so that no command ever sees
        // a container that will restart as "exited" in between.
        let restart = config.restart.restarts(code, restarts, stopped);
        if restart {
            delay = next_backoff(delay, began.elapsed());
            restarts += 1;
        }
        store.update(id, |r| {
            r.state.status = if restart {
                Status::Restarting
            } else {
                Status::Exited
            };
            r.state.restart_count = restarts;
            r.state.exit_code = code;
            r.state.oom_killed = oom_killed;
            r.state.finished_at = Some(SystemTime::now());
            r.state.pid = 0;
            r.state.pid_start_time = 0;
            // docker ps shows ports only while a container runs.
            r.state.ports.clear();
            // Removed with the container: a record names only what is left,
            // and what the next start will make (the same directories).
            if !restart {
                r.state.cgroup_paths.retain(|p| p.exists());
            }
        })?;
        if !restart {
            break code;
        }
        if !sleep_unless_stopped(store, id, delay) {
            store.update(id, |r| r.state.status = Status::Exited)?;
            break code;
        }
        // As it is now: `rename` or `network connect` may have changed it.
        config = store.get(id)?.config;
    };
    if config.remove {
        // As it is now: its name may have changed.
        let now = store.get(id).unwrap_or_else(|_| record.clone());
        remove_after_run(store, &now)?;
    }
    Ok(code)
}
// ANCHOR_END: supervise

/// Pipes for stdout and stderr, and a logger process that copies them into
/// the container's json-file log. A process, not a thread: the supervisor
/// clones containers, and a fork beside a running thread could inherit a
/// lock that thread held. `echo`: where the output is also copied.
fn log_pipes(
    store: &Store,
    record: &Record,
    stdin: StdinMode,
    echo: Option<(OwnedFd, OwnedFd)>,
) -> Result<(Stdio, nix::unistd::Pid), SupervisorError> {
    let pipe = || pipe2(OFlag::O_CLOEXEC).map_err(|e| SupervisorError::Spawn(e.to_string()));
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    // `--log-driver none`: the same copier, into nothing.
    let path = match record.config.extra.log_driver {
        crate::engine::runtime::extra::LogDriver::JsonFile => store.log_path(&record.id),
        crate::engine::runtime::extra::LogDriver::None => std::path::PathBuf::from("/dev/null"),
    };
    crate::kernel::process::flush_stdio();
    match unsafe { fork() }.map_err(|e| SupervisorError::Spawn(e.to_string()))? {
        ForkResult::Child => {
            drop(out_write);
            drop(err_write);
            init::set_process_name("mini-docker-log");
            let code = match LogWriter::open(&path)
                .map(|writer| match echo {
                    Some((out, err)) => writer.echoing(out, err),
                    None => writer,
                })
                .and_then(|mut writer| writer.copy(Some(out_read), Some(err_read)))
            {
                Ok(()) => 0,
                Err(_) => 1,
            };
            init::exit_now(code)
        }
        ForkResult::Parent { child } => {
            drop(echo);
            let io = Stdio {
                stdin,
                stdout: Some(out_write),
                stderr: Some(err_write),
                console: None,
            };
            Ok((io, child))
        }
    }
}

fn wait_logger(logger: Option<nix::unistd::Pid>) {
    if let Some(pid) = logger {
        let _ = waitpid(pid, None);
    }
}

fn record_running(
    store: &Store,
    id: &str,
    name: &str,
    started: &Started,
) -> Result<(), SupervisorError> {
    let pid = started.pid().as_raw();
    let me = std::process::id() as i32;
    let ports: Vec<String> = started.published().iter().map(|p| p.to_string()).collect();
    let links = started.links();
    let cgroup_paths = started.cgroup().paths();
    store.update(id, |r| {
        r.state.status = Status::Running;
        r.state.pid = pid;
        r.state.pid_start_time = process::start_time(pid).unwrap_or(0);
        r.state.supervisor_pid = me;
        r.state.supervisor_start_time = process::start_time(me).unwrap_or(0);
        r.state.started_at = Some(SystemTime::now());
        r.state.finished_at = None;
        r.state.exit_code = 0;
        r.state.oom_killed = false;
        r.state.error.clear();
        r.state.ip = started.ip();
        r.state.links = links;
        r.state.ports = ports;
        r.state.cgroup_paths = cgroup_paths;
        r.state.run_name = name.to_string();
    })?;
    Ok(())
}

fn record_failure(store: &Store, id: &str, err: &RuntimeError) -> Result<(), SupervisorError> {
    let message = err.to_string();
    store.update(id, |r| {
        r.state.status = Status::Exited;
        r.state.exit_code = err.exit_code();
        r.state.error = message;
        r.state.finished_at = Some(SystemTime::now());
        r.state.pid = 0;
        // What the failed start made went with it; what is there now under
        // these names is not its own (a cgroup in use by another container).
        r.state.cgroup_paths.clear();
    })?;
    Ok(())
}

fn report(ready: &mut Option<OwnedFd>, message: &str) {
    if let Some(fd) = ready.take() {
        let _ = nix::unistd::write(&fd, format!("{message}\n").as_bytes());
    }
}

/// Sleeps out the back-off, waking early when `stop` or `rm` asks.
fn sleep_unless_stopped(store: &Store, id: &str, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if stop_marker(store, id).exists() || signals::interrupted().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
    }
    true
}

/// Makes this process the record's owner before anything of the
/// container exists on the host, and names the cgroups it is about to
/// make: whoever finds the owner dead can then reclaim them. What an
/// earlier owner that died left behind is reclaimed first.
fn claim(store: &Store, record: &Record, config: &RunConfig) -> Result<(), SupervisorError> {
    let me = std::process::id() as i32;
    if record.state.supervisor_pid != me && !record.owner_alive() {
        reclaim(store, &record.name, &record.state)?;
    }
    let planned = runtime::planned_cgroups(config)?;
    store.update(&record.id, |r| {
        r.state.supervisor_pid = me;
        r.state.supervisor_start_time = process::start_time(me).unwrap_or(0);
        r.state.cgroup_paths = planned;
    })?;
    Ok(())
}

/// Removes a stopped container's record, layer and log, and whatever a
/// killed supervisor could not clean up: its processes, cgroups, veth,
/// published ports and run directory.
// ANCHOR: remove
pub fn remove(store: &Store, record: &Record) -> Result<(), SupervisorError> {
    reclaim(store, &record.name, &record.state)?;
    delete(store, record)
}
// ANCHOR_END: remove

/// `--rm` once a run has ended here: `Started`'s drop has removed its
/// network, cgroups and run directory. The cgroups it could not remove
/// are still named in the state, and a network is checked again as `rm`
/// checks it; a run with neither leaves only its record.
fn remove_after_run(store: &Store, record: &Record) -> Result<(), SupervisorError> {
    let networked = record.config.network.attaches() || !record.config.extra.networks.is_empty();
    if networked || !record.state.cgroup_paths.is_empty() {
        return remove(store, record);
    }
    delete(store, record)
}

/// The record, layer and log.
fn delete(store: &Store, record: &Record) -> Result<(), SupervisorError> {
    if record.ephemeral() {
        // `--rm`: the run returns while its directory is deleted.
        store.remove_in_background(&record.id)?;
    } else {
        store.remove(&record.id)?;
    }
    Ok(())
}

/// What a dead run of container `name` may have left on the host, found
/// from its recorded state and its name: the processes in its cgroups and
/// the cgroups, its address, veth and published ports, its run directory.
// ANCHOR: reclaim
pub fn reclaim(store: &Store, name: &str, state: &store::State) -> Result<(), SupervisorError> {
    crate::kernel::cgroups::remove_leftover(&state.cgroup_paths)
        .map_err(|e| SupervisorError::Cleanup(e.to_string()))?;
    crate::engine::network::reclaim(store.dirs(), name)
        .map_err(|e| SupervisorError::Cleanup(e.to_string()))?;
    // The run directory by its name, and by the one it started under when
    // it was renamed while running.
    let mut names = vec![name];
    if !state.run_name.is_empty() && state.run_name != name {
        names.push(&state.run_name);
    }
    for name in names {
        // Unless another live run (a chapter of the same name) owns it.
        let run_dir = store.dirs().container_dir(name);
        let owner = std::fs::read_to_string(run_dir.join("owner.pid")).unwrap_or_default();
        let owner: i32 = owner.trim().parse().unwrap_or(0);
        let someone_else =
            owner > 0 && owner != std::process::id() as i32 && process::is_alive(owner, 0);
        if !someone_else {
            // Named volumes outlive their containers, as in Docker.
            crate::engine::dirs::remove_tree(&run_dir)
                .map_err(|e| SupervisorError::Cleanup(e.to_string()))?;
        }
    }
    Ok(())
}
// ANCHOR_END: reclaim

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("failed to start the supervisor: {0}")]
    Spawn(String),
    /// The supervisor could not start the container; `code` is the exit
    /// code that its start failed with (Docker's 125, 126 or 127).
    #[error("{message}")]
    Start { code: i32, message: String },
    #[error("cleanup failed: {0}")]
    Cleanup(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl SupervisorError {
    /// Docker's exit code for a container that could not be started this
    /// way: 127 when its program does not exist, 126 when it cannot be
    /// run, 125 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            SupervisorError::Start { code, .. } => *code,
            SupervisorError::Runtime(err) => err.exit_code(),
            _ => 125,
        }
    }
}
