//! cgroup v2's device allow-list: a BPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE, generated from the rules and attached to
//! the container's cgroup, as runc's `devicefilter` and crun's `ebpf.c` do.
//!
//! The kernel runs it before a process of the cgroup opens or makes a
//! device node, with `struct bpf_cgroup_dev_ctx { u32 access_type; u32
//! major; u32 minor; }` (the low 16 bits of `access_type` the device type,
//! the high 16 the access asked for). It returns 1 to allow, 0 to refuse.
//! The cgroup holds the only reference to the program once our descriptor
//! is closed, so the kernel frees it when the cgroup is removed.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::devices::{DeviceKind, DeviceRule};
use super::CgroupError;

// From <linux/bpf.h>.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Other programs may sit beside ours (systemd's, a parent's); all must allow.
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_DEVCG_ACC_MKNOD: i32 = 1;
const BPF_DEVCG_ACC_READ: i32 = 2;
const BPF_DEVCG_ACC_WRITE: i32 = 4;
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

/// The name the kernel shows for our programs (bpftool prog list).
pub const PROGRAM_NAME: &str = "lab_devices";

/// One eBPF instruction, `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst_reg in the low four bits, src_reg in the high four.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// The few opcodes the program needs (BPF class | operation | source).
const LDX_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const AND32_K: u8 = 0x54;
const RSH32_K: u8 = 0x74;
const MOV32_K: u8 = 0xb4;
const MOV32_X: u8 = 0xbc;
const JEQ_K: u8 = 0x15;
const JNE_K: u8 = 0x55;
const JNE_X: u8 = 0x5d;
const EXIT: u8 = 0x95;
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// The program for `rules`: the context unpacked into registers, then one
/// block per rule, the last rule first (a later rule wins), each returning
/// its verdict when it matches; nothing matched, nothing is allowed.
// ANCHOR: program
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut program = vec![
        insn(LDX_W, R2, R1, 0, 0),       // R2 = access_type
        insn(AND32_K, R2, 0, 0, 0xffff), // R2 = device type
        insn(LDX_W, R3, R1, 0, 0),
        insn(RSH32_K, R3, 0, 0, 16), // R3 = access asked for
        insn(LDX_W, R4, R1, 4, 0),   // R4 = major
        insn(LDX_W, R5, R1, 8, 0),   // R5 = minor
    ];
    for rule in rules.iter().rev() {
        let block = block(rule);
        let decides_all = block.len() == 2;
        program.extend(block);
        // Nothing after a rule that matches everything could run, and
        // the verifier refuses unreachable instructions.
        if decides_all {
            return program;
        }
    }
    program.push(insn(MOV32_K, R0, 0, 0, 0));
    program.push(insn(EXIT, 0, 0, 0, 0));
    program
}
// ANCHOR_END: program

/// One rule: tests that jump past the block when they fail, then the verdict.
fn block(rule: &DeviceRule) -> Vec<Insn> {
    // Each test as (instructions, index of its jump); offsets are set below.
    let mut tests: Vec<Vec<Insn>> = Vec::new();
    match rule.kind {
        DeviceKind::All => {}
        DeviceKind::Char => tests.push(vec![insn(JNE_K, R2, 0, 0, BPF_DEVCG_DEV_CHAR)]),
        DeviceKind::Block => tests.push(vec![insn(JNE_K, R2, 0, 0, BPF_DEVCG_DEV_BLOCK)]),
    }
    let flag = |on: bool, bit: i32| if on { bit } else { 0 };
    let access = flag(rule.access.read, BPF_DEVCG_ACC_READ)
        | flag(rule.access.write, BPF_DEVCG_ACC_WRITE)
        | flag(rule.access.mknod, BPF_DEVCG_ACC_MKNOD);
    let all = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
    if access != all {
        // An allow rule must cover all that is asked; a deny rule any of it.
        let jump = if rule.allow {
            insn(JNE_X, R1, R3, 0, 0)
        } else {
            insn(JEQ_K, R1, 0, 0, 0)
        };
        tests.push(vec![
            insn(MOV32_X, R1, R3, 0, 0),
            insn(AND32_K, R1, 0, 0, access),
            jump,
        ]);
    }
    if let Some(major) = rule.major {
        tests.push(vec![insn(JNE_K, R4, 0, 0, major as i32)]);
    }
    if let Some(minor) = rule.minor {
        tests.push(vec![insn(JNE_K, R5, 0, 0, minor as i32)]);
    }
    let verdict = [
        insn(MOV32_K, R0, 0, 0, i32::from(rule.allow)),
        insn(EXIT, 0, 0, 0, 0),
    ];
    let mut out: Vec<Insn> = tests.into_iter().flatten().collect();
    let len = out.len() + verdict.len();
    for (at, i) in out.iter_mut().enumerate() {
        if matches!(i.code, JEQ_K | JNE_K | JNE_X) {
            // Relative to the next instruction: to the first one after the block.
            i.off = (len - at - 1) as i16;
        }
    }
    out.extend(verdict);
    out
}

