//! Overlay layers: an image as a stack of read-only directories, and one
//! writable directory per container on top.
//!
//! overlayfs merges directories at lookup time. A file is found in the
//! first layer that has it, top to bottom; a write first copies the file up
//! into the writable `upperdir`; a delete in the merged view leaves a
//! *whiteout* (a 0/0 character device) in the upper directory that hides
//! the lower file; a directory replaced as a whole is marked *opaque*, so
//! nothing below it shows through. The lower directories never change, so
//! any number of containers can share them.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::kernel::mounts::{self, MountError};
use crate::kernel::rootfs::RootfsError;
use crate::support::error::{io_err, IoError};

/// One read-only layer of the lab's image.
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub path: PathBuf,
}

/// A container's writable part: `upper` receives every change, `work` is
/// overlayfs's scratch space (same filesystem as `upper`), `merged` is
/// where the union is mounted.
#[derive(Debug, Clone)]
pub struct OverlayDirs {
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

impl OverlayDirs {
    /// Creates the three directories under a container's run directory,
    /// after checking the filesystem there can hold an upper layer.
    pub fn create(run_dir: &Path) -> Result<OverlayDirs, OverlayError> {
        let dirs = OverlayDirs {
            upper: run_dir.join("upper"),
            work: run_dir.join("work"),
            merged: run_dir.join("merged"),
        };
        if is_overlay(run_dir) {
            return Err(OverlayError::UpperOnOverlay(run_dir.to_path_buf()));
        }
        for dir in [&dirs.upper, &dirs.work, &dirs.merged] {
            fs::create_dir_all(dir).map_err(io_err("create", &dir))?;
        }
        Ok(dirs)
    }
}

/// The mount options: `lowerdir` lists the layers top first.
// ANCHOR: options
pub fn mount_options(layers: &[Layer], dirs: &OverlayDirs) -> String {
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.path.display().to_string())
        .collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        dirs.upper.display(),
        dirs.work.display()
    )
}
// ANCHOR_END: options

/// `mount -t overlay overlay -o OPTIONS MERGED`. Runs inside the container's
/// mount namespace, after the tree there was made private.
// ANCHOR: mount
pub fn mount_overlay(layers: &[Layer], dirs: &OverlayDirs) -> Result<(), OverlayError> {
    let options = mount_options(layers, dirs);
    mounts::mount_fs("overlay", &dirs.merged, MsFlags::empty(), Some(&options))?;
    Ok(())
}
// ANCHOR_END: mount

/// `mount_overlay` for a writable layer that is thrown away afterwards
/// (`run --rm`), with `volatile` (Linux 5.10 and later): overlayfs then
/// skips syncing the upper filesystem. Without it, the last unmount (when
/// the container's mount namespace goes, in the exit of its last process)
/// writes back every dirty page of the whole filesystem the upper
/// directory is on, the host's other work included. An older kernel
/// refuses the option: then it is the plain mount. True when `volatile`
/// was taken.
pub fn mount_overlay_volatile(layers: &[Layer], dirs: &OverlayDirs) -> Result<bool, OverlayError> {
    let options = format!("{},volatile", mount_options(layers, dirs));
    match mounts::mount_fs("overlay", &dirs.merged, MsFlags::empty(), Some(&options)) {
        Ok(()) => Ok(true),
        Err(err) if err.errno == nix::errno::Errno::EINVAL => {
            mount_overlay(layers, dirs)?;
            Ok(false)
        }
        Err(err) => Err(err.into()),
    }
}

/// Fails with a clear message when the kernel has no overlayfs.
pub fn ensure_supported() -> Result<(), OverlayError> {
    let listed = || {
        fs::read_to_string("/proc/filesystems")
            .is_ok_and(|f| f.lines().any(|l| l.ends_with("\toverlay")))
    };
    if listed() {
        return Ok(());
    }
    let _ = std::process::Command::new("modprobe")
        .arg("overlay")
        .status();
    if listed() {
        Ok(())
    } else {
        Err(OverlayError::NotSupported)
    }
}

fn is_overlay(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC)
        .unwrap_or(false)
}

/// What a path in an upper directory is, seen from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpperEntry {
    Missing,
    /// A character device 0/0: overlayfs's mark for "deleted here".
    Whiteout,
    /// A directory marked opaque: nothing below it shows through.
    OpaqueDir,
    Dir,
    File(String),
}

// ANCHOR: inspect
pub fn inspect_upper(path: &Path) -> UpperEntry {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return UpperEntry::Missing;
    };
    if meta.file_type().is_char_device() && meta.rdev() == 0 {
        return UpperEntry::Whiteout;
    }
    if meta.is_dir() {
        return match xattr(path, "trusted.overlay.opaque").as_deref() {
            Some(b"y") => UpperEntry::OpaqueDir,
            _ => UpperEntry::Dir,
        };
    }
    UpperEntry::File(fs::read_to_string(path).unwrap_or_default())
}
// ANCHOR_END: inspect

/// Reads an extended attribute without following symlinks.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
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

/// Every regular file, symlink and directory under `root`, for counting
/// what a layer or an upper directory holds.
pub fn count_entries(root: &Path) -> usize {
    fn walk(dir: &Path, count: &mut usize) {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".lab-") {
                    continue;
                }
                *count += 1;
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&entry.path(), count);
                }
            }
        }
    }
    let mut count = 0;
    walk(root, &mut count);
    count
}

/// The size of the file contents under `root`, in KiB, counting each inode
/// once. (Unlike `du`, this does not depend on the filesystem's block size,
/// so it reads the same on every machine.)
pub fn content_kib(root: &Path) -> u64 {
    fn walk(dir: &Path, seen: &mut std::collections::HashSet<(u64, u64)>, total: &mut u64) {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                if let Ok(meta) = entry.path().symlink_metadata() {
                    if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                        *total += meta.len();
                    }
                    if meta.is_dir() {
                        walk(&entry.path(), seen, total);
                    }
                }
            }
        }
    }
    let mut total = 0;
    walk(root, &mut std::collections::HashSet::new(), &mut total);
    total.div_ceil(1024)
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("this kernel has no overlay filesystem; load it with sudo modprobe overlay, or use a kernel built with CONFIG_OVERLAY_FS")]
    NotSupported,
    #[error("{} is on an overlay filesystem, which cannot hold a container's upper layer; point CONTAINER_LAB_ROOT at a directory on tmpfs or ext4", .0.display())]
    UpperOnOverlay(PathBuf),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Mount(#[from] MountError),
}
