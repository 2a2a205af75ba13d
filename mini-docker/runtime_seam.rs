//! `mini-docker --runtime PATH run …`: the same container, made by any
//! runc-compatible runtime (runc, crun, lab-runc) instead of the engine's
//! own start path. mini-docker writes a bundle (config.json from the run
//! configuration, the image's layers under an upper directory) and hands
//! it to the runtime:
//! - in the foreground without a network of the lab's, `PATH run`;
//! - otherwise a small monitor of ours (`engine::oci::monitor`, as
//!   containerd's shim) drives `create`, attaches the lab's network to the
//!   blocked init, `start`s it and waits; with `-d` it is a process of its
//!   own with the container's record, so `ps`, `logs`, `stop`, `kill` and
//!   `rm` work on it as on any other.
//!
//! The bundle goes when the container has exited.

use std::io::BufRead;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::SystemTime;

use anyhow::{bail, Context};
use container_lab::engine::dirs::{self, LabDirs};
use container_lab::engine::images::local;
use container_lab::engine::lifecycle::{from_image, Lifecycle};
use container_lab::engine::logs::LogWriter;
use container_lab::engine::network::Endpoint;
use container_lab::engine::oci::bundle;
use container_lab::engine::oci::external::External;
use container_lab::engine::oci::monitor::{self, Joined, Monitored, Plan};
use container_lab::engine::runtime::{self, config::NetworkMode, config::RunConfig};
use container_lab::engine::store::{NewContainer, Record, Status, Store};
use container_lab::engine::supervisor;
use container_lab::kernel::{init, process};
use container_lab::lab::privilege;
use container_lab::support::ids;
use nix::unistd::{fork, ForkResult};

use crate::run::RunArgs;

