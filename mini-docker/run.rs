//! `mini-docker run`: Docker's flags, turned into a `RunConfig`.

use std::path::PathBuf;

use clap::Args;
use container_lab::engine::network::{self, PortMapping};
use container_lab::engine::runtime::config::{self, NetworkMode, RestartPolicy, RunConfig};
use container_lab::engine::runtime::extra::{self, LogDriver, RunExtras};
use container_lab::engine::volumes::{self, TmpfsSpec, VolumeSpec};
use container_lab::kernel::cgroups::devices::{self, DeviceSpec};
use container_lab::kernel::cgroups::{self, Limit, Limits, ThrottleSpec};
use container_lab::kernel::hardening::{self, Profile};
use container_lab::lab::cli;

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (-h is --hostname, as in Docker)
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Print every step as it is applied, with its shell equivalent
    #[arg(long)]
    pub explain: bool,
    /// Run the container in the background and print its ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long, value_parser = cli::parse_name)]
    pub name: Option<String>,
    /// Container host name
    #[arg(short = 'h', long, value_parser = cli::parse_hostname)]
    pub hostname: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to pass ours on)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = config::parse_env)]
    env: Vec<(String, Option<String>)>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Memory limit (e.g. 32m, 1g)
    #[arg(short = 'm', long, value_parser = cgroups::parse_size)]
    memory: Option<u64>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true, value_parser = parse_memory_swap)]
    memory_swap: Option<Limit>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "BYTES", value_parser = parse_bytes)]
    memory_reservation: Option<u64>,
    /// CPU shares (relative weight; Docker's -c is left out: it would take
    /// a command's own -c after the image)
    #[arg(long = "cpu-shares", value_name = "SHARES", value_parser = clap::value_parser!(u64).range(2..=262144))]
    cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "CPUS", value_parser = parse_cpuset)]
    cpuset_cpus: Option<String>,
    /// Number of CPUs
    #[arg(long, value_parser = cgroups::parse_cpus)]
    cpus: Option<f64>,
    /// Tune container pids limit
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pids_limit: Option<u64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long, value_name = "WEIGHT", value_parser = cgroups::parse_blkio_weight)]
    blkio_weight: Option<u16>,
    /// Limit read rate (bytes per second) from a device (PATH:RATE, e.g. /dev/sda:1mb)
    #[arg(long, value_name = "PATH:RATE", value_parser = cgroups::parse_device_bps)]
    device_read_bps: Vec<ThrottleSpec>,
    /// Limit write rate (bytes per second) to a device (PATH:RATE, e.g. /dev/sda:1mb)
    #[arg(long, value_name = "PATH:RATE", value_parser = cgroups::parse_device_bps)]
    device_write_bps: Vec<ThrottleSpec>,
    /// Limit read rate (IO per second) from a device (PATH:RATE, e.g. /dev/sda:1000)
    #[arg(long, value_name = "PATH:RATE", value_parser = cgroups::parse_device_iops)]
    device_read_iops: Vec<ThrottleSpec>,
    /// Limit write rate (IO per second) to a device (PATH:RATE, e.g. /dev/sda:1000)
    #[arg(long, value_name = "PATH:RATE", value_parser = cgroups::parse_device_iops)]
    device_write_iops: Vec<ThrottleSpec>,
    /// Bind mount a volume (SOURCE:TARGET[:ro]; SOURCE a host path or a volume name)
    #[arg(short = 'v', long = "volume", value_name = "SOURCE:TARGET", value_parser = volumes::parse_volume)]
    volumes: Vec<VolumeSpec>,
    /// Mount a tmpfs directory (TARGET[:OPTIONS])
    #[arg(long, value_name = "TARGET", value_parser = volumes::parse_tmpfs)]
    tmpfs: Vec<TmpfsSpec>,
    /// Publish a container's port to the host ([IP:][HOST_PORT:]PORT[/tcp|udp])
    #[arg(short = 'p', long = "publish", value_name = "PORTS", value_parser = config::parse_publish)]
    publish: Vec<PortMapping>,
    /// Connect a container to a network: bridge, none, host, a network's
    /// name or container:NAME
    #[arg(long, default_value = "bridge", value_parser = parse_network)]
    network: NetworkMode,
    /// Add a network-scoped alias for the container
    #[arg(long = "network-alias", value_name = "ALIAS", value_parser = parse_alias)]
    network_aliases: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104), on a user-defined network
    #[arg(long)]
    ip: Option<std::net::Ipv4Addr>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "CAP", value_parser = parse_cap)]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "CAP", value_parser = parse_cap)]
    cap_drop: Vec<String>,
    /// Add a host device to the container (HOST_PATH[:CONTAINER_PATH][:PERMISSIONS], permissions of rwm)
    #[arg(long = "device", value_name = "DEVICE", value_parser = devices::parse_device)]
    devices: Vec<DeviceSpec>,
    /// Give extended privileges to this container
    #[arg(long)]
    privileged: bool,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
    /// Restart policy when the container exits: no, on-failure[:N], always, unless-stopped
    #[arg(long, value_name = "POLICY", default_value = "no", value_parser = config::parse_restart)]
    restart: RestartPolicy,
    /// Timeout (in seconds) to stop a container
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    stop_timeout: u32,
    /// Set meta data on a container (KEY=VALUE)
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    label: Vec<(String, String)>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "HOST:IP", value_parser = parse_add_host)]
    add_host: Vec<(String, String)>,
    /// Set custom DNS servers
    #[arg(long = "dns", value_name = "IP", value_parser = parse_ip)]
    dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    dns_search: Vec<String>,
    /// Expose a port or a range of ports (PORT[/PROTO], FROM-TO[/PROTO])
    #[arg(long = "expose", value_name = "PORT", value_parser = parse_expose)]
    expose: Vec<Vec<String>>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Attach a filesystem mount to the container (type=bind|volume|tmpfs,source=…,target=…[,readonly])
    #[arg(long = "mount", value_name = "MOUNT", value_parser = parse_mount)]
    mount: Vec<Mount>,
    /// Ulimit options (NAME=SOFT[:HARD])
    #[arg(long = "ulimit", value_name = "ULIMIT", value_parser = extra::parse_ulimit)]
    ulimit: Vec<extra::Ulimit>,
    /// Size of /dev/shm (e.g. 128m)
    #[arg(long = "shm-size", value_name = "BYTES", value_parser = parse_bytes)]
    shm_size: Option<u64>,
    /// Sysctl options (KEY=VALUE, namespaced ones only)
    #[arg(long = "sysctl", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    sysctl: Vec<(String, String)>,
    /// Add additional groups to join
    #[arg(long = "group-add", value_name = "GROUP")]
    group_add: Vec<String>,
    /// Write the container ID to the file
    #[arg(long = "cidfile", value_name = "FILE")]
    cidfile: Option<PathBuf>,
    /// Logging driver for the container: json-file or none
    #[arg(long = "log-driver", value_name = "DRIVER", default_value = "json-file", value_parser = parse_log_driver)]
    log_driver: LogDriver,
    /// Pull image before running: always, missing or never
    #[arg(long = "pull", value_name = "POLICY", default_value = "missing", value_parser = ["always", "missing", "never"])]
    pull: String,
    /// PID namespace to use: host, or the container's own
    #[arg(long = "pid", value_name = "MODE", value_parser = ["host", "private"])]
    pid: Option<String>,
    /// IPC mode to use: private, shareable, none, host or container:NAME
    #[arg(long = "ipc", value_name = "MODE", value_parser = parse_ipc)]
    ipc: Option<String>,
    /// Security options: no-new-privileges[:true|false], seccomp=unconfined|FILE
    #[arg(long = "security-opt", value_name = "OPTION")]
    security_opt: Vec<String>,
    /// Proxy received signals to the process (default true)
    #[arg(long = "sig-proxy", value_name = "BOOL", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// The image: busybox, or any in the store (pulled when missing)
    pub image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Docker refuses `-it` when its stdin is not a terminal, and exits 1.
