//! The lab's own first image: a root filesystem made of one static
//! busybox binary (the host's busybox-static) and its applet links, built
//! once into the lab's image store as an ordinary one-layer image, so that
//! every chapter (and `run busybox`) works without a network.

use std::fs;
use std::os::unix::fs::{symlink, DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{build_from_rootfs, Image, ImageError, ImageStore, Reference, RootfsImage};
use crate::engine::dirs::LabDirs;
use crate::kernel::rootfs::RootfsError;
use crate::support::error::io_err;

/// Where Debian and Ubuntu's busybox-static package puts the binary.
const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// The config label naming the host binary the lab's image was built from.
pub const SOURCE_LABEL: &str = "io.container-lab.busybox-source";

/// Overrides where busybox is looked for.
pub const BUSYBOX_ENV: &str = "CONTAINER_LAB_BUSYBOX";

/// The environment for programs run inside a busybox root.
pub fn env() -> Vec<(String, String)> {
    let mut env = vec![
        (
            "PATH".to_string(),
            "/bin:/sbin:/usr/bin:/usr/sbin".to_string(),
        ),
        ("HOME".to_string(), "/root".to_string()),
    ];
    if let Ok(term) = std::env::var("TERM") {
        env.push(("TERM".to_string(), term));
    }
    env
}

/// The lab's busybox image, `busybox:latest` in the image store, built
/// from the host's busybox-static when the store has none (or has an
/// older build of the lab's): its one layer's unpacked tree, and whether
/// it was built just now. A busybox pulled under that name is used as it
/// is: any busybox will do.
// ANCHOR: image
pub fn image(dirs: &LabDirs) -> Result<(PathBuf, bool), BusyboxError> {
    let store = super::local::open(dirs)?;
    let (image, built) = ensure(&store, dirs)?;
    Ok((image.layers[0].dir.clone(), built))
}

/// [`image`], as an [`Image`] of `store`.
pub fn ensure(store: &ImageStore, dirs: &LabDirs) -> Result<(Image, bool), BusyboxError> {
    // The binary is checked for being static when an image is built from
    // it; the image of the same file (path, size, mtime) needs no second look.
    let busybox = find()?;
    let source_id = file_identity(&busybox)?;
    let current = |store: &ImageStore| match store.image(&reference()) {
        Ok(image) if image.layers.len() == 1 => match lab_source(&image) {
            // Pulled, not built by the lab: kept.
            None => Some(image),
            Some(source) if source == source_id => Some(image),
            Some(_) => None,
        },
        _ => None,
    };
    if let Some(image) = current(store) {
        return Ok((image, false));
    }
    // One builder at a time; whoever waited finds the image built.
    let _lock = lock(dirs)?;
    if let Some(image) = current(store) {
        return Ok((image, false));
    }
    // The tree is built in the store's tmp/ and stored as an ordinary
    // image; an interrupted build leaves only a temporary the next open
    // clears.
    let busybox = find_static()?;
    let scratch = store.scratch_dir("busybox")?;
    let tree = scratch.path().join("rootfs");
    build_busybox_tree(&busybox, &tree)?;
    let mtime = fs::metadata(&busybox)
        .map_err(io_err("stat", &busybox))?
        .mtime()
        .max(0) as u64;
    let config = RootfsImage {
        env: env()
            .into_iter()
            .filter(|(k, _)| k != "TERM")
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        cmd: vec!["sh".into()],
        created_by: format!("container-lab: {} and its applet links", busybox.display()),
        labels: [(SOURCE_LABEL.to_string(), source_id)].into(),
        mtime: Some(mtime),
        ..RootfsImage::default()
    };
    let image = build_from_rootfs(store, &tree, &reference(), &config)?;
    // Made by the lab, with no setuid file: passable, so that chapter 7's
    // rootless container (uid nobody) reaches its tree.
    let layer = image.layers[0].dir.parent().unwrap_or(&image.layers[0].dir);
    fs::set_permissions(layer, fs::Permissions::from_mode(0o711))
        .map_err(io_err("chmod", layer))?;
    Ok((image, true))
}
// ANCHOR_END: image

/// `busybox:latest`, Docker Hub's name: what `run busybox` asks for.
pub fn reference() -> Reference {
    Reference::parse("busybox:latest").expect("a valid reference")
}

/// Which host binary the lab built the image from, if the lab built it.
fn lab_source(image: &Image) -> Option<String> {
    image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.labels().as_ref())
        .and_then(|l| l.get(SOURCE_LABEL))
        .cloned()
}

/// An exclusive lock on the lab's image directory, held while an image or
/// a layer is built, so that runs started together never race.
pub fn lock(dirs: &LabDirs) -> Result<nix::fcntl::Flock<fs::File>, BusyboxError> {
    let images = dirs.data.join("images");
    dirs.create_dir(&images)?;
    lock_in(&images)
}

