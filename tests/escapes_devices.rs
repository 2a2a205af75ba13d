//! The device allow-list, attacked: root in a container makes a node for a
//! disk of the host (a loop device over a file this test owns) and tries
//! to read and write it. The kernel refuses both with EPERM, through v1's
//! devices controller or cgroup v2's BPF program, and the file is
//! unchanged; `--device` lets that one node through, as in Docker.

mod common;

use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use container_lab::kernel::cgroups::device_filter;

const PATTERN: &[u8] = b"container-lab loop pattern\n";

/// A loop device over a file of ours, detached again when dropped (also
/// when the test fails).
struct LoopDevice {
    path: PathBuf,
    major: u64,
    minor: u64,
}

impl LoopDevice {
    fn over(file: &Path) -> LoopDevice {
        // A guest kernel may have the driver as a module not yet loaded.
        if !Path::new("/dev/loop-control").exists() {
            let _ = Command::new("modprobe").arg("loop").status();
        }
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()
            .expect("losetup (util-linux) is missing");
        assert!(
            out.status.success(),
            "losetup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let meta = fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_block_device());
        LoopDevice {
            major: nix::sys::stat::major(meta.rdev()),
            minor: nix::sys::stat::minor(meta.rdev()),
            path,
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

/// A file of ours full of the pattern, and a loop device over it.
fn disk(test: &str) -> (PathBuf, PathBuf, LoopDevice) {
    let state = common::state_root(test);
    let file = state.join("disk.img");
    fs::write(&file, PATTERN.repeat(1 << 14)).unwrap();
    let device = LoopDevice::over(&file);
    (state, file, device)
}

fn mini_docker(state: &Path, args: &[&str]) -> Output {
    let mut command = common::mini_docker(state, &["run"]);
    command.args(args);
    common::run(command)
}

/// Makes a node for the device and tries to read and then write it.
fn attack(device: &LoopDevice) -> String {
    format!(
        "mknod /tmp/disk b {} {} && echo made; head -c {} /tmp/disk; \
         echo changed | dd of=/tmp/disk conv=notrunc 2>&1; true",
        device.major,
        device.minor,
        PATTERN.len()
    )
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: loop devices and containers (sudo -E cargo test)"
)]
fn a_node_made_for_a_host_disk_can_be_neither_read_nor_written() {
    common::assert_root();
    let (state, file, device) = disk("devices-attack");
    let before = fs::read(&file).unwrap();
    let out = mini_docker(
        &state,
        &[
            "--rm",
            "--name",
            "attack",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            &attack(&device),
        ],
    );
    let said = text(&out);
    assert!(
        said.contains("made"),
        "mknod is allowed (c/b *:* m): {said}"
    );
    assert!(
        said.contains("head: /tmp/disk: Operation not permitted"),
        "the read was not refused: {said}"
    );
    assert!(
        said.contains("can't open '/tmp/disk': Operation not permitted"),
        "the write was not refused: {said}"
    );
    assert!(!said.contains("container-lab loop pattern"), "{said}");
    assert!(fs::read(&file).unwrap() == before, "the disk was changed");
    for dir in common::cgroup_dirs("attack") {
        assert!(!dir.exists(), "{} was left", dir.display());
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: loop devices and containers (sudo -E cargo test)"
)]
fn the_device_flag_lets_that_node_through_with_its_permissions() {
    common::assert_root();
    let (state, file, device) = disk("devices-flag");
    let before = fs::read(&file).unwrap();
    let read_only = format!("{}:/dev/disk:r", device.path.display());
    let out = mini_docker(
        &state,
        &[
            "--rm", "--network", "none", "--device", &read_only, "busybox", "sh", "-c",
            "ls -l /dev/disk; head -c 27 /dev/disk; echo x | dd of=/dev/disk conv=notrunc 2>&1; true",
        ],
    );
    let said = text(&out);
    let words = said.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.starts_with('b') && words.contains(&format!(" {}, {} ", device.major, device.minor)),
        "no block node {}:{} at /dev/disk: {said}",
        device.major,
        device.minor
    );
    assert!(
        said.contains("container-lab loop pattern"),
        "not readable: {said}"
    );
    assert!(
        said.contains("can't open '/dev/disk': Operation not permitted"),
        "r must not allow writing: {said}"
    );
    assert!(fs::read(&file).unwrap() == before, "the disk was changed");

    // Without permissions: rwm, at the same path as on the host.
    let path = device.path.display().to_string();
    let out = mini_docker(
        &state,
        &[
            "--rm",
            "--network",
            "none",
            "--device",
            &path,
            "busybox",
            "head",
            "-c",
            "27",
            &path,
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, PATTERN);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: loop devices and containers (sudo -E cargo test)"
)]
fn privileged_allows_every_device() {
    common::assert_root();
    let (state, _file, device) = disk("devices-privileged");
    let out = mini_docker(
        &state,
        &[
            "--rm",
            "--network",
            "none",
            "--privileged",
            "busybox",
            "sh",
            "-c",
            &format!(
                "mknod /tmp/disk b {} {} && head -c 27 /tmp/disk",
                device.major, device.minor
            ),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, PATTERN);
}

#[test]
fn bad_device_values_fail_with_125_and_say_why() {
    let state = std::env::temp_dir().join(format!("lab-devices-bad-{}", std::process::id()));
    for (value, says) in [
        ("/etc/hostname", "not a device node"),
        ("/no/such/device", "name an existing device node"),
        ("dev/null", "is not absolute"),
        ("/dev/null:/dev/x:rwx", "invalid device permissions"),
        (
            "/dev/null:/dev/x:r:w",
            "HOST_PATH[:CONTAINER_PATH][:PERMISSIONS]",
        ),
    ] {
        let out = mini_docker(&state, &["--rm", "--device", value, "busybox", "true"]);
        assert_eq!(out.status.code(), Some(125), "{value}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(says), "{value}: {said}");
    }
    assert!(!state.exists(), "a refused run made {}", state.display());
}

/// The container's cgroup directories that exist now.
fn existing(name: &str) -> Vec<PathBuf> {
    common::cgroup_dirs(name)
        .into_iter()
        .filter(|d| d.exists())
        .collect()
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: containers need namespaces, mounts and cgroups (sudo -E cargo test)"
)]
fn the_kernel_holds_dockers_list_while_the_container_runs_and_frees_it_after() {
    common::assert_root();
    let state = common::state_root("devices-kernel");
    let mut command = common::mini_docker(&state, &[]);
    command
        .stdout(Stdio::null())
        .args([
            "run",
            "--rm",
            "--init",
            "--name",
            "devlist",
            "--network",
            "none",
        ])
        .args(["busybox", "sleep", "60"]);
    // Ends mini-docker (by its PID) also when an assertion fails.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = self.0.wait();
        }
    }
    let running = Stop(command.spawn().unwrap());
    let started = common::wait_for(common::PATIENCE, || {
        let dirs = existing("devlist");
        let procs = dirs
            .first()
            .and_then(|d| fs::read_to_string(d.join("cgroup.procs")).ok());
        procs
            .is_some_and(|p| p.lines().count() >= 2)
            .then_some(dirs)
    });
    let dirs = started.expect("the container never started");
    let mut program = None;
    if let Some(v1) = dirs
        .iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/devices"))
    {
        let list = fs::read_to_string(v1.join("devices.list")).unwrap();
        assert_eq!(
            list.lines().collect::<Vec<_>>(),
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:1 rwm",
                "c 5:2 rwm",
                "c 136:* rwm",
                "c 10:200 rwm",
            ]
        );
    } else {
        let v2 = dirs
            .iter()
            .find(|d| d.join("cgroup.controllers").exists())
            .expect("no v1 devices cgroup and no v2 cgroup");
        let ids = device_filter::attached(v2).unwrap();
        assert_eq!(ids.len(), 1, "device programs on {}: {ids:?}", v2.display());
        assert_eq!(
            device_filter::program_name(ids[0]).as_deref(),
            Some(device_filter::PROGRAM_NAME)
        );
        program = Some(ids[0]);
    }
    drop(running);
    for dir in &dirs {
        assert!(!dir.exists(), "{} was left", dir.display());
    }
    if let Some(id) = program {
        let freed = common::wait_for(common::PATIENCE, || {
            device_filter::program_name(id).is_none().then_some(())
        });
        assert!(freed.is_some(), "device program {id} outlived its cgroup");
    }
}

