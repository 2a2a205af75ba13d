//! `container_lab::kernel::pty` checked from outside: a busybox shell runs on a pty from
//! `pty::open`, and the user's terminal is played by a second pty, so raw
//! mode, window sizes and Ctrl-C go through the real kernel line discipline.
//! The test reads that second pty's master the way a terminal emulator does.
//! No root needed.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

use container_lab::kernel::pty::{self, Pty, PtyError, RawMode, WindowSize};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::termios::{tcgetattr, tcsetattr, InputFlags, LocalFlags, OutputFlags, SetArg};

/// SIGWINCH is process-wide and wakes one relay: one test at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A child killed and reaped when the test ends early, so a failing test
/// leaves no `sleep 100` behind (and the relay thread sees the slave close).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `busybox sh -c SCRIPT` with the pty's slave as its controlling terminal.
fn spawn_on(slave: &OwnedFd, script: &str) -> Running {
    let slave = slave.as_raw_fd();
    let mut command = Command::new("/bin/busybox");
    command.args(["sh", "-c", script]);
    // Safety: between fork and exec only system calls, no allocation.
    unsafe {
        command.pre_exec(move || {
            // As a shell starts a foreground job: with SIGINT and SIGQUIT
            // at their defaults, also when this test was started in the
            // background of a shell without job control, which ignores
            // them (and an ignored signal stays ignored across exec).
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            let slave = BorrowedFd::borrow_raw(slave);
            match pty::make_controlling_terminal(slave) {
                Ok(()) => Ok(()),
                Err(PtyError::ControllingTerminal { errno, .. }) => {
                    Err(io::Error::from_raw_os_error(errno as i32))
                }
                Err(_) => Err(io::Error::from_raw_os_error(libc::EINVAL)),
            }
        });
    }
    Running(
        command
            .spawn()
            .expect("start /bin/busybox (install busybox-static)"),
    )
}

/// The relay as mini-docker runs it, with the simulated terminal's slave
/// as its stdin and stdout.
fn spawn_relay(master: OwnedFd, terminal: &OwnedFd) -> JoinHandle<Result<(), PtyError>> {
    let terminal = terminal.try_clone().unwrap();
    std::thread::spawn(move || pty::relay(master.as_fd(), terminal.as_fd(), terminal.as_fd()))
}

/// The emulator's side of the simulated terminal: what the user sees.
struct Screen {
    master: OwnedFd,
    seen: String,
}

impl Screen {
    /// Reads until `needle` has appeared. The 30 s limit only stops a
    /// broken relay from hanging the suite; it is no measurement.
    fn wait_for(&mut self, needle: &str) {
        while !self.seen.contains(needle) {
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            let ready = poll(&mut fds, PollTimeout::from(30_000u16)).unwrap();
            assert!(
                ready > 0,
                "{needle:?} did not appear within 30 s; the screen shows {:?}",
                self.seen
            );
            assert!(
                self.read_some(),
                "the terminal closed; it showed {:?}",
                self.seen
            );
        }
    }

    /// Everything left, once every fd of the terminal's slave is closed.
    fn rest(mut self) -> String {
        while self.read_some() {}
        println!("--- screen:\n{}", self.seen);
        self.seen
    }

    fn read_some(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(self.master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(Errno::EIO) => false,
            Ok(n) => {
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                true
            }
            Err(errno) => panic!("read the simulated terminal: {errno}"),
        }
    }

    fn type_in(&self, bytes: &[u8]) {
        assert_eq!(nix::unistd::write(&self.master, bytes), Ok(bytes.len()));
    }
}

/// The user's terminal, 33 rows by 101 columns, as a pty of its own.
fn users_terminal() -> (Screen, OwnedFd) {
    let Pty { master, slave } = pty::open(None).unwrap();
    pty::set_window_size(
        slave.as_fd(),
        WindowSize {
            rows: 33,
            cols: 101,
        },
    )
    .unwrap();
    (
        Screen {
            master,
            seen: String::new(),
        },
        slave,
    )
}

/// Field `n` (1-based, as in proc(5)) of /proc/PID/stat.
fn stat_field(pid: u32, n: usize) -> i64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = stat.rsplit(')').next().unwrap();
    after_comm
        .split_whitespace()
        .nth(n - 3)
        .unwrap()
        .parse()
        .unwrap()
}

