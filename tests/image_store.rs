//! The image store with no registry: images built from a root filesystem,
//! tags and removal with shared layers, save and load in both archive
//! formats (read and written by skopeo too), concurrent writers, the
//! cleanup of an interrupted run, and archives that try to escape.
//!
//! None of this needs root (as root, files keep the tar's owners).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::registry::{self as reg, host_arch, layer_tar, raw_tar, umoci_image};
use container_lab::engine::images::{
    build_from_rootfs, load, save, ArchiveFormat, ImageError, ImageStore, Reference, RootfsImage,
    UnpackLimits,
};

fn rootfs(dir: &Path, marker: &str) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(dir.join("bin/sh"), format!("#!fake shell {marker}\n")).unwrap();
    fs::set_permissions(dir.join("bin/sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.join("etc/motd"), marker).unwrap();
    std::os::unix::fs::symlink("sh", dir.join("bin/ash")).unwrap();
}

fn busybox_config() -> RootfsImage {
    RootfsImage {
        env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()],
        cmd: vec!["sh".into()],
        created_by: "container-lab: the busybox tree".into(),
        ..RootfsImage::default()
    }
}

fn names(store: &ImageStore) -> Vec<String> {
    store
        .list()
        .unwrap()
        .iter()
        .map(|i| i.reference.familiar())
        .collect()
}

fn dir_entries(path: &Path) -> usize {
    fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn an_image_built_from_a_rootfs_is_an_ordinary_oci_image() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    rootfs(&tree, "one");
    let store_dir = work.path().join("images");
    let store = ImageStore::open(&store_dir).unwrap();
    let busybox = Reference::parse("busybox").unwrap();
    let image = build_from_rootfs(&store, &tree, &busybox, &busybox_config()).unwrap();
    assert_eq!(names(&store), vec!["busybox:latest"]);
    assert_eq!(
        common::fingerprint(&image.layers[0].dir),
        common::fingerprint(&tree)
    );
    let config = image.config.config().clone().unwrap();
    assert_eq!(config.cmd().clone().unwrap(), vec!["sh".to_string()]);
    assert_eq!(
        config.env().clone().unwrap()[0],
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert!(image.size() > 0);

    // The same tree gives the same image, and its layer is not stored twice.
    let again = build_from_rootfs(
        &store,
        &tree,
        &Reference::parse("busybox:copy").unwrap(),
        &busybox_config(),
    )
    .unwrap();
    assert_eq!(again.id(), image.id());
    assert_eq!(dir_entries(&store_dir.join("layers/sha256")), 1);

    // The layout on disk, read as a file and by skopeo.
    assert_eq!(
        fs::read_to_string(store_dir.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(store_dir.join("index.json")).unwrap()).unwrap();
    let refs: BTreeSet<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        refs,
        BTreeSet::from([
            "docker.io/library/busybox:latest",
            "docker.io/library/busybox:copy"
        ])
    );
    reg::require_tools();
    let inspect = reg::run(
        Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!(
                "oci:{}:docker.io/library/busybox:latest",
                store_dir.display()
            )),
    );
    let theirs: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(
        theirs["rootfs"]["diff_ids"][0],
        image.layers[0].diff_id.as_str()
    );
    assert_eq!(theirs["architecture"], host_arch());
}

#[test]
fn tags_share_an_image_and_removal_keeps_what_others_need() {
    let work = tempfile::tempdir().unwrap();
    let store_dir = work.path().join("images");
    let store = ImageStore::open(&store_dir).unwrap();
    let tree = work.path().join("tree");
    rootfs(&tree, "tagged");
    let image = build_from_rootfs(
        &store,
        &tree,
        &Reference::parse("app:1").unwrap(),
        &RootfsImage::default(),
    )
    .unwrap();
    store
        .tag(
            "app:1",
            &Reference::parse("registry.example:5000/team/app:2").unwrap(),
        )
        .unwrap();
    assert_eq!(
        names(&store),
        vec!["app:1", "registry.example:5000/team/app:2"]
    );
    assert_eq!(store.find(&image.short_id()[..6]).unwrap().id(), image.id());
    let blobs = dir_entries(&store_dir.join("blobs/sha256"));

    let removed = store.remove("app:1").unwrap();
    assert_eq!(removed.untagged.len(), 1);
    assert!(
        removed.deleted.is_empty(),
        "deleted what the other tag needs: {:?}",
        removed.deleted
    );
    assert_eq!(dir_entries(&store_dir.join("blobs/sha256")), blobs);

    let removed = store.remove("registry.example:5000/team/app:2").unwrap();
    assert_eq!(
        removed.deleted.len(),
        4,
        "manifest, config, layer blob, unpacked layer: {:?}",
        removed.deleted
    );
    assert_eq!(dir_entries(&store_dir.join("blobs/sha256")), 0);
    assert_eq!(dir_entries(&store_dir.join("layers/sha256")), 0);
    let err = store.remove("app:1").unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert_eq!(err.to_string(), "no image app:1 in the store");
}

