//! A process, seen through `/proc`: whether it still runs, and when it
//! started. PIDs are reused, so a PID alone never names a process: the
//! start time (field 22 of `/proc/PID/stat`, in clock ticks since boot)
//! tells it from a later one that got the same number.

use crate::support::fs::read_kernel_file;
use nix::sys::wait::WaitStatus;

/// Field 3 (state) and field 22 (start time) of `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(char, u64)> {
    if pid <= 0 {
        return None;
    }
    let stat = read_kernel_file(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields we want come after its last closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// When the process started, or `None` when there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// Whether `pid` is still the process that started at `start_time` and has
/// not exited: a zombie has exited, a different start time means the kernel
/// reused the PID. A `start_time` of 0 means unknown and matches any.
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    match stat(pid) {
        Some((state, start)) => {
            !matches!(state, 'Z' | 'X' | 'x') && (start_time == 0 || start == start_time)
        }
        None => false,
    }
}

/// How many threads the calling process has (`Threads:` in
/// /proc/self/status); `None` if /proc cannot say.
pub fn thread_count() -> Option<usize> {
    let status = crate::support::fs::read_kernel_file("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Buffered output must leave before a fork, or both processes print it.
pub fn flush_stdio() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

/// An exit status as a shell reports it: the code, or 128 + the signal.
pub fn status_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        _ => 125,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};

    #[test]
    fn process_start_time_reads_proc_stat() {
        let me = std::process::id() as i32;
        let mine = start_time(me).unwrap();
        let mut child: Child = Command::new("sleep").arg("1000").spawn().unwrap();
        let theirs = start_time(child.id() as i32).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(theirs >= mine, "a child cannot start before its parent");
        assert_eq!(start_time(0), None);
        assert_eq!(start_time(-1), None);
        // Above the kernel's PID_MAX_LIMIT: never a process.
        assert_eq!(start_time(4_194_305), None);
    }

    #[test]
    fn a_zombie_is_not_alive() {
        use nix::sys::wait::{waitid, Id, WaitPidFlag};
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        let pid = child.id() as i32;
        let start = start_time(pid).unwrap();
        assert!(is_alive(pid, start));
        child.kill().unwrap();
        // Wait for the exit but leave the child unreaped: a zombie.
        waitid(
            Id::Pid(nix::unistd::Pid::from_raw(pid)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        )
        .unwrap();
        assert_eq!(stat(pid).map(|(state, _)| state), Some('Z'));
        assert!(!is_alive(pid, start));
        child.wait().unwrap();
    }
}
