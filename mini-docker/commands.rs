//! The everyday commands beyond the lifecycle: `wait`, `top`, `stats`,
//! `cp`, `rename`, `attach`, `port`, `update`, `volume inspect|prune`,
//! and Docker's management forms (`container ls`, `image rm` …). The
//! engine does the work (`engine::lifecycle`); this file is Docker's flags
//! and what Docker prints for each.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::lifecycle::{self as engine, FilesRoot, Update};
use container_lab::engine::runtime::config;
use container_lab::engine::volumes;
use container_lab::kernel::cgroups::{self, Limit, Stats};

use crate::lifecycle::{lifecycle, refused};
use crate::present;

/// `wait CONTAINER…`: each exit code on a line, once it has exited.
pub fn wait(containers: &[String]) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    for key in containers {
        println!("{}", lifecycle.wait(key)?);
    }
    Ok(0)
}

/// `rename OLD NEW`
pub fn rename(old: &str, new: &str) -> anyhow::Result<i32> {
    lifecycle().rename(old, new)?;
    Ok(0)
}

/// `port CONTAINER [PORT[/PROTO]]`
pub fn port(key: &str, wanted: Option<&str>) -> anyhow::Result<i32> {
    let record = lifecycle().find(key)?;
    let lines = engine::port_lines(&record.effective_state().ports, wanted);
    if let (Some(wanted), true) = (wanted, lines.is_empty()) {
        return Err(refused(format!(
            "no public port '{wanted}' published for {key}"
        )));
    }
    for line in lines {
        println!("{line}");
    }
    Ok(0)
}

