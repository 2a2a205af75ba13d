//! The runtime path of `mini-docker run`: every chapter's primitive applied
//! the way a real runtime applies them. The host side (image, run
//! directory, cgroup, network) is prepared around a cloned child; the
//! child itself does everything that must happen inside (mounts, root,
//! hostname, hardening) before the user's program starts.

pub mod build_step;
pub mod config;
pub mod etc_files;
pub mod exec;
pub mod explain;
pub mod extra;

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

pub use self::config::{NetworkMode, RunConfig};
pub use self::explain::Explain;
use crate::engine::dirs::{LabDirs, RunDir};
use crate::engine::network::{self, Attachment};
use crate::engine::volumes::{self, Source};
use crate::kernel::cgroups::devices::{self, DeviceNode};
use crate::kernel::cgroups::{view as cgroup_view, Cgroup, Written};
use crate::kernel::init_pipe::{self, Reporter};
use crate::kernel::namespaces::{self, Cloned, Namespace};
use crate::kernel::overlay::{Layer, OverlayDirs};
use crate::kernel::process::status_code;
use crate::kernel::{hardening, hostname, init, mounts, overlay, rootfs, signals};

/// Where the container's standard streams go.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: StdinMode,
    /// `None`: our own stdout/stderr.
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// `-t`: the container's end of a console socket; the container makes
    /// a terminal from its own /dev/ptmx and sends us the master.
    pub console: Option<OwnedFd>,
}

impl Stdio {
    /// The descriptors these streams hold, with `also`: what the
    /// container's set-up must keep open.
    fn lab_fds(&self, also: &[std::os::fd::RawFd]) -> Vec<std::os::fd::RawFd> {
        let mut fds = also.to_vec();
        if let StdinMode::Fd(fd) = &self.stdin {
            fds.push(fd.as_raw_fd());
        }
        for fd in [&self.stdout, &self.stderr, &self.console]
            .into_iter()
            .flatten()
        {
            fds.push(fd.as_raw_fd());
        }
        fds
    }
}

#[derive(Debug, Default)]
pub enum StdinMode {
    /// Docker without `-i`: the container reads /dev/null.
    #[default]
    Null,
    /// `-i`: our own stdin.
    Inherit,
    /// A pipe or other descriptor.
    Fd(OwnedFd),
}

/// Test hook: `CONTAINER_LAB_HOLD_AT=POINT` stops the run at that point of
/// its start (see [`HOLD_POINTS`]) until a signal arrives, so that a test
/// can kill it there and check what a dead run leaves behind.
pub const HOLD_AT_ENV: &str = "CONTAINER_LAB_HOLD_AT";

/// With the hook: the file where the run says that it holds (a line
/// `holding at POINT`), for the test to wait on.
pub const HOLD_REPORT_ENV: &str = "CONTAINER_LAB_HOLD_REPORT";

/// The points of the start path, in order: the record exists, the
/// supervisor has claimed it, its run directory and writable layer, its
/// cgroup, the cloned child, the veth pair, outbound NAT, published
/// ports, the released child, and the started container.
pub const HOLD_POINTS: [&str; 10] = [
    "record",
    "claimed",
    "run-dir",
    "cgroup",
    "cloned",
    "network",
    "outbound",
    "published",
    "released",
    "started",
];

