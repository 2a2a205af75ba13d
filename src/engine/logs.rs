//! Container logs in Docker's json-file format: one JSON object a line,
//! `{"log":"text\n","stream":"stdout","time":"2026-11-29T18:00:00.123456789Z"}`.
//!
//! The supervisor copies the container's stdout and stderr pipes into the
//! file with a [`LogWriter`]; `mini-docker logs` reads it back with [`read`]
//! or [`follow`] and writes each entry's text to the stream it came from, so
//! the reader gets the bytes the container wrote. As in Docker, bytes that
//! are not UTF-8 are stored as U+FFFD, and lines longer than 16 KiB are
//! split into several entries (only the last ends with a newline).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

use crate::support::error::{io_err, IoError};

/// Docker's json-file splits lines longer than this into several entries.
pub const MAX_ENTRY: usize = 16 * 1024;

/// How often [`follow`] looks for new entries.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of the log file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The text, with its newline when the container wrote one.
    pub log: String,
    pub stream: Stream,
    #[serde(with = "crate::support::time::rfc3339")]
    pub time: SystemTime,
}

/// Appends entries to a container's json-file log.
#[derive(Debug)]
pub struct LogWriter {
    file: File,
    path: PathBuf,
    /// Where each stream is also copied as it arrives (a foreground run's
    /// terminal), stdout then stderr.
    echo: [Option<File>; 2],
}

/// A pipe being copied and the bytes of its unfinished line.
struct Source {
    stream: Stream,
    file: Option<File>,
    pending: Vec<u8>,
}

impl LogWriter {
    /// Opens (or creates) the log for appending.
    pub fn open(path: &Path) -> Result<LogWriter, LogError> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)
            .map_err(io_err("open", path))?;
        Ok(LogWriter {
            file,
            path: path.to_path_buf(),
            echo: [None, None],
        })
    }

    /// Also copies stdout and stderr, unchanged and at once, to these
    /// (`docker run` in the foreground shows the output and logs it).
    pub fn echoing(mut self, stdout: OwnedFd, stderr: OwnedFd) -> LogWriter {
        self.echo = [Some(File::from(stdout)), Some(File::from(stderr))];
        self
    }

    /// Copies both pipes into the log, a line at a time, until both reach
    /// end of file (every writer closed them). Single-threaded with poll,
    /// so a supervisor may fork while it runs; a full pipe on one stream
    /// never blocks the other.
    pub fn copy(
        &mut self,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) -> Result<(), LogError> {
        let mut sources = [
            Source {
                stream: Stream::Stdout,
                file: stdout.map(File::from),
                pending: Vec::new(),
            },
            Source {
                stream: Stream::Stderr,
                file: stderr.map(File::from),
                pending: Vec::new(),
            },
        ];
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let open: Vec<usize> = (0..sources.len())
                .filter(|&i| sources[i].file.is_some())
                .collect();
            if open.is_empty() {
                return Ok(());
            }
            let ready: Vec<bool> = {
                let mut fds: Vec<PollFd> = open
                    .iter()
                    .filter_map(|&i| sources[i].file.as_ref())
                    .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                    .collect();
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(errno) => {
                        return Err(LogError::Io(IoError::new(
                            "poll the pipes of",
                            &self.path,
                            errno.into(),
                        )))
                    }
                }
                // POLLHUP and POLLERR too: the read below then sees EOF or the error.
                fds.iter()
                    .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
                    .collect()
            };
            for (&i, ready) in open.iter().zip(ready) {
                if ready {
                    self.read_from(&mut sources[i], &mut buf)?;
                }
            }
        }
    }

    fn read_from(&mut self, source: &mut Source, buf: &mut [u8]) -> Result<(), LogError> {
        let Some(file) = source.file.as_mut() else {
            return Ok(());
        };
        let n = match file.read(buf) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(source) => {
                return Err(LogError::Io(IoError::new(
                    "read a container pipe for",
                    &self.path,
                    source,
                )))
            }
        };
        if n == 0 {
            source.file = None;
            if !source.pending.is_empty() {
                let rest = std::mem::take(&mut source.pending);
                self.write_entry(source.stream, &rest)?;
            }
            return Ok(());
        }
        let echo = match source.stream {
            Stream::Stdout => &mut self.echo[0],
            Stream::Stderr => &mut self.echo[1],
        };
        if let Some(out) = echo {
            // Whoever reads our output went away: keep logging, stop echoing.
            if out.write_all(&buf[..n]).is_err() {
                *echo = None;
            }
        }
        source.pending.extend_from_slice(&buf[..n]);
        while let Some(newline) = source.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = source.pending.drain(..=newline).collect();
            for piece in split_long(&line) {
                self.write_entry(source.stream, piece)?;
            }
        }
        while source.pending.len() >= MAX_ENTRY {
            let cut = utf8_cut(&source.pending, MAX_ENTRY);
            let piece: Vec<u8> = source.pending.drain(..cut).collect();
            self.write_entry(source.stream, &piece)?;
        }
        Ok(())
    }

    /// Appends one entry with a single write, so concurrent readers and
    /// other writers never see half of it interleaved with another.
    pub fn write_entry(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), LogError> {
        let entry = Entry {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream,
            time: SystemTime::now(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(LogError::Encode)?;
        line.push(b'\n');
        Ok(self
            .file
            .write_all(&line)
            .map_err(io_err("append to", &self.path))?)
    }
}

fn split_long(line: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut rest = line;
    while rest.len() > MAX_ENTRY {
        let cut = utf8_cut(rest, MAX_ENTRY);
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces.push(rest);
    pieces
}

// Where to split `bytes` at or before `max` without cutting a UTF-8
// character in two (which would turn both halves into U+FFFD).
fn utf8_cut(bytes: &[u8], max: usize) -> usize {
    let max = max.min(bytes.len());
    for back in 1..=3.min(max) {
        let at = max - back;
        let b = bytes[at];
        let len = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            0x80..=0xBF => continue,
            _ => return max,
        };
        return if at + len > max && at > 0 { at } else { max };
    }
    max
}

/// Every complete entry in the log, or the last `tail` of them. A log that
/// does not exist yet (a container never started) is empty.
pub fn read(path: &Path, tail: Option<usize>) -> Result<Vec<Entry>, LogError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LogError::Io(IoError::new("read", path, source))),
    };
    let mut parser = Parser::new(path);
    let mut entries = parser.feed(&bytes)?;
    if let Some(tail) = tail {
        entries.drain(..entries.len().saturating_sub(tail));
    }
    Ok(entries)
}

