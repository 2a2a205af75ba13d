//! mini-docker's block I/O flags (`--device-read-bps` and its siblings,
//! `--blkio-weight`), checked from outside: the values in the container's
//! cgroup files (v1's `blkio.throttle.*`, v2's `io.max`), the kernel's
//! counters moving under the container's reads, and bad values refused
//! with Docker's exit code 125, naming the device, leaving nothing behind.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use container_lab::kernel::cgroups::{detect_layout, Layout};

const MIB: u64 = 1 << 20;

fn is_v2() -> bool {
    detect_layout().unwrap() == Layout::Unified
}

fn mini_docker(state: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(common::binary("mini-docker"));
    command
        .env(container_lab::engine::dirs::ROOT_ENV, state)
        .env(container_lab::engine::store::PIN_IDS_ENV, "1")
        .stdin(Stdio::null())
        .args(args);
    common::in_new_netns(&mut command);
    command
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The container's directory in the io hierarchy (v1's blkio; v2's one).
fn io_dir(name: &str) -> PathBuf {
    let hierarchy = if is_v2() {
        "/sys/fs/cgroup/"
    } else {
        "/sys/fs/cgroup/blkio/"
    };
    common::cgroup_dirs(name)
        .into_iter()
        .find(|d| d.starts_with(hierarchy) && !d.starts_with("/sys/fs/cgroup/unified"))
        .unwrap_or_else(|| panic!("no io hierarchy for {name}"))
}

/// A loop device of the test's own (losetup, util-linux) on a file in
/// `dir`, optionally with one partition; detached and removed when dropped.
struct TestDisk {
    device: PathBuf,
    image: PathBuf,
}

impl TestDisk {
    fn new(dir: &Path, partitioned: bool) -> TestDisk {
        let image = dir.join(if partitioned {
            "parted.img"
        } else {
            "disk.img"
        });
        let file = fs::File::create(&image).unwrap();
        file.set_len(16 * MIB).unwrap();
        if partitioned {
            // An MBR with one Linux partition from sector 2048, 8 MiB long.
            let mut mbr = [0u8; 512];
            mbr[446 + 4] = 0x83;
            mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
            mbr[446 + 12..446 + 16].copy_from_slice(&16384u32.to_le_bytes());
            mbr[510] = 0x55;
            mbr[511] = 0xAA;
            std::os::unix::fs::FileExt::write_all_at(&file, &mbr, 0).unwrap();
        }
        let out = Command::new("losetup")
            .args(["--find", "--show", "--partscan"])
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

    /// `MAJOR:MINOR`, from the node itself.
    fn number(&self) -> String {
        let rdev = fs::metadata(&self.device).unwrap().rdev();
        format!(
            "{}:{}",
            nix::sys::stat::major(rdev),
            nix::sys::stat::minor(rdev)
        )
    }

    /// The node of its first partition, once the kernel has made it;
    /// `None` when this kernel reads no partition tables (sysfs lists the
    /// partitions it found, at once, when losetup returns).
    fn partition(&self) -> Option<PathBuf> {
        let name = self.device.file_name()?.to_str()?;
        if !Path::new(&format!("/sys/block/{name}/{name}p1")).exists() {
            return None;
        }
        let part = PathBuf::from(format!("{}p1", self.device.display()));
        common::wait_for(common::PATIENCE, || part.exists().then_some(()))
            .unwrap_or_else(|| panic!("{} never appeared", part.display()));
        Some(part)
    }

    fn arg(&self, rate: &str) -> String {
        format!("{}:{rate}", self.device.display())
    }
}

impl Drop for TestDisk {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
        let _ = fs::remove_file(&self.image);
    }
}

/// A foreground `mini-docker run` whose container is running `program`;
/// stopped (SIGTERM, as Ctrl-C) when dropped, however the test ends.
struct Running {
    child: Option<std::process::Child>,
}

impl Running {
    fn start(mut command: Command, name: &str, program: &str) -> Running {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let running = Running {
            child: Some(command.spawn().expect("start mini-docker")),
        };
        let found = common::wait_for(common::PATIENCE, || {
            let procs = fs::read_to_string(io_dir(name).join("cgroup.procs")).ok()?;
            let pid = procs.lines().filter_map(|l| l.parse::<i32>().ok()).max()?;
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == program).then_some(())
        });
        if found.is_none() {
            let out = running.stop();
            panic!(
                "{name} never ran {program}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        running
    }

    fn stop(mut self) -> Output {
        let child = self.child.take().unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let out = child.wait_with_output().unwrap();
        println!("--- exit: {:?}", out.status.code());
        println!("--- stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
    }
}

fn assert_nothing_left(state: &Path, name: &str) {
    assert!(
        !state.join("run/containers").join(name).exists(),
        "the run directory of {name} was left"
    );
    for dir in common::cgroup_dirs(name) {
        assert!(!dir.exists(), "{} was left", dir.display());
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn device_limits_land_in_the_cgroup_files_and_the_counters_move() {
    common::assert_root();
    let state = common::state_root("blkio-limits");
    let disk = TestDisk::new(&state, false);
    let device = disk.number();
    // The container reads 2 MiB of the disk, given to it with --device.
    let command = mini_docker(
        &state,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--name",
            "limits",
            "--device",
            &format!("{}:/dev/disk:r", disk.device.display()),
            "--device-read-bps",
            &disk.arg("1mb"),
            "--device-write-bps",
            &disk.arg("2m"),
            "--device-read-iops",
            &disk.arg("100"),
            "--device-write-iops",
            &disk.arg("50"),
            "busybox",
            "sh",
            "-c",
            "dd if=/dev/disk of=/dev/null bs=64k count=32 2>/dev/null; exec sleep 60",
        ],
    );
    let running = Running::start(command, "limits", "sleep");
    let dir = io_dir("limits");
    if is_v2() {
        assert_eq!(
            read(&dir.join("io.max")),
            format!("{device} rbps=1048576 wbps=2097152 riops=100 wiops=50")
        );
        let stat = read(&dir.join("io.stat"));
        let line = stat
            .lines()
            .find(|l| l.starts_with(&format!("{device} ")))
            .unwrap_or_else(|| panic!("no I/O counted on {device}: {stat}"));
        let rbytes: u64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("rbytes=")?.parse().ok())
            .unwrap();
        assert!(rbytes >= 2 * MIB, "{line}");
    } else {
        for (file, value) in [
            ("blkio.throttle.read_bps_device", "1048576"),
            ("blkio.throttle.write_bps_device", "2097152"),
            ("blkio.throttle.read_iops_device", "100"),
            ("blkio.throttle.write_iops_device", "50"),
        ] {
            assert_eq!(read(&dir.join(file)), format!("{device} {value}"), "{file}");
        }
        let bytes = read(&dir.join("blkio.throttle.io_service_bytes"));
        let read_bytes: u64 = bytes
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{device} Read "))?.parse().ok())
            .unwrap_or_else(|| panic!("no I/O counted on {device}: {bytes}"));
        assert!(read_bytes >= 2 * MIB, "{bytes}");
    }
    running.stop();
    assert_nothing_left(&state, "limits");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn devices_that_cannot_take_a_limit_are_refused_by_name() {
    common::assert_root();
    let state = common::state_root("blkio-refused");
    let parted = TestDisk::new(&state, true);
    let mut cases = vec![
        (
            "--device-read-bps",
            "/dev/no-such-disk:1mb".to_string(),
            vec!["cannot limit I/O on /dev/no-such-disk".to_string()],
        ),
        (
            "--device-write-iops",
            "/dev/null:10".to_string(),
            vec!["/dev/null is not a block device".to_string()],
        ),
    ];
    match parted.partition() {
        Some(partition) => cases.push((
            "--device-write-bps",
            format!("{}:1mb", partition.display()),
            vec![
                format!("{} is a partition", partition.display()),
                format!("name the disk, {}", parted.device.display()),
            ],
        )),
        None => println!(
            "skipped the partition case: this kernel reads no partition tables (no {}p1)",
            parted.device.display()
        ),
    }
    for (flag, value, expected) in cases {
        let out = common::run(mini_docker(
            &state,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "--name",
                "refused",
                flag,
                &value,
                "busybox",
                "true",
            ],
        ));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{flag} {value}: {stderr}");
        for text in &expected {
            assert!(stderr.contains(text.as_str()), "{flag} {value}: {stderr}");
        }
        assert_nothing_left(&state, "refused");
    }
}

#[test]
fn bad_rates_and_weights_are_refused_as_docker_refuses_them() {
    // Flags are checked before anything else: no root needed.
    let state = std::env::temp_dir().join(format!("lab-blkio-flags-{}", std::process::id()));
    for (flag, value, expected) in [
        ("--device-read-bps", "/dev/sda", "bad format"),
        ("--device-read-bps", "sda:1mb", "bad format for device path"),
        (
            "--device-write-bps",
            "/dev/sda:fast",
            "invalid rate for device",
        ),
        (
            "--device-read-iops",
            "/dev/sda:1.5",
            "invalid rate for device",
        ),
        (
            "--device-write-iops",
            "/dev/sda:-3",
            "invalid rate for device",
        ),
        ("--blkio-weight", "5", "from 10 to 1000"),
        ("--blkio-weight", "1001", "from 10 to 1000"),
    ] {
        let out = Command::new(common::binary("mini-docker"))
            .env(container_lab::engine::dirs::ROOT_ENV, &state)
            .stdin(Stdio::null())
            .args(["run", "--rm", flag, value, "busybox", "true"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(expected) && stderr.contains(flag),
            "{flag} {value}: {stderr}"
        );
    }
    assert!(!state.exists(), "a refused run created {}", state.display());
}

/// The weight files this kernel gives a cgroup of the io hierarchy, seen
/// in a probe cgroup made beneath the test's own and removed again.
fn weight_files() -> Vec<String> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let (hierarchy, prefix) = if is_v2() {
        ("", "io.")
    } else {
        ("blkio", "blkio.")
    };
    let base = if is_v2() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        PathBuf::from("/sys/fs/cgroup/blkio")
    };
    let path = own
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == hierarchy)
                .then(|| path.trim_start_matches('/').to_string())
        })
        .expect("no io hierarchy for this test process");
    let probe = base.join(path).join("lab-weight-probe");
    fs::create_dir(&probe).unwrap();
    let files = fs::read_dir(&probe)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with("weight"))
        .collect();
    fs::remove_dir(&probe).unwrap();
    files
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn blkio_weight_where_the_kernel_has_one() {
    common::assert_root();
    let state = common::state_root("blkio-weight");
    let files = weight_files();
    let args = [
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        "weighted",
        "--blkio-weight",
        "300",
        "busybox",
        "sleep",
        "60",
    ];
    if files.is_empty() {
        // No weight here (no BFQ, no io.cost): refused, as the lab never
        // ignores what it cannot do.
        let out = common::run(mini_docker(&state, &args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{stderr}");
        assert!(stderr.contains("no block I/O weight"), "{stderr}");
    } else {
        let running = Running::start(mini_docker(&state, &args), "weighted", "sleep");
        let dir = io_dir("weighted");
        // BFQ's file takes Docker's scale; io.weight's runs to 10000.
        let (file, value) = if files.iter().any(|f| f.ends_with("bfq.weight")) {
            let name = if is_v2() {
                "io.bfq.weight"
            } else {
                "blkio.bfq.weight"
            };
            (name, "300")
        } else if is_v2() {
            ("io.weight", "2930")
        } else {
            ("blkio.weight", "300")
        };
        let now = read(&dir.join(file));
        assert!(
            now == value || now == format!("default {value}"),
            "{file}: {now}"
        );
        running.stop();
    }
    assert_nothing_left(&state, "weighted");
}