/// Runs the container through `runtime`; its exit status (0 with `-d`,
/// once it runs).
pub fn run(args: &RunArgs, runtime: &Path) -> anyhow::Result<i32> {
    let mut config = args.config()?;
    let mut refused = bundle::refused_flags(&config);
    if args.explain {
        refused.push("--explain: the steps are the runtime's own".into());
    }
    if args.detach && config.tty {
        refused.push("-t with -d: the monitor keeps no terminal; use -t in the foreground".into());
    }
    if let Some(first) = refused.first() {
        bail!("--runtime {} cannot run it with {first}", runtime.display());
    }
    privilege::ensure_root(
        "mini-docker",
        "containers need namespaces, mounts and cgroups",
    )?;
    let dirs = LabDirs::from_env();
    dirs.prepare()?;
    let name = runtime.file_name().unwrap_or(runtime.as_os_str());
    let external = External {
        program: runtime.to_path_buf(),
        root: dirs.run.join("runtimes").join(name),
    };
    if args.detach {
        return detached(args, config, external, &dirs);
    }
    let id = match &args.name {
        Some(name) => name.clone(),
        None => ids::random_id()?[..12].to_string(),
    };
    config.hostname = args.hostname.clone().unwrap_or_else(|| id.clone());
    config.name = id.clone();
    let store = local::open(&dirs)?;
    let image = local::resolve(&store, &dirs, &config.image)?;
    // The image's Entrypoint, Cmd, Env, WorkingDir and User, as `run` has.
    from_image::apply(&mut config, &image).map_err(|e| anyhow::anyhow!(e))?;
    let (bundle, layers) = write_bundle(&dirs, &config, &id)?;
    let stdin = if config.interactive {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    if joined_network(&config).is_none() && !config.tty {
        // ANCHOR: bundle
        let code = external.run(&bundle.0, &layers, &id, stdin);
        external.delete(&id, Path::new(PARENT));
        // ANCHOR_END: bundle
        return Ok(code?);
    }
    let plan = plan(&dirs, &config, external, &bundle.0, layers, &id)?;
    foreground(&dirs, &config, plan, stdin)
}

/// Where the containers' cgroups go, beneath ours (as the engine's own).
const PARENT: &str = "container-lab";

/// The bundle's directory and the image's layers for container `id`.
fn write_bundle(
    dirs: &LabDirs,
    config: &RunConfig,
    id: &str,
) -> anyhow::Result<(Bundle, Vec<container_lab::kernel::overlay::Layer>)> {
    let layers = runtime::image_layers(dirs, config)?;
    // The image's own users: the topmost layer with an /etc/passwd.
    let image_root = layers
        .iter()
        .rev()
        .map(|l| l.path.clone())
        .find(|p| p.join("etc/passwd").exists())
        .or_else(|| layers.last().map(|l| l.path.clone()))
        .context("the image has no layers")?;
    let bundles = dirs.run.join("bundles");
    std::fs::create_dir_all(&bundles)?;
    let dir = bundles.join(id);
    if let Err(err) = std::fs::create_dir(&dir) {
        bail!(
            "cannot make the bundle {} ({err}): a container named {id} runs already; pick another --name",
            dir.display()
        );
    }
    let bundle = Bundle(dir);
    let cgroups_path = format!("{PARENT}/{id}");
    let mut spec = bundle::spec_for(dirs, config, &image_root, &cgroups_path)?;
    bundle::add_etc_files(&mut spec, &bundle.0, config, network_resolv(dirs, config))?;
    spec.save(bundle.0.join("config.json"))?;
    Ok((bundle, layers))
}

/// The resolv.conf of a network with a resolver of its own (`network create`).
fn network_resolv(dirs: &LabDirs, config: &RunConfig) -> Option<String> {
    match &config.network {
        NetworkMode::Named(name) => monitor::joined(dirs, Some(name)).ok()?.resolv_conf(),
        _ => None,
    }
}

/// `--network bridge|NAME`: the lab's network the container joins.
fn joined_network(config: &RunConfig) -> Option<Option<&str>> {
    match &config.network {
        NetworkMode::Bridge => Some(None),
        NetworkMode::Named(name) => Some(Some(name.as_str())),
        _ => None,
    }
}

fn plan(
    dirs: &LabDirs,
    config: &RunConfig,
    external: External,
    bundle: &Path,
    layers: Vec<container_lab::kernel::overlay::Layer>,
    id: &str,
) -> anyhow::Result<Plan> {
    let network = match joined_network(config) {
        Some(name) => Some(Joined {
            network: monitor::joined(dirs, name)?,
            endpoint: Endpoint {
                name: config.name.clone(),
                aliases: config.network_aliases.clone(),
                ip: config.ip,
            },
            publish: config.publish.clone(),
        }),
        None => None,
    };
    Ok(Plan {
        external,
        bundle: bundle.to_path_buf(),
        layers,
        id: id.to_string(),
        cgroups_path: PathBuf::from(PARENT).join(id),
        network,
        console_socket: config.tty.then(|| bundle.join("console.sock")),
    })
}

/// In the foreground: the monitor is a child of ours (it changes its own
/// namespaces, which a process with threads cannot), its stdio ours; with
/// `-t` the terminal comes over the console socket and we relay it.
fn foreground(dirs: &LabDirs, config: &RunConfig, plan: Plan, stdin: Stdio) -> anyhow::Result<i32> {
    let interactive = config.interactive;
    let relay = match &plan.console_socket {
        Some(path) => Some(crate::terminal::relay_from_socket(path, interactive)?),
        None => None,
    };
    process::flush_stdio();
    // Safety: the child runs the monitor and exits without returning.
    let child = match unsafe { fork() }? {
        ForkResult::Child => {
            drop(relay);
            let stdio = [stdin, Stdio::inherit(), Stdio::inherit()];
            let etc = |c: &monitor::Created| {
                let resolv = network_resolv(dirs, config);
                bundle::write_etc_files(&plan.bundle, config, c.ip, resolv)
            };
            let code = match monitor::run(dirs, &plan, stdio, etc, || {}) {
                Ok(code) => code,
                Err(err) => {
                    eprintln!("mini-docker: error: {err}");
                    125
                }
            };
            drop(plan);
            init::exit_now(code)
        }
        ForkResult::Parent { child } => child,
    };
    drop(stdin);
    let status = loop {
        match nix::sys::wait::waitpid(child, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other?,
        }
    };
    if let Some(relay) = relay {
        relay.finish();
    }
    Ok(process::status_code(status))
}

/// `-d`: the record first (so the name is taken, and `ps` finds it), then
/// the monitor as a process of its own, in a session of its own; returns
/// once it reports the container running.
fn detached(
    args: &RunArgs,
    config: RunConfig,
    external: External,
    dirs: &LabDirs,
) -> anyhow::Result<i32> {
    let lifecycle = Lifecycle::new(dirs);
    let record = lifecycle.create(NewContainer {
        name: args.name.clone(),
        hostname: args.record_hostname(),
        config,
        owned: true,
    })?;
    let store = lifecycle.store();
    let id = record.name.clone();
    let prepared = write_bundle(dirs, &record.config, &id).and_then(|(bundle, layers)| {
        let plan = plan(dirs, &record.config, external, &bundle.0, layers, &id)?;
        Ok((bundle, plan))
    });
    let (bundle, plan) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => {
            let _ = supervisor::remove(store, &record);
            return Err(err);
        }
    };
    args.write_cidfile(&record.id)?;
    let (ready_read, ready_write) = nix::unistd::pipe()?;
    process::flush_stdio();
    // Safety: the child becomes the monitor and exits without returning.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(ready_read);
            let code = monitor_detached(dirs, store, &record, &plan, ready_write);
            drop(bundle);
            init::exit_now(code)
        }
        ForkResult::Parent { .. } => {
            // Not waited for: it outlives us, and init reaps it.
            std::mem::forget(bundle);
        }
    }
    drop(ready_write);
    let mut report = String::new();
    let _ = std::io::BufReader::new(std::fs::File::from(ready_read)).read_line(&mut report);
    match report.trim() {
        "ok" => {
            println!("{}", record.id);
            Ok(0)
        }
        failed => {
            // What the failed start made went with the monitor: the record too.
            if let Ok(record) = store.get(&record.id) {
                let _ = supervisor::remove(store, &record);
            }
            let message = failed.strip_prefix("failed ").unwrap_or(failed);
            if message.is_empty() {
                bail!("the monitor exited before starting the container");
            }
            bail!("{message}")
        }
    }
}

