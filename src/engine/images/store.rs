//! The image store: what `images`, `rmi`, `tag` and `run` see. An image is
//! an index.json entry naming a manifest; it is added only once its config
//! and every layer are stored, verified and unpacked, so a listing never
//! shows half an image. Layers are shared by diff_id and removed only when
//! no remaining image needs them.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use super::compression::Compression;
use super::error::{ImageError, Result};
use super::layout::{self, Layout, Temp, REF_NAME};
use super::reference::Reference;
use super::unpack::{self, UnpackLimits, UnpackReport};
use crate::support::error::{io_err, IoError};

/// Where a pulled image came from, by digest (Docker's `RepoDigests`).
pub const REPO_DIGEST: &str = "io.container-lab.repo-digest";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Far above any real manifest or config; refused past it.
pub const MAX_MANIFEST: u64 = 4 << 20;
pub const MAX_CONFIG: u64 = 16 << 20;

#[derive(Debug)]
pub struct ImageStore {
    layout: Layout,
}

/// One layer of an image, bottom first in [`Image::layers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLayer {
    /// The (compressed) blob's digest, media type and size.
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// sha256 of the uncompressed tar; names the unpacked directory.
    pub diff_id: String,
    /// The unpacked tree: an overlay lower directory.
    pub dir: PathBuf,
    /// Bytes of the uncompressed tar.
    pub unpacked_size: u64,
}

#[derive(Debug, Clone)]
pub struct Image {
    pub reference: Reference,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub manifest: ImageManifest,
    /// The image id, as Docker's: the config's digest.
    pub config_digest: String,
    pub config: ImageConfiguration,
    /// `name@sha256:…` of what was pulled (the index's digest, for a
    /// multi-platform image).
    pub repo_digest: Option<String>,
    pub layers: Vec<StoredLayer>,
}

impl Image {
    pub fn id(&self) -> &str {
        &self.config_digest
    }

    /// The 12 hex digits `docker images` shows.
    pub fn short_id(&self) -> &str {
        &self.config_digest[7..19]
    }

    /// What `docker images` calls SIZE: the layers, uncompressed.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.unpacked_size).sum()
    }

    /// The layer directories in overlay's `lowerdir=` order: top first.
    pub fn lower_dirs(&self) -> Vec<PathBuf> {
        self.layers.iter().rev().map(|l| l.dir.clone()).collect()
    }
}

/// What `rmi` did, in Docker's words: `Untagged: …`, `Deleted: sha256:…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub untagged: Vec<Reference>,
    pub deleted: Vec<String>,
}

pub(crate) fn media_type_str(media_type: &MediaType) -> String {
    media_type.to_string()
}

fn descriptor_ref(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

pub(crate) fn parse_manifest(bytes: &[u8], what: &str) -> Result<ImageManifest> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ImageError::invalid(what, e))?;
    if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Err(ImageError::invalid(
            what,
            "it is a schema 1 manifest, which registries and Docker stopped supporting; push the image again with a current tool",
        ));
    }
    let manifest: ImageManifest =
        serde_json::from_value(value).map_err(|e| ImageError::invalid(what, e))?;
    let config_type = media_type_str(manifest.config().media_type());
    if config_type != OCI_CONFIG && config_type != DOCKER_CONFIG {
        return Err(ImageError::invalid(
            what,
            format!("its config is {config_type}: an artifact, not a container image"),
        ));
    }
    Ok(manifest)
}

pub(crate) fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfiguration> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::invalid(what, e))
}

impl ImageStore {
    /// Opens the store at `root`, creating it when missing and clearing
    /// what an interrupted operation left in its tmp/ directory.
    pub fn open(root: &Path) -> Result<ImageStore> {
        Ok(ImageStore {
            layout: Layout::open(root)?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        self.layout.blob_path(digest)
    }

    /// Where the layer with this diff_id is unpacked (its `root/`).
    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.layout.layer_path(diff_id)?.join("root"))
    }

    /// Every image, sorted by reference.
    pub fn list(&self) -> Result<Vec<Image>> {
        let index = self.layout.read_index()?;
        let mut images = Vec::new();
        for descriptor in index.manifests() {
            if descriptor_ref(descriptor).is_some() {
                images.push(self.load(descriptor)?);
            }
        }
        images.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(images)
    }

