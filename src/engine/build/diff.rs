//! A step's layer is the diff its writable (upper) directory holds: what
//! overlayfs put there while the step ran. This module turns an upper
//! directory into a layer tar in the image spec's format, and serves
//! `docker diff`, `commit` and `export` with the same machinery.
//!
//! - overlay's whiteout (a 0:0 character device) becomes an empty file
//!   `.wh.NAME`; an opaque directory (`trusted.overlay.opaque=y`) gets a
//!   `.wh..wh..opq` entry right after its own;
//! - entries are written depth first in name order, with numeric owners,
//!   modes and no user or group names, so the same tree gives the same
//!   bytes; with SOURCE_DATE_EPOCH, no time is later than it;
//! - `security.capability` is kept (as a PAX record); overlay's own
//!   attributes never are.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tar::{EntryType, Header};

use super::error::{io, BuildError, Result};
use super::tree::{get_xattr, is_opaque, is_whiteout, join, EntryKind, MergedView, Tree};
use crate::engine::images::{ImageStore, StoredLayer};

/// What a layer tar holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStats {
    pub entries: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
}

/// True when the upper directory holds nothing: the step changed nothing.
pub fn is_unchanged(upper: &Path) -> Result<bool> {
    Ok(fs::read_dir(upper)
        .map_err(io("read", upper))?
        .next()
        .is_none())
}

/// Stores the upper directory as a layer: None when it changed nothing.
pub fn layer_from_upper(
    store: &ImageStore,
    upper: &Path,
    epoch: Option<i64>,
) -> Result<Option<(StoredLayer, LayerStats)>> {
    if is_unchanged(upper)? {
        return Ok(None);
    }
    let mut writer = store.layer_writer()?;
    let stats = write_tar(upper, &mut writer, epoch)?;
    Ok(Some((writer.finish()?, stats)))
}

fn sorted_entries(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(io("read", dir))?
        .collect::<std::io::Result<_>>()
        .map_err(io("read", dir))?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

fn clamp(mtime: i64, epoch: Option<i64>) -> u64 {
    let t = epoch.map_or(mtime, |e| mtime.min(e));
    t.max(0) as u64
}

fn header(kind: EntryType, meta: &fs::Metadata, epoch: Option<i64>) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid() as u64);
    h.set_gid(meta.gid() as u64);
    h.set_mtime(clamp(meta.mtime(), epoch));
    h.set_size(0);
    h
}

/// Writes `upper` as a layer tar into `out`.
pub fn write_tar<W: Write>(upper: &Path, out: W, epoch: Option<i64>) -> Result<LayerStats> {
    let mut builder = tar::Builder::new(out);
    let mut stats = LayerStats::default();
    let mut links = HashMap::new();
    append_dir(&mut builder, upper, "", epoch, &mut stats, &mut links)?;
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io("write the layer of", upper))?;
    Ok(stats)
}