/// Two images from umoci sharing a base layer, as skopeo docker-archives.
fn two_images_sharing_a_base(work: &Path) -> (Vec<u8>, [std::path::PathBuf; 2]) {
    reg::require_tools();
    let base = layer_tar(&[("base/", None), ("base/data", Some(&[42u8; 100_000]))]);
    let layout = work.join("layout");
    let mut archives = Vec::new();
    for name in ["one", "two"] {
        let top = layer_tar(&[(name, Some(name.as_bytes()))]);
        umoci_image(&layout, name, &[base.clone(), top], host_arch());
        let archive = work.join(format!("{name}.tar"));
        reg::run(
            Command::new("skopeo")
                .args(["copy", "-q"])
                .arg(format!("oci:{}:{name}", layout.display()))
                .arg(format!("docker-archive:{}:lab/{name}:1", archive.display())),
        );
        archives.push(archive);
    }
    (base, [archives[0].clone(), archives[1].clone()])
}

#[test]
fn a_shared_layer_is_stored_once_and_removed_last() {
    let work = tempfile::tempdir().unwrap();
    let (base, archives) = two_images_sharing_a_base(work.path());
    let store_dir = work.path().join("images");
    let store = ImageStore::open(&store_dir).unwrap();
    for archive in &archives {
        let loaded = load(
            &store,
            fs::File::open(archive).unwrap(),
            UnpackLimits::default(),
            &|_| {},
        )
        .unwrap();
        assert_eq!(loaded.len(), 1);
    }
    assert_eq!(names(&store), vec!["lab/one:1", "lab/two:1"]);
    let one = store.find("lab/one:1").unwrap();
    let two = store.find("lab/two:1").unwrap();
    assert_eq!(one.layers[0].diff_id, reg::sha256(&base));
    assert_eq!(
        one.layers[0].dir, two.layers[0].dir,
        "the base layer is not shared"
    );
    assert_eq!(dir_entries(&store_dir.join("layers/sha256")), 3);
    assert_eq!(fs::read(two.layers[1].dir.join("two")).unwrap(), b"two");

    store.remove("lab/one:1").unwrap();
    assert!(
        two.layers[0].dir.is_dir(),
        "the shared layer went with the first image"
    );
    assert!(!one.layers[1].dir.exists());
    store.remove("lab/two:1").unwrap();
    assert_eq!(dir_entries(&store_dir.join("layers/sha256")), 0);
    assert_eq!(dir_entries(&store_dir.join("blobs/sha256")), 0);
}

#[test]
fn save_and_load_both_formats_and_skopeo_agrees() {
    reg::require_tools();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    rootfs(&tree, "saved");
    let store = ImageStore::open(&work.path().join("images")).unwrap();
    let image = build_from_rootfs(
        &store,
        &tree,
        &Reference::parse("lab/saved:1").unwrap(),
        &busybox_config(),
    )
    .unwrap();

    for (format, transport) in [
        (ArchiveFormat::Docker, "docker-archive"),
        (ArchiveFormat::Oci, "oci-archive"),
    ] {
        let archive = work.path().join(format!("{transport}.tar"));
        save(
            &store,
            &["lab/saved:1"],
            format,
            fs::File::create(&archive).unwrap(),
        )
        .unwrap();
        // skopeo reads what we wrote.
        let source = match format {
            ArchiveFormat::Docker => format!("{transport}:{}", archive.display()),
            ArchiveFormat::Oci => {
                format!("{transport}:{}:docker.io/lab/saved:1", archive.display())
            }
        };
        let config: serde_json::Value = serde_json::from_str(&reg::run(
            Command::new("skopeo").args(["inspect", "--config", &source]),
        ))
        .unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            image.layers[0].diff_id.as_str(),
            "{transport}"
        );
        // And we read it back, into an empty store.
        let other = ImageStore::open(&work.path().join(format!("loaded-{transport}"))).unwrap();
        let loaded = load(
            &other,
            fs::File::open(&archive).unwrap(),
            UnpackLimits::default(),
            &|_| {},
        )
        .unwrap();
        assert_eq!(loaded, vec![Reference::parse("lab/saved:1").unwrap()]);
        let back = other.find("lab/saved:1").unwrap();
        assert_eq!(back.id(), image.id(), "{transport}");
        assert_eq!(
            common::fingerprint(&back.layers[0].dir),
            common::fingerprint(&tree)
        );
    }

    // An OCI archive written by skopeo loads too.
    let layout = work.path().join("layout");
    umoci_image(
        &layout,
        "x",
        &[layer_tar(&[("from-skopeo", Some(b"yes"))])],
        host_arch(),
    );
    let archive = work.path().join("skopeo-oci.tar");
    reg::run(
        Command::new("skopeo")
            .args(["copy", "-q"])
            .arg(format!("oci:{}:x", layout.display()))
            .arg(format!(
                "oci-archive:{}:docker.io/lab/skopeo:1",
                archive.display()
            )),
    );
    let loaded = load(
        &store,
        fs::File::open(&archive).unwrap(),
        UnpackLimits::default(),
        &|_| {},
    )
    .unwrap();
    assert_eq!(loaded[0].familiar(), "lab/skopeo:1");
    let theirs = store.find("lab/skopeo:1").unwrap();
    assert_eq!(
        fs::read(theirs.layers[0].dir.join("from-skopeo")).unwrap(),
        b"yes"
    );
}

