//! The builder: a parsed Dockerfile executed stage by stage into an image
//! in the store, one layer per step that changes files.
//!
//! - Only the stages the target needs are built (FROM a stage, COPY
//!   --from a stage), in file order.
//! - Metadata steps (ENV, CMD, LABEL, …) change the config and add no
//!   layer; RUN runs through a [`StepRunner`] on an overlay of the parent's
//!   layers; COPY, ADD and WORKDIR write a fresh upper directory directly.
//! - A step's key is its parent's key and what it does (the instruction
//!   expanded, the build args in scope, for COPY/ADD the digest of its
//!   sources); a key in the cache whose layer is still stored is reused.
//! - Everything a step writes goes to the store's `tmp/` first; a failed or
//!   interrupted step leaves nothing else, and the cache keeps the steps
//!   before it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::cache::{self, Cache, CachedLayer, Entry};
use super::config::{go_quote_list, ImageConfig};
use super::context::{self, BuildContext, Source, Sources};
use super::copy::{self, archive_kind, Archive, CopyOptions, Upper};
use super::diff;
use super::dockerfile::{Command, CopySpec, Dockerfile, Instruction, Kind, Stage};
use super::error::{BuildError, Result};
use super::events::{BuildEvent, Events};
use super::runner::{RunStep, StepRunner};
use super::tree::{DirTree, EntryKind, MergedView, Tree};
use super::users;
use super::words;
use crate::engine::images::{
    Compression, Image, ImageError, ImageStore, Platform, Reference, StoredLayer, UnpackLimits,
};
use crate::kernel::overlay::{Layer, OverlayDirs};

/// Docker's default PATH, for RUN when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to build (`docker build`'s flags).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub dockerfile: Dockerfile,
    pub context: BuildContext,
    /// `-t`, every one.
    pub tags: Vec<Reference>,
    /// `--build-arg K=V`, in order.
    pub build_args: Vec<(String, String)>,
    /// `--target STAGE`; the last stage when None.
    pub target: Option<String>,
    pub no_cache: bool,
    /// `--platform`: the default for FROM lines without their own.
    pub platform: Option<Platform>,
    /// SOURCE_DATE_EPOCH: every time in the image is at most this.
    pub source_date_epoch: Option<i64>,
}

/// Finds an image that FROM or COPY --from names.
pub type ImageResolver<'a> = &'a (dyn Fn(&str) -> std::result::Result<Image, ImageError> + Sync);

pub struct Builder<'a> {
    pub store: &'a ImageStore,
    pub runner: &'a dyn StepRunner,
    pub events: Events<'a>,
    /// How FROM and COPY --from find images; the store's `find` when None
    /// (a front end may pull what is missing).
    pub images: Option<ImageResolver<'a>>,
    /// Set (by a signal handler) to stop at the next step.
    pub cancel: Option<&'a AtomicBool>,
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image id: the config's digest.
    pub id: String,
    pub manifest_digest: String,
    pub tags: Vec<Reference>,
    /// The image's layers, bottom first.
    pub layers: Vec<StoredLayer>,
    /// The config blob as stored.
    pub config: Vec<u8>,
}

/// A stage as far as it is built.
#[derive(Debug, Clone)]
struct State {
    layers: Vec<StoredLayer>,
    config: ImageConfig,
    /// ARGs declared in this stage, with their values (None: unset).
    args: Vec<(String, Option<String>)>,
    shell: Vec<String>,
    /// The last step's cache key.
    chain: String,
    /// Whether this stage set CMD (ENTRYPOINT then keeps it).
    cmd_set: bool,
    last_created: Option<String>,
}

impl State {
    fn lookup(&self, name: &str) -> Option<String> {
        // ENV wins over ARG of the same name, as in Docker.
        self.config.env_var(name).or_else(|| {
            self.args
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
        })
    }

    /// Lower directories, top first.
    fn lowers(&self) -> Vec<PathBuf> {
        self.layers.iter().rev().map(|l| l.dir.clone()).collect()
    }

    fn view(&self) -> MergedView {
        MergedView {
            layers: self.lowers(),
        }
    }

    fn workdir(&self) -> String {
        self.config.get_str("WorkingDir").unwrap_or("/").to_string()
    }

