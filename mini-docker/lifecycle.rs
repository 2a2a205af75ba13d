//! The lifecycle commands: create, start, ps, logs, stop, kill, pause,
//! unpause, restart, rm, inspect, exec, system prune. Each reads the
//! container's record, checks the state it is really in, and acts on the
//! kernel objects the record names (PIDs, cgroups), never on guesses.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use clap::Args;
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::runtime::config::{self, RunConfig};
use container_lab::engine::runtime::exec::ExecRequest;
use container_lab::engine::store::{self, Record, Status, Store};
use container_lab::engine::{logs, supervisor};
use container_lab::kernel::{cgroups, process};

use crate::present;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// An error Docker's client reports with exit code 1 (the daemon said no),
/// as opposed to 125 (mini-docker itself failed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn refused(message: impl Into<String>) -> anyhow::Error {
    Refused(message.into()).into()
}

fn store() -> Store {
    Store::new(&LabDirs::from_env())
}

fn find(store: &Store, key: &str) -> anyhow::Result<Record> {
    store.get(key).map_err(|e| refused(e.to_string()))
}

fn run_config(record: &Record) -> anyhow::Result<RunConfig> {
    Ok(record.config.clone())
}

/// `start`: launches a supervisor for each container that is not running.
pub fn start(containers: &[String], attach: bool) -> anyhow::Result<i32> {
    let store = store();
    let mut code = 0;
    for key in containers {
        let record = find(&store, key)?;
        if !record.effective_status().is_running() {
            supervisor::spawn(&record.id).map_err(|e| refused(e.to_string()))?;
        }
        if attach {
            code = follow_until_exit(&store, &record.id, None)?;
        } else {
            println!("{key}");
        }
    }
    Ok(code)
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    quiet: bool,
}

pub fn ps(args: &PsArgs) -> anyhow::Result<i32> {
    let records: Vec<Record> = store()
        .list()?
        .into_iter()
        .filter(|r| args.all || r.effective_status().is_running())
        .collect();
    print!(
        "{}",
        present::ps_table(&records, SystemTime::now(), args.quiet)
    );
    Ok(0)
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of lines to show from the end of the logs (or "all")
    #[arg(short = 'n', long, default_value = "all", value_parser = parse_tail)]
    tail: Tail,
    container: String,
}

/// `--tail N`, or all lines.
#[derive(Debug, Clone, Copy)]
struct Tail(Option<usize>);

fn parse_tail(text: &str) -> Result<Tail, String> {
    if text == "all" {
        return Ok(Tail(None));
    }
    text.parse()
        .map(|n| Tail(Some(n)))
        .map_err(|_| format!("invalid --tail {text:?}: use a number or all"))
}

pub fn logs(args: &LogsArgs) -> anyhow::Result<i32> {
    let store = store();
    let record = find(&store, &args.container)?;
    let path = store.log_path(&record.id);
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    if args.follow {
        let id = record.id.clone();
        logs::follow(
            &path,
            args.tail.0,
            || running(&store, &id),
            |entry| {
                let _ = logs::print_entry(entry, &mut std::io::stdout(), &mut std::io::stderr());
            },
        )?;
    } else {
        for entry in logs::read(&path, args.tail.0)? {
            logs::print_entry(&entry, &mut out, &mut err)?;
        }
    }
    Ok(0)
}

fn running(store: &Store, id: &str) -> bool {
    store
        .get(id)
        .map(|r| r.effective_status().is_running())
        .unwrap_or(false)
}

/// Prints the log as it grows until the container has stopped; returns
/// its exit code (`start -a`).
fn follow_until_exit(store: &Store, id: &str, tail: Option<usize>) -> anyhow::Result<i32> {
    logs::follow(
        &store.log_path(id),
        tail,
        || running(store, id),
        |entry| {
            let _ = logs::print_entry(entry, &mut std::io::stdout(), &mut std::io::stderr());
        },
    )?;
    Ok(store.get(id)?.effective_state().exit_code)
}

/// `stop`: SIGTERM to the container's first process, SIGKILL after the
/// timeout, then wait until the supervisor has recorded the exit.
// ANCHOR: stop
pub fn stop(containers: &[String], timeout: Option<u32>) -> anyhow::Result<i32> {
    let store = store();
    for key in containers {
        let record = find(&store, key)?;
        stop_one(&store, &record, timeout)?;
        println!("{key}");
    }
    Ok(0)
}

