//! `lab`: the exercises' checker, as rustlings is for Rust's exercises.
//!
//! `lab list` shows what is done and what is pending; `lab check [ID]`
//! builds one exercise, runs it as root in a stand-in host of its own and
//! verifies what it built from outside, through the kernel's own files;
//! `lab watch` checks again on every save; `lab hint`, `lab reset` and
//! `lab solution` help. Progress is kept in `.lab-progress` in the checkout.

mod build;
mod checkout;
mod checks;
mod evidence;
mod report;
mod run;
mod watch;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use container_lab::lab::exercises::{self, Exercise, EXERCISES};

use crate::checkout::Checkout;

/// The container lab's exercises: fill in a gap, and the lab checks what
/// your program built, from the kernel's side.
#[derive(Debug, Parser)]
#[command(name = "lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the exercises, done and pending, in order
    List,
    /// Build an exercise, run it and check what it built (the next pending one by default)
    Check {
        /// The exercise to check (see `lab list`)
        id: Option<String>,
        /// Check every exercise and print a one-screen summary (for instructors)
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// How long the exercise may run before the lab stops it, in seconds
        #[arg(long, default_value_t = run::DEFAULT_TIME_LIMIT, value_parser = clap::value_parser!(u64).range(1..=600))]
        time_limit: u64,
    },
    /// Check an exercise again every time its file is saved (the next pending one by default)
    Watch {
        id: Option<String>,
        #[arg(long, default_value_t = run::DEFAULT_TIME_LIMIT, value_parser = clap::value_parser!(u64).range(1..=600))]
        time_limit: u64,
    },
    /// Show the hints of an exercise
    Hint { id: String },
    /// Put an exercise's file back as it was, and mark it pending
    Reset { id: String },
    /// Show the lines that fill an exercise's gaps (asks first, on a terminal only)
    Solution { id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let checkout = Checkout::find();
    let outcome = match &cli.command {
        Command::List => list(&checkout),
        Command::Check {
            id,
            all: false,
            time_limit,
        } => find_or_next(&checkout, id.as_deref())
            .and_then(|ex| run::check_one(&checkout, ex, *time_limit)),
        Command::Check {
            all: true,
            time_limit,
            ..
        } => run::check_all(&checkout, *time_limit),
        Command::Watch { id, time_limit } => find_or_next(&checkout, id.as_deref())
            .and_then(|ex| watch::watch(&checkout, ex, *time_limit)),
        Command::Hint { id } => find(id).map(hint),
        Command::Reset { id } => find(id).and_then(|ex| reset(&checkout, ex)),
        Command::Solution { id } => find(id).and_then(|ex| solution(&checkout, ex)),
    };
    container_lab::kernel::process::flush_stdio();
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", container_lab::lab::cli::one_line(&err));
            ExitCode::FAILURE
        }
    }
}

fn find(id: &str) -> anyhow::Result<&'static Exercise> {
    exercises::exercise(id)
        .ok_or_else(|| anyhow::anyhow!("there is no exercise {id:?}; `lab list` shows them all"))
}

/// The exercise named, or the first one not done yet.
fn find_or_next(checkout: &Checkout, id: Option<&str>) -> anyhow::Result<&'static Exercise> {
    match id {
        Some(id) => find(id),
        None => checkout.progress()?.next().ok_or_else(|| {
            anyhow::anyhow!(
                "every exercise is done; `lab check ID` checks one again, `lab list` shows them"
            )
        }),
    }
}

fn list(checkout: &Checkout) -> anyhow::Result<ExitCode> {
    let progress = checkout.progress()?;
    let mut rows = vec![vec![
        String::new(),
        "exercise".into(),
        "status".into(),
        "what you build".into(),
    ]];
    for (number, ex) in EXERCISES.iter().enumerate() {
        let status = if progress.is_done(ex.id) {
            "done"
        } else {
            "pending"
        };
        rows.push(vec![
            format!("{:>2}", number + 1),
            ex.id.into(),
            status.into(),
            ex.title.into(),
        ]);
    }
    report::table(&rows);
    println!();
    let done = EXERCISES.iter().filter(|e| progress.is_done(e.id)).count();
    print!("{done} of {} done", EXERCISES.len());
    match progress.next() {
        Some(next) => println!(
            "; next: {} ({}): lab check {}",
            next.id,
            next.path(),
            next.id
        ),
        None => println!(": every exercise is done"),
    }
    Ok(ExitCode::SUCCESS)
}

fn hint(ex: &Exercise) -> ExitCode {
    println!("{}: {} ({})", ex.id, ex.title, ex.path());
    for (number, hint) in ex.hints.iter().enumerate() {
        println!();
        report::wrapped(&format!("{}. ", number + 1), hint);
    }
    println!();
    println!(
        "still stuck? `lab solution {}` shows the missing lines.",
        ex.id
    );
    ExitCode::SUCCESS
}

fn reset(checkout: &Checkout, ex: &Exercise) -> anyhow::Result<ExitCode> {
    checkout.reset(ex)?;
    let mut progress = checkout.progress()?;
    if progress.set_done(ex.id, false) {
        checkout.save(&progress)?;
    }
    println!(
        "{} is as it was, and pending: {}",
        ex.id,
        checkout.display(&ex.path())
    );
    Ok(ExitCode::SUCCESS)
}

/// Shown only after a yes on a terminal: a learner who pipes the command
/// (or a script) never sees the answer by accident.
fn solution(checkout: &Checkout, ex: &Exercise) -> anyhow::Result<ExitCode> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        anyhow::bail!(
            "lab solution asks before it shows an answer, and there is no terminal to ask on; \
             run it in one"
        );
    }
    let sure = dialoguer::Confirm::new()
        .with_prompt(format!(
            "show the lines that fill the gaps of {}? (try `lab hint {}` first)",
            ex.id, ex.id
        ))
        .default(false)
        .interact()?;
    if !sure {
        println!("not shown.");
        return Ok(ExitCode::SUCCESS);
    }
    let text = checkout.solution_text(ex)?;
    println!("{}, the lines after each TODO:", ex.path());
    for gap in exercises::gaps(&text) {
        println!();
        for (i, line) in gap.todo.iter().enumerate() {
            println!("{:>4} {line}", gap.line + i);
        }
        for line in &gap.answer {
            println!("   + {line}");
        }
    }
    println!();
    println!("the whole program: {}", ex.solution_path());
    Ok(ExitCode::SUCCESS)
}
