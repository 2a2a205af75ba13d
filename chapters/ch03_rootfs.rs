//! Chapter 3: a root filesystem of its own.
//!
//! A busybox tree becomes the container's `/`: first with chroot, which a
//! root process walks straight out of, then with pivot_root inside a private
//! mount namespace, after which there is no path back to the host at all.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use container_lab::engine::dirs::{LabDirs, RunDir};
use container_lab::engine::images::busybox;
use container_lab::kernel::mounts;
use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::rootfs::{self, Escape};
use container_lab::lab;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::narrate::{yes_no, Narrator};
use container_lab::lab::steps::{in_child, inside, set_hostname, show};

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
    cli::finish(run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut book = lab::begin!(&cli.chapter)?;
    let dirs = LabDirs::from_env();
    let host_mounts = mounts::mountinfo_text()?;

    book.next(narration::image())?;
    // ANCHOR: image
    let (image, built) = busybox::image(&dirs)?;
    let verb = if built { "built" } else { "reusing" };
    book.fact(&format!("{verb} the image at"), image.display());
    let run_dir = RunDir::create(&dirs, &cli.name)?;
    let root = run_dir.path().join("rootfs");
    rootfs::copy_tree(&image, &root)?;
    book.fact("this run's copy", root.display());
    book.fact("its top level", rootfs::list_dir(&root)?.join(" "));
    // A file on the host, outside the new root, that an escape would reach.
    let host_file = run_dir.path().join("outside.txt");
    let text = "a file on the host, outside the container's root\n";
    std::fs::write(&host_file, text)?;
    // ANCHOR_END: image

    book.next(narration::chroot(&root))?;
    // ANCHOR: chroot
    // Only a child of the chapter changes its root: the chapter needs its own.
    in_child(|| {
        rootfs::enter_chroot(&root)?;
        let top = rootfs::list_dir(Path::new("/"))?;
        book.say(format!("/ holds:     {}", top.join(" ")));
        let proc = rootfs::list_dir(Path::new("/proc"))?;
        book.say(format!("/proc holds: {} entries", proc.len()));
        Ok(())
    })?;
    // ANCHOR_END: chroot

    book.next(narration::chroot_escape(&host_file))?;
    // ANCHOR: chroot_escape
    in_child(|| {
        rootfs::enter_chroot(&root)?;
        report(&book, rootfs::try_escape(&host_file));
        Ok(())
    })?;
    // ANCHOR_END: chroot_escape

    book.next(narration::namespaces())?;
    // ANCHOR: namespaces
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

    book.next(narration::pivot(&root))?;
    // ANCHOR: pivot
    inside(&container, || Ok(rootfs::pivot_into(&root)?))?;
    show(&book, &container, &["ls", "-C", "/"])?;
    // ANCHOR_END: pivot

    book.next(narration::kernel_fs())?;
    // ANCHOR: kernel_fs
    inside(&container, || Ok(rootfs::mount_kernel_filesystems()?))?;
    show(&book, &container, &["ls", "-C", "/dev"])?;
    book.say("mounts inside the container:");
    inside(&container, || {
        for mount in mounts::mount_table()? {
            let mode = if mount.read_only() { "ro" } else { "rw" };
            let what = if mount.mount_point == Path::new("/") {
                "(the copied tree)"
            } else {
                &mount.fs_type
            };
            let at = mount.mount_point.display();
            book.output(&format!("{at:<12} {what:<18} {mode}"));
        }
        Ok(())
    })?;
    // ANCHOR_END: kernel_fs

    book.next(narration::pivot_escape())?;
    // ANCHOR: pivot_escape
    inside(&container, || {
        report(&book, rootfs::try_escape(&host_file));
        Ok(())
    })?;
    // ANCHOR_END: pivot_escape

    book.next(narration::host_view(run_dir.path()))?;
    // ANCHOR: host_view
    let same = mounts::mountinfo_text()? == host_mounts;
    book.fact("host mount table unchanged", yes_no(same));
    let some = mounts::has_mounts_under(run_dir.path())?;
    let under = if some { "some" } else { "none" };
    book.fact("host mounts under the run dir", under);
    // ANCHOR_END: host_view

    book.user_command_step(&container, &cli.container.command)?;

    book.next(narration::cleanup(run_dir.path()))?;
    // ANCHOR: cleanup
    let code = container.stop(Duration::from_secs(10))?;
    book.fact("init exited with", code);
    let run_path = run_dir.path().to_path_buf();
    drop(run_dir);
    book.fact("run directory removed", yes_no(!run_path.exists()));
    // ANCHOR_END: cleanup

    book.done(
        "chroot moved one process's idea of /; pivot_root moved the whole \
         mount namespace and cut the host away. chapter 4 stops copying the \
         image and layers it instead.",
    );
    Ok(())
}

