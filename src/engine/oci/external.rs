//! Running a bundle with a runtime binary nobody here wrote (runc, crun,
//! or lab-runc itself): `RUNTIME --root STATE run --bundle B ID`, in the
//! foreground, its exit status the container's.
//!
//! The runtime starts in a mount namespace and a cgroup namespace of its
//! own, made between fork and exec:
//! - the container's root filesystem (the image's layers under an upper
//!   directory of the bundle's) is mounted there only, so it goes with
//!   the last process of the container, even when mini-docker is killed;
//! - the cgroup filesystems are mounted again there, rooted at our own
//!   cgroup, so that whatever path the runtime makes of `cgroupsPath`
//!   (beneath its own cgroup as runc does, from the root as crun does) lies
//!   beneath ours; a hybrid host's v2 mount, which holds no controllers,
//!   is left out of sight (crun 1.8 refuses the hybrid layout), with a
//!   small tmpfs of this namespace's own in its place: crun still makes a
//!   directory there, which must not land in the host's /sys/fs/cgroup
//!   tmpfs, hidden beneath the host's v2 mount.

use std::ffi::CString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::OciError;
use crate::kernel::cgroups::{self as kcg, Layout};
use crate::kernel::overlay::{self, Layer, OverlayDirs};
use crate::support::error::io_err;

/// A runtime binary and the directory it keeps its state in.
#[derive(Debug, Clone)]
pub struct External {
    pub program: PathBuf,
    pub root: PathBuf,
}

/// One mount the runtime's namespace gets instead of the host's.
#[derive(Debug)]
struct Remount {
    target: CString,
    fstype: CString,
    /// The filesystem's own options (a v1 hierarchy's controllers).
    options: CString,
}

impl External {
    /// Runs the bundle in `bundle` (its config.json written, its root at
    /// `rootfs`, over `layers`) as container `id`; returns the exit status
    /// as a shell reports it (128 + N for signal N). The runtime's own
    /// failure messages reach our stderr untouched.
    pub fn run(
        &self,
        bundle: &Path,
        layers: &[Layer],
        id: &str,
        stdin: Stdio,
    ) -> Result<i32, OciError> {
        let dirs = OverlayDirs {
            upper: bundle.join("upper"),
            work: bundle.join("work"),
            merged: bundle.join("rootfs"),
        };
        for dir in [&dirs.upper, &dirs.work, &dirs.merged, &self.root] {
            std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        let options = overlay::mount_options(layers, &dirs);
        let cstr = |text: &str| {
            CString::new(text).map_err(|_| OciError::Other(format!("{text:?} holds a NUL byte")))
        };
        let merged = cstr(&dirs.merged.to_string_lossy())?;
        let options = cstr(&options)?;
        let mut command = Command::new(&self.program);
        command
            .arg("--root")
            .arg(&self.root)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(stdin);
        isolate(&mut command)?;
        // Safety: between fork and exec the child only makes a system call
        // on strings prepared above; after `isolate`'s, in its namespace.
        unsafe {
            command.pre_exec(move || {
                let overlay = c"overlay";
                check(libc::mount(
                    overlay.as_ptr(),
                    merged.as_ptr(),
                    overlay.as_ptr(),
                    0,
                    options.as_ptr().cast(),
                ))
            });
        }
        let status = command.status().map_err(|e| {
            OciError::Other(format!(
                "cannot run the runtime {}: {e}",
                self.program.display()
            ))
        })?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }

    /// `RUNTIME delete --force ID`: whatever a killed `run` left (`run`
    /// deletes the container itself when it exits). Then the shared
    /// `parent` of the containers' cgroups goes with its last child, in
    /// every hierarchy (rmdir fails, harmlessly, while another uses it).
    pub fn delete(&self, id: &str, parent: &Path) {
        self.delete_container(id);
        remove_parent_cgroups(parent);
    }

    /// `RUNTIME create --bundle B --pid-file F ID`, its stdio as given,
    /// in this process's namespaces (see [`enter_private_namespaces`]);
    /// the container's init PID once it waits for `start`.
    pub fn create(
        &self,
        bundle: &Path,
        id: &str,
        console_socket: Option<&Path>,
        stdio: [Stdio; 3],
    ) -> Result<i32, OciError> {
        std::fs::create_dir_all(&self.root).map_err(io_err("create", &self.root))?;
        let pid_file = bundle.join("init.pid");
        let mut command = self.command(None);
        command
            .args(["create", "--bundle"])
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file);
        if let Some(socket) = console_socket {
            command.arg("--console-socket").arg(socket);
        }
        let [stdin, stdout, stderr] = stdio;
        command.arg(id).stdin(stdin).stdout(stdout).stderr(stderr);
        self.check_status(command, "create")?;
        let text = std::fs::read_to_string(&pid_file).map_err(io_err("read", &pid_file))?;
        text.trim()
            .parse()
            .map_err(|_| OciError::Other(format!("{} holds no PID: {text:?}", pid_file.display())))
    }

