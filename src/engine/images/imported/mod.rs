//! Images: the built-in busybox image and root filesystem tarballs imported
//! the way `docker import FILE NAME[:TAG]` does, each as one read-only
//! overlay layer, plus what `docker images` shows about them.
//!
//! On disk, under `dirs.data/images/`:
//!
//! ```text
//! busybox/                      the built-in image (see rootfs.rs)
//! imported/<id>/rootfs/         an imported layer, never written after import
//! imported/<id>/layer.json      its id, when it was first imported, its size
//! imported/refs.json            "name:tag" -> id and when it was imported
//! ```
//!
//! The id is the sha256 of the uncompressed tar stream, so the same content
//! imported twice (gzipped or not, under any name) shares one layer.

mod unpack;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::dirs::LabDirs;
use crate::engine::images::busybox;
use crate::kernel::overlay::Layer;
use crate::kernel::rootfs::RootfsError;
use crate::support::error::{io_err, IoError};
use crate::support::ids::hex;

/// The built-in image's name; it cannot be imported over or removed.
pub const BUILTIN: &str = "busybox";
const DEFAULT_TAG: &str = "latest";

/// An image: its layers, bottom first, and what `docker images` shows.
#[derive(Debug, Clone)]
pub struct Image {
    /// "name:tag".
    pub reference: String,
    /// sha256, 64 hex digits.
    pub id: String,
    pub layers: Vec<Layer>,
    pub created: SystemTime,
    pub size_bytes: u64,
}

/// What an import did besides producing the image.
#[derive(Debug, Clone)]
pub struct Imported {
    pub image: Image,
    /// Device nodes and FIFOs in the tarball, not created: a container gets
    /// its own /dev at run time, and an image has no business carrying them.
    pub skipped_special: u64,
    /// True when a layer with the same content was already stored.
    pub reused_layer: bool,
}

/// A parsed and checked "name[:tag]".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    pub tag: String,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// Parses a reference with Docker's rules: a lowercase name of components
/// `[a-z0-9]+` joined by `.`, `_`, `__` or dashes, separated by `/`, and an
/// optional tag `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (default `latest`).
pub fn parse_reference(reference: &str) -> Result<Reference, ImageError> {
    let invalid = |reason: &str| ImageError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.to_string(),
    };
    if reference.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if reference.contains('@') {
        return Err(invalid(
            "digests (@sha256:...) are not supported; use name:tag",
        ));
    }
    // The tag follows the last ':' that comes after the last '/'.
    let (name, tag) = match reference.rfind(':') {
        Some(at) if !reference[at..].contains('/') => (&reference[..at], &reference[at + 1..]),
        _ => (reference, DEFAULT_TAG),
    };
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if name.len() > 255 {
        return Err(invalid("the name is longer than 255 characters"));
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(invalid("the name must be lowercase"));
    }
    if !name.split('/').all(valid_component) {
        return Err(invalid(
            "the name may only have lowercase letters, digits and the separators . _ - / between them",
        ));
    }
    let tag_ok = tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !tag_ok {
        return Err(invalid(
            "the tag must be 1 to 128 of A-Z a-z 0-9 _ . - and not start with . or -",
        ));
    }
    Ok(Reference {
        name: name.to_string(),
        tag: tag.to_string(),
    })
}

