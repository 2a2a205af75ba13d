//! Running an exercise as a container would run: as root, in a stand-in
//! host of its own (its own mount namespace, shared inside as on a
//! systemd host but cut off from the machine's, its own UTS namespace
//! with a pinned hostname, and for network exercises its own network
//! namespace), so that a wrong answer changes nothing on the machine.
//! The program hands its container over on a socket and waits; the lab
//! looks, releases it, and removes whatever is left: every process it
//! started (the lab is their subreaper), its cgroups and its run
//! directory, also after a panic, a hang (the time limit) or Ctrl-C.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use container_lab::engine::dirs::LabDirs;
use container_lab::kernel::cgroups::Cgroup;
use container_lab::kernel::signals;
use container_lab::lab::exercises::{Exercise, Given, EXERCISES};
use container_lab::lab::handoff;
use container_lab::lab::privilege;
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::build::{self, Built};
use crate::checkout::Checkout;
use crate::checks::{self, Check, Subject};
use crate::report;

/// Seconds an exercise may run before the lab stops it.
pub const DEFAULT_TIME_LIMIT: u64 = 30;
/// The stand-in host's hostname: what "the host's hostname" is to an exercise.
pub const HOST_NAME: &str = "lab-host";
/// How long a released exercise has to end by itself.
const GRACE: Duration = Duration::from_secs(10);

/// What one check of one exercise came to.
pub struct Outcome {
    pub checks: Vec<Check>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    fn failed(said: String) -> Outcome {
        Outcome {
            checks: vec![Check::fail(said)],
        }
    }
}

/// Everything `check` and `watch` do before the first run: root, as the
/// exercise's chapter needs it, and the rest of its needs.
pub fn prepare(exercises: &[&Exercise]) -> anyhow::Result<()> {
    let why = "an exercise's container needs the chapter's privileges \
               (namespaces, mounts, cgroups)";
    privilege::ensure_root("lab", why)?;
    let mut applied = Vec::new();
    for ex in exercises {
        let chapter = ex.chapter();
        for need in chapter.needs {
            if matches!(need, container_lab::lab::chapters::Need::Root { .. })
                || applied.contains(need)
            {
                continue;
            }
            container_lab::lab::needs::apply(chapter, *need)?;
            applied.push(*need);
        }
    }
    signals::install_interrupt_handler();
    // Orphans of the exercise (a container whose parent died) come to us.
    nix::sys::prctl::set_child_subreaper(true)?;
    Ok(())
}

/// `lab check [ID]`.
pub fn check_one(
    checkout: &Checkout,
    ex: &'static Exercise,
    limit: u64,
) -> anyhow::Result<ExitCode> {
    prepare(&[ex])?;
    let outcome = check_and_report(checkout, ex, limit)?;
    Ok(exit_code(&outcome))
}

