//! The image config a build (or a commit) changes step by step: kept as
//! JSON, so that fields this engine does not model (a base image's
//! `Healthcheck`, `OnBuild`, annotations) pass through unchanged.

use serde_json::{json, Map, Value};

use crate::engine::images::Platform;

#[derive(Debug, Clone, PartialEq)]
pub struct ImageConfig {
    root: Map<String, Value>,
}

impl ImageConfig {
    /// `FROM scratch`: nothing but the platform.
    pub fn scratch(platform: &Platform) -> ImageConfig {
        let mut root = Map::new();
        root.insert("architecture".into(), json!(platform.architecture));
        root.insert("os".into(), json!(platform.os));
        if let Some(v) = &platform.variant {
            root.insert("variant".into(), json!(v));
        }
        root.insert("config".into(), json!({}));
        root.insert("rootfs".into(), json!({"type": "layers", "diff_ids": []}));
        root.insert("history".into(), json!([]));
        ImageConfig { root }
    }

    /// A stored image's config, as the base of a build.
    pub fn from_bytes(bytes: &[u8]) -> Result<ImageConfig, String> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("the image config is not valid JSON: {e}"))?;
        let Value::Object(mut root) = value else {
            return Err("the image config is not a JSON object".into());
        };
        // Docker's classic builder's fields describe the container that
        // made the base, not this image.
        for gone in [
            "container",
            "container_config",
            "docker_version",
            "id",
            "parent",
        ] {
            root.remove(gone);
        }
        if !root.get("config").is_some_and(Value::is_object) {
            root.insert("config".into(), json!({}));
        }
        if !root.get("history").is_some_and(Value::is_array) {
            root.insert("history".into(), json!([]));
        }
        Ok(ImageConfig { root })
    }

    pub fn platform(&self) -> Platform {
        let s = |k: &str| self.root.get(k).and_then(Value::as_str).map(str::to_string);
        Platform {
            os: s("os").unwrap_or_else(|| "linux".into()),
            architecture: s("architecture").unwrap_or_default(),
            variant: s("variant"),
        }
    }

    fn config(&mut self) -> &mut Map<String, Value> {
        match self.root.get_mut("config") {
            Some(Value::Object(map)) => map,
            _ => unreachable!("config is made an object on construction"),
        }
    }

    /// A field of `config` (`Cmd`, `User`, …).
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.root
            .get("config")
            .and_then(|c| c.get(field))
            .filter(|v| !v.is_null())
    }

    pub fn get_str(&self, field: &str) -> Option<&str> {
        self.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn set(&mut self, field: &str, value: Value) {
        if value.is_null() {
            self.config().remove(field);
        } else {
            self.config().insert(field.to_string(), value);
        }
    }

    /// Adds `key` to an object field (`ExposedPorts`, `Volumes`, `Labels`).
    pub fn insert_into(&mut self, field: &str, key: &str, value: Value) {
        let config = self.config();
        let entry = config.entry(field).or_insert_with(|| json!({}));
        if !entry.is_object() {
            *entry = json!({});
        }
        if let Value::Object(map) = entry {
            map.insert(key.to_string(), value);
        }
    }

    pub fn set_root(&mut self, field: &str, value: Value) {
        self.root.insert(field.to_string(), value);
    }

    /// The `Env` list, `K=V`.
    pub fn env(&self) -> Vec<String> {
        self.get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn env_var(&self, key: &str) -> Option<String> {
        self.env().into_iter().find_map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((&e, ""));
            (k == key).then(|| v.to_string())
        })
    }

    /// Sets `key` in `Env`, in place if it is there already.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        let item = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = item,
            None => env.push(item),
        }
        self.set("Env", json!(env));
    }

    pub fn push_history(&mut self, created: Option<&str>, created_by: &str, empty_layer: bool) {
        let mut entry = Map::new();
        if let Some(c) = created {
            entry.insert("created".into(), json!(c));
        }
        entry.insert("created_by".into(), json!(created_by));
        if empty_layer {
            entry.insert("empty_layer".into(), json!(true));
        }
        if let Some(Value::Array(history)) = self.root.get_mut("history") {
            history.push(Value::Object(entry));
        }
    }

    /// The finished config: its layers' diff_ids and its creation time.
    pub fn to_bytes(&self, diff_ids: &[String], created: Option<&str>) -> Vec<u8> {
        let mut root = self.root.clone();
        root.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
        match created {
            Some(c) => root.insert("created".into(), json!(c)),
            None => root.remove("created"),
        };
        serde_json::to_vec(&Value::Object(root)).unwrap_or_default()
    }
}

/// Go's `%q` of a string slice, as Docker writes `CMD ["a" "b"]` in the
/// history.
pub fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(" "))
}
