//! What a chapter needs from the machine (its manifest entry's `needs`),
//! checked before its first step, each refused with a message that says
//! what to do, so that no chapter fails half-way for want of a package.

use std::io::Read;
use std::path::Path;

use crate::engine::images::busybox::{self, BusyboxError};
use crate::kernel::cgroups::{self, CgroupError, Layout};
use crate::kernel::net::{links, netlink::Netlink, NetError};
use crate::kernel::overlay::{self, OverlayError};
use crate::lab::chapters::{Chapter, Need};
use crate::lab::privilege::{self, PrivilegeError};
use crate::support::error::{io_err, IoError};

/// Applies one need: returns when it is met, re-runs the chapter where
/// that meets it (sudo, a delegated cgroup), or says why it cannot.
pub fn apply(chapter: &Chapter, need: Need) -> Result<(), NeedError> {
    match need {
        Need::Root { why } => privilege::ensure_root(chapter.id, why)?,
        Need::Busybox => drop(busybox::find_static()?),
        Need::Overlay => overlay::ensure_supported()?,
        Need::Cgroups => cgroups_of_its_own()?,
        Need::Network => network()?,
        Need::UserNamespaces => user_namespaces()?,
    }
    Ok(())
}

/// On cgroup v2, a cgroup may hand controllers down only when no process
/// sits in it (the no-internal-process rule): a lab that shares its cgroup
/// with a login shell runs itself again in a delegated systemd scope.
fn cgroups_of_its_own() -> Result<(), NeedError> {
    if cgroups::detect_layout()? != Layout::Unified {
        return Ok(());
    }
    let own = Path::new(cgroups::CGROUP_ROOT).join(cgroups::own_path(None)?);
    if own == Path::new(cgroups::CGROUP_ROOT) {
        return Ok(());
    }
    let file = own.join("cgroup.procs");
    let procs = std::fs::read_to_string(&file).map_err(io_err("read", &file))?;
    let me = std::process::id().to_string();
    if procs.split_whitespace().all(|pid| pid == me) {
        return Ok(());
    }
    match cgroups::reexec_in_delegated_scope()? {}
}

/// Bridges, veth pairs and nftables, tried in a network namespace made for
/// the purpose (it goes with the process that tries), and the host's
/// loopback up: a port published on 127.0.0.1 is reached through it.
fn network() -> Result<(), NeedError> {
    let refusal = in_throwaway_netns(|| {
        let mut nl = Netlink::open().map_err(|e| format!("no rtnetlink: {e}"))?;
        let address = std::net::Ipv4Addr::new(10, 255, 255, 1);
        links::create_bridge(&mut nl, "probe0", address, 30).map_err(|e| {
            format!("this kernel cannot make a bridge ({e}); load it: modprobe bridge")
        })?;
        links::create_veth(&mut nl, "probe1", "probe2").map_err(|e| {
            format!("this kernel cannot make a veth pair ({e}); load it: modprobe veth")
        })?;
        match std::process::Command::new("nft")
            .args(["list", "tables"])
            .output()
        {
            Err(_) => Err("the nft program is missing; install the nftables package".into()),
            Ok(out) if !out.status.success() => Err(format!(
                "nft cannot list tables ({}); load nf_tables: modprobe nf_tables",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Ok(_) => Ok(()),
        }
    })?;
    if let Some(why) = refusal {
        return Err(NeedError::Network(why));
    }
    let mut nl = Netlink::open().map_err(|e| NeedError::Network(format!("no rtnetlink: {e}")))?;
    Ok(links::set_up(&mut nl, "lo")?)
}

/// Runs `probe` in a child process in a new network namespace; returns
/// what it refused, if anything.
fn in_throwaway_netns(
    probe: impl FnOnce() -> Result<(), String>,
) -> Result<Option<String>, NeedError> {
    use nix::unistd::{fork, ForkResult};
    let (read_end, write_end) = nix::unistd::pipe().map_err(NeedError::Probe)?;
    crate::kernel::process::flush_stdio();
    match unsafe { fork() }.map_err(NeedError::Probe)? {
        ForkResult::Child => {
            drop(read_end);
            let refusal = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("cannot make a network namespace: {e}"))
                .and_then(|()| probe())
                .err()
                .unwrap_or_default();
            let _ = nix::unistd::write(&write_end, refusal.as_bytes());
            crate::kernel::init::exit_now(0)
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut refusal = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut refusal);
            let _ = nix::sys::wait::waitpid(child, None);
            Ok(Some(refusal).filter(|r| !r.is_empty()))
        }
    }
}

/// The kernel must have user namespaces, and allow more than none.
fn user_namespaces() -> Result<(), NeedError> {
    if !Path::new("/proc/self/ns/user").exists() {
        return Err(NeedError::UserNamespaces(
            "this kernel has no user namespaces (built without CONFIG_USER_NS)".into(),
        ));
    }
    let limit = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if limit.trim() == "0" {
        return Err(NeedError::UserNamespaces(
            "user namespaces are disabled on this host (user.max_user_namespaces is 0); \
             enable them: sudo sysctl -w user.max_user_namespaces=15000"
                .into(),
        ));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum NeedError {
    #[error("{0} is not in the chapter manifest (src/lab/chapters.rs)")]
    NotInManifest(String),
    #[error(transparent)]
    Root(#[from] PrivilegeError),
    #[error(transparent)]
    Busybox(#[from] BusyboxError),
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    #[error(transparent)]
    Cgroups(#[from] CgroupError),
    #[error("{0}")]
    Network(String),
    #[error(transparent)]
    Link(#[from] NetError),
    #[error("{0}")]
    UserNamespaces(String),
    #[error("failed to check what this chapter needs: {0}")]
    Probe(nix::errno::Errno),
    #[error(transparent)]
    Io(#[from] IoError),
}
