//! `docker pull`: resolve the manifest (picking this platform from an
//! index), fetch the config, then the layers three at a time, each stored
//! and unpacked while it streams and verified twice (the blob's digest and
//! size, the unpacked tar's diff_id); the image is added to the store's
//! index only when all of that succeeded.

use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use oci_spec::image::{Descriptor, ImageIndex};

use super::client::{read_limited, Payload, RegistryOptions, Session};
use crate::engine::images::compression::Compression;
use crate::engine::images::error::{ImageError, Result};
use crate::engine::images::layout::create_new;
use crate::engine::images::platform::Platform;
use crate::engine::images::progress::{layer, Event, LayerState, Progress};
use crate::engine::images::reference::Reference;
use crate::engine::images::store::{
    self, media_type_str, parse_config, parse_manifest, Image, ImageStore, MAX_CONFIG, MAX_MANIFEST,
};
use crate::engine::images::unpack::UnpackLimits;
use crate::engine::images::verify::{sha256_digest, CountingReader, HashingReader, TeeReader};

/// Every manifest kind we read: without the index types a multi-platform
/// image is missed, and Docker Hub refuses an OCI manifest to a client
/// that does not list it.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub registry: RegistryOptions,
    pub platform: Platform,
    /// Layers pulled at once (Docker: 3).
    pub concurrency: usize,
    pub limits: UnpackLimits,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            registry: RegistryOptions::default(),
            platform: Platform::host(),
            concurrency: 3,
            limits: UnpackLimits::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: Image,
    /// False when the store had this very manifest under this name already.
    pub newer: bool,
    /// The digest the registry serves the reference under (the index's,
    /// for a multi-platform image).
    pub repo_digest: String,
}

/// A manifest as received: its bytes, media type and digest.
struct Fetched {
    bytes: Vec<u8>,
    media_type: String,
    digest: String,
}

fn is_index(media_type: &str) -> bool {
    media_type == store::OCI_INDEX || media_type == store::DOCKER_MANIFEST_LIST
}

fn fetch_manifest(
    session: &Session,
    reference: &Reference,
    tag_or_digest: &str,
    expected: Option<&str>,
    options: &RegistryOptions,
) -> Result<Fetched> {
    let url = session.url(&format!("manifests/{tag_or_digest}"));
    let headers = [("Accept", MANIFEST_ACCEPT.to_string())];
    let response = session.request("GET", &url, &headers, &Payload::Empty, &[404], options)?;
    if response.status().as_u16() == 404 {
        let body = super::client::read_small(response)?;
        return Err(ImageError::ManifestUnknown {
            reference: reference.familiar(),
            detail: super::client::error_detail(&body),
        });
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
    };
    let content_type = header("content-type");
    let served_digest = header("docker-content-digest");
    let what = if tag_or_digest.starts_with("sha256:") {
        format!("manifest {tag_or_digest} of {}", reference.familiar())
    } else {
        format!("the manifest of {}", reference.familiar())
    };
    let bytes = read_limited(response, MAX_MANIFEST, &what)?;
    let digest = sha256_digest(&bytes);
    // By digest the bytes must match it; by tag, what the registry says.
    let wanted = expected
        .map(str::to_string)
        .or(served_digest.filter(|d| d.starts_with("sha256:")));
    if let Some(wanted) = wanted {
        if wanted != digest {
            return Err(ImageError::DigestMismatch {
                what,
                expected: wanted,
                actual: digest,
            });
        }
    }
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| ImageError::invalid(&what, e))?;
    let media_type = value
        .get("mediaType")
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .or(content_type.filter(|c| c.starts_with("application/vnd.")))
        .unwrap_or_else(|| {
            if value.get("manifests").is_some() {
                store::OCI_INDEX.to_string()
            } else {
                store::OCI_MANIFEST.to_string()
            }
        });
    Ok(Fetched {
        bytes,
        media_type,
        digest,
    })
}

