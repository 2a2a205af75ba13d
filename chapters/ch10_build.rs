//! Chapter 10: building images.
//!
//! A Dockerfile is a list of shell commands run in sequence, the
//! filesystem snapshotted after each one. The chapter runs one RUN step by
//! hand (a container on the image's layers, its writable layer turned into
//! a layer tar), then builds its own small Dockerfile, builds it again
//! from the cache, edits a source file and watches only the steps from its
//! COPY run again, puts the steps in the wrong order to see the cache
//! miss, and ships a multi-stage build without its toolchain.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;
use container_lab::engine::build::{
    self, lab_images, BuildContext, BuildEvent, BuildOptions, Builder, Built,
    RunStep, StepRunner,
};
use container_lab::engine::dirs::{LabDirs, RunDir};
use container_lab::engine::images::{busybox, ImageStore, Reference};
use container_lab::engine::runtime::build_step::StepContainers;
use container_lab::kernel::cgroups::Cgroup;
use container_lab::kernel::overlay::{self, Layer, OverlayDirs, UpperEntry};
use container_lab::kernel::{mounts, rootfs};
use container_lab::lab;
use container_lab::lab::cli::{self, ChapterArgs};
use container_lab::lab::narrate::{yes_no, Narrator};

/// Building images: a Dockerfile, one layer per step, the layer cache.
#[derive(Debug, Parser)]
#[command(name = "ch10", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
}

/// SOURCE_DATE_EPOCH: no time in a layer is later, so the same files give
/// the same digests on every machine (2023-11-14).
const EPOCH: i64 = 1_700_000_000;

