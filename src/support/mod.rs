//! Below every floor: small helpers that the kernel primitives, the
//! engine and the harness all need, written once.

pub mod error;
pub mod fs;
pub mod ids;
pub mod shell;
pub mod time;
