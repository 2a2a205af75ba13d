//! Chapter 8: hardening, from /proc/PID/status and the mount table.

use container_lab::kernel::hardening::decode_capabilities;
use container_lab::kernel::namespaces::Namespace;
use nix::unistd::Pid;

use super::{Check, Subject};
use crate::evidence;

pub fn verify(s: &Subject, pid: Pid) -> Vec<Check> {
    match s.ex.id {
        "ch08-caps" => caps(pid),
        _ => read_only(pid),
    }
}

/// `0000000000000400: net_bind_service`, or a count past a few.
fn described(hex: &str) -> String {
    let names = decode_capabilities(hex);
    let what = match names.len() {
        0 => "none".to_string(),
        1..=3 => names.join(", "),
        n => format!("{n} capabilities"),
    };
    format!("{hex} ({what})")
}

fn caps(pid: Pid) -> Vec<Check> {
    let only = "0000000000000400";
    let set = |key: &str| evidence::status(pid, key);
    let bounding = set("CapBnd");
    let (effective, permitted) = (set("CapEff"), set("CapPrm"));
    let (inheritable, ambient) = (set("CapInh"), set("CapAmb"));
    let within = |hex: &str| u64::from_str_radix(hex, 16).is_ok_and(|b| b & !0x400 == 0);
    let nnp = set("NoNewPrivs");
    vec![
        Check::new(
            bounding == only,
            format!("CapBnd is {}", described(&bounding)),
            format!(
                "CapBnd is {}: what it executes could get those back; drop all but \
                 NET_BIND_SERVICE from the bounding set",
                described(&bounding)
            ),
        ),
        Check::new(
            effective == only && permitted == only,
            format!("CapEff and CapPrm are {}", described(&effective)),
            format!(
                "CapEff is {} and CapPrm {}: keep only NET_BIND_SERVICE",
                described(&effective),
                described(&permitted)
            ),
        ),
        Check::new(
            within(&inheritable) && within(&ambient),
            format!("CapInh is {inheritable} and CapAmb {ambient}: nothing more to inherit"),
            format!(
                "CapInh is {} and CapAmb {}",
                described(&inheritable),
                described(&ambient)
            ),
        ),
        Check::new(
            nnp == "1",
            "NoNewPrivs is 1: no execve can grant more",
            format!("NoNewPrivs is {nnp}: set no_new_privs (prctl PR_SET_NO_NEW_PRIVS)"),
        ),
    ]
}

fn read_only(pid: Pid) -> Vec<Check> {
    let root = evidence::mount_at(pid, "/");
    let options = root.as_ref().map(|m| m.options.clone()).unwrap_or_default();
    let is_ro = root.as_ref().is_some_and(|m| m.read_only());
    let said = evidence::in_namespaces_of(pid, &[Namespace::Mount], || {
        let probe = std::path::Path::new("/written-by-lab-check");
        match std::fs::write(probe, "") {
            Ok(()) => {
                let _ = std::fs::remove_file(probe);
                "written".to_string()
            }
            Err(err) => err
                .raw_os_error()
                .map(|c| nix::errno::Errno::from_raw(c).desc().to_lowercase())
                .unwrap_or_else(|| err.to_string()),
        }
    });
    vec![
        Check::new(
            is_ro,
            format!("/ is mounted {options}"),
            format!("/ is mounted {options}: remount it read-only"),
        ),
        Check::new(
            said != "written" && !said.is_empty(),
            format!("a write to / from inside is refused: {said}"),
            "a write to / from inside succeeded",
        ),
    ]
}
