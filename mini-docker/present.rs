//! Docker's presentation of containers and images: the `ps` and `images`
//! tables, `inspect`'s JSON, human durations and sizes, Go-style quoting.
//! What the engine returns is data; how Docker's command line shows it
//! lives here, with the front end.

use std::time::{Duration, SystemTime};

use container_lab::engine::lifecycle::Inspection;
use container_lab::engine::runtime::{self, config::RestartPolicy, extra::LogDriver, NetworkMode};
use container_lab::engine::store::{Record, State, Status};
use container_lab::engine::volumes::Source;
use container_lab::kernel::cgroups::Limit;
use container_lab::support::time::{format_rfc3339, ZERO_TIME};

/// Docker's `units.HumanDuration` (github.com/docker/go-units).
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let hours_f = d.as_secs_f64() / 3600.0;
    if seconds < 1 {
        return "Less than a second".to_string();
    }
    if seconds == 1 {
        return "1 second".to_string();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".to_string();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Hours round to nearest from here on, as Go's int(d.Hours() + 0.5).
    let hours = (hours_f + 0.5) as u64;
    if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours_f as u64 / 24 / 365)
    }
}

fn since(now: SystemTime, then: SystemTime) -> String {
    human_duration(now.duration_since(then).unwrap_or_default())
}

/// Docker's STATUS column (moby's `State.String`). One difference: an
/// exit nobody recorded (no `finished_at`) shows as `Exited (255)` where
/// Docker would show an empty status.
pub fn status_text(state: &State, now: SystemTime) -> String {
    let finished = |word: &str| match state.finished_at {
        Some(at) => format!("{word} ({}) {} ago", state.exit_code, since(now, at)),
        None => format!("{word} ({})", state.exit_code),
    };
    let up = || match state.started_at {
        Some(at) => format!("Up {}", since(now, at)),
        None => "Up".to_string(),
    };
    match state.status {
        Status::Created => "Created".to_string(),
        Status::Running => up(),
        Status::Paused => format!("{} (Paused)", up()),
        Status::Restarting => finished("Restarting"),
        Status::Exited => finished("Exited"),
        Status::Dead => "Dead".to_string(),
    }
}

/// The command as `docker ps` shows it: joined as Docker's daemon joins it
/// (an argument with a space in single quotes), cut to 20 display columns
/// with `…`, then quoted like Go's `strconv.Quote`.
pub fn ps_command(command: &[String]) -> String {
    ps_command_text(&crate::ps::joined_command(command))
}

/// An already joined command, cut and quoted as `ps_command`.
pub fn ps_command_text(command: &str) -> String {
    go_quote(&ellipsis(command, 20))
}

/// "5 seconds" (Docker's RunningFor, without " ago").
pub fn since_text(now: SystemTime, then: SystemTime) -> String {
    since(now, then)
}

/// Lines with tab-separated cells, aligned as `tabulate` aligns rows.
pub fn align_tabs(lines: &[String]) -> String {
    let cells: Vec<Vec<String>> = lines
        .iter()
        .map(|l| l.split('\t').map(String::from).collect())
        .collect();
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![10usize; columns];
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count() + 3);
        }
    }
    let mut out = String::new();
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                out.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

// docker/cli's formatter.Ellipsis: East Asian wide characters count twice.
fn ellipsis(text: &str, max_width: usize) -> String {
    let width: usize = text.chars().map(char_width).sum();
    if width <= max_width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        if used + char_width(c) > max_width - 1 {
            break;
        }
        used += char_width(c);
        out.push(c);
    }
    out.push('…');
    out
}

fn char_width(c: char) -> usize {
    unicode_width::UnicodeWidthChar::width(c).unwrap_or(0)
}

// Go's strconv.Quote for the characters a command line plausibly holds.
fn go_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (0x80..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `docker ps` output for `records` (already filtered), at time `now`.
/// `quiet` prints only the short IDs, one a line.
pub fn ps_table(records: &[Record], now: SystemTime, quiet: bool) -> String {
    if quiet {
        return records
            .iter()
            .map(|r| format!("{}\n", r.short_id()))
            .collect();
    }
    let mut rows = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .map(String::from)];
    for record in records {
        let state = record.effective_state();
        rows.push([
            record.short_id().to_string(),
            record.image().to_string(),
            ps_command(record.command()),
            format!("{} ago", since(now, record.created)),
            status_text(&state, now),
            state.ports.join(", "),
            record.name.clone(),
        ]);
    }
    tabulate(&rows)
}

