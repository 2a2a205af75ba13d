//! A small monitor for a container that a runc-compatible runtime made
//! (`mini-docker --runtime PATH run`), as containerd's shim or podman's
//! conmon: the runtime is a short-lived program, so something must stay
//! to wait for the container, record its exit and clean up.
//!
//! The monitor makes itself a subreaper and enters a mount and a cgroup
//! namespace of its own (see `external`), then drives the runtime's
//! commands: `create` (the init waits on its fifo), the veth of the lab's
//! network into the init's network namespace, `start`, a wait for the
//! init (its child now: `create` has exited), `delete`. `stop` and `kill`
//! of another mini-docker reach the container through the runtime's
//! `kill`, run in the monitor's namespaces, as [`signal`] does.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde::{Deserialize, Serialize};

use super::external::{self, External};
use super::OciError;
use crate::engine::dirs::LabDirs;
use crate::engine::network::{self, Attachment, Links, Network, PortMapping};
use crate::engine::store::Store;
use crate::kernel::overlay::Layer;
use crate::kernel::process;

/// One container to run through an external runtime.
#[derive(Debug)]
pub struct Plan {
    pub external: External,
    /// The bundle's directory, its config.json written.
    pub bundle: PathBuf,
    pub layers: Vec<Layer>,
    /// The runtime's name for the container (mini-docker's name for it).
    pub id: String,
    /// `linux.cgroupsPath`, relative: `container-lab/ID`.
    pub cgroups_path: PathBuf,
    /// The lab's network to join (`--network bridge|NAME`), if any.
    pub network: Option<Joined>,
    /// `--console-socket` for the runtime (`-t`).
    pub console_socket: Option<PathBuf>,
}

/// A lab network and who the container is on it.
#[derive(Debug, Clone)]
pub struct Joined {
    pub network: Network,
    pub endpoint: network::Endpoint,
    pub publish: Vec<PortMapping>,
}

/// What the host sees of the container once it is created, before `start`.
#[derive(Debug)]
pub struct Created {
    pub pid: i32,
    /// Its cgroup directories on the host, one per hierarchy.
    pub cgroups: Vec<PathBuf>,
    pub ip: Option<Ipv4Addr>,
    pub links: Option<Links>,
    /// Its published ports, as `docker ps` shows them.
    pub ports: Vec<String>,
}

/// The network a `--network` mode joins: the default bridge, a
/// user-defined network (which must exist), or none.
pub fn joined(dirs: &LabDirs, name: Option<&str>) -> Result<Network, OciError> {
    match name {
        None => Ok(Network::default_bridge()),
        Some(name) => Network::named(dirs, name)
            .map_err(|e| OciError::Other(e.to_string()))?
            .ok_or_else(|| {
                OciError::NotFound(format!(
                    "network {name} not found; create it with mini-docker network create {name}"
                ))
            }),
    }
}

/// Runs the plan in this process, which must be single-threaded (it
/// changes its own namespaces): create, network, `created` (told what
/// the host sees), start, `started`, wait, delete. Returns the exit status
/// as a shell reports it.
// ANCHOR: monitor
pub fn run(
    dirs: &LabDirs,
    plan: &Plan,
    stdio: [Stdio; 3],
    created: impl FnOnce(&Created) -> Result<(), OciError>,
    started: impl FnOnce(),
) -> Result<i32, OciError> {
    // The init, reparented when `create` exits, becomes our child.
    // Safety: a plain prctl.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        return Err(OciError::sys("prctl(PR_SET_CHILD_SUBREAPER)")(
            nix::errno::Errno::last(),
        ));
    }
    let cgroups =
        external::enter_private_namespaces(&plan.bundle, &plan.layers, &plan.cgroups_path)?;
    let rootfs = plan.bundle.join("rootfs");
    let result = (|| {
        let console = plan.console_socket.as_deref();
        let pid = plan
            .external
            .create(&plan.bundle, &plan.id, console, stdio)?;
        let attachment = match &plan.network {
            Some(joined) => Some(attach(dirs, joined, pid)?),
            None => None,
        };
        created(&Created {
            pid,
            cgroups,
            ip: attachment.as_ref().map(|a| a.ip),
            links: attachment.as_ref().map(Attachment::links),
            ports: attachment
                .iter()
                .flat_map(|a| a.ports().iter().map(|p| p.to_string()))
                .collect(),
        })?;
        plan.external.start(&plan.id)?;
        started();
        let code = wait_for(pid);
        // The veth and the address go before the runtime's delete.
        drop(attachment);
        Ok(code)
    })();
    plan.external.delete(&plan.id, plan.cgroups_parent());
    let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
    result
}
// ANCHOR_END: monitor

impl Plan {
    fn cgroups_parent(&self) -> &Path {
        self.cgroups_path.parent().unwrap_or(Path::new(""))
    }
}

