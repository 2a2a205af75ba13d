//! The build cache: for each step's key (its parent's key, its instruction
//! with the values it uses, and for COPY/ADD the digest of its sources),
//! the layer it made and when. One small file per key in the store's
//! `build-cache/`, written atomically; an entry whose layer is no longer
//! in the store (removed with its last image) is a miss.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::Result;
use crate::engine::images::{ImageStore, StoredLayer};

/// What a step made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// None: the step changed no file (a metadata step, or a RUN that
    /// wrote nothing).
    pub layer: Option<CachedLayer>,
    /// RFC 3339: the history entry's `created`.
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub diff_id: String,
    pub unpacked_size: u64,
}

impl CachedLayer {
    pub fn of(layer: &StoredLayer) -> CachedLayer {
        CachedLayer {
            digest: layer.digest.clone(),
            media_type: layer.media_type.clone(),
            size: layer.size,
            diff_id: layer.diff_id.clone(),
            unpacked_size: layer.unpacked_size,
        }
    }
}

pub struct Cache<'a> {
    store: &'a ImageStore,
    dir: PathBuf,
}

/// The key of a step: sha256 of its parent's key and what it does.
pub fn key(parent: &str, step: &str) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    h.update(b"\n");
    h.update(step.as_bytes());
    format!("{:x}", h.finalize())
}

impl<'a> Cache<'a> {
    pub fn open(store: &'a ImageStore) -> Result<Cache<'a>> {
        let dir = store.root().join("build-cache");
        std::fs::create_dir_all(&dir).map_err(super::error::io("create", &dir))?;
        Ok(Cache { store, dir })
    }

    /// The entry and its layer as stored, if both are still there.
    pub fn get(&self, key: &str) -> Option<(Entry, Option<StoredLayer>)> {
        let bytes = std::fs::read(self.dir.join(key)).ok()?;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        let layer = match &entry.layer {
            None => None,
            Some(l) => {
                let dir = self.store.layer_dir(&l.diff_id).ok()?;
                let blob = self.store.blob_path(&l.digest).ok()?;
                if !blob.is_file() || !dir.parent()?.join("layer.json").is_file() {
                    return None;
                }
                Some(StoredLayer {
                    digest: l.digest.clone(),
                    media_type: l.media_type.clone(),
                    size: l.size,
                    diff_id: l.diff_id.clone(),
                    dir,
                    unpacked_size: l.unpacked_size,
                })
            }
        };
        Some((entry, layer))
    }

    pub fn put(&self, key: &str, entry: &Entry) -> Result<()> {
        let bytes = serde_json::to_vec(entry).unwrap_or_default();
        self.store
            .write_file_atomic(&self.dir.join(key), &bytes)
            .map_err(Into::into)
    }
}
