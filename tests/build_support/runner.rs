//! A RUN step runner for the build tests and the benchmark, standing in
//! for the lab's runtime: honest, not isolated. As root, the child
//! process makes a private mount namespace, mounts the step's overlay in
//! it, chroots into the merged tree, takes the step's user and working
//! directory, and execs the command with exactly the step's environment.
//! The mount lives and dies with the child's namespace, so nothing is
//! ever mounted where the tests look; the command is PID 1 of a PID
//! namespace of its own and is killed when the builder dies
//! (PR_SET_PDEATHSIG), so an interrupted build leaves no process behind.
//! No network, cgroup or capability limits: that is the runtime's job.

#![allow(dead_code)]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};

use container_lab::engine::build::{mount_options, run_user, MergedView, RunStep, StepRunner};

pub struct ChrootRunner {
    /// Where the command's output goes: the test's, or nowhere.
    pub quiet: bool,
}

fn cstring(text: impl AsRef<[u8]>) -> io::Result<CString> {
    CString::new(text.as_ref()).map_err(|_| io::Error::other("a NUL byte in an argument"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    // (used before the fork, where errors still reach the parent)
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A NULL-terminated array of pointers into CStrings the closure owns.
struct Pointers(Vec<*const libc::c_char>);

// The pointers are only read, in the child, while their strings live.
unsafe impl Send for Pointers {}
unsafe impl Sync for Pointers {}

impl Pointers {
    fn to(strings: &[CString]) -> Pointers {
        let mut v: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        v.push(std::ptr::null());
        Pointers(v)
    }
}

impl StepRunner for ChrootRunner {
    fn run(&self, step: &RunStep<'_>) -> io::Result<ExitStatus> {
        // Everything the child needs is made before fork: after it, in a
        // multi-threaded test process, only async-signal-safe calls.
        let lowers: Vec<_> = step.layers.iter().map(|l| l.path.clone()).collect();
        let view = MergedView::of_layers(&lowers);
        let user = run_user(&view, step.user).map_err(io::Error::other)?;
        let options = cstring(mount_options(step))?;
        let merged = cstring(step.dirs.merged.as_os_str().as_bytes())?;
        let workdir = cstring(step.workdir)?;
        let mut env: Vec<CString> = step.env.iter().map(cstring).collect::<io::Result<_>>()?;
        if !step.env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(cstring(format!(
                "HOME={}",
                user.home.clone().unwrap_or_else(|| "/".into())
            ))?);
        }
        let argv: Vec<CString> = step.argv.iter().map(cstring).collect::<io::Result<_>>()?;
        let program = step.argv.first().cloned().unwrap_or_default();
        let path = step
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let candidates: Vec<CString> = if program.contains('/') {
            vec![cstring(&program)?]
        } else {
            path.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| cstring(format!("{d}/{program}")))
                .collect::<io::Result<_>>()?
        };
        let groups: Vec<libc::gid_t> = user.groups.clone();
        let (uid, gid) = (user.uid, user.gid);

        let argv_ptrs = Pointers::to(&argv);
        let env_ptrs = Pointers::to(&env);
        let overlay = c"overlay";
        let root = c"/";

        let mut command = Command::new("/bin/true");
        command.stdin(Stdio::null());
        if self.quiet {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        unsafe {
            command.pre_exec(move || {
                // Owned here, so that the pointers stay valid.
                let _strings = (&argv, &env);
                let (argv_ptrs, env_ptrs) = (&argv_ptrs, &env_ptrs);
                // This process dies with the builder's thread; the command
                // runs as PID 1 of a namespace of its own, so that when it
                // ends (or is killed) everything it started ends too.
                check(libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                ))?;
                check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWPID))?;
                let pid = libc::fork();
                if pid < 0 {
                    return Err(io::Error::last_os_error());
                }
                if pid > 0 {
                    let mut status = 0;
                    while libc::waitpid(pid, &mut status, 0) < 0 {
                        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                            libc::_exit(127);
                        }
                    }
                    if libc::WIFEXITED(status) {
                        libc::_exit(libc::WEXITSTATUS(status));
                    }
                    libc::_exit(128 + libc::WTERMSIG(status));
                }
                let fail = |what: &[u8]| -> ! {
                    libc::write(2, what.as_ptr().cast(), what.len());
                    libc::_exit(127)
                };
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                if libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                {
                    fail(b"test runner: cannot make / private\n");
                }
                if libc::mount(
                    overlay.as_ptr(),
                    merged.as_ptr(),
                    overlay.as_ptr(),
                    0,
                    options.as_ptr().cast(),
                ) != 0
                {
                    fail(b"test runner: cannot mount the overlay\n");
                }
                if libc::chroot(merged.as_ptr()) != 0 || libc::chdir(workdir.as_ptr()) != 0 {
                    fail(b"test runner: cannot chroot into the overlay or enter the workdir\n");
                }
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    fail(b"test runner: cannot take the step's user\n");
                }
                for candidate in &candidates {
                    libc::execve(
                        candidate.as_ptr(),
                        argv_ptrs.0.as_ptr(),
                        env_ptrs.0.as_ptr(),
                    );
                    if io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT) {
                        break;
                    }
                }
                fail(b"test runner: cannot execute the command (not found?)\n")
            });
        }
        let mut child = command.spawn()?;
        child.wait()
    }
}
