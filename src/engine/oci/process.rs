//! The container's process (`process` in config.json), applied by the
//! process itself just before execve, in runc's order: rlimits and the
//! OOM score while still root, the bounding set, then the user (keeping
//! capabilities across setuid), then the capability sets, no_new_privs,
//! and the seccomp filter as late as it can go.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{LinuxCapabilities, PosixRlimitType, Process};
use seccompiler::BpfProgram;

use super::OciError;

/// Everything the last steps need, resolved before anything runs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// `args[0]`, found in the container's PATH.
    pub program: Option<CString>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub capabilities: Option<Capabilities>,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    pub seccomp: Option<(Vec<BpfProgram>, u32)>,
    /// setgroups(2) is denied in this user namespace.
    pub setgroups_denied: bool,
    /// `--preserve-fds N`: 3 … 3+N-1 stay open.
    pub preserve_fds: i32,
}

#[derive(Debug, Clone)]
pub struct Capabilities {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
}

fn cstring(text: &[u8], field: &str) -> Result<CString, OciError> {
    CString::new(text).map_err(|_| OciError::invalid(field, "contains a NUL byte"))
}

impl Plan {
    pub fn from_process(
        process: &Process,
        seccomp: Option<&oci_spec::runtime::LinuxSeccomp>,
    ) -> Result<Plan, OciError> {
        let args = process.args().clone().unwrap_or_default();
        let env = process.env().clone().unwrap_or_default();
        let user = process.user();
        let mut rlimits = Vec::new();
        for limit in process.rlimits().iter().flatten() {
            rlimits.push((rlimit_resource(limit.typ()), limit.soft(), limit.hard()));
        }
        let capabilities = process
            .capabilities()
            .as_ref()
            .map(capabilities)
            .transpose()?;
        let seccomp = seccomp.map(super::seccomp::compile).transpose()?;
        Ok(Plan {
            argv: args
                .iter()
                .map(|a| cstring(a.as_bytes(), "process.args"))
                .collect::<Result<_, _>>()?,
            env: env
                .iter()
                .map(|e| cstring(e.as_bytes(), "process.env"))
                .collect::<Result<_, _>>()?,
            program: None,
            cwd: process.cwd().clone(),
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask(),
            capabilities,
            rlimits,
            no_new_privileges: process.no_new_privileges().unwrap_or(false),
            oom_score_adj: process.oom_score_adj(),
            seccomp,
            setgroups_denied: false,
            preserve_fds: 0,
        })
    }

    /// Finds `args[0]` as execvp would, in the container's own PATH, now
    /// that the container's root is `/`. The message is runc's, which
    /// podman turns into exit code 127 or 126.
    pub fn resolve_program(&mut self) -> Result<(), OciError> {
        let name = self
            .argv
            .first()
            .map(|a| a.to_bytes().to_vec())
            .unwrap_or_default();
        let shown = String::from_utf8_lossy(&name).into_owned();
        let candidates: Vec<PathBuf> = if name.contains(&b'/') {
            vec![PathBuf::from(std::ffi::OsStr::from_bytes(&name))]
        } else {
            let path = self
                .env
                .iter()
                .find_map(|e| e.to_bytes().strip_prefix(b"PATH=").map(<[u8]>::to_vec))
                .unwrap_or_else(|| {
                    b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_vec()
                });
            path.split(|b| *b == b':')
                .map(|dir| {
                    let dir = if dir.is_empty() { b".".as_slice() } else { dir };
                    Path::new(std::ffi::OsStr::from_bytes(dir))
                        .join(std::ffi::OsStr::from_bytes(&name))
                })
                .collect()
        };
        let mut denied = false;
        for candidate in &candidates {
            let Ok(meta) = std::fs::metadata(candidate) else {
                continue;
            };
            if meta.is_dir() {
                continue;
            }
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o111 == 0 {
                denied = true;
                continue;
            }
            self.program = Some(cstring(candidate.as_os_str().as_bytes(), "process.args")?);
            return Ok(());
        }
        if denied {
            return Err(OciError::Other(format!(
                "exec: {shown:?}: permission denied"
            )));
        }
        if name.contains(&b'/') {
            return Err(OciError::Other(format!(
                "exec: {shown:?}: stat {shown}: no such file or directory"
            )));
        }
        Err(OciError::Other(format!(
            "exec: {shown:?}: executable file not found in $PATH"
        )))
    }

    /// While still root: rlimits and the OOM score (lowering it needs
    /// CAP_SYS_RESOURCE).
    pub fn apply_as_root(&self) -> Result<(), OciError> {
        for &(resource, soft, hard) in &self.rlimits {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // Safety: a plain struct for the kernel to read.
            let ret = unsafe { libc::setrlimit(resource, &limit) };
            nix::errno::Errno::result(ret)
                .map_err(OciError::sys(format!("setrlimit {resource}")))?;
        }
        if let Some(score) = self.oom_score_adj {
            std::fs::write("/proc/self/oom_score_adj", score.to_string())
                .map_err(|e| OciError::Other(format!("write oom_score_adj {score}: {e}")))?;
        }
        Ok(())
    }

