//! Chapter 2: namespaces.
//!
//! The same kind of child as in chapter 1, but cloned into new UTS, PID, IPC
//! and mount namespaces. Each step changes or inspects one of them, from the
//! inside and from the host, and the last steps show what stayed shared.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use container_lab::kernel::ipc::{self, MessageQueue};
use container_lab::kernel::namespaces::{self, Namespace};
use container_lab::kernel::{hostname, mounts};
use container_lab::lab;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::narrate::yes_no;
use container_lab::lab::steps::{inside, show};
use nix::unistd::Pid;

/// Namespaces: give a process its own hostname, PIDs, IPC objects and mounts.
#[derive(Debug, Parser)]
#[command(name = "ch02", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
    #[command(flatten)]
    container: ContainerArgs,
}

/// The four namespaces this chapter creates; net, user and cgroup come later.
const NAMESPACES: [Namespace; 4] = [
    Namespace::Uts,
    Namespace::Pid,
    Namespace::Ipc,
    Namespace::Mount,
];

/// Where the chapter's IPC keys start ("LAB" in ASCII).
const QUEUE_KEY_BASE: libc::key_t = 0x4c41_4200;

fn main() -> ExitCode {
    cli::finish(run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut book = lab::begin!(&cli.chapter)?;
    let host_hostname = hostname::get();
    let host_mounts = mounts::mountinfo_text()?;

    book.next(narration::clone())?;
    // ANCHOR: clone
    let container = Container::start(&ContainerSpec {
        namespaces: NAMESPACES.to_vec(),
        main: vec!["sleep".into(), "infinity".into()],
        ..Default::default()
    })?;
    let pid = container.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap_or("NSpid: ?")
        .replace('\t', " ");
    book.fact("pid on the host", pid);
    book.say(format!("{nspid}   (host pid, then pid inside)"));
    // ANCHOR_END: clone

    let name = &cli.container.hostname;
    book.next(narration::uts(name))?;
    // ANCHOR: uts
    inside(&container, || Ok(hostname::set(name)?))?;
    show(&book, &container, &["hostname"])?;
    book.on_host("hostname");
    book.output(&hostname::get());
    // ANCHOR_END: uts

    book.next(narration::proc())?;
    // ANCHOR: proc
    // Before: the mount namespace is a copy of the host's, /proc included.
    inside(&container, || {
        book.fact("processes in /proc before", proc_count());
        Ok(())
    })?;
    inside(&container, mount_fresh_proc)?;
    show(&book, &container, &["ps", "-eo", "pid:5,ppid:5,comm"])?;
    book.say(
        "pid 1 is the container's init; \
         ppid 0 means \"my parent is outside this namespace\"",
    );
    inside(&container, || {
        book.fact("processes in /proc after", proc_count());
        Ok(())
    })?;
    // ANCHOR_END: proc

    book.next(narration::ipc())?;
    // ANCHOR: ipc
    let created = MessageQueue::create_unique(QUEUE_KEY_BASE);
    let queue = created.context("failed to create a message queue")?;
    let key = queue.key;
    book.fact("host sees its queue", yes_no(ipc::queue_exists(key)));
    inside(&container, || {
        let seen = ipc::queue_exists(key);
        book.fact("container sees the queue", yes_no(seen));
        Ok(())
    })?;
    show(&book, &container, &["ipcs", "-q"])?;
    drop(queue);
    // ANCHOR_END: ipc

    book.next(narration::compare())?;
    // ANCHOR: compare
    let rows = namespaces::compare(Pid::this(), container.pid());
    book.namespace_table(&rows, "host", "container");
    // ANCHOR_END: compare

    book.user_command_step(&container, &cli.container.command)?;

    book.next(narration::stop())?;
    // ANCHOR: stop
    let code = container.stop(Duration::from_secs(10))?;
    book.fact("init exited with", code);
    let same_name = hostname::get() == host_hostname;
    book.fact("host hostname unchanged", yes_no(same_name));
    let same_mounts = mounts::mountinfo_text()? == host_mounts;
    book.fact("host mount table unchanged", yes_no(same_mounts));
    // ANCHOR_END: stop

    book.done(
        "the process saw its own hostname, PIDs, IPC objects and mounts, \
         and the host saw no change. chapter 3 gives it its own root filesystem.",
    );
    Ok(())
}

/// Runs inside the container: stop mounts leaking to the host, then mount
/// a /proc that belongs to the new PID namespace over the host's.
// ANCHOR: mount_proc
fn mount_fresh_proc() -> anyhow::Result<()> {
    use nix::mount::MsFlags;
    mounts::make_tree_private()?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mounts::mount_fs("proc", std::path::Path::new("/proc"), flags, None)?;
    Ok(())
}
// ANCHOR_END: mount_proc

/// How many processes `/proc` lists (what `ps` would show), or "the
/// host's" when it is clearly more than the container has.
fn proc_count() -> String {
    let count = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count()
        })
        .unwrap_or(0);
    if count > 3 {
        "more than the container has: it is still the host's /proc".to_string()
    } else {
        format!("{count}: only the container's own")
    }
}

/// What the narrator says before each step: its title, the primitive it
/// applies, the shell command that does the same, and what to look at.
mod narration {
    use super::NAMESPACES;
    use container_lab::kernel::namespaces::{flag_names, unshare_command};
    use container_lab::lab::narrate::Step;

    pub fn clone() -> Step {
        Step::new("clone a child into new namespaces")
            .primitive(format!("clone({})", flag_names(&NAMESPACES)))
            .shell(format!("{} sleep infinity", unshare_command(&NAMESPACES)))
            .look("one process, two PIDs: the host's, and 1 inside its new PID namespace")
    }

    pub fn uts(hostname: &str) -> Step {
        Step::new("give it a hostname of its own")
            .primitive("sethostname(2) inside the new UTS namespace")
            .shell(format!("nsenter --target PID --uts hostname {hostname}"))
            .look("the name changes inside; the host keeps its own")
    }

    pub fn proc() -> Step {
        Step::new("mount a fresh /proc for the new PID namespace")
            .primitive("mount(MS_REC | MS_PRIVATE on /), then mount(\"proc\", \"/proc\")")
            .shell("mount --make-rprivate / && mount -t proc proc /proc")
            .look("ps reads /proc: inside it lists only the container's processes")
    }

    pub fn ipc() -> Step {
        Step::new("make an IPC object on the host")
            .primitive("msgget(2) creates a System V message queue, found by its key")
            .shell("ipcmk --queue   (on the host), then ipcs -q inside")
            .look("the host's queue does not exist in the container's IPC namespace")
    }

    pub fn compare() -> Step {
        Step::new("compare the namespace links again")
            .primitive("readlink /proc/PID/ns/*")
            .shell("ls -l /proc/self/ns/ /proc/PID/ns/")
            .look(
                "uts, pid, ipc and mnt now differ; \
                 cgroup, net, time and user are still the host's",
            )
    }

    pub fn stop() -> Step {
        Step::new("stop the container")
            .primitive(
                "kill(init, SIGTERM): init forwards it to its child, \
                 then exits with its status",
            )
            .shell("kill PID")
            .look("143 is 128 + 15 (SIGTERM); the host's hostname and mounts are as before")
    }
}
