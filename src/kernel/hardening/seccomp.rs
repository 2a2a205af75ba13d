//! Docker's default seccomp profile, as an allow-list: the system calls a
//! container may make, taken from moby's `profiles/seccomp/default.json`.
//! Every other call fails with EPERM before the kernel runs any of it.
//!
//! - **Architectures.** The numbers differ between x86_64 and aarch64, and
//!   aarch64 never had the old calls (`open`, `stat`, `fork` …) that
//!   x86_64 keeps beside their `*at` forms; the lists name them apart.
//!   Calls that exist only for 32-bit programs (`chown32`, `socketcall`,
//!   the `*_time64` family) are left out: the filter admits only the
//!   native architecture, and a 32-bit call ends the process.
//! - **Arguments.** `clone` only without namespace flags, `personality`
//!   only with the values Docker allows, `socket` for every family but
//!   AF_ALG and AF_VSOCK.
//! - **Capabilities.** Some calls are allowed only when the process keeps
//!   the capability they serve, as Docker ties them: the mount and
//!   namespace calls to CAP_SYS_ADMIN, `reboot` to CAP_SYS_BOOT …
//! - **clone3** is answered with ENOSYS, not EPERM: its flags sit in a
//!   struct in memory that a seccomp filter cannot read, so the filter
//!   pretends the call does not exist, and glibc falls back to `clone`,
//!   whose flags it can check.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Allowed to every container, on x86_64 and aarch64 alike.
pub const ALLOWED: &str = "
accept accept4 adjtimex bind brk cachestat capget capset chdir
clock_adjtime clock_getres clock_gettime clock_nanosleep close
close_range connect copy_file_range dup dup3 epoll_create1 epoll_ctl
epoll_pwait epoll_pwait2 eventfd2 execve execveat exit exit_group
faccessat faccessat2 fadvise64 fallocate fanotify_mark fchdir fchmod
fchmodat fchmodat2 fchown fchownat fcntl fdatasync fgetxattr flistxattr
flock fremovexattr fsetxattr fstat fstatfs fsync ftruncate futex
futex_requeue futex_wait futex_waitv futex_wake get_robust_list getcpu
getcwd getdents64 getegid geteuid getgid getgroups getitimer getpeername
getpgid getpid getppid getpriority getrandom getresgid getresuid
getrlimit getrusage getsid getsockname getsockopt gettid gettimeofday
getuid getxattr getxattrat inotify_add_watch inotify_init1
inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents
io_setup io_submit ioctl ioprio_get ioprio_set kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lgetxattr linkat listen
listmount listxattr listxattrat llistxattr lremovexattr lseek lsetxattr
madvise map_shadow_stack membarrier memfd_create memfd_secret mincore
mkdirat mknodat mlock mlock2 mlockall mmap mprotect mq_getsetattr
mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap mseal
msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep openat openat2 pidfd_open pidfd_send_signal
pipe2 pkey_alloc pkey_free pkey_mprotect ppoll prctl pread64 preadv
preadv2 prlimit64 process_mrelease process_vm_readv process_vm_writev
pselect6 ptrace pwrite64 pwritev pwritev2 read readahead readlinkat
readv recvfrom recvmmsg recvmsg remap_file_pages removexattr
removexattrat renameat renameat2 restart_syscall rseq rt_sigaction
rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_tgsigqueueinfo sched_get_priority_max
sched_get_priority_min sched_getaffinity sched_getattr sched_getparam
sched_getscheduler sched_rr_get_interval sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp semctl semget
semop semtimedop sendfile sendmmsg sendmsg sendto set_robust_list
set_tid_address setfsgid setfsuid setgid setgroups setitimer setpgid
setpriority setregid setresgid setresuid setreuid setrlimit setsid
setsockopt setuid setxattr setxattrat shmat shmctl shmdt shmget shutdown
sigaltstack signalfd4 socketpair splice statfs statmount statx symlinkat
sync sync_file_range syncfs sysinfo tee tgkill timer_create timer_delete
timer_getoverrun timer_gettime timer_settime timerfd_create
timerfd_gettime timerfd_settime times tkill truncate umask uname
unlinkat utimensat vmsplice wait4 waitid write writev
";

/// Allowed on x86_64 only: the calls aarch64 does not have.
pub const ALLOWED_X86_64: &str = "
access alarm chmod chown creat dup2 epoll_create epoll_ctl_old
epoll_wait epoll_wait_old eventfd fork futimesat getdents getpgrp
get_thread_area inotify_init lchown link lstat mkdir mknod newfstatat
open pause pipe poll readlink rename rmdir select set_thread_area
signalfd stat symlink time unlink uretprobe utime utimes vfork
arch_prctl modify_ldt
";

