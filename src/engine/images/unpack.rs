//! Unpacking one layer tar into an empty directory that serves as an
//! overlay lower layer, with the image spec's whiteouts converted to
//! overlay's: `.wh.NAME` becomes a 0:0 character device, `.wh..wh..opq`
//! marks its directory opaque (`trusted.overlay.opaque=y`).
//!
//! The tar is hostile until proven otherwise. Every entry is created with
//! `*at` calls relative to a directory descriptor opened with `O_NOFOLLOW`
//! one component at a time from the layer's root, so no path, symlink or
//! hardlink can reach outside it: `..` and absolute names are refused, a
//! path through a symlink or a file an earlier entry made is refused, a
//! hardlink may only name a file already in this layer, and device nodes
//! are skipped (a container gets its own /dev at run time; a layer may not
//! hand it the host's devices). The work is linear in the number of
//! entries: the directory descriptors of the current path are kept, so a
//! 2,000-deep tree costs one `openat` per level, whatever PATH_MAX says.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fstatat, futimens, mkdirat, mknodat, utimensat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use super::compression::{self, Compression};
use super::error::{ImageError, Result};
use super::verify::HashingReader;
use crate::support::error::{io_err, IoError};

/// Bounds on what one layer may contain.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    pub max_entries: u64,
    /// Bytes of the uncompressed tar stream (a gzip bomb stops here).
    pub max_bytes: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_entries: 1_000_000,
            max_bytes: 64 << 30,
        }
    }
}

/// What unpacking a layer found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// sha256 of the uncompressed tar, to compare with the config's diff_id.
    pub diff_id: String,
    /// Bytes of the uncompressed tar.
    pub size: u64,
    pub entries: u64,
    pub whiteouts: u64,
    pub opaque_dirs: u64,
    /// Entries not created, each with the reason.
    pub skipped: Vec<String>,
}

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// How many directory descriptors of the current path are kept open.
const FD_WINDOW: usize = 64;

/// Unpacks a (compressed) layer stream into `dest`, an existing empty
/// directory. The caller compares the report's diff_id with the config's
/// and discards `dest` on any error.
pub fn unpack_layer(
    reader: impl Read,
    compression: Compression,
    layer: &str,
    media_type: &str,
    dest: &Path,
    limits: UnpackLimits,
) -> Result<UnpackReport> {
    let source_error = std::cell::RefCell::new(None);
    let reader = SourceErrors {
        inner: reader,
        seen: &source_error,
    };
    let decoded = compression::decoder(reader, compression, layer, media_type)?;
    let mut hashing = HashingReader::new(decoded, limits.max_bytes);
    let root = open_dir_path(dest)?;
    let mut unpacker = Unpacker {
        layer,
        stack: Vec::new(),
        root,
        privileged: nix::unistd::geteuid().is_root(),
        report: UnpackReport::default(),
    };
    let outcome = unpacker.run(&mut hashing, limits);
    let too_big = || ImageError::LimitExceeded {
        layer: layer.to_string(),
        what: "uncompressed bytes",
        limit: limits.max_bytes,
    };
    if hashing.exceeded() {
        return Err(too_big());
    }
    if outcome.is_err() {
        // A download that broke off is not a bad tar: say what happened.
        if let Some((kind, message)) = source_error.borrow_mut().take() {
            return Err(read_error(layer, io::Error::new(kind, message)));
        }
    }
    outcome?;
    // The diff_id covers the whole stream, also the padding after the end.
    hashing.drain().map_err(|source| {
        if hashing.exceeded() {
            too_big()
        } else {
            read_error(layer, source)
        }
    })?;
    let mut report = unpacker.report;
    report.diff_id = hashing.digest();
    report.size = hashing.count();
    Ok(report)
}

/// Remembers the first error the (network or file) stream itself gave.
struct SourceErrors<'a, R> {
    inner: R,
    seen: &'a std::cell::RefCell<Option<(io::ErrorKind, String)>>,
}

