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

use clap::Parser;
use container_lab::engine::dirs::LabDirs;
use container_lab::kernel::cgroups::{devices, Cgroup};
use container_lab::kernel::hardening::{self, Profile};
use container_lab::kernel::mounts;
use container_lab::kernel::namespaces::Namespace;
use container_lab::lab;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::Container;
use container_lab::lab::narrate::{yes_no, Narrator};
use container_lab::lab::steps::{inside, show, BusyboxContainer};

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
    cli::finish(run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut book = lab::begin!(&cli.chapter)?;
    let dirs = LabDirs::from_env();
    // The cgroup of step 5, made before the container so that it goes after.
    let cgroup = Cgroup::create_freezable(&cli.name)?;

    book.next(narration::start())?;
    // ANCHOR: start
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
    let ours = capabilities(&std::fs::read_to_string("/proc/self/status")?);
    let (_, status) = container.exec_output(&["cat", "/proc/self/status"])?;
    let same = capabilities(&status) == ours;
    book.fact("CapEff the same as host root's", yes_no(same));
    show(&book, &container, &["sh", "-c", MOUNT_TMPFS])?;
    // ANCHOR_END: start

    book.next(narration::caps())?;
    // ANCHOR: caps
    container.harden(profile(&[], &[])?);
    show_capabilities(&book, &container)?;
    show(&book, &container, &["mount", "-t", "tmpfs", "none", "/tmp"])?;
    // ANCHOR_END: caps

    book.next(narration::cap_add())?;
    // ANCHOR: cap_add
    container.harden(profile(&["SYS_ADMIN"], &[])?);
    show(&book, &container, &["sh", "-c", MOUNT_TMPFS])?;
    container.harden(profile(&[], &[])?);
    // ANCHOR_END: cap_add

    book.next(narration::seccomp())?;
    // ANCHOR: setuid
    inside(&container, install_setuid_busybox)?;
    for no_new_privs in [false, true] {
        container.harden(default_profile(no_new_privs)?);
        let how = match no_new_privs {
            false => "off (Docker's default)",
            true => "on (--security-opt no-new-privileges)",
        };
        book.fact(&format!("uid {USER}, no_new_privs"), how);
        for argv in SETUID_PROBES {
            show_as(&book, &container, USER, argv)?;
        }
    }
    container.harden(profile(&[], &[])?);
    // ANCHOR_END: setuid
    // ANCHOR: seccomp
    let status = ["grep", "-E", "NoNewPrivs|Seccomp", "/proc/self/status"];
    show(&book, &container, &status)?;
    book.say("without the filter (the lab's own helper):");
    container.run_inside(|| try_syscalls(&book, &PROBES[..3]))?;
    book.say("with the container's profile:");
    container.run_hardened(|| try_syscalls(&book, &PROBES))?;
    show(&book, &container, &["unshare", "-U", "true"])?;
    // ANCHOR_END: seccomp

    book.next(narration::devices())?;
    // ANCHOR: devices
    show(&book, &container, &["sh", "-c", OPEN_KMSG])?;
    for line in cgroup.allow_devices(devices::DOCKER_DEFAULT)? {
        book.say(line);
    }
    container.join_cgroups(cgroup.procs_files());
    show(&book, &container, &["sh", "-c", OPEN_KMSG])?;
    show(&book, &container, &["sh", "-c", WRITE_NULL])?;
    // ANCHOR_END: devices

    book.next(narration::leaked_fd())?;
    // ANCHOR: leaked_fd
    let secret = run_dir.path().join("host-only");
    std::fs::create_dir_all(&secret)?;
    std::fs::write(secret.join("secret"), "a file of the host's\n")?;
    let leaked = leak_directory(&secret, LEAKED_FD)?;
    book.fact("left open on the host", format!("descriptor {LEAKED_FD}"));
    inside(&container, || read_through_leak(&book, LEAKED_FD))?;
    let through = format!("cat /proc/self/fd/{LEAKED_FD}/secret");
    show(&book, &container, &["sh", "-c", "ls /proc/self/fd"])?;
    book.say("(3 is ls's own handle on the directory it lists)");
    show(&book, &container, &["sh", "-c", &through])?;
    drop(leaked);
    // ANCHOR_END: leaked_fd

    book.next(narration::recursive_ro())?;
    // ANCHOR: recursive_ro
    inside(&container, bind_tree_two_ways)?;
    show(&book, &container, &["sh", "-c", TOUCH_BOTH])?;
    // ANCHOR_END: recursive_ro

    book.next(narration::read_only())?;
    // ANCHOR: read_only
    inside(&container, || Ok(hardening::read_only_root()?))?;
    show(&book, &container, &["touch", "/etc/changed"])?;
    // ANCHOR_END: read_only

    book.next(narration::masked())?;
    // ANCHOR: masked
    inside(&container, || Ok(hardening::mask_paths()?))?;
    let masked = ["wc", "-c", "/proc/keys", "/proc/timer_list"];
    show(&book, &container, &masked)?;
    show(&book, &container, &["ls", "-A", "/proc/acpi"])?;
    show(&book, &container, &["sh", "-c", WRITE_PROC_SYS])?;
    // ANCHOR_END: masked

    book.next(narration::least())?;
    // ANCHOR: least
    container.harden(profile(&["NET_BIND_SERVICE"], &["ALL"])?);
    show_capabilities(&book, &container)?;
    show(&book, &container, &["sh", "-c", SERVE_ON_80])?;
    show(&book, &container, &["chown", "nobody", "/dev/null"])?;
    // ANCHOR_END: least

    let yours = Profile::docker_default(&cli.cap_add, &cli.cap_drop);
    container.harden(Some(yours.map_err(anyhow::Error::msg)?));
    book.user_command_step(&container, &cli.container.command)?;

    book.next(narration::cleanup())?;
    // ANCHOR: cleanup
    container.stop(Duration::from_secs(10))?;
    let cgroup_dirs = cgroup.paths();
    drop(cgroup);
    let gone = cgroup_dirs.iter().all(|d| !d.exists());
    book.fact("cgroup removed", yes_no(gone));
    let path = run_dir.path().to_path_buf();
    drop(run_dir);
    book.fact("run directory removed", yes_no(!path.exists()));
    // ANCHOR_END: cleanup

    book.done(
        "the same container, with fourteen capabilities, a seccomp allow-list, \
         no new privileges, a device allow-list, a read-only root and a masked /proc. \
         next: mini-docker puts every chapter together.",
    );
    Ok(())
}

