//! The image commands, spelled as Docker's: `pull`, `push`, `images`,
//! `rmi`, `tag`, `image inspect`, `history`, `save`, `load`, `import`,
//! `login` and `logout`, and the pull that `run` and `create` do when the
//! image is missing (or every time, with `--pull always`). Each is a call
//! into `engine::images`; what it prints is Docker's.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::{Args, Subcommand, ValueEnum};
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::images::registry::{self, CredentialStore, PullOptions, PushOptions};
use container_lab::engine::images::{
    self, local, ArchiveFormat, Event, Image, ImageError, ImageStore, LayerState, Platform,
    Reference, UnpackLimits,
};
use container_lab::support::time::parse_rfc3339;
use serde_json::{json, Value};

use crate::lifecycle::{lifecycle, refused};
use crate::present::{human_duration, human_size, images_table, ImageRow};

/// Registries spoken to over plain HTTP besides loopback ones, comma
/// separated (Docker's daemon setting `insecure-registries`).
pub const INSECURE_ENV: &str = "CONTAINER_LAB_INSECURE_REGISTRIES";

/// Set (to anything): no registry but a loopback one is contacted; the
/// tests set it, and so may a room without internet.
pub const OFFLINE_ENV: &str = "CONTAINER_LAB_OFFLINE";

/// How to reach a registry: shared by every command that talks to one.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP to this registry (host[:port]); loopback ones always are
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure: Vec<String>,
}

impl RegistryArgs {
    fn options(&self) -> registry::RegistryOptions {
        let mut insecure = self.insecure.clone();
        if let Ok(list) = std::env::var(INSECURE_ENV) {
            insecure.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_string),
            );
        }
        registry::RegistryOptions {
            insecure,
            credentials: Some(config_path()),
            ..Default::default()
        }
    }
}

/// Docker's client config: `$DOCKER_CONFIG/config.json`, or
/// `~/.docker/config.json`.
fn config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("config.json"),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".docker/config.json")
        }
    }
}

fn store() -> anyhow::Result<ImageStore> {
    Ok(local::open(&LabDirs::from_env())?)
}

