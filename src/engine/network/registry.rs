//! Who holds what on the lab's networks: one line per container in
//! `RUN/network/addresses`, read and changed only under the network lock.
//!
//! ```text
//! 172.29.0.2 web 4242:981233 4250:981240 vh-lab2 vc-lab2 tcp/0.0.0.0:8080:80 container_lab_2 bridge -
//! IP         NAME OWNER      CONTAINER   HOST_END PEER   PORTS (- for none)  TABLE           NETWORK ALIASES
//! ```
//!
//! (A line of an earlier version ends after PORTS: its table is then
//! `container_lab_N` for address `….N`, on the default bridge; or after
//! NETWORK, without aliases.) A container on several networks has a line
//! for each.
//!
//! OWNER is the process that attached the container (mini-docker's
//! supervisor, a chapter), CONTAINER its first process, each as PID:START
//! (the start time in clock ticks, field 22 of /proc/PID/stat), because the
//! kernel reuses PIDs. An entry is alive while either process is; a dead
//! one is garbage that the next holder of the lock removes, links and table
//! by their names. The entry is written before any link exists, so whatever
//! a killed run left is named in this file.

use std::cell::Cell;
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use nix::fcntl::Flock;

use super::{Network, NetworkError, PortMapping, NFT_TABLE};
use crate::engine::dirs::LabDirs;
use crate::support::error::IoError;
use crate::support::fs::{lock_file, write_replacing};

/// A process, told apart from a later one with the same PID by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    pub pid: i32,
    pub start_time: u64,
}

impl Process {
    pub fn current() -> Process {
        Process::of(std::process::id() as i32)
    }

    pub fn of(pid: i32) -> Process {
        Process {
            pid,
            start_time: crate::kernel::process::start_time(pid).unwrap_or(0),
        }
    }

    /// Still the same process, and not a zombie.
    pub fn is_alive(self) -> bool {
        crate::kernel::process::is_alive(self.pid, self.start_time)
    }
}

/// One container's place on a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ip: Ipv4Addr,
    pub name: String,
    pub owner: Process,
    pub container: Process,
    pub host_end: String,
    pub peer: String,
    pub ports: Vec<PortMapping>,
    /// Its table of published ports (made only when it publishes some).
    pub table: String,
    /// The network's name.
    pub network: String,
    /// `--network-alias`: more names it is known by on that network.
    pub aliases: Vec<String>,
}

impl Entry {
    /// While the container's first process lives, so does its network
    /// namespace and the veth in it, even if its supervisor was killed.
    pub fn is_alive(&self) -> bool {
        self.owner.is_alive() || self.container.is_alive()
    }

