//! How a chapter talks: a title, then numbered steps. Each step names the
//! kernel primitive it applies, the shell command that does the same, and
//! what to look at; the results follow, indented.
//!
//! Colour only on a terminal and never with `NO_COLOR`. On a terminal the
//! chapter waits before each new step (an instructor can talk through the
//! last one); without one, or with `--yes`, it runs straight through.

use std::fmt::Display;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use colored::Colorize;

use nix::errno::Errno;

use crate::kernel::hostname::HostnameError;
use crate::kernel::mounts::MountError;
use crate::kernel::namespaces::{Comparison, NamespaceError};
use crate::kernel::overlay::OverlayError;
use crate::kernel::rootfs::RootfsError;
use crate::kernel::signals::{self, Interrupted};
use crate::lab::chapters::Chapter;
use crate::lab::cli::ChapterArgs;
use crate::lab::container::ContainerError;
pub use crate::support::shell::shell_words;

/// Test hook: hold before step N until a signal arrives, so a test can look
/// at the half-built container from outside and then interrupt it.
pub const HOLD_ENV: &str = "CONTAINER_LAB_HOLD_AT_STEP";

#[derive(Debug)]
pub struct Narrator {
    step: usize,
    interactive: bool,
    hold_at: Option<usize>,
}

/// What the narrator says before a step: its title, the kernel primitive
/// it applies, the shell command that does the same, and what to look at.
/// A chapter keeps these in a table of its own (its `narration` module),
/// so that the code of each step is only the step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    title: String,
    primitive: Option<String>,
    shell: Option<String>,
    look: Option<String>,
}

/// Shows the engine's warnings (a record skipped, a cleanup that failed:
/// what it hands to the `log` facade) as one `warning: …` line each on
/// stderr. Every chapter does (see `Narrator::new`), and mini-docker.
pub fn show_warnings() {
    if log::set_logger(&Warnings).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

struct Warnings;

impl log::Log for Warnings {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("warning: {}", record.args());
        }
    }

    fn flush(&self) {}
}

impl Narrator {
    /// Prints the chapter's title and decides about colour and pauses.
    pub fn new(chapter: &Chapter, args: &ChapterArgs) -> Narrator {
        show_warnings();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        colored::control::set_override(std::io::stdout().is_terminal() && !no_color);
        let interactive =
            !args.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        let hold_at = std::env::var(HOLD_ENV).ok().and_then(|v| v.parse().ok());
        println!("{} · {}", chapter.id.bold(), chapter.title.bold());
        Narrator {
            step: 0,
            interactive,
            hold_at,
        }
    }

    /// Waits if the chapter pauses between steps, then prints the next
    /// step's heading: `book.next(narration::spawn())?`.
    pub fn next(&mut self, step: Step) -> Result<(), Interrupted> {
        let number = self.step + 1;
        self.pause_before(number)?;
        self.step = number;
        println!();
        println!(
            "{}",
            format!("step {number}: {}", step.title).bold().yellow()
        );
        let lines = [
            ("primitive", &step.primitive),
            ("shell", &step.shell),
            ("look at", &step.look),
        ];
        for (label, text) in lines {
            if let Some(text) = text {
                println!("   {:<10} {}", label.dimmed(), text);
            }
        }
        println!();
        Ok(())
    }

    /// A result line under the current step.
    pub fn say(&self, text: impl Display) {
        println!("   {text}");
    }

    /// A `label: value` result line, labels aligned.
    pub fn fact(&self, label: &str, value: impl Display) {
        println!("   {:<28} {}", format!("{label}:"), value);
    }

    /// Announces a command about to run inside the container.
    pub fn inside(&self, argv: &[&str]) {
        let words: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        println!("   {} {}", "container $".cyan(), shell_words(&words));
    }

    /// Shows what a command printed, indented under the step.
    pub fn output(&self, text: &str) {
        for line in text.lines() {
            println!("{}", format!("     {line}").trim_end());
        }
    }

    /// Announces a command the host runs (or its equivalent).
    pub fn on_host(&self, command: &str) {
        println!("   {} {}", "host $".magenta(), command);
    }