/// This process's cgroup v2 directory: the unified hierarchy of a hybrid
/// host, or the only one.
fn own_v2_cgroup() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let root = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Path::new("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup/unified")
    };
    root.exists()
        .then(|| root.join(path.trim_start_matches('/')))
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: BPF programs and cgroups (sudo -E cargo test)"
)]
fn the_bpf_program_refuses_the_disk_on_any_v2_hierarchy() {
    common::assert_root();
    let Some(own) = own_v2_cgroup() else {
        println!("skipped: this host has no cgroup v2 hierarchy");
        return;
    };
    let (_state, _file, device) = disk("devices-bpf");
    // A cgroup of our own beneath ours, removed also when the test fails.
    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir(&self.0);
        }
    }
    let dir = Dir(own.join(format!("lab-devices-bpf-{}", std::process::id())));
    fs::create_dir(&dir.0).unwrap();
    let told = device_filter::attach(
        &dir.0,
        container_lab::kernel::cgroups::devices::DOCKER_DEFAULT,
    )
    .unwrap();
    assert!(told[0].contains("13 rules"), "{told:?}");
    let ids = device_filter::attached(&dir.0).unwrap();
    assert_eq!(ids.len(), 1);
    let procs =
        std::ffi::CString::new(dir.0.join("cgroup.procs").into_os_string().into_vec()).unwrap();
    let in_cgroup = |script: String| {
        use std::os::unix::process::CommandExt;
        let procs = procs.clone();
        let mut command = Command::new("sh");
        command.args(["-c", &script]);
        // Between fork and exec: no allocation, only system calls.
        unsafe {
            command.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                let written = fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                let error = std::io::Error::last_os_error();
                libc::close(fd);
                if written {
                    Ok(())
                } else {
                    Err(error)
                }
            });
        }
        command.output().unwrap()
    };
    let disk = device.path.display();
    let out = in_cgroup(format!("head -c 27 {disk}"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{disk} was readable: {}",
        text(&out)
    );
    let out = in_cgroup("echo hi > /dev/null && echo null works".into());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "null works\n");
    // Outside the cgroup, the same read works.
    let out = Command::new("head")
        .args(["-c", "27"])
        .arg(&device.path)
        .output()
        .unwrap();
    assert_eq!(out.stdout, PATTERN);
    drop(dir);
    let freed = common::wait_for(common::PATIENCE, || {
        device_filter::program_name(ids[0]).is_none().then_some(())
    });
    assert!(freed.is_some(), "the program outlived its cgroup");
}
