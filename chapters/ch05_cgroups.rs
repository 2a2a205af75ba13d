//! Chapter 5: cgroups, the resource police.
//!
//! The container gets a cgroup of its own with a memory limit, a CPU quota
//! and a process limit, and each is tested by a program inside that tries
//! to use more: the kernel's own counters, read from the cgroup's files,
//! show what it did about it. The same code runs on cgroup v1 and v2.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use container_lab::kernel::cgroups::{self, Cgroup, CgroupError, Limits};
use container_lab::kernel::namespaces::Namespace;
use container_lab::lab::chapters;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::narrate::{yes_no, Narrator};
use container_lab::{kernel::signals, lab::privilege};

/// cgroups: limit a container's memory, CPU time and number of processes.
#[derive(Debug, Parser)]
#[command(name = "ch05", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
    #[command(flatten)]
    container: ContainerArgs,
    /// Memory limit, as for docker run: 32m, 1g …
    #[arg(short = 'm', long, default_value = "32m", value_parser = cgroups::parse_size)]
    memory: u64,
    /// CPU quota in CPUs, as for docker run: 0.2 is 20 ms of every 100 ms
    #[arg(long, default_value = "0.2", value_parser = cgroups::parse_cpus)]
    cpus: f64,
    /// Maximum number of processes in the container
    #[arg(long, default_value = "20", value_parser = clap::value_parser!(u64).range(8..=4096))]
    pids_limit: u64,
    /// Name of this run: the cgroup is container-lab/NAME
    #[arg(long, default_value = "ch05", value_parser = cli::parse_name)]
    name: String,
}

const NAMESPACES: [Namespace; 4] = [
    Namespace::Uts,
    Namespace::Pid,
    Namespace::Ipc,
    Namespace::Mount,
];
const MIB: u64 = 1 << 20;

