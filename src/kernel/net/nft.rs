//! nftables, through the `nft` program: a ruleset applied in one
//! transaction, a table listed or deleted.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::NetError;
use crate::support::error::io_err;

/// `nft -f -` with the given ruleset text.
pub fn apply(ruleset: &str) -> Result<(), NetError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err("run", PathBuf::from("nft")))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(ruleset.as_bytes())
        .map_err(io_err("write to", PathBuf::from("nft")))?;
    let output = child
        .wait_with_output()
        .map_err(io_err("run", PathBuf::from("nft")))?;
    if !output.status.success() {
        return Err(NetError::Nft(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Table `table`, written whole in one transaction: whatever a table of
/// that name held before (a killed run's, an older version's) is replaced,
/// never added to.
pub fn replace_table(table: &str, ruleset: &str) -> Result<(), NetError> {
    apply(&format!(
        "table ip {table} {{}}\ndelete table ip {table}\n{ruleset}"
    ))
}

/// `nft list table ip TABLE`, or None when it does not exist.
pub fn list_table(table: &str) -> Option<String> {
    let output = Command::new("nft")
        .args(["list", "table", "ip", table])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The names of the `ip` family's tables in this namespace (`nft list tables ip`).
pub fn tables() -> Vec<String> {
    let Ok(output) = Command::new("nft").args(["list", "tables", "ip"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("table ip "))
        .map(|name| name.trim().to_string())
        .collect()
}

/// `nft delete table ip TABLE`; a table that is not there is not an error.
pub fn delete_table(table: &str) {
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", table])
        .stderr(Stdio::null())
        .status();
}
