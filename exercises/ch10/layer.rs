//! Exercise ch10-layer, chapter 10 (building images): turn what a build
//! step left in its writable upper directory into a layer, a deleted file
//! into the image spec's `.wh.` entry.
//!
//! Fill in the TODO, then run `lab check ch10-layer` (or keep `lab
//! watch` running). `lab hint ch10-layer` helps.

use std::fs::{self, File};
use std::path::Path;

use container_lab::kernel::overlay::{self, UpperEntry};
use container_lab::lab::handoff;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

fn main() -> std::process::ExitCode {
    handoff::main(run)
}

fn run() -> anyhow::Result<()> {
    let run_dir = handoff::run_dir()?;
    // What a RUN step leaves in upper/: a new file, a changed one, and for
    // a deleted one the whiteout overlayfs writes (a 0/0 character device).
    let upper = run_dir.path().join("upper");
    fs::create_dir_all(upper.join("app"))?;
    fs::create_dir_all(upper.join("etc"))?;
    fs::write(upper.join("app/main.py"), "print('hello')\n")?;
    fs::write(upper.join("etc/motd"), "built by ch10-layer\n")?;
    mknod(
        &upper.join("etc/issue"),
        SFlag::S_IFCHR,
        Mode::empty(),
        makedev(0, 0),
    )?;

    let mut tar = tar::Builder::new(File::create(run_dir.path().join("layer.tar"))?);
    append_dir(&mut tar, &upper, "")?;
    tar.into_inner()?;

    // The lab reads layer.tar while this waits.
    handoff::this_process_to_lab()
}

/// Appends what `upper/dir` holds, sorted by name, `dir` first.
fn append_dir(tar: &mut tar::Builder<File>, upper: &Path, dir: &str) -> anyhow::Result<()> {
    let mut entries = fs::read_dir(upper.join(dir))?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if overlay::inspect_upper(&entry.path()) == UpperEntry::Whiteout {
            // TODO: a whiteout goes into the layer as an empty regular file
            // named `.wh.NAME` in the same directory (`dir`), not as the
            // device itself: tar::Header::new_gnu(), its size 0, then
            // tar.append_data(&mut header, PATH, std::io::empty()).
            // END TODO
            continue;
        }
        let path = format!("{dir}{name}");
        tar.append_path_with_name(entry.path(), &path)?;
        if entry.file_type()?.is_dir() {
            append_dir(tar, upper, &format!("{path}/"))?;
        }
    }
    Ok(())
}
