//! An HTTP session with one repository of one registry (distribution spec):
//! `GET /v2/` to learn how it authenticates, a token (or Basic credentials)
//! for the repository's scope, then requests that carry it. Blocking, with
//! ureq; https, except for registries named insecure or on loopback.

use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use ureq::config::RedirectAuthHeaders;
use ureq::http::{self, Response};
use ureq::{Agent, Body, SendBody};

use super::auth::{self, Challenge};
use super::credentials::CredentialStore;
use crate::engine::images::error::{ImageError, Result};
use crate::support::error::io_err;

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`) spoken to over plain http, as Docker's
    /// `--insecure-registry`; loopback registries always are.
    pub insecure: Vec<String>,
    /// A Docker `config.json` with `auths`, for credentials.
    pub credentials: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// How long the registry may take to start answering.
    pub response_timeout: Duration,
    /// How long a transfer may receive nothing before it is abandoned.
    pub stall_timeout: Duration,
    pub max_redirects: u32,
    pub user_agent: String,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            credentials: None,
            connect_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(60),
            max_redirects: 10,
            user_agent: format!("container-lab/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What a request sends.
pub enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// Bytes `offset..offset+len` of a file, opened afresh for each try.
    File {
        path: &'a std::path::Path,
        offset: u64,
        len: u64,
    },
}

pub struct Session {
    agent: Agent,
    /// `host[:port]` of the registry API.
    pub registry: String,
    /// `scheme://host[:port]`.
    pub base: String,
    pub repository: String,
    /// `pull` or `pull,push`.
    actions: &'static str,
    credentials: Option<(String, String)>,
    /// The Authorization header value, once we have one.
    authorization: Mutex<Option<String>>,
}

/// True for `localhost`, 127.0.0.0/8 and ::1 (with or without a port).
pub fn is_loopback(host: &str) -> bool {
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub fn scheme_for(host: &str, options: &RegistryOptions) -> &'static str {
    if is_loopback(host) || options.insecure.iter().any(|h| h == host) {
        "http"
    } else {
        "https"
    }
}

/// `host[:port]` of a URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

pub fn agent(options: &RegistryOptions) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(options.max_redirects)
        // Redirected blobs (object storage) must not get our token.
        .redirect_auth_headers(RedirectAuthHeaders::SameHost)
        .timeout_connect(Some(options.connect_timeout))
        .timeout_recv_response(Some(options.response_timeout))
        .timeout_per_read(Some(options.stall_timeout))
        .timeout_per_write(Some(options.stall_timeout))
        .user_agent(options.user_agent.as_str())
        .build()
        .into()
}

fn transport(
    method: &'static str,
    url: &str,
    error: ureq::Error,
    options: &RegistryOptions,
) -> ImageError {
    let message = match error {
        ureq::Error::TooManyRedirects => format!(
            "more than {} redirects (a redirect loop?)",
            options.max_redirects
        ),
        ureq::Error::Timeout(_) => format!(
            "the registry did not answer in time (waited up to {} s)",
            options
                .response_timeout
                .max(options.stall_timeout)
                .as_secs()
        ),
        ureq::Error::ConnectionFailed => "could not connect".to_string(),
        ureq::Error::HostNotFound => "host not found (check the name and the network)".to_string(),
        other => other.to_string(),
    };
    ImageError::Transport {
        method,
        url: url.to_string(),
        message,
    }
}

/// The `code: message` pairs of a distribution error body, else its start.
pub fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(errors) = serde_json::from_slice::<Errors>(body) {
        let parts: Vec<String> = errors
            .errors
            .into_iter()
            .map(|e| match (e.code, e.message) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(x), None) | (None, Some(x)) => x,
                (None, None) => String::new(),
            })
            .collect();
        return parts.join("; ");
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.trim().to_string()
}

impl Session {
    /// Pings the registry and authenticates for `repository` with `actions`
    /// (`pull` or `pull,push`), with stored credentials if there are any.
    pub fn connect(
        options: &RegistryOptions,
        registry: &str,
        repository: &str,
        actions: &'static str,
    ) -> Result<Session> {
        let credentials = match &options.credentials {
            Some(path) => CredentialStore::new(path.clone()).get(registry)?,
            None => None,
        };
        Session::connect_with(options, registry, repository, actions, credentials)
    }

