//! Unpacking a tar stream into a directory, safely and in linear time.
//!
//! Every entry is written relative to an open directory descriptor, never
//! through a path from the root: a cursor keeps the directory of the last
//! entry open and moves to the next one by `..` and single components, so
//! a tree 2,000 directories deep costs 2,000 steps, not 2,000 walks of
//! 1,000 components each (and its paths may be longer than PATH_MAX).
//! Components are opened with `O_NOFOLLOW`; a symlink in an entry's path
//! is resolved by the kernel with `openat2(RESOLVE_IN_ROOT)`, as if the
//! image's root were `/`, so no entry can land outside it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{self, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid, UnlinkatFlags};

use super::ImportLimits;

/// What an unpack did.
#[derive(Debug, Default)]
pub(super) struct Unpacked {
    /// Device nodes and FIFOs, not created.
    pub skipped_special: u64,
    /// The bytes of the regular files written (a hard link adds none).
    pub size_bytes: u64,
}

/// Why an unpack stopped.
#[derive(Debug)]
pub(super) enum Failure {
    /// The stream itself (truncated, corrupt, not tar).
    Read(io::Error),
    /// An entry or a hard link target with `..`: refused as a whole.
    Unsafe(PathBuf),
    /// Writing one entry failed.
    Entry { entry: PathBuf, source: io::Error },
    /// More entries than `limits.max_entries`.
    TooManyEntries,
    /// More file content than `limits.max_bytes`.
    TooLarge,
}

/// An entry's mode, owner and time (a directory's are applied last).
struct Meta {
    path: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
}

/// Unpacks every entry of `archive` into the (empty, existing) directory
/// `root`, keeping modes, owners and modification times.
pub(super) fn unpack<R: Read>(
    archive: &mut tar::Archive<R>,
    root: &Path,
    limits: &ImportLimits,
) -> Result<Unpacked, Failure> {
    let mut cursor = Cursor::open(root).map_err(|source| Failure::Entry {
        entry: PathBuf::from("."),
        source,
    })?;
    let mut done = Unpacked::default();
    let mut entries = 0u64;
    let mut directories: Vec<Meta> = Vec::new();
    let mut root_meta: Option<Meta> = None;
    for entry in archive.entries().map_err(Failure::Read)? {
        let mut entry = entry.map_err(Failure::Read)?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(Failure::TooManyEntries);
        }
        let path = entry.path().map_err(Failure::Read)?.into_owned();
        let names = components(&path).ok_or_else(|| Failure::Unsafe(path.clone()))?;
        let header = entry.header();
        let kind = header.entry_type();
        let fail = |source: io::Error| Failure::Entry {
            entry: path.clone(),
            source,
        };
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            done.skipped_special += 1;
            continue;
        }
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        }
        let meta = Meta {
            path: path.clone(),
            mode: header.mode().map_err(Failure::Read)? & 0o7777,
            uid: u32::try_from(header.uid().map_err(Failure::Read)?)
                .map_err(|e| fail(io::Error::other(e)))?,
            gid: u32::try_from(header.gid().map_err(Failure::Read)?)
                .map_err(|e| fail(io::Error::other(e)))?,
            mtime: header.mtime().map_err(Failure::Read)?,
        };
        // Old (pre-POSIX) archives mark directories by a trailing slash.
        let is_dir = kind.is_dir()
            || (header.as_ustar().is_none()
                && kind.is_file()
                && entry.path_bytes().ends_with(b"/"));
        let Some((name, parent)) = names.split_last() else {
            // "./": the root itself; its mode and owner come last.
            root_meta = Some(meta);
            continue;
        };
        if is_dir {
            cursor.enter(parent).map_err(fail)?;
            make_dir(cursor.fd(), name).map_err(fail)?;
            // Mode, owner and time last, deepest first, as tar does: a
            // read-only directory must not stop its contents from being
            // written, and writing them would change its time.
            directories.push(meta);
        } else if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(Failure::Read)?
                .ok_or_else(|| fail(io::Error::other("a symlink without a target")))?;
            cursor.enter(parent).map_err(fail)?;
            make_symlink(cursor.fd(), name, &target, &meta).map_err(fail)?;
        } else if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(Failure::Read)?
                .ok_or_else(|| fail(io::Error::other("a hard link without a target")))?;
            let target_names =
                components(&target).ok_or_else(|| Failure::Unsafe(target.to_path_buf()))?;
            let Some((target_name, target_parent)) = target_names.split_last() else {
                return Err(fail(io::Error::other("a hard link to the root")));
            };
            let source_dir = cursor.resolve(target_parent).map_err(fail)?;
            cursor.enter(parent).map_err(fail)?;
            remove_non_dir(cursor.fd(), name).map_err(fail)?;
            let source_fd = source_dir.as_ref().map_or(cursor.root(), |d| d.as_raw_fd());
            unistd::linkat(
                Some(source_fd),
                *target_name,
                Some(cursor.fd()),
                *name,
                AtFlags::empty(),
            )
            .map_err(|e| fail(e.into()))?;
        } else {
            // Regular files, and (as POSIX says) any type we do not know.
            let size = entry.header().entry_size().map_err(Failure::Read)?;
            if done.size_bytes.saturating_add(size) > limits.max_bytes {
                return Err(Failure::TooLarge);
            }
            cursor.enter(parent).map_err(fail)?;
            let written = write_file(cursor.fd(), name, &mut entry, &meta).map_err(fail)?;
            done.size_bytes += written;
            if done.size_bytes > limits.max_bytes {
                return Err(Failure::TooLarge);
            }
        }
    }
    // Children sort after their parents: reversed, deepest first.
    directories.sort_by(|a, b| b.path.as_os_str().cmp(a.path.as_os_str()));
    for meta in directories.iter().chain(&root_meta) {
        let names = components(&meta.path).unwrap_or_default();
        let fail = |source: io::Error| Failure::Entry {
            entry: meta.path.clone(),
            source,
        };
        cursor.enter(&names).map_err(fail)?;
        set_metadata(cursor.fd(), meta).map_err(fail)?;
    }
    Ok(done)
}