/// Allowed on aarch64 only: `newfstatat` (79), which the `syscalls`
/// crate names after the kernel's generic table there.
pub const ALLOWED_AARCH64: &str = "fstatat";

// ANCHOR: by_capability
/// Allowed only to a process that keeps the capability (Docker's list).
pub const BY_CAPABILITY: &[(&str, &str)] = &[
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick
         lookup_dcookie lsm_get_self_attr lsm_list_modules
         lsm_set_self_attr mount mount_setattr move_mount open_tree
         perf_event_open quotactl quotactl_fd setdomainname sethostname
         setns syslog umount2 unshare",
    ),
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    (
        "CAP_SYS_PTRACE",
        "kcmp pidfd_getfd process_madvise process_vm_readv
         process_vm_writev ptrace",
    ),
    ("CAP_SYS_RAWIO", "iopl ioperm"), // x86_64 only
    ("CAP_SYS_TIME", "settimeofday clock_settime"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    (
        "CAP_SYS_NICE",
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    ),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];
// ANCHOR_END: by_capability

// ANCHOR: arguments
/// clone(2)'s namespace flags (NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
/// NEWPID, NEWNET): refused unless CAP_SYS_ADMIN is kept.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7e02_0000;
/// personality(2): Linux, 32-bit Linux, each with UNAME26, and the query.
pub const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
/// socket(2): every address family below AF_ALG, between AF_ALG and
/// AF_VSOCK (AF_NFC), and above AF_VSOCK.
pub const AF_ALG: u64 = 38;
pub const AF_VSOCK: u64 = 40;
// ANCHOR_END: arguments

/// The architectures the lab builds for, each with its own numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this program was built for.
    #[cfg(target_arch = "x86_64")]
    pub const NATIVE: Arch = Arch::X86_64;
    #[cfg(target_arch = "aarch64")]
    pub const NATIVE: Arch = Arch::Aarch64;

    /// The number of a system call here, or `None` where there is none.
    pub fn number(self, name: &str) -> Option<i64> {
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok().map(|s| s.id()),
            Arch::Aarch64 => syscalls::aarch64::Sysno::from_str(name)
                .ok()
                .map(|s| s.id()),
        }
        .map(i64::from)
    }

    /// The allowed calls only this architecture has.
    pub fn only_here(self) -> &'static str {
        match self {
            Arch::X86_64 => ALLOWED_X86_64,
            Arch::Aarch64 => ALLOWED_AARCH64,
        }
    }

    /// The kernel's AUDIT_ARCH value, which seccomp_data carries.
    pub fn audit(self) -> u32 {
        match self {
            Arch::X86_64 => 0xc000_003e,
            Arch::Aarch64 => 0xc000_00b7,
        }
    }

    pub(super) fn target(self) -> TargetArch {
        match self {
            Arch::X86_64 => TargetArch::x86_64,
            Arch::Aarch64 => TargetArch::aarch64,
        }
    }
}

/// Docker's profile for a process that keeps the capabilities `caps`
/// (`CAP_…` names), call by call: one description, which the lab's own
/// filters are built from ([`filters`]) and which `lab-runc` and
/// mini-docker's bundles carry as `linux.seccomp` for any runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Allowed whatever their arguments.
    pub any: BTreeSet<&'static str>,
    /// Allowed when one of the tests on the first argument holds.
    pub when: Vec<(&'static str, Vec<ArgTest>)>,
    /// Answered with ENOSYS (clone3 without CAP_SYS_ADMIN).
    pub no_such_call: Vec<&'static str>,
}

/// A test on a call's first argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgTest {
    /// Equal to the value (as an int: the low 32 bits).
    Equal(u64),
    /// Below the value (as an int).
    Below(u64),
    /// Above the value (as an int).
    Above(u64),
    /// None of the mask's bits set (the whole 64-bit argument).
    NoneOf(u64),
}

