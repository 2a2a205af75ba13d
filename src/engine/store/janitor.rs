//! A helper process for `run --rm`: forked while the run is still small,
//! it waits until the run has exited and then deletes what the run moved
//! into the trash. Spawning `rm` at the end instead costs the run about a
//! millisecond: the spawn waits until the child has exec'd.
//!
//! The helper holds the read end of a pipe whose write end only the run
//! holds. When the run exits (or is killed, or drops the [`Janitor`]) the
//! read returns end-of-file, and the helper deletes every entry of the
//! trash that carries the run's tag. A helper killed half-way leaves
//! the rest to the next `create`, as a killed `rm` does.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The run's side: the pipe's write end. Keep it until the process exits.
#[derive(Debug)]
pub struct Janitor {
    _wakes_on_close: OwnedFd,
}

impl Janitor {
    /// Forks the helper for `trash` entries named `TAG.*` (the calling
    /// process's tag). `None` when it cannot: deletions then spawn `rm`.
    pub(super) fn start(trash: &Path, tag: &str) -> Option<Janitor> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
        let prefix = format!("{tag}.");
        crate::kernel::process::flush_stdio();
        // Safety: mini-docker is single-threaded when it forks this, so the
        // child may allocate; it only reads, deletes files and exits.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                drop(write);
                detach(&read);
                wait_for_close(&read);
                delete_tagged(trash, &prefix);
                unsafe { libc::_exit(0) }
            }
            Ok(nix::unistd::ForkResult::Parent { .. }) => Some(Janitor {
                _wakes_on_close: write,
            }),
            Err(_) => None,
        }
    }
}

/// In the helper: out of the terminal's process group (a Ctrl-C is the
/// run's, not its), default signal handling, no inherited descriptor but
/// the pipe (a reader of the run's output must see its end when the run
/// ends), and stdio on /dev/null.
fn detach(keep: &OwnedFd) {
    // Safety: plain system calls on descriptors of this process.
    unsafe {
        libc::setpgid(0, 0);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(signal, libc::SIG_DFL);
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        let keep = keep.as_raw_fd() as libc::c_uint;
        libc::close_range(3, keep - 1, 0);
        libc::close_range(keep + 1, libc::c_uint::MAX, 0);
    }
}

fn wait_for_close(read: &OwnedFd) {
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(read.as_raw_fd(), &mut byte) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(n) if n > 0 => continue,
            _ => return,
        }
    }
}

fn delete_tagged(trash: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(trash) else {
        return;
    };
    let mine: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    for dir in mine {
        let _ = crate::engine::dirs::remove_tree(&dir);
    }
}