/// Pulls `reference` into the store.
pub fn pull(
    store: &ImageStore,
    reference: &Reference,
    options: &PullOptions,
    progress: Progress,
) -> Result<Pulled> {
    progress(Event::PullStarted {
        reference: reference.clone(),
    });
    let registry = &options.registry;
    let session = Session::connect(registry, reference.registry_host(), &reference.path, "pull")?;
    let top = fetch_manifest(
        &session,
        reference,
        reference.tag_or_digest(),
        reference.digest.as_deref(),
        registry,
    )?;
    let repo_digest = top.digest.clone();
    let fetched = if is_index(&top.media_type) {
        let what = format!("image index of {}", reference.familiar());
        let index: ImageIndex =
            serde_json::from_slice(&top.bytes).map_err(|e| ImageError::invalid(&what, e))?;
        let chosen = options
            .platform
            .select(index.manifests(), &reference.familiar())?;
        let digest = chosen.digest().to_string();
        let manifest = fetch_manifest(&session, reference, &digest, Some(&digest), registry)?;
        if is_index(&manifest.media_type) {
            return Err(ImageError::invalid(
                what,
                "it names another index for the platform, not a manifest",
            ));
        }
        manifest
    } else {
        top
    };
    let what = format!("manifest of {}", reference.familiar());
    let manifest = parse_manifest(&fetched.bytes, &what)?;

    if let Ok(existing) = store.image(reference) {
        if existing.manifest_digest == fetched.digest {
            // Docker names no layer then: the digest and the status only.
            progress(Event::PullDone {
                reference: reference.clone(),
                repo_digest: repo_digest.clone(),
                newer: false,
            });
            return Ok(Pulled {
                image: existing,
                newer: false,
                repo_digest,
            });
        }
    }

    // The config: small, and it holds the diff_ids the layers must match.
    let config_descriptor = manifest.config();
    let config_digest = config_descriptor.digest().to_string();
    if config_descriptor.size() > MAX_CONFIG {
        return Err(ImageError::TooLarge {
            what: format!("config {config_digest}"),
            limit: MAX_CONFIG,
        });
    }
    if !store.layout().has_blob(&config_digest) {
        let url = session.url(&format!("blobs/{config_digest}"));
        let response = session.request("GET", &url, &[], &Payload::Empty, &[], registry)?;
        store.layout().write_blob(
            response.into_body().into_reader(),
            &config_digest,
            config_descriptor.size(),
            &format!("config {config_digest}"),
        )?;
    }
    let config = parse_config(
        &store.layout().read_blob(&config_digest, MAX_CONFIG)?,
        &format!("config of {}", reference.familiar()),
    )?;
    let diff_ids = config.rootfs().diff_ids().clone();
    if diff_ids.len() != manifest.layers().len() {
        return Err(ImageError::invalid(
            &what,
            format!(
                "it lists {} layers but its config {} diff_ids",
                manifest.layers().len(),
                diff_ids.len()
            ),
        ));
    }
    let mut jobs = Vec::new();
    for (descriptor, diff_id) in manifest.layers().iter().zip(&diff_ids) {
        let media_type = media_type_str(descriptor.media_type());
        let compression = Compression::for_media_type(&media_type).ok_or_else(|| {
            ImageError::UnsupportedMediaType {
                layer: descriptor.digest().to_string(),
                media_type: media_type.clone(),
            }
        })?;
        // Both become file names: checked before anything is written.
        store.layout().blob_path(descriptor.digest().as_ref())?;
        store.layout().layer_path(diff_id)?;
        jobs.push(Job {
            descriptor,
            diff_id,
            media_type,
            compression,
        });
    }
    for job in &jobs {
        layer(
            progress,
            job.descriptor.digest().as_ref(),
            LayerState::Waiting,
            0,
            job.descriptor.size(),
        );
    }
    pull_layers(store, &session, &jobs, options, progress)?;

    let repo = format!("{}@{repo_digest}", reference.name());
    let newer = store.commit(reference, &fetched.bytes, &fetched.media_type, Some(&repo))?;
    progress(Event::PullDone {
        reference: reference.clone(),
        repo_digest: repo_digest.clone(),
        newer,
    });
    Ok(Pulled {
        image: store.image(reference)?,
        newer,
        repo_digest,
    })
}

struct Job<'a> {
    descriptor: &'a Descriptor,
    diff_id: &'a String,
    media_type: String,
    compression: Compression,
}

/// Runs the layer jobs on `concurrency` threads; the first real failure
/// stops the others and is the one returned.
fn pull_layers(
    store: &ImageStore,
    session: &Session,
    jobs: &[Job<'_>],
    options: &PullOptions,
    progress: Progress,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<(usize, ImageError)>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..options.concurrency.max(1).min(jobs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= jobs.len() || stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Err(error) = pull_layer(store, session, &jobs[i], options, progress, &stop) {
                    let mut failure = failure.lock().unwrap();
                    if !stop.swap(true, Ordering::SeqCst) {
                        *failure = Some((i, error));
                    }
                    return;
                }
            });
        }
    });
    match failure.into_inner().unwrap() {
        Some((_, error)) => Err(error),
        None => Ok(()),
    }
}

const PROGRESS_EVERY: u64 = 512 * 1024;

