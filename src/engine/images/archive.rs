//! `docker save` and `docker load`: images to and from a tarball, so that
//! an instructor can hand out images with no network. Two formats:
//!
//! - docker-archive (what `docker save` writes): `manifest.json` listing
//!   each image's config (`<id>.json`), tags and layers
//!   (`<diff_id>/layer.tar`, uncompressed);
//! - OCI archive: a tar of an OCI image layout (`oci-layout`, `index.json`,
//!   `blobs/sha256/…`), each entry named by its full reference.
//!
//! `load` reads either (gzipped too), verifies every blob and layer as a
//! pull does, and refuses paths or links that leave the archive.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageIndex;
use serde_json::json;

use super::compression::{self, Compression};
use super::error::{ImageError, Result};
use super::layout::{create_new, REF_NAME};
use super::platform::Platform;
use super::progress::{Event, Progress};
use super::reference::Reference;
use super::store::{
    self, parse_config, parse_manifest, Image, ImageStore, MAX_CONFIG, MAX_MANIFEST, OCI_CONFIG,
    OCI_MANIFEST,
};
use super::unpack::UnpackLimits;
use super::verify::{digest_hex, sha256_digest, HashingReader};
use crate::support::error::{io_err, IoError};

const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// An archive with more entries than this is not a set of images.
const MAX_ARCHIVE_ENTRIES: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Docker,
    Oci,
}

fn archive_error(path: &str, message: impl Into<String>) -> ImageError {
    ImageError::Archive {
        path: PathBuf::from(path),
        message: message.into(),
    }
}

fn write_error(e: io::Error) -> ImageError {
    ImageError::Io(IoError::new("write", PathBuf::from("the archive"), e))
}

fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    // Owned by whoever saves, as tar does: a reader that untars as a user
    // (skopeo's oci-archive) cannot chown to root.
    header.set_uid(u64::from(nix::unistd::geteuid().as_raw()));
    header.set_gid(u64::from(nix::unistd::getegid().as_raw()));
    header
}

fn append_bytes<W: Write>(builder: &mut tar::Builder<W>, name: &str, bytes: &[u8]) -> Result<()> {
    builder
        .append_data(&mut file_header(bytes.len() as u64), name, bytes)
        .map_err(write_error)
}

fn append_file<W: Write>(builder: &mut tar::Builder<W>, name: &str, path: &Path) -> Result<()> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let size = file.metadata().map_err(io_err("stat", path))?.len();
    builder
        .append_data(&mut file_header(size), name, file)
        .map_err(write_error)
}

/// Writes the images named (references or ids) to `out`.
pub fn save(
    store: &ImageStore,
    names: &[&str],
    format: ArchiveFormat,
    out: impl Write,
) -> Result<()> {
    let mut images: Vec<(Image, Vec<Reference>)> = Vec::new();
    for name in names {
        let image = store.find(name)?;
        let tags = if Reference::parse(name).is_ok_and(|r| r == image.reference) {
            vec![image.reference.clone()]
        } else {
            // By id: every name the image has.
            store
                .list()?
                .into_iter()
                .filter(|i| i.manifest_digest == image.manifest_digest)
                .map(|i| i.reference)
                .collect()
        };
        match images
            .iter_mut()
            .find(|(i, _)| i.manifest_digest == image.manifest_digest)
        {
            Some((_, existing)) => existing.extend(tags),
            None => images.push((image, tags)),
        }
    }
    let mut builder = tar::Builder::new(out);
    match format {
        ArchiveFormat::Docker => save_docker(store, &images, &mut builder)?,
        ArchiveFormat::Oci => save_oci(store, &images, &mut builder)?,
    }
    builder
        .into_inner()
        .map_err(write_error)?
        .flush()
        .map_err(write_error)
}

fn save_docker<W: Write>(
    store: &ImageStore,
    images: &[(Image, Vec<Reference>)],
    builder: &mut tar::Builder<W>,
) -> Result<()> {
    let mut written = BTreeSet::new();
    let mut manifest = Vec::new();
    for (image, tags) in images {
        let config_name = format!("{}.json", &image.config_digest[7..]);
        if written.insert(config_name.clone()) {
            append_file(
                builder,
                &config_name,
                &store.blob_path(&image.config_digest)?,
            )?;
        }
        let mut layers = Vec::new();
        for layer in &image.layers {
            let name = format!("{}/layer.tar", digest_hex(&layer.diff_id)?);
            if written.insert(name.clone()) {
                append_uncompressed(store, builder, &name, layer)?;
            }
            layers.push(name);
        }
        let tags: Vec<String> = tags.iter().map(Reference::familiar).collect();
        manifest.push(json!({"Config": config_name, "RepoTags": tags, "Layers": layers}));
    }
    let bytes =
        serde_json::to_vec(&manifest).map_err(|e| ImageError::invalid("manifest.json", e))?;
    append_bytes(builder, "manifest.json", &bytes)
}

