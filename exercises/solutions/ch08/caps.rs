//! Exercise ch08-caps, chapter 8 (hardening): a process in the container
//! that keeps one capability, and can never gain another.
//!
//! Fill in the TODO, then run `lab check ch08-caps` (or keep `lab watch`
//! running). `lab hint ch08-caps` helps.

use caps::{CapSet, Capability, CapsHashSet};
use container_lab::kernel::namespaces::Namespace;
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;

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
    // A process inside the container hardens itself, then hands itself
    // to the lab.
    let code = container.run_inside(|| {
        let hardened = || -> anyhow::Result<()> {
            let keep = Capability::CAP_NET_BIND_SERVICE;
            // TODO: drop every capability but `keep` from the bounding set,
            // keep only `keep` in the other sets, and set no_new_privs.
            for cap in caps::all() {
                if cap != keep {
                    caps::drop(None, CapSet::Bounding, cap)?;
                }
            }
            let only = CapsHashSet::from([keep]);
            for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
                caps::set(None, set, &only)?;
            }
            nix::sys::prctl::set_no_new_privs()?;
            // END TODO
            handoff::this_process_to_lab()
        };
        handoff::exit_code(hardened())
    })?;
    anyhow::ensure!(code == 0, "the process inside failed (exit code {code})");
    Ok(())
}