/// `[a-z0-9]+` groups joined by one `.`, one or two `_`, or any dashes.
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Finds an image by reference: `busybox[:latest]` is built in (and built
/// now if needed), anything else must have been imported.
/// `busybox` or `busybox:latest`: the lab's own image, built on first use.
pub fn is_builtin(reference: &str) -> bool {
    parse_reference(reference).is_ok_and(|r| r.name == BUILTIN && r.tag == DEFAULT_TAG)
}

pub fn resolve(dirs: &LabDirs, reference: &str) -> Result<Image, ImageError> {
    let parsed = parse_reference(reference)?;
    if parsed.name == BUILTIN {
        if parsed.tag != DEFAULT_TAG {
            return Err(ImageError::NotFound {
                reference: parsed.to_string(),
            });
        }
        let (path, _) = busybox::image(dirs)?;
        return builtin_image(&path);
    }
    let refs = read_refs(dirs)?;
    let key = parsed.to_string();
    let entry = refs.get(&key).ok_or(ImageError::NotFound {
        reference: key.clone(),
    })?;
    imported_image(dirs, &key, entry)
}

/// Every image: the built-in busybox first if it has been built, then the
/// imported ones sorted by reference.
pub fn list(dirs: &LabDirs) -> Result<Vec<Image>, ImageError> {
    let mut images = Vec::new();
    let busybox = busybox_dir(dirs);
    if busybox.join(".lab-image").is_file() {
        images.push(builtin_image(&busybox)?);
    }
    for (reference, entry) in read_refs(dirs)? {
        images.push(imported_image(dirs, &reference, &entry)?);
    }
    Ok(images)
}

/// `docker import TARBALL REFERENCE`: unpacks a root filesystem tarball
/// (.tar, or gzipped whatever its name) into a new read-only layer.
pub fn import(dirs: &LabDirs, tarball: &Path, reference: &str) -> Result<Image, ImageError> {
    import_tarball(dirs, tarball, reference).map(|imported| imported.image)
}

/// How big an image may be: the uncompressed archive's bytes and its
/// entries. A tarball is input from anywhere; without a bound, a small
/// gzip file fills the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

/// Raise (or lower) [`ImportLimits::max_bytes`], in bytes.
pub const MAX_BYTES_ENV: &str = "CONTAINER_LAB_IMAGE_MAX_BYTES";
/// Raise (or lower) [`ImportLimits::max_entries`].
pub const MAX_ENTRIES_ENV: &str = "CONTAINER_LAB_IMAGE_MAX_ENTRIES";

impl Default for ImportLimits {
    /// 8 GiB and a million entries: far above any root filesystem the lab
    /// runs, far below what would fill a disk or its inodes by surprise.
    fn default() -> ImportLimits {
        ImportLimits {
            max_bytes: 8 << 30,
            max_entries: 1_000_000,
        }
    }
}

impl ImportLimits {
    /// The defaults, or what `CONTAINER_LAB_IMAGE_MAX_BYTES` and
    /// `CONTAINER_LAB_IMAGE_MAX_ENTRIES` say.
    pub fn from_env() -> Result<ImportLimits, ImageError> {
        let mut limits = ImportLimits::default();
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
                    .ok_or(ImageError::InvalidLimit { var, value: text })?;
            }
        }
        Ok(limits)
    }
}

/// [`import`], also saying what was skipped and whether the layer was
/// reused; the limits come from the environment ([`ImportLimits::from_env`]).
pub fn import_tarball(
    dirs: &LabDirs,
    tarball: &Path,
    reference: &str,
) -> Result<Imported, ImageError> {
    import_tarball_with(dirs, tarball, reference, &ImportLimits::from_env()?)
}