fn stop_one(store: &Store, record: &Record, timeout: Option<u32>) -> anyhow::Result<()> {
    if !record.effective_status().is_running() {
        return Ok(());
    }
    let timeout = Duration::from_secs(
        match timeout {
            Some(t) => t,
            None => run_config(record)?.stop_timeout,
        }
        .into(),
    );
    // First the marker: the supervisor must not restart what we stop.
    mark_stopped(store, &record.id)?;
    // Then signal whichever first process is there (a restart may have
    // just begun), until the supervisor records the exit.
    let mut signalled: Option<(i32, Instant)> = None;
    let give_up = Instant::now() + timeout + Duration::from_secs(30);
    loop {
        let state = store.get(&record.id)?.effective_state();
        if !state.status.is_running() {
            break;
        }
        let alive = state.pid > 0 && process::is_alive(state.pid, state.pid_start_time);
        match signalled {
            _ if !alive => {}
            Some((pid, at)) if pid == state.pid => {
                if at.elapsed() >= timeout {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            _ => {
                let _ = kill(Pid::from_raw(state.pid), Signal::SIGTERM);
                // A frozen process cannot act on SIGTERM: thaw it (Docker does too).
                let _ = cgroups::set_frozen(&state.cgroup_paths, false);
                signalled = Some((state.pid, Instant::now()));
            }
        }
        if Instant::now() > give_up {
            bail!(
                "the container {} did not stop; its supervisor does not answer",
                record.name
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_for_supervisor(store, &record.id)
}
// ANCHOR_END: stop

fn mark_stopped(store: &Store, id: &str) -> anyhow::Result<()> {
    let marker = supervisor::stop_marker(store, id);
    std::fs::write(&marker, b"").with_context(|| format!("failed to write {}", marker.display()))
}

/// Waits (up to 30 s) until the record is no longer running and its
/// supervisor, which removes the cgroup and the network after writing the
/// exit, has gone too.
fn wait_for_supervisor(store: &Store, id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let record = store.get(id)?;
        let state = &record.state;
        let supervisor_alive = state.supervisor_pid > 0
            && process::is_alive(state.supervisor_pid, state.supervisor_start_time);
        if !record.effective_status().is_running() && !supervisor_alive {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the container {id} did not stop within 30 seconds");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `kill -s SIGNAL`: only a running container can be signalled.
pub fn kill_containers(containers: &[String], signal: &str) -> anyhow::Result<i32> {
    let signal = parse_signal(signal)?;
    let store = store();
    for key in containers {
        let record = find(&store, key)?;
        let state = record.effective_state();
        if !state.status.is_running() || state.pid == 0 {
            return Err(refused(format!(
                "cannot kill container {key}: it is not running"
            )));
        }
        // A signal meant to end it is a stop: no restart after it.
        if matches!(
            signal,
            Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT
        ) {
            mark_stopped(&store, &record.id)?;
        }
        kill(Pid::from_raw(state.pid), signal)
            .with_context(|| format!("failed to signal {key}"))?;
        println!("{key}");
    }
    Ok(0)
}

fn parse_signal(text: &str) -> anyhow::Result<Signal> {
    let upper = text.to_ascii_uppercase();
    if let Ok(n) = upper.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| refused(format!("invalid signal: {text}")));
    }
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| {
        refused(format!(
            "invalid signal: {text}; use a name such as TERM, KILL, HUP or a number"
        ))
    })
}

/// `pause` / `unpause`: the cgroup freezer, then the recorded status.
// ANCHOR: pause
pub fn pause(containers: &[String], frozen: bool) -> anyhow::Result<i32> {
    let store = store();
    for key in containers {
        let record = find(&store, key)?;
        let status = record.effective_status();
        match (frozen, status) {
            (true, Status::Running) | (false, Status::Paused) => {}
            (true, Status::Paused) => {
                return Err(refused(format!("container {key} is already paused")))
            }
            (false, Status::Running) => {
                return Err(refused(format!("container {key} is not paused")))
            }
            _ => return Err(refused(format!("container {key} is not running"))),
        }
        let guard = store.lock(&record.id)?;
        cgroups::set_frozen(&record.state.cgroup_paths, frozen)?;
        let mut current = guard.read()?;
        current.state.status = if frozen {
            Status::Paused
        } else {
            Status::Running
        };
        guard.write(&current)?;
        println!("{key}");
    }
    Ok(0)
}
// ANCHOR_END: pause

pub fn restart(containers: &[String], timeout: Option<u32>) -> anyhow::Result<i32> {
    let store = store();
    for key in containers {
        let record = find(&store, key)?;
        stop_one(&store, &record, timeout)?;
        supervisor::spawn(&record.id).map_err(|e| refused(e.to_string()))?;
        println!("{key}");
    }
    Ok(0)
}

/// `rm [-f]`: a running container only with -f (killed first). What a
/// run that died left (cgroups, network, run directory) goes with it; a
/// record that cannot be read only with -f, and with what can be found.
pub fn rm(containers: &[String], force: bool) -> anyhow::Result<i32> {
    let store = store();
    for key in containers {
        let record = match store.get(key) {
            Ok(record) => record,
            Err(store::StoreError::Broken { id, .. }) if force => {
                remove_broken(&store, &id)?;
                println!("{key}");
                continue;
            }
            Err(err) => return Err(refused(err.to_string())),
        };
        let record = settle(&store, record)?;
        let state = record.effective_state();
        if state.status.is_running() {
            if !force {
                return Err(refused(format!(
                    "cannot remove container {key}: it is {}; stop it first or use rm -f",
                    state.status
                )));
            }
            mark_stopped(&store, &record.id)?;
            let _ = cgroups::set_frozen(&state.cgroup_paths, false);
            if state.pid > 0 && process::is_alive(state.pid, state.pid_start_time) {
                let _ = kill(Pid::from_raw(state.pid), Signal::SIGKILL);
            }
            wait_for_supervisor(&store, &record.id)?;
        }
        let record = store.get(&record.id)?;
        if let Err(err) = supervisor::remove(&store, &record) {
            let message = format!("{}: {err}", store::CLEANUP_FAILED);
            let _ = store.update(&record.id, |r| r.state.error = message.clone());
            bail!("removing {key} failed: {err}");
        }
        println!("{key}");
    }
    Ok(0)
}

/// A record whose owner is alive but not running the container is being
/// started (or is finishing): waits until it runs or its owner is gone,
/// so that rm never races a start for the kernel objects.
fn settle(store: &Store, record: Record) -> anyhow::Result<Record> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut record = record;
    while !record.effective_status().is_running() && record.owner_alive() {
        if Instant::now() > deadline {
            bail!(
                "the container {} is still being started by process {}; wait for it or kill that process",
                record.name,
                record.state.supervisor_pid
            );
        }
        std::thread::sleep(Duration::from_millis(10));
        record = find(store, &record.id)?;
    }
    Ok(record)
}

/// `rm -f` of a record that cannot be read: what its name (when the
/// configuration survived) still finds, then its files.
fn remove_broken(store: &Store, id: &str) -> anyhow::Result<()> {
    let (_, broken) = store.list_all()?;
    let name = broken
        .iter()
        .find(|b| b.id == id)
        .and_then(|b| b.name.clone());
    if let Some(name) = name {
        // The state is lost: its cgroups are where this name would have
        // them (a container still in them is killed: that is what -f is for).
        let state = store::State {
            cgroup_paths: cgroups::Cgroup::planned_freezable(&name).unwrap_or_default(),
            ..store::State::default()
        };
        supervisor::reclaim(store, &name, &state)?;
    }
    store.remove(id)?;
    Ok(())
}

/// `inspect`: Docker's shape, plus where the kernel objects are.
pub fn inspect(containers: &[String]) -> anyhow::Result<i32> {
    let store = store();
    let mut all = Vec::new();
    for key in containers {
        let record = find(&store, key)?;
        let mut value = present::inspect_json(&record);
        let state = record.effective_state();
        let config = run_config(&record)?;
        let namespaces: serde_json::Map<String, serde_json::Value> = if state.pid > 0 {
            ["ipc", "mnt", "net", "pid", "uts"]
                .iter()
                .map(|ns| {
                    (
                        ns.to_string(),
                        format!("/proc/{}/ns/{ns}", state.pid).into(),
                    )
                })
                .collect()
        } else {
            Default::default()
        };
        let mounts: Vec<serde_json::Value> = config
            .volumes
            .iter()
            .map(|v| serde_json::json!({ "Source": format!("{:?}", v.source), "Destination": v.target, "RW": !v.read_only }))
            .chain(config.tmpfs.iter().map(|t| serde_json::json!({ "Type": "tmpfs", "Destination": t.target })))
            .collect();
        value["Mounts"] = mounts.into();
        value["LogPath"] = store.log_path(&record.id).display().to_string().into();
        value["HostConfig"] = serde_json::json!({
            "CgroupPaths": state.cgroup_paths,
            "Namespaces": namespaces,
            "SupervisorPid": state.supervisor_pid,
            "RestartPolicy": config.restart,
            "Memory": config.limits.memory_bytes.unwrap_or(0),
            "PidsLimit": config.limits.pids.unwrap_or(0),
            "NanoCpus": config.limits.cpus.map_or(0, |c| (c * 1e9) as u64),
            "Privileged": config.privileged,
            "ReadonlyRootfs": config.read_only,
            "NetworkMode": config.network,
        });
        all.push(value);
    }
    println!("{}", serde_json::to_string_pretty(&all)?);
    Ok(0)
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep STDIN open
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_parser = config::parse_env)]
    env: Vec<(String, String)>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    container: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

pub fn exec(args: &ExecArgs) -> anyhow::Result<i32> {
    if let Some(dir) = &args.workdir {
        config::check_workdir(dir).map_err(refused)?;
    }
    let store = store();
    let record = find(&store, &args.container)?;
    let state = record.effective_state();
    match state.status {
        Status::Running => {}
        Status::Paused => {
            return Err(refused(format!(
                "container {} is paused; unpause it before exec",
                args.container
            )))
        }
        _ => {
            return Err(refused(format!(
                "container {} is not running",
                args.container
            )))
        }
    }
    let config = run_config(&record)?;
    let request = ExecRequest {
        argv: args.command.clone(),
        env: args.env.clone(),
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        interactive: args.interactive,
        console: None,
    };
    if args.tty {
        return crate::terminal::exec_with_terminal(
            state.pid,
            &config,
            &state.cgroup_paths,
            request,
            args.interactive,
        );
    }
    Ok(container_lab::engine::runtime::exec::exec(
        state.pid,
        &config,
        &state.cgroup_paths,
        request,
    )?)
}

/// `system prune`: every stopped container and what it left behind.
pub fn prune(force: bool) -> anyhow::Result<i32> {
    if !force {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdin())
            && std::io::IsTerminal::is_terminal(&std::io::stderr());
        if !tty {
            return Err(refused(
                "system prune removes every stopped container; without a terminal to ask, pass -f",
            ));
        }
        let sure = dialoguer::Confirm::new()
            .with_prompt("WARNING! This will remove all stopped containers. Are you sure you want to continue?")
            .default(false)
            .interact()
            .unwrap_or(false);
        if !sure {
            return Ok(0);
        }
    }
    let store = store();
    let mut removed = Vec::new();
    // Running, or being started or finished by a live owner: not stopped.
    let live = |record: &Record| record.effective_status().is_running() || record.owner_alive();
    for record in store.list()? {
        if live(&record) {
            continue;
        }
        supervisor::remove(&store, &record)
            .map_err(|e| anyhow::anyhow!("removing {} failed: {e}", record.name))?;
        removed.push(record.id);
    }
    // What killed runs and creates left that no record names any more.
    store.remove_stale_temporaries()?;
    // Listed again: a start claims its cgroups in its record before it
    // makes them, so one that began meanwhile is seen here.
    let (records, broken) = store.list_all()?;
    let mut keep: Vec<std::path::PathBuf> = records
        .iter()
        .filter(|r| live(r))
        .flat_map(|r| r.state.cgroup_paths.iter().cloned())
        .collect();
    for name in broken.iter().filter_map(|b| b.name.as_deref()) {
        // A record that cannot be read may still run: keep its cgroups.
        keep.extend(cgroups::Cgroup::planned_freezable(name).unwrap_or_default());
    }
    cgroups::remove_orphans(&keep);
    let mut out = std::io::stdout().lock();
    if !removed.is_empty() {
        writeln!(out, "Deleted Containers:")?;
        for id in &removed {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed containers: {}", removed.len())?;
    Ok(0)
}
