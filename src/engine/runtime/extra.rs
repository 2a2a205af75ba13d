//! The rest of Docker's `run` flags: what the container sees of itself
//! (`--add-host`, `--dns`), its labels and metadata, and the process's
//! limits (`--ulimit`, `--shm-size`, `--sysctl`, `--group-add`). Kept apart
//! from `RunConfig`'s core so that each stays readable; stored with it.

use serde::{Deserialize, Serialize};

/// Docker's `--ulimit NAME=SOFT[:HARD]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// What `--log-driver` keeps of the container's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogDriver {
    /// Docker's default: JSON lines in the container's log file.
    #[default]
    JsonFile,
    /// Nothing is kept; `logs` has nothing to show.
    None,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunExtras {
    /// `--add-host NAME:IP`, lines of /etc/hosts after Docker's own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add_hosts: Vec<(String, String)>,
    /// `--dns IP`: the nameservers of /etc/resolv.conf, instead of the host's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// `--dns-search DOMAIN`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// `-l KEY=VALUE`, in the order given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
    /// `--expose PORT[/PROTO]` (and the ports `-p` publishes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// `-P`: every exposed port on a free host port.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub publish_all: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    /// `--shm-size`: the size of /dev/shm (Docker: 64 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    /// `--sysctl KEY=VALUE`, namespaced ones only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<(String, String)>,
    /// `--group-add GROUP`: supplementary groups, names or numbers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    pub log_driver: LogDriver,
    /// `--pid host`: the host's PID namespace.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pid_host: bool,
    /// `--ipc`: "private" (Docker 20.10's default), "shareable", "none",
    /// "host" or "container:NAME".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// `--sig-proxy=false`: signals to a foreground run are not passed on.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_sig_proxy: bool,
    /// The names of its anonymous volumes (`-v /target`), one for each,
    /// in order: chosen at create, kept across restarts, gone with `rm -v`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anonymous_volumes: Vec<String>,
    /// `--cidfile FILE`: where the container's ID was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidfile: Option<String>,
    /// `network connect`: the networks it is on besides `--network`'s,
    /// in the order connected; every start attaches them again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Connection>,
}

/// One `network connect NETWORK CONTAINER`, as Docker keeps it in the
/// container's NetworkSettings.Networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub network: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
}

/// Docker's `--ulimit` names and the kernel's resources.
pub fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

/// Docker's `--ulimit NAME=SOFT[:HARD]`.
pub fn parse_ulimit(text: &str) -> Result<Ulimit, String> {
    let (name, values) = text
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {text}"))?;
    if rlimit_resource(name).is_none() {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let number = |v: &str| -> Result<u64, String> {
        if v == "-1" {
            return Ok(libc::RLIM_INFINITY);
        }
        v.parse()
            .map_err(|_| format!("invalid ulimit argument: {text}"))
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (number(s)?, number(h)?),
        None => (number(values)?, number(values)?),
    };
    if soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// Docker's rule for `--sysctl`: only what the container's own namespaces
/// hold (IPC: `kernel.msg*`, `kernel.sem`, `kernel.shm*`, `fs.mqueue.*`;
/// network: `net.*`; neither with the host's namespace).
pub fn check_sysctl(key: &str, host_network: bool, ipc: Option<&str>) -> Result<(), String> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        // With the host's IPC namespace it would be the host's setting.
        if ipc == Some("host") {
            return Err(format!("sysctl {key:?} not allowed in host IPC namespace"));
        }
        // Another container's namespace: its setting, not this one's.
        if let Some(other) = ipc.and_then(|m| m.strip_prefix("container:")) {
            return Err(format!(
                "sysctl {key:?} not allowed with --ipc container:{other}: it would change that container's IPC namespace; set it there"
            ));
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if host_network {
            return Err(format!(
                "sysctl {key:?} not allowed in host network namespace"
            ));
        }
        return Ok(());
    }
    Err(format!(
        "sysctl {key:?} is not whitelisted: only namespaced ones (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.*) can be set for one container"
    ))
}
