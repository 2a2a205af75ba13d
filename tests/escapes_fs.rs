//! Escapes through the filesystem, each tried and checked from outside:
//! a read-only bind whose submounts stayed writable (`-v /:/host:ro` with
//! the host's /proc, /sys, cgroups and /dev/shm beneath it), setuid files
//! and `-e` secrets in state directories any host user could enter, an
//! image without (or with odd) mount points, and a relative `-w`.
//!
//! Nothing here writes to the host's /proc/sys or core_pattern, even if a
//! defence were broken: the writes tried are a file in /dev/shm and a
//! cgroup beneath the test's own, both named by the test and removed if
//! they appear.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Lab {
    state: PathBuf,
}

impl Lab {
    fn new(test: &str) -> Lab {
        common::assert_root();
        Lab {
            state: common::state_root(test),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = common::mini_docker(&self.state, args);
        common::in_new_netns(&mut command);
        command
    }

    /// `command` without its own network namespace: for a user who may
    /// not make one (and never gets that far).
    fn plain_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(common::binary("mini-docker"));
        command
            .env(container_lab::engine::dirs::ROOT_ENV, &self.state)
            .stdin(Stdio::null())
            .args(args);
        command
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

    /// The one container record's directory name (its ID).
    fn only_id(&self) -> String {
        let ids: Vec<String> = fs::read_dir(self.state.join("lib/lifecycle"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 64)
            .collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
        ids[0].clone()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut rm = self.command(&["rm", "-f", "suid", "held"]);
        rm.stdout(Stdio::null()).stderr(Stdio::null());
        let _ = rm.status();
    }
}

/// "mount: POINT OPTIONS" lines, as the container printed them.
fn mounts(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("mount: "))
        .filter_map(|l| l.split_once(' '))
        .map(|(point, options)| (point.to_string(), options.to_string()))
        .collect()
}

fn read_only(options: &str) -> bool {
    options.split(',').next() == Some("ro")
}

fn writes(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("write: "))
        .collect()
}

/// Prints the container's mounts beneath `dir` as "mount: POINT OPTIONS".
fn list_mounts(dir: &str) -> String {
    format!("grep ' {dir}[ /]' /proc/self/mountinfo | cut -d' ' -f5,6 | sed 's/^/mount: /'; ")
}

/// `touch`/`mkdir` with its error, if any, as "write: …".
fn try_write(command: &str, path: &str) -> String {
    format!("{command} {path} 2>&1 | sed 's/^/write: /'; ")
}

// --- -v SRC:DST:ro --------------------------------------------------------

