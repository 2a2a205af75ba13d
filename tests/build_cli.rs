//! `mini-docker build`, `commit`, `diff` and `export`, checked from
//! outside: the progress it prints (BuildKit's plain lines, `CACHED`), the
//! images read back from the store's blobs, what the kernel shows after a
//! failed, interrupted or killed build (mountinfo, cgroup directories,
//! processes), and what real tools make of a built image: pushed to a
//! docker-registry on 127.0.0.1, read by `skopeo inspect`, run by podman.
//!
//! RUN steps run in containers of the lab's runtime (no network), on the
//! lab's busybox image. Root only; without it these tests are ignored.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use container_lab::engine::images::registry::{push, PushOptions};
use container_lab::engine::images::{Image, ImageStore, Reference};
use serde_json::Value;

/// A state root and a build context of the test's own.
struct Lab {
    state: PathBuf,
    ctx: PathBuf,
    /// One test at a time: each counts the step cgroups and processes.
    _serial: std::sync::MutexGuard<'static, ()>,
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Lab {
    fn new(test: &str) -> Lab {
        common::assert_root();
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let state = common::state_root(test);
        let ctx = state.join("context");
        fs::create_dir_all(&ctx).unwrap();
        Lab {
            state,
            ctx,
            _serial: serial,
        }
    }

    fn file(&self, path: &str, body: &str) {
        let p = self.ctx.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        common::mini_docker(&self.state, args)
    }

    fn md(&self, args: &[&str]) -> Output {
        common::run(self.command(args))
    }

    /// `build --progress plain ARGS CONTEXT` with this Dockerfile.
    fn build(&self, dockerfile: &str, args: &[&str]) -> Output {
        self.file("Dockerfile", dockerfile);
        let ctx = self.ctx.display().to_string();
        let mut all = vec!["build", "--progress", "plain"];
        all.extend(args);
        all.push(&ctx);
        self.md(&all)
    }

    fn ok(&self, dockerfile: &str, args: &[&str]) -> String {
        let out = self.build(dockerfile, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build failed:\n{stderr}");
        stderr
    }

    fn images(&self) -> PathBuf {
        self.state.join("lib/images")
    }

    fn store(&self) -> ImageStore {
        ImageStore::open(&self.images()).unwrap()
    }

    fn image(&self, name: &str) -> Image {
        self.store().find(name).unwrap()
    }

    fn config(&self, image: &Image) -> Value {
        let path = self.store().blob_path(&image.config_digest).unwrap();
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    /// What a failed build must not leave: mounts beneath the state
    /// root, files in the store's tmp/, step records, step cgroups.
    fn assert_nothing_left(&self) {
        let mounts = common::host_mountinfo();
        let state = self.state.display().to_string();
        let under: Vec<&str> = mounts.lines().filter(|l| l.contains(&state)).collect();
        assert!(under.is_empty(), "mounts left: {under:?}");
        let tmp: Vec<_> = fs::read_dir(self.images().join("tmp"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(tmp.is_empty(), "left in the store's tmp/: {tmp:?}");
        let records: Vec<_> = fs::read_dir(self.state.join("run/builds"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(records.is_empty(), "step records left: {records:?}");
        let cgroups = step_cgroups();
        assert!(cgroups.is_empty(), "step cgroups left: {cgroups:?}");
    }
}

/// The lab's cgroup directories of build steps (`build-PID-N`), in every
/// hierarchy.
fn step_cgroups() -> Vec<PathBuf> {
    common::cgroup_dirs("x")
        .iter()
        .filter_map(|d| d.parent().map(Path::to_path_buf))
        .filter_map(|parent| fs::read_dir(parent).ok())
        .flat_map(|dir| dir.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("build-"))
        })
        .collect()
}

/// The steps the plain progress showed, in order: (`[2/5] RUN …`, cached).
fn steps(stderr: &str) -> Vec<(String, bool)> {
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<(String, bool)> = Vec::new();
    for line in stderr.lines() {
        let Some((vertex, rest)) = line.split_once(' ') else {
            continue;
        };
        if rest.starts_with('[') && !rest.starts_with("[internal]") {
            names.insert(vertex.to_string(), out.len());
            out.push((rest.to_string(), false));
        } else if rest == "CACHED" {
            let i = names[vertex];
            out[i].1 = true;
        }
    }
    out
}

fn cached(stderr: &str) -> Vec<String> {
    steps(stderr)
        .into_iter()
        .filter(|(_, c)| *c)
        .map(|(s, _)| s)
        .collect()
}

/// A layer's entries (path → body), read from its blob.
fn layer_entries(store: &ImageStore, image: &Image, index: usize) -> BTreeMap<String, String> {
    let layer = &image.layers[index];
    let file = fs::File::open(store.layer_blob(layer).unwrap()).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut body = String::new();
            e.read_to_string(&mut body).unwrap_or_default();
            (
                e.path()
                    .unwrap()
                    .display()
                    .to_string()
                    .trim_end_matches('/')
                    .to_string(),
                body,
            )
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_multi_stage_build_keeps_only_the_final_stage() {
    let lab = Lab::new("build-multi-stage");
    let dockerfile = "\
FROM busybox AS tools
RUN mkdir /out && echo compiled > /out/app && dd if=/dev/zero of=/big bs=1k count=256
FROM busybox AS unused
RUN echo never-built && false
FROM busybox
COPY --from=tools /out/app /usr/local/bin/app
CMD [\"cat\", \"/usr/local/bin/app\"]
";
    let stderr = lab.ok(dockerfile, &["-t", "lab/multi"]);
    assert!(
        !stderr.contains("never-built"),
        "a stage the target does not need was built:\n{stderr}"
    );
    let shown: Vec<String> = steps(&stderr).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        shown,
        [
            "[tools 1/2] FROM busybox AS tools",
            "[tools 2/2] RUN mkdir /out && echo compiled > /out/app && dd if=/dev/zero of=/big bs=1k count=256",
            "[stage-2 1/2] FROM busybox",
            "[stage-2 2/2] COPY --from=tools /out/app /usr/local/bin/app",
        ]
    );
    let store = lab.store();
    let base = lab.image("busybox");
    let multi = lab.image("lab/multi");
    // The base's layer and the COPY's: nothing of the tools stage.
    assert_eq!(multi.layers.len(), base.layers.len() + 1);
    let top = layer_entries(&store, &multi, multi.layers.len() - 1);
    assert_eq!(
        top.get("usr/local/bin/app").map(String::as_str),
        Some("compiled\n")
    );
    assert!(
        !top.contains_key("big") && !top.contains_key("out"),
        "{top:?}"
    );

    // A history entry per instruction over the base's; CMD adds no layer.
    let config = lab.config(&multi);
    let history = config["history"].as_array().unwrap();
    let base_history = lab.config(&base)["history"].as_array().unwrap().len();
    assert_eq!(history.len(), base_history + 2, "{history:?}");
    assert_eq!(history.last().unwrap()["empty_layer"], Value::Bool(true));
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["cat", "/usr/local/bin/app"])
    );

    // --target: the tools stage itself, with its big file.
    lab.ok(dockerfile, &["--target", "tools", "-t", "lab/tools"]);
    let tools = lab.image("lab/tools");
    let top = layer_entries(&store, &tools, tools.layers.len() - 1);
    assert!(
        top.contains_key("big") && top.contains_key("out/app"),
        "{top:?}"
    );
    assert!(tools.size() > multi.size() + 200 * 1024);
    lab.assert_nothing_left();
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn the_cache_reruns_only_the_steps_from_the_changed_copy() {
    let lab = Lab::new("build-cache");
    lab.file("deps.txt", "left-pad 1.0\n");
    lab.file("src/a.txt", "a1\n");
    lab.file("src/b.txt", "b1\n");
    let dockerfile = "\
FROM busybox
WORKDIR /app
COPY deps.txt ./
RUN cp deps.txt installed
COPY src/ ./src/
RUN cat src/* > bundle
ENV MODE=prod
CMD [\"cat\", \"/app/bundle\"]
";
    let first = lab.ok(dockerfile, &["-t", "lab/app"]);
    assert!(cached(&first).is_empty(), "{first}");
    let id = lab.image("lab/app").id().to_string();

    let second = lab.ok(dockerfile, &["-t", "lab/app"]);
    assert_eq!(
        cached(&second),
        [
            "[2/6] WORKDIR /app",
            "[3/6] COPY deps.txt ./",
            "[4/6] RUN cp deps.txt installed",
            "[5/6] COPY src/ ./src/",
            "[6/6] RUN cat src/* > bundle",
        ]
    );
    assert_eq!(
        lab.image("lab/app").id(),
        id,
        "a fully cached build is the same image"
    );

    // One source file changes: the steps from its COPY on run again.
    lab.file("src/a.txt", "a2\n");
    let third = lab.ok(dockerfile, &["-t", "lab/app"]);
    assert_eq!(
        cached(&third),
        [
            "[2/6] WORKDIR /app",
            "[3/6] COPY deps.txt ./",
            "[4/6] RUN cp deps.txt installed",
        ]
    );
    let image = lab.image("lab/app");
    let top = layer_entries(&lab.store(), &image, image.layers.len() - 1);
    assert_eq!(top.get("app/bundle").map(String::as_str), Some("a2\nb1\n"));

    let fresh = lab.ok(dockerfile, &["--no-cache", "-t", "lab/app"]);
    assert!(
        cached(&fresh).is_empty(),
        "--no-cache used the cache:\n{fresh}"
    );
    lab.assert_nothing_left();
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn run_steps_get_the_builds_env_user_workdir_and_no_network() {
    let lab = Lab::new("build-run-env");
    let dockerfile = "\
FROM busybox
ENV GREETING=hello
ARG LEVEL=3
WORKDIR /work/here
USER nobody
RUN echo \"env=$GREETING level=$LEVEL\"; id -u; pwd; hostname; ls /sys/class/net
SHELL [\"/bin/sh\", \"-c\", \"echo shell-was-set; exec /bin/sh -c \\\"$0\\\"\"]
RUN echo after-shell
";
    let stderr = lab.ok(dockerfile, &["--build-arg", "LEVEL=7"]);
    let output: Vec<&str> = stderr
        .lines()
        .filter_map(|l| {
            let mut words = l.splitn(3, ' ');
            let (_, time, text) = (words.next()?, words.next()?, words.next()?);
            time.parse::<f64>().ok().map(|_| text)
        })
        .collect();
    assert_eq!(
        output,
        [
            "env=hello level=7",
            "65534",
            "/work/here",
            "buildkitsandbox",
            "lo",
            "shell-was-set",
            "after-shell",
        ],
        "{stderr}"
    );
    lab.assert_nothing_left();
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_failing_run_says_so_and_leaves_the_store_as_it_was() {
    let lab = Lab::new("build-run-fails");
    lab.ok("FROM busybox\nCMD [\"sh\"]\n", &["-t", "lab/ok"]);
    let before = common::fingerprint(&lab.images());
    let out = lab.build(
        "FROM busybox\nENV A=1\nRUN echo partial > /f && exit 3\n",
        &["-t", "lab/broken"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "mini-docker: error: Dockerfile:3: the command '/bin/sh -c echo partial > /f && exit 3' returned a non-zero code: 3"
        ),
        "{stderr}"
    );
    let after = common::fingerprint(&lab.images());
    // Every file as it was (the cache may remember the steps that ran;
    // directories are compared by name: mini-docker tightens their modes).
    let changed: Vec<_> = after
        .iter()
        .filter(|(k, v)| {
            !k.starts_with("build-cache")
                && match before.get(*k) {
                    None => true,
                    Some(old) => old != *v && !v.ends_with(" dir"),
                }
        })
        .chain(before.iter().filter(|(k, _)| !after.contains_key(*k)))
        .collect();
    assert!(changed.is_empty(), "the store changed: {changed:?}");
    assert!(lab.store().find("lab/broken").is_err());
    lab.assert_nothing_left();
}

/// A build whose RUN step holds until it is killed; killed when dropped
/// (a failed assertion must not leave it running).
struct Hanging(Option<std::process::Child>);

impl Hanging {
    fn start(lab: &Lab, marker: &str) -> Hanging {
        lab.file(
            "Dockerfile",
            &format!("FROM busybox\nRUN sleep 1000; echo {marker}\n"),
        );
        let ctx = lab.ctx.display().to_string();
        let mut command = lab.command(&["build", "--progress", "plain", &ctx]);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let hanging = Hanging(Some(command.spawn().unwrap()));
        let started = common::wait_for(common::PATIENCE, || {
            (!common::processes_with(marker).is_empty()).then_some(())
        });
        assert!(started.is_some(), "the RUN step never started");
        hanging
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.0.as_ref().unwrap().id() as i32)
    }

    fn take(mut self) -> std::process::Child {
        self.0.take().unwrap()
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        // Ctrl-C first, so that the build removes its step's cgroup.
        if let Some(mut child) = self.0.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let ended = common::wait_for(common::PATIENCE, || child.try_wait().ok().flatten());
            if ended.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn an_interrupted_or_killed_build_leaves_nothing_behind() {
    let lab = Lab::new("build-interrupted");
    let marker = "lab-build-interrupt-marker";
    let hanging = Hanging::start(&lab, marker);
    // One directory per hierarchy, all named for this build's first step.
    let running = step_cgroups();
    let name = format!("build-{}-0", hanging.pid());
    assert!(!running.is_empty(), "the step has no cgroup while it runs");
    assert!(running.iter().all(|d| d.ends_with(&name)), "{running:?}");
    nix::sys::signal::kill(hanging.pid(), nix::sys::signal::Signal::SIGINT).unwrap();
    let out = hanging.take().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the build was interrupted"), "{stderr}");
    assert!(common::processes_with(marker).is_empty());
    lab.assert_nothing_left();

    // SIGKILL: the step dies with the build (PR_SET_PDEATHSIG), its mount
    // with its namespace; the next build removes the cgroup it named.
    let marker = "lab-build-kill-marker";
    let mut child = Hanging::start(&lab, marker).take();
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = common::wait_for(common::PATIENCE, || {
        common::processes_with(marker).is_empty().then_some(())
    });
    assert!(gone.is_some(), "the step outlived the killed build");
    let state = lab.state.display().to_string();
    assert!(!common::host_mountinfo().contains(&state));
    lab.ok("FROM busybox\n", &["-t", "lab/after"]);
    lab.assert_nothing_left();
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn bad_dockerfiles_get_an_error_naming_the_line() {
    let lab = Lab::new("build-bad-dockerfiles");
    lab.file("present.txt", "x\n");
    let cases = [
        (
            "FROM busybox\nFROBNICATE x\n",
            "Dockerfile:2: unknown instruction: FROBNICATE",
        ),
        (
            "RUN echo hi\n",
            "Dockerfile:1: no build stage in current context",
        ),
        ("FROM busybox\n\nCOPY missing.txt /\n", "Dockerfile:3: "),
        ("FROM busybox\nCOPY ../outside.txt /\n", "Dockerfile:2: "),
        ("FROM lab/no-such-image\n", "Dockerfile:1: "),
        (
            "FROM busybox\nEXPOSE 80/bogus\n",
            "Dockerfile:2: invalid proto: bogus",
        ),
    ];
    for (dockerfile, expected) in cases {
        let out = lab.build(dockerfile, &["-t", "lab/bad"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{dockerfile:?}: {stderr}");
        let line = stderr
            .lines()
            .find_map(|l| l.strip_prefix("mini-docker: error: "))
            .unwrap_or_else(|| panic!("{dockerfile:?}: no error line in {stderr}"));
        assert!(line.starts_with(expected), "{dockerfile:?}: {line}");
        // After `Dockerfile:N: `, Docker's words: lowercase, or the
        // instruction that failed (`COPY failed: …`).
        let message = line.split_once(": ").map_or("", |(_, m)| m);
        assert!(
            message.starts_with(|c: char| c.is_lowercase()) || message.starts_with("COPY failed"),
            "{dockerfile:?}: {line}"
        );
    }
    assert!(lab.store().find("lab/bad").is_err());
    let out = lab.build("FROM busybox\n", &["-t", "Lab/Upper"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("invalid argument \"Lab/Upper\" for \"-t, --tag\" flag"),
        "{stderr}"
    );
    lab.assert_nothing_left();
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_built_image_is_pushed_inspected_by_skopeo_and_run_by_podman() {
    let lab = Lab::new("build-interop");
    lab.file("greeting.txt", "hello from the lab's builder\n");
    lab.ok(
        "FROM busybox\nCOPY greeting.txt /srv/\nRUN wc -c /srv/greeting.txt > /srv/size\n\
         ENV WHO=podman\nCMD [\"sh\", \"-c\", \"cat /srv/greeting.txt /srv/size; echo $WHO\"]\n",
        &["-t", "lab/interop"],
    );
    let registry = common::registry::registry(common::registry::Auth::None);
    let target = Reference::parse(&format!("{}/lab/interop:1", registry.host)).unwrap();
    push(
        &lab.store(),
        "lab/interop",
        &target,
        &PushOptions::default(),
        &|_| {},
    )
    .unwrap();

    let inspect: Value =
        serde_json::from_str(&registry.skopeo(&["inspect"], "lab/interop:1")).unwrap();
    let image = lab.image("lab/interop");
    assert_eq!(
        inspect["Layers"].as_array().unwrap().len(),
        image.layers.len()
    );
    assert!(inspect["Env"]
        .as_array()
        .unwrap()
        .contains(&Value::String("WHO=podman".into())));
    let config: Value =
        serde_json::from_str(&registry.skopeo(&["inspect", "--config"], "lab/interop:1")).unwrap();
    assert_eq!(
        config,
        lab.config(&image),
        "skopeo reads the config as stored"
    );

    // podman with storage of its own, no network, no cgroup (crun), no
    // limit above ours (this root lacks CAP_SYS_RESOURCE), in a mount
    // namespace without the hybrid layout's v2 mount (crun 1.8 refuses it).
    let podman = lab.state.join("podman");
    let out = common::run({
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg("umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"")
            .arg("podman")
            .arg("--root")
            .arg(podman.join("root"))
            .arg("--runroot")
            .arg(podman.join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "--events-backend",
                "none",
                "--runtime",
                "crun",
                "--cgroup-manager",
                "cgroupfs",
                "run",
                "--rm",
                "--quiet",
                "--network",
                "none",
                "--cgroups",
                "disabled",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
                "--tls-verify=false",
            ])
            .arg(format!("{}/lab/interop:1", registry.host))
            .stdin(Stdio::null());
        command
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "podman: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "hello from the lab's builder\n29 /srv/greeting.txt\npodman\n"
    );
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(&podman)
        .status();
    let _ = fs::remove_dir_all(&podman);
    lab.assert_nothing_left();
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn commit_diff_and_export_read_a_containers_writable_layer() {
    let lab = Lab::new("build-commit-diff");
    let script = "mkdir /made && echo made > /made/f && rm /bin/vi && touch /ready && sleep 1000";
    let out = lab.md(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ready = common::wait_for(common::PATIENCE, || {
        let out = lab.md(&["diff", "box"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("A /ready").then_some(text)
    });
    let diff = ready.expect("the container never wrote /ready");
    for line in ["C /bin", "D /bin/vi", "A /made", "A /made/f"] {
        assert!(
            diff.lines().any(|l| l == line),
            "{line} missing in:\n{diff}"
        );
    }

    let out = lab.md(&["commit", "-m", "made a dir", "box", "lab/committed:1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let image = lab.image("lab/committed:1");
    assert_eq!(id, image.id());
    let top = layer_entries(&lab.store(), &image, image.layers.len() - 1);
    assert_eq!(top.get("made/f").map(String::as_str), Some("made\n"));
    assert!(top.contains_key("bin/.wh.vi"), "{top:?}");
    let config = lab.config(&image);
    let last = config["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["comment"], "made a dir");

    let tar_path = lab.state.join("box.tar");
    let out = lab.md(&["export", "-o", &tar_path.display().to_string(), "box"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut archive = tar::Archive::new(fs::File::open(&tar_path).unwrap());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    let has = |n: &str| {
        names
            .iter()
            .any(|p| p.trim_start_matches("./").trim_end_matches('/') == n)
    };
    assert!(
        has("made/f") && has("bin/sh") && !has("bin/vi"),
        "{names:?}"
    );
    assert!(lab.md(&["rm", "-f", "box"]).status.success());
    lab.assert_nothing_left();
}