/// A device number as /proc/PID/stat encodes `tty_nr`.
fn encode_dev(rdev: u64) -> i64 {
    let (major, minor) = (libc::major(rdev) as i64, libc::minor(rdev) as i64);
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

#[test]
fn a_shell_on_the_pty_has_a_terminal_the_window_size_and_the_users_input() {
    let _serial = one_at_a_time();
    let (mut screen, terminal) = users_terminal();
    let before = tcgetattr(&terminal).unwrap();

    let pty = pty::open(Some(terminal.as_fd())).unwrap();
    let slave_path = fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
    let slave_rdev = fs::metadata(&slave_path).unwrap().rdev();
    let mut child = spawn_on(
        &pty.slave,
        "stty size; tty; read line; echo got:$line; exit 3",
    );
    drop(pty.slave);

    let raw = RawMode::enter(terminal.as_fd())
        .unwrap()
        .expect("a pty is a terminal");
    let in_raw = tcgetattr(&terminal).unwrap();
    assert!(!in_raw
        .local_flags
        .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG));
    assert!(!in_raw.input_flags.contains(InputFlags::ICRNL));
    assert!(!in_raw.output_flags.contains(OutputFlags::OPOST));
    let relay = spawn_relay(pty.master, &terminal);

    // `tty` ran, so the shell is past make_controlling_terminal: check the
    // kernel's view of it before it gets its line.
    screen.wait_for(slave_path.to_str().unwrap());
    let pid = child.0.id();
    assert_eq!(
        stat_field(pid, 6),
        pid as i64,
        "the shell leads its own session"
    );
    assert_eq!(
        stat_field(pid, 7),
        encode_dev(slave_rdev),
        "its controlling terminal is the slave"
    );
    assert_eq!(
        stat_field(pid, 8),
        pid as i64,
        "its group is the terminal's foreground group"
    );
    screen.type_in(b"hello\n");

    assert_eq!(child.0.wait().unwrap().code(), Some(3));
    relay.join().unwrap().unwrap();
    drop(raw);
    assert_eq!(
        tcgetattr(&terminal).unwrap(),
        before,
        "RawMode must restore the terminal"
    );
    drop(terminal);
    let seen = screen.rest();
    assert!(seen.contains("33 101\r\n"), "stty size: {seen:?}");
    assert!(
        seen.contains(&format!("{}\r\n", slave_path.display())),
        "tty: {seen:?}"
    );
    assert!(seen.contains("got:hello\r\n"), "read: {seen:?}");
}

#[test]
fn ctrl_c_through_the_relay_is_sigint_for_the_foreground_process() {
    let _serial = one_at_a_time();
    let (mut screen, terminal) = users_terminal();
    let pty = pty::open(Some(terminal.as_fd())).unwrap();
    let mut child = spawn_on(&pty.slave, "echo ready; exec sleep 100");
    drop(pty.slave);
    let raw = RawMode::enter(terminal.as_fd()).unwrap().unwrap();
    let relay = spawn_relay(pty.master, &terminal);

    screen.wait_for("ready");
    // Raw mode: the user's terminal passes 0x03 on instead of signalling.
    screen.type_in(&[0x03]);

    let status = child.0.wait().unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGINT as i32), "{status:?}");
    relay.join().unwrap().unwrap();
    drop(raw);
    drop(terminal);
    screen.rest();
}

#[test]
fn a_resize_of_the_users_terminal_reaches_the_container() {
    let _serial = one_at_a_time();
    let (mut screen, terminal) = users_terminal();
    let pty = pty::open(Some(terminal.as_fd())).unwrap();
    let mut child = spawn_on(&pty.slave, "stty size; read x; stty size");
    drop(pty.slave);
    let raw = RawMode::enter(terminal.as_fd()).unwrap().unwrap();
    let relay = spawn_relay(pty.master, &terminal);

    screen.wait_for("33 101\r\n");
    pty::set_window_size(
        terminal.as_fd(),
        WindowSize {
            rows: 40,
            cols: 120,
        },
    )
    .unwrap();
    // What the kernel sends us on a resize; to this thread, so the handler
    // has run before the line below is typed.
    assert_eq!(
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGWINCH) },
        0
    );
    screen.type_in(b"\n");
    screen.wait_for("40 120\r\n");

    assert_eq!(child.0.wait().unwrap().code(), Some(0));
    relay.join().unwrap().unwrap();
    drop(raw);
    drop(terminal);
    screen.rest();
}

