//! The Dockerfile parser: text to stages of typed instructions, following
//! BuildKit's rules (and its error messages, with the file and line).
//!
//! - Parser directives (`# escape=`, `# syntax=`) only before anything
//!   else; `syntax` is accepted and ignored.
//! - A line ending in the escape character continues on the next; comment
//!   lines and empty lines inside a continuation are dropped.
//! - Instructions are case-insensitive; flags (`--from=…`) come first.
//! - RUN, CMD, ENTRYPOINT and SHELL take a JSON array (exec form) or a
//!   string (shell form); COPY, ADD and VOLUME a JSON array or words.
//! - ENV and LABEL take `key=value …` (or the old `key value`), with
//!   quotes kept for the substitution to remove later.
//!
//! Variables are not substituted here: that needs the build's state (see
//! [`super::words`]), and happens as each instruction runs.
//!
//! Chosen over the `dockerfile-parser` crate (no typed ADD, WORKDIR, USER,
//! EXPOSE, VOLUME, STOPSIGNAL, SHELL; no `escape` directive) and
//! `parse-dockerfile` (ENV and LABEL left unsplit, errors not Docker's):
//! neither does the word splitting and error messages Docker users see,
//! which are most of the work.

use std::fmt;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The name errors give (`Dockerfile`, or the `-f` path).
    pub file: String,
    /// `\` or, with `# escape=\``, a backtick.
    pub escape: char,
    /// ARG instructions before the first FROM: usable in FROM lines only.
    pub meta_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
    /// Docker's parser warnings (empty continuation lines).
    pub warnings: Vec<String>,
}

/// One build stage: a FROM and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// The FROM instruction itself.
    pub from: Instruction,
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// The FROM's image (unexpanded), as written.
    pub fn base(&self) -> &str {
        match &self.from.kind {
            Kind::From { image, .. } => image,
            _ => "",
        }
    }
}

/// An instruction with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// First and last line, from 1.
    pub line: usize,
    pub end_line: usize,
    /// The instruction as written, continuations joined.
    pub original: String,
    pub kind: Kind,
}

/// A command line: `RUN echo hi` or `RUN ["echo", "hi"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

/// COPY's and ADD's sources, destination and flags (unexpanded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopySpec {
    pub sources: Vec<String>,
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    /// `--from=STAGE|INDEX|IMAGE` (COPY only).
    pub from: Option<String>,
}

/// HEALTHCHECK: `NONE`, or a command with its timings (nanoseconds, as
/// Docker's config stores them; 0 when not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", "…"]`.
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub retries: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run(Command),
    Cmd(Command),
    Entrypoint(Command),
    Shell(Vec<String>),
    Copy(CopySpec),
    Add(CopySpec),
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Maintainer(String),
    Healthcheck(Healthcheck),
    Onbuild(String),
}

impl Kind {
    /// The instruction's name, uppercase.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::From { .. } => "FROM",
            Kind::Run(_) => "RUN",
            Kind::Cmd(_) => "CMD",
            Kind::Entrypoint(_) => "ENTRYPOINT",
            Kind::Shell(_) => "SHELL",
            Kind::Copy(_) => "COPY",
            Kind::Add(_) => "ADD",
            Kind::Env(_) => "ENV",
            Kind::Label(_) => "LABEL",
            Kind::Arg(_) => "ARG",
            Kind::Workdir(_) => "WORKDIR",
            Kind::User(_) => "USER",
            Kind::Expose(_) => "EXPOSE",
            Kind::Volume(_) => "VOLUME",
            Kind::StopSignal(_) => "STOPSIGNAL",
            Kind::Maintainer(_) => "MAINTAINER",
            Kind::Healthcheck(_) => "HEALTHCHECK",
            Kind::Onbuild(_) => "ONBUILD",
        }
    }
}

const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A parse error as Docker reports it, with the file and the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub file: String,
    /// From 1; 0 when the error is about the whole file.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// One instruction line before its arguments are typed.
struct Node {
    line: usize,
    end_line: usize,
    text: String,
}

