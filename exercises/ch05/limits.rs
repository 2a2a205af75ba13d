//! Exercise ch05-limits, chapter 5 (cgroups): a memory limit and a pids
//! limit, in the files of this host's cgroup version.
//!
//! Fill in the TODO, then run `lab check ch05-limits` (or keep `lab watch`
//! running). `lab hint ch05-limits` helps.

use std::fs;
use std::path::Path;

use container_lab::kernel::cgroups::{self, Layout};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    // The lab uses cgroup v2 where it is the host's only version (one
    // hierarchy), v1 otherwise (a hierarchy per controller), as ch05 does.
    let v2 = cgroups::detect_layout()? == Layout::Unified;
    // The lab made the cgroup beneath its own: one directory on v2, one in
    // each controller's hierarchy on v1.
    let memory = handoff::cgroup_dir("memory")?;
    let pids = handoff::cgroup_dir("pids")?;
    // `echo VALUE > DIR/FILE`, saying which file when the kernel refuses.
    let write = |dir: &Path, file: &str, value: &str| {
        fs::write(dir.join(file), value)
            .map_err(|err| anyhow::anyhow!("writing {value:?} to {file}: {err}"))
    };
    let limited = || -> anyhow::Result<()> {
        // TODO: limit the cgroup to 64 MiB (67108864 bytes) of memory and
        // 16 processes, in the files of this host's version (`v2`).
        // END TODO
        Ok(())
    };
    // The lab looks at the files whatever happened; say what did.
    if let Err(err) = limited() {
        eprintln!("a limit was not written: {err}");
    }
    let container = Container::start(&ContainerSpec {
        main: vec!["sleep".into(), "infinity".into()],
        cgroup_procs: handoff::cgroup_procs(),
        ..Default::default()
    })?;

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
