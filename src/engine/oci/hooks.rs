//! Hooks: programs the configuration names for points of the lifecycle,
//! each given the container's state JSON on its stdin (config.md,
//! "POSIX-platform Hooks"). A hook that fails or outlives its `timeout`
//! fails the step it belongs to; `poststart` and `poststop` failures are
//! only warnings, as the spec says.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use super::state::ContainerState;
use super::OciError;

/// The points of the lifecycle a hook can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Point {
    pub fn name(self) -> &'static str {
        match self {
            Point::Prestart => "prestart",
            Point::CreateRuntime => "createRuntime",
            Point::CreateContainer => "createContainer",
            Point::StartContainer => "startContainer",
            Point::Poststart => "poststart",
            Point::Poststop => "poststop",
        }
    }

    pub fn of(self, hooks: &Hooks) -> Vec<Hook> {
        #[allow(deprecated)]
        let list = match self {
            Point::Prestart => hooks.prestart(),
            Point::CreateRuntime => hooks.create_runtime(),
            Point::CreateContainer => hooks.create_container(),
            Point::StartContainer => hooks.start_container(),
            Point::Poststart => hooks.poststart(),
            Point::Poststop => hooks.poststop(),
        };
        list.clone().unwrap_or_default()
    }
}

/// Runs the hooks of `point`, in order; the first failure stops, but
/// for `poststart` and `poststop`, whose failures are warnings: the
/// remaining hooks run "as if the hook had succeeded" (runtime.md), and
/// every failure is in the error returned.
pub fn run(hooks: Option<&Hooks>, point: Point, state: &ContainerState) -> Result<(), OciError> {
    let Some(hooks) = hooks else {
        return Ok(());
    };
    let list = point.of(hooks);
    if list.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(state).map_err(|e| OciError::Other(e.to_string()))?;
    let warn_only = matches!(point, Point::Poststart | Point::Poststop);
    let mut failures = Vec::new();
    for (index, hook) in list.iter().enumerate() {
        if let Err(why) = run_one(hook, &json) {
            failures.push(format!(
                "{} hook {index} ({}) failed: {why}",
                point.name(),
                hook.path().display()
            ));
            if !warn_only {
                break;
            }
        }
    }
    match failures.is_empty() {
        true => Ok(()),
        false => Err(OciError::Hook(failures.join("; "))),
    }
}

fn run_one(hook: &Hook, state: &[u8]) -> Result<(), String> {
    let args = hook.args().clone().unwrap_or_default();
    let mut command = Command::new(hook.path());
    if let Some((argv0, rest)) = args.split_first() {
        command.arg0(argv0).args(rest);
    }
    command.env_clear();
    for pair in hook.env().iter().flatten() {
        if let Some((key, value)) = pair.split_once('=') {
            command.env(key, value);
        }
    }
    command.stdin(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("cannot run it: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin closes it: not an error.
        let _ = stdin.write_all(state);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("it exited with {status}")),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "it ran longer than its timeout of {} s and was killed",
                hook.timeout().unwrap_or(0)
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
