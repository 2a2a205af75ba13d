//! A typical wrong answer, for tests/exercises.rs: a program that never hands anything over.
//! Not an exercise: `lab check` must fail it with the message that explains it.

use container_lab::lab::container::{Container, ContainerSpec};

fn main() {
    // A container is started, then the program loops: the lab's time
    // limit must stop both.
    let _container = Container::start(&ContainerSpec {
        main: vec!["sleep".into(), "infinity".into()],
        ..Default::default()
    });
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