/// [`import_tarball`] with explicit limits.
// ANCHOR: import
pub fn import_tarball_with(
    dirs: &LabDirs,
    tarball: &Path,
    reference: &str,
    limits: &ImportLimits,
) -> Result<Imported, ImageError> {
    let parsed = parse_reference(reference)?;
    if parsed.name == BUILTIN {
        return Err(ImageError::BuiltIn {
            reference: reference.to_string(),
        });
    }
    let key = parsed.to_string();
    let store = imported_dir(dirs);
    // The same lock as image builds: one writer of the image directory.
    let _lock = busybox::lock(dirs)?;
    // imported/ is root's alone: images carry setuid files.
    dirs.create_dir(&store)?;
    // Holding the lock, any temporary directory left here belongs to an
    // import or removal that was killed: nothing may trust it.
    remove_leftovers(&store)?;

    // Unpack beside the final place; rename only once everything is there,
    // so a failed or interrupted import leaves no layer behind.
    let temp = store.join(format!(".import-{}", std::process::id()));
    let result = unpack_into(tarball, &temp, limits);
    let Unpacked {
        id,
        skipped_special,
        size_bytes,
    } = match result {
        Ok(done) => done,
        Err(err) => {
            let _ = remove_layer_tree(&temp);
            return Err(err);
        }
    };

    let layer_dir = store.join(&id);
    let reused_layer = layer_dir.join(LAYER_META).is_file();
    let now = SystemTime::now();
    let stored = if reused_layer {
        let _ = remove_layer_tree(&temp);
        Ok(())
    } else {
        let meta = LayerMeta {
            id: id.clone(),
            created: now,
            size_bytes,
        };
        write_json(&temp.join(LAYER_META), &meta)
            .and_then(|()| {
                // A layer directory without metadata is a leftover: replace it.
                let _ = remove_layer_tree(&layer_dir);
                Ok(fs::rename(&temp, &layer_dir).map_err(io_err("rename", &layer_dir))?)
            })
            .inspect_err(|_| {
                let _ = remove_layer_tree(&temp);
            })
    };
    stored?;

    let mut refs = read_refs(dirs)?;
    let replaced = refs.insert(
        key.clone(),
        RefEntry {
            id: id.clone(),
            created: now,
        },
    );
    write_refs(dirs, &refs)?;
    // Importing a reference again replaces it; its old layer goes when no
    // other reference uses it.
    if let Some(old) = replaced {
        if old.id != id {
            remove_unused_layer(dirs, &refs, &old.id)?;
        }
    }
    let image = imported_image(dirs, &key, &refs[&key])?;
    Ok(Imported {
        image,
        skipped_special,
        reused_layer,
    })
}
// ANCHOR_END: import

/// `docker rmi REFERENCE`: forgets the reference, and deletes its layer
/// when no other reference uses it.
pub fn remove(dirs: &LabDirs, reference: &str) -> Result<(), ImageError> {
    let parsed = parse_reference(reference)?;
    if parsed.name == BUILTIN && parsed.tag == DEFAULT_TAG {
        return Err(ImageError::RemoveBuiltIn);
    }
    let key = parsed.to_string();
    let _lock = busybox::lock(dirs)?;
    let mut refs = read_refs(dirs)?;
    let entry = refs
        .remove(&key)
        .ok_or(ImageError::NoSuchImage { reference: key })?;
    write_refs(dirs, &refs)?;
    remove_unused_layer(dirs, &refs, &entry.id)
}

/// Docker's `-u USER[:GROUP]` resolved against the image's /etc/passwd and
/// /etc/group: names or numbers; a number absent from passwd is allowed
/// (with gid 0), an unknown name is not.
// ANCHOR: lookup_user
pub fn lookup_user(root: &Path, spec: &str) -> Result<(u32, u32), ImageError> {
    let invalid = |reason: &str| ImageError::InvalidUser {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(invalid("the user is empty"));
    }
    if group == Some("") {
        return Err(invalid("the group after ':' is empty"));
    }
    let passwd = read_db(&root.join("etc/passwd"))?;
    let numeric_uid = parse_id(user).map_err(|reason| invalid(&reason))?;
    // As runc does: an entry matches by name, or by uid for a number.
    let entry = passwd.iter().find(|fields| {
        fields.first().is_some_and(|name| *name == user)
            || (numeric_uid.is_some() && fields.get(2).and_then(|u| u.parse().ok()) == numeric_uid)
    });
    let (uid, mut gid) = match (entry, numeric_uid) {
        (Some(fields), _) => {
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<u32>().ok())
                    .ok_or_else(|| ImageError::BadDatabase {
                        path: root.join("etc/passwd"),
                        line: fields.join(":"),
                    })
            };
            (field(2)?, field(3)?)
        }
        (None, Some(uid)) => (uid, 0),
        (None, None) => {
            return Err(ImageError::UnknownUser {
                name: user.to_string(),
            })
        }
    };
    if let Some(group) = group {
        let numeric_gid = parse_id(group).map_err(|reason| invalid(&reason))?;
        let groups = read_db(&root.join("etc/group"))?;
        let found = groups.iter().find(|fields| {
            fields.first().is_some_and(|name| *name == group)
                || (numeric_gid.is_some()
                    && fields.get(2).and_then(|g| g.parse().ok()) == numeric_gid)
        });
        gid = match (found, numeric_gid) {
            (Some(fields), _) => fields.get(2).and_then(|g| g.parse().ok()).ok_or_else(|| {
                ImageError::BadDatabase {
                    path: root.join("etc/group"),
                    line: fields.join(":"),
                }
            })?,
            (None, Some(gid)) => gid,
            (None, None) => {
                return Err(ImageError::UnknownGroup {
                    name: group.to_string(),
                })
            }
        };
    }
    Ok((uid, gid))
}
// ANCHOR_END: lookup_user