#[test]
fn the_relay_drains_all_output_and_outlives_the_end_of_its_input() {
    let _serial = one_at_a_time();
    let dir = std::env::temp_dir().join(format!("container-lab-pty-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("output");
    let output = fs::File::create(&out_path).unwrap();
    let input = fs::File::open("/dev/null").unwrap();

    let Pty { master, slave } = pty::open(None).unwrap();
    // More than every buffer between the program and us holds.
    let mut child = spawn_on(&slave, "seq 1 20000");
    drop(slave);
    pty::relay(master.as_fd(), input.as_fd(), output.as_fd()).unwrap();
    // Closing the master hangs up a program the relay left too early.
    drop(master);
    let status = child.0.wait().unwrap();

    let written = fs::read_to_string(&out_path).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    let expected: String = (1..=20000).map(|i| format!("{i}\r\n")).collect();
    let tail = &written[written.len().saturating_sub(40)..];
    assert_eq!(
        written.len(),
        expected.len(),
        "the output ends with {tail:?}"
    );
    assert!(written == expected, "the output differs from seq's");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_program_that_never_reads_its_input_does_not_stall_its_output() {
    let _serial = one_at_a_time();
    let dir = std::env::temp_dir().join(format!("container-lab-pty-stall-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let in_path = dir.join("input");
    // Whole lines: canonical mode drops the rest of a line that does not
    // fit, but keeps complete lines and makes the writer wait.
    fs::write(&in_path, "a line that nobody reads\n".repeat(10_000)).unwrap();
    let input = fs::File::open(&in_path).unwrap();
    let out_path = dir.join("output");
    let output = fs::File::create(&out_path).unwrap();

    let Pty { master, slave } = pty::open(None).unwrap();
    // No echo, so the output is the program's alone.
    let mut termios = tcgetattr(&slave).unwrap();
    termios.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&slave, SetArg::TCSANOW, &termios).unwrap();
    // The input fills the pty's buffers while the output fills the other way.
    let mut child = spawn_on(&slave, "seq 1 200000");
    drop(slave);
    // A relay stuck in a write to the master waits forever, and nothing
    // wakes it: after 30 s, end the program and this test binary instead.
    let (done, watch) = std::sync::mpsc::channel::<()>();
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    std::thread::spawn(move || {
        if watch
            .recv_timeout(std::time::Duration::from_secs(30))
            .is_err()
        {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            eprintln!("the relay stalled: it blocked on input the program never reads");
            std::process::abort();
        }
    });
    let relayed = pty::relay(master.as_fd(), input.as_fd(), output.as_fd());
    let _ = done.send(());
    relayed.unwrap();
    let status = child.0.wait().unwrap();

    let written = fs::read_to_string(&out_path).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    let expected: String = (1..=200_000).map(|i| format!("{i}\r\n")).collect();
    let tail = &written[written.len().saturating_sub(40)..];
    assert_eq!(
        written.len(),
        expected.len(),
        "the output ends with {tail:?}"
    );
    assert_eq!(status.code(), Some(0));
}

#[test]
fn open_gives_close_on_exec_fds_and_the_terminals_size() {
    let (_screen, terminal) = users_terminal();
    let pty = pty::open(Some(terminal.as_fd())).unwrap();
    for fd in [&pty.master, &pty.slave] {
        let flags = FdFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFD).unwrap());
        assert!(flags.contains(FdFlag::FD_CLOEXEC));
    }
    let size = Some(WindowSize {
        rows: 33,
        cols: 101,
    });
    assert_eq!(pty::window_size(pty.slave.as_fd()).unwrap(), size);
    assert_eq!(pty::window_size(pty.master.as_fd()).unwrap(), size);
}

#[test]
fn a_pipe_is_not_a_terminal() {
    let (read, _write) = nix::unistd::pipe().unwrap();
    assert!(RawMode::enter(read.as_fd()).unwrap().is_none());
    assert_eq!(pty::window_size(read.as_fd()).unwrap(), None);
    let pty = pty::open(Some(read.as_fd())).unwrap();
    assert_eq!(
        pty::window_size(pty.master.as_fd()).unwrap(),
        Some(WindowSize { rows: 0, cols: 0 })
    );
}