/// Docker's default profile, with capabilities added and dropped as
/// `--cap-add` and `--cap-drop` do.
fn profile(add: &[&str], drop: &[&str]) -> anyhow::Result<Option<Profile>> {
    let names =
        |caps: &[&str]| caps.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let mut profile = Profile::docker_default(&names(add), &names(drop))
        .map_err(anyhow::Error::msg)?;
    // The chapter shows no_new_privs too (`--security-opt no-new-privileges`).
    profile.no_new_privs = true;
    Ok(Some(profile))
}

/// Docker's default profile as it is, with no_new_privs on or off.
fn default_profile(no_new_privs: bool) -> anyhow::Result<Option<Profile>> {
    let mut docker =
        Profile::docker_default(&[], &[]).map_err(anyhow::Error::msg)?;
    docker.no_new_privs = no_new_privs;
    Ok(Some(docker))
}

/// The `CapEff:` mask of a `/proc/PID/status`.
fn capabilities(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap_or("0")
        .trim()
        .to_string()
}

/// Shows the effective capabilities of a program run inside, decoded.
fn show_capabilities(
    book: &Narrator,
    container: &Container,
) -> anyhow::Result<()> {
    let (_, status) = container.exec_output(&["cat", "/proc/self/status"])?;
    let eff = capabilities(&status);
    let names = hardening::decode_capabilities(&eff);
    book.fact("CapEff", format!("{eff} ({} capabilities)", names.len()));
    if names.len() < 20 {
        book.say(format!("  {}", names.join(" ")));
    }
    Ok(())
}

/// What the container runs in the steps above.
const MOUNT_TMPFS: &str =
    "mount -t tmpfs none /tmp && echo mounted && umount /tmp";
const WRITE_NULL: &str = "echo hi > /dev/null && echo null works";
const WRITE_PROC_SYS: &str = "echo other > /proc/sys/kernel/hostname";
const SERVE_ON_80: &str = "httpd -p 80 -h / && echo httpd listens on port 80";

/// The user the setuid programs run as (`docker run --user 1000`).
const USER: u32 = 1000;

