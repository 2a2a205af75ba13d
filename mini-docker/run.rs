//! `mini-docker run`: Docker's flags, turned into a `RunConfig`.

use std::path::PathBuf;

use clap::Args;
use container_lab::engine::network::{self, PortMapping};
use container_lab::engine::runtime::config::{self, NetworkMode, RestartPolicy, RunConfig};
use container_lab::engine::volumes::{self, TmpfsSpec, VolumeSpec};
use container_lab::kernel::cgroups::devices::{self, DeviceSpec};
use container_lab::kernel::cgroups::{self, Limits, ThrottleSpec};
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
    env: Vec<(String, String)>,
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
    /// The image: busybox, or one brought in with `mini-docker import`
    pub image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn parse_cap(value: &str) -> Result<String, String> {
    hardening::canonical(value).map(|_| value.to_string())
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
        if self.rm && self.restart != RestartPolicy::No {
            anyhow::bail!("conflicting options: --restart and --rm (a container removed at exit cannot be restarted)");
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
        env.extend(self.env.iter().cloned());
        // The busybox image has no ENTRYPOINT and runs `sh` by default.
        let mut command: Vec<String> = match self.entrypoint.as_deref() {
            Some(entrypoint) if !entrypoint.is_empty() => vec![entrypoint.to_string()],
            _ => Vec::new(),
        };
        command.extend(self.command.iter().cloned());
        if command.is_empty() {
            command.push("sh".to_string());
        }
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
        let profile = if self.privileged {
            Profile::privileged()
        } else {
            Profile::docker_default(&self.cap_add, &self.cap_drop).map_err(anyhow::Error::msg)?
        };
        Ok(RunConfig {
            name: String::new(),
            hostname: String::new(),
            image: self.image.clone(),
            env,
            // Empty is Docker's default, the image's (here /).
            workdir: self.workdir.clone().filter(|d| !d.is_empty()),
            user: self.user.clone(),
            command,
            limits: Limits {
                memory_bytes: self.memory,
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
            publish: self.publish.clone(),
            volumes: self.volumes.clone(),
            tmpfs: self.tmpfs.clone(),
            devices: self.devices.clone(),
            init: self.init,
            remove: self.rm,
            interactive: self.interactive,
            tty: self.tty,
            stop_timeout: self.stop_timeout,
            restart: self.restart,
        })
    }
}
