//! Chapter 5: cgroups. Written against the cgroup files themselves, so
//! that the checks read what the kernel reads.

use std::fs;
use std::path::PathBuf;

use nix::unistd::Pid;

use super::{Check, Subject};
use crate::evidence;

/// What the exercise asks for: 64 MiB and 16 processes.
const MEMORY: u64 = 64 << 20;
const PIDS: u64 = 16;

pub fn verify(s: &Subject, pid: Pid) -> Vec<Check> {
    match s.ex.id {
        "ch05-limits" => limits(s, pid),
        _ => join(s, pid),
    }
}

fn dir(s: &Subject, controller: &str) -> Option<PathBuf> {
    s.cgroups
        .iter()
        .find(|(c, _)| c == "*" || c == controller)
        .map(|(_, d)| d.clone())
}

fn read(dir: &Option<PathBuf>, file: &str) -> String {
    dir.as_ref()
        .and_then(|d| fs::read_to_string(d.join(file)).ok())
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| "missing".into())
}

fn limits(s: &Subject, pid: Pid) -> Vec<Check> {
    let v2 = s.cgroup_version == Some(2);
    let (file, other, layout) = if v2 {
        (
            "memory.max",
            "memory.limit_in_bytes",
            "cgroup v2 (one hierarchy)",
        )
    } else {
        (
            "memory.limit_in_bytes",
            "memory.max",
            "cgroup v1 (a hierarchy per controller)",
        )
    };
    let memory = dir(s, "memory");
    let pids = dir(s, "pids");
    let memory_value = read(&memory, file);
    let pids_value = read(&pids, "pids.max");
    let memory_ok = memory_value.parse::<u64>() == Ok(MEMORY);
    let unlimited = memory_value == "max" || memory_value.parse::<u64>().is_ok_and(|v| v > 1 << 60);
    let shown = if unlimited {
        format!("{memory_value} (no limit)")
    } else {
        memory_value.clone()
    };
    let mut memory_fail = format!("{file} is {shown}, not {MEMORY} (64 MiB)");
    if s.stderr.contains(other) {
        memory_fail.push_str(&format!(
            ": {other}, which your program wrote, is the other version's file; this host \
             has {layout}, where the memory limit is {file}"
        ));
    }
    let members = memory
        .as_ref()
        .map(|d| evidence::procs_in(d))
        .unwrap_or_default();
    vec![
        Check::new(
            memory_ok,
            format!("{file} is {MEMORY}: 64 MiB, in this host's {layout}"),
            memory_fail,
        ),
        Check::new(
            pids_value.parse::<u64>() == Ok(PIDS),
            format!("pids.max is {PIDS}"),
            format!(
                "pids.max is {pids_value}{}, not {PIDS}",
                if pids_value == "max" {
                    " (no limit)"
                } else {
                    ""
                }
            ),
        ),
        Check::new(
            members.contains(&pid.as_raw()),
            "the container's init is in the cgroup, so the limits hold it",
            "the container's init is not in the cgroup",
        ),
    ]
}

fn join(s: &Subject, pid: Pid) -> Vec<Check> {
    let dirs: Vec<PathBuf> = {
        let mut d: Vec<PathBuf> = s.cgroups.iter().map(|(_, d)| d.clone()).collect();
        d.sort();
        d.dedup();
        d
    };
    let inside = |p: Pid| {
        !dirs.is_empty()
            && dirs
                .iter()
                .all(|d| evidence::procs_in(d).contains(&p.as_raw()))
    };
    let main: Vec<Pid> = evidence::children(pid);
    let where_is = |p: Pid| {
        evidence::cgroups_of(p)
            .into_iter()
            .find(|(c, _)| c.is_empty() || c.split(',').any(|x| x == "pids"))
            .map(|(_, path)| path)
            .unwrap_or_default()
    };
    vec![
        Check::new(
            inside(pid),
            "the container's init is in the lab's cgroup (each cgroup.procs lists it)",
            format!(
                "the container's init is not in the lab's cgroup: /proc/PID/cgroup says {}",
                where_is(pid)
            ),
        ),
        Check::new(
            !main.is_empty() && main.iter().all(|p| inside(*p)),
            "its main process (sleep) is there too: it was started after init joined",
            format!(
                "its main process (sleep) is not there but in {}: a process started before \
                 its parent moved stays where it was; let init join before it starts anything",
                main.first().map(|p| where_is(*p)).unwrap_or_default()
            ),
        ),
    ]
}
