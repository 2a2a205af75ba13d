//! `build`, `commit`, `diff` and `export`: the image builder of
//! `engine::build` on Docker's command line, with BuildKit's plain
//! progress (`#N [2/5] RUN …`, `#N CACHED`, `#N DONE 0.3s`), RUN steps in
//! containers of the lab's runtime (`engine::runtime::build_step`), and
//! the layer machinery the other three share with it.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use container_lab::engine::build::{
    self, lab_images, BuildContext, BuildError, BuildEvent, BuildOptions, Builder, CommitOptions,
    Dockerfile, Kind, MergedView,
};
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::images::{Image, ImageError, ImageStore, Platform, Reference};
use container_lab::engine::runtime::build_step::StepContainers;
use container_lab::engine::store::Record;
use container_lab::engine::supervisor;
use container_lab::kernel::cgroups;

use crate::lifecycle::lifecycle;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// plain on a pipe, tty on a terminal
    Auto,
    /// every step and every line of its output, as BuildKit's plain
    Plain,
    /// one line per finished step
    Tty,
    /// nothing; the image ID on stdout at the end
    Quiet,
}

/// `docker build`'s flags.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (NAME[:TAG]); may be given more than once
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: CONTEXT/Dockerfile)
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable (K=V, or K to take it from the environment)
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use the cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Set the platform for FROM lines that name none (os/arch[/variant])
    #[arg(long)]
    pub platform: Option<String>,
    /// Type of progress output
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Suppress the build output and print the image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The build context: a directory
    pub context: PathBuf,
}

fn image_store(dirs: &LabDirs) -> anyhow::Result<ImageStore> {
    Ok(lab_images::store(dirs)?)
}

fn find_image(dirs: &LabDirs, store: &ImageStore, name: &str) -> Result<Image, ImageError> {
    lab_images::find(dirs, store, name)
}

/// `build`: 0 when built; 1 (Docker's code) when the Dockerfile or a step
/// failed, said on stderr; an error (125) when mini-docker itself could not.
pub fn build(args: &BuildArgs) -> anyhow::Result<i32> {
    let dirs = LabDirs::from_env();
    let options = match options(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("mini-docker: error: {message}");
            return Ok(1);
        }
    };
    let store = image_store(&dirs)?;
    let mode = match (args.quiet, args.progress) {
        (true, _) => ProgressMode::Quiet,
        (false, ProgressMode::Auto) if std::io::stderr().is_terminal() => ProgressMode::Tty,
        (false, ProgressMode::Auto) => ProgressMode::Plain,
        (false, mode) => mode,
    };
    let progress = Progress::new(mode, vertices(&options.dockerfile));
    progress.internal(
        "load build definition from Dockerfile",
        &format!("transferring dockerfile: {}B done", args.dockerfile_len()),
    );
    progress.internal("load .dockerignore", "transferring context: done");
    let events = |event: BuildEvent| progress.event(event);
    let output = |bytes: &[u8]| progress.output(bytes);
    let runner = StepContainers::new(&dirs, &output);
    let resolve = |name: &str| find_image(&dirs, &store, name);
    let builder = Builder {
        store: &store,
        runner: &runner,
        events: &events,
        images: Some(&resolve),
        cancel: None,
    };
    match builder.build(&options) {
        Ok(built) => {
            progress.finish(&built.id);
            if mode == ProgressMode::Quiet {
                println!("{}", built.id);
            }
            Ok(0)
        }
        Err(err) => {
            let message = located(&err);
            progress.failed(&message);
            eprintln!("mini-docker: error: {message}");
            Ok(1)
        }
    }
}

impl BuildArgs {
    fn dockerfile_path(&self) -> PathBuf {
        self.file
            .clone()
            .unwrap_or_else(|| self.context.join("Dockerfile"))
    }

    fn dockerfile_len(&self) -> u64 {
        std::fs::metadata(self.dockerfile_path()).map_or(0, |m| m.len())
    }
}

