//! Chapter 2: namespaces.
//!
//! The same kind of child as in chapter 1, but cloned into new UTS, PID, IPC
//! and mount namespaces. Each step changes or inspects one of them, from the
//! inside and from the host, and the last steps show what stayed shared.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use container_lab::kernel::ipc::MessageQueue;
use container_lab::kernel::namespaces::{self, Namespace};
use container_lab::lab::chapters;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::narrate::{yes_no, Narrator};
use container_lab::lab::steps::show;
use container_lab::{kernel::ipc, kernel::mounts, kernel::signals, lab::privilege};
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
    let cli = Cli::parse();
    signals::install_interrupt_handler();
    cli::finish(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let chapter = chapters::chapter("ch02").context("ch02 is missing from the manifest")?;
    privilege::ensure_root("ch02", "creating namespaces needs CAP_SYS_ADMIN")?;
    let mut book = Narrator::new(chapter, &cli.chapter);
    let host_hostname = nix::unistd::gethostname()?.to_string_lossy().into_owned();
    let host_mounts = mounts::mountinfo_text()?;

    // ANCHOR: clone
    book.step("clone a child into new namespaces")
        .primitive(format!("clone({})", namespaces::flag_names(&NAMESPACES)))
        .shell(format!(
            "{} sleep infinity",
            namespaces::unshare_command(&NAMESPACES)
        ))
        .look("one process, two PIDs: the host's, and 1 inside its new PID namespace")
        .begin()?;
    let container = Container::start(&ContainerSpec {
        namespaces: NAMESPACES.to_vec(),
        main: vec!["sleep".into(), "infinity".into()],
        env: Vec::new(),
        ..Default::default()
    })?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", container.pid()))?;
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap_or("NSpid: ?");
    book.fact("pid on the host", container.pid());
    book.say(format!(
        "{}   (host pid, then pid inside)",
        nspid.replace('\t', " ")
    ));
    // ANCHOR_END: clone

    // ANCHOR: uts
    book.step("give it a hostname of its own")
        .primitive("sethostname(2) inside the new UTS namespace")
        .shell(format!(
            "nsenter --target PID --uts hostname {}",
            cli.container.hostname
        ))
        .look("the name changes inside; the host keeps its own")
        .begin()?;
    let hostname = cli.container.hostname.clone();
    container.run_inside(move || match nix::unistd::sethostname(&hostname) {
        Ok(()) => 0,
        Err(errno) => {
            eprintln!("error: sethostname failed: {errno}");
            1
        }
    })?;
    show(&book, &container, &["hostname"])?;
    book.on_host("hostname");
    book.output(&nix::unistd::gethostname()?.to_string_lossy());
    // ANCHOR_END: uts

    // ANCHOR: proc
    book.step("mount a fresh /proc for the new PID namespace")
        .primitive("mount(MS_REC | MS_PRIVATE on /), then mount(\"proc\", \"/proc\")")
        .shell("mount --make-rprivate / && mount -t proc proc /proc")
        .look("ps reads /proc: inside it lists only the container's processes")
        .begin()?;
    // Before: the mount namespace is a copy of the host's, /proc included.
    let entries_before = container.run_inside(|| count_processes_in_proc().min(100) as i32)?;
    book.fact("processes in /proc before", more_than_three(entries_before));
    container.run_inside(|| match mount_fresh_proc() {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err}");
            1
        }
    })?;
    show(&book, &container, &["ps", "-eo", "pid:5,ppid:5,comm"])?;
    book.say("pid 1 is the container's init; ppid 0 means \"my parent is outside this namespace\"");
    let entries_after = container.run_inside(|| count_processes_in_proc().min(100) as i32)?;
    book.fact("processes in /proc after", more_than_three(entries_after));
    // ANCHOR_END: proc

    // ANCHOR: ipc
    book.step("make an IPC object on the host")
        .primitive("msgget(2) creates a System V message queue, found by its key")
        .shell("ipcmk --queue   (on the host), then ipcs -q inside")
        .look("the host's queue does not exist in the container's IPC namespace")
        .begin()?;
    let queue =
        MessageQueue::create_unique(QUEUE_KEY_BASE).context("failed to create a message queue")?;
    book.fact("host sees its queue", yes_no(ipc::queue_exists(queue.key)));
    let key = queue.key;
    let seen_inside =
        container.run_inside(move || if ipc::queue_exists(key) { 0 } else { 1 })? == 0;
    book.fact("container sees the queue", yes_no(seen_inside));
    show(&book, &container, &["ipcs", "-q"])?;
    drop(queue);
    // ANCHOR_END: ipc

    // ANCHOR: compare
    book.step("compare the namespace links again")
        .primitive("readlink /proc/PID/ns/*")
        .shell("ls -l /proc/self/ns/ /proc/PID/ns/")
        .look("uts, pid, ipc and mnt now differ; cgroup, net, time and user are still the host's")
        .begin()?;
    let rows = namespaces::compare(Pid::this(), container.pid());
    let mut table = vec![vec![
        "namespace".to_string(),
        "host".into(),
        "container".into(),
        String::new(),
    ]];
    for row in &rows {
        let verdict = if row.shared() { "same" } else { "different" };
        table.push(vec![
            row.ns.proc_name().into(),
            row.ours.to_string(),
            row.theirs.to_string(),
            verdict.into(),
        ]);
    }
    book.table(&table);
    // ANCHOR_END: compare

    book.user_command_step(&container, &cli.container.command)?;

    // ANCHOR: stop
    book.step("stop the container")
        .primitive("kill(init, SIGTERM): init forwards it to its child, then exits with its status")
        .shell("kill PID")
        .look("143 is 128 + 15 (SIGTERM); the host's hostname and mounts are as before")
        .begin()?;
    let code = container.stop(Duration::from_secs(10))?;
    book.fact("init exited with", code);
    let hostname_after = nix::unistd::gethostname()?.to_string_lossy().into_owned();
    book.fact(
        "host hostname unchanged",
        yes_no(hostname_after == host_hostname),
    );
    book.fact(
        "host mount table unchanged",
        yes_no(mounts::mountinfo_text()? == host_mounts),
    );
    // ANCHOR_END: stop

    book.done("the process saw its own hostname, PIDs, IPC objects and mounts, and the host saw no change. chapter 3 gives it its own root filesystem.");
    Ok(())
}

/// How many processes `/proc` lists: what `ps` would show.
fn count_processes_in_proc() -> usize {
    std::fs::read_dir("/proc")
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
        .unwrap_or(0)
}

/// The count, or "the host's" when it is clearly more than the container has.
fn more_than_three(count: i32) -> String {
    if count > 3 {
        "more than the container has: it is still the host's /proc".to_string()
    } else {
        format!("{count}: only the container's own")
    }
}

/// Runs inside the container: stop mounts leaking to the host, then mount
/// a /proc that belongs to the new PID namespace over the host's.
// ANCHOR: mount_proc
fn mount_fresh_proc() -> anyhow::Result<()> {
    mounts::make_tree_private()?;
    let flags = nix::mount::MsFlags::MS_NOSUID
        | nix::mount::MsFlags::MS_NODEV
        | nix::mount::MsFlags::MS_NOEXEC;
    mounts::mount_fs("proc", std::path::Path::new("/proc"), flags, None)?;
    Ok(())
}
// ANCHOR_END: mount_proc