/// A number in 0..2^31 (Docker's range for ids), None for a name.
fn parse_id(text: &str) -> Result<Option<u32>, String> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match text.parse::<u32>() {
        Ok(id) if id <= i32::MAX as u32 => Ok(Some(id)),
        _ => Err("uids and gids must be in range 0-2147483647".to_string()),
    }
}

/// The colon-separated lines of /etc/passwd or /etc/group; a missing file
/// is an empty one (numeric ids still work, as in Docker).
fn read_db(path: &Path) -> Result<Vec<Vec<String>>, ImageError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(ImageError::Io(IoError::new("read", path, source))),
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split(':').map(str::to_string).collect())
        .collect())
}

// --- storage ---------------------------------------------------------------

const LAYER_META: &str = "layer.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LayerMeta {
    id: String,
    created: SystemTime,
    size_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefEntry {
    id: String,
    created: SystemTime,
}

fn busybox_dir(dirs: &LabDirs) -> PathBuf {
    dirs.data.join("images").join(BUILTIN)
}

fn imported_dir(dirs: &LabDirs) -> PathBuf {
    dirs.data.join("images").join("imported")
}

fn refs_path(dirs: &LabDirs) -> PathBuf {
    imported_dir(dirs).join("refs.json")
}

/// The built-in image as built by busybox::image. Its id stands for
/// the build (busybox binary and its identity), not a content hash: hashing
/// the tree on every `run` would cost more than the rest of the start.
fn builtin_image(path: &Path) -> Result<Image, ImageError> {
    let stamp = path.join(".lab-image");
    let identity = fs::read(&stamp).map_err(io_err("read", &stamp))?;
    let meta = fs::metadata(&stamp).map_err(io_err("stat", &stamp))?;
    let busybox = path.join("bin/busybox");
    let size = fs::metadata(&busybox)
        .map_err(io_err("stat", &busybox))?
        .len();
    Ok(Image {
        reference: format!("{BUILTIN}:{DEFAULT_TAG}"),
        id: sha256_hex(&[b"container-lab busybox image\n".as_slice(), &identity].concat()),
        layers: vec![Layer {
            name: BUILTIN.to_string(),
            path: path.to_path_buf(),
        }],
        created: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        // The applets are symlinks to this one binary; the few /etc files
        // are a rounding error.
        size_bytes: size,
    })
}

fn imported_image(dirs: &LabDirs, reference: &str, entry: &RefEntry) -> Result<Image, ImageError> {
    let layer_dir = imported_dir(dirs).join(&entry.id);
    let meta: LayerMeta = read_json(&layer_dir.join(LAYER_META))?;
    Ok(Image {
        reference: reference.to_string(),
        id: entry.id.clone(),
        layers: vec![Layer {
            name: reference.to_string(),
            path: layer_dir.join("rootfs"),
        }],
        created: entry.created,
        size_bytes: meta.size_bytes,
    })
}

fn read_refs(dirs: &LabDirs) -> Result<BTreeMap<String, RefEntry>, ImageError> {
    let path = refs_path(dirs);
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    read_json(&path)
}

