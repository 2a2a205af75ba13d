//! The lab's one image store, `<data>/images`: where it lives, finding an
//! image for `run` (the lab's busybox built on first use), and `docker
//! import`, which turns a root filesystem tarball into an ordinary
//! one-layer image of the same store.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::compression::{self, Compression};
use super::error::{ImageError, Result};
use super::layout::create_new;
use super::platform::Platform;
use super::reference::Reference;
use super::store::{Image, ImageStore, StoredLayer};
use super::unpack::UnpackLimits;
use super::verify::HashingReader;
use super::{busybox, Event, Progress};
use crate::engine::dirs::LabDirs;
use crate::support::error::io_err;

/// Where the store lives under the lab's data directory.
pub fn store_dir(dirs: &LabDirs) -> PathBuf {
    dirs.data.join("images")
}

/// Opens (creating it when missing) the lab's image store.
pub fn open(dirs: &LabDirs) -> Result<ImageStore> {
    dirs.create_dir(&dirs.data)
        .map_err(|e| ImageError::Refused(e.to_string()))?;
    ImageStore::open(&store_dir(dirs))
}

/// The image `run` and `create` name (a reference or an id): from the
/// store, or, for `busybox[:latest]`, built from the host's busybox when
/// the store has none. Not found otherwise: the caller may pull.
pub fn resolve(store: &ImageStore, dirs: &LabDirs, text: &str) -> Result<Image> {
    match store.find(text) {
        Err(ImageError::NotFound { .. }) if names_busybox(text) => {
            Ok(busybox::ensure(store, dirs)?.0)
        }
        Ok(image) if names_busybox(text) => {
            // An older build of the lab's own is rebuilt.
            Ok(busybox::ensure(store, dirs)
                .map(|(i, _)| i)
                .unwrap_or(image))
        }
        other => other,
    }
}

/// True for `busybox`, `busybox:latest` and `docker.io/library/busybox:latest`.
pub fn names_busybox(text: &str) -> bool {
    Reference::parse(text).is_ok_and(|r| r == busybox::reference())
}

/// How big an imported tarball may be: its uncompressed bytes and entries.
pub const MAX_BYTES_ENV: &str = "CONTAINER_LAB_IMAGE_MAX_BYTES";
pub const MAX_ENTRIES_ENV: &str = "CONTAINER_LAB_IMAGE_MAX_ENTRIES";

/// 8 GiB and a million entries, or what the two variables above say: a
/// tarball is input from anywhere, and a small gzip file can fill a disk.
pub fn import_limits() -> Result<UnpackLimits> {
    let mut limits = UnpackLimits {
        max_entries: 1_000_000,
        max_bytes: 8 << 30,
    };
    for (var, field) in [
        (MAX_BYTES_ENV, &mut limits.max_bytes),
        (MAX_ENTRIES_ENV, &mut limits.max_entries),
    ] {
        if let Some(value) = std::env::var_os(var) {
            let text = value.to_string_lossy().into_owned();
            *field = text
                .trim()
                .parse()
                .ok()
                .filter(|&n: &u64| n > 0)
                .ok_or_else(|| {
                    ImageError::Refused(format!(
                        "invalid {var}={text:?}: use a whole number greater than 0"
                    ))
                })?;
        }
    }
    Ok(limits)
}

/// What an import did besides storing the image.
#[derive(Debug, Clone)]
pub struct Imported {
    pub image: Image,
    /// Entries not created (device nodes: a container gets its own /dev).
    pub skipped: Vec<String>,
}

