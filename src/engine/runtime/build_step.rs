//! A Dockerfile's RUN step in a container of the lab's own runtime: the
//! primitives `mini-docker run` applies (new UTS, PID, IPC, mount and
//! network namespaces; the overlay of the parent's layers with the
//! step's fresh upper directory; pivot_root, /proc, /dev and /sys; a
//! cgroup; Docker's capabilities, seccomp filter and masked paths), with
//! the build's Env, User, WorkingDir and the command as SHELL made it.
//!
//! - Network: none, a namespace with only `lo` (as `RUN --network=none`):
//!   a build step reaches nothing but itself, and a build creates no
//!   bridge, veth or firewall rule on the host.
//! - Cleanup: the overlay is mounted only in the step's own mount
//!   namespace, which dies with the step; the command is PID 1 of its PID
//!   namespace, so everything it started ends with it; the container gets
//!   SIGKILL when the build dies (PR_SET_PDEATHSIG); Ctrl-C kills it. The
//!   cgroup is named in a record under `<run>/builds/` before it is made,
//!   and the next build removes what a killed one left.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::engine::build::{mount_options, run_user, MergedView, RunStep, StepRunner};
use crate::engine::dirs::LabDirs;
use crate::kernel::cgroups::{self, devices, Cgroup};
use crate::kernel::hardening::{self, Profile};
use crate::kernel::init_pipe::{self, Failure, Reporter};
use crate::kernel::namespaces::{self, Cloned, Namespace};
use crate::kernel::{hostname, init, mounts, process, rootfs, signals};

/// The hostname a step sees, BuildKit's.
pub const STEP_HOSTNAME: &str = "buildkitsandbox";

/// The namespaces a step gets: all of `run --network none`'s.
pub const STEP_NAMESPACES: [Namespace; 5] = [
    Namespace::Uts,
    Namespace::Pid,
    Namespace::Ipc,
    Namespace::Mount,
    Namespace::Net,
];

/// Where the output of a step's command goes: each chunk as it comes,
/// stdout and stderr together (BuildKit shows them so).
pub type Output<'a> = &'a (dyn Fn(&[u8]) + Sync);

/// Runs RUN steps as containers. One per build.
pub struct StepContainers<'a> {
    dirs: LabDirs,
    output: Output<'a>,
    steps: AtomicUsize,
}

/// What names a step's cgroup before it exists.
#[derive(Debug, Serialize, Deserialize)]
struct StepRecord {
    builder_pid: i32,
    builder_start_time: u64,
    cgroups: Vec<PathBuf>,
}

impl<'a> StepContainers<'a> {
    /// Removes what builds killed earlier left (their step cgroups).
    pub fn new(dirs: &LabDirs, output: Output<'a>) -> StepContainers<'a> {
        sweep(&records_dir(dirs));
        StepContainers {
            dirs: dirs.clone(),
            output,
            steps: AtomicUsize::new(0),
        }
    }

    fn run_step(&self, step: &RunStep<'_>) -> Result<ExitStatus, String> {
        if step.layers.is_empty() {
            return Err(
                "there is nothing to run it with: the stage has no layer yet \
                 (FROM scratch); COPY a program in first"
                    .into(),
            );
        }
        // Everything the child needs is made before the clone.
        let lowers: Vec<PathBuf> = step.layers.iter().map(|l| l.path.clone()).collect();
        let user = run_user(&MergedView::of_layers(&lowers), step.user)?;
        let mut env: Vec<String> = step.env.to_vec();
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", user.home.as_deref().unwrap_or("/")));
        }
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .map(str::to_string);
        let child = Child {
            options: mount_options(step),
            merged: step.dirs.merged.clone(),
            workdir: step.workdir.to_string(),
            argv: cstrings(step.argv)?,
            env: cstrings(&env)?,
            path,
            uid: user.uid,
            gid: user.gid,
            groups: user.groups.clone(),
            profile: Profile::docker_default(&[], &[])?,
        };

        let n = self.steps.fetch_add(1, Ordering::Relaxed);
        let me = std::process::id() as i32;
        let name = format!("build-{me}-{n}");
        let record = records_dir(&self.dirs).join(format!("{name}.json"));
        let planned = Cgroup::planned_freezable(&name).map_err(|e| e.to_string())?;
        write_record(
            &record,
            &StepRecord {
                builder_pid: me,
                builder_start_time: process::start_time(me).unwrap_or(0),
                cgroups: planned,
            },
        )?;
        let result = self.contained(&name, &child);
        let _ = std::fs::remove_file(&record);
        result
    }

