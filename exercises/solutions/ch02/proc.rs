//! Exercise ch02-proc, chapter 2 (namespaces): a /proc of its own.
//!
//! Fill in the TODO, then run `lab check ch02-proc` (or keep `lab watch`
//! running). `lab hint ch02-proc` helps.

use std::path::Path;

use container_lab::kernel::mounts;
use container_lab::kernel::namespaces::Namespace;
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;
use container_lab::lab::steps::inside;
use nix::mount::MsFlags;

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let container = Container::start(&ContainerSpec {
        namespaces: vec![
            Namespace::Uts,
            Namespace::Pid,
            Namespace::Ipc,
            Namespace::Mount,
        ],
        main: vec!["sleep".into(), "infinity".into()],
        ..Default::default()
    })?;
    inside(&container, || {
        // TODO: keep the container's mounts from reaching the host, then
        // mount a proc for its PID namespace on /proc (nosuid, nodev, noexec).
        mounts::make_tree_private()?;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mounts::mount_fs("proc", Path::new("/proc"), flags, None)?;
        // END TODO
        Ok(())
    })?;

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
