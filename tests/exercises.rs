//! The exercises and their checker, `lab`, run as a learner runs them (no
//! terminal, no colour): every reference solution passes its check, every
//! untouched exercise fails it with what a learner should see, typical
//! wrong answers fail with the message that explains them, and a panic, a
//! hang or Ctrl-C leaves nothing behind. Snapshots of `list` and of a
//! failing and a passing `check` are what the book shows.
//!
//! The exercise binaries are built here with cargo (`cargo build -p
//! lab-exercises --bins --examples`); where there is no cargo (the cgroup
//! v2 guest), the ones built by the host's run are used. Needs root.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use container_lab::lab::exercises::{self, EXERCISES};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// target/debug, with every exercise, solution and wrong answer built.
fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let debug = repo().join("target/debug");
        if let Some(cargo) = std::env::var_os("CARGO") {
            let out = Command::new(cargo)
                .args([
                    "build",
                    "--package",
                    exercises::PACKAGE,
                    "--bins",
                    "--examples",
                ])
                .current_dir(repo())
                .stdin(Stdio::null())
                .output()
                .expect("run cargo");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "the exercises do not build:\n{stderr}"
            );
            // As they are shipped, exercises and solutions build cleanly.
            assert!(
                !stderr.contains("warning"),
                "building the exercises warns:\n{stderr}"
            );
        }
        for ex in EXERCISES {
            let exe = debug.join(ex.id);
            assert!(
                exe.is_file(),
                "{} is not built: cargo build -p lab-exercises --bins --examples",
                exe.display()
            );
        }
        debug
    })
}

fn exercise_binary(id: &str) -> PathBuf {
    built().join(id)
}

fn example(name: &str) -> PathBuf {
    built().join("examples").join(name)
}

/// Whether `out` says `wanted`, however the lab wrapped its lines.
fn says(out: &str, wanted: &str) -> bool {
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    words(out).contains(&words(wanted))
}

/// One test's pinned state: the lab's root, the progress file, and the
/// directory of binaries `lab` runs (`LAB_EXERCISE_BINARIES`).
struct Room {
    state: PathBuf,
    bin: PathBuf,
    /// The PID of the last `lab` started: its cgroups are named after it.
    last_lab: std::cell::Cell<u32>,
}

impl Room {
    fn new(test: &str) -> Room {
        let state = common::state_root(&format!("lab-{test}"));
        let bin = state.join("bin");
        fs::create_dir_all(&bin).unwrap();
        Room {
            state,
            bin,
            last_lab: Default::default(),
        }
    }

    /// `lab check ID` will run `binary` for ID.
    fn give(&self, id: &str, binary: &Path) -> &Room {
        let link = self.bin.join(id);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(binary, &link).unwrap();
        self
    }

    fn progress(&self) -> PathBuf {
        self.state.join("progress")
    }