fn main() -> ExitCode {
    cli::finish(run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut book = lab::begin!(&cli.chapter)?;
    let dirs = LabDirs::from_env();
    let host_mounts = mounts::mountinfo_text()?;
    // The chapter's context, copied so that its edits stay in the run.
    let run_dir = RunDir::create(&dirs, "ch10")?;
    let context = run_dir.path().join("context");
    rootfs::copy_tree(&source_context(), &context)?;
    same_modes(&context)?;
    let store = lab_images::store(&dirs)?;
    let output = Mutex::new(String::new());
    let collect = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_str(&text);
    };
    let runner = StepContainers::new(&dirs, &collect);

    book.next(narration::parse())?;
    // ANCHOR: parse
    let text = std::fs::read_to_string(context.join("Dockerfile"))?;
    let dockerfile = build::parse(&text, "Dockerfile")?;
    let mut rows = vec![row(["line", "instruction", "makes"])];
    for stage in &dockerfile.stages {
        rows.push(row([
            stage.from.line.to_string(),
            stage.from.original.clone(),
            "the stage".into(),
        ]));
        for ins in &stage.instructions {
            let makes = match ins.kind.name() {
                "RUN" | "COPY" | "ADD" | "WORKDIR" => "a layer",
                _ => "config only",
            };
            rows.push(row([
                ins.line.to_string(),
                short(&ins.original),
                makes.into(),
            ]));
        }
    }
    book.table(&rows);
    // ANCHOR_END: parse

    book.next(narration::from())?;
    // ANCHOR: from
    let base = lab_images::find(&dirs, &store, "busybox")?;
    book.fact("image id", base.id());
    for layer in &base.layers {
        book.fact("base layer", layer.dir.display());
    }
    let layers: Vec<Layer> = base
        .layers
        .iter()
        .map(|l| Layer {
            name: l.diff_id.clone(),
            path: l.dir.clone(),
        })
        .collect();
    // ANCHOR_END: from

    book.next(narration::run())?;
    // ANCHOR: run
    let scratch = store.scratch_dir("ch10-run")?;
    let step_dirs = OverlayDirs::create(scratch.path())?;
    let argv: Vec<String> = ["/bin/sh", "-c", RUN_BY_HAND]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let env: Vec<String> = busybox::env()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let status = runner.run(&RunStep {
        layers: &layers,
        dirs: &step_dirs,
        argv: &argv,
        env: &env,
        user: "",
        workdir: "/",
    })?;
    book.output(&take(&output));
    book.fact("exit status", status.code().unwrap_or(-1));
    for path in ["app/greeting", "etc/hostname"] {
        let what =
            describe(&overlay::inspect_upper(&step_dirs.upper.join(path)));
        book.fact(&format!("host sees upper/{path}"), what);
    }
    // ANCHOR_END: run

    book.next(narration::layer())?;
    // ANCHOR: layer
    let (layer, stats) =
        build::layer_from_upper(&store, &step_dirs.upper, Some(EPOCH))?
            .ok_or_else(|| anyhow::anyhow!("the RUN step changed nothing"))?;
    drop(scratch);
    for entry in tar_entries(&store.layer_blob(&layer)?)? {
        book.say(entry);
    }
    book.fact(
        "entries, whiteouts",
        format!("{}, {}", stats.entries, stats.whiteouts),
    );
    book.fact("diff_id (the tar)", &layer.diff_id);
    book.fact("digest (the tar.gz)", &layer.digest);
    book.fact(
        "sizes",
        format!("{} B, {} B gzipped", layer.unpacked_size, layer.size),
    );
    // ANCHOR_END: layer

    let builds = Builds {
        dirs: &dirs,
        store: &store,
        runner: &runner,
        context: &context,
        output: &output,
    };
    let build = |book: &Narrator, file: &str, tag: &str, no_cache: bool| {
        builds.show(book, file, tag, no_cache)
    };

    book.next(narration::build())?;
    // ANCHOR: build
    let first = build(&book, "Dockerfile", "lab/ch10-app", true)?;
    book.fact("image id", &first.id);
    book.fact("layers", first.layers.len());
    // ANCHOR_END: build

    book.next(narration::cached())?;
    // ANCHOR: cached
    let again = build(&book, "Dockerfile", "lab/ch10-app", false)?;
    book.fact("the same image", yes_no(again.id == first.id));
    // ANCHOR_END: cached

    book.next(narration::edit())?;
    // ANCHOR: edit
    edit(&context.join("src/main.sh"), "echo 'version 2'")?;
    let edited = build(&book, "Dockerfile", "lab/ch10-app", false)?;
    let kept = shared_layers(&first, &edited);
    book.fact("layers shared with the first", kept);
    // ANCHOR_END: edit

    book.next(narration::unordered())?;
    // ANCHOR: unordered
    build(&book, "Dockerfile.unordered", "lab/ch10-unordered", true)?;
    edit(&context.join("src/main.sh"), "echo 'version 3'")?;
    book.say("after an edit of src/main.sh:");
    build(&book, "Dockerfile.unordered", "lab/ch10-unordered", false)?;
    // ANCHOR_END: unordered

    book.next(narration::multi_stage())?;
    // ANCHOR: multi_stage
    let whole = builds.target("Dockerfile.multi", "toolchain")?;
    let shipped = build(&book, "Dockerfile.multi", "lab/ch10-multi", false)?;
    let above = |built: &Built| added_kib(built, base.layers.len());
    book.fact("the toolchain stage adds", format!("{} KiB", above(&whole)));
    book.fact("the shipped image adds", format!("{} KiB", above(&shipped)));
    // ANCHOR_END: multi_stage

    book.next(narration::cleanup())?;
    // ANCHOR: cleanup
    let path = run_dir.path().to_path_buf();
    drop(run_dir);
    book.fact("run directory removed", yes_no(!path.exists()));
    let same = mounts::mountinfo_text()? == host_mounts;
    book.fact("host mount table unchanged", yes_no(same));
    book.fact("step cgroups left", step_cgroups().len());
    for tag in ["lab/ch10-app", "lab/ch10-unordered", "lab/ch10-multi"] {
        let kept = store.find(tag).is_ok();
        book.fact(&format!("{tag} in the store"), yes_no(kept));
    }
    // ANCHOR_END: cleanup

    book.done(
        "an image is a stack of snapshots, one per step that changed files; \
         the cache reuses a step while its parent and its inputs are the \
         same, so what changes often goes last. \
         try `sudo mini-docker build -t app chapters/ch10`.",
    );
    Ok(())
}

/// What step 3's container runs: a new file and a deleted one.
// ANCHOR: run_by_hand
const RUN_BY_HAND: &str = "mkdir /app && echo hello > /app/greeting \
                           && rm /etc/hostname && echo done";
// ANCHOR_END: run_by_hand

fn source_context() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("chapters/ch10")
}

/// Files 0644 and directories 0755, whatever the checkout's umask made
/// them: a layer keeps modes, and the digests shown are pinned.
fn same_modes(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_dir = path.is_dir();
        let mode = if is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        if is_dir {
            same_modes(&path)?;
        }
    }
    Ok(())
}

fn row<const N: usize>(cells: [impl Into<String>; N]) -> Vec<String> {
    cells.into_iter().map(Into::into).collect()
}

/// An instruction on one line of the table.
fn short(text: &str) -> String {
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(44) {
        Some((at, _)) => format!("{}…", &one[..at]),
        None => one,
    }
}

