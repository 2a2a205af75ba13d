//! Chapter 10: building images, read from the layer tar the program wrote.

use std::fs::File;
use std::path::Path;

use super::{Check, Subject};

pub fn verify(s: &Subject) -> Vec<Check> {
    layer(&s.run_dir.join("layer.tar"))
}

/// `(path, entry type, size)` of every entry, in the tar's order.
fn entries(tar: &Path) -> Option<Vec<(String, tar::EntryType, u64)>> {
    let mut archive = tar::Archive::new(File::open(tar).ok()?);
    let mut found = Vec::new();
    for entry in archive.entries().ok()? {
        let entry = entry.ok()?;
        let path = entry.path().ok()?.to_string_lossy().into_owned();
        let header = entry.header();
        found.push((path, header.entry_type(), header.size().unwrap_or(0)));
    }
    Some(found)
}

fn layer(tar: &Path) -> Vec<Check> {
    let Some(entries) = entries(tar) else {
        return vec![Check::fail(
            "layer.tar is missing or not a tar: keep the given lines that write it",
        )];
    };
    let has_file = |path: &str| {
        entries
            .iter()
            .any(|(p, kind, _)| p == path && *kind == tar::EntryType::Regular)
    };
    let whiteout = "etc/.wh.issue";
    let marked = entries
        .iter()
        .find(|(p, _, _)| p == whiteout)
        .map(|(_, kind, size)| (*kind, *size));
    let devices: Vec<&str> = entries
        .iter()
        .filter(|(_, kind, _)| *kind == tar::EntryType::Char)
        .map(|(p, _, _)| p.as_str())
        .collect();
    vec![
        Check::new(
            has_file("app/main.py") && has_file("etc/motd"),
            "layer.tar holds the new app/main.py and the changed etc/motd",
            "layer.tar lacks app/main.py or etc/motd: keep the given lines that append files",
        ),
        Check::new(
            marked == Some((tar::EntryType::Regular, 0)),
            format!("the deleted etc/issue is {whiteout} in the tar: an empty regular file"),
            match marked {
                None => format!(
                    "layer.tar has no {whiteout}: the deleted etc/issue would come back \
                     from the layer below; append a whiteout as an empty file named .wh.issue"
                ),
                Some((kind, size)) => format!(
                    "{whiteout} in the tar is a {kind:?} entry of {size} bytes, not an empty \
                     regular file"
                ),
            },
        ),
        Check::new(
            devices.is_empty(),
            "no character device in the tar: overlayfs's own mark stays on this host",
            format!(
                "layer.tar holds the character device {}: the image spec marks a deletion \
                 with .wh.NAME, a device would be created on unpack",
                devices.join(", ")
            ),
        ),
    ]
}
