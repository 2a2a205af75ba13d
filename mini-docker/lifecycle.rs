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

pub fn refused(message: impl Into<String>) -> anyhow::Error {
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
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of lines to show from the end of the logs (or "all")
    #[arg(short = 'n', long, default_value = "all", value_parser = parse_tail)]
    tail: Tail,
    /// Show timestamps
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long, value_parser = parse_log_time)]
    since: Option<SystemTime>,
    /// Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)
    #[arg(long, value_parser = parse_log_time)]
    until: Option<SystemTime>,
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

/// Docker's `--since`/`--until`: RFC 3339, a date, Unix seconds, or a Go
/// duration (`42m`, `1h30m`) before now.
pub fn parse_log_time(text: &str) -> Result<SystemTime, String> {
    use container_lab::support::time::parse_rfc3339;
    let invalid = || {
        format!("invalid value for \"since\"/\"until\": {text:?}: use a time such as 2013-01-02T13:23:37Z, a Unix time, or a duration such as 42m")
    };
    if let Some(time) = parse_rfc3339(text) {
        return Ok(time);
    }
    if let Some(time) = parse_rfc3339(&format!("{text}T00:00:00Z")) {
        return Ok(time);
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return Ok(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs_f64(seconds.max(0.0)));
    }
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap());
        }
        let scale = match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(invalid()),
        };
        total += number.parse::<f64>().map_err(|_| invalid())? * scale;
        number.clear();
    }
    if !number.is_empty() || total == 0.0 && text.is_empty() {
        return Err(invalid());
    }
    Ok(SystemTime::now() - std::time::Duration::from_secs_f64(total))
}

/// Go's RFC3339NanoFixed, as `logs -t` writes it.
fn fixed_nanos(time: SystemTime) -> String {
    let text = container_lab::support::time::format_rfc3339(time);
    let (seconds, _) = text.split_once(['.', 'Z']).unwrap_or((&text, ""));
    let nanos = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{seconds}.{nanos:09}Z")
}

pub fn logs(args: &LogsArgs) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    let record = lifecycle.find(&args.container)?;
    if record.config.extra.log_driver == container_lab::engine::runtime::extra::LogDriver::None {
        return Err(refused(
            "configured logging driver does not support reading (the container was run with --log-driver none)",
        ));
    }
    let show = |entry: &logs::Entry| {
        if args.since.is_some_and(|since| entry.time < since)
            || args.until.is_some_and(|until| entry.time > until)
        {
            return;
        }
        if args.timestamps {
            let mut stamped = entry.clone();
            stamped.log = format!("{} {}", fixed_nanos(entry.time), entry.log);
            print_entry(&stamped);
        } else {
            print_entry(entry);
        }
    };
    if args.follow {
        lifecycle.follow_logs(&args.container, args.tail.0, show)?;
    } else {
        lifecycle
            .logs(&args.container, args.tail.0)?
            .iter()
            .for_each(show);
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

/// `rm [-f] [-v]`: with `-v` its anonymous volumes go too.
pub fn rm(containers: &[String], force: bool, volumes: bool) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    let dirs = LabDirs::from_env();
    for_each(containers, |key| {
        let anonymous = match lifecycle.find(key) {
            Ok(record) if volumes => record.config.extra.anonymous_volumes,
            _ => Vec::new(),
        };
        lifecycle.remove(key, force)?;
        for name in anonymous {
            let _ = container_lab::engine::volumes::remove(&dirs, &name);
        }
        Ok(())
    })
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Display total file sizes (accepted; the lab does not count them)
    #[arg(short = 's', long)]
    size: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `inspect [-f TEMPLATE]`: Docker's shape, plus where the kernel objects are.
pub fn inspect(args: &InspectArgs) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    let mut all = Vec::new();
    for key in &args.containers {
        let inspection = lifecycle.inspect(key)?;
        let image = inspection.record.config.image_id.clone();
        all.push(present::inspect_document(&inspection, image.as_deref()));
    }
    match &args.format {
        Some(format) => {
            let text = crate::format::render_each(format, &all)
                .map_err(|e| refused(format!("template parsing error: {e}")))?;
            print!("{text}");
        }
        None => println!("{}", serde_json::to_string_pretty(&all)?),
    }
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
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    detach: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_parser = config::parse_env)]
    env: Vec<(String, Option<String>)>,
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
    if args.detach {
        return exec_detached(&args.container);
    }
    if let Some(dir) = &args.workdir {
        config::check_workdir(dir).map_err(refused)?;
    }
    let request = ExecRequest {
        argv: args.command.clone(),
        env: args
            .env
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect(),
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        interactive: args.interactive,
        console: None,
    };
    let lifecycle = lifecycle();
    if args.tty && args.interactive {
        crate::run::check_terminal()?;
    }
    if args.tty {
        return crate::terminal::exec_with_terminal(&lifecycle, &args.container, request);
    }
    Ok(lifecycle.exec(&args.container, request)?)
}

/// `exec -d`: the same exec, by a process of its own in a session of its
/// own, its streams on /dev/null; we return at once, as Docker does.
fn exec_detached(container: &str) -> anyhow::Result<i32> {
    use std::os::unix::process::CommandExt;
    // Our own command line without -d, which only the flags before the
    // container can be (after it, the words are the command's).
    let mut args: Vec<String> = Vec::new();
    let mut in_flags = true;
    for arg in std::env::args().skip(1) {
        if in_flags && arg == container {
            in_flags = false;
        }
        if in_flags && (arg == "-d" || arg == "--detach") {
            continue;
        }
        args.push(arg);
    }
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    command.spawn()?;
    Ok(0)
}

/// `system prune [-f]`: asks first on a terminal, as Docker does.
pub fn prune(force: bool) -> anyhow::Result<i32> {
    if !force {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdin())
            && std::io::IsTerminal::is_terminal(&std::io::stderr());
        if !tty {
            return Err(refused(
                "system prune removes every stopped container and every network no container uses; without a terminal to ask, pass -f",
            ));
        }
        let sure = dialoguer::Confirm::new()
            .with_prompt("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n\nAre you sure you want to continue?")
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
    // Then, as Docker, the user-defined networks no container is on now;
    // never bridge, host or none (they are not definitions to remove).
    let networks = container_lab::engine::network::defined::prune(&LabDirs::from_env())?;
    if !networks.is_empty() {
        writeln!(out, "Deleted Networks:")?;
        for name in &networks {
            writeln!(out, "{name}")?;
        }
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed containers: {}", removed.len())?;
    Ok(0)
}
