//! What the lab reads about a process from outside, as a person would with
//! `ls -l /proc/PID/ns`, `cat /proc/PID/mountinfo`, `nsenter` and `ip`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use container_lab::kernel::mounts::{self, MountEntry};
use container_lab::kernel::namespaces::{self, Namespace};
use nix::unistd::Pid;

/// The inode behind `/proc/PID/ns/KIND` (0 when the process is gone).
pub fn ns(pid: Pid, kind: Namespace) -> u64 {
    namespaces::inode(pid, kind).unwrap_or(0)
}

/// A line of `/proc/PID/status`, after its `Key:`.
pub fn status(pid: Pid, key: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `/proc/PID/FILE`, trimmed, with runs of blanks made one space.
pub fn proc_file(pid: Pid, file: &str) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("; ")
}

/// The process's mount table, as it sees it.
pub fn mounts(pid: Pid) -> Vec<MountEntry> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .ok()
        .and_then(|t| mounts::parse_mountinfo(&t).ok())
        .unwrap_or_default()
}

/// The super options (after the source) of the top mount at `point`.
pub fn super_options(pid: Pid, point: &Path) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let escaped = point.display().to_string().replace(' ', "\\040");
    text.lines()
        .filter(|l| l.split(' ').nth(4) == Some(escaped.as_str()))
        .filter_map(|l| l.split(" - ").nth(1))
        .filter_map(|tail| tail.split(' ').nth(2))
        .next_back()
        .unwrap_or_default()
        .to_string()
}

/// The top mount at `point` in the process's table.
pub fn mount_at(pid: Pid, point: &str) -> Option<MountEntry> {
    mounts(pid)
        .into_iter()
        .rfind(|m| m.mount_point == Path::new(point))
}

/// The hostname of the process's UTS namespace, read by a thread that
/// joins it (only that thread moves).
pub fn hostname(pid: Pid) -> String {
    let Ok(file) = fs::File::open(format!("/proc/{pid}/ns/uts")) else {
        return String::new();
    };
    std::thread::spawn(move || {
        match nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWUTS) {
            Ok(()) => container_lab::kernel::hostname::get(),
            Err(_) => String::new(),
        }
    })
    .join()
    .unwrap_or_default()
}

/// The PIDs a process's /proc lists, seen through its root and its mount
/// namespace (`/proc/PID/root/proc`).
pub fn pids_in_its_proc(pid: Pid) -> Vec<u32> {
    let mut pids: Vec<u32> = fs::read_dir(format!("/proc/{pid}/root/proc"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// `(device, inode)` of a path.
pub fn identity(path: &Path) -> Option<(u64, u64)> {
    let meta = fs::metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// `ip -j ARGS` in the network namespace of `pid`, parsed.
pub fn ip(pid: Pid, args: &[&str]) -> serde_json::Value {
    use std::os::unix::process::CommandExt;
    let Ok(netns) = fs::File::open(format!("/proc/{pid}/ns/net")) else {
        return serde_json::Value::Null;
    };
    let mut command = Command::new("ip");
    command.arg("-j").args(args);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&netns);
    unsafe {
        command.pre_exec(move || {
            let borrowed = std::os::fd::BorrowedFd::borrow_raw(fd);
            nix::sched::setns(borrowed, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
        });
    }
    let Ok(out) = command.output() else {
        return serde_json::Value::Null;
    };
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// The links of `pid`'s network namespace: `(name, up, ["10.0.0.1/24", …])`.
pub fn links(pid: Pid) -> Vec<Link> {
    let value = ip(pid, &["address", "show"]);
    let Some(list) = value.as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|link| Link {
            name: link["ifname"].as_str().unwrap_or_default().to_string(),
            up: link["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP")),
            addresses: link["addr_info"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|i| i["family"] == "inet")
                        .map(|i| {
                            format!(
                                "{}/{}",
                                i["local"].as_str().unwrap_or_default(),
                                i["prefixlen"]
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    pub up: bool,
    pub addresses: Vec<String>,
}

/// The default route of `pid`'s network namespace: `(gateway, device)`.
pub fn default_route(pid: Pid) -> Option<(String, String)> {
    let value = ip(pid, &["-4", "route", "show", "default"]);
    let route = value.as_array()?.first()?.clone();
    Some((
        route["gateway"].as_str().unwrap_or_default().to_string(),
        route["dev"].as_str().unwrap_or_default().to_string(),
    ))
}

/// The cgroup a process is in, per hierarchy (`/proc/PID/cgroup`).
pub fn cgroups_of(pid: Pid) -> Vec<(String, String)> {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((controllers.to_string(), path.to_string()))
        })
        .collect()
}

/// The PIDs in a cgroup directory's `cgroup.procs`.
pub fn procs_in(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The children of a process.
pub fn children(pid: Pid) -> Vec<Pid> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .map(Pid::from_raw)
        .collect()
}

/// Runs `work` in a forked child that has joined some of `pid`'s
/// namespaces (as `nsenter` does), and returns what it said.
pub fn in_namespaces_of(pid: Pid, kinds: &[Namespace], work: impl FnOnce() -> String) -> String {
    use nix::unistd::{fork, ForkResult};
    use std::io::{Read, Write};
    let Ok((read_end, write_end)) = nix::unistd::pipe() else {
        return String::new();
    };
    container_lab::kernel::process::flush_stdio();
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(read_end);
            let said = match namespaces::enter(pid, kinds) {
                Ok(()) => work(),
                Err(err) => format!("could not join its namespaces: {err}"),
            };
            let _ = fs::File::from(write_end).write_all(said.as_bytes());
            container_lab::kernel::init::exit_now(0)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(write_end);
            let mut said = String::new();
            let _ = fs::File::from(read_end).read_to_string(&mut said);
            let _ = nix::sys::wait::waitpid(child, None);
            said
        }
        Err(_) => String::new(),
    }
}
