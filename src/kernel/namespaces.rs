//! Namespaces: what a process can see.
//!
//! Every process points at one namespace of each kind; the links in
//! `/proc/PID/ns/` name them, and two processes share a namespace exactly
//! when those links have the same inode number. A container is a process
//! whose links point somewhere else than the host's.

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use crate::support::error::{io_err, IoError};
use nix::sched::{setns, CloneFlags};
use nix::unistd::Pid;

/// The namespace kinds, in the order the kernel lists them in `/proc/PID/ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Namespace {
    Cgroup,
    Ipc,
    Mount,
    Net,
    Pid,
    Time,
    User,
    Uts,
}

impl Namespace {
    pub const ALL: [Namespace; 8] = [
        Namespace::Cgroup,
        Namespace::Ipc,
        Namespace::Mount,
        Namespace::Net,
        Namespace::Pid,
        Namespace::Time,
        Namespace::User,
        Namespace::Uts,
    ];

    /// The link's name under `/proc/PID/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::Cgroup => "cgroup",
            Namespace::Ipc => "ipc",
            Namespace::Mount => "mnt",
            Namespace::Net => "net",
            Namespace::Pid => "pid",
            Namespace::Time => "time",
            Namespace::User => "user",
            Namespace::Uts => "uts",
        }
    }

    /// The `clone(2)`/`unshare(2)` flag that creates one.
    pub fn clone_flag(self) -> CloneFlags {
        match self {
            Namespace::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
            Namespace::Mount => CloneFlags::CLONE_NEWNS,
            Namespace::Net => CloneFlags::CLONE_NEWNET,
            Namespace::Pid => CloneFlags::CLONE_NEWPID,
            // CLONE_NEWTIME only works with unshare(2), and the lab does not use it.
            Namespace::Time => CloneFlags::empty(),
            Namespace::User => CloneFlags::CLONE_NEWUSER,
            Namespace::Uts => CloneFlags::CLONE_NEWUTS,
        }
    }

    /// The `unshare(1)` option that asks for the same namespace.
    pub fn unshare_option(self) -> &'static str {
        match self {
            Namespace::Cgroup => "--cgroup",
            Namespace::Ipc => "--ipc",
            Namespace::Mount => "--mount",
            Namespace::Net => "--net",
            Namespace::Pid => "--pid",
            Namespace::Time => "--time",
            Namespace::User => "--user",
            Namespace::Uts => "--uts",
        }
    }

    /// The flag's name as the man page spells it, for narration.
    pub fn flag_name(self) -> &'static str {
        match self {
            Namespace::Cgroup => "CLONE_NEWCGROUP",
            Namespace::Ipc => "CLONE_NEWIPC",
            Namespace::Mount => "CLONE_NEWNS",
            Namespace::Net => "CLONE_NEWNET",
            Namespace::Pid => "CLONE_NEWPID",
            Namespace::Time => "CLONE_NEWTIME",
            Namespace::User => "CLONE_NEWUSER",
            Namespace::Uts => "CLONE_NEWUTS",
        }
    }
}

// ANCHOR: inode
/// The inode number behind `/proc/PID/ns/KIND`: the namespace's identity.
pub fn inode(pid: Pid, ns: Namespace) -> std::io::Result<u64> {
    Ok(fs::metadata(format!("/proc/{pid}/ns/{}", ns.proc_name()))?.ino())
}
// ANCHOR_END: inode

/// The inode of the calling process's namespace of that kind.
pub fn own_inode(ns: Namespace) -> std::io::Result<u64> {
    Ok(fs::metadata(format!("/proc/self/ns/{}", ns.proc_name()))?.ino())
}

/// The combined clone flags for a set of namespaces.
pub fn clone_flags(namespaces: &[Namespace]) -> CloneFlags {
    namespaces
        .iter()
        .fold(CloneFlags::empty(), |flags, ns| flags | ns.clone_flag())
}

/// `unshare --uts --pid … --fork`: the shell command that does the same.
pub fn unshare_command(namespaces: &[Namespace]) -> String {
    let options: Vec<&str> = namespaces.iter().map(|ns| ns.unshare_option()).collect();
    format!("unshare {} --fork", options.join(" "))
}

/// `CLONE_NEWUTS | CLONE_NEWPID …`: the flags as the man page spells them.
pub fn flag_names(namespaces: &[Namespace]) -> String {
    let names: Vec<&str> = namespaces.iter().map(|ns| ns.flag_name()).collect();
    names.join(" | ")
}

/// What `clone_process` returns, once in each process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloned {
    Parent { child: Pid },
    Child,
}

/// `clone(2)` used like `fork(2)`, but with namespace flags: the child starts
/// life inside the new namespaces, as a copy of the caller.
///
/// With a NULL stack the kernel gives the child a copy-on-write copy of the
/// caller's stack, exactly as for fork, so the child simply returns from this
/// function. The raw syscall is used because glibc's `clone()` wrapper always
/// wants a separate stack and a function to run on it.
///
/// # Safety
/// Like `fork`, only sound in a single-threaded program: the child gets one
/// thread, and locks held by other threads would stay locked forever.
// ANCHOR: clone
pub unsafe fn clone_process(flags: CloneFlags) -> Result<Cloned, NamespaceError> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // clone(flags, stack = NULL, parent_tid = NULL, child_tid = NULL, tls = 0):
    // with every pointer NULL the argument order (which differs between
    // x86_64 and aarch64) does not matter.
    let ret = libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize);
    match ret {
        -1 => Err(NamespaceError::from_clone(nix::errno::Errno::last())),
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent {
            child: Pid::from_raw(pid as i32),
        }),
    }
}
// ANCHOR_END: clone

