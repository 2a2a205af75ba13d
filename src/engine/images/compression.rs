//! Layer compression: chosen by media type (OCI and Docker), then checked
//! against the stream's first bytes so that a mislabelled layer is refused
//! with a clear error rather than unpacked as garbage.

use std::io::{self, Cursor, Read};

use super::error::{ImageError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// The compression a layer media type names; None for what is not a
    /// layer this engine unpacks (foreign Windows layers, artifacts).
    pub fn for_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            OCI_LAYER_TAR
            | DOCKER_LAYER_TAR
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(Compression::None),
            OCI_LAYER_GZIP
            | DOCKER_LAYER_GZIP
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
                Some(Compression::Gzip)
            }
            OCI_LAYER_ZSTD | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }

    /// The OCI media type for a layer compressed this way.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => OCI_LAYER_TAR,
            Compression::Gzip => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::None => "an uncompressed tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// What the first bytes say.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Reads up to 4 bytes ahead and gives them back in front of the rest.
pub fn peek<R: Read>(mut reader: R) -> io::Result<(Vec<u8>, impl Read)> {
    let mut head = vec![0u8; 4];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(filled);
    Ok((head.clone(), Cursor::new(head).chain(reader)))
}

/// A decompressing reader for a layer, after checking its magic bytes.
pub fn decoder<'a, R: Read + 'a>(
    reader: R,
    said: Compression,
    layer: &str,
    media_type: &str,
) -> Result<Box<dyn Read + 'a>> {
    let (head, reader) = peek(reader).map_err(|source| ImageError::Read {
        what: format!("layer {layer}"),
        source,
    })?;
    let found = Compression::sniff(&head);
    if found != said {
        return Err(ImageError::CompressionMismatch {
            layer: layer.to_string(),
            media_type: media_type.to_string(),
            said: said.name(),
            found: if head.is_empty() {
                "empty"
            } else {
                found.name()
            },
        });
    }
    Ok(match said {
        Compression::None => Box::new(reader),
        // Several gzip members in a row are one stream, as Go reads them.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => {
            Box::new(
                zstd::stream::read::Decoder::new(reader).map_err(|e| ImageError::Invalid {
                    what: format!("layer {layer}"),
                    message: format!("zstd: {e}"),
                })?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_of_both_worlds() {
        assert_eq!(
            Compression::for_media_type(DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::for_media_type(OCI_LAYER_ZSTD),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::for_media_type(OCI_LAYER_TAR),
            Some(Compression::None)
        );
        assert_eq!(
            Compression::for_media_type(
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            ),
            None
        );
    }

    #[test]
    fn a_mislabelled_layer_is_refused() {
        let tar = vec![0u8; 1024];
        let err = match decoder(&tar[..], Compression::Gzip, "sha256:x", OCI_LAYER_GZIP) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted a tar labelled gzip"),
        };
        assert!(err.contains("said to be gzip"), "{err}");
        assert!(err.contains("an uncompressed tar"), "{err}");
        let zstd = zstd::encode_all(&tar[..], 3).unwrap();
        let mut out = Vec::new();
        decoder(&zstd[..], Compression::Zstd, "x", OCI_LAYER_ZSTD)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, tar);
        assert!(decoder(&zstd[..], Compression::None, "x", OCI_LAYER_TAR).is_err());
    }
}
