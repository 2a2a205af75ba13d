//! Writing COPY's and ADD's files, and WORKDIR's directory, into a fresh
//! writable layer: an upper directory over the stage's layers, filled
//! without mounting anything, as overlay would fill it. A directory that
//! a new file goes into is copied up first (created in the upper with the
//! lower's mode, owner and time), so the layer records it as it was.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};

use super::context::{self, Sources, Walked};
use super::tree::{join, resolve_in_scope, EntryKind, MergedView, Meta, Tree};

/// The upper directory of a step and the view through it.
pub struct Upper {
    pub dir: PathBuf,
    /// The upper on top of the stage's layers.
    pub view: MergedView,
}

/// How copied files are owned and moded.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// `--chown`, resolved.
    pub owner: Option<(u32, u32)>,
    /// Keep the source's owners when no `--chown` (COPY --from, archives);
    /// otherwise files belong to 0:0, as Docker makes context files.
    pub keep_owner: bool,
    /// `--chmod`, octal.
    pub chmod: Option<u32>,
}

fn err(what: impl std::fmt::Display, e: io::Error) -> String {
    format!("{what}: {e}")
}

impl Upper {
    /// `lowers` top first.
    pub fn new(upper: &Path, lowers: &[PathBuf]) -> Upper {
        let mut layers = vec![upper.to_path_buf()];
        layers.extend(lowers.iter().cloned());
        Upper {
            dir: upper.to_path_buf(),
            view: MergedView { layers },
        }
    }

