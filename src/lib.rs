//! The container lab's library, in three floors and a basement. Each floor
//! imports only the ones below it (ARCHITECTURE.md; `tests/architecture.rs`
//! checks it):
//!
//! - [`lab`]: the teaching harness the chapter binaries stand on: the
//!   chapter manifest, the narrator, the chapters' container.
//! - [`engine`]: a container engine any front end can drive (mini-docker,
//!   the OCI runtime): configuration, runtime, supervisor, lifecycle,
//!   store, logs, volumes, networks, images. It never prints.
//! - [`kernel`]: the Linux primitives a learner reads, one module each. It
//!   knows nothing of the floors above.
//! - [`support`]: small helpers every floor shares (errors, atomic files,
//!   time, ids).

pub mod engine;
pub mod kernel;
pub mod lab;
pub mod support;
#[cfg(test)]
mod testing;