/// `docker import TARBALL NAME[:TAG]`: the tarball (plain, gzip or zstd,
/// whatever its name) becomes the layer blob as it is, unpacked once and
/// checked like any pulled layer; the image's config names only the
/// platform and the history. Nothing is listed until all of it is stored.
// ANCHOR: import
pub fn import(
    store: &ImageStore,
    tarball: &Path,
    reference: &Reference,
    limits: UnpackLimits,
    progress: Progress,
) -> Result<Imported> {
    let layout = store.layout();
    let source = File::open(tarball).map_err(io_err("open", tarball))?;
    // The blob: copied into tmp/ while hashed, bounded like the unpacking.
    let temp = layout.temp("import");
    let mut blob = create_new(&temp.path)?;
    let mut hashing = HashingReader::new(BufReader::new(source), limits.max_bytes);
    let copied = io::copy(&mut hashing, &mut blob);
    if hashing.exceeded() {
        return Err(too_much(tarball, "bytes", limits.max_bytes, MAX_BYTES_ENV));
    }
    copied.map_err(io_err("copy", tarball))?;
    let (digest, size) = (hashing.digest(), hashing.count());
    // Unpacked from the temporary copy; the blob is stored only if that
    // succeeded, so a refused tarball leaves nothing.
    let head = {
        let file = File::open(&temp.path).map_err(io_err("open", &temp.path))?;
        compression::peek(file)
            .map_err(io_err("read", &temp.path))?
            .0
    };
    let compression = Compression::sniff(&head);
    let media_type = compression.oci_media_type();
    let reader = BufReader::new(File::open(&temp.path).map_err(io_err("open", &temp.path))?);
    // Errors name the tarball, not a digest nobody has seen yet.
    let name = tarball.display().to_string();
    let (unpacked, report) = store
        .unpack_to_temp(reader, compression, &name, media_type, limits)
        .map_err(|err| match err {
            ImageError::LimitExceeded { what, limit, .. } => {
                let var = if what == "entries" {
                    MAX_ENTRIES_ENV
                } else {
                    MAX_BYTES_ENV
                };
                too_much(tarball, what, limit, var)
            }
            other => not_a_tarball(tarball, other),
        })?;
    if report.entries == 0 {
        return Err(refuse_not_tar(tarball, "it has no entries"));
    }
    let blob_path = layout.blob_path(&digest)?;
    layout.commit_blob(
        blob, temp, &digest, size, &digest, size, "layer", &blob_path,
    )?;
    store.commit_layer(unpacked, &report, &digest, &report.diff_id)?;
    for skipped in &report.skipped {
        progress(Event::Warning(skipped.clone()));
    }
    let platform = Platform::host();
    let created = crate::support::time::format_rfc3339(std::time::SystemTime::now());
    let config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [report.diff_id]},
        "history": [{
            "created": created,
            "created_by": format!("mini-docker import {}", tarball.display()),
            "comment": "Imported from tarball",
        }],
    });
    let layer = StoredLayer {
        digest,
        media_type: media_type.to_string(),
        size,
        dir: store.layer_dir(&report.diff_id)?,
        diff_id: report.diff_id.clone(),
        unpacked_size: report.size,
    };
    let bytes = serde_json::to_vec(&config).map_err(|e| ImageError::invalid("config", e))?;
    store.write_image(&bytes, &[layer], std::slice::from_ref(reference))?;
    Ok(Imported {
        image: store.image(reference)?,
        skipped: report.skipped,
    })
}
// ANCHOR_END: import

/// A file that is no tar at all says so, without quoting its bytes (the
/// tar reader's message may hold them).
fn not_a_tarball(tarball: &Path, err: ImageError) -> ImageError {
    match err {
        ImageError::Invalid { .. } => refuse_not_tar(tarball, "not a valid tar stream"),
        other => other,
    }
}

fn refuse_not_tar(tarball: &Path, why: &str) -> ImageError {
    ImageError::Refused(format!(
        "{} is not a tar archive: {why}; import takes a .tar, .tar.gz or .tar.zst of a root filesystem",
        tarball.display()
    ))
}

fn too_much(tarball: &Path, what: &str, limit: u64, var: &str) -> ImageError {
    ImageError::Refused(format!(
        "refusing to import {}: it has more than {limit} {what}, the limit for one image; if it really is that big, raise the limit with {var}=N",
        tarball.display()
    ))
}
