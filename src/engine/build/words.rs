//! Docker's variable substitution in a Dockerfile word, as BuildKit's
//! shell lexer does it: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?message}`, `${VAR?message}`;
//! single quotes keep everything literal, double quotes keep everything
//! but `$` and the escape character, and the escape character (`\` or the
//! `escape` directive's backtick) makes the next character literal.
//!
//! Used only for the instructions Docker expands (ADD, COPY, ENV, EXPOSE,
//! FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG, ONBUILD's): RUN, CMD
//! and ENTRYPOINT leave `$` to the shell that runs them.

use std::collections::BTreeSet;

/// The result of expanding one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    /// The word with quotes removed and variables replaced.
    pub value: String,
    /// The same, split on unquoted whitespace after substitution (EXPOSE).
    pub words: Vec<String>,
    /// Every variable the word referred to, set or not.
    pub used: BTreeSet<String>,
}

/// Expands `word`; `lookup` gives a variable's value, or None when unset.
pub fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Expanded, String> {
    let mut lexer = Lexer {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        lookup,
        used: BTreeSet::new(),
    };
    match lexer.until(None, false) {
        Ok((value, words)) => Ok(Expanded {
            value,
            words,
            used: lexer.used,
        }),
        Err(e) => Err(format!("failed to process {word:?}: {e}")),
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    used: BTreeSet<String>,
}

/// The words of an expansion: unquoted whitespace separates them.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw(ch);
        }
    }
    fn add_raw(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add(c));
    }
    fn add_raw_str(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    /// Reads to the end (or to `stop`), returning the text and its words.
    fn until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                    words.add_str(&value);
                }
                '\'' => {
                    let value = self.single_quoted()?;
                    result.push_str(&value);
                    words.add_raw_str(&value);
                }
                '"' => {
                    let value = self.double_quoted()?;
                    result.push_str(&value);
                    words.add_raw_str(&value);
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        if raw_escapes {
                            words.add_raw(ch);
                            result.push(ch);
                        }
                        // The escape character makes the next one literal;
                        // alone at the end it is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw(escaped);
                        result.push(escaped);
                    } else {
                        words.add(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(stop) => Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => return Ok(out),
                Some(ch) => out.push(ch),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.escape {
                        match self.peek() {
                            None => continue,
                            // Only these are escaped inside double quotes.
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                ch = self.next().unwrap_or_default();
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn get(&mut self, name: &str) -> Option<String> {
        self.used.insert(name.to_string());
        (self.lookup)(name)
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.get(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        let Some(mut modifier) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        if modifier == '}' {
            return Ok(self.get(&name).unwrap_or_default());
        }
        let mut shown = modifier.to_string();
        let colon = modifier == ':';
        if colon {
            modifier = self.next().unwrap_or('}');
            shown.push(modifier);
        }
        if !matches!(modifier, '-' | '+' | '?') {
            return Err(format!("unsupported modifier ({shown}) in substitution"));
        }
        let word = match self.until(Some('}'), false) {
            Ok((word, _)) => word,
            Err(_) if self.peek().is_none() => return Err("syntax error: missing '}'".into()),
            Err(e) => return Err(e),
        };
        let value = self.get(&name);
        let unset = value.is_none() || (colon && value.as_deref() == Some(""));
        match modifier {
            '-' => Ok(if unset {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset { String::new() } else { word }),
            _ => {
                if value.is_none() || unset {
                    let default = if value.is_none() {
                        "is not allowed to be unset"
                    } else {
                        "is not allowed to be empty"
                    };
                    let message = if word.is_empty() { default } else { &word };
                    return Err(format!("{name}: {message}"));
                }
                Ok(value.unwrap_or_default())
            }
        }
    }

    /// A variable name: letters, digits and `_`; or all digits; or one of
    /// the shell's special parameters.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("apple".into()),
            "EMPTY" => Some(String::new()),
            "SPACED" => Some("a b".into()),
            _ => None,
        }
    }

    fn ex(word: &str) -> String {
        expand(word, '\\', &env).unwrap().value
    }

    #[test]
    fn forms_of_substitution() {
        assert_eq!(ex("$A"), "apple");
        assert_eq!(ex("${A}s"), "apples");
        assert_eq!(ex("$Ax"), "");
        assert_eq!(ex("${NOPE:-pear}"), "pear");
        assert_eq!(ex("${EMPTY:-pear}"), "pear");
        assert_eq!(ex("${EMPTY-pear}"), "");
        assert_eq!(ex("${A:-pear}"), "apple");
        assert_eq!(ex("${A:+set}"), "set");
        assert_eq!(ex("${EMPTY:+set}"), "");
        assert_eq!(ex("${EMPTY+set}"), "set");
        assert_eq!(ex("${NOPE:+set}"), "");
        assert_eq!(ex("${NOPE:-$A}"), "apple");
        assert_eq!(ex("a$"), "a$");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(ex("'$A'"), "$A");
        assert_eq!(ex("\"$A and $A\""), "apple and apple");
        assert_eq!(ex("\\$A"), "$A");
        assert_eq!(ex("\"\\$A\""), "$A");
        assert_eq!(ex("\"a\\b\""), "a\\b");
        assert_eq!(ex("hello\\ world"), "hello world");
        assert_eq!(expand("`$A", '`', &env).unwrap().value, "$A");
    }

    #[test]
    fn words_split_after_substitution_but_not_inside_quotes() {
        let e = expand("$SPACED \"c d\" e", '\\', &env).unwrap();
        assert_eq!(e.words, vec!["a", "b", "c d", "e"]);
        assert_eq!(e.used, BTreeSet::from(["SPACED".to_string()]));
    }

    #[test]
    fn errors_are_docker_s() {
        let err = |w: &str| expand(w, '\\', &env).unwrap_err();
        assert_eq!(
            err("${A"),
            "failed to process \"${A\": syntax error: missing '}'"
        );
        assert!(err("${}").ends_with("bad substitution"));
        assert!(err("'open").ends_with("matching single-quote"));
        assert!(err("${NOPE:?must be set}").ends_with("NOPE: must be set"));
        assert!(err("${NOPE?}").ends_with("NOPE: is not allowed to be unset"));
        assert!(err("${A/x/y}").ends_with("unsupported modifier (/) in substitution"));
    }
}
