//! Chapter 5: cgroups, the resource police.
//!
//! The container gets a cgroup of its own with a memory limit, a CPU quota
//! and a process limit, and each is tested by a program inside that tries
//! to use more: the kernel's own counters, read from the cgroup's files,
//! show what it did about it. Then a disk of its own (a loop device) with
//! read and write limits, and what those limits do not cover. The same
//! code runs on cgroup v1 and v2: the cgroups module knows their files.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use container_lab::engine::dirs::{LabDirs, RunDir};
use container_lab::kernel::cgroups::{
    self, Cgroup, Controller, DeviceNumber, Io, IoStats, Limits, Resources,
};
use container_lab::kernel::loopdev::{self, LoopDevice};
use container_lab::kernel::mounts;
use container_lab::kernel::namespaces::Namespace;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::narrate::{yes_no, Narrator};
use container_lab::lab::{self, steps};

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
    /// Read and write limit on the chapter's disk, as for docker run --device-read-bps: 2m, 512k …
    #[arg(long, default_value = "2m", value_parser = parse_disk_rate)]
    disk_bps: u64,
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
/// How much each `dd` of the disk step moves: two seconds at 2 MiB/s.
const DD_MIB: u64 = 4;

fn parse_disk_rate(text: &str) -> Result<u64, String> {
    let rate = cgroups::parse_bytes_per_second(text)?;
    if !(256 << 10..=1 << 30).contains(&rate) {
        return Err(format!("invalid --disk-bps {text:?}: use 256k to 1g"));
    }
    Ok(rate)
}

