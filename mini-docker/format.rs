//! `--format`: Go's text/template, the subset people use with Docker
//! (`inspect -f`, `ps --format`), over the JSON document the command shows.
//!
//! Actions: `{{.A.B}}`, `{{$}}`, variables (`{{$x := .A}}`, `$x.B`),
//! pipelines (`{{.A | json}}`), `{{if}}`/`{{else if}}`/`{{else}}`,
//! `{{range}}` (with `$v :=` or `$k, $v :=`, and `{{else}}`), `{{with}}`,
//! `{{end}}`, comments, `{{-`/`-}}` trimming. Functions: Docker's (`json`,
//! `join`, `split`, `upper`, `lower`, `title`, `println`, `truncate`,
//! `pad`) and Go's (`index`, `len`, `print`, `printf`, `eq`, `ne`, `lt`,
//! `le`, `gt`, `ge`, `and`, `or`, `not`).
//!
//! Values print as Go prints them: lists as `[a b]`, maps as `map[k:v]`
//! with sorted keys. One difference: Docker's structs (`{{.State}}`) print
//! as `{running true …}`; here they are maps, and print as maps.
//! (gtmpl, the Rust port of text/template, prints lists and maps with
//! Rust's Debug format, so the lab has this small evaluator instead.)

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    /// Print a pipeline, or assign it to variables (`$x := …`).
    Action {
        vars: Vec<String>,
        pipe: Pipe,
    },
    If {
        branches: Vec<(Pipe, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    Range {
        vars: Vec<String>,
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

type Pipe = Vec<Vec<Operand>>;

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `.A.B` (empty: `.`), on the current value.
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone: the document).
    Var(String, Vec<String>),
    Str(String),
    Num(f64),
    Bool(bool),
    Nil,
    /// A function name.
    Ident(String),
    /// `(pipeline).A.B`
    Sub(Pipe, Vec<String>),
}

/// A parsed template, ready to run on documents.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let tokens = split_actions(text)?;
        let mut pos = 0;
        let (nodes, end) = parse_nodes(&tokens, &mut pos)?;
        if let Some(end) = end {
            return Err(format!("template: unexpected {{{{{end}}}}}"));
        }
        Ok(Template { nodes })
    }

    pub fn render(&self, doc: &Value) -> Result<String, String> {
        let mut out = String::new();
        let mut scope = Scope {
            root: doc,
            vars: vec![("$".to_string(), doc.clone())],
        };
        exec(&self.nodes, doc, &mut scope, &mut out)?;
        Ok(out)
    }
}

/// Text and action contents, with Go's trim markers applied.
enum Token {
    Text(String),
    Action(String),
}

fn split_actions(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut before = &rest[..start];
        if trim_next {
            before = before.trim_start();
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "template: unclosed action".to_string())?;
        let mut inner = &after[..end];
        if let Some(stripped) = inner.strip_prefix("- ") {
            before = before.trim_end();
            inner = stripped;
        }
        trim_next = false;
        if let Some(stripped) = inner.strip_suffix(" -") {
            trim_next = true;
            inner = stripped;
        }
        if !before.is_empty() {
            tokens.push(Token::Text(before.to_string()));
        }
        tokens.push(Token::Action(inner.trim().to_string()));
        rest = &after[end + 2..];
    }
    let tail = if trim_next { rest.trim_start() } else { rest };
    if !tail.is_empty() {
        tokens.push(Token::Text(tail.to_string()));
    }
    Ok(tokens)
}

