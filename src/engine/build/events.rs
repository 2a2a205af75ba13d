//! What a build reports while it runs, as typed events; a front end prints
//! them as BuildKit's plain progress or Docker's classic steps.

use crate::engine::images::Reference;

/// Where events go; `&|_| {}` when nobody listens.
pub type Events<'a> = &'a (dyn Fn(BuildEvent) + Sync);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// A parser warning or an unused `--build-arg`.
    Warning(String),
    /// A stage starts: its FROM resolved.
    Stage {
        stage: usize,
        name: Option<String>,
        base: String,
    },
    /// `[stage 2/5] RUN …`: step `number` of `total` (FROM is 1).
    Step {
        stage: usize,
        number: usize,
        total: usize,
        instruction: String,
    },
    /// The step was taken from the cache: `CACHED`.
    Cached { stage: usize, number: usize },
    /// The step made a layer.
    Layer {
        stage: usize,
        number: usize,
        diff_id: String,
        digest: String,
        size: u64,
    },
    /// The step changed no file: no layer (`empty_layer` in the history).
    NoLayer { stage: usize, number: usize },
    /// `naming to docker.io/library/app:latest`.
    Tagged { reference: Reference },
    /// `writing image sha256:…`.
    Built { id: String },
}
