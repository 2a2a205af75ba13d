//! Chapter 5 and the cgroups module checked from outside: the container's
//! cgroup sits beneath the test's own cgroup in every hierarchy, holds the
//! container's processes, carries the limits, and its kernel counters
//! record the OOM kill, the throttling, the refused forks and the I/O on
//! the chapter's loop device; afterwards no cgroup, mount or loop device of
//! the lab is left. The library's `set`, `update`, `freeze` and `stats`
//! are checked against the files they name, read here directly.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use container_lab::kernel::cgroups::{
    detect_layout, Cgroup, CgroupError, Cpu, DeviceNumber, Io, Layout, Limit, Memory, Pids,
    Resources, Throttle, Written,
};

/// The v1 hierarchies of a chapter's cgroup, and of an engine's container.
const RESOURCES: &[&str] = &["cpu", "cpuacct", "cpuset", "memory", "pids", "blkio"];
const ALL: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "freezer", "devices",
];

/// Where the lab must put a cgroup named `name`, per hierarchy ("v2" for
/// the one), computed independently from this process's /proc/self/cgroup.
fn expected_dirs(name: &str, hierarchies: &[&str]) -> Vec<(String, PathBuf)> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut dirs = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let path = path.trim_start_matches('/');
        match detect_layout().unwrap() {
            Layout::Unified if controllers.is_empty() => dirs.push((
                "v2".into(),
                Path::new("/sys/fs/cgroup")
                    .join(path)
                    .join("container-lab")
                    .join(name),
            )),
            Layout::Hybrid | Layout::Legacy => {
                for &controller in hierarchies {
                    if controllers.split(',').any(|c| c == controller) {
                        let mount = Path::new("/sys/fs/cgroup").join(controllers);
                        dirs.push((
                            controller.into(),
                            mount.join(path).join("container-lab").join(name),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(
        !dirs.is_empty(),
        "no cgroup hierarchy found for this test process"
    );
    dirs
}

/// The directory of `controller` among `dirs` (the one, on v2).
fn dir_of(dirs: &[(String, PathBuf)], controller: &str) -> PathBuf {
    dirs.iter()
        .find(|(c, _)| c == controller || c == "v2")
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| panic!("no {controller} hierarchy"))
}

fn is_v2() -> bool {
    detect_layout().unwrap() == Layout::Unified
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn read_key(path: &Path, key: &str) -> u64 {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{} has no {key}", path.display()))
}

/// Bytes read and written on `device`, as the kernel's own file says:
/// v2's `io.stat`, v1's `blkio.throttle.io_service_bytes`.
fn io_bytes(dir: &Path, device: &str) -> (u64, u64) {
    if is_v2() {
        let text = fs::read_to_string(dir.join("io.stat")).unwrap();
        let Some(line) = text.lines().find(|l| l.starts_with(&format!("{device} "))) else {
            return (0, 0);
        };
        let key = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k)?.parse().ok())
                .unwrap_or(0)
        };
        (key("rbytes="), key("wbytes="))
    } else {
        let file = dir.join("blkio.throttle.io_service_bytes");
        let text = fs::read_to_string(file).unwrap();
        let key = |op: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{device} {op} "))?.parse().ok())
                .unwrap_or(0)
        };
        (key("Read"), key("Write"))
    }
}

/// The loop device (`loopN`) whose backing file is `image`, from sysfs.
fn loop_backed_by(image: &Path) -> Option<String> {
    fs::read_dir("/sys/block").ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        let backing = fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
        (Path::new(backing.trim_end()) == image).then_some(name)
    })
}