// ANCHOR: rules
impl Rules {
    pub fn docker_default(arch: Arch, caps: &BTreeSet<String>) -> Result<Rules, String> {
        let admin = caps.contains("CAP_SYS_ADMIN");
        let mut any = BTreeSet::new();
        for name in ALLOWED
            .split_whitespace()
            .chain(arch.only_here().split_whitespace())
        {
            arch.number(name).ok_or_else(|| unknown(name, arch))?;
            any.insert(name);
        }
        for (_, names) in BY_CAPABILITY.iter().filter(|(cap, _)| caps.contains(*cap)) {
            // A call this architecture does not have (iopl on aarch64) is skipped.
            any.extend(
                names
                    .split_whitespace()
                    .filter(|n| arch.number(n).is_some()),
            );
        }
        let personalities = PERSONALITIES.iter().map(|&p| ArgTest::Equal(p)).collect();
        let families = vec![
            ArgTest::Below(AF_ALG),
            ArgTest::Equal(AF_ALG + 1),
            ArgTest::Above(AF_VSOCK),
        ];
        let mut when = vec![("personality", personalities), ("socket", families)];
        let mut no_such_call = Vec::new();
        if !admin {
            when.push(("clone", vec![ArgTest::NoneOf(CLONE_NAMESPACE_FLAGS)]));
            no_such_call.push("clone3");
        }
        Ok(Rules {
            any,
            when,
            no_such_call,
        })
    }
}
// ANCHOR_END: rules

/// The filters for a process that keeps the capabilities `caps`: the
/// allow-list, and without CAP_SYS_ADMIN a second one that answers clone3
/// with ENOSYS. The kernel runs every filter a process has and takes the
/// strictest answer, so the two compose.
// ANCHOR: filters
pub fn filters(arch: Arch, caps: &BTreeSet<String>) -> Result<Vec<BpfProgram>, String> {
    let rules = Rules::docker_default(arch, caps)?;
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let mut programs = vec![compile(
        allow_list(arch, &rules)?,
        eperm,
        SeccompAction::Allow,
        arch,
    )?];
    if !rules.no_such_call.is_empty() {
        let numbers = numbers(arch, &rules.no_such_call)?;
        let enosys = SeccompAction::Errno(libc::ENOSYS as u32);
        programs.push(compile(numbers, SeccompAction::Allow, enosys, arch)?);
    }
    Ok(programs)
}

/// The calls `rules` allow, by number, each with the rules on its
/// arguments (none: allowed whatever they are).
fn allow_list(arch: Arch, rules: &Rules) -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    let mut allowed = numbers(arch, &rules.any)?;
    for (name, tests) in &rules.when {
        let tests = tests.iter().map(|&test| argument_rule(test));
        let nr = arch.number(name).ok_or_else(|| unknown(name, arch))?;
        allowed.insert(nr, tests.collect::<Result<_, _>>()?);
    }
    // The allow-list lets those through, so that the ENOSYS filter's
    // answer is the only one, rather than losing a tie with EPERM.
    allowed.extend(numbers(arch, &rules.no_such_call)?);
    Ok(allowed)
}
// ANCHOR_END: filters

/// The numbers of `names`, each allowed whatever its arguments.
fn numbers<'a>(
    arch: Arch,
    names: impl IntoIterator<Item = &'a &'static str>,
) -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    names
        .into_iter()
        .map(|name| {
            let nr = arch.number(name).ok_or_else(|| unknown(name, arch))?;
            Ok((nr, Vec::new()))
        })
        .collect()
}

fn argument_rule(test: ArgTest) -> Result<SeccompRule, String> {
    match test {
        ArgTest::Equal(value) => compare(0, SeccompCmpOp::Eq, value),
        ArgTest::Below(value) => compare(0, SeccompCmpOp::Lt, value),
        ArgTest::Above(value) => compare(0, SeccompCmpOp::Gt, value),
        ArgTest::NoneOf(mask) => masked_eq(0, mask, 0),
    }
}

fn unknown(name: &str, arch: Arch) -> String {
    format!("the seccomp allow-list names {name:?}, which {arch:?} does not have")
}

