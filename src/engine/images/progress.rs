//! What a pull, push or load reports while it runs, as typed events: a
//! front end draws Docker's per-layer lines on a terminal, or plain lines
//! without one. Events may come from several threads at once.

use super::reference::Reference;

/// Where progress goes; `&|_| {}` when nobody listens.
pub type Progress<'a> = &'a (dyn Fn(Event) + Sync);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `latest: Pulling from library/busybox`.
    PullStarted { reference: Reference },
    /// A layer's state changed or more of its bytes moved.
    Layer(LayerProgress),
    /// Something the user should know that did not stop the work (a device
    /// node in a layer that was not created, for example).
    Warning(String),
    /// `Digest: sha256:…` and `Status: Downloaded newer image for …` (or
    /// `Image is up to date for …` when `newer` is false).
    PullDone {
        reference: Reference,
        repo_digest: String,
        newer: bool,
    },
    /// `The push refers to repository [host/name]`.
    PushStarted { reference: Reference },
    /// `latest: digest: sha256:… size: 527`.
    PushDone {
        reference: Reference,
        digest: String,
        size: u64,
    },
    /// `Loaded image: busybox:latest`.
    Loaded { reference: Reference },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerProgress {
    /// The layer blob's digest, `sha256:…`.
    pub digest: String,
    pub state: LayerState,
    /// Bytes moved so far and the blob's size (compressed), when moving.
    pub done: u64,
    pub total: u64,
}

impl LayerProgress {
    /// The 12 hex digits Docker shows at the start of a layer's line.
    pub fn short_id(&self) -> &str {
        let hex = self.digest.strip_prefix("sha256:").unwrap_or(&self.digest);
        &hex[..hex.len().min(12)]
    }
}

/// Docker's words for each state, from `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    Waiting,
    AlreadyExists,
    Downloading,
    Verifying,
    DownloadComplete,
    Extracting,
    PullComplete,
    Preparing,
    Pushing,
    Pushed,
    LayerAlreadyExists,
}

impl std::fmt::Display for LayerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayerState::Waiting => "Waiting",
            LayerState::AlreadyExists => "Already exists",
            LayerState::Downloading => "Downloading",
            LayerState::Verifying => "Verifying Checksum",
            LayerState::DownloadComplete => "Download complete",
            LayerState::Extracting => "Extracting",
            LayerState::PullComplete => "Pull complete",
            LayerState::Preparing => "Preparing",
            LayerState::Pushing => "Pushing",
            LayerState::Pushed => "Pushed",
            LayerState::LayerAlreadyExists => "Layer already exists",
        })
    }
}

pub(crate) fn layer(progress: Progress, digest: &str, state: LayerState, done: u64, total: u64) {
    progress(Event::Layer(LayerProgress {
        digest: digest.to_string(),
        state,
        done,
        total,
    }));
}
