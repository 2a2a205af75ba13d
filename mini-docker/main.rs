//! `mini-docker`: every chapter's primitive behind Docker's command line.
//!
//! So far: `mini-docker run` with the busybox image, namespaces, an overlay
//! root, cgroup limits, hardening and Docker's exit codes. Its flags are
//! spelled as Docker's, so what works here works there.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use lab::cgroups::{self, Limits};
use lab::hardening::{self, Profile};
use lab::runtime::{self, NetworkMode, RunConfig};
use lab::state::LabDirs;
use lab::{cli, privilege, signals};

/// A small container runtime built from the lab's chapters.
#[derive(Debug, Parser)]
#[command(name = "mini-docker", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command in a new container (it is removed when it exits)
    Run(RunArgs),
}

#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
struct RunArgs {
    /// Print help (-h is --hostname, as in Docker)
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Remove the container when it exits (every container is, so far)
    #[arg(long)]
    rm: bool,
    /// Assign a name to the container
    #[arg(long, value_parser = cli::parse_name)]
    name: Option<String>,
    /// Container host name
    #[arg(short = 'h', long, value_parser = cli::parse_hostname)]
    hostname: Option<String>,
    /// Set environment variables (KEY=VALUE)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// Memory limit (e.g. 32m, 1g)
    #[arg(short = 'm', long, value_parser = cgroups::parse_size)]
    memory: Option<u64>,
    /// Number of CPUs
    #[arg(long, value_parser = cgroups::parse_cpus)]
    cpus: Option<f64>,
    /// Tune container pids limit
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pids_limit: Option<u64>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "CAP", value_parser = parse_cap)]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "CAP", value_parser = parse_cap)]
    cap_drop: Vec<String>,
    /// Connect a container to a network: none or host
    #[arg(long, default_value = "none", value_parser = parse_network)]
    network: NetworkMode,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
    /// The image (so far: busybox)
    image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn parse_env(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, val)) if !key.is_empty() => Ok((key.to_string(), val.to_string())),
        _ => Err(format!(
            "invalid environment variable {value:?}: use KEY=VALUE"
        )),
    }
}

fn parse_cap(value: &str) -> Result<String, String> {
    hardening::canonical(value).map(|_| value.to_string())
}

fn parse_network(value: &str) -> Result<NetworkMode, String> {
    match value {
        "none" => Ok(NetworkMode::None),
        "host" => Ok(NetworkMode::Host),
        "bridge" => Err("--network bridge is not built into mini-docker yet; use none or host (chapter 6 shows the bridge)".into()),
        other => Err(format!("unknown network {other:?}: use none or host")),
    }
}

/// Docker's convention: 125 when mini-docker itself fails.
const FAILED: u8 = 125;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(FAILED)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    signals::install_interrupt_handler();
    match cli.command {
        Command::Run(args) => match run(&args) {
            Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
            Err(err) => {
                eprintln!("mini-docker: error: {}", cli::one_line(&err));
                ExitCode::from(FAILED)
            }
        },
    }
}

fn run(args: &RunArgs) -> anyhow::Result<i32> {
    if !runtime::is_builtin_image(&args.image) {
        anyhow::bail!(
            "unable to find image '{}': this mini-docker knows only busybox",
            args.image
        );
    }
    privilege::ensure_root(
        "mini-docker",
        "containers need namespaces, mounts and cgroups",
    )?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("lab-{:08x}", std::process::id()));
    let command = if args.command.is_empty() {
        vec!["sh".to_string()]
    } else {
        args.command.clone()
    };
    let profile =
        Profile::docker_default(&args.cap_add, &args.cap_drop).map_err(anyhow::Error::msg)?;
    let config = RunConfig {
        hostname: args.hostname.clone().unwrap_or_else(|| name.clone()),
        name,
        env: args.env.clone(),
        workdir: args.workdir.clone(),
        command,
        limits: Limits {
            memory_bytes: args.memory,
            cpus: args.cpus,
            pids: args.pids_limit,
        },
        read_only: args.read_only,
        profile,
        network: args.network,
        init: args.init,
    };
    Ok(runtime::run(&LabDirs::from_env(), &config)?)
}
