//! What a `mini-docker run` killed with SIGKILL leaves behind, and how it
//! is recovered: the run is stopped at every point of its start (the test
//! hook `CONTAINER_LAB_HOLD_AT`) and at moments in between (timed kills),
//! killed, and recovered with `rm -f`, with `system prune -f` and with a
//! new run of the same name. After each recovery the host looks as before:
//! the same mounts, links, addresses, nftables tables, cgroups beneath our
//! own, sysctls and state files, and none of the run's processes.
//!
//! Also: corrupt records, and a full state directory.
//!
//! Every test runs every command inside a network namespace of its own that
//! plays "the host"; the tests run one at a time, because `system prune`
//! sweeps the lab's cgroups beneath the cgroup all of them share.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use container_lab::engine::runtime::{HOLD_AT_ENV, HOLD_POINTS, HOLD_REPORT_ENV};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Lab {
    state: PathBuf,
    host: common::HostNetns,
}

impl Lab {
    fn new(test: &str) -> Lab {
        common::assert_root();
        Lab::at(common::state_root(test))
    }

    fn at(state: PathBuf) -> Lab {
        Lab {
            state,
            host: common::HostNetns::new(),
        }
    }

    fn id(&self, name: &str) -> String {
        let all: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        all[0]["Id"].as_str().unwrap().to_string()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = common::mini_docker(&self.state, args);
        command.env_remove(HOLD_AT_ENV);
        self.host.command(command)
    }

