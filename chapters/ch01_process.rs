//! Chapter 1: a container is just a process.
//!
//! Before isolating anything, look at an ordinary child process from the
//! host: it has a PID in the host's process list, and every one of its
//! namespace links points at the same namespaces as ours. Every later
//! chapter changes one of those links.

use std::process::{Command, ExitCode, Stdio};

use anyhow::Context;
use clap::Parser;
use container_lab::kernel::namespaces;
use container_lab::lab::{self, cli, cli::ChapterArgs, narrate::yes_no};
use nix::unistd::Pid;

/// A container is just a process: start one and look at it from the host.
#[derive(Debug, Parser)]
#[command(name = "ch01", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
}

fn main() -> ExitCode {
    cli::finish(run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut book = lab::begin!(&cli.chapter)?;

    book.next(narration::spawn())?;
    // ANCHOR: spawn
    let child = Command::new("sleep")
        .arg("infinity")
        .stdin(Stdio::null())
        .spawn()
        .context("failed to start `sleep infinity`; is coreutils installed?")?;
    // Kill it on every way out of this function, Ctrl-C and errors included.
    let child = KillOnDrop(child);
    let pid = Pid::from_raw(child.0.id() as i32);
    wait_for_exec(pid, "sleep");
    book.fact("our pid", std::process::id());
    book.fact("the child's pid", pid);
    // ANCHOR_END: spawn

    book.next(narration::proc(pid))?;
    // ANCHOR: proc
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("failed to read the child's /proc entry")?;
    for line in status.lines() {
        if ["Name:", "PPid:", "Uid:"]
            .iter()
            .any(|k| line.starts_with(k))
        {
            book.say(line.replace('\t', " "));
        }
    }
    // The name in `stat` may hold spaces and ')': count from the last ')'.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let parent = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|ppid| ppid.parse::<u32>().ok());
    let ours = parent == Some(std::process::id());
    book.fact("its parent is this chapter", yes_no(ours));
    // ANCHOR_END: proc

    book.next(narration::compare(pid))?;
    // ANCHOR: compare
    let rows = namespaces::compare(Pid::this(), pid);
    book.namespace_table(&rows, "ours", "the child's");
    let shared = rows.iter().filter(|row| row.shared()).count();
    let total = rows.len();
    book.say(format!(
        "{shared} of {total} namespaces shared with the host"
    ));
    // ANCHOR_END: compare

    book.next(narration::end(pid))?;
    // ANCHOR: end
    let code = child.terminate()?;
    book.fact("exit status", code);
    // ANCHOR_END: end

    book.done(
        "a container starts life as exactly this: a process. \
         chapter 2 gives it namespaces of its own.",
    );
    Ok(())
}

/// `spawn` returns once the exec has begun; the kernel renames the process
/// a moment later. Wait for that, so the listing shows the new program.
fn wait_for_exec(pid: Pid, name: &str) {
    for _ in 0..1000 {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default();
        if comm.trim() == name {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A child process that is killed if it is still running when dropped.
// ANCHOR: kill_on_drop
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    /// `kill PID; wait PID`: SIGTERM, then the status it died with.
    fn terminate(mut self) -> anyhow::Result<i32> {
        use nix::sys::signal::{kill, Signal};
        use std::os::unix::process::ExitStatusExt;
        kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM)?;
        let status = self.0.wait()?;
        // Killed by a signal: 128 + its number, as shells report it.
        let signal = status.signal().unwrap_or(0);
        Ok(status.code().unwrap_or(128 + signal))
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
// ANCHOR_END: kill_on_drop

/// What the narrator says before each step: its title, the primitive it
/// applies, the shell command that does the same, and what to look at.
mod narration {
    use container_lab::lab::narrate::Step;
    use nix::unistd::Pid;

    pub fn spawn() -> Step {
        Step::new("start a child process")
            .primitive("fork(2), then execve(2) of /bin/sleep in the child")
            .shell("sleep infinity &")
            .look("the child gets an ordinary PID from the host's PID space")
    }

    pub fn proc(pid: Pid) -> Step {
        Step::new("find it in the host's process list")
            .primitive("the /proc filesystem: one directory per process")
            .shell(format!("ps -o pid,ppid,comm -p {pid}"))
            .look("its parent is us, and nothing marks it as special")
    }

    pub fn compare(pid: Pid) -> Step {
        Step::new("compare its namespaces with ours")
            .primitive(
                "readlink /proc/PID/ns/*: each link names a namespace by inode",
            )
            .shell(format!("ls -l /proc/self/ns/ /proc/{pid}/ns/"))
            .look("every inode is the same: nothing is isolated yet")
    }

    pub fn end(pid: Pid) -> Step {
        Step::new("end it")
            .primitive("kill(2) with SIGTERM, then wait(2) for its exit status")
            .shell(format!("kill {pid}; wait {pid}"))
            .look("a process that dies of a signal reports 128 + the signal's number")
    }
}