/// A filter that answers `matched` for the calls in `rules` (those with
/// rules only when one of them holds) and `mismatch` for every other call.
///
/// seccompiler compares the number with each call in turn, four
/// instructions per call: some 1,500 for Docker's list, which the kernel
/// converts, compiles and, when it attaches the filter, runs once per
/// system call number to find those it may allow without running it
/// again (its `seccomp_cache`). So the calls that need no argument check
/// come first here, as ranges of numbers: two comparisons per range, a
/// few dozen ranges. What falls through goes to seccompiler's filter of
/// the calls whose arguments are checked.
// ANCHOR: compile
pub fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
    arch: Arch,
) -> Result<BpfProgram, String> {
    let plain = |nr: i64, rules: &Vec<SeccompRule>| rules.is_empty() && u32::try_from(nr).is_ok();
    let numbers: Vec<u32> = rules
        .iter()
        .filter(|&(&nr, r)| plain(nr, r))
        .map(|(&nr, _)| nr as u32)
        .collect();
    let ranges = ranges(&numbers);
    // Each range's jumps reach past every later one: offsets are 8 bits.
    if ranges.is_empty() || ranges.len() > 120 {
        return seccompiler_filter(rules, mismatch, matched, arch);
    }
    let checked = rules.into_iter().filter(|(nr, r)| !plain(*nr, r)).collect();
    let rest = seccompiler_filter(checked, mismatch, matched.clone(), arch)?;
    let jump = |code: u16, k: u32, jt: usize, jf: usize| seccompiler::sock_filter {
        code,
        jt: jt as u8,
        jf: jf as u8,
        k,
    };
    let statement = |code: u16, k: u32| jump(code, k, 0, 0);
    let mut program = vec![
        // Another architecture's call numbers mean other calls: killed.
        statement(BPF_LD_W_ABS, SECCOMP_DATA_ARCH),
        jump(BPF_JEQ, arch.audit(), 1, 0),
        statement(BPF_RET, libc::SECCOMP_RET_KILL_PROCESS),
        statement(BPF_LD_W_ABS, SECCOMP_DATA_NR),
    ];
    let count = ranges.len();
    for (i, &(low, high)) in ranges.iter().enumerate() {
        let after = 2 * (count - i); // from the next instruction to `rest`
        program.push(jump(BPF_JGT, high, 1, 0));
        program.push(jump(BPF_JGE, low, after - 1, after));
    }
    program.push(statement(BPF_JA, 1));
    program.push(statement(BPF_RET, u32::from(matched)));
    program.extend(rest);
    Ok(program)
}
// ANCHOR_END: compile

/// Sorted numbers as runs of consecutive ones: `[0, 1, 2, 5]` → (0, 2), (5, 5).
fn ranges(numbers: &[u32]) -> Vec<(u32, u32)> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &n in numbers {
        match ranges.last_mut() {
            Some((_, high)) if *high + 1 == n => *high = n,
            _ => ranges.push((n, n)),
        }
    }
    ranges
}

fn seccompiler_filter(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
    arch: Arch,
) -> Result<BpfProgram, String> {
    let filter =
        SeccompFilter::new(rules, mismatch, matched, arch.target()).map_err(|e| e.to_string())?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())
}

// Classic BPF, as <linux/filter.h> and <linux/seccomp.h> spell it.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JA: u16 = 0x05;
const BPF_JEQ: u16 = 0x15;
const BPF_JGT: u16 = 0x25;
const BPF_JGE: u16 = 0x35;
const BPF_RET: u16 = 0x06;
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;

