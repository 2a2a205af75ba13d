//! Chapter 9: images and registries.
//!
//! An image is not a tarball: it is a manifest, a config and layers, each
//! named by its sha256, fetched over plain HTTP requests that this chapter
//! makes one at a time against a registry it starts on 127.0.0.1. The
//! layers land in a content-addressed store, unpacked once each, and a
//! container starts on them as overlay lower directories.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use container_lab::engine::dirs::{LabDirs, RunDir};
use container_lab::engine::images::registry::{self, PullOptions, PushOptions};
use container_lab::engine::images::{
    busybox, Event, ImageStore, LayerState, Platform, Reference,
};
use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::overlay::{self, Layer, OverlayDirs};
use container_lab::kernel::{mounts, rootfs};
use container_lab::lab;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::narrate::yes_no;
use container_lab::lab::registry::LocalRegistry;
use container_lab::lab::steps::{inside, set_hostname, show};
use oci_spec::image::ImageIndex;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Images and registries: every request of a pull, then a container.
#[derive(Debug, Parser)]
#[command(name = "ch09", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
    #[command(flatten)]
    container: ContainerArgs,
    /// The registry: "local" starts one on 127.0.0.1; "docker.io" pulls
    /// library/busybox from Docker Hub (needs internet)
    #[arg(long, default_value = "local")]
    registry: String,
    /// Name of this run: its files live in the lab's state directory under it
    #[arg(long, default_value = "ch09", value_parser = cli::parse_name)]
    name: String,
}

const NAMESPACES: [Namespace; 4] = [
    Namespace::Uts,
    Namespace::Pid,
    Namespace::Ipc,
    Namespace::Mount,
];

