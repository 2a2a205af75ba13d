//! `mini-docker run --explain`: every step printed as it is applied, with
//! the shell command that would do the same, so a learner can follow a
//! whole run primitive by primitive. Written to stderr, so the container's
//! own output on stdout stays untouched.

use std::fmt::Display;
use std::io::Write;

#[derive(Debug, Clone, Copy, Default)]
pub struct Explain {
    pub on: bool,
}

impl Explain {
    /// `-- what` then `   $ shell`.
    pub fn step(&self, what: impl Display, shell: impl Display) {
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "-- {what}\n   $ {shell}");
        }
    }
}
