//! Name resolution on a user-defined network, the way podman's
//! aardvark-dns does it: no daemon, one small resolver process per
//! network, started by the first container that joins it and ended (by its
//! PID) when the last one leaves. It listens on the network's gateway (the
//! bridge's address, on the host), so a container's `/etc/resolv.conf`
//! names that address.
//!
//! It is fed by a file per network, `RUN/network/dns/NETWORK.names`,
//! rewritten with the address file under the network lock (one line per
//! container: `IP OWNER CONTAINER NAME ALIAS…`), and reads it again
//! whenever it changes. It answers only for containers whose processes
//! live, so a container that was killed is a name gone at once, even
//! before anything cleans up after it. A name without a dot that is not a
//! container's does not exist (NXDOMAIN); every other name is forwarded to
//! the host's own resolvers (those of `/etc/resolv.conf`, reachable from
//! the host even when they are on its loopback, as systemd-resolved's
//! 127.0.0.53 is). The wire format is simple-dns's.
//!
//! (Docker's answer is a resolver inside every container's namespace, at
//! 127.0.0.11, served by the daemon through a socket it plants there. The
//! lab has no daemon to serve it, and one process per network is fewer
//! than one per container.)

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{fork, ForkResult, Pid};
use simple_dns::rdata::{RData, A};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};

use super::registry::{Entry, NetworkLock, Process};
use super::{Network, NetworkError};
use crate::engine::dirs::LabDirs;
use crate::kernel::process::is_alive;
use crate::support::error::io_err;
use crate::support::fs::{lock_file, write_replacing};

/// Where the resolver finds the host's resolvers: `/etc/resolv.conf`
/// unless this names another file (the tests' fake upstream).
pub const RESOLV_CONF_ENV: &str = "CONTAINER_LAB_RESOLV_CONF";

/// The time to live of the resolver's answers: none, so that a removed
/// container is a name gone for every client at once.
const TTL: u32 = 0;

fn dir(dirs: &LabDirs) -> PathBuf {
    dirs.run.join("network").join("dns")
}

/// The file the resolver of network `name` reads its names from.
pub fn names_file(dirs: &LabDirs, name: &str) -> PathBuf {
    dir(dirs).join(format!("{name}.names"))
}

/// Where the resolver's PID (and start time) is written down.
pub fn pid_file(dirs: &LabDirs, name: &str) -> PathBuf {
    dir(dirs).join(format!("{name}.pid"))
}

/// The PID of network `name`'s resolver, while it runs.
pub fn resolver_pid(dirs: &LabDirs, name: &str) -> Option<i32> {
    let text = fs::read_to_string(pid_file(dirs, name)).ok()?;
    let (pid, start) = text.trim().split_once(':')?;
    let (pid, start): (i32, u64) = (pid.parse().ok()?, start.parse().ok()?);
    is_alive(pid, start).then_some(pid)
}

/// One line of a names file: the address, both processes whose life is the
/// entry's, and every name.
fn names_line(entry: &Entry) -> String {
    let process = |p: Process| format!("{}:{}", p.pid, p.start_time);
    let mut line = format!(
        "{} {} {} {}",
        entry.ip,
        process(entry.owner),
        process(entry.container),
        entry.name
    );
    for alias in &entry.aliases {
        line.push(' ');
        line.push_str(alias);
    }
    line.push('\n');
    line
}

/// Rewrites the names file of every network with name resolution that
/// has an entry or had a file: called with every change of the address
/// file, under the lock.
pub(super) fn write_names(lock: &NetworkLock, entries: &[Entry]) -> Result<(), NetworkError> {
    let dir = dir(lock.dirs());
    let default = Network::default_bridge().name;
    let mut networks: Vec<String> = entries
        .iter()
        .filter(|e| e.network != default)
        .map(|e| e.network.clone())
        .collect();
    if let Ok(files) = fs::read_dir(&dir) {
        networks.extend(files.flatten().filter_map(|f| {
            let name = f.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".names").map(str::to_string)
        }));
    }
    networks.sort();
    networks.dedup();
    if networks.is_empty() {
        return Ok(());
    }
    lock.dirs().create_dir(&dir)?;
    for network in networks {
        let text: String = entries
            .iter()
            .filter(|e| e.network == network)
            .map(names_line)
            .collect();
        write_replacing(&names_file(lock.dirs(), &network), text.as_bytes())?;
    }
    Ok(())
}

