//! `mini-docker`: every chapter's primitive behind Docker's command line.
//!
//! `mini-docker run` with the busybox image or an imported one,
//! namespaces, an overlay root, cgroup limits, a bridge network with
//! published ports, volumes, hardening and Docker's exit codes. Its flags
//! are spelled as Docker's, so what works here works there.

mod build;
mod commands;
mod format;
mod images;
mod lifecycle;
mod network;
mod present;
mod ps;
mod run;
mod runtime_seam;
mod terminal;

use std::os::fd::AsFd;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::lifecycle::LifecycleError;
use container_lab::engine::runtime::{Explain, StdinMode};
use container_lab::engine::store::NewContainer;
use container_lab::engine::supervisor::{self, Attach};
use container_lab::engine::volumes;
use container_lab::kernel::signals;
use container_lab::lab::{cli, narrate, privilege};

use crate::lifecycle::lifecycle;

/// A small container runtime built from the lab's chapters.
#[derive(Debug, Parser)]
#[command(name = "mini-docker", version)]
struct Cli {
    /// Run containers with this runc-compatible runtime (runc, crun, lab-runc)
    #[arg(long, global = true, value_name = "PATH")]
    runtime: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// `Cli` with `run` alone: what `mini-docker run …` is parsed with, since
/// building every command's flags costs clap about half a millisecond of
/// each container's start. The same flags, help and errors as `Cli`'s.
#[derive(Debug, Parser)]
#[command(name = "mini-docker", version)]
struct RunCli {
    /// Run containers with this runc-compatible runtime (runc, crun, lab-runc)
    #[arg(long, global = true, value_name = "PATH")]
    runtime: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: RunOnly,
}

#[derive(Debug, Subcommand)]
enum RunOnly {
    /// Create and run a new container from an image
    Run(Box<run::RunArgs>),
}

impl Cli {
    fn parse_args() -> Result<Cli, clap::Error> {
        let args = commands::management_forms(std::env::args().collect());
        if args.get(1).map(String::as_str) != Some("run") {
            return Cli::try_parse_from(args);
        }
        let RunCli { runtime, command } = RunCli::try_parse_from(args)?;
        let RunOnly::Run(args) = command;
        Ok(Cli {
            runtime,
            command: Command::Run(args),
        })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and run a new container from an image
    Run(Box<run::RunArgs>),
    /// Import a root filesystem tarball (.tar, .tar.gz, .tar.zst) as an image
    Import(images::ImportArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Remove one or more images
    Rmi(images::RmiArgs),
    /// Download an image from a registry
    Pull(images::PullArgs),
    /// Upload an image to a registry
    Push(images::PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Manage images
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(images::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Log in to a registry
    Login(images::LoginArgs),
    /// Log out from a registry
    Logout(images::LogoutArgs),
    /// Create a new container without starting it
    Create(Box<run::RunArgs>),
    /// Start one or more stopped containers
    Start {
        /// Attach STDOUT/STDERR and wait for the container to exit
        #[arg(short = 'a', long)]
        attach: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers
    Ps(ps::PsArgs),
    /// Fetch the logs of a container
    Logs(lifecycle::LogsArgs),
    /// Stop one or more running containers
    Stop {
        /// Seconds to wait before killing the container
        #[arg(short = 't', long = "time")]
        time: Option<u32>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Kill one or more running containers
    Kill {
        /// Signal to send to the container
        #[arg(short = 's', long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Pause all processes within one or more containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within one or more containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart one or more containers
    Restart {
        /// Seconds to wait before killing the container
        #[arg(short = 't', long = "time")]
        time: Option<u32>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove one or more containers
    Rm {
        /// Force the removal of a running container (uses SIGKILL)
        #[arg(short = 'f', long)]
        force: bool,
        /// Remove anonymous volumes associated with the container
        #[arg(short = 'v', long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Return low-level information on containers, as JSON
    Inspect(lifecycle::InspectArgs),
    /// Execute a command in a running container
    Exec(lifecycle::ExecArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Block until one or more containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Display the running processes of a container
    Top {
        container: String,
        /// Options for ps (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_options: Vec<String>,
    },
    /// Display a live stream of container(s) resource usage statistics
    Stats(commands::StatsArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp { source: String, dest: String },
    /// Rename a container
    Rename { container: String, new_name: String },
    /// Attach to a running container's output (detach with Ctrl-P Ctrl-Q)
    Attach {
        /// Proxy all received signals to the process
        #[arg(long = "sig-proxy", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
        sig_proxy: bool,
        container: String,
    },
    /// List port mappings or a specific mapping for the container
    Port {
        container: String,
        /// PORT[/PROTO]
        port: Option<String>,
    },
    /// Update configuration of one or more containers
    Update(commands::UpdateArgs),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Remove what is not in use
    #[command(subcommand)]
    System(SystemCommand),
    /// Build an image from a Dockerfile
    Build(Box<build::BuildArgs>),
    /// Create a new image from a container's changes
    Commit(build::CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff { container: String },
    /// Export a container's filesystem as a tar archive
    Export {
        /// Write to a file, instead of STDOUT
        #[arg(short = 'o', long)]
        output: Option<std::path::PathBuf>,
        container: String,
    },
    /// (internal) supervise a container: mini-docker __supervise ID FD
    #[command(name = "__supervise", hide = true)]
    Supervise { id: String, ready_fd: i32 },
}

#[derive(Debug, Subcommand)]
enum SystemCommand {
    /// Remove all stopped containers
    Prune {
        /// Do not prompt for confirmation
        #[arg(short = 'f', long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum VolumeCommand {
    /// Create a volume
    Create { name: String },
    /// List volumes
    Ls,
    /// Remove a volume
    Rm { name: String },
    /// Display detailed information on one or more volumes
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove all unused local volumes
    Prune {
        /// Do not prompt for confirmation
        #[arg(short = 'f', long)]
        force: bool,
    },
}

/// Docker's convention: 125 when mini-docker itself fails.
const FAILED: u8 = 125;

fn main() -> ExitCode {
    let cli = match Cli::parse_args() {
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
    signals::install_forwarding_handler();
    narrate::show_warnings();
    // Docker's client exits 125 when `run` or `create` fail, and 1 when
    // the daemon refuses something (no such container, wrong state).
    let creates = matches!(cli.command, Command::Run(_) | Command::Create(_));
    // Every other command reads the lab's state, which is root's alone
    // (`run` checks its flags first). The supervisor is started by root.
    if !creates && !matches!(cli.command, Command::Supervise { .. }) {
        if let Err(err) = state_as_root() {
            eprintln!("mini-docker: error: {}", cli::one_line(&err));
            return ExitCode::from(FAILED);
        }
    }
    let result = match cli.command {
        Command::Run(args) if cli.runtime.is_some() => {
            let runtime = cli.runtime.as_deref().unwrap_or(std::path::Path::new(""));
            runtime_seam::run(&args, runtime)
        }
        _ if cli.runtime.is_some() => Err(anyhow::anyhow!(
            "--runtime works with run only: the other commands are the engine's"
        )),
        Command::Run(args) => run(&args, true),
        Command::Create(args) => run(&args, false),
        Command::Start { attach, containers } => lifecycle::start(&containers, attach),
        Command::Ps(args) => ps::ps(&args),
        Command::Logs(args) => lifecycle::logs(&args),
        Command::Stop { time, containers } => lifecycle::stop(&containers, time),
        Command::Kill { signal, containers } => lifecycle::kill(&containers, &signal),
        Command::Pause { containers } => lifecycle::pause(&containers, true),
        Command::Unpause { containers } => lifecycle::pause(&containers, false),
        Command::Restart { time, containers } => lifecycle::restart(&containers, time),
        Command::Rm {
            force,
            volumes,
            containers,
        } => lifecycle::rm(&containers, force, volumes),
        Command::Wait { containers } => commands::wait(&containers),
        Command::Top {
            container,
            ps_options,
        } => commands::top(&container, &ps_options),
        Command::Stats(args) => commands::stats(&args),
        Command::Cp { source, dest } => commands::cp(&source, &dest),
        Command::Rename {
            container,
            new_name,
        } => commands::rename(&container, &new_name),
        Command::Attach {
            sig_proxy,
            container,
        } => commands::attach(&container, sig_proxy),
        Command::Port { container, port } => commands::port(&container, port.as_deref()),
        Command::Update(args) => commands::update(&args),
        Command::Inspect(args) => lifecycle::inspect(&args),
        Command::Exec(args) => lifecycle::exec(&args),
        Command::System(SystemCommand::Prune { force }) => lifecycle::prune(force),
        Command::Supervise { id, ready_fd } => supervise(&id, ready_fd),
        Command::Import(args) => images::import(&args),
        Command::Images(args) => images::list(&args),
        Command::Rmi(args) => images::rmi(&args),
        Command::Pull(args) => images::pull(&args),
        Command::Push(args) => images::push(&args),
        Command::Tag(args) => images::tag(&args),
        Command::Image(command) => images::image(&command),
        Command::History(args) => images::history(&args),
        Command::Save(args) => images::save(&args),
        Command::Load(args) => images::load(&args),
        Command::Login(args) => images::login(&args),
        Command::Logout(args) => images::logout(&args),
        Command::Volume(command) => volume(command),
        Command::Build(args) => build::build(&args),
        Command::Commit(args) => build::commit(&args),
        Command::Diff { container } => build::diff(&container),
        Command::Export { output, container } => build::export(&container, output.as_deref()),
        Command::Network(command) => network::network(command),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("mini-docker: error: {}", cli::one_line(&err));
            ExitCode::from(exit_code(&err, creates))
        }
    }
}

/// Docker's exit codes for a command that failed: 1 when the daemon
/// refused (no such container, the wrong state; but `run` and `create`
/// exit 125 then too), 126 or 127 when the container's program could not
/// be run, 125 when mini-docker itself failed.
fn exit_code(err: &anyhow::Error, creates: bool) -> u8 {
    if err.downcast_ref::<run::NotATty>().is_some() {
        return 1;
    }
    let refused = err.downcast_ref::<lifecycle::Refused>().is_some();
    let engine = err.downcast_ref::<LifecycleError>();
    if !creates && (refused || engine.is_some_and(LifecycleError::is_refusal)) {
        return 1;
    }
    match engine.and_then(LifecycleError::program_exit_code) {
        Some(code) => code.clamp(0, 255) as u8,
        None => FAILED,
    }
}

/// Root, or sudo (as the chapters), then the lab's directories with their
/// modes (an older install's are tightened).
fn state_as_root() -> anyhow::Result<()> {
    let command = std::env::args().nth(1).unwrap_or_default();
    privilege::ensure_root(
        &format!("mini-docker {command}"),
        "the lab's containers, images and volumes are root's alone",
    )?;
    LabDirs::from_env().prepare()?;
    Ok(())
}

/// `run` (and `create`, which stops before starting): the record first,
/// then a supervisor, in the foreground or detached.
// ANCHOR: run
fn run(args: &run::RunArgs, start: bool) -> anyhow::Result<i32> {
    // Everything checkable is checked before anything is created.
    let config = args.config()?;
    privilege::ensure_root(
        "mini-docker",
        "containers need namespaces, mounts and cgroups",
    )?;
    let mut lifecycle = lifecycle();
    if start && args.rm && !args.detach {
        // Forked now, while this process is single-threaded and small: it
        // deletes the container's directory after this process exits.
        lifecycle.hire_janitor();
    }
    if args.may_pull() {
        images::pull_for_run(&args.image, args.pulls_always())?;
    }
    let record = lifecycle.create(NewContainer {
        name: args.name.clone(),
        hostname: args.record_hostname(),
        config,
        owned: start,
    })?;
    args.write_cidfile(&record.id)?;
    if !start {
        println!("{}", record.id);
        return Ok(0);
    }
    if args.detach {
        lifecycle.run_detached(&record)?;
        println!("{}", record.id);
        return Ok(0);
    }
    // --explain: each step as `-- what` and `   $ shell`, on stderr, so
    // the container's own output on stdout stays untouched.
    let print_step = |what: &str, shell: &str| eprint!("-- {what}\n   $ {shell}\n");
    let explain = if args.explain {
        Explain::to(&print_step)
    } else {
        Explain::none()
    };
    if args.tty {
        return terminal::run_with_terminal(&lifecycle, &record, explain);
    }
    // The output is logged, and shown on our own stdout and stderr.
    let attach = Attach::Echo {
        stdin: if record.config.interactive {
            StdinMode::Inherit
        } else {
            StdinMode::Null
        },
        stdout: std::io::stdout().as_fd().try_clone_to_owned()?,
        stderr: std::io::stderr().as_fd().try_clone_to_owned()?,
    };
    Ok(lifecycle.run_attached(&record, attach, explain)?)
}
// ANCHOR_END: run

/// The hidden command a supervisor runs as: reports on `ready_fd`.
fn supervise(id: &str, ready_fd: i32) -> anyhow::Result<i32> {
    use std::os::fd::FromRawFd;
    // Safety: the fd was left open for us by `supervisor::spawn`.
    let ready = unsafe { std::os::fd::OwnedFd::from_raw_fd(ready_fd) };
    // The container must not inherit it.
    nix::fcntl::fcntl(
        ready_fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    Ok(supervisor::supervise_detached(
        &LabDirs::from_env(),
        id,
        ready,
    )?)
}

fn volume(command: VolumeCommand) -> anyhow::Result<i32> {
    let dirs = LabDirs::from_env();
    match command {
        VolumeCommand::Create { name } => {
            volumes::create(&dirs, &name)?;
            println!("{name}");
        }
        VolumeCommand::Ls => {
            println!("DRIVER    VOLUME NAME");
            for name in volumes::list(&dirs) {
                println!("local     {name}");
            }
        }
        VolumeCommand::Rm { name } => {
            lifecycle().remove_volume(&name)?;
            println!("{name}");
        }
        VolumeCommand::Inspect { names } => return commands::volume_inspect(&names),
        VolumeCommand::Prune { force } => return commands::volume_prune(force),
    }
    Ok(0)
}