    /// The user, the capabilities, the working directory, no_new_privs and
    /// (when no_new_privs is off, before the user changes) seccomp.
    pub fn become_process(&self) -> Result<(), OciError> {
        crate::kernel::signals::reset_to_default();
        // Before any filter: it may refuse close_range(2). Nothing but 0,
        // 1, 2 and the preserved descriptors will pass the execve.
        crate::kernel::init::close_inherited_fds()
            .map_err(|e| OciError::Other(format!("close inherited descriptors: {e}")))?;
        for fd in 3..3 + self.preserve_fds {
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            );
        }
        if let Some(mask) = self.umask {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        }
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN:
        // it goes in while we still have it, as runc does.
        if !self.no_new_privileges {
            if let Some((programs, flags)) = &self.seccomp {
                super::seccomp::install(programs, *flags)?;
            }
        }
        if let Some(caps) = &self.capabilities {
            for cap in caps::all() {
                if !caps.bounding.contains(&cap) {
                    caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                        OciError::Other(format!("drop {cap} from the bounding set: {e}"))
                    })?;
                }
            }
        }
        if !self.setgroups_denied {
            let groups: Vec<nix::unistd::Gid> = self
                .additional_gids
                .iter()
                .map(|g| nix::unistd::Gid::from_raw(*g))
                .collect();
            nix::unistd::setgroups(&groups).map_err(OciError::sys("setgroups"))?;
        }
        nix::sys::prctl::set_keepcaps(true).map_err(OciError::sys("prctl(PR_SET_KEEPCAPS)"))?;
        let gid = nix::unistd::Gid::from_raw(self.gid);
        nix::unistd::setresgid(gid, gid, gid)
            .map_err(OciError::sys(format!("setresgid {}", self.gid)))?;
        let uid = nix::unistd::Uid::from_raw(self.uid);
        nix::unistd::setresuid(uid, uid, uid)
            .map_err(OciError::sys(format!("setresuid {}", self.uid)))?;
        nix::sys::prctl::set_keepcaps(false).map_err(OciError::sys("prctl(PR_SET_KEEPCAPS)"))?;
        if let Some(caps) = &self.capabilities {
            let set = |which: CapSet, value: &CapsHashSet| {
                caps::set(None, which, value)
                    .map_err(|e| OciError::Other(format!("set the {which:?} capabilities: {e}")))
            };
            // Effective first: it must stay within the permitted set.
            set(CapSet::Effective, &caps.effective)?;
            set(CapSet::Permitted, &caps.permitted)?;
            set(CapSet::Inheritable, &caps.inheritable)?;
            caps::clear(None, CapSet::Ambient)
                .map_err(|e| OciError::Other(format!("clear the ambient capabilities: {e}")))?;
            // The kernel keeps an ambient capability only if it is both
            // permitted and inheritable (runc's own `spec` lists ambient
            // ones without inheritable): the others cannot be ambient.
            for cap in &caps.ambient {
                if !caps.inheritable.contains(cap) || !caps.permitted.contains(cap) {
                    continue;
                }
                caps::raise(None, CapSet::Ambient, *cap)
                    .map_err(|e| OciError::Other(format!("raise {cap} in the ambient set: {e}")))?;
            }
        }
        nix::unistd::chdir(&self.cwd)
            .map_err(OciError::sys(format!("chdir {}", self.cwd.display())))?;
        if self.no_new_privileges {
            nix::sys::prctl::set_no_new_privs()
                .map_err(OciError::sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
            if let Some((programs, flags)) = &self.seccomp {
                super::seccomp::install(programs, *flags)?;
            }
        }
        Ok(())
    }

    /// execve, once `become_process` has run.
    pub fn exec(&self) -> OciError {
        let Some(program) = &self.program else {
            return OciError::Other("no program to run".into());
        };
        let errno = nix::unistd::execve(program, &self.argv, &self.env).unwrap_err();
        OciError::Other(format!(
            "exec {:?}: {}",
            program,
            errno.desc().to_lowercase()
        ))
    }
}

fn capabilities(spec: &LinuxCapabilities) -> Result<Capabilities, OciError> {
    let convert = |set: &Option<oci_spec::runtime::Capabilities>,
                   field: &str|
     -> Result<CapsHashSet, OciError> {
        let mut out = CapsHashSet::new();
        for cap in set.iter().flatten() {
            let name = serde_json::to_value(cap)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let parsed: Capability = name
                .parse()
                .map_err(|_| OciError::invalid(field, format!("unknown capability {name}")))?;
            out.insert(parsed);
        }
        Ok(out)
    };
    Ok(Capabilities {
        bounding: convert(spec.bounding(), "process.capabilities.bounding")?,
        effective: convert(spec.effective(), "process.capabilities.effective")?,
        inheritable: convert(spec.inheritable(), "process.capabilities.inheritable")?,
        permitted: convert(spec.permitted(), "process.capabilities.permitted")?,
        ambient: convert(spec.ambient(), "process.capabilities.ambient")?,
    })
}

fn rlimit_resource(kind: PosixRlimitType) -> libc::__rlimit_resource_t {
    match kind {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}
