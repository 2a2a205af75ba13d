//! The exercise manifest: the one list that names every exercise, in the
//! order a learner does them, beside the chapter manifest (`chapters`).
//!
//! Each exercise is a small program under `exercises/` (a binary of the
//! `lab-exercises` package, named by its id) with the lines its chapter
//! teaches left out; `lab check ID` builds it, runs it and verifies what it
//! built from outside. Its reference solution is the same file under
//! `exercises/solutions/`, with the missing lines between each
//! `// TODO: …` comment and its `// END TODO`: the exercise is exactly the
//! solution without them (`exercise_text`), so `lab reset` needs no git
//! and the two cannot drift (`tests/consistency.rs` checks it, and that
//! every file, binary and page agrees with this list).

use crate::lab::chapters::{self, Chapter};

/// What the lab sets up around an exercise besides the stand-in host's own
/// mount and UTS namespaces, in which every exercise runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// A network namespace of its own: the links it makes stay there.
    Netns,
    /// Cgroups made by the lab beneath its own (`handoff::cgroup_dir`).
    Cgroup,
}

/// One entry of the manifest.
#[derive(Debug, Clone, Copy)]
pub struct Exercise {
    /// `lab check <id>`; also the binary's name.
    pub id: &'static str,
    /// The chapter it belongs to (an id of `chapters::CHAPTERS`).
    pub chapter: &'static str,
    pub title: &'static str,
    /// The learner's file, under `exercises/`; its solution is the same
    /// path under `exercises/solutions/`.
    pub file: &'static str,
    /// What the check verifies, in one line.
    pub verifies: &'static str,
    pub hints: &'static [&'static str],
    pub given: &'static [Given],
}

impl Exercise {
    /// The exercise's chapter in the chapter manifest.
    pub fn chapter(&self) -> &'static Chapter {
        chapters::chapter(self.chapter).expect("every exercise's chapter is in the manifest")
    }

    /// `exercises/<file>`, relative to the checkout.
    pub fn path(&self) -> String {
        format!("{DIR}/{}", self.file)
    }

    /// `exercises/solutions/<file>`, relative to the checkout.
    pub fn solution_path(&self) -> String {
        format!("{DIR}/{SOLUTIONS}/{}", self.file)
    }

    /// The binary of the reference solution (an example of `lab-exercises`).
    pub fn solution_binary(&self) -> String {
        format!("{}-solution", self.id)
    }

    pub fn gets(&self, given: Given) -> bool {
        self.given.contains(&given)
    }
}

/// Where the exercises live in the checkout, and their solutions in it.
pub const DIR: &str = "exercises";
pub const SOLUTIONS: &str = "solutions";
/// The package the exercises are binaries of.
pub const PACKAGE: &str = "lab-exercises";