/// Holds here when [`HOLD_AT_ENV`] names `point`: says so in the file
/// [`HOLD_REPORT_ENV`] names, then waits for a signal (at most two minutes).
pub fn hold_at(point: &str) {
    if std::env::var_os(HOLD_AT_ENV).is_none_or(|wanted| wanted != point) {
        return;
    }
    if let Some(report) = std::env::var_os(HOLD_REPORT_ENV) {
        use std::io::Write;
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(report)
            .and_then(|mut f| writeln!(f, "holding at {point} until a signal arrives"));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while signals::interrupted().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The cgroup directories `start` makes for this configuration, named
/// before they exist, so that the record can name them first.
pub fn planned_cgroups(config: &RunConfig) -> Result<Vec<PathBuf>, RuntimeError> {
    Ok(Cgroup::planned_freezable(&config.name)?)
}

/// A started container and everything it holds on the host. Dropping it
/// kills the container if it still runs, then removes its network, cgroup,
/// upper layer and run directory, in that order.
#[derive(Debug)]
pub struct Started {
    pid: Pid,
    status: Option<i32>,
    network: Option<Attachment>,
    /// `network connect`'s networks, attached at each start.
    connected: Vec<Attachment>,
    cgroup: Cgroup,
    anonymous_volumes: Vec<String>,
    dirs: LabDirs,
    remove_anonymous: bool,
    _run_dir: RunDir,
}

/// Prepares the host side, clones the container's first process into new
/// namespaces, connects its network, and lets it go. Returns once the
/// child has been released; its own set-up errors end it with code 125.
/// `layer_dir` keeps the writable layer there (it survives a restart);
/// without it, the layer lives and dies with the run directory.
// ANCHOR: start
pub fn start(
    dirs: &LabDirs,
    config: &RunConfig,
    explain: Explain,
    io: Stdio,
    layer_dir: Option<&Path>,
) -> Result<Started, RuntimeError> {
    let cgroup = Cgroup::create_freezable(&config.name)?;
    let layers = image_layers(dirs, config)?;
    // The network the container joins, looked up before anything exists.
    let joined = joined_network(dirs, config)?;
    let shared_net = shared_network_namespace(dirs, config)?;
    let shared_ipc = shared_ipc_namespace(dirs, config)?;
    // Sharing a network means sharing its /etc files and hostname too.
    let adopted;
    let config = match &shared_net {
        Some(shared) => {
            adopted = RunConfig {
                hostname: shared.hostname.clone(),
                ..config.clone()
            };
            &adopted
        }
        None => config,
    };
    let device_nodes = config
        .devices
        .iter()
        .map(|d| d.resolve().map_err(RuntimeError::Setup))
        .collect::<Result<Vec<DeviceNode>, _>>()?;
    explain.step(
        format!(
            "image {}: read-only layer{} {}",
            config.image,
            if layers.len() > 1 { "s" } else { "" },
            layers
                .iter()
                .rev()
                .map(|l| l.path.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        ),
        "(built once, shared by every container)",
    );
    let run_dir = RunDir::create(dirs, &config.name)?;
    let overlay_dirs = OverlayDirs::create(layer_dir.unwrap_or(run_dir.path()))?;
    hold_at("run-dir");
    explain.step(
        "a writable layer of its own",
        format!(
            "mkdir -p {}/{{upper,work,merged}}",
            layer_dir.unwrap_or(run_dir.path()).display()
        ),
    );
    let mut anonymous_volumes = Vec::new();
    let mut volume_sources = Vec::new();
    let mut chosen = config.extra.anonymous_volumes.iter();
    for spec in &config.volumes {
        // An anonymous volume gets a random name, as a container's ID:
        // the one chosen at create (a record of before then: a new one).
        let anonymous = match spec.source {
            Source::Anonymous => match chosen.next() {
                Some(name) => name.clone(),
                None => crate::support::ids::random_id()
                    .map_err(|e| RuntimeError::Setup(e.to_string()))?,
            },
            _ => String::new(),
        };
        let source = volumes::host_path(dirs, spec, &anonymous)?;
        if spec.source == Source::Anonymous {
            anonymous_volumes.push(anonymous);
        }
        volume_sources.push(source);
    }
    let written = cgroup.set(&config.limits.resources()?)?;
    // What the container mounts again at /sys/fs/cgroup, from inside its
    // cgroup namespace: the hierarchies its own cgroup is in.
    let cgroup_view = cgroup_view::hierarchies_of(&cgroup.paths())?;
    // Docker's device list plus --device; everything with --privileged.
    let mut rules = if config.privileged {
        vec![devices::DeviceRule::ALLOW_ALL]
    } else {
        devices::DOCKER_DEFAULT.to_vec()
    };
    rules.extend(device_nodes.iter().map(DeviceNode::rule));
    let device_steps = cgroup.allow_devices(&rules)?;
    hold_at("cgroup");
    explain.step(
        format!("a cgroup: {}", cgroup.paths()[0].display()),
        [shell_writes(&cgroup, &written)]
            .into_iter()
            .chain(device_steps)
            .collect::<Vec<_>>()
            .join("; "),
    );

    let mut spaces = vec![Namespace::Uts];
    // `--pid host` and `--ipc host` share the host's.
    if !config.extra.pid_host {
        spaces.push(Namespace::Pid);
    }
    // `--ipc container:NAME` joins that one's instead, from inside.
    if config.extra.ipc.as_deref() != Some("host") && shared_ipc.is_none() {
        spaces.push(Namespace::Ipc);
    }
    spaces.push(Namespace::Mount);
    if config.network.own_namespace() {
        spaces.push(Namespace::Net);
    }
    explain.step(
        format!(
            "clone() the container's first process into new {} namespaces",
            names(&spaces)
        ),
        format!(
            "unshare {} --fork",
            spaces
                .iter()
                .map(|s| s.unshare_option())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    // The child waits on this pipe until its network is in place.
    // And it reports on the init pipe, which closes when the container's
    // program has been executed (close-on-exec): `start` returns with the
    // container complete, or with why it could not be.
    let (init_read, report) =
        init_pipe::pipe().map_err(|e| RuntimeError::Setup(format!("pipe: {e}")))?;
    let (go_read, go_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| RuntimeError::Setup(format!("pipe: {e}")))?;
    let etc_dir = match &shared_net {
        Some(shared) => shared.etc_dir.clone(),
        None => run_dir.path().to_path_buf(),
    };
    let mut child_setup = ChildSetup {
        config,
        etc_dir: &etc_dir,
        cgroup_view: &cgroup_view,
        network: joined.as_ref(),
        shared_netns: shared_net.as_ref().map(|s| s.netns.as_raw_fd()),
        shared_ipc: shared_ipc.as_ref().map(|fd| fd.as_raw_fd()),
        layers: &layers,
        overlay: &overlay_dirs,
        cgroup_procs: cgroup.procs_files(),
        volume_sources: &volume_sources,
        devices: &device_nodes,
        explain: explain.is_on(),
    };
    crate::kernel::process::flush_stdio();
    let flags = namespaces::clone_flags(&spaces);
    // On v2 the child is born in its cgroup, and joins nothing.
    let into_cgroup = match cgroup_dir_fd(&cgroup) {
        Some(dir) => unsafe {
            namespaces::clone_process_into_cgroup(flags, std::os::fd::AsFd::as_fd(&dir))?
        },
        None => None,
    };
    if matches!(into_cgroup, Some(Cloned::Child)) {
        child_setup.cgroup_procs.clear();
    }
    let cloned = match into_cgroup {
        Some(cloned) => cloned,
        None => unsafe { namespaces::clone_process(flags)? },
    };
    let child = match cloned {
        Cloned::Child => {
            drop(go_write);
            drop(init_read);
            child_setup.run(go_read, io, report)
        }
        Cloned::Parent { child } => child,
    };
    drop(go_read);
    drop(report);
    hold_at("cloned");
    let mut started = Started {
        pid: child,
        status: None,
        network: None,
        connected: Vec::new(),
        cgroup,
        remove_anonymous: config.remove,
        anonymous_volumes,
        dirs: dirs.clone(),
        _run_dir: run_dir,
    };
    if let Some(net) = &joined {
        let endpoint = network::Endpoint {
            name: config.name.clone(),
            aliases: config.network_aliases.clone(),
            ip: config.ip,
        };
        let mut attachment =
            network::attach_endpoint(dirs, net, &endpoint, child.as_raw(), |ip| {
                network::link_names_on(net, ip)
            })?;
        let (host_end, peer, bridge) = (&attachment.host_end, &attachment.peer, &net.bridge);
        explain.step(
            format!("a veth pair: {host_end} on bridge {bridge}, {peer} into the container"),
            format!("ip link add {host_end} type veth peer name {peer}; ip link set {host_end} master {bridge}; ip link set {peer} netns {child}"),
        );
        hold_at("network");
        // Ports first: a port another container publishes is refused
        // before anything is shared. Publishing enables outbound too.
        if config.publish.is_empty() {
            attachment.enable_outbound()?;
        } else {
            attachment.publish(&config.publish)?;
        }
        hold_at("outbound");
        explain.step(
            "outbound traffic: forwarding on, masquerade for the bridge's subnet",
            format!(
                "sysctl -w net.ipv4.ip_forward=1; nft add table ip {} (masquerade {})",
                net.table,
                net.cidr()
            ),
        );
        // With the host ports `-p PORT` was given.
        let ports = attachment.ports();
        hold_at("published");
        if !ports.is_empty() {
            let shown: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
            explain.step(
                format!("publish {}", shown.join(", ")),
                format!(
                    "nft add table ip {} (dnat in prerouting and output)",
                    attachment.table
                ),
            );
        }
        started.network = Some(attachment);
    }
    // The networks `network connect` added (eth1, eth2 …).
    for connection in &config.extra.networks {
        let net = network::Network::named(dirs, &connection.network)?
            .ok_or_else(|| network::NetworkError::NotFound(connection.network.clone()))?;
        let endpoint = network::Endpoint {
            name: config.name.clone(),
            aliases: connection.aliases.clone(),
            ip: connection.ip,
        };
        let attachment = network::attach_another(dirs, &net, &endpoint, child.as_raw())?;
        started.connected.push(attachment);
    }
    // The container's /etc/hosts, resolv.conf and hostname, with its
    // address (with `container:NAME`, that one's files as they are).
    if shared_net.is_none() {
        etc_files::write(
            &etc_dir,
            config,
            started.ip(),
            joined.as_ref().and_then(|n| n.resolv_conf()),
        )?;
    }
    // Release the child: "go", with its address and the name its veth end
    // got (when it has a network); a closed pipe says "give up".
    let go = match &started.network {
        Some(net) => format!("go {} {}", net.ip, net.peer),
        None => "go".to_string(),
    };
    nix::unistd::write(&go_write, go.as_bytes())
        .map_err(|e| RuntimeError::Setup(format!("release the container: {e}")))?;
    hold_at("released");
    // Its steps as it takes them, then end of file: the program runs, or
    // the child said why not (and exits; dropping `started` undoes the rest).
    let failure = init_pipe::receive(init_read, |what, shell| explain.step(what, shell))
        .map_err(|e| RuntimeError::Setup(format!("read the init pipe: {e}")))?;
    if let Some(failure) = failure {
        return Err(failure.into());
    }
    hold_at("started");
    Ok(started)
}
// ANCHOR_END: start

/// The container's cgroup v2 directory, opened for clone3's
/// `CLONE_INTO_CGROUP` (None on v1, whose hierarchies it cannot name).
fn cgroup_dir_fd(cgroup: &Cgroup) -> Option<OwnedFd> {
    if cgroup.version() != 2 {
        return None;
    }
    let dir = std::fs::File::open(cgroup.paths().first()?).ok()?;
    Some(dir.into())
}

/// The network a container on `config`'s `--network` joins: the default
/// bridge, a user-defined network (which must exist), or none.
fn joined_network(
    dirs: &LabDirs,
    config: &RunConfig,
) -> Result<Option<network::Network>, RuntimeError> {
    Ok(match &config.network {
        NetworkMode::Bridge => Some(network::Network::default_bridge()),
        NetworkMode::Named(name) => Some(
            network::Network::named(dirs, name)?
                .ok_or_else(|| network::NetworkError::NotFound(name.clone()))?,
        ),
        _ => None,
    })
}

/// `--network container:NAME`: the other container's network namespace,
/// opened now (so that it is that namespace, even if NAME stops before
/// we join it), for the child to join with setns; and, as Docker does,
/// its /etc/hosts, resolv.conf and hostname files and its hostname.
// ANCHOR: shared_netns
fn shared_network_namespace(
    dirs: &LabDirs,
    config: &RunConfig,
) -> Result<Option<SharedNetwork>, RuntimeError> {
    let NetworkMode::Container(key) = &config.network else {
        return Ok(None);
    };
    let not_running = || {
        RuntimeError::Setup(format!(
            "cannot join network of a non running container: {key}; start it first"
        ))
    };
    let store = crate::engine::store::Store::new(dirs);
    let other = store
        .get(key)
        .map_err(|e| RuntimeError::Setup(e.to_string()))?;
    if !other.effective_status().is_running() || other.state.pid <= 0 {
        return Err(not_running());
    }
    let path = format!("/proc/{}/ns/net", other.state.pid);
    let netns = std::fs::File::open(&path).map_err(|_| not_running())?;
    // The files are those of whoever made the namespace: NAME's own, or
    // those NAME itself shares (Docker's chain of `container:` modes).
    let mut owner = other;
    for _ in 0..8 {
        let NetworkMode::Container(next) = &owner.config.network else {
            break;
        };
        owner = store.get(next).map_err(|_| not_running())?;
    }
    Ok(Some(SharedNetwork {
        netns: netns.into(),
        etc_dir: dirs.container_dir(owner.state.kernel_name(&owner.name)),
        hostname: owner.config.hostname.clone(),
    }))
}
// ANCHOR_END: shared_netns

/// What `--network container:NAME` takes of the other container.
struct SharedNetwork {
    netns: OwnedFd,
    /// The run directory that holds its /etc/hosts, resolv.conf, hostname.
    etc_dir: PathBuf,
    hostname: String,
}

/// `--ipc container:NAME`: that container's IPC namespace, opened now. As
/// Docker 20.10, only from a running container that made it shareable
/// (`--ipc shareable`, or one that itself shares the host's or another's);
/// Docker's default, "private", refuses.
fn shared_ipc_namespace(
    dirs: &LabDirs,
    config: &RunConfig,
) -> Result<Option<OwnedFd>, RuntimeError> {
    let Some(key) = config
        .extra
        .ipc
        .as_deref()
        .and_then(|mode| mode.strip_prefix("container:"))
    else {
        return Ok(None);
    };
    let refused =
        |why: String| RuntimeError::Setup(format!("can't join IPC of container {key}: {why}"));
    let other = crate::engine::store::Store::new(dirs)
        .get(key)
        .map_err(|e| refused(e.to_string()))?;
    if !other.effective_status().is_running() || other.state.pid <= 0 {
        return Err(refused(format!("container {} is not running", other.id)));
    }
    let shareable = match other.config.extra.ipc.as_deref() {
        Some(mode) => mode == "shareable" || mode == "host" || mode.starts_with("container:"),
        None => false,
    };
    if !shareable {
        return Err(refused(
            "non-shareable IPC (hint: use IpcMode:shareable for the donor container)".into(),
        ));
    }
    let path = format!("/proc/{}/ns/ipc", other.state.pid);
    let ipcns = std::fs::File::open(&path)
        .map_err(|_| refused(format!("container {} is not running", other.id)))?;
    Ok(Some(ipcns.into()))
}

/// What the cloned child needs to finish the container from inside.
struct ChildSetup<'a> {
    config: &'a RunConfig,
    /// The run directory, where the host wrote /etc/hosts and the others.
    etc_dir: &'a Path,
    cgroup_view: &'a [cgroup_view::Hierarchy],
    network: Option<&'a network::Network>,
    /// `--network container:NAME`: that container's network namespace.
    shared_netns: Option<std::os::fd::RawFd>,
    /// `--ipc container:NAME`: that container's IPC namespace.
    shared_ipc: Option<std::os::fd::RawFd>,
    layers: &'a [Layer],
    overlay: &'a OverlayDirs,
    cgroup_procs: Vec<PathBuf>,
    volume_sources: &'a [PathBuf],
    devices: &'a [DeviceNode],
    /// `--explain`: the steps go back over the init pipe.
    explain: bool,
}

/// The child's `--explain`: each step sent back on the init pipe.
struct Steps<'a> {
    on: bool,
    report: &'a Reporter,
}

impl Steps<'_> {
    fn step(&self, what: impl std::fmt::Display, shell: impl std::fmt::Display) {
        if self.on {
            self.report.step(&what.to_string(), &shell.to_string());
        }
    }
}

impl ChildSetup<'_> {
    /// In the cloned child: the set-up, then the user's program (under our
    /// init with `--init`). A failure is reported on the init pipe, for the
    /// host to say; the child then exits with its code. Never returns.
    fn run(&self, go: OwnedFd, io: Stdio, report: Reporter) -> ! {
        let (argv, env) = match self.prepare(go, io, &report) {
            Ok(program) => program,
            Err(err) => init::fail(&report, init_pipe::Failure::setup(err.to_string())),
        };
        if self.config.init {
            // --init: our PID 1 forwards signals and reaps, the command is its
            // child. The init pipe then closes when the command is executed.
            init::run(&argv, &env, report)
        }
        signals::reset_to_default();
        init::exec_or_report(&argv, &env, &report)
    }

    /// Cgroup, network, mounts, root, hostname, hardening, user: all that
    /// must happen inside before the program. Returns its argv and env.
    // ANCHOR: prepare
    fn prepare(
        &self,
        go: OwnedFd,
        io: Stdio,
        report: &Reporter,
    ) -> Result<(Vec<CString>, Vec<CString>), RuntimeError> {
        let config = self.config;
        let explain = Steps {
            on: self.explain,
            report,
        };
        // Nothing of the caller's but 0, 1 and 2, from the first step on:
        // a descriptor kept until execve would already be reachable by a
        // `-w /proc/self/fd/N` (runc's CVE-2024-21626).
        let mut keep = vec![go.as_raw_fd(), report.as_raw_fd()];
        keep.extend(self.shared_netns);
        keep.extend(self.shared_ipc);
        init::close_fds_except(&io.lab_fds(&keep))
            .map_err(|e| RuntimeError::Setup(format!("close inherited descriptors: {e}")))?;
        if let Some(fd) = self.shared_netns {
            let netns = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                RuntimeError::Setup(format!(
                    "join the network namespace of {}: {e}",
                    self.config.network_name()
                ))
            })?;
            explain.step(
                format!(
                    "inside: join the network namespace of {}",
                    self.config.network_name()
                ),
                "nsenter --net=/proc/PID/ns/net",
            );
        }
        if let Some(fd) = self.shared_ipc {
            let ipcns = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            nix::sched::setns(ipcns, nix::sched::CloneFlags::CLONE_NEWIPC)
                .map_err(|e| RuntimeError::Setup(format!("join the IPC namespace: {e}")))?;
            explain.step(
                "inside: join the IPC namespace of the other container",
                "nsenter --ipc=/proc/PID/ns/ipc",
            );
        }
        // Into the cgroup first, so everything after is accounted and
        // limited, and a run killed from here on leaves nothing of the
        // container outside it (on v2 it was born there).
        crate::kernel::cgroups::join(&self.cgroup_procs)?;
        // Then its own cgroup namespace: that cgroup becomes its root.
        cgroup_view::unshare_namespace()?;
        // The host sends "go" (with the address and veth end it made); a
        // closed pipe means the host side failed and says why itself.
        let mut message = [0u8; 64];
        let message = match nix::unistd::read(go.as_raw_fd(), &mut message) {
            Ok(n) if message[..n].starts_with(b"go") => {
                String::from_utf8_lossy(&message[..n]).into_owned()
            }
            _ => init::exit_now(125),
        };
        let mut words = message.split_whitespace().skip(1);
        let ip = words
            .next()
            .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok());
        if let (Some(net), Some(ip), Some(peer)) = (self.network, ip, words.next()) {
            let (prefix, gateway) = (net.prefix, net.gateway);
            explain.step(
                format!("inside: {peer} becomes eth0 with {ip}/{prefix}, default route via {gateway}"),
                format!("ip link set {peer} name eth0; ip addr add {ip}/{prefix} dev eth0; ip link set eth0 up; ip route add default via {gateway}"),
            );
            network::configure_inside(net, peer, ip)?;
        }
        if config.network == NetworkMode::None {
            // Docker's `--network none`: only loopback, but up.
            loopback_up()?;
        }
        // Open /dev/null while the host's /dev is still reachable.
        let null: OwnedFd = std::fs::File::open("/dev/null")
            .map_err(|e| RuntimeError::Setup(format!("open /dev/null: {e}")))?
            .into();
        mounts::make_tree_private()?;
        // A layer that `--rm` discards is never synced to disk.
        let volatile = if config.remove {
            overlay::mount_overlay_volatile(self.layers, self.overlay)?
        } else {
            overlay::mount_overlay(self.layers, self.overlay)?;
            false
        };
        explain.step(
            "inside: the image and the writable layer, merged",
            format!(
                "mount --make-rprivate /; mount -t overlay overlay -o {}{} {}",
                overlay::mount_options(self.layers, self.overlay),
                if volatile { ",volatile" } else { "" },
                self.overlay.merged.display()
            ),
        );
        for (spec, source) in config.volumes.iter().zip(self.volume_sources) {
            volumes::mount_volume(&self.overlay.merged, source, spec)?;
            explain.step(
                format!("inside: volume {} at {}", source.display(), spec.target),
                format!(
                    "mount --rbind {} MERGED{}{}",
                    source.display(),
                    spec.target,
                    if spec.read_only {
                        format!(
                            "; for m in $(findmnt -Rno TARGET MERGED{0}); do mount -o remount,bind,ro $m; done",
                            spec.target
                        )
                    } else {
                        String::new()
                    }
                ),
            );
        }
        for spec in &config.tmpfs {
            volumes::mount_tmpfs(&self.overlay.merged, spec)?;
            explain.step(
                format!("inside: tmpfs at {}", spec.target),
                format!(
                    "mount -t tmpfs -o {} tmpfs MERGED{}",
                    spec.data, spec.target
                ),
            );
        }
        etc_files::mount(self.etc_dir, &self.overlay.merged)?;
        rootfs::pivot_into_stacked(&self.overlay.merged)?;
        rootfs::mount_kernel_filesystems()?;
        crate::kernel::ipc::mount_mqueue(Path::new("/dev/mqueue"))
            .map_err(|e| RuntimeError::Setup(e.to_string()))?;
        if let Some(size) = config.extra.shm_size {
            // --shm-size: /dev/shm again, at that size.
            let flags = nix::mount::MsFlags::MS_REMOUNT
                | nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC;
            mounts::mount_fs(
                "tmpfs",
                Path::new("/dev/shm"),
                flags,
                Some(&format!("mode=1777,size={size}")),
            )?;
        }
        // --sysctl, namespaced only (checked at create): before /proc/sys
        // becomes read-only.
        for (key, value) in &config.extra.sysctls {
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            std::fs::write(&path, value)
                .map_err(|e| RuntimeError::Setup(format!("sysctl {key}={value}: {e}")))?;
        }
        cgroup_view::mount_view(self.cgroup_view, config.privileged)?;
        explain.step(
            "inside: pivot_root into it, then /proc, /dev and a read-only /sys",
            "pivot_root . .; umount -l .; mount -t proc proc /proc",
        );
        explain.step(
            "inside: its own cgroup at /sys/fs/cgroup (read-only), /dev/mqueue, /etc/hosts, resolv.conf, hostname",
            format!(
                "unshare --cgroup; {}; mount -t mqueue mqueue /dev/mqueue; mount --bind RUN_DIR/hosts /etc/hosts …",
                match self.cgroup_view.first() {
                    Some(h) if h.dir.is_empty() => "mount -t cgroup2 -o ro cgroup /sys/fs/cgroup".to_string(),
                    Some(h) => format!(
                        "mount -t tmpfs tmpfs /sys/fs/cgroup; mount -t cgroup -o ro,{0} cgroup /sys/fs/cgroup/{1} …",
                        h.options, h.dir
                    ),
                    None => "(no cgroup hierarchy)".to_string(),
                }
            ),
        );
        for node in self.devices {
            node.create().map_err(RuntimeError::Setup)?;
            let (path, kind) = (node.path.display(), node.kind.letter());
            explain.step(
                format!("inside: device node {path}, allowed {}", node.access),
                format!("mknod {path} {kind} {} {}", node.major, node.minor),
            );
        }
        hostname::set(&config.hostname)?;
        explain.step(
            format!("inside: hostname {}", config.hostname),
            format!("hostname {}", config.hostname),
        );
        if !config.privileged {
            hardening::mask_paths()?;
            explain.step(
                "inside: mask /proc/kcore, /proc/keys …; /proc/sys read-only",
                "mount --bind /dev/null /proc/kcore; …",
            );
        }
        let workdir = config.workdir.clone().unwrap_or_else(|| "/".into());
        std::fs::create_dir_all(&workdir)
            .map_err(|e| RuntimeError::Setup(format!("workdir {workdir}: {e}")))?;
        if config.read_only {
            hardening::read_only_root()?;
            explain.step(
                "inside: the root filesystem read-only",
                "mount -o remount,bind,ro /",
            );
        }
        std::env::set_current_dir(&workdir)
            .map_err(|e| RuntimeError::Setup(format!("workdir {workdir}: {e}")))?;
        let user = match &config.user {
            // Looked up in the container's own files, as Docker does.
            Some(spec) => Some(crate::engine::images::users::lookup_user(
                Path::new("/"),
                spec,
            )?),
            None => None,
        };
        let env = environment(config, &[]);
        // execvp searches the PATH of our own environment: the image's.
        if let Some((_, path)) = env.iter().find(|(k, _)| k == "PATH") {
            std::env::set_var("PATH", path);
        }
        let env = cstrings(env.iter().map(|(k, v)| format!("{k}={v}")))?;
        let argv = cstrings(config.command.iter().cloned())?;
        connect_stdio(io, null)?;
        for limit in &config.extra.ulimits {
            set_ulimit(limit)?;
        }
        if config.init {
            // Docker's shape: `docker-init -- CMD ARGS` in /proc/1/cmdline.
            let shown: Vec<String> = [init::INIT_NAME.to_string(), "--".to_string()]
                .into_iter()
                .chain(config.command.iter().cloned())
                .collect();
            init::set_command_line(&shown)
                .map_err(|e| RuntimeError::Setup(format!("set init's command line: {e}")))?;
        }
        config.profile.apply()?;
        explain.step(
            format!(
                "inside: keep {} capabilities{}",
                config.profile.keep.len(),
                match (config.profile.seccomp, config.profile.no_new_privs) {
                    (true, false) => ", seccomp filter",
                    (true, true) => ", no_new_privs, seccomp filter",
                    (false, true) => ", no_new_privs (no seccomp)",
                    (false, false) => " (no seccomp)",
                }
            ),
            if config.profile.no_new_privs {
                "capsh --caps=… ; prctl(PR_SET_NO_NEW_PRIVS); seccomp(SECCOMP_SET_MODE_FILTER)"
            } else {
                "seccomp(SECCOMP_SET_MODE_FILTER) while root still may; capsh --caps=…"
            },
        );
        let groups = supplementary_groups(&config.extra.group_add)?;
        match user {
            Some((uid, gid)) => become_user(uid, gid, &groups)?,
            None if !groups.is_empty() => {
                let mut all = vec![nix::unistd::Gid::from_raw(0)];
                all.extend(groups.iter().map(|g| nix::unistd::Gid::from_raw(*g)));
                nix::unistd::setgroups(&all)
                    .map_err(|e| RuntimeError::Setup(format!("setgroups: {e}")))?;
            }
            None => {}
        }
        explain.step(
            format!(
                "inside: execve {}",
                crate::support::shell::shell_words(&config.command)
            ),
            "exec \"$@\"",
        );
        Ok((argv, env))
    }
    // ANCHOR_END: prepare
}