#[derive(Debug, thiserror::Error)]
#[error("the input device is not a TTY")]
pub struct NotATty;

pub fn check_terminal() -> Result<(), NotATty> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        Ok(())
    } else {
        Err(NotATty)
    }
}

/// Docker's `RAMInBytes`: a number with b, k, m or g (any case, an
/// optional trailing b): `64m`, `1g`, `512kb`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size: {text:?}: use a number with b, k, m or g, such as 64m");
    let lower = text.to_ascii_lowercase();
    let trimmed = lower
        .strip_suffix('b')
        .filter(|t| !t.is_empty() && t.ends_with(['k', 'm', 'g']))
        .unwrap_or(&lower);
    let (number, scale) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1u64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        Some('b') => (&trimmed[..trimmed.len() - 1], 1),
        _ => (trimmed, 1),
    };
    let value: f64 = number.parse().map_err(|_| invalid())?;
    if value <= 0.0 {
        return Err(invalid());
    }
    Ok((value * scale as f64) as u64)
}

/// What `--mount` adds: a bind or a volume, or a tmpfs.
#[derive(Debug, Clone)]
pub enum Mount {
    Volume(VolumeSpec),
    Tmpfs(TmpfsSpec),
}

/// Docker's `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]
/// [,tmpfs-size=…][,tmpfs-mode=…]` (also `src`, `dst`, `destination`, `ro`).
fn parse_mount(text: &str) -> Result<Mount, String> {
    let invalid = |why: &str| format!("invalid argument {text:?} for \"--mount\" flag: {why}");
    let (mut kind, mut source, mut target, mut read_only) = ("volume", None, None, false);
    let mut tmpfs_options = Vec::new();
    for field in text.split(',') {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        match key {
            "type" => {
                kind = match value {
                    "bind" => "bind",
                    "volume" => "volume",
                    "tmpfs" => "tmpfs",
                    other => {
                        return Err(invalid(&format!(
                            "unknown mount type {other:?}: use bind, volume or tmpfs"
                        )))
                    }
                }
            }
            "source" | "src" => source = Some(value.to_string()),
            "target" | "dst" | "destination" => target = Some(value.to_string()),
            "readonly" | "ro" => read_only = value.is_empty() || value == "true" || value == "1",
            "tmpfs-size" => tmpfs_options.push(format!("size={}", parse_bytes(value)?)),
            "tmpfs-mode" => tmpfs_options.push(format!("mode={value}")),
            "bind-propagation" | "volume-nocopy" | "consistency" => {}
            other => return Err(invalid(&format!("unexpected key '{other}' in '{field}'"))),
        }
    }
    let target = target.ok_or_else(|| invalid("field target must not be empty"))?;
    let mode = if read_only { ":ro" } else { "" };
    match (kind, source) {
        ("tmpfs", Some(_)) => Err(invalid("source is not supported for tmpfs mounts")),
        ("tmpfs", None) => {
            if read_only {
                tmpfs_options.push("ro".into());
            }
            volumes::parse_tmpfs(&format!("{target}:{}", tmpfs_options.join(","))).map(Mount::Tmpfs)
        }
        ("bind", None) => Err(invalid("field source must not be empty")),
        ("bind", Some(source)) => {
            if !source.starts_with('/') {
                return Err(invalid("the bind source must be an absolute path"));
            }
            if !std::path::Path::new(&source).exists() {
                return Err(format!("invalid mount config for type \"bind\": bind source path does not exist: {source}"));
            }
            volumes::parse_volume(&format!("{source}:{target}{mode}")).map(Mount::Volume)
        }
        (_, None) => volumes::parse_volume(&target).map(|mut v| {
            v.read_only = read_only;
            Mount::Volume(v)
        }),
        (_, Some(name)) => {
            volumes::parse_volume(&format!("{name}:{target}{mode}")).map(Mount::Volume)
        }
    }
}

