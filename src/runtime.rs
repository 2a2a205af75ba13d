//! The runtime path of `mini-docker run`: every chapter's primitive applied
//! the way a real runtime applies them, inside the cloned child and before
//! the user's program starts, rather than step by step from outside.

use std::ffi::CString;
use std::path::PathBuf;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;

use crate::cgroups::{Cgroup, Limits};
use crate::container::status_code;
use crate::hardening::Profile;
use crate::namespaces::{self, Cloned, Namespace};
use crate::overlay::{Layer, OverlayDirs};
use crate::state::{LabDirs, RunDir};
use crate::{hardening, init, mounts, overlay, rootfs, signals};

/// Docker's `--network` modes this runtime knows so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// A network namespace with only `lo`.
    None,
    /// The host's network namespace.
    Host,
}

/// Everything `mini-docker run` was asked for.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub name: String,
    pub hostname: String,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub command: Vec<String>,
    pub limits: Limits,
    pub read_only: bool,
    pub profile: Profile,
    pub network: NetworkMode,
    pub init: bool,
}

/// Runs a container from the busybox image to completion and returns its
/// exit status: the program's own code, 128 + a signal (137 after an OOM
/// kill), 126 when it cannot be executed, 127 when it does not exist.
// ANCHOR: run
pub fn run(dirs: &LabDirs, config: &RunConfig) -> Result<i32, RuntimeError> {
    let (image, _) = rootfs::busybox_image(dirs)?;
    let layers = vec![Layer {
        name: "busybox".into(),
        path: image,
    }];
    let run_dir = RunDir::create(dirs, &config.name)?;
    let overlay_dirs = OverlayDirs::create(run_dir.path())?;
    let cgroup = Cgroup::create(&config.name)?;
    cgroup.set_limits(&config.limits)?;

    let mut spaces = vec![
        Namespace::Uts,
        Namespace::Pid,
        Namespace::Ipc,
        Namespace::Mount,
    ];
    if config.network == NetworkMode::None {
        spaces.push(Namespace::Net);
    }
    crate::container::flush_stdio();
    let child = match unsafe { namespaces::clone_process(namespaces::clone_flags(&spaces))? } {
        Cloned::Child => {
            let code = match prepare_and_exec(config, &layers, &overlay_dirs, &cgroup.procs_files())
            {
                Ok(never) => match never {},
                Err(err) => {
                    eprintln!("mini-docker: error: {err}");
                    125
                }
            };
            init::exit_now(code)
        }
        Cloned::Parent { child } => child,
    };
    let code = wait_forwarding_signals(child);
    drop(cgroup);
    drop(run_dir);
    Ok(code)
}
// ANCHOR_END: run

/// In the cloned child: cgroup, mounts, root, hostname, hardening, exec.
// ANCHOR: prepare
fn prepare_and_exec(
    config: &RunConfig,
    layers: &[Layer],
    dirs: &OverlayDirs,
    cgroup_procs: &[PathBuf],
) -> Result<std::convert::Infallible, RuntimeError> {
    crate::cgroups::join(cgroup_procs)?;
    mounts::make_tree_private()?;
    overlay::mount_overlay(layers, dirs)?;
    rootfs::pivot_into(&dirs.merged)?;
    rootfs::mount_kernel_filesystems()?;
    nix::unistd::sethostname(&config.hostname)
        .map_err(|e| RuntimeError::Setup(format!("sethostname: {e}")))?;
    hardening::mask_paths()?;
    let workdir = config.workdir.clone().unwrap_or_else(|| "/".into());
    std::fs::create_dir_all(&workdir)
        .map_err(|e| RuntimeError::Setup(format!("workdir {workdir}: {e}")))?;
    if config.read_only {
        hardening::read_only_root()?;
    }
    std::env::set_current_dir(&workdir)
        .map_err(|e| RuntimeError::Setup(format!("workdir {workdir}: {e}")))?;
    let mut env = rootfs::busybox_env();
    for (key, value) in &config.env {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    env.push(("HOSTNAME".into(), config.hostname.clone()));
    let env = cstrings(env.iter().map(|(k, v)| format!("{k}={v}")))?;
    let argv = cstrings(config.command.iter().cloned())?;
    config.profile.apply()?;
    if config.init {
        // --init: our PID 1 forwards signals and reaps, the command is its child.
        let (_, ready) =
            nix::unistd::pipe().map_err(|e| RuntimeError::Setup(format!("pipe: {e}")))?;
        init::run(&argv, &env, ready)
    }
    signals::reset_to_default();
    init::exec_or_exit(&argv, &env)
}
// ANCHOR_END: prepare

/// Waits for the container, passing Ctrl-C and SIGTERM on to it (as
/// `docker run` does); a second signal kills it.
fn wait_forwarding_signals(child: nix::unistd::Pid) -> i32 {
    let mut forwarded = false;
    loop {
        match waitpid(child, None) {
            Ok(status) => return status_code(status),
            Err(nix::errno::Errno::EINTR) => {
                if let Some(signal) = signals::interrupted() {
                    let send = if forwarded { Signal::SIGKILL } else { signal };
                    let _ = kill(child, send);
                    forwarded = true;
                    signals::clear();
                }
            }
            Err(_) => return 125,
        }
    }
}

fn cstrings(items: impl Iterator<Item = String>) -> Result<Vec<CString>, RuntimeError> {
    items
        .map(|s| {
            CString::new(s.clone())
                .map_err(|_| RuntimeError::Setup(format!("argument contains a NUL byte: {s:?}")))
        })
        .collect()
}

/// The images this runtime has: so far only the lab's own busybox image.
pub fn is_builtin_image(name: &str) -> bool {
    matches!(name, "busybox" | "busybox:latest")
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Overlay(#[from] crate::overlay::OverlayError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Namespace(#[from] crate::namespaces::NamespaceError),
    #[error(transparent)]
    Mount(#[from] crate::mounts::MountError),
    #[error(transparent)]
    Hardening(#[from] crate::hardening::HardeningError),
    #[error("{0}")]
    Setup(String),
}
