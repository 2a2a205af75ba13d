//! What the lab-runc and podman tests share: a bundle of the lab's
//! busybox tree, the container's cgroup directories as the host sees them,
//! and a process's parent and state from /proc.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use container_lab::engine::dirs::LabDirs;

/// `relative` beneath our own cgroup, in every hierarchy we are in (v1
/// controllers, the unified one), where it exists.
pub fn cgroup_dirs(relative: &str) -> Vec<PathBuf> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let mut dirs: Vec<PathBuf> = own
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            if controllers.starts_with("name=") {
                return None;
            }
            let base = if unified {
                PathBuf::from("/sys/fs/cgroup")
            } else if controllers.is_empty() {
                PathBuf::from("/sys/fs/cgroup/unified")
            } else {
                Path::new("/sys/fs/cgroup").join(controllers.split(',').next()?)
            };
            Some(base.join(path.trim_start_matches('/')).join(relative))
        })
        .filter(|d| d.exists())
        .collect();
    // Nested directories too (podman's libpod-ID beneath the parent).
    let mut nested = Vec::new();
    for dir in &dirs {
        if let Ok(entries) = fs::read_dir(dir) {
            nested.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    dirs.extend(nested);
    dirs
}

/// Field 4 of /proc/PID/stat.
pub fn parent_of(pid: i32) -> i32 {
    stat_field(pid, 1).and_then(|f| f.parse().ok()).unwrap_or(0)
}

pub fn is_zombie(pid: i32) -> bool {
    stat_field(pid, 0).is_some_and(|s| s == "Z")
}

fn stat_field(pid: i32, index: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(index).map(String::from)
}

/// The lab's busybox tree, built under `dir`.
pub fn busybox_tree(dir: &Path) -> PathBuf {
    let dirs = LabDirs {
        data: dir.join("lab/lib"),
        run: dir.join("lab/run"),
    };
    container_lab::engine::images::busybox::image(&dirs)
        .unwrap()
        .0
}

/// A bundle in `dir`: a copy of the busybox tree as its root and
/// `lab-runc spec`'s config.json, changed by `edit`.
pub fn bundle(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let tree = busybox_tree(dir);
    let bundle = dir.join("bundle");
    let _ = fs::remove_dir_all(&bundle);
    fs::create_dir_all(&bundle).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&tree)
        .arg(bundle.join("rootfs"))
        .status()
        .unwrap();
    assert!(copied.success());
    let spec = Command::new(super::common::binary("lab-runc"))
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .status()
        .unwrap();
    assert!(spec.success());
    let path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    edit(&mut config);
    fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    bundle
}
