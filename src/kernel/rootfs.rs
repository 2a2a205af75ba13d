//! A root filesystem of the container's own, entered first
//! with `chroot` (which is not a boundary) and then with `pivot_root` in a
//! private mount namespace (which is), plus the kernel filesystems every
//! Linux program expects: /proc, a minimal /dev and a read-only /sys.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chdir, chroot, pivot_root};

use crate::kernel::mounts::{self, MountError};
use crate::support::error::{io_err, IoError};

/// `cp -a SOURCE DEST`: copies a tree with its symlinks and permissions.
pub fn copy_tree(source: &Path, dest: &Path) -> Result<(), RootfsError> {
    let meta = fs::symlink_metadata(source).map_err(io_err("stat", source))?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = fs::read_link(source).map_err(io_err("read link", source))?;
        symlink(target, dest).map_err(io_err("link", dest))?;
    } else if kind.is_dir() {
        fs::create_dir(dest).map_err(io_err("create", dest))?;
        for entry in fs::read_dir(source).map_err(io_err("read", source))? {
            let entry = entry.map_err(io_err("read", source))?;
            copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
        }
        fs::set_permissions(dest, meta.permissions()).map_err(io_err("chmod", dest))?;
    } else {
        fs::copy(source, dest).map_err(io_err("copy", dest))?;
    }
    Ok(())
}

/// The sorted names in a directory, for showing what a root contains.
pub fn list_dir(path: &Path) -> io::Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(path)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// What happened when a root process tried to leave its root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Escape {
    /// It read the host's file: the old root was still reachable.
    Escaped(String),
    /// The file does not exist from where it ended up.
    Contained(String),
}

/// The classic chroot escape, run by a root process after it was jailed:
/// chroot into a subdirectory *without* moving into it. The working
/// directory is now outside the root, where the kernel's ".. stops at the
/// root" rule no longer applies, so enough `..` steps reach the real `/`;
/// chroot(".") there, and the host's files are back.
// ANCHOR: escape
pub fn try_escape(host_file: &Path) -> Escape {
    let _ = fs::create_dir("/escape-hatch");
    if chroot("/escape-hatch").is_ok() {
        for _ in 0..64 {
            let _ = chdir("..");
        }
        let _ = chroot(".");
    }
    match fs::read_to_string(host_file) {
        Ok(text) => Escape::Escaped(text.trim().to_string()),
        Err(err) => Escape::Contained(match err.raw_os_error() {
            Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
            None => err.to_string(),
        }),
    }
}
// ANCHOR_END: escape

/// `chroot NEW_ROOT`: changes only this process's idea of `/`.
// ANCHOR: chroot
pub fn enter_chroot(new_root: &Path) -> Result<(), RootfsError> {
    chroot(new_root).map_err(|errno| RootfsError::Sys {
        op: "chroot",
        path: new_root.to_path_buf(),
        errno,
    })?;
    chdir("/").map_err(|errno| RootfsError::Sys {
        op: "chdir",
        path: PathBuf::from("/"),
        errno,
    })
}
// ANCHOR_END: chroot

/// Swaps the root of the whole mount namespace for `new_root` and throws
/// the old one away. Runs inside the container's mount namespace.
// ANCHOR: pivot
pub fn pivot_into(new_root: &Path) -> Result<(), RootfsError> {
    // 1. No mount event may travel back to the host (and pivot_root refuses
    //    to move a shared mount).
    mounts::make_tree_private()?;
    // 2. pivot_root needs the new root to be a mount point: bind it onto itself.
    mounts::bind(new_root, new_root, true)?;
    // 3. Swap: the new root becomes `/`, the old one hangs at /.old-root.
    chdir(new_root).map_err(|errno| RootfsError::Sys {
        op: "chdir",
        path: new_root.to_path_buf(),
        errno,
    })?;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(".old-root")
        .map_err(io_err("create", Path::new(".old-root")))?;
    pivot_root(".", ".old-root").map_err(sys("pivot_root", "."))?;
    chdir("/").map_err(sys("chdir", "/"))?;
    // 4. Detach the old root: after this no path leads back to the host.
    mounts::detach(Path::new("/.old-root"))?;
    fs::remove_dir("/.old-root").map_err(io_err("remove", Path::new("/.old-root")))?;
    Ok(())
}
// ANCHOR_END: pivot

