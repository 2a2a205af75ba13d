//! Building images: a Dockerfile executed into an image in the store, one
//! layer per step that changes files, with a layer cache, multi-stage
//! builds and `.dockerignore`; and the layer machinery `diff`, `commit`
//! and `export` share with it.
//!
//! ```text
//! dockerfile    text → stages of typed instructions (Docker's errors)
//! words         Docker's variable substitution
//! dockerignore  Docker's ignore patterns
//! context       COPY sources: globs, the context's bounds, their digest
//! tree          the context and an image's merged layers, read-only
//! users         --chown and USER by name, from the image's /etc
//! copy          COPY, ADD and WORKDIR written into a fresh upper directory
//! diff          an upper directory as a layer tar; docker diff and export
//! cache         step key → layer, one file per key in the store
//! runner        the RUN seam: a trait the runtime implements
//! builder       the stages executed
//! commit        a container's upper directory as a new image
//! lab_images    the lab's store, and its busybox and imported images in it
//! ```
//!
//! Nothing here prints: progress goes to the caller as [`BuildEvent`]s.

mod builder;
mod cache;
mod commit;
mod config;
mod context;
mod copy;
mod diff;
mod dockerfile;
mod dockerignore;
mod error;
mod events;
pub mod lab_images;
mod runner;
mod tree;
mod users;
mod words;

pub use builder::{absolute, BuildOptions, Builder, Built, ImageResolver, DEFAULT_PATH};
pub use cache::key as cache_key;
pub use commit::{commit, CommitOptions};
pub use config::ImageConfig;
pub use context::{has_wildcards, BuildContext, Source};
pub use diff::{changes, export, layer_from_upper, write_tar, Change, ChangeKind, LayerStats};
pub use dockerfile::{
    parse, Command, CopySpec, Dockerfile, Healthcheck, Instruction, Kind, ParseError, Stage,
};
pub use dockerignore::Dockerignore;
pub use error::{BuildError, Result};
pub use events::{BuildEvent, Events};
pub use runner::{mount_options, RunStep, StepRunner};
pub use tree::{resolve_in_scope, DirTree, EntryKind, MergedView, Meta, Tree};
pub use users::{chown, run_user, User};
pub use words::{expand, Expanded};
