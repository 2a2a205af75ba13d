//! Chapter 10: building images, read from the layer tar the program
//! wrote, and the keys it computed compared with what the lab's builder
//! (mini-docker build's) decides for the same build contexts.

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

use container_lab::engine::build::{self, BuildContext, BuildEvent, BuildOptions, Builder};
use container_lab::engine::images::ImageStore;

use super::{Check, Subject};

pub fn verify(s: &Subject) -> Vec<Check> {
    match s.ex.id {
        "ch10-cache" => cache(&s.run_dir),
        _ => layer(&s.run_dir.join("layer.tar")),
    }
}

/// `(path, entry type, size)` of every entry, in the tar's order.
fn entries(tar: &Path) -> Option<Vec<(String, tar::EntryType, u64)>> {
    let mut archive = tar::Archive::new(File::open(tar).ok()?);
    let mut found = Vec::new();
    for entry in archive.entries().ok()? {
        let entry = entry.ok()?;
        let path = entry.path().ok()?.to_string_lossy().into_owned();
        let header = entry.header();
        found.push((path, header.entry_type(), header.size().unwrap_or(0)));
    }
    Some(found)
}

fn layer(tar: &Path) -> Vec<Check> {
    let Some(entries) = entries(tar) else {
        return vec![Check::fail(
            "layer.tar is missing or not a tar: keep the given lines that write it",
        )];
    };
    let has_file = |path: &str| {
        entries
            .iter()
            .any(|(p, kind, _)| p == path && *kind == tar::EntryType::Regular)
    };
    let whiteout = "etc/.wh.issue";
    let marked = entries
        .iter()
        .find(|(p, _, _)| p == whiteout)
        .map(|(_, kind, size)| (*kind, *size));
    let devices: Vec<&str> = entries
        .iter()
        .filter(|(_, kind, _)| *kind == tar::EntryType::Char)
        .map(|(p, _, _)| p.as_str())
        .collect();
    vec![
        Check::new(
            has_file("app/main.py") && has_file("etc/motd"),
            "layer.tar holds the new app/main.py and the changed etc/motd",
            "layer.tar lacks app/main.py or etc/motd: keep the given lines that append files",
        ),
        Check::new(
            marked == Some((tar::EntryType::Regular, 0)),
            format!("the deleted etc/issue is {whiteout} in the tar: an empty regular file"),
            match marked {
                None => format!(
                    "layer.tar has no {whiteout}: the deleted etc/issue would come back \
                     from the layer below; append a whiteout as an empty file named .wh.issue"
                ),
                Some((kind, size)) => format!(
                    "{whiteout} in the tar is a {kind:?} entry of {size} bytes, not an empty \
                     regular file"
                ),
            },
        ),
        Check::new(
            devices.is_empty(),
            "no character device in the tar: overlayfs's own mark stays on this host",
            format!(
                "layer.tar holds the character device {}: the image spec marks a deletion \
                 with .wh.NAME, a device would be created on unpack",
                devices.join(", ")
            ),
        ),
    ]
}

/// The contexts the program keyed `COPY app.py /app/` in, in its order.
const CONTEXTS: [&str; 4] = ["as-written", "app-edited", "notes-edited", "one-more-step"];
const STEP: &str = "COPY app.py /app/";

/// A RUN step: none of the cache's Dockerfiles has one.
struct NoRun;

impl build::StepRunner for NoRun {
    fn run(&self, _: &build::RunStep<'_>) -> std::io::Result<std::process::ExitStatus> {
        Err(std::io::Error::other("the cache check runs no RUN step"))
    }
}

