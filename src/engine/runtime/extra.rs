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
    /// `--ipc`: "private" (Docker's default is "private" or "shareable"), "host".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// `--sig-proxy=false`: signals to a foreground run are not passed on.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_sig_proxy: bool,
    /// `--entrypoint`, kept apart for `inspect` (the command starts with it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// The names of its anonymous volumes (`-v /target`), one for each,
    /// in order: chosen at create, kept across restarts, gone with `rm -v`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anonymous_volumes: Vec<String>,
    /// `--cidfile FILE`: where the container's ID was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidfile: Option<String>,
}