fn write_refs(dirs: &LabDirs, refs: &BTreeMap<String, RefEntry>) -> Result<(), ImageError> {
    write_json(&refs_path(dirs), refs)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ImageError> {
    let text = fs::read(path).map_err(io_err("read", path))?;
    serde_json::from_slice(&text).map_err(|source| ImageError::Metadata {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes beside and renames, so a reader never sees half a file.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ImageError> {
    let text = serde_json::to_vec_pretty(value).map_err(|source| ImageError::Metadata {
        path: path.to_path_buf(),
        source,
    })?;
    let temp = path.with_extension("json.tmp");
    fs::write(&temp, text).map_err(io_err("write", &temp))?;
    Ok(fs::rename(&temp, path).map_err(io_err("rename", path))?)
}

fn remove_unused_layer(
    dirs: &LabDirs,
    refs: &BTreeMap<String, RefEntry>,
    id: &str,
) -> Result<(), ImageError> {
    if refs.values().any(|entry| entry.id == id) {
        return Ok(());
    }
    let store = imported_dir(dirs);
    let layer = store.join(id);
    // Rename first: an interrupted delete leaves a leftover, not a layer
    // with files missing.
    let doomed = store.join(format!(".remove-{id}"));
    match fs::rename(&layer, &doomed) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(io_err("rename", &layer))?,
    }
    Ok(remove_layer_tree(&doomed).map_err(io_err("remove", &doomed))?)
}

/// A layer, or an unpacked temporary, goes: never through a mount, and
/// with few descriptors however deep the tree is.
fn remove_layer_tree(path: &Path) -> io::Result<()> {
    if crate::kernel::mounts::has_mounts_under(path)? {
        return Err(io::Error::other(format!(
            "{} still has mounts beneath it; unmount them first",
            path.display()
        )));
    }
    unpack::remove_tree(path)
}

fn remove_leftovers(store: &Path) -> Result<(), ImageError> {
    for entry in fs::read_dir(store).map_err(io_err("read", store))? {
        let entry = entry.map_err(io_err("read", store))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".import-") || name.starts_with(".remove-") {
            remove_layer_tree(&entry.path()).map_err(io_err("remove", &entry.path()))?;
        }
    }
    Ok(())
}

// --- unpacking ---------------------------------------------------------------

/// Passes bytes through while hashing them (the id is the digest of the
/// uncompressed tar stream), and stops a stream that grows past `limit`:
/// a small gzip file can expand to far more than the disk holds.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    total: u64,
    limit: u64,
    exceeded: bool,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.total += n as u64;
        if self.total > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("the archive is larger than the limit"));
        }
        Ok(n)
    }
}

/// What an unpacked tarball gave: its id, the special files skipped, the
/// bytes of its regular files.
struct Unpacked {
    id: String,
    skipped_special: u64,
    size_bytes: u64,
}

