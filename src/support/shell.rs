//! Command lines shown to a person: quoted the way a shell needs them.

/// Joins arguments the way a shell would need them typed: words with
/// spaces or special characters go in single quotes.
pub fn shell_words(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', "'\\''"))
            }
        })
        .collect();
    quoted.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quotes_only_what_needs_it() {
        let args: Vec<String> = ["sh", "-c", "echo it's $HOME", "/bin/ls"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(shell_words(&args), "sh -c 'echo it'\\''s $HOME' /bin/ls");
    }
}