/// Docker's defaults (PATH, HOME), then the image's environment and `-e`
/// (merged into the run's at create), then `extra`, then HOSTNAME; TERM
/// only with a terminal.
pub(crate) fn environment(config: &RunConfig, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), DEFAULT_PATH.to_string()),
        ("HOME".to_string(), "/root".to_string()),
    ];
    if config.tty {
        env.push(("TERM".into(), "xterm".into()));
    }
    for (key, value) in config.env.iter().chain(extra) {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    env.push(("HOSTNAME".into(), config.hostname.clone()));
    env
}

/// `--group-add`: numbers, or names from the container's /etc/group.
pub(crate) fn supplementary_groups(names: &[String]) -> Result<Vec<u32>, RuntimeError> {
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    names
        .iter()
        .map(|name| {
            name.parse::<u32>()
                .ok()
                .or_else(|| {
                    groups.lines().find_map(|line| {
                        let fields: Vec<&str> = line.split(':').collect();
                        (fields.first() == Some(&name.as_str()))
                            .then(|| fields.get(2)?.parse().ok())
                            .flatten()
                    })
                })
                .ok_or_else(|| {
                    RuntimeError::Setup(format!(
                        "unable to find group {name}: no matching entries in group file"
                    ))
                })
        })
        .collect()
}