fn pull_layer(
    store: &ImageStore,
    session: &Session,
    job: &Job<'_>,
    options: &PullOptions,
    progress: Progress,
    stop: &AtomicBool,
) -> Result<()> {
    let digest = job.descriptor.digest().to_string();
    let total = job.descriptor.size();
    let layout = store.layout();
    let what = format!("layer {digest}");
    let warn = |skipped: &[String]| {
        for line in skipped {
            progress(Event::Warning(format!("layer {}: {line}", &digest[7..19])));
        }
    };
    if layout.has_blob(&digest) {
        if layout.has_layer(job.diff_id) {
            layer(progress, &digest, LayerState::AlreadyExists, total, total);
            return Ok(());
        }
        layer(progress, &digest, LayerState::Extracting, 0, total);
        if let Some(report) =
            store.unpack_blob(&digest, &job.media_type, job.diff_id, options.limits)?
        {
            warn(&report.skipped);
        }
        layer(progress, &digest, LayerState::PullComplete, total, total);
        return Ok(());
    }

    let url = session.url(&format!("blobs/{digest}"));
    let response = session.request("GET", &url, &[], &Payload::Empty, &[], &options.registry)?;
    layer(progress, &digest, LayerState::Downloading, 0, total);
    let network = CountingReader::new(response.into_body().into_reader(), PROGRESS_EVERY, |done| {
        layer(
            progress,
            &digest,
            LayerState::Downloading,
            done.min(total),
            total,
        );
    });
    let network = StopReader {
        inner: network,
        stop,
    };
    if layout.has_layer(job.diff_id) {
        // Unpacked already (from a blob compressed differently): keep the blob.
        layout.write_blob(network, &digest, total, &what)?;
        layer(progress, &digest, LayerState::PullComplete, total, total);
        return Ok(());
    }
    // One byte past the descriptor's size shows an over-long (endless) blob.
    let mut hashing = HashingReader::new(network, total.saturating_add(1));
    let blob = layout.temp("blob");
    let file = create_new(&blob.path)?;
    let unpacked = {
        let tee = TeeReader {
            reader: &mut hashing,
            writer: &file,
        };
        store.unpack_to_temp(
            BufReader::with_capacity(256 * 1024, tee),
            job.compression,
            &digest,
            &job.media_type,
            options.limits,
        )
    };
    if unpacked.is_err() && stop.load(Ordering::SeqCst) {
        return Err(ImageError::Refused("cancelled".into()));
    }
    // A blob longer or shorter than promised explains a broken tar best.
    if hashing.exceeded() {
        return Err(ImageError::LongerThanDescriptor {
            what,
            expected: total,
        });
    }
    if unpacked.is_ok() && hashing.count() != total {
        return Err(ImageError::SizeMismatch {
            what,
            expected: total,
            actual: hashing.count(),
        });
    }
    let received = hashing.count();
    let (unpacked_dir, report) =
        unpacked.map_err(|error| explain(error, &what, received, total, options))?;
    layer(progress, &digest, LayerState::Verifying, total, total);
    let actual = hashing.digest();
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            what,
            expected: digest,
            actual,
        });
    }
    store.commit_layer(unpacked_dir, &report, &digest, job.diff_id)?;
    layout.commit_blob(
        file,
        blob,
        &actual,
        total,
        &digest,
        total,
        &what,
        &layout.blob_path(&digest)?,
    )?;
    layer(
        progress,
        &digest,
        LayerState::DownloadComplete,
        total,
        total,
    );
    warn(&report.skipped);
    layer(progress, &digest, LayerState::PullComplete, total, total);
    Ok(())
}

/// A read that timed out is a stalled transfer, one that ended early a
/// dropped connection: say so rather than "bad tar".
fn explain(
    error: ImageError,
    what: &str,
    received: u64,
    expected: u64,
    options: &PullOptions,
) -> ImageError {
    match error {
        ImageError::Read { source, .. } if source.kind() == std::io::ErrorKind::TimedOut => {
            ImageError::Stalled {
                what: what.to_string(),
                seconds: options.registry.stall_timeout.as_secs(),
            }
        }
        ImageError::Read { source, .. }
            if source.kind() == std::io::ErrorKind::UnexpectedEof && received < expected =>
        {
            ImageError::Disconnected {
                what: what.to_string(),
                received,
                expected,
            }
        }
        other => other,
    }
}

/// Ends a transfer early when another layer failed.
struct StopReader<'a, R> {
    inner: R,
    stop: &'a AtomicBool,
}

impl<R: Read> Read for StopReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("cancelled: another layer failed"));
        }
        self.inner.read(buf)
    }
}
