//! `mini-docker network …`: user-defined networks, as Docker's command
//! line spells them, over `engine::network`.

use std::io::Write;
use std::net::Ipv4Addr;

use clap::Subcommand;
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::network::defined::{self, Definition, Request, PREDEFINED};
use container_lab::engine::network::{self, Endpoint, EndpointInfo, Network, NetworkError};
use container_lab::engine::runtime::extra::Connection;
use container_lab::engine::runtime::NetworkMode;
use container_lab::lab::cli;
use container_lab::support::ids::pinned_id;
use serde_json::{json, Map, Value};

use crate::lifecycle::{lifecycle, Refused};

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create {
        /// Driver to manage the network (only bridge)
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format, e.g. 10.1.2.0/24
        #[arg(long)]
        subnet: Option<String>,
        /// IPv4 gateway for the subnet
        #[arg(long)]
        gateway: Option<String>,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        name: String,
    },
    /// Connect a container to a network
    Connect {
        /// Add a network-scoped alias for the container
        #[arg(long = "alias", value_name = "ALIAS")]
        aliases: Vec<String>,
        /// IPv4 address (e.g., 172.30.100.104)
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Force the container to disconnect from a network
        #[arg(short = 'f', long)]
        force: bool,
        network: String,
        container: String,
    },
    /// Display detailed information on one or more networks
    Inspect {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Remove all unused networks
    Prune {
        /// Do not prompt for confirmation
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

/// The daemon's refusals exit 1, as Docker's client does; the lab's own
/// failures (netlink, nft, files) 125.
fn refusal(err: NetworkError) -> anyhow::Error {
    match err {
        NetworkError::Net(_) | NetworkError::Io(_) | NetworkError::State(_) => err.into(),
        other => Refused(format!("Error response from daemon: {other}")).into(),
    }
}

pub fn network(command: NetworkCommand) -> anyhow::Result<i32> {
    let dirs = LabDirs::from_env();
    match command {
        NetworkCommand::Create {
            driver,
            subnet,
            gateway,
            internal,
            name,
        } => {
            if driver != "bridge" {
                return Err(Refused(format!(
                    "Error response from daemon: plugin {driver:?} not found: the lab has the bridge driver only"
                ))
                .into());
            }
            let request = Request {
                name,
                subnet,
                gateway,
                internal,
                id: None,
            };
            let created = defined::create(&dirs, &request).map_err(refusal)?;
            println!("{}", created.id);
        }
        NetworkCommand::Ls { quiet } => ls(&dirs, quiet)?,
        NetworkCommand::Inspect { networks } => {
            let mut documents = Vec::new();
            let mut missing = Vec::new();
            for name in &networks {
                match inspect(&dirs, name)? {
                    Some(doc) => documents.push(doc),
                    None => missing.push(name.clone()),
                }
            }
            println!("{}", serde_json::to_string_pretty(&documents)?);
            if let Some(name) = missing.first() {
                return Err(Refused(format!("Error: No such network: {name}")).into());
            }
        }
        NetworkCommand::Rm { networks } => {
            let mut failed = None;
            for name in &networks {
                match defined::remove(&dirs, name) {
                    Ok(()) => println!("{name}"),
                    Err(err) => {
                        eprintln!("mini-docker: error: {}", cli::one_line(&refusal(err)));
                        failed = Some(1);
                    }
                }
            }
            return Ok(failed.unwrap_or(0));
        }
        NetworkCommand::Prune { force } => {
            if !force && !confirm()? {
                return Ok(0);
            }
            let removed = defined::prune(&dirs).map_err(refusal)?;
            let mut out = std::io::stdout().lock();
            if !removed.is_empty() {
                writeln!(out, "Deleted Networks:")?;
                for name in &removed {
                    writeln!(out, "{name}")?;
                }
            }
        }
        NetworkCommand::Connect {
            aliases,
            ip,
            network: name,
            container,
        } => {
            let record = lifecycle().find(&container)?;
            if !record.config.network.own_namespace() {
                return Err(Refused(format!(
                    "Error response from daemon: container {} shares the network namespace of {}; it cannot be connected to any other network",
                    record.name,
                    record.config.network_name()
                ))
                .into());
            }
            if record.config.network == NetworkMode::None {
                return Err(Refused(
                    "Error response from daemon: container cannot be connected to multiple networks with one of the networks in private (none) mode".to_string(),
                )
                .into());
            }
            let net = lookup(&dirs, &name)?;
            let connection = Connection {
                network: net.name.clone(),
                aliases: aliases.clone(),
                ip,
            };
            // A stopped one (created or exited): written down, attached
            // when it starts, as Docker does.
            if record.effective_status().is_running() && record.state.pid > 0 {
                let endpoint = Endpoint {
                    name: record.name.clone(),
                    aliases,
                    ip,
                };
                network::connect_running(&dirs, &net, &endpoint, record.state.pid)
                    .map_err(refusal)?;
            }
            lifecycle().remember_network(&record.id, &connection)?;
        }
        NetworkCommand::Disconnect {
            force: _,
            network: name,
            container,
        } => {
            let record = lifecycle().find(&container)?;
            let net = lookup(&dirs, &name)?;
            let running = record.effective_status().is_running() && record.state.pid > 0;
            if running {
                network::disconnect(&dirs, &net, &record.name).map_err(refusal)?;
            }
            // Written down too: the next start leaves it out.
            if !lifecycle().forget_network(&record.id, &net.name)? && !running {
                return Err(Refused(format!(
                    "Error response from daemon: container {} is not connected to the network {}",
                    record.id, net.name
                ))
                .into());
            }
        }
    }
    Ok(0)
}

fn lookup(dirs: &LabDirs, name: &str) -> anyhow::Result<Network> {
    Network::named(dirs, name)
        .map_err(refusal)?
        .ok_or_else(|| refusal(NetworkError::NotFound(name.to_string())))
}

/// Docker's question, asked only on a terminal.
fn confirm() -> anyhow::Result<bool> {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdin())
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !tty {
        return Err(Refused(
            "network prune removes every network no container uses; without a terminal to ask, pass -f"
                .to_string(),
        )
        .into());
    }
    Ok(dialoguer::Confirm::new()
        .with_prompt("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?")
        .default(false)
        .interact()
        .unwrap_or(false))
}

/// Docker's three networks of its own, then the user-defined ones, with
/// Docker's ID, name, driver and scope.
struct Row {
    id: String,
    name: String,
    driver: &'static str,
}

fn rows(dirs: &LabDirs) -> anyhow::Result<Vec<Row>> {
    let mut rows: Vec<Row> = PREDEFINED
        .iter()
        .map(|name| Row {
            id: predefined_id(name),
            name: name.to_string(),
            driver: match *name {
                "none" => "null",
                "host" => "host",
                _ => "bridge",
            },
        })
        .collect();
    rows.extend(
        defined::list(dirs)
            .map_err(refusal)?
            .into_iter()
            .map(|d| Row {
                id: d.id,
                name: d.name,
                driver: "bridge",
            }),
    );
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// The lab's own networks have IDs as fixed as their names.
fn predefined_id(name: &str) -> String {
    pinned_id(&format!("network:{name}"))
}

fn ls(dirs: &LabDirs, quiet: bool) -> anyhow::Result<()> {
    let rows = rows(dirs)?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for row in &rows {
            writeln!(out, "{}", &row.id[..12])?;
        }
        return Ok(());
    }
    // Go's tabwriter as Docker uses it: each column as wide as its widest
    // cell, then three spaces.
    let name_width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4) + 3;
    writeln!(
        out,
        "{:<15}{:<name_width$}{:<10}SCOPE",
        "NETWORK ID", "NAME", "DRIVER"
    )?;
    for row in &rows {
        writeln!(
            out,
            "{:<15}{:<name_width$}{:<10}local",
            &row.id[..12],
            row.name,
            row.driver
        )?;
    }
    Ok(())
}

