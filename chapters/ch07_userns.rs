//! Chapter 7: user namespaces.
//!
//! Root inside the container becomes an unprivileged range of IDs on the
//! host. The container's processes are uid 0 with every capability inside,
//! and the host sees them, and every file they make, as uid 100000; what
//! belongs to the host stays out of their reach. The last step shows an
//! unprivileged user building namespaces of its own: the basis of rootless
//! containers.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use container_lab::engine::dirs::{LabDirs, RunDir};
use container_lab::engine::images::busybox;
use container_lab::kernel::namespaces::{self, Namespace};
use container_lab::kernel::userns::{self, IdMap, UserMap};
use container_lab::lab::chapters;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::narrate::Narrator;
use container_lab::lab::steps::{inside, show};
use container_lab::{kernel::mounts, kernel::rootfs, kernel::signals, lab::privilege};
use nix::unistd::{fork, ForkResult, Gid, Uid};

/// User namespaces: root inside, an unprivileged range outside.
#[derive(Debug, Parser)]
#[command(name = "ch07", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
    #[command(flatten)]
    container: ContainerArgs,
    /// Name of this run: its files live in the lab's state directory under it
    #[arg(long, default_value = "ch07", value_parser = cli::parse_name)]
    name: String,
}

const NAMESPACES: [Namespace; 5] = [
    Namespace::User,
    Namespace::Uts,
    Namespace::Pid,
    Namespace::Ipc,
    Namespace::Mount,
];
/// The unprivileged user of the rootless step: "nobody".
const NOBODY: u32 = 65_534;