/// `--ulimit NAME=SOFT:HARD`: setrlimit before the program starts.
fn set_ulimit(limit: &extra::Ulimit) -> Result<(), RuntimeError> {
    let resource = extra::rlimit_resource(&limit.name)
        .ok_or_else(|| RuntimeError::Setup(format!("unknown ulimit {}", limit.name)))?;
    let value = libc::rlimit {
        rlim_cur: limit.soft,
        rlim_max: limit.hard,
    };
    let done = unsafe { libc::setrlimit(resource, &value) };
    nix::errno::Errno::result(done)
        .map(drop)
        .map_err(|e| RuntimeError::Setup(format!("setrlimit {}: {e}", limit.name)))
}

/// The signals to a foreground run after which the container is killed.
pub const KILL_AFTER_SIGNALS: u32 = 3;

/// `ip link set lo up`, in the container's network namespace.
fn loopback_up() -> Result<(), RuntimeError> {
    use crate::kernel::net::{links, netlink::Netlink};
    let mut nl =
        Netlink::open().map_err(|e| RuntimeError::Setup(format!("open a netlink socket: {e}")))?;
    links::set_up(&mut nl, "lo").map_err(|e| RuntimeError::Setup(format!("set lo up: {e}")))
}

/// Points fds 0, 1 and 2 where the container's streams go.
fn connect_stdio(io: Stdio, null: OwnedFd) -> Result<(), RuntimeError> {
    let dup = |from: std::os::fd::RawFd, to: std::os::fd::RawFd| {
        nix::unistd::dup2(from, to)
            .map(drop)
            .map_err(|e| RuntimeError::Setup(format!("dup2: {e}")))
    };
    if let Some(console) = io.console {
        use std::os::fd::AsFd;
        return crate::kernel::pty::attach_console(console.as_fd())
            .map_err(|e| RuntimeError::Setup(e.to_string()));
    }
    match io.stdin {
        StdinMode::Null => dup(null.as_raw_fd(), 0)?,
        StdinMode::Inherit => {}
        StdinMode::Fd(fd) => dup(fd.as_raw_fd(), 0)?,
    }
    if let Some(fd) = io.stdout {
        dup(fd.as_raw_fd(), 1)?;
    }
    if let Some(fd) = io.stderr {
        dup(fd.as_raw_fd(), 2)?;
    }
    Ok(())
}