    /// `RUNTIME start ID`: the init, blocked since `create`, runs the
    /// container's program.
    pub fn start(&self, id: &str) -> Result<(), OciError> {
        let mut command = self.command(None);
        command.args(["start", id]).stdin(Stdio::null());
        self.check_status(command, "start")
    }

    /// `RUNTIME kill ID SIGNAL`, run in the mount and cgroup namespaces
    /// of `monitor` (where the container was created: the runtime finds
    /// its cgroups there), or in ours when `None`.
    pub fn kill(&self, id: &str, signal: i32, monitor: Option<i32>) -> Result<(), OciError> {
        let mut command = self.command(monitor);
        command
            .args(["kill", id, &signal.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        self.check_status(command, "kill")
    }

    /// `RUNTIME --root R …`, entering `monitor`'s mount and cgroup
    /// namespaces first when given.
    fn command(&self, monitor: Option<i32>) -> Command {
        let mut command = Command::new(&self.program);
        command.arg("--root").arg(&self.root);
        if let Some(pid) = monitor {
            let open = |kind: &str| std::fs::File::open(format!("/proc/{pid}/ns/{kind}"));
            if let (Ok(cgroup), Ok(mnt)) = (open("cgroup"), open("mnt")) {
                // Safety: between fork and exec only setns on descriptors
                // opened above.
                unsafe {
                    command.pre_exec(move || {
                        use std::os::fd::AsRawFd;
                        check(libc::setns(cgroup.as_raw_fd(), libc::CLONE_NEWCGROUP))?;
                        check(libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS))
                    });
                }
            }
        }
        command
    }

    fn check_status(&self, mut command: Command, what: &str) -> Result<(), OciError> {
        let status = command.status().map_err(|e| {
            OciError::Other(format!(
                "cannot run the runtime {}: {e}",
                self.program.display()
            ))
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(OciError::Other(format!(
                "{} {what} failed ({status}); its message is above",
                self.program.display()
            )))
        }
    }

    /// `RUNTIME delete --force ID` in namespaces made as `run`'s are (the
    /// cgroups rooted at ours), for a container whose monitor is gone.
    pub fn delete_isolated(&self, id: &str) -> Result<(), OciError> {
        let mut command = self.command(None);
        command
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        isolate(&mut command)?;
        self.check_status(command, "delete")
    }

    fn delete_container(&self, id: &str) {
        let _ = Command::new(&self.program)
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The calling process (single-threaded: a monitor just forked) moves
/// into a mount and a cgroup namespace of its own, as `isolate` gives a
/// runtime, and mounts the bundle's root filesystem there: every runtime
/// command it runs after this sees the same root and the same cgroups.
/// Returns the host's paths of the cgroup directories `cgroups_path`
/// names, beneath our own cgroup in every hierarchy.
pub fn enter_private_namespaces(
    bundle: &Path,
    layers: &[Layer],
    cgroups_path: &Path,
) -> Result<Vec<PathBuf>, OciError> {
    let cgroups = own_cgroups()?
        .into_iter()
        .map(|dir| dir.join(cgroups_path))
        .collect();
    let remounts = cgroup_remounts()?;
    private_namespaces(&remounts)
        .map_err(|e| OciError::Other(format!("cannot make the runtime's own namespaces: {e}")))?;
    let dirs = OverlayDirs {
        upper: bundle.join("upper"),
        work: bundle.join("work"),
        merged: bundle.join("rootfs"),
    };
    for dir in [&dirs.upper, &dirs.work, &dirs.merged] {
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    }
    let options = overlay::mount_options(layers, &dirs);
    nix::mount::mount(
        Some("overlay"),
        &dirs.merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(OciError::sys(format!(
        "mount overlay on {}",
        dirs.merged.display()
    )))?;
    Ok(cgroups)
}

/// The shared `parent` of the containers' cgroups, beneath ours in every
/// hierarchy, once its last child has gone (rmdir fails, harmlessly, while
/// another uses it).
pub fn remove_parent_cgroups(parent: &Path) {
    for dir in own_cgroups().unwrap_or_default() {
        let _ = std::fs::remove_dir(dir.join(parent));
    }
}

/// Makes `command` start in a mount and a cgroup namespace of its own,
/// with the cgroup filesystems rooted at our own cgroup (see the module's
/// comment): for any runtime binary run on a bundle.
pub fn isolate(command: &mut Command) -> Result<(), OciError> {
    let remounts = cgroup_remounts()?;
    // Safety: between fork and exec the child only makes system calls on
    // strings prepared here.
    unsafe {
        command.pre_exec(move || private_namespaces(&remounts));
    }
    Ok(())
}

fn check(ret: libc::c_int) -> std::io::Result<()> {
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// In the child: a mount and a cgroup namespace of its own, nothing it
/// mounts propagating back, and the cgroup filesystems mounted afresh.
// ANCHOR: namespaces
fn private_namespaces(remounts: &[Remount]) -> std::io::Result<()> {
    // Safety: plain system calls on NUL-terminated strings.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        for remount in remounts {
            check(libc::umount2(remount.target.as_ptr(), libc::MNT_DETACH))?;
            check(libc::mount(
                remount.fstype.as_ptr(),
                remount.target.as_ptr(),
                remount.fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                remount.options.as_ptr().cast(),
            ))?;
        }
    }
    Ok(())
}
// ANCHOR_END: namespaces

/// Our own cgroup's directory in every mounted hierarchy (the v2 one on a
/// hybrid host included): the mount point joined with our path there.
fn own_cgroups() -> Result<Vec<PathBuf>, OciError> {
    let read = |path: &str| std::fs::read_to_string(path).map_err(io_err("read", path));
    let (mounts, own) = (read("/proc/self/mountinfo")?, read("/proc/self/cgroup")?);
    let mut dirs = Vec::new();
    for line in mounts.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = after.split(' ').collect();
        let (Some(fstype), Some(options)) = (fields.first(), fields.get(2)) else {
            continue;
        };
        let Some(point) = before.split(' ').nth(4) else {
            continue;
        };
        let names: Vec<&str> = options.split(',').collect();
        let path = own.lines().find_map(|entry| {
            let mut parts = entry.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let matches = match *fstype {
                "cgroup2" => controllers.is_empty(),
                "cgroup" => {
                    !controllers.is_empty() && controllers.split(',').all(|c| names.contains(&c))
                }
                _ => false,
            };
            matches.then(|| path.trim_start_matches('/').to_string())
        });
        if let Some(path) = path {
            dirs.push(Path::new(point).join(path));
        }
    }
    Ok(dirs)
}

/// Every cgroup mount of ours, from /proc/self/mountinfo: where, which
/// type, and its superblock's options (a v1 hierarchy is mounted again
/// with exactly its controllers, or the kernel refuses).
fn cgroup_remounts() -> Result<Vec<Remount>, OciError> {
    let hybrid = kcg::detect_layout()? == Layout::Hybrid;
    let path = "/proc/self/mountinfo";
    let text = std::fs::read_to_string(path).map_err(io_err("read", path))?;
    let mut found = Vec::new();
    for line in text.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let mut tail = after.split(' ');
        let (Some(fstype), Some(_), Some(options)) = (tail.next(), tail.next(), tail.next()) else {
            continue;
        };
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let Some(target) = before.split(' ').nth(4) else {
            continue;
        };
        let kept: Vec<&str> = options
            .split(',')
            .filter(|o| *o != "rw" && *o != "ro")
            .collect();
        let cstr = |text: &str| {
            CString::new(text).map_err(|_| OciError::Other(format!("{text:?} holds a NUL byte")))
        };
        // A hybrid host's v2 mount: a scratch tmpfs instead, which goes
        // with the namespace and whatever crun makes in it.
        let (fstype, options) = if hybrid && fstype == "cgroup2" {
            ("tmpfs", "size=64k,mode=0755".to_string())
        } else {
            (fstype, kept.join(","))
        };
        found.push(Remount {
            target: cstr(target)?,
            fstype: cstr(fstype)?,
            options: cstr(&options)?,
        });
    }
    Ok(found)
}