fn main() -> ExitCode {
    let cli = Cli::parse();
    signals::install_interrupt_handler();
    cli::finish(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let chapter = chapters::chapter("ch07").context("ch07 is missing from the manifest")?;
    privilege::ensure_root(
        "ch07",
        "mapping a range of host IDs needs CAP_SETUID and CAP_SETGID",
    )?;
    busybox::find_static()?;
    let mut book = Narrator::new(chapter, &cli.chapter);
    let dirs = LabDirs::from_env();

    // ANCHOR: map
    let map = userns::container_root_map();
    book.step("clone into a new user namespace, root mapped to an unprivileged range")
        .primitive(format!(
            "clone({}), then write /proc/PID/uid_map and gid_map",
            namespaces::flag_names(&NAMESPACES)
        ))
        .shell(format!(
            "unshare --user --map-users={0}:{1}:{2} --map-groups={0}:{1}:{2} --pid --fork …",
            map.uid.inside, map.uid.outside, map.uid.count
        ))
        .look("the host sees the container's init as uid 100000; the kernel's map says why")
        .begin()?;
    let run_dir = RunDir::create(&dirs, &cli.name)?;
    let root = run_dir.path().join("rootfs");
    let (image, _) = busybox::image(&dirs)?;
    rootfs::copy_tree(&image, &root)?;
    // The container's root owns its files: on the host, that is uid 100000.
    userns::chown_tree(&root, map.uid.outside, map.gid.outside)?;
    // A host file only host root may read, to be shown inside.
    let secret = run_dir.path().join("secret.txt");
    fs::write(&secret, "only host root may read this\n")?;
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let container = Container::start(&ContainerSpec {
        namespaces: NAMESPACES.to_vec(),
        main: vec![
            root.join("bin/sleep").display().to_string(),
            "infinity".into(),
        ],
        env: busybox::env(),
        user_map: Some(map),
        ..Default::default()
    })?;
    let init = container.pid();
    book.fact(
        "uid_map of the init",
        fs::read_to_string(format!("/proc/{init}/uid_map"))?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    );
    book.fact(
        "gid_map of the init",
        fs::read_to_string(format!("/proc/{init}/gid_map"))?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    );
    let status = fs::read_to_string(format!("/proc/{init}/status"))?;
    book.fact(
        "the host sees its uids",
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap_or("")
            .replace('\t', " "),
    );
    // ANCHOR_END: map

    // ANCHOR: pivot
    book.step("pivot_root into its own copy of the image, as root of the user namespace")
        .primitive("mount(MS_BIND) of host device nodes, mount(\"proc\"), pivot_root(2): allowed, the namespaces belong to it")
        .shell("mount --bind /dev/null rootfs/dev/null …; mount -t proc proc rootfs/proc; pivot_root …")
        .look("inside, it is uid 0; mknod(2) and a new sysfs would need the host's privileges, so devices are bind-mounted")
        .begin()?;
    let (new_root, secret_path, hostname) =
        (root.clone(), secret.clone(), cli.container.hostname.clone());
    inside(&container, move || {
        bind_host_devices(&new_root)?;
        let target = new_root.join("secret.txt");
        fs::write(&target, "")?;
        mounts::bind(&secret_path, &target, false)?;
        // proc before the pivot: in a user namespace the kernel only allows a
        // new proc while a full one is still visible in the mount namespace.
        let hardened = nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC;
        mounts::make_tree_private()?;
        mounts::mount_fs("proc", &new_root.join("proc"), hardened, None)?;
        rootfs::pivot_into(&new_root)?;
        Ok(nix::unistd::sethostname(&hostname)?)
    })?;
    show(&book, &container, &["id"])?;
    show(&book, &container, &["cat", "/proc/self/uid_map"])?;
    show(&book, &container, &["grep", "CapEff", "/proc/self/status"])?;
    // ANCHOR_END: pivot

    // ANCHOR: file
    book.step("make a file inside and look at it from the host")
        .primitive("the kernel stores the host-side uid: inside 0 is outside 100000")
        .shell("touch /root/made-inside   (inside); stat -c %u:%g rootfs/root/made-inside   (host)")
        .look("owner 0:0 inside, 100000:100000 on the host")
        .begin()?;
    show(
        &book,
        &container,
        &[
            "sh",
            "-c",
            "touch /root/made-inside && stat -c '%u:%g %n' /root/made-inside",
        ],
    )?;
    let made = fs::metadata(root.join("root/made-inside"))?;
    book.fact("host stat: owner", format!("{}:{}", made.uid(), made.gid()));
    // ANCHOR_END: file

    // ANCHOR: limits
    book.step("what root inside cannot do")
        .primitive("capabilities count only for what the user namespace owns")
        .shell("cat /secret.txt; hostname (in the host's UTS namespace); insmod …")
        .look("a host-root file shows as nobody's and cannot be read; the host's hostname and kernel modules are out of reach")
        .begin()?;
    show(
        &book,
        &container,
        &["stat", "-c", "%U:%G %a %n", "/secret.txt"],
    )?;
    show(&book, &container, &["cat", "/secret.txt"])?;
    book.fact(
        "sethostname, host's UTS ns",
        in_user_namespace_only(&container, || {
            errno_text(nix::unistd::sethostname("changed-by-container"))
        }),
    );
    book.fact("sethostname, its own UTS ns", {
        let code =
            container.run_inside(|| i32::from(nix::unistd::sethostname("its-own").is_err()))?;
        if code == 0 {
            "allowed".to_string()
        } else {
            format!("refused ({code})")
        }
    });
    let module = container.run_inside(|| {
        // finit_module(2) on any file: the capability check comes first.
        let fd = fs::File::open("/dev/null")
            .map(std::os::fd::IntoRawFd::into_raw_fd)
            .unwrap_or(-1);
        let ret = unsafe { libc::syscall(libc::SYS_finit_module, fd, c"".as_ptr(), 0) };
        let errno = if ret == 0 {
            0
        } else {
            nix::errno::Errno::last() as i32
        };
        // EPERM where the kernel has modules, ENOSYS where it was built
        // without: refused either way.
        println!(
            "   {:<28} {}",
            "load a module (finit_module):",
            if errno == 0 { "allowed" } else { "refused" }
        );
        0
    })?;
    anyhow::ensure!(module == 0, "the module check failed to run");
    show(&book, &container, &["mknod", "/tmp/disk", "b", "8", "0"])?;
    // ANCHOR_END: limits

    // ANCHOR: rootless
    book.step("rootless: an unprivileged user makes namespaces of its own")
        .primitive("setuid(65534), unshare(CLONE_NEWUSER), write setgroups, gid_map, uid_map for itself, then its own mount, UTS and PID namespaces")
        .shell("setpriv --reuid=65534 --regid=65534 --clear-groups unshare --user --map-root-user --mount --uts --pid --fork sh")
        .look("gid_map is refused until setgroups is denied; uid_map can be written once; then an overlay root, /proc and pivot_root, all without host privileges")
        .begin()?;
    in_child(|| rootless_demo(&image))?;
    // ANCHOR_END: rootless

    book.user_command_step(&container, &cli.container.command)?;

    // ANCHOR: cleanup
    book.step("stop the container and clean up")
        .primitive("kill(init, SIGTERM); the user namespace and everything it owns go with its last process")
        .shell("kill PID; rm -rf RUN_DIR")
        .look("the run directory, with its files owned by 100000, is removed")
        .begin()?;
    container.stop(Duration::from_secs(10))?;
    let path = run_dir.path().to_path_buf();
    drop(run_dir);
    book.fact(
        "run directory removed",
        container_lab::lab::narrate::yes_no(!path.exists()),
    );
    // ANCHOR_END: cleanup

    book.done("root inside a user namespace is root over what that namespace owns, and nobody else. chapter 8 hardens what is left.");
    Ok(())
}

/// Bind-mounts the host's harmless device nodes into the new root: in a
/// user namespace mknod(2) is refused, but a bind mount of an existing node
/// is allowed (rootless Podman and Docker do the same).
fn bind_host_devices(root: &Path) -> anyhow::Result<()> {
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = root.join("dev").join(name);
        fs::write(&target, "")?;
        mounts::bind(&Path::new("/dev").join(name), &target, false)?;
    }
    Ok(())
}