/// `--expose 80`, `--expose 80/udp`, `--expose 8000-8002`: Docker's keys.
fn parse_expose(text: &str) -> Result<Vec<String>, String> {
    let (ports, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
    if protocol != "tcp" && protocol != "udp" {
        return Err(format!("invalid proto: {protocol}"));
    }
    let number = |p: &str| -> Result<u16, String> {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid range format for --expose: {text}"))
    };
    let (low, high) = match ports.split_once('-') {
        Some((l, h)) => (number(l)?, number(h)?),
        None => (number(ports)?, number(ports)?),
    };
    if low > high {
        return Err(format!("invalid range format for --expose: {text}"));
    }
    Ok((low..=high).map(|p| format!("{p}/{protocol}")).collect())
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("invalid argument {text:?}: use KEY=VALUE")),
    }
}

fn parse_log_driver(text: &str) -> Result<LogDriver, String> {
    match text {
        "json-file" => Ok(LogDriver::JsonFile),
        "none" => Ok(LogDriver::None),
        other => Err(format!(
            "logging driver {other:?} is not supported here: use json-file or none"
        )),
    }
}

/// `-l KEY=VALUE`, or `KEY` with an empty value, as Docker takes them.
fn parse_label(value: &str) -> Result<(String, String), String> {
    let (key, val) = value.split_once('=').unwrap_or((value, ""));
    if key.is_empty() {
        return Err(format!("invalid label '{value}': empty name"));
    }
    Ok((key.to_string(), val.to_string()))
}