/// The entry's path as names below the root: a leading `/` and `.` are
/// dropped; `None` for `..`, which could climb out.
fn components(path: &Path) -> Option<Vec<&OsStr>> {
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => names.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(names)
}

/// An open directory inside the root, and the names that lead to it.
struct Cursor {
    root: OwnedFd,
    dir: OwnedFd,
    path: Vec<OsString>,
    /// Every step was a real directory (no symlink), so `..` leads back
    /// along `path`.
    real: bool,
}

impl Cursor {
    fn open(root: &Path) -> io::Result<Cursor> {
        let root = own(fcntl::open(root, dir_flags(), Mode::empty())?);
        let dir = root.try_clone()?;
        Ok(Cursor {
            root,
            dir,
            path: Vec::new(),
            real: true,
        })
    }

    fn fd(&self) -> RawFd {
        self.dir.as_raw_fd()
    }

    fn root(&self) -> RawFd {
        self.root.as_raw_fd()
    }

    /// Moves to the directory `names` below the root, creating missing
    /// ones (mode 0755; an entry of their own sets it later).
    fn enter(&mut self, names: &[&OsStr]) -> io::Result<()> {
        let common = self
            .path
            .iter()
            .zip(names)
            .take_while(|(have, want)| have.as_os_str() == **want)
            .count();
        if common < self.path.len() {
            if self.real {
                while self.path.len() > common {
                    self.dir = open_dir(self.fd(), OsStr::new(".."))?;
                    self.path.pop();
                }
            } else {
                // Reached through a symlink: `..` is not where we came from.
                self.dir = self.root.try_clone()?;
                self.path.clear();
                self.real = true;
            }
        }
        for name in &names[self.path.len()..] {
            self.dir = match open_dir(self.fd(), name) {
                Ok(dir) => dir,
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                    make_dir(self.fd(), name)?;
                    open_dir(self.fd(), name)?
                }
                // O_NOFOLLOW|O_DIRECTORY on a symlink: ELOOP or ENOTDIR.
                Err(err)
                    if matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
                        && is_symlink(self.fd(), name) =>
                {
                    self.real = false;
                    let mut through: Vec<&OsStr> =
                        self.path.iter().map(|p| p.as_os_str()).collect();
                    through.push(name);
                    in_root(self.root(), &through)?
                }
                Err(err) => return Err(err),
            };
            self.path.push(name.to_os_string());
        }
        Ok(())
    }

    /// The directory `names` below the root, resolved as if the root were
    /// `/`; `None` for the root itself.
    fn resolve(&self, names: &[&OsStr]) -> io::Result<Option<OwnedFd>> {
        if names.is_empty() {
            return Ok(None);
        }
        in_root(self.root(), names).map(Some)
    }
}

fn own(fd: RawFd) -> OwnedFd {
    // Safety: a descriptor nix just opened for us and nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC
}

/// One component, never following a symlink.
fn open_dir(parent: RawFd, name: &OsStr) -> io::Result<OwnedFd> {
    let fd = fcntl::openat(
        Some(parent),
        name,
        dir_flags() | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    Ok(own(fd))
}

fn is_symlink(parent: RawFd, name: &OsStr) -> bool {
    stat::fstatat(Some(parent), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK)
}

/// `names` resolved by the kernel with the root as `/`: absolute symlinks
/// and `..` cannot leave it.
fn in_root(root: RawFd, names: &[&OsStr]) -> io::Result<OwnedFd> {
    let mut path = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            path.push(b'/');
        }
        path.extend_from_slice(name.as_bytes());
    }
    let how = OpenHow::new()
        .flags(dir_flags())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match fcntl::openat2(root, OsStr::from_bytes(&path), how) {
        Ok(fd) => Ok(own(fd)),
        Err(Errno::ENOSYS) => Err(io::Error::other(
            "a path through a symlink needs openat2 (linux 5.6 or later)",
        )),
        Err(errno) => Err(errno.into()),
    }
}