/// `top CONTAINER [ps OPTIONS]`: the host's `ps`, limited to the
/// container's processes, as Docker's daemon runs it (`-ef` by default).
pub fn top(key: &str, ps_args: &[String]) -> anyhow::Result<i32> {
    let pids = lifecycle().processes(key)?;
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run ps: {e}"))?;
    if !out.status.success() {
        return Err(refused(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let column = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| refused("couldn't find PID field in ps output"))?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    no_trunc: bool,
    containers: Vec<String>,
}

/// One sample of a container's counters.
struct Sample {
    id: String,
    name: String,
    stats: Stats,
    net: (u64, u64),
    at: Instant,
}

fn sample(lifecycle: &engine::Lifecycle, key: &str) -> anyhow::Result<Sample> {
    let (record, stats) = lifecycle.stats(key)?;
    let pid = record.effective_state().pid;
    Ok(Sample {
        id: record.id.clone(),
        name: record.name.clone(),
        stats,
        net: net_bytes(pid),
        at: Instant::now(),
    })
}

/// Received and sent bytes of every link but `lo`, from the container's
/// own /proc/PID/net/dev.
fn net_bytes(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.trim() != "lo")
        .map(|(_, rest)| {
            let n: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            (
                n.first().copied().unwrap_or(0),
                n.get(8).copied().unwrap_or(0),
            )
        })
        .fold((0, 0), |(r, s), (a, b)| (r + a, s + b))
}

/// Docker's `units.HumanSize` with decimal units, as stats writes I/O.
fn decimal(bytes: u64) -> String {
    present::human_size(bytes)
}

/// Docker's `units.BytesSize` (binary units), as stats writes memory.
fn binary(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{}{}", trim_float(value), units[unit])
}

/// Go's `%.4g`: four significant digits, trailing zeros dropped.
fn trim_float(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let digits = value.abs().log10().floor() as i32 + 1;
    let decimals = (4 - digits).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn stats_row(before: &Sample, after: &Sample, no_trunc: bool) -> [String; 8] {
    let cpu = match (before.stats.cpu.usage, after.stats.cpu.usage) {
        (Some(a), Some(b)) => {
            let spent = b.saturating_sub(a).as_secs_f64();
            let wall = after.at.duration_since(before.at).as_secs_f64().max(1e-6);
            format!("{:.2}%", spent / wall * 100.0)
        }
        _ => "--".into(),
    };
    let usage = &after.stats.memory;
    let used = usage.current.unwrap_or(0);
    let total_memory = host_memory();
    let limit = match usage.max {
        Some(Limit::At(n)) if n < total_memory => n,
        _ => total_memory,
    };
    let io_read: u64 = after.stats.io.iter().map(|d| d.read_bytes).sum();
    let io_written: u64 = after.stats.io.iter().map(|d| d.write_bytes).sum();
    [
        if no_trunc {
            after.id.clone()
        } else {
            after.id[..12].to_string()
        },
        after.name.clone(),
        cpu,
        format!("{} / {}", binary(used), binary(limit)),
        format!("{:.2}%", used as f64 / limit.max(1) as f64 * 100.0),
        format!("{} / {}", decimal(after.net.0), decimal(after.net.1)),
        format!("{} / {}", decimal(io_read), decimal(io_written)),
        after.stats.pids.current.unwrap_or(0).to_string(),
    ]
}

fn host_memory() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(u64::MAX, |kb| kb * 1024)
}

/// `stats`: on a terminal a table redrawn every second until Ctrl-C;
/// with `--no-stream` (or no terminal) one table, from two samples a
/// second apart (CPU % is the time spent between them).
pub fn stats(args: &StatsArgs) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    let keys: Vec<String> = if args.containers.is_empty() {
        lifecycle
            .list(args.all)?
            .into_iter()
            .filter(|r| r.effective_status().is_running())
            .map(|r| r.id)
            .collect()
    } else {
        args.containers.clone()
    };
    let stream = !args.no_stream && std::io::stdout().is_terminal();
    let mut before: Vec<Sample> = keys
        .iter()
        .map(|k| sample(&lifecycle, k))
        .collect::<anyhow::Result<_>>()?;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let mut after = Vec::new();
        for key in &keys {
            // A container that exited while we watch drops out of the table.
            if let Ok(s) = sample(&lifecycle, key) {
                after.push(s);
            } else if !stream {
                after.push(sample(&lifecycle, key)?);
            }
        }
        let mut rows = vec![[
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS",
        ]
        .map(String::from)];
        for now in &after {
            if let Some(then) = before.iter().find(|b| b.id == now.id) {
                rows.push(stats_row(then, now, args.no_trunc));
            }
        }
        let lines: Vec<String> = rows.iter().map(|r| r.join("\t")).collect();
        let table = present::align_tabs(&lines);
        let mut out = std::io::stdout().lock();
        if stream {
            // Docker's redraw: cursor home, clear the screen.
            write!(out, "\x1b[H\x1b[2J")?;
        }
        write!(out, "{table}")?;
        out.flush()?;
        if !stream || container_lab::kernel::signals::interrupted().is_some() || after.is_empty() {
            return Ok(0);
        }
        before = after;
    }
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Memory limit
    #[arg(short = 'm', long, value_parser = cgroups::parse_size)]
    memory: Option<u64>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true, value_parser = parse_swap)]
    memory_swap: Option<Limit>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_parser = crate::run::parse_bytes)]
    memory_reservation: Option<u64>,
    /// Number of CPUs
    #[arg(long, value_parser = cgroups::parse_cpus)]
    cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-shares", value_parser = clap::value_parser!(u64).range(2..=262144))]
    cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Tune container pids limit
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pids_limit: Option<u64>,
    /// Block IO (relative weight), between 10 and 1000
    #[arg(long, value_parser = cgroups::parse_blkio_weight)]
    blkio_weight: Option<u16>,
    /// Restart policy to apply when a container exits
    #[arg(long, value_parser = config::parse_restart)]
    restart: Option<config::RestartPolicy>,
    #[arg(required = true)]
    containers: Vec<String>,
}

fn parse_swap(value: &str) -> Result<Limit, String> {
    if value == "-1" {
        return Ok(Limit::Unlimited);
    }
    cgroups::parse_size(value).map(Limit::At)
}

/// `update`: new limits for running or stopped containers.
pub fn update(args: &UpdateArgs) -> anyhow::Result<i32> {
    let update = Update {
        memory_bytes: args.memory,
        memory_swap: args.memory_swap,
        memory_reservation: args.memory_reservation,
        cpus: args.cpus,
        cpu_shares: args.cpu_shares,
        cpuset_cpus: args.cpuset_cpus.clone(),
        pids: args.pids_limit,
        blkio_weight: args.blkio_weight,
        restart: args.restart,
    };
    let lifecycle = lifecycle();
    for key in &args.containers {
        lifecycle.update(key, &update)?;
        println!("{key}");
    }
    Ok(0)
}