fn main() -> ExitCode {
    let cli = Cli::parse();
    signals::install_interrupt_handler();
    cli::finish(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let chapter = chapters::chapter("ch05").context("ch05 is missing from the manifest")?;
    privilege::ensure_root(
        "ch05",
        "creating cgroups and writing their limits needs root",
    )?;
    let mut book = Narrator::new(chapter, &cli.chapter);

    // ANCHOR: detect
    book.step("find out how this host mounts cgroups")
        .primitive("statfs(\"/sys/fs/cgroup\"): CGROUP2_SUPER_MAGIC means v2 only")
        .shell("stat -fc %T /sys/fs/cgroup /sys/fs/cgroup/unified")
        .look("v2 only on modern distributions; v1 (or a hybrid) on older ones")
        .begin()?;
    let layout = cgroups::detect_layout()?;
    book.fact("layout", layout.describe());
    // ANCHOR_END: detect

    // ANCHOR: create
    let memory_file = if layout == cgroups::Layout::Unified {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    book.step("create the container's cgroup and write its limits")
        .primitive("mkdir(2) in the cgroup filesystem, then write(2) to its limit files")
        .shell(format!(
            "mkdir OWN/container-lab/NAME && echo {} > OWN/container-lab/NAME/{memory_file}",
            cli.memory
        ))
        .look("a cgroup is a directory; a limit is a number written to a file in it")
        .begin()?;
    let cgroup = match Cgroup::create(&cli.name) {
        Err(CgroupError::NotDelegated(_)) => match cgroups::reexec_in_delegated_scope()? {},
        other => other?,
    };
    book.fact("cgroup version used", cgroup.version());
    for path in cgroup.paths() {
        book.fact("created", path.display());
    }
    let limits = Limits {
        memory_bytes: Some(cli.memory),
        cpus: Some(cli.cpus),
        pids: Some(cli.pids_limit),
    };
    for (file, value) in cgroup.set_limits(&limits)? {
        book.say(format!("{} = {value}", file.display()));
    }
    // ANCHOR_END: create

    // ANCHOR: start
    book.step("start the container inside it")
        .primitive(
            "the cloned init writes \"0\" (itself) into cgroup.procs before it starts anything",
        )
        .shell("echo $$ > OWN/container-lab/NAME/cgroup.procs && exec unshare … sleep infinity")
        .look("/proc/PID/cgroup of the container's init names the new cgroup")
        .begin()?;
    let container = Container::start(&ContainerSpec {
        namespaces: NAMESPACES.to_vec(),
        main: vec!["sleep".into(), "infinity".into()],
        cgroup_procs: cgroup.procs_files(),
        ..Default::default()
    })?;
    let membership = std::fs::read_to_string(format!("/proc/{}/cgroup", container.pid()))?;
    for line in membership.lines().filter(|l| l.contains("container-lab")) {
        // "ID:controllers:path"; the hierarchy ID differs from host to host.
        let line = line.split_once(':').map_or(line, |(_, rest)| rest);
        let line = line
            .strip_prefix(':')
            .map_or(line.to_string(), |path| format!("(v2) {path}"));
        book.say(format!("/proc/INIT/cgroup: {line}"));
    }
    let hostname = cli.container.hostname.clone();
    container.run_inside(move || i32::from(nix::unistd::sethostname(&hostname).is_err()))?;
    book.fact("hostname inside", &cli.container.hostname);
    book.fact("processes in the cgroup", cgroup.processes().len());
    // ANCHOR_END: start

    memory_step(&mut book, &container, &cgroup, cli.memory)?;
    cpu_step(&mut book, &container, &cgroup, cli.cpus)?;
    pids_step(&mut book, &container, &cgroup, cli.pids_limit)?;
    book.user_command_step(&container, &cli.container.command)?;

    // ANCHOR: cleanup
    book.step("stop the container and remove its cgroup")
        .primitive("kill(init, SIGTERM), then rmdir(2): a cgroup can only go once it is empty")
        .shell("kill PID && rmdir OWN/container-lab/NAME")
        .look("nothing the chapter created is left in any hierarchy")
        .begin()?;
    container.stop(Duration::from_secs(10))?;
    let paths = cgroup.paths();
    drop(cgroup);
    book.fact(
        "cgroup directories removed",
        yes_no(paths.iter().all(|p| !p.exists())),
    );
    // ANCHOR_END: cleanup

    book.done("the kernel enforced every limit and counted every refusal. chapter 6 gives the container a network.");
    Ok(())
}

/// Allocates and touches memory until the kernel stops it.
// ANCHOR: memory
fn memory_step(
    book: &mut Narrator,
    container: &Container,
    cgroup: &Cgroup,
    limit: u64,
) -> anyhow::Result<()> {
    book.step(format!("allocate more than the {} MiB limit", limit / MIB))
        .primitive("page faults charged to the cgroup; past the limit, the kernel's OOM killer")
        .shell("a program that allocates and writes memory, 1 MiB at a time")
        .look("the hog dies of SIGKILL (exit 137), not SIGTERM; the cgroup's own counters say why")
        .begin()?;
    if !cgroup.has("memory") {
        book.say("skipped: the memory controller is not available to this cgroup");
        return Ok(());
    }
    let before = cgroup.counters();
    let code = container.run_inside(move || allocate_until_stopped(limit * 4))?;
    let after = cgroup.counters();
    book.fact("the hog's exit status", describe_exit(code));
    book.fact(
        "OOM kills (kernel counter)",
        change(before.oom_kills, after.oom_kills),
    );
    if let Some(peak) = after.memory_peak_bytes {
        book.fact(
            "peak usage reached the limit",
            yes_no(peak >= limit * 9 / 10),
        );
    }
    Ok(())
}

/// Runs inside the container: touches one byte of every page, so the
/// memory is really used, not just reserved.
fn allocate_until_stopped(max_bytes: u64) -> i32 {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    while (kept.len() as u64) * MIB < max_bytes {
        let mut chunk = vec![0u8; MIB as usize];
        for page in chunk.iter_mut().step_by(4096) {
            *page = 1;
        }
        kept.push(chunk);
    }
    0
}
// ANCHOR_END: memory

/// Spins for one second and compares the CPU time the cgroup was charged.
// ANCHOR: cpu
fn cpu_step(
    book: &mut Narrator,
    container: &Container,
    cgroup: &Cgroup,
    cpus: f64,
) -> anyhow::Result<()> {
    book.step(format!("spin for one second under a quota of {cpus} CPU"))
        .primitive("the CFS bandwidth controller: a quota of CPU time per 100 ms period")
        .shell("timeout 1 sh -c 'while :; do :; done'")
        .look("the busy loop gets about its quota of one CPU; the periods it was throttled are counted")
        .begin()?;
    if !cgroup.has("cpu") {
        book.say("skipped: the cpu controller is not available to this cgroup");
        return Ok(());
    }
    let before = cgroup.counters();
    let started = Instant::now();
    container.run_inside(|| {
        let end = Instant::now() + Duration::from_secs(1);
        while Instant::now() < end {
            std::hint::spin_loop();
        }
        0
    })?;
    let wall = started.elapsed();
    let after = cgroup.counters();
    if let (Some(used_before), Some(used_after)) = (before.cpu_usage, after.cpu_usage) {
        let share = (used_after - used_before).as_secs_f64() / wall.as_secs_f64();
        book.fact(
            "measured share of one CPU",
            format!("{:.0}%", share * 100.0),
        );
        book.fact("within the quota", yes_no(share <= cpus + 0.05));
    }
    let throttled =
        after.cpu_throttled_periods.unwrap_or(0) > before.cpu_throttled_periods.unwrap_or(0);
    book.fact(
        "periods throttled",
        if throttled { "more than 0" } else { "0" },
    );
    Ok(())
}
// ANCHOR_END: cpu

/// Forks until the kernel refuses, then ends every child it made.
// ANCHOR: pids
fn pids_step(
    book: &mut Narrator,
    container: &Container,
    cgroup: &Cgroup,
    limit: u64,
) -> anyhow::Result<()> {
    book.step(format!(
        "fork without end under a limit of {limit} processes"
    ))
    .primitive("fork(2) fails with EAGAIN once the cgroup holds pids.max processes")
    .shell(":(){ :|:& };:   (never without a limit)")
    .look("the bomb is contained: forks fail inside, the host keeps working")
    .begin()?;
    if !cgroup.has("pids") {
        // Never run a fork bomb without a limit.
        book.say("skipped: the pids controller is not available to this cgroup");
        return Ok(());
    }
    let before = cgroup.counters();
    container.run_inside(fork_until_refused)?;
    let after = cgroup.counters();
    book.fact(
        "forks refused (pids.events max)",
        change(before.pids_refused, after.pids_refused),
    );
    let host_can_fork = std::process::Command::new("true")
        .status()
        .is_ok_and(|s| s.success());
    book.fact("the host can still start processes", yes_no(host_can_fork));
    Ok(())
}

/// Runs inside the container: forks sleeping children until fork fails,
/// reports, then kills them all. Bounded, in case the limit is missing.
fn fork_until_refused() -> i32 {
    use nix::unistd::{fork, ForkResult};
    let mut children = Vec::new();
    let outcome = loop {
        if children.len() >= 1000 {
            break "stopped at 1000 without a refusal".to_string();
        }
        match unsafe { fork() } {
            Ok(ForkResult::Child) => loop {
                nix::unistd::pause();
            },
            Ok(ForkResult::Parent { child }) => children.push(child),
            Err(errno) => {
                break format!(
                    "then fork failed with {errno:?} ({})",
                    errno.desc().to_lowercase()
                )
            }
        }
    };
    println!("   forked {} processes, {outcome}", children.len());
    for child in &children {
        let _ = nix::sys::signal::kill(*child, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(*child, None);
    }
    0
}
// ANCHOR_END: pids

fn describe_exit(code: i32) -> String {
    match code {
        137 => "137 = 128 + 9: killed by SIGKILL".to_string(),
        143 => "143 = 128 + 15: SIGTERM".to_string(),
        0 => "0: it was never stopped".to_string(),
        other => other.to_string(),
    }
}

fn change(before: Option<u64>, after: Option<u64>) -> String {
    match (before, after) {
        (Some(b), Some(a)) => format!("{b} before, {a} after"),
        _ => "not reported by this kernel".to_string(),
    }
}
