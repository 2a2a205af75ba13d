//! The container lab's library: one module per Linux primitive, reused by
//! every chapter binary in `chapters/` and, at the end, by `mini-docker`.
//!
//! Chapters read top to bottom like their book page; the careful versions of
//! each primitive (error handling, cleanup, cgroup v1/v2) live here.

// Infrastructure every chapter shares.
pub mod chapters;
pub mod cli;
pub mod narrate;
pub mod privilege;
pub mod signals;
pub mod state;
pub mod steps;

// The kernel primitives, in the order the book teaches them.
pub mod cgroups;
pub mod container;
pub mod hardening;
pub mod images;
pub mod init;
pub mod ipc;
pub mod mounts;
pub mod namespaces;
pub mod network;
pub mod overlay;
pub mod pty;
pub mod rootfs;
pub mod runtime;
pub mod userns;
pub mod volumes;

// mini-docker's lifecycle: container records and their logs.
pub mod logs;
pub mod store;
pub mod supervisor;

// The container engine (images so far; see src/engine/).
pub mod engine;
