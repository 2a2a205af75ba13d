//! The few lines every container chapter would otherwise repeat: run a
//! step of the lab's own code inside the container, show a command and
//! what it printed, name the container. They sit at the chapters' edge, so
//! they speak anyhow like the chapters do.

use anyhow::Result;

use crate::engine::images::busybox;
use crate::engine::network::{self, attach_endpoint};
use crate::kernel::hostname;
use crate::kernel::init;
use crate::kernel::process::{flush_stdio, status_code};
use crate::lab::container::Container;
use crate::lab::narrate::Narrator;

/// Runs `work` inside the container (see `Container::run_inside`) and turns
/// its failure into an error here, with the message it printed inside.
// ANCHOR: inside
pub fn inside<F>(container: &Container, work: F) -> Result<()>
where
    F: FnOnce() -> Result<()>,
{
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
// ANCHOR_END: inside

/// Runs `work` in a forked child of the chapter, for a step that changes
/// the process it runs in (its root, say) and must leave the chapter as
/// it was. Its failure becomes an error here, as with `inside`.
// ANCHOR: in_child
pub fn in_child<F>(work: F) -> Result<()>
where
    F: FnOnce() -> Result<()>,
{
    use nix::sys::wait::waitpid;
    use nix::unistd::{fork, ForkResult};
    flush_stdio();
    match unsafe { fork() }? {
        ForkResult::Child => init::exit_now(match work() {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("error: {err:#}");
                1
            }
        }),
        ForkResult::Parent { child } => {
            let status = loop {
                match waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    status => break status?,
                }
            };
            let code = status_code(status);
            anyhow::ensure!(code == 0, "the step's process failed ({code})");
            Ok(())
        }
    }
}
// ANCHOR_END: in_child

/// Shows `container $ ARGV`, runs it inside, and shows what it printed,
/// and its exit code when that is not 0.
pub fn show(book: &Narrator, container: &Container, argv: &[&str]) -> Result<i32> {
    book.inside(argv);
    let (code, text) = container.exec_output(argv)?;
    book.output(&text);
    if code != 0 {
        book.say(format!("(exit code {code})"));
    }
    Ok(code)
}

/// `hostname NAME` inside the container's UTS namespace.
pub fn set_hostname(container: &Container, name: &str) -> Result<()> {
    inside(container, || Ok(hostname::set(name)?))
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
    ) -> Result<BusyboxContainer> {
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
) -> Result<network::Attachment> {
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

/// `connect_to_network` on any network, known there by its name and
/// `aliases` too (`docker run --network NET --network-alias ALIAS`); with
/// the network's table (on a user-defined network, the walls between it
/// and the others) in place before it returns.
// ANCHOR: join_network
pub fn join_network(
    dirs: &crate::engine::dirs::LabDirs,
    net: &network::Network,
    name: &str,
    aliases: &[&str],
    container: &Container,
) -> Result<network::Attachment> {
    let (host_end, peer) = network::veth_names(name);
    let endpoint = network::Endpoint {
        name: name.to_string(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        ip: None,
    };
    let pid = container.pid().as_raw();
    let names = (host_end, peer.clone());
    let attachment = attach_endpoint(dirs, net, &endpoint, pid, |_| names)?;
    let (ip, inside_net) = (attachment.ip, net.clone());
    inside(container, move || {
        Ok(network::configure_inside(&inside_net, &peer, ip)?)
    })?;
    attachment.enable_outbound()?;
    Ok(attachment)
}
// ANCHOR_END: join_network