fn main() -> ExitCode {
    cli::finish(run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut book = lab::begin!(&cli.chapter)?;
    // The disk image of step 7 lives here; dropping it removes the file.
    let run_dir = RunDir::create(&LabDirs::from_env(), &cli.name)?;

    book.next(narration::detect())?;
    // ANCHOR: detect
    let layout = cgroups::detect_layout()?;
    book.fact("layout", layout.describe());
    // ANCHOR_END: detect

    book.next(narration::create())?;
    // ANCHOR: create
    let cgroup = Cgroup::create(&cli.name)?;
    book.fact("cgroup version used", cgroup.version());
    for path in cgroup.paths() {
        book.fact("created", path.display());
    }
    // As `docker run -m 32m --cpus 0.2 --pids-limit 20` asks for them.
    let limits = Limits {
        memory_bytes: Some(cli.memory),
        cpus: Some(cli.cpus),
        pids: Some(cli.pids_limit),
        ..Limits::default()
    };
    for written in cgroup.set(&limits.resources()?)? {
        book.say(written);
    }
    // ANCHOR_END: create

    book.next(narration::start())?;
    // ANCHOR: start
    let container = Container::start(&ContainerSpec {
        namespaces: NAMESPACES.to_vec(),
        main: vec!["sleep".into(), "infinity".into()],
        cgroup_procs: cgroup.procs_files(),
        ..Default::default()
    })?;
    let pid = container.pid();
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    for line in membership.lines().filter(|l| l.contains("container-lab")) {
        book.say(format!("/proc/INIT/cgroup: {}", without_hierarchy_id(line)));
    }
    steps::set_hostname(&container, &cli.container.hostname)?;
    book.fact("hostname inside", &cli.container.hostname);
    book.fact("processes in the cgroup", cgroup.processes().len());
    // ANCHOR_END: start

    book.next(narration::memory(cli.memory))?;
    memory(&book, &container, &cgroup, cli.memory)?;
    book.next(narration::cpu(cli.cpus))?;
    cpu(&book, &container, &cgroup, cli.cpus)?;
    book.next(narration::pids(cli.pids_limit))?;
    pids(&book, &container, &cgroup)?;
    book.next(narration::io(cli.disk_bps))?;
    let disk = io(&book, &container, &cgroup, run_dir.path(), cli.disk_bps)?;
    book.user_command_step(&container, &cli.container.command)?;

    book.next(narration::cleanup())?;
    // ANCHOR: cleanup
    container.stop(Duration::from_secs(10))?;
    let paths = cgroup.paths();
    drop(cgroup);
    book.fact(
        "cgroup directories removed",
        yes_no(paths.iter().all(|p| !p.exists())),
    );
    if let Some(disk) = disk {
        let device = disk.path().to_path_buf();
        disk.detach()?;
        let image = run_dir.path().join("disk.img");
        drop(run_dir);
        book.fact(
            "loop device detached",
            yes_no(loopdev::backing_file(&device).is_none()),
        );
        book.fact("disk image removed", yes_no(!image.exists()));
    }
    // ANCHOR_END: cleanup

    book.done("the kernel enforced every limit and counted every refusal. chapter 6 gives the container a network.");
    Ok(())
}

/// Allocates and touches memory until the kernel stops it.
// ANCHOR: memory
fn memory(
    book: &Narrator,
    container: &Container,
    cgroup: &Cgroup,
    limit: u64,
) -> anyhow::Result<()> {
    if !cgroup.has(Controller::Memory) {
        skipped(book, "memory");
        return Ok(());
    }
    let before = cgroup.stats().memory;
    let code =
        container.run_inside(move || allocate_until_stopped(limit * 4))?;
    let after = cgroup.stats().memory;
    book.fact("the hog's exit status", describe_exit(code));
    book.fact(
        "OOM kills (kernel counter)",
        change(before.oom_kills, after.oom_kills),
    );
    if let Some(peak) = after.peak {
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
fn cpu(
    book: &Narrator,
    container: &Container,
    cgroup: &Cgroup,
    cpus: f64,
) -> anyhow::Result<()> {
    if !cgroup.has(Controller::Cpu) {
        skipped(book, "cpu");
        return Ok(());
    }
    let before = cgroup.stats().cpu;
    let started = Instant::now();
    container.run_inside(|| {
        let end = Instant::now() + Duration::from_secs(1);
        while Instant::now() < end {
            std::hint::spin_loop();
        }
        0
    })?;
    let wall = started.elapsed();
    let after = cgroup.stats().cpu;
    if let (Some(used_before), Some(used_after)) = (before.usage, after.usage) {
        let used = (used_after - used_before).as_secs_f64();
        let share = used / wall.as_secs_f64();
        let percent = format!("{:.0}%", share * 100.0);
        book.fact("measured share of one CPU", percent);
        book.fact("within the quota", yes_no(share <= cpus + 0.05));
    }
    let periods = |cpu: &cgroups::CpuStats| cpu.throttled_periods.unwrap_or(0);
    let throttled = periods(&after) > periods(&before);
    let shown = if throttled { "more than 0" } else { "0" };
    book.fact("periods throttled", shown);
    Ok(())
}
// ANCHOR_END: cpu

/// Forks until the kernel refuses, then ends every child it made.
// ANCHOR: pids
fn pids(
    book: &Narrator,
    container: &Container,
    cgroup: &Cgroup,
) -> anyhow::Result<()> {
    if !cgroup.has(Controller::Pids) {
        // Never run a fork bomb without a limit.
        skipped(book, "pids");
        return Ok(());
    }
    let before = cgroup.stats().pids;
    container.run_inside(|| fork_until_refused(book))?;
    let after = cgroup.stats().pids;
    book.fact(
        "forks refused (pids.events max)",
        change(before.refused, after.refused),
    );
    let host_can_fork =
        Command::new("true").status().is_ok_and(|s| s.success());
    book.fact("the host can still start processes", yes_no(host_can_fork));
    Ok(())
}

/// Runs inside the container: forks sleeping children until fork fails,
/// reports, then kills them all. Bounded, in case the limit is missing.
fn fork_until_refused(book: &Narrator) -> i32 {
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
                let why = errno.desc().to_lowercase();
                break format!("then fork failed with {errno:?} ({why})");
            }
        }
    };
    book.say(format!("forked {} processes, {outcome}", children.len()));
    for child in &children {
        let _ =
            nix::sys::signal::kill(*child, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(*child, None);
    }
    0
}
// ANCHOR_END: pids

/// A disk of the container's own: a file with a filesystem, seen as a
/// block device through a loop device, mounted inside. Limits on it, then
/// direct reads and writes, and a buffered write, measured and counted.
// ANCHOR: io
fn io(
    book: &Narrator,
    container: &Container,
    cgroup: &Cgroup,
    run_dir: &Path,
    rate: u64,
) -> anyhow::Result<Option<LoopDevice>> {
    if !cgroup.has(Controller::Io) {
        skipped(book, "io");
        return Ok(None);
    }
    let disk = make_disk(&run_dir.join("disk.img"))?;
    let (major, minor) = disk.number();
    let device = DeviceNumber { major, minor };
    let area = run_dir.join("disk");
    mount_inside(container, disk.path(), &area)?;
    book.fact("a disk of its own", disk.path().display());
    book.fact("mounted inside at", area.display());
    let limits = Resources {
        io: Io::bps(device, rate),
        ..Resources::default()
    };
    for written in cgroup.update(&limits)? {
        book.say(written);
    }

    let run = |line: String| timed(book, container, cgroup, device, &line);
    let (direct, buffered) = (area.join("direct"), area.join("buffered"));
    let (direct, buffered) = (direct.display(), buffered.display());
    let count = format!("bs=1M count={DD_MIB}");
    let (took, moved) = run(format!(
        "dd if=/dev/zero of={direct} {count} oflag=direct status=none"
    ))?;
    book.fact("direct write, measured", per_second(took));
    book.fact("within the limit", yes_no(within(took, rate)));
    book.fact("written, by the kernel's count", mib(moved.write_bytes));
    let (took, moved) = run(format!(
        "dd if={direct} of=/dev/null bs=1M iflag=direct status=none"
    ))?;
    book.fact("direct read, measured", per_second(took));
    book.fact("within the limit", yes_no(within(took, rate)));
    book.fact("read, by the kernel's count", mib(moved.read_bytes));

    // Into the page cache only: the kernel's flusher writes it back later.
    let (took, dirtied) =
        run(format!("dd if=/dev/zero of={buffered} {count} status=none"))?;
    book.fact("buffered write, measured", per_second(took));
    let (took, written_back) = run(format!("sync -f {}", area.display()))?;
    book.fact("its write-back, measured", per_second(took));
    let charged = mib(dirtied.write_bytes + written_back.write_bytes);
    book.fact("charged to the cgroup, by the kernel's count", charged);
    Ok(Some(disk))
}

/// Shows `container $ LINE`, runs it inside, and returns how long it took
/// and how far the cgroup's counters of the device moved meanwhile.
fn timed(
    book: &Narrator,
    container: &Container,
    cgroup: &Cgroup,
    device: DeviceNumber,
    line: &str,
) -> anyhow::Result<(Duration, IoStats)> {
    let argv: Vec<&str> = line.split_whitespace().collect();
    book.inside(&argv);
    let before = cgroup.stats().io_of(device);
    let started = Instant::now();
    let code = container.exec(&argv)?;
    let took = started.elapsed();
    anyhow::ensure!(code == 0, "{line}: exit code {code} inside the container");
    Ok((took, cgroup.stats().io_of(device).since(&before)))
}
// ANCHOR_END: io

/// A 64 MiB file with an ext4 filesystem, attached to a free loop device.
fn make_disk(image: &Path) -> anyhow::Result<LoopDevice> {
    std::fs::File::create(image)?.set_len(64 * MIB)?;
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(image)
        .output()
        .context("this step needs mkfs.ext4 (the e2fsprogs package)")?;
    anyhow::ensure!(
        mkfs.status.success(),
        "mkfs.ext4 {} failed: {}",
        image.display(),
        String::from_utf8_lossy(&mkfs.stderr).trim()
    );
    Ok(LoopDevice::attach(image)?)
}

/// Mounts the disk in the container's own mount namespace: it goes when
/// the container does, and the host never sees it.
fn mount_inside(
    container: &Container,
    device: &Path,
    target: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(target)?;
    let (device, target) = (device.to_path_buf(), target.to_path_buf());
    steps::inside(container, move || {
        // Private first: a shared / would carry the mount to the host.
        mounts::make_tree_private()?;
        nix::mount::mount(
            Some(&device),
            &target,
            Some("ext4"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .with_context(|| {
            format!("mount {} on {}", device.display(), target.display())
        })
    })
}

/// A step whose controller this host (or this cgroup) does not have.
fn skipped(book: &Narrator, controller: &str) {
    let why = "controller is not available to this cgroup";
    book.say(format!("skipped: the {controller} {why}"));
}

/// "ID:controllers:path" without the hierarchy ID, which differs from
/// host to host; a v2 line (no controllers) is marked as such.
fn without_hierarchy_id(line: &str) -> String {
    let line = line.split_once(':').map_or(line, |(_, rest)| rest);
    match line.strip_prefix(':') {
        Some(path) => format!("(v2) {path}"),
        None => line.to_string(),
    }
}

fn human(rate: u64) -> String {
    if rate % MIB == 0 {
        format!("{} MiB", rate / MIB)
    } else {
        format!("{} KiB", rate >> 10)
    }
}

fn per_second(took: Duration) -> String {
    format!("{:.1} MiB/s", DD_MIB as f64 / took.as_secs_f64())
}

/// Not faster than the limit, with a tenth for the kernel's first time
/// slice, in which it lets a little through at once.
fn within(took: Duration, rate: u64) -> bool {
    (DD_MIB * MIB) as f64 / took.as_secs_f64() <= rate as f64 * 1.1
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / MIB)
}

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

/// What each step is about: its title, the kernel interface it uses, the
/// shell command that does the same, and what to look at.
mod narration {
    use container_lab::lab::narrate::Step;

    pub fn detect() -> Step {
        Step::new("find out how this host mounts cgroups")
            .primitive("statfs(\"/sys/fs/cgroup\"): CGROUP2_SUPER_MAGIC means v2 only")
            .shell("stat -fc %T /sys/fs/cgroup /sys/fs/cgroup/unified")
            .look("v2 only on modern distributions; v1 (or a hybrid) on older ones")
    }

    pub fn create() -> Step {
        Step::new("create the container's cgroup and write its limits")
            .primitive("mkdir(2) in the cgroup filesystem, then write(2) to its limit files")
            .shell("mkdir OWN/container-lab/NAME && echo LIMIT > OWN/container-lab/NAME/FILE, for each limit")
            .look("a cgroup is a directory; a limit is a number written to a file in it")
    }

    pub fn start() -> Step {
        Step::new("start the container inside it")
            .primitive(
                "the cloned init writes \"0\" (itself) into cgroup.procs (v1: tasks, with its one thread) before it starts anything",
            )
            .shell("echo $$ > OWN/container-lab/NAME/cgroup.procs && exec unshare … sleep infinity")
            .look("/proc/PID/cgroup of the container's init names the new cgroup")
    }

    pub fn memory(limit: u64) -> Step {
        Step::new(format!(
            "allocate more than the {} MiB limit",
            limit / super::MIB
        ))
        .primitive("page faults charged to the cgroup; past the limit, the kernel's OOM killer")
        .shell("a program that allocates and writes memory, 1 MiB at a time")
        .look("the hog dies of SIGKILL (exit 137), not SIGTERM; the cgroup's own counters say why")
    }

    pub fn cpu(cpus: f64) -> Step {
        Step::new(format!("spin for one second under a quota of {cpus} CPU"))
            .primitive("the CFS bandwidth controller: a quota of CPU time per 100 ms period")
            .shell("timeout 1 sh -c 'while :; do :; done'")
            .look("the busy loop gets about its quota of one CPU; the periods it was throttled are counted")
    }

    pub fn pids(limit: u64) -> Step {
        Step::new(format!(
            "fork without end under a limit of {limit} processes"
        ))
        .primitive("fork(2) fails with EAGAIN once the cgroup holds pids.max processes")
        .shell(":(){ :|:& };:   (never without a limit)")
        .look("the bomb is contained: forks fail inside, the host keeps working")
    }

    pub fn io(rate: u64) -> Step {
        Step::new(format!("read and write a disk limited to {}/s", super::human(rate)))
            .primitive("the io controller's throttle (blk-throttle): bytes per second, per disk")
            .shell("losetup --find disk.img && mount /dev/loopN DISK && echo 'MAJ:MIN LIMIT' > FILE; dd oflag=direct …")
            .look("direct I/O keeps to the limit and is counted; a buffered write is neither, until written back")
    }

    pub fn cleanup() -> Step {
        Step::new("stop the container, remove its cgroup and its disk")
            .primitive(
                "kill(init, SIGTERM), rmdir(2): a cgroup can only go once it is empty; LOOP_CLR_FD",
            )
            .shell(
                "kill PID && rmdir OWN/container-lab/NAME && losetup -d /dev/loopN && rm disk.img",
            )
            .look("nothing the chapter created is left in any hierarchy, nor a loop device")
    }
}
