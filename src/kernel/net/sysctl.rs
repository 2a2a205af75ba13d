//! Sysctls of the current network namespace, as `sysctl -n` and
//! `sysctl -w` read and write them.

use std::fs;
use std::path::PathBuf;

use super::NetError;
use crate::support::error::{io_err, IoError};
use crate::support::fs::read_kernel_file;

/// Reads a sysctl of the current network namespace (`sysctl -n`).
pub fn get(key: &str) -> Result<String, NetError> {
    let path = path_of(key);
    read_kernel_file(&path)
        .map(|value| value.trim().to_string())
        .map_err(|e| IoError::new("read", &path, e).into())
}

/// Writes a sysctl of the current network namespace (`sysctl -w`).
pub fn set(key: &str, value: &str) -> Result<(), NetError> {
    let path = path_of(key);
    Ok(fs::write(&path, value).map_err(io_err("write", &path))?)
}

fn path_of(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}
