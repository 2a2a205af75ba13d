//! Chapter 7: user namespaces.
//!
//! Root inside the container becomes an unprivileged range of IDs on the
//! host. The container's processes are uid 0 with every capability inside,
//! and the host sees them, and every file they make, as uid 100000; what
//! belongs to the host stays out of their reach. The last step shows an
//! unprivileged user building namespaces of its own: the basis of rootless
//! containers.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use container_lab::engine::dirs::{LabDirs, RunDir};
use container_lab::engine::images::busybox;
use container_lab::kernel::mounts::{self, MountError};
use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::overlay::{self, Layer, OverlayDirs, OverlayError};
use container_lab::kernel::{hostname, rootfs, userns};
use container_lab::lab;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::narrate::yes_no;
use container_lab::lab::privilege::as_user;
use container_lab::lab::steps::{inside, show};
use nix::mount::MsFlags;

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
/// The rootless container's: `unshare --user --mount --uts --pid`.
const ROOTLESS: [Namespace; 4] = [
    Namespace::User,
    Namespace::Mount,
    Namespace::Uts,
    Namespace::Pid,
];
/// The unprivileged user of the rootless step: "nobody".
const NOBODY: u32 = 65_534;

fn main() -> ExitCode {
    cli::finish(run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut book = lab::begin!(&cli.chapter)?;
    let dirs = LabDirs::from_env();
    let map = userns::container_root_map();

    book.next(narration::map(&map))?;
    // ANCHOR: map
    let run_dir = RunDir::create(&dirs, &cli.name)?;
    let root = run_dir.path().join("rootfs");
    let (image, _) = busybox::image(&dirs)?;
    rootfs::copy_tree(&image, &root)?;
    // The container's root owns its files: on the host, that is uid 100000.
    userns::chown_tree(&root, map.uid.outside, map.gid.outside)?;
    // A host file only host root may read, to be shown inside.
    let secret = run_dir.path().join("secret.txt");
    fs::write(&secret, "only host root may read this\n")?;
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600))?;
    let container = Container::start(&ContainerSpec {
        namespaces: NAMESPACES.to_vec(),
        main: sleep_in(&root),
        env: busybox::env(),
        user_map: Some(map),
        ..Default::default()
    })?;
    let init = container.pid();
    let proc = |file: &str| fs::read_to_string(format!("/proc/{init}/{file}"));
    book.fact("uid_map of the init", words(&proc("uid_map")?));
    book.fact("gid_map of the init", words(&proc("gid_map")?));
    let status = proc("status")?;
    let uids = status.lines().find(|l| l.starts_with("Uid:"));
    book.fact("the host sees its uids", words(uids.unwrap_or("")));
    // ANCHOR_END: map

    book.next(narration::pivot())?;
    // ANCHOR: pivot
    inside(&container, || {
        bind_host_devices(&root)?;
        let target = root.join("secret.txt");
        fs::write(&target, "")?;
        mounts::bind(&secret, &target, false)?;
        // proc before the pivot: in a user namespace the kernel allows a
        // new proc only while a full one is visible in the mount namespace.
        mounts::make_tree_private()?;
        mount_proc(&root.join("proc"))?;
        rootfs::pivot_into(&root)?;
        Ok(hostname::set(&cli.container.hostname)?)
    })?;
    show(&book, &container, &["id"])?;
    show(&book, &container, &["cat", "/proc/self/uid_map"])?;
    show(&book, &container, &["grep", "CapEff", "/proc/self/status"])?;
    // ANCHOR_END: pivot

    book.next(narration::file())?;
    // ANCHOR: file
    show(&book, &container, &["sh", "-c", TOUCH_AND_STAT])?;
    let made = fs::metadata(root.join("root/made-inside"))?;
    let owner = format!("{}:{}", made.uid(), made.gid());
    book.fact("host stat: owner", owner);
    // ANCHOR_END: file

    book.next(narration::limits())?;
    // ANCHOR: limits
    show(
        &book,
        &container,
        &["stat", "-c", "%U:%G %a %n", "/secret.txt"],
    )?;
    show(&book, &container, &["cat", "/secret.txt"])?;
    // Its user namespace only: the UTS namespace joined is the host's.
    container.run_in(&[Namespace::User], || {
        let set = hostname::set("changed-by-container");
        book.outcome("sethostname, host's UTS ns", set);
        0
    })?;
    inside(&container, || {
        let set = hostname::set("its-own");
        book.outcome("sethostname, its own UTS ns", set);
        // EPERM, or ENOSYS from a kernel without modules: refused anyway.
        let loaded = load_module().is_ok();
        let verdict = if loaded { "allowed" } else { "refused" };
        book.fact("load a module (finit_module)", verdict);
        Ok(())
    })?;
    show(&book, &container, &["mknod", "/tmp/disk", "b", "8", "0"])?;
    // ANCHOR_END: limits

    book.next(narration::rootless())?;
    // ANCHOR: rootless
    // Cloned with nobody's uid: the new user namespace, and the namespaces
    // it owns, are nobody's. Its init waits for its maps.
    let spec = ContainerSpec {
        namespaces: ROOTLESS.to_vec(),
        main: sleep_in(&image),
        env: busybox::env(),
        ..Default::default()
    };
    let started = as_user(NOBODY, NOBODY, || Container::start(&spec))?;
    let clone = format!("clone as uid {NOBODY}");
    let Some(rootless) = book.outcome(&clone, started) else {
        book.say("(this host restricts unprivileged user namespaces)");
        return finish(book, cli, container, run_dir);
    };
    let owner = userns::owner_of(rootless.pid())?;
    book.fact("owner of its user namespace", owner);
    // Its maps, written by nobody too, in the order the kernel insists on:
    // setgroups denied before gid_map, and each map once.
    let maps = |file: &str| format!("/proc/{}/{file}", rootless.pid());
    let one = format!("0 {NOBODY} 1");
    as_user(NOBODY, NOBODY, || {
        let write = |file: &str, text: &str| fs::write(maps(file), text);
        book.outcome("gid_map (setgroups allowed)", write("gid_map", &one));
        book.outcome("setgroups = deny", write("setgroups", "deny"));
        book.outcome(&format!("gid_map {one:?}"), write("gid_map", &one));
        book.outcome(&format!("uid_map {one:?}"), write("uid_map", &one));
        book.outcome("uid_map a second time", write("uid_map", &one));
    })?;
    // The lab's helper joins them, and may do there only what the
    // namespaces' owner may: build a container's root without the host.
    let refused = rootless.run_inside(|| {
        let mnt = Path::new("/mnt");
        let merged = mnt.join("merged");
        let built = || {
            let named = hostname::set("rootless");
            book.outcome("sethostname(\"rootless\")", named)?;
            book.outcome("mount tmpfs on /mnt", tmpfs(mnt))?;
            let overlay = overlay_of(&image, mnt);
            book.outcome("mount overlay (Linux 5.11+)", overlay)?;
            let proc = mount_proc(&merged.join("proc"));
            book.outcome("mount proc for its PID ns", proc)?;
            let pivoted = rootfs::pivot_into(&merged);
            book.outcome("pivot_root into the overlay", pivoted)
        };
        i32::from(built().is_none())
    })?;
    if refused == 0 {
        show(&book, &rootless, &["sh", "-c", LOOK_AROUND])?;
    }
    rootless.stop(Duration::from_secs(10))?;
    // ANCHOR_END: rootless

    finish(book, cli, container, run_dir)
}