impl<R: Read> Read for SourceErrors<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            let mut seen = self.seen.borrow_mut();
            if seen.is_none() {
                // ureq's timeouts arrive wrapped as "other" errors.
                let timeout = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<ureq::Error>())
                    .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)));
                let kind = if timeout {
                    io::ErrorKind::TimedOut
                } else {
                    e.kind()
                };
                *seen = Some((kind, e.to_string()));
            }
        })
    }
}

fn read_error(layer: &str, source: io::Error) -> ImageError {
    ImageError::Read {
        what: format!("layer {layer}"),
        source,
    }
}

fn open_dir_path(path: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ImageError::Io(IoError::new("open", path, e.into())))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

struct Level {
    name: Vec<u8>,
    fd: Option<OwnedFd>,
}

struct Unpacker<'a> {
    layer: &'a str,
    root: OwnedFd,
    /// The directories of the last entry's parent path, from the root.
    stack: Vec<Level>,
    privileged: bool,
    report: UnpackReport,
}

/// Splits a tar path into its components, refusing what leaves the layer.
fn components(raw: &[u8]) -> std::result::Result<Vec<Vec<u8>>, &'static str> {
    if raw.starts_with(b"/") {
        return Err("has an absolute path");
    }
    let mut out = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("climbs out of the layer with '..'"),
            name => out.push(name.to_vec()),
        }
    }
    Ok(out)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Unpacker<'_> {
    fn unsafe_entry(&self, entry: &str, reason: impl Into<String>) -> ImageError {
        ImageError::UnsafeEntry {
            layer: self.layer.to_string(),
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    fn sys_error(&self, op: &'static str, entry: &str, errno: Errno) -> ImageError {
        IoError::new(
            op,
            format!("{entry} (in layer {})", self.layer),
            errno.into(),
        )
        .into()
    }

    fn run(&mut self, reader: &mut dyn Read, limits: UnpackLimits) -> Result<()> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| read_error(self.layer, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.not_tar(e))?;
            self.report.entries += 1;
            if self.report.entries > limits.max_entries {
                return Err(ImageError::LimitExceeded {
                    layer: self.layer.to_string(),
                    what: "entries",
                    limit: limits.max_entries,
                });
            }
            self.entry(&mut entry)?;
        }
        self.stack.clear();
        Ok(())
    }

    fn not_tar(&self, e: io::Error) -> ImageError {
        ImageError::Invalid {
            what: format!("layer {}", self.layer),
            message: format!("not a valid tar stream: {e}"),
        }
    }

    fn entry(&mut self, entry: &mut tar::Entry<'_, &mut dyn Read>) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let shown = lossy(&raw);
        let parts = components(&raw).map_err(|reason| self.unsafe_entry(&shown, reason))?;
        let Some((name, parents)) = parts.split_last() else {
            // The layer's root itself ("./").
            if kind == EntryType::Directory {
                let fd = self.root.try_clone().map_err(|e| ImageError::Read {
                    what: format!("layer {}", self.layer),
                    source: e,
                })?;
                self.finish_dir(&fd, entry, &shown)?;
                return Ok(());
            }
            return Err(self.unsafe_entry(&shown, "is not a directory but names the layer's root"));
        };
        let parent = self.enter(parents, &shown)?;
        if name.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(parent, name, &shown);
        }
        match kind {
            EntryType::Directory => self.directory(parent, name, entry, &shown),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.regular(parent, name, entry, &shown)
            }
            EntryType::Symlink => self.symlink(parent, name, entry, &shown),
            EntryType::Link => self.hardlink(parent, name, entry, &shown),
            EntryType::Fifo => self.fifo(parent, name, entry, &shown),
            EntryType::Char | EntryType::Block => {
                let (major, minor) = (
                    entry.header().device_major().ok().flatten().unwrap_or(0),
                    entry.header().device_minor().ok().flatten().unwrap_or(0),
                );
                let what = if kind == EntryType::Char {
                    "character"
                } else {
                    "block"
                };
                self.report.skipped.push(format!(
                    "{shown}: {what} device {major}:{minor} not created (a container gets its own /dev at run time, and an image may not hand it the host's devices)"
                ));
                Ok(())
            }
            other => Err(self.unsafe_entry(
                &shown,
                format!(
                    "has tar entry type {:?}, which a layer does not use",
                    other.as_byte() as char
                ),
            )),
        }
    }

    fn top(&self) -> RawFd {
        match self.stack.last() {
            Some(level) => level
                .fd
                .as_ref()
                .expect("top of the stack is open")
                .as_raw_fd(),
            None => self.root.as_raw_fd(),
        }
    }

    /// The descriptor of an entry's parent directory, creating missing
    /// parents (tars often omit them) and refusing any that is not a real
    /// directory.
    fn enter(&mut self, parents: &[Vec<u8>], entry: &str) -> Result<RawFd> {
        let common = self
            .stack
            .iter()
            .zip(parents)
            .take_while(|(level, name)| &level.name == *name)
            .count();
        self.stack.truncate(common);
        if self.stack.last().is_some_and(|level| level.fd.is_none()) {
            self.reopen_top(entry)?;
        }
        for name in &parents[common..] {
            let fd = self.open_dir(self.top(), name, entry, true)?;
            self.stack.push(Level {
                name: name.clone(),
                fd: Some(fd),
            });
            let len = self.stack.len();
            if len > FD_WINDOW {
                self.stack[len - 1 - FD_WINDOW].fd = None;
            }
        }
        Ok(self.top())
    }

    /// Opens the top of the stack again from the deepest level still open.
    fn reopen_top(&mut self, entry: &str) -> Result<()> {
        let len = self.stack.len();
        let start = self
            .stack
            .iter()
            .rposition(|level| level.fd.is_some())
            .map_or(0, |i| i + 1);
        let mut current: Option<OwnedFd> = None;
        for i in start..len {
            let parent = match (&current, i) {
                (Some(fd), _) => fd.as_raw_fd(),
                (None, 0) => self.root.as_raw_fd(),
                (None, _) => self.stack[i - 1].fd.as_ref().unwrap().as_raw_fd(),
            };
            let name = self.stack[i].name.clone();
            current = Some(self.open_dir(parent, &name, entry, false)?);
        }
        self.stack[len - 1].fd = current;
        Ok(())
    }

    fn open_dir(&self, parent: RawFd, name: &[u8], entry: &str, create: bool) -> Result<OwnedFd> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut created = false;
        loop {
            match openat(Some(parent), name, flags, Mode::empty()) {
                Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
                Err(Errno::ENOENT) if create && !created => {
                    match mkdirat(Some(parent), name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => created = true,
                        Err(e) => return Err(self.sys_error("create directory", entry, e)),
                    }
                }
                Err(Errno::ENOENT) => {
                    return Err(self.unsafe_entry(
                        entry,
                        format!(
                            "needs directory {:?}, which is not in this layer",
                            lossy(name)
                        ),
                    ))
                }
                Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                    let what = match existing(parent, name) {
                        Some(SFlag::S_IFLNK) => {
                            "a symlink an earlier entry made; a layer may not write through a link"
                        }
                        _ => "which is not a directory",
                    };
                    return Err(
                        self.unsafe_entry(entry, format!("goes through {:?}, {what}", lossy(name)))
                    );
                }
                Err(e) => return Err(self.sys_error("open directory", entry, e)),
            }
        }
    }

    /// Makes room for a new non-directory entry: an earlier file, link or
    /// whiteout of the same name is replaced, a directory never is.
    fn make_room(&self, parent: RawFd, name: &[u8], entry: &str) -> Result<()> {
        match existing(parent, name) {
            None => Ok(()),
            Some(SFlag::S_IFDIR) => {
                Err(self.unsafe_entry(entry, "would replace a directory an earlier entry made"))
            }
            Some(_) => unlinkat(Some(parent), name, UnlinkatFlags::NoRemoveDir)
                .map_err(|e| self.sys_error("replace", entry, e)),
        }
    }

    fn whiteout(&mut self, parent: RawFd, name: &[u8], entry: &str) -> Result<()> {
        if name == OPAQUE_MARKER {
            let key = if self.privileged {
                "trusted.overlay.opaque"
            } else {
                // What overlay reads when mounted with `userxattr`.
                "user.overlay.opaque"
            };
            set_xattr(parent, key, b"y").map_err(io_err(
                "mark opaque (set the xattr) for",
                format!("the directory of {entry} (in layer {})", self.layer),
            ))?;
            self.report.opaque_dirs += 1;
            return Ok(());
        }
        if name.starts_with(b".wh..wh.") {
            // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing to do.
            return Ok(());
        }
        let target = &name[WHITEOUT_PREFIX.len()..];
        if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
            return Err(self.unsafe_entry(entry, "is a whiteout of no valid name"));
        }
        if existing(parent, target).is_some() {
            // Whiteouts hide lower layers only, not this layer's own entry.
            return Ok(());
        }
        mknodat(
            Some(parent),
            target,
            SFlag::S_IFCHR,
            Mode::empty(),
            nix::sys::stat::makedev(0, 0),
        )
        .map_err(|e| self.sys_error("create the whiteout device for", entry, e))?;
        self.report.whiteouts += 1;
        Ok(())
    }

    fn directory(
        &mut self,
        parent: RawFd,
        name: &[u8],
        entry: &mut tar::Entry<'_, &mut dyn Read>,
        shown: &str,
    ) -> Result<()> {
        match existing(parent, name) {
            Some(SFlag::S_IFDIR) => {}
            Some(_) => {
                unlinkat(Some(parent), name, UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| self.sys_error("replace", shown, e))?;
                self.mkdir(parent, name, shown)?;
            }
            None => self.mkdir(parent, name, shown)?,
        }
        let fd = self.open_dir(parent, name, shown, false)?;
        self.finish_dir(&fd, entry, shown)
    }

    fn mkdir(&self, parent: RawFd, name: &[u8], shown: &str) -> Result<()> {
        mkdirat(Some(parent), name, Mode::from_bits_truncate(0o700))
            .map_err(|e| self.sys_error("create directory", shown, e))
    }

    fn finish_dir(
        &mut self,
        fd: &OwnedFd,
        entry: &mut tar::Entry<'_, &mut dyn Read>,
        shown: &str,
    ) -> Result<()> {
        let header = entry.header();
        let mut mode = header.mode().unwrap_or(0o755) & 0o7777;
        if !self.privileged {
            // Without CAP_DAC_OVERRIDE we must still be able to fill it.
            mode |= 0o700;
        }
        self.owner(fd.as_raw_fd(), header, shown)?;
        fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode))
            .map_err(|e| self.sys_error("chmod", shown, e))?;
        self.xattrs(fd.as_raw_fd(), entry, shown)?;
        self.times(fd.as_raw_fd(), entry.header(), shown)
    }

    fn regular(
        &mut self,
        parent: RawFd,
        name: &[u8],
        entry: &mut tar::Entry<'_, &mut dyn Read>,
        shown: &str,
    ) -> Result<()> {
        self.make_room(parent, name, shown)?;
        let fd = openat(
            Some(parent),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.sys_error("create", shown, e))?;
        let mut file = unsafe { File::from_raw_fd(fd) };
        io::copy(entry, &mut file).map_err(|e| read_error(self.layer, e))?;
        let raw = file.as_raw_fd();
        let header = entry.header();
        self.owner(raw, header, shown)?;
        // After chown, which clears set-user-ID.
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        fchmod(raw, Mode::from_bits_truncate(mode))
            .map_err(|e| self.sys_error("chmod", shown, e))?;
        self.xattrs(raw, entry, shown)?;
        self.times(raw, entry.header(), shown)
    }

    fn symlink(
        &mut self,
        parent: RawFd,
        name: &[u8],
        entry: &mut tar::Entry<'_, &mut dyn Read>,
        shown: &str,
    ) -> Result<()> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| self.unsafe_entry(shown, "is a symlink without a target"))?
            .into_owned();
        self.make_room(parent, name, shown)?;
        // The target is only text: it is resolved in the container, later.
        symlinkat(&target[..], Some(parent), name)
            .map_err(|e| self.sys_error("create symlink", shown, e))?;
        let header = entry.header();
        if self.privileged {
            fchownat(
                Some(parent),
                name,
                Some(Uid::from_raw(header.uid().unwrap_or(0) as u32)),
                Some(Gid::from_raw(header.gid().unwrap_or(0) as u32)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.sys_error("chown", shown, e))?;
        }
        let mtime = mtime_of(header);
        utimensat(
            Some(parent),
            name,
            &mtime,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| self.sys_error("set the times of", shown, e))
    }

    fn hardlink(
        &mut self,
        parent: RawFd,
        name: &[u8],
        entry: &mut tar::Entry<'_, &mut dyn Read>,
        shown: &str,
    ) -> Result<()> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| self.unsafe_entry(shown, "is a hardlink without a target"))?
            .into_owned();
        let target_shown = lossy(&target);
        let parts = components(&target).map_err(|reason| {
            let why = if reason.contains("absolute") {
                "an absolute path"
            } else {
                "a path that climbs out with '..'"
            };
            self.unsafe_entry(
                shown,
                format!("is a hardlink to {target_shown:?}, outside the layer ({why})"),
            )
        })?;
        let Some((target_name, target_parents)) = parts.split_last() else {
            return Err(self.unsafe_entry(shown, "is a hardlink to the layer's root"));
        };
        // Walked afresh, without creating anything: the target must be here.
        let mut dir: Option<OwnedFd> = None;
        for part in target_parents {
            let base = dir
                .as_ref()
                .map_or(self.root.as_raw_fd(), |fd| fd.as_raw_fd());
            dir = Some(self.open_dir(base, part, shown, false).map_err(|_| {
                self.unsafe_entry(
                    shown,
                    format!("is a hardlink to {target_shown:?}, which is not a file in this layer"),
                )
            })?);
        }
        let target_dir = dir
            .as_ref()
            .map_or(self.root.as_raw_fd(), |fd| fd.as_raw_fd());
        match existing(target_dir, target_name) {
            None => {
                return Err(self.unsafe_entry(
                    shown,
                    format!("is a hardlink to {target_shown:?}, which is not a file in this layer"),
                ))
            }
            Some(SFlag::S_IFDIR) => {
                return Err(self.unsafe_entry(
                    shown,
                    format!("is a hardlink to the directory {target_shown:?}"),
                ))
            }
            Some(_) => {}
        }
        if target_dir == parent && target_name[..] == name[..] {
            return Ok(());
        }
        self.make_room(parent, name, shown)?;
        linkat(
            Some(target_dir),
            &target_name[..],
            Some(parent),
            name,
            AtFlags::empty(),
        )
        .map_err(|e| self.sys_error("create hardlink", shown, e))
    }

    fn fifo(
        &mut self,
        parent: RawFd,
        name: &[u8],
        entry: &mut tar::Entry<'_, &mut dyn Read>,
        shown: &str,
    ) -> Result<()> {
        self.make_room(parent, name, shown)?;
        let header = entry.header();
        let mode = Mode::from_bits_truncate(header.mode().unwrap_or(0o644) & 0o7777);
        mknodat(Some(parent), name, SFlag::S_IFIFO, mode, 0)
            .map_err(|e| self.sys_error("create fifo", shown, e))?;
        if self.privileged {
            fchownat(
                Some(parent),
                name,
                Some(Uid::from_raw(header.uid().unwrap_or(0) as u32)),
                Some(Gid::from_raw(header.gid().unwrap_or(0) as u32)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.sys_error("chown", shown, e))?;
        }
        Ok(())
    }

    /// The tar's numeric owner, when we may set it (root); otherwise files
    /// belong to whoever unpacks, as with `tar -x` by a user.
    fn owner(&self, fd: RawFd, header: &tar::Header, shown: &str) -> Result<()> {
        if !self.privileged {
            return Ok(());
        }
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| self.sys_error("chown", shown, e))
    }

    fn times(&self, fd: RawFd, header: &tar::Header, shown: &str) -> Result<()> {
        let mtime = mtime_of(header);
        futimens(fd, &mtime, &mtime).map_err(|e| self.sys_error("set the times of", shown, e))
    }

    /// Extended attributes from PAX `SCHILY.xattr.*` records (file
    /// capabilities, for one). overlay's own are refused: a layer must not
    /// forge opaque directories or redirects.
    fn xattrs(
        &mut self,
        fd: RawFd,
        entry: &mut tar::Entry<'_, &mut dyn Read>,
        shown: &str,
    ) -> Result<()> {
        let Ok(Some(extensions)) = entry.pax_extensions() else {
            return Ok(());
        };
        let mut wanted = Vec::new();
        for extension in extensions.flatten() {
            if let Ok(key) = extension.key() {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    wanted.push((name.to_string(), extension.value_bytes().to_vec()));
                }
            }
        }
        for (name, value) in wanted {
            if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                self.report.skipped.push(format!(
                    "{shown}: xattr {name} not set (overlay's own, a layer may not forge it)"
                ));
                continue;
            }
            match set_xattr(fd, &name, &value) {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::ENOTSUP)) => {
                    self.report
                        .skipped
                        .push(format!("{shown}: xattr {name} not set ({e})"));
                }
                Err(source) => {
                    let path = format!("{shown} (in layer {})", self.layer);
                    return Err(IoError::new("set an xattr on", path, source).into());
                }
            }
        }
        Ok(())
    }
}