fn append_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &Path,
    prefix: &str,
    epoch: Option<i64>,
    stats: &mut LayerStats,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<()> {
    for entry in sorted_entries(dir)? {
        let path = entry.path();
        let name = join(prefix, &entry.file_name().to_string_lossy());
        let meta = fs::symlink_metadata(&path).map_err(io("stat", &path))?;
        let failed = io("add to the layer", &path);
        let kind = meta.file_type();
        for refused in ["trusted.overlay.redirect", "trusted.overlay.metacopy"] {
            if get_xattr(&path, refused).is_some() {
                return Err(BuildError::Usage(format!(
                    "{} has {refused}: the overlay was mounted with redirect_dir or metacopy, so its upper directory is not a complete diff; mount it with redirect_dir=off,metacopy=off",
                    path.display()
                )));
            }
        }
        if is_whiteout(&meta) {
            let (parent, base) = match name.rsplit_once('/') {
                Some((p, b)) => (format!("{p}/"), b),
                None => (String::new(), name.as_str()),
            };
            let mut h = header(EntryType::Regular, &meta, epoch);
            h.set_mode(0o600);
            builder
                .append_data(&mut h, format!("{parent}.wh.{base}"), io::empty())
                .map_err(failed)?;
            stats.entries += 1;
            stats.whiteouts += 1;
            continue;
        }
        if let Some(cap) = get_xattr(&path, "security.capability") {
            builder
                .append_pax_extensions([("SCHILY.xattr.security.capability", cap.as_slice())])
                .map_err(io("add to the layer", &path))?;
        }
        stats.entries += 1;
        if kind.is_dir() {
            let mut h = header(EntryType::Directory, &meta, epoch);
            builder
                .append_data(&mut h, format!("{name}/"), io::empty())
                .map_err(failed)?;
            if is_opaque(&path) {
                let mut h = header(EntryType::Regular, &meta, epoch);
                h.set_mode(meta.mode() & 0o777);
                builder
                    .append_data(&mut h, format!("{name}/.wh..wh..opq"), io::empty())
                    .map_err(io("add to the layer", &path))?;
                stats.entries += 1;
                stats.opaque_dirs += 1;
            }
            append_dir(builder, &path, &name, epoch, stats, links)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&path).map_err(io("read the link", &path))?;
            let mut h = header(EntryType::Symlink, &meta, epoch);
            builder
                .append_link(&mut h, &name, &target)
                .map_err(failed)?;
        } else if kind.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    let mut h = header(EntryType::Link, &meta, epoch);
                    builder.append_link(&mut h, &name, first).map_err(failed)?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), name.clone());
            }
            let mut h = header(EntryType::Regular, &meta, epoch);
            h.set_size(meta.len());
            let file = fs::File::open(&path).map_err(io("open", &path))?;
            builder.append_data(&mut h, &name, file).map_err(failed)?;
        } else if kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
            let t = if kind.is_fifo() {
                EntryType::Fifo
            } else if kind.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            };
            let mut h = header(t, &meta, epoch);
            let rdev = meta.rdev();
            let _ = h.set_device_major(libc::major(rdev));
            let _ = h.set_device_minor(libc::minor(rdev));
            builder
                .append_data(&mut h, &name, io::empty())
                .map_err(failed)?;
        } else {
            // Sockets belong to a running process, not to an image.
            stats.entries -= 1;
        }
    }
    Ok(())
}

/// One line of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// The path in the container, from `/`.
    pub path: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    /// Docker's letter: A, C or D.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.letter(), self.path)
    }
}

/// A container's changes (its upper directory) against the image below
/// it, sorted by path as `docker diff` prints them.
pub fn changes(upper: &Path, lower: &MergedView) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    collect_changes(upper, "", lower, &mut out)?;
    out.sort();
    Ok(out)
}

fn collect_changes(
    dir: &Path,
    prefix: &str,
    lower: &MergedView,
    out: &mut Vec<Change>,
) -> Result<()> {
    for entry in sorted_entries(dir)? {
        let path = entry.path();
        let rel = join(prefix, &entry.file_name().to_string_lossy());
        let meta = fs::symlink_metadata(&path).map_err(io("stat", &path))?;
        let before = lower.lstat(&rel).map_err(io("look up", &rel))?;
        let kind = if is_whiteout(&meta) {
            ChangeKind::Deleted
        } else if before.is_some() {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        if kind == ChangeKind::Deleted && before.is_none() {
            continue;
        }
        out.push(Change {
            path: format!("/{rel}"),
            kind,
        });
        if meta.is_dir() {
            collect_changes(&path, &rel, lower, out)?;
        }
    }
    Ok(())
}

/// `docker export`: the merged tree as one tar, no whiteouts in it.
pub fn export<W: Write>(view: &MergedView, out: W) -> Result<()> {
    let mut builder = tar::Builder::new(out);
    export_dir(view, "", &mut builder)?;
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io("write", "the export"))?;
    Ok(())
}