/// The chapter's last steps: your command, then stopping and cleaning up.
fn finish(
    mut book: lab::narrate::Narrator,
    cli: &Cli,
    container: Container,
    run_dir: RunDir,
) -> anyhow::Result<()> {
    book.user_command_step(&container, &cli.container.command)?;

    book.next(narration::cleanup())?;
    // ANCHOR: cleanup
    container.stop(Duration::from_secs(10))?;
    let path = run_dir.path().to_path_buf();
    drop(run_dir);
    book.fact("run directory removed", yes_no(!path.exists()));
    // ANCHOR_END: cleanup

    book.done(
        "root inside a user namespace is root over what that namespace owns, \
         and nobody else. chapter 8 hardens what is left.",
    );
    Ok(())
}

/// What the file step runs inside.
const TOUCH_AND_STAT: &str =
    "touch /root/made-inside && stat -c '%u:%g %n' /root/made-inside";
/// What the rootless container's shell looks at.
const LOOK_AROUND: &str = "id; hostname; cat /proc/self/uid_map; ls -C /";

/// The image's static sleep, as a container's main program: it keeps
/// running after pivot_root takes the host's files away.
fn sleep_in(root: &Path) -> Vec<String> {
    let sleep = root.join("bin/sleep").display().to_string();
    vec![sleep, "infinity".into()]
}

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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

// ANCHOR: rootless_mounts
/// `mount -t proc -o nosuid,nodev,noexec proc AT`
fn mount_proc(at: &Path) -> Result<(), MountError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mounts::mount_fs("proc", at, flags, None)
}

