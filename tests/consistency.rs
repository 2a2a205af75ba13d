//! The chapter manifest (`src/chapters.rs`) is the one list of chapters.
//! This test fails when the binaries, the chapter sources, the book and the
//! snapshots stop agreeing with it, so none of them can drift.

use std::fs;
use std::path::{Path, PathBuf};

use container_lab::lab::chapters::{Chapter, Need, CHAPTERS};

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
        // rustfmt.toml keeps the chapters within the page's width.
        if !file.ends_with(".rs") {
            continue;
        }
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

/// Chapters not yet moved to `lab::begin!` and a step table (chapter 5 is
/// being rewritten); the checks of that style skip them. Remove a chapter
/// from here once it is converted.
const NOT_YET_CONVERTED: &[&str] = &[];

fn converted() -> impl Iterator<Item = &'static Chapter> {
    CHAPTERS
        .iter()
        .filter(|c| !NOT_YET_CONVERTED.contains(&c.id))
}

fn chapter_source(chapter: &Chapter) -> String {
    read(&repo().join("chapters").join(chapter.source))
}

/// Each chapter starts with `lab::begin!`, which finds it in the manifest
/// and applies what it needs; none checks a need by hand.
#[test]
fn every_chapter_begins_from_the_manifest() {
    // What `begin` does for a chapter, and so no chapter may do itself.
    let by_hand = [
        "ensure_root(",
        "find_static(",
        "ensure_supported(",
        "reexec_in_delegated_scope(",
        "NotDelegated",
        "install_interrupt_handler(",
        "Narrator::new(",
        "chapters::chapter(",
        "max_user_namespaces",
    ];
    for chapter in converted() {
        let source = chapter_source(chapter);
        assert_eq!(
            source.matches("lab::begin!(").count(),
            1,
            "chapters/{} must start with one `lab::begin!(&cli.chapter)?`",
            chapter.source
        );
        for call in by_hand {
            assert!(
                !source.contains(call),
                "chapters/{} does `{call}` by hand: say what it needs in \
                 src/lab/chapters.rs and let lab::begin! apply it",
                chapter.source
            );
        }
    }
}

/// What a chapter's code uses, it must declare in the manifest, and what
/// the manifest declares, the code must use (as far as the source shows).
#[test]
fn the_manifest_needs_what_each_chapter_uses() {
    let root = Need::Root { why: "" };
    let signs: [(Need, &[&str]); 6] = [
        (
            root,
            &[
                "Namespace::",
                "Container::start",
                "BusyboxContainer",
                "Cgroup::",
            ],
        ),
        (Need::Busybox, &["busybox::", "BusyboxContainer"]),
        (Need::Overlay, &["overlay::mount_overlay"]),
        (Need::Cgroups, &["Cgroup::", "cgroups::"]),
        (
            Need::Network,
            &["connect_to_network", "engine::network", "kernel::net"],
        ),
        (Need::UserNamespaces, &["Namespace::User"]),
    ];
    for chapter in CHAPTERS {
        let source = chapter_source(chapter);
        for (need, uses) in &signs {
            let declared = chapter
                .needs
                .iter()
                .any(|n| std::mem::discriminant(n) == std::mem::discriminant(need));
            let used = uses.iter().find(|u| source.contains(*u));
            match (declared, used) {
                (false, Some(sign)) => panic!(
                    "chapters/{} uses {sign} but its manifest entry does not need {need:?}",
                    chapter.source
                ),
                (true, None) => panic!(
                    "{}'s manifest entry needs {need:?}, but chapters/{} uses none of {uses:?}",
                    chapter.id, chapter.source
                ),
                _ => {}
            }
        }
    }
}

