//! The chapter manifest (`src/chapters.rs`) is the one list of chapters.
//! This test fails when the binaries, the chapter sources, the book and the
//! snapshots stop agreeing with it, so none of them can drift.

use std::fs;
use std::path::{Path, PathBuf};

use container_lab::lab::chapters::CHAPTERS;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// `(name, path)` of every `[[bin]]` in Cargo.toml.
fn cargo_binaries() -> Vec<(String, String)> {
    let manifest = read(&repo().join("Cargo.toml"));
    let mut bins = Vec::new();
    for section in manifest.split("[[bin]]").skip(1) {
        let field = |key: &str| {
            section
                .lines()
                .find_map(|line| {
                    line.strip_prefix(key)?
                        .trim()
                        .strip_prefix('=')
                        .map(|v| v.trim().trim_matches('"').to_string())
                })
                .unwrap_or_default()
        };
        bins.push((field("name"), field("path")));
    }
    bins
}

#[test]
fn every_chapter_has_a_binary_and_every_binary_a_chapter() {
    let bins = cargo_binaries();
    for chapter in CHAPTERS {
        let expected = format!("chapters/{}", chapter.source);
        assert!(
            bins.iter()
                .any(|(name, path)| name == chapter.id && *path == expected),
            "Cargo.toml needs [[bin]] name = \"{}\" path = \"{expected}\"",
            chapter.id
        );
        assert!(repo().join(&expected).is_file(), "{expected} is missing");
    }
    for (name, path) in &bins {
        if path.starts_with("chapters/") {
            assert!(
                CHAPTERS.iter().any(|c| c.id == name),
                "binary {name} is not in the chapter manifest"
            );
        }
    }
    for entry in fs::read_dir(repo().join("chapters")).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            CHAPTERS.iter().any(|c| c.source == file),
            "chapters/{file} is not in the chapter manifest"
        );
    }
}

#[test]
fn the_book_has_one_page_per_chapter_in_order() {
    let summary = read(&repo().join("book/src/SUMMARY.md"));
    let mut last = 0;
    for chapter in CHAPTERS {
        let link = format!("]({})", chapter.page);
        let at = summary
            .find(&link)
            .unwrap_or_else(|| panic!("SUMMARY.md does not link {}", chapter.page));
        assert!(at > last, "SUMMARY.md lists {} out of order", chapter.page);
        last = at;
        assert!(
            repo().join("book/src").join(chapter.page).is_file(),
            "book/src/{} is missing",
            chapter.page
        );
    }
    for line in summary.lines().filter(|l| l.contains("](ch")) {
        assert!(
            CHAPTERS
                .iter()
                .any(|c| line.contains(&format!("]({})", c.page))),
            "SUMMARY.md links a page that is not a chapter: {line}"
        );
    }
}

#[test]
fn every_page_includes_its_real_source_and_its_real_snapshot() {
    for chapter in CHAPTERS {
        let page = read(&repo().join("book/src").join(chapter.page));
        assert!(
            page.contains(&format!("{{{{#include ../../chapters/{}", chapter.source)),
            "{} must include chapters/{}",
            chapter.page,
            chapter.source
        );
        let snapshots = snapshot_files(chapter.id);
        assert!(
            !snapshots.is_empty(),
            "tests/snapshots has no snapshot for {}",
            chapter.id
        );
        assert!(
            snapshots
                .iter()
                .any(|s| page.contains(&format!("{{{{#include ../../tests/snapshots/{s}"))),
            "{} must include one of its snapshots {snapshots:?}",
            chapter.page
        );
    }
}

#[test]
fn every_snapshot_belongs_to_a_chapter_and_no_review_is_pending() {
    for entry in fs::read_dir(repo().join("tests/snapshots")).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !file.ends_with(".snap.new"),
            "{file} waits for review: cargo insta review"
        );
        assert!(
            file.starts_with("mini-docker")
                || file.starts_with("lifecycle")
                || CHAPTERS.iter().any(|c| file.starts_with(c.id)),
            "snapshot {file} does not belong to any chapter"
        );
    }
}

/// Every include in the book points at a file (and an anchor) that exists.
#[test]
fn every_include_in_the_book_resolves() {
    let src = repo().join("book/src");
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let page = read(&path);
        for include in page.split("{{#include ").skip(1) {
            let target = include.split("}}").next().unwrap().trim();
            let (file, anchor) = match target.split_once(':') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target, None),
            };
            let included = src.join(file);
            let text = read(&included);
            if let Some(anchor) = anchor.filter(|a| !a.chars().next().unwrap().is_ascii_digit()) {
                assert!(
                    text.contains(&format!("ANCHOR: {anchor}"))
                        && text.contains(&format!("ANCHOR_END: {anchor}")),
                    "{} includes {file}:{anchor}, but that anchor does not exist",
                    path.display()
                );
            }
        }
    }
}

fn snapshot_files(id: &str) -> Vec<String> {
    let mut files: Vec<String> = fs::read_dir(repo().join("tests/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| {
            f.ends_with(".snap") && (f == &format!("{id}.snap") || f.starts_with(&format!("{id}@")))
        })
        .collect();
    files.sort();
    files
}

