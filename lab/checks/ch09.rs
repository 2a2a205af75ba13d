//! Chapter 9: images, read from the blob store the program wrote.

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

use container_lab::kernel::overlay::{self, UpperEntry};

use super::{Check, Subject};

pub fn verify(s: &Subject) -> Vec<Check> {
    match s.ex.id {
        "ch09-verify" => verified_blobs(&s.run_dir.join("blobs")),
        _ => unpacked_whiteout(&s.run_dir.join("layer")),
    }
}

/// `(name, the sha256 of its bytes)` of every file in `dir`, by name.
fn hashed_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hash = fs::read(entry.path())
                .map(|bytes| format!("{:x}", Sha256::digest(bytes)))
                .unwrap_or_default();
            (name, hash)
        })
        .collect();
    files.sort();
    files
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(12)]
}

fn verified_blobs(blobs: &Path) -> Vec<Check> {
    let stored = hashed_files(&blobs.join("sha256"));
    let left = hashed_files(&blobs.join("tmp"));
    let intact: Vec<&(String, String)> = stored.iter().filter(|(n, h)| n == h).collect();
    let wrong: Vec<&(String, String)> = stored.iter().filter(|(n, h)| n != h).collect();
    vec![
        Check::new(
            !intact.is_empty(),
            format!(
                "the intact layer is stored as blobs/sha256/{}…, and its bytes hash to its name",
                intact.first().map_or("", |(n, _)| short(n))
            ),
            "blobs/sha256/ holds no layer that hashes to its name: rename the temporary \
             file into place once its digest matches",
        ),
        Check::new(
            wrong.is_empty(),
            "no corrupted layer is stored: every blob under blobs/sha256/ hashes to its name",
            match wrong.first() {
                Some((name, hash)) => format!(
                    "blobs/sha256/{}… holds bytes that hash to sha256:{}…: a corrupted layer \
                     was stored; compare the digests before the rename",
                    short(name),
                    short(hash)
                ),
                None => String::new(),
            },
        ),
        Check::new(
            left.is_empty(),
            "blobs/tmp/ is empty: nothing is left of the refused layer",
            format!(
                "blobs/tmp/ still holds {} file(s): remove the temporary file of a layer \
                 you refuse (and rename the one you keep)",
                left.len()
            ),
        ),
    ]
}

/// Every path below `dir` whose name starts with `.wh.`.
fn wh_files(dir: &Path, found: &mut Vec<String>, prefix: &str) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{prefix}{name}");
        if name.starts_with(".wh.") {
            found.push(path.clone());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            wh_files(&entry.path(), found, &format!("{path}/"));
        }
    }
}

fn unpacked_whiteout(layer: &Path) -> Vec<Check> {
    let mark = overlay::inspect_upper(&layer.join("etc/issue"));
    let motd = fs::read_to_string(layer.join("etc/motd")).unwrap_or_default();
    let mut left = Vec::new();
    wh_files(layer, &mut left, "");
    vec![
        Check::new(
            mark == UpperEntry::Whiteout,
            "layer/etc/issue is a whiteout: a 0/0 character device, as overlayfs reads it",
            match &mark {
                UpperEntry::Missing => "layer/ has no etc/issue: the layer's etc/.wh.issue \
                                        must become a 0/0 character device named issue"
                    .to_string(),
                other => format!("layer/etc/issue is {other:?}, not a 0/0 character device"),
            },
        ),
        Check::new(
            left.is_empty(),
            "no .wh. file is left in layer/: overlayfs would show it as a file",
            format!(
                "layer/ holds {}: overlayfs does not read .wh. names, a container \
                 would see it as a file; make the device instead of unpacking it",
                left.join(", ")
            ),
        ),
        Check::new(
            motd.contains("top layer"),
            "the rest of the layer is unpacked: etc/motd is the top layer's",
            "layer/etc/motd is missing: keep the given line that unpacks the other entries",
        ),
    ]
}
