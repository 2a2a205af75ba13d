//! `mini-docker`: every chapter's primitive behind Docker's command line.
//!
//! `mini-docker run` with the busybox image or an imported one,
//! namespaces, an overlay root, cgroup limits, a bridge network with
//! published ports, volumes, hardening and Docker's exit codes. Its flags
//! are spelled as Docker's, so what works here works there.

mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand};
use lab::runtime::{self, Explain};
use lab::state::LabDirs;
use lab::{cli, images, privilege, signals, volumes};

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
    Run(Box<run::RunArgs>),
    /// Import a root filesystem tarball (.tar or .tar.gz) as an image
    Import {
        /// The tarball
        file: PathBuf,
        /// The image's name, NAME[:TAG]
        reference: String,
    },
    /// List images
    Images,
    /// Remove an imported image
    Rmi {
        /// The image's name, NAME[:TAG]
        reference: String,
    },
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
}

#[derive(Debug, Subcommand)]
enum VolumeCommand {
    /// Create a volume
    Create { name: String },
    /// List volumes
    Ls,
    /// Remove a volume
    Rm { name: String },
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
        Command::Import { file, reference } => import(&file, &reference),
        Command::Images => images(),
        Command::Rmi { reference } => rmi(&reference),
        Command::Volume(command) => volume(command),
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

/// `docker import FILE NAME`: prints the new image's ID.
fn import(file: &std::path::Path, reference: &str) -> anyhow::Result<i32> {
    privilege::ensure_root("mini-docker import", "the image keeps the files' owners")?;
    let imported = images::import_tarball(&LabDirs::from_env(), file, reference)?;
    if imported.skipped_special > 0 {
        eprintln!(
            "mini-docker: skipped {} device nodes and FIFOs (a container gets its own /dev)",
            imported.skipped_special
        );
    }
    println!("sha256:{}", imported.image.id);
    Ok(0)
}

fn images() -> anyhow::Result<i32> {
    let list = images::list(&LabDirs::from_env())?;
    print!("{}", images::table(&list, SystemTime::now()));
    Ok(0)
}

fn rmi(reference: &str) -> anyhow::Result<i32> {
    privilege::ensure_root("mini-docker rmi", "images belong to root")?;
    images::remove(&LabDirs::from_env(), reference)?;
    println!("Untagged: {reference}");
    Ok(0)
}

fn volume(command: VolumeCommand) -> anyhow::Result<i32> {
    let dirs = LabDirs::from_env();
    match command {
        VolumeCommand::Create { name } => {
            privilege::ensure_root("mini-docker volume", "volumes belong to root")?;
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
            privilege::ensure_root("mini-docker volume", "volumes belong to root")?;
            volumes::remove(&dirs, &name)?;
            println!("{name}");
        }
    }
    Ok(0)
}
