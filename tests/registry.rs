//! The registry protocol against real peers on 127.0.0.1: Debian's
//! docker-registry (open, Bearer through a token endpoint, Basic through
//! htpasswd) filled by skopeo from layouts umoci made, and read back by
//! skopeo; and a hostile server that lies, loops, stalls and sends tars
//! that try to write outside the store.
//!
//! None of this needs root. As root the whiteout's opaque marker is the
//! `trusted.overlay.opaque` xattr and an overlay mount shows the result;
//! without root the marker is `user.overlay.opaque` (overlay's
//! `userxattr`), the mount is skipped, and the test says so.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::registry::{
    self as reg, host_arch, index_over, layer_tar, raw_tar, registry, umoci_image, Auth, Reply,
    ServedImage, Server,
};
use container_lab::engine::images::registry::{
    login, logout, pull, push, CredentialStore, PullOptions, PushOptions,
};
use container_lab::engine::images::{
    build_from_rootfs, Event, ImageError, ImageStore, LayerState, Platform, Reference, RootfsImage,
};
use tar::EntryType;

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        Work {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn store(&self) -> ImageStore {
        ImageStore::open(&self.path("images")).unwrap()
    }
}

fn options() -> PullOptions {
    let mut options = PullOptions::default();
    options.registry.stall_timeout = Duration::from_secs(3);
    options.registry.response_timeout = Duration::from_secs(10);
    options
}

/// Collects events from any thread.
#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl Events {
    fn sink(&self) -> impl Fn(Event) + Sync + '_ {
        move |e| self.0.lock().unwrap().push(e)
    }
    fn layer_states(&self, digest: &str) -> Vec<LayerState> {
        let mut states: Vec<LayerState> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Layer(l) if l.digest == digest => Some(l.state),
                _ => None,
            })
            .collect();
        states.dedup();
        states
    }
    fn warnings(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Warning(w) => Some(w.clone()),
                _ => None,
            })
            .collect()
    }
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let c_name = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 64];
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

fn listing(store: &ImageStore) -> Vec<String> {
    store
        .list()
        .unwrap()
        .iter()
        .map(|i| format!("{} {}", i.reference, i.id()))
        .collect()
}

fn reference(host: &str, name: &str) -> Reference {
    Reference::parse(&format!("{host}/{name}")).unwrap()
}

fn assert_whiteouts(base_dir: &Path, top_dir: &Path) {
    // The file the top layer deletes: a 0:0 character device.
    let whiteout = fs::symlink_metadata(top_dir.join("etc/passwd")).unwrap();
    assert!(
        whiteout.file_type().is_char_device(),
        "etc/passwd in the top layer is not a whiteout"
    );
    assert_eq!(whiteout.rdev(), 0);
    assert!(!top_dir.join("etc/.wh.passwd").exists());
    // The directory it replaces: opaque, with only the new content.
    let app = top_dir.join("var/lib/app");
    let key = if root() {
        "trusted.overlay.opaque"
    } else {
        "user.overlay.opaque"
    };
    if !root() {
        println!("not root: trusted.overlay.opaque cannot be set, checking {key} (overlay's userxattr) instead");
    }
    assert_eq!(
        xattr(&app, key).as_deref(),
        Some(&b"y"[..]),
        "{} is not opaque",
        app.display()
    );
    assert!(!app.join(".wh..wh..opq").exists());
    assert_eq!(fs::read(app.join("new")).unwrap(), b"3");
    assert_eq!(
        fs::read(base_dir.join("etc/passwd")).unwrap(),
        b"root:x:0:0\n"
    );
    assert!(base_dir.join("var/lib/app/old-1").is_file());
}

/// The kernel's verdict: the layers stacked as overlay lower directories,
/// in a mount namespace that takes the mount with it.
fn overlay_view(lower: &[PathBuf]) -> Option<String> {
    if !root() {
        println!("not root: skipping the overlay mount of the pulled layers");
        return None;
    }
    let dirs: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let mnt = tempfile::tempdir().unwrap();
    let script = format!(
        "mount -t overlay overlay -o lowerdir={} {m} && cd {m} && ls etc && echo -- && ls var/lib/app",
        dirs.join(":"),
        m = mnt.path().display()
    );
    Some(reg::run(Command::new("unshare").args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ])))
}

