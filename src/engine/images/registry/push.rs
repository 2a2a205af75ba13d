//! `docker push`: every blob the registry lacks (a HEAD tells) is
//! uploaded, monolithically (POST, then PUT ?digest=) or in chunks
//! (PATCH with Content-Range, following each new Location), then the
//! manifest is PUT under the tag.

use super::client::{Payload, RegistryOptions, Session};
use crate::engine::images::error::{ImageError, Result};
use crate::engine::images::progress::{layer, Event, LayerState, Progress};
use crate::engine::images::reference::Reference;
use crate::engine::images::store::{ImageStore, MAX_MANIFEST};

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub registry: RegistryOptions,
    /// Upload blobs larger than this in PATCH chunks of this size; None
    /// sends each blob in one PUT.
    pub chunk_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest and size, as `docker push` prints them.
    pub digest: String,
    pub size: u64,
}

/// Pushes the stored image `source` (a reference or an id) to `target`.
pub fn push(
    store: &ImageStore,
    source: &str,
    target: &Reference,
    options: &PushOptions,
    progress: Progress,
) -> Result<Pushed> {
    let image = store.find(source)?;
    let registry = &options.registry;
    progress(Event::PushStarted {
        reference: target.clone(),
    });
    let session = Session::connect(registry, target.registry_host(), &target.path, "pull,push")?;
    for l in &image.layers {
        layer(progress, &l.digest, LayerState::Preparing, 0, l.size);
    }
    let mut blobs: Vec<(String, u64, bool)> = image
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.size, true))
        .collect();
    blobs.push((
        image.config_digest.clone(),
        image.manifest.config().size(),
        false,
    ));
    for (digest, size, is_layer) in blobs {
        let head = session.url(&format!("blobs/{digest}"));
        let response = session.request("HEAD", &head, &[], &Payload::Empty, &[404], registry)?;
        if response.status().as_u16() != 404 {
            if is_layer {
                layer(
                    progress,
                    &digest,
                    LayerState::LayerAlreadyExists,
                    size,
                    size,
                );
            }
            continue;
        }
        let path = store.blob_path(&digest)?;
        upload(&session, &digest, &path, size, options, |done| {
            if is_layer {
                layer(progress, &digest, LayerState::Pushing, done, size);
            }
        })?;
        if is_layer {
            layer(progress, &digest, LayerState::Pushed, size, size);
        }
    }
    let manifest = store
        .layout()
        .read_blob(&image.manifest_digest, MAX_MANIFEST)?;
    let url = session.url(&format!("manifests/{}", target.tag_or_digest()));
    let headers = [("Content-Type", image.manifest_media_type.clone())];
    let response = session.request(
        "PUT",
        &url,
        &headers,
        &Payload::Bytes(&manifest),
        &[],
        registry,
    )?;
    if let Some(served) = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
    {
        if served != image.manifest_digest {
            return Err(ImageError::Protocol {
                registry: session.registry.clone(),
                message: format!(
                    "stored the manifest as {served}, but its digest is {}",
                    image.manifest_digest
                ),
            });
        }
    }
    let pushed = Pushed {
        digest: image.manifest_digest.clone(),
        size: manifest.len() as u64,
    };
    progress(Event::PushDone {
        reference: target.clone(),
        digest: pushed.digest.clone(),
        size: pushed.size,
    });
    Ok(pushed)
}

fn location(
    session: &Session,
    response: &ureq::http::Response<ureq::Body>,
    after: &str,
) -> Result<String> {
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ImageError::Protocol {
            registry: session.registry.clone(),
            message: format!("answered {after} without a Location for the upload"),
        })?;
    Ok(session.resolve(location))
}

fn with_digest(url: &str, digest: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}digest={digest}")
}

fn upload(
    session: &Session,
    digest: &str,
    path: &std::path::Path,
    size: u64,
    options: &PushOptions,
    mut report: impl FnMut(u64),
) -> Result<()> {
    let registry = &options.registry;
    let start = session.url("blobs/uploads/");
    let response = session.request("POST", &start, &[], &Payload::Empty, &[], registry)?;
    let mut url = location(session, &response, "POST /blobs/uploads/")?;
    let octets = ("Content-Type", "application/octet-stream".to_string());
    match options.chunk_size {
        Some(chunk) if chunk > 0 && size > chunk => {
            let mut offset = 0;
            while offset < size {
                let len = chunk.min(size - offset);
                let range = ("Content-Range", format!("{}-{}", offset, offset + len - 1));
                let payload = Payload::File { path, offset, len };
                let response = session.request(
                    "PATCH",
                    &url,
                    &[octets.clone(), range],
                    &payload,
                    &[],
                    registry,
                )?;
                // Each answer names where the next chunk goes.
                url = location(session, &response, "PATCH")?;
                offset += len;
                report(offset);
            }
            session.request(
                "PUT",
                &with_digest(&url, digest),
                &[],
                &Payload::Empty,
                &[],
                registry,
            )?;
        }
        _ => {
            let payload = Payload::File {
                path,
                offset: 0,
                len: size,
            };
            session.request(
                "PUT",
                &with_digest(&url, digest),
                &[octets],
                &payload,
                &[],
                registry,
            )?;
            report(size);
        }
    }
    Ok(())
}
