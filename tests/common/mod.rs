//! What every integration test shares: running a chapter binary the way CI
//! does (no terminal, no colour), the snapshot filters, and the checks a
//! test makes from outside the chapter.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod lab;
pub mod registry;

/// Path of a chapter's binary, built by cargo for the tests.
pub fn binary(name: &str) -> PathBuf {
    let var = format!("CARGO_BIN_EXE_{name}");
    std::env::var_os(&var)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/debug")
                .join(name)
        })
}

/// A fresh, pinned state root for one test: the paths it puts in the
/// output are the same on every machine, so snapshots need no filter.
pub fn state_root(test: &str) -> PathBuf {
    let root = PathBuf::from("/run/container-lab-tests").join(test);
    assert!(
        !container_lab::kernel::mounts::has_mounts_under(&root).unwrap(),
        "{} has mounts beneath it; a previous run leaked them",
        root.display()
    );
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    root
}

/// A chapter command as CI runs it: stdin closed, no colour, pinned state.
pub fn chapter(name: &str, state: &Path) -> Command {
    let mut command = Command::new(binary(name));
    command
        .env("NO_COLOR", "1")
        .env(container_lab::engine::dirs::ROOT_ENV, state)
        .env_remove(container_lab::lab::narrate::HOLD_ENV)
        .stdin(Stdio::null());
    command
}

/// `mini-docker ARGS` as the tests run it: the lab's state under `state`,
/// pinned IDs (a named container's ID is the same on every run), no
/// colour, stdin from /dev/null.
pub fn mini_docker(state: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary("mini-docker"));
    command
        .env(container_lab::engine::dirs::ROOT_ENV, state)
        .env(container_lab::engine::store::PIN_IDS_ENV, "1")
        // Tests talk to registries on 127.0.0.1 only.
        .env("CONTAINER_LAB_OFFLINE", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .args(args);
    command
}

/// The live processes (not zombies) whose command line holds `marker`,
/// its arguments joined by NUL.
pub fn processes_with(marker: &str) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .filter(|pid| {
            // A zombie has exited.
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        })
        .collect()
}

/// The processes of container `id`'s supervisor (`mini-docker __supervise
/// ID`): it, its log copier, and an `--init` container's first process.
pub fn supervisors_of(id: &str) -> Vec<i32> {
    processes_with(&format!("__supervise\0{id}"))
}

/// Runs to completion and prints everything first, so a failing assertion
/// can be understood from the test log alone.
pub fn run(mut command: Command) -> Output {
    let output = command
        .output()
        .expect("failed to start the chapter binary");
    println!("--- exit: {:?}", output.status.code());
    println!("--- stdout:\n{}", String::from_utf8_lossy(&output.stdout));
    println!("--- stderr:\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// Redacts only what the kernel chooses: PIDs, namespace inode numbers,
/// and the host's own hostname. Everything the lab chooses stays.
pub fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\b4026\d{6}\b", "[INODE]"),
        // The lab's busybox layer is named by the sha256 of its tar, which
        // the host's busybox-static package decides.
        (r"layers/sha256/[0-9a-f]{64}", "layers/sha256/[DIFF_ID]"),
        (
            r"(pid on the host:\s+|our pid:\s+|the child's pid:\s+|PPid: )\d+",
            "${1}[PID]",
        ),
        (r"NSpid: \d+", "NSpid: [PID]"),
        (r"(comm -p |/proc/|kill |wait )\d+", "${1}[PID]"),
        (r"(host \$ hostname\n\s+)\S+", "${1}[HOST HOSTNAME]"),
        (r"(measured share of one CPU:\s+)\d+%", "${1}[PERCENT]"),
        // ch05's disk: the loop device the kernel picked, the rates measured.
        (r"/dev/loop\d+", "/dev/loop[N]"),
        (r"\b7:\d+\b", "7:[N]"),
        (r"(, measured:\s+)[0-9.]+ MiB/s", "${1}[RATE]"),
        (
            r"round-trip min/avg/max = \S+ ms",
            "round-trip min/avg/max = [TIMES] ms",
        ),
        (r"\d+: eth0@if\d+", "[IFINDEX]: eth0@if[IFINDEX]"),
    ]
}

