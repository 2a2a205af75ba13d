//! Chapter 4: overlay layers.
//!
//! Chapter 3 copied the whole image for every container. Here the image is
//! three read-only layers, stacked by overlayfs under a writable directory
//! of the container's own; the host watches what each change inside does
//! to that directory, and a second container shares the same layers.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use container_lab::engine::dirs::{LabDirs, RunDir};
use container_lab::engine::images::busybox;
use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::overlay::{self, Layer, OverlayDirs, UpperEntry};
use container_lab::kernel::{mounts, rootfs};
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::narrate::{yes_no, Narrator};
use container_lab::lab::steps::{inside, set_hostname, show};
use container_lab::lab::{self, layers};

/// Overlay layers: an image shared by containers, a writable layer each.
#[derive(Debug, Parser)]
#[command(name = "ch04", version)]
struct Cli {
    #[command(flatten)]
    chapter: ChapterArgs,
    #[command(flatten)]
    container: ContainerArgs,
    /// Name of this run; the second container is NAME-2
    #[arg(long, default_value = "ch04", value_parser = cli::parse_name)]
    name: String,
    /// Keep the first container's writable layer for inspection
    #[arg(long)]
    keep: bool,
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

    book.next(narration::layers())?;
    // ANCHOR: layers
    let layers = layers::image_layers(&dirs)?;
    for layer in &layers {
        book.fact(&format!("layer {}", layer.name), layer.path.display());
        let entries = overlay::count_entries(&layer.path);
        let kib = overlay::content_kib(&layer.path);
        book.say(format!("  {entries} entries, {kib} KiB"));
    }
    // ANCHOR_END: layers

    book.next(narration::mount())?;
    // ANCHOR: mount
    let run_dir = RunDir::create(&dirs, &cli.name)?;
    let first = OverlayDirs::create(run_dir.path())?;
    let container = start_container(&layers)?;
    set_hostname(&container, &cli.container.hostname)?;
    let options = overlay::mount_options(&layers, &first);
    book.say(format!("options: {options}"));
    inside(&container, || {
        mounts::make_tree_private()?;
        Ok(overlay::mount_overlay(&layers, &first)?)
    })?;
    // ANCHOR_END: mount

    book.next(narration::pivot(&first.merged))?;
    // ANCHOR: pivot
    inside(&container, || {
        rootfs::pivot_into(&first.merged)?;
        Ok(rootfs::mount_kernel_filesystems()?)
    })?;
    show(&book, &container, &["cat", "/etc/motd"])?;
    show(&book, &container, &["/app/hello.sh"])?;
    // ANCHOR_END: pivot

    let [base, runtime, _app] = &layers[..] else {
        anyhow::bail!("the image should have three layers");
    };
    book.next(narration::copy_up())?;
    // ANCHOR: copy_up
    show(&book, &container, &["sh", "-c", WRITE_CONF])?;
    let conf = "etc/runtime.conf";
    report(&book, "upper/", &first.upper.join(conf), conf);
    report(&book, "runtime layer's ", &runtime.path.join(conf), conf);
    // ANCHOR_END: copy_up

    book.next(narration::whiteout())?;
    // ANCHOR: whiteout
    show(&book, &container, &["sh", "-c", DELETE_FILE])?;
    let file = "etc/os-release";
    report(&book, "upper/", &first.upper.join(file), file);
    report(&book, "base layer's ", &base.path.join(file), file);
    // ANCHOR_END: whiteout

    book.next(narration::opaque())?;
    // ANCHOR: opaque
    show(&book, &container, &["sh", "-c", REPLACE_DIR])?;
    let dir = "usr/lib/runtime";
    report(&book, "upper/", &first.upper.join(dir), dir);
    let lib = "usr/lib/runtime/libgreet.txt";
    report(&book, "runtime layer's ", &runtime.path.join(lib), lib);
    // ANCHOR_END: opaque

