//! `import` and the lab's busybox as ordinary images of the one OCI store,
//! checked from outside: the layer directory under `layers/sha256/` holds
//! the tarball's tree file for file; the same content imported twice is
//! one layer; a layer goes only with the last image that needs it; and a
//! hostile, truncated or foreign tarball is refused naming the file,
//! leaving the store's files exactly as they were.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use container_lab::engine::dirs::LabDirs;
use container_lab::engine::images::{busybox, local, Event, ImageError, ImageStore, Reference};

/// The test's state root, removed when the test ends, also on failure.
struct TestRoot {
    path: PathBuf,
    dirs: LabDirs,
}

impl TestRoot {
    fn new(name: &str) -> TestRoot {
        let path = common::state_root(name);
        let dirs = LabDirs {
            data: path.join("lib"),
            run: path.join("run"),
        };
        TestRoot { path, dirs }
    }

    fn images(&self) -> PathBuf {
        self.dirs.data.join("images")
    }

    fn store(&self) -> ImageStore {
        local::open(&self.dirs).unwrap()
    }

    /// Every file of the store but its locks, with its size: what "the
    /// store is unchanged" compares.
    fn files(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![self.images()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let rel = path
                    .strip_prefix(self.images())
                    .unwrap()
                    .display()
                    .to_string();
                // The layers' trees are compared by their directories.
                if rel.ends_with("/root") || rel.ends_with("lock") {
                    out.insert(rel);
                    continue;
                }
                if entry.file_type().unwrap().is_dir() {
                    stack.push(path);
                } else {
                    let len = entry.metadata().unwrap().len();
                    out.insert(format!("{rel} {len}"));
                }
            }
        }
        out
    }

    /// The unpacked layers, by diff_id hex.
    fn layers(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.images().join("layers/sha256"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn mini(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(common::binary("mini-docker"))
            .env(container_lab::engine::dirs::ROOT_ENV, &self.path)
            .env("CONTAINER_LAB_OFFLINE", "1")
            .envs(env.iter().copied())
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn tar(args: &[&str]) {
    let output = Command::new("tar").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "tar {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn import(root: &TestRoot, tarball: &Path, name: &str) -> Result<local::Imported, ImageError> {
    let limits = local::import_limits().unwrap();
    let reference = Reference::parse(name).unwrap();
    local::import(&root.store(), tarball, &reference, limits, &|_: Event| {})
}

fn names(root: &TestRoot) -> Vec<String> {
    root.store()
        .list()
        .unwrap()
        .iter()
        .map(|i| i.reference.familiar())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The busybox tree plus what a real root filesystem has: owners, setuid,
/// a read-only directory, a hardlink, symlinks and a device node.
fn make_source_tree(root: &TestRoot) -> PathBuf {
    let (busybox, _) = busybox::image(&root.dirs).unwrap();
    let source = root.path.join("source");
    container_lab::kernel::rootfs::copy_tree(&busybox, &source).unwrap();
    let share = source.join("usr/share");
    fs::create_dir_all(&share).unwrap();
    fs::write(share.join("hello.txt"), "hello from the tarball\n").unwrap();
    fs::set_permissions(share.join("hello.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::lchown(share.join("hello.txt"), Some(1000), Some(1001)).unwrap();
    fs::hard_link(share.join("hello.txt"), share.join("hello-again.txt")).unwrap();
    symlink("hello.txt", share.join("relative")).unwrap();
    fs::copy(source.join("bin/busybox"), source.join("usr/bin/suid")).unwrap();
    fs::set_permissions(
        source.join("usr/bin/suid"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    let locked = source.join("opt/locked");
    fs::create_dir_all(&locked).unwrap();
    fs::write(locked.join("inside"), "under a read-only directory\n").unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    nix::sys::stat::mknod(
        &source.join("dev/null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    source
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn busybox_and_imports_are_ordinary_images_sharing_layers() {
    common::assert_root();
    let root = TestRoot::new("images-import");
    let source = make_source_tree(&root);
    // The lab's busybox is `busybox:latest` in the OCI store, one layer,
    // with the lab's label; built again, it is the same image.
    let store = root.store();
    let bb = store.find("busybox").unwrap();
    assert_eq!(bb.layers.len(), 1);
    assert!(root.images().join("oci-layout").is_file());
    let index = fs::read_to_string(root.images().join("index.json")).unwrap();
    assert!(
        index.contains("docker.io/library/busybox:latest"),
        "{index}"
    );
    assert!(bb.layers[0].dir.join("bin/busybox").is_file());
    assert!(
        !root.images().join("busybox").exists(),
        "no tree of its own"
    );
    assert!(!root.images().join("imported").exists(), "no second store");
    let (again, built) = busybox::ensure(&store, &root.dirs).unwrap();
    assert!(!built);
    assert_eq!(again.id(), bb.id());
    // Modes: blobs root's alone, each pulled or imported layer 0700, the
    // lab's busybox layer passable (chapter 7's rootless container).
    let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&root.images().join("blobs")), 0o700);
    assert_eq!(mode(bb.layers[0].dir.parent().unwrap()), 0o711);

    let plain = root.path.join("rootfs.tar");
    let gzipped = root.path.join("rootfs.tar.gz");
    let src = source.to_str().unwrap();
    tar(&[
        "-C",
        src,
        "--numeric-owner",
        "-cf",
        plain.to_str().unwrap(),
        ".",
    ]);
    tar(&[
        "-C",
        src,
        "--numeric-owner",
        "-czf",
        gzipped.to_str().unwrap(),
        ".",
    ]);
    let imported = import(&root, &plain, "lab/tools:v1").unwrap();
    let image = &imported.image;
    assert_eq!(
        imported.skipped.len(),
        1,
        "the device node: {:?}",
        imported.skipped
    );
    assert_eq!(image.layers.len(), 1);
    let layer = &image.layers[0];
    assert_eq!(
        layer.dir,
        root.images()
            .join("layers/sha256")
            .join(&layer.diff_id[7..])
            .join("root")
    );
    assert_eq!(mode(layer.dir.parent().unwrap()), 0o700);
    // The uncompressed tarball is the blob itself: its digest is the file's.
    let sha = Command::new("sha256sum").arg(&plain).output().unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout);
    assert_eq!(layer.digest[7..], sha[..64]);
    assert_eq!(layer.digest, layer.diff_id);

    // File for file, with modes, owners and link targets, minus the device.
    let mut expected = common::fingerprint(&source);
    assert!(expected.remove("dev/null").is_some());
    let got = common::fingerprint(&layer.dir);
    let differences: Vec<_> = expected
        .iter()
        .filter(|(path, want)| got.get(*path) != Some(want))
        .map(|(path, want)| format!("{path}: want {want}, got {:?}", got.get(path)))
        .chain(
            got.keys()
                .filter(|path| !expected.contains_key(*path))
                .map(|path| format!("{path}: not in the source")),
        )
        .collect();
    assert!(differences.is_empty(), "{differences:#?}");
    let hello = fs::metadata(layer.dir.join("usr/share/hello.txt")).unwrap();
    let again = fs::metadata(layer.dir.join("usr/share/hello-again.txt")).unwrap();
    assert_eq!(hello.ino(), again.ino(), "the hardlink stays a hardlink");
    let mode_in = |p: &str| fs::symlink_metadata(layer.dir.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode_in("usr/bin/suid"), 0o4755);
    assert_eq!(mode_in("opt/locked"), 0o555);

    // The same tree gzipped: another blob, the same diff_id, one layer.
    let layers_before = root.layers();
    let second = import(&root, &gzipped, "tools").unwrap();
    assert_eq!(second.image.layers[0].diff_id, layer.diff_id);
    assert_ne!(second.image.layers[0].digest, layer.digest);
    assert_eq!(root.layers(), layers_before, "stored and unpacked once");
    assert_eq!(
        names(&root),
        ["busybox:latest", "lab/tools:v1", "tools:latest"]
    );

    // `images` shows them as Docker does; `rmi` of one keeps the shared
    // layer, of the last removes it and both blobs.
    let out = root.mini(&["images"], &[]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{table}");
    assert!(table.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"));
    assert!(table.contains(&format!("lab/tools    v1        {}", image.short_id())));
    let out = root.mini(&["rmi", "lab/tools:v1"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Untagged: lab/tools:v1\n"), "{text}");
    assert!(
        text.contains(&format!("Deleted: {}", image.manifest_digest)),
        "{text}"
    );
    assert!(layer.dir.is_dir(), "tools:latest still needs the layer");
    assert!(!root.store().blob_path(&layer.digest).unwrap().exists());
    let out = root.mini(&["rmi", "tools"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!layer.dir.exists(), "the last image took its layer along");
    assert_eq!(root.layers(), vec![bb.layers[0].diff_id[7..].to_string()]);
    assert_eq!(names(&root), ["busybox:latest"]);
    let out = root.mini(&["rmi", "tools"], &[]);
    assert_eq!(out.status.code(), Some(1));
}

/// A tar entry written byte for byte, so that it can say what tar::Builder
/// (rightly) refuses to write: `..` and absolute paths.
fn raw_entry(
    out: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    path: &str,
    link: &str,
    data: &[u8],
) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_cksum();
    out.append(&header, data).unwrap();
}

fn write_tarball(path: &Path, entries: impl FnOnce(&mut tar::Builder<Vec<u8>>)) {
    let mut builder = tar::Builder::new(Vec::new());
    entries(&mut builder);
    fs::write(path, builder.into_inner().unwrap()).unwrap();
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn hostile_truncated_and_foreign_tarballs_leave_the_store_as_it_was() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    common::assert_root();
    let root = TestRoot::new("images-hostile");
    busybox::image(&root.dirs).unwrap();
    let outside = root.path.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let secret = outside.join("secret");
    fs::write(&secret, "not yours\n").unwrap();
    let out_str = outside.to_str().unwrap();
    let depth = "../".repeat(12);
    let t = |name: &str| root.path.join(name);

    let mut cases: Vec<(PathBuf, &str)> = Vec::new();
    let mut add = |name: &str, wanted: &'static str, f: &dyn Fn(&mut tar::Builder<Vec<u8>>)| {
        let path = t(name);
        write_tarball(&path, f);
        cases.push((path, wanted));
    };
    add("dotdot.tar", "..", &|b| {
        raw_entry(b, Regular, "ok.txt", "", b"fine\n");
        raw_entry(
            b,
            Regular,
            &format!("{depth}{}/x.txt", &out_str[1..]),
            "",
            b"escaped\n",
        );
    });
    add("absolute.tar", "absolute", &|b| {
        raw_entry(b, Regular, &format!("{out_str}/abs.txt"), "", b"escaped\n");
    });
    add("symlink.tar", "symlink", &|b| {
        raw_entry(b, Symlink, "evil", out_str, b"");
        raw_entry(b, Regular, "evil/through.txt", "", b"escaped\n");
    });
    add("climbing.tar", "symlink", &|b| {
        raw_entry(b, Directory, "a", "", b"");
        raw_entry(
            b,
            Symlink,
            "a/up",
            &format!("{depth}{}", &out_str[1..]),
            b"",
        );
        raw_entry(b, Regular, "a/up/climbed.txt", "", b"escaped\n");
    });
    add("hardlink.tar", "link", &|b| {
        raw_entry(b, Link, "stolen", secret.to_str().unwrap(), b"");
    });
    // Truncated inside a file, garbage, empty, and an empty gzip stream.
    let good = t("good.tar");
    let (bb, _) = busybox::image(&root.dirs).unwrap();
    tar(&[
        "-C",
        bb.to_str().unwrap(),
        "-cf",
        good.to_str().unwrap(),
        ".",
    ]);
    let bytes = fs::read(&good).unwrap();
    fs::write(t("truncated.tar"), &bytes[..bytes.len() / 2 + 100]).unwrap();
    cases.push((t("truncated.tar"), ""));
    let garbage =
        b"SECRET: not a tar archive, only text long enough for a header block. ".repeat(10);
    fs::write(t("garbage.tar"), garbage).unwrap();
    cases.push((t("garbage.tar"), "not a tar archive"));
    fs::write(t("empty.tar"), b"").unwrap();
    cases.push((t("empty.tar"), "not a tar archive"));
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    fs::write(t("empty.tar.gz"), gz.finish().unwrap()).unwrap();
    cases.push((t("empty.tar.gz"), "not a tar archive"));

    let before = root.files();
    let images_before = root.mini(&["images"], &[]).stdout;
    for (tarball, wanted) in &cases {
        let file = tarball.display().to_string();
        let out = root.mini(&["import", &file, "hostile:1"], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{file}: {stderr}");
        assert_eq!(out.status.code(), Some(125), "{file}: {out:?}");
        assert!(
            stderr.contains(&file),
            "{file}: the error names it: {stderr}"
        );
        assert!(stderr.contains(wanted), "{file}: {stderr}");
        assert!(!stderr.contains("SECRET"), "content echoed: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(root.files(), before, "{file} changed the store");
        assert_eq!(root.mini(&["images"], &[]).stdout, images_before);
    }
    let mut left: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["secret"], "nothing was written outside the store");
    assert_eq!(fs::metadata(&secret).unwrap().nlink(), 1);

    // Over the limits: refused, naming the variable to raise.
    let out = root.mini(
        &["import", good.to_str().unwrap(), "big:1"],
        &[(local::MAX_BYTES_ENV, "5000")],
    );
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("more than 5000 bytes"), "{stderr}");
    let out = root.mini(
        &["import", good.to_str().unwrap(), "big:1"],
        &[(local::MAX_ENTRIES_ENV, "lots")],
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONTAINER_LAB_IMAGE_MAX_ENTRIES"));
    assert_eq!(root.files(), before);
    // And the good one imports.
    let out = root.mini(&["import", good.to_str().unwrap(), "good:1"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(names(&root), ["busybox:latest", "good:1"]);
}