    fn lab(&self, args: &[&str]) -> Command {
        let mut command = Command::new(common::binary("lab"));
        command
            .args(args)
            .env("NO_COLOR", "1")
            .env(container_lab::engine::dirs::ROOT_ENV, &self.state)
            .env("LAB_PROGRESS", self.progress())
            .env("LAB_EXERCISE_BINARIES", &self.bin)
            .env_remove("LAB_CHECKOUT")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let mut command = self.lab(args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = self.spawn(command).wait_with_output();
        println!("--- exit: {:?}", out.status.code());
        println!("--- stdout:\n{}", String::from_utf8_lossy(&out.stdout));
        println!("--- stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    }

    /// Processes still around that were started for this room: they
    /// carry its progress file in their environment.
    fn leftovers(&self) -> Vec<i32> {
        let marker = format!("LAB_PROGRESS={}", self.progress().display());
        fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Starts `lab ARGS` in the background; it is ended (and its
    /// exercise with it, by the parent-death signal) if the test fails.
    fn spawn(&self, mut command: Command) -> Running {
        let child = command.spawn().unwrap();
        self.last_lab.set(child.id());
        Running(Some(child))
    }

    fn assert_clean(&self, id: &str) {
        let left = self.leftovers();
        assert!(left.is_empty(), "processes left behind: {left:?}");
        let run_dir = self.state.join("run/containers").join(id);
        assert!(!run_dir.exists(), "{} was left behind", run_dir.display());
        assert!(
            !container_lab::kernel::mounts::has_mounts_under(&self.state).unwrap(),
            "mounts left beneath {}",
            self.state.display()
        );
        let cgroups = lab_cgroups(&format!("lab-{id}-{}", self.last_lab.get()));
        assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
        // The network exercises' links live in the stand-in's namespace;
        // none may show up in ours.
        let links: Vec<String> = fs::read_dir("/sys/class/net")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.contains("ex06"))
            .collect();
        assert!(links.is_empty(), "links left behind: {links:?}");
    }
}

/// The cgroups named `name` that `lab check` made (`container-lab/lab-ID-PID`
/// beneath the cgroup it runs in, which is ours) and that still exist, in
/// every hierarchy this process is in.
fn lab_cgroups(name: &str) -> Vec<PathBuf> {
    let v2_only = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let mut found = Vec::new();
    for line in fs::read_to_string("/proc/self/cgroup").unwrap().lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let base = match controllers {
            "" if v2_only => PathBuf::from("/sys/fs/cgroup"),
            "" => PathBuf::from("/sys/fs/cgroup/unified"),
            named if named.starts_with("name=") => continue,
            controllers => Path::new("/sys/fs/cgroup").join(controllers),
        };
        let parent = base
            .join(path.trim_start_matches('/'))
            .join("container-lab");
        let Ok(entries) = fs::read_dir(&parent) else {
            continue;
        };
        found.extend(
            entries
                .flatten()
                .filter(|e| e.file_name() == name)
                .map(|e| e.path()),
        );
    }
    found
}

/// A `lab` running in the background, killed when dropped unless waited for.
struct Running(Option<std::process::Child>);

impl Running {
    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.0.as_ref().unwrap().id() as i32)
    }

    fn interrupt(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGINT).unwrap();
    }

    fn take_stdout(&mut self) -> std::process::ChildStdout {
        self.0.as_mut().unwrap().stdout.take().unwrap()
    }

