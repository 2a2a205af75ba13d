//! Chapter 8: hardening.
//!
//! Chapter 3's container is still root with every capability. This chapter
//! takes away what Docker takes away: all but fourteen capabilities, new
//! privileges through execve, every system call not on Docker's list, the
//! device nodes not on Docker's list, write access to the root filesystem,
//! and the parts of /proc that describe or steer the whole machine. Each is
//! shown before and after.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use container_lab::engine::dirs::LabDirs;
use container_lab::engine::images::busybox;
use container_lab::kernel::cgroups::{self, devices, Cgroup, CgroupError};
use container_lab::kernel::hardening::{self, Profile};
use container_lab::kernel::namespaces::Namespace;
use container_lab::lab::chapters;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::Container;
use container_lab::lab::narrate::Narrator;
use container_lab::lab::steps::{inside, show, BusyboxContainer};
use container_lab::{kernel::mounts, kernel::signals, lab::privilege};

/// Hardening: capabilities, no_new_privs, seccomp, devices, read-only and masked paths.
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
    busybox::find_static()?;
    // The cgroup of step 5, made before the container so that it goes after.
    let cgroup = match Cgroup::create_freezable(&cli.name) {
        Err(CgroupError::NotDelegated(_)) => match cgroups::reexec_in_delegated_scope()? {},
        other => other?,
    };
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
        container_lab::lab::narrate::yes_no(theirs == ours),
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
    book.step("no_new_privs and a seccomp allow-list")
        .primitive("prctl(PR_SET_NO_NEW_PRIVS); seccomp(SECCOMP_SET_MODE_FILTER)")
        .shell("docker run …   (Docker's default seccomp profile)")
        .look("keyctl, unshare(CLONE_NEWUSER): EPERM; clone3: ENOSYS")
        .begin()?;
    show(
        &book,
        &container,
        &["grep", "-E", "NoNewPrivs|Seccomp", "/proc/self/status"],
    )?;
    book.say("without the filter (the lab's own helper):");
    container.run_inside(|| try_syscalls(&PROBES[..3]))?;
    book.say("with the container's profile:");
    container.run_hardened(|| try_syscalls(&PROBES))?;
    show(&book, &container, &["unshare", "-U", "true"])?;
    // ANCHOR_END: seccomp

    // ANCHOR: devices
    book.step("a device allow-list")
        .primitive("the devices cgroup (v1) or a cgroup BPF program (v2)")
        .shell("echo a > devices.deny; echo 'c 1:3 rwm' > devices.allow …")
        .look("mknod still works, but its node can no longer be opened: EPERM")
        .begin()?;
    show(&book, &container, &["sh", "-c", OPEN_KMSG])?;
    for line in cgroup.allow_devices(devices::DOCKER_DEFAULT)? {
        book.say(line);
    }
    container.join_cgroups(cgroup.procs_files());
    show(&book, &container, &["sh", "-c", OPEN_KMSG])?;
    show(
        &book,
        &container,
        &["sh", "-c", "echo hi > /dev/null && echo null works"],
    )?;
    // ANCHOR_END: devices

    // ANCHOR: leaked_fd
    book.step("a descriptor the caller left open")
        .primitive("close_range(3, ~0, CLOSE_RANGE_CLOEXEC) just before every execve")
        .shell("exec 77< DIR; docker run …   (DIR: a directory of the host)")
        .look("the lab's helper, which never execs, reads the host's file; the program cannot")
        .begin()?;
    let secret = run_dir.path().join("host-only");
    std::fs::create_dir_all(&secret)?;
    std::fs::write(secret.join("secret"), "a file of the host's\n")?;
    let leaked = leak_directory(&secret, LEAKED_FD)?;
    book.fact("left open on the host", format!("descriptor {LEAKED_FD}"));
    inside(&container, || read_through_leak(LEAKED_FD))?;
    let through = format!("cat /proc/self/fd/{LEAKED_FD}/secret");
    show(&book, &container, &["sh", "-c", "ls /proc/self/fd"])?;
    book.say("(3 is ls's own handle on the directory it lists)");
    show(&book, &container, &["sh", "-c", &through])?;
    drop(leaked);
    // ANCHOR_END: leaked_fd

    // ANCHOR: recursive_ro
    book.step("read-only all the way down")
        .primitive("mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY) on a recursive bind")
        .shell("mount --rbind TREE RO && mount -o remount,bind,ro RO   (the old way)")
        .look("the old way leaves the submount writable; the recursive one does not")
        .begin()?;
    inside(&container, bind_tree_two_ways)?;
    show(&book, &container, &["sh", "-c", TOUCH_BOTH])?;
    // ANCHOR_END: recursive_ro

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
        .primitive("kill(init, SIGTERM), then rmdir(2) of its cgroup")
        .shell("kill PID; rmdir CGROUP; rm -rf RUN_DIR")
        .look("nothing of the container is left; a v2 device program goes with its cgroup")
        .begin()?;
    container.stop(Duration::from_secs(10))?;
    let cgroup_dirs = cgroup.paths();
    drop(cgroup);
    book.fact(
        "cgroup removed",
        container_lab::lab::narrate::yes_no(cgroup_dirs.iter().all(|d| !d.exists())),
    );
    let path = run_dir.path().to_path_buf();
    drop(run_dir);
    book.fact(
        "run directory removed",
        container_lab::lab::narrate::yes_no(!path.exists()),
    );

    book.done("the same container, with fourteen capabilities, a seccomp allow-list, no new privileges, a device allow-list, a read-only root and a masked /proc. next: mini-docker puts every chapter together.");
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