/// Calls `out` for the last `tail` entries (all when `None`), then for
/// every entry appended after, checking every [`FOLLOW_INTERVAL`]. Stops
/// once `keep_going` returns false and everything written before that has
/// been passed to `out`.
pub fn follow(
    path: &Path,
    tail: Option<usize>,
    mut keep_going: impl FnMut() -> bool,
    mut out: impl FnMut(&Entry),
) -> Result<(), LogError> {
    let mut parser = Parser::new(path);
    let mut file: Option<File> = None;
    let mut first = true;
    loop {
        // Asked before reading, so the read below sees everything that was
        // written before the answer was "stop".
        let go = keep_going();
        if file.is_none() {
            file = match File::open(path) {
                Ok(f) => Some(f),
                Err(err) if err.kind() == io::ErrorKind::NotFound => None,
                Err(source) => return Err(LogError::Io(IoError::new("open", path, source))),
            };
        }
        if let Some(f) = file.as_mut() {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map_err(io_err("read", path))?;
            let mut entries = parser.feed(&bytes)?;
            if let (true, Some(tail)) = (first, tail) {
                entries.drain(..entries.len().saturating_sub(tail));
            }
            entries.iter().for_each(&mut out);
        }
        // `tail` applies to what existed when following began, if anything.
        first = false;
        if !go {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

/// Writes an entry's text to the stream it came from.
pub fn print_entry(
    entry: &Entry,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> io::Result<()> {
    match entry.stream {
        Stream::Stdout => stdout.write_all(entry.log.as_bytes()),
        Stream::Stderr => stderr.write_all(entry.log.as_bytes()),
    }
}

/// Parses complete lines and keeps an unfinished last one (still being
/// written) for the next feed.
struct Parser {
    path: PathBuf,
    partial: Vec<u8>,
    line: usize,
}

impl Parser {
    fn new(path: &Path) -> Parser {
        Parser {
            path: path.to_path_buf(),
            partial: Vec::new(),
            line: 0,
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Entry>, LogError> {
        self.partial.extend_from_slice(bytes);
        let Some(last_newline) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        let mut entries = Vec::new();
        for line in complete[..complete.len() - 1].split(|&b| b == b'\n') {
            self.line += 1;
            if line.is_empty() {
                continue;
            }
            let entry = serde_json::from_slice(line).map_err(|source| LogError::Parse {
                path: self.path.clone(),
                line: self.line,
                source,
            })?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("failed to parse line {line} of {}: {source}; the log is not in json-file format", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to encode a log entry as JSON: {0}")]
    Encode(#[source] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};

    use crate::testing::TempDir;

    /// Runs a container stand-in (`write`, given the write ends of its
    /// stdout and stderr pipes) and the LogWriter copying them into `path`.
    /// A deadlock fails the test instead of hanging it.
    fn capture(path: &Path, write: impl FnOnce(File, File) + Send + 'static) {
        let (out_r, out_w) = nix::unistd::pipe().unwrap();
        let (err_r, err_w) = nix::unistd::pipe().unwrap();
        let container = std::thread::spawn(move || write(File::from(out_w), File::from(err_w)));
        let (done_tx, done_rx) = mpsc::channel();
        let path = path.to_path_buf();
        std::thread::spawn(move || {
            let result = LogWriter::open(&path).and_then(|mut w| w.copy(Some(out_r), Some(err_r)));
            let _ = done_tx.send(result.map_err(|e| e.to_string()));
        });
        let result = done_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the LogWriter did not finish: deadlocked on a full pipe?");
        result.unwrap();
        container.join().unwrap();
    }

    /// What `mini-docker logs` prints, per stream.
    fn replay(entries: &[Entry]) -> (Vec<u8>, Vec<u8>) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        for entry in entries {
            print_entry(entry, &mut out, &mut err).unwrap();
        }
        (out, err)
    }

    #[test]
    fn logs_give_back_exactly_the_bytes_the_container_wrote() {
        let dir = TempDir::new("logs-round-trip");
        let path = dir.0.join("c-json.log");
        let long: String = "é".repeat(MAX_ENTRY) + "\n"; // 32 KiB of 2-byte characters
        let stdout_chunks: Vec<Vec<u8>> = vec![
            b"plain line\n".to_vec(),
            "unicode: h\u{e9}llo \u{4e16}\u{754c} \u{1f680}\n"
                .as_bytes()
                .to_vec(),
            b"\x00\x01\x07\x1b[31mred\x1b[0m\ttab\r\n".to_vec(),
            // A character split across two writes.
            vec![b'x', 0xe4, 0xb8],
            vec![0x96, b'\n'],
            b"\"quotes\" and \\backslashes\\ {\"json\":1}\n".to_vec(),
            long.into_bytes(),
            b"\n\n".to_vec(),
            b"no newline at the end".to_vec(),
        ];
        let stderr_chunks: Vec<Vec<u8>> = vec![
            b"error: one\n".to_vec(),
            b"partial ".to_vec(),
            b"line finished later\n".to_vec(),
            b"\r progress 50%\r progress 100%\n".to_vec(),
            b"last without newline".to_vec(),
        ];
        let (want_out, want_err) = (stdout_chunks.concat(), stderr_chunks.concat());
        capture(&path, move |mut out, mut err| {
            // Interleaved, as a container writing to both would.
            for i in 0..stdout_chunks.len().max(stderr_chunks.len()) {
                if let Some(chunk) = stdout_chunks.get(i) {
                    out.write_all(chunk).unwrap();
                }
                if let Some(chunk) = stderr_chunks.get(i) {
                    err.write_all(chunk).unwrap();
                }
            }
        });

        let entries = read(&path, None).unwrap();
        let (out, err) = replay(&entries);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want_out)
        );
        assert_eq!(out, want_out);
        assert_eq!(err, want_err);

        for entry in &entries {
            assert!(entry.log.len() <= MAX_ENTRY, "{} bytes", entry.log.len());
            assert!(!entry.log.contains('\u{fffd}'), "{:?}", entry.log);
            // A newline only ever ends an entry.
            assert!(
                !entry.log.trim_end_matches('\n').contains('\n'),
                "{:?}",
                entry.log
            );
        }
        let stdout: Vec<&str> = entries
            .iter()
            .filter(|e| e.stream == Stream::Stdout)
            .map(|e| e.log.as_str())
            .collect();
        assert_eq!(stdout[0], "plain line\n");
        assert_eq!(stdout[3], "x\u{4e16}\n");
        // The 32 KiB line in two full entries and the newline on its own.
        assert_eq!(stdout[5], "é".repeat(MAX_ENTRY / 2));
        assert_eq!(stdout[6], "é".repeat(MAX_ENTRY / 2));
        assert_eq!(stdout[7], "\n");
        assert_eq!(stdout.last(), Some(&"no newline at the end"));
        let times: Vec<SystemTime> = entries.iter().map(|e| e.time).collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "entries out of order"
        );
    }

    #[test]
    fn the_file_is_dockers_json_file_format() {
        let dir = TempDir::new("logs-format");
        let path = dir.0.join("c-json.log");
        capture(&path, |mut out, mut err| {
            out.write_all(b"hi\n").unwrap();
            drop(out);
            err.write_all(b"oops\n").unwrap();
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let time = regex::Regex::new(r#""time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z"\}$"#)
            .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with(r#"{"log":"hi\n","stream":"stdout","time":""#),
            "{text}"
        );
        assert!(
            lines[1].starts_with(r#"{"log":"oops\n","stream":"stderr","time":""#),
            "{text}"
        );
        assert!(lines.iter().all(|l| time.is_match(l)), "{text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn bytes_that_are_not_utf8_become_replacement_characters_as_in_docker() {
        let dir = TempDir::new("logs-invalid-utf8");
        let path = dir.0.join("c-json.log");
        capture(&path, |mut out, _err| out.write_all(b"a\xffb\n").unwrap());
        let entries = read(&path, None).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].log, "a\u{fffd}b\n");
    }

    #[test]
    fn a_mebibyte_on_each_stream_does_not_deadlock() {
        let dir = TempDir::new("logs-large");
        let path = dir.0.join("c-json.log");
        let line = "0123456789abcdef".repeat(4) + "\n"; // 65 bytes
        let mib: String = line.repeat((1 << 20) / line.len() + 1);
        let (want_out, want_err) = (mib.clone().into_bytes(), mib.to_uppercase().into_bytes());
        let (out_bytes, err_bytes) = (want_out.clone(), want_err.clone());
        capture(&path, move |mut out, mut err| {
            // All of stderr first: a reader that drained stdout to its end
            // before looking at stderr would wait forever on a full pipe.
            err.write_all(&err_bytes).unwrap();
            drop(err);
            out.write_all(&out_bytes).unwrap();
        });
        let (out, err) = replay(&read(&path, None).unwrap());
        assert_eq!(out.len(), want_out.len());
        assert!(out == want_out, "stdout differs");
        assert!(err == want_err, "stderr differs");
    }

    #[test]
    fn utf8_cut_never_splits_a_character() {
        let text = "a\u{e9}\u{4e16}\u{1f680}";
        let bytes = text.as_bytes();
        for max in 1..=bytes.len() {
            let cut = utf8_cut(bytes, max);
            assert!(cut <= max);
            assert!(text.is_char_boundary(cut), "max {max} cut {cut}");
        }
        // Not UTF-8 at all: cut where asked.
        assert_eq!(utf8_cut(&[0x80, 0x80, 0x80, 0x80, 0x80], 4), 4);
        assert_eq!(utf8_cut(&[0xe4, 0xb8], 2), 2);
    }

    fn write_entries(path: &Path, texts: &[&str]) {
        let mut writer = LogWriter::open(path).unwrap();
        for (i, text) in texts.iter().enumerate() {
            let stream = if i % 2 == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            writer.write_entry(stream, text.as_bytes()).unwrap();
        }
    }

    fn logs(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.log.as_str()).collect()
    }

    #[test]
    fn read_returns_the_last_entries_with_tail() {
        let dir = TempDir::new("logs-tail");
        let path = dir.0.join("c-json.log");
        assert!(
            read(&path, None).unwrap().is_empty(),
            "a missing log is empty"
        );
        write_entries(&path, &["1\n", "2\n", "3\n", "4\n"]);
        assert_eq!(
            logs(&read(&path, None).unwrap()),
            ["1\n", "2\n", "3\n", "4\n"]
        );
        assert_eq!(logs(&read(&path, Some(2)).unwrap()), ["3\n", "4\n"]);
        assert_eq!(logs(&read(&path, Some(10)).unwrap()).len(), 4);
        assert!(read(&path, Some(0)).unwrap().is_empty());

        // An entry still being written is not returned yet.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"log":"5\n","stream":"std"#).unwrap();
        assert_eq!(read(&path, None).unwrap().len(), 4);
        file.write_all(b"out\",\"time\":\"2026-11-29T18:00:00.123456789Z\"}\n")
            .unwrap();
        let entries = read(&path, None).unwrap();
        assert_eq!(entries[4].log, "5\n");
        assert_eq!(
            crate::support::time::format_rfc3339(entries[4].time),
            "2026-11-29T18:00:00.123456789Z"
        );

        file.write_all(b"not json\n").unwrap();
        let err = read(&path, None).unwrap_err().to_string();
        assert!(err.contains("line 6"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn follow_prints_the_tail_then_everything_appended_until_told_to_stop() {
        let dir = TempDir::new("logs-follow");
        let path = dir.0.join("c-json.log");
        write_entries(&path, &["old 1\n", "old 2\n", "old 3\n"]);

        let stop = Arc::new(AtomicBool::new(false));
        // Appending starts once the tail is out, so the tail is certain.
        let (start_tx, start_rx) = mpsc::channel::<()>();
        let appender = {
            let (path, stop) = (path.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                start_rx.recv().unwrap();
                let mut writer = LogWriter::open(&path).unwrap();
                let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
                for i in 0..200 {
                    writer
                        .write_entry(Stream::Stdout, format!("new {i}\n").as_bytes())
                        .unwrap();
                    if i == 100 {
                        // Half an entry, finished by the next write.
                        raw.write_all(br#"{"log":"split\n","stream":"stderr","#)
                            .unwrap();
                        raw.write_all(b"\"time\":\"2026-11-29T18:00:00Z\"}\n")
                            .unwrap();
                    }
                }
                stop.store(true, Ordering::SeqCst);
            })
        };
        let mut seen = Vec::new();
        follow(
            &path,
            Some(1),
            || !stop.load(Ordering::SeqCst),
            |entry| {
                seen.push(entry.log.clone());
                let _ = start_tx.send(());
            },
        )
        .unwrap();
        appender.join().unwrap();

        let mut want = vec!["old 3\n".to_string()];
        for i in 0..200 {
            want.push(format!("new {i}\n"));
            if i == 100 {
                want.push("split\n".to_string());
            }
        }
        assert_eq!(seen, want);
    }

    #[test]
    fn follow_waits_for_a_log_that_does_not_exist_yet() {
        let dir = TempDir::new("logs-follow-missing");
        let path = dir.0.join("c-json.log");
        let mut seen = Vec::new();
        follow(&path, None, || false, |e| seen.push(e.clone())).unwrap();
        assert!(seen.is_empty());

        let mut calls = 0;
        follow(
            &path,
            Some(0),
            || {
                calls += 1;
                if calls == 3 {
                    write_entries(&path, &["late\n"]);
                }
                calls < 3
            },
            |e| seen.push(e.clone()),
        )
        .unwrap();
        // --tail 0 applies to what existed when following began: nothing,
        // so the entry written later is shown.
        assert_eq!(logs(&seen), ["late\n"]);
    }
}