/// Every chapter answers --help (clap checks its own definition when it
/// parses) and --version, and exits 0, without needing root.
#[test]
fn every_chapter_explains_itself() {
    for chapter in CHAPTERS {
        // Set by cargo test; when the binary runs on its own (in the v2
        // guest), the chapters are beside it in target/debug.
        let exe = std::env::var_os(format!("CARGO_BIN_EXE_{}", chapter.id))
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target/debug").join(chapter.id));
        let help = std::process::Command::new(&exe)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        assert_eq!(help.status.code(), Some(0), "{} --help failed", chapter.id);
        assert!(
            text.contains("Usage:") && text.contains("--yes"),
            "{} --help: {text}",
            chapter.id
        );
    }
}

/// A page may show one step's output by including a line range of a
/// snapshot. The range must still be exactly one step: it starts at a
/// `step N:` line and the line after it is blank (or the end), so a
/// snapshot that grows or shrinks cannot shift a page silently.
#[test]
fn ranged_snapshot_includes_cover_whole_steps() {
    let src = repo().join("book/src");
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let page = read(&path);
        for include in page.split("{{#include ../../tests/snapshots/").skip(1) {
            let target = include.split("}}").next().unwrap().trim();
            let mut parts = target.split(':');
            let file = parts.next().unwrap();
            let (Some(start), Some(end)) = (parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(start), Ok(end)) = (start.parse::<usize>(), end.parse::<usize>()) else {
                continue;
            };
            let lines: Vec<String> = read(&repo().join("tests/snapshots").join(file))
                .lines()
                .map(String::from)
                .collect();
            // Chapters print `step N:` blocks separated by blank lines;
            // `mini-docker --explain` prints `-- what` lines, one per step;
            // the lifecycle transcript has blocks that start with the
            // command (`$ mini-docker …`), itself followed by `$ mini-docker
            // ps -a`, so a step also needs a blank line (or the header) before.
            let explain = file.starts_with("mini-docker-explain");
            let transcript = file.starts_with("lifecycle-walkthrough");
            let step_start = if explain {
                "-- "
            } else if transcript {
                "$ mini-docker "
            } else {
                "step "
            };
            let first = lines.get(start - 1).cloned().unwrap_or_default();
            assert!(
                first.starts_with(step_start),
                "{}: {file}:{start}:{end} does not start at a step: {first:?}",
                path.display()
            );
            if transcript {
                let before = lines
                    .get(start.wrapping_sub(2))
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    before.trim().is_empty() || before == "---",
                    "{}: {file}:{start}:{end} starts inside a step (line before {before:?})",
                    path.display()
                );
            }
            let after = lines.get(end).cloned().unwrap_or_default();
            assert!(
                after.trim().is_empty() || (explain && after.starts_with(step_start)),
                "{}: {file}:{start}:{end} stops inside a step (next line {after:?})",
                path.display()
            );
        }
    }
}

/// A page that walks through a snapshot in pieces must show all of it, in
/// order, with nothing but blank lines between the pieces, so that a step
/// added to the snapshot cannot go missing from the page.
fn assert_walkthrough_shows_every_step(page: &str, snapshot: &str) {
    let text = read(&repo().join("book/src").join(page));
    let lines: Vec<String> = read(&repo().join("tests/snapshots").join(snapshot))
        .lines()
        .map(String::from)
        .collect();
    let prefix = format!("{{{{#include ../../tests/snapshots/{snapshot}:");
    let pieces: Vec<&str> = text.split(prefix.as_str()).skip(1).collect();
    assert!(!pieces.is_empty(), "{page} does not include {snapshot}");
    // Line 4 is the first after insta's header.
    let mut shown = 3;
    for include in pieces {
        let range = include.split("}}").next().unwrap().trim();
        let (start, end) = range.split_once(':').unwrap_or((range, ""));
        let start = start.parse::<usize>().unwrap_or(0);
        let skipped = lines
            .get(shown..start.saturating_sub(1))
            .unwrap_or_default();
        assert!(
            start > shown && skipped.iter().all(|l| l.trim().is_empty()),
            "{page}: the include {snapshot}:{range} should start at the first line after line {shown}"
        );
        shown = end.parse::<usize>().unwrap_or(lines.len());
    }
    let rest = lines.get(shown..).unwrap_or_default();
    assert!(
        rest.iter().all(|l| l.trim().is_empty()),
        "{page} shows {snapshot} up to line {shown}, but it has {} lines",
        lines.len()
    );
}

#[test]
fn the_mini_docker_walkthrough_shows_every_explain_step() {
    assert_walkthrough_shows_every_step("mini-docker.md", "mini-docker-explain@v1.snap");
}

#[test]
fn the_lifecycle_walkthrough_shows_every_step() {
    assert_walkthrough_shows_every_step("lifecycle.md", "lifecycle-walkthrough.snap");
}

/// Timings quoted on the mini-docker page are the README's measured ones.
#[test]
fn the_mini_docker_page_quotes_only_the_readmes_timings() {
    let page = read(&repo().join("book/src/mini-docker.md"));
    let readme = read(&repo().join("README.md"));
    let words: Vec<&str> = page.split_whitespace().collect();
    for pair in words.windows(2) {
        let unit = pair[1].trim_end_matches(|c: char| !c.is_alphanumeric());
        if unit == "ms" && pair[0].parse::<f64>().is_ok() {
            let quoted = format!("{} ms", pair[0]);
            assert!(
                readme.contains(&quoted),
                "mini-docker.md quotes {quoted}, which README.md does not report"
            );
        }
    }
}