/// `attach CONTAINER`: its output from now on, until it exits (its exit
/// code is ours). Signals are passed on (`--sig-proxy`); on a terminal,
/// Ctrl-P Ctrl-Q detaches and leaves it running. The lab's containers
/// started with `-d` read /dev/null, so there is no stdin to attach to.
pub fn attach(key: &str, sig_proxy: bool) -> anyhow::Result<i32> {
    let lifecycle = lifecycle();
    let record = lifecycle.find(key)?;
    if !record.effective_status().is_running() {
        return Err(refused(
            "You cannot attach to a stopped container, start it first",
        ));
    }
    // With `-i` (`run -d -i`), what we read goes to the container's stdin
    // fifo; without, the container has no stdin to give it (as Docker).
    let sink = if record.config.interactive {
        let path = container_lab::engine::supervisor::stdin_fifo(lifecycle.store(), &record.id);
        Some(
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| {
                    anyhow::anyhow!("open the stdin of {key} ({}): {e}", path.display())
                })?,
        )
    } else {
        None
    };
    let detached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if std::io::stdin().is_terminal() {
        let flag = detached.clone();
        std::thread::spawn(move || watch_detach_keys(&flag, sink));
    } else if let Some(mut sink) = sink {
        // To our end of file; the container's stdin stays open after it.
        std::thread::spawn(move || std::io::copy(&mut std::io::stdin().lock(), &mut sink));
    }
    let pid = record.effective_state().pid;
    let id = record.id.clone();
    let watcher = lifecycle.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = watcher.follow_logs(&id, Some(0), |entry| {
            let _ = container_lab::engine::logs::print_entry(
                entry,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            );
        });
        let _ = tx.send(());
    });
    loop {
        if detached.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("read escape sequence");
            return Ok(0);
        }
        if let Some(signal) = container_lab::kernel::signals::interrupted() {
            container_lab::kernel::signals::clear();
            if sig_proxy {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
            } else {
                return Ok(0);
            }
        }
        if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
            break;
        }
    }
    Ok(lifecycle.wait(key).unwrap_or(0))
}

/// Ctrl-P then Ctrl-Q on our terminal (raw, so they arrive as bytes);
/// every other byte goes on to `sink`, the container's stdin, if it has one.
fn watch_detach_keys(detached: &std::sync::atomic::AtomicBool, mut sink: Option<std::fs::File>) {
    use std::io::{Read, Write};
    let stdin = std::io::stdin();
    let Ok(saved) = nix::sys::termios::tcgetattr(&stdin) else {
        return;
    };
    let mut raw = saved.clone();
    nix::sys::termios::cfmakeraw(&mut raw);
    // Output processing stays on, so the container's lines still break.
    raw.output_flags = saved.output_flags;
    let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &raw);
    let mut previous = 0u8;
    let mut byte = [0u8; 1];
    while let Ok(1) = stdin.lock().read(&mut byte) {
        match (previous, byte[0]) {
            (0x10, 0x11) => {
                detached.store(true, std::sync::atomic::Ordering::SeqCst);
                break;
            }
            // Ctrl-C in raw mode: the signal the terminal would have sent.
            (_, 0x03) => {
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT);
            }
            // A Ctrl-P is held back until the next byte says it is no escape.
            (previous, byte) => {
                if let Some(sink) = sink.as_mut() {
                    let held: &[u8] = if previous == 0x10 { &[0x10] } else { &[] };
                    let now: &[u8] = if byte == 0x10 { &[] } else { &[byte] };
                    let _ = sink.write_all(held).and_then(|_| sink.write_all(now));
                }
            }
        }
        previous = byte[0];
    }
    let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &saved);
}

/// `cp SRC DEST`, one side `CONTAINER:PATH`, with Docker's path rules: a
/// directory copied onto an existing directory goes inside it (its
/// contents only when the source ends in `/.`); a file onto a directory
/// goes inside it; a destination ending in `/` must be a directory.
pub fn cp(source: &str, dest: &str) -> anyhow::Result<i32> {
    let split = |arg: &str| -> Option<(String, String)> {
        if arg.starts_with('/') || arg.starts_with('.') {
            return None;
        }
        let (key, path) = arg.split_once(':')?;
        Some((key.to_string(), path.to_string()))
    };
    let lifecycle = lifecycle();
    match (split(source), split(dest)) {
        (Some(_), Some(_)) => Err(refused("copying between containers is not supported")),
        (None, None) => Err(refused("must specify at least one container source")),
        (Some((key, path)), None) => {
            let root = lifecycle.files_root(&key)?;
            let from = container_path(&root, &path, false)?.ok_or_else(|| {
                refused(format!("Could not find the file {path} in container {key}"))
            })?;
            copy_by_docker_rules(
                &from,
                &base_name(&path),
                path.ends_with("/."),
                Path::new(dest),
            )?;
            Ok(0)
        }
        (None, Some((key, path))) => {
            let from = PathBuf::from(source);
            if std::fs::symlink_metadata(&from).is_err() {
                return Err(refused(format!(
                    "could not find the file {source} on this host"
                )));
            }
            let root = lifecycle.files_root(&key)?;
            let parent_in_container = Path::new(&path)
                .parent()
                .unwrap_or(Path::new("/"))
                .to_path_buf();
            let parent = container_path(&root, &parent_in_container.to_string_lossy(), true)?
                .ok_or_else(|| {
                    refused(format!(
                        "Could not find the file {} in container {key}",
                        parent_in_container.display()
                    ))
                })?;
            let name = Path::new(&path).file_name().map(PathBuf::from);
            let target = match name {
                Some(name) if !path.ends_with('/') && !path.ends_with("/.") => parent.join(name),
                _ => container_path(&root, &path, true)?.ok_or_else(|| {
                    refused(format!("Could not find the file {path} in container {key}"))
                })?,
            };
            copy_by_docker_rules(&from, &base_name(source), source.ends_with("/."), &target)?;
            Ok(0)
        }
    }
}

