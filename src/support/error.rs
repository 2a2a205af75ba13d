//! The one I/O error of the lab: what was being done, to which path, and
//! what the kernel answered. Every floor's error type wraps it, so the
//! message always names the operation and the path.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("failed to {op} {}: {source}{}", path.display(), hint(source))]
pub struct IoError {
    pub op: String,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl IoError {
    pub fn new(op: impl Into<String>, path: impl AsRef<Path>, source: io::Error) -> IoError {
        IoError {
            op: op.into(),
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// The kernel's answer, for callers that act on it (ENOENT, ENOSPC …).
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

/// For `map_err`: `fs::read(&path).map_err(io_err("read", &path))?`.
pub fn io_err(op: &str, path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> IoError {
    let op = op.to_string();
    let path = path.as_ref().to_path_buf();
    move |source| IoError { op, path, source }
}

/// What to do about the errors a learner can fix at once.
fn hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => "; free some space on that filesystem and try again",
        _ => "",
    }
}