/// Run as USER: the setuid copy of busybox reports its IDs, then reads
/// the kernel's record of them; then awk, an applet busybox.conf does not
/// name (it runs without privileges in any case), reads its own.
const SETUID_PROBES: [&[&str]; 3] = [
    &["/opt/setuid/busybox", "id"],
    &[
        "/opt/setuid/busybox",
        "grep",
        "-E",
        STATUS_LINES,
        "/proc/self/status",
    ],
    &["awk", "/^(Uid|CapEff|NoNewPrivs):/", "/proc/self/status"],
];
const STATUS_LINES: &str = "^(Uid|CapEff|NoNewPrivs):";

// ANCHOR: setuid_busybox
/// Debian's busybox gives up a setuid grant before most applets run; a
/// line here makes it keep euid 0 for the applet instead
/// (`setresuid(-1, 0, 0)`, which fails unless execve made it root).
const BUSYBOX_CONF: &str = "[SUID]\nid = sxx 0.0\ngrep = sxx 0.0\n";

/// Inside, as root: a setuid-root copy of busybox on a tmpfs mounted
/// without nosuid (the run directory is under /run, usually nosuid, where
/// the kernel ignores setuid bits whatever no_new_privs says).
fn install_setuid_busybox() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::path::Path::new("/opt/setuid");
    std::fs::create_dir_all(dir)?;
    let flags = nix::mount::MsFlags::MS_NODEV;
    mounts::mount_fs("tmpfs", dir, flags, Some("mode=0755"))?;
    let copy = dir.join("busybox");
    std::fs::copy("/bin/busybox", &copy)?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755))?;
    std::fs::write("/etc/busybox.conf", BUSYBOX_CONF)?;
    std::fs::set_permissions(
        "/etc/busybox.conf",
        std::fs::Permissions::from_mode(0o644),
    )?;
    Ok(())
}
// ANCHOR_END: setuid_busybox

/// `show`, with the program started as `uid` (and gid `uid`, no other
/// groups), as a runtime starts `docker run --user`: the IDs change after
/// the profile, just before execve.
fn show_as(
    book: &Narrator,
    container: &Container,
    uid: u32,
    argv: &[&str],
) -> anyhow::Result<i32> {
    use nix::unistd::{Gid, Uid};
    use std::io::Read;
    use std::os::fd::AsRawFd;
    book.inside(argv);
    let args = argv
        .iter()
        .map(|a| std::ffi::CString::new(*a))
        .collect::<Result<Vec<_>, _>>()?;
    let (read_end, write_end) = nix::unistd::pipe()?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::fs::File::from(read_end).read_to_string(&mut text);
        text
    });
    let code = container.run_hardened(move || {
        let _ = nix::unistd::dup2(write_end.as_raw_fd(), 1);
        let _ = nix::unistd::dup2(write_end.as_raw_fd(), 2);
        drop(write_end);
        let (u, g) = (Uid::from_raw(uid), Gid::from_raw(uid));
        let changed = nix::unistd::setgroups(&[])
            .and_then(|_| nix::unistd::setresgid(g, g, g))
            .and_then(|_| nix::unistd::setresuid(u, u, u));
        if let Err(err) = changed {
            // Into the pipe: the narrator shows it as the program's output.
            let message = format!("error: changing to uid {uid}: {err}\n");
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                message.as_bytes(),
            );
            return 125;
        }
        let _ = nix::unistd::execvp(&args[0], &args);
        127
    });
    let text = reader.join().unwrap_or_default();
    book.output(&text);
    let code = code?;
    if code != 0 {
        book.say(format!("(exit code {code})"));
    }
    Ok(code)
}

/// The chapter's stand-in for `exec 77< DIR` in a shell: descriptor 77.
const LEAKED_FD: i32 = 77;

