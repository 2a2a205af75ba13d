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
use container_lab::kernel::signals;
use container_lab::lab::chapters;
use container_lab::lab::cli::{self, ChapterArgs};
use container_lab::lab::narrate::Narrator;
use nix::unistd::Pid;

/// A container is just a process: start one and look at it from the host.
#[derive(Debug, Parser)]
#[command(name = "ch01", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    signals::install_interrupt_handler();
    cli::finish(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let chapter = chapters::chapter("ch01").context("ch01 is missing from the manifest")?;
    let mut book = Narrator::new(chapter, &cli.chapter);

    // ANCHOR: spawn
    book.step("start a child process")
        .primitive("fork(2), then execve(2) of /bin/sleep in the child")
        .shell("sleep infinity &")
        .look("the child gets an ordinary PID from the host's PID space")
        .begin()?;
    let child = Command::new("sleep")
        .arg("infinity")
        .stdin(Stdio::null())
        .spawn()
        .context("failed to start `sleep infinity`; is coreutils installed?")?;
    // Kill it on every way out of this function, Ctrl-C and errors included.
    let child = KillOnDrop(child);
    let child_pid = Pid::from_raw(child.0.id() as i32);
    wait_for_exec(child_pid, "sleep");
    book.fact("our pid", std::process::id());
    book.fact("the child's pid", child_pid);
    // ANCHOR_END: spawn

    // ANCHOR: proc
    book.step("find it in the host's process list")
        .primitive("the /proc filesystem: one directory per process")
        .shell(format!("ps -o pid,ppid,comm -p {child_pid}"))
        .look("its parent is us, and nothing marks it as special")
        .begin()?;
    let status = std::fs::read_to_string(format!("/proc/{child_pid}/status"))
        .context("failed to read the child's /proc entry")?;
    for line in status.lines() {
        if ["Name:", "PPid:", "Uid:"]
            .iter()
            .any(|key| line.starts_with(key))
        {
            book.say(line.replace('\t', " "));
        }
    }
    let parent = std::fs::read_to_string(format!("/proc/{child_pid}/stat"))?
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|ppid| ppid.parse::<u32>().ok());
    book.fact(
        "its parent is this chapter",
        if parent == Some(std::process::id()) {
            "yes"
        } else {
            "no"
        },
    );
    // ANCHOR_END: proc

    // ANCHOR: compare
    book.step("compare its namespaces with ours")
        .primitive("readlink /proc/PID/ns/*: each link names a namespace by inode")
        .shell(format!("ls -l /proc/self/ns/ /proc/{child_pid}/ns/"))
        .look("every inode is the same: nothing is isolated yet")
        .begin()?;
    let rows = namespaces::compare(Pid::this(), child_pid);
    print_comparison(&book, &rows);
    let shared = rows.iter().filter(|row| row.shared()).count();
    book.say(format!(
        "{shared} of {} namespaces shared with the host",
        rows.len()
    ));
    // ANCHOR_END: compare

    book.step("end it")
        .primitive("kill(2) with SIGTERM, then wait(2) for its exit status")
        .shell(format!("kill {child_pid}; wait {child_pid}"))
        .look("a process that dies of a signal reports 128 + the signal's number")
        .begin()?;
    let code = child.terminate()?;
    book.fact("exit status", code);

    book.done("a container starts life as exactly this: a process. chapter 2 gives it namespaces of its own.");
    Ok(())
}

/// Prints the namespace comparison as a table.
fn print_comparison(book: &Narrator, rows: &[namespaces::Comparison]) {
    let mut table = vec![vec![
        "namespace".to_string(),
        "ours".to_string(),
        "the child's".to_string(),
        String::new(),
    ]];
    for row in rows {
        table.push(vec![
            row.ns.proc_name().to_string(),
            row.ours.to_string(),
            row.theirs.to_string(),
            if row.shared() { "same" } else { "different" }.to_string(),
        ]);
    }
    book.table(&table);
}

/// `spawn` returns once the exec has begun; the kernel renames the process
/// a moment later. Wait for that, so the listing shows the new program.
fn wait_for_exec(pid: Pid, name: &str) {
    for _ in 0..1000 {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == name {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A child process that is killed if it is still running when dropped.
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn terminate(mut self) -> anyhow::Result<i32> {
        nix::sys::signal::kill(
            Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let status = self.0.wait()?;
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
