//! Sysctls of the current network namespace, as `sysctl -n` and
//! `sysctl -w` read and write them.

use std::fs;
use std::path::PathBuf;

use super::NetError;

/// Reads a sysctl of the current network namespace (`sysctl -n`).
pub fn get(key: &str) -> Result<String, NetError> {
    let path = path_of(key);
    fs::read_to_string(&path)
        .map(|value| value.trim().to_string())
        .map_err(|e| NetError::Io {
            what: "read",
            path,
            source: e,
        })
}

/// Writes a sysctl of the current network namespace (`sysctl -w`).
pub fn set(key: &str, value: &str) -> Result<(), NetError> {
    let path = path_of(key);
    fs::write(&path, value).map_err(|e| NetError::Io {
        what: "write",
        path,
        source: e,
    })
}

fn path_of(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}