    pub fn connect_with(
        options: &RegistryOptions,
        registry: &str,
        repository: &str,
        actions: &'static str,
        credentials: Option<(String, String)>,
    ) -> Result<Session> {
        let base = format!("{}://{registry}", scheme_for(registry, options));
        let session = Session {
            agent: agent(options),
            registry: registry.to_string(),
            base,
            repository: repository.to_string(),
            actions,
            credentials,
            authorization: Mutex::new(None),
        };
        let ping = format!("{}/v2/", session.base);
        let response = session.raw("GET", &ping, &[], &Payload::Empty, options)?;
        match response.status().as_u16() {
            200..=299 => Ok(session),
            401 => {
                session.answer(&response, options)?;
                // Confirm that the answer is accepted.
                let again = session.raw("GET", &ping, &[], &Payload::Empty, options)?;
                match again.status().as_u16() {
                    200..=299 => Ok(session),
                    401 => Err(session.unauthorized(again)),
                    status => Err(http_error("GET", &ping, status, again)),
                }
            }
            status => Err(http_error("GET", &ping, status, response)),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    fn unauthorized(&self, response: Response<Body>) -> ImageError {
        let detail = read_small(response)
            .map(|b| error_detail(&b))
            .unwrap_or_default();
        ImageError::Unauthorized {
            registry: self.registry.clone(),
            with_credentials: self.credentials.is_some(),
            detail: if detail.is_empty() {
                "401 Unauthorized".to_string()
            } else {
                detail
            },
        }
    }

    /// Answers a 401: fetches a token for our scope, or uses Basic.
    fn answer(&self, response: &Response<Body>, options: &RegistryOptions) -> Result<()> {
        let values: Vec<&str> = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let challenge = auth::parse_challenges(values).ok_or_else(|| ImageError::Protocol {
            registry: self.registry.clone(),
            message: "answered 401 without a Bearer or Basic challenge in Www-Authenticate".into(),
        })?;
        let header = match challenge {
            Challenge::Basic { .. } => match &self.credentials {
                Some((user, password)) => auth::basic_header(user, password),
                None => {
                    return Err(ImageError::Unauthorized {
                        registry: self.registry.clone(),
                        with_credentials: false,
                        detail: format!("it needs a login (mini-docker login {})", self.registry),
                    })
                }
            },
            Challenge::Bearer { realm, service, .. } => {
                let scope = format!("repository:{}:{}", self.repository, self.actions);
                format!(
                    "Bearer {}",
                    self.token(&realm, service.as_deref(), &scope, options)?
                )
            }
        };
        *self.authorization.lock().unwrap() = Some(header);
        Ok(())
    }

    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        options: &RegistryOptions,
    ) -> Result<String> {
        let url = auth::token_url(realm, service, scope);
        let realm_host = authority(realm);
        if self.credentials.is_some()
            && realm.starts_with("http://")
            && scheme_for(realm_host, options) == "https"
        {
            return Err(ImageError::Protocol {
                registry: self.registry.clone(),
                message: format!(
                    "its token service {realm} is plain http; credentials are not sent there"
                ),
            });
        }
        let mut request = http::Request::builder().method("GET").uri(&url);
        if let Some((user, password)) = &self.credentials {
            request = request.header("Authorization", auth::basic_header(user, password));
        }
        let request = request
            .body(SendBody::none())
            .map_err(|e| ImageError::invalid(format!("token url {url}"), e))?;
        let response = self
            .agent
            .run(request)
            .map_err(|e| transport("GET", &url, e, options))?;
        let status = response.status().as_u16();
        let body = read_small(response)?;
        match status {
            200..=299 => auth::token_from_answer(&body).ok_or_else(|| ImageError::Protocol {
                registry: self.registry.clone(),
                message: format!("its token service {realm} answered without a token"),
            }),
            401 | 403 => Err(ImageError::Unauthorized {
                registry: self.registry.clone(),
                with_credentials: self.credentials.is_some(),
                detail: format!(
                    "the token service {realm} answered {status}: {}",
                    error_detail(&body)
                ),
            }),
            _ => Err(ImageError::Http {
                method: "GET",
                url,
                status,
                detail: error_detail(&body),
            }),
        }
    }

    /// One request with our Authorization (only to the registry itself).
    fn raw(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(&str, String)],
        payload: &Payload<'_>,
        options: &RegistryOptions,
    ) -> Result<Response<Body>> {
        let mut request = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if authority(url) == self.registry {
            if let Some(header) = self.authorization.lock().unwrap().clone() {
                request = request.header("Authorization", header);
            }
        }
        let body = match payload {
            Payload::Empty => {
                if method != "GET" && method != "HEAD" {
                    request = request.header("Content-Length", "0");
                }
                SendBody::none()
            }
            Payload::Bytes(bytes) => {
                request = request.header("Content-Length", bytes.len().to_string());
                SendBody::from_owned_reader(std::io::Cursor::new(bytes.to_vec()))
            }
            Payload::File { path, offset, len } => {
                use std::io::{Seek, SeekFrom};
                let mut file = std::fs::File::open(path).map_err(io_err("open", *path))?;
                file.seek(SeekFrom::Start(*offset))
                    .map_err(io_err("seek in", *path))?;
                request = request.header("Content-Length", len.to_string());
                SendBody::from_owned_reader(file.take(*len))
            }
        };
        let request = request
            .body(body)
            .map_err(|e| ImageError::invalid(format!("url {url}"), e))?;
        self.agent
            .run(request)
            .map_err(|e| transport(method, url, e, options))
    }