const MIB: u64 = 1 << 20;

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn limits_counters_membership_and_cleanup_seen_from_outside() {
    common::assert_root();
    let state = common::state_root("cgroups-outside");
    let dirs = expected_dirs("outside", RESOURCES);
    let image = state.join("run/containers/outside/disk.img");
    let host_mounts = common::mount_points(&common::host_mountinfo());

    // Held before step 8: the hog, the busy loop, the fork bomb and the
    // disk's reads and writes have run; the disk is still there.
    let mut command = common::chapter("ch05", &state);
    command.args(["--name", "outside", "--memory", "48m", "--pids-limit", "24"]);
    let held = common::Held::start(command, 8);
    let init = common::container_init(held.pid());
    for (_, path) in &dirs {
        assert!(path.is_dir(), "{} was not created", path.display());
        let procs = fs::read_to_string(path.join("cgroup.procs")).unwrap();
        assert!(
            procs.split_whitespace().any(|p| p == init.to_string()),
            "init is not in {}",
            path.display()
        );
    }
    let membership = fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    assert!(
        membership.contains("/container-lab/outside"),
        "{membership}"
    );

    let memory = dir_of(&dirs, "memory");
    let pids = dir_of(&dirs, "pids");
    let cpu = dir_of(&dirs, "cpu");
    let blkio = dir_of(&dirs, "blkio");
    if is_v2() {
        assert_eq!(read(&memory.join("memory.max")), "50331648");
        assert!(
            read_key(&memory.join("memory.events"), "oom_kill ") >= 1,
            "the OOM kill was not counted"
        );
        assert_eq!(read(&cpu.join("cpu.max")), "20000 100000");
    } else {
        assert_eq!(read(&memory.join("memory.limit_in_bytes")), "50331648");
        assert!(
            read_key(&memory.join("memory.oom_control"), "oom_kill ") >= 1,
            "the OOM kill was not counted"
        );
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "20000");
    }
    assert!(
        read_key(&cpu.join("cpu.stat"), "nr_throttled ") > 0,
        "no throttling counted"
    );
    assert_eq!(read(&pids.join("pids.max")), "24");
    assert!(
        read_key(&pids.join("pids.events"), "max ") >= 1,
        "the refused forks were not counted"
    );

    // The disk: a loop device on the chapter's file, mounted only in the
    // container's mount namespace, with the chapter's limit (2 MiB/s).
    let loop_name = loop_backed_by(&image).expect("no loop device is backed by the disk image");
    let device = read(&Path::new("/sys/block").join(&loop_name).join("dev"));
    let area = state.join("run/containers/outside/disk");
    let inside = fs::read_to_string(format!("/proc/{init}/mountinfo")).unwrap();
    assert!(
        inside.contains(&format!(" {} ", area.display())),
        "the disk is not mounted in the container"
    );
    assert_eq!(
        common::mount_points(&common::host_mountinfo()),
        host_mounts,
        "the container's mount reached the host"
    );
    if is_v2() {
        assert_eq!(
            read(&blkio.join("io.max")),
            format!("{device} rbps=2097152 wbps=2097152 riops=max wiops=max")
        );
    } else {
        for file in [
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_bps_device",
        ] {
            assert_eq!(
                read(&blkio.join(file)),
                format!("{device} 2097152"),
                "{file}"
            );
        }
    }
    // 4 MiB read and 4 MiB written directly; 4 MiB more written buffered,
    // which v2 charges to the cgroup when it is written back, v1 never.
    let (read_bytes, written) = io_bytes(&blkio, &device);
    assert!(read_bytes >= 4 * MIB, "{read_bytes} bytes read counted");
    if is_v2() {
        assert!(written >= 8 * MIB, "{written} bytes written counted");
    } else {
        assert!(
            (4 * MIB..8 * MIB).contains(&written),
            "{written} bytes written counted: v1 charged the write-back"
        );
    }

    let in_container =
        common::processes_in_pid_namespace(common::ns_inode(&init.to_string(), "pid"));
    let (code, stdout, _) = held.interrupt();
    assert_eq!(code, Some(130));
    assert!(
        stdout.contains("137 = 128 + 9: killed by SIGKILL"),
        "the hog was not OOM-killed"
    );
    assert!(common::still_running(&in_container).is_empty());
    for (_, path) in &dirs {
        assert!(!path.exists(), "{} was left behind", path.display());
    }
    assert!(!image.exists(), "the disk image was left behind");
    assert!(
        common::wait_for(common::PATIENCE, || loop_backed_by(&image)
            .is_none()
            .then_some(()))
        .is_some(),
        "the loop device was left attached"
    );

    // A complete run leaves nothing either, not even the shared parent.
    let mut command = common::chapter("ch05", &state);
    command.args(["--name", "outside-full"]);
    let output = common::run(command);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("loop device detached:        yes"),
        "{stdout}"
    );
    let image = state.join("run/containers/outside-full/disk.img");
    assert!(!image.exists() && loop_backed_by(&image).is_none());
    for (_, path) in expected_dirs("outside-full", RESOURCES) {
        assert!(!path.exists(), "{} was left behind", path.display());
        // The shared parent goes with its last child; another run of the lab
        // on this machine may still be using it.
        let parent = path.parent().unwrap();
        let others = fs::read_dir(parent)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().is_dir())
                    .count()
            })
            .unwrap_or(0);
        assert!(
            !parent.exists() || others > 0,
            "{} was left behind empty",
            parent.display()
        );
    }
}

