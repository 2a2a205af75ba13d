//! Chapter 4: overlay layers.
//!
//! Chapter 3 copied the whole image for every container. Here the image is
//! three read-only layers, stacked by overlayfs under a writable directory
//! of the container's own; the host watches what each change inside does
//! to that directory, and a second container shares the same layers.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use container_lab::engine::dirs::{LabDirs, RunDir};
use container_lab::engine::images::busybox;
use container_lab::kernel::namespaces::Namespace;
use container_lab::kernel::overlay::{self, Layer, OverlayDirs, UpperEntry};
use container_lab::lab::chapters;
use container_lab::lab::cli::{self, ChapterArgs, ContainerArgs};
use container_lab::lab::container::{Container, ContainerSpec};
use container_lab::lab::narrate::{yes_no, Narrator};
use container_lab::lab::steps::{inside, set_hostname, show};
use container_lab::{kernel::mounts, kernel::rootfs, kernel::signals, lab::privilege};

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
    let cli = Cli::parse();
    signals::install_interrupt_handler();
    cli::finish(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let chapter = chapters::chapter("ch04").context("ch04 is missing from the manifest")?;
    privilege::ensure_root("ch04", "overlay mounts and namespaces need CAP_SYS_ADMIN")?;
    busybox::find_static()?;
    overlay::ensure_supported()?;
    let mut book = Narrator::new(chapter, &cli.chapter);
    let dirs = LabDirs::from_env();
    let host_mounts = mounts::mountinfo_text()?;

    // ANCHOR: layers
    book.step("the image: three read-only layers")
        .primitive("plain directories; nothing is mounted yet")
        .shell("ls base/ runtime/ app/")
        .look("each layer holds only what it adds; app and runtime both have an /etc/motd")
        .begin()?;
    let layers = container_lab::lab::layers::image_layers(&dirs)?;
    for layer in &layers {
        book.fact(&format!("layer {}", layer.name), layer.path.display());
        book.say(format!(
            "  {} entries, {} KiB",
            overlay::count_entries(&layer.path),
            overlay::content_kib(&layer.path)
        ));
    }
    // ANCHOR_END: layers

    // ANCHOR: mount
    book.step("mount the layers as one tree")
        .primitive("mount(\"overlay\", MERGED, \"overlay\", 0, \"lowerdir=app:runtime:base,upperdir=…,workdir=…\")")
        .shell("mount -t overlay overlay -o lowerdir=app:runtime:base,upperdir=upper,workdir=work merged")
        .look("lowerdir lists the layers top first; upperdir gets every change; workdir is overlayfs's scratch space")
        .begin()?;
    let run_dir = RunDir::create(&dirs, &cli.name)?;
    let first = OverlayDirs::create(run_dir.path())?;
    let container = start_container(&layers)?;
    set_hostname(&container, &cli.container.hostname)?;
    book.say(format!(
        "options: {}",
        overlay::mount_options(&layers, &first)
    ));
    let (layers_inside, first_inside) = (layers.clone(), first.clone());
    inside(&container, move || {
        mounts::make_tree_private()?;
        Ok(overlay::mount_overlay(&layers_inside, &first_inside)?)
    })?;
    // ANCHOR_END: mount

    // ANCHOR: pivot
    book.step("pivot_root into the merged tree, as in chapter 3")
        .primitive("pivot_root(2), then /proc, /dev and /sys")
        .shell(format!("cd {} && pivot_root . .old-root && umount -l /.old-root", first.merged.display()))
        .look("the app layer's /etc/motd hides the runtime layer's; the app finds the runtime's files")
        .begin()?;
    let merged = first.merged.clone();
    inside(&container, move || {
        rootfs::pivot_into(&merged)?;
        Ok(rootfs::mount_kernel_filesystems()?)
    })?;
    show(&book, &container, &["cat", "/etc/motd"])?;
    show(&book, &container, &["/app/hello.sh"])?;
    // ANCHOR_END: pivot

    // ANCHOR: copy_up
    book.step("write to a file from a lower layer")
        .primitive("open(O_WRONLY) in the merged tree: overlayfs copies the file up first")
        .shell("echo threads=8 > /etc/runtime.conf   (inside)")
        .look("the change lands in the upper directory; the runtime layer's file is untouched")
        .begin()?;
    show(
        &book,
        &container,
        &[
            "sh",
            "-c",
            "echo threads=8 > /etc/runtime.conf && cat /etc/runtime.conf",
        ],
    )?;
    report(
        &book,
        "upper/etc/runtime.conf",
        &first.upper.join("etc/runtime.conf"),
    );
    report(
        &book,
        "runtime layer's etc/runtime.conf",
        &layers[1].path.join("etc/runtime.conf"),
    );
    // ANCHOR_END: copy_up

    // ANCHOR: whiteout
    book.step("delete a file from a lower layer")
        .primitive(
            "unlink(2) in the merged tree: overlayfs creates a whiteout in the upper directory",
        )
        .shell("rm /etc/os-release   (inside)")
        .look(
            "the upper directory now holds a character device 0/0 that hides the base layer's file",
        )
        .begin()?;
    show(
        &book,
        &container,
        &["sh", "-c", "rm /etc/os-release; ls /etc/os-release"],
    )?;
    report(
        &book,
        "upper/etc/os-release",
        &first.upper.join("etc/os-release"),
    );
    report(
        &book,
        "base layer's etc/os-release",
        &layers[0].path.join("etc/os-release"),
    );
    // ANCHOR_END: whiteout

    // ANCHOR: opaque
    book.step("replace a whole directory from a lower layer")
        .primitive("rmdir + mkdir in the merged tree: the new directory is marked opaque")
        .shell("rm -rf /usr/lib/runtime && mkdir /usr/lib/runtime && echo 'runtime 2.0' > /usr/lib/runtime/VERSION")
        .look("xattr trusted.overlay.opaque=y on the upper directory: nothing of the lower one shows through")
        .begin()?;
    show(
        &book,
        &container,
        &["sh", "-c", "rm -rf /usr/lib/runtime && mkdir /usr/lib/runtime && echo 'runtime 2.0' > /usr/lib/runtime/VERSION && ls /usr/lib/runtime"],
    )?;
    report(
        &book,
        "upper/usr/lib/runtime",
        &first.upper.join("usr/lib/runtime"),
    );
    report(
        &book,
        "runtime layer's usr/lib/runtime/libgreet.txt",
        &layers[1].path.join("usr/lib/runtime/libgreet.txt"),
    );
    // ANCHOR_END: opaque

    // ANCHOR: second
    book.step("start a second container from the same layers")
        .primitive("a second overlay mount with the same lowerdir and its own upperdir")
        .shell("mount -t overlay overlay -o lowerdir=app:runtime:base,upperdir=upper2,workdir=work2 merged2")
        .look("the second container sees the image as built; both mounts name the same lower directories")
        .begin()?;
    let second_dir = RunDir::create(&dirs, &format!("{}-2", cli.name))?;
    let second = OverlayDirs::create(second_dir.path())?;
    let container2 = start_container(&layers)?;
    let (layers_inside, second_inside) = (layers.clone(), second.clone());
    inside(&container2, move || {
        mounts::make_tree_private()?;
        overlay::mount_overlay(&layers_inside, &second_inside)?;
        rootfs::pivot_into(&second_inside.merged)?;
        Ok(rootfs::mount_kernel_filesystems()?)
    })?;
    show(
        &book,
        &container2,
        &["cat", "/etc/runtime.conf", "/usr/lib/runtime/VERSION"],
    )?;
    let lower_of = |c: &Container| root_lowerdir(c).unwrap_or_default();
    book.fact(
        "same lower directories",
        yes_no(lower_of(&container) == lower_of(&container2) && !lower_of(&container).is_empty()),
    );
    let layers_kib: u64 = layers.iter().map(|l| overlay::content_kib(&l.path)).sum();
    book.fact("the layers, stored once", format!("{layers_kib} KiB"));
    book.fact(
        "container 1's upper",
        format!("{} entries", overlay::count_entries(&first.upper)),
    );
    book.fact(
        "container 2's upper",
        format!("{} entries", overlay::count_entries(&second.upper)),
    );
    // ANCHOR_END: second

    book.user_command_step(&container, &cli.container.command)?;

    // ANCHOR: cleanup
    book.step("stop both containers")
        .primitive("kill(init, SIGTERM); each overlay mount dies with its mount namespace")
        .shell("kill PID1 PID2; rm -rf upper work (unless --keep)")
        .look("the upper directories are discarded; the layers stay for the next container")
        .begin()?;
    container.stop(Duration::from_secs(10))?;
    container2.stop(Duration::from_secs(10))?;
    drop(second_dir);
    book.fact(
        "host mount table unchanged",
        yes_no(mounts::mountinfo_text()? == host_mounts),
    );
    if cli.keep {
        let kept = run_dir.keep();
        book.fact("kept container 1's upper at", kept.join("upper").display());
    } else {
        let path = run_dir.path().to_path_buf();
        drop(run_dir);
        book.fact("writable layers removed", yes_no(!path.exists()));
    }
    book.fact(
        "layers still there",
        yes_no(layers.iter().all(|l| l.path.is_dir())),
    );
    // ANCHOR_END: cleanup

    book.done("an image is a stack of directories shared by every container; each container writes only to its own upper layer. chapter 5 limits what it may use.");
    Ok(())
}

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
    let text = std::fs::read_to_string(format!("/proc/{}/mountinfo", container.pid())).ok()?;
    let root = text
        .lines()
        .find(|line| line.split(' ').nth(4) == Some("/"))?;
    let options = root.split(" - ").nth(1)?.split(' ').nth(2)?;
    options
        .split(',')
        .find_map(|o| o.strip_prefix("lowerdir="))
        .map(String::from)
}

/// Prints what the host sees at a path in a layer or an upper directory.
fn report(book: &Narrator, label: &str, path: &Path) {
    let what = match overlay::inspect_upper(path) {
        UpperEntry::Missing => "missing".to_string(),
        UpperEntry::Whiteout => "character device 0/0: a whiteout".to_string(),
        UpperEntry::OpaqueDir => "directory, opaque (trusted.overlay.opaque=y)".to_string(),
        UpperEntry::Dir => "directory".to_string(),
        UpperEntry::File(text) => format!("file: {:?}", text.lines().next().unwrap_or("")),
    };
    book.fact(&format!("host sees {label}"), what);
}