/// A layer as the uncompressed tar docker-archive wants, checked against
/// its diff_id while it is written.
fn append_uncompressed<W: Write>(
    store: &ImageStore,
    builder: &mut tar::Builder<W>,
    name: &str,
    layer: &store::StoredLayer,
) -> Result<()> {
    let compression = Compression::for_media_type(&layer.media_type).ok_or_else(|| {
        ImageError::UnsupportedMediaType {
            layer: layer.digest.clone(),
            media_type: layer.media_type.clone(),
        }
    })?;
    let path = store.blob_path(&layer.digest)?;
    let open = || -> Result<Box<dyn Read>> {
        let file = File::open(&path).map_err(io_err("open", &path))?;
        compression::decoder(
            BufReader::new(file),
            compression,
            &layer.digest,
            &layer.media_type,
        )
    };
    // The uncompressed size is needed before the bytes: layer.json has it,
    // else count them once.
    let size = if layer.unpacked_size > 0 {
        layer.unpacked_size
    } else {
        io::copy(&mut open()?, &mut io::sink()).map_err(|source| ImageError::Read {
            what: format!("layer {}", layer.digest),
            source,
        })?
    };
    let mut hashing = HashingReader::new(open()?, size);
    builder
        .append_data(&mut file_header(size), name, &mut hashing)
        .map_err(write_error)?;
    if hashing.count() != size || hashing.digest() != layer.diff_id {
        return Err(ImageError::DiffIdMismatch {
            layer: layer.digest.clone(),
            expected: layer.diff_id.clone(),
            actual: hashing.digest(),
        });
    }
    Ok(())
}

fn save_oci<W: Write>(
    store: &ImageStore,
    images: &[(Image, Vec<Reference>)],
    builder: &mut tar::Builder<W>,
) -> Result<()> {
    append_bytes(builder, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    // Explicit, so that an untarring reader does not make them root's.
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut header = file_header(0);
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        builder
            .append_data(&mut header, dir, io::empty())
            .map_err(write_error)?;
    }
    let mut written = BTreeSet::new();
    let mut manifests = Vec::new();
    for (image, tags) in images {
        let mut blobs = vec![image.manifest_digest.clone(), image.config_digest.clone()];
        blobs.extend(image.layers.iter().map(|l| l.digest.clone()));
        for digest in blobs {
            let name = format!("blobs/sha256/{}", digest_hex(&digest)?);
            if written.insert(name.clone()) {
                append_file(builder, &name, &store.blob_path(&digest)?)?;
            }
        }
        let size = fs::metadata(store.blob_path(&image.manifest_digest)?)
            .map_err(io_err("stat", store.blob_path(&image.manifest_digest)?))?
            .len();
        for tag in tags {
            manifests.push(json!({
                "mediaType": image.manifest_media_type,
                "digest": image.manifest_digest,
                "size": size,
                "annotations": {REF_NAME: tag.to_string(), CONTAINERD_NAME: tag.to_string()},
            }));
        }
    }
    let index = json!({"schemaVersion": 2, "mediaType": store::OCI_INDEX, "manifests": manifests});
    let bytes = serde_json::to_vec(&index).map_err(|e| ImageError::invalid("index.json", e))?;
    append_bytes(builder, "index.json", &bytes)
}

/// An archive unpacked into a temporary directory: its files, and its
/// symlinks and hardlinks as a map resolved only inside it.
struct Extracted {
    dir: PathBuf,
    links: HashMap<String, String>,
}

fn clean_path(raw: &str) -> Option<String> {
    if raw.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

impl Extracted {
    fn resolve(&self, name: &str) -> Result<PathBuf> {
        let mut current = clean_path(name)
            .ok_or_else(|| archive_error(name, "names a path outside the archive"))?;
        for _ in 0..16 {
            match self.links.get(&current) {
                Some(target) => {
                    current = target.clone();
                }
                None => {
                    let path = self.dir.join(&current);
                    if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                        return Ok(path);
                    }
                    return Err(archive_error(name, "is not a file in the archive"));
                }
            }
        }
        Err(archive_error(name, "is a chain of links that does not end"))
    }

    fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        let path = self.resolve(name)?;
        let mut bytes = Vec::new();
        File::open(&path)
            .map_err(io_err("open", &path))?
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        if bytes.len() as u64 > limit {
            return Err(ImageError::TooLarge {
                what: name.to_string(),
                limit,
            });
        }
        Ok(bytes)
    }
}

