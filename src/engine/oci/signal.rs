//! Signals as `kill` takes them: a name with or without `SIG`, or a
//! number (runc's spelling: `KILL`, `SIGTERM`, `9`).

use std::str::FromStr;

use nix::sys::signal::Signal;

use super::OciError;

pub fn parse(text: &str) -> Result<Signal, OciError> {
    let upper = text.trim().to_ascii_uppercase();
    if let Ok(number) = upper.parse::<i32>() {
        return Signal::try_from(number)
            .map_err(|_| OciError::Other(format!("unknown signal number {number}")));
    }
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| {
        OciError::Other(format!(
            "unknown signal {text:?}: use a name such as TERM or KILL, or a number"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse("15").unwrap(), Signal::SIGTERM);
        assert!(parse("NOPE").is_err());
        assert!(parse("99").is_err());
    }
}