/// What an escape found.
fn report(book: &Narrator, outcome: Escape) {
    match outcome {
        Escape::Escaped(text) => {
            book.say(format!("escaped: read the host's file: \"{text}\""))
        }
        Escape::Contained(why) => {
            book.say(format!("contained: the host's file is not there ({why})"))
        }
    }
}

/// What the narrator says before each step: its title, the primitive it
/// applies, the shell command that does the same, and what to look at.
mod narration {
    use std::path::Path;

    use super::NAMESPACES;
    use container_lab::kernel::namespaces::{flag_names, unshare_command};
    use container_lab::lab::narrate::Step;

    pub fn image() -> Step {
        Step::new("get a root filesystem")
            .primitive("plain files: a static busybox and one symlink per command it provides")
            .shell(
                "mkdir -p rootfs/bin && cp /bin/busybox rootfs/bin/ \
                 && busybox --install -s rootfs/bin",
            )
            .look("a directory tree is all an \"image\" is; this run gets its own copy")
    }

    pub fn chroot(root: &Path) -> Step {
        Step::new("chroot into it")
            .primitive("chroot(2) changes what one process calls /")
            .shell(format!("chroot {} /bin/ls /", root.display()))
            .look("/ is now the busybox tree, and /proc is an empty directory")
    }

    pub fn chroot_escape(host_file: &Path) -> Step {
        Step::new("walk out of the chroot")
            .primitive(
                "chroot(\"/escape-hatch\") without chdir, then chdir(\"..\") \
                 until the real /, then chroot(\".\")",
            )
            .shell("the classic escape any root process can do: chroot is not a security boundary")
            .look(format!("the jailed process reads {}", host_file.display()))
    }

    pub fn namespaces() -> Step {
        Step::new("clone a child into new namespaces, as in chapter 2")
            .primitive(format!("clone({})", flag_names(&NAMESPACES)))
            .shell(format!("{} sleep infinity", unshare_command(&NAMESPACES)))
            .look(
                "the mount namespace is the one that matters here: \
                 it starts as a copy of the host's mounts",
            )
    }

    pub fn pivot(root: &Path) -> Step {
        let root = root.display();
        Step::new("pivot_root into the new root")
            .primitive(
                "mount(MS_REC|MS_PRIVATE), mount(MS_BIND), pivot_root(2), umount2(MNT_DETACH)",
            )
            .shell(format!(
                "mount --make-rprivate / && mount --bind {root} {root} && cd {root} \
                 && pivot_root . .old-root && umount -l /.old-root"
            ))
            .look("the old root is detached: the container's mount table holds only its own tree")
    }

    pub fn kernel_fs() -> Step {
        Step::new("mount /proc, a minimal /dev and a read-only /sys")
            .primitive(
                "mount(\"proc\"), mount(\"tmpfs\") + mknod(2) for each device, \
                 mount(\"devpts\", \"newinstance\"), mount(\"sysfs\", MS_RDONLY)",
            )
            .shell(
                "mount -t proc proc /proc; mount -t tmpfs tmpfs /dev; \
                 mknod -m 666 /dev/null c 1 3 …; mount -t sysfs -o ro sysfs /sys",
            )
            .look("the container's whole mount table, read from inside")
    }

    pub fn pivot_escape() -> Step {
        Step::new("try the same escape again")
            .primitive(
                "chroot(\"/escape-hatch\"), chdir(\"..\") × 64, chroot(\".\")",
            )
            .shell("the same escape, now inside the pivoted root")
            .look(
                "the walk ends at the container's own /: the host's tree \
                 is no longer mounted anywhere it can reach",
            )
    }

    pub fn host_view(run_dir: &Path) -> Step {
        Step::new("look from the host")
            .primitive("/proc/self/mountinfo of the host's mount namespace")
            .shell(format!("findmnt | grep {}", run_dir.display()))
            .look("none of the container's mounts appear on the host")
    }

    pub fn cleanup(run_dir: &Path) -> Step {
        Step::new("stop the container and clean up")
            .primitive("kill(init, SIGTERM); the mount namespace dies with its last process")
            .shell(format!("kill PID; rm -rf {}", run_dir.display()))
            .look("every mount went away with the namespace; the run directory is removed")
    }
}
