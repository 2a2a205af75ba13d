//! Container IDs: 64 lowercase hex digits, as Docker's, random unless the
//! tests pin them.

use super::StoreError;
use crate::support::ids::{pinned_id, random_id};

/// Set by the tests: a named container's ID is then the SHA-256 of its
/// name, so snapshots show the same IDs on every run (IDs are the lab's
/// choice, and what the lab chooses is pinned, not filtered).
pub const PIN_IDS_ENV: &str = "CONTAINER_LAB_PIN_IDS";

/// A new ID for a container that will be called `name` (if it asked).
pub(super) fn new_id(name: Option<&str>) -> Result<String, StoreError> {
    Ok(match (name, std::env::var_os(PIN_IDS_ENV)) {
        (Some(name), Some(_)) => pinned_id(name),
        _ => random_id()?,
    })
}

/// The first 12 characters of an ID (all of it when shorter), as `docker
/// ps` shows it.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

pub(super) fn is_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// IDs become path components: anything else could escape the store.
pub(super) fn check_id(id: &str) -> Result<(), StoreError> {
    if is_id(id) {
        Ok(())
    } else {
        Err(StoreError::InvalidId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_lowercase_hex_digits() {
        let id = new_id(None).unwrap();
        assert!(is_id(&id), "{id}");
        assert_eq!(short_id(&id).len(), 12);
        assert_eq!(short_id("abc"), "abc");
        for bad in ["", "../etc", &id[..63], &id.to_uppercase()] {
            assert!(
                matches!(check_id(bad), Err(StoreError::InvalidId(_))),
                "{bad}"
            );
        }
    }
}
