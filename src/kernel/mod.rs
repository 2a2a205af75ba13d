//! The kernel primitives, one module each, in the order the book teaches
//! them. Nothing here knows about chapters, narration or the engine: each
//! module takes plain values and returns results, and prints nothing.

pub mod cgroups;
pub mod hardening;
pub mod hostname;
pub mod init;
pub mod init_pipe;
pub mod ipc;
pub mod loopdev;
pub mod mounts;
pub mod namespaces;
pub mod net;
pub mod overlay;
pub mod process;
pub mod pty;
pub mod rootfs;
pub mod signals;
pub mod userns;