/// Loads the program for `rules` and attaches it to the cgroup `dir`;
/// returns what was done, for narration. Our descriptor closes on return:
/// from then on the cgroup alone keeps the program alive.
pub fn attach(dir: &Path, rules: &[DeviceRule]) -> Result<Vec<String>, CgroupError> {
    for rule in rules {
        if rule.major.unwrap_or(0) > i32::MAX as u32 || rule.minor.unwrap_or(0) > i32::MAX as u32 {
            return Err(CgroupError::Bpf {
                op: "build the device program".into(),
                errno: nix::errno::Errno::ERANGE,
                log: format!(" (a device number in {rule} is too large)"),
            });
        }
    }
    let instructions = program(rules);
    let program = load(&instructions)?;
    let cgroup = std::fs::File::open(dir).map_err(|e| CgroupError::io("open", dir, e))?;
    #[repr(C)]
    struct ProgAttach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
    }
    let attr = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &attr).map_err(|errno| CgroupError::Bpf {
        op: format!("attach the device program to {}", dir.display()),
        errno,
        log: String::new(),
    })?;
    Ok(vec![
        format!(
            "bpf(BPF_PROG_LOAD): {PROGRAM_NAME}, a BPF_PROG_TYPE_CGROUP_DEVICE program: {} rules in {} instructions",
            rules.len(),
            instructions.len()
        ),
        format!(
            "bpf(BPF_PROG_ATTACH): on {} as BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI",
            dir.display()
        ),
    ])
}

/// bpf(BPF_PROG_LOAD); the verifier's log comes with a refusal.
fn load(instructions: &[Insn]) -> Result<OwnedFd, CgroupError> {
    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
    }
    let license = CString::new("Apache").unwrap_or_default();
    let mut name = [0u8; 16];
    name[..PROGRAM_NAME.len()].copy_from_slice(PROGRAM_NAME.as_bytes());
    let mut log = vec![0u8; 64 * 1024];
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: instructions.len() as u32,
        insns: instructions.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
    };
    match bpf(BPF_PROG_LOAD, &attr) {
        // SAFETY: a new descriptor the kernel just gave us, owned by no one else.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        Err(errno) => {
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            Err(CgroupError::Bpf {
                op: "load the device program".into(),
                errno,
                log: if text.is_empty() {
                    String::new()
                } else {
                    format!(" (verifier: {})", text.lines().last().unwrap_or(""))
                },
            })
        }
    }
}

/// The IDs of the device programs attached to the cgroup `dir` itself, as
/// `bpftool cgroup list DIR` shows them.
pub fn attached(dir: &Path) -> Result<Vec<u32>, CgroupError> {
    #[repr(C)]
    struct ProgQuery {
        target_fd: u32,
        attach_type: u32,
        query_flags: u32,
        attach_flags: u32,
        prog_ids: u64,
        prog_cnt: u32,
        pad: u32,
    }
    let cgroup = std::fs::File::open(dir).map_err(|e| CgroupError::io("open", dir, e))?;
    let mut ids = [0u32; 64];
    let attr = ProgQuery {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        pad: 0,
    };
    bpf(BPF_PROG_QUERY, &attr).map_err(|errno| CgroupError::Bpf {
        op: format!("query the device programs of {}", dir.display()),
        errno,
        log: String::new(),
    })?;
    Ok(ids[..attr.prog_cnt.min(64) as usize].to_vec())
}

