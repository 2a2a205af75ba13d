//! The chapter manifest: the one list that names every chapter, and
//! `begin`, with which every chapter starts: it finds the chapter here by
//! its binary name and applies what the chapter needs.
//!
//! The consistency test (`tests/consistency.rs`) checks that the binaries in
//! `Cargo.toml`, the files in `chapters/`, the book's `SUMMARY.md` and the
//! snapshot files all agree with this list, and that each chapter uses what
//! its entry says it needs.

use crate::lab::cli::ChapterArgs;
use crate::lab::narrate::Narrator;
use crate::lab::needs::{self, NeedError};

/// What a chapter needs from the machine before it can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Runs as root (re-runs itself with sudo when started by a normal
    /// user, saying `why`).
    Root { why: &'static str },
    /// The busybox-static package, for the container's root filesystem.
    Busybox,
    /// The overlay filesystem.
    Overlay,
    /// A cgroup hierarchy it may create cgroups in (v1 or v2; on a v2 host
    /// that shares the lab's cgroup, it re-runs itself in a delegated one).
    Cgroups,
    /// veth, bridge and nftables support, and the host's loopback up.
    Network,
    /// User namespaces enabled by the kernel.
    UserNamespaces,
}

/// One entry of the manifest.
#[derive(Debug, Clone, Copy)]
pub struct Chapter {
    /// Binary name: `cargo run --bin <id>`.
    pub id: &'static str,
    pub title: &'static str,
    /// Source file under `chapters/`.
    pub source: &'static str,
    /// Page under `book/src/`.
    pub page: &'static str,
    pub needs: &'static [Need],
}

pub const CHAPTERS: &[Chapter] = &[
    Chapter {
        id: "ch01",
        title: "A container is just a process",
        source: "ch01_process.rs",
        page: "ch01-process.md",
        needs: &[],
    },
    Chapter {
        id: "ch02",
        title: "Namespaces: a private view of the system",
        source: "ch02_namespaces.rs",
        page: "ch02-namespaces.md",
        needs: &[Need::Root {
            why: "creating namespaces needs CAP_SYS_ADMIN",
        }],
    },
    Chapter {
        id: "ch03",
        title: "A root filesystem of its own",
        source: "ch03_rootfs.rs",
        page: "ch03-rootfs.md",
        needs: &[
            Need::Root {
                why: "chroot, mount and pivot_root need CAP_SYS_CHROOT and CAP_SYS_ADMIN",
            },
            Need::Busybox,
        ],
    },
    Chapter {
        id: "ch04",
        title: "Overlay layers: an image shared by many containers",
        source: "ch04_overlay.rs",
        page: "ch04-overlay.md",
        needs: &[
            Need::Root {
                why: "overlay mounts and namespaces need CAP_SYS_ADMIN",
            },
            Need::Busybox,
            Need::Overlay,
        ],
    },
    Chapter {
        id: "ch05",
        title: "cgroups: the resource police",
        source: "ch05_cgroups.rs",
        page: "ch05-cgroups.md",
        needs: &[
            Need::Root {
                why: "creating cgroups and writing their limits needs root",
            },
            Need::Cgroups,
        ],
    },
    Chapter {
        id: "ch06",
        title: "A network of its own: veth, a bridge and NAT",
        source: "ch06_network.rs",
        page: "ch06-network.md",
        needs: &[
            Need::Root {
                why: "network namespaces, links and firewall rules need CAP_NET_ADMIN",
            },
            Need::Busybox,
            Need::Network,
        ],
    },
    Chapter {
        id: "ch07",
        title: "User namespaces: root inside, nobody outside",
        source: "ch07_userns.rs",
        page: "ch07-userns.md",
        needs: &[
            Need::Root {
                why: "mapping a range of host IDs needs CAP_SETUID and CAP_SETGID",
            },
            Need::Busybox,
            Need::Overlay,
            Need::UserNamespaces,
        ],
    },
    Chapter {
        id: "ch08",
        title: "Hardening: capabilities, seccomp, read-only and masked paths",
        source: "ch08_hardening.rs",
        page: "ch08-hardening.md",
        needs: &[
            Need::Root {
                why: "namespaces and mounts need CAP_SYS_ADMIN",
            },
            Need::Busybox,
            Need::Cgroups,
        ],
    },
    Chapter {
        id: "ch09",
        title: "Images and registries",
        source: "ch09_images.rs",
        page: "ch09-images.md",
        needs: &[
            Need::Root {
                why: "the container at the end needs namespaces, mounts and pivot_root",
            },
            Need::Busybox,
            Need::Overlay,
        ],
    },
    Chapter {
        id: "ch10",
        title: "Building images: a Dockerfile, one layer per step",
        source: "ch10_build.rs",
        page: "ch10-build.md",
        needs: &[
            Need::Root {
                why: "a build step is a container: namespaces, mounts and a cgroup",
            },
            Need::Busybox,
            Need::Cgroups,
        ],
    },
    Chapter {
        id: "ch11",
        title: "Who calls whom: the OCI runtime",
        source: "ch11_runtime.rs",
        page: "ch11-runtime.md",
        needs: &[
            Need::Root {
                why: "a runtime makes namespaces, mounts and cgroups",
            },
            Need::Busybox,
            Need::Cgroups,
        ],
    },
];

/// Looks a chapter up by its binary name.
pub fn chapter(id: &str) -> Option<&'static Chapter> {
    CHAPTERS.iter().find(|c| c.id == id)
}

/// Starts a chapter: finds it in the manifest by its binary name, applies
/// what it needs (in the order of its entry, each refused with a message
/// that says what to do), installs the Ctrl-C handler and prints the
/// chapter's title. A chapter calls it through `lab::begin!`, which names
/// the binary for it.
pub fn begin(id: &str, args: &ChapterArgs) -> Result<Narrator, NeedError> {
    let chapter = chapter(id).ok_or_else(|| NeedError::NotInManifest(id.to_string()))?;
    for need in chapter.needs {
        needs::apply(chapter, *need)?;
    }
    crate::kernel::signals::install_interrupt_handler();
    Ok(Narrator::new(chapter, args))
}
