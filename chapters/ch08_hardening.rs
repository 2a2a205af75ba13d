//! Chapter 8: hardening.
//!
//! Chapter 3's container is still root with every capability. This chapter
//! takes away what Docker takes away: all but fourteen capabilities, new
//! privileges through execve, a list of system calls, write access to the
//! root filesystem, and the parts of /proc that describe or steer the whole
//! machine. Each is shown before and after.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lab::chapters;
use lab::cli::{self, ChapterArgs, ContainerArgs};
use lab::container::Container;
use lab::hardening::{self, Profile};
use lab::namespaces::Namespace;
use lab::narrate::Narrator;
use lab::state::LabDirs;
use lab::steps::{inside, show, BusyboxContainer};
use lab::{privilege, rootfs, signals};

/// Hardening: capabilities, no_new_privs, seccomp, read-only and masked paths.
#[derive(Debug, Parser)]
#[command(name = "ch08", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
    #[command(flatten)]
    container: ContainerArgs,
    /// Capabilities to add for your command (as docker run --cap-add)
    #[arg(long = "cap-add", value_name = "CAP", value_parser = parse_cap)]
    cap_add: Vec<String>,
    /// Capabilities to drop for your command (as docker run --cap-drop)
    #[arg(long = "cap-drop", value_name = "CAP", value_parser = parse_cap)]
    cap_drop: Vec<String>,
    /// Name of this run: its files live in the lab's state directory under it
    #[arg(long, default_value = "ch08", value_parser = cli::parse_name)]
    name: String,
}

const NAMESPACES: [Namespace; 5] = [
    Namespace::Uts,
    Namespace::Pid,
    Namespace::Ipc,
    Namespace::Mount,
    Namespace::Net,
];

