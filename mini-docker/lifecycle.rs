//! The lifecycle commands on Docker's command line: create, start, ps,
//! logs, stop, kill, pause, unpause, restart, rm, inspect, exec, system
//! prune. The engine does the work (`engine::lifecycle`); this file is
//! Docker's flags and what Docker prints for each.

use std::io::Write;
use std::time::SystemTime;

use clap::Args;
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::lifecycle::Lifecycle;
use container_lab::engine::logs;
use container_lab::engine::runtime::config;
use container_lab::engine::runtime::exec::ExecRequest;
use nix::sys::signal::Signal;

use crate::present;

/// An error Docker's client reports with exit code 1 (the daemon said no),
/// as opposed to 125 (mini-docker itself failed): the ones this command
/// line finds itself (the engine's are `LifecycleError::is_refusal`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn refused(message: impl Into<String>) -> anyhow::Error {
    Refused(message.into()).into()
}

pub fn lifecycle() -> Lifecycle {
    Lifecycle::new(&LabDirs::from_env())
}

/// Each container's key on a line of its own, as Docker answers.
fn for_each(
    containers: &[String],
    mut act: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<i32> {
    for key in containers {
        act(key)?;
        println!("{key}");
    }
    Ok(0)
}

/// The text of a log entry, to the stream it came from.
fn print_entry(entry: &logs::Entry) {
    let _ = logs::print_entry(entry, &mut std::io::stdout(), &mut std::io::stderr());
}

/// `start [-a]`
pub fn start(containers: &[String], attach: bool) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    let mut code = 0;
    for key in containers {
        let record = lifecycle.start(key)?;
        if attach {
            code = lifecycle.follow_until_exit(&record, print_entry)?;
        } else {
            println!("{key}");
        }
    }
    Ok(code)
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    quiet: bool,
}

pub fn ps(args: &PsArgs) -> anyhow::Result<i32> {
    let records = lifecycle().list(args.all)?;
    print!(
        "{}",
        present::ps_table(&records, SystemTime::now(), args.quiet)
    );
    Ok(0)
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of lines to show from the end of the logs (or "all")
    #[arg(short = 'n', long, default_value = "all", value_parser = parse_tail)]
    tail: Tail,
    container: String,
}

/// `--tail N`, or all lines.
#[derive(Debug, Clone, Copy)]
struct Tail(Option<usize>);

fn parse_tail(text: &str) -> Result<Tail, String> {
    if text == "all" {
        return Ok(Tail(None));
    }
    text.parse()
        .map(|n| Tail(Some(n)))
        .map_err(|_| format!("invalid --tail {text:?}: use a number or all"))
}

pub fn logs(args: &LogsArgs) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    if args.follow {
        lifecycle.follow_logs(&args.container, args.tail.0, print_entry)?;
    } else {
        lifecycle
            .logs(&args.container, args.tail.0)?
            .iter()
            .for_each(print_entry);
    }
    Ok(0)
}

pub fn stop(containers: &[String], timeout: Option<u32>) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    for_each(containers, |key| Ok(lifecycle.stop(key, timeout)?))
}

pub fn kill(containers: &[String], signal: &str) -> anyhow::Result<i32> {
    let signal = parse_signal(signal)?;
    let lifecycle = lifecycle();
    for_each(containers, |key| Ok(lifecycle.kill(key, signal)?))
}

/// Docker's `-s`: a name, with or without `SIG`, or a number.
fn parse_signal(text: &str) -> anyhow::Result<Signal> {
    let upper = text.to_ascii_uppercase();
    if let Ok(n) = upper.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| refused(format!("invalid signal: {text}")));
    }
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| {
        refused(format!(
            "invalid signal: {text}; use a name such as TERM, KILL, HUP or a number"
        ))
    })
}

/// `pause` (`frozen`) and `unpause`.
pub fn pause(containers: &[String], frozen: bool) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    for_each(containers, |key| Ok(lifecycle.set_paused(key, frozen)?))
}

pub fn restart(containers: &[String], timeout: Option<u32>) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    for_each(containers, |key| Ok(lifecycle.restart(key, timeout)?))
}

pub fn rm(containers: &[String], force: bool) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    for_each(containers, |key| Ok(lifecycle.remove(key, force)?))
}

/// `inspect`: Docker's shape, plus where the kernel objects are.
pub fn inspect(containers: &[String]) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    let mut all = Vec::new();
    for key in containers {
        all.push(present::inspect_document(&lifecycle.inspect(key)?));
    }
    println!("{}", serde_json::to_string_pretty(&all)?);
    Ok(0)
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep STDIN open
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_parser = config::parse_env)]
    env: Vec<(String, String)>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    container: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

pub fn exec(args: &ExecArgs) -> anyhow::Result<i32> {
    if let Some(dir) = &args.workdir {
        config::check_workdir(dir).map_err(refused)?;
    }
    let request = ExecRequest {
        argv: args.command.clone(),
        env: args.env.clone(),
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        interactive: args.interactive,
        console: None,
    };
    let lifecycle = lifecycle();
    if args.tty {
        return crate::terminal::exec_with_terminal(&lifecycle, &args.container, request);
    }
    Ok(lifecycle.exec(&args.container, request)?)
}

/// `system prune [-f]`: asks first on a terminal, as Docker does.
pub fn prune(force: bool) -> anyhow::Result<i32> {
    if !force {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdin())
            && std::io::IsTerminal::is_terminal(&std::io::stderr());
        if !tty {
            return Err(refused(
                "system prune removes every stopped container; without a terminal to ask, pass -f",
            ));
        }
        let sure = dialoguer::Confirm::new()
            .with_prompt("WARNING! This will remove all stopped containers. Are you sure you want to continue?")
            .default(false)
            .interact()
            .unwrap_or(false);
        if !sure {
            return Ok(0);
        }
    }
    let removed = lifecycle().prune()?;
    let mut out = std::io::stdout().lock();
    if !removed.is_empty() {
        writeln!(out, "Deleted Containers:")?;
        for id in &removed {
            writeln!(out, "{id}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed containers: {}", removed.len())?;
    Ok(0)
}
