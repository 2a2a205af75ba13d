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

use anyhow::{bail, Context};
use clap::Parser;
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::images::busybox;
use container_lab::engine::oci;
use container_lab::kernel::namespaces::{self, Namespace};
use container_lab::lab::chapters;
use container_lab::lab::cli::{self, ChapterArgs};
use container_lab::lab::narrate::{yes_no, Narrator};
use container_lab::{kernel::signals, lab::privilege};
use nix::unistd::Pid;

/// Who calls whom: one OCI bundle, three runtimes, and podman driving the lab's.
#[derive(Debug, Parser)]
#[command(name = "ch11", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    signals::install_interrupt_handler();
    cli::finish(run(&cli))
}

/// The chapter's directory, removed on every way out.
struct Workdir(PathBuf);

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let chapter = chapters::chapter("ch11").context("ch11 is missing from the manifest")?;
    privilege::ensure_root(
        "ch11",
        "a runtime makes namespaces, mounts and cgroups: it needs root",
    )?;
    let mut book = Narrator::new(chapter, &cli.chapter);
    let dirs = LabDirs::from_env();
    let work = Workdir(dirs.run.join("ch11"));
    let _ = std::fs::remove_dir_all(&work.0);
    std::fs::create_dir_all(&work.0)?;
    let lab_runc = beside_me("lab-runc")?;

    // ANCHOR: bundle
    book.step("write a bundle: a root filesystem and config.json")
        .primitive("the OCI runtime spec: config.json names the process, namespaces, mounts")
        .shell("mkdir bundle; cp -a busybox bundle/rootfs; runc spec")
        .look("nothing runs yet: a bundle is only files, the engine's side of the seam")
        .begin()?;
    let bundle = write_bundle(
        &dirs,
        &work.0,
        &["sh", "-c", "echo hello from PID $$ in $(hostname)"],
    )?;
    let spec = oci::spec::Bundle::load(&bundle)?.spec;
    let linux = spec.linux().as_ref().context("config.json has no linux")?;
    let kinds: Vec<String> = linux
        .namespaces()
        .iter()
        .flatten()
        .map(|n| n.typ().to_string())
        .collect();
    book.fact("bundle", bundle.display());
    book.fact(
        "process.args",
        spec.process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default()
            .join(" "),
    );
    book.fact("linux.namespaces", kinds.join(", "));
    book.fact("mounts", spec.mounts().iter().flatten().count());
    // ANCHOR_END: bundle

    // ANCHOR: three
    book.step("run the same bundle with three runtimes")
        .primitive("each binary reads config.json and makes the same system calls")
        .shell("lab-runc run ID; runc run ID; crun run ID   (in the bundle)")
        .look("the same container, whoever makes it: the bundle is the contract")
        .begin()?;
    for runtime in ["lab-runc", "runc", "crun"] {
        let program = if runtime == "lab-runc" {
            lab_runc.clone()
        } else {
            PathBuf::from(runtime)
        };
        match run_with(&program, runtime, &work.0, &bundle) {
            Ok(output) => book.fact(runtime, output.trim()),
            Err(why) => book.fact(runtime, format!("skipped: {why}")),
        }
    }
    // ANCHOR_END: three

    let lab = |args: &[&str]| -> anyhow::Result<String> {
        let output = Command::new(&lab_runc)
            .arg("--root")
            .arg(work.0.join("state"))
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()?;
        if !output.status.success() {
            bail!("lab-runc {} failed", args.join(" "));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let sleeper = write_bundle(&dirs, &work.0.join("sleeper"), &["sleep", "1000"])?;
    let sleeper_arg = sleeper.to_str().context("bundle path")?;

    // ANCHOR: create
    book.step("create: the container exists, its program does not run yet")
        .primitive("clone(2) into new namespaces; the init blocks in open(2) of exec.fifo")
        .shell("lab-runc create --bundle sleeper ch11; lab-runc state ch11")
        .look("create has exited; its init waits, namespaces made, program not executed")
        .begin()?;
    let created = Command::new(&lab_runc)
        .arg("--root")
        .arg(work.0.join("state"))
        .args(["create", "--bundle", sleeper_arg, "ch11"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()?;
    if !created.success() {
        bail!("lab-runc create failed");
    }
    let state: oci::ContainerState = serde_json::from_str(&lab(&["state", "ch11"])?)?;
    let pid = Pid::from_raw(state.pid);
    book.fact("status", state.status);
    book.fact("init's pid on the host", pid);
    book.fact("its program", read_comm(pid));
    book.fact(
        "exec.fifo there",
        yes_no(work.0.join("state/ch11/exec.fifo").exists()),
    );
    show_namespaces(&book, pid);
    // ANCHOR_END: create

    // ANCHOR: start
    book.step("start: open the fifo, and the init becomes the program")
        .primitive("open(exec.fifo) for reading releases the init's open; it calls execve")
        .shell("lab-runc start ch11; lab-runc state ch11")
        .look("the same PID, now running sleep; the spec's state JSON")
        .begin()?;
    lab(&["start", "ch11"])?;
    let state: oci::ContainerState = serde_json::from_str(&lab(&["state", "ch11"])?)?;
    book.fact("its program", read_comm(pid));
    book.fact(
        "exec.fifo there",
        yes_no(work.0.join("state/ch11/exec.fifo").exists()),
    );
    book.fact("same pid as created", yes_no(state.pid == pid.as_raw()));
    book.output(&state_lines(&state));
    // ANCHOR_END: start

    // ANCHOR: delete
    book.step("kill and delete: the runtime removes what it made")
        .primitive("kill(2) SIGKILL to the init, rmdir of its cgroups, the state directory removed")
        .shell("lab-runc kill ch11 KILL; lab-runc delete ch11")
        .look("nothing of the container is left on the host")
        .begin()?;
    lab(&["kill", "ch11", "KILL"])?;
    let stopped = wait_until(|| {
        lab(&["state", "ch11"])
            .ok()
            .is_some_and(|s| s.contains("\"stopped\""))
    });
    book.fact("stopped", yes_no(stopped));
    lab(&["delete", "ch11"])?;
    book.fact(
        "state directory left",
        yes_no(work.0.join("state/ch11").exists()),
    );
    book.fact(
        "init still there",
        yes_no(container_lab::kernel::process::is_alive(pid.as_raw(), 0)),
    );
    // ANCHOR_END: delete

    // ANCHOR: podman
    book.step("podman drives lab-runc through conmon")
        .primitive("podman forks conmon; conmon runs `lab-runc create`, which exits")
        .shell("podman --runtime lab-runc run -d busybox sleep 1000; ps -o pid,ppid,comm")
        .look("no daemon and no runtime in the tree: conmon, a small monitor, and the container")
        .begin()?;
    match podman_tree(&dirs, &work.0, &lab_runc) {
        Ok(rows) => book.table(&rows),
        Err(why) => book.say(format!("skipped: {why}")),
    }
    // ANCHOR_END: podman

    book.done("the daemon isolates nothing and the runtime does not stay: it makes the namespaces, cgroups and mounts, hands the process over, and exits.");
    Ok(())
}

/// A binary built beside this one (target/debug/lab-runc).
fn beside_me(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} is missing: build it with cargo build --bin {name}",
            path.display()
        );
    }
    Ok(path)
}