// Go's tabwriter as docker/cli configures it: minimum cell width 10,
// padding 3, spaces; widths count characters; the last cell is not padded.
fn tabulate<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [10usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count() + 3);
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// `docker inspect` of one container: [`inspect_json`], and what the
/// runtime knows besides (mounts, the log, cgroups, namespaces, limits).
/// `HostConfig` is Docker's, with three keys of the lab's own: where the
/// kernel objects are (`CgroupPaths`, `Namespaces`, `SupervisorPid`).
pub fn inspect_document(inspection: &Inspection, image_id: Option<&str>) -> serde_json::Value {
    use serde_json::json;
    let Inspection {
        record,
        state,
        log_path,
        namespaces,
    } = inspection;
    let config = &record.config;
    let extra = &config.extra;
    let limits = &config.limits;
    let mut value = inspect_json(record);
    if let Some(id) = image_id {
        value["Image"] = format!("sha256:{}", id.trim_start_matches("sha256:")).into();
    }
    let namespaces: serde_json::Map<String, serde_json::Value> = namespaces
        .iter()
        .map(|(kind, path)| (kind.to_string(), path.display().to_string().into()))
        .collect();
    let mounts: Vec<serde_json::Value> = config
        .volumes
        .iter()
        .map(|v| {
            let mode = if v.read_only { "ro" } else { "" };
            match &v.source {
                Source::Bind(path) => json!({"Type": "bind", "Source": path, "Destination": v.target, "Mode": mode, "RW": !v.read_only, "Propagation": "rprivate"}),
                Source::Named(name) => json!({"Type": "volume", "Name": name, "Driver": "local", "Destination": v.target, "Mode": mode, "RW": !v.read_only, "Propagation": ""}),
                Source::Anonymous => json!({"Type": "volume", "Driver": "local", "Destination": v.target, "Mode": mode, "RW": !v.read_only, "Propagation": ""}),
            }
        })
        .chain(config.tmpfs.iter().map(|t| json!({ "Type": "tmpfs", "Source": "", "Destination": t.target, "Mode": t.data, "RW": true, "Propagation": "" })))
        .collect();
    let binds: Vec<String> = config
        .volumes
        .iter()
        .filter_map(|v| {
            let source = match &v.source {
                Source::Bind(path) => path.display().to_string(),
                Source::Named(name) => name.clone(),
                Source::Anonymous => return None,
            };
            Some(format!(
                "{source}:{}{}",
                v.target,
                if v.read_only { ":ro" } else { "" }
            ))
        })
        .collect();
    let mut port_bindings = serde_json::Map::new();
    for port in &config.publish {
        let key = format!("{}/{}", port.container_port, port.protocol);
        let binding = json!({
            "HostIp": port.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "HostPort": if port.host_port == 0 { String::new() } else { port.host_port.to_string() },
        });
        match port_bindings.entry(key).or_insert_with(|| json!([])) {
            serde_json::Value::Array(list) => list.push(binding),
            _ => unreachable!("port bindings are lists"),
        }
    }
    let throttles = |specs: &[container_lab::kernel::cgroups::ThrottleSpec]| {
        specs
            .iter()
            .map(|t| json!({"Path": t.path, "Rate": t.rate}))
            .collect::<Vec<_>>()
    };
    let (restart_name, retries) = match config.restart {
        RestartPolicy::No => ("no", 0),
        RestartPolicy::OnFailure(n) => ("on-failure", n),
        RestartPolicy::Always => ("always", 0),
        RestartPolicy::UnlessStopped => ("unless-stopped", 0),
    };
    let mut security_opt: Vec<String> = Vec::new();
    if config.profile.no_new_privs {
        security_opt.push("no-new-privileges".into());
    }
    if !config.profile.seccomp && !config.privileged {
        security_opt.push("seccomp=unconfined".into());
    } else if let Some(json) = &config.profile.seccomp_profile {
        security_opt.push(format!("seccomp={json}"));
    }
    let default_caps: std::collections::BTreeSet<String> =
        container_lab::kernel::hardening::DOCKER_DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .collect();
    let short = |c: &String| c.trim_start_matches("CAP_").to_string();
    let cap_add: Vec<String> = config
        .profile
        .keep
        .difference(&default_caps)
        .map(short)
        .collect();
    let cap_drop: Vec<String> = default_caps
        .difference(&config.profile.keep)
        .map(short)
        .collect();
    let (cap_add, cap_drop) = if config.privileged {
        (Vec::new(), Vec::new())
    } else {
        (cap_add, cap_drop)
    };
    let network_mode = config.network_name();
    value["ResolvConfPath"] = "".into();
    value["HostnamePath"] = "".into();
    value["HostsPath"] = "".into();
    value["Mounts"] = mounts.into();
    value["LogPath"] = log_path.display().to_string().into();
    value["Driver"] = "overlay2".into();
    value["Platform"] = "linux".into();
    value["HostConfig"] = json!({
        "Binds": if binds.is_empty() { serde_json::Value::Null } else { binds.into() },
        "ContainerIDFile": extra.cidfile.clone().unwrap_or_default(),
        "LogConfig": {"Type": match extra.log_driver { LogDriver::JsonFile => "json-file", LogDriver::None => "none" }, "Config": {}},
        "NetworkMode": network_mode,
        "PortBindings": port_bindings,
        "RestartPolicy": {"Name": restart_name, "MaximumRetryCount": retries},
        "AutoRemove": config.remove,
        "CapAdd": if cap_add.is_empty() { serde_json::Value::Null } else { cap_add.into() },
        "CapDrop": if cap_drop.is_empty() { serde_json::Value::Null } else { cap_drop.into() },
        "Dns": extra.dns,
        "DnsSearch": extra.dns_search,
        "ExtraHosts": if extra.add_hosts.is_empty() { serde_json::Value::Null } else { extra.add_hosts.iter().map(|(n, ip)| format!("{n}:{ip}")).collect::<Vec<_>>().into() },
        "GroupAdd": if extra.group_add.is_empty() { serde_json::Value::Null } else { extra.group_add.clone().into() },
        "IpcMode": extra.ipc.clone().unwrap_or_else(|| "private".into()),
        "PidMode": if extra.pid_host { "host" } else { "" },
        "Privileged": config.privileged,
        "PublishAllPorts": extra.publish_all,
        "ReadonlyRootfs": config.read_only,
        "SecurityOpt": if security_opt.is_empty() { serde_json::Value::Null } else { security_opt.into() },
        "Tmpfs": config.tmpfs.iter().map(|t| (t.target.clone(), serde_json::Value::from(t.data.clone()))).collect::<serde_json::Map<_, _>>(),
        "ShmSize": extra.shm_size.unwrap_or(64 * 1024 * 1024),
        "Sysctls": extra.sysctls.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "Init": config.init,
        "Memory": limits.memory_bytes.unwrap_or(0),
        "MemoryReservation": limits.memory_reservation.unwrap_or(0),
        "MemorySwap": match limits.memory_swap { Some(Limit::At(n)) => n as i64, Some(Limit::Unlimited) => -1, None => 0 },
        "NanoCpus": limits.cpus.map_or(0, |c| (c * 1e9) as u64),
        "CpuShares": limits.cpu_shares.unwrap_or(0),
        "CpusetCpus": limits.cpuset_cpus.clone().unwrap_or_default(),
        "PidsLimit": limits.pids,
        "BlkioWeight": limits.blkio_weight.unwrap_or(0),
        "BlkioDeviceReadBps": throttles(&limits.device_read_bps),
        "BlkioDeviceWriteBps": throttles(&limits.device_write_bps),
        "BlkioDeviceReadIOps": throttles(&limits.device_read_iops),
        "BlkioDeviceWriteIOps": throttles(&limits.device_write_iops),
        "Devices": config.devices.iter().map(|d| json!({"PathOnHost": d.host_path, "PathInContainer": d.container_path, "CgroupPermissions": d.access.to_string()})).collect::<Vec<_>>(),
        "Ulimits": extra.ulimits.iter().map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard})).collect::<Vec<_>>(),
        "CgroupPaths": state.cgroup_paths,
        "Namespaces": namespaces,
        "SupervisorPid": state.supervisor_pid,
    });
    value
}