/// The chapter's stand-in for `exec 77< DIR` in a shell: descriptor 77.
const LEAKED_FD: i32 = 77;

/// Opens `dir` without close-on-exec at descriptor `at`, as a careless
/// caller (or runc before 1.1.12) would leave one open.
fn leak_directory(dir: &std::path::Path, at: i32) -> anyhow::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    anyhow::ensure!(
        nix::fcntl::fcntl(at, nix::fcntl::FcntlArg::F_GETFD).is_err(),
        "descriptor {at} is already in use"
    );
    let opened = std::fs::File::open(dir)?;
    // dup2 clears close-on-exec on the copy: exactly the leak to show.
    nix::unistd::dup2(opened.as_raw_fd(), at)?;
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(at) })
}

/// Runs inside: reads the host's file through the leaked descriptor.
fn read_through_leak(fd: i32) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(format!("/proc/self/fd/{fd}/secret"))?;
    println!(
        "   lab helper read /proc/self/fd/{fd}/secret: {}",
        text.trim()
    );
    Ok(())
}

/// Inside the container: a tree with a tmpfs in it, bound read-only the
/// old way (the top mount only) and the recursive way.
fn bind_tree_two_ways() -> anyhow::Result<()> {
    use std::path::Path;
    for dir in ["/srv/tree/sub", "/srv/top-only", "/srv/all"] {
        std::fs::create_dir_all(dir)?;
    }
    let none = nix::mount::MsFlags::empty();
    mounts::mount_fs("tmpfs", Path::new("/srv/tree/sub"), none, None)?;
    mounts::bind(Path::new("/srv/tree"), Path::new("/srv/top-only"), true)?;
    mounts::remount_read_only(Path::new("/srv/top-only"))?;
    mounts::bind_read_only(Path::new("/srv/tree"), Path::new("/srv/all"))?;
    Ok(())
}

const TOUCH_BOTH: &str = concat!(
    "touch /srv/top-only/sub/x && echo top-only: the submount is writable; ",
    "touch /srv/all/sub/x || echo all: read-only at every level"
);

/// Makes a node for the host's kernel log (char 1:11) and opens it for
/// writing, as a process would that meant to forge the host's dmesg.
const OPEN_KMSG: &str = concat!(
    "rm -f /tmp/kmsg; mknod /tmp/kmsg c 1 11 && ",
    "exec 3>/tmp/kmsg && echo opened the host log"
);

/// A system call to try: its name, and the call.
type Probe = (&'static str, fn() -> libc::c_long);

/// System calls to try, with arguments that do no harm when they run.
const PROBES: [Probe; 7] = [
    // KEYCTL_GET_KEYRING_ID of the session keyring.
    ("keyctl", || unsafe {
        libc::syscall(libc::SYS_keyctl, 0, -3, 0)
    }),
    // Only this short-lived helper moves into the new namespace.
    ("unshare(CLONE_NEWUSER)", || unsafe {
        libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)
    }),
    // Arguments of size 0: invalid, once the kernel gets to read them.
    ("clone3", || unsafe {
        libc::syscall(libc::SYS_clone3, 0, 0)
    }),
    ("bpf", || unsafe { libc::syscall(libc::SYS_bpf, 0, 0, 0) }),
    ("perf_event_open", || unsafe {
        libc::syscall(libc::SYS_perf_event_open, 0, 0, 0, 0, 0)
    }),
    ("add_key", || unsafe {
        libc::syscall(libc::SYS_add_key, 0, 0, 0, 0, 0)
    }),
    ("io_uring_setup", || unsafe {
        libc::syscall(libc::SYS_io_uring_setup, 0, 0)
    }),
];

/// Makes each call and prints the kernel's answer: "allowed", or the
/// error it returned.
fn try_syscalls(probes: &[Probe]) -> i32 {
    for (name, call) in probes {
        let answer = match call() {
            ret if ret >= 0 => "allowed".to_string(),
            _ => nix::errno::Errno::last().to_string(),
        };
        println!("   {:<28} {answer}", format!("{name}:"));
    }
    0
}