/// Starts the network's resolver unless it runs: binds the gateway's port
/// 53 here (so that a failure is ours to report), then leaves the socket
/// to a process of its own, detached from ours.
// ANCHOR: ensure_resolver
pub(super) fn ensure_resolver(lock: &NetworkLock, network: &Network) -> Result<(), NetworkError> {
    let dirs = lock.dirs();
    if resolver_pid(dirs, &network.name).is_some() {
        return Ok(());
    }
    let socket = UdpSocket::bind((network.gateway, 53)).map_err(|e| {
        NetworkError::Resolver(format!(
            "cannot listen on {}:53 for network {}: {e}",
            network.gateway, network.name
        ))
    })?;
    let resolver = Resolver {
        socket,
        names: names_file(dirs, &network.name),
        pid_file: pid_file(dirs, &network.name),
        lock: dirs.run.join("network").join("lock"),
        upstreams: if network.internal {
            Vec::new()
        } else {
            upstreams(network)
        },
    };
    lock.dirs().create_dir(&dir(dirs))?;
    let pid = resolver.spawn()?;
    let start = crate::kernel::process::start_time(pid).unwrap_or(0);
    let file = pid_file(dirs, &network.name);
    Ok(write_replacing(
        &file,
        format!("{pid}:{start}\n").as_bytes(),
    )?)
}
// ANCHOR_END: ensure_resolver

/// Ends the network's resolver by its PID (SIGTERM, then SIGKILL after a
/// second), and removes its files.
pub(super) fn stop_resolver(lock: &NetworkLock, network: &Network) {
    let dirs = lock.dirs();
    if let Some(pid) = resolver_pid(dirs, &network.name) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let start = crate::kernel::process::start_time(pid).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(1);
        while is_alive(pid, start) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if is_alive(pid, start) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    for file in [
        pid_file(dirs, &network.name),
        names_file(dirs, &network.name),
    ] {
        let _ = fs::remove_file(file);
    }
    let _ = fs::remove_dir(dir(dirs));
}

/// The host's resolvers, from `/etc/resolv.conf` (or the file
/// [`RESOLV_CONF_ENV`] names); IPv4 only, never the network's own.
pub fn upstreams(network: &Network) -> Vec<SocketAddr> {
    let path = std::env::var_os(RESOLV_CONF_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf"));
    parse_nameservers(&fs::read_to_string(path).unwrap_or_default())
        .into_iter()
        .filter(|ip| *ip != network.gateway)
        .map(|ip| SocketAddr::from((ip, 53)))
        .collect()
}

/// The `nameserver` lines of a resolv.conf, with an optional `:PORT` the
/// tests use for their fake upstream (glibc would ignore the line).
fn parse_nameservers(text: &str) -> Vec<Ipv4Addr> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse().ok())
        .collect()
}

/// What the resolver process holds.
struct Resolver {
    socket: UdpSocket,
    names: PathBuf,
    pid_file: PathBuf,
    lock: PathBuf,
    upstreams: Vec<SocketAddr>,
}

impl Resolver {
    /// Forks twice, so that the resolver is nobody's child of ours and no
    /// zombie when it ends; returns its PID. It keeps only its socket.
    fn spawn(self) -> Result<i32, NetworkError> {
        let failed = |e: nix::Error| NetworkError::Resolver(format!("fork: {e}"));
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(failed)?;
        crate::kernel::process::flush_stdio();
        match unsafe { fork() }.map_err(failed)? {
            ForkResult::Child => {
                drop(read);
                let _ = nix::unistd::setsid();
                match unsafe { fork() } {
                    Ok(ForkResult::Child) => {
                        let pid = std::process::id().to_ne_bytes();
                        let _ = nix::unistd::write(&write, &pid);
                        drop(write);
                        crate::kernel::signals::reset_to_default();
                        // SIGTERM must end it, whatever the caller blocked.
                        let _ = nix::sys::signal::sigprocmask(
                            nix::sys::signal::SigmaskHow::SIG_SETMASK,
                            Some(&nix::sys::signal::SigSet::empty()),
                            None,
                        );
                        // Nothing of the caller's: a pipe it holds open
                        // (a test's stdout) must close when it ends.
                        if let Ok(null) = fs::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open("/dev/null")
                        {
                            for fd in 0..=2 {
                                let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
                            }
                        }
                        let _ = crate::kernel::init::close_fds_except(&[self.socket.as_raw_fd()]);
                        self.serve();
                        unsafe { libc::_exit(0) }
                    }
                    _ => unsafe { libc::_exit(0) },
                }
            }
            ForkResult::Parent { child } => {
                drop(write);
                let _ = nix::sys::wait::waitpid(child, None);
                let mut pid = [0u8; 4];
                match nix::unistd::read(read.as_raw_fd(), &mut pid) {
                    Ok(4) => Ok(i32::from_ne_bytes(pid)),
                    _ => Err(NetworkError::Resolver(
                        "the resolver process did not start".to_string(),
                    )),
                }
            }
        }
    }