    fn to_line(&self) -> String {
        let ports = if self.ports.is_empty() {
            "-".to_string()
        } else {
            self.ports
                .iter()
                .map(|p| {
                    let ip = p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
                    format!("{}/{ip}:{}:{}", p.protocol, p.host_port, p.container_port)
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let aliases = if self.aliases.is_empty() {
            "-".to_string()
        } else {
            self.aliases.join(",")
        };
        format!(
            "{} {} {}:{} {}:{} {} {} {ports} {} {} {aliases}\n",
            self.ip,
            self.name,
            self.owner.pid,
            self.owner.start_time,
            self.container.pid,
            self.container.start_time,
            self.host_end,
            self.peer,
            self.table,
            self.network
        )
    }

    fn parse(line: &str) -> Option<Entry> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (&[ip, name, owner, container, host_end, peer, ports], rest) =
            fields.split_at_checked(7)?
        else {
            return None;
        };
        let ip: Ipv4Addr = ip.parse().ok()?;
        let (table, network, aliases) = match rest {
            [table, network, "-"] | [table, network] => {
                (table.to_string(), network.to_string(), Vec::new())
            }
            [table, network, aliases] => (
                table.to_string(),
                network.to_string(),
                aliases.split(',').map(str::to_string).collect(),
            ),
            // The first version's line.
            [] => (
                format!("{NFT_TABLE}_{}", ip.octets()[3]),
                Network::default_bridge().name,
                Vec::new(),
            ),
            _ => return None,
        };
        let process = |text: &str| -> Option<Process> {
            let (pid, start) = text.split_once(':')?;
            Some(Process {
                pid: pid.parse().ok()?,
                start_time: start.parse().ok()?,
            })
        };
        let port = |text: &str| -> Option<PortMapping> {
            let (protocol, rest) = text.split_once('/')?;
            let mut parts = rest.split(':');
            let ip: Ipv4Addr = parts.next()?.parse().ok()?;
            Some(PortMapping {
                host_ip: (!ip.is_unspecified()).then_some(ip),
                host_port: parts.next()?.parse().ok()?,
                container_port: parts.next()?.parse().ok()?,
                protocol: protocol.to_string(),
            })
        };
        let ports = match ports {
            "-" => Vec::new(),
            list => list.split(',').map(port).collect::<Option<Vec<_>>>()?,
        };
        Some(Entry {
            ip,
            name: name.to_string(),
            owner: process(owner)?,
            container: process(container)?,
            host_end: host_end.to_string(),
            peer: peer.to_string(),
            ports,
            table,
            network,
            aliases,
        })
    }
}

thread_local! {
    /// Whether this thread holds the network lock: a second `take` is a
    /// bug (flock on a new open file description would wait for ever), so
    /// it fails at once instead.
    static HELD: Cell<bool> = const { Cell::new(false) };
}

/// The one lock of the lab's network. The address file, the bridge, the
/// shared table and the sysctls change only while it is held, so a
/// container never joins a bridge being deleted and two containers never
/// get one address. Functions that need it take `&NetworkLock`: proof that
/// the caller holds it, and a reason never to take it again.
pub struct NetworkLock {
    _flock: Flock<fs::File>,
    file: PathBuf,
    dirs: LabDirs,
}

impl NetworkLock {
    pub fn take(dirs: &LabDirs) -> Result<NetworkLock, NetworkError> {
        if HELD.with(Cell::get) {
            return Err(NetworkError::LockHeld);
        }
        let dir = dirs.run.join("network");
        // Root's alone, as every state directory of the lab (see dirs.rs).
        dirs.create_dir(&dir)?;
        // Held only for bounded work (netlink, nft), so waiting is safe; a
        // signal must not make a cleanup skip its part.
        let flock = lock_file(&dir.join("lock"), true)?;
        HELD.with(|held| held.set(true));
        Ok(NetworkLock {
            _flock: flock,
            file: dir.join("addresses"),
            dirs: dirs.clone(),
        })
    }

    pub fn dirs(&self) -> &LabDirs {
        &self.dirs
    }

    /// The entries; a line that cannot be read is skipped with a warning
    /// (through the `log` facade).
    pub fn entries(&self) -> Result<Vec<Entry>, NetworkError> {
        let text = match fs::read_to_string(&self.file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(NetworkError::Io(IoError::new("read", &self.file, e))),
        };
        Ok(text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .filter_map(|line| {
                let entry = Entry::parse(line);
                if entry.is_none() {
                    log::warn!(
                        "skipping an unreadable line in {}: {line}",
                        self.file.display()
                    );
                }
                entry
            })
            .collect())
    }

    /// Replaces the file whole (write, then rename), so a reader or a
    /// killed writer never leaves half a file. (Not fsynced: it lasts one
    /// boot, as the links it describes.)
    pub fn save(&self, entries: &[Entry]) -> Result<(), NetworkError> {
        let text: String = entries.iter().map(Entry::to_line).collect();
        write_replacing(&self.file, text.as_bytes())?;
        // Each resolver reads its network's names from a file of its own.
        super::dns::write_names(self, entries)
    }
}

impl Drop for NetworkLock {
    fn drop(&mut self) {
        HELD.with(|held| held.set(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            ip: Ipv4Addr::new(172, 29, 0, 7),
            name: "web".into(),
            owner: Process {
                pid: 10,
                start_time: 20,
            },
            container: Process {
                pid: 11,
                start_time: 21,
            },
            host_end: "vh-lab7".into(),
            peer: "vc-lab7".into(),
            table: "container_lab_7".into(),
            network: "bridge".into(),
            aliases: Vec::new(),
            ports: vec![
                PortMapping {
                    host_ip: None,
                    host_port: 8080,
                    container_port: 80,
                    protocol: "tcp".into(),
                },
                PortMapping {
                    host_ip: Some(Ipv4Addr::LOCALHOST),
                    host_port: 53,
                    container_port: 5353,
                    protocol: "udp".into(),
                },
            ],
        }
    }

    #[test]
    fn entries_read_back_what_was_written() {
        let entry = entry();
        let line = entry.to_line();
        assert_eq!(
            line,
            "172.29.0.7 web 10:20 11:21 vh-lab7 vc-lab7 tcp/0.0.0.0:8080:80,udp/127.0.0.1:53:5353 container_lab_7 bridge -\n"
        );
        assert_eq!(Entry::parse(&line), Some(entry.clone()));
        let aliased = Entry {
            aliases: vec!["db".into(), "cache".into()],
            ..entry.clone()
        };
        assert!(aliased.to_line().ends_with(" bridge db,cache\n"));
        assert_eq!(Entry::parse(&aliased.to_line()), Some(aliased));
        // The second version's line: no aliases.
        let second = line.trim_end().strip_suffix(" -").unwrap();
        assert_eq!(Entry::parse(second), Some(entry.clone()));
        // A line of the previous version: its table and network follow.
        let old =
            "172.29.0.7 web 10:20 11:21 vh-lab7 vc-lab7 tcp/0.0.0.0:8080:80,udp/127.0.0.1:53:5353";
        assert_eq!(Entry::parse(old), Some(entry.clone()));
        let bare = Entry {
            ports: Vec::new(),
            ..entry
        };
        assert_eq!(Entry::parse(&bare.to_line()), Some(bare));
        for bad in [
            "",
            "172.29.0.7 web 10",
            "x web 1:2 3:4 a b -",
            "172.29.0.7 web 1:2 3:4 a b tcp",
            "172.29.0.7 web 1:2 3:4 a b - container_lab_7",
            "172.29.0.7 web 1:2 3:4 a b - container_lab_7 bridge - x",
        ] {
            assert_eq!(Entry::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_dead_process_or_a_reused_pid_is_not_alive() {
        let me = Process::current();
        assert!(me.is_alive());
        let reused = Process {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!reused.is_alive());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = Process::of(child.id() as i32);
        child.wait().unwrap();
        assert!(!gone.is_alive());
    }

    #[test]
    fn the_lock_cannot_be_taken_twice_by_one_thread() {
        let root = std::env::temp_dir().join(format!("lab-netlock-{}", std::process::id()));
        let dirs = LabDirs {
            data: root.join("lib"),
            run: root.join("run"),
        };
        let held = NetworkLock::take(&dirs).unwrap();
        assert!(matches!(
            NetworkLock::take(&dirs),
            Err(NetworkError::LockHeld)
        ));
        drop(held);
        drop(NetworkLock::take(&dirs).unwrap());
        let _ = fs::remove_dir_all(&root);
    }
}