/// Parses a Dockerfile's text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Dockerfile, ParseError> {
    let error = |line: usize, message: String| ParseError {
        file: file.to_string(),
        line,
        message,
    };
    let (nodes, escape, warnings) = split_lines(text).map_err(|(l, m)| error(l, m))?;
    if nodes.is_empty() {
        return Err(error(0, "file with no instructions".into()));
    }
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in nodes {
        let instruction = instruction(&node, escape).map_err(|m| error(node.line, m))?;
        match (&instruction.kind, stages.last_mut()) {
            (Kind::From { name, .. }, _) => stages.push(Stage {
                index: stages.len(),
                name: name.clone(),
                from: instruction,
                instructions: Vec::new(),
            }),
            (Kind::Arg(_), None) => meta_args.push(instruction),
            (_, None) => return Err(error(node.line, "no build stage in current context".into())),
            (_, Some(stage)) => stage.instructions.push(instruction),
        }
    }
    if stages.is_empty() {
        return Err(error(0, "dockerfile contains no stages to build".into()));
    }
    Ok(Dockerfile {
        file: file.to_string(),
        escape,
        meta_args,
        stages,
        warnings,
    })
}

type LineResult = Result<(Vec<Node>, char, Vec<String>), (usize, String)>;

/// Joins continuation lines, drops comments, reads the directives.
fn split_lines(text: &str) -> LineResult {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    // A final newline does not start another line.
    let count = if text.ends_with('\n') {
        lines.len() - 1
    } else {
        lines.len()
    };
    let mut directives = Directives {
        escape: '\\',
        done: false,
        seen: Vec::new(),
    };
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut i = 0;
    while i < count {
        let raw = lines[i];
        i += 1;
        let start = i;
        let trimmed = raw.trim_start();
        directives.check(trimmed).map_err(|m| (start, m))?;
        if trimmed.starts_with('#') {
            continue;
        }
        let (mut line, mut complete) = directives.trim_continuation(trimmed);
        if complete && line.is_empty() {
            continue;
        }
        let mut empty_continuation = false;
        while !complete && i < count {
            let next = lines[i];
            i += 1;
            directives.check(next).map_err(|m| (i, m))?;
            if next.trim_start().starts_with('#') {
                continue;
            }
            if next.trim().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, done) = directives.trim_continuation(next);
            line.push_str(&part);
            complete = done;
        }
        if empty_continuation {
            warnings.push(format!(
                "[WARNING]: Empty continuation line found in:\n    {line}"
            ));
        }
        nodes.push(Node {
            line: start,
            end_line: i,
            text: line,
        });
    }
    if !warnings.is_empty() {
        warnings.push(
            "[WARNING]: Empty continuation lines will become errors in a future release.".into(),
        );
    }
    Ok((nodes, directives.escape, warnings))
}

struct Directives {
    escape: char,
    done: bool,
    seen: Vec<String>,
}

impl Directives {
    /// `# name=value` before any instruction or other comment.
    fn check(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        if name != "escape" && name != "syntax" {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&name) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        self.seen.push(name.clone());
        if name == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(format!(
                        "invalid escape token '{other}' does not match ` or \\"
                    ))
                }
            };
        }
        Ok(())
    }

    /// Removes a trailing escape character (and blanks after it); false
    /// when the instruction goes on on the next line.
    fn trim_continuation(&self, line: &str) -> (String, bool) {
        let end = line.trim_end_matches([' ', '\t']);
        match end.strip_suffix(self.escape) {
            Some(rest) => (rest.to_string(), false),
            None => (line.to_string(), true),
        }
    }
}

/// `#\s*name\s*=\s*value\s*`, name a letter then letters or digits.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let name_len = rest
        .char_indices()
        .find(|(_, c)| !c.is_ascii_alphanumeric())
        .map_or(rest.len(), |(i, _)| i);
    let name = &rest[..name_len];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[name_len..].trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

