//! Files that are never seen half-written, locks between processes, and
//! reading the files the kernel writes as they are read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::{io_err, IoError};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` so that readers see the old file or the new one, never
/// half of either, even across a crash: write a temporary file in the same
/// directory, fsync it, rename it over, fsync the directory. The file is
/// its owner's alone (0600): records hold `-e` values.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_then_rename(path, bytes, true)
}

/// `write_atomic` without the fsyncs: readers still never see half a
/// file, but a power cut may lose the last change. For what does not
/// outlive a boot or a process.
pub fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_then_rename(path, bytes, false)
}

fn write_then_rename(path: &Path, bytes: &[u8], durable: bool) -> Result<(), IoError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    replace_through(&temp, path, bytes, 0o600, durable)
}

/// `write_atomic` with the temporary file at `temp` (on the same
/// filesystem as `path`; a store keeps them in a directory it empties on
/// open) and the new file's `mode`.
pub fn write_atomic_through(
    temp: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), IoError> {
    replace_through(temp, path, bytes, mode, true)
}

fn replace_through(
    temp: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durable: bool,
) -> Result<(), IoError> {
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(temp)
            .map_err(io_err("create", temp))?;
        file.write_all(bytes).map_err(io_err("write", temp))?;
        if durable {
            file.sync_all().map_err(io_err("fsync", temp))?;
        }
        fs::rename(temp, path).map_err(io_err("rename into place", path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(temp);
        return written;
    }
    if !durable {
        return Ok(());
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// fsync of a directory: makes the names created or renamed in it durable.
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

/// Takes an exclusive flock on `path` (created 0600 when `create`),
/// waiting for other holders. Each call opens the file anew, so threads
/// of one process exclude each other too; the lock goes with the value.
pub fn lock_file(path: &Path, create: bool) -> Result<Flock<File>, IoError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err("open lock", path))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(lock) => return Ok(lock),
            Err((again, Errno::EINTR)) => file = again,
            Err((_, errno)) => return Err(IoError::new("lock", path, io::Error::from(errno))),
        }
    }
}

/// A file the kernel makes up as it is read (/proc, /sys, cgroup files):
/// it says its size is 0, so `fs::read_to_string` begins with 32-byte
/// reads, each one a system call that makes the kernel format the text up
/// to there again. One 16 KiB read holds any of those the lab reads.
pub fn read_kernel_file(path: impl AsRef<Path>) -> io::Result<String> {
    // Not `read_to_end`: for a File it first asks fstat and lseek for a
    // size, which is 0 here anyway.
    let mut file = File::open(path)?;
    let mut bytes = vec![0; 16 * 1024];
    let mut len = 0;
    loop {
        if len == bytes.len() {
            bytes.resize(len * 2, 0);
        }
        match io::Read::read(&mut file, &mut bytes[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(len);
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{files_in, TempDir};

    #[test]
    fn a_failed_atomic_write_keeps_the_old_file_and_removes_its_temp_file() {
        let t = TempDir::new("fs");
        let target = t.0.join("target");
        // rename() cannot replace a non-empty directory.
        fs::create_dir_all(target.join("occupied")).unwrap();
        let err = write_atomic(&target, b"new").unwrap_err();
        assert!(err.to_string().contains("rename into place"), "{err}");
        assert_eq!(files_in(&t.0), ["target"]);

        let file = t.0.join("file");
        write_atomic(&file, b"old").unwrap();
        write_atomic(&file, b"new").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"new");
        assert_eq!(files_in(&t.0), ["file", "target"]);
    }

    #[test]
    fn a_kernel_file_is_read_whole_also_past_its_first_buffer() {
        assert_eq!(
            read_kernel_file("/proc/self/cgroup").unwrap(),
            fs::read_to_string("/proc/self/cgroup").unwrap()
        );
        let t = TempDir::new("fs-kernel");
        let big: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        assert!(big.len() > 32 * 1024);
        fs::write(t.0.join("big"), &big).unwrap();
        assert_eq!(read_kernel_file(t.0.join("big")).unwrap(), big);
        let missing = read_kernel_file(t.0.join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
