//! The container engine: everything mini-docker (or any other front end,
//! such as the OCI runtime) needs to run containers, as typed operations.
//! The engine never prints: it returns values and errors, and reports
//! progress and explanations through the callbacks its caller gives it.

pub mod build;
pub mod dirs;
pub mod images;
pub mod lifecycle;
pub mod logs;
pub mod network;
pub mod oci;
pub mod runtime;
pub mod store;
pub mod supervisor;
pub mod volumes;