/// Unpacks the tarball into `temp/rootfs`.
fn unpack_into(tarball: &Path, temp: &Path, limits: &ImportLimits) -> Result<Unpacked, ImageError> {
    let not_tar = |reason: &str| ImageError::NotTar {
        tarball: tarball.to_path_buf(),
        reason: reason.to_string(),
    };
    let read_error = |source: io::Error| ImageError::Read {
        tarball: tarball.to_path_buf(),
        reason: read_reason(&source),
    };
    let mut file = fs::File::open(tarball).map_err(io_err("open", tarball))?;
    // gzip is recognised by its magic bytes, not by the file name.
    let mut magic = [0u8; 6];
    let n = read_up_to(&mut file, &mut magic).map_err(io_err("read", tarball))?;
    if n == 0 {
        return Err(not_tar("it is empty"));
    }
    file.rewind().map_err(io_err("read", tarball))?;
    let gzipped = n >= 2 && magic[..2] == [0x1f, 0x8b];
    let mut stream: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::GzDecoder::new(io::BufReader::new(file)))
    } else {
        Box::new(io::BufReader::new(file))
    };
    // The first block must be a tar header. Checked here, so that what is
    // not a tar archive says so, instead of tar quoting its bytes back.
    let mut first = [0u8; 512];
    let got = read_up_to(&mut stream, &mut first).map_err(read_error)?;
    if let Some(reason) = not_a_tar_header(&first[..got], gzipped, &magic[..n]) {
        return Err(not_tar(&reason));
    }
    let mut reader = HashingReader {
        inner: io::Cursor::new(first[..got].to_vec()).chain(stream),
        hasher: Sha256::new(),
        total: 0,
        limit: limits.max_bytes,
        exceeded: false,
    };

    fs::DirBuilder::new()
        .mode(0o700)
        .create(temp)
        .map_err(io_err("create", temp))?;
    let root = temp.join("rootfs");
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&root)
        .map_err(io_err("create", &root))?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
        .map_err(io_err("chmod", &root))?;

    let mut archive = tar::Archive::new(&mut reader);
    let result = unpack::unpack(&mut archive, &root, limits).and_then(|done| {
        // The rest of the stream (end-of-archive blocks, gzip trailer)
        // belongs to the content too, and reading it checks the gzip
        // checksum.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(unpack::Failure::Read)?;
        Ok(done)
    });
    let too_large = || ImageError::TooLarge {
        tarball: tarball.to_path_buf(),
        limit: limits.max_bytes,
    };
    let done = match result {
        Ok(done) => done,
        Err(_) if reader.exceeded => return Err(too_large()),
        Err(unpack::Failure::TooLarge) => return Err(too_large()),
        Err(unpack::Failure::TooManyEntries) => {
            return Err(ImageError::TooManyEntries {
                tarball: tarball.to_path_buf(),
                limit: limits.max_entries,
            })
        }
        Err(unpack::Failure::Read(source)) => return Err(read_error(source)),
        Err(unpack::Failure::Unsafe(entry)) => {
            return Err(ImageError::UnsafeEntry {
                tarball: tarball.to_path_buf(),
                entry,
            })
        }
        Err(unpack::Failure::Entry { entry, source }) => {
            return Err(ImageError::Extract {
                tarball: tarball.to_path_buf(),
                entry,
                reason: source.to_string().to_lowercase(),
            })
        }
    };
    Ok(Unpacked {
        id: hex(&reader.hasher.finalize()),
        skipped_special: done.skipped_special,
        size_bytes: done.size_bytes,
    })
}

/// Why `block` (the first 512 bytes of the uncompressed stream) does not
/// start a tar archive, or `None` when it does. `magic`: the file's first
/// bytes, to name a compression import does not read.
fn not_a_tar_header(block: &[u8], gzipped: bool, magic: &[u8]) -> Option<String> {
    if block.is_empty() {
        return Some("it holds no data once decompressed".to_string());
    }
    // All zeros: the end-of-archive marker of an archive with no entries.
    if block.len() == 512 && block.iter().all(|&b| b == 0) {
        return None;
    }
    let checksum_ok = block.len() == 512 && {
        let field = &block[148..156];
        let digits: Vec<u8> = field
            .iter()
            .copied()
            .skip_while(|&b| b == b' ')
            .take_while(|b| (b'0'..=b'7').contains(b))
            .collect();
        let stored = std::str::from_utf8(&digits)
            .ok()
            .and_then(|d| u32::from_str_radix(d, 8).ok());
        // The checksum counts its own field as eight spaces.
        let sum: u32 = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|&b| u32::from(b))
            .sum::<u32>()
            + 8 * u32::from(b' ');
        stored == Some(sum)
    };
    if checksum_ok {
        return None;
    }
    let compressed = match magic {
        _ if gzipped => None,
        [b'B', b'Z', b'h', ..] => Some("bzip2"),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Some("xz"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zstd"),
        [b'P', b'K', 3, 4, ..] => Some("zip (not tar)"),
        _ => None,
    };
    Some(match compressed {
        Some(kind) => format!("it is compressed with {kind}, which import does not read; decompress it to a .tar first"),
        None if block.len() < 512 => "it is shorter than one tar header (512 bytes)".to_string(),
        None if gzipped => "its gzip content does not start with a tar header".to_string(),
        None => "it does not start with a tar header".to_string(),
    })
}

/// tar's reason for a corrupt stream, without the bytes it may quote
/// ("numeric field was not a number: <what was there> when getting ...").
fn read_reason(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match text.split_once(": ") {
        Some((reason, _)) if reason.starts_with("numeric field") => {
            format!("a tar header is corrupt ({reason})")
        }
        _ => text,
    };
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    clean.make_ascii_lowercase();
    clean
}