/// The flags and files, checked before anything is built.
fn options(args: &BuildArgs) -> Result<BuildOptions, String> {
    let path = args.dockerfile_path();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read the Dockerfile {}: {}; give its path with -f",
            path.display(),
            e.to_string().to_lowercase()
        )
    })?;
    let name = match &args.file {
        Some(file) => file.display().to_string(),
        None => "Dockerfile".to_string(),
    };
    let dockerfile = build::parse(&text, &name).map_err(|e| e.to_string())?;
    let context = BuildContext::open(&args.context)?;
    let tags = args
        .tags
        .iter()
        .map(|t| {
            Reference::parse(t)
                .map_err(|e| format!("invalid argument {t:?} for \"-t, --tag\" flag: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut build_args = Vec::new();
    for arg in &args.build_args {
        match arg.split_once('=') {
            Some((k, v)) => build_args.push((k.to_string(), v.to_string())),
            // `--build-arg K`: its value from our environment, if set.
            None => {
                if let Ok(v) = std::env::var(arg) {
                    build_args.push((arg.clone(), v));
                }
            }
        }
    }
    let platform = match &args.platform {
        Some(p) => Some(Platform::parse(p).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok(BuildOptions {
        dockerfile,
        context,
        tags,
        build_args,
        target: args.target.clone(),
        no_cache: args.no_cache,
        platform,
        source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.parse().ok()),
    })
}

/// Which steps BuildKit shows, numbered as it numbers them: per stage, for
/// each step (FROM first) its number among the stage's FROM, RUN, COPY,
/// ADD and WORKDIR, and the count; the other instructions only change
/// the config and show no step of their own.
fn vertices(dockerfile: &Dockerfile) -> Vec<(Vec<Option<usize>>, usize)> {
    dockerfile
        .stages
        .iter()
        .map(|stage| {
            let mut shown = 1;
            let mut numbers = vec![Some(1)];
            for instruction in &stage.instructions {
                numbers.push(match instruction.kind {
                    Kind::Run(_) | Kind::Copy(_) | Kind::Add(_) | Kind::Workdir(_) => {
                        shown += 1;
                        Some(shown)
                    }
                    _ => None,
                });
            }
            (numbers, shown)
        })
        .collect()
}

/// A build error with the Dockerfile line it happened on.
fn located(err: &BuildError) -> String {
    match err {
        BuildError::RunFailed { file, line, .. } => format!("{file}:{line}: {err}"),
        other => other.to_string(),
    }
}

/// BuildKit's progress, printed on stderr as the events come.
struct Progress {
    mode: ProgressMode,
    vertices: Vec<(Vec<Option<usize>>, usize)>,
    state: Mutex<State>,
}

struct State {
    /// The last vertex number given out.
    vertex: usize,
    /// The step under way: its number, name and start.
    open: Option<(usize, String, Instant)>,
    /// A partial line of a step's output.
    line: Vec<u8>,
    stage_name: String,
    tags: Vec<String>,
    started: Instant,
}

impl Progress {
    fn new(mode: ProgressMode, vertices: Vec<(Vec<Option<usize>>, usize)>) -> Progress {
        Progress {
            mode,
            vertices,
            state: Mutex::new(State {
                vertex: 0,
                open: None,
                line: Vec::new(),
                stage_name: String::new(),
                tags: Vec::new(),
                started: Instant::now(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn print(&self, text: &str) {
        if self.mode != ProgressMode::Quiet {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(text.as_bytes());
        }
    }

    fn internal(&self, name: &str, detail: &str) {
        let mut s = self.state();
        s.vertex += 1;
        let n = s.vertex;
        match self.mode {
            ProgressMode::Plain => self.print(&format!(
                "#{n} [internal] {name}\n#{n} {detail}\n#{n} DONE 0.0s\n\n"
            )),
            ProgressMode::Tty => self.print(&format!(" => [internal] {name}\n")),
            _ => {}
        }
    }

    /// Ends the open step: `DONE 0.3s` (or its one line on a terminal).
    fn close(&self, s: &mut State, cached: bool) {
        self.flush_line(s);
        let Some((n, name, start)) = s.open.take() else {
            return;
        };
        let took = start.elapsed().as_secs_f64();
        match (self.mode, cached) {
            (ProgressMode::Plain, true) => self.print(&format!("#{n} CACHED\n\n")),
            (ProgressMode::Plain, false) => self.print(&format!("#{n} DONE {took:.1}s\n\n")),
            (ProgressMode::Tty, true) => self.print(&format!(" => CACHED {name}\n")),
            (ProgressMode::Tty, false) => self.print(&format!(" => {name}  {took:.1}s\n")),
            _ => {}
        }
    }

    fn flush_line(&self, s: &mut State) {
        if s.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&s.line).into_owned();
        s.line.clear();
        if let (ProgressMode::Plain, Some((n, _, start))) = (self.mode, &s.open) {
            let at = start.elapsed().as_secs_f64();
            self.print(&format!("#{n} {at:.3} {text}\n"));
        }
    }

    fn event(&self, event: BuildEvent) {
        let mut s = self.state();
        match event {
            BuildEvent::Warning(w) => self.print(&format!("WARNING: {w}\n")),
            BuildEvent::Stage { stage, name, .. } => {
                s.stage_name = name.unwrap_or_else(|| format!("stage-{stage}"));
            }
            BuildEvent::Step {
                number,
                instruction,
                stage,
                ..
            } => {
                self.close(&mut s, false);
                let Some((numbers, total)) = self.vertices.get(stage) else {
                    return;
                };
                let Some(Some(number)) = numbers.get(number - 1) else {
                    return;
                };
                s.vertex += 1;
                let n = s.vertex;
                // Stage names only when there is more than one stage.
                let prefix = if self.vertices.len() > 1 {
                    format!("{} ", s.stage_name)
                } else {
                    String::new()
                };
                let name = format!("[{prefix}{number}/{total}] {instruction}");
                if self.mode == ProgressMode::Plain {
                    self.print(&format!("#{n} {name}\n"));
                }
                s.open = Some((n, name, Instant::now()));
            }
            BuildEvent::Cached { .. } => self.close(&mut s, true),
            BuildEvent::Tagged { reference } => s.tags.push(reference.to_string()),
            BuildEvent::Layer { .. } | BuildEvent::NoLayer { .. } | BuildEvent::Built { .. } => {}
        }
    }

    /// A step's output: whole lines, each with its time into the step.
    fn output(&self, bytes: &[u8]) {
        let mut s = self.state();
        for &b in bytes {
            if b == b'\n' {
                if s.line.is_empty() {
                    s.line.push(b' ');
                }
                self.flush_line(&mut s);
            } else {
                s.line.push(b);
            }
        }
    }

    fn finish(&self, id: &str) {
        let mut s = self.state();
        self.close(&mut s, false);
        s.vertex += 1;
        let n = s.vertex;
        let took = s.started.elapsed().as_secs_f64();
        match self.mode {
            ProgressMode::Plain => {
                let mut text = format!(
                    "#{n} exporting to image\n#{n} exporting layers done\n#{n} writing image {id} done\n"
                );
                for tag in &s.tags {
                    text.push_str(&format!("#{n} naming to {tag} done\n"));
                }
                text.push_str(&format!("#{n} DONE 0.0s\n"));
                self.print(&text);
            }
            ProgressMode::Tty => {
                let mut text = format!(" => writing image {id}\n");
                for tag in &s.tags {
                    text.push_str(&format!(" => naming to {tag}\n"));
                }
                text.push_str(&format!("[+] Building {took:.1}s (done)\n"));
                self.print(&text);
            }
            _ => {}
        }
    }

    fn failed(&self, message: &str) {
        let mut s = self.state();
        self.flush_line(&mut s);
        if let Some((n, name, _)) = s.open.take() {
            match self.mode {
                ProgressMode::Plain => self.print(&format!("#{n} ERROR: {message}\n\n")),
                ProgressMode::Tty => self.print(&format!(" => ERROR {name}\n")),
                _ => {}
            }
        }
    }
}

/// `docker commit`'s flags.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g. "Jane Doe <jane@example.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause the container during commit (default true)
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
    pub container: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// A container's writable layer and the layers below it (top first): its
/// image's, as the store has them.
fn container_layers(record: &Record) -> anyhow::Result<(PathBuf, MergedView)> {
    let lifecycle = lifecycle();
    let upper = supervisor::layer_dir(lifecycle.store(), &record.id).join("upper");
    if !upper.is_dir() {
        anyhow::bail!(
            "container {} has no writable layer (it was never started, or was removed)",
            record.name
        );
    }
    let dirs = lifecycle.dirs();
    let image = find_image(dirs, &image_store(dirs)?, &record.config.image)?;
    let lowers: Vec<PathBuf> = image.layers.iter().map(|l| l.dir.clone()).collect();
    Ok((upper, MergedView::of_layers(&lowers)))
}

/// `commit`: prints the new image's ID.
pub fn commit(args: &CommitArgs) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    let record = lifecycle.find(&args.container)?;
    let (upper, _) = container_layers(&record)?;
    let dirs = lifecycle.dirs().clone();
    let store = image_store(&dirs)?;
    let base = find_image(&dirs, &store, &record.config.image)?;
    let references = match &args.reference {
        Some(r) => {
            vec![Reference::parse(r).map_err(|e| anyhow::anyhow!("invalid reference {r:?}: {e}"))?]
        }
        None => Vec::new(),
    };
    // Docker freezes a running container so that its layer holds still.
    let frozen = args.pause
        && record.effective_status().is_running()
        && cgroups::set_frozen(&record.state.cgroup_paths, true).is_ok();
    let written = build::commit(
        &store,
        &base,
        &upper,
        &references,
        &CommitOptions {
            author: args.author.clone(),
            comment: args.message.clone(),
            created_by: container_lab::support::shell::shell_words(record.command()),
            created: None,
        },
    );
    if frozen {
        let _ = cgroups::set_frozen(&record.state.cgroup_paths, false);
    }
    println!("{}", written?.id);
    Ok(0)
}

/// `diff CONTAINER`: `A`, `C` or `D` and the path, one per line.
pub fn diff(container: &str) -> anyhow::Result<i32> {
    let record = lifecycle().find(container)?;
    let (upper, lower) = container_layers(&record)?;
    let mut out = std::io::stdout().lock();
    for change in build::changes(&upper, &lower)? {
        writeln!(out, "{} {}", change.kind.letter(), change.path)?;
    }
    Ok(0)
}

/// `export [-o FILE] CONTAINER`: the container's files as one tar.
pub fn export(container: &str, output: Option<&Path>) -> anyhow::Result<i32> {
    let record = lifecycle().find(container)?;
    let (upper, lower) = container_layers(&record)?;
    let mut layers = vec![upper];
    layers.extend(lower.layers);
    let view = MergedView { layers };
    match output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            build::export(&view, std::io::BufWriter::new(file))?;
        }
        None if std::io::stdout().is_terminal() => {
            anyhow::bail!("cowardly refusing to save to a terminal; use the -o flag or redirect")
        }
        None => build::export(&view, std::io::BufWriter::new(std::io::stdout().lock()))?,
    }
    Ok(0)
}