fn main() -> ExitCode {
    cli::finish(run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut book = lab::begin!(&cli.chapter)?;
    let dirs = LabDirs::from_env();
    let run_dir = RunDir::create(&dirs, &cli.name)?;
    let local = cli.registry == "local";

    book.next(narration::registry(local))?;
    // ANCHOR: registry
    // Two images sharing a base: the lab's busybox, and one layer more.
    let source = ImageStore::open(&run_dir.path().join("source"))?;
    let (base, _) = busybox::ensure(&source, &dirs)?;
    let hello = with_motd(&source, &base)?;
    let server = if local {
        Some(LocalRegistry::start(&run_dir.path().join("registry"))?)
    } else {
        None
    };
    let (name, other) = match &server {
        Some(r) => {
            let push = |from: &str, to: &str| -> anyhow::Result<String> {
                let to = Reference::parse(&format!("{}/{to}", r.host))?;
                let options = PushOptions::default();
                let pushed =
                    registry::push(&source, from, &to, &options, &|_| {})?;
                Ok(format!("{to} {}", pushed.digest))
            };
            book.fact("registry", format!("http://{}", r.host));
            book.fact("pushed", push(base.id(), "lab/busybox:1")?);
            book.fact("pushed", push(hello.id(), "lab/hello:1")?);
            let host = &r.host;
            (
                format!("{host}/lab/hello:1"),
                Some(format!("{host}/lab/busybox:1")),
            )
        }
        None => ("busybox".to_string(), None),
    };
    // ANCHOR_END: registry

    book.next(narration::resolve(&name))?;
    // ANCHOR: resolve
    let reference = Reference::parse(&name)?;
    book.fact("registry", reference.registry_host());
    book.fact("repository", &reference.path);
    book.fact("tag", reference.tag_or_digest());
    let busybox = Reference::parse("busybox")?;
    book.fact("and busybox means", busybox.to_string());
    // ANCHOR_END: resolve

    let scheme = if server.is_some() { "http" } else { "https" };
    let api = format!("{scheme}://{}/v2", reference.registry_host());
    book.next(narration::ping(&api))?;
    // ANCHOR: ping
    let answer = get(&format!("{api}/"), None, None)?;
    book.fact("status", answer.status);
    let challenge = answer.header("www-authenticate");
    book.fact("challenge", challenge.as_deref().unwrap_or("(none)"));
    // ANCHOR_END: ping

    book.next(narration::token(&reference.path))?;
    // ANCHOR: token
    let scope = format!("repository:{}:pull", reference.path);
    let token = match challenge
        .as_deref()
        .map(|c| registry::parse_challenges([c]))
    {
        Some(Some(registry::Challenge::Bearer { realm, service, .. })) => {
            let url = registry::token_url(&realm, service.as_deref(), &scope);
            let answer = get(&url, None, None)?;
            let token = registry::token_from_answer(&answer.body);
            book.fact("token request", url);
            book.fact("token", token.as_ref().map_or("none", |_| "received"));
            token
        }
        _ => {
            book.fact("token", "not needed: anonymous pulls are allowed here");
            None
        }
    };
    // ANCHOR_END: token

    let tag = reference.tag_or_digest();
    let url = format!("{api}/{}/manifests/{tag}", reference.path);
    book.next(narration::manifest(&url))?;
    // ANCHOR: manifest
    let accept = registry::MANIFEST_ACCEPT;
    let answer = get(&url, Some(accept), token.as_deref())?;
    let media_type = answer.header("content-type").unwrap_or_default();
    book.fact("media type", &media_type);
    book.fact("its sha256", sha256(&answer.body));
    let mut manifest: Value = serde_json::from_slice(&answer.body)?;
    // ANCHOR_END: manifest

    book.next(narration::platform())?;
    // ANCHOR: platform
    let host_platform = Platform::host();
    if let Some(list) = manifest["manifests"].as_array() {
        book.fact("an index of", format!("{} manifests", list.len()));
        let index: ImageIndex = serde_json::from_value(manifest.clone())?;
        // The closest match, as Docker picks it (arm64 takes v8 or none).
        let chosen = host_platform.select(index.manifests(), &name)?;
        let digest = chosen.digest().to_string();
        book.fact(&format!("for {host_platform}"), &digest);
        let url = format!("{api}/{}/manifests/{digest}", reference.path);
        let answer = get(&url, Some(accept), token.as_deref())?;
        manifest = serde_json::from_slice(&answer.body)?;
    } else {
        book.fact("one manifest, no index", format!("for {host_platform}"));
    }
    // ANCHOR_END: platform

    let config_digest = manifest["config"]["digest"].as_str().unwrap_or("");
    let blob_url =
        |digest: &str| format!("{api}/{}/blobs/{digest}", reference.path);
    book.next(narration::config(&blob_url(config_digest)))?;
    // ANCHOR: config
    let answer = get(&blob_url(config_digest), None, token.as_deref())?;
    let verified = sha256(&answer.body) == config_digest;
    book.fact("sha256 matches its name", yes_no(verified));
    let config: Value = serde_json::from_slice(&answer.body)?;
    book.fact("Cmd", &config["config"]["Cmd"]);
    let diff_ids = config["rootfs"]["diff_ids"].as_array().cloned();
    book.fact("layers (diff_ids)", diff_ids.unwrap_or_default().len());
    // ANCHOR_END: config

    book.next(narration::layers(&blob_url("DIGEST")))?;
    // ANCHOR: layers
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        let digest = layer["digest"].as_str().unwrap_or("");
        let answer = get(&blob_url(digest), None, token.as_deref())?;
        let ok = sha256(&answer.body) == digest;
        let kib = answer.body.len() / 1024;
        book.fact(
            &short(digest),
            format!("{kib} KiB, sha256 matches: {}", yes_no(ok)),
        );
    }
    // ANCHOR_END: layers

    book.next(narration::unpack())?;
    // ANCHOR: unpack
    let store = ImageStore::open(&run_dir.path().join("images"))?;
    let mut images = Vec::new();
    for name in other.iter().chain([&name]) {
        let reference = Reference::parse(name)?;
        let states = std::sync::Mutex::new(Vec::new());
        let events = |event: Event| {
            if let Event::Layer(l) = event {
                if matches!(
                    l.state,
                    LayerState::PullComplete | LayerState::AlreadyExists
                ) {
                    states.lock().unwrap().push((l.digest.clone(), l.state));
                }
            }
        };
        let pulled = registry::pull(
            &store,
            &reference,
            &PullOptions::default(),
            &events,
        )?;
        book.say(format!("{name}:"));
        for layer in &pulled.image.layers {
            let states = states.lock().unwrap();
            let state = states.iter().find(|(d, _)| *d == layer.digest);
            let state = state.map_or(LayerState::AlreadyExists, |(_, s)| *s);
            book.fact(&format!("  {}", short(&layer.digest)), state);
            book.fact("  unpacked at", layer.dir.display());
        }
        images.push(pulled.image);
    }
    // ANCHOR_END: unpack

    book.next(narration::shared(&store.root().join("layers")))?;
    // ANCHOR: shared
    let sum: u64 = images.iter().map(|i| i.size()).sum();
    book.fact("sizes of the images, added", format!("{} KiB", sum / 1024));
    let stored = overlay::content_kib(&store.root().join("layers"));
    book.fact("du of the store's layers", format!("{stored} KiB"));
    // ANCHOR_END: shared

    let image = images
        .last()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no image"))?;
    let layers: Vec<Layer> = image
        .layers
        .iter()
        .map(|l| Layer {
            name: short(&l.diff_id),
            path: l.dir.clone(),
        })
        .collect();
    let first = OverlayDirs::create(run_dir.path())?;
    book.next(narration::stack(&overlay::mount_options(&layers, &first)))?;
    // ANCHOR: stack
    let container = Container::start(&ContainerSpec {
        namespaces: NAMESPACES.to_vec(),
        // The base layer's static sleep survives pivot_root.
        main: vec![
            layers[0].path.join("bin/sleep").display().to_string(),
            "infinity".into(),
        ],
        env: busybox::env(),
        ..Default::default()
    })?;
    set_hostname(&container, &cli.container.hostname)?;
    inside(&container, || {
        mounts::make_tree_private()?;
        overlay::mount_overlay(&layers, &first)?;
        rootfs::pivot_into(&first.merged)?;
        Ok(rootfs::mount_kernel_filesystems()?)
    })?;
    show(&book, &container, &["cat", "/etc/motd"])?;
    // ANCHOR_END: stack

    book.user_command_step(&container, &cli.container.command)?;

    book.next(narration::cleanup())?;
    // ANCHOR: cleanup
    let code = container.stop(Duration::from_secs(10))?;
    book.fact("init exited with", code);
    drop(server);
    let path = run_dir.path().to_path_buf();
    drop(run_dir);
    book.fact(
        "registry stopped, run directory removed",
        yes_no(!path.exists()),
    );
    // ANCHOR_END: cleanup

    book.done(
        "an image is a manifest, a config and layers, fetched by digest and \
         checked byte for byte; layers are shared, never copied. the rest of \
         the lab runs them: mini-docker pull, push and run do all of this.",
    );
    Ok(())
}