/// A tree of the test's own with submounts (a tmpfs, a tmpfs inside it, a
/// nested bind), made in a mount namespace that dies with the run, bound
/// with `-v TREE:/x:ro`: every level is read-only inside, nothing was
/// written outside, and outside the same mounts are still writable.
fn check_tree(lab: &Lab, name: &str, fallback: bool) {
    let tree = lab.state.join(format!("{name}-tree"));
    let source = lab.state.join(format!("{name}-nested-source"));
    for dir in [tree.join("tmp"), tree.join("nested"), source.clone()] {
        fs::create_dir_all(dir).unwrap();
    }
    let levels = ["/x", "/x/tmp", "/x/tmp/deeper", "/x/nested"];
    let mut inner = list_mounts("/x");
    for level in levels {
        inner.push_str(&try_write("touch", &format!("{level}/probe")));
    }
    inner.push_str("echo done; read line");
    let script = r#"set -e
        mount -t tmpfs lab-tree-tmpfs "$TREE/tmp"
        mkdir "$TREE/tmp/deeper"
        mount -t tmpfs lab-tree-deeper "$TREE/tmp/deeper"
        mount --bind "$SOURCE" "$TREE/nested"
        exec "$MINI_DOCKER" "$@""#;
    let volume = format!("{}:/x:ro", tree.display());
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args(["run", "--rm", "-i", "--network", "none", "--name", name])
        .args(["-v", &volume, "busybox", "sh", "-c", &inner])
        .env("TREE", &tree)
        .env("SOURCE", &source)
        .env("MINI_DOCKER", common::binary("mini-docker"))
        .env(container_lab::engine::dirs::ROOT_ENV, &lab.state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if fallback {
        command.env(
            container_lab::kernel::mounts::FORCE_REMOUNT_FALLBACK_ENV
                .to_str()
                .unwrap(),
            "1",
        );
    }
    common::in_new_netns(&mut command);
    // The namespace (and every mount in it) ends with this process.
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut output = String::new();
    while !output.ends_with("done\n") {
        let n = lines.read_line(&mut output).unwrap();
        if n == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the container ended early:\n{output}");
        }
    }
    println!("--- container ({name}):\n{output}");
    let seen = mounts(&output);
    for level in levels {
        let options = seen.get(level);
        assert!(
            options.is_some_and(|o| read_only(o)),
            "{level} is not read-only inside: {options:?}"
        );
    }
    let refused = writes(&output);
    assert_eq!(
        refused.len(),
        levels.len(),
        "a write went through: {refused:?}"
    );
    assert!(refused.iter().all(|w| w.ends_with("Read-only file system")));

    // From outside, through the run's own mount namespace.
    let theirs = PathBuf::from(format!("/proc/{}/root", child.id()));
    let outside = |p: &Path| theirs.join(p.strip_prefix("/").unwrap());
    for probe in [
        tree.join("probe"),
        tree.join("tmp/probe"),
        tree.join("tmp/deeper/probe"),
        source.join("probe"),
    ] {
        assert!(!outside(&probe).exists(), "{} was written", probe.display());
    }
    // Read-only is the bind's, not the filesystem's: outside, it writes.
    fs::write(outside(&tree.join("tmp/deeper/from-outside")), "ok\n").unwrap();
    let table = fs::read_to_string(format!("/proc/{}/mountinfo", child.id())).unwrap();
    let host_view = container_lab::kernel::mounts::parse_mountinfo(&table).unwrap();
    let deeper = host_view
        .iter()
        .find(|m| m.mount_point == tree.join("tmp/deeper"))
        .expect("the test's tmpfs is not mounted");
    assert!(!deeper.read_only());

    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_read_only_volume_is_read_only_at_every_level() {
    let lab = Lab::new("escapes-fs-tree");
    check_tree(&lab, "ro-tree", false);
    // Without mount_setattr(2), as on kernels before 5.12.
    check_tree(&lab, "ro-tree-old", true);
}

/// The test's own cgroup directory: cgroup v2's, or on v1 the pids
/// hierarchy's (a controller's, which the sandbox gives each run).
fn own_cgroup() -> PathBuf {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap();
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (controller, path) = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some((controllers, path))
        })
        .find(|(controllers, _)| {
            if unified {
                controllers.is_empty()
            } else {
                controllers.split(',').any(|c| c == "pids")
            }
        })
        .expect("no cgroup of our own");
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'))
}