/// A subset of `docker inspect` for one container, with the effective
/// state: Docker's keys, spelled as Docker spells them.
pub fn inspect_json(record: &Record) -> serde_json::Value {
    use serde_json::json;
    let state = record.effective_state();
    let config = &record.config;
    let extra = &config.extra;
    let time = |t: Option<SystemTime>| t.map_or_else(|| ZERO_TIME.to_string(), format_rfc3339);
    // Entrypoint and Cmd apart again, as Docker keeps them.
    let (entrypoint, cmd) = match config.entrypoint.as_ref().filter(|e| !e.is_empty()) {
        Some(entrypoint) => (
            json!([entrypoint]),
            record.command().iter().skip(1).cloned().collect::<Vec<_>>(),
        ),
        None => (serde_json::Value::Null, record.command().to_vec()),
    };
    // Docker's PATH unless the image or -e set one.
    let mut env: Vec<String> = if config.env.iter().any(|(k, _)| k == "PATH") {
        Vec::new()
    } else {
        vec![format!("PATH={}", runtime::DEFAULT_PATH)]
    };
    env.extend(config.env.iter().map(|(k, v)| format!("{k}={v}")));
    let mut exposed = serde_json::Map::new();
    // What the image exposes, what --expose adds, what -p publishes.
    let published = config
        .publish
        .iter()
        .map(|p| format!("{}/{}", p.container_port, p.protocol));
    for port in config
        .exposed_ports
        .iter()
        .chain(&extra.expose)
        .cloned()
        .chain(published)
    {
        exposed.insert(port, json!({}));
    }
    let labels: serde_json::Map<String, serde_json::Value> = extra
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let ip = state.ip.map(|ip| ip.to_string()).unwrap_or_default();
    // The gateway and prefix of the network it has its address on.
    let joined = match &config.network {
        NetworkMode::Bridge => Some(container_lab::engine::network::Network::default_bridge()),
        NetworkMode::Named(name) => container_lab::engine::network::Network::named(
            &container_lab::engine::dirs::LabDirs::from_env(),
            name,
        )
        .ok()
        .flatten(),
        _ => None,
    };
    let (gateway, prefix) = match (&joined, state.ip) {
        (Some(net), Some(_)) => (net.gateway.to_string(), net.prefix),
        _ => (String::new(), 0),
    };
    let network_name = config.network_name();
    let mut document = json!({
        "Id": record.id,
        "Created": format_rfc3339(record.created),
        "Path": record.command().first().cloned().unwrap_or_default(),
        "Args": record.command().iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": state.status.as_str(),
            "Running": state.status.is_running(),
            "Paused": state.status == Status::Paused,
            "Restarting": state.status == Status::Restarting,
            "OOMKilled": state.oom_killed,
            "Dead": state.status == Status::Dead,
            "Pid": if state.status.is_running() { state.pid } else { 0 },
            "ExitCode": state.exit_code,
            "Error": state.error,
            "StartedAt": time(state.started_at),
            "FinishedAt": time(state.finished_at),
        },
        "Image": record.image(),
        "Name": format!("/{}", record.name),
        "RestartCount": state.restart_count,
        "Config": {
            "Hostname": config.hostname,
            "Domainname": "",
            "User": config.user.clone().unwrap_or_default(),
            "AttachStdin": config.interactive,
            "AttachStdout": true,
            "AttachStderr": true,
            "ExposedPorts": if exposed.is_empty() { serde_json::Value::Null } else { exposed.into() },
            "Tty": config.tty,
            "OpenStdin": config.interactive,
            "StdinOnce": config.interactive,
            "Env": env,
            "Cmd": cmd,
            "Image": config.image,
            "Volumes": serde_json::Value::Null,
            "WorkingDir": config.workdir.clone().unwrap_or_default(),
            "Entrypoint": entrypoint,
            "OnBuild": serde_json::Value::Null,
            "Labels": labels,
            "StopTimeout": config.stop_timeout,
        },
        "NetworkSettings": {
            "Bridge": "",
            "Ports": inspect_ports(&state.ports),
            "Gateway": gateway,
            "IPAddress": ip,
            "IPPrefixLen": prefix,
            "MacAddress": "",
            "Networks": {
                network_name.clone(): {
                    "IPAddress": ip,
                    "Gateway": gateway,
                    "IPPrefixLen": prefix,
                    "Aliases": serde_json::Value::Null,
                }
            },
        },
    });
    // The networks `network connect` added: their address while it runs.
    if !extra.networks.is_empty() {
        let dirs = container_lab::engine::dirs::LabDirs::from_env();
        let live = if state.status.is_running() {
            container_lab::engine::network::endpoints(&dirs, None).unwrap_or_default()
        } else {
            Vec::new()
        };
        for connection in &extra.networks {
            let endpoint = live
                .iter()
                .find(|e| e.network == connection.network && e.name == record.name);
            let net = container_lab::engine::network::Network::named(&dirs, &connection.network)
                .ok()
                .flatten();
            document["NetworkSettings"]["Networks"][&connection.network] = json!({
                "IPAddress": endpoint.map(|e| e.ip.to_string()).unwrap_or_default(),
                "Gateway": match (endpoint, &net) {
                    (Some(_), Some(net)) => net.gateway.to_string(),
                    _ => String::new(),
                },
                "IPPrefixLen": endpoint.map_or(0, |e| e.prefix),
                "Aliases": if connection.aliases.is_empty() {
                    serde_json::Value::Null
                } else {
                    json!(connection.aliases)
                },
            });
        }
    }
    // As Docker: the key only when the image or --stop-signal set one.
    if let Some(signal) = &config.stop_signal {
        document["Config"]["StopSignal"] = signal.clone().into();
    }
    document
}

