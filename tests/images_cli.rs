//! mini-docker's image commands against real peers, all on 127.0.0.1:
//! Debian's docker-registry (open, Bearer, Basic), skopeo and umoci on the
//! other side, and a hostile server. Every effect is checked from outside:
//! the store's files, skopeo's and the registry's answers, the output of
//! the containers that run.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::registry::{
    self as reg, host_arch, layer_tar, registry, Auth, Reply, ServedImage, Server,
};
use serde_json::{json, Value};

/// A lab state root with its own Docker client config; removed at the end.
struct Lab {
    state: PathBuf,
}

impl Lab {
    fn new(name: &str) -> Lab {
        let state = common::state_root(name);
        Lab { state }
    }

    fn images(&self) -> PathBuf {
        self.state.join("lib/images")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = common::mini_docker(&self.state, args);
        command.env("DOCKER_CONFIG", self.state.join("docker"));
        command
    }

    fn md(&self, args: &[&str]) -> Output {
        println!("--- mini-docker {}", args.join(" "));
        common::run(self.command(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.md(args);
        assert_eq!(out.status.code(), Some(0), "mini-docker {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Fails with 125, and says `wanted` on stderr.
    fn fails(&self, args: &[&str], wanted: &str) -> String {
        let out = self.md(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(125), "mini-docker {args:?}");
        assert!(
            stderr.contains(wanted),
            "{args:?}: wanted {wanted:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }

    /// Every file of the store with its size (the layers' trees by their
    /// directories), except blobs: a failed pull may keep the complete,
    /// verified blobs it fetched (see [`Lab::assert_blobs_verified`]).
    fn files(&self) -> BTreeSet<String> {
        let mut files = self.all_files();
        files.retain(|f| !f.starts_with("blobs/"));
        files
    }

    fn all_files(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let root = self.images();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let rel = path.strip_prefix(&root).unwrap().display().to_string();
                if rel.ends_with("/root") || rel.ends_with("lock") || rel == "tmp" {
                    out.insert(rel);
                } else if entry.file_type().unwrap().is_dir() {
                    stack.push(path);
                } else {
                    out.insert(format!("{rel} {}", entry.metadata().unwrap().len()));
                }
            }
        }
        out
    }

    fn layers(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.images().join("layers/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn tmp_entries(&self) -> usize {
        fs::read_dir(self.images().join("tmp")).map_or(0, |d| d.count())
    }

    /// Every blob's bytes hash to its name: only verified blobs are kept.
    fn assert_blobs_verified(&self) {
        for blob in fs::read_dir(self.images().join("blobs/sha256")).unwrap() {
            let blob = blob.unwrap().path();
            let name = blob.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                reg::sha256(&fs::read(&blob).unwrap()),
                format!("sha256:{name}")
            );
        }
    }

    fn inspect(&self, image: &str) -> Value {
        let text = self.ok(&["image", "inspect", image]);
        serde_json::from_str::<Value>(&text).unwrap()[0].clone()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.state);
    }
}

/// A layer of executable files and symlinks, made with the tar crate.
fn tree_tar(files: &[(&str, &[u8], u32)], links: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, body, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_600_000_000);
        header.set_mode(*mode);
        header.set_size(body.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, *body).unwrap();
    }
    for (path, target) in links {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_600_000_000);
        header.set_mode(0o777);
        header.set_size(0);
        header.set_entry_type(tar::EntryType::Symlink);
        builder.append_link(&mut header, path, target).unwrap();
    }
    builder.into_inner().unwrap()
}

/// The base layer every test image shares: the host's static busybox.
fn busybox_layer() -> Vec<u8> {
    let busybox = container_lab::engine::images::busybox::find_static().unwrap();
    let binary = fs::read(busybox).unwrap();
    tree_tar(&[("bin/busybox", &binary, 0o755)], &[("bin/sh", "busybox")])
}