/// Every mount beneath /host is read-only inside: /host/proc (and with it
/// /proc/sys/kernel/core_pattern), /host/sys, each cgroup hierarchy,
/// /host/dev/shm. A file in /dev/shm and a cgroup beneath the test's own,
/// tried through /host, are refused, and outside nothing appeared.
fn check_host_root(lab: &Lab, name: &str, fallback: bool) {
    let shm = PathBuf::from(format!(
        "/dev/shm/lab-escapes-{}-{name}",
        std::process::id()
    ));
    let cgroup = own_cgroup().join(format!("lab-escapes-{}-{name}", std::process::id()));
    let mut inner = list_mounts("/host");
    inner.push_str(&try_write("touch", &format!("/host{}", shm.display())));
    inner.push_str(&try_write("mkdir", &format!("/host{}", cgroup.display())));
    let mut command = lab.command(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        name,
        "-v",
        "/:/host:ro",
        "busybox",
        "sh",
        "-c",
        &inner,
    ]);
    if fallback {
        command.env(
            container_lab::kernel::mounts::FORCE_REMOUNT_FALLBACK_ENV
                .to_str()
                .unwrap(),
            "1",
        );
    }
    let out = common::run(command);
    // Whatever happened inside, nothing stays behind outside.
    let shm_made = shm.exists();
    let _ = fs::remove_file(&shm);
    let cgroup_made = cgroup.exists();
    let _ = fs::remove_dir(&cgroup);
    assert!(!shm_made, "{} was created through /host", shm.display());
    assert!(
        !cgroup_made,
        "{} was created through /host",
        cgroup.display()
    );
    assert_eq!(out.status.code(), Some(0));

    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen = mounts(&stdout);
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let mut wanted = vec![
        "/host/proc",
        "/host/sys",
        "/host/dev/shm",
        "/host/sys/fs/cgroup",
    ];
    if !unified {
        // cgroup v1: one mount per hierarchy beneath /sys/fs/cgroup.
        assert!(
            seen.keys()
                .filter(|p| p.starts_with("/host/sys/fs/cgroup/"))
                .count()
                > 1,
            "no cgroup hierarchy under /host: {seen:?}"
        );
    }
    wanted.retain(|p| Path::new(&p["/host".len()..]).exists());
    for point in wanted {
        assert!(
            seen.contains_key(point),
            "{point} is not mounted inside: {seen:?}"
        );
    }
    for (point, options) in &seen {
        assert!(read_only(options), "{point} is writable inside: {options}");
    }
    let refused = writes(&stdout);
    assert_eq!(refused.len(), 2, "a write went through: {refused:?}");
    assert!(refused.iter().all(|w| w.ends_with("Read-only file system")));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_read_only_bind_of_the_host_root_leaves_nothing_writable() {
    let lab = Lab::new("escapes-fs-host");
    check_host_root(&lab, "ro-host", false);
    check_host_root(&lab, "ro-host-old", true);
}