// "0.0.0.0:8080->80/tcp" becomes Docker's {"80/tcp": [{"HostIp", "HostPort"}]};
// a port without "->" is exposed only and maps to null.
fn inspect_ports(ports: &[String]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for port in ports {
        let (host, container) = match port.split_once("->") {
            Some((host, container)) => (Some(host), container),
            None => (None, port.as_str()),
        };
        let key = if container.contains('/') {
            container.to_string()
        } else {
            format!("{container}/tcp")
        };
        let entry = map.entry(key).or_insert(serde_json::Value::Null);
        if let Some(host) = host {
            let (ip, host_port) = match host.rsplit_once(':') {
                Some((ip, p)) => (ip.trim_start_matches('[').trim_end_matches(']'), p),
                None => ("", host),
            };
            let binding = serde_json::json!({"HostIp": ip, "HostPort": host_port});
            match entry {
                serde_json::Value::Array(list) => list.push(binding),
                other => *other = serde_json::Value::Array(vec![binding]),
            }
        }
    }
    serde_json::Value::Object(map)
}

/// One line of `images`: "name:tag" as Docker shortens it, the image id's
/// hex, its config's `created` (if it has one) and its unpacked size.
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub reference: String,
    pub id: String,
    pub created: Option<SystemTime>,
    pub size_bytes: u64,
}