/// The host's half of the network (as the engine's own start does), then
/// the container's half inside the init's network namespace, before the
/// container's program runs.
fn attach(dirs: &LabDirs, joined: &Joined, pid: i32) -> Result<Attachment, OciError> {
    let net = &joined.network;
    let fail = |e: network::NetworkError| OciError::Other(e.to_string());
    let mut attachment = network::attach_endpoint(dirs, net, &joined.endpoint, pid, |ip| {
        network::link_names_on(net, ip)
    })
    .map_err(fail)?;
    if joined.publish.is_empty() {
        attachment.enable_outbound().map_err(fail)?;
    } else {
        attachment.publish(&joined.publish).map_err(fail)?;
    }
    let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| OciError::Other(format!("open the network namespace of {pid}: {e}")))?;
    process::flush_stdio();
    // A child of ours enters the namespace, so that we stay in the host's.
    // Safety: we are single-threaded (see `run`).
    match unsafe { fork() }.map_err(OciError::sys("fork"))? {
        ForkResult::Child => {
            // Safety: a plain setns on a descriptor we opened.
            let entered = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } == 0;
            let ok =
                entered && network::configure_inside(net, &attachment.peer, attachment.ip).is_ok();
            // Safety: leaves without running our destructors (the
            // attachment is the parent's to drop).
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(attachment),
            _ => Err(OciError::Other(format!(
                "cannot configure {} with {} inside the container's network namespace",
                attachment.peer, attachment.ip
            ))),
        },
    }
}

/// Reaps whatever is reparented to us until `pid` has exited; its status.
fn wait_for(pid: i32) -> i32 {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(status) if status.pid() == Some(Pid::from_raw(pid)) => {
                return process::status_code(status)
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            // No child left: the init is gone and someone else reaped it.
            Err(_) => return 255,
        }
    }
}

/// Where another mini-docker finds the runtime of a running container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Monitored {
    pub program: PathBuf,
    pub root: PathBuf,
    /// The runtime's name for the container.
    pub id: String,
    pub monitor_pid: i32,
    pub monitor_start_time: u64,
    /// The bundle's directory, removed by the monitor when it exits.
    pub bundle: PathBuf,
}

fn monitored_path(store: &Store, record_id: &str) -> PathBuf {
    store.run_dir(record_id).join("runtime.json")
}

impl Monitored {
    /// Written by the monitor once the container is created.
    pub fn save(&self, store: &Store, record_id: &str) -> Result<(), OciError> {
        let path = monitored_path(store, record_id);
        let text = serde_json::to_vec(self).map_err(|e| OciError::Other(e.to_string()))?;
        std::fs::write(&path, text).map_err(crate::support::error::io_err("write", &path))?;
        Ok(())
    }

    pub fn forget(store: &Store, record_id: &str) {
        let _ = std::fs::remove_file(monitored_path(store, record_id));
    }

    /// The runtime of container `record_id`, while its monitor lives.
    pub fn find(store: &Store, record_id: &str) -> Option<Monitored> {
        let text = std::fs::read(monitored_path(store, record_id)).ok()?;
        let found: Monitored = serde_json::from_slice(&text).ok()?;
        process::is_alive(found.monitor_pid, found.monitor_start_time).then_some(found)
    }
}

/// What a monitor that was killed left of container `record_id` (its
/// container already ended: it was the monitor's child, or `rm -f` killed
/// it): the runtime's state, by the runtime's `delete --force`, and the
/// bundle. Nothing when the monitor lives or finished its work.
pub fn reclaim(store: &Store, record_id: &str) {
    let path = monitored_path(store, record_id);
    let Some(left) = std::fs::read(&path)
        .ok()
        .and_then(|text| serde_json::from_slice::<Monitored>(&text).ok())
    else {
        return;
    };
    if process::is_alive(left.monitor_pid, left.monitor_start_time) {
        return;
    }
    let external = External {
        program: left.program,
        root: left.root.clone(),
    };
    let _ = external.delete_isolated(&left.id);
    // After the engine's own reclaim has removed the container's cgroups
    // (see lifecycle's rm), their parent; here, once more, if it is empty.
    external::remove_parent_cgroups(Path::new("container-lab"));
    // A runtime that cannot find the container's cgroups from here (it
    // was created in the monitor's namespaces) may keep its directory.
    let _ = crate::engine::dirs::remove_tree(&left.root.join(&left.id));
    let _ = crate::engine::dirs::remove_tree(&left.bundle);
    let _ = std::fs::remove_file(&path);
}

/// A signal to a container's first process `pid`: through its runtime's
/// `kill` when an external runtime made it (Docker's daemon asks
/// containerd, which asks runc), else with kill(2).
pub fn signal(store: &Store, record_id: &str, pid: i32, signal: Signal) -> nix::Result<()> {
    match Monitored::find(store, record_id) {
        Some(m) => {
            let external = External {
                program: m.program,
                root: m.root,
            };
            external
                .kill(&m.id, signal as i32, Some(m.monitor_pid))
                .map_err(|_| nix::errno::Errno::ESRCH)
        }
        None => nix::sys::signal::kill(Pid::from_raw(pid), signal),
    }
}
