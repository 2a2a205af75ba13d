//! A typical wrong answer, for tests/exercises.rs: a program that panics before it hands anything over.
//! Not an exercise: `lab check` must fail it with the message that explains it.

fn main() {
    let container: Option<u32> = None;
    println!("starting");
    let _ = container.expect("no container yet");
}
