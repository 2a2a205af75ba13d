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

use crate::kernel::signals::{self, Interrupted};
use crate::lab::chapters::Chapter;
use crate::lab::cli::ChapterArgs;
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

/// A step being described; `begin()` prints it.
#[must_use = "call .begin() to print the step"]
pub struct Step<'a> {
    narrator: &'a mut Narrator,
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

    /// Starts describing the next step.
    pub fn step(&mut self, title: impl Into<String>) -> Step<'_> {
        Step {
            narrator: self,
            title: title.into(),
            primitive: None,
            shell: None,
            look: None,
        }
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
        self.step("run your command inside")
            .primitive("setns(2) into every namespace, then fork and execve")
            .shell(format!(
                "nsenter --target PID --all {}",
                shell_words(command)
            ))
            .begin()?;
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

impl Step<'_> {
    /// The kernel interface this step uses, e.g. `clone(CLONE_NEWUTS)`.
    pub fn primitive(mut self, text: impl Into<String>) -> Self {
        self.primitive = Some(text.into());
        self
    }

    /// The shell command that does the same.
    pub fn shell(mut self, text: impl Into<String>) -> Self {
        self.shell = Some(text.into());
        self
    }

    /// What to look at in the result.
    pub fn look(mut self, text: impl Into<String>) -> Self {
        self.look = Some(text.into());
        self
    }

    /// Waits if the chapter pauses between steps, then prints the step.
    pub fn begin(self) -> Result<(), Interrupted> {
        let number = self.narrator.step + 1;
        self.narrator.pause_before(number)?;
        self.narrator.step = number;
        println!();
        println!(
            "{}",
            format!("step {number}: {}", self.title).bold().yellow()
        );
        if let Some(primitive) = &self.primitive {
            println!("   {:<10} {}", "primitive".dimmed(), primitive);
        }
        if let Some(shell) = &self.shell {
            println!("   {:<10} {}", "shell".dimmed(), shell);
        }
        if let Some(look) = &self.look {
            println!("   {:<10} {}", "look at".dimmed(), look);
        }
        println!();
        Ok(())
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
