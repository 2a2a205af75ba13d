//! Chapter 11: who calls whom.
//!
//! Between an engine (Docker's, podman, mini-docker) and the system calls
//! sits a standard seam: the OCI runtime. An engine writes a *bundle* (a
//! root filesystem and a config.json) and runs a runtime binary on it:
//! `create`, `start`, `state`, `kill`, `delete`. The runtime is a
//! short-lived program: it makes the container and exits. This chapter
//! runs one bundle with three runtimes, watches `create` and `start` from
//! the host, and lets podman drive the lab's runtime through conmon.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::images::busybox;
use container_lab::engine::oci::{self, ContainerState, Status};
use container_lab::kernel::cgroups::{self, Layout};
use container_lab::kernel::namespaces::{self, Namespace};
use container_lab::kernel::process;
use container_lab::lab;
use container_lab::lab::cli::{self, ChapterArgs};
use container_lab::lab::narrate::yes_no;
use nix::unistd::Pid;

/// Who calls whom: one OCI bundle, three runtimes, and podman driving the lab's.
#[derive(Debug, Parser)]
#[command(name = "ch11", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
}

/// The container's ID, for every runtime of the chapter.
const ID: &str = "ch11";

/// The namespaces the default config.json asks for.
const NAMESPACES: [Namespace; 6] = [
    Namespace::Mount,
    Namespace::Pid,
    Namespace::Uts,
    Namespace::Ipc,
    Namespace::Net,
    Namespace::Cgroup,
];