    fn md(&self, args: &[&str]) -> Output {
        println!("--- mini-docker {}", args.join(" "));
        common::run(self.command(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.md(args);
        assert_eq!(out.status.code(), Some(0), "mini-docker {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `mini-docker ARGS`, stopped at `point` of its start: the run says
    /// so in a file of the test's (outside the lab's state, which the
    /// fingerprints compare).
    // The child is returned, and waited for by `Held::kill`.
    #[allow(clippy::zombie_processes)]
    fn held(&self, args: &[&str], point: &str) -> Held {
        let report = std::env::temp_dir().join(format!(
            "lab-held-{}-{point}-{}",
            std::process::id(),
            self.state.file_name().unwrap().to_string_lossy()
        ));
        let _ = fs::remove_file(&report);
        let mut command = self.command(args);
        command
            .env(HOLD_AT_ENV, point)
            .env(HOLD_REPORT_ENV, &report)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let wanted = format!("holding at {point}");
        let holding = common::wait_for(common::PATIENCE, || {
            if fs::read_to_string(&report).is_ok_and(|text| text.contains(&wanted)) {
                return Some(true);
            }
            child.try_wait().unwrap().map(|_| false)
        });
        let _ = fs::remove_file(&report);
        if holding != Some(true) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the run did not hold at {point}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stderr = BufReader::new(child.stderr.take().unwrap());
        Held {
            child,
            _stderr: stderr,
        }
    }

    /// Everything a run could leave on this test's host.
    fn fingerprint(&self) -> Fingerprint {
        let state = self.state.to_str().unwrap();
        let mut cat = Command::new("cat");
        cat.arg("/proc/sys/net/ipv4/ip_forward");
        let forward = self.host.command(cat).output().unwrap().stdout;
        Fingerprint {
            mounts: common::mount_points(&common::host_mountinfo())
                .into_iter()
                .filter(|m| m.contains(state))
                .collect(),
            links: self.host.ip(&["-br", "link"]),
            addresses: self.host.ip(&["-br", "addr"]),
            tables: self.host.nft_tables(),
            forwarding: String::from_utf8_lossy(&forward).into_owned(),
            cgroups: lab_cgroups(),
            files: common::fingerprint(&self.state)
                .into_iter()
                .filter(|(path, _)| !path.starts_with("lib/images"))
                .collect(),
        }
    }
}

impl Drop for Lab {
    /// A failed test still removes its containers.
    fn drop(&mut self) {
        if let Ok(out) = self.command(&["ps", "-a", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.command(&["rm", "-f", id]).output();
            }
        }
        let _ = self.command(&["system", "prune", "-f"]).output();
    }
}

#[derive(Debug, PartialEq)]
struct Fingerprint {
    mounts: Vec<String>,
    links: String,
    addresses: String,
    tables: String,
    forwarding: String,
    cgroups: Vec<PathBuf>,
    files: BTreeMap<String, String>,
}

/// The lab's cgroup directories beneath our own, in every hierarchy: the
/// `container-lab` parents and everything in them.
fn lab_cgroups() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in common::cgroup_dirs("x") {
        let parent = dir.parent().unwrap().to_path_buf();
        let Ok(entries) = fs::read_dir(&parent) else {
            continue;
        };
        found.push(parent);
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// A run stopped at a point of its start; its stderr stays open until it
/// is killed, as a terminal would.
struct Held {
    child: Child,
    _stderr: BufReader<std::process::ChildStderr>,
}

impl Held {
    fn kill(mut self) {
        kill(&mut self.child);
    }
}

fn kill(child: &mut Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
}

/// Processes whose command line has `--name NAME`: the run, and the log
/// copier it forked (which keeps its command line).
fn processes_named(name: &str) -> Vec<i32> {
    common::processes_with(&format!("--name\0{name}\0"))
}

/// Every process in the host namespace that runs `comm`.
fn in_host_netns(lab: &Lab, comm: &str) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let ours = lab.host.file.metadata().unwrap().ino();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| common::ns_inode(&pid.to_string(), "net") == ours)
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

/// The host is as it was, and nothing of the run called `name` runs.
fn assert_recovered(lab: &Lab, before: &Fingerprint, name: &str, what: &str) {
    let gone = common::wait_for(common::PATIENCE, || {
        processes_named(name).is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "{what}: processes of {name} are left: {:?}",
        processes_named(name)
    );
    let after = lab.fingerprint();
    assert_eq!(&after, before, "{what}: the host is not as it was");
}

const RUN: [&str; 5] = ["-p", "8080:80", "busybox", "sleep", "300"];

fn run_args<'a>(extra: &[&'a str], name: &'a str) -> Vec<&'a str> {
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--name", name]);
    args.extend_from_slice(&RUN);
    args
}

/// A first run, so that what every run leaves by design (the image, the
/// lock files) is there before the fingerprint is taken.
fn warm_up(lab: &Lab) -> Fingerprint {
    lab.ok(&[
        "run", "--rm", "--name", "warm", "-p", "8080:80", "busybox", "true",
    ]);
    lab.fingerprint()
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_run_killed_at_any_point_of_its_start_is_recovered_by_rm_f() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("recovery-rm");
    let before = warm_up(&lab);
    for point in HOLD_POINTS {
        let name = "victim";
        lab.held(&run_args(&[], name), point).kill();
        // The record is there, and says the container is not running.
        let ps = lab.ok(&["ps", "-a"]);
        assert!(ps.contains(name), "{point}: {ps}");
        assert!(!lab.ok(&["ps"]).contains(name), "{point}");
        lab.ok(&["rm", "-f", name]);
        assert_recovered(
            &lab,
            &before,
            name,
            &format!("rm -f after a kill at {point}"),
        );
        // The name is free again: a run with it works and leaves nothing.
        lab.ok(&[
            "run", "--rm", "--name", name, "-p", "8080:80", "busybox", "true",
        ]);
        assert_recovered(&lab, &before, name, &format!("the run after {point}"));
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_run_killed_at_any_point_of_its_start_is_recovered_by_system_prune() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("recovery-prune");
    let before = warm_up(&lab);
    for point in HOLD_POINTS {
        let name = "pruned";
        lab.held(&run_args(&[], name), point).kill();
        let out = lab.ok(&["system", "prune", "-f"]);
        assert!(
            out.contains("Total reclaimed containers: 1"),
            "{point}: {out}"
        );
        assert_eq!(lab.ok(&["ps", "-a", "-q"]), "", "{point}");
        assert_recovered(
            &lab,
            &before,
            name,
            &format!("prune after a kill at {point}"),
        );
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_killed_rm_run_is_recovered_by_a_new_run_with_its_name() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("recovery-rerun");
    let before = warm_up(&lab);
    for point in HOLD_POINTS {
        let name = "again";
        lab.held(&run_args(&["--rm"], name), point).kill();
        // Nobody will remove a --rm container whose run died: the next run
        // with its name reclaims what it left, then takes the name.
        let out = lab.md(&[
            "run", "--rm", "--name", name, "-p", "8080:80", "busybox", "true",
        ]);
        assert_eq!(out.status.code(), Some(0), "the run after {point}");
        assert_eq!(lab.ok(&["ps", "-a", "-q"]), "", "{point}");
        assert_recovered(
            &lab,
            &before,
            name,
            &format!("a new run after a kill at {point}"),
        );
    }
    // Without --rm the record stays the container's, as in Docker.
    lab.held(&run_args(&[], "kept"), "cgroup").kill();
    let out = lab.md(&["run", "--name", "kept", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the container name \"/kept\" is already in use"),
        "{stderr}"
    );
    lab.ok(&["rm", "-f", "kept"]);
    assert_recovered(&lab, &before, "kept", "rm -f of the kept record");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn runs_killed_at_moments_in_between_are_recovered() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("recovery-timed");
    let began = std::time::Instant::now();
    let before = warm_up(&lab);
    // From before the record to a running container, in 40 steps over as
    // long as a whole run takes here: the moments between the hook's
    // points (inside the network set-up, say). The time only spreads the
    // kills; what is checked after each is the same.
    let step = (began.elapsed() / 40).max(Duration::from_millis(2));
    let name = "timed";
    for attempt in 0..40u32 {
        let mut run = lab.command(&run_args(&[], name));
        run.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = run.spawn().unwrap();
        std::thread::sleep(step * attempt);
        kill(&mut child);
        // An nft started by the run finishes its change after the kill.
        let settled = common::wait_for(common::PATIENCE, || {
            in_host_netns(&lab, "nft").is_empty().then_some(())
        });
        assert!(settled.is_some(), "nft does not finish");
        let out = lab.md(&["rm", "-f", name]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(0) {
            // Killed before its record was whole: no container of that
            // name, maybe a temporary, which the next create sweeps.
            assert!(
                stderr.contains("no such container"),
                "attempt {attempt}: {stderr}"
            );
            lab.ok(&["run", "--rm", "--name", name, "busybox", "true"]);
        }
        let when = format!("a kill after {:?}", step * attempt);
        assert_recovered(&lab, &before, name, &when);
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn an_empty_cgroup_left_by_a_dead_run_is_reclaimed() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("recovery-cgroup");
    let before = warm_up(&lab);
    // What a run killed by an older version left: the cgroup directories,
    // no record. (Made where the lab makes them, beneath our own cgroup.)
    let dirs =
        |name: &str| container_lab::kernel::cgroups::Cgroup::planned_freezable(name).unwrap();
    let leftover = dirs("reused");
    for dir in &leftover {
        fs::create_dir_all(dir).unwrap();
    }
    // A new run with the name takes them back.
    lab.ok(&["run", "--rm", "--name", "reused", "busybox", "true"]);
    assert_recovered(&lab, &before, "reused", "the run over a leftover cgroup");
    // `system prune` leaves a cgroup that no record of its data root names:
    // it may be another data root's start in progress (empty until its init
    // joins). A run of that name takes it back.
    let orphans = dirs("orphaned");
    for dir in &orphans {
        fs::create_dir_all(dir).unwrap();
    }
    lab.ok(&["system", "prune", "-f"]);
    for dir in &orphans {
        assert!(
            dir.exists(),
            "prune removed {}, which no record names",
            dir.display()
        );
    }
    lab.ok(&["run", "--rm", "--name", "orphaned", "busybox", "true"]);
    assert_recovered(&lab, &before, "orphaned", "a run over a cgroup prune left");
    // But never one with a process in it: a container that still runs.
    let busy = dirs("busy");
    for dir in &busy {
        fs::create_dir_all(dir).unwrap();
    }
    let mut sleeper = Command::new("sleep").arg("300").spawn().unwrap();
    let procs = busy[0].join("cgroup.procs");
    fs::write(&procs, sleeper.id().to_string()).unwrap();
    let out = lab.md(&["run", "--rm", "--name", "busy", "busybox", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("is already there with processes in it"),
        "{stderr}"
    );
    lab.ok(&["system", "prune", "-f"]);
    assert!(busy[0].exists(), "prune removed a cgroup in use");
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "prune killed its process"
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let empty = common::wait_for(common::PATIENCE, || {
        fs::read_to_string(&procs)
            .unwrap_or_default()
            .trim()
            .is_empty()
            .then_some(())
    });
    assert!(empty.is_some());
    // Empty now: the next run of the name takes it.
    lab.ok(&["run", "--rm", "--name", "busy", "busybox", "true"]);
    assert_recovered(&lab, &before, "busy", "after the busy cgroup");
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_corrupt_record_is_skipped_with_a_warning_and_rm_f_removes_it() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("recovery-corrupt");
    let before = warm_up(&lab);
    lab.ok(&["run", "-d", "--name", "alive", "busybox", "sleep", "300"]);
    lab.ok(&["create", "--name", "stopped", "busybox", "true"]);
    lab.ok(&["create", "--name", "truncated", "busybox", "true"]);
    lab.ok(&["run", "-d", "--name", "garbage", "busybox", "sleep", "300"]);
    let truncated = lab.id("truncated");
    let garbage = lab.id("garbage");
    let all: serde_json::Value = serde_json::from_str(&lab.ok(&["inspect", "garbage"])).unwrap();
    let garbage_pid = all[0]["State"]["Pid"].as_i64().unwrap() as i32;
    // A config cut short (a crash while writing it by hand, a full disk
    // elsewhere) and a state file of garbage.
    let config = lab
        .state
        .join("lib/lifecycle")
        .join(&truncated)
        .join("config.json");
    let text = fs::read(&config).unwrap();
    fs::write(&config, &text[..text.len() / 2]).unwrap();
    let state = lab
        .state
        .join("run/lifecycle")
        .join(&garbage)
        .join("state.json");
    fs::write(&state, b"\x00\x7fnot json {").unwrap();

    // ps -a shows the others, with one warning line per bad file.
    let out = lab.md(&["ps", "-a"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("alive") && stdout.contains("stopped"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("truncated") && !stdout.contains("garbage"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    for (id, file) in [(&truncated, &config), (&garbage, &state)] {
        let line = warnings
            .iter()
            .find(|l| l.contains(file.to_str().unwrap()))
            .unwrap_or_else(|| panic!("no warning names {}: {stderr}", file.display()));
        assert!(
            line.starts_with(&format!("warning: skipping container {}: ", &id[..12])),
            "{line}"
        );
        assert!(
            line.ends_with(&format!("`rm -f {}` removes it", &id[..12])),
            "{line}"
        );
    }
    // Commands on the other containers work.
    lab.ok(&["inspect", "alive", "stopped"]);
    lab.ok(&["exec", "alive", "true"]);
    lab.ok(&["stop", "-t", "0", "alive"]);
    // The bad ones are named, and removed only with -f.
    let out = lab.md(&["inspect", &truncated[..12]]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(config.to_str().unwrap()), "{stderr}");
    let out = lab.md(&["rm", "garbage"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rm -f"));
    // Prune removes the stopped ones and leaves the unreadable ones.
    let out = lab.ok(&["system", "prune", "-f"]);
    assert!(out.contains("Total reclaimed containers: 2"), "{out}");
    assert!(common::still_running(&[(garbage_pid, start_time(garbage_pid))]).len() == 1);
    // rm -f by ID prefix and by name (the config of "garbage" survived):
    // the container that still ran in it is killed, its cgroups, veth and
    // address go.
    lab.ok(&["rm", "-f", &truncated[..12]]);
    lab.ok(&["rm", "-f", "garbage"]);
    let out = lab.md(&["ps", "-a", "-q"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "no warnings left");
    assert_eq!(files_in(&lab.state.join("lib/lifecycle")), ["names.lock"]);
    assert!(files_in(&lab.state.join("run/lifecycle")).is_empty());
    let supervisor = format!("__supervise\0{garbage}");
    let gone = common::wait_for(common::PATIENCE, || {
        common::processes_with(&supervisor).is_empty().then_some(())
    });
    assert!(gone.is_some(), "the supervisor of garbage is left");
    assert_recovered(&lab, &before, "garbage", "rm -f of the corrupt records");
}

fn start_time(pid: i32) -> u64 {
    container_lab::kernel::process::start_time(pid).unwrap_or(0)
}

/// A tmpfs mounted over a test's state root, unmounted when dropped
/// (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, options: &str) -> Tmpfs {
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(options),
        )
        .unwrap();
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if nix::mount::umount(&self.0).is_err() {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Fills the filesystem of `dir`: with one file's bytes, or with files.
fn fill(dir: &std::path::Path, inodes: bool) {
    use std::io::Write;
    if inodes {
        for i in 0.. {
            if let Err(err) = fs::write(dir.join(format!("inode-{i}")), b"") {
                assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
                return;
            }
        }
    }
    let mut file = fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    loop {
        if let Err(err) = file.write_all(&chunk).and_then(|()| file.sync_data()) {
            assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
            break;
        }
    }
    // A partial chunk may still fit: fill to the last byte.
    for _ in 0..64 * 1024 {
        if file.write_all(b"x").is_err() {
            break;
        }
    }
}

fn unfill(dir: &std::path::Path) {
    for name in files_in(dir) {
        if name == "filler" || name.starts_with("inode-") {
            fs::remove_file(dir.join(name)).unwrap();
        }
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_full_state_directory_fails_cleanly_and_leaves_nothing_half_made() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::assert_root();
    let state = common::state_root("recovery-full");
    // Dropped last: the containers go before the filesystem does.
    let _tmpfs = Tmpfs::mount(&state, "size=24m,nr_inodes=4096,mode=0755");
    let lab = Lab::at(state.clone());
    let before = warm_up(&lab);
    for (what, inodes) in [("bytes", false), ("inodes", true)] {
        fill(&state, inodes);
        for command in ["run", "create"] {
            let out = lab.md(&[command, "--rm", "--name", "full", "busybox", "true"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(125), "{what} {command}: {stderr}");
            assert_eq!(
                stderr.trim(),
                format!(
                    "mini-docker: error: no space left on device for a new container record in {}; free some space there and try again",
                    state.join("lib/lifecycle").display()
                ),
                "{what} {command}"
            );
            // Nothing half-made: no record, no temporary, no state, no run
            // directory, no cgroup; and ps says so.
            assert_eq!(
                files_in(&state.join("lib/lifecycle")),
                ["names.lock"],
                "{what}"
            );
            assert!(files_in(&state.join("run/lifecycle")).is_empty(), "{what}");
            assert!(files_in(&state.join("run/containers")).is_empty(), "{what}");
            assert!(lab_cgroups().is_empty(), "{what}: {:?}", lab_cgroups());
            assert_eq!(lab.ok(&["ps", "-a", "-q"]), "", "{what}");
        }
        // With space again, it works.
        unfill(&state);
        lab.ok(&["run", "--rm", "--name", "full", "busybox", "true"]);
        lab.ok(&["create", "--name", "later", "busybox", "true"]);
        lab.ok(&["rm", "later"]);
        assert_recovered(&lab, &before, "full", what);
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn start_after_a_killed_run_reclaims_what_it_left_first() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new("recovery-start");
    let before = warm_up(&lab);
    let name = "restarted";
    // Killed once its container was released: the container runs on,
    // orphaned, in its cgroup, with its address and veth.
    lab.held(&run_args(&[], name), "released").kill();
    let cgroup =
        container_lab::kernel::cgroups::Cgroup::planned_freezable(name).unwrap()[0].clone();
    let procs = || -> Vec<i32> {
        fs::read_to_string(cgroup.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let orphans: Vec<(i32, u64)> = procs().into_iter().map(|p| (p, start_time(p))).collect();
    assert!(!orphans.is_empty(), "the container should run on");
    // `start` takes the record back: the orphan goes, a new container runs.
    assert_eq!(lab.ok(&["start", name]).trim(), name);
    // (Killed; its new parent may take a moment to reap it.)
    let gone = common::wait_for(common::PATIENCE, || {
        orphans
            .iter()
            .all(|&(pid, start)| !container_lab::kernel::process::is_alive(pid, start))
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "the orphaned container still runs: {orphans:?}"
    );
    let all: serde_json::Value = serde_json::from_str(&lab.ok(&["inspect", name])).unwrap();
    assert_eq!(all[0]["State"]["Status"], "running");
    let pid = all[0]["State"]["Pid"].as_i64().unwrap() as i32;
    assert!(procs().contains(&pid), "the new container is in the cgroup");
    lab.ok(&["rm", "-f", name]);
    assert_recovered(&lab, &before, name, "rm -f after start");
}