    /// A request that re-authenticates once on 401 (an expired token, a
    /// wider scope) and turns any status but 2xx (or `allowed`) into an
    /// error naming the request.
    pub fn request(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(&str, String)],
        payload: &Payload<'_>,
        allowed: &[u16],
        options: &RegistryOptions,
    ) -> Result<Response<Body>> {
        let mut response = self.raw(method, url, headers, payload, options)?;
        if response.status().as_u16() == 401 {
            self.answer(&response, options)?;
            response = self.raw(method, url, headers, payload, options)?;
            if response.status().as_u16() == 401 {
                return Err(self.unauthorized(response));
            }
        }
        let status = response.status().as_u16();
        if (200..300).contains(&status) || allowed.contains(&status) {
            Ok(response)
        } else {
            Err(http_error(method, url, status, response))
        }
    }

    /// Resolves an upload `Location` (absolute, or a path on the registry).
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            format!(
                "{}/v2/{}/blobs/uploads/{location}",
                self.base, self.repository
            )
        }
    }
}

fn http_error(
    method: &'static str,
    url: &str,
    status: u16,
    response: Response<Body>,
) -> ImageError {
    let detail = read_small(response)
        .map(|b| error_detail(&b))
        .unwrap_or_default();
    ImageError::Http {
        method,
        url: url.to_string(),
        status,
        detail,
    }
}

/// An error or token body: small by nature; more than 1 MiB is cut.
pub fn read_small(response: Response<Body>) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(1 << 20)
        .read_to_end(&mut bytes)
        .map_err(|source| ImageError::Read {
            what: "the registry's answer".to_string(),
            source,
        })?;
    Ok(bytes)
}

/// A body of at most `limit` bytes, refused as soon as it is longer.
pub fn read_limited(response: Response<Body>, limit: u64, what: &str) -> Result<Vec<u8>> {
    if let Some(length) = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if length > limit {
            return Err(ImageError::TooLarge {
                what: what.to_string(),
                limit,
            });
        }
    }
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ImageError::Read {
            what: what.to_string(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(ImageError::TooLarge {
            what: what.to_string(),
            limit,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_named_registries() {
        let mut options = RegistryOptions::default();
        assert_eq!(scheme_for("127.0.0.1:5000", &options), "http");
        assert_eq!(scheme_for("localhost:5000", &options), "http");
        assert_eq!(scheme_for("[::1]:5000", &options), "http");
        assert_eq!(scheme_for("registry-1.docker.io", &options), "https");
        assert_eq!(scheme_for("10.0.0.1:5000", &options), "https");
        options.insecure.push("10.0.0.1:5000".into());
        assert_eq!(scheme_for("10.0.0.1:5000", &options), "http");
        assert_eq!(authority("http://127.0.0.1:5000/v2/x?y"), "127.0.0.1:5000");
    }

    #[test]
    fn distribution_errors_are_read() {
        assert_eq!(
            error_detail(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
    }
}
