//! Random IDs, as Docker makes them: 256 bits as 64 lowercase hex digits.

use std::fs::File;
use std::io::Read;

use super::error::{io_err, IoError};

/// Bytes from the kernel's random pool.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], IoError> {
    let mut bytes = [0u8; N];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io_err("read", "/dev/urandom"))?;
    Ok(bytes)
}

/// 256 random bits as 64 lowercase hex digits, like Docker's IDs.
pub fn random_id() -> Result<String, IoError> {
    let bytes: [u8; 32] = random_bytes()?;
    Ok(hex(&bytes))
}

/// The ID the lab pins for `name` when its tests ask for pinned IDs: the
/// SHA-256 of the name, the same on every machine.
pub fn pinned_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(format!("container-lab:{name}").as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