/// The detached monitor's life: a session of its own, the container's
/// output into its log, the record kept up to date, `--rm` at the end.
fn monitor_detached(
    dirs: &LabDirs,
    store: &Store,
    record: &Record,
    plan: &Plan,
    ready: OwnedFd,
) -> i32 {
    let _ = nix::unistd::setsid();
    init::set_process_name("mini-docker-monitor");
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let _ = init::close_fds_except(&[ready.as_raw_fd()]);
    let me = std::process::id() as i32;
    let claimed = store.update(&record.id, |r| {
        r.state.supervisor_pid = me;
        r.state.supervisor_start_time = process::start_time(me).unwrap_or(0);
    });
    let report = |message: &str| {
        let _ = nix::unistd::write(&ready, format!("{message}\n").as_bytes());
    };
    if let Err(err) = claimed {
        report(&format!("failed {err}"));
        return 125;
    }
    let logged = log_pipes(store, record);
    let (out, err, logger) = match logged {
        Ok(logged) => logged,
        Err(err) => {
            report(&format!("failed {err}"));
            return 125;
        }
    };
    let created = |c: &monitor::Created| {
        let resolv = network_resolv(dirs, &record.config);
        bundle::write_etc_files(&plan.bundle, &record.config, c.ip, resolv)?;
        let saved = Monitored {
            program: plan.external.program.clone(),
            root: plan.external.root.clone(),
            id: plan.id.clone(),
            monitor_pid: me,
            monitor_start_time: process::start_time(me).unwrap_or(0),
            bundle: plan.bundle.clone(),
        }
        .save(store, &record.id);
        saved?;
        store
            .update(&record.id, |r| {
                r.state.status = Status::Running;
                r.state.pid = c.pid;
                r.state.pid_start_time = process::start_time(c.pid).unwrap_or(0);
                r.state.started_at = Some(SystemTime::now());
                r.state.ip = c.ip;
                r.state.links = c.links.clone();
                r.state.ports = c.ports.clone();
                r.state.cgroup_paths = c.cgroups.clone();
            })
            .map(drop)
            .map_err(|e| container_lab::engine::oci::OciError::Other(e.to_string()))
    };
    let stdio = [Stdio::null(), Stdio::from(out), Stdio::from(err)];
    let result = monitor::run(dirs, plan, stdio, created, || report("ok"));
    let _ = nix::sys::wait::waitpid(logger, None);
    Monitored::forget(store, &record.id);
    let (code, error) = match result {
        Ok(code) => (code, String::new()),
        Err(err) => {
            report(&format!("failed {err}"));
            (125, err.to_string())
        }
    };
    let _ = store.update(&record.id, |r| {
        r.state.status = Status::Exited;
        r.state.exit_code = code;
        r.state.error = error;
        r.state.finished_at = Some(SystemTime::now());
        r.state.pid = 0;
        r.state.pid_start_time = 0;
        r.state.ports.clear();
        r.state.cgroup_paths.retain(|p| p.exists());
    });
    if record.config.remove {
        if let Ok(record) = store.get(&record.id) {
            let _ = supervisor::remove(store, &record);
        }
    }
    code
}

/// Pipes for the container's stdout and stderr, and a logger process that
/// copies them into its json-file log (a process: the monitor forks).
fn log_pipes(
    store: &Store,
    record: &Record,
) -> anyhow::Result<(OwnedFd, OwnedFd, nix::unistd::Pid)> {
    let (out_read, out_write) = nix::unistd::pipe()?;
    let (err_read, err_write) = nix::unistd::pipe()?;
    let path = store.log_path(&record.id);
    // Safety: the monitor is single-threaded; the child only copies.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop((out_write, err_write));
            init::set_process_name("mini-docker-log");
            let copied = LogWriter::open(&path)
                .and_then(|mut writer| writer.copy(Some(out_read), Some(err_read)));
            init::exit_now(i32::from(copied.is_err()))
        }
        ForkResult::Parent { child } => Ok((out_write, err_write, child)),
    }
}

/// The bundle's directory (config.json, upper, work), removed at the end.
struct Bundle(PathBuf);

impl Drop for Bundle {
    fn drop(&mut self) {
        if let Err(err) = dirs::remove_tree(&self.0) {
            log::warn!("cannot remove the bundle {}: {err}", self.0.display());
        }
    }
}
