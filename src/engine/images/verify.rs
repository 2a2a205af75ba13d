//! Digests computed over the bytes exactly as they pass, and limits on how
//! many may pass.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::error::{ImageError, Result};

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The hex part of a `sha256:` digest, checked (it becomes a file name).
pub fn digest_hex(digest: &str) -> Result<&str> {
    if super::reference::valid_digest(digest) {
        Ok(&digest[7..])
    } else {
        Err(ImageError::invalid(
            format!("digest {digest:?}"),
            "a digest is sha256: followed by 64 lowercase hex digits",
        ))
    }
}

/// A reader that hashes and counts what it passes on, and fails once more
/// than `limit` bytes came through.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    limit: u64,
    exceeded: bool,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            limit,
            exceeded: false,
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// True once the limit stopped the stream.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// Reads what is left, so that the digest covers the whole stream.
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }

    pub fn digest(&self) -> String {
        format!("sha256:{:x}", self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.exceeded {
            return Err(limit_error());
        }
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            self.exceeded = true;
            return Err(limit_error());
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn limit_error() -> io::Error {
    io::Error::other("the stream is longer than its limit")
}

/// A writer that hashes and counts what it passes on.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{:x}", self.hasher.finalize());
        (self.inner, digest, self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that copies everything read through it into a writer: a
/// download stored while it is unpacked.
pub struct TeeReader<R, W> {
    pub reader: R,
    pub writer: W,
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.writer.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Calls `report(bytes so far)` about every `every` bytes and at the end.
pub struct CountingReader<R, F: FnMut(u64)> {
    pub inner: R,
    pub report: F,
    pub count: u64,
    pub every: u64,
    pub last: u64,
}

impl<R: Read, F: FnMut(u64)> CountingReader<R, F> {
    pub fn new(inner: R, every: u64, report: F) -> Self {
        CountingReader {
            inner,
            report,
            count: 0,
            every,
            last: 0,
        }
    }
}

impl<R: Read, F: FnMut(u64)> Read for CountingReader<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if n == 0 || self.count - self.last >= self.every {
            self.last = self.count;
            (self.report)(self.count);
        }
        Ok(n)
    }
}