/// Opens `dir` without close-on-exec at descriptor `at`, as a careless
/// caller (or runc before 1.1.12) would leave one open.
fn leak_directory(
    dir: &std::path::Path,
    at: i32,
) -> anyhow::Result<std::os::fd::OwnedFd> {
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
fn read_through_leak(book: &Narrator, fd: i32) -> anyhow::Result<()> {
    let path = format!("/proc/self/fd/{fd}/secret");
    let text = std::fs::read_to_string(&path)?;
    book.say(format!("lab helper read {path}: {}", text.trim()));
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
fn try_syscalls(book: &Narrator, probes: &[Probe]) -> i32 {
    for (name, call) in probes {
        let answer = match call() {
            ret if ret >= 0 => "allowed".to_string(),
            _ => nix::errno::Errno::last().to_string(),
        };
        book.fact(name, answer);
    }
    0
}

/// What the narrator says before each step: its title, the primitive it
/// applies, the shell command that does the same, and what to look at.
mod narration {
    use container_lab::lab::narrate::Step;

    pub fn start() -> Step {
        Step::new("chapter 3's container: root with every capability")
            .primitive("clone + pivot_root + /proc /dev /sys, as in chapter 3; no profile yet")
            .shell("unshare --uts --pid --ipc --mount --net --fork … ; grep Cap /proc/self/status")
            .look("CapEff: every bit set; mount works inside")
    }

    pub fn caps() -> Step {
        Step::new("keep only Docker's default capabilities")
            .primitive("prctl(PR_CAPBSET_DROP) for each other capability, capset(2) for the rest")
            .shell("capsh --drop=cap_sys_admin,… -- -c '…'   (docker run keeps 14)")
            .look("CapEff lists 14 capabilities; mount now fails: it needs CAP_SYS_ADMIN")
    }

    pub fn cap_add() -> Step {
        Step::new("--cap-add SYS_ADMIN")
            .primitive(
                "the same, keeping CAP_SYS_ADMIN too (and letting mount through the seccomp filter)",
            )
            .shell("docker run --cap-add SYS_ADMIN …")
            .look("mount works again: one capability makes the difference")
    }

    pub fn seccomp() -> Step {
        Step::new("no_new_privs and a seccomp allow-list")
            .primitive(
                "prctl(PR_SET_NO_NEW_PRIVS); seccomp(SECCOMP_SET_MODE_FILTER)",
            )
            .shell(
                "docker run --user 1000 [--security-opt no-new-privileges] …   \
                 (Docker's default seccomp profile)",
            )
            .look(
                "a setuid program run as uid 1000 gets euid 0 only while no_new_privs is off; \
                 keyctl, unshare(CLONE_NEWUSER): EPERM; clone3: ENOSYS",
            )
    }

    pub fn devices() -> Step {
        Step::new("a device allow-list")
            .primitive("the devices cgroup (v1) or a cgroup BPF program (v2)")
            .shell("echo a > devices.deny; echo 'c 1:3 rwm' > devices.allow …")
            .look("mknod still works, but its node can no longer be opened: EPERM")
    }

    pub fn leaked_fd() -> Step {
        Step::new("a descriptor the caller left open")
            .primitive("close_range(3, ~0, CLOSE_RANGE_CLOEXEC) just before every execve")
            .shell("exec 77< DIR; docker run …   (DIR: a directory of the host)")
            .look("the lab's helper, which never execs, reads the host's file; the program cannot")
    }

    pub fn recursive_ro() -> Step {
        Step::new("read-only all the way down")
            .primitive("mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY) on a recursive bind")
            .shell("mount --rbind TREE RO && mount -o remount,bind,ro RO   (the old way)")
            .look("the old way leaves the submount writable; the recursive one does not")
    }

    pub fn read_only() -> Step {
        Step::new("a read-only root filesystem")
            .primitive("mount(MS_REMOUNT | MS_BIND | MS_RDONLY) on /")
            .shell("docker run --read-only …   (mount -o remount,bind,ro /)")
            .look("writes anywhere in the image fail with EROFS; /dev, /proc mounts are separate")
    }

    pub fn masked() -> Step {
        Step::new("masked and read-only /proc paths")
            .primitive(
                "mount(MS_BIND) of /dev/null or an empty tmpfs over masked paths; \
                 MS_RDONLY remounts of /proc/sys and friends",
            )
            .shell("mount --bind /dev/null /proc/kcore; mount -o remount,bind,ro /proc/sys …")
            .look(
                "/proc/keys and /proc/timer_list read as empty, /proc/acpi is an empty directory; \
                 /proc/sys refuses writes",
            )
    }

    pub fn least() -> Step {
        Step::new("the least: --cap-drop ALL --cap-add NET_BIND_SERVICE")
            .primitive("a bounding set with a single capability")
            .shell("docker run --cap-drop ALL --cap-add NET_BIND_SERVICE …")
            .look(
                "the web server can still listen on port 80; \
                 chown, which needs CAP_CHOWN, cannot run any more",
            )
    }

    pub fn cleanup() -> Step {
        Step::new("stop the container and clean up")
            .primitive("kill(init, SIGTERM), then rmdir(2) of its cgroup")
            .shell("kill PID; rmdir CGROUP; rm -rf RUN_DIR")
            .look("nothing of the container is left; a v2 device program goes with its cgroup")
    }
}
