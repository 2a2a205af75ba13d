//! `lab-runc`: runc's command line over the lab's OCI runtime
//! (`container_lab::engine::oci`). This file only maps flags to the
//! engine's operations and prints their results; errors go to stderr
//! (and, with `--log`, to the log file in runc's text or JSON format).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use container_lab::engine::oci::{self, CreateOptions, ExecOptions, OciError, Runtime};

/// A runc-compatible OCI runtime, built from the container lab's primitives.
#[derive(Debug, Parser)]
#[command(name = "lab-runc", version = oci::VERSION, about)]
struct Cli {
    /// Where the containers' state lives
    #[arg(long, global = true, default_value = oci::DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write errors to this file
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// The log file's format
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// cgroupsPath is slice:prefix:name (made beneath our own cgroup: no systemd manager)
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility; lab-runc has no debug output
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The bundle: the directory holding config.json
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Write the init's PID (as the host numbers it) to this file
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// A Unix socket to send the terminal's master to (process.terminal)
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// chroot into the root instead of pivot_root (for a ramdisk root)
    #[arg(long)]
    no_pivot: bool,
    /// Keep the caller's session keyring
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass descriptors 3 … 3+N-1 to the container
    #[arg(long, default_value_t = 0)]
    preserve_fds: i32,
    /// The container's ID
    id: String,
}

impl CreateArgs {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a container: its init waits for `start`
    Create(CreateArgs),
    /// Start a created container's program
    Start { id: String },
    /// The container's state, as JSON
    State { id: String },
    /// Send a signal (default TERM) to the container's init
    Kill {
        /// Every process of the container
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Remove a stopped container (--force: a running one too)
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container, wait for it, delete it
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once it runs
        #[arg(short, long)]
        detach: bool,
    },
    /// Run another process in a running container
    Exec {
        /// The process, as OCI JSON
        #[arg(short, long)]
        process: Option<PathBuf>,
        #[arg(short, long)]
        detach: bool,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        /// Allocate a terminal
        #[arg(short, long)]
        tty: bool,
        /// Working directory
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// KEY=VALUE, added to the container's environment
        #[arg(short, long)]
        env: Vec<String>,
        /// UID[:GID]
        #[arg(short, long)]
        user: Option<String>,
        /// Additional group IDs
        #[arg(short = 'g', long = "additional-gids")]
        additional_gids: Vec<u32>,
        #[arg(long)]
        no_new_privs: bool,
        #[arg(long, default_value_t = 0)]
        preserve_fds: i32,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Freeze every process of the container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// The container's processes
    Ps {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        id: String,
    },
    /// Every container under --root
    List {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// IDs only
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// With Docker's default seccomp profile, as mini-docker's
        /// containers have it (runc's default has none)
        #[arg(long)]
        docker_seccomp: bool,
    },
    /// What this runtime supports, as JSON
    Features,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    Log::install(&cli);
    let runtime = Runtime {
        root: cli.root.clone(),
        systemd_cgroup: cli.systemd_cgroup,
    };
    match run(&cli, &runtime) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            report(&cli, &err);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli, rt: &Runtime) -> Result<u8, OciError> {
    let print_json = |value: &dyn erased::Json| -> Result<(), OciError> {
        println!("{}", value.json()?);
        Ok(())
    };
    match &cli.command {
        Command::Create(args) => {
            oci::create(rt, &args.id, &args.options())?;
        }
        Command::Start { id } => oci::start(rt, id)?,
        Command::State { id } => print_json(&oci::state(rt, id)?)?,
        Command::Kill { all, id, signal } => oci::kill(rt, id, oci::signal::parse(signal)?, *all)?,
        Command::Delete { force, id } => oci::delete(rt, id, *force)?,
        Command::Run { create, detach } => {
            let code = oci::run(rt, &create.id, &create.options(), *detach)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::Exec {
            process,
            detach,
            pid_file,
            console_socket,
            tty,
            cwd,
            env,
            user,
            additional_gids,
            no_new_privs,
            preserve_fds,
            id,
            command,
        } => {
            let options = ExecOptions {
                process: process.clone(),
                args: command.clone(),
                env: env.clone(),
                cwd: cwd.clone(),
                user: user.clone(),
                additional_gids: additional_gids.clone(),
                tty: *tty,
                detach: *detach,
                pid_file: pid_file.clone(),
                console_socket: console_socket.clone(),
                no_new_privs: *no_new_privs,
                preserve_fds: *preserve_fds,
            };
            let code = oci::exec(rt, id, &options)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::Pause { id } => oci::pause(rt, id)?,
        Command::Resume { id } => oci::resume(rt, id)?,
        Command::Ps { format, id } => {
            let pids = oci::ps(rt, id)?;
            match format {
                Format::Json => print_json(&pids)?,
                Format::Table => {
                    println!("PID     CMD");
                    for pid in pids {
                        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                        let cmd: Vec<String> = cmd
                            .split(|b| *b == 0)
                            .filter(|a| !a.is_empty())
                            .map(|a| String::from_utf8_lossy(a).into_owned())
                            .collect();
                        println!("{pid:<7} {}", cmd.join(" "));
                    }
                }
            }
        }
        Command::List { format, quiet } => {
            let states = oci::list(rt)?;
            if *quiet {
                for state in &states {
                    println!("{}", state.id);
                }
            } else {
                match format {
                    Format::Json => print_json(&states)?,
                    Format::Table => {
                        let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED"]
                            .map(String::from)
                            .to_vec()];
                        for s in &states {
                            rows.push(vec![
                                s.id.clone(),
                                s.pid.to_string(),
                                s.status.to_string(),
                                s.bundle.display().to_string(),
                                s.created.clone(),
                            ]);
                        }
                        print_table(&rows);
                    }
                }
            }
        }
        Command::Spec {
            bundle,
            docker_seccomp,
        } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(OciError::Other(format!(
                    "{} exists already; remove it first",
                    path.display()
                )));
            }
            let mut spec = oci::spec::default_spec();
            if *docker_seccomp {
                oci::spec::add_docker_seccomp(&mut spec)?;
            }
            spec.save(&path)
                .map_err(|e| OciError::Other(format!("write {}: {e}", path.display())))?;
        }
        Command::Features => print_json(&oci::lifecycle::features())?,
    }
    Ok(0)
}

fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", cells.join("   ").trim_end());
    }
}

/// The error on stderr, and in the log file as runc writes it.
fn report(cli: &Cli, err: &OciError) {
    Log::line(
        cli.log.as_deref(),
        cli.log_format,
        "error",
        &err.to_string(),
    );
}

/// The engine's warnings (the `log` facade): on stderr and in the log
/// file, as the errors are.
struct Log {
    file: Option<PathBuf>,
    format: LogFormat,
}

impl Log {
    fn install(cli: &Cli) {
        let logger = Box::new(Log {
            file: cli.log.clone(),
            format: cli.log_format,
        });
        if log::set_boxed_logger(logger).is_ok() {
            log::set_max_level(log::LevelFilter::Warn);
        }
    }

    fn line(file: Option<&std::path::Path>, format: LogFormat, level: &str, message: &str) {
        eprintln!("lab-runc: {level}: {message}");
        let Some(path) = file else {
            return;
        };
        let time = container_lab::support::time::format_rfc3339(std::time::SystemTime::now());
        let line = match format {
            LogFormat::Json => {
                serde_json::json!({"level": level, "msg": message, "time": time}).to_string()
            }
            LogFormat::Text => format!("time={time:?} level={level} msg={message:?}"),
        };
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

impl log::Log for Log {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let message = record.args().to_string();
            Log::line(self.file.as_deref(), self.format, "warning", &message);
        }
    }

    fn flush(&self) {}
}

/// Anything serde can print, behind one object-safe method.
mod erased {
    use container_lab::engine::oci::OciError;

    pub trait Json {
        fn json(&self) -> Result<String, OciError>;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<String, OciError> {
            serde_json::to_string_pretty(self).map_err(|e| OciError::Other(e.to_string()))
        }
    }
}