fn whiteout_layers() -> (Vec<u8>, Vec<u8>) {
    let base = layer_tar(&[
        ("etc/", None),
        ("etc/passwd", Some(b"root:x:0:0\n")),
        ("etc/group", Some(b"root:x:0:\n")),
        ("var/", None),
        ("var/lib/", None),
        ("var/lib/app/", None),
        ("var/lib/app/old-1", Some(b"1")),
        ("var/lib/app/old-2", Some(b"2")),
    ]);
    let top = layer_tar(&[
        ("etc/", None),
        ("etc/.wh.passwd", Some(b"")),
        ("var/", None),
        ("var/lib/", None),
        ("var/lib/app/", None),
        ("var/lib/app/.wh..wh..opq", Some(b"")),
        ("var/lib/app/new", Some(b"3")),
    ]);
    (base, top)
}

#[test]
fn skopeo_pushes_and_we_pull_layers_with_their_whiteouts() {
    let registry = registry(Auth::None);
    let work = Work::new();
    let layout = work.path("layout");
    let (base, top) = whiteout_layers();
    umoci_image(&layout, "v1", &[base.clone(), top.clone()], host_arch());
    registry.skopeo_push(
        &format!("oci:{}:v1", layout.display()),
        "lab/whiteouts:v1",
        &[],
    );

    let store = work.store();
    let events = Events::default();
    let wanted = reference(&registry.host, "lab/whiteouts:v1");
    let pulled = pull(&store, &wanted, &options(), &events.sink()).unwrap();
    assert!(pulled.newer);
    let image = &pulled.image;
    // skopeo's reading of the registry is the reference for what we stored.
    let config: serde_json::Value =
        serde_json::from_str(&registry.skopeo(&["inspect", "--config"], "lab/whiteouts:v1"))
            .unwrap();
    let diff_ids: Vec<String> = image.layers.iter().map(|l| l.diff_id.clone()).collect();
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
    assert_eq!(diff_ids, vec![reg::sha256(&base), reg::sha256(&top)]);
    let raw = registry.skopeo(&["inspect", "--raw"], "lab/whiteouts:v1");
    assert_eq!(reg::sha256(raw.as_bytes()), image.manifest_digest);
    assert_eq!(
        image.config.config().as_ref().unwrap().cmd().as_deref(),
        Some(&["/bin/sh".to_string()][..])
    );
    assert_whiteouts(&image.layers[0].dir, &image.layers[1].dir);
    for layer in &image.layers {
        let states = events.layer_states(&layer.digest);
        assert_eq!(states.first(), Some(&LayerState::Waiting), "{states:?}");
        assert_eq!(states.last(), Some(&LayerState::PullComplete), "{states:?}");
        assert!(states.contains(&LayerState::Verifying), "{states:?}");
    }
    if let Some(view) = overlay_view(&image.lower_dirs()) {
        assert_eq!(
            view, "group\n--\nnew\n",
            "the overlay shows deleted or replaced files"
        );
    }

    // Again: nothing to fetch, and, as Docker, no layer named.
    let again = Events::default();
    let second = pull(&store, &wanted, &options(), &again.sink()).unwrap();
    assert!(!second.newer);
    for layer in &image.layers {
        assert_eq!(again.layer_states(&layer.digest), vec![]);
    }
    assert_eq!(listing(&store).len(), 1);
}

fn sample_rootfs(dir: &Path) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("etc/conf.d")).unwrap();
    // Enough bytes that the gzipped layer needs several upload chunks.
    let body: Vec<u8> = (0..20_000u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_le_bytes())
        .collect();
    fs::write(dir.join("bin/tool"), &body).unwrap();
    fs::set_permissions(dir.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.join("etc/conf.d/a"), "a=1\n").unwrap();
    fs::hard_link(dir.join("etc/conf.d/a"), dir.join("etc/conf.d/b")).unwrap();
    std::os::unix::fs::symlink("/bin/tool", dir.join("bin/alias")).unwrap();
}