// --- the state directories ---------------------------------------------------

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `command` as user nobody (uid and gid 65534, no other groups: std
/// drops them when the uid changes), with no sudo on its PATH.
fn as_nobody(mut command: Command) -> Command {
    command.env("PATH", "/nonexistent").uid(65534).gid(65534);
    command
}

const SECRET: &str = "lab-secret-8d1c";

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn setuid_files_records_and_secrets_are_out_of_a_host_users_reach() {
    let lab = Lab::new("escapes-fs-modes");
    let state = lab.state.clone();
    // An install from before the modes were set: everything 0755.
    for dir in ["lib/lifecycle", "lib/volumes", "run/lifecycle"] {
        fs::create_dir_all(state.join(dir)).unwrap();
    }
    for dir in [
        "lib",
        "lib/lifecycle",
        "lib/volumes",
        "run",
        "run/lifecycle",
    ] {
        fs::set_permissions(state.join(dir), fs::Permissions::from_mode(0o755)).unwrap();
    }
    lab.ok(&["ps", "-a"]);
    for (dir, wanted) in [
        ("lib", 0o711),
        ("lib/lifecycle", 0o700),
        ("lib/volumes", 0o700),
        ("run", 0o711),
        ("run/lifecycle", 0o700),
    ] {
        assert_eq!(mode(&state.join(dir)), wanted, "{dir} was not tightened");
    }

    // Root inside the container makes a setuid-root copy of busybox in its
    // writable layer and in a named volume.
    let env = format!("SECRET_TOKEN={SECRET}");
    lab.ok(&[
        "run", "--name", "suid", "--network", "none", "-v", "labvol:/vol", "-e", &env, "busybox",
        "sh", "-c",
        "cp /bin/busybox /suid && chmod 4755 /suid && cp /bin/busybox /vol/suid && chmod 4755 /vol/suid",
    ]);
    let id = lab.only_id();
    let record = state.join("lib/lifecycle").join(&id);
    let in_layer = record.join("layer/upper/suid");
    let in_volume = state.join("lib/volumes/labvol/_data/suid");
    for file in [&in_layer, &in_volume] {
        let meta = fs::metadata(file).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid()),
            (0o4755, 0),
            "{}",
            file.display()
        );
    }
    let config = record.join("config.json");
    assert!(fs::read_to_string(&config).unwrap().contains(SECRET));

    // The modes, as the lab's own documentation states them.
    let container_run = state.join("run/lifecycle").join(&id);
    for (path, wanted) in [
        (
            state.join("lib"),
            container_lab::engine::dirs::TRAVERSE_ONLY,
        ),
        (
            state.join("lib/images"),
            container_lab::engine::dirs::TRAVERSE_ONLY,
        ),
        (
            state.join("lib/lifecycle"),
            container_lab::engine::dirs::PRIVATE,
        ),
        (record.clone(), 0o700),
        (config.clone(), 0o600),
        (
            state.join("lib/volumes"),
            container_lab::engine::dirs::PRIVATE,
        ),
        (
            state.join("run"),
            container_lab::engine::dirs::TRAVERSE_ONLY,
        ),
        (
            state.join("run/containers"),
            container_lab::engine::dirs::TRAVERSE_ONLY,
        ),
        (
            state.join("run/lifecycle"),
            container_lab::engine::dirs::PRIVATE,
        ),
        (container_run.clone(), 0o700),
        (container_run.join("state.json"), 0o600),
    ] {
        assert_eq!(mode(&path), wanted, "{}: {:o}", path.display(), mode(&path));
    }
    assert_eq!(
        (
            container_lab::engine::dirs::TRAVERSE_ONLY,
            container_lab::engine::dirs::PRIVATE
        ),
        (0o711, 0o700)
    );

    // As nobody: neither setuid file can be reached, let alone run (its
    // argv[0] "id" would print 0 if it ran), nor the record read.
    for file in [&in_layer, &in_volume] {
        let mut reach = Command::new("/bin/test");
        reach.arg("-e").arg(file);
        let reached = as_nobody(reach).status().unwrap();
        assert_eq!(reached.code(), Some(1), "nobody reaches {}", file.display());
        let mut run = Command::new(file);
        run.arg0("id").arg("-u");
        match as_nobody(run).output() {
            Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied),
            Ok(out) => panic!(
                "nobody ran {}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stdout)
            ),
        }
    }
    let mut cat = Command::new("/bin/cat");
    cat.arg(&config);
    let read = as_nobody(cat).output().unwrap();
    assert!(!read.status.success());
    assert!(!String::from_utf8_lossy(&read.stdout).contains(SECRET));

    // And every command that reads state says it needs root, the same way.
    for args in [
        &["inspect", "suid"][..],
        &["ps", "-a"],
        &["logs", "suid"],
        &["images"],
        &["volume", "ls"],
        &["rm", "suid"],
    ] {
        let out = common::run(as_nobody(lab.plain_command(args)));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let all = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        let wanted = format!(
            "mini-docker: error: mini-docker {} needs root (the lab's containers, images and volumes are root's alone) and sudo is not installed",
            args[0]
        );
        assert!(stderr.starts_with(&wanted), "{args:?}: {stderr}");
        assert!(
            !all.contains(SECRET) && !all.contains("os error"),
            "{args:?}: {all}"
        );
    }

    // A running container's run directory: 0710, its group the gid a user
    // namespace's root maps to (chapter 7 passes through it).
    lab.ok(&[
        "run",
        "-d",
        "--name",
        "held",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    let held = state.join("run/containers/held");
    assert_eq!(mode(&held), container_lab::engine::dirs::RUN_DIR_MODE);
    assert_eq!(
        fs::metadata(&held).unwrap().gid(),
        container_lab::kernel::userns::container_root_map()
            .gid
            .outside
    );
    lab.ok(&["rm", "-f", "held"]);
    lab.ok(&["rm", "suid"]);
    lab.ok(&["volume", "rm", "labvol"]);
}

// --- mount points -------------------------------------------------------------

/// A tarball of one static busybox, plus `extra` entries at the root.
fn tarball(path: &Path, extra: impl FnOnce(&mut tar::Builder<Vec<u8>>)) {
    let busybox = container_lab::engine::images::busybox::find_static().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append_path_with_name(&busybox, "bin/busybox")
        .unwrap();
    extra(&mut builder);
    fs::write(path, builder.into_inner().unwrap()).unwrap();
}

fn entry(out: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, link: &str) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(0);
    if kind == tar::EntryType::Symlink {
        header.set_link_name(link).unwrap();
    }
    out.append_data(&mut header, name, std::io::empty())
        .unwrap();
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn an_image_without_mount_points_starts_and_a_symlinked_one_is_refused() {
    let lab = Lab::new("escapes-fs-mountpoints");
    let bare = lab.state.join("bare.tar");
    tarball(&bare, |_| {});
    let files = lab.state.join("files.tar");
    tarball(&files, |out| {
        for name in ["proc", "sys", "dev"] {
            entry(out, tar::EntryType::Regular, name, "");
        }
    });
    let linked = lab.state.join("linked.tar");
    tarball(&linked, |out| {
        entry(out, tar::EntryType::Symlink, "proc", "../../../../etc")
    });
    for (file, image) in [
        (&bare, "bare:1"),
        (&files, "files:1"),
        (&linked, "linked:1"),
    ] {
        lab.ok(&["import", &file.display().to_string(), image]);
    }
    assert_eq!(
        mode(&lab.state.join("lib/images/imported")),
        container_lab::engine::dirs::PRIVATE
    );

    let look = "for d in /proc /sys /dev; do busybox stat -c '%n %F' $d; done; busybox test -e /proc/self/stat && echo proc mounted";
    for image in ["bare:1", "files:1"] {
        let out = lab.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "/bin/busybox",
            "sh",
            "-c",
            look,
        ]);
        assert_eq!(
            out, "/proc directory\n/sys directory\n/dev directory\nproc mounted\n",
            "{image}"
        );
    }

    let before = common::mount_points(&common::host_mountinfo());
    let out = lab.md(&[
        "run",
        "--rm",
        "--network",
        "none",
        "linked:1",
        "/bin/busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "the image's /proc is a symlink to ../../../../etc; it must be a directory to mount on"
        ),
        "{stderr}"
    );
    assert_eq!(common::mount_points(&common::host_mountinfo()), before);
    assert_eq!(lab.ok(&["ps", "-aq"]), "");
    for image in ["bare:1", "files:1", "linked:1"] {
        lab.ok(&["rmi", image]);
    }
}

// --- -w -----------------------------------------------------------------------

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_relative_working_directory_is_refused_as_docker_does() {
    let lab = Lab::new("escapes-fs-workdir");
    let out = lab.md(&["run", "--rm", "-w", "relative/dir", "busybox", "pwd"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "mini-docker: error: the working directory 'relative/dir' is invalid, it needs to be an absolute path\n"
    );
    assert!(out.stdout.is_empty());
    assert!(
        !lab.state.join("lib/lifecycle").exists(),
        "a record was made"
    );
    // exec's -w follows the same rule (Docker's daemon refuses it: exit 1).
    let out = lab.md(&["exec", "-w", "rel", "no-such-container", "pwd"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "mini-docker: error: the working directory 'rel' is invalid, it needs to be an absolute path\n"
    );
    // An absolute one still works, and an empty one is Docker's default.
    assert_eq!(
        lab.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-w",
            "/tmp/w",
            "busybox",
            "pwd"
        ]),
        "/tmp/w\n"
    );
    assert_eq!(
        lab.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-w",
            "",
            "busybox",
            "pwd"
        ]),
        "/\n"
    );
}
