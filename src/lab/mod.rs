//! The teaching harness: what the chapter binaries share. The chapter
//! manifest (and `begin`, which applies what a chapter needs), the
//! narrator that prints each step, the chapters' command-line flags, the
//! chapters' container and the few steps they all repeat.

pub mod chapters;
pub mod cli;
pub mod container;
pub mod layers;
pub mod narrate;
pub mod privilege;
pub mod steps;
