//! The seam between the builder and a container runtime: a RUN step is
//! a command run on an overlay of the parent's layers, whose writable
//! directory becomes the step's layer. The builder prepares the
//! directories and reads the result; the runner (the lab's runtime, or a
//! test's) mounts, isolates, runs and waits.

use std::process::ExitStatus;

use crate::kernel::overlay::{Layer, OverlayDirs};

/// One RUN step, as the runner receives it.
#[derive(Debug)]
pub struct RunStep<'a> {
    /// The parent's layers, bottom first (as `kernel::overlay` stacks them).
    pub layers: &'a [Layer],
    /// `upper` (empty: the step's layer), `work` and `merged` (a mount
    /// point), in the build's scratch space inside the image store.
    pub dirs: &'a OverlayDirs,
    /// The command: the shell form already prefixed with the SHELL.
    pub argv: &'a [String],
    /// `K=V`: the image's Env and the build args in scope.
    pub env: &'a [String],
    /// `USER` as written (`name`, `uid`, `name:group`); empty for root.
    pub user: &'a str,
    /// An absolute path that exists in the layers.
    pub workdir: &'a str,
}

/// Runs RUN steps. It must leave nothing mounted in the caller's mount
/// namespace (the builder checks, and refuses to continue if it did) and
/// must not return before the command and everything it started ended.
pub trait StepRunner: Sync {
    fn run(&self, step: &RunStep<'_>) -> std::io::Result<ExitStatus>;
}

/// The overlay mount options for a step: redirects and metacopy off, so
/// that the upper directory is a complete diff of the step.
pub fn mount_options(step: &RunStep<'_>) -> String {
    format!(
        "{},redirect_dir=off,metacopy=off,index=off",
        crate::kernel::overlay::mount_options(step.layers, step.dirs)
    )
}