/// A rule on one 32-bit argument (an int or unsigned int in the kernel).
fn compare(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompRule, String> {
    let condition = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
        .map_err(|e| e.to_string())?;
    SeccompRule::new(vec![condition]).map_err(|e| e.to_string())
}

/// `(argument & mask) == value`, on the whole 64-bit argument.
fn masked_eq(arg: u8, mask: u64, value: u64) -> Result<SeccompRule, String> {
    let condition = SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(mask),
        value,
    )
    .map_err(|e| e.to_string())?;
    SeccompRule::new(vec![condition]).map_err(|e| e.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];
    pub(crate) const ALLOW: u32 = 0x7fff_0000;
    pub(crate) const KILL: u32 = 0x8000_0000;
    const EPERM: u32 = 0x0005_0000 | libc::EPERM as u32;
    const ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;

    /// The kernel's side, in miniature: runs classic BPF on seccomp_data
    /// (nr, arch, instruction pointer, six arguments).
    pub(crate) fn run(program: &BpfProgram, audit_arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = vec![nr as u32, audit_arch, 0, 0];
        for arg in args {
            data.extend([arg as u32, (arg >> 32) as u32]);
        }
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = &program[pc];
            pc += 1;
            let jump = |taken: bool| if taken { i.jt } else { i.jf } as usize;
            match i.code {
                0x20 => a = data[i.k as usize / 4], // ld [k]
                0x54 => a &= i.k,                   // and #k
                0x05 => pc += i.k as usize,         // ja
                0x15 => pc += jump(a == i.k),       // jeq
                0x25 => pc += jump(a > i.k),        // jgt
                0x35 => pc += jump(a >= i.k),       // jge
                0x06 => return i.k,                 // ret
                other => panic!("opcode {other:#x} not emulated"),
            }
        }
    }

    /// The answer of a set of filters: the strictest, as the kernel takes it.
    fn answer(arch: Arch, caps: &[&str], name: &str, args: [u64; 6]) -> u32 {
        let caps: BTreeSet<String> = caps.iter().map(|c| c.to_string()).collect();
        let audit = arch.audit();
        let nr = arch.number(name).unwrap();
        stack_answer(&filters(arch, &caps).unwrap(), audit, nr, args)
    }

    /// What a process with all of `programs` gets for a call: the
    /// strictest answer (kill, then errno, then allow; as far as used).
    pub(crate) fn stack_answer(
        programs: &[BpfProgram],
        audit: u32,
        nr: i64,
        args: [u64; 6],
    ) -> u32 {
        let answers: Vec<u32> = programs.iter().map(|p| run(p, audit, nr, args)).collect();
        *answers
            .iter()
            .find(|&&a| a == KILL)
            .or_else(|| answers.iter().find(|&&a| a != ALLOW))
            .unwrap_or(&ALLOW)
    }

    fn call(arch: Arch, caps: &[&str], name: &str, arg0: u64) -> u32 {
        answer(arch, caps, name, [arg0, 0, 0, 0, 0, 0])
    }

    const DEFAULT: &[&str] = &["CAP_CHOWN", "CAP_MKNOD", "CAP_SYS_CHROOT"];
    const ADMIN: &[&str] = &["CAP_CHOWN", "CAP_SYS_ADMIN"];

    /// The ranges in front answer every call as seccompiler's own filter
    /// of the same list does, in a fifth of the instructions or fewer.
    #[test]
    fn the_compact_filter_answers_every_call_as_seccompilers_own() {
        let tried: [u64; 8] = [
            0,
            0x8,
            0x1000_0000,
            CLONE_NAMESPACE_FLAGS,
            38,
            39,
            40,
            0xffff_ffff,
        ];
        for arch in ARCHES {
            for caps in [DEFAULT, ADMIN] {
                let caps: BTreeSet<String> = caps.iter().map(|c| c.to_string()).collect();
                let rules = Rules::docker_default(arch, &caps).unwrap();
                let allowed = allow_list(arch, &rules).unwrap();
                let eperm = SeccompAction::Errno(libc::EPERM as u32);
                let allow = SeccompAction::Allow;
                let compact = compile(allowed.clone(), eperm.clone(), allow.clone(), arch).unwrap();
                let plain = seccompiler_filter(allowed, eperm, allow, arch).unwrap();
                assert!(
                    compact.len() * 5 < plain.len(),
                    "{arch:?}: {} instructions against seccompiler's {}",
                    compact.len(),
                    plain.len()
                );
                // Every number, and the x32 ones (bit 30 set) on top.
                for nr in (0..1024).chain((0..1024).map(|n| n | 0x4000_0000)) {
                    for arg in tried {
                        let args = [arg, 0, 0, 0, 0, 0];
                        assert_eq!(
                            run(&compact, arch.audit(), nr, args),
                            run(&plain, arch.audit(), nr, args),
                            "{arch:?}: call {nr} with {arg:#x}"
                        );
                    }
                }
                // A call of another architecture (i386's exit) is killed.
                assert_eq!(run(&compact, 0x4000_0003, 1, [0; 6]), KILL);
            }
        }
    }

    #[test]
    fn every_name_exists_where_the_lists_say() {
        for name in ALLOWED.split_whitespace() {
            for arch in ARCHES {
                assert!(arch.number(name).is_some(), "{name} on {arch:?}");
            }
        }
        for (name, here, not_there) in ALLOWED_X86_64
            .split_whitespace()
            .map(|n| (n, Arch::X86_64, Arch::Aarch64))
            .chain(
                ALLOWED_AARCH64
                    .split_whitespace()
                    .map(|n| (n, Arch::Aarch64, Arch::X86_64)),
            )
        {
            assert!(here.number(name).is_some(), "{name} on {here:?}");
            assert!(
                not_there.number(name).is_none(),
                "{name} is on {not_there:?} too"
            );
        }
        for (cap, names) in BY_CAPABILITY {
            assert!(caps::Capability::from_str(cap).is_ok(), "{cap}");
            for name in names.split_whitespace() {
                assert!(ARCHES.iter().any(|a| a.number(name).is_some()), "{name}");
            }
        }
        // The kernel's own numbers for a few, on both tables.
        assert_eq!(Arch::X86_64.number("openat"), Some(257));
        assert_eq!(Arch::X86_64.number("newfstatat"), Some(262));
        assert_eq!(Arch::Aarch64.number("openat"), Some(56));
        assert_eq!(Arch::Aarch64.number("fstatat"), Some(79));
        assert_eq!(Arch::Aarch64.number("clone3"), Some(435));
    }

    #[test]
    fn the_dangerous_calls_are_not_on_the_list() {
        let everyone: Vec<&str> = ALLOWED
            .split_whitespace()
            .chain(ALLOWED_X86_64.split_whitespace())
            .collect();
        for name in [
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "unshare",
            "setns",
            "mount",
            "umount2",
            "pivot_root",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "clone",
            "clone3",
            "personality",
            "socket",
            "userfaultfd",
            "kexec_load",
            "init_module",
            "perf_event_open",
            "open_by_handle_at",
        ] {
            assert!(!everyone.contains(&name), "{name} is allowed to everyone");
        }
    }

    #[test]
    fn the_default_profile_answers_as_docker_does() {
        let newuser = libc::CLONE_NEWUSER as u64;
        for arch in ARCHES {
            let call = |name, arg0| call(arch, DEFAULT, name, arg0);
            assert_eq!(call("read", 0), ALLOW, "{arch:?}");
            assert_eq!(call("chroot", 0), ALLOW, "CAP_SYS_CHROOT is kept");
            for refused in [
                "keyctl",
                "bpf",
                "unshare",
                "setns",
                "mount",
                "umount2",
                "fsopen",
                "fsconfig",
                "fsmount",
                "fspick",
                "move_mount",
                "open_tree",
                "mount_setattr",
                "io_uring_setup",
                "perf_event_open",
                "pivot_root",
                "reboot",
            ]
            .into_iter()
            .filter(|n| arch.number(n).is_some())
            {
                assert_eq!(call(refused, 0), EPERM, "{refused} on {arch:?}");
            }
            assert_eq!(call("ptrace", 0), ALLOW);
            assert_eq!(call("clone", libc::SIGCHLD as u64), ALLOW, "a plain fork");
            assert_eq!(call("clone", newuser | libc::SIGCHLD as u64), EPERM);
            assert_eq!(call("clone", libc::CLONE_NEWNET as u64), EPERM);
            assert_eq!(call("clone3", 0), ENOSYS);
            assert_eq!(call("personality", 0xffff_ffff), ALLOW);
            assert_eq!(call("personality", 0x0006), EPERM, "PER_BSD");
            assert_eq!(call("socket", libc::AF_UNIX as u64), ALLOW);
            assert_eq!(call("socket", libc::AF_INET6 as u64), ALLOW);
            assert_eq!(call("socket", 39), ALLOW, "AF_NFC");
            assert_eq!(call("socket", AF_ALG), EPERM);
            assert_eq!(call("socket", AF_VSOCK), EPERM);
        }
        // A call made for another architecture (a 32-bit one) ends the process.
        let caps: BTreeSet<String> = DEFAULT.iter().map(|c| c.to_string()).collect();
        let program = &filters(Arch::X86_64, &caps).unwrap()[0];
        assert_eq!(run(program, 0x4000_0003, 3, [0; 6]), KILL, "i386");
    }

    #[test]
    fn cap_sys_admin_opens_the_admin_calls_as_in_docker() {
        let newuser = libc::CLONE_NEWUSER as u64;
        for arch in ARCHES {
            let call = |name, arg0| call(arch, ADMIN, name, arg0);
            for name in [
                "unshare",
                "setns",
                "mount",
                "umount2",
                "fsopen",
                "open_tree",
                "move_mount",
                "mount_setattr",
                "bpf",
                "clone3",
            ] {
                assert_eq!(call(name, 0), ALLOW, "{name} on {arch:?}");
            }
            assert_eq!(call("clone", newuser), ALLOW);
            // Docker never allows these, whatever the capabilities.
            assert_eq!(call("pivot_root", 0), EPERM);
            assert_eq!(call("io_uring_setup", 0), EPERM);
            assert_eq!(call("keyctl", 0), EPERM);
        }
        assert_eq!(
            filters(Arch::NATIVE, &ADMIN.iter().map(|c| c.to_string()).collect())
                .unwrap()
                .len(),
            1,
            "no clone3 filter with CAP_SYS_ADMIN"
        );
    }
}
