//! Registry credentials kept as Docker keeps them: a `config.json` with
//! `"auths": {"<registry>": {"auth": base64("user:password")}}`, readable
//! only by its owner. Docker Hub's key is `https://index.docker.io/v1/`.
//! Other keys in the file are kept as they are.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use base64::Engine;
use serde_json::{json, Map, Value};

use super::client::{RegistryOptions, Session};
use crate::engine::images::error::{ImageError, Result};
use crate::engine::images::reference::{DOCKER_HUB, DOCKER_HUB_REGISTRY};
use crate::support::error::{io_err, IoError};

pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, Clone)]
pub struct CredentialStore {
    pub path: PathBuf,
}

/// The `auths` key for a registry domain or API host, as Docker writes it.
pub fn auth_key(registry: &str) -> String {
    let host = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    match host {
        DOCKER_HUB | DOCKER_HUB_REGISTRY | "index.docker.io" | "index.docker.io/v1" => {
            DOCKER_HUB_AUTH_KEY.to_string()
        }
        other => other.to_string(),
    }
}

impl CredentialStore {
    pub fn new(path: PathBuf) -> CredentialStore {
        CredentialStore { path }
    }

    fn read(&self) -> Result<Map<String, Value>> {
        match fs::read(&self.path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(_) => Err(ImageError::invalid(
                    self.path.display().to_string(),
                    "not a JSON object",
                )),
                Err(e) => Err(ImageError::invalid(self.path.display().to_string(), e)),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
            Err(e) => Err(ImageError::Io(IoError::new("read", &self.path, e))),
        }
    }

    /// Written through a temporary created 0600, then renamed over.
    fn write(&self, config: &Map<String, Value>) -> Result<()> {
        let dir = self
            .path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| ".".into());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("create", &dir))?;
        let temp = dir.join(format!(".config.json.{}", std::process::id()));
        let bytes =
            serde_json::to_vec_pretty(config).map_err(|e| ImageError::invalid("config.json", e))?;
        let result = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)
                .map_err(io_err("create", &temp))?;
            file.write_all(&bytes).map_err(io_err("write", &temp))?;
            file.write_all(b"\n").map_err(io_err("write", &temp))?;
            file.sync_all().map_err(io_err("sync", &temp))?;
            Ok(fs::rename(&temp, &self.path).map_err(io_err("rename into place", &self.path))?)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// The user and password stored for a registry, if any.
    pub fn get(&self, registry: &str) -> Result<Option<(String, String)>> {
        let config = self.read()?;
        let key = auth_key(registry);
        let Some(auths) = config.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let entry = auths
            .get(&key)
            .or_else(|| auths.get(&format!("https://{key}")))
            .or_else(|| auths.get(&format!("http://{key}")));
        let Some(encoded) = entry.and_then(|e| e.get("auth")).and_then(Value::as_str) else {
            return Ok(None);
        };
        let bad = || {
            ImageError::invalid(
                format!("the credentials for {key} in {}", self.path.display()),
                "auth is not base64 of user:password",
            )
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, password) = text.split_once(':').ok_or_else(bad)?;
        Ok(Some((user.to_string(), password.to_string())))
    }

    pub fn store(&self, registry: &str, user: &str, password: &str) -> Result<()> {
        let mut config = self.read()?;
        let auths = config
            .entry("auths")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| {
                ImageError::invalid(self.path.display().to_string(), "auths is not an object")
            })?;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        auths.insert(auth_key(registry), json!({ "auth": encoded }));
        self.write(&config)
    }

    /// Removes a registry's credentials; false when there were none.
    pub fn erase(&self, registry: &str) -> Result<bool> {
        let mut config = self.read()?;
        let key = auth_key(registry);
        let removed = config
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .is_some_and(|auths| auths.remove(&key).is_some());
        if removed {
            self.write(&config)?;
        }
        Ok(removed)
    }
}

/// `docker login`: checks the credentials against the registry's `/v2/`
/// (directly with Basic, or through its token service) and stores them.
pub fn login(
    options: &RegistryOptions,
    store: &CredentialStore,
    registry: &str,
    user: &str,
    password: &str,
) -> Result<()> {
    let host = if registry == DOCKER_HUB || registry == DOCKER_HUB_AUTH_KEY {
        DOCKER_HUB_REGISTRY
    } else {
        registry
    };
    // The scope names no repository: any will do to check a login.
    Session::connect_with(
        options,
        host,
        "library/login-check",
        "pull",
        Some((user.to_string(), password.to_string())),
    )?;
    store.store(registry, user, password)
}

/// `docker logout`: false when no credentials were stored.
pub fn logout(store: &CredentialStore, registry: &str) -> Result<bool> {
    store.erase(registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn stored_as_docker_does_and_only_for_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker/config.json");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, r#"{"credsStore":"keep-me"}"#).unwrap();
        let store = CredentialStore::new(path.clone());
        store.store("docker.io", "ann", "s3cret:x").unwrap();
        store.store("127.0.0.1:5000", "bob", "pw").unwrap();
        let text: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(text["credsStore"], "keep-me");
        assert_eq!(
            text["auths"][DOCKER_HUB_AUTH_KEY]["auth"],
            "YW5uOnMzY3JldDp4"
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            store.get("registry-1.docker.io").unwrap(),
            Some(("ann".into(), "s3cret:x".into()))
        );
        assert_eq!(
            store.get("127.0.0.1:5000").unwrap(),
            Some(("bob".into(), "pw".into()))
        );
        assert!(logout(&store, "127.0.0.1:5000").unwrap());
        assert!(!logout(&store, "127.0.0.1:5000").unwrap());
        assert_eq!(store.get("127.0.0.1:5000").unwrap(), None);
    }
}
