//! One error type for images: the store, layers, registries and archives.
//! Each variant names what was wrong and, where there is one, what to do.

use std::io;
use std::path::PathBuf;

use super::reference::ReferenceError;
use crate::support::error::IoError;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    #[error(transparent)]
    Io(#[from] IoError),

    #[error("failed to read {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: io::Error,
    },

    #[error("{what}: the registry sent nothing for {seconds} s; the transfer was abandoned (a stalled server or network)")]
    Stalled { what: String, seconds: u64 },

    #[error(
        "{what}: the connection closed after {received} of {expected} bytes; nothing was stored"
    )]
    Disconnected {
        what: String,
        received: u64,
        expected: u64,
    },

    #[error("{what} is not valid: {message}")]
    Invalid { what: String, message: String },

    #[error("{what} has digest {actual}, not the {expected} it should have; it was discarded")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("{what} is {actual} bytes, not the {expected} its descriptor says; it was discarded")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("{what} is longer than the {expected} bytes its descriptor says; the transfer was stopped and discarded")]
    LongerThanDescriptor { what: String, expected: u64 },

    #[error("{what} is larger than {limit} bytes, more than any real one; refused")]
    TooLarge { what: String, limit: u64 },

    #[error("layer {layer} unpacks to {actual}, but the image config's diff_id is {expected}; the layer was discarded and the image not stored")]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },

    #[error("layer {layer} has media type {media_type}, which this engine cannot unpack (it knows tar, tar+gzip and tar+zstd, OCI and Docker)")]
    UnsupportedMediaType { layer: String, media_type: String },

    #[error("layer {layer} is said to be {said} ({media_type}) but its first bytes are {found}; refused")]
    CompressionMismatch {
        layer: String,
        media_type: String,
        said: &'static str,
        found: &'static str,
    },

    #[error(
        "layer {layer}: entry {entry:?} {reason}; refused, nothing was written outside the layer"
    )]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: String,
    },

    #[error("layer {layer} has more than {limit} {what}; refused (the limit protects the disk from a hostile image)")]
    LimitExceeded {
        layer: String,
        what: &'static str,
        limit: u64,
    },

    #[error("no image {reference} in the store")]
    NotFound { reference: String },

    #[error("manifest for {reference} not found: {detail}")]
    ManifestUnknown { reference: String, detail: String },

    #[error("{reference} has no image for {wanted}; it has {}", available.join(", "))]
    NoSuchPlatform {
        reference: String,
        wanted: String,
        available: Vec<String>,
    },

    #[error(
        "{method} {url}: the registry answered {status}{}",
        detail_suffix(detail)
    )]
    Http {
        method: &'static str,
        url: String,
        status: u16,
        detail: String,
    },

    #[error("{method} {url}: {message}")]
    Transport {
        method: &'static str,
        url: String,
        message: String,
    },

    #[error("{registry} refused {}: {detail}", if *with_credentials { "the stored credentials" } else { "an anonymous request" })]
    Unauthorized {
        registry: String,
        with_credentials: bool,
        detail: String,
    },

    #[error("registry {registry}: {message}")]
    Protocol { registry: String, message: String },

    #[error("{}: {message}", path.display())]
    Archive { path: PathBuf, message: String },

    #[error("{0}")]
    Refused(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl ImageError {
    pub fn invalid(what: impl Into<String>, message: impl std::fmt::Display) -> ImageError {
        ImageError::Invalid {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;