/// `mkdir`, keeping a directory that is there, replacing anything else.
fn make_dir(parent: RawFd, name: &OsStr) -> io::Result<()> {
    let mode = Mode::from_bits_truncate(0o755);
    match stat::mkdirat(Some(parent), name, mode) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => {
            let existing = stat::fstatat(Some(parent), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
            if SFlag::from_bits_truncate(existing.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
                return Ok(());
            }
            unistd::unlinkat(Some(parent), name, UnlinkatFlags::NoRemoveDir)?;
            Ok(stat::mkdirat(Some(parent), name, mode)?)
        }
        Err(errno) => Err(errno.into()),
    }
}

/// Makes room for a new file, symlink or hard link: a later entry
/// replaces an earlier one, but never a directory.
fn remove_non_dir(parent: RawFd, name: &OsStr) -> io::Result<()> {
    match unistd::unlinkat(Some(parent), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) => Err(io::Error::other(
            "a directory of the same name is already there",
        )),
        Err(errno) => Err(errno.into()),
    }
}

fn write_file(parent: RawFd, name: &OsStr, data: &mut impl Read, meta: &Meta) -> io::Result<u64> {
    remove_non_dir(parent, name)?;
    let fd = fcntl::openat(
        Some(parent),
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    let mut file = File::from(own(fd));
    let written = io::copy(data, &mut file)?;
    set_metadata(file.as_raw_fd(), meta)?;
    Ok(written)
}

fn make_symlink(parent: RawFd, name: &OsStr, target: &Path, meta: &Meta) -> io::Result<()> {
    remove_non_dir(parent, name)?;
    unistd::symlinkat(target, Some(parent), name)?;
    unistd::fchownat(
        Some(parent),
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    let time = TimeSpec::new(meta.mtime as i64, 0);
    stat::utimensat(
        Some(parent),
        name,
        &time,
        &time,
        UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

/// Owner first: chown clears the setuid and setgid bits that chmod sets.
fn set_metadata(fd: RawFd, meta: &Meta) -> io::Result<()> {
    unistd::fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )?;
    stat::fchmod(fd, Mode::from_bits_truncate(meta.mode))?;
    let time = TimeSpec::new(meta.mtime as i64, 0);
    stat::futimens(fd, &time, &time)?;
    Ok(())
}

/// At most this many directories are open at once while removing a tree.
const MAX_OPEN: usize = 64;

/// Removes the tree at `path`, never following a symlink, in linear time
/// and with at most [`MAX_OPEN`] directories open however deep it is: a
/// parent further up is closed, and opened again through `..` once its
/// child is gone (its listing then starts over, with only what is left).
pub(super) fn remove_tree(path: &Path) -> io::Result<()> {
    use nix::dir::{Dir, OwningIter, Type};
    let top = match fcntl::open(path, dir_flags() | OFlag::O_NOFOLLOW, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::ENOTDIR | Errno::ELOOP) => return std::fs::remove_file(path),
        Err(errno) => return Err(errno.into()),
    };
    // (from_fd closes the descriptor when it fails.)
    let open = |fd: RawFd| -> io::Result<OwningIter> { Ok(Dir::from_fd(fd)?.into_iter()) };
    // Each level: its listing (None while closed) and its name in the parent.
    let mut levels: Vec<(Option<OwningIter>, OsString)> = vec![(Some(open(top)?), OsString::new())];
    while let Some((listing, _)) = levels.last_mut() {
        let listing = listing.as_mut().expect("the deepest level is open");
        let fd = listing.as_raw_fd();
        match listing.next() {
            Some(entry) => {
                let entry = entry?;
                let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
                if name == "." || name == ".." {
                    continue;
                }
                let is_dir = match entry.file_type() {
                    Some(kind) => kind == Type::Directory,
                    None => stat::fstatat(Some(fd), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| {
                            SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
                        }),
                };
                if !is_dir {
                    match unistd::unlinkat(Some(fd), name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
                        Ok(()) | Err(Errno::ENOENT) => {}
                        Err(errno) => return Err(errno.into()),
                    }
                    continue;
                }
                let child = fcntl::openat(
                    Some(fd),
                    name.as_os_str(),
                    dir_flags() | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                )?;
                levels.push((Some(open(child)?), name));
                if levels.len() > MAX_OPEN {
                    let far = levels.len() - MAX_OPEN - 1;
                    levels[far].0 = None;
                }
            }
            None => {
                let (listing, name) = levels.pop().expect("a level");
                let listing = listing.expect("the deepest level is open");
                let Some((parent, _)) = levels.last_mut() else {
                    drop(listing);
                    return std::fs::remove_dir(path);
                };
                if parent.is_none() {
                    let fd = fcntl::openat(
                        Some(listing.as_raw_fd()),
                        "..",
                        dir_flags() | OFlag::O_NOFOLLOW,
                        Mode::empty(),
                    )?;
                    *parent = Some(open(fd)?);
                }
                drop(listing);
                let parent_fd = parent.as_ref().expect("just opened").as_raw_fd();
                unistd::unlinkat(Some(parent_fd), name.as_os_str(), UnlinkatFlags::RemoveDir)?;
            }
        }
    }
    Ok(())
}
