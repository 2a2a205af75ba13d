//! The teaching harness: what the chapter binaries share. The chapter
//! manifest (and `begin`, which applies what a chapter needs), the
//! narrator that prints each step, the chapters' command-line flags, the
//! chapters' container and the few steps they all repeat.

pub mod chapters;
pub mod cli;
pub mod container;
pub mod layers;
pub mod narrate;
pub mod needs;
pub mod privilege;
pub mod steps;

/// The first line of every chapter: `let mut book = lab::begin!(&cli.chapter)?;`
/// finds the chapter in the manifest by the binary's own name, applies
/// what it needs and returns its narrator (see `chapters::begin`).
#[doc(hidden)]
#[macro_export]
macro_rules! lab_begin {
    ($args:expr) => {
        $crate::lab::chapters::begin(env!("CARGO_BIN_NAME"), $args)
    };
}
pub use crate::lab_begin as begin;
