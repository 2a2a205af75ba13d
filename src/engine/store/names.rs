//! Container names: Docker's rule for the ones asked for, and Docker's
//! `adjective_scientist` for the others.

use super::StoreError;
use crate::support::ids::random_bytes;

/// Docker's rule: `/?[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut bytes = bare.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bare.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_string()))
    }
}

pub(super) const ADJECTIVES: [&str; 30] = [
    "admiring", "agitated", "amazing", "awesome", "blissful", "bold", "brave", "clever", "cool",
    "dazzling", "eager", "ecstatic", "elegant", "epic", "festive", "focused", "friendly",
    "gallant", "happy", "hopeful", "jolly", "keen", "loving", "modest", "nifty", "quirky",
    "serene", "trusting", "vibrant", "zealous",
];

pub(super) const SCIENTISTS: [&str; 30] = [
    "albattani",
    "bohr",
    "curie",
    "darwin",
    "einstein",
    "euler",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "goodall",
    "hopper",
    "hypatia",
    "kepler",
    "lamarr",
    "lovelace",
    "meitner",
    "newton",
    "noether",
    "pasteur",
    "planck",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yalow",
    "zhukovsky",
];

/// A Docker-style `adjective_scientist` name that `taken` does not know;
/// after a few collisions a digit is appended, as Docker does.
pub fn generate_name(taken: impl Fn(&str) -> bool) -> Result<String, StoreError> {
    for attempt in 0..1000u32 {
        let [a, b, c, d] = random_bytes::<4>()?;
        let mut name = format!(
            "{}_{}",
            ADJECTIVES[usize::from(a) % ADJECTIVES.len()],
            SCIENTISTS[usize::from(b) % SCIENTISTS.len()]
        );
        if attempt >= 10 {
            name.push_str(&(u16::from_le_bytes([c, d]) % 100).to_string());
        }
        if !taken(&name) {
            return Ok(name);
        }
    }
    Err(StoreError::NamesExhausted)
}
