//! Chapter 3: a root filesystem of its own.
//!
//! A busybox tree becomes the container's `/`: first with chroot, which a
//! root process walks straight out of, then with pivot_root inside a private
//! mount namespace, after which there is no path back to the host at all.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use container_lab::engine::dirs::{LabDirs, RunDir};
use container_lab::engine::images::busybox;
use container_lab::kernel::namespaces::{self, Namespace};
use container_lab::kernel::rootfs::{self, Escape};
use container_lab::lab::chapters;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::narrate::{yes_no, Narrator};
use container_lab::lab::steps::{inside, set_hostname, show};
use container_lab::{kernel::mounts, kernel::signals, lab::privilege};
use nix::unistd::{fork, ForkResult};

/// A root filesystem of its own: chroot, its escape, and pivot_root.
#[derive(Debug, Parser)]
#[command(name = "ch03", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
    #[command(flatten)]
    container: ContainerArgs,
    /// Name of this run: its files live in the lab's state directory under it
    #[arg(long, default_value = "ch03", value_parser = cli::parse_name)]
    name: String,
}

const NAMESPACES: [Namespace; 4] = [
    Namespace::Uts,
    Namespace::Pid,
    Namespace::Ipc,
    Namespace::Mount,
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    signals::install_interrupt_handler();
    cli::finish(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let chapter = chapters::chapter("ch03").context("ch03 is missing from the manifest")?;
    privilege::ensure_root(
        "ch03",
        "chroot, mount and pivot_root need CAP_SYS_CHROOT and CAP_SYS_ADMIN",
    )?;
    busybox::find_static()?;
    let mut book = Narrator::new(chapter, &cli.chapter);
    let dirs = LabDirs::from_env();
    let host_mounts = mounts::mountinfo_text()?;

    // ANCHOR: image
    book.step("get a root filesystem")
        .primitive("plain files: a static busybox and one symlink per command it provides")
        .shell(
            "mkdir -p rootfs/bin && cp /bin/busybox rootfs/bin/ && busybox --install -s rootfs/bin",
        )
        .look("a directory tree is all an \"image\" is; this run gets its own copy")
        .begin()?;
    let (image, built) = busybox::image(&dirs)?;
    book.fact(
        if built {
            "built the image at"
        } else {
            "reusing the image at"
        },
        image.display(),
    );
    let run_dir = RunDir::create(&dirs, &cli.name)?;
    let root = run_dir.path().join("rootfs");
    rootfs::copy_tree(&image, &root)?;
    book.fact("this run's copy", root.display());
    book.fact("its top level", rootfs::list_dir(&root)?.join(" "));
    // A file on the host, outside the new root, that an escape would reach.
    let host_file = run_dir.path().join("outside.txt");
    std::fs::write(
        &host_file,
        "a file on the host, outside the container's root\n",
    )?;
    // ANCHOR_END: image

    // ANCHOR: chroot
    book.step("chroot into it")
        .primitive("chroot(2) changes what one process calls /")
        .shell(format!("chroot {} /bin/ls /", root.display()))
        .look("/ is now the busybox tree, and /proc is an empty directory")
        .begin()?;
    in_chroot(&root, || {
        println!(
            "   / holds:     {}",
            rootfs::list_dir(Path::new("/"))
                .unwrap_or_default()
                .join(" ")
        );
        println!(
            "   /proc holds: {} entries",
            rootfs::list_dir(Path::new("/proc"))
                .map(|l| l.len())
                .unwrap_or(0)
        );
        0
    })?;
    // ANCHOR_END: chroot

    // ANCHOR: chroot_escape
    book.step("walk out of the chroot")
        .primitive("chroot(\"/escape-hatch\") without chdir, then chdir(\"..\") until the real /, then chroot(\".\")")
        .shell("the classic escape any root process can do: chroot is not a security boundary")
        .look(format!("the jailed process reads {}", host_file.display()))
        .begin()?;
    let host_file_inside = host_file.clone();
    in_chroot(&root, move || {
        report_escape(rootfs::try_escape(&host_file_inside));
        0
    })?;
    // ANCHOR_END: chroot_escape

    // ANCHOR: namespaces
    book.step("clone a child into new namespaces, as in chapter 2")
        .primitive(format!("clone({})", namespaces::flag_names(&NAMESPACES)))
        .shell(format!("{} sleep infinity", namespaces::unshare_command(&NAMESPACES)))
        .look("the mount namespace is the one that matters here: it starts as a copy of the host's mounts")
        .begin()?;
    let container = Container::start(&ContainerSpec {
        namespaces: NAMESPACES.to_vec(),
        // The image's own (static) sleep: it keeps running after pivot_root
        // takes the host's files, and its libraries, out of reach.
        main: vec![
            root.join("bin/sleep").display().to_string(),
            "infinity".into(),
        ],
        env: busybox::env(),
        ..Default::default()
    })?;
    book.fact("pid on the host", container.pid());
    set_hostname(&container, &cli.container.hostname)?;
    book.fact("hostname inside", &cli.container.hostname);
    // ANCHOR_END: namespaces

    // ANCHOR: pivot
    book.step("pivot_root into the new root")
        .primitive("mount(MS_REC|MS_PRIVATE), mount(MS_BIND), pivot_root(2), umount2(MNT_DETACH)")
        .shell(format!(
            "mount --make-rprivate / && mount --bind {root} {root} && cd {root} && pivot_root . .old-root && umount -l /.old-root",
            root = root.display()
        ))
        .look("the old root is detached: the container's mount table holds only its own tree")
        .begin()?;
    let new_root = root.clone();
    inside(&container, move || {
        rootfs::pivot_into(&new_root).map_err(anyhow::Error::from)
    })?;
    show(&book, &container, &["ls", "-C", "/"])?;
    // ANCHOR_END: pivot

    // ANCHOR: kernel_fs
    book.step("mount /proc, a minimal /dev and a read-only /sys")
        .primitive("mount(\"proc\"), mount(\"tmpfs\") + mknod(2) for each device, mount(\"devpts\", \"newinstance\"), mount(\"sysfs\", MS_RDONLY)")
        .shell("mount -t proc proc /proc; mount -t tmpfs tmpfs /dev; mknod -m 666 /dev/null c 1 3 …; mount -t sysfs -o ro sysfs /sys")
        .look("the container's whole mount table, read from inside")
        .begin()?;
    inside(&container, || {
        rootfs::mount_kernel_filesystems().map_err(anyhow::Error::from)
    })?;
    show(&book, &container, &["ls", "-C", "/dev"])?;
    book.say("mounts inside the container:");
    inside(&container, || {
        for mount in mounts::mount_table()? {
            let mode = if mount.read_only() { "ro" } else { "rw" };
            let what = if mount.mount_point == Path::new("/") {
                "(the copied tree)".to_string()
            } else {
                mount.fs_type.clone()
            };
            println!(
                "     {:<12} {:<18} {}",
                mount.mount_point.display(),
                what,
                mode
            );
        }
        Ok(())
    })?;
    // ANCHOR_END: kernel_fs

    // ANCHOR: pivot_escape
    book.step("try the same escape again")
        .primitive("chroot(\"/escape-hatch\"), chdir(\"..\") × 64, chroot(\".\")")
        .shell("the same escape, now inside the pivoted root")
        .look("the walk ends at the container's own /: the host's tree is no longer mounted anywhere it can reach")
        .begin()?;
    let host_file_inside = host_file.clone();
    container.run_inside(move || {
        report_escape(rootfs::try_escape(&host_file_inside));
        0
    })?;
    // ANCHOR_END: pivot_escape

    // ANCHOR: host_view
    book.step("look from the host")
        .primitive("/proc/self/mountinfo of the host's mount namespace")
        .shell(format!("findmnt | grep {}", run_dir.path().display()))
        .look("none of the container's mounts appear on the host")
        .begin()?;
    book.fact(
        "host mount table unchanged",
        yes_no(mounts::mountinfo_text()? == host_mounts),
    );
    book.fact(
        "host mounts under the run dir",
        if mounts::has_mounts_under(run_dir.path())? {
            "some"
        } else {
            "none"
        },
    );
    // ANCHOR_END: host_view

    book.user_command_step(&container, &cli.container.command)?;

    // ANCHOR: cleanup
    book.step("stop the container and clean up")
        .primitive("kill(init, SIGTERM); the mount namespace dies with its last process")
        .shell(format!("kill PID; rm -rf {}", run_dir.path().display()))
        .look("every mount went away with the namespace; the run directory is removed")
        .begin()?;
    let code = container.stop(Duration::from_secs(10))?;
    book.fact("init exited with", code);
    let run_path: PathBuf = run_dir.path().to_path_buf();
    drop(run_dir);
    book.fact("run directory removed", yes_no(!run_path.exists()));
    // ANCHOR_END: cleanup

    book.done("chroot moved one process's idea of /; pivot_root moved the whole mount namespace and cut the host away. chapter 4 stops copying the image and layers it instead.");
    Ok(())
}

/// Forks a child that chroots into `root` and runs `work` there.
// ANCHOR: in_chroot
fn in_chroot(root: &Path, work: impl FnOnce() -> i32) -> anyhow::Result<i32> {
    container_lab::kernel::process::flush_stdio();
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = match rootfs::enter_chroot(root) {
                Ok(()) => work(),
                Err(err) => {
                    eprintln!("error: {err}");
                    1
                }
            };
            container_lab::kernel::init::exit_now(code)
        }
        ForkResult::Parent { child } => Ok(container_lab::kernel::process::status_code(
            nix::sys::wait::waitpid(child, None)?,
        )),
    }
}
// ANCHOR_END: in_chroot

fn report_escape(outcome: Escape) {
    match outcome {
        Escape::Escaped(text) => println!("   escaped: read the host's file: \"{text}\""),
        Escape::Contained(why) => println!("   contained: the host's file is not there ({why})"),
    }
}