/// The hostname is set and read one way, `kernel::hostname`.
#[test]
fn the_hostname_is_set_one_way() {
    let mut files: Vec<PathBuf> = converted()
        .map(|c| repo().join("chapters").join(c.source))
        .collect();
    files.extend(rust_files(&repo().join("src/lab")));
    files.extend(rust_files(&repo().join("src/engine")));
    files.extend(rust_files(&repo().join("mini-docker")));
    for file in files {
        let text = read(&file);
        for call in [
            "unistd::sethostname",
            "unistd::gethostname",
            "libc::sethostname",
        ] {
            assert!(
                !text.contains(call),
                "{} calls {call}: use kernel::hostname::set or get",
                file.display()
            );
        }
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every `{{#include FILE:ANCHOR}}` of a Rust file in the book, as
/// (page, file relative to the repository, anchor, the included lines).
fn anchored_includes() -> Vec<(String, String, String, Vec<String>)> {
    let src = repo().join("book/src");
    let mut found = Vec::new();
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let page = read(&path);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for include in page.split("{{#include ../../").skip(1) {
            let target = include.split("}}").next().unwrap().trim();
            let Some((file, anchor)) = target.split_once(':') else {
                continue;
            };
            if !file.ends_with(".rs") || anchor.starts_with(|c: char| c.is_ascii_digit()) {
                continue;
            }
            let text = read(&repo().join(file));
            let lines = text
                .lines()
                .skip_while(|l| !l.trim().ends_with(&format!("ANCHOR: {anchor}")))
                .skip(1)
                .take_while(|l| !l.trim().ends_with(&format!("ANCHOR_END: {anchor}")))
                .filter(|l| !l.contains("ANCHOR"))
                .map(String::from)
                .collect();
            found.push((name.clone(), file.to_string(), anchor.to_string(), lines));
        }
    }
    found
}

/// A listing wider than the page is cut off at its right edge. The files
/// of the floors below are being wrapped by their owners: remove each
/// prefix here once its files fit.
const WIDTH_NOT_YET_CHECKED: &[&str] = &["src/kernel/", "src/engine/", "mini-docker/"];

/// What the book includes of the chapters and the harness fits in 80
/// columns, the width of a listing on the page.
#[test]
fn included_code_fits_the_page() {
    for (page, file, anchor, lines) in anchored_includes() {
        if WIDTH_NOT_YET_CHECKED.iter().any(|p| file.starts_with(p)) {
            continue;
        }
        for line in lines {
            let width = line.chars().count();
            assert!(
                width <= 80,
                "{page} includes {file}:{anchor}, whose line is {width} columns wide \
                 (at most 80 fit the page): {line}"
            );
        }
    }
}

/// A chapter's listing on its page is the step itself: its narration (the
/// step table) stays out of the anchor, and nothing in it prints past the
/// narrator or plumbs errors by hand.
#[test]
fn a_chapters_listings_show_only_the_step() {
    let narration = [
        "book.next(",
        "book.step(",
        ".primitive(",
        ".look(",
        "eprintln!",
        "exit_now(",
        "map_err(",
    ];
    for (page, file, anchor, lines) in anchored_includes() {
        let Some(chapter) = converted().find(|c| file == format!("chapters/{}", c.source)) else {
            continue;
        };
        for line in &lines {
            for word in narration {
                assert!(
                    !line.contains(word),
                    "{page} includes {file}:{anchor}, which holds `{word}`: keep the \
                     narration in {}'s narration table and errors in src/",
                    chapter.id
                );
            }
        }
    }
    for chapter in converted() {
        let source = chapter_source(chapter);
        for raw in ["println!", "print!(", "eprint!("] {
            assert!(
                !source.contains(raw),
                "chapters/{} prints with {raw}: print through the narrator",
                chapter.source
            );
        }
    }
}

/// The `step N: TITLE` lines of a chapter's first snapshot.
fn snapshot_steps(id: &str) -> Vec<String> {
    let file = snapshot_files(id).into_iter().next().unwrap();
    read(&repo().join("tests/snapshots").join(file))
        .lines()
        .filter(|l| l.starts_with("step "))
        .map(String::from)
        .collect()
}

/// A page's `### Step N: TITLE` headings are its chapter's steps, all of
/// them, in order, as the chapter prints them: a step added, removed or
/// renamed cannot leave the page behind.
#[test]
fn step_headings_are_the_chapters_steps() {
    for chapter in converted() {
        let page = read(&repo().join("book/src").join(chapter.page));
        let headings: Vec<String> = page
            .lines()
            .filter_map(|l| l.strip_prefix("### Step "))
            .map(|h| format!("step {h}"))
            .collect();
        assert_eq!(
            headings,
            snapshot_steps(chapter.id),
            "{}: its `### Step N: TITLE` headings must be the steps of its snapshot",
            chapter.page
        );
        // A heading followed by a part of the snapshot shows that step.
        for section in page.split("\n### Step ").skip(1) {
            let number = section.split(':').next().unwrap();
            let body = section.split("\n#").next().unwrap();
            for include in body.split("{{#include ../../tests/snapshots/").skip(1) {
                let target = include.split("}}").next().unwrap();
                let mut parts = target.split(':');
                let (Some(file), Some(start)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let Ok(start) = start.parse::<usize>() else {
                    continue;
                };
                let line = read(&repo().join("tests/snapshots").join(file))
                    .lines()
                    .nth(start - 1)
                    .unwrap_or_default()
                    .to_string();
                assert!(
                    line.starts_with(&format!("step {number}:")),
                    "{}: step {number} includes {file} from line {start}, which is {line:?}",
                    chapter.page
                );
            }
        }
    }
}

/// Numbers the kernel chooses at run time (a PID, how many forks it
/// allowed) come from a snapshot, never from a page's prose.
#[test]
fn no_page_states_a_run_time_number_by_hand() {
    let chosen = regex::Regex::new(r"\b(?:PID|pid) (?:[2-9]|\d{2,})\b|\b\d+ forks\b").unwrap();
    for chapter in converted() {
        let page = read(&repo().join("book/src").join(chapter.page));
        if let Some(found) = chosen.find(&page) {
            panic!(
                "{} says {:?}: include the snapshot line that shows it instead",
                chapter.page,
                found.as_str()
            );
        }
    }
}

/// On the pages of the chapters that need a network, and on mini-docker's,
/// every address is one their snapshots show.
#[test]
fn network_pages_quote_only_the_snapshots_addresses() {
    let address = regex::Regex::new(r"\b\d+\.\d+\.\d+\.\d+(?::\d+)?(?:/\d+)?").unwrap();
    // Each page, with the prefixes of the snapshots that keep its facts.
    let mut pages: Vec<(&str, Vec<&str>)> = CHAPTERS
        .iter()
        .filter(|c| c.needs.contains(&Need::Network))
        .map(|c| (c.page, vec![c.id]))
        .collect();
    // mini-docker runs chapter 6's network.
    pages.push(("mini-docker.md", vec!["mini-docker", "lifecycle", "ch06"]));
    pages.push(("lifecycle.md", vec!["mini-docker", "lifecycle", "ch06"]));
    let all: Vec<String> = fs::read_dir(repo().join("tests/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for (page, prefixes) in pages {
        let text = read(&repo().join("book/src").join(page));
        let snapshots: String = all
            .iter()
            .filter(|f| prefixes.iter().any(|p| f.starts_with(p)))
            .map(|f| read(&repo().join("tests/snapshots").join(f)))
            .collect();
        for found in address.find_iter(&text) {
            assert!(
                snapshots.contains(found.as_str()),
                "{page} quotes {}, which no snapshot of it shows",
                found.as_str()
            );
        }
    }
}

/// The network page's diagram, drawn from what chapter 6 printed: its
/// names, addresses and port are the snapshot's. When the snapshot
/// changes, `LAB_UPDATE_BOOK=1 cargo test --test consistency` redraws it.
#[test]
fn the_network_diagram_is_drawn_from_the_snapshot() {
    let snapshot = read(&repo().join("tests/snapshots/ch06.snap"));
    let find = |pattern: &str| -> Vec<String> {
        let caps = regex::Regex::new(pattern)
            .unwrap()
            .captures(&snapshot)
            .unwrap_or_else(|| panic!("ch06.snap has no line like {pattern:?}"));
        caps.iter()
            .skip(1)
            .map(|c| c.unwrap().as_str().to_string())
            .collect()
    };
    let host = find(r"host side:\s+bridge (\S+) ([\d.]+)/(\d+), (\S+) attached to it");
    let who = find(r"addresses:\s+(\S+) has ([\d.]+), (\S+) has ([\d.]+)");
    let port = find(r"publish port (\d+) to")[0].clone();
    let subnet = find(r"ip saddr ([\d.]+/\d+) ip daddr")[0].clone();
    let (bridge, gateway, prefix, a_end) = (&host[0], &host[1], &host[2], &host[3]);
    let (a, a_ip, b, b_ip) = (&who[0], &who[1], &who[2], &who[3]);
    let (b_end, _) = container_lab::engine::network::veth_names(b);

    let published = format!(" 127.0.0.1:{port} ─");
    let arrow = " ".repeat(published.chars().count());
    let bridge_line = format!(" {bridge} (bridge) {gateway}/{prefix} ── {a_end} ");
    let a_end_at = bridge_line.chars().count() - 1;
    let run = a_end_at - 9 - b_end.chars().count();
    let left = [
        (format!("{published}┐ dnat to {a_ip}:80"), ' '),
        (format!("{arrow}│ (nft: output, prerouting)"), ' '),
        (format!("{arrow}▼"), ' '),
        (bridge_line, '─'),
        ("       │".to_string(), ' '),
        (format!("       └{} {b_end} ", "─".repeat(run)), '─'),
        (format!(" nft: masquerade {subnet} going out"), ' '),
    ];
    let right = [
        format!(" eth0  {a_ip}/{prefix}"),
        " lo    127.0.0.1".to_string(),
        format!(" default via {gateway}"),
        "─ eth0".to_string(),
        String::new(),
        String::new(),
        format!("─ eth0  {b_ip}/{prefix}"),
        format!(" container {b}"),
    ];
    let width = |s: &str| s.chars().count();
    let w1 = left.iter().map(|(l, _)| width(l)).max().unwrap() + 1;
    let w2 = right.iter().map(|r| width(r)).max().unwrap() + 1;
    let pad = |text: &str, w: usize, fill: char| {
        let mut s = text.to_string();
        s.extend(std::iter::repeat_n(fill, w - width(text)));
        s
    };
    let (top1, top2) = ("─".repeat(w1), "─".repeat(w2));
    let mut out = vec![
        format!(
            "{}{}",
            pad(" host network namespace", w1 + 8, ' '),
            format_args!(" container {a} (netns)")
        ),
        format!(" ┌{top1}┐      ┌{top2}┐"),
    ];
    let middles = [
        "│      │",
        "│      │",
        "│ veth │",
        "┼──────┼",
        "│      └",
        "┼──┐   ┌",
        "│  └───┼",
    ];
    for (i, ((l, fill), middle)) in left.iter().zip(middles).enumerate() {
        let r = match i {
            4 => format!("{top2}┘"),
            5 => format!("{top2}┐"),
            _ => format!("{}│", pad(&right[i], w2, ' ')),
        };
        out.push(format!(" │{}{middle}{r}", pad(l, w1, *fill)));
    }
    out.push(format!(" └{top1}┘      │{}│", pad(&right[7], w2, ' ')));
    out.push(format!(" {}       └{top2}┘", " ".repeat(w1 + 1)));
    let drawn = out.join("\n") + "\n";
    let fits = out.iter().all(|l| l.chars().count() <= 80);
    assert!(fits, "the diagram is wider than the page:\n{drawn}");

    let file = repo().join("book/src/generated/ch06-topology.txt");
    if std::env::var_os("LAB_UPDATE_BOOK").is_some() {
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, &drawn).unwrap();
    }
    let on_page = fs::read_to_string(&file).unwrap_or_default();
    assert!(
        on_page == drawn,
        "{} is not what ch06.snap says; redraw it with \
         LAB_UPDATE_BOOK=1 cargo test --test consistency, and review the diff:\n{drawn}",
        file.display()
    );
    let page = read(&repo().join("book/src/ch06-network.md"));
    assert!(page.contains("{{#include generated/ch06-topology.txt}}"));
}