/// The cgroup this test process runs in, per hierarchy: chosen by the
/// host (a login session, a CI runner), so snapshots show `[OWN CGROUP]`.
pub fn own_cgroup_filters() -> Vec<(String, &'static str)> {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut paths: Vec<String> = text
        .lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .map(|path| path.trim_matches('/').to_string())
        .filter(|path| !path.is_empty())
        .collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    paths.dedup();
    let mut filters: Vec<(String, &'static str)> = paths
        .into_iter()
        .map(|p| {
            (
                format!("/{}/container-lab", regex_escape(&p)),
                "/[OWN CGROUP]/container-lab",
            )
        })
        .collect();
    // Where this process sits in a hierarchy's root, the lab's cgroups are
    // right below it: the same `[OWN CGROUP]`, so that a snapshot does not
    // depend on where the runner put the test.
    filters.push((
        r"/sys/fs/cgroup/([a-z_,]+)/container-lab".to_string(),
        "/sys/fs/cgroup/$1/[OWN CGROUP]/container-lab",
    ));
    filters.push((
        r"/sys/fs/cgroup/container-lab".to_string(),
        "/sys/fs/cgroup/[OWN CGROUP]/container-lab",
    ));
    filters.push((
        r":/container-lab".to_string(),
        ":/[OWN CGROUP]/container-lab",
    ));
    filters
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// `insta::assert_snapshot!` with the lab's filters.
#[macro_export]
macro_rules! assert_chapter_snapshot {
    ($name:expr, $value:expr) => {
        let own = common::own_cgroup_filters();
        let mut filters: Vec<(&str, &str)> = own.iter().map(|(a, b)| (a.as_str(), *b)).collect();
        filters.extend(common::filters());
        insta::with_settings!({
            filters => filters,
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

/// A chapter started in the background, held before one of its steps.
pub struct Held {
    pub child: Child,
    stderr: BufReader<std::process::ChildStderr>,
    pub stderr_text: String,
}

impl Held {
    /// Starts the chapter with the hold hook and waits until it holds.
    pub fn start(mut command: Command, step: usize) -> Held {
        command
            .env(container_lab::lab::narrate::HOLD_ENV, step.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("failed to start the chapter binary");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut held = Held {
            child,
            stderr,
            stderr_text: String::new(),
        };
        let wanted = format!("holding before step {step}");
        loop {
            let mut line = String::new();
            let n = held.stderr.read_line(&mut line).unwrap();
            held.stderr_text.push_str(&line);
            assert!(
                n > 0,
                "the chapter ended before holding at step {step}:\n{}",
                held.stderr_text
            );
            if line.contains(&wanted) {
                return held;
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGINT (what Ctrl-C sends) and collects the outcome.
    pub fn interrupt(mut self) -> (Option<i32>, String, String) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the chapter did not end within 30 s of SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).unwrap();
        self.stderr_text.push_str(&rest);
        println!("--- stdout:\n{stdout}\n--- stderr:\n{}", self.stderr_text);
        (status.code(), stdout, std::mem::take(&mut self.stderr_text))
    }
}

/// A test that fails while the chapter holds must not leave it running:
/// it is interrupted (so it cleans up as on Ctrl-C), then killed.
impl Drop for Held {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The direct children of a process (needs CONFIG_PROC_CHILDREN, which
/// every distribution kernel has).
pub fn children(pid: i32) -> Vec<i32> {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The container's init: the chapter's child whose PID namespace differs.
pub fn container_init(chapter_pid: i32) -> i32 {
    let own = ns_inode("self", "pid");
    children(chapter_pid)
        .into_iter()
        .find(|&pid| ns_inode(&pid.to_string(), "pid") != own)
        .expect("the chapter has no child in a new PID namespace")
}

/// The inode of `/proc/WHO/ns/KIND` (0 when it cannot be read).
pub fn ns_inode(who: &str, kind: &str) -> u64 {
    fs::metadata(format!("/proc/{who}/ns/{kind}"))
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// Every process in the PID namespace with this inode, as (PID, start
/// time) pairs: the start time tells a process from a later one that got
/// the same PID, since both PIDs and namespace inode numbers are reused.
pub fn processes_in_pid_namespace(inode: u64) -> Vec<(i32, u64)> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| ns_inode(&pid.to_string(), "pid") == inode)
        .filter_map(|pid| Some((pid, start_time(pid)?)))
        .collect()
}

/// Which of these processes still exist.
pub fn still_running(processes: &[(i32, u64)]) -> Vec<i32> {
    processes
        .iter()
        .filter(|(pid, started)| start_time(*pid) == Some(*started))
        .map(|(pid, _)| *pid)
        .collect()
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// This test process's mount table, for before/after comparisons.
pub fn host_mountinfo() -> String {
    fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// On a hybrid host: every path in the host's /sys/fs/cgroup tmpfs beneath
/// its v2 mount, out of sight while that is mounted (seen from a mount
/// namespace of a child's own, where it is not). A runtime that was shown
/// an empty directory there instead of the v2 mount could have made
/// directories in it; nothing may land there. Empty elsewhere.
pub fn beneath_hybrid_v2_mount() -> Vec<String> {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.is_dir()
        || fs::read_to_string("/proc/self/mountinfo")
            .is_ok_and(|m| !m.contains(" /sys/fs/cgroup/unified "))
    {
        return Vec::new();
    }
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("umount -l /sys/fs/cgroup/unified && cd /sys/fs/cgroup/unified && find . -mindepth 1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The mount points only, which is what must not change (mount IDs and
/// other fields may be touched by unrelated activity on a shared machine).
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    container_lab::kernel::mounts::parse_mountinfo(mountinfo)
        .unwrap()
        .into_iter()
        .map(|m| format!("{} {}", m.mount_point.display(), m.fs_type))
        .collect()
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Fails the test when run without root, with the reason, in the rare
/// case where the build ran as root but the tests do not.
pub fn assert_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (namespaces, mounts); it was built as root but runs as another user: run the suite with sudo"
    );
}

/// Runs the command in a network namespace of its own, which plays "the
/// host": bridges, veths and firewall rules never touch the machine's.
pub fn in_new_netns(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    unsafe {
        command.pre_exec(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        })
    }
}

/// Runs `work` on a thread that has joined the network namespace behind
/// `netns` (an open /proc/PID/ns/net), so its sockets and the programs it
/// starts live there. Only that thread moves.
pub fn in_netns<T: Send + 'static>(
    netns: &fs::File,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let fd = netns.try_clone().unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("setns into the test's host namespace");
        work()
    })
    .join()
    .unwrap()
}

/// A network namespace that plays "the host" for a whole test: held open
/// by a `sleep` we started, and killed (by its PID) when dropped. Commands
/// made with `command()` start inside it.
pub struct HostNetns {
    holder: Child,
    pub file: fs::File,
}

impl HostNetns {
    pub fn new() -> HostNetns {
        let mut sleep = Command::new("sleep");
        sleep.arg("3600");
        let holder = in_new_netns(&mut sleep).spawn().expect("start sleep");
        let file = fs::File::open(format!("/proc/{}/ns/net", holder.id())).unwrap();
        // Loopback up, as on a real host (published ports answer on it).
        let mut lo = Command::new("ip");
        lo.args(["link", "set", "lo", "up"]);
        let netns = HostNetns { holder, file };
        assert!(netns.command(lo).status().unwrap().success());
        netns
    }

    /// `command`, started inside this namespace.
    pub fn command(&self, mut command: Command) -> Command {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = self.file.as_raw_fd();
        unsafe {
            command.pre_exec(move || {
                let borrowed = std::os::fd::BorrowedFd::borrow_raw(fd);
                nix::sched::setns(borrowed, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
        command
    }

    /// `ip ARGS` in this namespace, its output.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut ip = Command::new("ip");
        ip.args(args);
        let out = self.command(ip).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `nft list tables` in this namespace.
    pub fn nft_tables(&self) -> String {
        let mut nft = Command::new("nft");
        nft.args(["list", "tables"]);
        let out = self.command(nft).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for HostNetns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// How long a test waits for a background process before it gives up: a
/// ceiling for a machine under load (the TCG guest, parallel tests), never
/// a measure of speed.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `check` every 20 ms until it returns Some, for at most `limit`;
/// for waiting on a background process, never for judging speed.
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The cgroup directories a container called `name` would have had.
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    own.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let base = if unified {
                PathBuf::from("/sys/fs/cgroup")
            } else if controllers.is_empty() {
                PathBuf::from("/sys/fs/cgroup/unified")
            } else {
                Path::new("/sys/fs/cgroup").join(controllers.trim_start_matches("name="))
            };
            Some(
                base.join(path.trim_start_matches('/'))
                    .join("container-lab")
                    .join(name),
            )
        })
        .collect()
}

/// Every file under `root` with its type, mode, owner and content (a
/// checksum of it, or the link target): a fingerprint of a tree, to show
/// that it did not change.
pub fn fingerprint(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let key = path.strip_prefix(root).unwrap().display().to_string();
            let body = if meta.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_string()
            } else if meta.is_file() {
                format!(
                    "{} bytes, sum {}",
                    meta.len(),
                    checksum(&fs::read(&path).unwrap())
                )
            } else {
                "special".to_string()
            };
            out.insert(
                key,
                format!("{:o} {}:{} {}", meta.mode(), meta.uid(), meta.gid(), body),
            );
        }
    }
    out
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Ends a foreground `mini-docker run` as a learner would: SIGTERM, again
/// every 200 ms until it exits (it passes each on to the container, and
/// kills it at the third, as a PID 1 without handlers ignores them).
/// Returns what it printed. Safe by PID: the child is ours, not yet reaped.
pub fn end_foreground(mut child: Child) -> Output {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "mini-docker did not end on SIGTERM"
        );
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let waited = wait_for(Duration::from_millis(200), || child.try_wait().unwrap());
        if let Some(status) = waited {
            break status;
        }
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_end(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_end(&mut stderr);
    }
    Output {
        status,
        stdout,
        stderr,
    }
}