// ANCHOR: clone_into_cgroup
/// `clone_process`, with the child born in the cgroup v2 directory open
/// as `cgroup` (clone3's `CLONE_INTO_CGROUP`, Linux 5.7): it never writes
/// to `cgroup.procs`, so it never takes the kernel's lock for moving
/// processes between cgroups, nor waits for the grace period the first
/// taking of that lock costs. `Ok(None)`: this kernel (or a seccomp
/// filter around us) has no clone3 or no `CLONE_INTO_CGROUP`; clone the
/// old way and join.
///
/// # Safety
/// As for `clone_process`.
pub unsafe fn clone_process_into_cgroup(
    flags: CloneFlags,
    cgroup: std::os::fd::BorrowedFd,
) -> Result<Option<Cloned>, NamespaceError> {
    use std::os::fd::AsRawFd;
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    // struct clone_args as of Linux 5.7 (CLONE_ARGS_SIZE_VER2): flags,
    // pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
    // set_tid, set_tid_size, cgroup. A NULL stack: a copy, as for fork.
    let mut args = [0u64; 11];
    args[0] = flags.bits() as u64 | CLONE_INTO_CGROUP;
    args[4] = libc::SIGCHLD as u64;
    args[10] = cgroup.as_raw_fd() as u64;
    let ret = libc::syscall(
        libc::SYS_clone3,
        args.as_mut_ptr(),
        std::mem::size_of_val(&args),
    );
    match ret {
        -1 => match nix::errno::Errno::last() {
            nix::errno::Errno::ENOSYS | nix::errno::Errno::E2BIG | nix::errno::Errno::EINVAL => {
                Ok(None)
            }
            errno => Err(NamespaceError::from_clone(errno)),
        },
        0 => Ok(Some(Cloned::Child)),
        pid => Ok(Some(Cloned::Parent {
            child: Pid::from_raw(pid as i32),
        })),
    }
}
// ANCHOR_END: clone_into_cgroup

/// `nsenter --target PID --uts --ipc …`: moves the caller into the given
/// namespaces of another process. A PID namespace only applies to children
/// the caller forks afterwards; a mount namespace also moves the caller's
/// root and working directory to that namespace's root.
// ANCHOR: enter
pub fn enter(target: Pid, namespaces: &[Namespace]) -> Result<(), NamespaceError> {
    // Open every link first: once in the container's user namespace, we
    // may no longer open the others.
    let mut files = Vec::new();
    for &ns in namespaces {
        let path = format!("/proc/{target}/ns/{}", ns.proc_name());
        let file = fs::File::open(&path).map_err(io_err("open", &path))?;
        files.push((ns, file));
    }
    for (ns, file) in files {
        setns(file.as_fd(), ns.clone_flag()).map_err(|errno| NamespaceError::Join { ns, errno })?;
    }
    Ok(())
}
// ANCHOR_END: enter

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error(
        "creating namespaces needs root (CAP_SYS_ADMIN); run the chapter as root or with sudo"
    )]
    NotPermitted,
    #[error(
        "the kernel refuses new {0} namespaces: {1} is 0; raise it, e.g. sudo sysctl -w {2}=15000"
    )]
    DisabledBySysctl(&'static str, String, &'static str),
    #[error("clone failed: {0}")]
    Clone(nix::errno::Errno),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("failed to join the {ns:?} namespace: {errno}")]
    Join {
        ns: Namespace,
        errno: nix::errno::Errno,
    },
}

impl NamespaceError {
    /// Turns a failed clone into an explanation: EPERM usually means we are
    /// not root, ENOSPC or EPERM with a zero sysctl means the administrator
    /// switched that namespace kind off.
    fn from_clone(errno: nix::errno::Errno) -> NamespaceError {
        use nix::errno::Errno;
        for (kind, sysctl) in [
            ("user", "user.max_user_namespaces"),
            ("mount", "user.max_mnt_namespaces"),
            ("pid", "user.max_pid_namespaces"),
            ("uts", "user.max_uts_namespaces"),
            ("ipc", "user.max_ipc_namespaces"),
            ("network", "user.max_net_namespaces"),
        ] {
            let path = format!("/proc/sys/{}", sysctl.replace('.', "/"));
            if fs::read_to_string(&path).is_ok_and(|v| v.trim() == "0")
                && matches!(errno, Errno::ENOSPC | Errno::EPERM | Errno::EUSERS)
            {
                return NamespaceError::DisabledBySysctl(kind, path, sysctl);
            }
        }
        match errno {
            Errno::EPERM => NamespaceError::NotPermitted,
            other => NamespaceError::Clone(other),
        }
    }
}

/// One row of a side-by-side comparison of two processes' namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub ns: Namespace,
    pub ours: u64,
    pub theirs: u64,
}

impl Comparison {
    pub fn shared(&self) -> bool {
        self.ours == self.theirs
    }
}

// ANCHOR: compare
/// Compares every namespace kind the kernel offers between two processes.
/// Kinds this kernel does not have (no `/proc/PID/ns/time` before 5.6) are
/// left out.
pub fn compare(ours: Pid, theirs: Pid) -> Vec<Comparison> {
    Namespace::ALL
        .iter()
        .filter_map(|&ns| {
            Some(Comparison {
                ns,
                ours: inode(ours, ns).ok()?,
                theirs: inode(theirs, ns).ok()?,
            })
        })
        .collect()
}
// ANCHOR_END: compare