/// The instruction's word and the rest, with the flags taken off the front.
fn instruction(node: &Node, escape: char) -> Result<Instruction, String> {
    let text = node.text.trim();
    let (word, rest) = match text.find(|c: char| c.is_whitespace()) {
        Some(at) => (&text[..at], text[at..].trim_start()),
        None => (text, ""),
    };
    let (args, flags) = extract_flags(rest);
    let args = args.trim();
    let name = word.to_ascii_uppercase();
    let mut flags = Flags::new(&name, flags);
    let kind = match name.as_str() {
        "FROM" => {
            let platform = flags.string("platform");
            flags.done()?;
            let words = split_whitespace(args);
            let stage_name = match words.as_slice() {
                [_] => None,
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    let lower = name.to_ascii_lowercase();
                    if !valid_stage_name(&lower) {
                        return Err(format!("invalid name for build stage: {name:?}, name can't start with a number or contain symbols"));
                    }
                    Some(lower)
                }
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            Kind::From {
                image: words[0].clone(),
                name: stage_name,
                platform,
            }
        }
        "RUN" => {
            for unsupported in ["mount", "network", "security"] {
                if flags.has(unsupported) {
                    return Err(format!(
                        "RUN --{unsupported} is not supported by this builder"
                    ));
                }
            }
            flags.done()?;
            match command(args)? {
                Command::Shell(s) if s.is_empty() => {
                    return Err("RUN requires at least one argument".into())
                }
                c => Kind::Run(c),
            }
        }
        "CMD" => {
            flags.done()?;
            Kind::Cmd(command(args)?)
        }
        "ENTRYPOINT" => {
            flags.done()?;
            Kind::Entrypoint(command(args)?)
        }
        "SHELL" => {
            flags.done()?;
            match command(args)? {
                Command::Exec(v) if !v.is_empty() => Kind::Shell(v),
                Command::Exec(_) => return Err("SHELL requires at least one argument".into()),
                Command::Shell(_) => {
                    return Err("SHELL requires the arguments to be in JSON form".into())
                }
            }
        }
        "COPY" | "ADD" => {
            let mut spec = CopySpec {
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                ..CopySpec::default()
            };
            if name == "COPY" {
                spec.from = flags.string("from");
            }
            if flags.has("link") {
                return Err(format!("{name} --link is not supported by this builder"));
            }
            flags.done()?;
            let mut list = list(args)?;
            if list.len() < 2 {
                return Err(format!("{name} requires at least two arguments, but only one was provided. Destination could not be determined"));
            }
            spec.dest = list.pop().unwrap_or_default();
            spec.sources = list;
            if name == "COPY" {
                Kind::Copy(spec)
            } else {
                Kind::Add(spec)
            }
        }
        "ENV" | "LABEL" => {
            flags.done()?;
            let pairs = name_values(args, &name, escape)?;
            if pairs.is_empty() {
                return Err(format!("{name} requires at least one argument"));
            }
            if pairs.iter().any(|(k, _)| k.is_empty()) {
                return Err(format!("{name} names can not be blank"));
            }
            if name == "ENV" {
                Kind::Env(pairs)
            } else {
                Kind::Label(pairs)
            }
        }
        "ARG" => {
            flags.done()?;
            let words = parse_words(args, escape);
            if words.is_empty() {
                return Err("ARG requires at least one argument".into());
            }
            let mut pairs = Vec::new();
            for word in words {
                match word.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => pairs.push((k.to_string(), Some(v.to_string()))),
                    None => pairs.push((word, None)),
                }
            }
            Kind::Arg(pairs)
        }
        "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" => {
            flags.done()?;
            if args.is_empty() {
                return Err(format!("{name} requires exactly one argument"));
            }
            let value = args.to_string();
            match name.as_str() {
                "WORKDIR" => Kind::Workdir(value),
                "USER" => Kind::User(value),
                "STOPSIGNAL" => Kind::StopSignal(value),
                _ => Kind::Maintainer(value),
            }
        }
        "EXPOSE" => {
            flags.done()?;
            let mut ports = split_whitespace(args);
            if ports.is_empty() {
                return Err("EXPOSE requires at least one argument".into());
            }
            ports.sort();
            Kind::Expose(ports)
        }
        "VOLUME" => {
            flags.done()?;
            let volumes = list(args)?;
            if volumes.is_empty() {
                return Err("VOLUME requires at least one argument".into());
            }
            if volumes.iter().any(|v| v.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Kind::Volume(volumes.into_iter().map(|v| v.trim().to_string()).collect())
        }
        "HEALTHCHECK" => Kind::Healthcheck(healthcheck(args, &mut flags)?),
        "ONBUILD" => {
            flags.done()?;
            let trigger = args.split_whitespace().next().unwrap_or("");
            match trigger.to_ascii_uppercase().as_str() {
                "" => return Err("ONBUILD requires at least one argument".into()),
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                t @ ("MAINTAINER" | "FROM") => {
                    return Err(format!("{t} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            // The trigger must itself be a valid instruction.
            instruction(
                &Node {
                    line: node.line,
                    end_line: node.end_line,
                    text: args.to_string(),
                },
                escape,
            )?;
            Kind::Onbuild(args.to_string())
        }
        _ => return Err(unknown(&name)),
    };
    Ok(Instruction {
        line: node.line,
        end_line: node.end_line,
        original: text.to_string(),
        kind,
    })
}

fn unknown(name: &str) -> String {
    let close = INSTRUCTIONS
        .iter()
        .map(|known| (distance(name, known), known))
        .filter(|(d, known)| *d <= (known.len() / 3).max(1))
        .min();
    match close {
        Some((_, known)) => format!("unknown instruction: {name} (did you mean {known}?)"),
        None => format!("unknown instruction: {name}"),
    }
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let old = row[j + 1];
            row[j + 1] = (old + 1).min(row[j] + 1).min(prev + usize::from(ca != *cb));
            prev = old;
        }
    }
    row[b.len()]
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// Docker's `[\t\v\f\r ]+` split.
fn split_whitespace(text: &str) -> Vec<String> {
    text.split(['\t', '\u{b}', '\u{c}', '\r', ' '])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// A JSON array of strings, if the text is one.
fn json_array(text: &str) -> Result<Option<Vec<String>>, String> {
    let text = text.trim_start();
    if !text.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(text) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(
                "when using JSON array syntax, arrays must be comprised of strings only"
                    .to_string(),
            ),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn command(args: &str) -> Result<Command, String> {
    Ok(match json_array(args)? {
        Some(v) => Command::Exec(v),
        None => Command::Shell(args.to_string()),
    })
}

fn list(args: &str) -> Result<Vec<String>, String> {
    Ok(match json_array(args)? {
        Some(v) => v,
        None => split_whitespace(args),
    })
}

/// Splits on unquoted whitespace, keeping quotes (and escapes) in the
/// words for the substitution to process later.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        match quote {
            None => {
                if ch.is_whitespace() {
                    if in_word && (blank_ok || !word.is_empty()) {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    in_word = false;
                    blank_ok = false;
                    i += 1;
                    continue;
                }
                in_word = true;
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if i + 1 == chars.len() {
                        i += 1;
                        continue;
                    }
                    word.push(ch);
                    i += 1;
                }
                word.push(chars[i]);
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                }
                if ch == escape && q != '\'' {
                    if i + 1 == chars.len() {
                        quote = None;
                        i += 1;
                        continue;
                    }
                    word.push(ch);
                    i += 1;
                }
                word.push(chars[i]);
            }
        }
        i += 1;
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// ENV's and LABEL's `key=value …`, or the old `key value`.
fn name_values(rest: &str, name: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let mut parts = rest.splitn(2, ['\t', '\u{b}', '\u{c}', '\r', ' ']);
        let key = parts.next().unwrap_or_default();
        let value = parts.next().map(str::trim_start).unwrap_or_default();
        if value.is_empty() {
            return Err(format!("{name} must have two arguments"));
        }
        return Ok(vec![(key.to_string(), value.to_string())]);
    }
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            )),
        })
        .collect()
}