fn mtime_of(header: &tar::Header) -> TimeSpec {
    TimeSpec::new(header.mtime().unwrap_or(0).min(i64::MAX as u64) as i64, 0)
}

/// The type of what `name` is in `parent`, without following a symlink.
fn existing(parent: RawFd, name: &[u8]) -> Option<SFlag> {
    fstatat(Some(parent), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()))
}

fn set_xattr(fd: RawFd, name: &str, value: &[u8]) -> io::Result<()> {
    let name = CString::new(name).map_err(io::Error::other)?;
    let rc = unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        builder.into_inner().unwrap()
    }

    fn header(kind: EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(1_000_000);
        h
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, body: &[u8]) {
        b.append_data(
            &mut header(EntryType::Regular, body.len() as u64, 0o644),
            path,
            body,
        )
        .unwrap();
    }

    /// Writes a raw header, for names the tar crate's builder refuses.
    fn raw(b: &mut tar::Builder<Vec<u8>>, path: &[u8], kind: EntryType, link: &[u8], body: &[u8]) {
        let mut h = header(kind, body.len() as u64, 0o644);
        {
            let old = h.as_old_mut();
            old.name[..path.len()].copy_from_slice(path);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        b.append(&h, body).unwrap();
    }

    fn unpack(tar: &[u8], limits: UnpackLimits) -> (tempfile::TempDir, Result<UnpackReport>) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let result = unpack_layer(tar, Compression::None, "test", "t", &root, limits);
        (dir, result)
    }

    #[test]
    fn files_links_and_the_diff_id() {
        let tar = tar_of(|b| {
            file(b, "etc/hostname", b"box\n");
            let mut h = header(EntryType::Symlink, 0, 0o777);
            b.append_link(&mut h, "etc/link", "/etc/hostname").unwrap();
            let mut h = header(EntryType::Link, 0, 0o644);
            b.append_link(&mut h, "etc/hard", "etc/hostname").unwrap();
        });
        let (dir, report) = unpack(&tar, UnpackLimits::default());
        let report = report.unwrap();
        assert_eq!(report.diff_id, super::super::verify::sha256_digest(&tar));
        assert_eq!(report.size, tar.len() as u64);
        let root = dir.path().join("root");
        assert_eq!(std::fs::read(root.join("etc/hostname")).unwrap(), b"box\n");
        assert_eq!(
            std::fs::read_link(root.join("etc/link")).unwrap(),
            Path::new("/etc/hostname")
        );
        let a = std::fs::metadata(root.join("etc/hostname")).unwrap();
        let b = std::fs::metadata(root.join("etc/hard")).unwrap();
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
        assert_eq!(a.mtime(), 1_000_000);
    }

    #[test]
    fn whiteouts_become_devices_and_opaque_is_an_xattr() {
        let tar = tar_of(|b| {
            file(b, "etc/.wh.passwd", b"");
            file(b, "var/.wh..wh..opq", b"");
            file(b, "var/new", b"x");
            file(b, "var/kept", b"here");
            file(b, "var/.wh.kept", b"");
        });
        let (dir, report) = unpack(&tar, UnpackLimits::default());
        let report = report.unwrap();
        assert_eq!((report.whiteouts, report.opaque_dirs), (1, 1));
        let root = dir.path().join("root");
        let meta = std::fs::symlink_metadata(root.join("etc/passwd")).unwrap();
        assert!(meta.file_type().is_char_device());
        assert_eq!(meta.rdev(), 0);
        assert!(!root.join("etc/.wh.passwd").exists());
        assert_eq!(std::fs::read(root.join("var/kept")).unwrap(), b"here");
    }

    #[test]
    fn escapes_are_refused() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "dotdot",
                tar_of(|b| raw(b, b"../evil", EntryType::Regular, b"", b"x")),
                "'..'",
            ),
            (
                "absolute",
                tar_of(|b| raw(b, b"/tmp/evil", EntryType::Regular, b"", b"x")),
                "absolute",
            ),
            (
                "through a symlink",
                tar_of(|b| {
                    raw(b, b"link", EntryType::Symlink, b"/tmp", b"");
                    raw(b, b"link/evil", EntryType::Regular, b"", b"x");
                }),
                "symlink",
            ),
            (
                "hardlink out",
                tar_of(|b| raw(b, b"passwd", EntryType::Link, b"/etc/passwd", b"")),
                "hardlink",
            ),
            (
                "hardlink up",
                tar_of(|b| raw(b, b"passwd", EntryType::Link, b"../../etc/passwd", b"")),
                "hardlink",
            ),
            (
                "dir replaced",
                tar_of(|b| {
                    raw(b, b"d/", EntryType::Directory, b"", b"");
                    raw(b, b"d", EntryType::Symlink, b"/", b"");
                }),
                "directory",
            ),
        ];
        for (what, tar, needle) in cases {
            let (dir, result) = unpack(&tar, UnpackLimits::default());
            let err = result.expect_err(what).to_string();
            assert!(err.contains(needle), "{what}: {err}");
            assert!(!dir.path().join("evil").exists(), "{what}");
        }
    }

    #[test]
    fn devices_are_skipped_with_the_reason() {
        let tar = tar_of(|b| {
            let mut h = header(EntryType::Char, 0, 0o666);
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
            b.append_data(&mut h, "dev/null", &b""[..]).unwrap();
        });
        let (dir, report) = unpack(&tar, UnpackLimits::default());
        let report = report.unwrap();
        assert!(
            report.skipped[0].contains("character device 1:3 not created"),
            "{:?}",
            report.skipped
        );
        assert!(!dir.path().join("root/dev/null").exists());
    }

    #[test]
    fn limits_stop_bombs() {
        let tar = tar_of(|b| {
            for i in 0..10 {
                file(b, &format!("f{i}"), b"1234");
            }
        });
        let few = UnpackLimits {
            max_entries: 5,
            ..UnpackLimits::default()
        };
        let err = unpack(&tar, few).1.unwrap_err().to_string();
        assert!(err.contains("more than 5 entries"), "{err}");
        let small = UnpackLimits {
            max_bytes: 4096,
            ..UnpackLimits::default()
        };
        let err = unpack(&tar, small).1.unwrap_err().to_string();
        assert!(err.contains("more than 4096 uncompressed bytes"), "{err}");
    }

    #[test]
    fn a_deep_tree_is_fine() {
        let depth = 2000;
        let tar = tar_of(|b| {
            let mut path = String::new();
            for _ in 0..depth {
                path.push_str("d/");
                let mut h = header(EntryType::Directory, 0, 0o755);
                b.append_data(&mut h, &path, &b""[..]).unwrap();
            }
            file(b, &format!("{path}leaf"), b"deep");
            file(b, "top", b"back at the top");
        });
        let (dir, report) = unpack(&tar, UnpackLimits::default());
        assert_eq!(report.unwrap().entries, depth + 2);
        assert!(dir.path().join("root/top").exists());
    }
}