/// `dir/bundle`: the lab's busybox tree and the default config, running `args`.
fn write_bundle(dirs: &LabDirs, dir: &Path, args: &[&str]) -> anyhow::Result<PathBuf> {
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
    spec.set_hostname(Some("ch11".into()));
    spec.save(bundle.join("config.json"))?;
    Ok(bundle)
}

/// `RUNTIME run` of the bundle; its output. crun 1.8 refuses a hybrid
/// host's cgroup layout: it runs with the v2 mount out of its sight, and
/// without a cgroup (it would put a relative one at the hierarchy's root).
fn run_with(program: &Path, name: &str, work: &Path, bundle: &Path) -> Result<String, String> {
    let root = work.join(format!("{name}-state"));
    let mut command = if name == "crun" {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"")
            .arg(program)
            .arg("--cgroup-manager=disabled");
        c
    } else {
        Command::new(program)
    };
    let output = command
        .arg("--root")
        .arg(&root)
        .args(["run", &format!("ch11-{name}")])
        .current_dir(bundle)
        .stdin(Stdio::null())
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

/// The init's namespaces against ours.
fn show_namespaces(book: &Narrator, pid: Pid) {
    let mut rows = vec![vec![
        "namespace".to_string(),
        "ours".to_string(),
        "the init's".to_string(),
        String::new(),
    ]];
    for ns in [
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Net,
    ] {
        let ours = namespaces::own_inode(ns).unwrap_or(0);
        let theirs = namespaces::inode(pid, ns).unwrap_or(0);
        let same = if ours == theirs { "same" } else { "different" };
        rows.push(vec![
            ns.proc_name().into(),
            ours.to_string(),
            theirs.to_string(),
            same.into(),
        ]);
    }
    book.table(&rows);
}

/// The state JSON, as `lab-runc state` prints it, with the PID and the
/// time the kernel and the clock chose shown as such.
fn state_lines(state: &oci::ContainerState) -> String {
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
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// podman (with its storage in our directory) runs a container on
/// lab-runc; the processes that hold it, as the host sees them.
fn podman_tree(dirs: &LabDirs, work: &Path, lab_runc: &Path) -> Result<Vec<Vec<String>>, String> {
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
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
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
    podman(&[
        "import",
        tar.to_str().unwrap_or_default(),
        "localhost/ch11:1",
    ])?;
    let result = (|| {
        podman(&[
            "run",
            "-d",
            "--name",
            "ch11",
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
        let pid: i32 = podman(&["inspect", "--format", "{{.State.Pid}}", "ch11"])?
            .parse()
            .map_err(|_| "no pid".to_string())?;
        let conmon = parent_of(pid);
        let mut rows = vec![vec![
            "process".to_string(),
            "its parent".to_string(),
            "what it is".to_string(),
        ]];
        // conmon double-forks: its parent is whoever adopts orphans here.
        let adopter = read_comm(Pid::from_raw(parent_of(conmon)));
        let adopter = if adopter == "podman" {
            adopter
        } else {
            "not podman (it has exited)".into()
        };
        rows.push(vec![
            read_comm(Pid::from_raw(conmon)),
            adopter,
            "the monitor: holds the logs, waits for the exit".into(),
        ]);
        rows.push(vec![
            read_comm(Pid::from_raw(pid)),
            read_comm(Pid::from_raw(conmon)),
            "the container's process (PID 1 inside)".into(),
        ]);
        let ancestors = ancestors(pid);
        for name in ["lab-runc", "podman"] {
            let found = ancestors.iter().any(|a| a == name);
            rows.push(vec![
                name.into(),
                "-".into(),
                format!("among the container's ancestors: {}", yes_no(found)),
            ]);
        }
        Ok(rows)
    })();
    let _ = podman(&["rm", "--force", "--time", "0", "ch11"]);
    let _ = podman(&["system", "reset", "--force"]);
    result
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
