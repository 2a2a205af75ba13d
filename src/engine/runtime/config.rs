//! What `mini-docker run` was asked for, parsed from Docker's spellings.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::network::PortMapping;
use crate::engine::volumes::{TmpfsSpec, VolumeSpec};
use crate::kernel::cgroups::devices::DeviceSpec;
use crate::kernel::cgroups::Limits;
use crate::kernel::hardening::Profile;

/// Docker's `--network` modes, stored (and shown by `inspect`) as Docker
/// spells them: `bridge`, `none`, `host`, `NAME`, `container:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum NetworkMode {
    /// The lab's bridge: an address of its own, NAT, published ports.
    Bridge,
    /// A network namespace with only `lo`.
    None,
    /// The host's network namespace.
    Host,
    /// A user-defined network (`network create NAME`).
    Named(String),
    /// `container:NAME`: the network namespace of another container.
    Container(String),
}

impl NetworkMode {
    /// `--network VALUE`, as Docker reads it.
    pub fn parse(value: &str) -> NetworkMode {
        match value {
            "bridge" | "default" => NetworkMode::Bridge,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            other => match other.strip_prefix("container:") {
                Some(container) => NetworkMode::Container(container.to_string()),
                None => NetworkMode::Named(other.to_string()),
            },
        }
    }

    /// Whether the container gets an address of its own on a bridge.
    pub fn has_bridge(&self) -> bool {
        matches!(self, NetworkMode::Bridge | NetworkMode::Named(_))
    }

    /// Whether it gets a network namespace of its own.
    pub fn own_namespace(&self) -> bool {
        !matches!(self, NetworkMode::Host | NetworkMode::Container(_))
    }

    /// Whether the container is attached to a network of the lab's (a
    /// veth on its bridge, an address): the default bridge or a named one.
    pub fn attaches(&self) -> bool {
        matches!(self, NetworkMode::Bridge | NetworkMode::Named(_))
    }
}

impl From<NetworkMode> for String {
    fn from(mode: NetworkMode) -> String {
        match mode {
            NetworkMode::Bridge => "bridge".to_string(),
            NetworkMode::None => "none".to_string(),
            NetworkMode::Host => "host".to_string(),
            NetworkMode::Named(name) => name,
            NetworkMode::Container(name) => format!("container:{name}"),
        }
    }
}

impl From<String> for NetworkMode {
    fn from(text: String) -> NetworkMode {
        NetworkMode::parse(&text)
    }
}

/// Everything one container is made from; stored with the container so
/// that `start` and `restart` can make it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// The container's name and hostname: set by the store when it makes
    /// the record (see `store::NewContainer`).
    pub name: String,
    pub image: String,
    pub hostname: String,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    /// `-u USER[:GROUP]`, looked up in the image's /etc/passwd.
    pub user: Option<String>,
    /// The program and its arguments: what the run asked for, then, once
    /// the record is made, the image's Entrypoint and Cmd combined with it
    /// as Docker does.
    pub command: Vec<String>,
    /// `--entrypoint`: None keeps the image's; `""` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// The image's id (its config digest), set when the record is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The image's StopSignal (Docker: SIGTERM when there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// The image's ExposedPorts (`80/tcp`): documentation, shown by
    /// `inspect`; only `-p` publishes a port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
    pub limits: Limits,
    pub read_only: bool,
    pub privileged: bool,
    pub profile: Profile,
    pub network: NetworkMode,
    /// `--network-alias`: more names on a user-defined network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_aliases: Vec<String>,
    /// `--ip`: the address on a user-defined network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    pub publish: Vec<PortMapping>,
    pub volumes: Vec<VolumeSpec>,
    pub tmpfs: Vec<TmpfsSpec>,
    /// `--device`: host nodes made in the container and allowed in its cgroup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceSpec>,
    pub init: bool,
    /// `--rm`: remove the container (and its anonymous volumes) at exit.
    pub remove: bool,
    /// `-i`: keep stdin attached; without it the container reads /dev/null.
    pub interactive: bool,
    /// `-t`: a pseudo-terminal.
    pub tty: bool,
    /// Seconds between SIGTERM and SIGKILL when stopping (Docker: 10).
    pub stop_timeout: u32,
    /// `--restart`: what the supervisor does when the container exits.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Docker's other flags (`--add-host`, `--dns`, `-l`, `--ulimit` …).
    #[serde(default)]
    pub extra: super::extra::RunExtras,
}

impl RunConfig {
    /// `--network` as it was given (`bridge`, `mynet`, `container:web`).
    pub fn network_name(&self) -> String {
        self.network.clone().into()
    }