    /// The environment of a RUN: Env, then the args Env does not set.
    fn run_env(&self) -> Vec<String> {
        let mut env = self.config.env();
        if self.config.env_var("PATH").is_none() {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        for (k, v) in self.args_in_scope() {
            if self.config.env_var(&k).is_none() {
                env.push(format!("{k}={v}"));
            }
        }
        env
    }

    fn args_in_scope(&self) -> BTreeMap<String, String> {
        self.args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect()
    }
}

/// The automatic platform args BuildKit defines in the global scope.
fn platform_args(target: &Platform) -> Vec<(String, String)> {
    let host = Platform::host();
    let full = |p: &Platform| match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    };
    vec![
        ("TARGETPLATFORM".into(), full(target)),
        ("TARGETOS".into(), target.os.clone()),
        ("TARGETARCH".into(), target.architecture.clone()),
        (
            "TARGETVARIANT".into(),
            target.variant.clone().unwrap_or_default(),
        ),
        ("BUILDPLATFORM".into(), full(&host)),
        ("BUILDOS".into(), host.os.clone()),
        ("BUILDARCH".into(), host.architecture.clone()),
        (
            "BUILDVARIANT".into(),
            host.variant.clone().unwrap_or_default(),
        ),
    ]
}

/// Removes a step's scratch directory only when nothing is mounted
/// beneath it: deleting through a mount would delete what it shows.
struct RunScratch(Option<crate::engine::images::ScratchDir>);

impl Drop for RunScratch {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            if crate::kernel::mounts::has_mounts_under(dir.path()).unwrap_or(true) {
                std::mem::forget(dir);
            }
        }
    }
}

struct Run<'a, 'b> {
    b: &'b Builder<'a>,
    o: &'b BuildOptions,
    df: &'b Dockerfile,
    cache: Cache<'a>,
    /// The global scope: meta ARGs and the automatic ones.
    meta: HashMap<String, String>,
    /// `--build-arg`s some ARG consumed.
    used_args: Mutex<BTreeSet<String>>,
    epoch: Option<i64>,
    platform: Platform,
}

impl Builder<'_> {
    /// Builds the image the options describe and tags it.
    pub fn build(&self, options: &BuildOptions) -> Result<Built> {
        let df = &options.dockerfile;
        for warning in &df.warnings {
            (self.events)(BuildEvent::Warning(warning.clone()));
        }
        let epoch = options.source_date_epoch.or_else(|| {
            options
                .build_args
                .iter()
                .rev()
                .find(|(k, _)| k == "SOURCE_DATE_EPOCH")
                .and_then(|(_, v)| v.parse().ok())
        });
        let platform = options.platform.clone().unwrap_or_else(Platform::host);
        let mut run = Run {
            b: self,
            o: options,
            df,
            cache: Cache::open(self.store)?,
            meta: HashMap::new(),
            used_args: Mutex::new(BTreeSet::new()),
            epoch,
            platform,
        };
        run.meta_args()?;
        let target = run.target()?;
        let needed = run.needed(target);
        let mut states: Vec<Option<State>> = vec![None; df.stages.len()];
        for index in 0..=target {
            if needed.contains(&index) {
                states[index] = Some(run.stage(index, &states)?);
            }
        }
        let state = states[target].take().unwrap_or_else(|| unreachable!());
        run.warn_unused_args();
        run.finish(state)
    }
}