fn main() -> ExitCode {
    cli::finish(run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut book = lab::begin!(&cli.chapter)?;
    let dirs = LabDirs::from_env();
    let work = Workdir::create(dirs.run.join("ch11"))?;
    let lab_runc = LabRunc::beside_me(work.0.join("state"))?;

    book.next(narration::bundle())?;
    // ANCHOR: bundle
    let hello = ["sh", "-c", "echo hello from PID $$ in $(hostname)"];
    let bundle = write_bundle(&dirs, &work.0, &hello)?;
    let spec = oci::spec::Bundle::load(&bundle)?.spec;
    book.fact("bundle", bundle.display());
    book.fact("process.args", args_of(&spec).join(" "));
    book.fact("linux.namespaces", namespaces_of(&spec).join(", "));
    book.fact("mounts", spec.mounts().iter().flatten().count());
    // ANCHOR_END: bundle

    book.next(narration::three())?;
    // ANCHOR: three
    for runtime in ["lab-runc", "runc", "crun"] {
        let program = match runtime {
            "lab-runc" => lab_runc.program.clone(),
            other => PathBuf::from(other),
        };
        match run_with(&program, runtime, &work.0, &bundle) {
            Ok(output) => book.fact(runtime, output.trim()),
            Err(why) => book.fact(runtime, format!("skipped: {why}")),
        }
    }
    // ANCHOR_END: three

    let sleeper = work.0.join("sleeper");
    let sleeper = write_bundle(&dirs, &sleeper, &["sleep", "1000"])?;

    book.next(narration::create())?;
    // ANCHOR: create
    lab_runc.create(&sleeper, ID)?;
    let state = lab_runc.state(ID)?;
    let pid = Pid::from_raw(state.pid);
    // With its start time, so that its PID handed to another process
    // later (a busy machine wraps around) is not taken for the init.
    let started = process::start_time(pid.as_raw()).unwrap_or(0);
    book.fact("status", state.status);
    book.fact("init's pid on the host", pid);
    book.fact("its program", read_comm(pid));
    book.fact("exec.fifo there", yes_no(lab_runc.fifo(ID).exists()));
    book.fact("its cgroup, beneath ours", cgroup_beneath_ours(pid));
    let mut compared = namespaces::compare(Pid::this(), pid);
    compared.retain(|c| NAMESPACES.contains(&c.ns));
    book.namespace_table(&compared, "ours", "the init's");
    // ANCHOR_END: create

    book.next(narration::start())?;
    // ANCHOR: start
    lab_runc.run(&["start", ID])?;
    let state = lab_runc.state(ID)?;
    book.fact("its program", read_comm(pid));
    book.fact("exec.fifo there", yes_no(lab_runc.fifo(ID).exists()));
    book.fact("same pid as created", yes_no(state.pid == pid.as_raw()));
    book.output(&state_lines(&state));
    // ANCHOR_END: start

    book.next(narration::delete())?;
    // ANCHOR: delete
    lab_runc.run(&["kill", ID, "KILL"])?;
    let stopped = wait_until(|| lab_runc.status(ID) == Some(Status::Stopped));
    book.fact("stopped", yes_no(stopped));
    lab_runc.run(&["delete", ID])?;
    let state_dir = lab_runc.root.join(ID);
    book.fact("state directory left", yes_no(state_dir.exists()));
    let alive = process::is_alive(pid.as_raw(), started);
    book.fact("init still there", yes_no(alive));
    // ANCHOR_END: delete

    book.next(narration::podman())?;
    // ANCHOR: podman
    match podman_tree(&dirs, &work.0, &lab_runc.program) {
        Ok(rows) => book.table(&rows),
        Err(why) => book.say(format!("skipped: {why}")),
    }
    // ANCHOR_END: podman

    book.done(
        "the daemon isolates nothing and the runtime does not stay: it makes \
         the namespaces, cgroups and mounts, hands the process over, and exits.",
    );
    Ok(())
}

/// The chapter's directory, removed on every way out.
struct Workdir(PathBuf);

impl Workdir {
    fn create(path: PathBuf) -> anyhow::Result<Workdir> {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(Workdir(path))
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The lab's runtime, built beside this chapter (target/debug/lab-runc),
/// with its state in the chapter's directory.
struct LabRunc {
    program: PathBuf,
    root: PathBuf,
}

impl LabRunc {
    fn beside_me(root: PathBuf) -> anyhow::Result<LabRunc> {
        let program = std::env::current_exe()?.with_file_name("lab-runc");
        if !program.exists() {
            bail!(
                "{} is missing: build it with cargo build --bin lab-runc",
                program.display()
            );
        }
        Ok(LabRunc { program, root })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        command.arg("--root").arg(&self.root).args(args);
        command.stdin(Stdio::null());
        command
    }

    /// `lab-runc ARGS…`: what it printed, or why it failed.
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.command(args).output()?;
        if !output.status.success() {
            bail!(
                "lab-runc {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `create`, its stdout not ours: the container's init inherits it.
    fn create(&self, bundle: &Path, id: &str) -> anyhow::Result<()> {
        let bundle = bundle.to_str().context("a bundle path in UTF-8")?;
        let status = self
            .command(&["create", "--bundle", bundle, id])
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("lab-runc create {id} failed");
        }
        Ok(())
    }

    fn state(&self, id: &str) -> anyhow::Result<ContainerState> {
        Ok(serde_json::from_str(&self.run(&["state", id])?)?)
    }

    fn status(&self, id: &str) -> Option<Status> {
        self.state(id).ok().map(|s| s.status)
    }

    fn fifo(&self, id: &str) -> PathBuf {
        self.root.join(id).join("exec.fifo")
    }
}

/// `dir/bundle`: the lab's busybox tree and the default config, running `args`.
fn write_bundle(
    dirs: &LabDirs,
    dir: &Path,
    args: &[&str],
) -> anyhow::Result<PathBuf> {
    let (tree, _) = busybox::image(dirs)?;
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle)?;
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&tree)
        .arg(bundle.join("rootfs"))
        .status()?;
    if !copied.success() {
        bail!("cp -a {} failed", tree.display());
    }
    let mut spec = oci::spec::default_spec();
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(false));
        process.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
    }
    spec.set_hostname(Some(ID.into()));
    spec.save(bundle.join("config.json"))?;
    Ok(bundle)
}

fn args_of(spec: &oci_spec::runtime::Spec) -> Vec<String> {
    spec.process()
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default()
}

fn namespaces_of(spec: &oci_spec::runtime::Spec) -> Vec<String> {
    let linux = spec.linux().as_ref();
    let namespaces = linux.and_then(|l| l.namespaces().as_ref());
    namespaces
        .into_iter()
        .flatten()
        .map(|n| n.typ().to_string())
        .collect()
}

