//! The OCI image layout on disk: verified blobs, temporaries, locks and the
//! atomic update of `index.json`.
//!
//! Every write goes to `tmp/` first and is renamed into place once
//! complete and checked, so a reader never sees half a blob or half a
//! layer. Every handle holds a shared flock on `lock` for its lifetime; the
//! one that gets it exclusively knows nobody else is mid-write and clears
//! `tmp/` of what an interrupted run left there.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::image::ImageIndex;

use super::error::{ImageError, Result};
use super::verify::{digest_hex, HashingReader};
use crate::support::error::io_err;
use crate::support::fs as fs_support;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
const EMPTY_INDEX: &str = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}";

#[derive(Debug)]
pub struct Layout {
    pub root: PathBuf,
    /// Held shared while this handle lives (see the module comment).
    _lock: File,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other writer uses: pid, time and a counter.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    Ok(fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(io_err("create", path))?)
}

/// A blob or directory being written in `tmp/`, removed if dropped before
/// it was renamed into place.
pub struct Temp {
    pub path: PathBuf,
    kept: bool,
}

impl Temp {
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.kept {
            let _ = remove_any(&self.path);
        }
    }
}

/// Removes a file or a whole tree, also one whose directories lost their
/// write bits.
pub fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => match fs::remove_dir_all(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                make_writable(path);
                fs::remove_dir_all(path)
            }
            Err(e) => Err(e),
        },
        Ok(_) => fs::remove_file(path),
    }
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
}