    /// A small table under the current step; the first row is the header.
    pub fn table(&self, rows: &[Vec<String>]) {
        let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                rows.iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            println!("   {}", cells.join("  ").trim_end());
        }
    }

    /// Whether the kernel allowed something: `allowed`, or `refused` with
    /// its reason. Returns what it gave, when it allowed it.
    pub fn outcome<T, E: Refusal>(&self, label: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => {
                self.fact(label, "allowed");
                Some(value)
            }
            Err(err) => {
                self.fact(label, format!("refused ({})", err.reason()));
                None
            }
        }
    }

    /// The namespace links of two processes side by side, as chapters 1
    /// and 2 compare them.
    pub fn namespace_table(&self, rows: &[Comparison], ours: &str, theirs: &str) {
        let mut table = vec![vec![
            "namespace".to_string(),
            ours.to_string(),
            theirs.to_string(),
            String::new(),
        ]];
        for row in rows {
            let verdict = if row.shared() { "same" } else { "different" };
            table.push(vec![
                row.ns.proc_name().to_string(),
                row.ours.to_string(),
                row.theirs.to_string(),
                verdict.to_string(),
            ]);
        }
        self.table(&table);
    }

    /// The optional last step of a container chapter: the learner's own
    /// command (`-- CMD ARGS`), run inside like `docker exec`.
    pub fn user_command_step(
        &mut self,
        container: &crate::lab::container::Container,
        command: &[String],
    ) -> anyhow::Result<()> {
        if command.is_empty() {
            return Ok(());
        }
        self.next(
            Step::new("run your command inside")
                .primitive("setns(2) into every namespace, then fork and execve")
                .shell(format!(
                    "nsenter --target PID --all {}",
                    shell_words(command)
                )),
        )?;
        let argv: Vec<&str> = command.iter().map(String::as_str).collect();
        println!("   {} {}", "container $".cyan(), shell_words(command));
        let code = container.exec(&argv)?;
        self.fact("your command exited with", code);
        Ok(())
    }

    /// The last line of a chapter.
    pub fn done(&self, text: impl Display) {
        println!();
        println!("{} {}", "done:".green().bold(), text);
    }

    fn pause_before(&mut self, next: usize) -> Result<(), Interrupted> {
        signals::check()?;
        if self.hold_at == Some(next) {
            eprintln!("holding before step {next} until a signal arrives");
            let deadline = Instant::now() + Duration::from_secs(120);
            while signals::interrupted().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            return signals::check();
        }
        if self.interactive && next > 1 {
            crate::kernel::process::flush_stdio();
            let go_on = dialoguer::Confirm::new()
                .with_prompt(format!("continue with step {next}?"))
                .default(true)
                .interact();
            match go_on {
                Ok(true) => {}
                // "no", Ctrl-C at the prompt, or a closed terminal: stop here
                // and let the cleanup guards run.
                _ => return Err(Interrupted(nix::sys::signal::Signal::SIGINT)),
            }
        }
        signals::check()
    }
}

impl Step {
    pub fn new(title: impl Into<String>) -> Step {
        Step {
            title: title.into(),
            ..Step::default()
        }
    }

    /// The kernel interface this step uses, e.g. `clone(CLONE_NEWUTS)`.
    pub fn primitive(mut self, text: impl Into<String>) -> Step {
        self.primitive = Some(text.into());
        self
    }

    /// The shell command that does the same.
    pub fn shell(mut self, text: impl Into<String>) -> Step {
        self.shell = Some(text.into());
        self
    }

    /// What to look at in the result.
    pub fn look(mut self, text: impl Into<String>) -> Step {
        self.look = Some(text.into());
        self
    }
}

/// The kernel's answer when it refused something, as `outcome` shows it:
/// the errno's own words ("operation not permitted"), not the whole error.
pub trait Refusal {
    fn reason(&self) -> String;
}

impl Refusal for Errno {
    fn reason(&self) -> String {
        self.desc().to_lowercase()
    }
}

impl Refusal for std::io::Error {
    fn reason(&self) -> String {
        match self.raw_os_error() {
            Some(code) => Errno::from_raw(code).reason(),
            None => self.to_string(),
        }
    }
}

impl Refusal for HostnameError {
    fn reason(&self) -> String {
        self.errno.reason()
    }
}

impl Refusal for MountError {
    fn reason(&self) -> String {
        self.errno.reason()
    }
}

impl Refusal for RootfsError {
    fn reason(&self) -> String {
        match self {
            RootfsError::Sys { errno, .. } => errno.reason(),
            RootfsError::Mount(err) => err.reason(),
            other => other.to_string(),
        }
    }
}

impl Refusal for OverlayError {
    fn reason(&self) -> String {
        match self {
            OverlayError::Rootfs(err) => err.reason(),
            OverlayError::Mount(err) => err.reason(),
            other => other.to_string(),
        }
    }
}

impl Refusal for ContainerError {
    fn reason(&self) -> String {
        match self {
            ContainerError::Namespace(NamespaceError::NotPermitted) => Errno::EPERM.reason(),
            ContainerError::Namespace(NamespaceError::Clone(errno)) => errno.reason(),
            other => other.to_string(),
        }
    }
}

/// "yes" or "no", for facts the tests and the reader check at a glance.
pub fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}