pub fn exit_code(outcome: &Outcome) -> ExitCode {
    if signals::interrupted().is_some() {
        ExitCode::from(130)
    } else if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Checks one exercise, prints every check, records the result.
pub fn check_and_report(
    checkout: &Checkout,
    ex: &'static Exercise,
    limit: u64,
) -> anyhow::Result<Outcome> {
    report::heading(&format!(
        "{}: {} (chapter {})",
        ex.id,
        ex.title,
        ex.chapter.trim_start_matches("ch").trim_start_matches('0')
    ));
    report::fact("file", &checkout.display(&ex.path()));
    report::fact("verifies", ex.verifies);
    report::fact("runs", &describe_run(ex, limit));
    println!();
    let outcome = check(checkout, ex, limit, true)?;
    println!();
    let failed = outcome.checks.iter().filter(|c| !c.passed).count();
    let total = outcome.checks.len();
    let mut progress = checkout.progress()?;
    if signals::interrupted().is_some() {
        println!(
            "{}: interrupted; everything the check set up has been removed",
            ex.id
        );
        return Ok(outcome);
    }
    if progress.set_done(ex.id, outcome.passed()) {
        checkout.save(&progress)?;
    }
    if outcome.passed() {
        let next = match progress.next_after(ex) {
            Some(next) => format!("next: {} ({}): lab check {}", next.id, next.path(), next.id),
            None => "that was the last one: every exercise is done".into(),
        };
        report::wrapped(
            "",
            &format!("{}: done, {total} of {total} checks passed. {next}", ex.id),
        );
    } else {
        report::wrapped(
            "",
            &format!(
                "{}: not yet, {failed} of {total} checks failed. `lab hint {}` helps; \
                 save the file and check again.",
                ex.id, ex.id
            ),
        );
    }
    Ok(outcome)
}

/// What the lab gives the exercise to run in.
fn describe_run(ex: &Exercise, limit: u64) -> String {
    let mut own = vec!["mount", "UTS"];
    if ex.gets(Given::Netns) {
        own.push("network");
    }
    let mut text = format!(
        "as root, in a stand-in host with {} namespaces of its own (hostname {HOST_NAME})",
        join_words(&own)
    );
    if ex.gets(Given::Cgroup) {
        text.push_str(", with cgroups the lab made beneath its own");
    }
    text.push_str(&format!("; time limit {limit} s"));
    text
}

fn join_words(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// `lab check --all`: every exercise, one line per chapter, so that the
/// room's progress fits one screen (24 lines) however many there are.
pub fn check_all(checkout: &Checkout, limit: u64) -> anyhow::Result<ExitCode> {
    let all: Vec<&Exercise> = EXERCISES.iter().collect();
    prepare(&all)?;
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    report::heading(&format!(
        "the exercises on {}, checked one by one, time limit {limit} s each",
        if host.is_empty() { "?" } else { &host }
    ));
    println!();
    let mut rows = vec![vec!["chapter".to_string(), "exercises".into()]];
    let mut progress = checkout.progress()?;
    let mut done = 0;
    let mut first_pending: Option<(&Exercise, String)> = None;
    for ex in EXERCISES {
        let outcome = check(checkout, ex, limit, false)?;
        if signals::interrupted().is_some() {
            println!("interrupted; everything the checks set up has been removed");
            return Ok(ExitCode::from(130));
        }
        let passed = outcome.checks.iter().filter(|c| c.passed).count();
        progress.set_done(ex.id, outcome.passed());
        done += usize::from(outcome.passed());
        if !outcome.passed() && first_pending.is_none() {
            let first = outcome.checks.iter().find(|c| !c.passed);
            first_pending = Some((ex, first.map(|c| c.said.clone()).unwrap_or_default()));
        }
        let cell = format!(
            "{} {} {passed}/{}",
            ex.id,
            if outcome.passed() { "done" } else { "pending" },
            outcome.checks.len()
        );
        match rows.last_mut() {
            Some(row) if row[0] == ex.chapter => row.push(cell),
            _ => rows.push(vec![ex.chapter.to_string(), cell]),
        }
    }
    checkout.save(&progress)?;
    report::table(&rows);
    println!();
    println!("{done} of {} done", EXERCISES.len());
    if let Some((ex, said)) = first_pending {
        let room = 76usize.saturating_sub("the first pending, : ".len() + ex.id.len());
        println!(
            "the first pending, {}: {}",
            ex.id,
            shorten(&said, room.max(20))
        );
    }
    Ok(if done == EXERCISES.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn shorten(text: &str, width: usize) -> String {
    let first = text.split(':').next().unwrap_or(text);
    if first.chars().count() <= width {
        first.to_string()
    } else {
        let cut: String = first.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

/// Builds, runs and verifies one exercise; `print` shows each check as it
/// comes (and what the program printed).
pub fn check(
    checkout: &Checkout,
    ex: &'static Exercise,
    limit: u64,
    print: bool,
) -> anyhow::Result<Outcome> {
    let binary = match build::build(checkout, ex)? {
        Built::Binary(binary) => binary,
        Built::Failed(message) => {
            let outcome = Outcome::failed(format!(
                "{} does not compile; the compiler says:",
                ex.path()
            ));
            if print {
                report::check(&outcome.checks[0]);
                print!("{message}");
            }
            return Ok(outcome);
        }
    };
    if signals::interrupted().is_some() {
        return Ok(Outcome::failed("interrupted before it ran".to_string()));
    }
    let outcome = run(ex, &binary, limit)?;
    if print {
        for check in &outcome.checks {
            report::check(check);
        }
        if !outcome.printed.trim().is_empty() {
            println!("         what your program printed:");
            report::quoted(outcome.printed.trim_end());
        }
    }
    Ok(Outcome {
        checks: outcome.checks,
    })
}

struct Ran {
    checks: Vec<Check>,
    printed: String,
}

/// The run itself: the stand-in host, the handoff, the checks, the cleanup.
fn run(ex: &'static Exercise, binary: &Path, limit: u64) -> anyhow::Result<Ran> {
    let dirs = LabDirs::from_env();
    let run_dir = dirs.container_dir(ex.id);
    // A cgroup of the exercise's, beneath the lab's own (removed on drop).
    let cgroup = if ex.gets(Given::Cgroup) {
        Some(Cgroup::create(&format!(
            "lab-{}-{}",
            ex.id,
            std::process::id()
        ))?)
    } else {
        None
    };
    let cgroup_dirs = cgroup.as_ref().map(checks::cgroup_dirs).unwrap_or_default();
    let (lab_end, exercise_end) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    socket::setsockopt(&lab_end, sockopt::PassCred, &true)?;
    let baseline = checks::Baseline::of_lab()?;

    let mut command = Command::new(binary);
    command
        .env(handoff::FD_ENV, HANDOFF_FD.to_string())
        .env(handoff::ID_ENV, ex.id)
        .env(handoff::CGROUPS_ENV, handoff::cgroup_env(&cgroup_dirs))
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stand_in = StandIn::new(ex.gets(Given::Netns), exercise_end.as_raw_fd())?;
    unsafe {
        command.pre_exec(move || stand_in.enter());
    }
    container_lab::kernel::process::flush_stdio();
    let mut child = command
        .spawn()
        .map_err(|err| anyhow::anyhow!("failed to start {}: {err}", binary.display()))?;
    drop(exercise_end);
    let pid = Pid::from_raw(child.id() as i32);
    let output = Output::collect(&mut child);
    // The child is waited for by PID from here on (orphans too).
    drop(child);

    let deadline = Instant::now() + Duration::from_secs(limit);
    let mut checks = Vec::new();
    match wait_for_handoff(&lab_end, pid, deadline) {
        Handoff::Got(handed) => {
            let subject = Subject {
                ex,
                host: pid,
                container: handed.container,
                process: handed.process,
                baseline,
                run_dir: run_dir.clone(),
                cgroups: cgroup_dirs.clone(),
                cgroup_version: cgroup.as_ref().map(|c| c.version()),
                stderr: output.stderr(),
            };
            checks = checks::verify(&subject);
            // Release it: it drops its container and ends.
            let _ = socket::send(lab_end.as_raw_fd(), b"release", socket::MsgFlags::empty());
            if !wait_until(pid, Instant::now() + GRACE) {
                checks.push(Check::fail(format!(
                    "after the lab released it, your program did not end within {} s; \
                     the lab stopped it",
                    GRACE.as_secs()
                )));
            }
        }
        Handoff::Ended(code) => {
            let printed = output.stderr();
            let mut said = format!(
                "your program ended (exit code {code}) before it handed its container to \
                 the lab"
            );
            if code == 101 {
                said.push_str(": it panicked");
            }
            checks.push(Check::fail(said));
            if let Some(why) =
                checks::explain_failure(ex, &printed, cgroup.as_ref().map(|c| c.version()))
            {
                checks.push(Check::fail(why));
            }
        }
        Handoff::TimedOut => checks.push(Check::fail(format!(
            "your program did not hand its container to the lab within the time limit \
             ({limit} s); the lab stopped it and everything it had started"
        ))),
        Handoff::Interrupted => checks.push(Check::fail("interrupted")),
    }
    end_everything(pid);
    let printed = output.finish();
    drop(cgroup);
    if run_dir.exists() {
        if let Err(err) = container_lab::engine::dirs::remove_tree(&run_dir) {
            eprintln!("warning: could not remove {}: {err}", run_dir.display());
        }
    }
    Ok(Ran { checks, printed })
}

/// Where the exercise finds its end of the socket.
const HANDOFF_FD: RawFd = 3;

/// What the forked child does before it becomes the exercise. Only
/// system calls: the lab may have threads (watch), so nothing allocates.
#[derive(Clone, Copy)]
struct StandIn {
    netns: bool,
    socket: RawFd,
}

impl StandIn {
    fn new(netns: bool, socket: RawFd) -> anyhow::Result<StandIn> {
        Ok(StandIn { netns, socket })
    }

    fn enter(&self) -> std::io::Result<()> {
        use nix::mount::{mount, MsFlags};
        use nix::sched::{unshare, CloneFlags};
        // Its own session: Ctrl-C reaches the lab, which ends it properly.
        nix::unistd::setsid()?;
        // And it ends with the lab, whatever ends the lab.
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
        let mut flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS;
        if self.netns {
            flags |= CloneFlags::CLONE_NEWNET;
        }
        unshare(flags)?;
        // Cut off from the machine's mounts, then shared within, as a
        // systemd host is: a container's mount that propagates shows here.
        let none = None::<&str>;
        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_SHARED, none)?;
        container_lab::kernel::hostname::set(HOST_NAME)
            .map_err(|e| std::io::Error::from(e.errno))?;
        if self.socket == HANDOFF_FD {
            nix::fcntl::fcntl(
                self.socket,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )?;
        } else {
            nix::unistd::dup2(self.socket, HANDOFF_FD)?;
        }
        Ok(())
    }
}

/// What the exercise handed over.
struct Handed {
    container: Option<Pid>,
    process: Option<Pid>,
}

enum Handoff {
    Got(Handed),
    Ended(i32),
    TimedOut,
    Interrupted,
}

fn wait_for_handoff(socket: &OwnedFd, pid: Pid, deadline: Instant) -> Handoff {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    loop {
        if signals::interrupted().is_some() {
            return Handoff::Interrupted;
        }
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
            Ok(status) => {
                return Handoff::Ended(container_lab::kernel::process::status_code(status))
            }
            Err(_) => return Handoff::Ended(125),
        }
        if Instant::now() > deadline {
            return Handoff::TimedOut;
        }
        let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(20u16)) {
            Ok(n) if n > 0 => {
                if let Some(handed) = receive(socket.as_raw_fd()) {
                    return Handoff::Got(handed);
                }
            }
            _ => {}
        }
    }
}

/// One message, with the sender's PID as the kernel translated it.
fn receive(fd: RawFd) -> Option<Handed> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixCredentials};
    let mut buf = [0u8; 128];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!(UnixCredentials);
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::empty()).ok()?;
    let sender = msg.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::ScmCredentials(creds) => Some(Pid::from_raw(creds.pid())),
        _ => None,
    });
    let len = msg.bytes;
    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
    if len == 0 {
        return None;
    }
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some("container"), Some(pid)) => Some(Handed {
            container: pid.parse().ok().map(Pid::from_raw),
            process: None,
        }),
        (Some("process"), _) => Some(Handed {
            container: None,
            process: sender,
        }),
        _ => None,
    }
}