    /// Answers until its names file is removed, or no container of the
    /// network has lived for a few seconds (then it checks again under
    /// the lock, so that no container is joining, and leaves).
    // ANCHOR: serve
    fn serve(self) {
        let _ = self.socket.set_read_timeout(Some(Duration::from_secs(1)));
        let mut names = Names::default();
        let mut idle_since: Option<Instant> = None;
        let mut buffer = [0u8; 1500];
        loop {
            let received = self.socket.recv_from(&mut buffer);
            // Read after the wait, so that a question is answered from
            // the file as it is now.
            if !names.reload(&self.names) {
                return;
            }
            match received {
                Ok((n, client)) => self.answer(&names, &buffer[..n], client),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    if names.any_alive() {
                        idle_since = None;
                    } else if idle_since.get_or_insert_with(Instant::now).elapsed()
                        > Duration::from_secs(3)
                        && self.leave_if_unused()
                    {
                        return;
                    }
                }
            }
        }
    }
    // ANCHOR_END: serve

    /// Under the network lock: still no live container? Then the PID file
    /// goes, and so does this process (the lock with it).
    fn leave_if_unused(&self) -> bool {
        let Ok(_lock) = lock_file(&self.lock, false) else {
            return false;
        };
        let mut names = Names::default();
        if names.reload(&self.names) && names.any_alive() {
            return false;
        }
        let ours = fs::read_to_string(&self.pid_file)
            .is_ok_and(|t| t.starts_with(&format!("{}:", std::process::id())));
        if ours {
            let _ = fs::remove_file(&self.pid_file);
        }
        true
    }

    fn answer(&self, names: &Names, query: &[u8], client: SocketAddr) {
        let Ok(packet) = Packet::parse(query) else {
            return;
        };
        let Some(question) = packet.questions.first() else {
            return;
        };
        let asked = question
            .qname
            .to_string()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let reply = match names.lookup(&asked) {
            Some(ip) => {
                let wants_a = matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY);
                let answers = wants_a.then(|| {
                    ResourceRecord::new(
                        question.qname.clone(),
                        CLASS::IN,
                        TTL,
                        RData::A(A::from(ip)),
                    )
                });
                reply(&packet, answers, RCODE::NoError)
            }
            // A name without a dot is a container's or nobody's: no
            // upstream knows it (and none is asked about the network's own).
            None if !asked.contains('.') => reply(&packet, None, RCODE::NameError),
            None if self.upstreams.is_empty() => reply(&packet, None, RCODE::ServerFailure),
            None => {
                self.forward(query.to_vec(), client);
                return;
            }
        };
        if let Some(bytes) = reply {
            let _ = self.socket.send_to(&bytes, client);
        }
    }

    /// Another name: asked of each upstream in turn, on a thread of its
    /// own, and its answer passed back as it came.
    fn forward(&self, query: Vec<u8>, client: SocketAddr) {
        let (Ok(socket), upstreams) = (self.socket.try_clone(), self.upstreams.clone()) else {
            return;
        };
        std::thread::spawn(move || {
            let Ok(out) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
                return;
            };
            let _ = out.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buffer = [0u8; 4096];
            for upstream in upstreams {
                if out.send_to(&query, upstream).is_err() {
                    continue;
                }
                if let Ok((n, from)) = out.recv_from(&mut buffer) {
                    if from == upstream {
                        let _ = socket.send_to(&buffer[..n], client);
                        return;
                    }
                }
            }
        });
    }
}

/// A reply to `query` with its question and these answers.
fn reply(query: &Packet, answer: Option<ResourceRecord>, rcode: RCODE) -> Option<Vec<u8>> {
    let mut reply = Packet::new_reply(query.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RECURSION_AVAILABLE);
    if query.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    *reply.rcode_mut() = rcode;
    reply.questions = query.questions.clone();
    reply.answers.extend(answer);
    reply.build_bytes_vec_compressed().ok()
}