/// Ctrl-C (or SIGTERM) during a transfer: this process's temporaries in
/// the store's tmp/ go, then it exits as a killed process would. What is
/// in place is complete and verified (every write is a rename), and no
/// image is listed before all of it is. Only while the guard lives: `run`
/// passes a later Ctrl-C to its container instead.
fn stop_on_interrupt(store: &ImageStore) -> InterruptGuard {
    let tmp = store.root().join("tmp");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watching = done.clone();
    std::thread::spawn(move || {
        while !watching.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some(signal) = container_lab::kernel::signals::interrupted() {
                let ours = format!("-{}-", std::process::id());
                for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
                    if entry.file_name().to_string_lossy().contains(&ours) {
                        let path = entry.path();
                        let _ =
                            std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
                    }
                }
                eprintln!("mini-docker: interrupted; nothing half-done was kept");
                std::process::exit(128 + signal as i32);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    InterruptGuard(done)
}

struct InterruptGuard(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn parse_reference(text: &str) -> anyhow::Result<Reference> {
    Ok(Reference::parse(text)?)
}

// --- pull ---------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

/// Docker's lines for a pull or a push: one per change of a layer's
/// state, bytes only on a terminal (where each layer keeps its own line).
struct Lines {
    terminal: bool,
    to_stderr: bool,
    quiet: bool,
    /// On a terminal: the layers in the order their lines were printed.
    rows: std::sync::Mutex<Vec<String>>,
}

impl Lines {
    fn new(terminal: bool, to_stderr: bool, quiet: bool) -> Lines {
        Lines {
            terminal,
            to_stderr,
            quiet,
            rows: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn show(&self, event: Event) {
        let layer_id = match &event {
            Event::Layer(layer) if self.terminal => Some(layer.short_id().to_string()),
            _ => None,
        };
        let line = match event {
            Event::PullStarted { reference } => Some(format!(
                "{}: Pulling from {}",
                reference.tag_or_digest(),
                reference.path
            )),
            Event::Layer(layer) => {
                let id = layer.short_id().to_string();
                match layer.state {
                    LayerState::Downloading | LayerState::Pushing
                        if !self.terminal && layer.done > 0 =>
                    {
                        None
                    }
                    LayerState::Downloading | LayerState::Pushing if layer.total > 0 => {
                        Some(format!(
                            "{id}: {} {}/{}",
                            layer.state,
                            human_size(layer.done),
                            human_size(layer.total)
                        ))
                    }
                    LayerState::Waiting if !self.terminal => {
                        Some(format!("{id}: Pulling fs layer"))
                    }
                    state => Some(format!("{id}: {state}")),
                }
            }
            Event::Warning(text) => {
                eprintln!("mini-docker: warning: {text}");
                None
            }
            Event::PullDone {
                reference,
                repo_digest,
                newer,
            } => {
                let digest = repo_digest.rsplit('@').next().unwrap_or(&repo_digest);
                let status = if newer {
                    format!("Downloaded newer image for {}", reference.familiar())
                } else {
                    format!("Image is up to date for {}", reference.familiar())
                };
                Some(format!("Digest: {digest}\nStatus: {status}"))
            }
            Event::PushStarted { reference } => Some(format!(
                "The push refers to repository [{}]",
                reference.name()
            )),
            Event::PushDone {
                reference,
                digest,
                size,
            } => Some(format!(
                "{}: digest: {digest} size: {size}",
                reference.tag_or_digest()
            )),
            Event::Loaded { reference } => Some(format!("Loaded image: {}", reference.familiar())),
        };
        let (Some(mut line), false) = (line, self.quiet) else {
            return;
        };
        line.push('\n');
        // A layer's line is rewritten in place, as Docker draws it: up to
        // its row, clear it, write, and back down.
        if let Some(id) = layer_id {
            let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
            match rows.iter().position(|r| *r == id) {
                Some(row) => {
                    let up = rows.len() - row;
                    line = format!("\x1b[{up}A\r\x1b[2K{}\x1b[{up}B\r", line.trim_end());
                }
                None => rows.push(id),
            }
            self.write(&line);
            return;
        }
        self.write(&line);
    }

    fn write(&self, text: &str) {
        if self.to_stderr {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(text.as_bytes());
            let _ = err.flush();
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}

fn pull_image(
    text: &str,
    platform: Option<&str>,
    registry_args: &RegistryArgs,
    lines: &Lines,
) -> anyhow::Result<Image> {
    let reference = parse_reference(text)?;
    let host = reference.registry_host();
    if std::env::var_os(OFFLINE_ENV).is_some() && !registry::is_loopback(host) {
        anyhow::bail!(
            "unable to find image '{}' locally, and {OFFLINE_ENV} is set: {host} was not contacted",
            reference.familiar()
        );
    }
    let mut options = PullOptions {
        registry: registry_args.options(),
        ..Default::default()
    };
    if let Some(platform) = platform {
        options.platform = Platform::parse(platform)?;
    }
    let store = store()?;
    let _interrupt = stop_on_interrupt(&store);
    let show = |event: Event| lines.show(event);
    let pulled = registry::pull(&store, &reference, &options, &show)?;
    Ok(pulled.image)
}

pub fn pull(args: &PullArgs) -> anyhow::Result<i32> {
    if !args.name.contains(':') && !args.name.contains('@') && !args.quiet {
        println!("Using default tag: latest");
    }
    let lines = Lines::new(std::io::stdout().is_terminal(), false, args.quiet);
    let image = pull_image(&args.name, args.platform.as_deref(), &args.registry, &lines)?;
    println!("{}", image.reference);
    Ok(0)
}

/// `run` and `create` by `--pull`'s policy (`never` does not call this):
/// `missing` pulls an image not in the store; `always` asks the registry
/// for the manifest every time, and stores a new one when the tag has
/// moved, or says the image is up to date. The lab's own busybox, built
/// here and in no registry, is never pulled.
pub fn pull_for_run(text: &str, always: bool) -> anyhow::Result<()> {
    if !always || local::names_busybox(text) {
        return pull_if_missing(text);
    }
    // As Docker's client: the pull's lines on stderr, no "Unable to find".
    let lines = Lines::new(std::io::stderr().is_terminal(), true, false);
    let registry = RegistryArgs {
        insecure: Vec::new(),
    };
    pull_image(text, None, &registry, &lines)?;
    Ok(())
}

/// `run` and `create` of an image not in the store: Docker's message, then
/// a pull (its lines on stderr, so the container's output stays alone).
// ANCHOR: pull_if_missing
pub fn pull_if_missing(text: &str) -> anyhow::Result<()> {
    let dirs = LabDirs::from_env();
    let store = local::open(&dirs)?;
    match local::resolve(&store, &dirs, text) {
        Err(ImageError::NotFound { .. }) => {}
        Err(err) => return Err(err.into()),
        Ok(_) => return Ok(()),
    }
    let Ok(reference) = Reference::parse(text) else {
        return Ok(());
    };
    eprintln!("Unable to find image '{}' locally", reference.familiar());
    let lines = Lines::new(std::io::stderr().is_terminal(), true, false);
    let registry = RegistryArgs {
        insecure: Vec::new(),
    };
    pull_image(text, None, &registry, &lines)?;
    Ok(())
}
// ANCHOR_END: pull_if_missing

// --- push ---------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Upload blobs in chunks of this many bytes (default: one request each)
    #[arg(long, value_name = "BYTES")]
    chunk_size: Option<u64>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// NAME[:TAG]
    name: String,
}

pub fn push(args: &PushArgs) -> anyhow::Result<i32> {
    let store = store()?;
    let target = parse_reference(&args.name)?;
    let options = PushOptions {
        registry: args.registry.options(),
        chunk_size: args.chunk_size,
    };
    let lines = Lines::new(std::io::stdout().is_terminal(), false, args.quiet);
    let _interrupt = stop_on_interrupt(&store);
    let show = |event: Event| lines.show(event);
    let pushed = registry::push(&store, &args.name, &target, &options, &show)?;
    if args.quiet {
        println!("{}", pushed.digest);
    }
    Ok(0)
}

// --- images, rmi, tag ---------------------------------------------------------

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Show only images of this repository (and tag)
    repository: Option<String>,
}

fn created(image: &Image) -> Option<SystemTime> {
    image.config.created().as_deref().and_then(parse_rfc3339)
}

pub fn list(args: &ImagesArgs) -> anyhow::Result<i32> {
    let store = store()?;
    let mut list = store.list()?;
    if let Some(wanted) = &args.repository {
        // A repository alone matches every tag; with a tag, that one.
        let with_tag = wanted
            .rsplit_once(':')
            .is_some_and(|(_, t)| !t.contains('/'));
        let wanted = parse_reference(wanted)?;
        list.retain(|i| {
            i.reference.name() == wanted.name() && (!with_tag || i.reference.tag == wanted.tag)
        });
    }
    // Newest first, as Docker lists them.
    list.sort_by_key(|i| std::cmp::Reverse(created(i)));
    if args.quiet {
        let mut seen = Vec::new();
        for image in &list {
            let id = if args.no_trunc {
                image.id().to_string()
            } else {
                image.short_id().to_string()
            };
            if !seen.contains(&id) {
                println!("{id}");
                seen.push(id);
            }
        }
        return Ok(0);
    }
    let rows: Vec<ImageRow> = list
        .iter()
        .map(|image| ImageRow {
            // Pulled by digest: no tag, as Docker shows it.
            reference: match &image.reference.tag {
                Some(tag) => format!("{}:{tag}", image.reference.familiar_name()),
                None => format!("{}:<none>", image.reference.familiar_name()),
            },
            id: image.id()[7..].to_string(),
            created: created(image),
            size_bytes: image.size(),
        })
        .collect();
    print!("{}", images_table(&rows, SystemTime::now()));
    Ok(0)
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove it even if a stopped container uses it
    #[arg(short = 'f', long)]
    force: bool,
    /// Images, by name or id
    #[arg(required = true)]
    images: Vec<String>,
}

/// `rmi`: each image in turn, Docker's `Untagged:` and `Deleted:` lines;
/// one that fails is reported and the rest still go.
pub fn rmi(args: &RmiArgs) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    let mut failed = None;
    for name in &args.images {
        match lifecycle.remove_image(name, args.force) {
            Ok(removed) => {
                for reference in &removed.untagged {
                    println!("Untagged: {}", reference.familiar());
                }
                for digest in &removed.deleted {
                    println!("Deleted: {digest}");
                }
            }
            Err(err) => {
                // Alone, the error is main's to print.
                if args.images.len() > 1 {
                    eprintln!("mini-docker: error: {err}");
                }
                failed = Some(err);
            }
        }
    }
    match failed {
        Some(err) if args.images.len() == 1 => Err(err.into()),
        Some(_) => Err(refused("some images could not be removed".to_string())),
        None => Ok(0),
    }
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG], or an image id
    source: String,
    /// TARGET_IMAGE[:TAG]
    target: String,
}

pub fn tag(args: &TagArgs) -> anyhow::Result<i32> {
    let target = parse_reference(&args.target)?;
    store()?.tag(&args.source, &target)?;
    Ok(0)
}

// --- image inspect, history ---------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Display detailed information on one or more images
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// List images
    Ls(ImagesArgs),
    /// Remove one or more images
    Rm(RmiArgs),
    /// Show the history of an image
    History(HistoryArgs),
}

pub fn image(command: &ImageCommand) -> anyhow::Result<i32> {
    match command {
        ImageCommand::Inspect { images } => inspect(images),
        ImageCommand::Ls(args) => list(args),
        ImageCommand::Rm(args) => rmi(args),
        ImageCommand::History(args) => history(args),
    }
}

/// `docker image inspect`'s document, from the image's own config.
pub fn inspect_document(store: &ImageStore, image: &Image) -> anyhow::Result<Value> {
    let config: Value = serde_json::from_slice(&store.config_bytes(image.id())?)?;
    let tags: Vec<String> = store
        .list()?
        .into_iter()
        .filter(|i| i.id() == image.id())
        .map(|i| i.reference.familiar())
        .collect();
    let digests: Vec<String> = image.repo_digest.iter().cloned().collect();
    let c = config.get("config").cloned().unwrap_or(json!({}));
    let pick = |key: &str| c.get(key).cloned().unwrap_or(Value::Null);
    Ok(json!({
        "Id": image.id(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Created": config.get("created").cloned().unwrap_or(json!("")),
        "Author": config.get("author").cloned().unwrap_or(json!("")),
        "Config": {
            "User": c.get("User").cloned().unwrap_or(json!("")),
            "ExposedPorts": pick("ExposedPorts"),
            "Env": pick("Env"),
            "Entrypoint": pick("Entrypoint"),
            "Cmd": pick("Cmd"),
            "WorkingDir": c.get("WorkingDir").cloned().unwrap_or(json!("")),
            "Volumes": pick("Volumes"),
            "Labels": pick("Labels"),
            "StopSignal": pick("StopSignal"),
        },
        "Architecture": config.get("architecture").cloned().unwrap_or(json!("")),
        "Variant": config.get("variant").cloned().unwrap_or(Value::Null),
        "Os": config.get("os").cloned().unwrap_or(json!("")),
        "Size": image.size(),
        "RootFS": {
            "Type": "layers",
            "Layers": image.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "Metadata": {"ManifestDigest": image.manifest_digest},
        "GraphDriver": {
            "Name": "overlay",
            "Data": {"LowerDir": image
                .lower_dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":")},
        },
    }))
}

fn inspect(names: &[String]) -> anyhow::Result<i32> {
    let store = store()?;
    let mut documents = Vec::new();
    for name in names {
        let image = store
            .find(name)
            .map_err(|_| refused(format!("no such image: {name}")))?;
        documents.push(inspect_document(&store, &image)?);
    }
    println!("{}", serde_json::to_string_pretty(&documents)?);
    Ok(0)
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    image: String,
}

/// `docker history`: the config's history, newest first; a step that
/// made a layer shows that layer's size, the top line the image's id.
// ANCHOR: history
pub fn history(args: &HistoryArgs) -> anyhow::Result<i32> {
    let store = store()?;
    let image = store.find(&args.image)?;
    let config: Value = serde_json::from_slice(&store.config_bytes(image.id())?)?;
    let entries = config
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut layers = image.layers.iter();
    let mut rows = Vec::new();
    for entry in &entries {
        let empty = entry
            .get("empty_layer")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let size = if empty {
            0
        } else {
            layers.next().map_or(0, |l| l.unpacked_size)
        };
        let text = |key: &str| {
            entry
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        rows.push((text("created"), text("created_by"), size, text("comment")));
    }
    rows.reverse();
    let now = SystemTime::now();
    let id = if args.no_trunc {
        image.id().to_string()
    } else {
        image.short_id().to_string()
    };
    if args.quiet {
        for i in 0..rows.len() {
            println!("{}", if i == 0 { id.as_str() } else { "<missing>" });
        }
        return Ok(0);
    }
    let mut table = vec![[
        "IMAGE".to_string(),
        "CREATED".to_string(),
        "CREATED BY".to_string(),
        "SIZE".to_string(),
        "COMMENT".to_string(),
    ]];
    for (i, (created, by, size, comment)) in rows.into_iter().enumerate() {
        let age = parse_rfc3339(&created)
            .map(|t| {
                let d = now.duration_since(t).unwrap_or_default();
                format!("{} ago", human_duration(d))
            })
            .unwrap_or_else(|| "N/A".to_string());
        let by = if args.no_trunc || by.chars().count() <= 45 {
            by
        } else {
            format!("{}…", by.chars().take(44).collect::<String>())
        };
        let image_col = if i == 0 {
            id.clone()
        } else {
            "<missing>".into()
        };
        table.push([image_col, age, by, human_size(size), comment]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|col| {
            table
                .iter()
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
                + 3
        })
        .collect();
    for row in &table {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(cell);
            line.push_str(&" ".repeat(width - cell.chars().count()));
        }
        line.push_str(&row[4]);
        println!("{}", line.trim_end());
    }
    Ok(0)
}
// ANCHOR_END: history

// --- save, load, import -------------------------------------------------------

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SaveFormat {
    /// `docker save`'s tarball (manifest.json, one directory per layer)
    DockerArchive,
    /// An OCI image layout in a tarball
    OciArchive,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// The archive's format
    #[arg(long, value_enum, default_value = "docker-archive")]
    format: SaveFormat,
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn save(args: &SaveArgs) -> anyhow::Result<i32> {
    let store = store()?;
    let format = match args.format {
        SaveFormat::DockerArchive => ArchiveFormat::Docker,
        SaveFormat::OciArchive => ArchiveFormat::Oci,
    };
    let names: Vec<&str> = args.images.iter().map(String::as_str).collect();
    match &args.output {
        Some(path) => {
            // Written beside, renamed when complete: no half archive.
            let partial = path.with_extension("partial");
            let result = (|| -> anyhow::Result<()> {
                let file = std::fs::File::create(&partial)?;
                let mut out = std::io::BufWriter::new(file);
                images::save(&store, &names, format, &mut out)?;
                out.into_inner()?.sync_all()?;
                std::fs::rename(&partial, path)?;
                Ok(())
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            result?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                return Err(refused(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                        .to_string(),
                ));
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            images::save(&store, &names, format, &mut out)?;
            out.flush()?;
        }
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    quiet: bool,
}

pub fn load(args: &LoadArgs) -> anyhow::Result<i32> {
    let store = store()?;
    let lines = Lines::new(false, false, args.quiet);
    let show = |event: Event| lines.show(event);
    let input: Box<dyn Read> = match &args.input {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path)
                .map_err(|e| refused(format!("open {}: {e}", path.display())))?,
        )),
        None => {
            if std::io::stdin().is_terminal() {
                return Err(refused(
                    "requested load from stdin, but stdin is empty; use -i FILE or a redirect"
                        .to_string(),
                ));
            }
            Box::new(std::io::stdin().lock())
        }
    };
    let _interrupt = stop_on_interrupt(&store);
    images::load(&store, input, UnpackLimits::default(), &show)?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tarball (.tar, .tar.gz or .tar.zst)
    file: PathBuf,
    /// The image's name, NAME[:TAG]
    reference: String,
}

/// `docker import FILE NAME`: prints the new image's ID.
pub fn import(args: &ImportArgs) -> anyhow::Result<i32> {
    let reference = parse_reference(&args.reference)?;
    let store = store()?;
    let warn = |event: Event| {
        if let Event::Warning(text) = event {
            eprintln!("mini-docker: skipped {text} (a container gets its own /dev)");
        }
    };
    let limits = local::import_limits()?;
    let imported = local::import(&store, Path::new(&args.file), &reference, limits, &warn)?;
    println!("{}", imported.image.id());
    Ok(0)
}

// --- login, logout ------------------------------------------------------------

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password (prefer --password-stdin: a command line is visible to all)
    #[arg(short = 'p', long)]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The registry (default: Docker Hub)
    server: Option<String>,
}

fn server_or_hub(server: &Option<String>) -> String {
    server
        .clone()
        .unwrap_or_else(|| images::DOCKER_HUB.to_string())
}

pub fn login(args: &LoginArgs) -> anyhow::Result<i32> {
    let server = server_or_hub(&args.server);
    let user = match &args.username {
        Some(user) => user.clone(),
        None => return Err(refused("give a username with -u".to_string())),
    };
    let password = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(password) = &args.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        password.clone()
    } else {
        return Err(refused(
            "give the password with --password-stdin (or -p)".to_string(),
        ));
    };
    let credentials = CredentialStore::new(config_path());
    registry::login(
        &args.registry.options(),
        &credentials,
        &server,
        &user,
        &password,
    )?;
    println!("Login Succeeded");
    Ok(0)
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub)
    server: Option<String>,
}

pub fn logout(args: &LogoutArgs) -> anyhow::Result<i32> {
    let server = server_or_hub(&args.server);
    let credentials = CredentialStore::new(config_path());
    if registry::logout(&credentials, &server)? {
        println!("Removing login credentials for {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(0)
}
