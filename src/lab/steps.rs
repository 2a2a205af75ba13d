//! The few lines every container chapter would otherwise repeat: run a
//! step of the lab's own code inside the container, show a command and
//! what it printed, name the container. They sit at the chapters' edge, so
//! they speak anyhow like the chapters do.

use crate::engine::images::busybox;
use crate::engine::network;
use crate::lab::container::Container;
use crate::lab::narrate::Narrator;

/// Runs `work` inside the container (see `Container::run_inside`) and turns
/// its failure into an error here, with the message it printed inside.
pub fn inside(
    container: &Container,
    work: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let code = container.run_inside(|| match work() {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err:#}");
            1
        }
    })?;
    anyhow::ensure!(
        code == 0,
        "a step inside the container failed (exit code {code})"
    );
    Ok(())
}

/// Shows `container $ ARGV`, runs it inside, and shows what it printed,
/// and its exit code when that is not 0.
pub fn show(book: &Narrator, container: &Container, argv: &[&str]) -> anyhow::Result<i32> {
    book.inside(argv);
    let (code, text) = container.exec_output(argv)?;
    book.output(&text);
    if code != 0 {
        book.say(format!("(exit code {code})"));
    }
    Ok(code)
}

/// `hostname NAME` inside the container's UTS namespace.
pub fn set_hostname(container: &Container, hostname: &str) -> anyhow::Result<()> {
    let hostname = hostname.to_string();
    inside(container, move || Ok(nix::unistd::sethostname(&hostname)?))
}

/// A container as chapter 3 builds it, in one call: a private copy of the
/// busybox image in its run directory, the given namespaces, the hostname,
/// pivot_root and the kernel filesystems. Later chapters start from here.
pub struct BusyboxContainer {
    pub name: String,
    pub container: Container,
    /// The copy of the image, as the host sees it.
    pub root: std::path::PathBuf,
    pub run_dir: crate::engine::dirs::RunDir,
}

impl BusyboxContainer {
    /// `prepare` may add files to the copy before the container starts.
    pub fn start(
        dirs: &crate::engine::dirs::LabDirs,
        name: &str,
        namespaces: &[crate::kernel::namespaces::Namespace],
        hostname: &str,
        prepare: impl FnOnce(&std::path::Path) -> std::io::Result<()>,
    ) -> anyhow::Result<BusyboxContainer> {
        use crate::kernel::rootfs;
        let (image, _) = busybox::image(dirs)?;
        let run_dir = crate::engine::dirs::RunDir::create(dirs, name)?;
        let root = run_dir.path().join("rootfs");
        rootfs::copy_tree(&image, &root)?;
        prepare(&root)?;
        let container = Container::start(&crate::lab::container::ContainerSpec {
            namespaces: namespaces.to_vec(),
            // The image's static sleep survives the pivot below.
            main: vec![
                root.join("bin/sleep").display().to_string(),
                "infinity".into(),
            ],
            env: busybox::env(),
            ..Default::default()
        })?;
        set_hostname(&container, hostname)?;
        let new_root = root.clone();
        inside(&container, move || {
            rootfs::pivot_into(&new_root)?;
            Ok(rootfs::mount_kernel_filesystems()?)
        })?;
        Ok(BusyboxContainer {
            name: name.to_string(),
            container,
            root,
            run_dir,
        })
    }
}

/// Everything `docker network connect` would do for one container: an
/// address, the bridge if it is missing, a veth pair with one end on the
/// bridge and the other moved into the container as eth0, and the
/// container's address and default route set from inside it.
// ANCHOR: attach
pub fn connect_to_network(
    dirs: &crate::engine::dirs::LabDirs,
    name: &str,
    container: &Container,
) -> anyhow::Result<network::Attachment> {
    let (host_end, peer) = network::veth_names(name);
    let pid = container.pid().as_raw();
    let names = (host_end, peer.clone());
    let bridge = network::Network::default_bridge();
    let attachment = network::attach(dirs, &bridge, name, pid, |_| names)?;
    // The rest happens inside the container's network namespace.
    let ip = attachment.ip;
    inside(container, move || {
        Ok(network::configure_inside(&bridge, &peer, ip)?)
    })?;
    Ok(attachment)
}
// ANCHOR_END: attach