/// A path in the container, resolved inside its root (symlinks cannot
/// lead out: openat2 with RESOLVE_IN_ROOT), as a /proc/self/fd path.
/// With `for_writing` on a stopped container, the writable layer.
fn container_path(
    root: &FilesRoot,
    path: &str,
    for_writing: bool,
) -> anyhow::Result<Option<PathBuf>> {
    let path = if path.is_empty() { "/" } else { path };
    match root {
        FilesRoot::Running(root) => Ok(open_in_root(root, path)),
        FilesRoot::Layers(layers) if for_writing => {
            let upper = &layers[0];
            let inside = upper.join(path.trim_start_matches('/'));
            if !inside.exists() {
                if let Some(lower) = engine::find_in_layers(layers, Path::new(path)) {
                    if lower.is_dir() {
                        std::fs::create_dir_all(&inside)?;
                    }
                }
            }
            Ok(open_in_root(upper, path))
        }
        FilesRoot::Layers(layers) => Ok(engine::find_in_layers(layers, Path::new(path))),
    }
}

fn open_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let root_fd = std::fs::File::open(root).ok()?;
    let c_path = std::ffi::CString::new(path.trim_start_matches('/')).ok()?;
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_IN_ROOT: u64 = 0x10;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT,
    };
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root_fd.as_raw_fd(),
            if path.trim_start_matches('/').is_empty() {
                c".".as_ptr()
            } else {
                c_path.as_ptr()
            },
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return None;
    }
    // Kept open for the rest of this short-lived command.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    std::mem::forget(fd);
    Some(path)
}

/// A source's metadata: a /proc/self/fd path is the object we opened (a
/// magic link to follow), anything else is taken as it is (a symlink is
/// copied as a symlink).
fn source_metadata(from: &Path) -> std::io::Result<std::fs::Metadata> {
    let opened = from.parent() == Some(Path::new("/proc/self/fd"));
    if opened {
        std::fs::metadata(from)
    } else {
        std::fs::symlink_metadata(from)
    }
}

/// The last component of a `cp` path, as the copy is named inside a directory.
fn base_name(path: &str) -> PathBuf {
    Path::new(path.trim_end_matches("/.").trim_end_matches('/'))
        .file_name()
        .map_or_else(|| PathBuf::from("copied"), PathBuf::from)
}

/// `from` is the source, `name` its own name (`from` may be a
/// /proc/self/fd path).
fn copy_by_docker_rules(
    from: &Path,
    name: &Path,
    contents_only: bool,
    dest: &Path,
) -> anyhow::Result<()> {
    let meta = source_metadata(from)?;
    let dest_meta = std::fs::metadata(dest).ok();
    let dest_text = dest.to_string_lossy();
    if meta.is_dir() {
        match dest_meta {
            Some(d) if d.is_dir() && !contents_only => copy_tree(from, &dest.join(name)),
            Some(d) if d.is_dir() => copy_contents(from, dest),
            Some(_) => Err(refused(format!(
                "cannot copy a directory to a file: {dest_text}"
            ))),
            None => copy_tree(from, dest),
        }
    } else {
        match dest_meta {
            Some(d) if d.is_dir() => copy_tree(from, &dest.join(name)),
            None if dest_text.ends_with('/') => {
                Err(refused(format!("no such directory: {dest_text}")))
            }
            _ => copy_tree(from, dest),
        }
    }
}

fn copy_contents(from: &Path, dest: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
    }
    Ok(())
}

