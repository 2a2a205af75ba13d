//! A typical wrong answer, for tests/exercises.rs: the memory limit in the other cgroup version's file.
//! Not an exercise: `lab check` must fail it with the message that explains it.
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
        // Wrong: the other version's file (the v1 file on a v2 host).
        if v2 {
            write(&memory, "memory.limit_in_bytes", "67108864")?;
        } else {
            write(&memory, "memory.max", "67108864")?;
        }
        write(&pids, "pids.max", "16")?;
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