/// `network inspect NAME`'s document, spelled as Docker's; None when there
/// is no such network.
fn inspect(dirs: &LabDirs, name: &str) -> anyhow::Result<Option<Value>> {
    let definition: Option<Definition> = defined::find(dirs, name).map_err(refusal)?;
    let (id, created, network, driver) = match (&definition, name) {
        (Some(d), _) => (d.id.clone(), d.created.clone(), Some(d.network()), "bridge"),
        (None, "bridge") => (
            predefined_id(name),
            String::new(),
            Some(Network::default_bridge()),
            "bridge",
        ),
        (None, "host") => (predefined_id(name), String::new(), None, "host"),
        (None, "none") => (predefined_id(name), String::new(), None, "null"),
        (None, _) => return Ok(None),
    };
    let mut containers = Map::new();
    if let Some(net) = &network {
        for endpoint in network::endpoints(dirs, Some(&net.name)).map_err(refusal)? {
            let (key, value) = container_entry(&endpoint);
            containers.insert(key, value);
        }
    }
    let config = match &network {
        Some(net) => json!([{"Subnet": net.cidr(), "Gateway": net.gateway.to_string()}]),
        None => json!([]),
    };
    let mut options = Map::new();
    if let Some(net) = &network {
        options.insert(
            "com.docker.network.bridge.name".to_string(),
            Value::String(net.bridge.clone()),
        );
    }
    Ok(Some(json!({
        "Name": name,
        "Id": id,
        "Created": created,
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": network.as_ref().is_some_and(|n| n.internal),
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": {},
    })))
}

/// A container on the network, keyed by its ID as Docker keys it.
fn container_entry(endpoint: &EndpointInfo) -> (String, Value) {
    let id = lifecycle()
        .find(&endpoint.name)
        .map(|r| r.id)
        .unwrap_or_else(|_| endpoint.name.clone());
    let value = json!({
        "Name": endpoint.name,
        "EndpointID": pinned_id(&format!("endpoint:{}:{}", endpoint.network, endpoint.name)),
        "MacAddress": "",
        "IPv4Address": format!("{}/{}", endpoint.ip, endpoint.prefix),
        "IPv6Address": "",
        "Aliases": endpoint.aliases,
    });
    (id, value)
}