#[test]
fn concurrent_writers_keep_every_image() {
    let work = tempfile::tempdir().unwrap();
    let store_dir = work.path().join("images");
    std::thread::scope(|scope| {
        for i in 0..4 {
            let (work, store_dir) = (work.path(), &store_dir);
            scope.spawn(move || {
                let tree = work.join(format!("tree{i}"));
                rootfs(&tree, &format!("writer {i}"));
                // Each with its own handle, as separate processes would.
                let store = ImageStore::open(store_dir).unwrap();
                let reference = Reference::parse(&format!("lab/concurrent:{i}")).unwrap();
                build_from_rootfs(&store, &tree, &reference, &RootfsImage::default()).unwrap();
            });
        }
    });
    let store = ImageStore::open(&store_dir).unwrap();
    assert_eq!(store.list().unwrap().len(), 4);
}

#[test]
fn the_next_open_clears_what_an_interrupted_run_left() {
    let work = tempfile::tempdir().unwrap();
    let store_dir = work.path().join("images");
    // While another handle is open, someone may be mid-write: kept.
    let busy = ImageStore::open(&store_dir).unwrap();
    let tmp = store_dir.join("tmp");
    fs::write(tmp.join("blob-1234-dead-0"), vec![0u8; 1000]).unwrap();
    fs::create_dir_all(tmp.join("layer-1234-dead-1/root/etc")).unwrap();
    fs::write(tmp.join("layer-1234-dead-1/root/etc/half"), "x").unwrap();
    drop(ImageStore::open(&store_dir).unwrap());
    assert_eq!(dir_entries(&tmp), 2);
    drop(busy);
    let store = ImageStore::open(&store_dir).unwrap();
    assert_eq!(dir_entries(&tmp), 0);
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn archives_that_escape_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let outside = work.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let store = ImageStore::open(&work.path().join("images")).unwrap();
    let tree = work.path().join("tree");
    rootfs(&tree, "kept");
    build_from_rootfs(
        &store,
        &tree,
        &Reference::parse("lab/kept:1").unwrap(),
        &RootfsImage::default(),
    )
    .unwrap();
    let before = names(&store);
    let evil = format!(
        "{}{}/evil",
        "../".repeat(12),
        outside.display().to_string().trim_start_matches('/')
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            raw_tar(&[(evil.as_bytes(), tar::EntryType::Regular, b"", b"x")]),
            "names a path outside the archive",
        ),
        (
            raw_tar(&[(
                b"manifest.json",
                tar::EntryType::Symlink,
                b"../../../../../../etc/passwd",
                b"",
            )]),
            "outside the archive",
        ),
        (
            raw_tar(&[(b"dev", tar::EntryType::Char, b"", b"")]),
            "which image archives do not hold",
        ),
        (
            raw_tar(&[(b"readme", tar::EntryType::Regular, b"", b"hi")]),
            "has neither manifest.json",
        ),
    ];
    for (archive, expect) in cases {
        let err = load(&store, &archive[..], UnpackLimits::default(), &|_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "expected {expect:?} in: {err}");
    }
    assert_eq!(names(&store), before);
    assert_eq!(dir_entries(&outside), 0);
    drop(store);
    let store = ImageStore::open(&work.path().join("images")).unwrap();
    assert_eq!(dir_entries(&store.root().join("tmp")), 0);
}
