//! `--security-opt seccomp=FILE`: a seccomp profile in Docker's JSON format
//! (`defaultAction`, `syscalls` with `names`, `action`, `args`, `errnoRet`,
//! `includes`/`excludes` by capability and architecture), compiled to BPF.
//!
//! A BPF program has one answer for a match and one for the rest, so the
//! profile becomes one program per action: the `SCMP_ACT_ALLOW` rules with
//! the default action for the rest, and for every other action a program
//! that answers the listed calls so and allows the rest. The kernel runs
//! them all and takes the strictest answer, which is the profile's answer.
//! Names this architecture does not have are skipped, as Docker skips them.

use std::collections::{BTreeMap, BTreeSet};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule,
};
use serde::Deserialize;

use super::seccomp::Arch;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    syscalls: Vec<Syscalls>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscalls {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Arg>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u8,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Debug, Default, Deserialize)]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
}

/// libseccomp's name for this architecture, as profiles spell it.
fn arch_names(arch: Arch) -> [&'static str; 2] {
    match arch {
        Arch::X86_64 => ["SCMP_ARCH_X86_64", "amd64"],
        Arch::Aarch64 => ["SCMP_ARCH_AARCH64", "arm64"],
    }
}

fn action(name: &str, errno: Option<u32>) -> Result<SeccompAction, String> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_LOG" => SeccompAction::Log,
        "SCMP_ACT_TRACE" => SeccompAction::Trace(errno.unwrap_or(0)),
        other => {
            return Err(format!(
                "unknown seccomp action {other:?}: use SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, SCMP_ACT_LOG or SCMP_ACT_TRACE"
            ))
        }
    })
}

fn condition(arg: &Arg) -> Result<SeccompCondition, String> {
    let (op, value) = match arg.op.as_str() {
        "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, arg.value),
        "SCMP_CMP_NE" => (SeccompCmpOp::Ne, arg.value),
        "SCMP_CMP_LT" => (SeccompCmpOp::Lt, arg.value),
        "SCMP_CMP_LE" => (SeccompCmpOp::Le, arg.value),
        "SCMP_CMP_GT" => (SeccompCmpOp::Gt, arg.value),
        "SCMP_CMP_GE" => (SeccompCmpOp::Ge, arg.value),
        // Docker's value is the mask, valueTwo what the masked bits equal.
        "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(arg.value), arg.value_two),
        other => return Err(format!("unknown seccomp comparison {other:?}")),
    };
    SeccompCondition::new(arg.index, SeccompCmpArgLen::Qword, op, value).map_err(|e| e.to_string())
}

/// Docker's rule for `args`: all on distinct arguments are one rule (and);
/// several on the same argument are alternatives (or).
fn rules(args: &[Arg]) -> Result<Vec<SeccompRule>, String> {
    if args.is_empty() {
        return Ok(Vec::new());
    }
    let indices: BTreeSet<u8> = args.iter().map(|a| a.index).collect();
    let rule = |conds: Vec<SeccompCondition>| SeccompRule::new(conds).map_err(|e| e.to_string());
    if indices.len() == args.len() {
        Ok(vec![rule(
            args.iter().map(condition).collect::<Result<_, _>>()?,
        )?])
    } else {
        args.iter().map(|a| rule(vec![condition(a)?])).collect()
    }
}

/// Parses a Docker seccomp profile, so that a bad one is refused when the
/// container is created, with what was wrong.
pub fn check(json: &str) -> Result<(), String> {
    compile(json, Arch::NATIVE, &BTreeSet::new()).map(drop)
}

/// The programs for a process that keeps `caps`, installed in order.
pub fn compile(json: &str, arch: Arch, caps: &BTreeSet<String>) -> Result<Vec<BpfProgram>, String> {
    let profile: DockerProfile = serde_json::from_str(json)
        .map_err(|e| format!("the seccomp profile is not Docker's JSON format: {e}"))?;
    let native = arch_names(arch);
    if !profile.architectures.is_empty()
        && !profile
            .architectures
            .iter()
            .any(|a| native.contains(&a.as_str()))
    {
        return Err(format!(
            "the seccomp profile's architectures {:?} do not include this machine's {}",
            profile.architectures, native[0]
        ));
    }
    let default = action(&profile.default_action, profile.default_errno_ret)?;
    // Rules grouped by their action; a call listed twice keeps both rules.
    type Calls = BTreeMap<i64, Option<Vec<SeccompRule>>>;
    let mut by_action: Vec<(SeccompAction, Calls)> = Vec::new();
    for entry in &profile.syscalls {
        let applies = |filter: &Filter, empty: bool| {
            let caps_ok = filter.caps.iter().all(|c| caps.contains(c));
            let arch_ok = filter.arches.iter().any(|a| native.contains(&a.as_str()));
            if empty {
                caps_ok && (filter.arches.is_empty() || arch_ok)
            } else {
                (!filter.caps.is_empty() && filter.caps.iter().any(|c| caps.contains(c)))
                    || (!filter.arches.is_empty() && arch_ok)
            }
        };
        if !applies(&entry.includes, true) || applies(&entry.excludes, false) {
            continue;
        }
        let act = action(&entry.action, entry.errno_ret.or(profile.default_errno_ret))?;
        if act == default {
            continue;
        }
        let rules = rules(&entry.args)?;
        let slot = match by_action.iter().position(|(a, _)| *a == act) {
            Some(i) => i,
            None => {
                by_action.push((act, BTreeMap::new()));
                by_action.len() - 1
            }
        };
        for name in entry.names.iter().chain(&entry.name) {
            let Some(nr) = arch.number(name) else {
                continue;
            };
            // `None`: the call whatever its arguments (seccompiler's empty list).
            let listed = by_action[slot]
                .1
                .entry(nr)
                .or_insert_with(|| Some(Vec::new()));
            match (listed.as_mut(), rules.is_empty()) {
                (_, true) => *listed = None,
                (Some(list), false) => list.extend(rules.iter().cloned()),
                (None, false) => {}
            }
        }
    }
    let mut programs = Vec::new();
    let build = |calls: Calls, mismatch, matched| -> Result<BpfProgram, String> {
        let rules = calls
            .into_iter()
            .map(|(nr, rules)| (nr, rules.unwrap_or_default()))
            .collect();
        super::seccomp::compile(rules, mismatch, matched, arch)
    };
    let allowed = by_action
        .iter()
        .position(|(a, _)| *a == SeccompAction::Allow)
        .map(|i| by_action.remove(i).1);
    if default != SeccompAction::Allow {
        programs.push(build(
            allowed.unwrap_or_default(),
            default,
            SeccompAction::Allow,
        )?);
    }
    for (act, rules) in by_action {
        programs.push(build(rules, SeccompAction::Allow, act)?);
    }
    Ok(programs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_profile_compiles_and_bad_ones_say_why() {
        let profile = r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            "syscalls": [
                {"names": ["mkdirat", "mkdir", "no_such_call"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        }"#;
        let caps = BTreeSet::new();
        // One program per action: errno 13 for mkdir, EPERM for personality.
        assert_eq!(compile(profile, Arch::NATIVE, &caps).unwrap().len(), 2);
        let deny = r#"{"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#;
        assert_eq!(compile(deny, Arch::NATIVE, &caps).unwrap().len(), 1);
        assert!(check("{").unwrap_err().contains("Docker's JSON format"));
        assert!(check(r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#)
            .unwrap_err()
            .contains("unknown seccomp action"));
        assert!(check(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_S390X"]}"#
        )
        .unwrap_err()
        .contains("do not include"));
    }
}
