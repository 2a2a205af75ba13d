//! Read-only file trees a build takes files from: the build context (a
//! plain directory) and an image or stage seen as overlay would show it
//! (its layer directories merged, with overlay's rules for whiteouts and
//! opaque directories), without mounting anything.
//!
//! Paths are relative, `/`-separated, `""` for the root. Symlinks are
//! never followed by a lookup; [`resolve_in_scope`] follows them the way
//! Docker does for COPY, never leaving the tree's root.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Devices, FIFOs and sockets: not copied.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: EntryKind,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
}

impl Meta {
    pub fn of(meta: &fs::Metadata) -> Meta {
        let t = meta.file_type();
        Meta {
            kind: if t.is_dir() {
                EntryKind::Dir
            } else if t.is_file() {
                EntryKind::File
            } else if t.is_symlink() {
                EntryKind::Symlink
            } else {
                EntryKind::Other
            },
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

/// A tree to read from.
pub trait Tree {
    fn lstat(&self, rel: &str) -> io::Result<Option<Meta>>;
    /// The names in a directory, sorted.
    fn list(&self, rel: &str) -> io::Result<Vec<String>>;
    /// Where the entry's bytes are on disk (for open and readlink).
    fn host_path(&self, rel: &str) -> io::Result<Option<PathBuf>>;

    fn open(&self, rel: &str) -> io::Result<File> {
        match self.host_path(rel)? {
            Some(path) => File::open(path),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    fn read_link(&self, rel: &str) -> io::Result<PathBuf> {
        match self.host_path(rel)? {
            Some(path) => fs::read_link(path),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }
}

pub fn join(parent: &str, name: &str) -> String {
    if name.is_empty() {
        parent.to_string()
    } else if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// A plain directory.
#[derive(Debug, Clone)]
pub struct DirTree {
    pub root: PathBuf,
}

impl Tree for DirTree {
    fn lstat(&self, rel: &str) -> io::Result<Option<Meta>> {
        match fs::symlink_metadata(self.root.join(rel)) {
            Ok(meta) => Ok(Some(Meta::of(&meta))),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, rel: &str) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = fs::read_dir(self.root.join(rel))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<_>>()?;
        names.sort();
        Ok(names)
    }

    fn host_path(&self, rel: &str) -> io::Result<Option<PathBuf>> {
        Ok(Some(self.root.join(rel)))
    }
}

/// Layer directories merged as overlay merges them, top layer first.
#[derive(Debug, Clone)]
pub struct MergedView {
    pub layers: Vec<PathBuf>,
}

/// An entry in the merged view: the layers where it is a directory being
/// merged (top first), or the one layer that has it otherwise.
struct Found {
    layers: Vec<usize>,
    meta: Meta,
}

pub fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// overlay's mark on a directory that hides everything below it
/// (`user.` when the layers were unpacked without root).
pub fn is_opaque(path: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| get_xattr(path, name).as_deref() == Some(b"y"))
}

/// An extended attribute, not following symlinks.
pub fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    let n = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

fn lstat_path(path: &Path) -> io::Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl MergedView {
    /// The view of an image's layers, given bottom first (as an image
    /// lists them).
    pub fn of_layers(bottom_first: &[PathBuf]) -> MergedView {
        MergedView {
            layers: bottom_first.iter().rev().cloned().collect(),
        }
    }

    fn find(&self, rel: &str) -> io::Result<Option<Found>> {
        let mut layers: Vec<usize> = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            layers.push(i);
            if is_opaque(layer) {
                break;
            }
        }
        let mut meta = Meta {
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            mtime_nsec: 0,
        };
        if let Some(top) = self.layers.first() {
            if let Some(m) = lstat_path(top)? {
                meta = Meta::of(&m);
            }
        }
        let mut path = String::new();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            if meta.kind != EntryKind::Dir {
                return Ok(None);
            }
            path = join(&path, part);
            let mut next: Vec<usize> = Vec::new();
            let mut next_meta = None;
            for &i in &layers {
                let host = self.layers[i].join(&path);
                let Some(m) = lstat_path(&host)? else {
                    continue;
                };
                if is_whiteout(&m) {
                    break;
                }
                if m.is_dir() {
                    if next.is_empty() {
                        next_meta = Some(Meta::of(&m));
                    }
                    next.push(i);
                    if is_opaque(&host) {
                        break;
                    }
                } else {
                    // A file ends the lookup; below a directory it is hidden.
                    if next.is_empty() {
                        next.push(i);
                        next_meta = Some(Meta::of(&m));
                    }
                    break;
                }
            }
            match next_meta {
                Some(m) => {
                    meta = m;
                    layers = next;
                }
                None => return Ok(None),
            }
        }
        Ok(Some(Found { layers, meta }))
    }
}

impl Tree for MergedView {
    fn lstat(&self, rel: &str) -> io::Result<Option<Meta>> {
        Ok(self.find(rel)?.map(|f| f.meta))
    }

    fn list(&self, rel: &str) -> io::Result<Vec<String>> {
        let Some(found) = self.find(rel)? else {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        };
        if found.meta.kind != EntryKind::Dir {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        let mut seen = std::collections::BTreeMap::new();
        for &i in &found.layers {
            let dir = self.layers[i].join(rel);
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if seen.contains_key(&name) {
                    continue;
                }
                let whiteout = entry.metadata().map(|m| is_whiteout(&m)).unwrap_or(false);
                seen.insert(name, !whiteout);
            }
        }
        Ok(seen
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(n, _)| n)
            .collect())
    }

    fn host_path(&self, rel: &str) -> io::Result<Option<PathBuf>> {
        Ok(self
            .find(rel)?
            .and_then(|f| f.layers.first().map(|&i| self.layers[i].join(rel))))
    }
}

/// Resolves `path` inside `tree` following every symlink on the way, with
/// `..` and absolute link targets kept inside the root (Docker's
/// FollowSymlinkInScope). With `follow_last` false the last component is
/// not followed. Returns the clean relative path (it may not exist).
pub fn resolve_in_scope(tree: &dyn Tree, path: &str, follow_last: bool) -> io::Result<String> {
    let mut pending: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .rev()
        .map(str::to_string)
        .collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = join(&resolved.join("/"), &part);
        let last = pending.is_empty();
        match tree.lstat(&candidate)? {
            Some(meta) if meta.kind == EntryKind::Symlink && (follow_last || !last) => {
                links += 1;
                if links > 255 {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = tree.read_link(&candidate)?;
                let target = target.to_string_lossy();
                if target.starts_with('/') {
                    resolved.clear();
                }
                for p in target
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .rev()
                {
                    pending.push(p.to_string());
                }
            }
            _ => resolved.push(part),
        }
    }
    Ok(resolved.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn whiteout(path: &Path) -> bool {
        nix::sys::stat::mknod(
            path,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .is_ok()
    }

    #[test]
    fn merged_view_follows_overlay_s_rules() {
        let dir = tempfile::tempdir().unwrap();
        let (low, high) = (dir.path().join("low"), dir.path().join("high"));
        for d in ["etc", "var/lib", "opt"] {
            fs::create_dir_all(low.join(d)).unwrap();
        }
        fs::write(low.join("etc/passwd"), "root").unwrap();
        fs::write(low.join("etc/motd"), "old").unwrap();
        fs::write(low.join("var/lib/x"), "x").unwrap();
        fs::create_dir_all(high.join("etc")).unwrap();
        fs::write(high.join("etc/motd"), "new").unwrap();
        fs::write(high.join("opt"), "a file over a directory").unwrap();
        let view = MergedView::of_layers(&[low.clone(), high.clone()]);
        assert_eq!(view.list("etc").unwrap(), vec!["motd", "passwd"]);
        assert_eq!(
            fs::read_to_string(view.host_path("etc/motd").unwrap().unwrap()).unwrap(),
            "new"
        );
        assert_eq!(view.lstat("opt").unwrap().unwrap().kind, EntryKind::File);
        assert!(view.lstat("opt/anything").unwrap().is_none());
        assert_eq!(view.list("").unwrap(), vec!["etc", "opt", "var"]);
        if whiteout(&high.join("etc/passwd")) {
            assert_eq!(view.list("etc").unwrap(), vec!["motd"]);
            assert!(view.lstat("etc/passwd").unwrap().is_none());
        } else {
            println!("not root: no whiteout device, that part is skipped");
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("real/dir")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("../../../real/dir", root.join("real/up")).unwrap();
        symlink("/etc/passwd", root.join("escape")).unwrap();
        let tree = DirTree {
            root: root.to_path_buf(),
        };
        assert_eq!(
            resolve_in_scope(&tree, "abs/dir", true).unwrap(),
            "real/dir"
        );
        assert_eq!(
            resolve_in_scope(&tree, "real/up", true).unwrap(),
            "real/dir"
        );
        assert_eq!(
            resolve_in_scope(&tree, "escape", true).unwrap(),
            "etc/passwd"
        );
        assert_eq!(resolve_in_scope(&tree, "escape", false).unwrap(), "escape");
        assert_eq!(resolve_in_scope(&tree, "../../x", true).unwrap(), "x");
    }
}