/// `--add-host NAME:IP` (Docker also takes `NAME=IP`).
fn parse_add_host(value: &str) -> Result<(String, String), String> {
    let (name, ip) = value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .ok_or_else(|| format!("bad format for add-host: {value:?}: use HOST:IP"))?;
    if name.is_empty() {
        return Err(format!("bad format for add-host: {value:?}: use HOST:IP"));
    }
    Ok((name.to_string(), parse_ip(ip)?))
}

/// An IPv4 or IPv6 address, as `--dns` and `--add-host` take it.
fn parse_ip(value: &str) -> Result<String, String> {
    value
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| format!("invalid IP address: {value}"))
}

/// `--memory-swap`: a size, or -1 for no limit.
fn parse_memory_swap(value: &str) -> Result<Limit, String> {
    if value == "-1" {
        return Ok(Limit::Unlimited);
    }
    cgroups::parse_size(value).map(Limit::At)
}

/// `--cpuset-cpus`: numbers and ranges, as the kernel lists them, on CPUs
/// this machine has.
fn parse_cpuset(value: &str) -> Result<String, String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let invalid = || {
        format!(
            "invalid value {value:?} for cpuset cpus: use numbers and ranges such as 0-1 or 0,2"
        )
    };
    for part in value.split(',') {
        let (low, high) = part.split_once('-').unwrap_or((part, part));
        let (low, high): (usize, usize) = (
            low.parse().map_err(|_| invalid())?,
            high.parse().map_err(|_| invalid())?,
        );
        if low > high {
            return Err(invalid());
        }
        if high >= cpus {
            return Err(format!(
                "requested CPUs are not available - requested {value}, available: 0-{}",
                cpus - 1
            ));
        }
    }
    Ok(value.to_string())
}

fn parse_cap(value: &str) -> Result<String, String> {
    hardening::canonical(value).map(|_| value.to_string())
}

/// Docker's IPC modes; `container:NAME` joins that one's namespace.
fn parse_ipc(value: &str) -> Result<String, String> {
    match value.strip_prefix("container:") {
        Some(name) if !name.is_empty() => Ok(value.to_string()),
        None if ["private", "shareable", "none", "host"].contains(&value) => Ok(value.to_string()),
        _ => Err(format!("invalid IPC mode: {value}")),
    }
}

fn parse_network(value: &str) -> Result<NetworkMode, String> {
    match NetworkMode::parse(value) {
        NetworkMode::Container(name) if name.is_empty() => {
            Err("container: needs a container's name or ID, e.g. container:web".to_string())
        }
        NetworkMode::Named(name) if network::defined::check_name(&name).is_err() => Err(format!(
            "unknown network {name:?}: use bridge, none, host, container:NAME or a network's name"
        )),
        mode => Ok(mode),
    }
}

