//! The floors of the library (ARCHITECTURE.md), checked: each module
//! imports only from the floors below its own.
//!
//! - `support` imports none of the floors;
//! - `kernel` imports only `support`;
//! - `engine` imports `kernel` and `support`, never the teaching harness;
//! - `lab` may import everything below it.
//!
//! And neither the engine nor the kernel floor prints: only the binaries
//! (and the harness's narrator) talk to the terminal.

use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file beneath `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines of `floor`'s files that name one of the `forbidden` floors,
/// as `file:line: text`. Comments are not imports and are skipped.
fn crossings(floor: &str, forbidden: &[&str]) -> Vec<String> {
    let root = repo().join("src").join(floor);
    let mut found = Vec::new();
    for file in sources(&root) {
        let text = fs::read_to_string(&file).unwrap();
        for (number, line) in lines_naming(&text, forbidden) {
            found.push(format!(
                "{}:{number}: {line}",
                file.strip_prefix(repo()).unwrap().display()
            ));
        }
    }
    found
}

/// The lines of `text` (numbered from 1) whose code names `crate::FLOOR`
/// for one of `floors`; comments are not imports.
fn lines_naming<'a>(text: &'a str, floors: &[&str]) -> Vec<(usize, &'a str)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            floors
                .iter()
                .any(|floor| code.contains(&format!("crate::{floor}")))
        })
        .map(|(number, line)| (number + 1, line.trim()))
        .collect()
}

#[test]
fn the_kernel_floor_imports_neither_the_harness_nor_the_engine() {
    let found = crossings("kernel", &["lab", "engine"]);
    assert!(
        found.is_empty(),
        "kernel primitives must take plain values, not lab or engine types:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_engine_never_imports_the_teaching_harness() {
    let found = crossings("engine", &["lab"]);
    assert!(
        found.is_empty(),
        "the engine serves every front end; the chapters' harness stays above it:\n{}",
        found.join("\n")
    );
}

#[test]
fn support_imports_no_floor() {
    let found = crossings("support", &["lab", "engine", "kernel"]);
    assert!(
        found.is_empty(),
        "support is below every floor:\n{}",
        found.join("\n")
    );
}

/// The lines of `text` (numbered from 1) whose code calls a print macro;
/// comments and string contents that merely name one are not calls.
fn lines_printing(text: &str) -> Vec<(usize, &str)> {
    const MACROS: [&str; 5] = ["print!", "println!", "eprint!", "eprintln!", "dbg!"];
    // A module's unit tests (at its end) may say why they skipped a part.
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .enumerate()
        .filter(|(_, line)| {
            let code = without_strings(line.split("//").next().unwrap_or(""));
            MACROS.iter().any(|m| {
                code.match_indices(m).any(|(at, _)| {
                    // `eprintln!` is not `println!` preceded by an `e`.
                    let before = code[..at].chars().next_back();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            })
        })
        .map(|(number, line)| (number + 1, line.trim()))
        .collect()
}

/// A line's code with the contents of its string literals blanked.
fn without_strings(code: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in code.chars() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => {
                in_string = !in_string;
                out.push('"');
            }
            (true, false, _) => {}
            (false, _, c) => out.push(c),
        }
    }
    out
}

/// Where the engine or the kernel floor calls a print macro, as
/// `file:line: text`.
fn prints_in(floor: &str) -> Vec<String> {
    let root = repo().join("src").join(floor);
    let mut found = Vec::new();
    for file in sources(&root) {
        let relative = file.strip_prefix(repo()).unwrap().display().to_string();
        let text = fs::read_to_string(&file).unwrap();
        for (number, line) in lines_printing(&text) {
            found.push(format!("{relative}:{number}: {line}"));
        }
    }
    found
}

#[test]
fn neither_the_engine_nor_the_kernel_floor_prints() {
    let mut found = prints_in("engine");
    found.extend(prints_in("kernel"));
    assert!(
        found.is_empty(),
        "only the binaries and lab::narrate talk to the terminal; return the text, \
         send it on the init pipe or hand it to a callback (warnings: log::warn!):\n{}",
        found.join("\n")
    );
}

/// The check itself can fail: it finds a print macro in code, and only there.
#[test]
fn a_print_is_found_and_a_comment_or_string_is_not_one() {
    let text = concat!(
        "let x = 1;\n",
        "    eprintln!(\"warning: {x}\");\n",
        "// println!(\"in a comment\")\n",
        "let s = \"println!(in a string)\";\n",
        "my_println!(x); dbg!(x);\n",
        "print!(\"a\"); // and a comment\n",
    );
    assert_eq!(
        lines_printing(text),
        [
            (2, "eprintln!(\"warning: {x}\");"),
            (5, "my_println!(x); dbg!(x);"),
            (6, "print!(\"a\"); // and a comment"),
        ]
    );
}

/// The check itself can fail: it finds a crossing in code, and only there.
#[test]
fn a_crossing_is_found_and_a_comment_is_not_one() {
    let text = "use std::fs;\nuse crate::engine::dirs::LabDirs;\n// see crate::lab::narrate\n";
    assert_eq!(
        lines_naming(text, &["lab", "engine"]),
        [(2, "use crate::engine::dirs::LabDirs;")]
    );
}