    book.next(narration::second())?;
    // ANCHOR: second
    let second_dir = RunDir::create(&dirs, &format!("{}-2", cli.name))?;
    let second = OverlayDirs::create(second_dir.path())?;
    let container2 = start_container(&layers)?;
    inside(&container2, || {
        mounts::make_tree_private()?;
        overlay::mount_overlay(&layers, &second)?;
        rootfs::pivot_into(&second.merged)?;
        Ok(rootfs::mount_kernel_filesystems()?)
    })?;
    let files = ["/etc/runtime.conf", "/usr/lib/runtime/VERSION"];
    show(&book, &container2, &["cat", files[0], files[1]])?;
    // Read by the host, from each container's own mount table.
    let lower = root_lowerdir(&container);
    let same = lower.is_some() && lower == root_lowerdir(&container2);
    book.fact("same lower directories", yes_no(same));
    let kib: u64 = layers.iter().map(|l| overlay::content_kib(&l.path)).sum();
    book.fact("the layers, stored once", format!("{kib} KiB"));
    for (n, dirs) in [(1, &first), (2, &second)] {
        let entries = overlay::count_entries(&dirs.upper);
        book.fact(
            &format!("container {n}'s upper"),
            format!("{entries} entries"),
        );
    }
    // ANCHOR_END: second

    book.user_command_step(&container, &cli.container.command)?;

    book.next(narration::cleanup())?;
    // ANCHOR: cleanup
    container.stop(Duration::from_secs(10))?;
    container2.stop(Duration::from_secs(10))?;
    drop(second_dir);
    let same = mounts::mountinfo_text()? == host_mounts;
    book.fact("host mount table unchanged", yes_no(same));
    if cli.keep {
        let kept = run_dir.keep().join("upper");
        book.fact("kept container 1's upper at", kept.display());
    } else {
        let path = run_dir.path().to_path_buf();
        drop(run_dir);
        book.fact("writable layers removed", yes_no(!path.exists()));
    }
    let there = layers.iter().all(|l| l.path.is_dir());
    book.fact("layers still there", yes_no(there));
    // ANCHOR_END: cleanup

    book.done(
        "an image is a stack of directories shared by every container; \
         each container writes only to its own upper layer. \
         chapter 5 limits what it may use.",
    );
    Ok(())
}

/// What the container runs in steps 4 to 6.
// ANCHOR: commands
const WRITE_CONF: &str = "echo threads=8 > /etc/runtime.conf \
                          && cat /etc/runtime.conf";
const DELETE_FILE: &str = "rm /etc/os-release; ls /etc/os-release";
const REPLACE_DIR: &str = "rm -rf /usr/lib/runtime && mkdir /usr/lib/runtime \
                           && echo 'runtime 2.0' > /usr/lib/runtime/VERSION \
                           && ls /usr/lib/runtime";
// ANCHOR_END: commands

/// A container in new namespaces whose main process is the base layer's
/// static sleep (it keeps running when pivot_root takes the host away).
fn start_container(layers: &[Layer]) -> anyhow::Result<Container> {
    Ok(Container::start(&ContainerSpec {
        namespaces: NAMESPACES.to_vec(),
        main: vec![
            layers[0].path.join("bin/sleep").display().to_string(),
            "infinity".into(),
        ],
        env: busybox::env(),
        ..Default::default()
    })?)
}

/// The `lowerdir=` option of the container's root mount, read by the host
/// from the container's own mount table.
fn root_lowerdir(container: &Container) -> Option<String> {
    let text =
        std::fs::read_to_string(format!("/proc/{}/mountinfo", container.pid()))
            .ok()?;
    let root = text
        .lines()
        .find(|line| line.split(' ').nth(4) == Some("/"))?;
    let options = root.split(" - ").nth(1)?.split(' ').nth(2)?;
    options
        .split(',')
        .find_map(|o| o.strip_prefix("lowerdir="))
        .map(String::from)
}

