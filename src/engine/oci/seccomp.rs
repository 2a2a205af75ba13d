//! `linux.seccomp` translated into BPF with `seccompiler` (through
//! `kernel::hardening::seccomp::compile`, which makes it compact).
//!
//! A seccompiler filter has one action for a match and one for a
//! mismatch, while an OCI profile gives each rule its own action. The
//! kernel runs every filter a process has and keeps the strictest answer
//! (kill > trap > errno > trace > log > allow), so a profile becomes a
//! stack: one filter per action that answers with that action for its
//! rules and allows everything else, and one for the default action that
//! allows every syscall any rule names. A syscall no rule names gets the
//! default; one a rule names gets that rule's action, from its filter.
//!
//! Only the native architecture is admitted (a 32-bit call ends the
//! process); syscall names this architecture lacks are skipped, as
//! libseccomp does.

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule,
};

use super::OciError;
use crate::kernel::hardening::seccomp::{self, Arch, ArgTest, Rules};

const FIELD: &str = "linux.seccomp";

/// The engine's own profile (Docker's default, `seccomp::Rules`) for a
/// process that keeps `caps`, as `linux.seccomp`: a bundle that carries
/// it gets the same filter from any runtime. Entries for one call are
/// alternatives, and the tests within one entry must all hold, so each
/// test on an argument is an entry of its own.
// ANCHOR: docker_default
pub fn docker_default(caps: &BTreeSet<String>) -> Result<LinuxSeccomp, OciError> {
    let rules =
        Rules::docker_default(Arch::NATIVE, caps).map_err(|e| OciError::invalid(FIELD, e))?;
    let names = |names: &mut dyn Iterator<Item = &&str>| names.map(|n| n.to_string()).collect();
    let mut syscalls = vec![syscall(names(&mut rules.any.iter()), None, None)];
    for (name, tests) in &rules.when {
        for &test in tests {
            syscalls.push(syscall(vec![name.to_string()], None, Some(argument(test)?)));
        }
    }
    if !rules.no_such_call.is_empty() {
        let enosys = Some(libc::ENOSYS as u32);
        syscalls.push(syscall(names(&mut rules.no_such_call.iter()), enosys, None));
    }
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(libc::EPERM as u32));
    profile.set_architectures(Some(vec![if cfg!(target_arch = "aarch64") {
        oci_spec::runtime::Arch::ScmpArchAarch64
    } else {
        oci_spec::runtime::Arch::ScmpArchX86_64
    }]));
    profile.set_syscalls(Some(syscalls));
    Ok(profile)
}
// ANCHOR_END: docker_default

/// Allowed, or with `errno` answered so; when `argument` holds, if given.
fn syscall(
    names: Vec<String>,
    errno: Option<u32>,
    argument: Option<LinuxSeccompArg>,
) -> LinuxSyscall {
    let mut syscall = LinuxSyscall::default();
    syscall.set_names(names);
    syscall.set_action(match errno {
        Some(_) => LinuxSeccompAction::ScmpActErrno,
        None => LinuxSeccompAction::ScmpActAllow,
    });
    syscall.set_errno_ret(errno);
    syscall.set_args(argument.map(|a| vec![a]));
    syscall
}

/// A test on the first argument, in libseccomp's terms (for a masked
/// comparison, `value` is the mask and `valueTwo` the datum).
fn argument(test: ArgTest) -> Result<LinuxSeccompArg, OciError> {
    let (op, value, datum) = match test {
        ArgTest::Equal(value) => (LinuxSeccompOperator::ScmpCmpEq, value, None),
        ArgTest::Below(value) => (LinuxSeccompOperator::ScmpCmpLt, value, None),
        ArgTest::Above(value) => (LinuxSeccompOperator::ScmpCmpGt, value, None),
        ArgTest::NoneOf(mask) => (LinuxSeccompOperator::ScmpCmpMaskedEq, mask, Some(0u64)),
    };
    let mut argument = oci_spec::runtime::LinuxSeccompArgBuilder::default()
        .index(0usize)
        .value(value)
        .op(op);
    if let Some(datum) = datum {
        argument = argument.value_two(datum);
    }
    argument
        .build()
        .map_err(|e| OciError::invalid(FIELD, e.to_string()))
}

/// Refuses what cannot be honoured before anything is made.
pub fn check(profile: &LinuxSeccomp) -> Result<(), OciError> {
    if profile.listener_path().is_some() {
        return Err(OciError::unsupported(
            "linux.seccomp.listenerPath",
            "seccomp user notification is not implemented",
        ));
    }
    let actions = std::iter::once(profile.default_action())
        .chain(profile.syscalls().iter().flatten().map(|s| s.action()));
    for action in actions {
        if action == LinuxSeccompAction::ScmpActNotify {
            return Err(OciError::unsupported(
                "linux.seccomp: SCMP_ACT_NOTIFY",
                "seccomp user notification is not implemented",
            ));
        }
    }
    compile(profile).map(drop)
}

