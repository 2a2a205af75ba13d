//! Exercise ch03-kernel-fs, chapter 3 (a root filesystem): the kernel
//! filesystems every program expects, in the container's new root.
//!
//! Fill in the TODO, then run `lab check ch03-kernel-fs` (or keep `lab
//! watch` running). `lab hint ch03-kernel-fs` helps.

use std::path::Path;

use container_lab::engine::dirs::LabDirs;
use container_lab::engine::images::busybox;
use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::{mounts, rootfs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;
use container_lab::lab::steps::inside;
use nix::mount::MsFlags;

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let run_dir = handoff::run_dir()?;
    let root = run_dir.path().join("rootfs");
    let (image, _) = busybox::image(&LabDirs::from_env())?;
    rootfs::copy_tree(&image, &root)?;
    let container = Container::start(&ContainerSpec {
        namespaces: vec![
            Namespace::Uts,
            Namespace::Pid,
            Namespace::Ipc,
            Namespace::Mount,
        ],
        main: vec![
            root.join("bin/sleep").display().to_string(),
            "infinity".into(),
        ],
        ..Default::default()
    })?;
    inside(&container, || {
        rootfs::pivot_into(&root)?;
        for dir in ["/proc", "/sys", "/dev"] {
            rootfs::mount_point(Path::new(dir))?;
        }
        let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        // TODO: mount proc on /proc and sysfs on /sys, both `hardened`
        // and /sys read-only too, and a tmpfs on /dev.
        // END TODO
        Ok(())
    })?;

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