fn take(output: &Mutex<String>) -> String {
    std::mem::take(&mut *output.lock().unwrap_or_else(|e| e.into_inner()))
}

fn describe(entry: &UpperEntry) -> String {
    match entry {
        UpperEntry::Missing => "missing".into(),
        UpperEntry::Whiteout => "character device 0/0: a whiteout".into(),
        UpperEntry::OpaqueDir => "directory, opaque".into(),
        UpperEntry::Dir => "directory".into(),
        UpperEntry::File(text) => format!("file: {:?}", text.trim_end()),
    }
}

/// A layer's entries as `tar tvz` lists them: type, owner, path.
fn tar_entries(blob: &Path) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(blob)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut lines = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let header = entry.header();
        let kind = if header.entry_type().is_dir() {
            'd'
        } else {
            '-'
        };
        let (uid, gid) = (header.uid()?, header.gid()?);
        let path = entry.path()?.display().to_string();
        lines.push(format!("{kind} {uid}/{gid} {path}"));
    }
    Ok(lines)
}

/// Appends a line to a file of the context.
fn edit(path: &Path, line: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
    writeln!(file, "{line}")?;
    Ok(())
}

/// What every build of the chapter shares.
struct Builds<'a> {
    dirs: &'a LabDirs,
    store: &'a ImageStore,
    runner: &'a StepContainers<'a>,
    context: &'a Path,
    /// What the steps print; the chapter shows only step 3's.
    output: &'a Mutex<String>,
}

impl Builds<'_> {
    fn options(
        &self,
        file: &str,
        tag: &str,
        no_cache: bool,
    ) -> anyhow::Result<BuildOptions> {
        let text = std::fs::read_to_string(self.context.join(file))?;
        Ok(BuildOptions {
            dockerfile: build::parse(&text, file)?,
            context: BuildContext::open(self.context)
                .map_err(anyhow::Error::msg)?,
            tags: vec![Reference::parse(tag)?],
            build_args: Vec::new(),
            target: None,
            no_cache,
            platform: None,
            source_date_epoch: Some(EPOCH),
        })
    }

    fn run(
        &self,
        options: &BuildOptions,
        events: build::Events<'_>,
    ) -> anyhow::Result<Built> {
        let find = |name: &str| lab_images::find(self.dirs, self.store, name);
        let builder = Builder {
            store: self.store,
            runner: self.runner,
            events,
            images: Some(&find),
            cancel: None,
        };
        let built = builder.build(options);
        take(self.output);
        Ok(built?)
    }

    /// Builds `file` and shows each step: its layer, CACHED, or config only.
    fn show(
        &self,
        book: &Narrator,
        file: &str,
        tag: &str,
        no_cache: bool,
    ) -> anyhow::Result<Built> {
        let options = self.options(file, tag, no_cache)?;
        let events = Mutex::new(Vec::new());
        let sink = |e: BuildEvent| {
            events.lock().unwrap_or_else(|e| e.into_inner()).push(e)
        };
        let built = self.run(&options, &sink)?;
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut cached = false;
        for event in events.into_inner().unwrap_or_default() {
            let mark = if cached { "CACHED" } else { "ran" };
            match event {
                BuildEvent::Step {
                    number,
                    total,
                    instruction,
                    ..
                } => {
                    let what = if number == 1 {
                        "the base"
                    } else {
                        "config only"
                    };
                    rows.push(row([
                        format!("[{number}/{total}]"),
                        short(&instruction),
                        what.into(),
                    ]));
                    cached = false;
                }
                BuildEvent::Cached { .. } => cached = true,
                BuildEvent::Layer { digest, size, .. } => {
                    let hex = digest.trim_start_matches("sha256:");
                    if let Some(last) = rows.last_mut() {
                        last[2] =
                            format!("{mark}, layer {} ({size} B)", &hex[..12]);
                    }
                }
                BuildEvent::NoLayer { .. } => {
                    if let Some(last) = rows.last_mut() {
                        last[2] = format!("{mark}, no change: no layer");
                    }
                }
                _ => {}
            }
        }
        book.table(&rows);
        Ok(built)
    }

    /// One stage of `file` alone (`--target`), shown by nothing.
    fn target(&self, file: &str, stage: &str) -> anyhow::Result<Built> {
        let mut options =
            self.options(file, &format!("lab/ch10-{stage}"), true)?;
        options.target = Some(stage.to_string());
        self.run(&options, &|_| {})
    }
}

/// How many layers, bottom first, two images have in common.
fn shared_layers(a: &Built, b: &Built) -> usize {
    a.layers
        .iter()
        .zip(&b.layers)
        .take_while(|(x, y)| x == y)
        .count()
}

