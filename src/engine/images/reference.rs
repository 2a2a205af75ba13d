//! Image references parsed the way Docker does (docker/distribution's
//! `reference` grammar, normalised as `ParseNormalizedNamed` does):
//!
//! ```text
//! busybox                      docker.io/library/busybox:latest
//! team/app:1.2                 docker.io/team/app:1.2
//! host:5000/team/app:1.2       host:5000/team/app:1.2
//! name@sha256:<64 hex>         docker.io/library/name@sha256:…
//! name:tag@sha256:<64 hex>     both kept; the digest is what is pulled
//! ```

use std::fmt;

/// Docker Hub's name in references, and where its registry API answers.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
pub const DEFAULT_TAG: &str = "latest";
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// A fully qualified reference: registry domain, repository path, and a
/// tag, a digest or both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, `ghcr.io` …
    pub domain: String,
    /// `library/busybox`, `team/app` …
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:` and 64 lowercase hex digits.
    pub digest: Option<String>,
}

/// Which rule of the grammar a reference broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference {0:?}: it is empty")]
    Empty(String),
    #[error("invalid reference {0:?}: the repository name must be lowercase")]
    Uppercase(String),
    #[error("invalid reference {0:?}: the repository name is longer than {NAME_MAX} characters")]
    NameTooLong(String),
    #[error("invalid reference {0:?}: a path component is empty (two slashes, or a slash at either end)")]
    EmptyComponent(String),
    #[error("invalid reference {reference:?}: path component {component:?} must be lowercase letters and digits, joined by one '.', one or two '_', or dashes")]
    BadComponent {
        reference: String,
        component: String,
    },
    #[error("invalid reference {reference:?}: registry {domain:?} must be host names of letters, digits and inner dashes joined by '.', with an optional :port")]
    BadDomain { reference: String, domain: String },
    #[error("invalid reference {0:?}: the tag is longer than {TAG_MAX} characters")]
    TagTooLong(String),
    #[error("invalid reference {0:?}: a tag is letters, digits, '_', '.' and '-', and does not start with '.' or '-'")]
    BadTag(String),
    #[error("invalid reference {0:?}: a digest is sha256: followed by 64 lowercase hex digits")]
    BadDigest(String),
    #[error("invalid reference {0:?}: a 64-digit hexadecimal name is an image id, not a repository name")]
    HexName(String),
}

impl Reference {
    /// Parses and normalises a reference; the default tag `latest` is added
    /// when neither a tag nor a digest is given.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        let owned = || text.to_string();
        if text.is_empty() {
            return Err(ReferenceError::Empty(owned()));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                if !valid_digest(digest) {
                    return Err(ReferenceError::BadDigest(owned()));
                }
                (rest, Some(digest.to_string()))
            }
            None => (text, None),
        };
        // The tag follows the last ':' that is after the last '/'.
        let (name, tag) = match rest.rfind(':') {
            Some(at) if !rest[at..].contains('/') => (&rest[..at], Some(&rest[at + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            if tag.len() > TAG_MAX {
                return Err(ReferenceError::TagTooLong(owned()));
            }
            if !valid_tag(tag) {
                return Err(ReferenceError::BadTag(owned()));
            }
        }
        if name.is_empty() {
            return Err(ReferenceError::Empty(owned()));
        }
        if name.len() > NAME_MAX {
            return Err(ReferenceError::NameTooLong(owned()));
        }
        let (domain, path) = split_domain(name);
        if !valid_domain(&domain) {
            return Err(ReferenceError::BadDomain {
                reference: owned(),
                domain,
            });
        }
        for component in path.split('/') {
            if component.is_empty() {
                return Err(ReferenceError::EmptyComponent(owned()));
            }
            if component.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(ReferenceError::Uppercase(owned()));
            }
            if !valid_component(component) {
                return Err(ReferenceError::BadComponent {
                    reference: owned(),
                    component: component.to_string(),
                });
            }
        }
        if !name.contains('/') && name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReferenceError::HexName(owned()));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The host (and port) that serves this reference's registry API.
    pub fn registry_host(&self) -> &str {
        if self.domain == DOCKER_HUB {
            DOCKER_HUB_REGISTRY
        } else {
            &self.domain
        }
    }

    /// `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The name as Docker shows it: `busybox`, `team/app`, `host:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DOCKER_HUB {
            self.path
                .strip_prefix("library/")
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        }
    }

    /// `busybox:latest`, as `docker images` and `docker pull` print it.
    pub fn familiar(&self) -> String {
        self.render(self.familiar_name())
    }

    /// What the manifest URL ends with: the digest when there is one.
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(&format!("{}:{tag}", self.name()))
    }

    fn render(&self, name: String) -> String {
        let mut out = name;
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(self.name()))
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(text: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(text)
    }
}

/// Docker's `splitDockerDomain`: the first component is a registry when it
/// has a '.' or a ':', is `localhost`, or has uppercase letters (which then
/// fail as a host name rather than as a repository).
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        domain
    };
    if domain == DOCKER_HUB && !path.contains('/') {
        return (domain, format!("library/{path}"));
    }
    (domain, path)
}

/// `[a-z0-9]+` groups joined by one `.`, one or two `_`, or any dashes.
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Host name labels (letters, digits, inner dashes) joined by dots, and an
/// optional numeric port.
fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// `[\w][\w.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty() && word(bytes[0]) && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// Only sha256 is accepted: it is what registries use and what the store
/// computes.
pub fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "b5fc6d46cbfab2b8e56c7a2a2d2b6aaf2e1e1a4b7f8c1b1b8e0e2a0f0c4d3e2f";

    fn full(text: &str) -> String {
        Reference::parse(text).unwrap().to_string()
    }

    #[test]
    fn docker_normalises_short_names() {
        // The examples of docker/distribution's normalize_test.go.
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            full("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            full("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(full("dmcgowan/myapp"), "docker.io/dmcgowan/myapp:latest");
        assert_eq!(
            full("dmcgowan/myapp/sub:1.0"),
            "docker.io/dmcgowan/myapp/sub:1.0"
        );
        assert_eq!(full("localhost/busybox"), "localhost/busybox:latest");
        assert_eq!(
            full("localhost:5000/team/app:1.2"),
            "localhost:5000/team/app:1.2"
        );
        assert_eq!(full("host:5000/team/app:1.2"), "host:5000/team/app:1.2");
        assert_eq!(full("quay.io/coreos/etcd"), "quay.io/coreos/etcd:latest");
        assert_eq!(full("a.b-c.d:443/x__y.z-w"), "a.b-c.d:443/x__y.z-w:latest");
    }

    #[test]
    fn digests_and_tags_together() {
        let digest = format!("sha256:{HEX}");
        let by_digest = Reference::parse(&format!("busybox@{digest}")).unwrap();
        assert_eq!(by_digest.tag, None);
        assert_eq!(by_digest.tag_or_digest(), digest);
        assert_eq!(
            by_digest.to_string(),
            format!("docker.io/library/busybox@{digest}")
        );
        let both = Reference::parse(&format!("busybox:1.36@{digest}")).unwrap();
        assert_eq!(both.tag.as_deref(), Some("1.36"));
        assert_eq!(both.tag_or_digest(), digest);
        assert_eq!(both.familiar(), format!("busybox:1.36@{digest}"));
    }

    #[test]
    fn hosts_and_familiar_names() {
        let hub = Reference::parse("busybox").unwrap();
        assert_eq!(hub.registry_host(), "registry-1.docker.io");
        assert_eq!(hub.path, "library/busybox");
        assert_eq!(hub.familiar(), "busybox:latest");
        let team = Reference::parse("team/app:2").unwrap();
        assert_eq!(team.familiar_name(), "team/app");
        let local = Reference::parse("127.0.0.1:5000/app").unwrap();
        assert_eq!(local.registry_host(), "127.0.0.1:5000");
        assert_eq!(local.familiar(), "127.0.0.1:5000/app:latest");
    }

    #[test]
    fn each_rule_has_its_own_error() {
        use ReferenceError::*;
        let err = |t: &str| Reference::parse(t).unwrap_err();
        assert!(matches!(err(""), Empty(_)));
        assert!(matches!(err(":tag"), Empty(_)));
        assert!(matches!(err("Busybox"), Uppercase(_)));
        assert!(matches!(err("docker.io/Team/app"), Uppercase(_)));
        assert!(matches!(err("a//b"), EmptyComponent(_)));
        assert!(matches!(err("a/"), EmptyComponent(_)));
        assert!(matches!(err("a-/b"), BadComponent { .. }));
        assert!(matches!(err("a..b"), BadComponent { .. }));
        assert!(matches!(err("a___b"), BadComponent { .. }));
        assert!(matches!(err("-host.io/app"), BadDomain { .. }));
        assert!(matches!(err("host.io:port/app"), BadDomain { .. }));
        assert!(matches!(err("host_name.io/app"), BadDomain { .. }));
        // Docker takes an uppercase first component for a registry host.
        assert_eq!(full("Registry/app"), "Registry/app:latest");
        assert!(matches!(err("busybox:.hidden"), BadTag(_)));
        assert!(matches!(err("busybox:a+b"), BadTag(_)));
        assert!(matches!(err("busybox:"), BadTag(_)));
        assert!(matches!(
            err(&format!("busybox:{}", "a".repeat(129))),
            TagTooLong(_)
        ));
        assert!(Reference::parse(&format!("busybox:{}", "a".repeat(128))).is_ok());
        assert!(matches!(err("busybox@sha256:abc"), BadDigest(_)));
        assert!(matches!(
            err(&format!("busybox@sha256:{}", HEX.to_uppercase())),
            BadDigest(_)
        ));
        assert!(matches!(err(&format!("busybox@md5:{HEX}")), BadDigest(_)));
        assert!(matches!(err(HEX), HexName(_)));
        assert!(matches!(err(&"a".repeat(256)), NameTooLong(_)));
    }

    #[test]
    fn errors_name_the_rule() {
        let message = Reference::parse("Busybox").unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid reference \"Busybox\": the repository name must be lowercase"
        );
        let message = Reference::parse("busybox:-x").unwrap_err().to_string();
        assert!(
            message.contains("does not start with '.' or '-'"),
            "{message}"
        );
    }
}
