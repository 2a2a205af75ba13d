//! Chapter 4's image: three small layers on the busybox base (a "runtime"
//! and an "app"), built once into the lab's data directory, to show what
//! overlay does with a stack of layers before real images arrive.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::engine::dirs::LabDirs;
use crate::engine::images::busybox;
use crate::kernel::overlay::Layer;
use crate::support::error::IoError;

/// The files each layer adds on top of the busybox base.
const RUNTIME_FILES: &[(&str, &str)] = &[
    ("usr/lib/runtime/VERSION", "runtime 1.0\n"),
    ("usr/lib/runtime/libgreet.txt", "a library the app needs\n"),
    ("etc/runtime.conf", "threads=4\n"),
    ("etc/motd", "welcome to the runtime layer\n"),
];
const APP_FILES: &[(&str, &str)] = &[
    (
        "app/hello.sh",
        "#!/bin/sh\necho \"hello from the app layer, on $(cat /usr/lib/runtime/VERSION)\"\n",
    ),
    ("etc/motd", "welcome to the app layer\n"),
];

/// The lab's three-layer image, bottom first: busybox, a runtime, an app.
// ANCHOR: layers
pub fn image_layers(dirs: &LabDirs) -> anyhow::Result<Vec<Layer>> {
    let (base, _) = busybox::image(dirs)?;
    let layers_dir = dirs.data.join("images").join("layers");
    // Root's alone, as every lab directory but the built-in image's path.
    dirs.create_dir(&layers_dir)?;
    Ok(vec![
        Layer {
            name: "base".into(),
            path: base,
        },
        Layer {
            name: "runtime".into(),
            path: build_layer(&layers_dir, "runtime", RUNTIME_FILES)?,
        },
        Layer {
            name: "app".into(),
            path: build_layer(&layers_dir, "app", APP_FILES)?,
        },
    ])
}
// ANCHOR_END: layers

/// Builds a layer directory once, beside its final place, then renames it
/// there, so an interrupted build never leaves half a layer.
fn build_layer(dir: &Path, name: &str, files: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if path.join(".lab-layer").is_file() {
        return Ok(path);
    }
    let _lock = busybox::lock_in(dir.parent().unwrap_or(dir))?;
    if path.join(".lab-layer").is_file() {
        return Ok(path);
    }
    let building = dir.join(format!(".{name}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&building);
    let result = (|| -> io::Result<()> {
        for (file, content) in files {
            let target = building.join(file);
            fs::create_dir_all(target.parent().unwrap_or(&building))?;
            fs::write(&target, content)?;
            let mode = if file.ends_with(".sh") { 0o755 } else { 0o644 };
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
        }
        fs::write(building.join(".lab-layer"), name)?;
        let _ = fs::remove_dir_all(&path);
        fs::rename(&building, &path)
    })();
    if let Err(source) = result {
        let _ = fs::remove_dir_all(&building);
        return Err(IoError::new("build layer", &path, source).into());
    }
    Ok(path)
}