/// Nodes up to `{{end}}`, `{{else …}}` or the end; returns which ended them.
fn parse_nodes(tokens: &[Token], pos: &mut usize) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let token = &tokens[*pos];
        *pos += 1;
        let action = match token {
            Token::Text(text) => {
                nodes.push(Node::Text(text.clone()));
                continue;
            }
            Token::Action(action) => action.as_str(),
        };
        if action.starts_with("/*") {
            continue;
        }
        let (word, rest) = match action.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (action, ""),
        };
        match word {
            "end" => return Ok((nodes, Some("end".into()))),
            "else" => return Ok((nodes, Some(format!("else {rest}").trim().to_string()))),
            "if" => {
                let mut branches = vec![(parse_pipe(rest)?, Vec::new())];
                let otherwise;
                loop {
                    let (body, end) = parse_nodes(tokens, pos)?;
                    branches.last_mut().unwrap().1 = body;
                    match end.as_deref() {
                        Some("end") => {
                            otherwise = Vec::new();
                            break;
                        }
                        Some("else") => {
                            let (body, end) = parse_nodes(tokens, pos)?;
                            expect_end(end)?;
                            otherwise = body;
                            break;
                        }
                        Some(e) if e.starts_with("else if ") => {
                            branches.push((parse_pipe(&e["else if ".len()..])?, Vec::new()));
                        }
                        _ => return Err("template: unexpected EOF in if".into()),
                    }
                }
                nodes.push(Node::If {
                    branches,
                    otherwise,
                });
            }
            "range" | "with" => {
                let (vars, pipe) = parse_declaration(rest)?;
                let (body, end) = parse_nodes(tokens, pos)?;
                let otherwise = match end.as_deref() {
                    Some("end") => Vec::new(),
                    Some("else") => {
                        let (body, end) = parse_nodes(tokens, pos)?;
                        expect_end(end)?;
                        body
                    }
                    _ => return Err(format!("template: unexpected EOF in {word}")),
                };
                nodes.push(if word == "range" {
                    Node::Range {
                        vars,
                        pipe,
                        body,
                        otherwise,
                    }
                } else {
                    Node::With {
                        pipe,
                        body,
                        otherwise,
                    }
                });
            }
            _ => {
                let (vars, pipe) = parse_declaration(action)?;
                nodes.push(Node::Action { vars, pipe });
            }
        }
    }
    Ok((nodes, None))
}

fn expect_end(end: Option<String>) -> Result<(), String> {
    match end.as_deref() {
        Some("end") => Ok(()),
        _ => Err("template: expected {{end}}".into()),
    }
}

/// `$k, $v := PIPE` or `$x := PIPE` or `PIPE`.
fn parse_declaration(text: &str) -> Result<(Vec<String>, Pipe), String> {
    if let Some((left, right)) = text.split_once(":=") {
        let vars: Vec<String> = left.split(',').map(|v| v.trim().to_string()).collect();
        if vars.iter().all(|v| v.starts_with('$')) {
            return Ok((vars, parse_pipe(right.trim())?));
        }
    }
    Ok((Vec::new(), parse_pipe(text)?))
}

#[derive(Debug, Clone, PartialEq)]
enum Lexeme {
    Word(String),
    Str(String),
    Open,
    Close(Vec<String>),
    Bar,
}