/// `-u`: groups, gid, then uid (setuid last: after it we could not change
/// the others). The kernel clears the capabilities of a non-root user at
/// execve, as Docker's users see too.
pub(crate) fn become_user(uid: u32, gid: u32, extra: &[u32]) -> Result<(), RuntimeError> {
    let gid = nix::unistd::Gid::from_raw(gid);
    let mut groups = vec![gid];
    groups.extend(extra.iter().map(|g| nix::unistd::Gid::from_raw(*g)));
    nix::unistd::setgroups(&groups).map_err(|e| RuntimeError::Setup(format!("setgroups: {e}")))?;
    nix::unistd::setgid(gid).map_err(|e| RuntimeError::Setup(format!("setgid: {e}")))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))
        .map_err(|e| RuntimeError::Setup(format!("setuid: {e}")))
}

impl Started {
    /// The container's first process, as the host sees it.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn ip(&self) -> Option<std::net::Ipv4Addr> {
        self.network.as_ref().map(|n| n.ip)
    }

    /// The names of its veth pair and its table of published ports.
    pub fn links(&self) -> Option<network::Links> {
        self.network.as_ref().map(|n| n.links())
    }

    /// The published ports, with the host ports that were picked.
    pub fn published(&self) -> &[network::PortMapping] {
        self.network.as_ref().map_or(&[], |n| n.ports())
    }

    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }

    /// The shell equivalent of dropping this: network, then cgroup.
    pub fn teardown_shell(&self) -> String {
        let mut shell = Vec::new();
        if let Some(network) = &self.network {
            shell.push(format!("ip link del {}", network.host_end));
            if !network.ports().is_empty() {
                shell.push(format!("nft delete table ip {}", network.table));
            }
        }
        for path in self.cgroup.paths() {
            shell.push(format!("rmdir {}", path.display()));
        }
        shell.join("; ")
    }

    /// Waits for the container, passing the signals we get on to it, as
    /// `docker run`'s `--sig-proxy` (the default) does, for as long as it
    /// runs: a PID 1 without handlers ignores them, under Docker too. The
    /// lab's one addition: the third Ctrl-C or SIGTERM kills it (there is
    /// no daemon to `docker kill` it through when this run is killed).
    /// Without `proxy` nothing is passed on, and only the third ends it.
    // ANCHOR: wait
    pub fn wait_forwarding_signals(&mut self, proxy: bool) -> i32 {
        let mut received = 0;
        let sleeper = signals::ChildWait::begin();
        let sleep = || match &sleeper {
            Ok(sleeper) => sleeper.sleep(),
            // No pipe to sleep on: look again in a moment.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        };
        loop {
            // Checked before blocking: a signal may also have come while
            // the container was still being set up.
            if let Some(signal) = signals::interrupted() {
                signals::clear();
                if matches!(signal, Signal::SIGINT | Signal::SIGTERM) {
                    received += 1;
                }
                if received >= KILL_AFTER_SIGNALS {
                    let _ = kill(self.pid, Signal::SIGKILL);
                } else if proxy {
                    let _ = kill(self.pid, signal);
                }
            }
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                // Until its exit or the next signal, without polling.
                Ok(WaitStatus::StillAlive) => sleep(),
                Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    let code = status_code(status);
                    self.status = Some(code);
                    return code;
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return 125,
            }
        }
    }
    // ANCHOR_END: wait

    /// Whether the kernel's OOM killer ended a process of the container.
    pub fn oom_killed(&self) -> bool {
        self.cgroup.stats().memory.oom_kills.unwrap_or(0) > 0
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
        // Fields drop after this: first the network goes, then the cgroup
        // (empty now), then the run directory.
        self.network.take();
        self.connected.clear();
        if self.remove_anonymous {
            for name in &self.anonymous_volumes {
                let _ = volumes::remove(&self.dirs, name);
            }
        }
    }
}