/// Docker's `docker images` table: REPOSITORY TAG IMAGE ID CREATED SIZE,
/// columns padded like Go's tabwriter in the docker CLI (cells at least 10
/// wide including 3 spaces of padding; the last column unpadded).
pub fn images_table(images: &[ImageRow], now: SystemTime) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "REPOSITORY".into(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    for image in images {
        let (name, tag) = match image.reference.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag),
            _ => (image.reference.as_str(), ""),
        };
        let created = match image.created {
            Some(created) => {
                let age = now.duration_since(created).unwrap_or(Duration::ZERO);
                format!("{} ago", human_duration(age))
            }
            None => "N/A".to_string(),
        };
        rows.push([
            name.to_string(),
            tag.to_string(),
            image.id.chars().take(12).collect(),
            created,
            human_size(image.size_bytes),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|col| {
            let longest = rows.iter().map(|r| r[col].len()).max().unwrap_or(0);
            (longest + 3).max(10)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (cell, width) in row.iter().zip(&widths) {
            out.push_str(&format!("{cell:<width$}"));
        }
        out.push_str(&row[4]);
        out.push('\n');
    }
    out
}

/// go-units' HumanSizeWithPrecision(size, 3): decimal units and Go's `%.3g`
/// (so 999,999 bytes reads "1e+03kB", as in Docker).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_g3(size), UNITS[unit])
}

