//! `docker commit`: a container's writable layer as a new image on top of
//! the image it was started from.

use std::path::Path;

use super::config::ImageConfig;
use super::diff;
use super::error::{BuildError, Result};
use crate::engine::images::{Image, ImageStore, Reference, WrittenImage};

/// What `commit` writes besides the layer.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `--author`.
    pub author: Option<String>,
    /// `--message`: the history entry's comment.
    pub comment: Option<String>,
    /// The history entry's `created_by` (Docker: the container's command).
    pub created_by: String,
    /// RFC 3339; now when None.
    pub created: Option<String>,
}

/// Stores `upper` (the container's writable directory) as a layer over
/// `base` and names the new image with every reference.
pub fn commit(
    store: &ImageStore,
    base: &Image,
    upper: &Path,
    references: &[Reference],
    options: &CommitOptions,
) -> Result<WrittenImage> {
    let bytes = store.config_bytes(&base.config_digest)?;
    let mut config = ImageConfig::from_bytes(&bytes).map_err(BuildError::Usage)?;
    let layer = diff::layer_from_upper(store, upper, None)?.map(|(l, _)| l);
    let created = options
        .created
        .clone()
        .unwrap_or_else(|| crate::support::time::format_rfc3339(std::time::SystemTime::now()));
    config.push_history(Some(&created), &options.created_by, layer.is_none());
    if let Some(author) = &options.author {
        config.set_root("author", serde_json::json!(author));
    }
    let mut layers = base.layers.clone();
    layers.extend(layer);
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let mut bytes = config.to_bytes(&diff_ids, Some(&created));
    if let Some(comment) = &options.comment {
        // The comment belongs to the new history entry, the last one.
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if let Some(last) = value["history"].as_array_mut().and_then(|h| h.last_mut()) {
            last["comment"] = serde_json::json!(comment);
        }
        bytes = serde_json::to_vec(&value).unwrap_or(bytes);
    }
    Ok(store.write_image(&bytes, &layers, references)?)
}
