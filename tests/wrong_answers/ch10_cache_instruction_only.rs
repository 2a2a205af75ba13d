//! A typical wrong answer, for tests/exercises.rs: the COPY step keyed on
//! its parent and instruction text only, not on the bytes it copies.
//! Not an exercise: `lab check` must fail it with the message that explains it.

use std::fs;

use container_lab::engine::build::{self, BuildContext};
use container_lab::lab::handoff;

/// The build contexts the step is keyed in: a name, then app.py and
/// notes.txt (which the step does not copy), and whether a
/// `COPY base.txt /` comes before the step.
const CONTEXTS: &[(&str, &str, &str, bool)] = &[
    ("as-written", "print('hello')\n", "notes\n", false),
    ("app-edited", "print('hello, world')\n", "notes\n", false),
    ("notes-edited", "print('hello')\n", "more notes\n", false),
    ("one-more-step", "print('hello')\n", "notes\n", true),
];

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let run_dir = handoff::run_dir()?;
    // The key of the stage's first step, FROM scratch.
    let from = build::cache_key("", "FROM scratch");
    let mut keys = String::new();
    for (name, app, notes, one_more_step) in CONTEXTS {
        let dir = run_dir.path().join(name);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("app.py"), app)?;
        fs::write(dir.join("notes.txt"), notes)?;
        fs::write(dir.join("base.txt"), "base\n")?;
        let context = BuildContext::open(&dir).map_err(anyhow::Error::msg)?;
        let parent = if *one_more_step {
            copy_key(&from, &context, &["base.txt"], "/")?
        } else {
            from.clone()
        };
        let key = copy_key(&parent, &context, &["app.py"], "/app/")?;
        keys.push_str(&format!("{name} {key}\n"));
    }
    fs::write(run_dir.path().join("keys"), keys)?;

    // The lab reads keys and builds the contexts while this waits.
    handoff::this_process_to_lab()
}

/// The cache key of `COPY SOURCES DEST` from `context`, on top of the
/// step whose key is `parent`.
fn copy_key(
    parent: &str,
    context: &BuildContext,
    sources: &[&str],
    dest: &str,
) -> anyhow::Result<String> {
    let instruction = format!("COPY {} {dest}", sources.join(" "));
    // The instruction says which files, not what they hold.
    Ok(build::cache_key(parent, &instruction))
}