fn lex(text: &str) -> Result<Vec<Lexeme>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let fields_after = |i: &mut usize| {
        let mut fields = Vec::new();
        while *i < chars.len() && chars[*i] == '.' {
            *i += 1;
            let start = *i;
            while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
                *i += 1;
            }
            fields.push(chars[start..*i].iter().collect());
        }
        fields
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                out.push(Lexeme::Bar);
                i += 1;
            }
            '(' => {
                out.push(Lexeme::Open);
                i += 1;
            }
            ')' => {
                i += 1;
                out.push(Lexeme::Close(fields_after(&mut i)));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("template: unterminated quoted string".into()),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some(other) => s.push(*other),
                                None => return Err("template: unterminated quoted string".into()),
                            }
                        }
                        Some(other) => s.push(*other),
                    }
                    i += 1;
                }
                i += 1;
                out.push(Lexeme::Str(s));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or("template: unterminated raw quoted string")?;
                out.push(Lexeme::Str(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && !" \t\n\r|()\"".contains(chars[i]) {
                    i += 1;
                }
                out.push(Lexeme::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

fn parse_pipe(text: &str) -> Result<Pipe, String> {
    let lexemes = lex(text)?;
    let mut pos = 0;
    let pipe = pipe_from(&lexemes, &mut pos)?;
    if pos < lexemes.len() {
        return Err(format!(
            "template: unexpected {:?} in {text:?}",
            lexemes[pos]
        ));
    }
    if pipe.iter().any(Vec::is_empty) {
        return Err(format!("template: missing value in {text:?}"));
    }
    Ok(pipe)
}

fn pipe_from(lexemes: &[Lexeme], pos: &mut usize) -> Result<Pipe, String> {
    let mut pipe = vec![Vec::new()];
    while *pos < lexemes.len() {
        match &lexemes[*pos] {
            Lexeme::Bar => pipe.push(Vec::new()),
            Lexeme::Close(_) => return Ok(pipe),
            Lexeme::Open => {
                *pos += 1;
                let inner = pipe_from(lexemes, pos)?;
                match lexemes.get(*pos) {
                    Some(Lexeme::Close(fields)) => pipe
                        .last_mut()
                        .unwrap()
                        .push(Operand::Sub(inner, fields.clone())),
                    _ => return Err("template: unclosed left paren".into()),
                }
            }
            Lexeme::Str(s) => pipe.last_mut().unwrap().push(Operand::Str(s.clone())),
            Lexeme::Word(w) => pipe.last_mut().unwrap().push(operand(w)?),
        }
        *pos += 1;
    }
    Ok(pipe)
}

fn operand(word: &str) -> Result<Operand, String> {
    let split = |rest: &str| -> Vec<String> {
        rest.split('.')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    Ok(match word {
        "true" => Operand::Bool(true),
        "false" => Operand::Bool(false),
        "nil" => Operand::Nil,
        w if w.starts_with('.') => Operand::Field(split(w)),
        w if w.starts_with('$') => {
            let (name, rest) = w.split_once('.').map_or((w, ""), |(n, r)| (n, r));
            Operand::Var(name.to_string(), split(rest))
        }
        w if w.parse::<f64>().is_ok() => Operand::Num(w.parse().unwrap()),
        w if w.chars().all(|c| c.is_alphanumeric() || c == '_') => Operand::Ident(w.to_string()),
        w => return Err(format!("template: bad character in {w:?}")),
    })
}

struct Scope<'a> {
    root: &'a Value,
    vars: Vec<(String, Value)>,
}

fn exec(nodes: &[Node], dot: &Value, scope: &mut Scope, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Action { vars, pipe } => {
                let value = eval_pipe(pipe, dot, scope)?;
                if vars.is_empty() {
                    out.push_str(&print(&value));
                } else {
                    scope.vars.push((vars[0].clone(), value));
                }
            }
            Node::If {
                branches,
                otherwise,
            } => {
                let mut done = false;
                for (pipe, body) in branches {
                    if truthy(&eval_pipe(pipe, dot, scope)?) {
                        exec(body, dot, scope, out)?;
                        done = true;
                        break;
                    }
                }
                if !done {
                    exec(otherwise, dot, scope, out)?;
                }
            }
            Node::With {
                pipe,
                body,
                otherwise,
            } => {
                let value = eval_pipe(pipe, dot, scope)?;
                if truthy(&value) {
                    exec(body, &value, scope, out)?;
                } else {
                    exec(otherwise, dot, scope, out)?;
                }
            }
            Node::Range {
                vars,
                pipe,
                body,
                otherwise,
            } => {
                let value = eval_pipe(pipe, dot, scope)?;
                let items: Vec<(Value, Value)> = match &value {
                    Value::Array(list) => list
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (Value::from(i), v.clone()))
                        .collect(),
                    Value::Object(map) => {
                        let mut keys: Vec<&String> = map.keys().collect();
                        keys.sort();
                        keys.into_iter()
                            .map(|k| (Value::from(k.clone()), map[k].clone()))
                            .collect()
                    }
                    Value::Null => Vec::new(),
                    other => {
                        return Err(format!(
                            "template: range can't iterate over {}",
                            print(other)
                        ))
                    }
                };
                if items.is_empty() {
                    exec(otherwise, dot, scope, out)?;
                }
                for (key, item) in items {
                    let depth = scope.vars.len();
                    match vars.as_slice() {
                        [v] => scope.vars.push((v.clone(), item.clone())),
                        [k, v] => {
                            scope.vars.push((k.clone(), key));
                            scope.vars.push((v.clone(), item.clone()));
                        }
                        _ => {}
                    }
                    exec(body, &item, scope, out)?;
                    scope.vars.truncate(depth);
                }
            }
        }
    }
    Ok(())
}

fn eval_pipe(pipe: &Pipe, dot: &Value, scope: &Scope) -> Result<Value, String> {
    let mut last: Option<Value> = None;
    for command in pipe {
        last = Some(eval_command(command, dot, scope, last)?);
    }
    Ok(last.unwrap_or(Value::Null))
}

fn eval_command(
    command: &[Operand],
    dot: &Value,
    scope: &Scope,
    piped: Option<Value>,
) -> Result<Value, String> {
    if let Some(Operand::Ident(name)) = command.first() {
        let mut args = command[1..]
            .iter()
            .map(|o| eval_operand(o, dot, scope))
            .collect::<Result<Vec<_>, _>>()?;
        args.extend(piped);
        return call(name, &args);
    }
    if command.len() > 1 || piped.is_some() {
        return Err(format!(
            "template: can't give argument to non-function {:?}",
            command[0]
        ));
    }
    eval_operand(&command[0], dot, scope)
}

