//! An image from a root filesystem directory: one gzipped layer (a tar of
//! the tree in sorted order, so the same tree gives the same digests) and
//! a config with Env, Cmd and friends. The lab's busybox tree becomes an
//! ordinary image this way, with no network.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde_json::json;

use super::compression::Compression;
use super::error::{ImageError, Result};
use super::layout::create_new;
use super::platform::Platform;
use super::reference::Reference;
use super::store::{Image, ImageStore, OCI_CONFIG, OCI_MANIFEST};
use super::unpack::UnpackLimits;
use super::verify::HashingWriter;
use crate::support::error::{io_err, IoError};

/// What the image's config says besides its layer.
#[derive(Debug, Clone, Default)]
pub struct RootfsImage {
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub working_dir: Option<String>,
    /// RFC 3339; left out when None, so that the image id depends on the
    /// tree and the config only.
    pub created: Option<String>,
    /// The history entry's `created_by`.
    pub created_by: String,
}

/// Builds `reference` from the tree at `rootfs` (files, directories,
/// symlinks, hardlinks; device nodes and sockets are left out, as the
/// unpacker would skip them).
pub fn build_from_rootfs(
    store: &ImageStore,
    rootfs: &Path,
    reference: &Reference,
    image: &RootfsImage,
) -> Result<Image> {
    let layout = store.layout();
    let temp = layout.temp("build");
    let file = create_new(&temp.path)?;
    let blob_writer = HashingWriter::new(file);
    let gzip = flate2::write::GzEncoder::new(blob_writer, flate2::Compression::default());
    let mut builder = tar::Builder::new(HashingWriter::new(gzip));
    append_tree(&mut builder, rootfs)?;
    let failed = |e: std::io::Error| ImageError::Io(IoError::new("write the layer of", rootfs, e));
    let diff_writer = builder.into_inner().map_err(failed)?;
    let (gzip, diff_id, _) = diff_writer.finish();
    let (file, digest, size) = gzip.finish().map_err(failed)?.finish();
    let blob_path = layout.blob_path(&digest)?;
    let media_type = Compression::Gzip.oci_media_type();
    layout.commit_blob(
        file, temp, &digest, size, &digest, size, "layer", &blob_path,
    )?;
    store.unpack_blob(&digest, media_type, &diff_id, UnpackLimits::default())?;

    let platform = Platform::host();
    let mut config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": image.created_by}],
    });
    if let Some(variant) = &platform.variant {
        config["variant"] = json!(variant);
    }
    if let Some(created) = &image.created {
        config["created"] = json!(created);
        config["history"][0]["created"] = json!(created);
    }
    let c = &mut config["config"];
    if !image.env.is_empty() {
        c["Env"] = json!(image.env);
    }
    if !image.cmd.is_empty() {
        c["Cmd"] = json!(image.cmd);
    }
    if !image.entrypoint.is_empty() {
        c["Entrypoint"] = json!(image.entrypoint);
    }
    if let Some(dir) = &image.working_dir {
        c["WorkingDir"] = json!(dir);
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|e| ImageError::invalid("config", e))?;
    let config_digest = layout.write_blob_bytes(&config_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_bytes.len()},
        "layers": [{"mediaType": media_type, "digest": digest, "size": size}],
    });
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| ImageError::invalid("manifest", e))?;
    store.commit(reference, &manifest_bytes, OCI_MANIFEST, None)?;
    store.image(reference)
}

/// The tree, depth first in name order, with numeric owners and modes.
fn append_tree<W: Write>(builder: &mut tar::Builder<W>, root: &Path) -> Result<()> {
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(io_err("read", &dir))?
            .collect::<std::result::Result<_, _>>()
            .map_err(io_err("read", &dir))?;
        entries.sort_by_key(|e| e.file_name());
        // Pushed in reverse so they come off the stack in name order.
        let mut subdirs = Vec::new();
        for entry in entries {
            let path = entry.path();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
            let kind = meta.file_type();
            let mut header = tar::Header::new_ustar();
            header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            let failed = io_err("add to the layer", &path);
            if kind.is_dir() {
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{name}/"), std::io::empty())
                    .map_err(failed)?;
                subdirs.push((path, format!("{name}/")));
            } else if kind.is_symlink() {
                let target = fs::read_link(&path).map_err(io_err("read the link", &path))?;
                header.set_size(0);
                builder
                    .append_link(&mut header, &name, &target)
                    .map_err(failed)?;
            } else if kind.is_file() {
                if meta.nlink() > 1 {
                    if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                        header.set_entry_type(tar::EntryType::Link);
                        header.set_size(0);
                        builder
                            .append_link(&mut header, &name, first)
                            .map_err(failed)?;
                        continue;
                    }
                    links.insert((meta.dev(), meta.ino()), name.clone());
                }
                let file = fs::File::open(&path).map_err(io_err("open", &path))?;
                builder
                    .append_data(&mut header, &name, file)
                    .map_err(failed)?;
            } else if kind.is_fifo() {
                header.set_size(0);
                builder
                    .append_data(&mut header, &name, std::io::empty())
                    .map_err(failed)?;
            }
            // Devices and sockets: left out.
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}
