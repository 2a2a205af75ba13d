//! What the store keeps of one container: how it was made (its typed run
//! configuration) and what it is doing (its state), and the truth about
//! that state, checked against the processes that really exist.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::ids::short_id;
use crate::engine::network::Links;
use crate::engine::runtime::config::RunConfig;
use crate::kernel::process::is_alive;
use crate::support::time::rfc3339_opt;

/// A record whose `error` starts with this is reported as `dead` once its
/// processes are gone: the container stopped but could not be cleaned up.
pub const CLEANUP_FAILED: &str = "cleanup failed";

/// The exit code a container gets when it vanished without its supervisor
/// recording one (what Docker reports after an unclean daemon restart).
pub const UNKNOWN_EXIT_CODE: i32 = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
}

impl Status {
    /// Docker's `State.Running`: true while a process exists, also when it
    /// is paused or between restarts.
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The runtime half of a record, kept under `<run>/lifecycle/<id>/state.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub status: Status,
    /// Host PID of the container's init; 0 when there is none.
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` when `pid` was recorded, so a PID the
    /// kernel has since handed to another process is not mistaken for ours.
    pub pid_start_time: u64,
    pub supervisor_pid: i32,
    pub supervisor_start_time: u64,
    #[serde(with = "rfc3339_opt")]
    pub started_at: Option<SystemTime>,
    #[serde(with = "rfc3339_opt")]
    pub finished_at: Option<SystemTime>,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub restart_count: u32,
    pub error: String,
    pub ip: Option<Ipv4Addr>,
    /// The veth pair and the firewall table the container got with its
    /// address, by the names they were made with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Links>,
    /// As `docker ps` shows them, e.g. `0.0.0.0:8080->80/tcp`.
    pub ports: Vec<String>,
    /// The container's cgroup directories, one per hierarchy.
    pub cgroup_paths: Vec<PathBuf>,
    /// The name its run directory was made under when it started: after
    /// `rename` of a running container, no longer the record's.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub run_name: String,
}

impl State {
    /// The name the running container's run directory carries.
    pub fn kernel_name<'a>(&'a self, name: &'a str) -> &'a str {
        if self.run_name.is_empty() {
            name
        } else {
            &self.run_name
        }
    }
}

/// One container: what it was created from and what it is doing.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 64 lowercase hex digits.
    pub id: String,
    /// Without Docker's leading `/`; the same as `config.name`.
    pub name: String,
    pub created: SystemTime,
    /// What it runs, as `create` was asked; `start` and restarts make the
    /// container again from it.
    pub config: RunConfig,
    pub state: State,
}

/// What `create` needs; `name: None` picks a Docker-style random name.
#[derive(Debug, Clone)]
pub struct NewContainer {
    pub name: Option<String>,
    /// `-h`; `None` is Docker's default, the container's short ID.
    pub hostname: Option<String>,
    /// What to run. Its `name` and `hostname` are the store's to set: the
    /// record is written once, whole, with the ones it picked.
    pub config: RunConfig,
    /// The creating process starts the container at once (`run`, not
    /// `create`): the record names it as the owner from the first moment,
    /// so that whoever finds the record with its owner dead knows that
    /// what the start made is left over (see [`Record::owner_alive`]).
    pub owned: bool,
}

/// A record that cannot be read: skipped by `list`, named by `get` (as an
/// error) so that `rm -f` can remove it.
#[derive(Debug, Clone)]
pub struct Broken {
    pub id: String,
    /// Known when only the state file is bad.
    pub name: Option<String>,
    /// The file that could not be read.
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for Broken {
    /// The warning a front end shows for a record it skips.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = short_id(&self.id);
        write!(
            f,
            "skipping container {id}: {} cannot be read ({}); `rm -f {id}` removes it",
            self.path.display(),
            self.reason
        )
    }
}

impl Record {
    /// The first 12 hex digits, as `docker ps` shows the ID.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }

    pub fn image(&self) -> &str {
        &self.config.image
    }

    pub fn command(&self) -> &[String] {
        &self.config.command
    }

    /// A `--rm` container: it never outlives its supervisor, so its files
    /// are not forced to disk (no fsync), which keeps `run --rm` fast.
    pub fn ephemeral(&self) -> bool {
        self.config.remove
    }

    /// Whether `name` is this container's: its name, or, while it runs
    /// after a rename, the one its run directory and cgroup still carry.
    pub fn holds_name(&self, name: &str) -> bool {
        self.name == name || (self.state.run_name == name && self.effective_status().is_running())
    }

    /// The status the container really has right now: see [`Record::effective_state`].
    pub fn effective_status(&self) -> Status {
        self.effective_state().status
    }

    /// The stored state, corrected against the processes that actually
    /// exist. A running, paused or restarting record whose container and
    /// supervisor are both gone (or whose PIDs were reused) becomes
    /// `exited`, or `dead` when its error says cleanup failed. Its exit
    /// code becomes 255 unless one was recorded.
    pub fn effective_state(&self) -> State {
        let mut state = self.state.clone();
        if !state.status.is_running() {
            return state;
        }
        let container = state.pid > 0 && is_alive(state.pid, state.pid_start_time);
        if container || self.owner_alive() {
            return state;
        }
        state.status = if state.error.starts_with(CLEANUP_FAILED) {
            Status::Dead
        } else {
            Status::Exited
        };
        state.pid = 0;
        if state.finished_at.is_none() && state.exit_code == 0 {
            state.exit_code = UNKNOWN_EXIT_CODE;
        }
        state
    }

    /// Whether the process that owns the record's kernel objects (its
    /// supervisor, or the `run` that is about to start one) is alive. A
    /// record whose owner is dead may have left cgroups, a network and a
    /// run directory behind; they are reclaimed when it is removed.
    pub fn owner_alive(&self) -> bool {
        self.state.owner_alive()
    }

    /// A `--rm` container whose owner died without removing it: nothing
    /// will ever use or remove it, so a new container may take its name.
    pub fn is_abandoned(&self) -> bool {
        self.ephemeral()
            && self.state.supervisor_pid > 0
            && !self.effective_status().is_running()
            && !self.owner_alive()
    }
}

impl State {
    /// Whether the supervisor (or the `run` about to become one) named
    /// here is still the same live process.
    pub fn owner_alive(&self) -> bool {
        self.supervisor_pid > 0 && is_alive(self.supervisor_pid, self.supervisor_start_time)
    }
}