fn extract(input: impl Read, dir: &Path, limits: UnpackLimits) -> Result<Extracted> {
    let (head, input) = compression::peek(input).map_err(|source| ImageError::Read {
        what: "the archive".into(),
        source,
    })?;
    let input: Box<dyn Read> = match Compression::sniff(&head) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(input)
                .map_err(|e| ImageError::invalid("the archive", e))?,
        ),
        Compression::None => Box::new(input),
    };
    let mut limited = HashingReader::new(input, limits.max_bytes);
    let mut links = HashMap::new();
    let mut archive = tar::Archive::new(&mut limited);
    let not_tar =
        |e: io::Error| ImageError::invalid("the archive", format!("not a valid tar: {e}"));
    let mut count = 0;
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        count += 1;
        if count > MAX_ARCHIVE_ENTRIES {
            return Err(archive_error(
                "the archive",
                format!("has more than {MAX_ARCHIVE_ENTRIES} entries"),
            ));
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = clean_path(&raw)
            .filter(|_| raw.split('/').all(|p| p != ".."))
            .ok_or_else(|| archive_error(&raw, "names a path outside the archive"))?;
        if name.is_empty() {
            continue;
        }
        let target = dir.join(&name);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target).map_err(io_err("create", &target))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_err("create", parent))?;
                }
                if links.contains_key(&name) {
                    return Err(archive_error(&raw, "is both a link and a file"));
                }
                let mut file = create_new(&target)?;
                io::copy(&mut entry, &mut file).map_err(io_err("write", &target))?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                // docker save links a repeated layer.tar to the first one.
                let resolved = if entry.header().entry_type() == tar::EntryType::Symlink {
                    let base = name.rsplit_once('/').map_or("", |(d, _)| d);
                    clean_path(&format!("{base}/{link}"))
                } else {
                    clean_path(&link)
                };
                let resolved = resolved.ok_or_else(|| {
                    archive_error(&raw, format!("links to {link}, outside the archive"))
                })?;
                links.insert(name, resolved);
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(archive_error(
                    &raw,
                    format!("is a {other:?}, which image archives do not hold"),
                ));
            }
        }
    }
    if limited.exceeded() {
        return Err(archive_error(
            "the archive",
            format!("is larger than {} bytes", limits.max_bytes),
        ));
    }
    Ok(Extracted {
        dir: dir.to_path_buf(),
        links,
    })
}

/// Reads a docker-archive or an OCI archive and stores every named image
/// in it; returns their references.
pub fn load(
    store: &ImageStore,
    input: impl Read,
    limits: UnpackLimits,
    progress: Progress,
) -> Result<Vec<Reference>> {
    let temp = store.layout().temp("load");
    fs::create_dir_all(&temp.path).map_err(io_err("create", &temp.path))?;
    let extracted = extract(input, &temp.path, limits)?;
    let loaded = if extracted.resolve("manifest.json").is_ok() {
        load_docker(store, &extracted, limits)?
    } else if extracted.resolve("index.json").is_ok() {
        load_oci(store, &extracted, limits)?
    } else {
        return Err(archive_error(
            "the archive",
            "has neither manifest.json (docker save) nor index.json (an OCI layout)",
        ));
    };
    for reference in &loaded {
        progress(Event::Loaded {
            reference: reference.clone(),
        });
    }
    Ok(loaded)
}

/// Copies a file of the archive into the store's blobs, returning its
/// digest and size.
fn store_file_blob(
    store: &ImageStore,
    path: &Path,
    expected: Option<(&str, u64)>,
) -> Result<(String, u64)> {
    let (digest, size) = match expected {
        Some((digest, size)) => (digest.to_string(), size),
        None => {
            let mut hashing = HashingReader::new(
                BufReader::new(File::open(path).map_err(io_err("open", path))?),
                u64::MAX,
            );
            hashing.drain().map_err(io_err("read", path))?;
            (hashing.digest(), hashing.count())
        }
    };
    if !store.layout().has_blob(&digest) {
        let file = File::open(path).map_err(io_err("open", path))?;
        store.layout().write_blob(
            BufReader::new(file),
            &digest,
            size,
            &format!("blob {digest} of the archive"),
        )?;
    }
    Ok((digest, size))
}