/// Copies files, directories and symlinks (as symlinks, never followed),
/// keeping modes; never writes through a symlink at the destination.
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let meta = source_metadata(from)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(from)?;
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(target, to)?;
    } else if kind.is_dir() {
        if !to.is_dir() {
            std::fs::create_dir(to)?;
        }
        std::fs::set_permissions(
            to,
            std::fs::Permissions::from_mode(meta.permissions().mode()),
        )?;
        copy_contents(from, to)?;
    } else if kind.is_file() {
        if std::fs::symlink_metadata(to).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(to)?;
        }
        let mut input = std::fs::File::open(from)?;
        let mut output = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(meta.permissions().mode())
            .open(to)?;
        std::io::copy(&mut input, &mut output)?;
        std::fs::set_permissions(
            to,
            std::fs::Permissions::from_mode(meta.permissions().mode()),
        )?;
    }
    Ok(())
}

/// `volume inspect NAME…`: Docker's document for each.
pub fn volume_inspect(names: &[String]) -> anyhow::Result<i32> {
    let dirs = LabDirs::from_env();
    let known = volumes::list(&dirs);
    let mut all = Vec::new();
    for name in names {
        if !known.contains(name) {
            return Err(refused(format!("get {name}: no such volume")));
        }
        let dir = volumes::volume_dir(&dirs, name);
        let created = std::fs::metadata(&dir)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        all.push(serde_json::json!({
            "CreatedAt": container_lab::support::time::format_rfc3339(created),
            "Driver": "local",
            "Labels": null,
            "Mountpoint": dir.join("_data"),
            "Name": name,
            "Options": null,
            "Scope": "local",
        }));
    }
    println!("{}", serde_json::to_string_pretty(&all)?);
    Ok(0)
}

/// `volume prune [-f]`: every volume no container uses.
pub fn volume_prune(force: bool) -> anyhow::Result<i32> {
    if !force {
        return Err(refused(
            "volume prune removes every volume no container uses; pass -f to confirm",
        ));
    }
    let dirs = LabDirs::from_env();
    let lifecycle = lifecycle();
    let used: Vec<String> = lifecycle
        .list(true)?
        .iter()
        .flat_map(|r| {
            r.config
                .volumes
                .iter()
                .filter_map(|v| match &v.source {
                    volumes::Source::Named(n) => Some(n.clone()),
                    _ => None,
                })
                .chain(r.config.extra.anonymous_volumes.iter().cloned())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut removed = Vec::new();
    for name in volumes::list(&dirs) {
        if !used.contains(&name) && lifecycle.remove_volume(&name).is_ok() {
            removed.push(name);
        }
    }
    if !removed.is_empty() {
        println!("Deleted Volumes:");
        for name in &removed {
            println!("{name}");
        }
        println!();
    }
    println!("Total reclaimed space: 0B");
    Ok(0)
}

/// Docker's management forms, `container ls` and `image rm` …, as the
/// commands they name: rewritten before the command line is parsed.
pub fn management_forms(mut args: Vec<String>) -> Vec<String> {
    let rename = |group: &str, verb: &str| -> Option<Vec<&'static str>> {
        Some(match (group, verb) {
            ("container", "ls" | "list" | "ps") => vec!["ps"],
            ("container", "prune") => vec!["system", "prune"],
            ("container", _) => return Some(Vec::new()),
            ("image", "ls" | "list") => vec!["images"],
            ("image", "rm" | "remove") => vec!["rmi"],
            ("image", "import") => vec!["import"],
            _ => return None,
        })
    };
    if args.len() >= 3 {
        if let Some(with) = rename(&args[1], &args[2]) {
            let drop = if with.is_empty() { 1 } else { 2 };
            let rest: Vec<String> = args.drain(1 + drop..).collect();
            args.truncate(1);
            args.extend(with.iter().map(|s| s.to_string()));
            if drop == 1 {
                args.push(rest[0].clone());
                args.extend(rest.into_iter().skip(1));
            } else {
                args.extend(rest);
            }
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forms(line: &str) -> String {
        management_forms(line.split(' ').map(String::from).collect()).join(" ")
    }

    #[test]
    fn management_forms_name_the_commands() {
        assert_eq!(forms("md container ls -a"), "md ps -a");
        assert_eq!(
            forms("md container run --rm busybox"),
            "md run --rm busybox"
        );
        assert_eq!(forms("md container prune -f"), "md system prune -f");
        assert_eq!(forms("md image ls"), "md images");
        assert_eq!(forms("md image rm x"), "md rmi x");
        assert_eq!(forms("md image pull x"), "md image pull x");
        assert_eq!(forms("md ps"), "md ps");
    }

    #[test]
    fn sizes_read_as_docker_stats_writes_them() {
        assert_eq!(binary(1536), "1.5KiB");
        assert_eq!(binary(33554432), "32MiB");
        assert_eq!(binary(0), "0B");
    }
}