/// Builds each context in `dir` with the builder, one store for all, in
/// the program's order: whether the last step came from the cache.
fn builder_took_from_cache(dir: &Path) -> Result<Vec<bool>, String> {
    let store = ImageStore::open(&dir.join("lab-store")).map_err(|e| e.to_string())?;
    let mut cached = Vec::new();
    for name in CONTEXTS {
        let before = if name == "one-more-step" {
            "COPY base.txt /\n"
        } else {
            ""
        };
        let text = format!("FROM scratch\n{before}{STEP}\n");
        let options = BuildOptions {
            dockerfile: build::parse(&text, "Dockerfile").map_err(|e| e.to_string())?,
            context: BuildContext::open(&dir.join(name))?,
            tags: Vec::new(),
            build_args: Vec::new(),
            target: None,
            no_cache: false,
            platform: None,
            source_date_epoch: None,
        };
        let events = Mutex::new(Vec::new());
        let sink = |e: BuildEvent| events.lock().unwrap_or_else(|e| e.into_inner()).push(e);
        let builder = Builder {
            store: &store,
            runner: &NoRun,
            events: &sink,
            images: None,
            cancel: None,
        };
        builder
            .build(&options)
            .map_err(|e| format!("the lab could not build {name}/: {e}"))?;
        let last = options.dockerfile.stages[0].instructions.len() + 1;
        let events = events.into_inner().unwrap_or_else(|e| e.into_inner());
        cached.push(
            events
                .iter()
                .any(|e| matches!(e, BuildEvent::Cached { number, .. } if *number == last)),
        );
    }
    Ok(cached)
}

/// `3f2a9c0d1e…`: enough of a key to tell two apart.
fn short(key: &str) -> String {
    format!("{}…", key.chars().take(12).collect::<String>())
}

fn cache(dir: &Path) -> Vec<Check> {
    let text = std::fs::read_to_string(dir.join("keys")).unwrap_or_default();
    let key = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let keys: Vec<String> = CONTEXTS.iter().map(|n| key(n)).collect();
    if keys.iter().any(String::is_empty) {
        return vec![Check::fail(
            "your copy_key returned an empty key (or the keys file lacks a context): \
             fill in the TODO",
        )];
    }
    let cached = match builder_took_from_cache(dir) {
        Ok(cached) => cached,
        Err(err) => return vec![Check::fail(err)],
    };
    let first = &keys[0];
    let builder = |hit: bool| {
        if hit {
            "mini-docker build said CACHED"
        } else {
            "mini-docker build ran the step again"
        }
    };
    let mut checks = vec![Check::pass(format!(
        "your key of {STEP} in the context as written: {}",
        short(first)
    ))];
    // app.py edited: the builder runs the step again.
    let (same, hit) = (&keys[1] == first, cached[1]);
    checks.push(Check::new(
        same == hit,
        format!(
            "app.py edited: your key changed ({} → {}), and {}",
            short(first),
            short(&keys[1]),
            builder(hit)
        ),
        if same {
            format!(
                "app.py was edited and your key stayed {}: a key of the instruction text \
                 alone hits the cache, and the image would keep the old app.py ({}); \
                 put the digest of the copied files into the key",
                short(first),
                builder(hit)
            )
        } else {
            format!(
                "app.py was edited and your key changed, but {}",
                builder(hit)
            )
        },
    ));
    // notes.txt edited, which the step does not copy: CACHED.
    let (same, hit) = (&keys[2] == first, cached[2]);
    checks.push(Check::new(
        same == hit,
        format!(
            "only notes.txt edited (not copied): your key stayed {}, and {}",
            short(first),
            builder(hit)
        ),
        if same {
            format!(
                "only notes.txt was edited and your key stayed the same, but {}",
                builder(hit)
            )
        } else {
            format!(
                "only notes.txt, which the step does not copy, was edited, and your key \
                 changed ({} → {}): the step would run again for nothing ({}); hash only \
                 the files the step copies",
                short(first),
                short(&keys[2]),
                builder(hit)
            )
        },
    ));
    // A step before it: a different parent, so the step runs again.
    let (same, hit) = (&keys[3] == first, cached[3]);
    checks.push(Check::new(
        same == hit,
        format!(
            "COPY base.txt / before it: your key changed ({}), and {}: a key holds its \
             parent's",
            short(&keys[3]),
            builder(hit)
        ),
        if same {
            format!(
                "with COPY base.txt / before it your key stayed {}: the layer would be \
                 reused on top of other files ({}); chain the parent's key into it",
                short(first),
                builder(hit)
            )
        } else {
            format!(
                "with another step before it your key changed, but {}",
                builder(hit)
            )
        },
    ));
    checks
}