/// An OCI layout with image `tag`: `layers` over nothing, then the config
/// umoci writes from `config` (its `--config.*` flags).
fn umoci_app(layout: &Path, tag: &str, layers: &[Vec<u8>], config: &[&str]) {
    reg::umoci_image(layout, tag, layers, host_arch());
    let image = format!("{}:{tag}", layout.display());
    reg::run(
        Command::new("umoci")
            .args(["config", "--image", &image])
            .args(["--clear=config.cmd", "--clear=config.env"])
            .args(config),
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn what_mini_docker_pushes_skopeo_reads_and_copies_back_byte_identical() {
    common::assert_root();
    let registry = registry(Auth::None);
    let lab = Lab::new("images-cli-push");
    let target = format!("{}/lab/busybox:1", registry.host);
    // The lab's own busybox, built with no network, pushed as it is.
    lab.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
    lab.ok(&["tag", "busybox", &target]);
    let out = lab.ok(&["push", &target]);
    let image = lab.inspect(&target);
    let manifest_digest = image["Metadata"]["ManifestDigest"].as_str().unwrap();
    assert!(out.starts_with(&format!(
        "The push refers to repository [{}/lab/busybox]\n",
        registry.host
    )));
    assert!(out.contains("Pushed\n"), "{out}");
    assert!(
        out.contains(&format!("1: digest: {manifest_digest} size: ")),
        "{out}"
    );

    let blob =
        |digest: &str| fs::read(lab.images().join("blobs/sha256").join(&digest[7..])).unwrap();
    let raw = registry.skopeo(&["inspect", "--raw"], "lab/busybox:1");
    assert_eq!(raw.as_bytes(), blob(manifest_digest));
    let seen: Value =
        serde_json::from_str(&registry.skopeo(&["inspect"], "lab/busybox:1")).unwrap();
    let manifest: Value = serde_json::from_slice(&blob(manifest_digest)).unwrap();
    assert_eq!(seen["Layers"][0], manifest["layers"][0]["digest"]);
    assert_eq!(seen["Architecture"], host_arch());

    let back = lab.state.join("back");
    reg::run(
        Command::new("skopeo")
            .args(["copy", "-q", "--preserve-digests"])
            .args(registry.skopeo_flags("src"))
            .arg(format!("docker://{target}"))
            .arg(format!("oci:{}:x", back.display())),
    );
    let mut digests = vec![
        manifest_digest.to_string(),
        manifest["config"]["digest"].as_str().unwrap().to_string(),
    ];
    digests.push(
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    for digest in &digests {
        let theirs = fs::read(back.join("blobs/sha256").join(&digest[7..])).unwrap();
        assert_eq!(
            theirs,
            blob(digest),
            "{digest} differs after the round trip"
        );
    }
    // Pushed again: the registry has every blob; a HEAD says so.
    let again = lab.ok(&["push", &target]);
    assert!(again.contains("Layer already exists"), "{again}");
    // Untagging the pushed name deletes nothing: busybox still names it.
    let mut files = lab.all_files();
    assert_eq!(lab.ok(&["rmi", &target]), format!("Untagged: {target}\n"));
    let mut after = lab.all_files();
    files.retain(|f| !f.starts_with("index.json "));
    after.retain(|f| !f.starts_with("index.json "));
    assert_eq!(after, files);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn what_skopeo_pushed_mini_docker_pulls_and_runs_with_its_config() {
    common::assert_root();
    let registry = registry(Auth::None);
    let lab = Lab::new("images-cli-pull");
    let host = &registry.host;
    let layout = lab.state.join("layout");
    let base = busybox_layer();
    let app = tree_tar(&[("work/file", b"from the image\n", 0o644)], &[]);
    let greeting = "echo $GREETING from $(pwd) as $(id -u):$(id -g)";
    umoci_app(
        &layout,
        "app",
        &[base.clone(), app],
        &[
            "--config.entrypoint=/bin/busybox",
            "--config.cmd=sh",
            "--config.cmd=-c",
            &format!("--config.cmd={greeting}"),
            "--config.env=GREETING=hello",
            "--config.env=PATH=/bin",
            "--config.workingdir=/work",
            "--config.user=1234:5678",
            "--config.exposedports=8080/tcp",
            "--config.stopsignal=SIGQUIT",
        ],
    );
    let other = tree_tar(&[("other/file", b"another top\n", 0o644)], &[]);
    umoci_app(
        &layout,
        "app2",
        &[base.clone(), other],
        &["--config.cmd=/bin/sh"],
    );
    registry.skopeo_push(&format!("oci:{}:app", layout.display()), "lab/app:1", &[]);
    registry.skopeo_push(&format!("oci:{}:app2", layout.display()), "lab/app2:1", &[]);
    let app = format!("{host}/lab/app:1");
    let app2 = format!("{host}/lab/app2:1");

    let out = lab.ok(&["pull", &app]);
    println!("{out}");
    assert!(out.starts_with("1: Pulling from lab/app\n"), "{out}");
    assert_eq!(out.matches(": Pull complete\n").count(), 2, "{out}");
    assert!(out.contains(&format!("Status: Downloaded newer image for {app}\n")));
    assert!(out.ends_with(&format!("\n{app}\n")), "{out}");
    let table = lab.ok(&["images"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&format!("{host}/lab/app ")) && l.contains(" 1 ")),
        "{table}"
    );
    let again = lab.ok(&["pull", &app]);
    assert!(
        again.contains(&format!("Status: Image is up to date for {app}")),
        "{again}"
    );
    // As Docker: no line per layer when nothing was pulled.
    assert!(!again.contains("Already exists"), "{again}");
    let image = lab.inspect(&app);
    assert_eq!(image["Config"]["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(image["Config"]["StopSignal"], "SIGQUIT");
    assert_eq!(image["Config"]["User"], "1234:5678");
    assert_eq!(image["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    let history = lab.ok(&["history", &app]);
    println!("{history}");
    assert!(history.starts_with("IMAGE"), "{history}");
    let id = image["Id"].as_str().unwrap();
    assert!(
        history.lines().nth(1).unwrap().starts_with(&id[7..19]),
        "{history}"
    );

    // The config decides what runs, where and as whom; the flags win.
    let run = |extra: &[&str], image: &str, command: &[&str]| -> String {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend(extra);
        args.push(image);
        args.extend(command);
        lab.ok(&args)
    };
    assert_eq!(run(&[], &app, &[]), "hello from /work as 1234:5678\n");
    // A container of it shows what the image exposes and how it stops.
    let id = lab.ok(&["create", "--network", "none", &app]);
    let doc: Value = serde_json::from_str(&lab.ok(&["inspect", id.trim()])).unwrap();
    assert_eq!(doc[0]["Config"]["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(doc[0]["Config"]["StopSignal"], "SIGQUIT");
    assert_eq!(doc[0]["Config"]["WorkingDir"], "/work");
    assert_eq!(doc[0]["Config"]["User"], "1234:5678");
    lab.ok(&["rm", id.trim()]);
    assert_eq!(
        run(&["-e", "GREETING=bye", "-w", "/", "-u", "0"], &app, &[]),
        "bye from / as 0:0\n"
    );
    // A command replaces Cmd only; --entrypoint replaces both.
    assert_eq!(run(&[], &app, &["echo", "just", "this"]), "just this\n");
    assert_eq!(
        run(&["--entrypoint", "/bin/busybox"], &app, &["echo", "hi"]),
        "hi\n"
    );
    lab.fails(
        &["run", "--rm", "--entrypoint", "", &app],
        "no command specified",
    );

    // Not in the store: run pulls it first, as Docker says.
    let before = lab.layers();
    let out = lab.md(&[
        "run",
        "--rm",
        "--network",
        "none",
        &app2,
        "/bin/busybox",
        "cat",
        "/other/file",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("Unable to find image '{app2}' locally\n")),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "another top\n");
    // The base layer is shared: stored and unpacked once.
    let after = lab.layers();
    assert_eq!(after.len(), before.len() + 1, "{before:?} -> {after:?}");
    let base_id = reg::sha256(&base);
    assert!(after.contains(&base_id[7..].to_string()));

    // A named volume starts with what the image has at its mount point.
    assert_eq!(
        run(
            &["-v", "seeded:/work", "-u", "0"],
            &app,
            &["cat", "/work/file"]
        ),
        "from the image\n"
    );
    let seeded = lab.state.join("lib/volumes/seeded/_data/file");
    assert_eq!(fs::read_to_string(seeded).unwrap(), "from the image\n");

    // rmi: the shared layer stays while app2 needs it.
    let out = lab.ok(&["rmi", &app]);
    assert!(
        out.starts_with(&format!("Untagged: {app}\nDeleted: sha256:")),
        "{out}"
    );
    let left = lab.layers();
    assert_eq!(left.len(), after.len() - 1);
    assert!(
        left.contains(&base_id[7..].to_string()),
        "the shared layer went"
    );
    lab.ok(&["rmi", &app2]);
    assert!(!lab.layers().contains(&base_id[7..].to_string()));
    assert_eq!(lab.tmp_entries(), 0);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn login_stores_docker_credentials_and_bearer_gets_a_token() {
    common::assert_root();
    let lab = Lab::new("images-cli-auth");
    let layout = lab.state.join("layout");
    umoci_app(
        &layout,
        "t",
        &[layer_tar(&[("f", Some(b"x"))])],
        &["--config.cmd=/f"],
    );
    let source = format!("oci:{}:t", layout.display());

    // Basic: refused without credentials, pulled after login.
    let basic = registry(Auth::Basic);
    basic.skopeo_push(&source, "lab/secret:1", &[]);
    let image = format!("{}/lab/secret:1", basic.host);
    lab.ok(&["images"]);
    let files = lab.files();
    lab.fails(&["pull", &image], "refused an anonymous request");
    assert_eq!(lab.files(), files, "a refused pull changed the store");
    let mut login = lab.command(&["login", "-u", reg::USER, "--password-stdin", &basic.host]);
    login.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = login.spawn().unwrap();
    writeln!(child.stdin.take().unwrap(), "{}", reg::PASSWORD).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded\n");
    let config = lab.state.join("docker/config.json");
    assert_eq!(
        fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let stored: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    // base64("lab:s3cret"), as Docker writes it.
    assert_eq!(stored["auths"][&basic.host]["auth"], "bGFiOnMzY3JldA==");
    lab.ok(&["pull", &image]);
    // A wrong password is refused at login, and nothing is stored.
    let mut bad = lab.command(&["login", "-u", reg::USER, "-p", "wrong", &basic.host]);
    bad.env("DOCKER_CONFIG", lab.state.join("other-docker"));
    let out = common::run(bad);
    assert_eq!(out.status.code(), Some(125));
    assert!(!lab.state.join("other-docker/config.json").exists());
    assert_eq!(
        lab.ok(&["logout", &basic.host]),
        format!("Removing login credentials for {}\n", basic.host)
    );
    let stored: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert!(stored["auths"].get(&basic.host).is_none(), "{stored}");
    lab.ok(&["rmi", &image]);
    lab.fails(&["pull", &image], "refused an anonymous request");

    // Bearer: the token endpoint is asked for this repository's scope.
    let bearer = registry(Auth::Bearer);
    bearer.skopeo_push(&source, "lab/token:1", &[]);
    bearer.token_requests.lock().unwrap().clear();
    lab.ok(&["pull", &format!("{}/lab/token:1", bearer.host)]);
    let asked = bearer.token_requests.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .any(|(q, _)| q.contains("lab%2Ftoken") || q.contains("lab/token")),
        "{asked:?}"
    );
}

/// One-layer images served by the hostile server, each wrong in one way
/// the library's own tests leave to the command line.
fn lying_images() -> Vec<(&'static str, ServedImage, &'static str)> {
    let tar = layer_tar(&[("file", Some(b"content"))]);
    let mut out = Vec::new();
    let rebuild = |image: &mut ServedImage, manifest: Value| {
        image.manifest = serde_json::to_vec(&manifest).unwrap();
        image.manifest_digest = reg::sha256(&image.manifest);
    };
    let config_of = |image: &ServedImage| -> (String, Value) {
        let m: Value = serde_json::from_slice(&image.manifest).unwrap();
        let d = m["config"]["digest"].as_str().unwrap().to_string();
        let c = serde_json::from_slice(&image.blobs[&d]).unwrap();
        (d, c)
    };
    // The config's diff_id is not the layer's.
    let mut image = ServedImage::new(std::slice::from_ref(&tar));
    let (old, mut config) = config_of(&image);
    config["rootfs"]["diff_ids"][0] = json!(format!("sha256:{}", "0".repeat(64)));
    let bytes = serde_json::to_vec(&config).unwrap();
    let digest = reg::sha256(&bytes);
    image.blobs.remove(&old);
    image.blobs.insert(digest.clone(), bytes.clone());
    let mut manifest: Value = serde_json::from_slice(&image.manifest).unwrap();
    manifest["config"]["digest"] = json!(digest);
    manifest["config"]["size"] = json!(bytes.len());
    rebuild(&mut image, manifest);
    out.push(("diff-id", image, "but the image config's diff_id is"));
    // Said gzip, sent plain.
    let mut image = ServedImage::new(std::slice::from_ref(&tar));
    let mut manifest: Value = serde_json::from_slice(&image.manifest).unwrap();
    let plain = reg::sha256(&tar);
    image.blobs.insert(plain.clone(), tar.clone());
    manifest["layers"][0]["digest"] = json!(plain);
    manifest["layers"][0]["size"] = json!(tar.len());
    rebuild(&mut image, manifest);
    out.push(("mislabelled", image, "but its first bytes are"));
    // A compression nobody speaks.
    let mut image = ServedImage::new(std::slice::from_ref(&tar));
    let mut manifest: Value = serde_json::from_slice(&image.manifest).unwrap();
    manifest["layers"][0]["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+bzip2");
    rebuild(&mut image, manifest);
    out.push(("bzip2", image, "which this engine cannot unpack"));
    // An artifact, not an image.
    let mut image = ServedImage::new(std::slice::from_ref(&tar));
    let mut manifest: Value = serde_json::from_slice(&image.manifest).unwrap();
    manifest["config"]["mediaType"] = json!("application/vnd.cncf.helm.config.v1+json");
    rebuild(&mut image, manifest);
    out.push(("artifact", image, "an artifact, not a container image"));
    // Schema 1, long gone.
    let mut image = ServedImage::new(std::slice::from_ref(&tar));
    rebuild(
        &mut image,
        json!({"schemaVersion": 1, "name": "lab/old", "tag": "1", "fsLayers": []}),
    );
    out.push(("schema1", image, "schema 1 manifest"));
    // More layers than diff_ids.
    let mut image = ServedImage::new(std::slice::from_ref(&tar));
    let mut manifest: Value = serde_json::from_slice(&image.manifest).unwrap();
    let layer = manifest["layers"][0].clone();
    manifest["layers"] = json!([layer.clone(), layer]);
    rebuild(&mut image, manifest);
    out.push(("counts", image, "layers"));
    out
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_lying_registry_is_refused_and_the_store_stays_as_it_was() {
    common::assert_root();
    let lab = Lab::new("images-cli-hostile");
    lab.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
    let files = lab.files();
    let images = lab.ok(&["images"]);
    for (name, image, wanted) in lying_images() {
        let server =
            Server::start(move |r| image.answer(r).unwrap_or_else(|| Reply::json(404, "{}")));
        let reference = format!("{}/lab/{name}:1", server.host);
        lab.fails(&["pull", &reference], wanted);
        lab.fails(&["run", "--rm", &reference, "true"], wanted);
        assert_eq!(lab.files(), files, "{name} changed the store");
        lab.assert_blobs_verified();
        assert_eq!(lab.ok(&["images"]), images, "{name}");
        assert_eq!(lab.tmp_entries(), 0, "{name} left temporaries");
    }
    // A registry that answers 401 with no challenge at all, and one that
    // is not there: clear errors, nothing stored.
    let server = Server::start(|_| Reply::json(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#));
    lab.fails(&["pull", &format!("{}/lab/x:1", server.host)], "401");
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gone.local_addr().unwrap().port();
    drop(gone);
    lab.fails(
        &["pull", &format!("127.0.0.1:{port}/lab/x:1")],
        &format!("127.0.0.1:{port}"),
    );
    // The tests never leave loopback: another registry is not contacted.
    lab.fails(
        &["pull", "registry.invalid/lab/x:1"],
        "CONTAINER_LAB_OFFLINE",
    );
    assert_eq!(lab.files(), files);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn sigint_and_sigkill_mid_pull_leave_no_image_and_the_next_pull_completes() {
    common::assert_root();
    let lab = Lab::new("images-cli-interrupt");
    // Bytes gzip cannot shrink: the blob is large on the wire.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let big: Vec<u8> = (0..(4 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let image = Arc::new(ServedImage::new(&[
        layer_tar(&[("small", Some(b"first"))]),
        layer_tar(&[("big", Some(&big))]),
    ]));
    let big_layer = image.layers[1].clone();
    let stalling = Arc::new(AtomicBool::new(true));
    let (tx, rx) = mpsc::channel::<()>();
    let tx = Mutex::new(tx);
    let server = {
        let (image, stalling) = (image.clone(), stalling.clone());
        Server::start(move |r| {
            if stalling.load(Ordering::SeqCst) && r.path.ends_with(&big_layer) {
                let blob = &image.blobs[&big_layer];
                return Reply::Stall {
                    length: blob.len() as u64,
                    prefix: blob[..blob.len() / 2].to_vec(),
                    started: Some(tx.lock().unwrap().clone()),
                };
            }
            image.answer(r).unwrap_or_else(|| Reply::json(404, "{}"))
        })
    };
    let reference = format!("{}/lab/interrupted:1", server.host);
    lab.ok(&["images"]);
    let files = lab.files();
    for signal in [libc::SIGINT, libc::SIGKILL] {
        stalling.store(true, Ordering::SeqCst);
        let mut command = lab.command(&["pull", &reference]);
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let child = command.spawn().unwrap();
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the pull never reached the big layer");
        let partial = common::wait_for(common::PATIENCE, || {
            fs::read_dir(lab.images().join("tmp"))
                .ok()?
                .flatten()
                .find(|e| {
                    e.file_name().to_string_lossy().starts_with("blob")
                        && e.metadata().is_ok_and(|m| m.len() > 0)
                })
        });
        assert!(partial.is_some(), "no partial download in tmp/");
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        if signal == libc::SIGINT {
            // Ctrl-C: it cleans up after itself and exits as Docker's 130.
            assert_eq!(out.status.code(), Some(130), "{out:?}");
            assert_eq!(lab.tmp_entries(), 0, "the partial download was left");
        } else {
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&out.status),
                Some(signal)
            );
        }
        // No image listed; the next open sweeps what a kill left; only
        // complete verified blobs (the small layer's, perhaps) remain.
        assert!(!lab.ok(&["images"]).contains("interrupted"));
        assert_eq!(lab.tmp_entries(), 0);
        lab.assert_blobs_verified();
        let index: Value =
            serde_json::from_slice(&fs::read(lab.images().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 0);

        stalling.store(false, Ordering::SeqCst);
        lab.ok(&["pull", &reference]);
        let doc = lab.inspect(&reference);
        let lower = doc["GraphDriver"]["Data"]["LowerDir"].as_str().unwrap();
        let top = lower.split(':').next().unwrap();
        assert_eq!(fs::read(Path::new(top).join("big")).unwrap(), big);
        lab.ok(&["rmi", &reference]);
        assert_eq!(lab.files(), files, "rmi left something of the pull");
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn save_and_load_carry_images_to_a_machine_without_a_registry() {
    common::assert_root();
    let lab = Lab::new("images-cli-save");
    let other = Lab::new("images-cli-load");
    lab.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
    lab.ok(&["tag", "busybox", "lab/carried:1"]);
    let id = lab.inspect("busybox")["Id"].as_str().unwrap().to_string();
    for (format, transport) in [
        ("docker-archive", "docker-archive"),
        ("oci-archive", "oci-archive"),
    ] {
        let file = lab.state.join(format!("images.{format}.tar"));
        let path = file.display().to_string();
        lab.ok(&["save", "--format", format, "-o", &path, "lab/carried:1"]);
        // Someone else reads it: skopeo knows both transports.
        let seen = reg::run(
            Command::new("skopeo")
                .arg("inspect")
                .arg(format!("{transport}:{path}")),
        );
        let seen: Value = serde_json::from_str(&seen).unwrap();
        assert_eq!(seen["Architecture"], host_arch(), "{format}");
        let out = other.ok(&["load", "-i", &path]);
        assert_eq!(out, "Loaded image: lab/carried:1\n", "{format}");
        assert_eq!(other.inspect("lab/carried:1")["Id"], id.as_str());
        let ran = other.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "lab/carried:1",
            "echo",
            "carried",
        ]);
        assert_eq!(ran, "carried\n");
        other.ok(&["rmi", "lab/carried:1"]);
    }
    // No half archive when the image does not exist.
    let missing = lab.state.join("missing.tar");
    lab.fails(
        &["save", "-o", missing.to_str().unwrap(), "lab/nothing:1"],
        "lab/nothing",
    );
    assert!(!missing.exists());
    assert!(!lab.state.join("missing.partial").exists());
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn pull_picks_this_platform_or_the_one_asked_for_and_pulls_by_digest() {
    common::assert_root();
    let registry = registry(Auth::None);
    let lab = Lab::new("images-cli-platform");
    let layout = lab.state.join("layout");
    let arch = |a: &str| vec![layer_tar(&[("arch", Some(a.as_bytes()))])];
    reg::umoci_image(&layout, "amd", &arch("amd64"), "amd64");
    reg::umoci_image(&layout, "arm", &arch("arm64"), "arm64");
    reg::index_over(
        &layout,
        "multi",
        &[("amd", "amd64", None), ("arm", "arm64", Some("v8"))],
    );
    registry.skopeo_push(
        &format!("oci:{}:multi", layout.display()),
        "lab/multi:cli",
        &["--all"],
    );
    let name = format!("{}/lab/multi:cli", registry.host);
    let index = registry.skopeo(&["inspect", "--raw"], "lab/multi:cli");
    let index_digest = reg::sha256(index.as_bytes());

    let out = lab.ok(&["pull", "--platform", "linux/arm64", &name]);
    assert!(out.contains(&format!("Digest: {index_digest}\n")), "{out}");
    let image = lab.inspect(&name);
    assert_eq!(image["Architecture"], "arm64");
    assert_eq!(
        image["RepoDigests"][0],
        format!("{}/lab/multi@{index_digest}", registry.host)
    );
    lab.ok(&["rmi", &name]);
    lab.ok(&["pull", &name]);
    assert_eq!(lab.inspect(&name)["Architecture"], host_arch());
    let err = lab.fails(
        &["pull", "--platform", "linux/riscv64", &name],
        "has no image for linux/riscv64; it has linux/amd64, linux/arm64/v8",
    );
    println!("{err}");
    // By digest: stored under the digest, listed with no tag.
    let by_digest = format!("{}/lab/multi@{index_digest}", registry.host);
    lab.ok(&["pull", &by_digest]);
    let table = lab.ok(&["images"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&format!("{}/lab/multi ", registry.host))
                && l.contains(" <none> ")),
        "{table}"
    );
}

/// An image of one small text file over busybox, pushed under `name`.
fn push_version(registry: &reg::Registry, layout: &Path, name: &str, text: &str) {
    let tag = text.trim();
    let layer = tree_tar(&[("etc/version", text.as_bytes(), 0o644)], &[]);
    umoci_app(
        layout,
        tag,
        &[busybox_layer(), layer],
        &[
            "--config.cmd=/bin/busybox",
            "--config.cmd=cat",
            "--config.cmd=/etc/version",
        ],
    );
    registry.skopeo_push(&format!("oci:{}:{tag}", layout.display()), name, &[]);
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn run_pull_always_fetches_a_moved_tag_and_missing_keeps_the_stored_one() {
    common::assert_root();
    let registry = registry(Auth::None);
    let lab = Lab::new("images-cli-pull-always");
    let layout = lab.state.join("layout");
    let image = format!("{}/lab/moving:1", registry.host);
    push_version(registry, &layout, "lab/moving:1", "one\n");
    let run = |policy: &str| {
        let out = lab.md(&["run", "--rm", "--network", "none", "--pull", policy, &image]);
        assert_eq!(out.status.code(), Some(0), "run --pull {policy}");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    };

    // --pull never with the image missing: Docker's words, exit 125, and
    // nothing was fetched or created.
    let wanted = format!("Error response from daemon: No such image: {image}");
    lab.fails(&["run", "--rm", "--pull", "never", &image], &wanted);
    lab.fails(&["create", "--pull", "never", &image], &wanted);
    assert_eq!(lab.ok(&["images", "-q", &image]), "");
    assert_eq!(lab.ok(&["ps", "-aq"]), "");

    // always, missing: pulled, without "Unable to find" (Docker asks first).
    let (out, err) = run("always");
    assert_eq!(out, "one\n");
    assert!(err.starts_with("1: Pulling from lab/moving\n"), "{err}");
    assert!(
        err.contains(&format!("Status: Downloaded newer image for {image}\n")),
        "{err}"
    );
    let first = lab.inspect(&image);
    // always, present and unchanged: the registry is asked, nothing fetched.
    let (out, err) = run("always");
    assert_eq!(out, "one\n");
    assert!(
        err.contains(&format!("Status: Image is up to date for {image}\n")),
        "{err}"
    );
    assert!(!err.contains("Pull complete"), "{err}");

    // The tag moves to another image.
    push_version(registry, &layout, "lab/moving:1", "two\n");
    let served = reg::sha256(
        registry
            .skopeo(&["inspect", "--raw"], "lab/moving:1")
            .as_bytes(),
    );
    assert_ne!(first["Metadata"]["ManifestDigest"], served.as_str());
    // missing (the default) and never: the stored image, no request.
    let (out, err) = run("missing");
    assert_eq!((out.as_str(), err.as_str()), ("one\n", ""));
    let (out, err) = run("never");
    assert_eq!((out.as_str(), err.as_str()), ("one\n", ""));
    // always: the new manifest is fetched, stored under the tag and run.
    let (out, err) = run("always");
    assert_eq!(out, "two\n");
    assert!(err.contains(&format!("Digest: {served}\n")), "{err}");
    assert!(
        err.contains(&format!("Status: Downloaded newer image for {image}\n")),
        "{err}"
    );
    assert_eq!(
        err.matches(": Pull complete\n").count(),
        1,
        "only the new layer: {err}"
    );
    let second = lab.inspect(&image);
    assert_eq!(second["Metadata"]["ManifestDigest"], served.as_str());
    assert_ne!(second["Id"], first["Id"]);
    // create --pull always, up to date: the container's ID on stdout alone.
    let out = lab.md(&["create", "--network", "none", "--pull", "always", &image]);
    assert_eq!(out.status.code(), Some(0));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("Status: Image is up to date for {image}\n")),
        "{err}"
    );
    lab.ok(&["rm", &id]);
    assert_eq!(lab.tmp_entries(), 0);
}

/// The `Uid:` and `NoNewPrivs:` lines of a host PID's status.
fn ids_of(pid: &str) -> (String, String) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (line("Uid:"), line("NoNewPrivs:"))
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_setuid_program_gains_euid_0_under_user_1000_unless_no_new_privileges() {
    common::assert_root();
    let registry = registry(Auth::None);
    let lab = Lab::new("images-cli-setuid");
    let layout = lab.state.join("layout");
    // A setuid-root copy of busybox, and the busybox.conf lines that make
    // it keep euid 0 for `id` and `sleep` (it drops it for other applets).
    let busybox = fs::read(container_lab::engine::images::busybox::find_static().unwrap()).unwrap();
    let conf = b"[SUID]\nid = sxx 0.0\nsleep = sxx 0.0\n";
    let setuid = tree_tar(
        &[
            ("opt/setuid/busybox", &busybox, 0o4755),
            ("etc/busybox.conf", conf, 0o644),
        ],
        &[],
    );
    umoci_app(
        &layout,
        "setuid",
        &[busybox_layer(), setuid],
        &["--config.cmd=/bin/sh"],
    );
    registry.skopeo_push(
        &format!("oci:{}:setuid", layout.display()),
        "lab/setuid:1",
        &[],
    );
    let image = format!("{}/lab/setuid:1", registry.host);
    lab.ok(&["pull", &image]);
    let nnp = ["--security-opt", "no-new-privileges"];
    let run = |extra: &[&str], command: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none", "--user", "1000"];
        args.extend(extra);
        args.push(&image);
        args.extend(command);
        lab.md(&args)
    };

    // What the program says of itself.
    let out = run(&[], &["/opt/setuid/busybox", "id"]);
    assert_eq!(out.status.code(), Some(0));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("uid=1000 gid=0 euid=0 "), "{said}");
    let out = run(&nnp, &["/opt/setuid/busybox", "id"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "id: setresuid: Operation not permitted\n"
    );

    // What the kernel says, read from the host: the same program, kept
    // running. Without no_new_privs its effective and saved uid are 0.
    let detached = |extra: &[&str], command: &[&str]| -> (String, String) {
        let mut args = vec!["run", "-d", "--network", "none", "--user", "1000"];
        args.extend(extra);
        args.push(&image);
        args.extend(command);
        let id = lab.ok(&args).trim().to_string();
        let pid = lab
            .ok(&["inspect", "-f", "{{.State.Pid}}", &id])
            .trim()
            .to_string();
        // Until its execve is done: then its command line is the program's.
        let wanted = command.join("\0");
        for _ in 0..500 {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).trim_end_matches('\0') == wanted {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (id, pid)
    };
    let (id, pid) = detached(&[], &["/opt/setuid/busybox", "sleep", "1000"]);
    let seen = ids_of(&pid);
    lab.ok(&["rm", "-f", &id]);
    assert_eq!(seen, ("1000 0 0 0".to_string(), "0".to_string()));
    // With it, the same execve leaves the effective uid at 1000: busybox
    // cannot keep what it was never given. The bit is set in the
    // container's first process and inherited by all of them.
    let out = run(&nnp, &["/opt/setuid/busybox", "sleep", "1000"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sleep: setresuid: Operation not permitted\n"
    );
    // (tail: an applet busybox.conf does not name.)
    let (id, pid) = detached(&nnp, &["/bin/busybox", "tail", "-f", "/dev/null"]);
    let seen = ids_of(&pid);
    lab.ok(&["rm", "-f", &id]);
    assert_eq!(seen, ("1000 1000 1000 1000".to_string(), "1".to_string()));
}
