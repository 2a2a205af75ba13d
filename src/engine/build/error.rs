//! What can stop a build, in Docker's words where Docker has them.

use crate::engine::images::ImageError;
use crate::support::error::IoError;

pub use super::dockerfile::ParseError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile itself is wrong.
    #[error(transparent)]
    Parse(#[from] ParseError),

    /// An instruction could not be carried out (a COPY source missing or
    /// outside the context, a bad variable substitution, …).
    #[error("{file}:{line}: {message}")]
    Step {
        file: String,
        line: usize,
        message: String,
    },

    /// A RUN step's command exited non-zero (Docker's classic message).
    #[error("the command '{command}' returned a non-zero code: {code}")]
    RunFailed {
        file: String,
        line: usize,
        command: String,
        code: i32,
    },

    /// The step runner could not run the command at all.
    #[error("{file}:{line}: RUN could not start: {message}")]
    Runner {
        file: String,
        line: usize,
        message: String,
    },

    #[error("the build was interrupted; the steps that completed stay in the cache")]
    Interrupted,

    #[error("building an image needs root: a layer keeps its files' owners, which only root can set; run the build with sudo")]
    NeedsRoot,

    #[error("{0}")]
    Usage(String),

    #[error(transparent)]
    Image(#[from] ImageError),

    #[error(transparent)]
    Io(#[from] IoError),
}

pub type Result<T, E = BuildError> = std::result::Result<T, E>;

/// `map_err` for I/O on a path: `.map_err(io("read", &path))`.
pub fn io(
    op: &str,
    path: impl AsRef<std::path::Path>,
) -> impl FnOnce(std::io::Error) -> BuildError {
    let f = crate::support::error::io_err(op, path);
    move |e| BuildError::Io(f(e))
}
