//! Exercise ch07-maps, chapter 7 (user namespaces): root inside the
//! container, uid and gid 100000 outside it.
//!
//! Fill in the TODO, then run `lab check ch07-maps` (or keep `lab watch`
//! running). `lab hint ch07-maps` helps.

use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::userns::{IdMap, UserMap};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let container = Container::start(&ContainerSpec {
        namespaces: vec![
            Namespace::User,
            Namespace::Uts,
            Namespace::Pid,
            Namespace::Mount,
        ],
        main: vec!["sleep".into(), "infinity".into()],
        // TODO: map uids and gids 0..65535 inside to 100000..165535 outside
        // (the lab writes them to uid_map and gid_map before init goes on).
        user_map: Some(UserMap {
            uid: IdMap {
                inside: 0,
                outside: 100_000,
                count: 65_536,
            },
            gid: IdMap {
                inside: 0,
                outside: 100_000,
                count: 65_536,
            },
        }),
        // END TODO
        ..Default::default()
    })?;

    // The lab looks at the container from outside while this waits.
    handoff::to_lab(&container)
}
