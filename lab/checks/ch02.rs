//! Chapter 2: namespaces.

use container_lab::kernel::namespaces::Namespace;
use nix::unistd::Pid;

use super::{own_namespace, some_numbers, Check, Subject};
use crate::evidence;
use crate::run::HOST_NAME;

/// The hostname the exercise asks for.
const WANTED: &str = "ex02";

pub fn verify(s: &Subject, pid: Pid) -> Vec<Check> {
    match s.ex.id {
        "ch02-uts" => uts(s, pid),
        _ => proc(s, pid),
    }
}

fn uts(s: &Subject, pid: Pid) -> Vec<Check> {
    let nspid = evidence::status(pid, "NSpid");
    let inner = nspid.split(' ').nth(1).unwrap_or_default().to_string();
    let inside = evidence::hostname(pid);
    let host = evidence::hostname(s.host);
    vec![
        own_namespace(s, pid, Namespace::Uts),
        own_namespace(s, pid, Namespace::Pid),
        Check::new(
            inner == "1",
            format!("its init is PID 1 inside: NSpid: {nspid}"),
            format!("its init has no PID of its own inside: NSpid: {nspid}"),
        ),
        Check::new(
            inside == WANTED,
            format!("the hostname inside is {inside:?}"),
            format!("the hostname inside is {inside:?}, not {WANTED:?}"),
        ),
        Check::new(
            host == HOST_NAME,
            format!("the host's hostname is still {HOST_NAME:?}"),
            format!(
                "the host's hostname is now {host:?}, not {HOST_NAME:?}: it was set in the \
                 host's UTS namespace, before the child had one of its own; set it from \
                 inside the container, after it started"
            ),
        ),
    ]
}

fn proc(s: &Subject, pid: Pid) -> Vec<Check> {
    let pids = evidence::pids_in_its_proc(pid);
    // The host's proc lists the container's init by its host PID.
    let own = !pids.is_empty() && !pids.contains(&(pid.as_raw() as u32));
    let mount = evidence::mount_at(pid, "/proc");
    let options = mount
        .as_ref()
        .map(|m| m.options.clone())
        .unwrap_or_default();
    let hardened = ["nosuid", "nodev", "noexec"]
        .iter()
        .all(|o| options.split(',').any(|x| x == *o));
    let gained = s.host_mounts_gained();
    vec![
        Check::new(
            own,
            format!(
                "the container's /proc lists its own processes only: {}",
                some_numbers(&pids)
            ),
            format!(
                "the container's /proc is the host's: it lists {}, the container's init \
                 among them; mount a proc of its own on /proc",
                some_numbers(&pids)
            ),
        ),
        Check::new(
            own && hardened,
            format!("its /proc is mounted {options}"),
            if own {
                format!(
                    "its /proc is mounted {options}: mount it with MS_NOSUID | MS_NODEV | \
                     MS_NOEXEC, as Docker does"
                )
            } else {
                "there is no proc of the container's own to look at the options of".into()
            },
        ),
        Check::new(
            gained.is_empty(),
            "the host's mount table is as it was: nothing propagated from the container",
            format!(
                "the host's mount table gained {}: the container's mounts propagate to the \
                 host (a systemd host shares /); make the tree private first",
                gained.join(", ")
            ),
        ),
    ]
}
