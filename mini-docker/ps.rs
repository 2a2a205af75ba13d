//! `docker ps` with its flags: `-a`, `-q`, `-n N`, `-l`, `-s`,
//! `--no-trunc`, `--filter KEY=VALUE` and `--format` (a Go template over
//! each container's row, `table …` for a header, or `json`).

use std::time::SystemTime;

use clap::Args;
use container_lab::engine::store::{Record, Status};
use container_lab::support::time::format_rfc3339;
use serde_json::{json, Value};

use crate::lifecycle::{lifecycle, refused};
use crate::present;

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Show n last created containers (includes all states)
    #[arg(
        short = 'n',
        long = "last",
        value_name = "N",
        allow_hyphen_values = true
    )]
    last: Option<i64>,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    latest: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    size: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided (id, name, label, status, ancestor, exited)
    #[arg(short = 'f', long = "filter", value_name = "FILTER")]
    filter: Vec<String>,
    /// Format output using a custom template ("table …", "json" or a Go template)
    #[arg(long)]
    format: Option<String>,
}

/// One `--filter KEY=VALUE`.
enum Filter {
    Id(String),
    Name(String),
    Label(String, Option<String>),
    Status(String),
    Ancestor(String),
    Exited(i32),
}

fn parse_filter(text: &str) -> anyhow::Result<Filter> {
    let (key, value) = text.split_once('=').ok_or_else(|| {
        refused(format!(
            "bad format of filter (expected name=value): {text}"
        ))
    })?;
    let value = value.to_string();
    Ok(match key {
        "id" => Filter::Id(value),
        "name" => Filter::Name(value),
        "label" => match value.split_once('=') {
            Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
            None => Filter::Label(value, None),
        },
        "status" => {
            const STATES: [&str; 7] = [
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ];
            if !STATES.contains(&value.as_str()) {
                return Err(refused(format!(
                    "invalid filter 'status={value}': use one of {}",
                    STATES.join(", ")
                )));
            }
            Filter::Status(value)
        }
        "ancestor" => Filter::Ancestor(value),
        "exited" => {
            Filter::Exited(value.parse().map_err(|_| {
                refused(format!("invalid filter 'exited={value}': use an exit code"))
            })?)
        }
        other => {
            return Err(refused(format!(
                "invalid filter '{other}': use id, name, label, status, ancestor or exited"
            )))
        }
    })
}

impl Filter {
    fn keeps(&self, record: &Record) -> bool {
        let state = record.effective_state();
        match self {
            Filter::Id(prefix) => record.id.starts_with(prefix.as_str()),
            Filter::Name(part) => record.name.contains(part.as_str()),
            Filter::Label(key, value) => record
                .config
                .extra
                .labels
                .iter()
                .any(|(k, v)| k == key && value.as_ref().is_none_or(|want| want == v)),
            Filter::Status(status) => state.status.as_str() == status,
            Filter::Ancestor(image) => {
                let name = |r: &str| r.strip_suffix(":latest").unwrap_or(r).to_string();
                name(record.image()) == name(image)
            }
            Filter::Exited(code) => state.status == Status::Exited && state.exit_code == *code,
        }
    }
}