fn read_up_to(stream: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Busybox(#[from] crate::engine::images::busybox::BusyboxError),
    #[error(transparent)]
    State(#[from] crate::engine::dirs::StateError),
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("unable to find image '{reference}' locally: import a root filesystem tarball with `mini-docker import FILE {reference}`, or use busybox")]
    NotFound { reference: String },
    #[error("no such image: {reference}; `mini-docker images` lists the images")]
    NoSuchImage { reference: String },
    #[error("{reference}: busybox is the built-in image; import the tarball under another name")]
    BuiltIn { reference: String },
    #[error("busybox:latest is the built-in image and cannot be removed")]
    RemoveBuiltIn,
    #[error("failed to read {} as a tar archive: {reason}; check that it is a complete .tar or .tar.gz file", tarball.display())]
    Read { tarball: PathBuf, reason: String },
    #[error("{} is not a tar archive: {reason}; import takes a .tar or .tar.gz of a root filesystem", tarball.display())]
    NotTar { tarball: PathBuf, reason: String },
    #[error("refusing to import {}: it is larger than {limit} bytes uncompressed, the limit for one image; if it really is that big, raise the limit with {MAX_BYTES_ENV}=BYTES", tarball.display())]
    TooLarge { tarball: PathBuf, limit: u64 },
    #[error("refusing to import {}: it has more than {limit} entries, the limit for one image; if it really has that many, raise the limit with {MAX_ENTRIES_ENV}=COUNT", tarball.display())]
    TooManyEntries { tarball: PathBuf, limit: u64 },
    #[error("invalid {var}={value:?}: use a whole number greater than 0")]
    InvalidLimit { var: &'static str, value: String },
    #[error("failed to extract {} from {}: {reason}; check that the tarball is complete and holds only paths inside its root", entry.display(), tarball.display())]
    Extract {
        tarball: PathBuf,
        entry: PathBuf,
        reason: String,
    },
    #[error("refusing to import {}: its entry {} points outside the root filesystem", tarball.display(), entry.display())]
    UnsafeEntry { tarball: PathBuf, entry: PathBuf },
    #[error("invalid image metadata in {}: {source}; remove the image and import it again", path.display())]
    Metadata {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("unable to find user {name}: no matching entries in passwd file")]
    UnknownUser { name: String },
    #[error("unable to find group {name}: no matching entries in group file")]
    UnknownGroup { name: String },
    #[error("invalid user {spec:?}: {reason}; use NAME, UID, NAME:GROUP or UID:GID")]
    InvalidUser { spec: String, reason: String },
    #[error("malformed line in {}: {line:?}; fix the image's file", path.display())]
    BadDatabase { path: PathBuf, line: String },
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(text: &str) -> Result<String, String> {
        parse_reference(text)
            .map(|r| r.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn references_follow_docker_rules() {
        for (input, expected) in [
            ("alpine", "alpine:latest"),
            ("alpine:3.19", "alpine:3.19"),
            ("my-app_v2.x:Build_1.0-rc", "my-app_v2.x:Build_1.0-rc"),
            ("lab/tools/shell:v1", "lab/tools/shell:v1"),
            ("a__b--c", "a__b--c:latest"),
            ("x:_tag", "x:_tag"),
        ] {
            assert_eq!(reference(input).as_deref(), Ok(expected), "{input}");
        }
        for (input, why) in [
            ("", "the name is empty"),
            (":tag", "the name is empty"),
            ("Alpine", "must be lowercase"),
            ("a..b", "separators"),
            ("a___b", "separators"),
            ("-a", "separators"),
            ("a-", "separators"),
            ("a//b", "separators"),
            ("/a", "separators"),
            ("a b", "separators"),
            ("a:", "the tag must be"),
            ("a:.x", "the tag must be"),
            ("a:-x", "the tag must be"),
            ("a:x/y", "separators"),
            ("a:t@g", "digests"),
            ("a@sha256:abc", "digests"),
        ] {
            let err = reference(input).expect_err(input);
            assert!(err.contains(why), "{input}: {err}");
            assert!(err.starts_with("invalid reference format"), "{err}");
        }
        let long_tag = format!("a:{}", "t".repeat(128));
        assert!(reference(&long_tag).is_ok());
        assert!(reference(&format!("a:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn the_builtin_image_cannot_be_replaced_or_removed() {
        // Refused before anything on disk is touched.
        let dirs = LabDirs {
            data: PathBuf::from("/nonexistent/lab-images-test/lib"),
            run: PathBuf::from("/nonexistent/lab-images-test/run"),
        };
        let err = remove(&dirs, "busybox").unwrap_err();
        assert_eq!(
            err.to_string(),
            "busybox:latest is the built-in image and cannot be removed"
        );
        let err = import(&dirs, Path::new("/nonexistent.tar"), "busybox:1.36").unwrap_err();
        assert!(matches!(err, ImageError::BuiltIn { .. }), "{err}");
        let err = import(&dirs, Path::new("/nonexistent.tar"), "Bad").unwrap_err();
        assert!(err.to_string().contains("must be lowercase"), "{err}");
        assert!(!Path::new("/nonexistent").exists());
    }

    /// An image root with only /etc/passwd and /etc/group, under /tmp.
    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new(name: &str, passwd: Option<&str>, group: Option<&str>) -> FakeRoot {
            let root =
                std::env::temp_dir().join(format!("lab-images-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(root.join("etc")).unwrap();
            if let Some(text) = passwd {
                fs::write(root.join("etc/passwd"), text).unwrap();
            }
            if let Some(text) = group {
                fs::write(root.join("etc/group"), text).unwrap();
            }
            FakeRoot(root)
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn users_resolve_like_docker() {
        let root = FakeRoot::new(
            "users",
            Some(
                "root:x:0:0:root:/root:/bin/sh\n\
                 # a comment\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
                 app:x:1000:1001::/home/app:/bin/sh\n\
                 1234:x:42:43::/:/bin/sh\n",
            ),
            Some("root:x:0:\ntty:x:5:\nstaff:x:50:app\nnogroup:x:65534:\n"),
        );
        let lookup = |spec: &str| lookup_user(&root.0, spec).map_err(|e| e.to_string());
        assert_eq!(lookup("root"), Ok((0, 0)));
        assert_eq!(lookup("app"), Ok((1000, 1001)));
        assert_eq!(lookup("nobody"), Ok((65534, 65534)));
        // A uid in passwd takes its primary group from there.
        assert_eq!(lookup("1000"), Ok((1000, 1001)));
        // A uid absent from passwd is allowed, with group 0.
        assert_eq!(lookup("4242"), Ok((4242, 0)));
        // A name made of digits matches by name first.
        assert_eq!(lookup("1234"), Ok((42, 43)));
        assert_eq!(lookup("app:staff"), Ok((1000, 50)));
        assert_eq!(lookup("app:tty"), Ok((1000, 5)));
        assert_eq!(lookup("1000:5"), Ok((1000, 5)));
        assert_eq!(lookup("4242:777"), Ok((4242, 777)));
        assert_eq!(lookup("nobody:0"), Ok((65534, 0)));
        assert_eq!(
            lookup("ghost"),
            Err("unable to find user ghost: no matching entries in passwd file".to_string())
        );
        assert_eq!(
            lookup("app:ghosts"),
            Err("unable to find group ghosts: no matching entries in group file".to_string())
        );
        for bad in ["", ":5", "app:", "2147483648", "app:99999999999"] {
            let err = lookup(bad).expect_err(bad);
            assert!(err.starts_with("invalid user"), "{bad}: {err}");
        }
    }

    #[test]
    fn users_without_passwd_file() {
        let root = FakeRoot::new("nopasswd", None, None);
        assert_eq!(lookup_user(&root.0, "0").unwrap(), (0, 0));
        assert_eq!(lookup_user(&root.0, "1000:1000").unwrap(), (1000, 1000));
        let err = lookup_user(&root.0, "root").unwrap_err().to_string();
        assert_eq!(
            err,
            "unable to find user root: no matching entries in passwd file"
        );
    }
}