#[test]
fn what_we_push_skopeo_reads_and_copies_back_byte_identical() {
    let registry = registry(Auth::None);
    let work = Work::new();
    let rootfs = work.path("rootfs");
    sample_rootfs(&rootfs);
    let store = work.store();
    let local = Reference::parse("lab/local:1").unwrap();
    let config = RootfsImage {
        env: vec!["PATH=/bin".into()],
        cmd: vec!["/bin/tool".into()],
        created_by: "the registry test".into(),
        ..RootfsImage::default()
    };
    let image = build_from_rootfs(&store, &rootfs, &local, &config).unwrap();
    let blob = |digest: &str| fs::read(store.blob_path(digest).unwrap()).unwrap();
    assert!(
        image.layers[0].size > 3000,
        "the layer is too small to be chunked"
    );

    for (tag, chunk) in [("mono", None), ("chunked", Some(1024))] {
        let target = reference(&registry.host, &format!("lab/pushed:{tag}"));
        let events = Events::default();
        let options = PushOptions {
            registry: options().registry,
            chunk_size: chunk,
        };
        let pushed = push(&store, "lab/local:1", &target, &options, &events.sink()).unwrap();
        assert_eq!(pushed.digest, image.manifest_digest);
        let states = events.layer_states(&image.layers[0].digest);
        if tag == "mono" {
            assert_eq!(states.last(), Some(&LayerState::Pushed), "{states:?}");
        } else {
            // Same repository: the registry has the layer; a HEAD told us.
            assert_eq!(
                states,
                vec![LayerState::Preparing, LayerState::LayerAlreadyExists]
            );
        }
        let raw = registry.skopeo(&["inspect", "--raw"], &format!("lab/pushed:{tag}"));
        assert_eq!(raw.as_bytes(), blob(&image.manifest_digest), "{tag}");
    }
    // A fresh repository, chunked for real.
    let target = reference(&registry.host, "lab/chunked:1");
    let events = Events::default();
    let options = PushOptions {
        registry: options().registry,
        chunk_size: Some(1024),
    };
    push(&store, image.id(), &target, &options, &events.sink()).unwrap();
    let pushing = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Layer(l) if l.state == LayerState::Pushing))
        .count();
    assert!(pushing >= 3, "expected several PATCH chunks, saw {pushing}");

    let back = work.path("back");
    let mut copy = Command::new("skopeo");
    copy.args(["copy", "-q", "--preserve-digests"])
        .args(registry.skopeo_flags("src"))
        .arg(format!("docker://{}/lab/chunked:1", registry.host))
        .arg(format!("oci:{}:x", back.display()));
    reg::run(&mut copy);
    let mut digests = vec![image.manifest_digest.clone(), image.config_digest.clone()];
    digests.extend(image.layers.iter().map(|l| l.digest.clone()));
    for digest in digests {
        let theirs = fs::read(back.join("blobs/sha256").join(&digest[7..])).unwrap();
        assert_eq!(
            theirs,
            blob(&digest),
            "{digest} differs after the round trip"
        );
    }

    // And our own pull of it, into another store, gives the same tree.
    let other = ImageStore::open(&work.path("other")).unwrap();
    let pulled = pull(&other, &target, &self::options(), &|_| {}).unwrap();
    assert_eq!(pulled.image.id(), image.id());
    assert_eq!(
        common::fingerprint(&pulled.image.layers[0].dir),
        common::fingerprint(&rootfs)
    );
}