/// Docker's PATH for an image that sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The image's unpacked layers, bottom first: the store's own directories,
/// shared by every container of every image that has the layer. By id
/// when the record has one, so that a tag moved since keeps its layers.
pub fn image_layers(dirs: &LabDirs, config: &RunConfig) -> Result<Vec<Layer>, RuntimeError> {
    use crate::engine::images::local;
    let store = local::open(dirs)?;
    let image = match &config.image_id {
        Some(id) => store.find(id)?,
        None => local::resolve(&store, dirs, &config.image)?,
    };
    Ok(image
        .layers
        .iter()
        .map(|l| Layer {
            name: l.diff_id[7..19].to_string(),
            path: l.dir.clone(),
        })
        .collect())
}

fn shell_writes(cgroup: &Cgroup, written: &[Written]) -> String {
    let mut shell = format!("mkdir {}", cgroup.paths()[0].display());
    for write in written {
        shell.push_str(&format!("; {}", write.shell()));
    }
    shell
}

fn names(spaces: &[Namespace]) -> String {
    spaces
        .iter()
        .map(|s| s.proc_name())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn cstrings(items: impl Iterator<Item = String>) -> Result<Vec<CString>, RuntimeError> {
    items
        .map(|s| {
            CString::new(s.clone())
                .map_err(|_| RuntimeError::Setup(format!("argument contains a NUL byte: {s:?}")))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Image(#[from] crate::engine::images::ImageError),
    #[error(transparent)]
    User(#[from] crate::engine::images::users::UserError),
    #[error(transparent)]
    Rootfs(#[from] crate::kernel::rootfs::RootfsError),
    #[error(transparent)]
    State(#[from] crate::engine::dirs::StateError),
    #[error(transparent)]
    Overlay(#[from] crate::kernel::overlay::OverlayError),
    #[error(transparent)]
    Cgroup(#[from] crate::kernel::cgroups::CgroupError),
    #[error(transparent)]
    Namespace(#[from] crate::kernel::namespaces::NamespaceError),
    #[error(transparent)]
    Mount(#[from] crate::kernel::mounts::MountError),
    #[error(transparent)]
    Hardening(#[from] crate::kernel::hardening::HardeningError),
    #[error(transparent)]
    Network(#[from] crate::engine::network::NetworkError),
    #[error(transparent)]
    Volume(#[from] crate::engine::volumes::VolumeError),
    /// The container's own side (its set-up, or its program) failed,
    /// as the cloned child reported it.
    #[error(transparent)]
    Child(#[from] init_pipe::Failure),
    #[error(transparent)]
    Hostname(#[from] crate::kernel::hostname::HostnameError),
    #[error("{0}")]
    Setup(String),
}

impl RuntimeError {
    /// Docker's exit code for a start that failed this way: 127 when the
    /// program does not exist, 126 when it cannot be run, 125 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::Child(failure) => failure.exit_code(),
            _ => 125,
        }
    }
}