fn export_dir<W: Write>(view: &MergedView, dir: &str, builder: &mut tar::Builder<W>) -> Result<()> {
    for name in view.list(dir).map_err(io("read", dir))? {
        let rel = join(dir, &name);
        let Some(meta) = view.lstat(&rel).map_err(io("stat", &rel))? else {
            continue;
        };
        let mut h = Header::new_gnu();
        h.set_mode(meta.mode);
        h.set_uid(meta.uid as u64);
        h.set_gid(meta.gid as u64);
        h.set_mtime(meta.mtime.max(0) as u64);
        h.set_size(0);
        let failed = io("export", &rel);
        match meta.kind {
            EntryKind::Dir => {
                h.set_entry_type(EntryType::Directory);
                builder
                    .append_data(&mut h, format!("{rel}/"), io::empty())
                    .map_err(failed)?;
                export_dir(view, &rel, builder)?;
            }
            EntryKind::Symlink => {
                h.set_entry_type(EntryType::Symlink);
                let target = view.read_link(&rel).map_err(io("read the link", &rel))?;
                builder.append_link(&mut h, &rel, target).map_err(failed)?;
            }
            EntryKind::File => {
                h.set_entry_type(EntryType::Regular);
                h.set_size(meta.size);
                let file = view.open(&rel).map_err(io("open", &rel))?;
                builder.append_data(&mut h, &rel, file).map_err(failed)?;
            }
            EntryKind::Other => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entries(tar: &[u8]) -> Vec<(String, EntryType, u32, u64)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn an_upper_dir_becomes_a_sorted_tar_with_clamped_times() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path();
        fs::create_dir_all(upper.join("etc/b")).unwrap();
        fs::write(upper.join("etc/z"), "z").unwrap();
        fs::write(upper.join("etc/a"), "a").unwrap();
        fs::set_permissions(upper.join("etc/a"), fs::Permissions::from_mode(0o4755)).unwrap();
        std::os::unix::fs::symlink("a", upper.join("etc/link")).unwrap();
        fs::hard_link(upper.join("etc/z"), upper.join("etc/zz")).unwrap();
        let mut tar = Vec::new();
        let stats = write_tar(upper, &mut tar, Some(1000)).unwrap();
        assert_eq!(stats.entries, 6);
        let got = entries(&tar);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["etc/", "etc/a", "etc/b/", "etc/link", "etc/z", "etc/zz"]
        );
        assert_eq!(got[1].2, 0o4755);
        assert_eq!(got[5].1, EntryType::Link);
        assert!(got.iter().all(|e| e.3 == 1000));
        let mut again = Vec::new();
        write_tar(upper, &mut again, Some(1000)).unwrap();
        assert_eq!(tar, again, "the same tree gives the same bytes");
    }

    #[test]
    fn whiteouts_and_opaque_directories_in_the_image_spec_s_format() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path();
        fs::create_dir_all(upper.join("var/cache")).unwrap();
        let made = nix::sys::stat::mknod(
            &upper.join("var/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        );
        let root = nix::unistd::geteuid().is_root();
        let key = if root {
            "trusted.overlay.opaque"
        } else {
            "user.overlay.opaque"
        };
        let marked = xattr_set(&upper.join("var/cache"), key);
        if made.is_err() || !marked {
            println!("not root: whiteout devices or the opaque xattr cannot be made here; skipped");
            return;
        }
        let mut tar = Vec::new();
        let stats = write_tar(upper, &mut tar, None).unwrap();
        assert_eq!((stats.whiteouts, stats.opaque_dirs), (1, 1));
        let names: Vec<String> = entries(&tar).into_iter().map(|e| e.0).collect();
        assert_eq!(
            names,
            [
                "var/",
                "var/cache/",
                "var/cache/.wh..wh..opq",
                "var/.wh.gone"
            ]
        );
        let lower = tempfile::tempdir().unwrap();
        fs::create_dir_all(lower.path().join("var/cache")).unwrap();
        fs::write(lower.path().join("var/gone"), "x").unwrap();
        let view = MergedView::of_layers(&[lower.path().to_path_buf()]);
        let listed: Vec<String> = changes(upper, &view)
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(listed, ["C /var", "C /var/cache", "D /var/gone"]);
    }

    fn xattr_set(path: &Path, name: &str) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        let n = std::ffi::CString::new(name).unwrap();
        unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), b"y".as_ptr().cast(), 1, 0) == 0 }
    }
}
