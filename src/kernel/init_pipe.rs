//! The init pipe: how a cloned child tells its parent what it did and why
//! it failed before its program started, as runc's init pipe does. The
//! child prints nothing of its own: its stderr is already the container's
//! by then, and what it says belongs to whoever started it.
//!
//! Both ends are close-on-exec. The parent reads messages until end of
//! file, which comes once every process holding the write end has either
//! executed its program (execve closes the descriptor) or died. End of
//! file with no failure before it: the program runs.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;

/// Why a child could not start its program: a set-up step failed (the
/// runtime's exit code 125), the program does not exist (127), or it
/// cannot be executed (126), as Docker and a shell tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Setup,
    NotFound,
    NotExecutable,
}

impl Failure {
    pub fn setup(message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Setup,
            message: message.into(),
        }
    }

    /// The exit code the child leaves with, and that Docker reports.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            FailureKind::Setup => 125,
            FailureKind::NotFound => 127,
            FailureKind::NotExecutable => 126,
        }
    }
}

/// The child's end: it reports steps (for `--explain`) and a failure.
#[derive(Debug)]
pub struct Reporter(OwnedFd);

/// A new init pipe: the parent's end to read, the child's to report on.
pub fn pipe() -> nix::Result<(OwnedFd, Reporter)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((read, Reporter(write)))
}

impl Reporter {
    /// A pipe's write end (close-on-exec) as the child's end.
    pub fn new(fd: OwnedFd) -> Reporter {
        Reporter(fd)
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// A step done, and the shell command that does the same.
    pub fn step(&self, what: &str, shell: &str) {
        self.send(b'S', &[what.as_bytes(), shell.as_bytes()]);
    }

    /// Why the child gives up; it then exits with `failure.exit_code()`.
    pub fn fail(&self, failure: &Failure) {
        let kind = match failure.kind {
            FailureKind::Setup => b"setup".as_slice(),
            FailureKind::NotFound => b"not-found",
            FailureKind::NotExecutable => b"not-executable",
        };
        self.send(b'F', &[kind, failure.message.as_bytes()]);
    }

    /// One message: a tag, then each field as a 4-byte length and its
    /// bytes. A reader gone is no reason to stop: nothing is sent then.
    fn send(&self, tag: u8, fields: &[&[u8]]) {
        let mut message = vec![tag];
        for field in fields {
            message.extend_from_slice(&(field.len() as u32).to_le_bytes());
            message.extend_from_slice(field);
        }
        let mut rest = message.as_slice();
        while !rest.is_empty() {
            match nix::unistd::write(self.0.as_fd(), rest) {
                Ok(n) => rest = &rest[n..],
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    }
}

/// The parent's side: reads until end of file, passing each step to
/// `on_step` as it arrives, and returns the child's failure, if it sent
/// one. (The child's program runs when there is none.)
pub fn receive(read: OwnedFd, mut on_step: impl FnMut(&str, &str)) -> io::Result<Option<Failure>> {
    let mut file = std::fs::File::from(read);
    let mut pending = Vec::new();
    let mut failure = None;
    let mut chunk = [0u8; 4096];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some((tag, fields, used)) = parse(&pending) {
            match (tag, fields.as_slice()) {
                (b'S', [what, shell]) => on_step(what, shell),
                (b'F', [kind, message]) => {
                    let kind = match kind.as_str() {
                        "not-found" => FailureKind::NotFound,
                        "not-executable" => FailureKind::NotExecutable,
                        _ => FailureKind::Setup,
                    };
                    failure = Some(Failure {
                        kind,
                        message: message.clone(),
                    });
                }
                _ => {}
            }
            pending.drain(..used);
        }
    }
    Ok(failure)
}

/// One complete message at the start of `bytes`: its tag, its fields and
/// how many bytes it took; `None` while it is incomplete.
fn parse(bytes: &[u8]) -> Option<(u8, Vec<String>, usize)> {
    let (&tag, mut rest) = bytes.split_first()?;
    let count = if tag == b'S' || tag == b'F' { 2 } else { 0 };
    let mut fields = Vec::new();
    let mut used = 1;
    for _ in 0..count {
        let (len, after) = rest.split_at_checked(4)?;
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let (field, after) = after.split_at_checked(len)?;
        fields.push(String::from_utf8_lossy(field).into_owned());
        used += 4 + len;
        rest = after;
    }
    Some((tag, fields, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_arrive_in_order_and_a_failure_comes_back_typed() {
        let (read, reporter) = pipe().unwrap();
        let long = "x".repeat(10_000);
        let writer = std::thread::spawn(move || {
            reporter.step("one", "echo 1");
            reporter.step(&long, "");
            reporter.fail(&Failure {
                kind: FailureKind::NotFound,
                message: "nosuch: command not found inside the container".into(),
            });
        });
        let mut steps = Vec::new();
        let failure = receive(read, |what, shell| {
            steps.push((what.len(), shell.to_string()))
        })
        .unwrap();
        writer.join().unwrap();
        assert_eq!(steps, [(3, "echo 1".to_string()), (10_000, String::new())]);
        let failure = failure.unwrap();
        assert_eq!(failure.exit_code(), 127);
        assert_eq!(
            failure.to_string(),
            "nosuch: command not found inside the container"
        );
    }

    #[test]
    fn end_of_file_without_a_failure_means_the_program_runs() {
        let (read, reporter) = pipe().unwrap();
        reporter.step("only", "a step");
        drop(reporter);
        let mut seen = 0;
        assert_eq!(receive(read, |_, _| seen += 1).unwrap(), None);
        assert_eq!(seen, 1);
        assert_eq!(Failure::setup("x").exit_code(), 125);
    }
}