/// A process of the test's own, killed when the test ends however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `program` with `args` in the cgroup: it joins before it execs.
fn spawn_in(cgroup: &Cgroup, program: &str, args: &[&str]) -> Child {
    let procs = cgroup.procs_files();
    let mut command = Command::new(program);
    command.args(args);
    // SAFETY: only writes to files between fork and exec.
    unsafe {
        command.pre_exec(move || {
            for file in &procs {
                fs::write(file, "0")?;
            }
            Ok(())
        });
    }
    Child(command.spawn().unwrap())
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn set_update_freeze_and_stats_land_in_the_files() {
    common::assert_root();
    let dirs = expected_dirs("lib-update", ALL);
    let cgroup = Cgroup::create_freezable("lib-update").unwrap();
    for (_, dir) in &dirs {
        assert!(dir.is_dir(), "{} was not created", dir.display());
    }
    let sleeper = spawn_in(&cgroup, "sleep", &["60"]);
    let pid = sleeper.0.id();
    assert!(
        common::wait_for(common::PATIENCE, || cgroup
            .processes()
            .contains(&(pid as i32))
            .then_some(()))
        .is_some(),
        "the sleeper did not join"
    );
    let memory = dir_of(&dirs, "memory");
    let cpu = dir_of(&dirs, "cpu");
    let cpuset = dir_of(&dirs, "cpuset");
    let pids = dir_of(&dirs, "pids");

    let written = cgroup
        .set(&Resources {
            memory: Memory {
                limit: Some(Limit::At(64 * MIB)),
                swap: Some(Limit::At(64 * MIB)),
                reservation: Some(Limit::At(32 * MIB)),
            },
            cpu: Cpu {
                shares: Some(512),
                quota: Some(Limit::At(50_000)),
                period: Some(100_000),
                cpus: Some("0".into()),
                mems: Some("0".into()),
            },
            pids: Pids {
                limit: Some(Limit::At(50)),
            },
            ..Resources::default()
        })
        .unwrap();
    // What `set` says it wrote is what the files hold.
    for w in &written {
        let Written::File { path, value } = w else {
            panic!("{w} is not a file write");
        };
        assert!(dirs.iter().any(|(_, d)| path.starts_with(d)), "{w}");
        assert_eq!(read(path), *value, "{}", path.display());
    }
    if is_v2() {
        assert_eq!(read(&memory.join("memory.max")), "67108864");
        assert_eq!(read(&memory.join("memory.swap.max")), "0");
        assert_eq!(read(&memory.join("memory.low")), "33554432");
        assert_eq!(read(&cpu.join("cpu.weight")), "20");
        assert_eq!(read(&cpu.join("cpu.max")), "50000 100000");
    } else {
        assert_eq!(read(&memory.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(read(&memory.join("memory.soft_limit_in_bytes")), "33554432");
        if memory.join("memory.memsw.limit_in_bytes").exists() {
            assert_eq!(
                read(&memory.join("memory.memsw.limit_in_bytes")),
                "67108864"
            );
        }
        assert_eq!(read(&cpu.join("cpu.shares")), "512");
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
    }
    assert_eq!(read(&cpuset.join("cpuset.cpus")), "0");
    assert_eq!(read(&pids.join("pids.max")), "50");

    // docker update: more memory than the current memory+swap (v1 must
    // raise memsw first), no CPU quota, no process limit.
    cgroup
        .update(&Resources {
            memory: Memory {
                limit: Some(Limit::At(128 * MIB)),
                swap: Some(Limit::At(256 * MIB)),
                reservation: None,
            },
            cpu: Cpu {
                quota: Some(Limit::Unlimited),
                ..Cpu::default()
            },
            pids: Pids {
                limit: Some(Limit::Unlimited),
            },
            ..Resources::default()
        })
        .unwrap();
    if is_v2() {
        assert_eq!(read(&memory.join("memory.max")), "134217728");
        assert_eq!(read(&memory.join("memory.swap.max")), "134217728");
        assert_eq!(read(&cpu.join("cpu.max")), "max 100000");
    } else {
        assert_eq!(read(&memory.join("memory.limit_in_bytes")), "134217728");
        if memory.join("memory.memsw.limit_in_bytes").exists() {
            assert_eq!(
                read(&memory.join("memory.memsw.limit_in_bytes")),
                "268435456"
            );
        }
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "-1");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
    }
    assert_eq!(read(&pids.join("pids.max")), "max");
    let refused = cgroup.update(&Resources {
        devices: Some(Vec::new()),
        ..Resources::default()
    });
    assert!(matches!(refused, Err(CgroupError::DevicesFixed)));

    // The counters, as the files say them.
    let stats = cgroup.stats();
    assert_eq!(stats.pids.current, Some(1));
    assert_eq!(stats.memory.max, Some(Limit::At(128 * MIB)));
    assert!(stats.memory.current.is_some_and(|b| b > 0));
    assert!(stats.cpu.usage.is_some());

    // The freezer, as the kernel reports it.
    cgroup.freeze(true).unwrap();
    let freezer = dir_of(&dirs, "freezer");
    if is_v2() {
        assert_eq!(read_key(&freezer.join("cgroup.events"), "frozen "), 1);
    } else {
        assert_eq!(read(&freezer.join("freezer.state")), "FROZEN");
    }
    assert_eq!(cgroup.is_frozen(), Some(true));
    cgroup.freeze(false).unwrap();
    assert_eq!(cgroup.is_frozen(), Some(false));

    drop(sleeper);
    drop(cgroup);
    for (_, dir) in &dirs {
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }
}

/// A loop device of the test's own, made with losetup (util-linux), on a
/// file in `dir`; detached and removed when dropped.
struct TestDisk {
    device: PathBuf,
    image: PathBuf,
}

impl TestDisk {
    fn new(dir: &Path) -> TestDisk {
        let image = dir.join("test-disk.img");
        fs::File::create(&image).unwrap().set_len(16 * MIB).unwrap();
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let device = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        TestDisk { device, image }
    }

    fn number(&self) -> DeviceNumber {
        let rdev = fs::metadata(&self.device).unwrap().rdev();
        DeviceNumber {
            major: nix::sys::stat::major(rdev) as u32,
            minor: nix::sys::stat::minor(rdev) as u32,
        }
    }
}

impl Drop for TestDisk {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
        let _ = fs::remove_file(&self.image);
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn io_limits_and_counters_land_in_the_files() {
    common::assert_root();
    let state = common::state_root("cgroups-io");
    let disk = TestDisk::new(&state);
    let device = disk.number();
    let dirs = expected_dirs("lib-io", RESOURCES);
    let cgroup = Cgroup::create("lib-io").unwrap();
    let blkio = dir_of(&dirs, "blkio");
    let io = Io {
        read_iops: vec![Throttle { device, rate: 1000 }],
        ..Io::bps(device, 4 * MIB)
    };
    cgroup
        .set(&Resources {
            io,
            ..Resources::default()
        })
        .unwrap();
    if is_v2() {
        assert_eq!(
            read(&blkio.join("io.max")),
            format!("{device} rbps=4194304 wbps=4194304 riops=1000 wiops=max")
        );
    } else {
        assert_eq!(
            read(&blkio.join("blkio.throttle.read_bps_device")),
            format!("{device} 4194304")
        );
        assert_eq!(
            read(&blkio.join("blkio.throttle.read_iops_device")),
            format!("{device} 1000")
        );
    }

    // A direct read by a process of the cgroup moves its counters.
    let before = io_bytes(&blkio, &device.to_string());
    let mut reader = spawn_in(
        &cgroup,
        "dd",
        &[
            &format!("if={}", disk.device.display()),
            "of=/dev/null",
            "bs=64k",
            "count=16",
            "iflag=direct",
            "status=none",
        ],
    );
    assert!(reader.0.wait().unwrap().success());
    let after = io_bytes(&blkio, &device.to_string());
    assert!(after.0 >= before.0 + MIB, "{before:?} -> {after:?}");
    assert_eq!(cgroup.stats().io_of(device).read_bytes, after.0);

    // A rate of 0 takes the limit away again.
    cgroup
        .update(&Resources {
            io: Io::bps(device, 0),
            ..Resources::default()
        })
        .unwrap();
    if is_v2() {
        assert_eq!(
            read(&blkio.join("io.max")),
            format!("{device} rbps=max wbps=max riops=1000 wiops=max")
        );
    } else {
        assert_eq!(read(&blkio.join("blkio.throttle.read_bps_device")), "");
    }
    drop(cgroup);
    assert!(!blkio.exists(), "{} was left behind", blkio.display());
}

/// The cgroup files of either version, by the names only one of them uses
/// or that differ in meaning between them.
const VERSION_FILES: &[&str] = &[
    "memory.max",
    "memory.limit_in_bytes",
    "memory.memsw",
    "memory.swap",
    "memory.events",
    "memory.oom_control",
    "memory.peak",
    "memory.max_usage",
    "cpu.max",
    "cpu.cfs_",
    "cpu.shares",
    "cpu.weight",
    "cpuacct.",
    "cpuset.cpus",
    "io.max",
    "io.stat",
    "io.weight",
    "blkio.",
    "freezer.state",
    "cgroup.freeze",
    "cgroup.events",
    "subtree_control",
];

/// Every `.rs` file beneath `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn no_version_file_name_leaves_the_cgroups_module() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let module = repo.join("src/kernel/cgroups");
    let mut files: Vec<PathBuf> = sources(&repo.join("src"))
        .into_iter()
        .chain(sources(&repo.join("mini-docker")))
        .filter(|f| !f.starts_with(&module))
        // Chapter 5's exercise has the learner write those files by hand;
        // its hints name them.
        .filter(|f| !f.ends_with("src/lab/exercises.rs"))
        .collect();
    // Chapter 5 calls the trait and shows what it wrote.
    files.push(repo.join("chapters/ch05_cgroups.rs"));
    let mut found = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(name) = VERSION_FILES.iter().find(|n| code.contains(*n)) {
                found.push(format!(
                    "{}:{}: {name}",
                    file.strip_prefix(&repo).unwrap().display(),
                    number + 1
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "cgroup v1/v2 file names outside src/kernel/cgroups:\n{}",
        found.join("\n")
    );
}

/// On v2 the engine clones a container's init straight into its cgroup
/// (clone3's CLONE_INTO_CGROUP): seen from outside, the child is in the
/// cgroup before it has done anything, and the cgroup lists it.
#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_child_cloned_into_a_v2_cgroup_is_born_in_it() {
    use container_lab::kernel::namespaces::{self, Cloned};
    use std::os::fd::AsFd;
    common::assert_root();
    if !is_v2() {
        eprintln!("skipped: CLONE_INTO_CGROUP takes a cgroup v2 directory; this host is v1 (the v2 guest runs it)");
        return;
    }
    let cgroup = Cgroup::create_freezable("born-in").unwrap();
    let dir = fs::File::open(&cgroup.paths()[0]).unwrap();
    let (wait_read, wait_write) = nix::unistd::pipe().unwrap();
    let cloned = unsafe {
        namespaces::clone_process_into_cgroup(nix::sched::CloneFlags::empty(), dir.as_fd())
    }
    .unwrap()
    .expect("Linux 5.7 or later has CLONE_INTO_CGROUP");
    let child = match cloned {
        Cloned::Child => {
            // Waits until the parent has looked (its end closed), then leaves.
            unsafe { libc::close(std::os::fd::AsRawFd::as_raw_fd(&wait_write)) };
            let mut byte = [0u8; 1];
            let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&wait_read), &mut byte);
            unsafe { libc::_exit(0) }
        }
        Cloned::Parent { child } => child,
    };
    drop(wait_read);
    let expected = format!(
        "0::/{}",
        cgroup.paths()[0]
            .strip_prefix("/sys/fs/cgroup")
            .unwrap()
            .display()
    );
    let seen = read(Path::new(&format!("/proc/{child}/cgroup")));
    let listed = read(&cgroup.procs_files()[0]);
    drop(wait_write);
    let status = nix::sys::wait::waitpid(child, None).unwrap();
    assert_eq!(seen.trim(), expected, "the child is not in the cgroup");
    assert!(
        listed.split_whitespace().any(|p| p == child.to_string()),
        "cgroup.procs does not list {child}: {listed}"
    );
    assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
}

/// `join` moves a process of one thread through `tasks` on v1 (the
/// kernel then skips a system-wide lock), which would move only the
/// calling thread of a process with several. So a process with several
/// must still be moved whole: this test runs itself again as a process
/// of several threads (the test harness's own, and one more), which joins
/// a cgroup and looks at every one of its threads from /proc.
#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn join_moves_every_thread_of_a_process_with_several() {
    const INTO: &str = "LAB_TEST_JOIN_INTO";
    if let Some(files) = std::env::var_os(INTO) {
        // The process of several threads.
        let procs: Vec<PathBuf> = std::env::split_paths(&files).collect();
        let (stop, parked) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || parked.recv());
        container_lab::kernel::cgroups::join(&procs).unwrap();
        let mut threads = 0;
        for task in fs::read_dir("/proc/self/task").unwrap() {
            let seen = read(&task.unwrap().path().join("cgroup"));
            for file in &procs {
                let dir = file.parent().unwrap().to_str().unwrap();
                let hierarchy = dir.strip_prefix("/sys/fs/cgroup/").unwrap();
                let (name, path) = hierarchy.split_once('/').unwrap();
                let line = seen.lines().find(|l| l.split(':').nth(1) == Some(name));
                assert_eq!(
                    line.and_then(|l| l.splitn(3, ':').nth(2)),
                    Some(format!("/{path}").as_str()),
                    "a thread outside the {name} cgroup: {seen}"
                );
            }
            threads += 1;
        }
        assert!(threads >= 2, "{threads} thread(s): the test needs several");
        stop.send(()).unwrap();
        other.join().unwrap().unwrap();
        return;
    }
    common::assert_root();
    if is_v2() {
        eprintln!("skipped: `tasks` is v1's; on v2 every join writes cgroup.procs");
        return;
    }
    let cgroup = Cgroup::create("join-threads").unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "join_moves_every_thread_of_a_process_with_several",
        ])
        .args(["--include-ignored", "--nocapture", "--test-threads", "1"])
        .env(INTO, std::env::join_paths(cgroup.procs_files()).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "the process of several threads: {status}");
}
