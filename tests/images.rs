//! Images checked from outside: a tarball of the busybox tree (plus
//! hardlinks, odd modes, owners and special files) imported into a temporary
//! lab directory arrives on disk file for file; list and remove do what
//! they say; malicious, truncated and corrupt tarballs fail and leave
//! nothing behind.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use container_lab::engine::dirs::LabDirs;
use container_lab::engine::images::imported::{self as images, ImageError};

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

    fn store(&self) -> PathBuf {
        self.dirs.data.join("images/imported")
    }

    /// Everything in the image store except the refs file.
    fn store_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.store())
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "refs.json")
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
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

/// The busybox image tree plus what a real root filesystem has: owners,
/// setuid, a read-only directory, a hardlink, a relative symlink, a FIFO
/// and a device node.
fn make_source_tree(root: &TestRoot) -> PathBuf {
    let (busybox, _) = container_lab::engine::images::busybox::image(&root.dirs).unwrap();
    let source = root.path.join("source");
    container_lab::kernel::rootfs::copy_tree(&busybox, &source).unwrap();
    fs::remove_file(source.join(".lab-image")).unwrap();

    let share = source.join("usr/share");
    fs::create_dir_all(&share).unwrap();
    fs::write(share.join("hello.txt"), "hello from the tarball\n").unwrap();
    fs::set_permissions(share.join("hello.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::lchown(share.join("hello.txt"), Some(1000), Some(1001)).unwrap();
    fs::hard_link(share.join("hello.txt"), share.join("hello-again.txt")).unwrap();
    symlink("hello.txt", share.join("relative")).unwrap();
    symlink("/bin/busybox", share.join("absolute")).unwrap();
    std::os::unix::fs::lchown(share.join("relative"), Some(7), Some(8)).unwrap();

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
    std::os::unix::fs::lchown(&locked, Some(33), Some(33)).unwrap();

    nix::unistd::mkfifo(
        &source.join("run/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
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
fn import_list_and_remove() {
    common::assert_root();
    let root = TestRoot::new("images-import");
    let source = make_source_tree(&root);
    // A root directory that is not the default 0755 root:root.
    fs::set_permissions(&source, fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(&source, Some(0), Some(44)).unwrap();
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

    let imported = images::import_tarball(&root.dirs, &plain, "lab/tools:v1").unwrap();
    let image = &imported.image;
    assert_eq!(image.reference, "lab/tools:v1");
    assert_eq!(image.id.len(), 64);
    assert!(image.id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(imported.skipped_special, 2, "the FIFO and the device node");
    assert!(!imported.reused_layer);
    assert_eq!(image.layers.len(), 1);
    let rootfs = root.store().join(&image.id).join("rootfs");
    assert_eq!(image.layers[0].path, rootfs);

    // File for file, with modes, owners and link targets, minus the two
    // special files.
    let mut expected = common::fingerprint(&source);
    assert!(expected.remove("run/fifo").is_some());
    assert!(expected.remove("dev/null").is_some());
    let got = common::fingerprint(&rootfs);
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
    assert!(
        got.len() > 100,
        "the busybox applets are there: {}",
        got.len()
    );
    // The archive's "./" entry gives the root its mode and owner.
    let top = fs::metadata(&rootfs).unwrap();
    let source_top = fs::metadata(&source).unwrap();
    assert_eq!(top.mode(), source_top.mode());
    assert_eq!((top.uid(), top.gid()), (source_top.uid(), source_top.gid()));
    let mode = |p: &str| fs::symlink_metadata(rootfs.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("usr/bin/suid"), 0o4755);
    assert_eq!(mode("opt/locked"), 0o555);
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let hello = fs::metadata(rootfs.join("usr/share/hello.txt")).unwrap();
    let again = fs::metadata(rootfs.join("usr/share/hello-again.txt")).unwrap();
    assert_eq!(hello.ino(), again.ino(), "the hardlink stays a hardlink");
    assert_eq!(hello.nlink(), 2);
    assert_eq!(
        image.size_bytes,
        fs::metadata(source.join("bin/busybox")).unwrap().len() * 2
            + hello.len()
            + [
                "etc/passwd",
                "etc/group",
                "etc/hostname",
                "etc/os-release",
                "opt/locked/inside"
            ]
            .iter()
            .map(|p| fs::metadata(source.join(p)).unwrap().len())
            .sum::<u64>(),
        "regular files, the hardlinked one counted once"
    );
    let meta_file = root.store().join(&image.id).join("layer.json");
    assert!(fs::read_to_string(&meta_file).unwrap().contains(&image.id));

    // The same content, gzipped, under another name: one layer for both.
    let second = images::import_tarball(&root.dirs, &gzipped, "tools").unwrap();
    assert!(second.reused_layer);
    assert_eq!(second.image.id, image.id);
    assert_eq!(root.store_entries(), vec![image.id.clone()]);

    let resolved = images::resolve(&root.dirs, "tools:latest").unwrap();
    assert_eq!(resolved.id, image.id);
    assert_eq!(resolved.layers[0].path, rootfs);
    let busybox = images::resolve(&root.dirs, "busybox").unwrap();
    assert_eq!(busybox.reference, "busybox:latest");
    assert_eq!(
        busybox.layers[0].path,
        root.dirs.data.join("images/busybox")
    );

    let listed: Vec<String> = images::list(&root.dirs)
        .unwrap()
        .into_iter()
        .map(|i| i.reference)
        .collect();
    assert_eq!(listed, ["busybox:latest", "lab/tools:v1", "tools:latest"]);
    // `mini-docker images` shows them as Docker's table does.
    let out = Command::new(common::binary("mini-docker"))
        .env(container_lab::engine::dirs::ROOT_ENV, &root.path)
        .arg("images")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{table}");
    assert!(table.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"));
    assert!(table.contains(&format!("lab/tools    v1        {}", &image.id[..12])));

    // Importing a reference again replaces it; the layer nobody uses goes.
    let other = root.path.join("other.tar");
    fs::create_dir_all(root.path.join("other/etc")).unwrap();
    fs::write(root.path.join("other/etc/motd"), "another image\n").unwrap();
    tar(&[
        "-C",
        root.path.join("other").to_str().unwrap(),
        "-cf",
        other.to_str().unwrap(),
        ".",
    ]);
    let replaced = images::import(&root.dirs, &other, "tools").unwrap();
    assert_ne!(replaced.id, image.id);
    assert_eq!(
        images::resolve(&root.dirs, "tools").unwrap().id,
        replaced.id
    );
    let mut both = vec![image.id.clone(), replaced.id.clone()];
    both.sort();
    assert_eq!(
        root.store_entries(),
        both,
        "lab/tools:v1 still uses the first layer"
    );
    let again = images::import(&root.dirs, &other, "lab/tools:v1").unwrap();
    assert_eq!(again.id, replaced.id);
    assert_eq!(
        root.store_entries(),
        vec![replaced.id.clone()],
        "the first layer went with its last reference"
    );

    // Remove: the layer stays while another reference uses it.
    images::remove(&root.dirs, "lab/tools:v1").unwrap();
    assert_eq!(root.store_entries(), vec![replaced.id.clone()]);
    images::remove(&root.dirs, "tools").unwrap();
    assert!(root.store_entries().is_empty());
    let listed: Vec<String> = images::list(&root.dirs)
        .unwrap()
        .into_iter()
        .map(|i| i.reference)
        .collect();
    assert_eq!(listed, ["busybox:latest"]);

    let err = images::remove(&root.dirs, "tools").unwrap_err();
    assert!(matches!(err, ImageError::NoSuchImage { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "no such image: tools:latest; `mini-docker images` lists the images"
    );
    let err = images::resolve(&root.dirs, "tools")
        .unwrap_err()
        .to_string();
    assert!(err.contains("mini-docker import"), "{err}");
    assert!(err.contains("busybox"), "{err}");
    let err = images::import(&root.dirs, &plain, "busybox").unwrap_err();
    assert!(matches!(err, ImageError::BuiltIn { .. }), "{err}");
    let err = images::import(&root.dirs, &plain, "Tools").unwrap_err();
    assert!(err.to_string().contains("must be lowercase"), "{err}");
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
    let mut header = tar::Header::new_gnu();
    {
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..path.len()].copy_from_slice(path.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header.set_size(data.len() as u64);
    header.set_cksum();
    out.append(&header, data).unwrap();
}

/// A header with every numeric field set (tar refuses empty ones).
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header.set_size(size);
    header
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
fn malicious_tarballs_cannot_write_outside_the_root() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    common::assert_root();
    let root = TestRoot::new("images-malicious");
    let outside = root.path.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let secret = outside.join("secret");
    fs::write(&secret, "not yours\n").unwrap();
    let outside_str = outside.to_str().unwrap();

    // `..` in a path: the whole import is refused.
    let dotdot = root.path.join("dotdot.tar");
    let depth = "../".repeat(12);
    write_tarball(&dotdot, |t| {
        raw_entry(t, Regular, "ok.txt", "", b"fine\n");
        raw_entry(
            t,
            Regular,
            &format!("{depth}{}/dotdot.txt", &outside_str[1..]),
            "",
            b"escaped\n",
        );
    });
    // A symlink to a host directory, then a file through it.
    let through = root.path.join("symlink.tar");
    write_tarball(&through, |t| {
        raw_entry(t, Symlink, "evil", outside_str, b"");
        raw_entry(t, Regular, "evil/through-symlink.txt", "", b"escaped\n");
    });
    // A symlink to a relative path that climbs out, then a file through it.
    let climbing = root.path.join("climbing.tar");
    write_tarball(&climbing, |t| {
        raw_entry(t, Directory, "a", "", b"");
        raw_entry(
            t,
            Symlink,
            "a/up",
            &format!("{depth}{}", &outside_str[1..]),
            b"",
        );
        raw_entry(t, Regular, "a/up/climbed.txt", "", b"escaped\n");
    });
    // A hardlink to a host file: writing the layer would write the host's.
    let hardlink = root.path.join("hardlink.tar");
    write_tarball(&hardlink, |t| {
        raw_entry(t, Link, "stolen", secret.to_str().unwrap(), b"");
    });
    let hardlink_up = root.path.join("hardlink-up.tar");
    write_tarball(&hardlink_up, |t| {
        raw_entry(
            t,
            Link,
            "stolen",
            &format!("{depth}{}", &secret.to_str().unwrap()[1..]),
            b"",
        );
    });

    for (tarball, name) in [
        (&dotdot, "dotdot"),
        (&through, "symlink"),
        (&climbing, "climbing"),
        (&hardlink, "hardlink"),
        (&hardlink_up, "hardlink-up"),
    ] {
        let err = images::import(&root.dirs, tarball, name).unwrap_err();
        println!("{name}: {err}");
        assert!(
            matches!(
                err,
                ImageError::UnsafeEntry { .. } | ImageError::Extract { .. }
            ),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string().contains(tarball.to_str().unwrap()),
            "{name}: the error names the tarball: {err}"
        );
        assert!(
            root.store_entries().is_empty(),
            "{name} left {:?}",
            root.store_entries()
        );
        assert!(images::resolve(&root.dirs, name).is_err());
    }
    let err = images::import(&root.dirs, &dotdot, "dotdot").unwrap_err();
    assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err:?}");
    let mut left: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["secret"], "nothing was written outside the root");
    assert_eq!(fs::read_to_string(&secret).unwrap(), "not yours\n");
    assert_eq!(
        fs::metadata(&secret).unwrap().nlink(),
        1,
        "no hardlink to the host file"
    );

    // An absolute path is neutralised: it lands inside the root.
    let absolute = root.path.join("absolute.tar");
    let target = format!("{outside_str}/absolute.txt");
    write_tarball(&absolute, |t| {
        raw_entry(t, Regular, &target, "", b"inside\n")
    });
    let image = images::import(&root.dirs, &absolute, "absolute").unwrap();
    assert!(!outside.join("absolute.txt").exists());
    let landed = image.layers[0].path.join(&target[1..]);
    assert_eq!(fs::read_to_string(&landed).unwrap(), "inside\n");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn truncated_and_corrupt_tarballs_leave_nothing() {
    common::assert_root();
    let root = TestRoot::new("images-truncated");
    let (busybox, _) = container_lab::engine::images::busybox::image(&root.dirs).unwrap();
    let plain = root.path.join("rootfs.tar");
    let gzipped = root.path.join("rootfs.tar.gz");
    let src = busybox.to_str().unwrap();
    tar(&["-C", src, "-cf", plain.to_str().unwrap(), "."]);
    tar(&["-C", src, "-czf", gzipped.to_str().unwrap(), "."]);
    // A good import first, so "nothing left" means "nothing new".
    let good = images::import(&root.dirs, &plain, "good").unwrap();
    let before = root.store_entries();
    assert_eq!(before, vec![good.id.clone()]);

    let cut = |from: &Path, name: &str| -> PathBuf {
        let bytes = fs::read(from).unwrap();
        // Half way, and not on a 512-byte block boundary: inside a file.
        let to = root.path.join(name);
        fs::write(&to, &bytes[..bytes.len() / 2 + 100]).unwrap();
        to
    };
    let truncated = cut(&plain, "truncated.tar");
    let truncated_gz = cut(&gzipped, "truncated.tar.gz");
    let garbage = root.path.join("garbage.tar");
    fs::write(
        &garbage,
        b"this is not a tar archive, only text that is long enough to fill a header block. "
            .repeat(10),
    )
    .unwrap();
    let missing = root.path.join("missing.tar");

    for (tarball, name) in [
        (&truncated, "truncated"),
        (&truncated_gz, "truncated-gz"),
        (&garbage, "garbage"),
        (&missing, "missing"),
    ] {
        let err = images::import(&root.dirs, tarball, name).unwrap_err();
        println!("{name}: {err}");
        assert!(
            err.to_string().contains(tarball.to_str().unwrap()),
            "{name}: the error names the tarball: {err}"
        );
        assert_eq!(root.store_entries(), before, "{name} left something behind");
        assert!(images::resolve(&root.dirs, name).is_err());
    }
    let listed: Vec<String> = images::list(&root.dirs)
        .unwrap()
        .into_iter()
        .map(|i| i.reference)
        .collect();
    assert_eq!(listed, ["busybox:latest", "good:latest"]);

    // A leftover of an import that was killed half way is swept away by
    // the next import, under the lock.
    let leftover = root.store().join(".import-999999999");
    fs::create_dir_all(leftover.join("rootfs/etc")).unwrap();
    images::import(&root.dirs, &gzipped, "again").unwrap();
    assert!(!leftover.exists());
    assert_eq!(root.store_entries(), before, "same content, same layer");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn what_is_not_a_tarball_is_refused_without_quoting_it() {
    common::assert_root();
    let root = TestRoot::new("images-not-tar");
    let empty = root.path.join("empty.tar");
    fs::write(&empty, b"").unwrap();
    let err = images::import(&root.dirs, &empty, "empty").unwrap_err();
    println!("empty: {err}");
    assert!(matches!(err, ImageError::NotTar { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not a tar archive: it is empty; import takes a .tar or .tar.gz of a root filesystem",
            empty.display()
        )
    );
    // An empty gzip stream is no better.
    let empty_gz = root.path.join("empty.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"").unwrap();
    fs::write(&empty_gz, gz.finish().unwrap()).unwrap();
    let err = images::import(&root.dirs, &empty_gz, "empty").unwrap_err();
    assert!(matches!(err, ImageError::NotTar { .. }), "{err:?}");

    // Text, a short file and an xz file: said what they are not, and
    // nothing of their content is echoed back.
    let text = root.path.join("notes.txt");
    let secret_text = "SECRET-LOOKING TEXT that must not be echoed back to the terminal. ";
    fs::write(&text, secret_text.repeat(20)).unwrap();
    let short = root.path.join("short.tar");
    fs::write(&short, "SECRET-LOOKING TEXT").unwrap();
    let xz = root.path.join("rootfs.tar.xz");
    let mut xz_bytes = vec![0xfd, b'7', b'z', b'X', b'Z', 0];
    xz_bytes.extend_from_slice(&[b'S'; 600]);
    fs::write(&xz, xz_bytes).unwrap();
    for (file, wanted) in [
        (&text, "it does not start with a tar header"),
        (&short, "it is shorter than one tar header (512 bytes)"),
        (&xz, "it is compressed with xz, which import does not read"),
    ] {
        let err = images::import(&root.dirs, file, "nottar").unwrap_err();
        let message = err.to_string();
        println!("{}: {message}", file.display());
        assert!(matches!(err, ImageError::NotTar { .. }), "{err:?}");
        assert!(message.contains(wanted), "{message}");
        assert!(!message.contains("SECRET"), "content echoed: {message}");
        assert!(!message.contains("SSSS"), "content echoed: {message}");
    }
    // A good first header, then garbage: corrupt, still not echoed.
    let corrupt = root.path.join("corrupt.tar");
    let mut bytes = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut bytes);
        let mut header = header(tar::EntryType::Regular, 0o644, 5);
        builder
            .append_data(&mut header, "ok.txt", &b"fine\n"[..])
            .unwrap();
        builder.finish().unwrap();
    }
    bytes.truncate(1024);
    let mut garbage_header = secret_text.repeat(8).into_bytes();
    garbage_header.truncate(512);
    bytes.extend_from_slice(&garbage_header);
    bytes.extend_from_slice(&[0u8; 1024]);
    fs::write(&corrupt, bytes).unwrap();
    let err = images::import(&root.dirs, &corrupt, "corrupt").unwrap_err();
    println!("corrupt: {err}");
    assert!(!err.to_string().contains("SECRET"), "content echoed: {err}");
    assert!(err.to_string().contains(corrupt.to_str().unwrap()), "{err}");
    assert!(
        root.store_entries().is_empty(),
        "{:?}",
        root.store_entries()
    );
}

/// A tarball of a directory chain `depth` levels deep (single-letter
/// names, so the deepest path is about twice `depth` bytes long, beyond
/// PATH_MAX), with a file at the bottom.
fn deep_tarball(path: &Path, depth: usize) {
    write_tarball(path, |t| {
        let mut dir = String::new();
        for _ in 0..depth {
            dir.push_str("d/");
            let mut header = header(tar::EntryType::Directory, 0o750, 0);
            t.append_data(&mut header, &dir, std::io::empty()).unwrap();
        }
        let mut header = header(tar::EntryType::Regular, 0o640, 11);
        t.append_data(
            &mut header,
            format!("{dir}bottom.txt"),
            &b"the bottom\n"[..],
        )
        .unwrap();
    });
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_tree_two_thousand_directories_deep_imports_whole() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    common::assert_root();
    let root = TestRoot::new("images-deep");
    let tarball = root.path.join("deep.tar");
    let depth = 2000;
    deep_tarball(&tarball, depth);
    // Imported and removed by mini-docker with 256 descriptors at most,
    // fewer than the tree has levels (the usual soft limit is 1024).
    let mini = |args: &[&str]| {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(common::binary("mini-docker"));
        command
            .env(container_lab::engine::dirs::ROOT_ENV, &root.path)
            .args(args);
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 256,
                    rlim_max: 256,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = common::run(command);
        assert_eq!(out.status.code(), Some(0), "mini-docker {args:?}");
    };
    mini(&["import", tarball.to_str().unwrap(), "deep"]);
    let image = images::resolve(&root.dirs, "deep").unwrap();

    // Walked one directory at a time from outside: a path from the root
    // would be longer than the kernel accepts.
    let open = |parent: Option<i32>, name: &str| -> OwnedFd {
        let fd = nix::fcntl::openat(
            parent,
            name,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NOFOLLOW,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap_or_else(|e| panic!("open {name}: {e}"));
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    let mut dir = open(None, image.layers[0].path.to_str().unwrap());
    for level in 1..=depth {
        let listing: Vec<String> = nix::dir::Dir::openat(
            Some(dir.as_raw_fd()),
            ".",
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap()
        .iter()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
        assert_eq!(listing, ["d"], "level {level}");
        dir = open(Some(dir.as_raw_fd()), "d");
        let meta = nix::sys::stat::fstat(dir.as_raw_fd()).unwrap();
        assert_eq!(meta.st_mode & 0o7777, 0o750, "level {level}");
    }
    let bottom = open(Some(dir.as_raw_fd()), "bottom.txt");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut fs::File::from(bottom), &mut text).unwrap();
    assert_eq!(text, "the bottom\n");
    assert_eq!(image.size_bytes, 11);
    drop(dir);
    mini(&["rmi", "deep"]);
    assert!(root.store_entries().is_empty());
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn symlinked_directories_resolve_inside_the_image() {
    use tar::EntryType::{Directory, Regular, Symlink};
    common::assert_root();
    let root = TestRoot::new("images-symlinked");
    let tarball = root.path.join("usrmerge.tar");
    write_tarball(&tarball, |t| {
        raw_entry(t, Directory, "usr/lib/", "", b"");
        // As a usr-merged distribution has them.
        raw_entry(t, Symlink, "lib", "usr/lib", b"");
        raw_entry(t, Symlink, "abs", "/usr", b"");
        raw_entry(t, Symlink, "up", "../../../../usr/lib", b"");
        raw_entry(t, Regular, "lib/one.txt", "", b"one\n");
        raw_entry(t, Regular, "abs/two.txt", "", b"two\n");
        raw_entry(t, Regular, "up/three.txt", "", b"three\n");
    });
    let image = images::import(&root.dirs, &tarball, "usrmerge").unwrap();
    let layer = &image.layers[0].path;
    assert_eq!(
        fs::read_to_string(layer.join("usr/lib/one.txt")).unwrap(),
        "one\n"
    );
    assert_eq!(
        fs::read_to_string(layer.join("usr/two.txt")).unwrap(),
        "two\n"
    );
    assert_eq!(
        fs::read_to_string(layer.join("usr/lib/three.txt")).unwrap(),
        "three\n"
    );
    assert_eq!(
        fs::read_link(layer.join("abs")).unwrap(),
        Path::new("/usr"),
        "links are stored as they are"
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn images_over_the_size_or_entry_limit_are_refused() {
    common::assert_root();
    let root = TestRoot::new("images-limits");
    let tarball = root.path.join("ten.tar");
    write_tarball(&tarball, |t| {
        for i in 0..10 {
            let mut header = header(tar::EntryType::Regular, 0o644, 1000);
            t.append_data(&mut header, format!("file{i}"), &[b'x'; 1000][..])
                .unwrap();
        }
    });
    let fits = images::ImportLimits {
        max_bytes: 64 * 1024,
        max_entries: 10,
    };
    images::import_tarball_with(&root.dirs, &tarball, "fits", &fits).unwrap();
    images::remove(&root.dirs, "fits").unwrap();

    let small = images::ImportLimits {
        max_bytes: 5000,
        ..fits
    };
    let err = images::import_tarball_with(&root.dirs, &tarball, "big", &small).unwrap_err();
    println!("{err}");
    assert!(
        matches!(err, ImageError::TooLarge { limit: 5000, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "refusing to import {}: it is larger than 5000 bytes uncompressed, the limit for one image; if it really is that big, raise the limit with CONTAINER_LAB_IMAGE_MAX_BYTES=BYTES",
            tarball.display()
        )
    );
    assert!(
        root.store_entries().is_empty(),
        "{:?}",
        root.store_entries()
    );

    // A gzip bomb in miniature: 4 MB of zeros in one file, a few KB packed.
    let bomb = root.path.join("bomb.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    {
        let mut builder = tar::Builder::new(&mut gz);
        let mut header = header(tar::EntryType::Regular, 0o644, 4 << 20);
        builder
            .append_data(
                &mut header,
                "zeros",
                std::io::Read::take(std::io::repeat(0), 4 << 20),
            )
            .unwrap();
        builder.finish().unwrap();
    }
    fs::write(&bomb, gz.finish().unwrap()).unwrap();
    assert!(fs::metadata(&bomb).unwrap().len() < 64 * 1024);
    let err = images::import_tarball_with(&root.dirs, &bomb, "bomb", &fits).unwrap_err();
    assert!(matches!(err, ImageError::TooLarge { .. }), "{err:?}");
    assert!(
        root.store_entries().is_empty(),
        "{:?}",
        root.store_entries()
    );

    let few = images::ImportLimits {
        max_entries: 9,
        ..fits
    };
    let err = images::import_tarball_with(&root.dirs, &tarball, "many", &few).unwrap_err();
    println!("{err}");
    assert!(
        matches!(err, ImageError::TooManyEntries { limit: 9, .. }),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .contains("raise the limit with CONTAINER_LAB_IMAGE_MAX_ENTRIES=COUNT"));
    assert!(
        root.store_entries().is_empty(),
        "{:?}",
        root.store_entries()
    );

    // The defaults, and the variables that change them.
    assert_eq!(
        images::ImportLimits::default(),
        images::ImportLimits {
            max_bytes: 8 << 30,
            max_entries: 1_000_000
        }
    );
    let import = |vars: &[(&str, &str)]| {
        let mut command = Command::new(common::binary("mini-docker"));
        command
            .env(container_lab::engine::dirs::ROOT_ENV, &root.path)
            .args(["import", tarball.to_str().unwrap(), "limited"]);
        for (key, value) in vars {
            command.env(key, value);
        }
        common::run(command)
    };
    let out = import(&[(images::MAX_BYTES_ENV, "5000")]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("larger than 5000 bytes"), "{stderr}");
    let out = import(&[(images::MAX_ENTRIES_ENV, "lots")]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid CONTAINER_LAB_IMAGE_MAX_ENTRIES=\"lots\": use a whole number"),
        "{stderr}"
    );
    let out = import(&[(images::MAX_BYTES_ENV, "20000")]);
    assert_eq!(out.status.code(), Some(0));
    assert!(root.store_entries().len() == 1);
}
