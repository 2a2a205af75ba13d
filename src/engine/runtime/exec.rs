//! `docker exec`: a new process in a running container. It joins the
//! container's cgroup and every one of its namespaces (as `nsenter` does),
//! forks once more so that it is inside the PID namespace too, and then
//! gets the same environment, user and hardening as the container's own
//! program before execve.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};

use super::config::{NetworkMode, RunConfig};
use super::{become_user, cstrings, environment, RuntimeError};
use crate::kernel::init_pipe::{self, Failure};
use crate::kernel::namespaces::{self, Namespace};
use crate::kernel::process::status_code;
use crate::{kernel::init, kernel::signals};

/// What `exec` was asked to run.
#[derive(Debug, Default)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    /// `-e`, on top of the container's environment.
    pub env: Vec<(String, String)>,
    /// `-u`, instead of the container's user.
    pub user: Option<String>,
    /// `-w`, instead of the container's working directory.
    pub workdir: Option<String>,
    /// `-i`: keep our stdin; otherwise /dev/null.
    pub interactive: bool,
    /// `-t`: the exec'd process's end of a console socket (see `pty`).
    pub console: Option<OwnedFd>,
}

/// Runs the request inside the container whose first process is `pid` and
/// returns its exit code. When it cannot be run, the error says why, and
/// its exit code is Docker's (126, 127).
// ANCHOR: exec
pub fn exec(
    pid: i32,
    config: &RunConfig,
    cgroup_paths: &[PathBuf],
    request: ExecRequest,
) -> Result<i32, RuntimeError> {
    // Mount last: once in it, the other /proc/PID/ns links are out of reach
    // (enter() opens them all before joining any).
    let mut spaces = vec![Namespace::Ipc, Namespace::Uts, Namespace::Pid];
    if config.network != NetworkMode::Host {
        spaces.push(Namespace::Net);
    }
    spaces.push(Namespace::Mount);
    let procs: Vec<PathBuf> = cgroup_paths
        .iter()
        .map(|p| p.join("cgroup.procs"))
        .collect();
    let argv = cstrings(request.argv.iter().cloned())?;
    // Both processes below report on it; it closes when the program runs.
    let (init_read, report) =
        init_pipe::pipe().map_err(|e| RuntimeError::Setup(format!("pipe: {e}")))?;
    crate::kernel::process::flush_stdio();
    match unsafe { fork() }.map_err(|e| RuntimeError::Setup(format!("fork: {e}")))? {
        ForkResult::Child => {
            drop(init_read);
            let fail = |what: String| -> ! { init::fail(&report, Failure::setup(what)) };
            // This process waits inside the container's cgroup and
            // namespaces: it keeps nothing of the caller's but 0, 1, 2
            // (and the terminal's socket). Before setns: the fallback
            // reads our /proc/self/fd.
            let mut keep: Vec<i32> = request.console.iter().map(|fd| fd.as_raw_fd()).collect();
            keep.push(report.as_raw_fd());
            if let Err(err) = init::close_fds_except(&keep) {
                fail(format!("close inherited descriptors: {err}"))
            }
            if let Err(err) = crate::kernel::cgroups::join(&procs) {
                fail(err.to_string())
            }
            if let Err(err) = namespaces::enter(Pid::from_raw(pid), &spaces) {
                fail(err.to_string())
            }
            // A PID namespace takes only children made after setns.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    if let Err(err) = prepare(config, &request) {
                        fail(err.to_string())
                    }
                    let env = match cstrings(
                        environment(config, &request.env)
                            .iter()
                            .map(|(k, v)| format!("{k}={v}")),
                    ) {
                        Ok(env) => env,
                        Err(err) => fail(err.to_string()),
                    };
                    signals::reset_to_default();
                    init::exec_or_report(&argv, &env, &report)
                }
                Ok(ForkResult::Parent { child }) => {
                    drop(report);
                    let code = waitpid(child, None).map(status_code).unwrap_or(125);
                    init::exit_now(code)
                }
                Err(err) => fail(format!("fork: {err}")),
            }
        }
        ForkResult::Parent { child } => {
            drop(report);
            let failure = init_pipe::receive(init_read, |_, _| {});
            let code = loop {
                match waitpid(child, None) {
                    Ok(status) => break status_code(status),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(err) => return Err(RuntimeError::Setup(format!("wait: {err}"))),
                }
            };
            match failure {
                Ok(Some(failure)) => Err(failure.into()),
                Ok(None) => Ok(code),
                Err(err) => Err(RuntimeError::Setup(format!("read the init pipe: {err}"))),
            }
        }
    }
}
// ANCHOR_END: exec

/// Inside the container: streams, working directory, PATH, hardening, user.
fn prepare(config: &RunConfig, request: &ExecRequest) -> Result<(), RuntimeError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| RuntimeError::Setup(format!("{what}: {e}"));
    if let Some(console) = &request.console {
        use std::os::fd::AsFd;
        crate::kernel::pty::attach_console(console.as_fd()).map_err(|e| setup("terminal", &e))?;
    } else if !request.interactive {
        let null = std::fs::File::open("/dev/null").map_err(|e| setup("open /dev/null", &e))?;
        nix::unistd::dup2(null.as_raw_fd(), 0).map_err(|e| setup("dup2", &e))?;
    }
    let workdir = request
        .workdir
        .clone()
        .or_else(|| config.workdir.clone())
        .unwrap_or_else(|| "/".into());
    std::env::set_current_dir(&workdir).map_err(|e| setup(&format!("workdir {workdir}"), &e))?;
    if let Some((_, path)) = environment(config, &request.env)
        .iter()
        .find(|(k, _)| k == "PATH")
    {
        std::env::set_var("PATH", path);
    }
    let user = match request.user.as_ref().or(config.user.as_ref()) {
        Some(spec) => Some(crate::engine::images::imported::lookup_user(
            Path::new("/"),
            spec,
        )?),
        None => None,
    };
    config.profile.apply()?;
    if let Some((uid, gid)) = user {
        become_user(uid, gid)?;
    }
    Ok(())
}
