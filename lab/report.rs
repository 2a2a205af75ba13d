//! How the lab prints: plain text, colour only on a terminal and never
//! with NO_COLOR, lines that a log or a test can read.

use std::io::IsTerminal;
use std::sync::OnceLock;

use colored::Colorize;

use crate::checks::Check;

/// Whether to colour what goes to stdout.
pub fn colour() -> bool {
    static COLOUR: OnceLock<bool> = OnceLock::new();
    *COLOUR.get_or_init(|| {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let on = std::io::stdout().is_terminal() && !no_color;
        colored::control::set_override(on);
        on
    })
}

/// `   pass  EVIDENCE` or `   FAIL  EVIDENCE`, long lines wrapped under it.
pub fn check(check: &Check) {
    colour();
    let mark = if check.passed {
        "pass".green().to_string()
    } else {
        "FAIL".red().bold().to_string()
    };
    let lines = wrap(&check.said, 70);
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            println!("   {mark}  {line}");
        } else {
            println!("         {line}");
        }
    }
}

/// A label and what follows it, aligned as the chapters align facts,
/// wrapped to the width of a page.
pub fn fact(label: &str, value: &str) {
    colour();
    for (i, line) in wrap(value, 63).iter().enumerate() {
        let label = if i == 0 { label } else { "" };
        println!("   {:<10} {line}", label.dimmed());
    }
}

/// Text another program printed, indented under the check.
pub fn quoted(text: &str) {
    for line in text.lines() {
        println!("{}", format!("         | {line}").trim_end());
    }
}

/// A heading line.
pub fn heading(text: &str) {
    colour();
    println!("{}", text.bold());
}

/// A paragraph with a prefix on its first line, wrapped under it.
pub fn wrapped(prefix: &str, text: &str) {
    let indent = " ".repeat(prefix.chars().count());
    for (i, line) in wrap(text, 76 - indent.len()).iter().enumerate() {
        let lead = if i == 0 { prefix } else { &indent };
        println!("{lead}{line}");
    }
}

/// Columns, left-aligned; the first row is the header.
pub fn table(rows: &[Vec<String>]) {
    colour();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        let line = line.trim_end().to_string();
        if i == 0 {
            println!("{}", line.dimmed());
        } else {
            println!("{line}");
        }
    }
}

/// Words into lines of at most `width` characters (a longer word stays whole).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}
