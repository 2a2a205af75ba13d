//! The lifecycle of containers, as typed operations any front end can
//! drive: create, start, stop, kill, pause and unpause, restart, remove,
//! prune, exec, logs and what `inspect` shows. Each reads the container's
//! record, checks the state it is really in, and acts on the kernel
//! objects the record names (PIDs, cgroups), never on guesses.
//!
//! Nothing here prints or knows a command line: operations return values,
//! and errors that say whether the engine refused (no such container, the
//! wrong state: [`LifecycleError::is_refusal`]) or failed.
//!
//! - `create.rs`: create, run (in the foreground or detached), start;
//! - `from_image.rs`: what a container takes from its image's config;
//! - `stop.rs`: stop, kill, restart;
//! - `pause.rs`: pause and unpause (the freezer);
//! - `remove.rs`: rm and prune, and the images and volumes they free;
//! - `exec.rs`: a new process in a running container;
//! - `inspect.rs`: what `inspect` and `logs` show.

mod create;
mod everyday;
mod exec;
pub mod from_image;
mod inspect;
mod pause;
mod remove;
mod stop;

use std::path::PathBuf;

pub use self::everyday::{find_in_layers, port_lines, primary_network, FilesRoot, Update};
pub use self::inspect::Inspection;
use crate::engine::dirs::LabDirs;
use crate::engine::images::ImageError;
use crate::engine::logs::LogError;
use crate::engine::runtime::RuntimeError;
use crate::engine::store::{Record, Status, Store, StoreError};
use crate::engine::supervisor::SupervisorError;
use crate::engine::volumes::VolumeError;
use crate::kernel::cgroups::CgroupError;
use crate::support::error::IoError;

/// The containers of one lab state directory, and what can be done to
/// them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    store: Store,
}

impl Lifecycle {
    pub fn new(dirs: &LabDirs) -> Lifecycle {
        Lifecycle {
            store: Store::new(dirs),
        }
    }

    /// See [`Store::hire_janitor`]: for a foreground `run --rm`.
    pub fn hire_janitor(&mut self) {
        self.store.hire_janitor();
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn dirs(&self) -> &LabDirs {
        self.store.dirs()
    }

    /// The container `key` names (a name, an ID or a unique ID prefix).
    pub fn find(&self, key: &str) -> Result<Record, LifecycleError> {
        self.store.get(key).map_err(LifecycleError::Lookup)
    }

    /// Every container, newest first; `all: false` only the running ones
    /// (also paused or restarting), as `ps` and `ps -a` list them.
    pub fn list(&self, all: bool) -> Result<Vec<Record>, LifecycleError> {
        Ok(self
            .store
            .list()?
            .into_iter()
            .filter(|r| all || r.effective_status().is_running())
            .collect())
    }

    /// Whether the container `id` still runs (also paused or restarting).
    fn running(&self, id: &str) -> bool {
        self.store
            .get(id)
            .is_ok_and(|r| r.effective_status().is_running())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    // Refusals: what Docker's daemon says no to.
    /// The container could not be looked up (no such, ambiguous, broken).
    #[error(transparent)]
    Lookup(StoreError),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is already paused")]
    AlreadyPaused(String),
    #[error("container {0} is not paused")]
    NotPaused(String),
    #[error("container {0} is paused; unpause it before exec")]
    Paused(String),
    #[error("cannot kill container {0}: it is not running")]
    CannotKill(String),
    #[error("cannot remove container {key}: it is {status}; stop it first or use rm -f")]
    MustForce { key: String, status: Status },
    /// `start` and `restart`: the supervisor could not start it.
    #[error(transparent)]
    StartRefused(SupervisorError),
    #[error("conflict: unable to delete {image} (cannot be forced) - image is being used by running container {container}")]
    ImageInUse { image: String, container: String },
    #[error("conflict: unable to remove repository reference \"{reference}\" (must force) - container {container} is using its referenced image {image}")]
    ImageMustForce {
        reference: String,
        container: String,
        image: String,
    },
    #[error("Renaming a container with the same name as its current name")]
    RenameSame,
    #[error("volume {name} is in use by {}; remove those containers first", users.join(", "))]
    VolumeInUse { name: String, users: Vec<String> },
    #[error(transparent)]
    VolumeRefused(VolumeError),

    // Failures: the engine could not do what it was asked.
    #[error("the container {0} did not stop; its supervisor does not answer")]
    DidNotStop(String),
    #[error("the container {0} did not stop within 30 seconds")]
    StopTimeout(String),
    #[error("the container {name} is still being started by process {pid}; wait for it or kill that process")]
    StillStarting { name: String, pid: i32 },
    #[error("removing {key} failed: {source}")]
    RemoveFailed {
        key: String,
        #[source]
        source: SupervisorError,
    },
    #[error("failed to signal {key}: {errno}")]
    Signal {
        key: String,
        errno: nix::errno::Errno,
    },
    #[error("failed to write {}: {source}", path.display())]
    Marker {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{0}")]
    NoCommand(String),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Network(#[from] crate::engine::network::NetworkError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    State(#[from] crate::engine::dirs::StateError),
    #[error(transparent)]
    Io(#[from] IoError),
}

impl LifecycleError {
    /// The engine refused (no such container, the wrong state, in use):
    /// Docker's client exits 1 for these, 125 for its own failures.
    pub fn is_refusal(&self) -> bool {
        use LifecycleError::*;
        matches!(
            self,
            Lookup(_)
                | NotRunning(_)
                | AlreadyPaused(_)
                | NotPaused(_)
                | Paused(_)
                | CannotKill(_)
                | MustForce { .. }
                | StartRefused(_)
                | ImageInUse { .. }
                | ImageMustForce { .. }
                | Image(ImageError::NotFound { .. })
                | VolumeInUse { .. }
                | VolumeRefused(_)
                | RenameSame
                | Store(StoreError::Conflict { .. })
        )
    }

    /// The container's program could not be run: Docker's 127 (it does not
    /// exist) or 126 (it cannot be executed).
    pub fn program_exit_code(&self) -> Option<i32> {
        let code = match self {
            LifecycleError::Supervisor(err) | LifecycleError::StartRefused(err) => err.exit_code(),
            LifecycleError::Runtime(err) => err.exit_code(),
            _ => 125,
        };
        (code != 125).then_some(code)
    }
}
