//! The lab's own first image: a root filesystem made of one static
//! busybox binary (the host's busybox-static) and its applet links, built
//! once into the lab's data directory, so that every chapter works without
//! a network.

use std::fs;
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::engine::dirs::LabDirs;
use crate::kernel::rootfs::RootfsError;
use crate::support::error::io_err;

/// Where Debian and Ubuntu's busybox-static package puts the binary.
const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

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

/// Returns the cached busybox root filesystem, building it first if needed.
/// The second value says whether it was built just now.
// ANCHOR: image
pub fn image(dirs: &LabDirs) -> Result<(PathBuf, bool), BusyboxError> {
    let busybox = find_static()?;
    let image = dirs.data.join("images").join("busybox");
    let stamp = image.join(".lab-image");
    let source_id = file_identity(&busybox)?;
    if fs::read_to_string(&stamp).is_ok_and(|s| s == source_id) {
        return Ok((image, false));
    }
    // One builder at a time; whoever waited finds the image built.
    let _lock = lock(dirs)?;
    if fs::read_to_string(&stamp).is_ok_and(|s| s == source_id) {
        return Ok((image, false));
    }
    // Build beside it and rename into place: an interrupted build never
    // leaves a half-made image that a later run would trust.
    let building = dirs
        .data
        .join("images")
        .join(format!(".busybox.{}", std::process::id()));
    let _ = fs::remove_dir_all(&building);
    let result = build_busybox_tree(&busybox, &building).and_then(|()| {
        fs::write(building.join(".lab-image"), &source_id).map_err(io_err("write", &building))?;
        let _ = fs::remove_dir_all(&image);
        Ok(fs::rename(&building, &image).map_err(io_err("rename", &image))?)
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&building);
    }
    result.map(|()| (image, true))
}
// ANCHOR_END: image

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

/// Finds busybox and checks it is statically linked: a dynamic one would
/// need the host's libraries inside the new root, and fail with the
/// famous "no such file or directory" that names a file which does exist.
pub fn find_static() -> Result<PathBuf, BusyboxError> {
    // CONTAINER_LAB_BUSYBOX points at another binary (the tests use it to
    // check the error messages).
    let candidates: Vec<PathBuf> = match std::env::var_os(BUSYBOX_ENV) {
        Some(path) => vec![PathBuf::from(path)],
        None => BUSYBOX_CANDIDATES.iter().map(PathBuf::from).collect(),
    };
    let path = candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or(BusyboxError::NoBusybox)?;
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
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).map_err(io_err("stat", path))?;
    Ok(format!(
        "{} {} {}\n",
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
