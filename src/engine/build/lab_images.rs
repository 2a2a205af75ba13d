//! The lab's image store for builds, and the lab's first images in it: the
//! built-in busybox tree and rootfs tarballs imported by hand are copied
//! into the OCI store (one layer each) the first time a build names them,
//! so that FROM and `commit` find them as any other image.

use crate::engine::dirs::LabDirs;
use crate::engine::images::{
    build_from_rootfs, busybox, imported, Image, ImageError, ImageStore, Reference, RootfsImage,
};

/// The OCI store under `<data>/images`.
pub fn store(dirs: &LabDirs) -> Result<ImageStore, ImageError> {
    ImageStore::open(&dirs.data.join("images"))
}

/// The image `name` names in the store; a built-in or imported image of
/// that name is copied into the store first.
// ANCHOR: find
pub fn find(dirs: &LabDirs, store: &ImageStore, name: &str) -> Result<Image, ImageError> {
    match store.find(name) {
        Err(ImageError::NotFound { .. }) => {}
        found => return found,
    }
    let Ok(old) = imported::resolve(dirs, name) else {
        return store.find(name);
    };
    let [layer] = &old.layers[..] else {
        return store.find(name);
    };
    let env = busybox::env()
        .into_iter()
        .filter(|(k, _)| k == "PATH")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    build_from_rootfs(
        store,
        &layer.path,
        &Reference::parse(name)?,
        &RootfsImage {
            env,
            cmd: vec!["sh".into()],
            created_by: format!("the lab's {} image", old.reference),
            ..RootfsImage::default()
        },
    )
}
// ANCHOR_END: find