/// `RUNTIME run` of the bundle; its output. Each runtime starts in a
/// mount and a cgroup namespace of its own, its cgroup filesystems rooted
/// at ours, so that its cgroup lies beneath ours whatever it makes of the
/// bundle's (runc: beneath its own cgroup; crun: from the root).
fn run_with(
    program: &Path,
    name: &str,
    work: &Path,
    bundle: &Path,
) -> Result<String, String> {
    let root = work.join(format!("{name}-state"));
    let mut command = Command::new(program);
    command
        .arg("--root")
        .arg(&root)
        .args(["run", &format!("{ID}-{name}")])
        .current_dir(bundle)
        .stdin(Stdio::null());
    oci::external::isolate(&mut command).map_err(|e| e.to_string())?;
    let output = command
        .output()
        .map_err(|e| format!("{name} is not installed ({e})"))?;
    if !output.status.success() {
        return Err(format!(
            "{name} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn read_comm(pid: Pid) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Where the init's cgroup is, relative to ours (in the memory hierarchy
/// on v1): runc's rule puts a relative cgroupsPath, or the ID, beneath the
/// runtime's own cgroup.
fn cgroup_beneath_ours(pid: Pid) -> String {
    let controller = match cgroups::detect_layout() {
        Ok(Layout::Unified) => None,
        _ => Some("memory"),
    };
    let ours = cgroups::own_path(controller).unwrap_or_default();
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"));
    let theirs = text.unwrap_or_default().lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = match controller {
            None => names.is_empty(),
            Some(name) => names.split(',').any(|n| n == name),
        };
        wanted.then(|| PathBuf::from(path.trim_start_matches('/')))
    });
    match theirs.as_deref().map(|t| t.strip_prefix(&ours)) {
        Some(Ok(below)) => below.display().to_string(),
        _ => "not beneath ours".into(),
    }
}

/// The state JSON, as `lab-runc state` prints it, with the PID and the
/// time the kernel and the clock chose shown as such.
fn state_lines(state: &ContainerState) -> String {
    let mut shown = state.clone();
    shown.created = "(the time of create)".into();
    let text = serde_json::to_string_pretty(&shown).unwrap_or_default();
    text.replace(
        &format!("\"pid\": {}", state.pid),
        "\"pid\": (the init's pid on the host)",
    )
}

fn wait_until(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// podman (with its storage in our directory) runs a container on
/// lab-runc; the processes that hold it, as the host sees them.
fn podman_tree(
    dirs: &LabDirs,
    work: &Path,
    lab_runc: &Path,
) -> Result<Vec<Vec<String>>, String> {
    let store = work.join("podman");
    // podman wants a run root shorter than 50 characters.
    let runroot = Workdir(PathBuf::from(format!(
        "/tmp/ch11-podman-{}",
        std::process::id()
    )));
    let podman = |args: &[&str]| -> Result<String, String> {
        let output = Command::new("podman")
            .arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(&runroot.0)
            .arg("--tmpdir")
            .arg(store.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .arg("--runtime")
            .arg(lab_runc)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("podman is not installed ({e})"))?;
        if !output.status.success() {
            return Err(format!(
                "podman {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    let (tree, _) = busybox::image(dirs).map_err(|e| e.to_string())?;
    let tar = work.join("busybox.tar");
    let made = Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status();
    if !made.is_ok_and(|s| s.success()) {
        return Err("tar of the busybox tree failed".into());
    }
    let tar = tar.to_str().unwrap_or_default();
    podman(&["import", tar, "localhost/ch11:1"])?;
    let result = (|| {
        podman(&[
            "run",
            "-d",
            "--name",
            ID,
            "--network",
            "none",
            "--cgroups=no-conmon",
            "--cgroup-parent=ch11-podman",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "localhost/ch11:1",
            "sleep",
            "1000",
        ])?;
        let pid = podman(&["inspect", "--format", "{{.State.Pid}}", ID])?;
        let pid: i32 = pid.parse().map_err(|_| "no pid".to_string())?;
        Ok(process_rows(pid))
    })();
    let _ = podman(&["rm", "--force", "--time", "0", ID]);
    let _ = podman(&["system", "reset", "--force"]);
    result
}

/// The container's process, its monitor, and whether podman or lab-runc
/// are among its ancestors.
fn process_rows(pid: i32) -> Vec<Vec<String>> {
    let name = |pid: i32| read_comm(Pid::from_raw(pid));
    let conmon = parent_of(pid);
    // conmon double-forks: its parent is whoever adopts orphans here.
    let adopter = match name(parent_of(conmon)) {
        podman if podman == "podman" => podman,
        _ => "not podman (it has exited)".into(),
    };
    let row = |cells: [&str; 3]| cells.map(String::from).to_vec();
    let mut rows = vec![
        row(["process", "its parent", "what it is"]),
        row([
            &name(conmon),
            &adopter,
            "the monitor: holds the logs, waits for the exit",
        ]),
        row([
            &name(pid),
            &name(conmon),
            "the container's process (PID 1 inside)",
        ]),
    ];
    let ancestors = ancestors(pid);
    for runtime in ["lab-runc", "podman"] {
        let found = ancestors.iter().any(|a| a == runtime);
        let said =
            format!("among the container's ancestors: {}", yes_no(found));
        rows.push(row([runtime, "-", &said]));
    }
    rows
}

fn parent_of(pid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok())
        })
        .unwrap_or(0)
}

/// The names of a process's ancestors, up to PID 1.
fn ancestors(pid: i32) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = parent_of(pid);
    while at > 1 {
        names.push(read_comm(Pid::from_raw(at)));
        at = parent_of(at);
    }
    names
}

/// What the narrator says before each step: its title, the primitive it
/// applies, the shell command that does the same, and what to look at.
mod narration {
    use container_lab::lab::narrate::Step;

    pub fn bundle() -> Step {
        Step::new("write a bundle: a root filesystem and config.json")
            .primitive(
                "the OCI runtime spec: config.json names the process, \
                 namespaces, mounts",
            )
            .shell("mkdir bundle; cp -a busybox bundle/rootfs; runc spec")
            .look(
                "nothing runs yet: a bundle is only files, \
                 the engine's side of the seam",
            )
    }

    pub fn three() -> Step {
        Step::new("run the same bundle with three runtimes")
            .primitive(
                "each binary reads config.json and makes the same system calls",
            )
            .shell("lab-runc run ID; runc run ID; crun run ID   (in the bundle)")
            .look(
                "the same container, whoever makes it: the bundle is the contract",
            )
    }

    pub fn create() -> Step {
        Step::new("create: the container exists, its program does not run yet")
            .primitive(
                "clone(2) into new namespaces; \
                 the init blocks in open(2) of exec.fifo",
            )
            .shell("lab-runc create --bundle sleeper ch11; lab-runc state ch11")
            .look(
                "create has exited; its init waits, namespaces made, \
                 program not executed",
            )
    }

    pub fn start() -> Step {
        Step::new("start: open the fifo, and the init becomes the program")
            .primitive(
                "open(exec.fifo) for reading releases the init's open; \
                 it calls execve",
            )
            .shell("lab-runc start ch11; lab-runc state ch11")
            .look("the same PID, now running sleep; the spec's state JSON")
    }

    pub fn delete() -> Step {
        Step::new("kill and delete: the runtime removes what it made")
            .primitive(
                "kill(2) SIGKILL to the init, rmdir of its cgroups, \
                 the state directory removed",
            )
            .shell("lab-runc kill ch11 KILL; lab-runc delete ch11")
            .look("nothing of the container is left on the host")
    }

    pub fn podman() -> Step {
        Step::new("podman drives lab-runc through conmon")
            .primitive(
                "podman forks conmon; conmon runs `lab-runc create`, which exits",
            )
            .shell(
                "podman --runtime lab-runc run -d busybox sleep 1000; \
                 ps -o pid,ppid,comm",
            )
            .look(
                "no daemon and no runtime in the tree: conmon, a small monitor, \
                 and the container",
            )
    }
}
