//! Chapter 3: a root filesystem of its own.

use std::path::Path;

use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::rootfs::{self, Escape};
use nix::unistd::Pid;

use super::{Check, Subject};
use crate::evidence;

pub fn verify(s: &Subject, pid: Pid) -> Vec<Check> {
    match s.ex.id {
        "ch03-pivot" => pivot(s, pid),
        _ => kernel_fs(pid),
    }
}

fn pivot(s: &Subject, pid: Pid) -> Vec<Check> {
    let copy = s.run_dir.join("rootfs");
    let root = evidence::identity(Path::new(&format!("/proc/{pid}/root")));
    let is_copy = root.is_some() && root == evidence::identity(&copy);
    let is_host = root.is_some() && root == evidence::identity(Path::new("/"));
    let mounts = evidence::mounts(pid);
    let old = mounts
        .iter()
        .filter(|m| m.mount_point.starts_with("/.old-root"))
        .count();
    let gained = s.host_mounts_gained();
    let escape = if is_copy {
        // A file of the host's, outside the copy, that an escape would reach.
        let outside = s.run_dir.join("outside.txt");
        let _ = std::fs::write(&outside, "the host's file\n");
        let said =
            evidence::in_namespaces_of(pid, &[Namespace::Mount], move || match rootfs::try_escape(
                &outside,
            ) {
                Escape::Escaped(_) => "escaped".to_string(),
                Escape::Contained(why) => why,
            });
        Check::new(
            said != "escaped" && !said.is_empty(),
            format!("from inside, the chroot escape reaches nothing of the host's ({said})"),
            "from inside, the chroot escape reads a file of the host's: the old root \
             is still reachable",
        )
    } else {
        Check::fail("the chroot escape was not tried: the container's / is not the copy")
    };
    vec![
        Check::new(
            is_copy,
            "the container's / is the copied tree (rootfs in its run directory)",
            if is_host {
                "the container's / is still the host's /: pivot_root into the copy"
            } else {
                "the container's / is neither the copy nor the host's /"
            },
        ),
        Check::new(
            is_copy && old == 0,
            format!(
                "no mount of the host's is left inside: its table holds {} mount{}, \
                 none under /.old-root",
                mounts.len(),
                if mounts.len() == 1 { "" } else { "s" }
            ),
            if is_copy {
                format!(
                    "the host's tree is still mounted at /.old-root inside ({old} mounts): \
                     detach it (umount2 with MNT_DETACH) and remove the directory"
                )
            } else {
                format!(
                    "the container's mount table is the host's ({} mounts)",
                    mounts.len()
                )
            },
        ),
        escape,
        Check::new(
            gained.is_empty(),
            "the host's mount table is as it was: nothing propagated from the container",
            format!(
                "the host's mount table gained {}: make the tree private before the \
                 bind mount",
                gained.join(", ")
            ),
        ),
    ]
}

fn kernel_fs(pid: Pid) -> Vec<Check> {
    let at = |point: &str| evidence::mount_at(pid, point);
    let has =
        |options: &str, wanted: &[&str]| wanted.iter().all(|w| options.split(',').any(|o| o == *w));
    let proc = at("/proc");
    let sys = at("/sys");
    let dev = at("/dev");
    let proc_check = match &proc {
        Some(m) if m.fs_type == "proc" && has(&m.options, &["nosuid", "nodev", "noexec"]) => {
            Check::pass(format!("/proc is proc, mounted {}", m.options))
        }
        Some(m) if m.fs_type == "proc" => Check::fail(format!(
            "/proc is proc, mounted {}: add MS_NOSUID | MS_NODEV | MS_NOEXEC",
            m.options
        )),
        Some(m) => Check::fail(format!("/proc is {}, not proc", m.fs_type)),
        None => Check::fail("nothing is mounted on /proc inside"),
    };
    let sys_check = match &sys {
        Some(m) if m.fs_type == "sysfs" && m.read_only() => {
            Check::pass(format!("/sys is sysfs, mounted {}", m.options))
        }
        Some(m) if m.fs_type == "sysfs" => Check::fail(format!(
            "/sys is sysfs, mounted read-write ({}): the host's kernel settings are \
             there; add MS_RDONLY",
            m.options
        )),
        Some(m) => Check::fail(format!("/sys is {}, not sysfs", m.fs_type)),
        None => Check::fail("nothing is mounted on /sys inside"),
    };
    let dev_check = match &dev {
        Some(m) if m.fs_type == "tmpfs" => {
            Check::pass(format!("/dev is a tmpfs of its own, mounted {}", m.options))
        }
        Some(m) => Check::fail(format!("/dev is {}, not a tmpfs", m.fs_type)),
        None => Check::fail("nothing is mounted on /dev inside: the copy's empty /dev shows"),
    };
    vec![proc_check, sys_check, dev_check]
}
