//! The checks: for each exercise, what the lab reads from outside once the
//! program has handed its container over, each check passed or failed
//! with the evidence the kernel gave ("the child's uts namespace is the
//! host's: 4026531838 on both sides"). One module per chapter.

mod ch02;
mod ch03;
mod ch04;
mod ch05;
mod ch06;
mod ch07;
mod ch08;
mod ch09;
mod ch10;
mod ch11;

use std::path::PathBuf;

use container_lab::kernel::cgroups::Cgroup;
use container_lab::kernel::namespaces::Namespace;
use container_lab::lab::exercises::Exercise;
use nix::unistd::Pid;

use crate::evidence;

/// One check: passed or not, and what the lab saw.
#[derive(Debug, Clone)]
pub struct Check {
    pub passed: bool,
    pub said: String,
}

impl Check {
    pub fn pass(said: impl Into<String>) -> Check {
        Check {
            passed: true,
            said: said.into(),
        }
    }

    pub fn fail(said: impl Into<String>) -> Check {
        Check {
            passed: false,
            said: said.into(),
        }
    }

    pub fn new(passed: bool, pass: impl Into<String>, fail: impl Into<String>) -> Check {
        if passed {
            Check::pass(pass)
        } else {
            Check::fail(fail)
        }
    }
}

/// What the lab knows when it looks.
pub struct Subject {
    pub ex: &'static Exercise,
    /// The exercise's own process: the stand-in host's side.
    pub host: Pid,
    /// The container's init, as the lab sees it, when it was handed over.
    pub container: Option<Pid>,
    /// A process that handed itself over.
    pub process: Option<Pid>,
    pub baseline: Baseline,
    /// The exercise's run directory (`handoff::run_dir`).
    pub run_dir: PathBuf,
    /// The cgroups the lab made for it, by controller (`*` on v2).
    pub cgroups: Vec<(String, PathBuf)>,
    pub cgroup_version: Option<u8>,
    /// What the program wrote to stderr until it handed over.
    pub stderr: String,
}

impl Subject {
    /// Mounts the stand-in host gained since it started: what propagated
    /// from a container, or what the program mounted outside it.
    /// (A mount on top of another at the same point counts too.)
    pub fn host_mounts_gained(&self) -> Vec<String> {
        let mut before = self.baseline.mounts.clone();
        let mut gained = Vec::new();
        for mount in mount_points(self.host) {
            match before.iter().position(|m| *m == mount) {
                Some(at) => {
                    before.remove(at);
                }
                None => gained.push(mount),
            }
        }
        gained
    }
}

/// The lab's own view before the exercise ran.
pub struct Baseline {
    /// `MOUNT_POINT TYPE` of every mount, in order.
    pub mounts: Vec<String>,
}

impl Baseline {
    pub fn of_lab() -> anyhow::Result<Baseline> {
        Ok(Baseline {
            mounts: mount_points(Pid::this()),
        })
    }
}

fn mount_points(pid: Pid) -> Vec<String> {
    evidence::mounts(pid)
        .into_iter()
        .map(|m| format!("{} on {}", m.fs_type, m.mount_point.display()))
        .collect()
}

/// Every check of the exercise.
pub fn verify(s: &Subject) -> Vec<Check> {
    // Images and builds make files, not a container: their program hands
    // itself over, and the lab reads what it wrote.
    let makes_files = matches!(s.ex.chapter, "ch09" | "ch10");
    let wanted = if s.ex.id == "ch08-caps" || makes_files {
        s.process
    } else {
        s.container
    };
    let Some(pid) = wanted else {
        return vec![Check::fail(
            "your program handed the lab something else than it should: \
             keep the given `handoff::…` line as it is",
        )];
    };
    match s.ex.chapter {
        "ch02" => ch02::verify(s, pid),
        "ch03" => ch03::verify(s, pid),
        "ch04" => ch04::verify(s, pid),
        "ch05" => ch05::verify(s, pid),
        "ch06" => ch06::verify(s, pid),
        "ch07" => ch07::verify(s, pid),
        "ch08" => ch08::verify(s, pid),
        "ch09" => ch09::verify(s),
        "ch10" => ch10::verify(s),
        "ch11" => ch11::verify(s, pid),
        _ => vec![Check::fail(format!(
            "the lab has no checks for {}",
            s.ex.id
        ))],
    }
}

/// Why a program ended before it handed its container over, when its
/// message says it.
pub fn explain_failure(ex: &Exercise, stderr: &str, _cgroup_version: Option<u8>) -> Option<String> {
    let said = |words: &[&str]| words.iter().all(|w| stderr.contains(w));
    if said(&["pivot_root", "EINVAL"]) {
        return Some(
            "pivot_root refused (EINVAL): the new root must be a mount point and no mount \
             involved may be shared; make the tree private and bind the root onto itself first"
                .into(),
        );
    }
    if ex.chapter == "ch08" && said(&["PR_CAPBSET_DROP"]) {
        return Some(
            "the bounding set could not be changed: dropping from it needs CAP_SETPCAP in \
             the effective set; drop the bounding set before narrowing the process's own sets"
                .into(),
        );
    }
    if said(&["ENOENT"]) || said(&["No such file"]) {
        return Some("a path it used does not exist (ENOENT): see its message above".into());
    }
    None
}

/// `the child's uts namespace is its own: A, the host's B` or the failure.
pub fn own_namespace(s: &Subject, pid: Pid, kind: Namespace) -> Check {
    let name = kind.proc_name();
    let (ours, theirs) = (evidence::ns(s.host, kind), evidence::ns(pid, kind));
    Check::new(
        theirs != 0 && ours != theirs,
        format!("the child's {name} namespace is its own: {theirs}, the host's {ours}"),
        format!("the child's {name} namespace is the host's: {ours} on both sides"),
    )
}

/// The cgroup directories of a cgroup, by controller: one `*` on v2, the
/// hierarchy's controllers on v1 (`/sys/fs/cgroup/cpu,cpuacct/…`).
pub fn cgroup_dirs(cgroup: &Cgroup) -> Vec<(String, PathBuf)> {
    if cgroup.version() == 2 {
        return cgroup
            .paths()
            .into_iter()
            .map(|p| ("*".to_string(), p))
            .collect();
    }
    let mut dirs = Vec::new();
    for path in cgroup.paths() {
        let hierarchy = path
            .strip_prefix(container_lab::kernel::cgroups::CGROUP_ROOT)
            .ok()
            .and_then(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        for controller in hierarchy.split(',') {
            dirs.push((controller.to_string(), path.clone()));
        }
    }
    dirs
}

/// `1 2` or, past a few, `183 processes`.
pub fn some_numbers(numbers: &[u32]) -> String {
    if numbers.len() <= 4 {
        let words: Vec<String> = numbers.iter().map(u32::to_string).collect();
        words.join(" ")
    } else {
        format!("{} processes", numbers.len())
    }
}
