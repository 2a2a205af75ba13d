//! `mini-docker`: every chapter's primitive behind Docker's command line.
//!
//! `mini-docker run` with the busybox image or an imported one,
//! namespaces, an overlay root, cgroup limits, a bridge network with
//! published ports, volumes, hardening and Docker's exit codes. Its flags
//! are spelled as Docker's, so what works here works there.

mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lab::runtime::{self, Explain};
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
    /// Create and run a new container from an image
    Run(run::RunArgs),
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
    let result = match cli.command {
        Command::Run(args) => run(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("mini-docker: error: {}", cli::one_line(&err));
            ExitCode::from(FAILED)
        }
    }
}

fn run(args: &run::RunArgs) -> anyhow::Result<i32> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("lab-{:08x}", std::process::id()));
    let config = args.config(name)?;
    if !runtime::is_builtin_image(&config.image) {
        return Err(runtime::RuntimeError::NoSuchImage(config.image).into());
    }
    if args.detach {
        anyhow::bail!(
            "-d needs the lifecycle commands, which are not built yet; run it in the foreground"
        );
    }
    privilege::ensure_root(
        "mini-docker",
        "containers need namespaces, mounts and cgroups",
    )?;
    let explain = Explain { on: args.explain };
    Ok(runtime::run(&LabDirs::from_env(), &config, explain)?)
}