/// Waits for the process to end until `deadline`; true when it did.
fn wait_until(pid: Pid, deadline: Instant) -> bool {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
            _ => return true,
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Ends the exercise and every process it left: they are all ours to reap
/// (subreaper), and killing a container's init ends its PID namespace.
fn end_everything(pid: Pid) {
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
    for _ in 0..200 {
        let children = own_children();
        if children.is_empty() {
            return;
        }
        for child in children {
            let _ = kill(child, Signal::SIGKILL);
        }
        while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            if status == WaitStatus::StillAlive {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The lab's children, from every thread's `children` file.
fn own_children() -> Vec<Pid> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return found;
    };
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        found.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .map(Pid::from_raw),
        );
    }
    found
}

/// The exercise's stdout and stderr, read while it runs.
struct Output {
    stdout: std::thread::JoinHandle<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    stderr_reader: std::thread::JoinHandle<()>,
    /// The stderr pipe's read end, while the reader holds it open.
    stderr_fd: Option<RawFd>,
}

impl Output {
    fn collect(child: &mut std::process::Child) -> Output {
        let mut out = child.stdout.take();
        let err = child.stderr.take();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(out) = out.as_mut() {
                let _ = out.read_to_string(&mut text);
            }
            text
        });
        let stderr_fd = err.as_ref().map(|e| e.as_raw_fd());
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let shared = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            use std::os::fd::AsFd;
            let Some(err) = err else { return };
            let file = std::fs::File::from(OwnedFd::from(err));
            let nonblocking = nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK);
            if nix::fcntl::fcntl(file.as_raw_fd(), nonblocking).is_err() {
                return;
            }
            let mut buf = [0u8; 4096];
            loop {
                let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(100u16));
                // Read under the lock: whoever holds it and finds the pipe
                // empty has everything written so far (`stderr`).
                let mut text = shared.lock().unwrap_or_else(|e| e.into_inner());
                match (&file).read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        });
        Output {
            stdout,
            stderr,
            stderr_reader,
            stderr_fd,
        }
    }

    /// Everything it wrote to stderr so far: what it wrote before it
    /// handed over is in the pipe, so the pipe is read until it is empty.
    fn stderr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let text = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
            if self.stderr_reader.is_finished()
                || unread(self.stderr_fd) == 0
                || Instant::now() > deadline
            {
                return text.clone();
            }
            drop(text);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything it printed, once every process that had the pipes is gone.
    fn finish(self) -> String {
        let stdout = self.stdout.join().unwrap_or_default();
        let _ = self.stderr_reader.join();
        let stderr = self.stderr.lock().map(|t| t.clone()).unwrap_or_default();
        format!("{stdout}{stderr}")
    }
}

/// Bytes waiting in a pipe (FIONREAD); 0 once it is closed.
fn unread(fd: Option<RawFd>) -> usize {
    let Some(fd) = fd else { return 0 };
    let mut n: nix::libc::c_int = 0;
    // Safety: FIONREAD writes one int.
    if unsafe { nix::libc::ioctl(fd, nix::libc::FIONREAD, &mut n) } < 0 {
        return 0;
    }
    n.max(0) as usize
}