/// The lab's busybox with one layer more: a message in /etc/motd.
fn with_motd(
    store: &ImageStore,
    base: &container_lab::engine::images::Image,
) -> anyhow::Result<container_lab::engine::images::Image> {
    let mut tar = tar::Builder::new(store.layer_writer()?);
    let text = b"hello from the top layer, pulled over HTTP\n";
    let mut header = tar::Header::new_ustar();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    tar.append_data(&mut header, "etc/motd", &text[..])?;
    let top = tar.into_inner()?.finish()?;
    let mut config: Value =
        serde_json::from_slice(&store.config_bytes(base.id())?)?;
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .ok_or_else(|| anyhow::anyhow!("the base has no diff_ids"))?
        .push(Value::from(top.diff_id.clone()));
    config["config"]["Cmd"] = serde_json::json!(["cat", "/etc/motd"]);
    let mut layers = base.layers.clone();
    layers.push(top);
    let reference = Reference::parse("lab/hello:1")?;
    store.write_image(
        &serde_json::to_vec(&config)?,
        &layers,
        std::slice::from_ref(&reference),
    )?;
    Ok(store.image(&reference)?)
}

/// One answer of the registry.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        let found = self.headers.iter().find(|(k, _)| k == name);
        found.map(|(_, v)| v.clone())
    }
}

