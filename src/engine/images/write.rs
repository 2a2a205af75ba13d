//! Images the engine writes itself (a build, a commit): a layer blob
//! streamed from a tar the caller writes, an image made of a config and
//! layers already in the store, and scratch space inside the store so that
//! whatever an interrupted writer leaves is cleared by the next open.

use crate::support::error::{io_err, IoError};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::compression::Compression;
use super::error::{ImageError, Result};
use super::layout::{self, create_new, Temp};
use super::reference::Reference;
use super::store::{ImageStore, StoredLayer, OCI_CONFIG, OCI_MANIFEST};
use super::unpack::UnpackLimits;
use super::verify::HashingWriter;

type Blob = HashingWriter<flate2::write::GzEncoder<HashingWriter<BufWriter<File>>>>;

/// Receives a layer's uncompressed tar; [`LayerWriter::finish`] stores it
/// gzipped under its digest and unpacked under its diff_id. Dropped
/// unfinished, it leaves nothing.
pub struct LayerWriter<'a> {
    store: &'a ImageStore,
    temp: Temp,
    blob: Blob,
}

/// A directory in the store's `tmp/`, removed when dropped (and by the
/// next open of the store, should the process be killed first).
pub struct ScratchDir {
    temp: Temp,
}

impl ScratchDir {
    pub fn path(&self) -> &Path {
        &self.temp.path
    }
}

/// What [`ImageStore::write_image`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenImage {
    /// The image id: the config's digest.
    pub id: String,
    pub manifest_digest: String,
}

impl Write for LayerWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.blob.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.blob.flush()
    }
}

impl LayerWriter<'_> {
    /// Compresses the rest, puts the blob in place and unpacks it (once:
    /// a layer already unpacked under this diff_id is kept).
    pub fn finish(self) -> Result<StoredLayer> {
        let LayerWriter { store, temp, blob } = self;
        let failed =
            |e: io::Error| ImageError::from(IoError::new("write the layer", &temp.path, e));
        let (gzip, diff_id, tar_size) = blob.finish();
        let (buffered, digest, size) = gzip.finish().map_err(failed)?.finish();
        let file = buffered.into_inner().map_err(|e| failed(e.into_error()))?;
        let layout = store.layout();
        let blob_path = layout.blob_path(&digest)?;
        layout.commit_blob(
            file, temp, &digest, size, &digest, size, "layer", &blob_path,
        )?;
        let media_type = Compression::Gzip.oci_media_type();
        store.unpack_blob(&digest, media_type, &diff_id, UnpackLimits::default())?;
        Ok(StoredLayer {
            digest,
            media_type: media_type.to_string(),
            size,
            dir: store.layer_dir(&diff_id)?,
            diff_id,
            unpacked_size: tar_size,
        })
    }
}

impl ImageStore {
    /// A writer for a new layer (gzip, OCI media type).
    pub fn layer_writer(&self) -> Result<LayerWriter<'_>> {
        let temp = self.layout().temp("layer-blob");
        let file = create_new(&temp.path)?;
        let gzip = flate2::write::GzEncoder::new(
            HashingWriter::new(BufWriter::with_capacity(1 << 20, file)),
            flate2::Compression::default(),
        );
        Ok(LayerWriter {
            store: self,
            temp,
            blob: HashingWriter::new(gzip),
        })
    }

    /// An empty directory in the store's `tmp/`.
    pub fn scratch_dir(&self, prefix: &str) -> Result<ScratchDir> {
        let temp = self.layout().temp(prefix);
        std::fs::create_dir(&temp.path).map_err(io_err("create", &temp.path))?;
        Ok(ScratchDir { temp })
    }

    /// Replaces a small file inside the store (through `tmp/`, fsync,
    /// rename), so a reader sees the old content or the new.
    pub fn write_file_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        if !path.starts_with(self.root()) {
            return Err(ImageError::Refused(format!(
                "{} is not inside the image store",
                path.display()
            )));
        }
        layout::write_atomic(self.root(), path, bytes)
    }

    /// Stores `config` (an image config's JSON) and a manifest of `layers`
    /// (bottom first, all in the store), and names it with each reference.
    /// With no reference the image is stored but not listed (Docker's
    /// dangling `<none>` image).
    pub fn write_image(
        &self,
        config: &[u8],
        layers: &[StoredLayer],
        references: &[Reference],
    ) -> Result<WrittenImage> {
        let layout = self.layout();
        let id = layout.write_blob_bytes(config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": id, "size": config.len()},
            "layers": layers
                .iter()
                .map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size}))
                .collect::<Vec<_>>(),
        });
        let bytes =
            serde_json::to_vec(&manifest).map_err(|e| ImageError::invalid("manifest", e))?;
        let manifest_digest = layout.write_blob_bytes(&bytes)?;
        for reference in references {
            self.commit(reference, &bytes, OCI_MANIFEST, None)?;
        }
        Ok(WrittenImage {
            id,
            manifest_digest,
        })
    }

    /// The raw bytes of a stored config (with the fields a typed parse
    /// would drop, such as Docker's `Healthcheck`).
    pub fn config_bytes(&self, config_digest: &str) -> Result<Vec<u8>> {
        self.layout()
            .read_blob(config_digest, super::store::MAX_CONFIG)
    }

    /// The path of a layer blob, for reading a stored layer back as a tar.
    pub fn layer_blob(&self, layer: &StoredLayer) -> Result<PathBuf> {
        self.blob_path(&layer.digest)
    }
}