/// `mount -t tmpfs tmpfs AT`
fn tmpfs(at: &Path) -> Result<(), MountError> {
    mounts::mount_fs("tmpfs", at, MsFlags::empty(), None)
}

/// The image as the only lower layer, with `upper`, `work` and `merged`
/// in `dir` (a tmpfs of the rootless container's own).
fn overlay_of(image: &Path, dir: &Path) -> Result<(), OverlayError> {
    let layer = Layer {
        name: "busybox".into(),
        path: image.to_path_buf(),
    };
    overlay::mount_overlay(&[layer], &OverlayDirs::create(dir)?)
}
// ANCHOR_END: rootless_mounts

/// finit_module(2) on any file: the kernel checks CAP_SYS_MODULE in the
/// initial user namespace before it looks at the file.
fn load_module() -> nix::Result<()> {
    let null =
        fs::File::open("/dev/null").map_err(|_| nix::errno::Errno::ENOENT)?;
    // Safety: a file descriptor and an empty, NUL-terminated string.
    let ret = unsafe {
        libc::syscall(libc::SYS_finit_module, null.as_raw_fd(), c"".as_ptr(), 0)
    };
    nix::errno::Errno::result(ret).map(drop)
}

/// What the narrator says before each step: its title, the primitive it
/// applies, the shell command that does the same, and what to look at.
mod narration {
    use super::NAMESPACES;
    use container_lab::kernel::namespaces::flag_names;
    use container_lab::kernel::userns::UserMap;
    use container_lab::lab::narrate::Step;

    pub fn map(map: &UserMap) -> Step {
        let (inside, outside, count) =
            (map.uid.inside, map.uid.outside, map.uid.count);
        Step::new("clone into a new user namespace, root mapped to an unprivileged range")
            .primitive(format!(
                "clone({}), then write /proc/PID/uid_map and gid_map",
                flag_names(&NAMESPACES)
            ))
            .shell(format!(
                "unshare --user --map-users={inside}:{outside}:{count} \
                 --map-groups={inside}:{outside}:{count} --pid --fork …"
            ))
            .look("the host sees the container's init as uid 100000; the kernel's map says why")
    }

    pub fn pivot() -> Step {
        Step::new("pivot_root into its own copy of the image, as root of the user namespace")
            .primitive(
                "mount(MS_BIND) of host device nodes, mount(\"proc\"), pivot_root(2): \
                 allowed, the namespaces belong to it",
            )
            .shell(
                "mount --bind /dev/null rootfs/dev/null …; \
                 mount -t proc proc rootfs/proc; pivot_root …",
            )
            .look(
                "inside, it is uid 0; mknod(2) and a new sysfs would need \
                 the host's privileges, so devices are bind-mounted",
            )
    }

    pub fn file() -> Step {
        Step::new("make a file inside and look at it from the host")
            .primitive("the kernel stores the host-side uid: inside 0 is outside 100000")
            .shell(
                "touch /root/made-inside   (inside); \
                 stat -c %u:%g rootfs/root/made-inside   (host)",
            )
            .look("owner 0:0 inside, 100000:100000 on the host")
    }

    pub fn limits() -> Step {
        Step::new("what root inside cannot do")
            .primitive("capabilities count only for what the user namespace owns")
            .shell("cat /secret.txt; hostname (in the host's UTS namespace); insmod …")
            .look(
                "a host-root file shows as nobody's and cannot be read; \
                 the host's hostname and kernel modules are out of reach",
            )
    }

    pub fn rootless() -> Step {
        Step::new("rootless: an unprivileged user makes namespaces of its own")
            .primitive(
                "clone(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID) as uid 65534, \
                 which then writes setgroups, gid_map and uid_map of the new namespace",
            )
            .shell(
                "setpriv --reuid=65534 --regid=65534 --clear-groups \
                 unshare --user --map-root-user --mount --uts --pid --fork sh",
            )
            .look(
                "gid_map is refused until setgroups is denied; uid_map can be written once; \
                 then an overlay root, /proc and pivot_root, all without host privileges",
            )
    }

    pub fn cleanup() -> Step {
        Step::new("stop the container and clean up")
            .primitive(
                "kill(init, SIGTERM); the user namespace and everything it owns \
                 go with its last process",
            )
            .shell("kill PID; rm -rf RUN_DIR")
            .look("the run directory, with its files owned by 100000, is removed")
    }
}