    /// `run IMAGE COMMAND` with none of Docker's flags: its defaults (no
    /// limits, Docker's capabilities and seccomp filter, the lab's bridge).
    /// The name and hostname are set when the record is made.
    pub fn new(image: &str, command: &[&str]) -> RunConfig {
        use crate::kernel::hardening::DOCKER_DEFAULT_CAPS;
        RunConfig {
            name: String::new(),
            image: image.to_string(),
            hostname: String::new(),
            env: Vec::new(),
            workdir: None,
            user: None,
            command: command.iter().map(|s| s.to_string()).collect(),
            entrypoint: None,
            image_id: None,
            stop_signal: None,
            exposed_ports: Vec::new(),
            limits: Limits::default(),
            read_only: false,
            privileged: false,
            profile: Profile {
                keep: DOCKER_DEFAULT_CAPS.iter().map(|c| c.to_string()).collect(),
                seccomp: true,
                no_new_privs: false,
                seccomp_profile: None,
            },
            network: NetworkMode::Bridge,
            network_aliases: Vec::new(),
            ip: None,
            publish: Vec::new(),
            volumes: Vec::new(),
            tmpfs: Vec::new(),
            devices: Vec::new(),
            init: false,
            remove: false,
            interactive: false,
            tty: false,
            stop_timeout: 10,
            restart: RestartPolicy::No,
            extra: Default::default(),
        }
    }
}

/// Two configurations are the same when they are stored the same (the
/// cgroup limits have no equality of their own).
impl PartialEq for RunConfig {
    fn eq(&self, other: &RunConfig) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

/// Docker's `--restart` policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart after a non-zero exit, at most this many times (0: no limit).
    OnFailure(u32),
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    /// Whether to start again after exiting with `code`, having been
    /// restarted `count` times; never after `docker stop`.
    pub fn restarts(self, code: i32, count: u32, stopped_by_user: bool) -> bool {
        match self {
            _ if stopped_by_user => false,
            RestartPolicy::No => false,
            RestartPolicy::OnFailure(max) => code != 0 && (max == 0 || count < max),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

/// Docker's `--restart no|on-failure[:N]|always|unless-stopped`.
pub fn parse_restart(text: &str) -> Result<RestartPolicy, String> {
    match text.split_once(':') {
        None if text == "no" => Ok(RestartPolicy::No),
        None if text == "on-failure" => Ok(RestartPolicy::OnFailure(0)),
        None if text == "always" => Ok(RestartPolicy::Always),
        None if text == "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
        Some(("on-failure", n)) => n.parse().map(RestartPolicy::OnFailure).map_err(|_| {
            format!("invalid restart policy {text:?}: the count after on-failure: must be a number")
        }),
        _ => Err(format!(
            "invalid restart policy {text:?}: use no, on-failure[:N], always or unless-stopped"
        )),
    }
}

/// Docker's restart back-off: 100 ms, doubling up to a minute; a run that
/// lasted 10 s or more starts the count again.
pub fn next_backoff(
    previous: std::time::Duration,
    ran_for: std::time::Duration,
) -> std::time::Duration {
    use std::time::Duration;
    if ran_for >= Duration::from_secs(10) || previous.is_zero() {
        Duration::from_millis(100)
    } else {
        (previous * 2).min(Duration::from_secs(60))
    }
}

/// Docker's `-p [HOST_IP:][HOST_PORT:]PORT[/tcp|udp]`; a missing host port
/// is 0, meaning "pick a free one" when the container starts.
pub fn parse_publish(text: &str) -> Result<PortMapping, String> {
    let invalid = |why: &str| format!("invalid port specification {text:?}: {why}");
    let (ports, protocol) = match text.rsplit_once('/') {
        Some((ports, proto @ ("tcp" | "udp"))) => (ports, proto),
        Some((_, other)) => {
            return Err(invalid(&format!(
                "unknown protocol {other:?}; use tcp or udp"
            )))
        }
        None => (text, "tcp"),
    };
    let port = |p: &str| -> Result<u16, String> {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(&format!("{p:?} is not a port number between 1 and 65535")))
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (host_ip, host_port, container_port) = match parts.as_slice() {
        [c] => (None, 0, port(c)?),
        [h, c] => (None, port(h)?, port(c)?),
        [ip, h, c] => {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| invalid(&format!("{ip:?} is not an IPv4 address")))?;
            let h = if h.is_empty() { 0 } else { port(h)? };
            (Some(ip), h, port(c)?)
        }
        _ => return Err(invalid("use [HOST_IP:][HOST_PORT:]PORT[/tcp|udp]")),
    };
    Ok(PortMapping {
        host_ip,
        host_port,
        container_port,
        protocol: protocol.to_string(),
    })
}

/// Docker's `--env-file`: `KEY=VALUE` lines, `#` comments and blank lines
/// skipped, a bare `KEY` taken from our own environment when it is set.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the env file {}: {e}", path.display()))?;
    let mut env = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // execve takes C strings: a NUL would end the variable early.
        if line.contains('\0') {
            return Err(format!(
                "{}:{}: the line contains a NUL byte, which an environment variable cannot hold; remove it",
                path.display(),
                number + 1
            ));
        }
        match line.split_once('=') {
            Some((key, _)) if key.is_empty() || key.contains(char::is_whitespace) => {
                return Err(format!(
                    "{}:{}: {key:?} is not a variable name; use KEY=VALUE",
                    path.display(),
                    number + 1
                ))
            }
            Some((key, value)) => env.push((key.to_string(), value.to_string())),
            None => {
                if let Ok(value) = std::env::var(line.trim_end()) {
                    env.push((line.trim_end().to_string(), value));
                }
            }
        }
    }
    Ok(env)
}