fn healthcheck(args: &str, flags: &mut Flags) -> Result<Healthcheck, String> {
    let (kind, rest) = match args.find(char::is_whitespace) {
        Some(at) => (&args[..at], args[at..].trim_start()),
        None => (args, ""),
    };
    let kind = kind.to_ascii_uppercase();
    match kind.as_str() {
        "" => Err("HEALTHCHECK requires at least one argument".into()),
        "NONE" => {
            flags.done()?;
            if !rest.is_empty() {
                return Err("HEALTHCHECK NONE takes no arguments".into());
            }
            Ok(Healthcheck {
                test: vec!["NONE".into()],
                interval: 0,
                timeout: 0,
                start_period: 0,
                retries: 0,
            })
        }
        "CMD" => {
            let durations = ["interval", "timeout", "start-period"].map(|f| flags.string(f));
            let retries = flags.string("retries");
            flags.done()?;
            let test = match command(rest)? {
                Command::Exec(v) if !v.is_empty() => [vec!["CMD".to_string()], v].concat(),
                Command::Shell(s) if !s.is_empty() => vec!["CMD-SHELL".into(), s],
                _ => return Err("Missing command after HEALTHCHECK CMD".into()),
            };
            let [interval, timeout, start_period] = durations.map(|d| {
                d.map(|text| go_duration(&text).ok_or(text))
                    .transpose()
                    .map(Option::unwrap_or_default)
            });
            let bad = |text: String| format!("time: invalid duration {text:?}");
            let retries = match retries {
                None => 0,
                Some(r) => match r.parse::<i64>() {
                    Ok(n) if n >= 1 => n as u64,
                    Ok(n) => return Err(format!("--retries must be at least 1 (not {n})")),
                    Err(_) => {
                        return Err(format!("strconv.ParseInt: parsing {r:?}: invalid syntax"))
                    }
                },
            };
            Ok(Healthcheck {
                test,
                interval: interval.map_err(bad)?,
                timeout: timeout.map_err(bad)?,
                start_period: start_period.map_err(bad)?,
                retries,
            })
        }
        other => Err(format!("Unknown type \"{other}\" in HEALTHCHECK (try CMD)")),
    }
}