/// Runs `work` in a child that joined only the container's user namespace
/// (not its UTS namespace) and became its root.
fn in_user_namespace_only(container: &Container, work: impl FnOnce() -> String) -> String {
    container_lab::kernel::process::flush_stdio();
    let (read, write) = nix::unistd::pipe().expect("pipe");
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(read);
            let text = match namespaces::enter(container.pid(), &[Namespace::User])
                .map_err(|e| e.to_string())
                .and_then(|()| userns::become_root().map_err(|e| e.to_string()))
            {
                Ok(()) => work(),
                Err(err) => format!("could not join: {err}"),
            };
            let _ = nix::unistd::write(&write, text.as_bytes());
            container_lab::kernel::init::exit_now(0)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(write);
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut fs::File::from(read), &mut text);
            let _ = nix::sys::wait::waitpid(child, None);
            text
        }
        Err(errno) => format!("fork failed: {errno}"),
    }
}

/// Runs inside a forked child of the chapter: drop to nobody, then build a
/// user namespace without any help from root, narrating each write.
fn rootless_demo(image: &Path) -> i32 {
    let say = |label: &str, result: Result<(), String>| {
        println!(
            "   {:<34} {}",
            format!("{label}:"),
            result.map_or_else(|e| format!("refused ({e})"), |()| "ok".to_string())
        );
    };
    let nobody = (Uid::from_raw(NOBODY), Gid::from_raw(NOBODY));
    if nix::unistd::setgroups(&[])
        .and(nix::unistd::setresgid(nobody.1, nobody.1, nobody.1))
        .and(nix::unistd::setresuid(nobody.0, nobody.0, nobody.0))
        .is_err()
    {
        println!("   could not become nobody");
        return 1;
    }
    // Changing uid made us non-dumpable, which makes /proc/self/* root's:
    // be dumpable again, so we may write our own maps.
    let _ = nix::sys::prctl::set_dumpable(true);
    println!("   {:<34} {}", "running as uid:", nix::unistd::getuid());
    if let Err(errno) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
        println!("   unshare(CLONE_NEWUSER) refused: {} (this host restricts unprivileged user namespaces)", errno.desc().to_lowercase());
        return 0;
    }
    let single = |id: u32| IdMap {
        inside: 0,
        outside: id,
        count: 1,
    };
    let map = UserMap {
        uid: single(NOBODY),
        gid: single(NOBODY),
    };
    say(
        "gid_map before setgroups=deny",
        userns::try_write("/proc/self/gid_map", &map.gid.line()),
    );
    say(
        "setgroups = deny",
        userns::try_write("/proc/self/setgroups", "deny"),
    );
    say(
        "gid_map \"0 65534 1\"",
        userns::try_write("/proc/self/gid_map", &map.gid.line()),
    );
    say(
        "uid_map \"0 65534 1\"",
        userns::try_write("/proc/self/uid_map", &map.uid.line()),
    );
    say(
        "uid_map written a second time",
        userns::try_write("/proc/self/uid_map", &map.uid.line()),
    );
    println!("   {:<34} {}", "uid now, inside:", nix::unistd::getuid());
    let flags = nix::sched::CloneFlags::CLONE_NEWNS
        | nix::sched::CloneFlags::CLONE_NEWUTS
        | nix::sched::CloneFlags::CLONE_NEWPID;
    say(
        "unshare(mount, UTS, PID)",
        nix::sched::unshare(flags).map_err(|e| e.desc().to_lowercase()),
    );
    // The new PID namespace holds our children: fork its PID 1.
    match in_child(|| rootless_container(image)) {
        Ok(code) => code,
        Err(err) => {
            println!("   fork failed: {err}");
            1
        }
    }
}