fn eval_operand(operand: &Operand, dot: &Value, scope: &Scope) -> Result<Value, String> {
    Ok(match operand {
        Operand::Field(path) => walk(dot, path),
        Operand::Var(name, path) => {
            let value = if name == "$" {
                scope.root.clone()
            } else {
                scope
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("template: undefined variable: {name}"))?
            };
            walk(&value, path)
        }
        Operand::Str(s) => Value::from(s.clone()),
        Operand::Num(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, |n| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0)
                .map_or(Value::Number(n), |f| Value::from(f as i64))
        }),
        Operand::Bool(b) => Value::Bool(*b),
        Operand::Nil => Value::Null,
        Operand::Ident(name) => call(name, &[])?,
        Operand::Sub(pipe, path) => walk(&eval_pipe(pipe, dot, scope)?, path),
    })
}

/// `.A.B`: a missing key is null (Go's `<no value>` for a map).
fn walk(value: &Value, path: &[String]) -> Value {
    let mut current = value.clone();
    for key in path {
        current = current.get(key).cloned().unwrap_or(Value::Null);
    }
    current
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Go's `%v`.
pub fn print(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(list) => {
            let items: Vec<String> = list.iter().map(print_inner).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", print_inner(&map[k])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// Inside a list or map Go prints nil as `<nil>`.
fn print_inner(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        other => print(other),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => print(other),
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    let arg = |i: usize| {
        args.get(i)
            .ok_or_else(|| format!("template: wrong number of args for {name}"))
    };
    let ordered = |want: &[std::cmp::Ordering]| -> Result<Value, String> {
        let order = compare(arg(0)?, arg(1)?)
            .ok_or_else(|| format!("template: {name}: incompatible types for comparison"))?;
        Ok(Value::Bool(want.contains(&order)))
    };
    use std::cmp::Ordering::*;
    Ok(match name {
        "json" => Value::from(serde_json::to_string(arg(0)?).map_err(|e| e.to_string())?),
        "index" => {
            let mut value = arg(0)?.clone();
            for key in &args[1..] {
                value = match (&value, key) {
                    (Value::Array(list), Value::Number(n)) => {
                        let i = n.as_u64().ok_or("template: index: bad index")? as usize;
                        list.get(i)
                            .cloned()
                            .ok_or_else(|| format!("template: index out of range: {i}"))?
                    }
                    // A missing key is the zero value, as for Go's maps.
                    (Value::Object(map), Value::String(k)) => {
                        map.get(k).cloned().unwrap_or(Value::from(""))
                    }
                    (Value::Null, _) => Value::from(""),
                    _ => {
                        return Err(format!(
                            "template: can't index {} with {}",
                            print(&value),
                            print(key)
                        ))
                    }
                };
            }
            value
        }
        "len" => Value::from(match arg(0)? {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            Value::String(s) => s.len(),
            Value::Null => 0,
            other => return Err(format!("template: len of {}", print(other))),
        }),
        "join" => {
            let list = match arg(0)? {
                Value::Array(list) => list.iter().map(text).collect::<Vec<_>>(),
                Value::Null => Vec::new(),
                other => vec![text(other)],
            };
            Value::from(list.join(&text(arg(1)?)))
        }
        "split" => Value::from(
            text(arg(0)?)
                .split(&text(arg(1)?))
                .map(|s| Value::from(s.to_string()))
                .collect::<Vec<_>>(),
        ),
        "upper" => Value::from(text(arg(0)?).to_uppercase()),
        "lower" => Value::from(text(arg(0)?).to_lowercase()),
        "title" => {
            let words: Vec<String> = text(arg(0)?)
                .split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            Value::from(words.join(" "))
        }
        "truncate" => {
            let n = arg(1)?.as_u64().unwrap_or(0) as usize;
            Value::from(text(arg(0)?).chars().take(n).collect::<String>())
        }
        "pad" => {
            let (l, r) = (arg(1)?.as_u64().unwrap_or(0), arg(2)?.as_u64().unwrap_or(0));
            Value::from(format!(
                "{}{}{}",
                " ".repeat(l as usize),
                text(arg(0)?),
                " ".repeat(r as usize)
            ))
        }
        "print" => Value::from(args.iter().map(text).collect::<Vec<_>>().join("")),
        "println" => Value::from(args.iter().map(text).collect::<Vec<_>>().join(" ") + "\n"),
        "printf" => Value::from(printf(&text(arg(0)?), &args[1..])),
        "eq" => Value::Bool(
            args[1..].iter().any(|b| loosely_equal(arg(0).unwrap(), b)) && args.len() > 1,
        ),
        "ne" => Value::Bool(!loosely_equal(arg(0)?, arg(1)?)),
        "lt" => ordered(&[Less])?,
        "le" => ordered(&[Less, Equal])?,
        "gt" => ordered(&[Greater])?,
        "ge" => ordered(&[Greater, Equal])?,
        "not" => Value::Bool(!truthy(arg(0)?)),
        "and" => args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        _ => return Err(format!("template: function {name:?} not defined")),
    })
}

fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Go's printf for %s %v %d %q %%.
fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => out.push_str(&format!("{:?}", args.next().map(text).unwrap_or_default())),
            Some(_) => out.push_str(&args.next().map(text).unwrap_or_default()),
            None => out.push('%'),
        }
    }
    out
}

