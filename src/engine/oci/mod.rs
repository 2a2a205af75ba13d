//! The OCI runtime: the standard seam between an engine and the program
//! that makes the system calls. A *bundle* (a `config.json` and a root
//! filesystem) goes in; the commands `create`, `start`, `state`, `kill` and
//! `delete` drive one container through its life, as runc's do, so that
//! podman (through conmon), the OCI validation suite or a learner can use
//! the lab's runtime in runc's place.
//!
//! A runtime is not a daemon: every command is a short-lived process.
//! `create` clones the container's init, which sets the container up and
//! then blocks on a fifo (`exec.fifo`, as runc's) until `start` opens it;
//! `create` exits as soon as the init is ready, leaving it to whoever
//! waits for it (conmon, a subreaper). What outlives a command is a small
//! state directory per container under the root (`/run/lab-runc`).
//!
//! - `spec`: reading `config.json` with the `oci-spec` types, refusing
//!   what this runtime does not do; the default `config.json`.
//! - `state`: the state directory, its lock and the state JSON.
//! - `cgroups`: the one adapter to the kernel floor's cgroups.
//! - `create`: the host side of `create`; `init`: the container's side.
//! - `rootfs`, `process`: what the init does inside, step by step.
//! - `seccomp`: `linux.seccomp` translated into a BPF filter.
//! - `hooks`: the hooks, with the state on their stdin.
//! - `lifecycle`: start, state, kill, delete, pause, resume, ps, list.
//! - `exec`: another process in a running container.
//! - `bundle`, `external`: the other way round, the engine's run
//!   configuration as a bundle, run by any runc-compatible binary;
//!   `monitor`: what stays with such a container while it runs.

pub mod bundle;
pub mod cgroups;
pub mod create;
pub mod exec;
pub mod external;
pub mod hooks;
mod init;
pub mod lifecycle;
pub mod monitor;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod state;

use std::path::PathBuf;

pub use self::create::{create, CreateOptions};
pub use self::exec::{exec, ExecOptions};
pub use self::lifecycle::{delete, kill, list, pause, ps, resume, run, start, state};
pub use self::state::{ContainerState, Status};

/// Where the state lives when `--root` is not given (runc: /run/runc).
pub const DEFAULT_ROOT: &str = "/run/lab-runc";

/// The runtime's version, as `--version` and `features` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The newest runtime-spec version whose configuration this runtime reads.
pub const OCI_VERSION: &str = "1.1.0";

/// Every failure of a runtime command: one lowercase line naming what was
/// wrong and, where it helps, what to do.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{field} is not supported by lab-runc: {why}")]
    Unsupported { field: String, why: String },
    #[error("invalid {field} in config.json: {why}")]
    Invalid { field: String, why: String },
    #[error("container {0} does not exist (lab-runc list shows the containers)")]
    NotFound(String),
    #[error("container {0} already exists; delete it first or pick another id")]
    Exists(String),
    #[error("invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.', not starting with '.'")]
    BadId(String),
    #[error("container {id} is {status}, {wanted}")]
    WrongStatus {
        id: String,
        status: Status,
        wanted: &'static str,
    },
    #[error(transparent)]
    Io(#[from] crate::support::error::IoError),
    #[error("{op}: {errno}")]
    Sys {
        op: String,
        errno: nix::errno::Errno,
    },
    #[error(transparent)]
    Cgroup(#[from] crate::kernel::cgroups::CgroupError),
    #[error(transparent)]
    Mount(#[from] crate::kernel::mounts::MountError),
    #[error(transparent)]
    Namespace(#[from] crate::kernel::namespaces::NamespaceError),
    #[error("{0}")]
    Hook(String),
    /// The container's init failed while setting the container up.
    #[error("{0}")]
    Init(String),
    #[error("{0}")]
    Other(String),
}

impl OciError {
    pub fn sys(op: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> OciError {
        let op = op.into();
        move |errno| OciError::Sys { op, errno }
    }

    pub fn unsupported(field: &str, why: impl Into<String>) -> OciError {
        OciError::Unsupported {
            field: field.to_string(),
            why: why.into(),
        }
    }

    pub fn invalid(field: &str, why: impl Into<String>) -> OciError {
        OciError::Invalid {
            field: field.to_string(),
            why: why.into(),
        }
    }
}

/// The runtime's global options (`--root`, `--systemd-cgroup`).
#[derive(Debug, Clone)]
pub struct Runtime {
    pub root: PathBuf,
    /// `--systemd-cgroup`: cgroupsPath is `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

impl Default for Runtime {
    fn default() -> Runtime {
        Runtime {
            root: PathBuf::from(DEFAULT_ROOT),
            systemd_cgroup: false,
        }
    }
}