    /// The cgroup, the clone, the wait; the cgroup goes when this returns.
    fn contained(&self, name: &str, child: &Child) -> Result<ExitStatus, String> {
        let cgroup = Cgroup::create_freezable(name).map_err(|e| e.to_string())?;
        cgroup
            .allow_devices(devices::DOCKER_DEFAULT)
            .map_err(|e| e.to_string())?;
        let pipe = |what: &str| {
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("{what} pipe: {e}"))
        };
        let (out_read, out_write) = pipe("output")?;
        let (go_read, go_write) = pipe("go")?;
        let (init_read, report) = init_pipe::pipe().map_err(|e| format!("init pipe: {e}"))?;
        let procs = cgroup.procs_files();
        process::flush_stdio();
        let flags = namespaces::clone_flags(&STEP_NAMESPACES);
        // Safety: the builder runs its steps on one thread; the child only
        // uses what was made above, then executes the command.
        let pid = match unsafe { namespaces::clone_process(flags) } {
            Ok(Cloned::Child) => {
                drop((out_read, go_write, init_read));
                child.run(&procs, go_read, out_write, report)
            }
            Ok(Cloned::Parent { child }) => child,
            Err(e) => return Err(e.to_string()),
        };
        drop((out_write, go_read, report));
        let mut running = Running { pid, done: false };
        // The output, copied as it comes while this thread waits.
        let status = std::thread::scope(|scope| {
            scope.spawn(|| copy_output(out_read, self.output));
            let _ = nix::unistd::write(&go_write, b"go");
            drop(go_write);
            let failure = init_pipe::receive(init_read, |_, _| {});
            if failure.is_err() {
                let _ = kill(pid, Signal::SIGKILL);
            }
            let status = running.wait()?;
            match failure {
                Err(e) => Err(format!("read the init pipe: {e}")),
                Ok(Some(failure)) => Err(failure.message),
                Ok(None) => Ok(status),
            }
        })?;
        drop(cgroup);
        Ok(status)
    }
}

impl StepRunner for StepContainers<'_> {
    fn run(&self, step: &RunStep<'_>) -> io::Result<ExitStatus> {
        self.run_step(step).map_err(io::Error::other)
    }
}

/// The step's container until it has been waited for; killed when dropped
/// before that (an error on the way).
struct Running {
    pid: Pid,
    done: bool,
}

impl Running {
    /// Waits for the step; Ctrl-C (or SIGTERM) kills it and says so.
    fn wait(&mut self) -> Result<ExitStatus, String> {
        let mut killed = false;
        loop {
            if !killed && signals::interrupted().is_some() {
                let _ = kill(self.pid, Signal::SIGKILL);
                killed = true;
            }
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(2)),
                Ok(WaitStatus::Exited(_, code)) => {
                    self.done = true;
                    return Ok(ExitStatus::from_raw((code & 0xff) << 8));
                }
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    self.done = true;
                    if killed {
                        return Err("interrupted: the step's container was killed".into());
                    }
                    return Ok(ExitStatus::from_raw(signal as i32));
                }
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    self.done = true;
                    return Err(format!("wait for the step's container: {e}"));
                }
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