pub const EXERCISES: &[Exercise] = &[
    Exercise {
        id: "ch02-uts",
        chapter: "ch02",
        title: "a hostname of its own",
        file: "ch02/uts.rs",
        verifies: "new UTS and PID namespaces, the hostname set inside, the host's unchanged",
        hints: &[
            "A namespace is asked for when the child is cloned: list the \
             kinds in ContainerSpec's `namespaces` (Namespace::Uts, Namespace::Pid).",
            "The hostname belongs to the UTS namespace of the process that \
             sets it: set it from a helper inside the container, \
             `inside(&container, || Ok(hostname::set(\"ex02\")?))?`, after \
             the container has started.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch02-proc",
        chapter: "ch02",
        title: "a /proc of its own",
        file: "ch02/proc.rs",
        verifies: "a proc mounted for the container's PID namespace, and nothing propagated to the host",
        hints: &[
            "A new mount namespace starts with a copy of the host's mounts, \
             /proc included, and on a systemd host they are shared: a mount \
             made in one copy appears in the other.",
            "First `mounts::make_tree_private()?`, then mount a new proc: \
             `mounts::mount_fs(\"proc\", Path::new(\"/proc\"), flags, None)?` \
             with MS_NOSUID | MS_NODEV | MS_NOEXEC.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch03-pivot",
        chapter: "ch03",
        title: "pivot_root into the copied tree",
        file: "ch03/pivot.rs",
        verifies: "/ is the copied tree, the old root is detached, no escape, the host's mounts unchanged",
        hints: &[
            "pivot_root refuses a shared mount and a new root that is not a \
             mount point: make the tree private, then bind the new root onto itself.",
            "Then chdir into it, create .old-root, pivot_root(\".\", \".old-root\"), \
             chdir(\"/\"), and detach /.old-root (umount2 with MNT_DETACH: \
             `mounts::detach`) before removing the directory.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch03-kernel-fs",
        chapter: "ch03",
        title: "the kernel filesystems",
        file: "ch03/kernel_fs.rs",
        verifies: "proc on /proc (nosuid,nodev,noexec), sysfs on /sys read-only, a tmpfs on /dev",
        hints: &[
            "Each is one `mounts::mount_fs(TYPE, TARGET, FLAGS, DATA)`: \
             \"proc\" on /proc, \"sysfs\" on /sys, \"tmpfs\" on /dev.",
            "Read-only is a flag, MsFlags::MS_RDONLY; sysfs reaches the \
             host's kernel settings, so it must be read-only.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch04-overlay",
        chapter: "ch04",
        title: "stack the layers",
        file: "ch04/overlay.rs",
        verifies: "an overlay of the three layers, the top one first, and writes landing in the upper directory",
        hints: &[
            "The options are \"lowerdir=TOP:…:BOTTOM,upperdir=UPPER,workdir=WORK\": \
             lowerdir lists the layers from the top down.",
            "`layers` is bottom first: reverse it for lowerdir, then \
             `mounts::mount_fs(\"overlay\", &dirs.merged, MsFlags::empty(), Some(&options))?`.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch04-whiteout",
        chapter: "ch04",
        title: "change and delete through the overlay",
        file: "ch04/whiteout.rs",
        verifies: "a changed file copied up, a deleted one whited out, the layers untouched",
        hints: &[
            "Work in the merged view only: write a new etc/motd there, and \
             remove usr/lib/runtime/libgreet.txt there (fs::write, fs::remove_file).",
            "overlayfs does the rest: a copy-up into the upper directory for \
             the write, a whiteout (a 0/0 character device) for the delete.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch05-limits",
        chapter: "ch05",
        title: "a memory and a pids limit",
        file: "ch05/limits.rs",
        verifies: "64 MiB of memory and 16 processes, in the files of this host's cgroup version",
        hints: &[
            "cgroup v2 (one hierarchy) has memory.max and pids.max; cgroup v1 \
             has memory.limit_in_bytes in the memory hierarchy and pids.max in \
             the pids hierarchy.",
            "A limit is a write: `fs::write(memory.join(\"memory.max\"), \"67108864\")?` \
             on v2; `handoff::cgroup_dir(\"memory\")` is the memory hierarchy's directory.",
        ],
        given: &[Given::Cgroup],
    },
    Exercise {
        id: "ch05-join",
        chapter: "ch05",
        title: "into the cgroup",
        file: "ch05/join.rs",
        verifies: "the container's init and its main process both in the lab's cgroup",
        hints: &[
            "A process joins a cgroup by writing into its cgroup.procs; its \
             children forked afterwards follow it, the ones forked before do not.",
            "Let init join before it starts anything: give ContainerSpec the \
             cgroup.procs files, `cgroup_procs: handoff::cgroup_procs()`.",
        ],
        given: &[Given::Cgroup],
    },
    Exercise {
        id: "ch06-loopback",
        chapter: "ch06",
        title: "loopback up",
        file: "ch06/loopback.rs",
        verifies: "a network namespace of its own with lo up and 127.0.0.1 on it",
        hints: &[
            "A new network namespace has one link, lo, and it is down.",
            "From inside: `links::set_up(&mut Netlink::open()?, \"lo\")?`; \
             the kernel adds 127.0.0.1/8 when it comes up.",
        ],
        given: &[Given::Netns],
    },
    Exercise {
        id: "ch06-veth",
        chapter: "ch06",
        title: "a veth into the container",
        file: "ch06/veth.rs",
        verifies: "eth0 inside with 10.200.0.2/24, up, a default route via 10.200.0.1",
        hints: &[
            "Move the peer end (PEER), not the host's end: \
             `links::move_to_namespace(&mut nl, PEER, container.pid().as_raw() as u32)?`.",
            "Then from inside: rename it to eth0, add 10.200.0.2/24, set it \
             (and lo) up, and add the default route via the host's end, \
             10.200.0.1 (`links::add_default_route`).",
        ],
        given: &[Given::Netns],
    },
    Exercise {
        id: "ch07-maps",
        chapter: "ch07",
        title: "root inside, 100000 outside",
        file: "ch07/maps.rs",
        verifies: "uid_map and gid_map 0 100000 65536, the container's root uid 100000 on the host",
        hints: &[
            "One line per map: \"inside outside count\"; the container's \
             root (0 inside) should be 100000 outside, for 65536 IDs.",
            "Give ContainerSpec a `user_map: Some(UserMap { uid: IdMap { … }, gid: IdMap { … } })`.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch07-rootless",
        chapter: "ch07",
        title: "maps written by nobody",
        file: "ch07/rootless.rs",
        verifies: "setgroups deny, then gid_map and uid_map 0 65534 1, all written by nobody",
        hints: &[
            "An unprivileged process may map only its own uid and gid, once \
             each: \"0 65534 1\" into /proc/PID/uid_map and gid_map.",
            "The kernel takes its gid_map only after \"deny\" was written to \
             /proc/PID/setgroups: write setgroups first, then gid_map, then uid_map.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch08-caps",
        chapter: "ch08",
        title: "one capability and no_new_privs",
        file: "ch08/caps.rs",
        verifies: "only CAP_NET_BIND_SERVICE in every capability set, and no_new_privs",
        hints: &[
            "The bounding set caps what exec can ever give back: drop every \
             other capability from it (caps::drop(None, CapSet::Bounding, cap)).",
            "Then set Effective, Permitted and Inheritable to the one kept \
             (caps::set), and `nix::sys::prctl::set_no_new_privs()?`.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch08-read-only",
        chapter: "ch08",
        title: "a read-only root",
        file: "ch08/read_only.rs",
        verifies: "the container's / mounted read-only, and a write there refused",
        hints: &[
            "The root is a bind mount of the copied tree (pivot_root needed \
             one): remount it with MS_BIND | MS_REMOUNT | MS_RDONLY.",
            "From inside: `mounts::remount_read_only(Path::new(\"/\"))?`.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch09-verify",
        chapter: "ch09",
        title: "a layer checked while it streams",
        file: "ch09/verify.rs",
        verifies: "the intact layer stored under blobs/sha256/HEX, the corrupted one refused, nothing left in tmp/",
        hints: &[
            "A digest names the bytes: the layer is the one the manifest \
             asked for only when its sha256 is the digest. HashingReader \
             computed it as the bytes went to the temporary file.",
            "`if actual != digest { fs::remove_file(&temp)?; anyhow::bail!(…) }`, \
             then `fs::rename(&temp, &final_path)?`: a blob appears under \
             its name only once it is known to be right.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch09-whiteout",
        chapter: "ch09",
        title: "a deletion unpacked",
        file: "ch09/whiteout.rs",
        verifies: "the layer's .wh.issue unpacked as a 0/0 character device at etc/issue, no .wh. file left",
        hints: &[
            "A layer says \"etc/issue is deleted\" with an empty file \
             etc/.wh.issue; overlayfs says it with a character device 0/0 \
             named etc/issue in a lower or upper directory.",
            "`mknod(&parent.join(deleted), SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))?`: \
             the `.wh.` file itself is not unpacked.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch10-layer",
        chapter: "ch10",
        title: "a deletion in the layer",
        file: "ch10/layer.rs",
        verifies: "the upper directory's files in layer.tar, the deleted file as an empty .wh. entry, no device",
        hints: &[
            "overlayfs marks a deletion with a 0/0 character device; the \
             image spec marks it with an empty regular file named .wh.NAME \
             beside where the file was, which the unpacker turns back into a deletion.",
            "`let mut header = tar::Header::new_gnu();` set its entry type \
             Regular, size 0 and a mode, then \
             `tar.append_data(&mut header, format!(\"{dir}.wh.{name}\"), std::io::empty())?`.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch10-cache",
        chapter: "ch10",
        title: "the key of a COPY step",
        file: "ch10/cache.rs",
        verifies: "an edited copied file changes the key, an edited other file does not, a new parent does; as mini-docker build decides",
        hints: &[
            "The cache reuses a step's layer when the step's key was seen \
             before. For COPY the instruction names the files, it does not say \
             what they hold: the key must cover their bytes too, and the key \
             of the step before it, since the layer goes on top of that.",
            "`let digest = context.sources_digest(sources).map_err(anyhow::Error::msg)?;` \
             then `key = build::cache_key(parent, &format!(\"{instruction} {digest}\"));`.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch11-start",
        chapter: "ch11",
        title: "create, then start",
        file: "ch11/start.rs",
        verifies: "after create the init waits on exec.fifo, not yet the program; after start it runs it",
        hints: &[
            "Opening a fifo for writing blocks until someone opens it for \
             reading: that is the whole of runc's create/start split. \
             `start` is the reader (here the lab).",
            "In `init`, before the exec: \
             `OpenOptions::new().write(true).open(fifo)?`, then write \
             \"0\" into it and let it go.",
        ],
        given: &[],
    },
    Exercise {
        id: "ch11-state",
        chapter: "ch11",
        title: "the state of a created container",
        file: "ch11/state.rs",
        verifies: "state.json is the runtime spec's state: its pid the init waiting on exec.fifo, status created before start",
        hints: &[
            "The runtime spec's state has ociVersion, id, status, pid and \
             bundle. The pid is the container's init as the host numbers it: \
             the child `create` forked, not the runtime itself.",
            "Until `start` opens exec.fifo the init has not run the program: \
             the status is \"created\". `serde_json::json!({\"ociVersion\": OCI_VERSION, \
             \"id\": id, \"status\": \"created\", \"pid\": init.as_raw(), \"bundle\": bundle})`.",
        ],
        given: &[],
    },
];

/// Looks an exercise up by its id.
pub fn exercise(id: &str) -> Option<&'static Exercise> {
    EXERCISES.iter().find(|e| e.id == id)
}

/// The marker that closes a gap in a solution.
pub const END_TODO: &str = "// END TODO";

/// One gap of an exercise: the TODO comment, and the lines its solution
/// puts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The 1-based line of the TODO comment, the same in both files.
    pub line: usize,
    pub todo: Vec<String>,
    pub answer: Vec<String>,
}

/// The gaps of a solution, in order.
pub fn gaps(solution: &str) -> Vec<Gap> {
    let mut gaps = Vec::new();
    let mut lines = solution.lines().enumerate().peekable();
    while let Some((number, line)) = lines.next() {
        if !line.trim_start().starts_with("// TODO:") {
            continue;
        }
        let mut gap = Gap {
            line: number + 1,
            todo: vec![line.to_string()],
            answer: Vec::new(),
        };
        // The comment goes on while its lines do.
        while let Some((_, next)) = lines.peek() {
            let next = next.trim_start();
            if next.starts_with("//") && !next.starts_with(END_TODO) {
                gap.todo.push(lines.next().unwrap().1.to_string());
            } else {
                break;
            }
        }
        for (_, next) in lines.by_ref() {
            if next.trim_start().starts_with(END_TODO) {
                break;
            }
            gap.answer.push(next.to_string());
        }
        gaps.push(gap);
    }
    gaps
}

/// The exercise as a learner gets it: the solution without the lines
/// between each TODO comment and its `// END TODO`.
pub fn exercise_text(solution: &str) -> String {
    let mut out = String::new();
    let mut in_answer = false;
    let mut in_todo = false;
    for line in solution.lines() {
        let trimmed = line.trim_start();
        // A TODO's comment goes on while its lines do.
        let comment_goes_on = trimmed.starts_with("//") && !trimmed.starts_with(END_TODO);
        if trimmed.starts_with("// TODO:") {
            in_todo = true;
        } else if in_todo && !comment_goes_on {
            in_todo = false;
            in_answer = true;
        }
        if in_answer && trimmed.starts_with(END_TODO) {
            in_answer = false;
        }
        if !in_answer {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOLUTION: &str = "fn main() {\n    // TODO: say hello,\n    // twice.\n    \
        hello();\n    hello();\n    // END TODO\n    // TODO: and bye.\n    bye();\n    \
        // END TODO\n}\n";

    #[test]
    fn an_exercise_is_its_solution_without_the_answers() {
        assert_eq!(
            exercise_text(SOLUTION),
            "fn main() {\n    // TODO: say hello,\n    // twice.\n    // END TODO\n    \
             // TODO: and bye.\n    // END TODO\n}\n"
        );
        let found = gaps(SOLUTION);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].line, 2);
        assert_eq!(found[0].todo.len(), 2);
        assert_eq!(found[0].answer, ["    hello();", "    hello();"]);
        assert_eq!(found[1].answer, ["    bye();"]);
        // An exercise has no answers left, and stays what it is.
        let exercise = exercise_text(SOLUTION);
        assert_eq!(exercise_text(&exercise), exercise);
        assert!(gaps(&exercise).iter().all(|g| g.answer.is_empty()));
    }

    #[test]
    fn every_exercise_belongs_to_a_chapter_and_ids_are_unique() {
        for (i, e) in EXERCISES.iter().enumerate() {
            assert!(chapters::chapter(e.chapter).is_some(), "{}", e.id);
            assert!(e.id.starts_with(e.chapter), "{}", e.id);
            assert!(EXERCISES[..i].iter().all(|o| o.id != e.id), "{}", e.id);
            assert!(!e.hints.is_empty(), "{} has no hint", e.id);
        }
    }
}