impl<'a> Run<'a, '_> {
    fn error(&self, line: usize, message: impl Into<String>) -> BuildError {
        BuildError::Step {
            file: self.df.file.clone(),
            line,
            message: message.into(),
        }
    }

    fn check_cancel(&self) -> Result<()> {
        // Ctrl-C, where the front end installed kernel::signals' handler.
        if crate::kernel::signals::interrupted().is_some() {
            return Err(BuildError::Interrupted);
        }
        match self.b.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(BuildError::Interrupted),
            _ => Ok(()),
        }
    }

    fn now(&self) -> String {
        let time = match self.epoch {
            Some(e) => SystemTime::UNIX_EPOCH + Duration::from_secs(e.max(0) as u64),
            None => SystemTime::now(),
        };
        crate::support::time::format_rfc3339(time)
    }

    fn build_arg(&self, name: &str) -> Option<String> {
        let value = self
            .o
            .build_args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone());
        if value.is_some() {
            self.used_args
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string());
        }
        value
    }

    fn warn_unused_args(&self) {
        let used = self.used_args.lock().unwrap_or_else(|e| e.into_inner());
        let unused: BTreeSet<&str> = self
            .o
            .build_args
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !used.contains(*k) && *k != "SOURCE_DATE_EPOCH")
            .collect();
        if !unused.is_empty() {
            (self.b.events)(BuildEvent::Warning(format!(
                "[Warning] One or more build-args [{}] were not consumed",
                unused.into_iter().collect::<Vec<_>>().join(" ")
            )));
        }
    }

    fn expand_meta(&self, word: &str, line: usize) -> Result<String> {
        let lookup = |name: &str| self.meta.get(name).cloned();
        words::expand(word, self.df.escape, &lookup)
            .map(|e| e.value)
            .map_err(|m| self.error(line, m))
    }

    fn expand(&self, state: &State, word: &str, line: usize) -> Result<words::Expanded> {
        let lookup = |name: &str| state.lookup(name);
        words::expand(word, self.df.escape, &lookup).map_err(|m| self.error(line, m))
    }

    fn meta_args(&mut self) -> Result<()> {
        for (k, v) in platform_args(&self.platform) {
            self.meta.insert(k, v);
        }
        for instruction in &self.df.meta_args {
            let Kind::Arg(pairs) = &instruction.kind else {
                continue;
            };
            for (key, default) in pairs {
                let key = self.expand_meta(key, instruction.line)?;
                let default = match default {
                    Some(d) => Some(self.expand_meta(d, instruction.line)?),
                    None => None,
                };
                if let Some(value) = self.build_arg(&key).or(default) {
                    self.meta.insert(key, value);
                } else {
                    self.meta.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn stage_index(&self, name: &str, before: usize) -> Option<usize> {
        self.df.stages[..before].iter().position(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    }

    fn target(&self) -> Result<usize> {
        match &self.o.target {
            None => Ok(self.df.stages.len() - 1),
            Some(t) => self.stage_index(t, self.df.stages.len()).ok_or_else(|| {
                BuildError::Usage(format!("target stage \"{t}\" could not be found"))
            }),
        }
    }

    /// The stages `target` needs, itself included.
    fn needed(&self, target: usize) -> BTreeSet<usize> {
        let mut needed = BTreeSet::new();
        let mut pending = vec![target];
        while let Some(i) = pending.pop() {
            if !needed.insert(i) {
                continue;
            }
            let stage = &self.df.stages[i];
            let base = self
                .expand_meta(stage.base(), stage.from.line)
                .unwrap_or_default();
            if let Some(j) = self.stage_index(&base, i) {
                pending.push(j);
            }
            for instruction in &stage.instructions {
                if let Kind::Copy(CopySpec { from: Some(f), .. }) = &instruction.kind {
                    let f = self.expand_meta(f, instruction.line).unwrap_or_default();
                    match f.parse::<usize>() {
                        Ok(j) if j < i => pending.push(j),
                        _ => pending.extend(self.stage_index(&f, i)),
                    }
                }
            }
        }
        needed
    }

    fn resolve_image(&self, name: &str, line: usize) -> Result<Image> {
        let found = match self.b.images {
            Some(resolve) => resolve(name),
            None => self.b.store.find(name),
        };
        found.map_err(|e| match e {
            ImageError::NotFound { .. } => self.error(
                line,
                format!("{name}: no image {name} in the store; pull it first"),
            ),
            other => self.error(line, other.to_string()),
        })
    }

    fn stage(&self, index: usize, states: &[Option<State>]) -> Result<State> {
        let stage: &Stage = &self.df.stages[index];
        let Kind::From {
            image, platform, ..
        } = &stage.from.kind
        else {
            unreachable!("a stage starts with FROM");
        };
        let line = stage.from.line;
        let base = self.expand_meta(image, line)?;
        if base.is_empty() {
            return Err(self.error(line, format!("base name ({image}) should not be blank")));
        }
        let platform = match platform {
            Some(p) => Platform::parse(&self.expand_meta(p, line)?)
                .map_err(|e| self.error(line, e.to_string()))?,
            None => self.platform.clone(),
        };
        let total = stage.instructions.len() + 1;
        (self.b.events)(BuildEvent::Stage {
            stage: index,
            name: stage.name.clone(),
            base: base.clone(),
        });
        (self.b.events)(BuildEvent::Step {
            stage: index,
            number: 1,
            total,
            instruction: stage.from.original.clone(),
        });
        let root = format!("platform {platform:?} epoch {:?} from ", self.epoch);
        let mut state = if let Some(j) = self.stage_index(&base, index) {
            let mut s = states[j]
                .clone()
                .ok_or_else(|| self.error(line, format!("stage {base} was not built")))?;
            s.args.clear();
            s
        } else if base.eq_ignore_ascii_case("scratch") {
            State {
                layers: Vec::new(),
                config: ImageConfig::scratch(&platform),
                args: Vec::new(),
                shell: vec!["/bin/sh".into(), "-c".into()],
                chain: cache::key("", &format!("{root}scratch")),
                cmd_set: false,
                last_created: None,
            }
        } else {
            let image = self.resolve_image(&base, line)?;
            let bytes = self.b.store.config_bytes(&image.config_digest)?;
            let config = ImageConfig::from_bytes(&bytes).map_err(|m| self.error(line, m))?;
            let have = config.platform();
            if stage_platform_given(stage, &self.o.platform)
                && (have.os != platform.os || have.architecture != platform.architecture)
            {
                return Err(self.error(
                    line,
                    format!(
                        "image {base} is for {}/{}, not the {}/{} asked for",
                        have.os, have.architecture, platform.os, platform.architecture
                    ),
                ));
            }
            let shell = config
                .get("Shell")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            State {
                layers: image.layers.clone(),
                config,
                args: Vec::new(),
                shell,
                chain: cache::key("", &format!("{root}{}", image.config_digest)),
                cmd_set: false,
                last_created: None,
            }
        };
        for (n, instruction) in stage.instructions.iter().enumerate() {
            self.check_cancel()?;
            let number = n + 2;
            (self.b.events)(BuildEvent::Step {
                stage: index,
                number,
                total,
                instruction: instruction.original.clone(),
            });
            self.instruction(&mut state, instruction, index, number, states)?;
        }
        Ok(state)
    }

    /// Takes a metadata step's time from the cache (so that a cached
    /// rebuild gives the same config) or records it.
    fn meta_step(&self, state: &mut State, key_text: &str, created_by: &str) -> Result<()> {
        let key = cache::key(&state.chain, key_text);
        let created = match self.cache.get(&key).filter(|_| !self.o.no_cache) {
            Some((entry, None)) if entry.layer.is_none() => entry.created,
            _ => {
                let created = self.now();
                self.cache.put(
                    &key,
                    &Entry {
                        layer: None,
                        created: created.clone(),
                    },
                )?;
                created
            }
        };
        state.chain = key;
        state.config.push_history(Some(&created), created_by, true);
        state.last_created = Some(created);
        Ok(())
    }

    // ANCHOR: layer_step
    /// A step that may make a layer: from the cache, or by running `exec`
    /// on a scratch directory; `exec` returns the upper directory.
    #[allow(clippy::too_many_arguments)]
    fn layer_step(
        &self,
        state: &mut State,
        stage: usize,
        number: usize,
        key_text: &str,
        created_by: &str,
        exec: &mut dyn FnMut(&std::path::Path) -> Result<PathBuf>,
    ) -> Result<()> {
        let key = cache::key(&state.chain, key_text);
        let hit = if self.o.no_cache {
            None
        } else {
            self.cache.get(&key)
        };
        let (created, layer) = match hit {
            Some((entry, layer)) => {
                (self.b.events)(BuildEvent::Cached { stage, number });
                (entry.created, layer)
            }
            None => {
                if !nix::unistd::geteuid().is_root() {
                    return Err(BuildError::NeedsRoot);
                }
                // Removed afterwards, unless something is still mounted in it.
                let scratch = RunScratch(Some(self.b.store.scratch_dir("build-step")?));
                let dir = scratch
                    .0
                    .as_ref()
                    .map(|s| s.path().to_path_buf())
                    .unwrap_or_default();
                let upper = exec(&dir)?;
                self.check_cancel()?;
                let made = diff::layer_from_upper(self.b.store, &upper, self.epoch)?;
                drop(scratch);
                let layer = made.map(|(l, _)| l);
                let created = self.now();
                self.cache.put(
                    &key,
                    &Entry {
                        layer: layer.as_ref().map(CachedLayer::of),
                        created: created.clone(),
                    },
                )?;
                (created, layer)
            }
        };
        match &layer {
            Some(l) => (self.b.events)(BuildEvent::Layer {
                stage,
                number,
                diff_id: l.diff_id.clone(),
                digest: l.digest.clone(),
                size: l.unpacked_size,
            }),
            None => (self.b.events)(BuildEvent::NoLayer { stage, number }),
        }
        state
            .config
            .push_history(Some(&created), created_by, layer.is_none());
        state.layers.extend(layer);
        state.chain = key;
        state.last_created = Some(created);
        Ok(())
    }
    // ANCHOR_END: layer_step

    fn instruction(
        &self,
        state: &mut State,
        ins: &Instruction,
        stage: usize,
        number: usize,
        states: &[Option<State>],
    ) -> Result<()> {
        let line = ins.line;
        match &ins.kind {
            Kind::From { .. } => unreachable!("FROM starts a stage"),
            Kind::Env(pairs) | Kind::Label(pairs) => {
                let mut done = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(state, k, line)?.value;
                    let v = self.expand(state, v, line)?.value;
                    done.push((k, v));
                }
                let text: Vec<String> = done.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let is_env = matches!(ins.kind, Kind::Env(_));
                for (k, v) in &done {
                    if is_env {
                        state.config.set_env(k, v);
                    } else {
                        state.config.insert_into("Labels", k, json!(v));
                    }
                }
                let created_by = format!("{} {}", ins.kind.name(), text.join(" "));
                self.meta_step(state, &created_by, &created_by)
            }
            Kind::Arg(pairs) => {
                let mut text = Vec::new();
                for (k, default) in pairs {
                    let k = self.expand(state, k, line)?.value;
                    let default = match default {
                        Some(d) => Some(self.expand(state, d, line)?.value),
                        None => None,
                    };
                    let value = self
                        .build_arg(&k)
                        .or(default)
                        .or_else(|| self.meta.get(&k).cloned());
                    text.push(match &value {
                        Some(v) => format!("{k}={v}"),
                        None => k.clone(),
                    });
                    state.args.retain(|(name, _)| *name != k);
                    state.args.push((k, value));
                }
                let created_by = format!("ARG {}", text.join(" "));
                self.meta_step(state, &created_by, &created_by)
            }
            Kind::User(user) => {
                let user = self.expand(state, user, line)?.value;
                state.config.set("User", json!(user));
                let text = format!("USER {user}");
                self.meta_step(state, &text, &text)
            }
            Kind::Cmd(command) => {
                let argv = self.argv(state, command);
                state.config.set("Cmd", json!(argv));
                state.cmd_set = true;
                let text = format!("CMD {}", go_quote_list(&argv));
                self.meta_step(state, &text, &text)
            }
            Kind::Entrypoint(command) => {
                let argv = match command {
                    Command::Shell(s) if s.is_empty() => Vec::new(),
                    c => self.argv(state, c),
                };
                state.config.set(
                    "Entrypoint",
                    if argv.is_empty() {
                        Value::Null
                    } else {
                        json!(argv)
                    },
                );
                if !state.cmd_set {
                    state.config.set("Cmd", Value::Null);
                }
                let text = format!("ENTRYPOINT {}", go_quote_list(&argv));
                self.meta_step(state, &text, &text)
            }
            Kind::Shell(shell) => {
                state.shell = shell.clone();
                state.config.set("Shell", json!(shell));
                let text = format!("SHELL {}", go_quote_list(shell));
                self.meta_step(state, &text, &text)
            }
            Kind::Expose(ports) => {
                let mut keys = Vec::new();
                for port in ports {
                    for word in self.expand(state, port, line)?.words {
                        keys.extend(expose_keys(&word).map_err(|m| self.error(line, m))?);
                    }
                }
                for key in &keys {
                    state.config.insert_into("ExposedPorts", key, json!({}));
                }
                let text = format!("EXPOSE {}", keys.join(" "));
                self.meta_step(state, &text, &text)
            }
            Kind::Volume(volumes) => {
                let mut done = Vec::new();
                for v in volumes {
                    let v = self.expand(state, v, line)?.value;
                    if v.trim().is_empty() {
                        return Err(self.error(line, "VOLUME specified can not be an empty string"));
                    }
                    state.config.insert_into("Volumes", &v, json!({}));
                    done.push(v);
                }
                let text = format!("VOLUME [{}]", done.join(" "));
                self.meta_step(state, &text, &text)
            }
            Kind::StopSignal(signal) => {
                let signal = self.expand(state, signal, line)?.value;
                if !valid_signal(&signal) {
                    return Err(self.error(line, format!("Invalid signal: {signal}")));
                }
                state.config.set("StopSignal", json!(signal));
                let text = format!("STOPSIGNAL {signal}");
                self.meta_step(state, &text, &text)
            }
            Kind::Maintainer(who) => {
                state.config.set_root("author", json!(who));
                let text = format!("MAINTAINER {who}");
                self.meta_step(state, &text, &text)
            }
            Kind::Healthcheck(h) => {
                let mut value = json!({"Test": h.test});
                for (field, n) in [
                    ("Interval", h.interval),
                    ("Timeout", h.timeout),
                    ("StartPeriod", h.start_period),
                    ("Retries", h.retries),
                ] {
                    if n != 0 {
                        value[field] = json!(n);
                    }
                }
                state.config.set("Healthcheck", value);
                let text = format!("HEALTHCHECK {}", go_quote_list(&h.test));
                self.meta_step(state, &text, &text)
            }
            Kind::Onbuild(expression) => {
                let mut list: Vec<Value> = state
                    .config
                    .get("OnBuild")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                list.push(json!(expression));
                state.config.set("OnBuild", Value::Array(list));
                let text = format!("ONBUILD {expression}");
                self.meta_step(state, &text, &text)
            }
            Kind::Workdir(dir) => {
                let dir = self.expand(state, dir, line)?.value;
                let path = absolute(&state.workdir(), &dir);
                state.config.set("WorkingDir", json!(path));
                let user = state.config.get_str("User").unwrap_or("").to_string();
                let text = format!("WORKDIR {path}");
                let key = format!("{text} as {user}");
                let lowers = state.lowers();
                let view = state.view();
                let mut exec = |scratch: &std::path::Path| -> Result<PathBuf> {
                    let upper = scratch.join("upper");
                    std::fs::create_dir(&upper).map_err(super::error::io("create", &upper))?;
                    let owner = users::run_user(&view, &user)
                        .map(|u| (u.uid, u.gid))
                        .unwrap_or((0, 0));
                    Upper::new(&upper, &lowers)
                        .mkdir_all(&path, owner)
                        .map_err(|m| self.error(line, m))?;
                    Ok(upper)
                };
                self.layer_step(state, stage, number, &key, &text, &mut exec)
            }
            Kind::Run(command) => self.run(state, ins, command, stage, number),
            Kind::Copy(spec) | Kind::Add(spec) => {
                self.copy(state, ins, spec, stage, number, states)
            }
        }
    }

    fn argv(&self, state: &State, command: &Command) -> Vec<String> {
        match command {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut argv = state.shell.clone();
                argv.push(s.clone());
                argv
            }
        }
    }

    fn run(
        &self,
        state: &mut State,
        ins: &Instruction,
        command: &Command,
        stage: usize,
        number: usize,
    ) -> Result<()> {
        let argv = self.argv(state, command);
        let args = state.args_in_scope();
        let shown = argv.join(" ");
        let created_by = if args.is_empty() {
            format!("RUN {shown}")
        } else {
            let pairs: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("RUN |{} {} {shown}", pairs.len(), pairs.join(" "))
        };
        let key = json!({"run": argv, "args": args}).to_string();
        let env = state.run_env();
        let user = state.config.get_str("User").unwrap_or("").to_string();
        let workdir = state.workdir();
        let layers: Vec<Layer> = state
            .layers
            .iter()
            .map(|l| Layer {
                name: l.diff_id.clone(),
                path: l.dir.clone(),
            })
            .collect();
        let lowers = state.lowers();
        let line = ins.line;
        let mut exec = |scratch: &std::path::Path| -> Result<PathBuf> {
            let dirs = OverlayDirs::create(scratch).map_err(|e| self.error(line, e.to_string()))?;
            // The working directory exists before the command starts (the
            // runtime would make it): it is part of the step's layer.
            Upper::new(&dirs.upper, &lowers)
                .mkdir_all(&workdir, (0, 0))
                .map_err(|m| self.error(line, m))?;
            let status = self
                .b
                .runner
                .run(&RunStep {
                    layers: &layers,
                    dirs: &dirs,
                    argv: &argv,
                    env: &env,
                    user: &user,
                    workdir: &workdir,
                })
                .map_err(|e| match self.check_cancel() {
                    Err(interrupted) => interrupted,
                    Ok(()) => BuildError::Runner {
                        file: self.df.file.clone(),
                        line,
                        message: e.to_string(),
                    },
                })?;
            if crate::kernel::mounts::has_mounts_under(scratch).unwrap_or(true) {
                return Err(self.error(
                    line,
                    format!(
                        "the step runner left a mount beneath {}; it was not removed",
                        scratch.display()
                    ),
                ));
            }
            if !status.success() {
                use std::os::unix::process::ExitStatusExt;
                let code = status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                return Err(BuildError::RunFailed {
                    file: self.df.file.clone(),
                    line,
                    command: argv.join(" "),
                    code,
                });
            }
            Ok(dirs.upper.clone())
        };
        self.layer_step(state, stage, number, &key, &created_by, &mut exec)
    }

    #[allow(clippy::too_many_arguments)]
    fn copy(
        &self,
        state: &mut State,
        ins: &Instruction,
        spec: &CopySpec,
        stage: usize,
        number: usize,
        states: &[Option<State>],
    ) -> Result<()> {
        let line = ins.line;
        let what = ins.kind.name();
        let is_add = what == "ADD";
        let mut patterns = Vec::new();
        for s in &spec.sources {
            patterns.push(self.expand(state, s, line)?.value);
        }
        let dest_raw = self.expand(state, &spec.dest, line)?.value;
        let mut dest = absolute(&state.workdir(), &dest_raw);
        if (dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/."))
            && !dest.ends_with('/')
        {
            dest.push('/');
        }
        let chown = match &spec.chown {
            Some(c) => Some(self.expand(state, c, line)?.value).filter(|c| !c.is_empty()),
            None => None,
        };
        let chmod = match &spec.chmod {
            Some(c) => Some(
                copy::parse_chmod(&self.expand(state, c, line)?.value)
                    .map_err(|m| self.error(line, m))?,
            ),
            None => None,
        };
        let from_name = match &spec.from {
            Some(f) => Some(self.expand(state, f, line)?.value),
            None => None,
        };
        if is_add {
            if let Some(url) = patterns.iter().find(|p| {
                p.starts_with("http://") || p.starts_with("https://") || p.starts_with("git@")
            }) {
                return Err(self.error(line, format!("ADD {url}: remote sources are not supported by this builder; download them in a RUN step")));
            }
        }
        // Where the sources come from.
        let source_view: Option<MergedView> = match &from_name {
            None => None,
            Some(name) => {
                let current = stage;
                let j = match name.parse::<usize>() {
                    Ok(j) if j < current => Some(j),
                    Ok(_) => {
                        return Err(self.error(line, format!("invalid from flag value {name}: refers to current build stage or a later one")))
                    }
                    Err(_) => self.stage_index(name, current),
                };
                Some(match j {
                    Some(j) => states[j]
                        .as_ref()
                        .ok_or_else(|| self.error(line, format!("stage {name} was not built")))?
                        .view(),
                    None => {
                        let image = self.resolve_image(name, line)?;
                        MergedView {
                            layers: image.lower_dirs(),
                        }
                    }
                })
            }
        };
        let (tree, ignore, in_context): (&dyn Tree, _, bool) = match &source_view {
            Some(view) => (view, None, false),
            None => (&self.o.context.tree, Some(&self.o.context.ignore), true),
        };
        let from = context::From {
            tree,
            ignore,
            context: in_context,
        };
        let sources = context::resolve(&from, &patterns, what).map_err(|m| self.error(line, m))?;
        let digest = context::digest(&from, &sources)
            .map_err(|e| self.error(line, format!("{what} failed: {e}")))?;
        let owner = match &chown {
            Some(c) => Some(users::chown(&state.view(), c).map_err(|m| self.error(line, m))?),
            None => None,
        };
        let mut flags = String::new();
        if let Some(f) = &from_name {
            flags.push_str(&format!("--from={f} "));
        }
        if let Some(c) = &chown {
            flags.push_str(&format!("--chown={c} "));
        }
        if let Some(c) = &spec.chmod {
            flags.push_str(&format!("--chmod={c} "));
        }
        let created_by = format!("{what} {flags}{} {dest}", patterns.join(" "));
        let key = json!({
            "op": what, "sources": patterns, "dest": dest, "owner": owner, "chmod": chmod,
            "from": from_name.is_some(), "digest": digest,
        })
        .to_string();
        let lowers = state.lowers();
        let keep_owner = !in_context;
        let mut exec = |scratch: &std::path::Path| -> Result<PathBuf> {
            let upper_dir = scratch.join("upper");
            std::fs::create_dir(&upper_dir).map_err(super::error::io("create", &upper_dir))?;
            let upper = Upper::new(&upper_dir, &lowers);
            let options = CopyOptions {
                owner,
                keep_owner,
                chmod,
            };
            if !is_add {
                upper
                    .copy(&from, &sources, &dest, options, what)
                    .map_err(|m| self.error(line, format!("{what} failed: {m}")))?;
                return Ok(upper_dir);
            }
            for source in &sources.sources {
                let one = Sources {
                    sources: vec![source.clone()],
                    many: sources.many,
                };
                if source.meta.kind == EntryKind::File
                    && self.add_archive(&upper, &from, source, &dest, line)?
                {
                    continue;
                }
                upper
                    .copy(&from, &one, &dest, options, what)
                    .map_err(|m| self.error(line, format!("{what} failed: {m}")))?;
            }
            Ok(upper_dir)
        };
        self.layer_step(state, stage, number, &key, &created_by, &mut exec)
    }

    /// ADD of a local tar (plain or gzip): unpacked, with the archive's
    /// owners, into the destination directory. False when the file is
    /// not an archive (it is then copied as it is).
    fn add_archive(
        &self,
        upper: &Upper,
        from: &context::From<'_>,
        source: &Source,
        dest: &str,
        line: usize,
    ) -> Result<bool> {
        use std::io::Read;
        let mut head = vec![0u8; 512];
        let mut file = from
            .tree
            .open(&source.rel)
            .map_err(|e| self.error(line, format!("ADD failed: {}: {e}", source.rel)))?;
        let n = file.read(&mut head).unwrap_or(0);
        head.truncate(n);
        let compression = match archive_kind(&head) {
            Archive::None => return Ok(false),
            Archive::Unsupported => {
                return Err(self.error(line, format!("ADD failed: {}: bzip2 and xz archives are not supported by this builder; use a plain or gzipped tar", source.rel)))
            }
            Archive::Tar => Compression::None,
            Archive::Gzip => Compression::Gzip,
        };
        let file = from
            .tree
            .open(&source.rel)
            .map_err(|e| self.error(line, format!("ADD failed: {}: {e}", source.rel)))?;
        let unpacked = self.b.store.unpack_to_temp(
            std::io::BufReader::new(file),
            compression,
            &source.rel,
            compression.oci_media_type(),
            UnpackLimits::default(),
        );
        let (temp, _) = match unpacked {
            Ok(done) => done,
            // A gzip file that holds no tar is copied as a file, as Docker.
            Err(_) if compression == Compression::Gzip => return Ok(false),
            Err(e) => return Err(self.error(line, format!("ADD failed: {}: {e}", source.rel))),
        };
        let tree = DirTree {
            root: temp.path.join("root"),
        };
        let root_meta = tree
            .lstat("")
            .map_err(|e| self.error(line, format!("ADD failed: {e}")))?
            .ok_or_else(|| self.error(line, "ADD failed: the archive unpacked to nothing"))?;
        let inner = context::From {
            tree: &tree,
            ignore: None,
            context: false,
        };
        let sources = Sources {
            sources: vec![Source {
                rel: String::new(),
                name: String::new(),
                meta: root_meta,
            }],
            many: false,
        };
        let dest = if dest.ends_with('/') {
            dest.to_string()
        } else {
            format!("{dest}/")
        };
        upper
            .copy(
                &inner,
                &sources,
                &dest,
                CopyOptions {
                    owner: None,
                    keep_owner: true,
                    chmod: None,
                },
                "ADD",
            )
            .map_err(|m| self.error(line, format!("ADD failed: {m}")))?;
        Ok(true)
    }

    fn finish(&self, state: State) -> Result<Built> {
        let diff_ids: Vec<String> = state.layers.iter().map(|l| l.diff_id.clone()).collect();
        let created = state.last_created.clone().unwrap_or_else(|| self.now());
        let config = state.config.to_bytes(&diff_ids, Some(&created));
        let written = self
            .b
            .store
            .write_image(&config, &state.layers, &self.o.tags)?;
        for reference in &self.o.tags {
            (self.b.events)(BuildEvent::Tagged {
                reference: reference.clone(),
            });
        }
        (self.b.events)(BuildEvent::Built {
            id: written.id.clone(),
        });
        Ok(Built {
            id: written.id,
            manifest_digest: written.manifest_digest,
            tags: self.o.tags.clone(),
            layers: state.layers,
            config,
        })
    }
}

fn stage_platform_given(stage: &Stage, global: &Option<Platform>) -> bool {
    matches!(
        &stage.from.kind,
        Kind::From {
            platform: Some(_),
            ..
        }
    ) || global.is_some()
}

/// `dir` made absolute against the working directory, cleaned.
pub fn absolute(workdir: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{workdir}/{dir}")
    };
    super::dockerignore::clean(&joined)
}

/// EXPOSE's `80`, `80/tcp`, `8000-8002/udp` as config keys.
fn expose_keys(spec: &str) -> std::result::Result<Vec<String>, String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let bad = || format!("invalid containerPort: {ports}");
    let (first, last) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if last < first {
        return Err(bad());
    }
    Ok((first..=last).map(|p| format!("{p}/{proto}")).collect())
}

/// STOPSIGNAL takes a signal name (with or without SIG) or number.
fn valid_signal(text: &str) -> bool {
    if let Ok(n) = text.parse::<i32>() {
        return (1..=64).contains(&n);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>().is_ok() || name.starts_with("SIGRTM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expose_and_signals_and_paths() {
        assert_eq!(expose_keys("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(expose_keys("53-54/UDP").unwrap(), vec!["53/udp", "54/udp"]);
        assert_eq!(expose_keys("x").unwrap_err(), "invalid containerPort: x");
        assert!(valid_signal("SIGTERM") && valid_signal("int") && valid_signal("9"));
        assert!(!valid_signal("SIGNOPE"));
        assert_eq!(absolute("/app", "src/../bin"), "/app/bin");
        assert_eq!(absolute("/app", "/etc"), "/etc");
        assert_eq!(absolute("/", "."), "/");
    }
}