fn load_docker(
    store: &ImageStore,
    archive: &Extracted,
    limits: UnpackLimits,
) -> Result<Vec<Reference>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let entries: Vec<Entry> = serde_json::from_slice(&archive.read("manifest.json", MAX_MANIFEST)?)
        .map_err(|e| ImageError::invalid("manifest.json of the archive", e))?;
    let mut loaded = Vec::new();
    for entry in entries {
        let tags = entry.repo_tags.unwrap_or_default();
        let config_bytes = archive.read(&entry.config, MAX_CONFIG)?;
        let config_digest = sha256_digest(&config_bytes);
        if tags.is_empty() {
            return Err(archive_error(
                &entry.config,
                format!("image {config_digest} has no name (RepoTags); save it by name"),
            ));
        }
        let config = parse_config(&config_bytes, &entry.config)?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != entry.layers.len() {
            return Err(archive_error(
                &entry.config,
                "its layers and its config's diff_ids differ in number",
            ));
        }
        let mut layers = Vec::new();
        for (name, diff_id) in entry.layers.iter().zip(diff_ids) {
            let path = archive.resolve(name)?;
            let mut head = [0u8; 4];
            let n = File::open(&path)
                .and_then(|mut f| f.read(&mut head))
                .map_err(io_err("read", &path))?;
            let compression = Compression::sniff(&head[..n]);
            let (digest, size) = store_file_blob(store, &path, None)?;
            if compression == Compression::None && &digest != diff_id {
                return Err(ImageError::DiffIdMismatch {
                    layer: name.clone(),
                    expected: diff_id.clone(),
                    actual: digest,
                });
            }
            let media_type = compression.oci_media_type();
            store.unpack_blob(&digest, media_type, diff_id, limits)?;
            layers.push(json!({"mediaType": media_type, "digest": digest, "size": size}));
        }
        store.layout().write_blob_bytes(&config_bytes)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_bytes.len()},
            "layers": layers,
        });
        let bytes =
            serde_json::to_vec(&manifest).map_err(|e| ImageError::invalid("manifest", e))?;
        for tag in tags {
            let reference = Reference::parse(&tag)?;
            store.commit(&reference, &bytes, OCI_MANIFEST, None)?;
            loaded.push(reference);
        }
    }
    Ok(loaded)
}

fn load_oci(
    store: &ImageStore,
    archive: &Extracted,
    limits: UnpackLimits,
) -> Result<Vec<Reference>> {
    let index: ImageIndex = serde_json::from_slice(&archive.read("index.json", MAX_MANIFEST)?)
        .map_err(|e| ImageError::invalid("index.json of the archive", e))?;
    let blob = |digest: &str, limit: u64| -> Result<Vec<u8>> {
        let bytes = archive.read(&format!("blobs/sha256/{}", digest_hex(digest)?), limit)?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: format!("blob {digest} of the archive"),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    };
    let mut loaded = Vec::new();
    for descriptor in index.manifests() {
        let annotations = descriptor.annotations().clone().unwrap_or_default();
        let name = annotations
            .get(CONTAINERD_NAME)
            .or_else(|| annotations.get(REF_NAME))
            .cloned()
            .unwrap_or_default();
        if name.is_empty() || !name.contains([':', '/']) {
            return Err(archive_error(
                "index.json",
                format!(
                    "entry {} is named {name:?}, not a full reference such as docker.io/library/busybox:latest",
                    descriptor.digest()
                ),
            ));
        }
        let reference = Reference::parse(&name)?;
        let mut digest = descriptor.digest().to_string();
        let mut media_type = descriptor.media_type().to_string();
        let mut bytes = blob(&digest, MAX_MANIFEST)?;
        if media_type == store::OCI_INDEX || media_type == store::DOCKER_MANIFEST_LIST {
            let nested: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|e| ImageError::invalid(&name, e))?;
            let chosen = Platform::host().select(nested.manifests(), &name)?;
            digest = chosen.digest().to_string();
            media_type = chosen.media_type().to_string();
            bytes = blob(&digest, MAX_MANIFEST)?;
        }
        let manifest = parse_manifest(&bytes, &name)?;
        let config_digest = manifest.config().digest().to_string();
        let config_bytes = blob(&config_digest, MAX_CONFIG)?;
        let config = parse_config(&config_bytes, &name)?;
        store.layout().write_blob_bytes(&config_bytes)?;
        for (layer, diff_id) in manifest.layers().iter().zip(config.rootfs().diff_ids()) {
            let layer_digest = layer.digest().to_string();
            let path = archive.resolve(&format!("blobs/sha256/{}", digest_hex(&layer_digest)?))?;
            store_file_blob(store, &path, Some((&layer_digest, layer.size())))?;
            store.unpack_blob(&layer_digest, layer.media_type().as_ref(), diff_id, limits)?;
        }
        store.commit(&reference, &bytes, &media_type, None)?;
        loaded.push(reference);
    }
    Ok(loaded)
}
