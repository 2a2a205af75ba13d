//! Platforms (`linux/amd64`, `linux/arm64/v8`) and picking one from an
//! image index or a manifest list, as Docker does.

use std::fmt;

use oci_spec::image::Descriptor;

use super::error::{ImageError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's, in Go's names.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// `os/arch[/variant]`, as `--platform` takes it.
    pub fn parse(text: &str) -> Result<Platform> {
        let parts: Vec<&str> = text.split('/').collect();
        let bad = || {
            ImageError::invalid(
                format!("platform {text:?}"),
                "a platform is os/architecture[/variant], for example linux/arm64/v8",
            )
        };
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: normalise_arch(&parts[1].to_ascii_lowercase()).to_string(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }

    fn of(descriptor: &Descriptor) -> Option<Platform> {
        let p = descriptor.platform().as_ref()?;
        Some(Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone().filter(|v| !v.is_empty()),
        })
    }

    /// arm64 without a variant is arm64/v8.
    fn effective_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None) => Some("v8"),
            (_, variant) => variant,
        }
    }

    /// How well a candidate fits: None when it does not, higher is better.
    fn score(&self, candidate: &Platform) -> Option<u8> {
        if candidate.os != self.os || candidate.architecture != self.architecture {
            return None;
        }
        match (self.effective_variant(), candidate.effective_variant()) {
            (Some(want), Some(have)) if want == have => Some(2),
            (Some(_), Some(_)) => None,
            (None, None) => Some(2),
            // A variant asked for and none given, or the other way round.
            _ => Some(1),
        }
    }

    /// The manifest for this platform among an index's entries.
    pub fn select<'a>(
        &self,
        manifests: &'a [Descriptor],
        reference: &str,
    ) -> Result<&'a Descriptor> {
        manifests
            .iter()
            .filter_map(|d| Some((self.score(&Platform::of(d)?)?, d)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, d)| d)
            .ok_or_else(|| ImageError::NoSuchPlatform {
                reference: reference.to_string(),
                wanted: self.to_string(),
                // Attestations (unknown/unknown) are not platforms.
                available: manifests
                    .iter()
                    .filter_map(Platform::of)
                    .filter(|p| p.os != "unknown")
                    .map(|p| p.to_string())
                    .collect(),
            })
    }
}

fn normalise_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(platforms: &[&str]) -> Vec<Descriptor> {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let parts: Vec<&str> = p.split('/').collect();
                let mut platform = serde_json::json!({"os": parts[0], "architecture": parts[1]});
                if let Some(v) = parts.get(2) {
                    platform["variant"] = serde_json::json!(v);
                }
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{:064x}", i),
                    "size": 1,
                    "platform": platform,
                })
            })
            .collect();
        serde_json::from_value(serde_json::Value::Array(manifests)).unwrap()
    }

    #[test]
    fn picks_this_machine_or_the_one_asked_for() {
        let manifests = index(&[
            "linux/amd64",
            "linux/arm/v7",
            "linux/arm64/v8",
            "unknown/unknown",
        ]);
        let pick = |p: &str| {
            Platform::parse(p)
                .unwrap()
                .select(&manifests, "x")
                .map(|d| d.digest().to_string())
        };
        assert!(pick("linux/amd64").unwrap().ends_with('0'));
        assert!(pick("linux/arm64").unwrap().ends_with('2'));
        assert!(pick("linux/arm64/v8").unwrap().ends_with('2'));
        assert!(pick("linux/arm/v7").unwrap().ends_with('1'));
        let err = pick("linux/riscv64").unwrap_err().to_string();
        assert_eq!(
            err,
            "x has no image for linux/riscv64; it has linux/amd64, linux/arm/v7, linux/arm64/v8"
        );
        assert!(pick("linux/arm/v6").is_err());
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert!(Platform::parse("linux").is_err());
    }
}
