//! A typical wrong answer, for tests/exercises.rs: a program that never hands anything over.
//! Not an exercise: `lab check` must fail it with the message that explains it.

use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::handoff;

fn main() {
    // A container is started (in the lab's cgroups, when it made some),
    // then the program loops: the lab's time limit must stop both, and
    // only then can it remove the cgroups.
    let _container = Container::start(&ContainerSpec {
        main: vec!["sleep".into(), "infinity".into()],
        cgroup_procs: handoff::cgroup_procs(),
        ..Default::default()
    });
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