fn copy_output(pipe: OwnedFd, output: Output<'_>) {
    let mut file = std::fs::File::from(pipe);
    let mut buffer = [0u8; 8192];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => output(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// What the cloned child needs, made before the clone.
struct Child {
    options: String,
    merged: PathBuf,
    workdir: String,
    argv: Vec<CString>,
    env: Vec<CString>,
    path: Option<String>,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    profile: Profile,
}

impl Child {
    /// In the clone: the container's set-up, then the command. A failure
    /// goes back on the init pipe. Never returns.
    fn run(&self, procs: &[PathBuf], go: OwnedFd, out: OwnedFd, report: Reporter) -> ! {
        if let Err(message) = self.prepare(procs, go, out, &report) {
            init::fail(&report, Failure::setup(message));
        }
        signals::reset_to_default();
        init::exec_or_report(&self.argv, &self.env, &report)
    }

    // ANCHOR: prepare
    fn prepare(
        &self,
        procs: &[PathBuf],
        go: OwnedFd,
        out: OwnedFd,
        report: &Reporter,
    ) -> Result<(), String> {
        // Dies with the build; the "go" (or end of file, if the build died
        // before this line) comes after that is set.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        let mut word = [0u8; 2];
        if !matches!(nix::unistd::read(go.as_raw_fd(), &mut word), Ok(2)) {
            init::exit_now(125);
        }
        let keep = [go.as_raw_fd(), out.as_raw_fd(), report.as_raw_fd()];
        init::close_fds_except(&keep).map_err(|e| format!("close descriptors: {e}"))?;
        cgroups::join(procs).map_err(|e| e.to_string())?;
        let null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
        for (from, to) in [
            (null.as_raw_fd(), 0),
            (out.as_raw_fd(), 1),
            (out.as_raw_fd(), 2),
        ] {
            nix::unistd::dup2(from, to).map_err(|e| format!("dup2: {e}"))?;
        }
        let fail = |e: &dyn std::fmt::Display| e.to_string();
        mounts::make_tree_private().map_err(|e| fail(&e))?;
        mounts::mount_fs(
            "overlay",
            &self.merged,
            MsFlags::empty(),
            Some(&self.options),
        )
        .map_err(|e| fail(&e))?;
        rootfs::pivot_into(&self.merged).map_err(|e| fail(&e))?;
        rootfs::mount_kernel_filesystems().map_err(|e| fail(&e))?;
        hostname::set(STEP_HOSTNAME).map_err(|e| fail(&e))?;
        hardening::mask_paths().map_err(|e| fail(&e))?;
        std::env::set_current_dir(Path::new(&self.workdir))
            .map_err(|e| format!("WORKDIR {}: {e}", self.workdir))?;
        // execvp searches the PATH of our own environment: the step's.
        match &self.path {
            Some(path) => std::env::set_var("PATH", path),
            None => std::env::remove_var("PATH"),
        }
        self.profile.apply().map_err(|e| fail(&e))?;
        let gid = nix::unistd::Gid::from_raw(self.gid);
        let mut groups = vec![gid];
        groups.extend(self.groups.iter().map(|g| nix::unistd::Gid::from_raw(*g)));
        nix::unistd::setgroups(&groups).map_err(|e| format!("setgroups: {e}"))?;
        nix::unistd::setgid(gid).map_err(|e| format!("setgid: {e}"))?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(self.uid))
            .map_err(|e| format!("setuid: {e}"))?;
        Ok(())
    }
    // ANCHOR_END: prepare
}

fn cstrings(items: &[String]) -> Result<Vec<CString>, String> {
    items
        .iter()
        .map(|s| CString::new(s.as_str()).map_err(|_| format!("a NUL byte in {s:?}")))
        .collect()
}

fn records_dir(dirs: &LabDirs) -> PathBuf {
    dirs.run.join("builds")
}

fn write_record(path: &Path, record: &StepRecord) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("create {}: {e}", dir.display()))?;
    let bytes = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    crate::support::fs::write_replacing(path, &bytes).map_err(|e| e.to_string())
}

/// Removes the cgroups of steps whose build is gone, and their records.
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<StepRecord>(&bytes) else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        if process::is_alive(record.builder_pid, record.builder_start_time) {
            continue;
        }
        match cgroups::remove_leftover(&record.cgroups) {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => log::warn!("a killed build's step cgroup stays: {e}"),
        }
    }
}
