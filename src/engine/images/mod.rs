//! Images: a content-addressed store on the OCI image layout, the registry
//! protocol (distribution spec) to pull and push, docker/OCI archives, and
//! images built from a local root filesystem.
//!
//! On disk, under the directory the caller gives (the lab: `<data>/images`):
//!
//! ```text
//! oci-layout                      {"imageLayoutVersion": "1.0.0"}
//! index.json                      one manifest descriptor per tagged image,
//!                                 org.opencontainers.image.ref.name = full reference
//! blobs/sha256/<hex>              manifests, configs, compressed layers
//! layers/sha256/<diff_id>/root/   each layer unpacked once: an overlay lower dir
//! layers/sha256/<diff_id>/layer.json   its uncompressed size and entry count
//! tmp/                            downloads and unpacks in progress
//! lock, index.json.lock           flock(2) files
//! ```
//!
//! Nothing here prints: progress is reported as [`Event`]s to a callback.

mod archive;
mod compression;
mod error;
mod from_rootfs;
mod layout;
mod platform;
mod progress;
mod reference;
pub mod registry;
mod store;
mod unpack;
mod verify;
mod write;

// The images of the first chapters: the built-in busybox tree and rootfs
// tarballs imported by hand (before the store above holds them too).
pub mod busybox;
pub mod imported;

pub use archive::{load, save, ArchiveFormat};
pub use compression::Compression;
pub use error::{ImageError, Result};
pub use from_rootfs::{build_from_rootfs, RootfsImage};
pub use platform::Platform;
pub use progress::{Event, LayerProgress, LayerState, Progress};
pub use reference::{Reference, ReferenceError, DOCKER_HUB, DOCKER_HUB_REGISTRY};
pub use store::{Image, ImageStore, Removed, StoredLayer};
pub use unpack::{UnpackLimits, UnpackReport};
pub use write::{LayerWriter, ScratchDir, WrittenImage};