fn parse_cap(value: &str) -> Result<String, String> {
    hardening::canonical(value).map(|_| value.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    signals::install_interrupt_handler();
    cli::finish(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let chapter = chapters::chapter("ch08").context("ch08 is missing from the manifest")?;
    privilege::ensure_root("ch08", "namespaces and mounts need CAP_SYS_ADMIN")?;
    rootfs::find_static_busybox()?;
    let mut book = Narrator::new(chapter, &cli.chapter);
    let dirs = LabDirs::from_env();

    // ANCHOR: start
    book.step("chapter 3's container: root with every capability")
        .primitive("clone + pivot_root + /proc /dev /sys, as in chapter 3; no profile yet")
        .shell("unshare --uts --pid --ipc --mount --net --fork … ; grep Cap /proc/self/status")
        .look("CapEff: every bit set; mount works inside")
        .begin()?;
    let BusyboxContainer {
        mut container,
        run_dir,
        ..
    } = BusyboxContainer::start(
        &dirs,
        &cli.name,
        &NAMESPACES,
        &cli.container.hostname,
        |_| Ok(()),
    )?;
    let ours = own_effective_capabilities();
    let (_, status) = container.exec_output(&["cat", "/proc/self/status"])?;
    let theirs = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap_or("")
        .trim()
        .to_string();
    book.fact(
        "CapEff the same as host root's",
        lab::narrate::yes_no(theirs == ours),
    );
    show(
        &book,
        &container,
        &[
            "sh",
            "-c",
            "mount -t tmpfs none /tmp && echo mounted && umount /tmp",
        ],
    )?;
    // ANCHOR_END: start

    // ANCHOR: caps
    book.step("keep only Docker's default capabilities")
        .primitive("prctl(PR_CAPBSET_DROP) for each other capability, capset(2) for the rest")
        .shell("capsh --drop=cap_sys_admin,… -- -c '…'   (docker run keeps 14)")
        .look("CapEff lists 14 capabilities; mount now fails: it needs CAP_SYS_ADMIN")
        .begin()?;
    container.harden(Some(
        Profile::docker_default(&[], &[]).map_err(anyhow::Error::msg)?,
    ));
    show_capabilities(&book, &container)?;
    show(&book, &container, &["mount", "-t", "tmpfs", "none", "/tmp"])?;
    // ANCHOR_END: caps

    // ANCHOR: cap_add
    book.step("--cap-add SYS_ADMIN")
        .primitive(
            "the same, keeping CAP_SYS_ADMIN too (and letting mount through the seccomp filter)",
        )
        .shell("docker run --cap-add SYS_ADMIN …")
        .look("mount works again: one capability makes the difference")
        .begin()?;
    container.harden(Some(
        Profile::docker_default(&["SYS_ADMIN".into()], &[]).map_err(anyhow::Error::msg)?,
    ));
    show(
        &book,
        &container,
        &[
            "sh",
            "-c",
            "mount -t tmpfs none /tmp && echo mounted && umount /tmp",
        ],
    )?;
    container.harden(Some(
        Profile::docker_default(&[], &[]).map_err(anyhow::Error::msg)?,
    ));
    // ANCHOR_END: cap_add

    // ANCHOR: seccomp
    book.step("no_new_privs and a seccomp filter")
        .primitive("prctl(PR_SET_NO_NEW_PRIVS), then seccomp(SECCOMP_SET_MODE_FILTER) with a BPF program")
        .shell("docker run --security-opt no-new-privileges … (the seccomp profile is on by default)")
        .look("the kernel reports both for the process; keyctl, bpf, perf_event_open and friends now fail with EPERM")
        .begin()?;
    show(
        &book,
        &container,
        &["grep", "-E", "NoNewPrivs|Seccomp:", "/proc/self/status"],
    )?;
    book.say("without the filter (the lab's own helper):");
    container.run_inside(|| i32::from(try_syscalls(&[("keyctl", libc::SYS_keyctl)])))?;
    book.say("with the container's profile:");
    container.run_hardened(|| {
        let probes = [
            ("keyctl", libc::SYS_keyctl),
            ("bpf", libc::SYS_bpf),
            ("perf_event_open", libc::SYS_perf_event_open),
            ("add_key", libc::SYS_add_key),
        ];
        i32::from(try_syscalls(&probes))
    })?;
    // ANCHOR_END: seccomp

    // ANCHOR: read_only
    book.step("a read-only root filesystem")
        .primitive("mount(MS_REMOUNT | MS_BIND | MS_RDONLY) on /")
        .shell("docker run --read-only …   (mount -o remount,bind,ro /)")
        .look("writes anywhere in the image fail with EROFS; /dev, /proc mounts are separate")
        .begin()?;
    inside(&container, || Ok(hardening::read_only_root()?))?;
    show(&book, &container, &["touch", "/etc/changed"])?;
    // ANCHOR_END: read_only

    // ANCHOR: masked
    book.step("masked and read-only /proc paths")
        .primitive("mount(MS_BIND) of /dev/null or an empty tmpfs over masked paths; MS_RDONLY remounts of /proc/sys and friends")
        .shell("mount --bind /dev/null /proc/kcore; mount -o remount,bind,ro /proc/sys …")
        .look("/proc/keys and /proc/timer_list read as empty, /proc/acpi is an empty directory; /proc/sys refuses writes")
        .begin()?;
    inside(&container, || Ok(hardening::mask_paths()?))?;
    show(
        &book,
        &container,
        &["wc", "-c", "/proc/keys", "/proc/timer_list"],
    )?;
    show(&book, &container, &["ls", "-A", "/proc/acpi"])?;
    show(
        &book,
        &container,
        &["sh", "-c", "echo other > /proc/sys/kernel/hostname"],
    )?;
    // ANCHOR_END: masked

    // ANCHOR: least
    book.step("the least: --cap-drop ALL --cap-add NET_BIND_SERVICE")
        .primitive("a bounding set with a single capability")
        .shell("docker run --cap-drop ALL --cap-add NET_BIND_SERVICE …")
        .look("the web server can still listen on port 80; chown, which needs CAP_CHOWN, cannot run any more")
        .begin()?;
    container.harden(Some(
        Profile::docker_default(&["NET_BIND_SERVICE".into()], &["ALL".into()])
            .map_err(anyhow::Error::msg)?,
    ));
    show_capabilities(&book, &container)?;
    show(
        &book,
        &container,
        &[
            "sh",
            "-c",
            "httpd -p 80 -h / && echo httpd listens on port 80",
        ],
    )?;
    show(&book, &container, &["chown", "nobody", "/dev/null"])?;
    // ANCHOR_END: least

    container.harden(Some(
        Profile::docker_default(&cli.cap_add, &cli.cap_drop).map_err(anyhow::Error::msg)?,
    ));
    book.user_command_step(&container, &cli.container.command)?;

    book.step("stop the container and clean up")
        .primitive("kill(init, SIGTERM)")
        .shell("kill PID; rm -rf RUN_DIR")
        .look("nothing of the container is left")
        .begin()?;
    container.stop(Duration::from_secs(10))?;
    let path = run_dir.path().to_path_buf();
    drop(run_dir);
    book.fact(
        "run directory removed",
        lab::narrate::yes_no(!path.exists()),
    );

    book.done("the same container, with fourteen capabilities, a seccomp filter, no new privileges, a read-only root and a masked /proc. next: mini-docker puts every chapter together.");
    Ok(())
}

/// The chapter's own effective capabilities (those of the host's root).
fn own_effective_capabilities() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

/// Shows the effective capabilities of a program run inside, decoded.
fn show_capabilities(book: &Narrator, container: &Container) -> anyhow::Result<()> {
    let (_, status) = container.exec_output(&["cat", "/proc/self/status"])?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap_or("0")
        .trim()
        .to_string();
    let names = hardening::decode_capabilities(&eff);
    book.fact("CapEff", format!("{eff} ({} capabilities)", names.len()));
    if names.len() < 20 {
        book.say(format!("  {}", names.join(" ")));
    }
    Ok(())
}

/// Calls each system call with harmless arguments and reports how the
/// kernel answered; returns true when any was refused with EPERM.
fn try_syscalls(probes: &[(&str, libc::c_long)]) -> bool {
    let mut refused = false;
    for (name, number) in probes {
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) and
        // zeroed arguments for the others: valid or EINVAL, never harmful.
        let ret = unsafe {
            if *number == libc::SYS_keyctl {
                libc::syscall(*number, 0, -3, 0)
            } else {
                libc::syscall(*number, 0, 0, 0, 0, 0)
            }
        };
        let errno = nix::errno::Errno::last();
        let answer = if ret >= 0 || errno != nix::errno::Errno::EPERM {
            "not refused by the filter".to_string()
        } else {
            "refused (operation not permitted)".to_string()
        };
        refused |= ret < 0 && errno == nix::errno::Errno::EPERM;
        println!("   {:<28} {answer}", format!("{name}:"));
    }
    refused
}
