//! Exercise ch10-cache, chapter 10 (building images): the key the build
//! cache keeps a `COPY` step's layer under. A key that misses a change
//! ships stale files; a key that changes for nothing rebuilds for nothing.
//!
//! Fill in the TODO, then run `lab check ch10-cache` (or keep `lab
//! watch` running). `lab hint ch10-cache` helps. The lab builds the same
//! contexts with mini-docker's builder and compares its decisions (a step
//! run again, or CACHED) with your keys.

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
    let mut key = String::new();
    // TODO: chain the parent's key to what the step does, its instruction
    // and the digest of the bytes it copies (context.sources_digest), with
    // build::cache_key(PARENT, TEXT).
    let digest = context
        .sources_digest(sources)
        .map_err(anyhow::Error::msg)?;
    key = build::cache_key(parent, &format!("{instruction} {digest}"));
    // END TODO
    Ok(key)
}
