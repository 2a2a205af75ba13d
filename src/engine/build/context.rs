//! The build context: the directory a build copies from, less what its
//! `.dockerignore` leaves out; COPY and ADD sources resolved in it (or in
//! a stage's or image's files, for `--from`), their globs expanded, and a
//! digest of what they hold for the cache.

use std::io::Read;
use std::path::{Path, PathBuf};

use regex::Regex;
use sha2::{Digest, Sha256};

use super::dockerignore::{clean, Dockerignore};
use super::tree::{join, resolve_in_scope, DirTree, EntryKind, Meta, Tree};

/// A directory and its `.dockerignore`.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub tree: DirTree,
    pub ignore: Dockerignore,
}

impl BuildContext {
    /// Opens `dir`, reading `dir/.dockerignore` when there is one.
    pub fn open(dir: &Path) -> Result<BuildContext, String> {
        let root = dir.canonicalize().map_err(|e| {
            format!(
                "unable to prepare context: path {:?} not found: {e}",
                dir.display().to_string()
            )
        })?;
        if !root.is_dir() {
            return Err(format!(
                "unable to prepare context: context must be a directory: {}",
                root.display()
            ));
        }
        let ignore = match std::fs::read_to_string(root.join(".dockerignore")) {
            Ok(text) => Dockerignore::parse(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Dockerignore::default(),
            Err(e) => return Err(format!("failed to read .dockerignore: {e}")),
        };
        Ok(BuildContext {
            tree: DirTree { root },
            ignore,
        })
    }

    pub fn root(&self) -> &Path {
        &self.tree.root
    }

    /// The digest a plain `COPY PATTERNS …` from this context puts into
    /// its step's cache key: `digest` over what `resolve` finds, as the
    /// builder computes it (for the lab's exercise on the cache key).
    pub fn sources_digest(&self, patterns: &[&str]) -> Result<String, String> {
        let from = From {
            tree: &self.tree,
            ignore: Some(&self.ignore),
            context: true,
        };
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let sources = resolve(&from, &patterns, "COPY")?;
        digest(&from, &sources).map_err(|e| format!("COPY failed: {e}"))
    }
}

/// One resolved source of a COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Its path in the tree, symlinks resolved.
    pub rel: String,
    /// The name it gets at a directory destination.
    pub name: String,
    pub meta: Meta,
}

/// What the sources of one instruction are.
#[derive(Debug, Clone)]
pub struct Sources {
    pub sources: Vec<Source>,
    /// More than one source or a glob: the destination must be a directory.
    pub many: bool,
}

/// Where sources come from: the context (with its ignore file and the
/// outside check) or another stage's or image's files.
pub struct From<'a> {
    pub tree: &'a dyn Tree,
    pub ignore: Option<&'a Dockerignore>,
    /// True for the context: `..` past its root is refused.
    pub context: bool,
}

impl From<'_> {
    fn excluded(&self, rel: &str) -> bool {
        self.ignore.is_some_and(|i| i.excludes(rel))
    }
}