/// KiB the layers above the base add (unpacked).
fn added_kib(built: &Built, base_layers: usize) -> u64 {
    let bytes: u64 = built
        .layers
        .iter()
        .skip(base_layers)
        .map(|l| l.unpacked_size)
        .sum();
    bytes.div_ceil(1024)
}

/// The lab's cgroups of build steps (`build-PID-N`), in every hierarchy.
fn step_cgroups() -> Vec<PathBuf> {
    let planned = Cgroup::planned_freezable("any").unwrap_or_default();
    planned
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir.parent()?).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("build-"))
        })
        .collect()
}

/// What the narrator says before each step: its title, the primitive it
/// applies, the shell command that does the same, and what to look at.
mod narration {
    use container_lab::lab::narrate::Step;

    pub fn parse() -> Step {
        Step::new("parse the Dockerfile")
            .primitive("text to stages of typed instructions, with their lines")
            .shell("grep -v '^#' Dockerfile")
            .look(
                "FROM starts a stage; RUN, COPY and WORKDIR change files and make \
                 layers; ENV, LABEL and CMD only change the image's config",
            )
    }

    pub fn from() -> Step {
        Step::new("FROM: the base image's layers")
            .primitive("an image in the OCI store: a config and its layers, unpacked once")
            .shell("cat index.json; ls layers/sha256/")
            .look("each layer is a directory the next step stacks overlay on")
    }

    pub fn run() -> Step {
        Step::new("RUN by hand: a container on the layers, a fresh upper")
            .primitive(
                "clone(NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET), \
                 mount(\"overlay\", lowerdir=LAYERS,upperdir=UPPER), pivot_root",
            )
            .shell(
                "mount -t overlay overlay -o lowerdir=L,upperdir=upper,workdir=work \
                 merged; chroot merged sh -c '…'",
            )
            .look(
                "the command's new file lands in the upper directory; its delete \
                 leaves a whiteout there; the layers below are untouched",
            )
    }

    pub fn layer() -> Step {
        Step::new("the upper directory as a layer: a tar and its digests")
            .primitive(
                "a tar of the upper directory, whiteouts as .wh. files; sha256 of \
                 the tar and of its gzip",
            )
            .shell(
                "tar --xattrs --numeric-owner --sort=name -C upper -cf layer.tar . \
                 && sha256sum layer.tar && gzip -n layer.tar && sha256sum layer.tar.gz",
            )
            .look(
                "the deleted file is an empty .wh.hostname entry; the diff_id names \
                 the tar, the digest the blob a registry stores",
            )
    }

    pub fn build() -> Step {
        Step::new("build the Dockerfile: one snapshot per step")
            .primitive("each step run on the layers of the ones before it")
            .shell("docker build --no-cache -t lab/ch10-app chapters/ch10")
            .look("the steps that change files make layers; the others, config only")
    }

    pub fn cached() -> Step {
        Step::new("build it again: every step from the cache")
            .primitive(
                "a step's key: its parent's key, its text, and for COPY the \
                 digest of its sources",
            )
            .shell("docker build -t lab/ch10-app chapters/ch10")
            .look("every layer step says CACHED, and the image is the same")
    }

    pub fn edit() -> Step {
        Step::new("edit one source file: the steps from its COPY run again")
            .primitive("the COPY's source digest changes, so its key and all after it")
            .shell("echo \"echo 'version 2'\" >> src/main.sh; docker build -t lab/ch10-app .")
            .look(
                "the dependency steps stay CACHED; COPY src/ and the RUN after it \
                 run again",
            )
    }

    pub fn unordered() -> Step {
        Step::new("the wrong order: copy everything, then install")
            .primitive("the same steps, with COPY . before the install")
            .shell(
                "docker build -f Dockerfile.unordered -t lab/ch10-unordered .",
            )
            .look("now the same edit runs the install step again too")
    }

    pub fn multi_stage() -> Step {
        Step::new("multi-stage: ship the app, not the toolchain")
            .primitive("COPY --from a stage: only the final stage's layers are the image")
            .shell("docker build -f Dockerfile.multi [--target toolchain] .")
            .look("the shipped image has one small layer over busybox")
    }

    pub fn cleanup() -> Step {
        Step::new("what a build leaves: images and their cache")
            .primitive("every step container gone with its mount namespace and cgroup")
            .shell("findmnt; ls /sys/fs/cgroup/…/container-lab/")
            .look("nothing mounted and no cgroup; the images stay for mini-docker")
    }
}