/// `pivot_into` without the `/.old-root` directory, as runc does it:
/// `pivot_root(".", ".")` stacks the old root on top of the new one, at
/// `/`, and detaching the top of that stack leaves the new root alone.
/// Nothing is created in the new root, so a container's writable layer
/// gets no directory to make and delete (where freed blocks are discarded
/// at once, as on ext4 without a journal mounted with `discard`, each one
/// waits for the device).
// ANCHOR: pivot_stacked
pub fn pivot_into_stacked(new_root: &Path) -> Result<(), RootfsError> {
    mounts::make_tree_private()?;
    mounts::bind(new_root, new_root, true)?;
    chdir(new_root).map_err(|errno| RootfsError::Sys {
        op: "chdir",
        path: new_root.to_path_buf(),
        errno,
    })?;
    pivot_root(".", ".").map_err(sys("pivot_root", "."))?;
    // "." is the old root now, mounted over the new one: detach it.
    mounts::detach(Path::new("."))?;
    chdir("/").map_err(sys("chdir", "/"))?;
    Ok(())
}
// ANCHOR_END: pivot_stacked

/// Mounts /proc, a minimal /dev and a read-only /sys in the new root.
// ANCHOR: kernel_fs
pub fn mount_kernel_filesystems() -> Result<(), RootfsError> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    for dir in ["/proc", "/sys", "/dev"] {
        mount_point(Path::new(dir))?;
    }
    mounts::mount_fs("proc", Path::new("/proc"), hardened, None)?;
    mounts::mount_fs(
        "sysfs",
        Path::new("/sys"),
        hardened | MsFlags::MS_RDONLY,
        None,
    )?;
    mounts::mount_fs(
        "tmpfs",
        Path::new("/dev"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    // The character devices every program may open, with their fixed numbers.
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let path = Path::new("/dev").join(name);
        mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .map_err(|errno| RootfsError::Sys {
            op: "mknod",
            path: path.clone(),
            errno,
        })?;
        // mknod applies the umask; devices must be usable by everyone.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666))
            .map_err(io_err("chmod", &path))?;
    }
    for dir in ["/dev/pts", "/dev/shm"] {
        fs::create_dir(dir).map_err(io_err("create", Path::new(dir)))?;
    }
    // A private devpts instance: the container's terminals, not the host's.
    mounts::mount_fs(
        "devpts",
        Path::new("/dev/pts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    mounts::mount_fs(
        "tmpfs",
        Path::new("/dev/shm"),
        hardened,
        Some("mode=1777,size=65536k"),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let path = Path::new("/dev").join(link);
        symlink(target, &path).map_err(io_err("link", &path))?;
    }
    Ok(())
}
// ANCHOR_END: kernel_fs

/// Makes `path` a directory to mount on, as runc does: an image may lack
/// /proc, /sys or /dev (a tarball of one program), or have a file there.
/// A symlink is refused: it would point a kernel filesystem somewhere
/// else (and before a pivot_root, anywhere on the host).
// ANCHOR: mount_point
pub fn mount_point(path: &Path) -> Result<(), RootfsError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = fs::read_link(path).unwrap_or_default();
            return Err(RootfsError::SymlinkMountPoint {
                path: path.to_path_buf(),
                target,
            });
        }
        Ok(_) => fs::remove_file(path).map_err(io_err("replace", path))?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(IoError::new("stat", path, err).into()),
    }
    Ok(fs::DirBuilder::new()
        .mode(0o755)
        .create(path)
        .map_err(io_err("create the mount point", path))?)
}
// ANCHOR_END: mount_point

fn sys(op: &'static str, path: &'static str) -> impl Fn(nix::errno::Errno) -> RootfsError {
    move |errno| RootfsError::Sys {
        op,
        path: PathBuf::from(path),
        errno,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("failed to {op} {}: {errno}", path.display())]
    Sys {
        op: &'static str,
        path: PathBuf,
        errno: nix::errno::Errno,
    },
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("the image's {} is a symlink to {}; it must be a directory to mount on (a symlink could point the kernel's filesystems elsewhere): fix the image", path.display(), target.display())]
    SymlinkMountPoint { path: PathBuf, target: PathBuf },
    #[error(transparent)]
    Mount(#[from] MountError),
}