/// True when a source has `*`, `?` or `[` not escaped by `\`.
pub fn has_wildcards(path: &str) -> bool {
    let mut escaped = false;
    for ch in path.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match ch {
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Go's `filepath.Match` as a regex over a whole `/`-separated path.
fn glob(pattern: &str) -> Result<Regex, String> {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(ch) = chars.next() {
        if in_class {
            match ch {
                ']' => {
                    in_class = false;
                    re.push(']');
                }
                '\\' => {
                    let next = chars.next().ok_or("syntax error in pattern")?;
                    re.push_str(&regex::escape(&next.to_string()));
                }
                '[' => re.push_str("\\["),
                _ => re.push(ch),
            }
            continue;
        }
        match ch {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                in_class = true;
                re.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    re.push('^');
                }
            }
            '\\' => {
                let next = chars.next().ok_or("syntax error in pattern")?;
                re.push_str(&regex::escape(&next.to_string()));
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    if in_class {
        return Err("syntax error in pattern".into());
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}

/// Resolves an instruction's sources (already expanded). `what` is COPY
/// or ADD, for Docker's messages.
pub fn resolve(from: &From<'_>, patterns: &[String], what: &str) -> Result<Sources, String> {
    let mut sources = Vec::new();
    let mut many = patterns.len() > 1;
    for pattern in patterns {
        let cleaned = clean(pattern.trim_start_matches('/'));
        if from.context && (cleaned == ".." || cleaned.starts_with("../")) {
            return Err(format!(
                "{what} failed: forbidden path outside the build context: {pattern} ()"
            ));
        }
        let cleaned = if cleaned == "." {
            String::new()
        } else {
            cleaned
        };
        if has_wildcards(&cleaned) {
            many = true;
            let re = glob(&cleaned).map_err(|e| format!("{what} failed: {pattern}: {e}"))?;
            let before = sources.len();
            matches(from, "", &re, &mut sources).map_err(|e| format!("{what} failed: {e}"))?;
            if sources.len() == before {
                return Err(format!("{what} failed: no source files were specified"));
            }
            continue;
        }
        let not_found = || {
            if from.context {
                format!("{what} failed: file not found in build context or excluded by .dockerignore: stat {pattern}: file does not exist")
            } else {
                format!("{what} failed: stat {pattern}: file does not exist")
            }
        };
        let rel = resolve_in_scope(from.tree, &cleaned, true)
            .map_err(|e| format!("{what} failed: {pattern}: {e}"))?;
        if !rel.is_empty() && from.excluded(&rel) {
            return Err(not_found());
        }
        let meta = from
            .tree
            .lstat(&rel)
            .map_err(|e| format!("{what} failed: {pattern}: {e}"))?
            .ok_or_else(not_found)?;
        let name = rel.rsplit('/').next().unwrap_or("").to_string();
        sources.push(Source { rel, name, meta });
    }
    Ok(Sources { sources, many })
}

/// Every path under `dir` matching `re`; a matched directory is one
/// source and is not searched further.
fn matches(from: &From<'_>, dir: &str, re: &Regex, out: &mut Vec<Source>) -> std::io::Result<()> {
    for name in from.tree.list(dir)? {
        let rel = join(dir, &name);
        if from.excluded(&rel) && !from.ignore.is_some_and(|i| i.has_exceptions()) {
            continue;
        }
        let Some(meta) = from.tree.lstat(&rel)? else {
            continue;
        };
        if re.is_match(&rel) && !from.excluded(&rel) {
            let resolved = resolve_in_scope(from.tree, &rel, true)?;
            let meta = match from.tree.lstat(&resolved)? {
                Some(m) => m,
                None => continue,
            };
            out.push(Source {
                rel: resolved,
                name,
                meta,
            });
        } else if meta.kind == EntryKind::Dir {
            matches(from, &rel, re, out)?;
        }
    }
    Ok(())
}

/// One entry beneath a source, path relative to the source.
#[derive(Debug, Clone)]
pub struct Walked {
    pub rel: String,
    pub meta: Meta,
}

/// A source and, for a directory, everything beneath it that is not
/// ignored, parents before children, in name order.
pub fn walk(from: &From<'_>, source: &Source) -> std::io::Result<Vec<Walked>> {
    let mut out = vec![Walked {
        rel: String::new(),
        meta: source.meta.clone(),
    }];
    if source.meta.kind == EntryKind::Dir {
        walk_dir(from, &source.rel, "", &mut out)?;
    }
    Ok(out)
}

fn walk_dir(from: &From<'_>, base: &str, dir: &str, out: &mut Vec<Walked>) -> std::io::Result<()> {
    let exceptions = from.ignore.is_some_and(|i| i.has_exceptions());
    for name in from.tree.list(&join(base, dir))? {
        let rel = join(dir, &name);
        let full = join(base, &rel);
        let excluded = from.excluded(&full);
        let Some(meta) = from.tree.lstat(&full)? else {
            continue;
        };
        if excluded && !(exceptions && meta.kind == EntryKind::Dir) {
            continue;
        }
        let is_dir = meta.kind == EntryKind::Dir;
        if !excluded {
            out.push(Walked {
                rel: rel.clone(),
                meta,
            });
        }
        if is_dir {
            walk_dir(from, base, &rel, out)?;
        }
    }
    Ok(())
}

/// sha256 over every source's paths, types, modes, owners and bytes (or
/// link targets): what the cache compares for COPY and ADD. Times are
/// left out, as Docker leaves them out.
pub fn digest(from: &From<'_>, sources: &Sources) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    for source in &sources.sources {
        hasher.update(format!("source {} as {}\n", source.rel, source.name));
        for entry in walk(from, source)? {
            let m = &entry.meta;
            hasher.update(format!(
                "{}\0{:?}\0{:o}\0{}:{}\0{}\0",
                entry.rel, m.kind, m.mode, m.uid, m.gid, m.size
            ));
            let full = join(&source.rel, &entry.rel);
            match m.kind {
                EntryKind::File => {
                    let mut file = from.tree.open(&full)?;
                    loop {
                        let n = file.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        hasher.update(&buf[..n]);
                    }
                }
                EntryKind::Symlink => {
                    hasher.update(from.tree.read_link(&full)?.as_os_str().as_encoded_bytes())
                }
                _ => {}
            }
            hasher.update(b"\n");
        }
    }
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

/// The path a source lands at, given the destination: a directory
/// destination (a trailing `/`, several sources, or an existing
/// directory) receives the source under its own name; a directory
/// source's contents go into the destination itself.
pub fn target(dest: &str, dest_is_dir: bool, source: &Source) -> PathBuf {
    if source.meta.kind == EntryKind::Dir || !dest_is_dir {
        PathBuf::from(dest)
    } else {
        Path::new(dest).join(&source.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn the_sources_digest_covers_the_copied_bytes_only() {
        let (_a, as_written) = context(&[("app.py", "one\n"), ("notes.txt", "n\n")], "");
        let (_b, app_edited) = context(&[("app.py", "two\n"), ("notes.txt", "n\n")], "");
        let (_c, notes_edited) = context(&[("app.py", "one\n"), ("notes.txt", "m\n")], "");
        let digest = |ctx: &BuildContext| ctx.sources_digest(&["app.py"]).unwrap();
        assert_ne!(digest(&as_written), digest(&app_edited));
        assert_eq!(digest(&as_written), digest(&notes_edited));
        let missing = as_written.sources_digest(&["gone.py"]).unwrap_err();
        assert!(
            missing.contains("file not found in build context"),
            "{missing}"
        );
    }

    fn context(files: &[(&str, &str)], ignore: &str) -> (tempfile::TempDir, BuildContext) {
        let dir = tempfile::tempdir().unwrap();
        for (path, body) in files {
            let p = dir.path().join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, body).unwrap();
        }
        fs::write(dir.path().join(".dockerignore"), ignore).unwrap();
        let ctx = BuildContext::open(dir.path()).unwrap();
        (dir, ctx)
    }

    fn names(ctx: &BuildContext, patterns: &[&str]) -> Result<Vec<String>, String> {
        let from = From {
            tree: &ctx.tree,
            ignore: Some(&ctx.ignore),
            context: true,
        };
        let patterns: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        Ok(resolve(&from, &patterns, "COPY")?
            .sources
            .into_iter()
            .map(|s| s.rel)
            .collect())
    }

    #[test]
    fn globs_ignores_and_errors() {
        let (_dir, ctx) = context(
            &[
                ("a.txt", "a"),
                ("b.txt", "b"),
                ("secret.txt", "s"),
                ("src/main.rs", "fn main() {}"),
            ],
            "secret.txt\n",
        );
        assert_eq!(names(&ctx, &["*.txt"]).unwrap(), vec!["a.txt", "b.txt"]);
        assert_eq!(names(&ctx, &["src/*.rs"]).unwrap(), vec!["src/main.rs"]);
        assert_eq!(names(&ctx, &["./src/../a.txt"]).unwrap(), vec!["a.txt"]);
        assert_eq!(
            names(&ctx, &["secret.txt"]).unwrap_err(),
            "COPY failed: file not found in build context or excluded by .dockerignore: stat secret.txt: file does not exist"
        );
        assert_eq!(
            names(&ctx, &["../outside"]).unwrap_err(),
            "COPY failed: forbidden path outside the build context: ../outside ()"
        );
        assert_eq!(
            names(&ctx, &["*.none"]).unwrap_err(),
            "COPY failed: no source files were specified"
        );
    }

    #[test]
    fn the_digest_changes_with_the_bytes_and_not_with_excluded_files() {
        let (dir, ctx) = context(&[("app/a", "1"), ("app/tmp/x", "t")], "app/tmp\n");
        let from = From {
            tree: &ctx.tree,
            ignore: Some(&ctx.ignore),
            context: true,
        };
        let sources = resolve(&from, &["app".to_string()], "COPY").unwrap();
        let first = digest(&from, &sources).unwrap();
        fs::write(dir.path().join("app/tmp/x"), "changed").unwrap();
        assert_eq!(digest(&from, &sources).unwrap(), first);
        fs::write(dir.path().join("app/a"), "2").unwrap();
        assert_ne!(digest(&from, &sources).unwrap(), first);
        let walked: Vec<String> = walk(&from, &sources.sources[0])
            .unwrap()
            .into_iter()
            .map(|w| w.rel)
            .collect();
        assert_eq!(walked, vec!["", "a"]);
    }

    #[test]
    fn go_globs() {
        let re = glob("f[^0-9]?.*").unwrap();
        assert!(re.is_match("fab.txt"));
        assert!(!re.is_match("f1b.txt"));
        assert!(!re.is_match("fab/x.txt") && !glob("*").unwrap().is_match("a/b"));
        assert!(glob("a\\*").unwrap().is_match("a*"));
        assert!(!has_wildcards("a\\*b") && has_wildcards("a[bc]"));
    }
}