/// The filters, in the order to install them, and the seccomp(2) flags.
pub fn compile(profile: &LinuxSeccomp) -> Result<(Vec<BpfProgram>, u32), OciError> {
    let arch = Arch::NATIVE;
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    // Rules grouped by their action, in the order the profile names them.
    let mut groups: Vec<(SeccompAction, BTreeMap<i64, Vec<SeccompRule>>)> = Vec::new();
    let mut named: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for syscall in profile.syscalls().iter().flatten() {
        let act = action(syscall.action(), syscall.errno_ret())?;
        let conditions = conditions(syscall.args().as_deref().unwrap_or(&[]))?;
        for name in syscall.names() {
            let Some(number) = arch.number(name) else {
                continue;
            };
            let index = match groups.iter().position(|(a, _)| *a == act) {
                Some(i) => i,
                None => {
                    groups.push((act.clone(), BTreeMap::new()));
                    groups.len() - 1
                }
            };
            for map in [&mut groups[index].1, &mut named] {
                add_rule(map, number, conditions.clone())?;
            }
        }
    }
    let mut programs = Vec::new();
    let build = |rules, mismatch, matched| -> Result<BpfProgram, OciError> {
        seccomp::compile(rules, mismatch, matched, arch).map_err(|e| OciError::invalid(FIELD, e))
    };
    if default != SeccompAction::Allow {
        programs.push(build(named, default.clone(), SeccompAction::Allow)?);
    }
    for (act, rules) in groups {
        if act != SeccompAction::Allow && act != default {
            programs.push(build(rules, SeccompAction::Allow, act)?);
        }
    }
    let mut flags = 0u32;
    for flag in profile.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG as u32,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {
                libc::SECCOMP_FILTER_FLAG_TSYNC as u32
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(OciError::unsupported(
                    "linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                    "it goes with user notification, which is not implemented",
                ))
            }
        };
    }
    Ok((programs, flags))
}

/// A rule for `number`: conditions ANDed, rules for one syscall ORed;
/// an unconditional rule makes the syscall match whatever else is there.
fn add_rule(
    map: &mut BTreeMap<i64, Vec<SeccompRule>>,
    number: i64,
    conditions: Vec<SeccompCondition>,
) -> Result<(), OciError> {
    let unconditional = map.get(&number).is_some_and(Vec::is_empty);
    if unconditional {
        return Ok(());
    }
    if conditions.is_empty() {
        map.insert(number, Vec::new());
        return Ok(());
    }
    let rule = SeccompRule::new(conditions).map_err(|e| OciError::invalid(FIELD, e.to_string()))?;
    map.entry(number).or_default().push(rule);
    Ok(())
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<SeccompAction, OciError> {
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => {
            SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32))
        }
        // libseccomp's SCMP_ACT_KILL is the thread's.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActTrace => {
            SeccompAction::Trace(errno.unwrap_or(libc::EPERM as u32))
        }
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(OciError::unsupported(
                "linux.seccomp: SCMP_ACT_NOTIFY",
                "seccomp user notification is not implemented",
            ))
        }
    })
}

fn conditions(
    args: &[oci_spec::runtime::LinuxSeccompArg],
) -> Result<Vec<SeccompCondition>, OciError> {
    args.iter()
        .map(|arg| {
            let index = u8::try_from(arg.index())
                .map_err(|_| OciError::invalid(FIELD, format!("argument index {}", arg.index())))?;
            let (op, value) = match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
                LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
                LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
                LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
                LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
                LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
                // libseccomp: value is the mask, valueTwo the datum.
                LinuxSeccompOperator::ScmpCmpMaskedEq => (
                    SeccompCmpOp::MaskedEq(arg.value()),
                    arg.value_two().unwrap_or(0),
                ),
            };
            SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
                .map_err(|e| OciError::invalid(FIELD, e.to_string()))
        })
        .collect()
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog) for each filter.
pub fn install(programs: &[BpfProgram], flags: u32) -> Result<(), OciError> {
    for program in programs {
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // Safety: a filter program that outlives the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            )
        };
        nix::errno::Errno::result(ret).map_err(OciError::sys("install the seccomp filter"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::hardening::seccomp::{filters, tests::stack_answer, CLONE_NAMESPACE_FLAGS};

    /// The bundle's form of the engine's profile, compiled as lab-runc
    /// compiles any bundle's, answers every call as the engine's own
    /// filters do: with Docker's capabilities and with CAP_SYS_ADMIN.
    #[test]
    fn the_bundles_profile_answers_every_call_as_the_engines_own() {
        let tried = [
            0,
            0x8,
            0x1000_0000,
            CLONE_NAMESPACE_FLAGS,
            38,
            39,
            40,
            0xffff_ffff,
        ];
        for caps in [&["CAP_CHOWN", "CAP_SYS_CHROOT"][..], &["CAP_SYS_ADMIN"]] {
            let caps: BTreeSet<String> = caps.iter().map(|c| c.to_string()).collect();
            let (bundle, flags) = compile(&docker_default(&caps).unwrap()).unwrap();
            assert_eq!(flags, 0);
            let engine = filters(Arch::NATIVE, &caps).unwrap();
            let audit = Arch::NATIVE.audit();
            for nr in 0..1024 {
                for arg in tried {
                    let args = [arg, 0, 0, 0, 0, 0];
                    assert_eq!(
                        stack_answer(&bundle, audit, nr, args),
                        stack_answer(&engine, audit, nr, args),
                        "call {nr} with {arg:#x}, keeping {caps:?}"
                    );
                }
            }
        }
    }
}
