//! Exercise ch07-rootless, chapter 7 (user namespaces): a user namespace
//! made by nobody, and its maps written by nobody too.
//!
//! Fill in the TODO, then run `lab check ch07-rootless` (or keep `lab
//! watch` running). `lab hint ch07-rootless` helps.

use std::fs;

use container_lab::kernel::namespaces::Namespace;
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;
use container_lab::lab::privilege::as_user;

/// The unprivileged user: "nobody".
const NOBODY: u32 = 65_534;

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let spec = ContainerSpec {
        namespaces: vec![
            Namespace::User,
            Namespace::Uts,
            Namespace::Pid,
            Namespace::Mount,
        ],
        main: vec!["sleep".into(), "infinity".into()],
        ..Default::default()
    };
    // Cloned with nobody's uid: its new user namespace is nobody's.
    let container = as_user(NOBODY, NOBODY, || Container::start(&spec))??;
    let pid = container.pid();
    // `echo TEXT > /proc/PID/FILE`, saying which file when it is refused.
    let write = |file: &str, text: &str| {
        fs::write(format!("/proc/{pid}/{file}"), text)
            .map_err(|err| anyhow::anyhow!("writing {text:?} to {file}: {err}"))
    };
    let written = as_user(NOBODY, NOBODY, || -> anyhow::Result<()> {
        // TODO: as nobody, map uid and gid 0 inside to 65534 outside (one
        // each), in the order the kernel insists on.
        write("setgroups", "deny")?;
        write("gid_map", "0 65534 1")?;
        write("uid_map", "0 65534 1")?;
        // END TODO
        Ok(())
    })?;
    // The lab looks at the maps whatever happened; say what did.
    if let Err(err) = written {
        eprintln!("a map was not written: {err}");
    }

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
