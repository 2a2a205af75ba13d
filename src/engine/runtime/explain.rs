//! `run --explain`: every step of a start as it is applied, with the shell
//! command that would do the same, so a learner can follow a whole run
//! primitive by primitive. The engine does not print them: it hands each
//! step to the callback its front end gave it, and the steps the cloned
//! child takes travel back over the init pipe first (the child's stderr is
//! the container's by then).

use std::fmt::Display;

/// What is told of each step: what was done, and its shell equivalent.
pub type OnStep = dyn Fn(&str, &str);

/// Where the steps of a start go, if anywhere.
#[derive(Clone, Copy, Default)]
pub struct Explain<'a> {
    to: Option<&'a OnStep>,
}

impl<'a> Explain<'a> {
    /// Every step goes to `to`.
    pub fn to(to: &'a OnStep) -> Explain<'a> {
        Explain { to: Some(to) }
    }

    /// Nobody asked: the steps cost nothing.
    pub fn none() -> Explain<'a> {
        Explain { to: None }
    }

    pub fn is_on(&self) -> bool {
        self.to.is_some()
    }

    /// A step and the shell command that does the same.
    pub fn step(&self, what: impl Display, shell: impl Display) {
        if let Some(to) = self.to {
            to(&what.to_string(), &shell.to_string());
        }
    }
}

impl std::fmt::Debug for Explain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Explain")
            .field("on", &self.is_on())
            .finish()
    }
}
