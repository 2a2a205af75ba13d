//! The flags every chapter understands, and the way a chapter's `main`
//! turns errors into one clear line and an exit code.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Args;

use crate::kernel::signals::Interrupted;

/// Flags shared by every chapter (flattened into each chapter's own `Cli`).
#[derive(Debug, Clone, Args)]
pub struct ChapterArgs {
    /// Run straight through without pausing between steps
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// Flags of the chapters that start a container.
#[derive(Debug, Clone, Args)]
pub struct ContainerArgs {
    /// Hostname inside the container
    #[arg(long, default_value = "lab", value_parser = parse_hostname)]
    pub hostname: String,

    /// Command to run inside the container as the last step (after `--`)
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// A hostname the kernel accepts: 1 to 64 bytes, letters, digits, '-' and '.'.
pub fn parse_hostname(value: &str) -> Result<String, String> {
    let valid_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if value.is_empty() || value.len() > 64 || !valid_chars {
        return Err(format!(
            "invalid hostname {value:?}: use 1 to 64 letters, digits, '-' or '.'"
        ));
    }
    Ok(value.to_string())
}

/// Runs a chapter's body and maps its outcome to an exit code: 0 when it
/// finished, 130 when Ctrl-C interrupted it (like a shell), 1 on an error,
/// which is printed as one lowercase line, never as a panic.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    crate::kernel::process::flush_stdio();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Ctrl-C reaches the container too (the terminal signals the
            // whole process group); when it arrived first, whatever failed
            // next failed because of it: report the interruption.
            let interrupted = find_interrupted(&err)
                .map(|i| i.0)
                .or_else(crate::kernel::signals::interrupted);
            if let Some(signal) = interrupted {
                eprintln!("\n{}", Interrupted(signal));
                return ExitCode::from(130);
            }
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

fn find_interrupted(err: &anyhow::Error) -> Option<&Interrupted> {
    err.chain().find_map(|cause| {
        cause.downcast_ref::<Interrupted>().or_else(|| match cause
            .downcast_ref::<crate::lab::container::ContainerError>(
        ) {
            Some(crate::lab::container::ContainerError::Interrupted(i)) => Some(i),
            _ => None,
        })
    })
}

/// `context: cause: cause`, on one line.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        // thiserror's `#[error(transparent)]` and `{source}` repeat causes.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// The program's arguments, for re-running it under sudo.
pub fn current_args() -> Vec<OsString> {
    std::env::args_os().skip(1).collect()
}

/// A run name: it becomes a directory name, so keep it to a safe alphabet.
pub fn parse_name(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !value.starts_with('.');
    if !valid {
        return Err(format!(
            "invalid name {value:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        ));
    }
    Ok(value.to_string())
}
