//! Exercise ch09-whiteout, chapter 9 (images and registries): unpack a
//! layer whose tar marks a deletion the image spec's way (`.wh.NAME`)
//! into the mark overlayfs understands (a 0/0 character device at NAME).
//!
//! Fill in the TODO, then run `lab check ch09-whiteout` (or keep `lab
//! watch` running). `lab hint ch09-whiteout` helps.

use std::fs;
use std::path::Path;

use container_lab::lab::handoff;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let run_dir = handoff::run_dir()?;
    let layer = run_dir.path().join("layer");
    fs::create_dir_all(&layer)?;
    unpack(&layer_tar()?, &layer)?;

    // The lab looks at layer/ while this waits.
    handoff::this_process_to_lab()
}

/// Unpacks the tar into `dir`, turning each `.wh.NAME` into a whiteout.
fn unpack(tar: &[u8], dir: &Path) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if let Some(deleted) = name.strip_prefix(".wh.") {
            let parent = dir.join(path.parent().unwrap_or(Path::new("")));
            // TODO: make the whiteout overlayfs understands: a character
            // device with device number 0/0 named `deleted` in `parent`
            // (mknod with SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).
            mknod(
                &parent.join(deleted),
                SFlag::S_IFCHR,
                Mode::empty(),
                makedev(0, 0),
            )?;
            // END TODO
            continue;
        }
        entry.unpack_in(dir)?;
    }
    Ok(())
}

/// A layer as a registry serves it (uncompressed here): a changed etc/motd
/// and a deleted etc/issue.
fn layer_tar() -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "etc/", std::io::empty())?;
    let motd = b"from the top layer\n";
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o644);
    file.set_size(motd.len() as u64);
    tar.append_data(&mut file, "etc/motd", &motd[..])?;
    let mut whiteout = tar::Header::new_gnu();
    whiteout.set_mode(0o644);
    whiteout.set_size(0);
    tar.append_data(&mut whiteout, "etc/.wh.issue", std::io::empty())?;
    Ok(tar.into_inner()?)
}
