//! Exercise ch09-verify, chapter 9 (images and registries): store a layer
//! only when its bytes hash to its digest, checked while they stream.
//!
//! Fill in the TODO, then run `lab check ch09-verify` (or keep `lab
//! watch` running). `lab hint ch09-verify` helps.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use container_lab::lab::handoff;
use sha2::{Digest, Sha256};

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let run_dir = handoff::run_dir()?;
    let blobs = run_dir.path().join("blobs");
    fs::create_dir_all(blobs.join("sha256"))?;
    fs::create_dir_all(blobs.join("tmp"))?;
    // Two layers as a registry might send them: one intact, one with a
    // byte changed on the way (its digest is still the original's).
    let good = layer_bytes("good");
    let good_digest = sha256_digest(&good);
    let mut corrupted = layer_bytes("corrupted");
    let corrupted_digest = sha256_digest(&corrupted);
    corrupted[100] ^= 1;
    for (name, bytes, digest) in [
        ("good", &good, &good_digest),
        ("corrupted", &corrupted, &corrupted_digest),
    ] {
        match store_blob(&blobs, bytes.as_slice(), digest) {
            Ok(path) => eprintln!("the {name} layer stored as {}", path.display()),
            Err(err) => eprintln!("the {name} layer refused: {err}"),
        }
    }

    // The lab looks at blobs/ while this waits.
    handoff::this_process_to_lab()
}

/// Streams `reader` into blobs/tmp/, hashing the bytes as they pass, and
/// stores them as blobs/sha256/HEX only when they hash to `digest`.
fn store_blob(blobs: &Path, reader: impl Read, digest: &str) -> anyhow::Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .context("a digest is sha256:HEX")?;
    let temp = blobs.join("tmp").join(hex);
    let final_path = blobs.join("sha256").join(hex);
    // Each chunk is hashed as it goes to the file: no second read.
    let mut file = File::create(&temp)?;
    let mut hasher = Sha256::new();
    let mut reader = reader;
    let mut chunk = [0u8; 1024];
    loop {
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
        file.write_all(&chunk[..n])?;
    }
    drop(file);
    let actual = format!("sha256:{:x}", hasher.finalize());
    // TODO: compare `actual` with `digest`. When they differ, remove the
    // temporary file and refuse the layer (anyhow::bail!); when they
    // match, rename the temporary file to `final_path`.
    // END TODO
    Ok(final_path)
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A few KiB that stand for a layer's compressed tar.
fn layer_bytes(name: &str) -> Vec<u8> {
    (0..4096u32)
        .map(|i| (i.wrapping_mul(31) as u8) ^ name.len() as u8)
        .collect()
}
