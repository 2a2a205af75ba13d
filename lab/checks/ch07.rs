//! Chapter 7: user namespaces, read from the maps and the status files.

use container_lab::kernel::userns;
use nix::unistd::Pid;

use super::{Check, Subject};
use crate::evidence;

pub fn verify(s: &Subject, pid: Pid) -> Vec<Check> {
    match s.ex.id {
        "ch07-maps" => maps(pid),
        _ => rootless(s, pid),
    }
}

fn map_check(pid: Pid, file: &str, wanted: &str) -> Check {
    let map = evidence::proc_file(pid, file);
    Check::new(
        map == wanted,
        format!("{file} of the container: {wanted}"),
        if map.is_empty() {
            format!("{file} of the container is empty: nothing is mapped, it needs {wanted:?}")
        } else {
            format!("{file} of the container is {map:?}, not {wanted:?}")
        },
    )
}

fn maps(pid: Pid) -> Vec<Check> {
    let wanted = "0 100000 65536";
    let uids = evidence::status(pid, "Uid");
    let gids = evidence::status(pid, "Gid");
    let host_uid = uids.split(' ').next().unwrap_or_default().to_string();
    vec![
        map_check(pid, "uid_map", wanted),
        map_check(pid, "gid_map", wanted),
        Check::new(
            host_uid == "100000" && gids.starts_with("100000"),
            format!("its init runs as uid 100000 on the host (Uid: {uids}), root inside"),
            if host_uid == "0" {
                format!(
                    "its init is still root on the host (Uid: {uids}): with nothing mapped, \
                     a root-made user namespace gives no protection"
                )
            } else {
                format!("its init runs as uid {host_uid} on the host (Uid: {uids}), not 100000")
            },
        ),
    ]
}

fn rootless(s: &Subject, pid: Pid) -> Vec<Check> {
    let wanted = "0 65534 1";
    let owner = userns::owner_of(pid)
        .map(|u| u.to_string())
        .unwrap_or_default();
    let setgroups = evidence::proc_file(pid, "setgroups");
    let mut setgroups_fail = format!("setgroups of the container is {setgroups:?}, not \"deny\"");
    let refused = s
        .stderr
        .lines()
        .find(|l| l.contains("gid_map") && l.contains("not permitted"));
    if refused.is_some() && setgroups != "deny" {
        setgroups_fail.push_str(
            ": the kernel refused gid_map because setgroups still said allow; an unprivileged \
             process may write its gid_map only after writing \"deny\" to setgroups, so \
             write setgroups first",
        );
    }
    vec![
        Check::new(
            owner == "65534",
            "its user namespace belongs to uid 65534 (nobody), who cloned it",
            format!("its user namespace belongs to uid {owner}, not nobody (65534)"),
        ),
        Check::new(
            setgroups == "deny",
            "setgroups of the container: deny",
            setgroups_fail,
        ),
        map_check(pid, "gid_map", wanted),
        map_check(pid, "uid_map", wanted),
    ]
}