/// The same lock, given the image directory itself.
pub fn lock_in(dir: &Path) -> Result<nix::fcntl::Flock<fs::File>, BusyboxError> {
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    Ok(crate::support::fs::lock_file(&dir.join(".lock"), true)?)
}

/// A busybox tree: the static binary, one symlink per applet, and the few
/// files in /etc that programs look for.
fn build_busybox_tree(busybox: &Path, root: &Path) -> Result<(), BusyboxError> {
    for dir in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "run", "dev", "proc",
        "sys",
    ] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(root.join(dir))
            .map_err(io_err("create", &root.join(dir)))?;
    }
    fs::DirBuilder::new()
        .mode(0o1777)
        .create(root.join("tmp"))
        .map_err(io_err("create", root))?;
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))
        .map_err(io_err("chmod", root))?;
    fs::set_permissions(root.join("root"), fs::Permissions::from_mode(0o700))
        .map_err(io_err("chmod", root))?;
    let target = root.join("bin/busybox");
    fs::copy(busybox, &target).map_err(io_err("copy busybox to", &target))?;

    // `busybox --list-full` prints every applet with its usual directory.
    let output = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(io_err("run", busybox))?;
    for applet in String::from_utf8_lossy(&output.stdout).lines() {
        let link = root.join(applet.trim_start_matches('/'));
        if applet.is_empty() || applet == "bin/busybox" || link.exists() {
            continue;
        }
        symlink("/bin/busybox", &link).map_err(io_err("link", &link))?;
    }

    let files = [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        ("etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"),
        ("etc/hostname", "lab\n"),
        ("etc/os-release", "NAME=\"container-lab busybox\"\nID=busybox\nPRETTY_NAME=\"container-lab busybox image\"\n"),
    ];
    for (path, content) in files {
        fs::write(root.join(path), content).map_err(io_err("write", &root.join(path)))?;
    }
    Ok(())
}

/// The busybox binary the lab would use, static or not.
fn find() -> Result<PathBuf, BusyboxError> {
    // CONTAINER_LAB_BUSYBOX points at another binary (the tests use it to
    // check the error messages).
    let candidates: Vec<PathBuf> = match std::env::var_os(BUSYBOX_ENV) {
        Some(path) => vec![PathBuf::from(path)],
        None => BUSYBOX_CANDIDATES.iter().map(PathBuf::from).collect(),
    };
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or(BusyboxError::NoBusybox)
}

/// Finds busybox and checks it is statically linked: a dynamic one would
/// need the host's libraries inside the new root, and fail with the
/// famous "no such file or directory" that names a file which does exist.
pub fn find_static() -> Result<PathBuf, BusyboxError> {
    let path = find()?;
    // The ELF header and program headers sit at the start: 64 KiB is
    // plenty, and reading the whole 2 MB binary on every run is not free.
    let mut bytes = Vec::with_capacity(64 * 1024);
    fs::File::open(&path)
        .and_then(|f| {
            std::io::Read::read_to_end(&mut std::io::Read::take(f, 64 * 1024), &mut bytes)
        })
        .map_err(io_err("read", &path))?;
    if has_interpreter(&bytes) {
        return Err(BusyboxError::DynamicBusybox(path));
    }
    Ok(path)
}

/// True when an ELF file asks for a dynamic loader (has a PT_INTERP header).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let is_elf64_le = elf.len() > 64 && &elf[..4] == b"\x7fELF" && elf[4] == 2 && elf[5] == 1;
    if !is_elf64_le {
        return false;
    }
    let read_u16 = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let read_u32 = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap_or([0; 4]));
    let read_u64 =
        |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap_or([0; 8])) as usize;
    let (phoff, phentsize, phnum) = (read_u64(32), read_u16(54), read_u16(56));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .take_while(|&at| at + 4 <= elf.len())
        .any(|at| read_u32(at) == PT_INTERP)
}

fn file_identity(path: &Path) -> Result<String, BusyboxError> {
    let meta = fs::metadata(path).map_err(io_err("stat", path))?;
    Ok(format!(
        "{} {} {}",
        path.display(),
        meta.len(),
        meta.mtime()
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum BusyboxError {
    #[error("busybox is not installed; install the busybox-static package (sudo apt-get install busybox-static) or run scripts/provision.sh")]
    NoBusybox,
    #[error("{} is dynamically linked and cannot run alone in a new root; install busybox-static (sudo apt-get install busybox-static)", .0.display())]
    DynamicBusybox(PathBuf),
    #[error(transparent)]
    Io(#[from] crate::support::error::IoError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    State(#[from] crate::engine::dirs::StateError),
    #[error(transparent)]
    Image(#[from] ImageError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_binary_has_no_interpreter() {
        // The test binary itself is dynamically linked (Rust links libc).
        let me = fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(has_interpreter(&me));
        assert!(!has_interpreter(
            b"not an elf file at all, just some bytes......................................"
        ));
    }
}
