//! A typical wrong answer, for tests/exercises.rs: a program that panics before it hands anything over.
//! Not an exercise: `lab check` must fail it with the message that explains it.

fn main() {
    // A value the program expected and did not get.
    let container: Option<u32> = std::env::var("LAB_NO_SUCH_CONTAINER")
        .ok()
        .and_then(|v| v.parse().ok());
    println!("starting");
    let _ = container.expect("no container yet");
}
