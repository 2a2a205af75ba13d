//! Builds checked from outside the builder: the layer tars read back from
//! the store's blobs (whiteouts, opaque directories, owners), the config
//! read from its blob, the cache's hit and miss pattern over a sequence of
//! edits, multi-stage targets, reproducible digests, what umoci and
//! skopeo make of the result, and that bad Dockerfiles and failing or
//! killed builds leave no mount, temporary or store entry behind.
//!
//! RUN steps go through `build_support/runner.rs`: a chroot into an
//! overlay mounted in the child's own mount namespace (not the lab's
//! runtime, which plugs in later). Building needs root (a layer keeps
//! owners); without it these tests are ignored with that reason, and the
//! parser, substitution and `.dockerignore` are tested by unit tests and
//! tests/dockerignore.rs.

mod common;
#[path = "build_support/runner.rs"]
mod runner;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use container_lab::engine::build::{
    self, BuildContext, BuildError, BuildEvent, BuildOptions, Builder, Built,
};
use container_lab::engine::images::{
    build_from_rootfs, ImageStore, Platform, Reference, RootfsImage, StoredLayer,
};
use runner::ChrootRunner;
use serde_json::Value;

const APPLETS: &[&str] = &[
    "sh", "ls", "cp", "rm", "mkdir", "cat", "sleep", "touch", "false", "true", "mv", "chmod", "id",
    "ln", "echo", "pwd",
];

/// A busybox root with a user `app`, a file to delete and a directory to
/// replace.
fn base_tree(root: &Path) {
    for d in ["bin", "etc", "tmp", "data", "dev"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy("/usr/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    fs::write(root.join("etc/motd"), "welcome\n").unwrap();
    fs::write(root.join("data/old"), "old\n").unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fix_times(root);
}

/// Every time in the tree set to one instant, children first, so that two
/// trees made apart give the same base layer.
fn fix_times(dir: &Path) {
    let when = nix::sys::time::TimeSpec::new(1_600_000_000, 0);
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            fix_times(&path);
        }
        nix::sys::stat::utimensat(
            None,
            &path,
            &when,
            &when,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    store: ImageStore,
}

impl Fixture {
    fn new() -> Fixture {
        common::assert_root();
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&dir.path().join("images")).unwrap();
        let tree = dir.path().join("base-tree");
        base_tree(&tree);
        build_from_rootfs(
            &store,
            &tree,
            &Reference::parse("lab/base").unwrap(),
            &RootfsImage {
                env: vec!["PATH=/bin".into()],
                cmd: vec!["sh".into()],
                created_by: "the test's busybox tree".into(),
                ..RootfsImage::default()
            },
        )
        .unwrap();
        fs::create_dir_all(dir.path().join("ctx")).unwrap();
        Fixture { dir, store }
    }

    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn file(&self, path: &str, body: &str) {
        let p = self.ctx().join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }

    fn options(&self, dockerfile: &str) -> BuildOptions {
        BuildOptions {
            dockerfile: build::parse(dockerfile, "Dockerfile").unwrap(),
            context: BuildContext::open(&self.ctx()).unwrap(),
            tags: vec![Reference::parse("lab/app").unwrap()],
            build_args: Vec::new(),
            target: None,
            no_cache: false,
            platform: None,
            source_date_epoch: None,
        }
    }

    fn build(&self, options: &BuildOptions) -> (Result<Built, BuildError>, Vec<BuildEvent>) {
        let events = Mutex::new(Vec::new());
        let sink = |e: BuildEvent| events.lock().unwrap().push(e);
        let runner = ChrootRunner { quiet: true };
        let builder = Builder {
            store: &self.store,
            runner: &runner,
            events: &sink,
            images: None,
            cancel: None,
        };
        let result = builder.build(options);
        (result, events.into_inner().unwrap())
    }

    fn ok(&self, dockerfile: &str) -> (Built, Vec<BuildEvent>) {
        let (result, events) = self.build(&self.options(dockerfile));
        (result.unwrap(), events)
    }

    /// The config as stored in its blob.
    fn config(&self, built: &Built) -> Value {
        let path = self.store.blob_path(&built.id).unwrap();
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }
}

/// Steps (by number) that came from the cache.
fn cached(events: &[BuildEvent]) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Cached { number, .. } => Some(*number),
            _ => None,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TarEntry {
    path: String,
    kind: tar::EntryType,
    uid: u64,
    gid: u64,
    mode: u32,
    body: String,
}

/// A layer's entries, read from its gzip blob in the store.
fn tar_of(store: &ImageStore, layer: &StoredLayer) -> Vec<TarEntry> {
    let file = fs::File::open(store.layer_blob(layer).unwrap()).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut body = String::new();
            e.read_to_string(&mut body).unwrap_or_default();
            let h = e.header();
            TarEntry {
                path: e.path().unwrap().display().to_string(),
                kind: h.entry_type(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mode: h.mode().unwrap(),
                body,
            }
        })
        .collect()
}