#[test]
fn an_index_gives_this_platform_or_the_one_asked_for() {
    let registry = registry(Auth::None);
    let work = Work::new();
    let layout = work.path("layout");
    umoci_image(
        &layout,
        "amd",
        &[layer_tar(&[("arch", Some(b"amd64"))])],
        "amd64",
    );
    umoci_image(
        &layout,
        "arm",
        &[layer_tar(&[("arch", Some(b"arm64"))])],
        "arm64",
    );
    index_over(
        &layout,
        "multi",
        &[("amd", "amd64", None), ("arm", "arm64", Some("v8"))],
    );
    registry.skopeo_push(
        &format!("oci:{}:multi", layout.display()),
        "lab/multi:1",
        &["--all"],
    );
    let index_digest = reg::sha256(
        registry
            .skopeo(&["inspect", "--raw"], "lab/multi:1")
            .as_bytes(),
    );

    let wanted = reference(&registry.host, "lab/multi:1");
    let store = work.store();
    let mine = pull(&store, &wanted, &options(), &|_| {}).unwrap();
    assert_eq!(
        fs::read_to_string(mine.image.layers[0].dir.join("arch")).unwrap(),
        host_arch()
    );
    assert_eq!(mine.repo_digest, index_digest);
    assert_eq!(
        mine.image.repo_digest,
        Some(format!("{}@{index_digest}", wanted.name()))
    );

    let other = ImageStore::open(&work.path("arm")).unwrap();
    let mut arm = options();
    arm.platform = Platform::parse("linux/arm64").unwrap();
    let theirs = pull(&other, &wanted, &arm, &|_| {}).unwrap();
    assert_eq!(
        fs::read_to_string(theirs.image.layers[0].dir.join("arch")).unwrap(),
        "arm64"
    );

    let before = listing(&store);
    let mut riscv = options();
    riscv.platform = Platform::parse("linux/riscv64").unwrap();
    let err = pull(&store, &wanted, &riscv, &|_| {}).unwrap_err();
    assert!(matches!(err, ImageError::NoSuchPlatform { .. }));
    assert!(
        err.to_string()
            .ends_with("has no image for linux/riscv64; it has linux/amd64, linux/arm64/v8"),
        "{err}"
    );
    assert_eq!(listing(&store), before);
}

#[test]
fn zstd_layers_are_pulled_and_unpacked() {
    let registry = registry(Auth::None);
    let work = Work::new();
    let layout = work.path("layout");
    let tar = layer_tar(&[("etc/", None), ("etc/zstd", Some(b"squeezed\n"))]);
    umoci_image(&layout, "z", std::slice::from_ref(&tar), host_arch());
    registry.skopeo_push(
        &format!("oci:{}:z", layout.display()),
        "lab/zstd:1",
        &["--dest-compress-format", "zstd"],
    );
    let store = work.store();
    let pulled = pull(
        &store,
        &reference(&registry.host, "lab/zstd:1"),
        &options(),
        &|_| {},
    )
    .unwrap();
    let layer = &pulled.image.layers[0];
    assert_eq!(
        layer.media_type,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let blob = fs::read(store.blob_path(&layer.digest).unwrap()).unwrap();
    assert_eq!(
        &blob[..4],
        &[0x28, 0xb5, 0x2f, 0xfd],
        "the stored blob is not zstd"
    );
    assert_eq!(layer.diff_id, reg::sha256(&tar));
    assert_eq!(fs::read(layer.dir.join("etc/zstd")).unwrap(), b"squeezed\n");
}

#[test]
fn a_bearer_challenge_gets_a_token_for_the_repository() {
    let registry = registry(Auth::Bearer);
    let work = Work::new();
    let layout = work.path("layout");
    umoci_image(
        &layout,
        "b",
        &[layer_tar(&[("hello", Some(b"bearer"))])],
        host_arch(),
    );
    registry.skopeo_push(&format!("oci:{}:b", layout.display()), "lab/bearer:1", &[]);
    let wanted = reference(&registry.host, "lab/bearer:1");

    let store = work.store();
    registry.token_requests.lock().unwrap().clear();
    pull(&store, &wanted, &options(), &|_| {}).unwrap();
    let anonymous = registry.token_requests.lock().unwrap().clone();
    assert!(
        anonymous.iter().any(
            |(query, auth)| query.contains("scope=repository:lab/bearer:pull")
                && query.contains("service=lab-test-registry")
                && auth.is_none()
        ),
        "{anonymous:?}"
    );

    // With stored credentials, the token request carries them (Basic).
    let credentials = CredentialStore::new(work.path("docker/config.json"));
    credentials
        .store(&registry.host, reg::USER, reg::PASSWORD)
        .unwrap();
    let mut with_login = options();
    with_login.registry.credentials = Some(credentials.path.clone());
    registry.token_requests.lock().unwrap().clear();
    let other = ImageStore::open(&work.path("other")).unwrap();
    pull(&other, &wanted, &with_login, &|_| {}).unwrap();
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", reg::USER, reg::PASSWORD)
        )
    );
    let requests = registry.token_requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|(_, auth)| auth.as_deref() == Some(basic.as_str())),
        "{requests:?}"
    );
}