/// The names file as last read.
#[derive(Default)]
struct Names {
    /// Its inode and change time: each rewrite is a new file (renamed into
    /// place), so the inode tells even two rewrites within a clock tick.
    modified: Option<(u64, SystemTime)>,
    lines: Vec<NameLine>,
}

struct NameLine {
    ip: Ipv4Addr,
    processes: [Process; 2],
    names: Vec<String>,
}

impl Names {
    /// Reads the file again if it changed; false once it is gone.
    fn reload(&mut self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(modified) = fs::metadata(path).and_then(|m| Ok((m.ino(), m.modified()?))) else {
            return false;
        };
        if self.modified == Some(modified) {
            return true;
        }
        let Ok(text) = fs::read_to_string(path).map_err(io_err("read", path)) else {
            return false;
        };
        self.modified = Some(modified);
        self.lines = parse_names(&text);
        true
    }

    fn any_alive(&self) -> bool {
        self.lines
            .iter()
            .any(|l| l.processes.iter().any(|p| p.is_alive()))
    }

    /// The address of the live container called `name` (or aliased so).
    fn lookup(&self, name: &str) -> Option<Ipv4Addr> {
        self.lines
            .iter()
            .filter(|l| l.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
            .find(|l| l.processes.iter().any(|p| p.is_alive()))
            .map(|l| l.ip)
    }
}

fn parse_names(text: &str) -> Vec<NameLine> {
    let process = |text: &str| -> Option<Process> {
        let (pid, start) = text.split_once(':')?;
        Some(Process {
            pid: pid.parse().ok()?,
            start_time: start.parse().ok()?,
        })
    };
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let ip = words.next()?.parse().ok()?;
            let processes = [process(words.next()?)?, process(words.next()?)?];
            let names: Vec<String> = words.map(str::to_string).collect();
            (!names.is_empty()).then_some(NameLine {
                ip,
                processes,
                names,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_files_are_read_back() {
        let me = Process::current();
        let entry = Entry {
            ip: Ipv4Addr::new(10, 89, 0, 2),
            name: "web".into(),
            owner: me,
            container: me,
            host_end: "vh".into(),
            peer: "vc".into(),
            ports: Vec::new(),
            table: "t".into(),
            network: "front".into(),
            aliases: vec!["www".into()],
        };
        let line = names_line(&entry);
        let names = Names {
            modified: None,
            lines: parse_names(&format!("{line}garbage\n10.89.0.3 1:2 3:4\n")),
        };
        assert_eq!(names.lines.len(), 1);
        assert_eq!(names.lookup("WWW"), Some(entry.ip));
        assert_eq!(names.lookup("web"), Some(entry.ip));
        assert_eq!(names.lookup("db"), None);
        assert!(names.any_alive());
        assert_eq!(
            parse_nameservers("# x\nnameserver 127.0.0.53\nnameserver ::1\nsearch lan\n"),
            [Ipv4Addr::new(127, 0, 0, 53)]
        );
    }

    #[test]
    fn a_known_name_gets_its_address_and_no_other_record() {
        let mut query = Packet::new_query(7);
        query.set_flags(PacketFlag::RECURSION_DESIRED);
        query.questions.push(simple_dns::Question::new(
            simple_dns::Name::new_unchecked("web"),
            QTYPE::TYPE(TYPE::A),
            simple_dns::QCLASS::CLASS(CLASS::IN),
            false,
        ));
        let ip = Ipv4Addr::new(10, 89, 0, 2);
        let answer = ResourceRecord::new(
            query.questions[0].qname.clone(),
            CLASS::IN,
            TTL,
            RData::A(A::from(ip)),
        );
        let bytes = reply(&query, Some(answer), RCODE::NoError).unwrap();
        let parsed = Packet::parse(&bytes).unwrap();
        assert_eq!(parsed.id(), 7);
        assert_eq!(parsed.rcode(), RCODE::NoError);
        assert!(parsed.has_flags(PacketFlag::RESPONSE | PacketFlag::RECURSION_DESIRED));
        match &parsed.answers[..] {
            [record] => {
                assert!(matches!(&record.rdata, RData::A(a) if Ipv4Addr::from(a.address) == ip))
            }
            other => panic!("{other:?}"),
        }
    }
}