fn paths(entries: &[TarEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

fn entry<'a>(entries: &'a [TarEntry], path: &str) -> &'a TarEntry {
    entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} not in the layer: {:?}", paths(entries)))
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn every_instruction_lands_in_the_config_and_the_history() {
    let f = Fixture::new();
    f.file("hello.txt", "hello\n");
    let dockerfile = r#"# syntax=docker/dockerfile:1
ARG BASE=lab/base
FROM ${BASE} AS final
ARG GREETING=hi
ENV APP_HOME=/srv/app \
    MESSAGE="${GREETING:-none} there" UNSET=${NOPE:-fallback} ALT=${GREETING:+alt}
LABEL org.example.title="the app" version=1
WORKDIR $APP_HOME
COPY hello.txt .
RUN echo "$GREETING" > greeting
USER app
EXPOSE 8080 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-e", "-c"]
HEALTHCHECK --interval=30s --retries=2 CMD cat /srv/app/greeting
MAINTAINER lab@example.org
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD echo $MESSAGE
"#;
    let mut options = f.options(dockerfile);
    options.build_args = vec![("GREETING".into(), "hello".into())];
    options.tags.push(Reference::parse("lab/app:v1").unwrap());
    let (result, _) = f.build(&options);
    let built = result.unwrap();
    let config = f.config(&built);
    let c = &config["config"];
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        [
            "PATH=/bin",
            "APP_HOME=/srv/app",
            "MESSAGE=hello there",
            "UNSET=fallback",
            "ALT=alt"
        ]
    );
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["User"], "app");
    assert_eq!(c["Labels"]["org.example.title"], "the app");
    assert_eq!(c["Labels"]["version"], "1");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-e", "-c"]));
    assert_eq!(
        c["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "cat /srv/app/greeting"], "Interval": 30_000_000_000u64, "Retries": 2})
    );
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo child"]));
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    // CMD after ENTRYPOINT keeps its value; the shell form uses SHELL.
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["/bin/sh", "-e", "-c", "echo $MESSAGE"])
    );
    assert_eq!(config["author"], "lab@example.org");
    assert_eq!(config["os"], "linux");

    // One history entry per instruction after the base's; only WORKDIR,
    // COPY and RUN have layers.
    let history = config["history"].as_array().unwrap();
    let ours: Vec<(&str, bool)> = history[1..]
        .iter()
        .map(|h| (h["created_by"].as_str().unwrap(), h["empty_layer"] == true))
        .collect();
    assert_eq!(ours.len(), 16);
    assert_eq!(ours[0], ("ARG GREETING=hello", true));
    assert_eq!(ours[3], ("WORKDIR /srv/app", false));
    assert_eq!(ours[4], ("COPY hello.txt /srv/app/", false));
    assert_eq!(
        ours[5],
        (
            "RUN |1 GREETING=hello /bin/sh -c echo \"$GREETING\" > greeting",
            false
        )
    );
    assert!(ours.iter().filter(|(_, empty)| !empty).count() == 3);
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);
    assert_eq!(built.layers.len(), 4);
    // The RUN saw the build arg; the file is in its layer.
    let run_layer = tar_of(&f.store, &built.layers[3]);
    assert_eq!(entry(&run_layer, "srv/app/greeting").body, "hello\n");
    // Both tags name the image.
    for tag in ["lab/app", "lab/app:v1"] {
        assert_eq!(f.store.find(tag).unwrap().id(), built.id);
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn layers_hold_whiteouts_opaque_directories_and_the_owners_asked_for() {
    let f = Fixture::new();
    f.file("owned.txt", "mine\n");
    f.file("plain.txt", "plain\n");
    // A gzipped tar with its own owners, for ADD to unpack.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_uid(7);
    h.set_gid(8);
    tar.append_data(&mut h, "inside/hello.txt", &b"hello\n"[..])
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    fs::write(f.ctx().join("archive.tar.gz"), gz.finish().unwrap()).unwrap();
    let (built, _) = f.ok("FROM lab/base
RUN rm /etc/motd
RUN rm -rf /data && mkdir /data && echo new > /data/new
COPY --chown=app:app owned.txt /owned/
COPY --chown=10:20 --chmod=0640 owned.txt /numeric.txt
ADD archive.tar.gz /unpacked/
ADD plain.txt /plain.txt
RUN true
");
    // The base, six layers; the last RUN changed nothing and has none.
    assert_eq!(built.layers.len(), 7);
    let deleted = tar_of(&f.store, &built.layers[1]);
    assert_eq!(paths(&deleted), ["etc/", "etc/.wh.motd"]);
    let replaced = tar_of(&f.store, &built.layers[2]);
    assert_eq!(paths(&replaced), ["data/", "data/.wh..wh..opq", "data/new"]);
    let owned = tar_of(&f.store, &built.layers[3]);
    assert_eq!(paths(&owned), ["owned/", "owned/owned.txt"]);
    for e in &owned {
        assert_eq!((e.uid, e.gid), (1000, 1000), "{}", e.path);
    }
    let numeric = tar_of(&f.store, &built.layers[4]);
    let n = entry(&numeric, "numeric.txt");
    assert_eq!(
        (n.uid, n.gid, n.mode, n.body.as_str()),
        (10, 20, 0o640, "mine\n")
    );
    let unpacked = tar_of(&f.store, &built.layers[5]);
    let hello = entry(&unpacked, "unpacked/inside/hello.txt");
    assert_eq!(
        (hello.uid, hello.gid, hello.body.as_str()),
        (7, 8, "hello\n")
    );
    assert_eq!(entry(&unpacked, "unpacked/").uid, 0);
    let plain = tar_of(&f.store, &built.layers[6]);
    assert_eq!(entry(&plain, "plain.txt").body, "plain\n");
    let config = f.config(&built);
    let last = config["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["created_by"], "RUN /bin/sh -c true");
    assert_eq!(last["empty_layer"], true);

    // The store unpacked the layers with the whiteouts applied: the top
    // of the stack no longer has the deleted file or the old directory.
    let view = build::MergedView::of_layers(
        &built
            .layers
            .iter()
            .map(|l| l.dir.clone())
            .collect::<Vec<_>>(),
    );
    use build::Tree;
    assert!(view.lstat("etc/motd").unwrap().is_none());
    assert_eq!(view.list("data").unwrap(), vec!["new"]);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn the_cache_holds_until_the_first_changed_step() {
    let f = Fixture::new();
    f.file("deps.txt", "left-pad 1.0\n");
    f.file("src/main.txt", "v1\n");
    let dockerfile = "FROM lab/base
COPY deps.txt /app/
RUN cp /app/deps.txt /app/installed
COPY src/ /app/src/
RUN ls /app/src > /app/listing
CMD [\"sh\"]
";
    let (first, events) = f.ok(dockerfile);
    assert!(cached(&events).is_empty(), "{events:?}");
    let (second, events) = f.ok(dockerfile);
    assert_eq!(cached(&events), [2, 3, 4, 5]);
    assert_eq!(
        second.id, first.id,
        "a fully cached build is the same image"
    );

    // Edit the code: only the steps from its COPY on run again.
    f.file("src/main.txt", "v2\n");
    let (third, events) = f.ok(dockerfile);
    assert_eq!(cached(&events), [2, 3]);
    assert_eq!(third.layers[..3], first.layers[..3]);
    assert_ne!(third.layers[3], first.layers[3]);

    // A new file's mode counts too.
    fs::set_permissions(
        f.ctx().join("src/main.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let (_, events) = f.ok(dockerfile);
    assert_eq!(cached(&events), [2, 3]);

    // Edit the dependency list: everything after its COPY runs.
    f.file("deps.txt", "left-pad 2.0\n");
    let (_, events) = f.ok(dockerfile);
    assert!(cached(&events).is_empty());

    // Reorder: the unchanged prefix holds, the rest runs.
    let reordered = "FROM lab/base
COPY deps.txt /app/
RUN cp /app/deps.txt /app/installed
RUN echo extra > /app/extra
COPY src/ /app/src/
RUN ls /app/src > /app/listing
CMD [\"sh\"]
";
    let (_, events) = f.ok(reordered);
    assert_eq!(cached(&events), [2, 3]);

    // A build arg in scope is part of a RUN's key; --no-cache runs all.
    let with_arg = "FROM lab/base\nARG V\nRUN echo $V > /v\n";
    let mut options = f.options(with_arg);
    options.build_args = vec![("V".into(), "1".into())];
    assert!(cached(&f.build(&options).1).is_empty());
    assert_eq!(cached(&f.build(&options).1), [3]);
    options.build_args = vec![("V".into(), "2".into())];
    assert!(cached(&f.build(&options).1).is_empty());
    options.no_cache = true;
    let (result, events) = f.build(&options);
    result.unwrap();
    assert!(cached(&events).is_empty());
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn dockerignore_leaves_out_what_it_says() {
    let f = Fixture::new();
    for (path, body) in [
        ("app/main.txt", "main"),
        ("app/debug.log", "noise"),
        ("node_modules/x/index.js", "dep"),
        ("docs/a.md", "a"),
        ("docs/keep.md", "keep"),
        ("secret.env", "TOKEN=1"),
    ] {
        f.file(path, body);
    }
    f.file(
        ".dockerignore",
        "# not for the image\nnode_modules\n**/*.log\ndocs\n!docs/keep.md\n/secret.env\n",
    );
    let (built, _) = f.ok("FROM lab/base\nCOPY . /ctx/\n");
    let layer = tar_of(&f.store, built.layers.last().unwrap());
    let files: BTreeSet<&str> = layer
        .iter()
        .filter(|e| e.kind == tar::EntryType::Regular)
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(
        files,
        BTreeSet::from(["ctx/.dockerignore", "ctx/app/main.txt", "ctx/docs/keep.md"])
    );
    // Editing an ignored file does not break the cache.
    f.file("app/debug.log", "more noise");
    let (_, events) = f.ok("FROM lab/base\nCOPY . /ctx/\n");
    assert_eq!(cached(&events), [2]);
    // An ignored file named by COPY is missing, as Docker says.
    let (result, _) = f.build(&f.options("FROM lab/base\nCOPY secret.env /\n"));
    assert_eq!(
        result.unwrap_err().to_string(),
        "Dockerfile:2: COPY failed: file not found in build context or excluded by .dockerignore: stat secret.env: file does not exist"
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn multi_stage_builds_only_what_the_target_needs() {
    let f = Fixture::new();
    let dockerfile = "FROM lab/base AS builder
RUN echo built > /out && echo junk > /junk
FROM lab/base AS unused
RUN false
FROM scratch AS final
COPY --from=builder /out /out
COPY --from=0 /bin/busybox /bin/busybox
COPY --from=lab/base /etc/passwd /etc/passwd
";
    let (built, events) = f.ok(dockerfile);
    let stages: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Stage { stage, .. } => Some(*stage),
            _ => None,
        })
        .collect();
    assert_eq!(
        stages,
        [0, 2],
        "the unused stage (whose RUN fails) was not built"
    );
    assert_eq!(built.layers.len(), 3, "only the final stage's layers");
    let all: Vec<String> = built
        .layers
        .iter()
        .flat_map(|l| tar_of(&f.store, l))
        .map(|e| e.path)
        .collect();
    assert_eq!(all, ["out", "bin/", "bin/busybox", "etc/", "etc/passwd"]);
    let multi = built.layers.iter().map(|l| l.unpacked_size).sum::<u64>();

    let mut options = f.options(dockerfile);
    options.target = Some("builder".into());
    options.tags = vec![Reference::parse("lab/builder").unwrap()];
    let (result, _) = f.build(&options);
    let single = result.unwrap();
    assert_eq!(single.layers.len(), 2);
    let single_size = single.layers.iter().map(|l| l.unpacked_size).sum::<u64>();
    println!("single-stage {single_size} bytes, multi-stage {multi} bytes");
    assert!(multi < single_size + 4096);

    options.target = Some("nope".into());
    let (result, _) = f.build(&options);
    assert_eq!(
        result.unwrap_err().to_string(),
        "target stage \"nope\" could not be found"
    );

    // --platform: scratch takes it; an image of another platform is refused.
    let other = if Platform::host().architecture == "arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let mut options = f.options("FROM scratch\nLABEL a=b\n");
    options.platform = Some(Platform::parse(other).unwrap());
    let (result, _) = f.build(&options);
    let config = f.config(&result.unwrap());
    assert_eq!(config["architecture"], other.split('/').nth(1).unwrap());
    let mut options = f.options(&format!("FROM --platform={other} lab/base\n"));
    options.tags.clear();
    let (result, _) = f.build(&options);
    assert!(result.unwrap_err().to_string().contains("asked for"));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn source_date_epoch_makes_the_same_image_twice() {
    let digests = |_: usize| {
        let f = Fixture::new();
        f.file("a.txt", "same bytes\n");
        let mut options =
            f.options("FROM lab/base\nCOPY a.txt /a.txt\nRUN echo made > /made\nENV X=1\n");
        options.source_date_epoch = Some(1_700_000_000);
        let (result, _) = f.build(&options);
        let built = result.unwrap();
        let config = f.config(&built);
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        let layers: Vec<String> = built.layers.iter().map(|l| l.digest.clone()).collect();
        (built.id, layers)
    };
    // Two stores, their files written at different times: the same digests.
    let first = digests(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = digests(1);
    assert_eq!(first, second);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn umoci_and_skopeo_read_the_result() {
    common::registry::require_tools();
    let f = Fixture::new();
    f.file("hello", "from the lab\n");
    let (built, _) = f.ok("FROM lab/base\nCOPY hello /app/hello\nRUN cp /app/hello /app/copy\nLABEL made.by=lab\nCMD [\"cat\", \"/app/copy\"]\n");
    let store = f.store.root().display().to_string();
    let inspect = common::registry::run(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{store}:docker.io/lab/app:latest")),
    );
    let inspected: Value = serde_json::from_str(&inspect).unwrap();
    let digests: Vec<&str> = built.layers.iter().map(|l| l.digest.as_str()).collect();
    let theirs: Vec<&str> = inspected["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(theirs, digests);
    assert_eq!(inspected["Labels"]["made.by"], "lab");
    let config = common::registry::run(
        Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci:{store}:docker.io/lab/app:latest")),
    );
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["cat", "/app/copy"])
    );

    // Copied out of the store and unpacked by umoci, which checks every
    // digest on the way.
    let out = f.dir.path().join("out");
    common::registry::run(
        Command::new("skopeo")
            .args(["copy", "-q"])
            .arg(format!("oci:{store}:docker.io/lab/app:latest"))
            .arg(format!("oci:{}:app", out.display())),
    );
    let bundle = f.dir.path().join("bundle");
    common::registry::run(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:app", out.display()))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("app/copy")).unwrap(),
        "from the lab\n"
    );
    assert!(!rootfs.join("etc/.wh.motd").exists());
    assert!(rootfs.join("bin/busybox").is_file());
}

/// What a failed build must leave as it was.
fn leftovers(f: &Fixture) -> (Vec<String>, Vec<String>, usize) {
    let images: Vec<String> = f
        .store
        .list()
        .unwrap()
        .iter()
        .map(|i| format!("{} {}", i.reference.familiar(), i.id()))
        .collect();
    let tmp: Vec<String> = fs::read_dir(f.store.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let layers = fs::read_dir(f.store.root().join("layers/sha256"))
        .unwrap()
        .count();
    (images, tmp, layers)
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn bad_dockerfiles_and_failing_steps_say_so_and_leave_nothing() {
    let f = Fixture::new();
    f.file("a.txt", "a");
    let mounts = common::mount_points(&common::host_mountinfo());
    let (images, tmp, layers) = leftovers(&f);
    assert!(tmp.is_empty());

    let parse = |text: &str| build::parse(text, "Dockerfile").unwrap_err().to_string();
    assert_eq!(
        parse("FROM lab/base\nFOO bar\n"),
        "Dockerfile:2: unknown instruction: FOO"
    );
    assert_eq!(
        parse("RUN true\n"),
        "Dockerfile:1: no build stage in current context"
    );
    let run = |text: &str| f.build(&f.options(text)).0.unwrap_err().to_string();
    assert_eq!(
        run("FROM lab/base\nCOPY missing.txt /\n"),
        "Dockerfile:2: COPY failed: file not found in build context or excluded by .dockerignore: stat missing.txt: file does not exist"
    );
    assert_eq!(
        run("FROM lab/base\nCOPY ../outside /\n"),
        "Dockerfile:2: COPY failed: forbidden path outside the build context: ../outside ()"
    );
    assert_eq!(
        run("FROM lab/nothing\n"),
        "Dockerfile:1: lab/nothing: no image lab/nothing in the store; pull it first"
    );
    assert_eq!(
        run("FROM lab/base\nCOPY --chown=bob a.txt /\n"),
        "Dockerfile:2: unable to find user bob: no matching entries in passwd file"
    );
    assert_eq!(
        run("FROM lab/base\nENV A=${B:?is_required}\n"),
        "Dockerfile:2: failed to process \"${B:?is_required}\": B: is_required"
    );
    let (result, _) = f.build(&f.options("FROM lab/base\nRUN false\n"));
    match result.unwrap_err() {
        e @ BuildError::RunFailed {
            line: 2, code: 1, ..
        } => {
            assert_eq!(
                e.to_string(),
                "the command '/bin/sh -c false' returned a non-zero code: 1"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        run("FROM lab/base\nRUN [\"sh\", \"-c\", \"exit 3\"]\n"),
        "the command 'sh -c exit 3' returned a non-zero code: 3"
    );
    assert_eq!(
        run("FROM lab/base\nADD https://example.org/x.tar /\n"),
        "Dockerfile:2: ADD https://example.org/x.tar: remote sources are not supported by this builder; download them in a RUN step"
    );
    assert_eq!(leftovers(&f), (images.clone(), tmp.clone(), layers));
    assert_eq!(common::mount_points(&common::host_mountinfo()), mounts);

    // A failure after completed steps: they stay in the cache (and their
    // layers in the store), nothing else does; fixed, it resumes there.
    let broken = "FROM lab/base\nCOPY a.txt /a\nRUN cp /a /b\nRUN false\n";
    assert!(f.build(&f.options(broken)).0.is_err());
    let (images_after, tmp_after, layers_after) = leftovers(&f);
    assert_eq!((images_after, tmp_after), (images, tmp));
    assert_eq!(layers_after, layers + 2);
    let (_, events) = f.ok("FROM lab/base\nCOPY a.txt /a\nRUN cp /a /b\nRUN true\n");
    assert_eq!(cached(&events), [2, 3]);
    assert_eq!(common::mount_points(&common::host_mountinfo()), mounts);
}

/// Run by the test below in a child process of its own, which it kills.
#[test]
#[ignore = "a helper: run by an_interrupted_build_leaves_nothing_and_keeps_what_completed"]
fn interrupted_build_child() {
    let Some(dir) = std::env::var_os("LAB_BUILD_CHILD_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let store = ImageStore::open(&dir.join("images")).unwrap();
    let events = |e: BuildEvent| println!("event {e:?}");
    let runner = ChrootRunner { quiet: false };
    let builder = Builder {
        store: &store,
        runner: &runner,
        events: &events,
        images: None,
        cancel: None,
    };
    let text = fs::read_to_string(dir.join("Dockerfile")).unwrap();
    let options = BuildOptions {
        dockerfile: build::parse(&text, "Dockerfile").unwrap(),
        context: BuildContext::open(&dir.join("ctx")).unwrap(),
        tags: vec![Reference::parse("lab/killed").unwrap()],
        build_args: Vec::new(),
        target: None,
        no_cache: false,
        platform: None,
        source_date_epoch: None,
    };
    builder.build(&options).unwrap();
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn an_interrupted_build_leaves_nothing_and_keeps_what_completed() {
    let f = Fixture::new();
    f.file("a.txt", "a");
    let dockerfile =
        "FROM lab/base\nCOPY a.txt /a\nRUN cp /a /b\nRUN echo started > /tmp/x && sleep 60\n";
    fs::write(f.dir.path().join("Dockerfile"), dockerfile).unwrap();
    let mounts = common::mount_points(&common::host_mountinfo());
    let (images, _, _) = leftovers(&f);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "interrupted_build_child",
            "--ignored",
            "--nocapture",
        ])
        .env("LAB_BUILD_CHILD_DIR", f.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed once the last RUN has started (its output says so).
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let announced = common::wait_for(std::time::Duration::from_secs(60), || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).ok()?;
        seen.push_str(&line);
        line.contains("number: 4").then_some(())
    });
    assert!(
        announced.is_some(),
        "the child never reached step 4:\n{seen}"
    );
    // Running: its file is in the step's upper directory.
    let tmp = f.store.root().join("tmp");
    let running = common::wait_for(std::time::Duration::from_secs(30), || {
        fs::read_dir(&tmp)
            .ok()?
            .flatten()
            .any(|e| e.path().join("upper/tmp/x").exists())
            .then_some(())
    });
    assert!(running.is_some(), "the RUN never started");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    // The RUN's process died with it (PDEATHSIG), and its mount with it.
    let gone = common::wait_for(std::time::Duration::from_secs(10), || {
        (!process_running("sleep 60")).then_some(())
    });
    assert!(gone.is_some(), "the RUN's process outlived the build");
    assert_eq!(common::mount_points(&common::host_mountinfo()), mounts);
    // The next open clears the scratch space; no image was added.
    drop(f.store);
    let store = ImageStore::open(&f.dir.path().join("images")).unwrap();
    let tmp: Vec<_> = fs::read_dir(store.root().join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    let now: Vec<String> = store
        .list()
        .unwrap()
        .iter()
        .map(|i| format!("{} {}", i.reference.familiar(), i.id()))
        .collect();
    assert_eq!(now, images);
    // The completed steps are cached.
    let f = Fixture { dir: f.dir, store };
    let (_, events) = f.ok("FROM lab/base\nCOPY a.txt /a\nRUN cp /a /b\nRUN true\n");
    assert_eq!(cached(&events), [2, 3]);
}

fn process_running(needle: &str) -> bool {
    fs::read_dir("/proc").unwrap().flatten().any(|e| {
        fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == needle)
            .unwrap_or(false)
    })
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn diff_commit_and_export_use_the_same_layers() {
    let f = Fixture::new();
    let (built, _) = f.ok("FROM lab/base\nRUN echo one > /one\n");
    let image = f.store.find("lab/app").unwrap();
    // A container's upper directory, as overlay would leave it.
    let upper = f.dir.path().join("upper");
    fs::create_dir_all(upper.join("etc")).unwrap();
    fs::write(upper.join("etc/new.conf"), "x=1\n").unwrap();
    fs::write(upper.join("one"), "changed\n").unwrap();
    nix::sys::stat::mknod(
        &upper.join("etc/motd"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
    let lower = build::MergedView {
        layers: image.lower_dirs(),
    };
    let listed: Vec<String> = build::changes(&upper, &lower)
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        listed,
        ["C /etc", "D /etc/motd", "A /etc/new.conf", "C /one"]
    );

    let committed = build::commit(
        &f.store,
        &image,
        &upper,
        &[Reference::parse("lab/committed").unwrap()],
        &build::CommitOptions {
            created_by: "sh".into(),
            comment: Some("by hand".into()),
            ..build::CommitOptions::default()
        },
    )
    .unwrap();
    let again = f.store.find("lab/committed").unwrap();
    assert_eq!(again.id(), committed.id);
    assert_eq!(again.layers.len(), built.layers.len() + 1);
    let top = tar_of(&f.store, again.layers.last().unwrap());
    assert_eq!(paths(&top), ["etc/", "etc/.wh.motd", "etc/new.conf", "one"]);
    let config: Value =
        serde_json::from_slice(&f.store.config_bytes(&committed.id).unwrap()).unwrap();
    assert_eq!(
        config["history"].as_array().unwrap().last().unwrap()["comment"],
        "by hand"
    );

    // export: the merged tree, the deletion applied, no whiteout in it.
    let mut tar = Vec::new();
    build::export(
        &build::MergedView {
            layers: again.lower_dirs(),
        },
        &mut tar,
    )
    .unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let mut files = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let mut body = String::new();
        let path = e.path().unwrap().display().to_string();
        e.read_to_string(&mut body).unwrap_or_default();
        files.insert(path, body);
    }
    assert_eq!(files["one"], "changed\n");
    assert_eq!(files["etc/new.conf"], "x=1\n");
    assert!(!files.contains_key("etc/motd") && !files.keys().any(|k| k.contains(".wh.")));
    assert!(files.contains_key("bin/busybox"));
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_cancelled_build_stops_at_the_next_step_and_keeps_what_completed() {
    let f = Fixture::new();
    f.file("a.txt", "a");
    let (images, tmp, layers) = leftovers(&f);
    let cancel = std::sync::atomic::AtomicBool::new(false);
    // Cancelled (as a Ctrl-C handler would) while step 3 is announced.
    let events = |e: BuildEvent| {
        if let BuildEvent::Step { number: 3, .. } = e {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let runner = ChrootRunner { quiet: true };
    let builder = Builder {
        store: &f.store,
        runner: &runner,
        events: &events,
        images: None,
        cancel: Some(&cancel),
    };
    let options = f.options("FROM lab/base\nCOPY a.txt /a\nRUN cp /a /b\nRUN cp /b /c\n");
    let err = builder.build(&options).unwrap_err();
    assert!(matches!(err, BuildError::Interrupted), "{err:?}");
    let (images_after, tmp_after, layers_after) = leftovers(&f);
    assert_eq!((images_after, tmp_after), (images, tmp));
    // The COPY completed; the RUN under way when it was cancelled is gone.
    assert_eq!(layers_after, layers + 1);
    let (_, events) = f.ok("FROM lab/base\nCOPY a.txt /a\nRUN cp /a /b\nRUN cp /b /c\n");
    assert_eq!(cached(&events), [2]);
}
