//! Bad input and missing prerequisites: one lowercase line on stderr that
//! says what is wrong and what to do, a non-zero exit, and never a panic.

mod common;

use std::os::unix::process::CommandExt;

fn assert_clean_error(output: &std::process::Output, code: i32, wanted: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.contains(wanted), "expected {wanted:?} in: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(!stderr.contains("backtrace"), "backtrace: {stderr}");
}

#[test]
fn a_bad_hostname_is_refused_before_anything_happens() {
    let state = common::state_root("errors-hostname");
    let mut command = common::chapter("ch02", &state);
    command.args(["--hostname", "not a hostname!"]);
    let output = common::run(command);
    assert_clean_error(&output, 2, "invalid hostname");
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let state = common::state_root("errors-flag");
    let mut command = common::chapter("ch03", &state);
    command.arg("--no-such-flag");
    assert_clean_error(&common::run(command), 2, "unexpected argument");
}

#[test]
fn a_bad_run_name_is_refused() {
    let state = common::state_root("errors-name");
    let mut command = common::chapter("ch03", &state);
    command.args(["--name", "../escape"]);
    assert_clean_error(&common::run(command), 2, "invalid name");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn missing_busybox_names_the_package_to_install() {
    common::assert_root();
    let state = common::state_root("errors-busybox");
    let mut command = common::chapter("ch03", &state);
    command.env(
        container_lab::engine::images::busybox::BUSYBOX_ENV,
        "/nonexistent/busybox",
    );
    let output = common::run(command);
    assert_clean_error(
        &output,
        1,
        "error: busybox is not installed; install the busybox-static package",
    );
    assert!(output.stdout.is_empty(), "nothing should have started");
    assert!(
        !state.join("run").exists(),
        "nothing should have been created"
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_dynamic_busybox_is_refused_with_the_reason() {
    common::assert_root();
    let state = common::state_root("errors-dynamic");
    let mut command = common::chapter("ch03", &state);
    command.env(
        container_lab::engine::images::busybox::BUSYBOX_ENV,
        "/bin/ls",
    );
    assert_clean_error(&common::run(command), 1, "is dynamically linked");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn without_root_or_sudo_the_chapter_says_what_to_do() {
    common::assert_root();
    let state = common::state_root("errors-not-root");
    let mut command = common::chapter("ch02", &state);
    // An unprivileged user with no sudo on its PATH.
    command.env("PATH", "/nonexistent").uid(65534).gid(65534);
    let output = common::run(command);
    assert_clean_error(
        &output,
        1,
        "ch02 needs root (creating namespaces needs CAP_SYS_ADMIN) and sudo is not installed",
    );
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_name_in_use_is_refused_and_the_other_run_is_untouched() {
    common::assert_root();
    let state = common::state_root("errors-in-use");
    let held = common::Held::start(common::chapter("ch03", &state), 5);
    let second = common::run(common::chapter("ch03", &state));
    assert_clean_error(&second, 1, "a container named ch03 is already running");
    assert!(
        state.join("run/containers/ch03/rootfs").is_dir(),
        "the first run's files were touched"
    );
    let (code, _, _) = held.interrupt();
    assert_eq!(code, Some(130));
}

#[test]
fn bad_limits_are_refused_with_the_accepted_forms() {
    let state = common::state_root("errors-limits");
    for (flag, value, wanted) in [
        ("--memory", "12q", "invalid size \"12q\""),
        ("--memory", "1k", "the minimum is 6m"),
        ("--cpus", "0", "invalid --cpus \"0\""),
        ("--cpus", "many", "use a number of CPUs"),
        ("--pids-limit", "3", "not in 8..=4096"),
    ] {
        let mut command = common::chapter("ch05", &state);
        command.args([flag, value]);
        assert_clean_error(&common::run(command), 2, wanted);
    }
}

#[test]
fn an_unknown_capability_is_refused() {
    let state = common::state_root("errors-caps");
    let mut command = common::chapter("ch08", &state);
    command.args(["--cap-add", "FLY"]);
    assert_clean_error(&common::run(command), 2, "unknown capability \"FLY\"");
}

#[test]
fn an_env_file_with_a_nul_names_the_file_and_line() {
    let state = common::state_root("errors-env-nul");
    let file = state.join("env");
    std::fs::write(&file, "# settings\nGOOD=1\nBAD=x\0y\n").unwrap();
    let mut command = common::mini_docker(&state, &["run", "--rm", "--env-file"]);
    command.arg(&file).args(["busybox", "true"]);
    let output = common::run(command);
    assert_clean_error(
        &output,
        125,
        &format!(
            "mini-docker: error: {}:3: the line contains a NUL byte",
            file.display()
        ),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    // Refused while reading the flags: nothing was created.
    assert!(!state.join("lib").exists() && !state.join("run").exists());
}

/// Ctrl-C, as a terminal sends it: SIGINT to the whole process group, so
/// the container's processes get it too, at moments spread over the start
/// of the container. Whatever then fails, the chapter reports the
/// interruption (130), never an error of its own (1).
fn interrupt_while_starting(chapter: &str, step: &str) {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt as _;
    common::assert_root();
    let state = common::state_root(&format!("errors-ctrl-c-{chapter}"));
    let mut interrupted = 0;
    for attempt in 0..30u64 {
        let mut command = common::chapter(chapter, &state);
        command
            .arg("--yes")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                break;
            }
            seen.push_str(&line);
            if line.starts_with(step) {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_micros(attempt * 700));
        // The group is the chapter's own (process_group(0)): its PID.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        seen.push_str(&rest);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        println!("attempt {attempt}: exit {code:?}, stderr: {stderr}");
        match code {
            Some(130) => {
                interrupted += 1;
                // The chapter's last word is the interruption (a helper
                // process may have said before it that the container went).
                let last = stderr.lines().rev().find(|l| !l.is_empty());
                assert_eq!(
                    last,
                    Some("interrupted by SIGINT; everything the chapter set up has been removed"),
                    "{stderr}"
                );
                assert!(!stderr.contains("could not start"), "{stderr}");
            }
            // Finished before the signal came.
            Some(0) => assert!(seen.contains("done:"), "{seen}"),
            other => panic!("exit {other:?} after Ctrl-C:\n{seen}\n{stderr}"),
        }
        assert!(
            !common::host_mountinfo().contains(state.to_str().unwrap()),
            "mounts were left"
        );
        for dir in common::cgroup_dirs(chapter) {
            assert!(!dir.exists(), "{} was left", dir.display());
        }
    }
    assert!(interrupted > 0, "no attempt was interrupted");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ctrl_c_while_chapter_4_starts_its_container_exits_130() {
    interrupt_while_starting("ch04", "step 2:");
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn ctrl_c_while_chapter_5_starts_its_container_exits_130() {
    interrupt_while_starting("ch05", "step 3:");
}