/// PID 1 of the rootless container: an overlay of the busybox image with a
/// tmpfs upper layer, /proc, pivot_root, then a shell that looks around.
/// Every step is allowed because every namespace involved is its own.
fn rootless_container(image: &Path) -> i32 {
    let say = |label: &str, result: Result<(), String>| {
        println!(
            "   {:<34} {}",
            format!("{label}:"),
            result.map_or_else(|e| format!("refused ({e})"), |()| "ok".to_string())
        );
    };
    let errno = |e: container_lab::kernel::mounts::MountError| e.errno.desc().to_lowercase();
    say(
        "sethostname(\"rootless\")",
        nix::unistd::sethostname("rootless").map_err(|e| e.desc().to_lowercase()),
    );
    let scratch = Path::new("/mnt");
    say(
        "mount tmpfs on /mnt",
        mounts::mount_fs("tmpfs", scratch, nix::mount::MsFlags::empty(), None).map_err(errno),
    );
    let merged = scratch.join("merged");
    let overlay = (|| -> Result<(), String> {
        for dir in ["upper", "work", "merged"] {
            fs::create_dir(scratch.join(dir)).map_err(|e| e.kind().to_string())?;
        }
        let options = format!(
            "lowerdir={},upperdir=/mnt/upper,workdir=/mnt/work",
            image.display()
        );
        mounts::mount_fs(
            "overlay",
            &merged,
            nix::mount::MsFlags::empty(),
            Some(&options),
        )
        .map_err(errno)
    })();
    let overlay_ok = overlay.is_ok();
    say("mount overlay of the image (5.11+)", overlay);
    if !overlay_ok {
        return 0;
    }
    say(
        "mount proc for its PID namespace",
        mounts::mount_fs(
            "proc",
            &merged.join("proc"),
            nix::mount::MsFlags::empty(),
            None,
        )
        .map_err(errno),
    );
    say(
        "pivot_root into the overlay",
        rootfs::pivot_into(&merged).map_err(|e| e.to_string()),
    );
    println!("   rootless container $ id; hostname; cat /proc/self/uid_map; ls /");
    let script = "{ id; hostname; cat /proc/self/uid_map; ls -C /; } 2>&1 | sed 's/^/     /'";
    let argv: Vec<std::ffi::CString> = ["/bin/sh", "-c", script]
        .iter()
        .map(|a| std::ffi::CString::new(*a).unwrap_or_default())
        .collect();
    let env: Vec<std::ffi::CString> = busybox::env()
        .iter()
        .map(|(k, v)| std::ffi::CString::new(format!("{k}={v}")).unwrap_or_default())
        .collect();
    let failure = container_lab::kernel::init::execute(&argv, &env);
    eprintln!("error: {failure}");
    container_lab::kernel::init::exit_now(failure.exit_code())
}

fn in_child(work: impl FnOnce() -> i32) -> anyhow::Result<i32> {
    container_lab::kernel::process::flush_stdio();
    match unsafe { fork() }? {
        ForkResult::Child => container_lab::kernel::init::exit_now(work()),
        ForkResult::Parent { child } => Ok(container_lab::kernel::process::status_code(
            nix::sys::wait::waitpid(child, None)?,
        )),
    }
}

fn errno_text(result: nix::Result<()>) -> String {
    match result {
        Ok(()) => "allowed".to_string(),
        Err(errno) => format!("refused ({})", errno.desc().to_lowercase()),
    }
}
