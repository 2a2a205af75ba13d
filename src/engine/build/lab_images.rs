//! The lab's image store for builds: the one store every image lives in
//! (`engine::images::local`), so that FROM and `commit` find the lab's
//! busybox, imported, pulled, loaded and built images alike.

use crate::engine::dirs::LabDirs;
use crate::engine::images::{local, Image, ImageError, ImageStore};

/// The OCI store under `<data>/images`.
pub fn store(dirs: &LabDirs) -> Result<ImageStore, ImageError> {
    local::open(dirs)
}

/// The image `name` names in the store; `busybox` is built into it from
/// the host's busybox on first use.
// ANCHOR: find
pub fn find(dirs: &LabDirs, store: &ImageStore, name: &str) -> Result<Image, ImageError> {
    local::resolve(store, dirs, name)
}
// ANCHOR_END: find
