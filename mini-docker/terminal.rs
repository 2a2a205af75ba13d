//! `-t`: the container gets a terminal of its own (made from its own
//! /dev/ptmx and handed to us over a console socket), and a thread relays
//! between it and ours, in raw mode with `-i` so that every key, Ctrl-C
//! included, reaches the container's program.

use std::os::fd::{AsFd, OwnedFd};
use std::thread::JoinHandle;

use container_lab::engine::lifecycle::Lifecycle;
use container_lab::engine::runtime::exec::ExecRequest;
use container_lab::engine::runtime::{Explain, StdinMode, Stdio};
use container_lab::engine::store::Record;
use container_lab::engine::supervisor::Attach;
use container_lab::kernel::pty;

/// `run -t`: the container's foreground run, with a terminal.
pub fn run_with_terminal(
    lifecycle: &Lifecycle,
    record: &Record,
    explain: Explain,
) -> anyhow::Result<i32> {
    let (ours, theirs) = pty::console_socket()?;
    // Started before the container is cloned: it only waits in recvmsg,
    // holding no lock the cloned child could need.
    let relay = spawn_relay(ours, record.config.interactive);
    let io = Stdio {
        stdin: StdinMode::Null,
        console: Some(theirs),
        ..Stdio::default()
    };
    let result = lifecycle.run_attached(record, Attach::Terminal(io), explain);
    let _ = relay.join();
    Ok(result?)
}

/// `exec -t`
pub fn exec_with_terminal(
    lifecycle: &Lifecycle,
    key: &str,
    mut request: ExecRequest,
) -> anyhow::Result<i32> {
    let (ours, theirs) = pty::console_socket()?;
    let relay = spawn_relay(ours, request.interactive);
    request.console = Some(theirs);
    let result = lifecycle.exec(key, request);
    let _ = relay.join();
    Ok(result?)
}

/// Receives the container's terminal, copies our window size onto it,
/// puts our terminal in raw mode (with `-i`) and relays until the
/// container's side is closed; the terminal is restored on the way out.
pub(crate) fn spawn_relay(socket: OwnedFd, interactive: bool) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(Some(master)) = pty::receive_master(socket.as_fd()) else {
            return;
        };
        drop(socket);
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        let _ = pty::copy_window_size(stdout.as_fd(), master.as_fd());
        let null = std::fs::File::open("/dev/null");
        let (_raw, input) = match (interactive, &null) {
            (true, _) => (
                pty::RawMode::enter(stdin.as_fd()).ok().flatten(),
                stdin.as_fd(),
            ),
            (false, Ok(null)) => (None, null.as_fd()),
            (false, Err(_)) => (None, stdin.as_fd()),
        };
        if let Err(err) = pty::relay(master.as_fd(), input, stdout.as_fd()) {
            eprintln!("mini-docker: {err}");
        }
    })
}

/// `--runtime PATH run -t`: a console socket at `path` (runc's
/// `--console-socket` names one) whose first caller hands us the terminal.
pub fn relay_from_socket(path: &std::path::Path, interactive: bool) -> anyhow::Result<SocketRelay> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    let accepted = Arc::new(AtomicBool::new(false));
    let flag = accepted.clone();
    let thread = std::thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            flag.store(true, Ordering::SeqCst);
            let _ = spawn_relay(OwnedFd::from(stream), interactive).join();
        }
    });
    Ok(SocketRelay {
        path: path.to_path_buf(),
        accepted,
        thread,
    })
}

/// The relay of [`relay_from_socket`].
pub struct SocketRelay {
    path: std::path::PathBuf,
    accepted: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: JoinHandle<()>,
}

impl SocketRelay {
    /// Waits for the relay to end once the container has; a runtime that
    /// failed before it called is stood in for, so the accept returns.
    pub fn finish(self) {
        if !self.accepted.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = std::os::unix::net::UnixStream::connect(&self.path);
        }
        let _ = self.thread.join();
    }
}
