//! `.dockerignore`, with Docker's pattern rules (moby/patternmatcher):
//!
//! - one pattern a line; a line starting with `#` is a comment, blank
//!   lines are skipped, surrounding whitespace is trimmed;
//! - patterns are cleaned (`./a/../b` → `b`) and a leading `/` dropped:
//!   every pattern is anchored at the context's root;
//! - `*` matches within one path component, `?` one character, `[…]` a
//!   class, `\` escapes; `**` matches any number of components, also none;
//! - a pattern excludes the paths it matches and everything beneath them;
//! - `!pattern` takes matching paths back in; the last matching line wins.

use regex::Regex;

#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    exception: bool,
    matcher: Matcher,
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    /// `dir/**`: everything under `dir/` (and `dir/…` itself).
    Prefix(String),
    /// `**/name`: ends with it (or is it).
    Suffix(String),
    Regex(Regex),
}

/// The patterns of one `.dockerignore`, in order.
#[derive(Debug, Clone, Default)]
pub struct Dockerignore {
    patterns: Vec<Pattern>,
}

impl Dockerignore {
    /// Reads the file's text; an invalid pattern is an error naming it.
    pub fn parse(text: &str) -> Result<Dockerignore, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let exception = pattern.starts_with('!');
            if exception {
                pattern = pattern[1..].trim();
                if pattern.is_empty() {
                    return Err("illegal exclusion pattern: \"!\"".into());
                }
            }
            let mut cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let matcher = compile(&cleaned)
                .map_err(|e| format!("invalid .dockerignore pattern {line:?}: {e}"))?;
            patterns.push(Pattern {
                text: cleaned,
                exception,
                matcher,
            });
        }
        Ok(Dockerignore { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns as cleaned, `!` kept: what the cache key records.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| format!("{}{}", if p.exception { "!" } else { "" }, p.text))
            .collect()
    }

    /// True when any pattern is an exception: an excluded directory must
    /// still be walked, something beneath it may be taken back in.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether `path` (relative to the context, `/`-separated) is left
    /// out: Docker's `MatchesOrParentMatches`.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        if path == "." || path.is_empty() {
            return false;
        }
        let parents: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            // An exclusion only matters while included, and vice versa.
            if pattern.exception != excluded {
                continue;
            }
            let mut matched = pattern.matcher.matches(&path);
            if !matched && parents.len() > 1 {
                matched =
                    (1..parents.len()).any(|n| pattern.matcher.matches(&parents[..n].join("/")));
            }
            if matched {
                excluded = !pattern.exception;
            }
        }
        excluded
    }
}

impl Matcher {
    fn matches(&self, path: &str) -> bool {
        match self {
            Matcher::Exact(p) => path == p,
            Matcher::Prefix(p) => path.starts_with(p.as_str()),
            Matcher::Suffix(s) => {
                path.ends_with(s.as_str()) || (s.starts_with('/') && path == &s[1..])
            }
            Matcher::Regex(re) => re.is_match(path),
        }
    }
}

/// The pattern as a matcher, as patternmatcher compiles it.
fn compile(pattern: &str) -> Result<Matcher, String> {
    #[derive(PartialEq)]
    enum Type {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut kind = Type::Exact;
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if kind == Type::Exact {
                        kind = Type::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Type::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Type::Regex;
                }
                if first {
                    kind = Type::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Type::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Type::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match chars.get(i) {
                Some(&next) => {
                    i += 1;
                    re.push_str(&regex::escape(&next.to_string()));
                    kind = Type::Regex;
                }
                None => re.push_str("\\\\"),
            },
            '[' | ']' => {
                re.push(ch);
                kind = Type::Regex;
            }
            other => re.push(other),
        }
        first = false;
    }
    Ok(match kind {
        Type::Exact => Matcher::Exact(pattern.to_string()),
        Type::Prefix => Matcher::Prefix(pattern[..pattern.len() - 2].to_string()),
        Type::Suffix => Matcher::Suffix(pattern[2..].to_string()),
        Type::Regex => {
            re.push('$');
            Matcher::Regex(Regex::new(&re).map_err(|e| e.to_string())?)
        }
    })
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> Dockerignore {
        Dockerignore::parse(text).unwrap()
    }

    #[test]
    fn anchored_at_the_root_and_covering_what_is_beneath() {
        let d = ignore("# comment\n\n  node_modules  \n/build\n*.log\n");
        assert!(d.excludes("node_modules"));
        assert!(d.excludes("node_modules/x/y.js"));
        assert!(
            !d.excludes("src/node_modules"),
            "not anchored anywhere, unlike git"
        );
        assert!(d.excludes("build/out"));
        assert!(d.excludes("app.log"));
        assert!(!d.excludes("logs/app.log"), "* stays within one component");
        assert!(!d.excludes("# comment"));
    }

    #[test]
    fn double_star_and_exceptions() {
        let d = ignore("**/*.tmp\ndocs/**\n!docs/keep.md\n*.md\n!README.md\n");
        assert!(d.excludes("a.tmp"));
        assert!(d.excludes("deep/er/b.tmp"));
        assert!(d.excludes("docs/x.txt"));
        assert!(
            !d.excludes("docs/keep.md"),
            "*.md stays within one component"
        );
        assert!(!d.excludes("README.md"));
        assert!(d.excludes("CHANGES.md"));
        let e = ignore("secrets\n!secrets/public\n");
        assert!(e.excludes("secrets/private"));
        assert!(!e.excludes("secrets/public"));
        assert!(!e.excludes("secrets/public/deeper"));
        assert!(e.has_exceptions());
    }

    #[test]
    fn classes_question_marks_escapes_and_cleaning() {
        let d = ignore("file?.txt\n[ab].c\nlit\\*eral\n./x/../y\n");
        assert!(d.excludes("file1.txt"));
        assert!(!d.excludes("file12.txt"));
        assert!(d.excludes("a.c") && d.excludes("b.c") && !d.excludes("c.c"));
        assert!(d.excludes("lit*eral") && !d.excludes("litteral"));
        assert!(d.excludes("y"));
        assert_eq!(d.patterns(), vec!["file?.txt", "[ab].c", "lit\\*eral", "y"]);
        assert!(Dockerignore::parse("!\n").is_err());
    }

    #[test]
    fn clean_is_go_s() {
        assert_eq!(clean("./a//b/../c/"), "a/c");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean(""), ".");
    }
}