/// Go's `time.ParseDuration` for the units a HEALTHCHECK uses, in ns.
fn go_duration(text: &str) -> Option<u64> {
    let mut rest = text;
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Some(total as u64)
}

/// Takes the `--name=value` words off the front of the arguments; quotes
/// and backslashes in a value work as in BuildKit's flag reader.
fn extract_flags(line: &str) -> (&str, Vec<String>) {
    let mut words = Vec::new();
    let mut rest = line.trim_start();
    while rest.starts_with("--") {
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((at, ch)) = chars.next() {
            match quote {
                None if ch.is_whitespace() => {
                    end = at;
                    break;
                }
                None if ch == '\'' || ch == '"' => quote = Some(ch),
                Some(q) if ch == q => quote = None,
                _ if ch == '\\' => {
                    if let Some((_, next)) = chars.next() {
                        word.push(next);
                    }
                }
                _ => word.push(ch),
            }
        }
        rest = rest[end..].trim_start();
        if word == "--" {
            break;
        }
        words.push(word);
    }
    (rest, words)
}

/// An instruction's flags, checked against the ones it takes.
struct Flags {
    instruction: String,
    given: Vec<(String, Option<String>)>,
    taken: Vec<String>,
    error: Option<String>,
}

impl Flags {
    fn new(instruction: &str, words: Vec<String>) -> Flags {
        let mut given = Vec::new();
        let mut error = None;
        for word in words {
            let body = &word[2..];
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            if given.iter().any(|(n, _): &(String, _)| *n == name) && error.is_none() {
                error = Some(format!("duplicate flag specified: {name}"));
            }
            given.push((name, value));
        }
        Flags {
            instruction: instruction.to_string(),
            given,
            taken: Vec::new(),
            error,
        }
    }