impl Layout {
    /// Opens (creating it when missing) the layout at `root`.
    pub fn open(root: &Path) -> Result<Layout> {
        mkdir(root, 0o711)?;
        // Blobs and temporaries root's alone; layers passable (each
        // layer's own directory is 0700: see ImageStore::commit_layer).
        for (sub, mode) in [
            ("blobs/sha256", 0o700),
            ("layers/sha256", 0o711),
            ("tmp", 0o700),
        ] {
            mkdir(&root.join(sub), mode)?;
        }
        let lock_path = root.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o644)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        // Alone: clear what interrupted runs left; then share with the rest.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            clean_tmp(&root.join("tmp"));
        }
        flock(&lock, libc::LOCK_SH).map_err(io_err("lock", &lock_path))?;
        let layout = Layout {
            root: root.to_path_buf(),
            _lock: lock,
        };
        // Created under a lock, so that no cleanup takes the temporaries.
        let layout_file = root.join(LAYOUT_FILE);
        if !layout_file.exists() {
            write_atomic(root, &layout_file, LAYOUT_CONTENT.as_bytes())?;
        }
        let index = root.join("index.json");
        if !index.exists() {
            let _guard = layout.index_lock()?;
            if !index.exists() {
                write_atomic(root, &index, EMPTY_INDEX.as_bytes())?;
            }
        }
        Ok(layout)
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    pub fn layer_path(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.root.join("layers/sha256").join(digest_hex(diff_id)?))
    }

    /// The unpacked layer's root, if it is there.
    pub fn has_layer(&self, diff_id: &str) -> bool {
        self.layer_path(diff_id)
            .is_ok_and(|p| p.join("layer.json").is_file())
    }

    pub fn temp(&self, prefix: &str) -> Temp {
        Temp {
            path: self.root.join("tmp").join(unique(prefix)),
            kept: false,
        }
    }

    /// Streams `reader` into a temporary file, hashing the bytes as they
    /// arrive; when they match `digest` and `size` the file is renamed to
    /// the blob's place, otherwise it is discarded.
    pub fn write_blob(&self, reader: impl Read, digest: &str, size: u64, what: &str) -> Result<()> {
        let final_path = self.blob_path(digest)?;
        let temp = self.temp("blob");
        let mut file = create_new(&temp.path)?;
        // One byte more than promised shows an over-long (or endless) blob.
        let mut hashing = HashingReader::new(reader, size.saturating_add(1));
        let copied = io::copy(&mut hashing, &mut file);
        if hashing.exceeded() {
            return Err(ImageError::LongerThanDescriptor {
                what: what.to_string(),
                expected: size,
            });
        }
        copied.map_err(|source| ImageError::Read {
            what: what.to_string(),
            source,
        })?;
        self.commit_blob(
            file,
            temp,
            &hashing.digest(),
            hashing.count(),
            digest,
            size,
            what,
            &final_path,
        )
    }

    /// Checks a finished temporary blob and renames it into place.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_blob(
        &self,
        file: File,
        temp: Temp,
        actual_digest: &str,
        actual_size: u64,
        digest: &str,
        size: u64,
        what: &str,
        final_path: &Path,
    ) -> Result<()> {
        if actual_size != size {
            return Err(ImageError::SizeMismatch {
                what: what.to_string(),
                expected: size,
                actual: actual_size,
            });
        }
        if actual_digest != digest {
            return Err(ImageError::DigestMismatch {
                what: what.to_string(),
                expected: digest.to_string(),
                actual: actual_digest.to_string(),
            });
        }
        file.sync_all().map_err(io_err("sync", &temp.path))?;
        drop(file);
        fs::rename(&temp.path, final_path).map_err(io_err("rename into place", final_path))?;
        temp.keep();
        Ok(())
    }

    /// Stores bytes already in memory (manifests, configs) under their digest.
    pub fn write_blob_bytes(&self, bytes: &[u8]) -> Result<String> {
        let digest = super::verify::sha256_digest(bytes);
        if !self.has_blob(&digest) {
            self.write_blob(bytes, &digest, bytes.len() as u64, "blob")?;
        }
        Ok(digest)
    }

    pub fn read_blob(&self, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let file = File::open(&path).map_err(io_err("open", &path))?;
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        if bytes.len() as u64 > limit {
            return Err(ImageError::TooLarge {
                what: format!("blob {digest}"),
                limit,
            });
        }
        Ok(bytes)
    }

    pub fn read_index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::invalid(path.display().to_string(), e))
    }

    /// Read-modify-write of index.json under an exclusive lock, replaced
    /// by rename so a reader sees the old file or the new one.
    pub fn update_index<T>(&self, change: impl FnOnce(&mut ImageIndex) -> Result<T>) -> Result<T> {
        let _guard = self.index_lock()?;
        let mut index = self.read_index()?;
        let out = change(&mut index)?;
        let bytes = serde_json::to_vec(&index).map_err(|e| ImageError::invalid("index.json", e))?;
        write_atomic(&self.root, &self.root.join("index.json"), &bytes)?;
        Ok(out)
    }

    /// An exclusive flock on index.json.lock, held until dropped.
    fn index_lock(&self) -> Result<File> {
        let lock_path = self.root.join("index.json.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        flock(&lock, libc::LOCK_EX).map_err(io_err("lock", &lock_path))?;
        Ok(lock)
    }

    /// Moves a blob or layer out of sight first, then deletes it: an
    /// interrupted removal leaves only a temporary for the next cleanup.
    pub fn discard(&self, path: &Path) -> Result<()> {
        if fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        let temp = self.temp("gone");
        fs::rename(path, &temp.path).map_err(io_err("remove", path))?;
        drop(temp);
        Ok(())
    }
}

pub fn create_new(path: &Path) -> Result<File> {
    Ok(OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(io_err("create", path))?)
}

/// Writes a small file so that readers never see half of it; the
/// temporary file in tmp/ (same filesystem), which open() empties, so an
/// interrupted write leaves nothing behind.
pub fn write_atomic(root: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = root.join("tmp").join(unique("write"));
    Ok(fs_support::write_atomic_through(&temp, path, bytes, 0o644)?)
}

fn clean_tmp(tmp: &Path) {
    if let Ok(entries) = fs::read_dir(tmp) {
        for entry in entries.flatten() {
            let _ = remove_any(&entry.path());
        }
    }
}