/// Go's `%.3g` for a non-negative number below 1000.
fn go_g3(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    // Three significant digits, then Go's choice between %e and %f.
    let scientific = format!("{value:.2e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits = mantissa.replace('.', "");
    let digits = digits.trim_end_matches('0');
    let nd = digits.len() as i32;
    let dp = exponent + 1;
    let eprec = if 3 > nd && nd >= dp { nd } else { 3 };
    if exponent < -4 || exponent >= eprec {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{first}{fraction}e{sign}{:02}", exponent.abs());
    }
    let prec = if 3 > dp { nd } else { 3 };
    let decimals = (prec - dp).max(0) as usize;
    format!("{value:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    use container_lab::engine::runtime::config::RunConfig;
    use container_lab::kernel::process::start_time as process_start_time;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn id_with(prefix: &str) -> String {
        format!("{prefix}{}", "0".repeat(64 - prefix.len()))
    }

    /// A process that no longer exists, with the start time it had.
    fn dead_process() -> (i32, u64) {
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = process_start_time(pid).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        (pid, start)
    }

    #[test]
    fn human_durations_match_docker_at_the_boundaries() {
        let s = Duration::from_secs;
        let (min, hour, day) = (60, 3600, 86_400);
        let (week, month, year) = (7 * day, 30 * day, 365 * day);
        let cases = [
            (Duration::from_millis(999), "Less than a second"),
            (s(1), "1 second"),
            (s(2), "2 seconds"),
            (s(59), "59 seconds"),
            (s(60), "About a minute"),
            (s(119), "About a minute"),
            (s(120), "2 minutes"),
            (s(59 * min + 59), "59 minutes"),
            (s(hour), "About an hour"),
            (s(hour + 29 * min), "About an hour"),
            (s(hour + 31 * min), "2 hours"),
            (s(3 * hour + 29 * min), "3 hours"),
            (s(3 * hour + 31 * min), "4 hours"),
            (s(47 * hour + 29 * min), "47 hours"),
            (s(47 * hour + 30 * min), "2 days"),
            (s(13 * day + 5 * hour), "13 days"),
            (s(2 * week), "2 weeks"),
            (s(2 * week + 4 * day), "2 weeks"),
            (s(month + 2 * week), "6 weeks"),
            (s(2 * month), "2 months"),
            (s(24 * month), "24 months"),
            (s(24 * month + 2 * week), "2 years"),
            (s(3 * year + 2 * month), "3 years"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    fn golden_records() -> (Vec<Record>, SystemTime) {
        let now = at(1_800_000_000);
        let ago = |secs: u64| now - Duration::from_secs(secs);
        let me = std::process::id() as i32;
        let my_start = process_start_time(me).unwrap();
        let (dead, dead_start) = dead_process();
        let record = |id: &str, name: &str, command: &[&str], created, state| Record {
            id: id_with(id),
            name: name.to_string(),
            created,
            config: RunConfig::new("busybox", command),
            state,
        };
        let live = State {
            pid: me,
            pid_start_time: my_start,
            ..State::default()
        };
        let records = vec![
            record(
                "a1b2c3d4e5f6",
                "web",
                &["sh", "-c", "while true; do echo hi; sleep 1; done"],
                ago(5),
                State {
                    status: Status::Running,
                    started_at: Some(ago(3)),
                    ports: vec!["0.0.0.0:8080->80/tcp".to_string(), "443/tcp".to_string()],
                    ip: Some(std::net::Ipv4Addr::new(172, 18, 0, 2)),
                    ..live.clone()
                },
            ),
            record(
                "b2",
                "paused_one",
                &["top"],
                ago(90),
                State {
                    status: Status::Paused,
                    started_at: Some(ago(65)),
                    ..live.clone()
                },
            ),
            record(
                "c3",
                "flaky",
                &["sh", "-c", "exit 1"],
                ago(2 * 3600),
                State {
                    status: Status::Restarting,
                    pid: 0,
                    supervisor_pid: me,
                    supervisor_start_time: my_start,
                    finished_at: Some(ago(2)),
                    exit_code: 1,
                    restart_count: 3,
                    ..live.clone()
                },
            ),
            record(
                "d4",
                "done",
                &["echo", "say \"hi\"\tnow"],
                ago(3 * 86_400),
                State {
                    status: Status::Exited,
                    started_at: Some(ago(3 * 86_400)),
                    finished_at: Some(ago(5)),
                    ..State::default()
                },
            ),
            record(
                "e5",
                "fresh",
                &["true"],
                now - Duration::from_millis(500),
                State::default(),
            ),
            record(
                "f6",
                "broken",
                &["true"],
                ago(59),
                State {
                    status: Status::Dead,
                    ..State::default()
                },
            ),
            record(
                "0f",
                "vanished",
                &["世界世界世界世界世界世界"],
                ago(61),
                State {
                    status: Status::Running,
                    pid: dead,
                    pid_start_time: dead_start,
                    started_at: Some(ago(60)),
                    ..State::default()
                },
            ),
        ];
        (records, now)
    }

    #[test]
    fn ps_table_matches_docker_ps() {
        let (records, now) = golden_records();
        let table = ps_table(&records, now, false);
        println!("{table}");
        let want = [
            // Docker's daemon puts an argument with a space in single quotes.
            "CONTAINER ID   IMAGE     COMMAND                    CREATED                  STATUS                         PORTS                           NAMES",
            "a1b2c3d4e5f6   busybox   \"sh -c 'while true; …\"     5 seconds ago            Up 3 seconds                   0.0.0.0:8080->80/tcp, 443/tcp   web",
            "b20000000000   busybox   \"top\"                      About a minute ago       Up About a minute (Paused)                                     paused_one",
            "c30000000000   busybox   \"sh -c 'exit 1'\"           2 hours ago              Restarting (1) 2 seconds ago                                   flaky",
            "d40000000000   busybox   \"echo 'say \\\"hi\\\"\\tnow'\"   3 days ago               Exited (0) 5 seconds ago                                       done",
            "e50000000000   busybox   \"true\"                     Less than a second ago   Created                                                        fresh",
            "f60000000000   busybox   \"true\"                     59 seconds ago           Dead                                                           broken",
            // Docker's Ellipsis counts wide characters twice, its tabwriter once.
            "0f0000000000   busybox   \"世界世界世界世界世…\"               About a minute ago       Exited (255)                                                   vanished",
        ];
        assert_eq!(table, want.map(|l| format!("{l}\n")).concat());

        let quiet = ps_table(&records, now, true);
        assert_eq!(
            quiet,
            "a1b2c3d4e5f6\nb20000000000\nc30000000000\nd40000000000\ne50000000000\nf60000000000\n0f0000000000\n"
        );
        assert_eq!(ps_table(&[], now, true), "");
        assert_eq!(
            ps_table(&[], now, false),
            "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
        );
    }

    #[test]
    fn inspect_json_is_shaped_like_docker_inspect() {
        let (records, _) = golden_records();
        let web = inspect_json(&records[0]);
        assert_eq!(web["Id"], records[0].id);
        assert_eq!(web["Name"], "/web");
        assert_eq!(web["Path"], "sh");
        assert_eq!(
            web["Args"],
            serde_json::json!(["-c", "while true; do echo hi; sleep 1; done"])
        );
        assert_eq!(web["Created"], "2027-01-15T07:59:55Z");
        let state = &web["State"];
        assert_eq!(state["Status"], "running");
        assert_eq!(state["Running"], true);
        assert_eq!(state["Paused"], false);
        assert_eq!(state["Pid"], std::process::id());
        assert_eq!(state["StartedAt"], "2027-01-15T07:59:57Z");
        assert_eq!(state["FinishedAt"], ZERO_TIME);
        assert_eq!(web["NetworkSettings"]["IPAddress"], "172.18.0.2");
        assert_eq!(
            web["NetworkSettings"]["Ports"],
            serde_json::json!({
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                "443/tcp": null,
            })
        );

        let paused = inspect_json(&records[1]);
        assert_eq!(paused["State"]["Status"], "paused");
        assert_eq!(paused["State"]["Running"], true);
        assert_eq!(paused["State"]["Paused"], true);

        let vanished = inspect_json(&records[6]);
        assert_eq!(vanished["State"]["Status"], "exited");
        assert_eq!(vanished["State"]["Running"], false);
        assert_eq!(vanished["State"]["Pid"], 0);
        assert_eq!(vanished["State"]["ExitCode"], 255);

        let dead = inspect_json(&records[5]);
        assert_eq!(dead["State"]["Dead"], true);
        assert_eq!(dead["NetworkSettings"]["IPAddress"], "");
        assert_eq!(dead["NetworkSettings"]["Ports"], serde_json::json!({}));
    }
    #[test]
    fn durations_read_like_docker() {
        let min = 60;
        let hour = 60 * min;
        let day = 24 * hour;
        let week = 7 * day;
        let month = 30 * day;
        let year = 365 * day;
        // go-units' own test table.
        for (secs, expected) in [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (min, "About a minute"),
            (3 * min, "3 minutes"),
            (35 * min + 40, "35 minutes"),
            (59 * min, "59 minutes"),
            (hour, "About an hour"),
            (hour + 29 * min, "About an hour"),
            (hour + 31 * min, "2 hours"),
            (3 * hour + 31 * min, "4 hours"),
            (day, "24 hours"),
            (day + 12 * hour, "36 hours"),
            (2 * day, "2 days"),
            (13 * day + 5 * hour, "13 days"),
            (2 * week, "2 weeks"),
            (month, "4 weeks"),
            (month + 2 * week, "6 weeks"),
            (2 * month, "2 months"),
            (5 * month + 2 * week, "5 months"),
            (24 * month, "24 months"),
            (24 * month + 2 * week, "2 years"),
            (3 * year + 2 * month, "3 years"),
        ] {
            assert_eq!(
                human_duration(Duration::from_secs(secs)),
                expected,
                "{secs}"
            );
        }
        assert_eq!(
            human_duration(Duration::from_millis(450)),
            "Less than a second"
        );
    }

    #[test]
    fn sizes_read_like_docker() {
        for (bytes, expected) in [
            (0, "0B"),
            (7, "7B"),
            (999, "999B"),
            (1000, "1kB"),
            (1024, "1.02kB"),
            (12_345, "12.3kB"),
            (100_000, "100kB"),
            (999_499, "999kB"),
            (999_999, "1e+03kB"),
            (4_100_000, "4.1MB"),
            (4_261_234, "4.26MB"),
            (77_800_000, "77.8MB"),
            (1_500_000_000, "1.5GB"),
        ] {
            assert_eq!(human_size(bytes), expected, "{bytes}");
        }
    }

    fn image(reference: &str, id_digit: char, age: u64, size: u64, now: SystemTime) -> ImageRow {
        ImageRow {
            reference: reference.to_string(),
            id: id_digit.to_string().repeat(64),
            created: Some(now - Duration::from_secs(age)),
            size_bytes: size,
        }
    }

    #[test]
    fn table_is_aligned_like_docker_images() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let images = [
            image("busybox:latest", 'a', 120, 4_100_000, now),
            image("lab/alpine-with-tools:3.19", 'b', 3 * 86_400, 12_345, now),
            image("x:1", 'c', 0, 0, now),
        ];
        let expected = "\
REPOSITORY              TAG       IMAGE ID       CREATED                  SIZE
busybox                 latest    aaaaaaaaaaaa   2 minutes ago            4.1MB
lab/alpine-with-tools   3.19      bbbbbbbbbbbb   3 days ago               12.3kB
x                       1         cccccccccccc   Less than a second ago   0B
";
        let table = images_table(&images, now);
        println!("{table}");
        assert_eq!(table, expected);
        // An image created "in the future" (a clock step) is not an error.
        let future = [image("y:1", 'd', 0, 1, now + Duration::from_secs(60))];
        assert!(images_table(&future, now).contains("Less than a second ago"));
        assert_eq!(
            images_table(&[], now),
            "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
        );
    }
}