    /// The image stored under exactly this reference.
    pub fn image(&self, reference: &Reference) -> Result<Image> {
        let wanted = reference.to_string();
        let index = self.layout.read_index()?;
        let descriptor = index
            .manifests()
            .iter()
            .find(|d| descriptor_ref(d) == Some(wanted.as_str()))
            .ok_or_else(|| ImageError::NotFound {
                reference: reference.familiar(),
            })?;
        self.load(descriptor)
    }

    /// An image by reference or by (a prefix of) its id, as `docker run`
    /// and `docker rmi` accept either.
    pub fn find(&self, text: &str) -> Result<Image> {
        if let Ok(reference) = Reference::parse(text) {
            match self.image(&reference) {
                Err(ImageError::NotFound { .. }) => {}
                other => return other,
            }
        }
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut matches: Vec<Image> = self
                .list()?
                .into_iter()
                .filter(|image| image.config_digest[7..].starts_with(hex))
                .collect();
            let ids: BTreeSet<&str> = matches.iter().map(|i| i.id()).collect();
            match ids.len() {
                0 => {}
                1 => return Ok(matches.remove(0)),
                _ => {
                    return Err(ImageError::Refused(format!(
                        "image id prefix {text} is ambiguous: it matches {}",
                        ids.into_iter().collect::<Vec<_>>().join(", ")
                    )))
                }
            }
        }
        Err(ImageError::NotFound {
            reference: text.to_string(),
        })
    }

    fn load(&self, descriptor: &Descriptor) -> Result<Image> {
        let name = descriptor_ref(descriptor).unwrap_or_default();
        let reference = Reference::parse(name)?;
        let manifest_digest = descriptor.digest().to_string();
        let bytes = self.layout.read_blob(&manifest_digest, MAX_MANIFEST)?;
        let manifest = parse_manifest(&bytes, &format!("manifest of {name}"))?;
        let config_digest = manifest.config().digest().to_string();
        let config_bytes = self.layout.read_blob(&config_digest, MAX_CONFIG)?;
        let config = parse_config(&config_bytes, &format!("config of {name}"))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::invalid(
                format!("image {name}"),
                format!(
                    "its manifest has {} layers but its config {} diff_ids",
                    manifest.layers().len(),
                    diff_ids.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
            let dir = self.layout.layer_path(diff_id)?;
            layers.push(StoredLayer {
                digest: layer.digest().to_string(),
                media_type: media_type_str(layer.media_type()),
                size: layer.size(),
                diff_id: diff_id.clone(),
                unpacked_size: read_layer_size(&dir),
                dir: dir.join("root"),
            });
        }
        Ok(Image {
            reference,
            manifest_digest,
            manifest_media_type: media_type_str(descriptor.media_type()),
            manifest,
            config_digest,
            config,
            repo_digest: descriptor
                .annotations()
                .as_ref()
                .and_then(|a| a.get(REPO_DIGEST))
                .cloned(),
            layers,
        })
    }

    /// Unpacks a layer stream into a temporary directory of the store;
    /// [`ImageStore::commit_layer`] puts it in place once checked.
    pub(crate) fn unpack_to_temp(
        &self,
        reader: impl Read,
        compression: Compression,
        digest: &str,
        media_type: &str,
        limits: UnpackLimits,
    ) -> Result<(Temp, UnpackReport)> {
        let temp = self.layout.temp("layer");
        let root = temp.path.join("root");
        fs::create_dir_all(&root).map_err(io_err("create", &root))?;
        let report = unpack::unpack_layer(reader, compression, digest, media_type, &root, limits)?;
        Ok((temp, report))
    }

    /// Checks an unpacked layer against the config's diff_id and renames
    /// it to its place (keeping the one already there, if a concurrent
    /// pull was first).
    pub(crate) fn commit_layer(
        &self,
        temp: Temp,
        report: &UnpackReport,
        digest: &str,
        diff_id: &str,
    ) -> Result<()> {
        if report.diff_id != diff_id {
            return Err(ImageError::DiffIdMismatch {
                layer: digest.to_string(),
                expected: diff_id.to_string(),
                actual: report.diff_id.clone(),
            });
        }
        let final_dir = self.layout.layer_path(diff_id)?;
        let meta = serde_json::json!({
            "diff_id": diff_id,
            "size": report.size,
            "entries": report.entries,
        });
        layout::write_atomic(
            &self.layout.root,
            &temp.path.join("layer.json"),
            meta.to_string().as_bytes(),
        )?;
        match fs::rename(&temp.path, &final_dir) {
            Ok(()) => temp.keep(),
            Err(_) if self.layout.has_layer(diff_id) => {}
            Err(e) => {
                return Err(ImageError::Io(IoError::new(
                    "rename into place",
                    final_dir,
                    e,
                )))
            }
        }
        Ok(())
    }

    /// Unpacks a stored blob as the layer `diff_id`, if not unpacked yet.
    pub(crate) fn unpack_blob(
        &self,
        digest: &str,
        media_type: &str,
        diff_id: &str,
        limits: UnpackLimits,
    ) -> Result<Option<UnpackReport>> {
        if self.layout.has_layer(diff_id) {
            return Ok(None);
        }
        let compression = Compression::for_media_type(media_type).ok_or_else(|| {
            ImageError::UnsupportedMediaType {
                layer: digest.to_string(),
                media_type: media_type.to_string(),
            }
        })?;
        let path = self.layout.blob_path(digest)?;
        let file = fs::File::open(&path).map_err(io_err("open", &path))?;
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        let (temp, report) =
            self.unpack_to_temp(reader, compression, digest, media_type, limits)?;
        self.commit_layer(temp, &report, digest, diff_id)?;
        Ok(Some(report))
    }

    /// Adds (or moves) `reference` to a manifest whose config and layers
    /// are all in the store. Returns false when the reference already
    /// named this very manifest.
    pub(crate) fn commit(
        &self,
        reference: &Reference,
        manifest_bytes: &[u8],
        media_type: &str,
        repo_digest: Option<&str>,
    ) -> Result<bool> {
        let what = format!("manifest of {}", reference.familiar());
        let manifest = parse_manifest(manifest_bytes, &what)?;
        let digest = self.layout.write_blob_bytes(manifest_bytes)?;
        let name = reference.to_string();
        let mut annotations = HashMap::from([(REF_NAME.to_string(), name.clone())]);
        if let Some(repo_digest) = repo_digest {
            annotations.insert(REPO_DIGEST.to_string(), repo_digest.to_string());
        }
        let descriptor = Descriptor::new(
            MediaType::from(media_type),
            manifest_bytes.len() as u64,
            digest
                .parse::<oci_spec::image::Digest>()
                .map_err(|e| ImageError::invalid("digest", e))?,
        );
        let mut descriptor = descriptor;
        descriptor.set_annotations(Some(annotations));
        self.layout.update_index(|index| {
            // Checked under the lock, so a concurrent rmi cannot take them.
            self.check_complete(&manifest, &name)?;
            let previous: Vec<Descriptor> = index
                .manifests()
                .iter()
                .filter(|d| descriptor_ref(d) == Some(name.as_str()))
                .cloned()
                .collect();
            if previous.iter().any(|d| d.digest().to_string() == digest) {
                let mut manifests = index.manifests().clone();
                manifests.retain(|d| descriptor_ref(d) != Some(name.as_str()));
                manifests.push(descriptor.clone());
                index.set_manifests(manifests);
                return Ok(false);
            }
            let mut manifests = index.manifests().clone();
            manifests.retain(|d| descriptor_ref(d) != Some(name.as_str()));
            manifests.push(descriptor.clone());
            index.set_manifests(manifests);
            // The image the tag named before loses its last name: delete
            // what nothing else uses, as `docker image prune` would.
            for old in previous {
                self.collect_garbage(index, old.digest().as_ref())?;
            }
            Ok(true)
        })
    }

    fn check_complete(&self, manifest: &ImageManifest, name: &str) -> Result<()> {
        let config_digest = manifest.config().digest().to_string();
        let missing = |what: String| {
            ImageError::Refused(format!(
                "{what} of {name} is no longer in the store (removed meanwhile by another command?); pull again"
            ))
        };
        if !self.layout.has_blob(&config_digest) {
            return Err(missing(format!("config {config_digest}")));
        }
        let config = parse_config(
            &self.layout.read_blob(&config_digest, MAX_CONFIG)?,
            &format!("config of {name}"),
        )?;
        if config.rootfs().diff_ids().len() != manifest.layers().len() {
            return Err(ImageError::invalid(
                format!("image {name}"),
                "its manifest and its config do not list the same number of layers",
            ));
        }
        for (layer, diff_id) in manifest.layers().iter().zip(config.rootfs().diff_ids()) {
            let digest = layer.digest().to_string();
            if !self.layout.has_blob(&digest) {
                return Err(missing(format!("layer {digest}")));
            }
            if !self.layout.has_layer(diff_id) {
                return Err(missing(format!("unpacked layer {diff_id}")));
            }
        }
        Ok(())
    }

    /// Gives an image another name (`docker tag`).
    pub fn tag(&self, source: &str, target: &Reference) -> Result<()> {
        let image = self.find(source)?;
        let bytes = self
            .layout
            .read_blob(&image.manifest_digest, MAX_MANIFEST)?;
        self.commit(
            target,
            &bytes,
            &image.manifest_media_type,
            image.repo_digest.as_deref(),
        )?;
        Ok(())
    }

    /// `docker rmi NAME`: removes the name; when it was the image's last,
    /// also the manifest, config and layers no other image uses. An id
    /// removes every name of that image.
    pub fn remove(&self, text: &str) -> Result<Removed> {
        let image = self.find(text)?;
        let by_id = Reference::parse(text).map_or(true, |r| r != image.reference);
        self.layout.update_index(|index| {
            let mut removed = Removed::default();
            let mut manifests = index.manifests().clone();
            let mut dropped = BTreeSet::new();
            manifests.retain(|d| {
                let Some(name) = descriptor_ref(d) else {
                    return true;
                };
                let hit = if by_id {
                    d.digest().to_string() == image.manifest_digest
                } else {
                    name == image.reference.to_string()
                };
                if hit {
                    if let Ok(reference) = Reference::parse(name) {
                        removed.untagged.push(reference);
                    }
                    dropped.insert(d.digest().to_string());
                }
                !hit
            });
            index.set_manifests(manifests);
            for digest in dropped {
                removed
                    .deleted
                    .extend(self.collect_garbage(index, &digest)?);
            }
            Ok(removed)
        })
    }

    /// Deletes the manifest `digest` and whatever of its config and layers
    /// no image left in `index` uses; returns what was deleted.
    fn collect_garbage(&self, index: &ImageIndex, digest: &str) -> Result<Vec<String>> {
        let mut keep_blobs = BTreeSet::new();
        let mut keep_layers = BTreeSet::new();
        for descriptor in index.manifests() {
            let d = descriptor.digest().to_string();
            keep_blobs.insert(d.clone());
            let Ok((manifest, config)) = self.manifest_and_config(&d) else {
                continue;
            };
            keep_blobs.insert(manifest.config().digest().to_string());
            keep_blobs.extend(manifest.layers().iter().map(|l| l.digest().to_string()));
            keep_layers.extend(config.rootfs().diff_ids().iter().cloned());
        }
        let mut deleted = Vec::new();
        if keep_blobs.contains(digest) {
            return Ok(deleted);
        }
        let (manifest, config) = self.manifest_and_config(digest)?;
        let mut blobs = vec![digest.to_string(), manifest.config().digest().to_string()];
        blobs.extend(manifest.layers().iter().map(|l| l.digest().to_string()));
        for blob in blobs {
            if !keep_blobs.contains(&blob) && self.layout.has_blob(&blob) {
                self.layout.discard(&self.layout.blob_path(&blob)?)?;
                deleted.push(blob);
            }
        }
        for diff_id in config.rootfs().diff_ids() {
            if !keep_layers.contains(diff_id) {
                let dir = self.layout.layer_path(diff_id)?;
                if dir.exists() {
                    self.layout.discard(&dir)?;
                    deleted.push(diff_id.clone());
                }
            }
        }
        Ok(deleted)
    }

    fn manifest_and_config(&self, digest: &str) -> Result<(ImageManifest, ImageConfiguration)> {
        let manifest = parse_manifest(&self.layout.read_blob(digest, MAX_MANIFEST)?, digest)?;
        let config_digest = manifest.config().digest().to_string();
        let config = parse_config(
            &self.layout.read_blob(&config_digest, MAX_CONFIG)?,
            &config_digest,
        )?;
        Ok((manifest, config))
    }
}

fn read_layer_size(dir: &Path) -> u64 {
    fs::read(dir.join("layer.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("size").and_then(|s| s.as_u64()))
        .unwrap_or(0)
}