/// `curl -H 'Accept: …' -H 'Authorization: Bearer …' URL`.
fn get(
    url: &str,
    accept: Option<&str>,
    token: Option<&str>,
) -> anyhow::Result<Answer> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut request = agent.get(url);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.call()?;
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
        })
        .collect();
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_vec()?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The 12 hex digits Docker shows.
fn short(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

/// What the narrator says before each step: its title, the primitive it
/// applies, the shell command that does the same, and what to look at.
mod narration {
    use std::path::Path;

    use container_lab::lab::narrate::Step;

    pub fn registry(local: bool) -> Step {
        let step = Step::new("a registry, and images in it");
        if local {
            step.primitive(
                "Debian's docker-registry on 127.0.0.1: an HTTP server over \
                 a directory of blobs",
            )
            .shell("docker-registry serve config.yml; mini-docker push …")
            .look(
                "two images pushed: busybox, and busybox with one layer \
                 more; the push skipped the blob the registry already had",
            )
        } else {
            step.primitive("Docker Hub, over HTTPS")
                .shell("(nothing to start)")
                .look("the same requests, against the real registry")
        }
    }

    pub fn resolve(name: &str) -> Step {
        Step::new("resolve the name")
            .primitive("text only: no request yet")
            .shell(format!("echo {name}"))
            .look(
                "a short name means Docker Hub, library/ and :latest; the \
                 registry's host is part of every other name",
            )
    }

    pub fn ping(api: &str) -> Step {
        Step::new("ping the registry and read the challenge")
            .primitive("GET /v2/")
            .shell(format!(
                "curl -si {api}/ | grep -i -e ^HTTP -e www-authenticate"
            ))
            .look(
                "200 lets anyone in; 401 names, in Www-Authenticate, where \
                 to get a token (Bearer) or asks for a password (Basic)",
            )
    }

    pub fn token(path: &str) -> Step {
        Step::new("get a token")
            .primitive("GET REALM?service=SERVICE&scope=repository:NAME:pull")
            .shell(format!(
                "curl -s 'REALM?service=SERVICE&scope=repository:{path}:pull' | jq -r .token"
            ))
            .look("a token for this one repository, pull only")
    }

    pub fn manifest(url: &str) -> Step {
        Step::new("fetch the manifest")
            .primitive("GET /v2/NAME/manifests/TAG, with an Accept of every manifest kind")
            .shell(format!(
                "curl -s -H 'Accept: application/vnd.oci.image.index.v1+json, \
                 application/vnd.oci.image.manifest.v1+json, …' {url}"
            ))
            .look(
                "a small JSON document: the config's digest and each \
                 layer's, not a tarball",
            )
    }

    pub fn platform() -> Step {
        Step::new("pick the platform")
            .primitive("an index lists one manifest per os/architecture/variant")
            .shell("jq '.manifests[] | select(.platform.architecture == \"amd64\")'")
            .look("this machine's platform, or the error listing those there are")
    }

    pub fn config(url: &str) -> Step {
        Step::new("fetch the config")
            .primitive("GET /v2/NAME/blobs/CONFIG_DIGEST")
            .shell(format!("curl -sL {url} | sha256sum"))
            .look(
                "the image id is this blob's sha256; it holds Cmd, Env and \
                 the diff_ids, the sha256 of each uncompressed layer",
            )
    }

    pub fn layers(url: &str) -> Step {
        Step::new("fetch each layer and check its digest")
            .primitive("GET /v2/NAME/blobs/LAYER_DIGEST, hashed as it arrives")
            .shell(format!("curl -sL {url} | sha256sum"))
            .look("a blob whose bytes do not hash to its name is thrown away")
    }

    pub fn unpack() -> Step {
        Step::new("unpack each layer once, with its whiteouts")
            .primitive(
                "mkdirat/openat/mknodat under one directory per diff_id; \
                 .wh.NAME becomes a 0:0 character device, .wh..wh..opq an \
                 opaque directory",
            )
            .shell("mini-docker pull NAME")
            .look(
                "pulled after busybox, hello's base layer already exists: \
                 the same directory serves both images",
            )
    }

    pub fn shared(layers: &Path) -> Step {
        Step::new("a shared layer is stored once")
            .primitive("content addressing: same bytes, same name, one copy")
            .shell(format!("du -sh {}", layers.display()))
            .look("the store holds less than the two images' sizes added up")
    }

    pub fn stack(options: &str) -> Step {
        Step::new("stack the layers and start the container")
            .primitive("mount(\"overlay\") with the layers as lowerdir, top first; pivot_root")
            .shell(format!("mount -t overlay overlay -o {options} merged"))
            .look("the top layer's /etc/motd over busybox")
    }

    pub fn cleanup() -> Step {
        Step::new("clean up")
            .primitive("kill(2) the init, stop the registry, remove the run directory")
            .shell("kill $PID; rm -rf RUN_DIR")
            .look("nothing of the run is left; the lab's own store was never touched")
    }
}