    fn has(&self, name: &str) -> bool {
        self.given.iter().any(|(n, _)| n == name)
    }

    fn string(&mut self, name: &str) -> Option<String> {
        self.taken.push(name.to_string());
        let (_, value) = self.given.iter().find(|(n, _)| n == name)?;
        match value {
            Some(v) => Some(v.clone()),
            None => {
                self.error
                    .get_or_insert_with(|| format!("missing a value on flag: {name}"));
                None
            }
        }
    }

    fn done(&mut self) -> Result<(), String> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        match self.given.iter().find(|(n, _)| !self.taken.contains(n)) {
            Some((name, _)) => Err(format!("unknown flag: {name} (for {})", self.instruction)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Kind {
        let parsed = parse(&format!("FROM scratch\n{text}\n"), "Dockerfile").unwrap();
        parsed.stages[0].instructions[0].kind.clone()
    }

    fn fails(text: &str) -> String {
        parse(text, "Dockerfile").unwrap_err().to_string()
    }

    #[test]
    fn stages_meta_args_and_lines() {
        let file = "# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM $BASE AS Build\nRUN echo \\\n  # a comment inside\n  hi\n\nfrom --platform=linux/amd64 scratch\nCOPY --from=build /a /b\n";
        let parsed = parse(file, "Dockerfile").unwrap();
        assert_eq!(parsed.meta_args.len(), 1);
        assert_eq!(parsed.stages.len(), 2);
        assert_eq!(parsed.stages[0].name.as_deref(), Some("build"));
        let run = &parsed.stages[0].instructions[0];
        assert_eq!((run.line, run.end_line), (4, 6));
        assert_eq!(run.kind, Kind::Run(Command::Shell("echo   hi".into())));
        assert_eq!(
            parsed.stages[1].from.kind,
            Kind::From {
                image: "scratch".into(),
                name: None,
                platform: Some("linux/amd64".into())
            }
        );
        match &parsed.stages[1].instructions[0].kind {
            Kind::Copy(spec) => {
                assert_eq!(spec.from.as_deref(), Some("build"));
                assert_eq!(spec.sources, vec!["/a"]);
                assert_eq!(spec.dest, "/b");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exec_and_shell_forms() {
        assert_eq!(
            one(r#"RUN ["echo", "a b"]"#),
            Kind::Run(Command::Exec(vec!["echo".into(), "a b".into()]))
        );
        // Not valid JSON: the shell form, as Docker does.
        assert_eq!(
            one("CMD [echo, hi]"),
            Kind::Cmd(Command::Shell("[echo, hi]".into()))
        );
        assert_eq!(
            one(r#"SHELL ["/bin/ash", "-eo", "pipefail", "-c"]"#),
            Kind::Shell(vec![
                "/bin/ash".into(),
                "-eo".into(),
                "pipefail".into(),
                "-c".into()
            ])
        );
        assert_eq!(
            one(r#"COPY ["a file", "dest/"]"#),
            Kind::Copy(CopySpec {
                sources: vec!["a file".into()],
                dest: "dest/".into(),
                ..CopySpec::default()
            })
        );
    }

    #[test]
    fn env_label_and_arg_pairs_keep_quotes_for_later() {
        assert_eq!(
            one(r#"ENV A="hello world" B=c\ d"#),
            Kind::Env(vec![
                ("A".into(), "\"hello world\"".into()),
                ("B".into(), "c\\ d".into())
            ])
        );
        assert_eq!(
            one("ENV OLD value with spaces"),
            Kind::Env(vec![("OLD".into(), "value with spaces".into())])
        );
        assert_eq!(
            one(r#"LABEL "com.example.vendor"="ACME" version=1.0"#),
            Kind::Label(vec![
                ("\"com.example.vendor\"".into(), "\"ACME\"".into()),
                ("version".into(), "1.0".into())
            ])
        );
        assert_eq!(
            one("ARG A B=2"),
            Kind::Arg(vec![("A".into(), None), ("B".into(), Some("2".into()))])
        );
    }

    #[test]
    fn the_escape_directive() {
        let parsed = parse(
            "# escape=`\nFROM scratch\nRUN echo a `\n  b\nWORKDIR C:\\x\n",
            "Dockerfile",
        )
        .unwrap();
        assert_eq!(parsed.escape, '`');
        assert_eq!(
            parsed.stages[0].instructions[0].kind,
            Kind::Run(Command::Shell("echo a   b".into()))
        );
        assert_eq!(
            parsed.stages[0].instructions[1].kind,
            Kind::Workdir("C:\\x".into())
        );
        // After an instruction it is only a comment.
        let later = parse("FROM scratch\n# escape=`\nRUN a \\\n b\n", "Dockerfile").unwrap();
        assert_eq!(later.escape, '\\');
    }

    #[test]
    fn docker_s_errors_with_file_and_line() {
        assert_eq!(
            fails("FROM scratch\nFOO bar\n"),
            "Dockerfile:2: unknown instruction: FOO"
        );
        assert_eq!(
            fails("FROM scratch\nRUNN x\n"),
            "Dockerfile:2: unknown instruction: RUNN (did you mean RUN?)"
        );
        assert_eq!(
            fails("# comment\nRUN echo\n"),
            "Dockerfile:2: no build stage in current context"
        );
        assert_eq!(fails("\n# only\n"), "Dockerfile: file with no instructions");
        assert_eq!(
            fails("ARG A\n"),
            "Dockerfile: dockerfile contains no stages to build"
        );
        assert_eq!(
            fails("FROM scratch\nCOPY onlyone\n"),
            "Dockerfile:2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"
        );
        assert_eq!(
            fails("FROM scratch\nENV A\n"),
            "Dockerfile:2: ENV must have two arguments"
        );
        assert_eq!(
            fails("FROM scratch\nENV A=1 B\n"),
            "Dockerfile:2: Syntax error - can't find = in \"B\". Must be of the form: name=value"
        );
        assert_eq!(
            fails("FROM scratch AS 1x\n"),
            "Dockerfile:1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
        );
        assert_eq!(
            fails("FROM scratch\nCOPY --nope=1 a b\n"),
            "Dockerfile:2: unknown flag: nope (for COPY)"
        );
        assert_eq!(
            fails("FROM scratch\nSHELL /bin/sh -c\n"),
            "Dockerfile:2: SHELL requires the arguments to be in JSON form"
        );
        assert_eq!(
            fails("# escape=x\nFROM scratch\n"),
            "Dockerfile:1: invalid escape token 'x' does not match ` or \\"
        );
        assert_eq!(
            fails("FROM scratch\nRUN [\"a\", 1]\n"),
            "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only"
        );
        assert_eq!(
            fails("FROM scratch\nWORKDIR\n"),
            "Dockerfile:2: WORKDIR requires exactly one argument"
        );
    }

    #[test]
    fn healthcheck_onbuild_and_the_rest() {
        assert_eq!(
            one("HEALTHCHECK --interval=1m30s --retries=3 CMD wget -q localhost"),
            Kind::Healthcheck(Healthcheck {
                test: vec!["CMD-SHELL".into(), "wget -q localhost".into()],
                interval: 90_000_000_000,
                timeout: 0,
                start_period: 0,
                retries: 3,
            })
        );
        assert_eq!(
            one("ONBUILD RUN echo child"),
            Kind::Onbuild("RUN echo child".into())
        );
        assert_eq!(
            one("EXPOSE 8080/udp 80"),
            Kind::Expose(vec!["80".into(), "8080/udp".into()])
        );
        assert_eq!(
            one("VOLUME [\"/data\", \"/logs\"]"),
            Kind::Volume(vec!["/data".into(), "/logs".into()])
        );
        assert_eq!(one("STOPSIGNAL SIGINT"), Kind::StopSignal("SIGINT".into()));
        assert_eq!(one("USER app:app"), Kind::User("app:app".into()));
    }
}
