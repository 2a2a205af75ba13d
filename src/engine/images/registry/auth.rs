//! `Www-Authenticate` challenges (RFC 7235) as registries send them, and
//! the headers that answer them: a Bearer token from the realm (docker's
//! token protocol), or Basic credentials.

use base64::Engine;

/// What a 401 asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    Basic {
        realm: Option<String>,
    },
}

/// Parses the first challenge we can answer from `Www-Authenticate`
/// values, e.g. `Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`.
pub fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    values.into_iter().find_map(parse_challenge)
}

fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let params = parse_params(rest);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    } else if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic {
            realm: get("realm"),
        })
    } else {
        None
    }
}

/// `key=value` or `key="quoted \"value\""` pairs separated by commas.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.push((key, value));
    }
}

pub fn basic_header(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// The token URL for a Bearer challenge and the scopes we need.
pub fn token_url(realm: &str, service: Option<&str>, scope: &str) -> String {
    let mut url = realm.to_string();
    let mut separator = if realm.contains('?') { '&' } else { '?' };
    if let Some(service) = service {
        url.push(separator);
        url.push_str("service=");
        url.push_str(&encode(service));
        separator = '&';
    }
    url.push(separator);
    url.push_str("scope=");
    url.push_str(&encode(scope));
    url
}

/// Percent-encodes what a query value may not hold.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token in a token endpoint's answer (`token`, or OAuth's `access_token`).
pub fn token_from_answer(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value
        .get("token")
        .or_else(|| value.get("access_token"))
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hubs_challenge() {
        let challenge = parse_challenges([
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        ]);
        assert_eq!(
            challenge,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            token_url("https://auth.docker.io/token", Some("registry.docker.io"), "repository:library/busybox:pull"),
            "https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/busybox:pull"
        );
    }

    #[test]
    fn basic_and_odd_spellings() {
        assert_eq!(
            parse_challenges(["Negotiate", r#"basic realm="Registry \"Realm\"""#]),
            Some(Challenge::Basic {
                realm: Some("Registry \"Realm\"".into())
            })
        );
        assert_eq!(
            parse_challenges([r#"Bearer realm=http://127.0.0.1:1/t, service=s"#]),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: Some("s".into()),
                scope: None
            })
        );
        assert_eq!(parse_challenges(["Bearer service=x"]), None);
        assert_eq!(basic_header("user", "pass"), "Basic dXNlcjpwYXNz");
        assert_eq!(
            token_from_answer(br#"{"access_token":"t"}"#).as_deref(),
            Some("t")
        );
    }
}