/// The command as Docker's daemon joins it: arguments with a space in
/// single quotes.
pub fn joined_command(command: &[String]) -> String {
    command
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if i > 0 && a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a `--format` template sees of one container, as Docker names it.
fn row(record: &Record, now: SystemTime, size: Option<u64>, no_trunc: bool) -> Value {
    let state = record.effective_state();
    let command = joined_command(record.command());
    let created = format_rfc3339(record.created);
    // Docker's CreatedAt: "2027-01-15 07:59:55 +0000 UTC".
    let created_at = format!(
        "{} +0000 UTC",
        created.trim_end_matches('Z').replacen('T', " ", 1)
    );
    let labels: Vec<String> = record
        .config
        .extra
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let network = record.config.network_name();
    let mounts: Vec<String> = record
        .config
        .volumes
        .iter()
        .map(|v| v.target.clone())
        .collect();
    json!({
        "ID": if no_trunc { record.id.clone() } else { record.short_id().to_string() },
        "Image": record.image(),
        "Command": if no_trunc { format!("{command:?}") } else { present::ps_command_text(&command) },
        "CreatedAt": created_at,
        "RunningFor": format!("{} ago", present::since_text(now, record.created)),
        "Ports": state.ports.join(", "),
        "State": state.status.as_str(),
        "Status": present::status_text(&state, now),
        "Size": size.map(|s| format!("{} (virtual {})", present::human_size(s), present::human_size(s))).unwrap_or_default(),
        "Names": record.name,
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": network,
    })
}

/// Docker's headers for `table` formats.
fn header(field: &str) -> &str {
    match field {
        "ID" => "CONTAINER ID",
        "Image" => "IMAGE",
        "Command" => "COMMAND",
        "CreatedAt" => "CREATED AT",
        "RunningFor" => "CREATED",
        "Ports" => "PORTS",
        "State" => "STATE",
        "Status" => "STATUS",
        "Size" => "SIZE",
        "Names" => "NAMES",
        "Labels" => "LABELS",
        "Mounts" => "MOUNTS",
        "Networks" => "NETWORKS",
        other => other,
    }
}

pub fn ps(args: &PsArgs) -> anyhow::Result<i32> {
    let filters = args
        .filter
        .iter()
        .map(|f| parse_filter(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let lifecycle = lifecycle();
    let last = if args.latest {
        Some(1)
    } else {
        args.last.filter(|n| *n >= 0)
    };
    // -n, -l and a status filter look at every container, as Docker's do.
    let every = args.all
        || last.is_some()
        || filters
            .iter()
            .any(|f| matches!(f, Filter::Status(_) | Filter::Exited(_)));
    let mut records = lifecycle.list(every)?;
    records.sort_by_key(|r| std::cmp::Reverse(r.created));
    records.retain(|r| filters.iter().all(|f| f.keeps(r)));
    if let Some(n) = last {
        records.truncate(n as usize);
    }
    let now = SystemTime::now();
    let sizes: Vec<Option<u64>> = records
        .iter()
        .map(|r| args.size.then(|| lifecycle.writable_size(&r.id)))
        .collect();
    if args.quiet {
        for record in &records {
            println!(
                "{}",
                if args.no_trunc {
                    record.id.as_str()
                } else {
                    record.short_id()
                }
            );
        }
        return Ok(0);
    }
    let rows: Vec<Value> = records
        .iter()
        .zip(&sizes)
        .map(|(r, s)| row(r, now, *s, args.no_trunc))
        .collect();
    let format = match &args.format {
        Some(format) => format.clone(),
        None if args.size => "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}".into(),
        None if args.no_trunc => "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".into(),
        None => {
            print!("{}", present::ps_table(&records, now, false));
            return Ok(0);
        }
    };
    print!("{}", render(&format, &rows)?);
    Ok(0)
}

/// `--format`: `table TEMPLATE` is aligned in columns under Docker's
/// headers; anything else is one line per container.
fn render(format: &str, rows: &[Value]) -> anyhow::Result<String> {
    let bad = |e: String| refused(format!("template parsing error: {e}"));
    let Some(template) = format.strip_prefix("table") else {
        return crate::format::render_each(format, rows).map_err(bad);
    };
    let template = template.trim_start().replace("\\t", "\t");
    // The header: each {{.Field}} as Docker names its column.
    let heading = {
        let mut doc = serde_json::Map::new();
        for field in [
            "ID",
            "Image",
            "Command",
            "CreatedAt",
            "RunningFor",
            "Ports",
            "State",
            "Status",
            "Size",
            "Names",
            "Labels",
            "Mounts",
            "Networks",
        ] {
            doc.insert(field.to_string(), header(field).into());
        }
        Value::Object(doc)
    };
    let parsed = crate::format::Template::parse(&template).map_err(bad)?;
    let mut lines = vec![parsed.render(&heading).map_err(bad)?];
    for row in rows {
        lines.push(parsed.render(row).map_err(bad)?);
    }
    Ok(present::align_tabs(&lines))
}