/// Prints what the host sees at a path in a layer or an upper directory:
/// `host sees WHERE NAME: …`.
fn report(book: &Narrator, place: &str, path: &Path, name: &str) {
    let what = match overlay::inspect_upper(path) {
        UpperEntry::Missing => "missing".to_string(),
        UpperEntry::Whiteout => "character device 0/0: a whiteout".to_string(),
        UpperEntry::OpaqueDir => {
            "directory, opaque (trusted.overlay.opaque=y)".to_string()
        }
        UpperEntry::Dir => "directory".to_string(),
        UpperEntry::File(text) => {
            format!("file: {:?}", text.lines().next().unwrap_or(""))
        }
    };
    book.fact(&format!("host sees {place}{name}"), what);
}

/// What the narrator says before each step: its title, the primitive it
/// applies, the shell command that does the same, and what to look at.
mod narration {
    use std::path::Path;

    use container_lab::lab::narrate::Step;

    pub fn layers() -> Step {
        Step::new("the image: three read-only layers")
            .primitive("plain directories; nothing is mounted yet")
            .shell("ls base/ runtime/ app/")
            .look("each layer holds only what it adds; app and runtime both have an /etc/motd")
    }

    pub fn mount() -> Step {
        Step::new("mount the layers as one tree")
            .primitive(
                "mount(\"overlay\", MERGED, \"overlay\", 0, \
                 \"lowerdir=app:runtime:base,upperdir=…,workdir=…\")",
            )
            .shell(
                "mount -t overlay overlay \
                 -o lowerdir=app:runtime:base,upperdir=upper,workdir=work merged",
            )
            .look(
                "lowerdir lists the layers top first; upperdir gets every change; \
                 workdir is overlayfs's scratch space",
            )
    }

    pub fn pivot(merged: &Path) -> Step {
        Step::new("pivot_root into the merged tree, as in chapter 3")
            .primitive("pivot_root(2), then /proc, /dev and /sys")
            .shell(format!(
                "cd {} && pivot_root . .old-root && umount -l /.old-root",
                merged.display()
            ))
            .look(
                "the app layer's /etc/motd hides the runtime layer's; \
                 the app finds the runtime's files",
            )
    }

    pub fn copy_up() -> Step {
        Step::new("write to a file from a lower layer")
            .primitive("open(O_WRONLY) in the merged tree: overlayfs copies the file up first")
            .shell("echo threads=8 > /etc/runtime.conf   (inside)")
            .look("the change lands in the upper directory; the runtime layer's file is untouched")
    }

    pub fn whiteout() -> Step {
        Step::new("delete a file from a lower layer")
            .primitive(
                "unlink(2) in the merged tree: overlayfs creates a whiteout in the upper directory",
            )
            .shell("rm /etc/os-release   (inside)")
            .look(
                "the upper directory now holds a character device 0/0 \
                 that hides the base layer's file",
            )
    }

    pub fn opaque() -> Step {
        Step::new("replace a whole directory from a lower layer")
            .primitive("rmdir + mkdir in the merged tree: the new directory is marked opaque")
            .shell(
                "rm -rf /usr/lib/runtime && mkdir /usr/lib/runtime \
                 && echo 'runtime 2.0' > /usr/lib/runtime/VERSION",
            )
            .look(
                "xattr trusted.overlay.opaque=y on the upper directory: \
                 nothing of the lower one shows through",
            )
    }

    pub fn second() -> Step {
        Step::new("start a second container from the same layers")
            .primitive("a second overlay mount with the same lowerdir and its own upperdir")
            .shell(
                "mount -t overlay overlay \
                 -o lowerdir=app:runtime:base,upperdir=upper2,workdir=work2 merged2",
            )
            .look(
                "the second container sees the image as built; \
                 both mounts name the same lower directories",
            )
    }

    pub fn cleanup() -> Step {
        Step::new("stop both containers")
            .primitive("kill(init, SIGTERM); each overlay mount dies with its mount namespace")
            .shell("kill PID1 PID2; rm -rf upper work (unless --keep)")
            .look("the upper directories are discarded; the layers stay for the next container")
    }
}