#[test]
fn basic_auth_login_pull_and_logout() {
    let registry = registry(Auth::Basic);
    let work = Work::new();
    let layout = work.path("layout");
    umoci_image(
        &layout,
        "b",
        &[layer_tar(&[("hello", Some(b"basic"))])],
        host_arch(),
    );
    registry.skopeo_push(&format!("oci:{}:b", layout.display()), "lab/basic:1", &[]);
    let wanted = reference(&registry.host, "lab/basic:1");
    let store = work.store();

    let err = pull(&store, &wanted, &options(), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a login"), "{err}");

    let credentials = CredentialStore::new(work.path("docker/config.json"));
    let registry_options = options().registry;
    let err = login(
        &registry_options,
        &credentials,
        &registry.host,
        reg::USER,
        "wrong",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::Unauthorized {
                with_credentials: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        !credentials.path.exists(),
        "a failed login stored something"
    );

    login(
        &registry_options,
        &credentials,
        &registry.host,
        reg::USER,
        reg::PASSWORD,
    )
    .unwrap();
    let meta = fs::metadata(&credentials.path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(&credentials.path).unwrap()).unwrap();
    assert_eq!(config["auths"][&registry.host]["auth"], "bGFiOnMzY3JldA==");

    let mut with_login = options();
    with_login.registry.credentials = Some(credentials.path.clone());
    let pulled = pull(&store, &wanted, &with_login, &|_| {}).unwrap();
    assert_eq!(
        fs::read(pulled.image.layers[0].dir.join("hello")).unwrap(),
        b"basic"
    );

    assert!(logout(&credentials, &registry.host).unwrap());
    let err = pull(
        &ImageStore::open(&work.path("other")).unwrap(),
        &wanted,
        &with_login,
        &|_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("needs a login"), "{err}");
}

// ---------------------------------------------------------------------------
// The hostile registry.

/// A store that already holds an image, so "unchanged" means something.
fn store_with_one_image(work: &Work) -> ImageStore {
    let store = work.store();
    let rootfs = work.path("rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    fs::write(rootfs.join("keep"), "me").unwrap();
    build_from_rootfs(
        &store,
        &rootfs,
        &Reference::parse("lab/existing:1").unwrap(),
        &RootfsImage::default(),
    )
    .unwrap();
    store
}

/// Pulls from a server that answers with `answer` (falling back to a
/// plain registry for `image`), and checks that it failed, that the store
/// lists what it listed before, and holds no partial files nor the
/// refused layer.
fn hostile_pull(
    image: &ServedImage,
    answer: impl Fn(&reg::Request) -> Option<Reply> + Send + Sync + 'static,
    expect: &str,
) {
    let work = Work::new();
    let store = store_with_one_image(&work);
    let before = listing(&store);
    let served = ServedImage {
        manifest: image.manifest.clone(),
        manifest_digest: image.manifest_digest.clone(),
        blobs: image.blobs.clone(),
        layers: image.layers.clone(),
    };
    let server = Server::start(move |request| {
        answer(request)
            .or_else(|| served.answer(request))
            .unwrap_or_else(|| Reply::json(404, "{}"))
    });
    let wanted = reference(&server.host, "lab/hostile:1");
    let err = pull(&store, &wanted, &options(), &|_| {}).expect_err("the hostile pull succeeded");
    let message = err.to_string();
    println!("refused as expected: {message}");
    assert!(
        message.contains(expect),
        "expected {expect:?} in: {message}"
    );
    assert_eq!(listing(&store), before, "the store's listing changed");
    drop(store);
    let store = ImageStore::open(&work.path("images")).unwrap();
    assert_eq!(
        fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0,
        "temporaries left behind"
    );
    // Only complete, verified blobs may remain.
    let blobs: Vec<_> = fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for blob in &blobs {
        let name = blob.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            reg::sha256(&fs::read(blob).unwrap()),
            format!("sha256:{name}"),
            "a blob does not match its name"
        );
    }
    for layer in &image.layers {
        assert!(
            !store.blob_path(layer).unwrap().exists(),
            "the refused layer {layer} was stored"
        );
    }
    let layers = fs::read_dir(store.root().join("layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(layers, 1, "only the existing image's layer may be unpacked");
}

#[test]
fn a_blob_with_the_wrong_digest_is_discarded() {
    let image = ServedImage::new(&[layer_tar(&[("file", Some(b"content"))])]);
    let layer = image.layers[0].clone();
    let mut tampered = image.blobs[&layer].clone();
    // gzip's MTIME field: the content still unpacks, only the digest differs.
    tampered[4] ^= 0xff;
    let wrong = layer.clone();
    hostile_pull(
        &image,
        move |r| {
            r.path
                .ends_with(&wrong)
                .then(|| Reply::bytes(200, "application/octet-stream", tampered.clone()))
        },
        &format!("layer {layer} has digest sha256:"),
    );
}

/// An image whose single layer is `tar`, served as is.
fn hostile_layer(tar: Vec<u8>, expect: &str) {
    let image = ServedImage::new(&[tar]);
    hostile_pull(&image, |_| None, expect);
}

#[test]
fn layers_that_reach_outside_are_refused() {
    let work = Work::new();
    let outside = work.path("outside");
    fs::create_dir_all(&outside).unwrap();
    let abs = format!("{}/evil", outside.display());
    let up = format!("{}{}", "../".repeat(16), abs.trim_start_matches('/'));
    hostile_layer(
        raw_tar(&[(up.as_bytes(), EntryType::Regular, b"", b"x")]),
        "climbs out of the layer with '..'",
    );
    hostile_layer(
        raw_tar(&[(abs.as_bytes(), EntryType::Regular, b"", b"x")]),
        "has an absolute path",
    );
    hostile_layer(
        raw_tar(&[
            (
                b"link",
                EntryType::Symlink,
                outside.to_str().unwrap().as_bytes(),
                b"",
            ),
            (b"link/evil", EntryType::Regular, b"", b"x"),
        ]),
        "a symlink an earlier entry made",
    );
    let passwd_links = fs::metadata("/etc/passwd").unwrap().nlink();
    hostile_layer(
        raw_tar(&[(b"passwd", EntryType::Link, b"/etc/passwd", b"")]),
        "is a hardlink to \"/etc/passwd\", outside the layer (an absolute path)",
    );
    hostile_layer(
        raw_tar(&[(
            b"passwd",
            EntryType::Link,
            b"../../../../../../../../etc/passwd",
            b"",
        )]),
        "is a hardlink to",
    );
    assert_eq!(
        fs::metadata("/etc/passwd").unwrap().nlink(),
        passwd_links,
        "a hardlink to /etc/passwd was made"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn device_nodes_are_skipped_and_said_so() {
    let tar = raw_tar(&[
        (b"dev/", EntryType::Directory, b"", b""),
        (b"dev/mem", EntryType::Char, b"", b""),
        (b"dev/sda", EntryType::Block, b"", b""),
        (b"ok", EntryType::Regular, b"", b"fine"),
    ]);
    let image = ServedImage::new(&[tar]);
    let served = PlainServer::new(image);
    let work = Work::new();
    let store = work.store();
    let events = Events::default();
    let pulled = pull(
        &store,
        &reference(&served.server.host, "lab/devices:1"),
        &options(),
        &events.sink(),
    )
    .unwrap();
    let dir = &pulled.image.layers[0].dir;
    assert!(!dir.join("dev/mem").exists() && !dir.join("dev/sda").exists());
    assert_eq!(fs::read(dir.join("ok")).unwrap(), b"fine");
    let warnings = events.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("dev/mem: character device 1:3 not created"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("dev/sda: block device 8:3 not created"),
        "{warnings:?}"
    );
}

/// A plain (well-behaved) server for one image.
struct PlainServer {
    server: Server,
}

impl PlainServer {
    fn new(image: ServedImage) -> PlainServer {
        PlainServer {
            server: Server::start(move |r| {
                image.answer(r).unwrap_or_else(|| Reply::json(404, "{}"))
            }),
        }
    }
}

#[test]
fn a_manifest_far_larger_than_any_real_one_is_refused() {
    let image = ServedImage::new(&[layer_tar(&[("f", Some(b"x"))])]);
    let huge = vec![b' '; 5 << 20];
    hostile_pull(
        &image,
        move |r| {
            r.path.contains("/manifests/").then(|| {
                Reply::bytes(
                    200,
                    "application/vnd.oci.image.manifest.v1+json",
                    huge.clone(),
                )
            })
        },
        "is larger than 4194304 bytes",
    );
}

#[test]
fn an_endless_blob_is_cut_off() {
    let image = ServedImage::new(&[layer_tar(&[("f", Some(b"x"))])]);
    let layer = image.layers[0].clone();
    hostile_pull(
        &image,
        move |r| r.path.ends_with(&layer).then_some(Reply::Endless),
        "bytes its descriptor says; the transfer was stopped",
    );
}

#[test]
fn a_redirect_loop_ends() {
    let image = ServedImage::new(&[layer_tar(&[("f", Some(b"x"))])]);
    let layer = image.layers[0].clone();
    hostile_pull(
        &image,
        move |r| r.path.ends_with(&layer).then(|| Reply::redirect(&r.path)),
        "more than 10 redirects (a redirect loop?)",
    );
}

#[test]
fn a_server_error_is_reported() {
    let image = ServedImage::new(&[layer_tar(&[("f", Some(b"x"))])]);
    hostile_pull(
        &image,
        |r| {
            r.path.contains("/manifests/").then(|| {
                Reply::json(
                    500,
                    r#"{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}"#,
                )
            })
        },
        "the registry answered 500: UNKNOWN: disk on fire",
    );
}

#[test]
fn a_stalling_server_times_out() {
    let image = ServedImage::new(&[layer_tar(&[("f", Some(&[7u8; 4096]))])]);
    let layer = image.layers[0].clone();
    let blob = image.blobs[&layer].clone();
    hostile_pull(
        &image,
        move |r| {
            r.path.ends_with(&layer).then(|| Reply::Stall {
                length: blob.len() as u64,
                prefix: blob[..blob.len() / 2].to_vec(),
                started: None,
            })
        },
        "the registry sent nothing for 3 s; the transfer was abandoned",
    );
}

#[test]
fn a_dropped_connection_stores_nothing() {
    let image = ServedImage::new(&[layer_tar(&[("f", Some(&[9u8; 4096]))])]);
    let layer = image.layers[0].clone();
    let blob = image.blobs[&layer].clone();
    hostile_pull(
        &image,
        move |r| {
            r.path.ends_with(&layer).then(|| Reply::Cut {
                length: blob.len() as u64,
                prefix: blob[..blob.len() / 2].to_vec(),
            })
        },
        "the connection closed after",
    );
}

#[test]
fn a_redirect_to_another_host_gets_no_authorization() {
    let image = Arc::new(ServedImage::new(&[layer_tar(&[(
        "f",
        Some(b"redirected"),
    )])]));
    let elsewhere = {
        let image = image.clone();
        Server::start(move |r| {
            let digest = r.path.rsplit('/').next().unwrap_or_default();
            match image.blobs.get(digest) {
                Some(body) => Reply::bytes(200, "application/octet-stream", body.clone()),
                None => Reply::json(404, "{}"),
            }
        })
    };
    // The same port under another name: another host for redirect rules.
    let other_host = elsewhere.host.replace("127.0.0.1", "localhost");
    let registry_host = Arc::new(Mutex::new(String::new()));
    let server = {
        let image = image.clone();
        let registry_host = registry_host.clone();
        Server::start(move |r| {
            let me = registry_host.lock().unwrap().clone();
            if r.path.starts_with("/token") {
                return Reply::json(200, r#"{"token":"secret-token"}"#);
            }
            if r.headers.get("authorization").map(String::as_str) != Some("Bearer secret-token") {
                return Reply::Full {
                    status: 401,
                    headers: vec![(
                        "Www-Authenticate".into(),
                        format!("Bearer realm=\"http://{me}/token\",service=\"hostile\""),
                    )],
                    body: b"{}".to_vec(),
                };
            }
            if image.layers.iter().any(|l| r.path.ends_with(l.as_str())) {
                let digest = r.path.rsplit('/').next().unwrap();
                return Reply::redirect(&format!("http://{other_host}/storage/{digest}"));
            }
            image.answer(r).unwrap_or_else(|| Reply::json(404, "{}"))
        })
    };
    *registry_host.lock().unwrap() = server.host.clone();
    let work = Work::new();
    let store = work.store();
    let pulled = pull(
        &store,
        &reference(&server.host, "lab/redirected:1"),
        &options(),
        &|_| {},
    )
    .unwrap();
    assert_eq!(
        fs::read(pulled.image.layers[0].dir.join("f")).unwrap(),
        b"redirected"
    );
    let storage = elsewhere.requests();
    assert!(
        !storage.is_empty(),
        "the blob was not fetched from the other host"
    );
    for request in storage {
        assert_eq!(
            request.headers.get("authorization"),
            None,
            "the token went to another host"
        );
    }
    let blob_requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/blobs/"))
        .collect();
    assert!(blob_requests
        .iter()
        .all(|r| r.headers.contains_key("authorization")));
}

// ---------------------------------------------------------------------------
// An interrupted pull, in a child process killed mid-layer.

const CHILD_STORE: &str = "LAB_TEST_CHILD_STORE";
const CHILD_REFERENCE: &str = "LAB_TEST_CHILD_REFERENCE";

#[test]
#[ignore = "a helper: interrupted_pulls_leave_no_half_image runs it in a child process"]
fn child_pull() {
    let (Ok(store), Ok(reference)) = (std::env::var(CHILD_STORE), std::env::var(CHILD_REFERENCE))
    else {
        println!("child_pull runs only as the child of interrupted_pulls_leave_no_half_image");
        return;
    };
    let store = ImageStore::open(Path::new(&store)).unwrap();
    let mut options = options();
    options.registry.stall_timeout = Duration::from_secs(120);
    pull(
        &store,
        &Reference::parse(&reference).unwrap(),
        &options,
        &|_| {},
    )
    .unwrap();
}

/// Bytes that gzip cannot shrink much, so the blob is large on the wire.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn interrupted_pulls_leave_no_half_image() {
    let big = noise(4 << 20);
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
    let wanted = reference(&server.host, "lab/interrupted:1");
    for signal in [libc::SIGKILL, libc::SIGINT] {
        stalling.store(true, Ordering::SeqCst);
        let work = Work::new();
        let path = work.path("images");
        let mut child = Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "child_pull",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_STORE, &path)
            .env(CHILD_REFERENCE, wanted.to_string())
            .stdout(std::process::Stdio::null());
        // SIGINT at its default, as Ctrl-C finds a command in a terminal,
        // also when this suite was started in the background of a shell
        // without job control, which ignores it (ignored stays ignored).
        // Safety: one async-signal-safe call between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut child, || {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = child.spawn().unwrap();
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the child never reached the big layer");
        // Mid-layer: half the blob is in a temporary file in the store.
        let partial = common::wait_for(common::PATIENCE, || {
            fs::read_dir(path.join("tmp")).ok()?.flatten().find(|e| {
                e.file_name().to_string_lossy().starts_with("blob")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            })
        });
        assert!(partial.is_some(), "no partial download in tmp/");
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(signal)
        );

        let store = ImageStore::open(&path).unwrap();
        assert!(listing(&store).is_empty(), "a half-pulled image is listed");
        assert_eq!(
            fs::read_dir(path.join("tmp")).unwrap().count(),
            0,
            "the partial download was not cleaned up"
        );
        for blob in fs::read_dir(path.join("blobs/sha256")).unwrap() {
            let blob = blob.unwrap().path();
            let name = blob.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                reg::sha256(&fs::read(&blob).unwrap()),
                format!("sha256:{name}")
            );
        }
        stalling.store(false, Ordering::SeqCst);
        let pulled = pull(&store, &wanted, &options(), &|_| {}).unwrap();
        assert_eq!(
            fs::read(pulled.image.layers[1].dir.join("big")).unwrap(),
            big
        );
        assert_eq!(listing(&store).len(), 1);
    }
}
