//! The learner's checkout: where the exercises are, and the small file
//! that says which are done (`.lab-progress`, ignored by git).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use container_lab::lab::exercises::{self, Exercise, EXERCISES};

/// Moves the checkout (the exercises, their package, the progress file).
pub const CHECKOUT_ENV: &str = "LAB_CHECKOUT";
/// Moves only the progress file.
pub const PROGRESS_ENV: &str = "LAB_PROGRESS";
/// The progress file's name in the checkout.
pub const PROGRESS_FILE: &str = ".lab-progress";

pub struct Checkout {
    pub root: PathBuf,
    progress_file: PathBuf,
}

impl Checkout {
    /// The checkout this lab was built from, unless `LAB_CHECKOUT` says.
    pub fn find() -> Checkout {
        let root = std::env::var_os(CHECKOUT_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let progress_file = std::env::var_os(PROGRESS_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(PROGRESS_FILE));
        Checkout {
            root,
            progress_file,
        }
    }

    pub fn file(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// A path of the checkout as the learner would type it from its root.
    pub fn display(&self, relative: &str) -> String {
        relative.to_string()
    }

    pub fn progress(&self) -> anyhow::Result<Progress> {
        let text = match fs::read_to_string(&self.progress_file) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("failed to read {}", self.progress_file.display()))
            }
        };
        let done = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter(|id| exercises::exercise(id).is_some())
            .map(String::from)
            .collect();
        Ok(Progress { done })
    }

    /// Writes the progress file, owned by the learner when the lab runs
    /// through sudo (so that their own `lab reset` can change it).
    pub fn save(&self, progress: &Progress) -> anyhow::Result<()> {
        let mut text = String::from(
            "# the exercises done, as `lab check` found them; delete this file to start over\n",
        );
        for ex in EXERCISES.iter().filter(|e| progress.is_done(e.id)) {
            text.push_str(ex.id);
            text.push('\n');
        }
        let file = &self.progress_file;
        container_lab::support::fs::write_atomic(file, text.as_bytes())
            .with_context(|| format!("failed to write {}", file.display()))?;
        give_to_invoking_user(file);
        Ok(())
    }

    pub fn solution_text(&self, ex: &Exercise) -> anyhow::Result<String> {
        let path = self.file(&ex.solution_path());
        fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))
    }

    /// Writes the exercise's file back: its solution without the answers.
    pub fn reset(&self, ex: &Exercise) -> anyhow::Result<()> {
        let text = exercises::exercise_text(&self.solution_text(ex)?);
        let path = self.file(&ex.path());
        fs::write(&path, text).with_context(|| format!("failed to write {}", path.display()))?;
        give_to_invoking_user(&path);
        Ok(())
    }
}

/// Under sudo, a file the lab writes in the checkout goes to the user who
/// ran it, as the rest of their checkout.
fn give_to_invoking_user(path: &Path) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let id = |name: &str| std::env::var(name).ok()?.parse::<u32>().ok();
    if let (Some(uid), Some(gid)) = (id("SUDO_UID"), id("SUDO_GID")) {
        let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    }
}

/// Which exercises are done.
pub struct Progress {
    done: Vec<String>,
}

impl Progress {
    pub fn is_done(&self, id: &str) -> bool {
        self.done.iter().any(|d| d == id)
    }

    /// The first exercise in the manifest's order that is not done.
    pub fn next(&self) -> Option<&'static Exercise> {
        EXERCISES.iter().find(|e| !self.is_done(e.id))
    }

    /// The first one not done after `ex`, then from the start.
    pub fn next_after(&self, ex: &Exercise) -> Option<&'static Exercise> {
        let at = EXERCISES.iter().position(|e| e.id == ex.id).unwrap_or(0);
        EXERCISES[at + 1..]
            .iter()
            .chain(&EXERCISES[..at])
            .find(|e| !self.is_done(e.id))
    }

    /// Marks it; returns whether anything changed.
    pub fn set_done(&mut self, id: &str, done: bool) -> bool {
        if self.is_done(id) == done {
            return false;
        }
        if done {
            self.done.push(id.to_string());
        } else {
            self.done.retain(|d| d != id);
        }
        true
    }
}