    fn wait_with_output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn every_reference_solution_passes_its_check() {
    common::assert_root();
    let room = Room::new("solutions");
    for ex in EXERCISES {
        room.give(ex.id, &example(&ex.solution_binary()));
        let (code, out) = room.run(&["check", ex.id]);
        assert_eq!(
            code,
            Some(0),
            "{}'s solution fails its check:\n{out}",
            ex.id
        );
        assert!(!out.contains("FAIL"), "{out}");
        assert!(out.contains(&format!("{}: done,", ex.id)), "{out}");
        room.assert_clean(ex.id);
    }
    // Each pass was recorded, in the manifest's order.
    let progress = fs::read_to_string(room.progress()).unwrap();
    let done: Vec<&str> = progress.lines().filter(|l| !l.starts_with('#')).collect();
    let all: Vec<&str> = EXERCISES.iter().map(|e| e.id).collect();
    assert_eq!(done, all);
}

/// What a learner sees first for each untouched exercise: the check that
/// names what is missing, from the kernel's side.
const UNTOUCHED: &[(&str, &str)] = &[
    ("ch02-uts", "FAIL  the child's uts namespace is the host's"),
    ("ch02-proc", "FAIL  the container's /proc is the host's"),
    (
        "ch03-pivot",
        "FAIL  the container's / is still the host's /",
    ),
    ("ch03-kernel-fs", "FAIL  nothing is mounted on /proc inside"),
    ("ch04-overlay", "FAIL  nothing is mounted on merged/"),
    ("ch04-whiteout", "FAIL  upper/ holds no changed etc/motd"),
    ("ch05-limits", "(no limit), not 67108864 (64 MiB)"),
    (
        "ch05-join",
        "FAIL  the container's init is not in the lab's cgroup",
    ),
    ("ch06-loopback", "FAIL  lo is DOWN inside"),
    ("ch06-veth", "FAIL  ex06-peer is still on the host"),
    ("ch07-maps", "FAIL  uid_map of the container is empty"),
    (
        "ch07-rootless",
        "FAIL  setgroups of the container is \"allow\", not \"deny\"",
    ),
    ("ch08-caps", "FAIL  CapBnd is"),
    ("ch08-read-only", "FAIL  / is mounted rw"),
    (
        "ch09-verify",
        "FAIL  blobs/sha256/ holds no layer that hashes to its name",
    ),
    ("ch09-whiteout", "FAIL  layer/ has no etc/issue"),
    ("ch10-layer", "FAIL  layer.tar has no etc/.wh.issue"),
    ("ch10-cache", "FAIL  your copy_key returned an empty key"),
    (
        "ch11-start",
        "FAIL  after create the init already runs sleep",
    ),
    (
        "ch11-state",
        "FAIL  state.json lacks ociVersion, id, status, pid, bundle",
    ),
];

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn every_untouched_exercise_fails_with_what_a_learner_should_see() {
    common::assert_root();
    assert_eq!(
        UNTOUCHED.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        EXERCISES.iter().map(|e| e.id).collect::<Vec<_>>(),
        "UNTOUCHED must list every exercise, in order"
    );
    let room = Room::new("untouched");
    for (id, wanted) in UNTOUCHED {
        room.give(id, &exercise_binary(id));
        let (code, out) = room.run(&["check", id]);
        assert_eq!(code, Some(1), "untouched {id} must fail its check:\n{out}");
        assert!(says(&out, wanted), "{id}: expected {wanted:?} in:\n{out}");
        assert!(out.contains(&format!("{id}: not yet,")), "{out}");
        room.assert_clean(id);
    }
    assert!(
        !room.progress().exists()
            || fs::read_to_string(room.progress())
                .unwrap()
                .lines()
                .all(|l| l.starts_with('#'))
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn typical_wrong_answers_fail_with_the_message_that_explains_them() {
    common::assert_root();
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let other_version = if v2 {
        "memory.limit_in_bytes, which your program wrote, is the other version's file; \
         this host has cgroup v2"
    } else {
        "memory.max, which your program wrote, is the other version's file; this host \
         has cgroup v1"
    };
    let cases: &[(&str, &str, &str)] = &[
        (
            "ch02-uts",
            "wrong-ch02-uts-hostname-first",
            "FAIL  the host's hostname is now \"ex02\", not \"lab-host\": it was set in the \
             host's UTS namespace, before the child had one of its own",
        ),
        (
            "ch02-proc",
            "wrong-ch02-proc-shared",
            "FAIL  the host's mount table gained proc on /proc: the container's mounts \
             propagate to the host",
        ),
        (
            "ch05-limits",
            "wrong-ch05-limits-other-version",
            other_version,
        ),
        (
            "ch07-rootless",
            "wrong-ch07-rootless-gid-map-first",
            "the kernel refused gid_map because setgroups still said allow",
        ),
        (
            "ch08-caps",
            "wrong-ch08-caps-bounding-last",
            "the bounding set could not be changed: dropping from it needs CAP_SETPCAP",
        ),
        (
            "ch09-verify",
            "wrong-ch09-verify-unchecked",
            "a corrupted layer was stored; compare the digests before the rename",
        ),
        (
            "ch10-cache",
            "wrong-ch10-cache-instruction-only",
            "a key of the instruction text alone hits the cache, and the image would keep \
             the old app.py (mini-docker build ran the step again); put the digest of the \
             copied files into the key",
        ),
        (
            "ch11-state",
            "wrong-ch11-state-runtime-pid",
            "is your program itself, the runtime, not the container's init: the state \
             names the init that create forked",
        ),
        (
            "ch11-state",
            "wrong-ch11-state-running",
            "still waits in fifo_open on exec.fifo and has not run the program; until \
             start opens exec.fifo, a state says \"created\"",
        ),
    ];
    let room = Room::new("wrong");
    for (id, wrong, wanted) in cases {
        room.give(id, &example(wrong));
        let (code, out) = room.run(&["check", id]);
        assert_eq!(code, Some(1), "{wrong} must fail:\n{out}");
        assert!(
            says(&out, wanted),
            "{wrong}: expected {wanted:?} in:\n{out}"
        );
        room.assert_clean(id);
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_panic_or_a_hang_fails_and_leaves_nothing_behind() {
    common::assert_root();
    let room = Room::new("panic-hang");
    room.give("ch02-uts", &example("wrong-panics"));
    let (code, out) = room.run(&["check", "ch02-uts"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        says(
            &out,
            "your program ended (exit code 101) before it handed its container to the lab"
        ),
        "{out}"
    );
    assert!(out.contains("it panicked"), "{out}");
    assert!(
        out.contains("| no container yet"),
        "its own message is shown: {out}"
    );
    room.assert_clean("ch02-uts");

    // The hang started a container first: the time limit ends both.
    // In ch05's cgroups, which can go only once its processes have.
    room.give("ch05-limits", &example("wrong-hangs"));
    let (code, out) = room.run(&["check", "ch05-limits", "--time-limit", "2"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("time limit 2 s"), "the limit is said: {out}");
    assert!(
        says(
            &out,
            "did not hand its container to the lab within the time limit (2 s)"
        ),
        "{out}"
    );
    room.assert_clean("ch05-limits");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ctrl_c_during_a_check_removes_everything() {
    common::assert_root();
    let room = Room::new("interrupt");
    room.give("ch05-join", &example("wrong-hangs"));
    let mut command = room.lab(&["check", "ch05-join", "--time-limit", "120"]);
    command.stdout(Stdio::piped());
    let child = room.spawn(command);
    // Wait until the exercise's container runs.
    let running = common::wait_for(common::PATIENCE, || {
        (room.leftovers().len() >= 2).then_some(())
    });
    assert!(running.is_some(), "the exercise never started");
    assert!(
        !lab_cgroups(&format!("lab-ch05-join-{}", child.pid())).is_empty(),
        "the lab made ch05-join's cgroups, and they are what must go"
    );
    child.interrupt();
    let out = child.wait_with_output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(
        says(
            &stdout,
            "interrupted; everything the check set up has been removed"
        ),
        "{stdout}"
    );
    room.assert_clean("ch05-join");
}

/// A file with a syntax error is a failed check that shows the compiler's
/// message, not a broken lab. The broken file is bind-mounted over the
/// exercise in a mount namespace of the lab's own, so the checkout itself
/// never changes.
#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_file_that_does_not_compile_is_a_failed_check_with_the_compilers_message() {
    common::assert_root();
    if std::env::var_os("CARGO").is_none() {
        println!("skipped: building needs cargo, and this run has none (the v2 guest)");
        return;
    }
    built();
    let room = Room::new("compile");
    let broken = room.state.join("uts.rs");
    let pristine = fs::read_to_string(repo().join("exercises/ch02/uts.rs")).unwrap();
    fs::write(&broken, pristine.replace("fn run()", "fn run(")).unwrap();
    let target = repo().join("exercises/ch02/uts.rs");
    let mut command = room.lab(&["check", "ch02-uts"]);
    command.env_remove("LAB_EXERCISE_BINARIES");
    unsafe {
        command.pre_exec(move || {
            use nix::mount::{mount, MsFlags};
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
            let none = None::<&str>;
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)?;
            mount(Some(&broken), &target, none, MsFlags::MS_BIND, none)?;
            Ok(())
        });
    }
    let out = common::run(command);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("FAIL  exercises/ch02/uts.rs does not compile; the compiler says:"),
        "{stdout}"
    );
    assert!(stdout.contains("error"), "the compiler's message: {stdout}");
    assert!(
        stdout.contains("ch02/uts.rs"),
        "it names the file: {stdout}"
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn check_all_summarises_the_room_on_one_screen() {
    common::assert_root();
    let room = Room::new("all");
    for ex in EXERCISES {
        room.give(ex.id, &exercise_binary(ex.id));
    }
    // One finished exercise among untouched ones.
    room.give("ch02-proc", &example("ch02-proc-solution"));
    let mut command = room.lab(&["check", "--all"]);
    pin_hostname(&mut command, "workshop-07");
    let out = common::run(command);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "not everything is done");
    assert_one_screen(&stdout);
    assert!(stdout.contains("the exercises on workshop-07,"), "{stdout}");
    // One line per chapter, naming each of its exercises done or pending.
    for ex in EXERCISES {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{} ", ex.chapter)))
            .unwrap_or_else(|| panic!("no line for {}: {stdout}", ex.chapter));
        let status = if ex.id == "ch02-proc" {
            "done"
        } else {
            "pending"
        };
        assert!(line.contains(&format!("{} {status} ", ex.id)), "{line}");
    }
    let summary = format!(
        "\n1 of {} done\nthe first pending, ch02-uts: the child's uts namespace is the host's\n",
        EXERCISES.len()
    );
    assert!(stdout.ends_with(&summary), "{stdout}");
    let progress = fs::read_to_string(room.progress()).unwrap();
    assert!(progress.lines().any(|l| l == "ch02-proc"), "{progress}");
    // Nothing in it is the host's choice: the first failure is cut before
    // its evidence, and the counts are the lab's.
    assert_chapter_snapshot!("lab-check-all-pending", stdout);

    // With every solution: all done, and the snapshot the book shows.
    for ex in EXERCISES {
        room.give(ex.id, &example(&ex.solution_binary()));
    }
    let mut command = room.lab(&["check", "--all"]);
    pin_hostname(&mut command, "workshop-07");
    let out = common::run(command);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_one_screen(&stdout);
    assert_chapter_snapshot!("lab-check-all", stdout);
}

/// A terminal's screen: 24 lines of 80 columns.
fn assert_one_screen(stdout: &str) {
    let lines = stdout.lines().count();
    assert!(lines <= 24, "{lines} lines, not one screen: {stdout}");
    let widest = stdout.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest <= 80, "a line of {widest} columns: {stdout}");
}

/// Runs the command in a UTS namespace of its own named `name`, as a
/// workshop machine would be.
fn pin_hostname(command: &mut Command, name: &'static str) {
    unsafe {
        command.pre_exec(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS)?;
            nix::unistd::sethostname(name)?;
            Ok(())
        });
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn snapshots_of_list_and_of_a_failing_and_a_passing_check() {
    common::assert_root();
    let room = Room::new("snapshots");
    room.give("ch02-uts", &exercise_binary("ch02-uts"));
    let (code, failing) = room.run(&["check", "ch02-uts"]);
    assert_eq!(code, Some(1));
    assert_chapter_snapshot!("lab-check-failing", failing);

    room.give("ch02-uts", &example("ch02-uts-solution"));
    let (code, passing) = room.run(&["check"]);
    assert_eq!(
        code,
        Some(0),
        "check without an id checks the next pending one"
    );
    assert_chapter_snapshot!("lab-check-passing", passing);

    let (code, list) = room.run(&["list"]);
    assert_eq!(code, Some(0));
    assert_chapter_snapshot!("lab-list", list);
    // Without a terminal the output is plain, NO_COLOR or not.
    let mut command = room.lab(&["list"]);
    command.env_remove("NO_COLOR");
    let plain = common::run(command);
    assert_eq!(String::from_utf8(plain.stdout).unwrap(), list);

    let (code, hint) = room.run(&["hint", "ch02-uts"]);
    assert_eq!(code, Some(0));
    assert_chapter_snapshot!("lab-hint", hint);
}

#[test]
fn solution_is_refused_without_a_terminal() {
    let out = Command::new(common::binary("lab"))
        .args(["solution", "ch02-uts"])
        .env("LAB_PROGRESS", "/nonexistent/progress")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("there is no terminal to ask on"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("Namespace::Uts"),
        "nothing of the answer is shown: {stdout}"
    );
}

/// On a terminal (`script` gives it one; what the test writes is typed
/// there) `lab solution` asks first, and shows the lines only after a yes.
#[test]
fn solution_shows_the_answer_only_after_a_yes_on_a_terminal() {
    use std::io::{Read, Write};
    if Command::new("script").arg("--version").output().is_err() {
        println!("skipped: script (util-linux) is not installed");
        return;
    }
    for (key, shown) in [("n", false), ("y", true)] {
        let lab = common::binary("lab");
        let mut child = Running(Some(
            Command::new("script")
                .args([
                    "-qec",
                    &format!("{} solution ch02-uts", lab.display()),
                    "/dev/null",
                ])
                .env("LAB_PROGRESS", "/nonexistent/progress")
                .env("NO_COLOR", "1")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        ));
        let seen = Arc::new(Mutex::new(String::new()));
        let reader = {
            let seen = seen.clone();
            let mut stdout = child.take_stdout();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            })
        };
        let asked = common::wait_for(common::PATIENCE, || {
            seen.lock().unwrap().contains("[y/N]").then_some(())
        });
        assert!(asked.is_some(), "it never asked: {}", seen.lock().unwrap());
        assert!(
            !seen.lock().unwrap().contains("Namespace::Uts"),
            "nothing is shown before the answer"
        );
        let mut stdin = child.0.as_mut().unwrap().stdin.take().unwrap();
        stdin.write_all(key.as_bytes()).unwrap();
        let status = child.0.as_mut().unwrap().wait().unwrap();
        drop(stdin);
        reader.join().unwrap();
        let text = seen.lock().unwrap().clone();
        assert!(status.success(), "{text}");
        assert_eq!(
            text.contains("+         namespaces: vec![Namespace::Uts, Namespace::Pid],"),
            shown,
            "after {key:?}: {text}"
        );
        if !shown {
            assert!(text.contains("not shown."), "{text}");
        }
    }
}

#[test]
fn an_unknown_exercise_is_named() {
    let out = Command::new(common::binary("lab"))
        .args(["hint", "ch99-nothing"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("there is no exercise \"ch99-nothing\"; `lab list` shows them all"),
        "{stderr}"
    );
}

/// A copy of the exercises' sources, as a learner's checkout, for the
/// commands that write to it.
fn checkout_copy(room: &Room) -> PathBuf {
    let checkout = room.state.join("checkout");
    for ex in EXERCISES {
        for file in [ex.path(), ex.solution_path()] {
            let to = checkout.join(&file);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(repo().join(&file), &to).unwrap();
        }
    }
    checkout
}

#[test]
fn reset_puts_the_file_back_and_marks_it_pending() {
    let room = Room {
        state: std::env::temp_dir().join(format!("lab-reset-{}", std::process::id())),
        bin: PathBuf::new(),
        last_lab: Default::default(),
    };
    let _ = fs::remove_dir_all(&room.state);
    let checkout = checkout_copy(&room);
    let file = checkout.join("exercises/ch02/uts.rs");
    let pristine = fs::read_to_string(&file).unwrap();
    fs::write(&file, "half done\n").unwrap();
    fs::write(room.progress(), "ch02-uts\nch02-proc\n").unwrap();
    let out = Command::new(common::binary("lab"))
        .args(["reset", "ch02-uts"])
        .env("LAB_CHECKOUT", &checkout)
        .env("LAB_PROGRESS", room.progress())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("ch02-uts is as it was, and pending"),
        "{stdout}"
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), pristine);
    let progress = fs::read_to_string(room.progress()).unwrap();
    let done: Vec<&str> = progress.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(done, ["ch02-proc"]);
    fs::remove_dir_all(&room.state).unwrap();
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn watch_checks_again_on_every_save_and_moves_on() {
    common::assert_root();
    let room = Room::new("watch");
    let checkout = checkout_copy(&room);
    room.give("ch02-uts", &exercise_binary("ch02-uts"));
    room.give("ch02-proc", &exercise_binary("ch02-proc"));
    let mut command = room.lab(&["watch", "ch02-uts"]);
    command
        .env("LAB_CHECKOUT", &checkout)
        .stdout(Stdio::piped());
    let mut child = room.spawn(command);
    let seen = Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        let stdout = child.take_stdout();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut text = seen.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        })
    };
    let wait_until = |wanted: &str, times: usize| {
        common::wait_for(common::PATIENCE, || {
            (seen.lock().unwrap().matches(wanted).count() >= times).then_some(())
        })
        .unwrap_or_else(|| panic!("never saw {wanted:?}:\n{}", seen.lock().unwrap()))
    };
    wait_until("waiting for exercises/ch02/uts.rs to be saved", 1);
    assert!(seen.lock().unwrap().contains("ch02-uts: not yet"));
    // The learner fills the gaps and saves.
    room.give("ch02-uts", &example("ch02-uts-solution"));
    let file = checkout.join("exercises/ch02/uts.rs");
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, text).unwrap();
    wait_until("ch02-uts: done, 5 of 5 checks passed", 1);
    // It moved on to the next one, and waits for that.
    wait_until("waiting for exercises/ch02/proc.rs to be saved", 1);
    child.interrupt();
    let status = child.wait_with_output().status;
    reader.join().unwrap();
    println!("{}", seen.lock().unwrap());
    assert_eq!(status.code(), Some(130));
    let progress = fs::read_to_string(room.progress()).unwrap();
    assert!(progress.lines().any(|l| l == "ch02-uts"), "{progress}");
    room.assert_clean("ch02-uts");
}