fn parse_alias(value: &str) -> Result<String, String> {
    cli::parse_hostname(value)
        .map_err(|_| format!("invalid --network-alias {value:?}: use letters, digits, - and ."))
}

impl RunArgs {
    /// Checks what clap could not and builds the configuration; nothing is
    /// created yet, so an error here leaves nothing behind. Its name and
    /// hostname are the store's to set, with the record.
    pub fn config(&self) -> anyhow::Result<RunConfig> {
        if self.tty && self.interactive && !self.detach {
            check_terminal()?;
        }
        if self.rm && self.restart != RestartPolicy::No {
            anyhow::bail!("conflicting options: --restart and --rm (a container removed at exit cannot be restarted)");
        }
        match (self.memory, self.memory_swap) {
            (None, Some(_)) => anyhow::bail!(
                "you should always set the memory limit when using the memoryswap limit, see usage"
            ),
            (Some(m), Some(Limit::At(total))) if total < m => anyhow::bail!(
                "minimum memoryswap limit should be larger than memory limit, see usage"
            ),
            _ => {}
        }
        if let NetworkMode::Container(_) = self.network {
            // Docker's refusals: these are the other container's to decide.
            let conflict = if self.hostname.is_some() {
                Some("hostname")
            } else if !self.dns.is_empty() {
                Some("dns")
            } else if !self.add_host.is_empty() {
                Some("custom host-to-IP mapping")
            } else {
                None
            };
            if let Some(what) = conflict {
                anyhow::bail!("conflicting options: {what} and the network mode");
            }
            if !self.publish.is_empty() || self.publish_all {
                anyhow::bail!(
                    "conflicting options: port publishing and the container type network mode"
                );
            }
            if !self.expose.is_empty() {
                anyhow::bail!(
                    "conflicting options: port exposing and the container type network mode"
                );
            }
        }
        if self.publish_all && self.network != NetworkMode::Bridge {
            anyhow::bail!("-P needs the bridge network: published ports are DNAT rules to the container's own address");
        }
        for (key, _) in &self.sysctl {
            extra::check_sysctl(key, self.network == NetworkMode::Host, self.ipc.as_deref())
                .map_err(anyhow::Error::msg)?;
        }
        if let Some(file) = &self.cidfile {
            if file.exists() {
                anyhow::bail!(
                    "container ID file found, make sure the other container isn't running or delete {}",
                    file.display()
                );
            }
        }
        if self.pull == "never" {
            use container_lab::engine::images::local;
            let dirs = container_lab::engine::dirs::LabDirs::from_env();
            local::open(&dirs)
                .and_then(|store| local::resolve(&store, &dirs, &self.image))
                .map_err(|_| {
                    let name = container_lab::engine::images::Reference::parse(&self.image)
                        .map_or(self.image.clone(), |r| r.familiar());
                    anyhow::anyhow!("Error response from daemon: No such image: {name}")
                })?;
        }
        if let Some(dir) = &self.workdir {
            config::check_workdir(dir).map_err(anyhow::Error::msg)?;
        }
        if !self.publish.is_empty() && !self.network.has_bridge() {
            anyhow::bail!("-p needs the bridge network or a user-defined one: published ports are DNAT rules to the container's own address");
        }
        if let NetworkMode::Named(name) = &self.network {
            let dirs = container_lab::engine::dirs::LabDirs::from_env();
            // Unreadable without root: then the start checks it.
            if let Ok(None) = network::Network::named(&dirs, name) {
                anyhow::bail!("network {name} not found; create it with `network create {name}` or list them with `network ls`");
            }
        } else if !self.network_aliases.is_empty() {
            anyhow::bail!(
                "network-scoped alias is supported only for containers in user defined networks"
            );
        } else if self.ip.is_some() {
            anyhow::bail!("user specified IP address is supported on user defined networks only");
        }
        let mut env = Vec::new();
        for file in &self.env_file {
            env.extend(config::read_env_file(file).map_err(anyhow::Error::msg)?);
        }
        // `-e KEY` for a variable we do not have is left out.
        env.extend(
            self.env
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.clone()?))),
        );
        for device in &self.devices {
            device.resolve().map_err(anyhow::Error::msg)?;
        }
        // A missing device, or a partition, is refused before anything exists.
        for spec in self
            .device_read_bps
            .iter()
            .chain(&self.device_read_iops)
            .chain(&self.device_write_bps)
            .chain(&self.device_write_iops)
        {
            spec.resolve()?;
        }
        let mut profile = if self.privileged {
            Profile::privileged()
        } else {
            Profile::docker_default(&self.cap_add, &self.cap_drop).map_err(anyhow::Error::msg)?
        };
        self.apply_security_opts(&mut profile)?;
        Ok(RunConfig {
            name: String::new(),
            hostname: String::new(),
            image: self.image.clone(),
            env,
            // Empty is Docker's default, the image's (here /).
            workdir: self.workdir.clone().filter(|d| !d.is_empty()),
            user: self.user.clone(),
            // Combined with the image's Entrypoint and Cmd when the record
            // is made (engine::lifecycle::from_image).
            command: self.command.clone(),
            entrypoint: self.entrypoint.clone(),
            image_id: None,
            stop_signal: None,
            exposed_ports: Vec::new(),
            limits: Limits {
                memory_bytes: self.memory,
                // Docker: as much swap again as memory, unless --memory-swap.
                memory_swap: self
                    .memory
                    .map(|m| self.memory_swap.unwrap_or(Limit::At(m.saturating_mul(2)))),
                memory_reservation: self.memory_reservation,
                cpu_shares: self.cpu_shares,
                cpuset_cpus: self.cpuset_cpus.clone(),
                cpus: self.cpus,
                pids: self.pids_limit,
                blkio_weight: self.blkio_weight.filter(|w| *w != 0),
                device_read_bps: self.device_read_bps.clone(),
                device_write_bps: self.device_write_bps.clone(),
                device_read_iops: self.device_read_iops.clone(),
                device_write_iops: self.device_write_iops.clone(),
            },
            read_only: self.read_only,
            privileged: self.privileged,
            profile,
            network: self.network.clone(),
            network_aliases: self.network_aliases.clone(),
            ip: self.ip,
            publish: self.all_published(),
            volumes: self.all_volumes(),
            tmpfs: self
                .tmpfs
                .iter()
                .cloned()
                .chain(self.mount.iter().filter_map(|m| match m {
                    Mount::Tmpfs(t) => Some(t.clone()),
                    Mount::Volume(_) => None,
                }))
                .collect(),
            devices: self.devices.clone(),
            init: self.init,
            remove: self.rm,
            interactive: self.interactive,
            tty: self.tty,
            stop_timeout: self.stop_timeout,
            restart: self.restart,
            extra: RunExtras {
                no_sig_proxy: !self.sig_proxy,
                add_hosts: self.add_host.clone(),
                labels: self.label.clone(),
                expose: self.expose.iter().flatten().cloned().collect(),
                publish_all: self.publish_all,
                ulimits: self.ulimit.clone(),
                shm_size: self.shm_size,
                sysctls: self.sysctl.clone(),
                group_add: self.group_add.clone(),
                log_driver: self.log_driver,
                pid_host: self.pid.as_deref() == Some("host"),
                ipc: self.ipc.clone(),
                cidfile: self.cidfile.as_ref().map(|f| f.display().to_string()),
                anonymous_volumes: self
                    .all_volumes()
                    .iter()
                    .filter(|v| v.source == volumes::Source::Anonymous)
                    .map(|_| container_lab::support::ids::random_id())
                    .collect::<Result<_, _>>()?,
                dns: self.dns.clone(),
                dns_search: self.dns_search.clone(),
                networks: Vec::new(),
            },
        })
    }

    /// `-v` and `--mount type=bind|volume`, in that order.
    fn all_volumes(&self) -> Vec<VolumeSpec> {
        self.volumes
            .iter()
            .cloned()
            .chain(self.mount.iter().filter_map(|m| match m {
                Mount::Volume(v) => Some(v.clone()),
                Mount::Tmpfs(_) => None,
            }))
            .collect()
    }

    /// `-p`, and with `-P` every exposed port on a port the kernel picks.
    fn all_published(&self) -> Vec<PortMapping> {
        let mut ports = self.publish.clone();
        if self.publish_all {
            for port in self.expose.iter().flatten() {
                let (number, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
                let Ok(container_port) = number.parse() else {
                    continue;
                };
                if !ports
                    .iter()
                    .any(|p| p.container_port == container_port && p.protocol == protocol)
                {
                    ports.push(PortMapping {
                        host_ip: None,
                        host_port: 0,
                        container_port,
                        protocol: protocol.to_string(),
                    });
                }
            }
        }
        ports
    }

    /// `--cidfile`: the new container's ID, written once it exists.
    pub fn write_cidfile(&self, id: &str) -> anyhow::Result<()> {
        if let Some(file) = &self.cidfile {
            use std::io::Write;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(file)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "failed to create the container ID file {}: {e}",
                        file.display()
                    )
                })?;
            out.write_all(id.as_bytes())?;
        }
        Ok(())
    }

    /// `--pull never`: no pull, even of a missing image.
    pub fn may_pull(&self) -> bool {
        self.pull != "never"
    }

    /// `--pull always`: ask the registry even when the image is here.
    pub fn pulls_always(&self) -> bool {
        self.pull == "always"
    }

    /// The hostname for the record: `-h`, or with `--network host` the
    /// host's own (the store's default is the short ID).
    pub fn record_hostname(&self) -> Option<String> {
        match (&self.hostname, &self.network) {
            (Some(name), _) => Some(name.clone()),
            (None, NetworkMode::Host) => Some(container_lab::kernel::hostname::get()),
            // Docker's: the other container's (its files are shared too).
            (None, NetworkMode::Container(key)) => {
                let dirs = container_lab::engine::dirs::LabDirs::from_env();
                container_lab::engine::store::Store::new(&dirs)
                    .get(key)
                    .ok()
                    .map(|other| other.config.hostname)
            }
            (None, _) => None,
        }
    }

    /// Docker's `--security-opt`: `no-new-privileges[:true|false]` (or
    /// `=`), `seccomp=unconfined` and `seccomp=FILE` (Docker's JSON).
    fn apply_security_opts(&self, profile: &mut Profile) -> anyhow::Result<()> {
        for option in &self.security_opt {
            let (key, value) = match option.split_once(['=', ':']) {
                Some((k, v)) => (k, Some(v)),
                None => (option.as_str(), None),
            };
            match (key, value) {
                ("no-new-privileges", None | Some("true")) => profile.no_new_privs = true,
                ("no-new-privileges", Some("false")) => profile.no_new_privs = false,
                ("seccomp", Some("unconfined")) => {
                    profile.seccomp = false;
                    profile.seccomp_profile = None;
                }
                ("seccomp", Some(file)) if !file.is_empty() => {
                    let json = std::fs::read_to_string(file).map_err(|e| {
                        anyhow::anyhow!("opening seccomp profile ({file}) failed: {e}")
                    })?;
                    hardening::docker_profile::check(&json)
                        .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
                    if !self.privileged {
                        profile.seccomp = true;
                        profile.seccomp_profile = Some(json);
                    }
                }
                ("apparmor" | "label", _) => anyhow::bail!(
                    "invalid --security-opt {option:?}: the lab has no AppArmor or SELinux; use no-new-privileges or seccomp=unconfined|FILE"
                ),
                _ => anyhow::bail!(
                    "invalid --security-opt {option:?}: use no-new-privileges, seccomp=unconfined or seccomp=FILE"
                ),
            }
        }
        Ok(())
    }
}