/// `--format` as Docker reads it: `json` alone is each document as JSON;
/// `table …` prints a header of the field names first (see `ps`).
pub fn render_each(format: &str, docs: &[Value]) -> Result<String, String> {
    if format == "json" {
        return Ok(docs
            .iter()
            .map(|d| format!("{}\n", serde_json::to_string(d).unwrap_or_default()))
            .collect());
    }
    let template = Template::parse(format)?;
    let mut out = String::new();
    for doc in docs {
        out.push_str(&template.render(doc)?);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, doc: &Value) -> String {
        Template::parse(template).unwrap().render(doc).unwrap()
    }

    #[test]
    fn the_fields_people_use_render_as_docker_renders_them() {
        let doc = serde_json::json!({
            "State": {"Status": "running", "Pid": 42, "Running": true},
            "Config": {"Cmd": ["sh", "-c", "echo hi"], "Labels": {"b": "2", "a": "1"}, "Entrypoint": null},
            "NetworkSettings": {"IPAddress": "172.18.0.2", "Networks": {"bridge": {"IPAddress": "172.18.0.2"}}},
            "Mounts": [{"Source": "/x", "Destination": "/data"}],
        });
        assert_eq!(render("{{.State.Status}}", &doc), "running");
        assert_eq!(render("{{.State.Pid}}", &doc), "42");
        assert_eq!(render("{{.NetworkSettings.IPAddress}}", &doc), "172.18.0.2");
        assert_eq!(render("{{.Config.Cmd}}", &doc), "[sh -c echo hi]");
        assert_eq!(render("{{.Config.Labels}}", &doc), "map[a:1 b:2]");
        assert_eq!(
            render("{{json .Config.Labels}}", &doc),
            r#"{"a":"1","b":"2"}"#
        );
        assert_eq!(
            render("{{.Config.Cmd | json}}", &doc),
            r#"["sh","-c","echo hi"]"#
        );
        assert_eq!(render("{{index .Config.Labels \"a\"}}", &doc), "1");
        assert_eq!(render("{{index .Config.Labels \"zz\"}}", &doc), "");
        assert_eq!(render("{{index .Config.Cmd 2}}", &doc), "echo hi");
        assert_eq!(
            render(
                "{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}",
                &doc
            ),
            "/x:/data "
        );
        assert_eq!(
            render(
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
                &doc
            ),
            "a=1;b=2;"
        );
        assert_eq!(
            render(
                "{{range $net, $c := .NetworkSettings.Networks}}{{$net}} {{$c.IPAddress}}{{end}}",
                &doc
            ),
            "bridge 172.18.0.2"
        );
        assert_eq!(
            render("{{if .State.Running}}up{{else}}down{{end}}", &doc),
            "up"
        );
        assert_eq!(
            render("{{if eq .State.Status \"exited\"}}x{{else if eq .State.Status \"running\"}}r{{end}}", &doc),
            "r"
        );
        assert_eq!(render("{{with .Config}}{{len .Cmd}}{{end}}", &doc), "3");
        assert_eq!(
            render("{{join .Config.Cmd \",\"}} {{upper .State.Status}}", &doc),
            "sh,-c,echo hi RUNNING"
        );
        assert_eq!(render("a {{- \" b \" -}} c", &doc), "a b c");
        assert_eq!(
            render("{{$s := .State}}{{$s.Status}} {{$.State.Pid}}", &doc),
            "running 42"
        );
        assert_eq!(
            render("{{range .Config.Entrypoint}}x{{else}}none{{end}}", &doc),
            "none"
        );
        assert_eq!(
            render("{{printf \"%s-%d\" .State.Status .State.Pid}}", &doc),
            "running-42"
        );
        assert_eq!(render("{{(index .Mounts 0).Destination}}", &doc), "/data");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        assert!(Template::parse("{{.State")
            .unwrap_err()
            .contains("unclosed action"));
        assert!(Template::parse("{{if .A}}x").unwrap_err().contains("EOF"));
        assert!(Template::parse("{{end}}")
            .unwrap_err()
            .contains("unexpected"));
        let doc = serde_json::json!({});
        let t = Template::parse("{{nosuch .A}}").unwrap();
        assert!(t.render(&doc).unwrap_err().contains("not defined"));
    }
}