/// The name of the loaded program with this ID; `None` once the kernel
/// has freed it.
pub fn program_name(id: u32) -> Option<String> {
    #[repr(C)]
    struct GetFdById {
        prog_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    #[repr(C)]
    struct GetInfo {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let fd = bpf(
        BPF_PROG_GET_FD_BY_ID,
        &GetFdById {
            prog_id: id,
            next_id: 0,
            open_flags: 0,
        },
    )
    .ok()?;
    // SAFETY: the kernel just gave us this descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct bpf_prog_info up to its name (at offset 64).
    let mut info = [0u8; 80];
    let attr = GetInfo {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &attr).ok()?;
    let name = &info[64..80];
    let end = name.iter().position(|&b| b == 0).unwrap_or(16);
    Some(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// The bpf(2) system call with one of its attribute structs.
fn bpf<T>(command: libc::c_long, attr: &T) -> Result<i32, nix::errno::Errno> {
    // SAFETY: `attr` is a #[repr(C)] prefix of union bpf_attr, its size
    // is passed along, and every pointer in it outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    };
    if ret < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(ret as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::super::devices::DOCKER_DEFAULT;
    use super::*;

    /// The kernel's side, in miniature: runs the program on a context.
    fn run(program: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> u32 {
        let ctx = [(access << 16 | kind) as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0;
        loop {
            let i = program[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            let jump = |taken: bool, pc: &mut usize| {
                if taken {
                    *pc = (*pc as i64 + i64::from(i.off)) as usize
                }
            };
            match i.code {
                LDX_W => r[dst] = u64::from(ctx[i.off as usize / 4]),
                AND32_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                RSH32_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                MOV32_K => r[dst] = i.imm as u32 as u64,
                MOV32_X => r[dst] = r[src] as u32 as u64,
                JEQ_K => jump(r[dst] == i.imm as i64 as u64, &mut pc),
                JNE_K => jump(r[dst] != i.imm as i64 as u64, &mut pc),
                JNE_X => jump(r[dst] != r[src], &mut pc),
                EXIT => return r[0] as u32,
                other => panic!("unknown opcode {other:#x}"),
            }
        }
    }

    const R: i32 = BPF_DEVCG_ACC_READ;
    const W: i32 = BPF_DEVCG_ACC_WRITE;
    const M: i32 = BPF_DEVCG_ACC_MKNOD;
    const C: i32 = BPF_DEVCG_DEV_CHAR;
    const B: i32 = BPF_DEVCG_DEV_BLOCK;

    #[test]
    fn the_default_program_allows_what_docker_allows() {
        let p = program(DOCKER_DEFAULT);
        assert_eq!(run(&p, C, R | W, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, C, R, 136, 7), 1, "/dev/pts/7");
        assert_eq!(run(&p, B, M, 7, 0), 1, "mknod of a disk");
        assert_eq!(run(&p, B, R, 7, 0), 0, "reading a disk");
        assert_eq!(run(&p, B, W, 8, 1), 0, "writing a disk");
        assert_eq!(run(&p, C, W, 1, 11), 0, "/dev/kmsg");
        assert_eq!(run(&p, C, R | M, 1, 11), 0, "rm together is more than m");
    }

    #[test]
    fn later_rules_win_and_deny_rules_refuse_any_part() {
        let mut rules = DOCKER_DEFAULT.to_vec();
        rules.push(DeviceRule::allow(
            DeviceKind::Block,
            7,
            Some(3),
            "r".parse().unwrap(),
        ));
        let p = program(&rules);
        assert_eq!(run(&p, B, R, 7, 3), 1);
        assert_eq!(run(&p, B, W, 7, 3), 0);
        assert_eq!(run(&p, B, R, 7, 4), 0);
        rules.push(DeviceRule {
            allow: false,
            ..DeviceRule::allow(DeviceKind::Char, 1, Some(3), "w".parse().unwrap())
        });
        let p = program(&rules);
        assert_eq!(run(&p, C, R | W, 1, 3), 0, "rw asks for the refused w");
        assert_eq!(run(&p, C, R, 1, 3), 1);
        assert_eq!(run(&program(&[DeviceRule::ALLOW_ALL]), B, R | W, 8, 0), 1);
    }
}