    fn host(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Makes sure every directory leading to `rel` (and `rel` itself when
    /// `including`) is in the upper, copied up from below if need be.
    fn copy_up_parents(&self, rel: &str, including: bool) -> Result<(), String> {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let count = if including {
            parts.len()
        } else {
            parts.len().saturating_sub(1)
        };
        let mut path = String::new();
        for part in &parts[..count] {
            path = join(&path, part);
            let host = self.host(&path);
            if fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let meta = self
                .view
                .lstat(&path)
                .map_err(|e| err(&path, e))?
                .ok_or_else(|| format!("/{path} does not exist"))?;
            if meta.kind != EntryKind::Dir {
                return Err(format!("/{path} is not a directory"));
            }
            fs::create_dir(&host).map_err(|e| err(format!("mkdir /{path}"), e))?;
            apply(&host, &meta, (meta.uid, meta.gid), meta.mode)?;
        }
        Ok(())
    }

    /// `mkdir -p`: creates what is missing of `rel` with `owner` and 0755;
    /// false when it all existed (nothing changed).
    pub fn mkdir_all(&self, rel: &str, owner: (u32, u32)) -> Result<bool, String> {
        let rel = resolve_in_scope(&self.view, rel, true).map_err(|e| err(rel, e))?;
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let mut path = String::new();
        let mut changed = false;
        for part in parts {
            path = join(&path, part);
            match self.view.lstat(&path).map_err(|e| err(&path, e))? {
                Some(m) if m.kind == EntryKind::Dir => continue,
                Some(_) => return Err(format!("mkdir /{path}: not a directory")),
                None => {}
            }
            self.copy_up_parents(&path, false)?;
            let host = self.host(&path);
            fs::create_dir(&host).map_err(|e| err(format!("mkdir /{path}"), e))?;
            let meta = Meta::of(&fs::symlink_metadata(&host).map_err(|e| err(&path, e))?);
            apply(&host, &meta, owner, 0o755)?;
            changed = true;
        }
        Ok(changed)
    }

    /// COPY or ADD of resolved sources to `dest` (absolute, expanded).
    pub fn copy(
        &self,
        from: &context::From<'_>,
        sources: &Sources,
        dest: &str,
        options: CopyOptions,
        what: &str,
    ) -> Result<(), String> {
        let wants_dir = dest.ends_with('/') || dest.ends_with("/.");
        if sources.many && !wants_dir {
            return Err(format!("When using {what} with more than one source file, the destination must be a directory and end with a /"));
        }
        let dest_rel = resolve_in_scope(&self.view, dest, true).map_err(|e| err(dest, e))?;
        let existing = self.view.lstat(&dest_rel).map_err(|e| err(dest, e))?;
        let dest_is_dir = wants_dir || existing.as_ref().is_some_and(|m| m.kind == EntryKind::Dir);
        let dir_owner = options.owner.unwrap_or((0, 0));
        for source in &sources.sources {
            let target = context::target(&dest_rel, dest_is_dir, source);
            let target = target.to_string_lossy().into_owned();
            if source.meta.kind == EntryKind::Dir {
                self.mkdir_all(&target, dir_owner)?;
                let entries = context::walk(from, source).map_err(|e| err(&source.rel, e))?;
                for entry in entries.iter().filter(|e| !e.rel.is_empty()) {
                    let to = join(&target, &entry.rel);
                    // A directory the ignore file left out still holds
                    // what an exception took back in.
                    if let Some((parent, _)) = to.rsplit_once('/') {
                        if !self.host(parent).is_dir() {
                            self.mkdir_all(parent, dir_owner)?;
                        }
                    }
                    self.write(from, &source.rel, entry, &to, options)?;
                }
            } else {
                if dest_is_dir {
                    self.mkdir_all(&dest_rel, dir_owner)?;
                } else if let Some((parent, _)) = target.rsplit_once('/') {
                    self.mkdir_all(parent, dir_owner)?;
                }
                let entry = Walked {
                    rel: String::new(),
                    meta: source.meta.clone(),
                };
                self.write(from, &source.rel, &entry, &target, options)?;
            }
        }
        Ok(())
    }

    fn write(
        &self,
        from: &context::From<'_>,
        base: &str,
        entry: &Walked,
        target: &str,
        options: CopyOptions,
    ) -> Result<(), String> {
        let meta = &entry.meta;
        let owner = options.owner.unwrap_or(if options.keep_owner {
            (meta.uid, meta.gid)
        } else {
            (0, 0)
        });
        let mode = options.chmod.unwrap_or(meta.mode);
        let full = join(base, &entry.rel);
        self.copy_up_parents(target, false)?;
        let host = self.host(target);
        let below = self.view.lstat(target).map_err(|e| err(target, e))?;
        let below_dir = below.as_ref().is_some_and(|m| m.kind == EntryKind::Dir);
        match meta.kind {
            EntryKind::Dir => {
                if !below_dir {
                    remove_in_upper(&host)?;
                    fs::create_dir(&host).map_err(|e| err(format!("mkdir /{target}"), e))?;
                } else {
                    self.copy_up_parents(target, true)?;
                }
                apply(&host, meta, owner, mode)
            }
            EntryKind::File | EntryKind::Symlink if below_dir => Err(format!(
                "cannot overwrite directory /{target} with non-directory {full}"
            )),
            EntryKind::File => {
                remove_in_upper(&host)?;
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&host)
                    .map_err(|e| err(format!("create /{target}"), e))?;
                let mut input = from.tree.open(&full).map_err(|e| err(&full, e))?;
                io::copy(&mut input, &mut out).map_err(|e| err(format!("copy {full}"), e))?;
                drop(out);
                apply(&host, meta, owner, mode)
            }
            EntryKind::Symlink => {
                remove_in_upper(&host)?;
                let link = from.tree.read_link(&full).map_err(|e| err(&full, e))?;
                symlink(&link, &host).map_err(|e| err(format!("symlink /{target}"), e))?;
                apply(&host, meta, owner, mode)
            }
            // Devices, FIFOs and sockets are not copied (as Docker's COPY).
            EntryKind::Other => Ok(()),
        }
    }
}

/// Removes what this step already put at `host` (a file written twice).
fn remove_in_upper(host: &Path) -> Result<(), String> {
    match fs::symlink_metadata(host) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(host).map_err(|e| err(host.display(), e)),
        Ok(_) => fs::remove_file(host).map_err(|e| err(host.display(), e)),
        Err(_) => Ok(()),
    }
}

/// Owner, mode (not for symlinks) and modification time.
fn apply(host: &Path, meta: &Meta, owner: (u32, u32), mode: u32) -> Result<(), String> {
    fchownat(
        None,
        host,
        Some(Uid::from_raw(owner.0)),
        Some(Gid::from_raw(owner.1)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| err(format!("chown {}", host.display()), e.into()))?;
    if meta.kind != EntryKind::Symlink {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(host, fs::Permissions::from_mode(mode))
            .map_err(|e| err(format!("chmod {}", host.display()), e))?;
    }
    let time = TimeSpec::new(meta.mtime, meta.mtime_nsec);
    utimensat(None, host, &time, &time, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| err(format!("set the times of {}", host.display()), e.into()))
}

/// `--chmod=0755`: octal only, as Docker.
pub fn parse_chmod(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            format!("invalid chmod parameter: {text:?}; it must be an octal mode such as 0755")
        })
}

/// True when the bytes start a gzip stream or a tar (ustar) archive:
/// what ADD unpacks. Other compressions are reported, not guessed at.
pub fn archive_kind(head: &[u8]) -> Archive {
    if head.starts_with(&[0x1f, 0x8b]) {
        Archive::Gzip
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Archive::Tar
    } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Archive::Unsupported
    } else {
        Archive::None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    None,
    Tar,
    Gzip,
    Unsupported,
}