/// Docker's `-w DIR` (run and exec): absolute, or empty for the default.
pub fn check_workdir(dir: &str) -> Result<(), String> {
    if dir.is_empty() || dir.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "the working directory '{dir}' is invalid, it needs to be an absolute path"
        ))
    }
}

/// Docker's `-e KEY=VALUE`; a bare `KEY` is taken from our environment,
/// and left out (`None`) when we have no such variable, as Docker does.
pub fn parse_env(value: &str) -> Result<(String, Option<String>), String> {
    match value.split_once('=') {
        Some((key, val)) if !key.is_empty() => Ok((key.to_string(), Some(val.to_string()))),
        None if !value.is_empty() => Ok((value.to_string(), std::env::var(value).ok())),
        _ => Err(format!(
            "invalid environment variable {value:?}: use KEY=VALUE"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes_are_stored_as_docker_spells_them() {
        for (text, mode) in [
            ("bridge", NetworkMode::Bridge),
            ("none", NetworkMode::None),
            ("host", NetworkMode::Host),
            ("front", NetworkMode::Named("front".into())),
            ("container:web", NetworkMode::Container("web".into())),
        ] {
            assert_eq!(NetworkMode::parse(text), mode);
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(serde_json::from_str::<NetworkMode>(&json).unwrap(), mode);
        }
        assert_eq!(NetworkMode::parse("default"), NetworkMode::Bridge);
        assert!(NetworkMode::Named("x".into()).has_bridge());
        assert!(!NetworkMode::Container("x".into()).own_namespace());
    }

    #[test]
    fn restart_policies_and_backoff_follow_docker() {
        use std::time::Duration;
        assert_eq!(
            parse_restart("on-failure:3"),
            Ok(RestartPolicy::OnFailure(3))
        );
        assert!(parse_restart("sometimes").is_err());
        assert!(parse_restart("on-failure:x").is_err());
        let policy = RestartPolicy::OnFailure(2);
        assert!(policy.restarts(1, 1, false));
        assert!(!policy.restarts(1, 2, false));
        assert!(!policy.restarts(0, 0, false));
        assert!(!RestartPolicy::Always.restarts(0, 5, true));
        let short = Duration::from_secs(1);
        let mut delay = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..12 {
            delay = next_backoff(delay, short);
            seen.push(delay.as_millis());
        }
        assert_eq!(&seen[..4], &[100, 200, 400, 800]);
        assert_eq!(*seen.last().unwrap(), 60_000);
        assert_eq!(
            next_backoff(Duration::from_secs(60), Duration::from_secs(10)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn port_specs_parse_like_docker() {
        let p = parse_publish("8080:80").unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.protocol.as_str()),
            (8080, 80, "tcp")
        );
        assert_eq!(parse_publish("80").unwrap().host_port, 0);
        let p = parse_publish("127.0.0.1:9000:90/udp").unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(p.to_string(), "127.0.0.1:9000->90/udp");
        for bad in ["", "0", "70000:80", "a:80", "1:2:3:4", "80/sctp", "x.y:1:2"] {
            assert!(
                parse_publish(bad)
                    .unwrap_err()
                    .starts_with("invalid port specification"),
                "{bad}"
            );
        }
    }

    #[test]
    fn env_files_skip_comments_and_refuse_bad_names() {
        let dir = std::env::temp_dir().join(format!("lab-envfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("env");
        std::fs::write(&file, "# comment\n\nA=1\nB=two words\n").unwrap();
        assert_eq!(
            read_env_file(&file).unwrap(),
            vec![("A".into(), "1".into()), ("B".into(), "two words".into())]
        );
        std::fs::write(&file, "=oops\n").unwrap();
        assert!(read_env_file(&file).unwrap_err().contains(":1:"));
        std::fs::write(&file, "A=1\nB=x\0y\n").unwrap();
        let err = read_env_file(&file).unwrap_err();
        assert!(err.starts_with(&format!("{}:2: ", file.display())), "{err}");
        assert!(err.contains("NUL byte"), "{err}");
        assert!(read_env_file(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
