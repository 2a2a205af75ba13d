//! Chapter 4: overlay layers.

use std::fs;
use std::path::{Path, PathBuf};

use container_lab::engine::dirs::LabDirs;
use container_lab::kernel::overlay::{self, UpperEntry};
use nix::unistd::Pid;

use super::{Check, Subject};
use crate::evidence;

/// The lab's three layers (chapter 4's image), bottom first.
fn layers() -> Vec<(String, PathBuf)> {
    container_lab::lab::layers::image_layers(&LabDirs::from_env())
        .map(|layers| layers.into_iter().map(|l| (l.name, l.path)).collect())
        .unwrap_or_default()
}

pub fn verify(s: &Subject, pid: Pid) -> Vec<Check> {
    match s.ex.id {
        "ch04-overlay" => stack(s, pid),
        _ => whiteout(s),
    }
}

fn stack(s: &Subject, pid: Pid) -> Vec<Check> {
    let merged = s.run_dir.join("merged");
    let upper = s.run_dir.join("upper");
    let mount = evidence::mount_at(pid, &merged.display().to_string());
    let is_overlay = mount.as_ref().is_some_and(|m| m.fs_type == "overlay");
    let options = evidence::super_options(pid, &merged);
    let lower: Vec<PathBuf> = options
        .split(',')
        .find_map(|o| o.strip_prefix("lowerdir="))
        .map(|l| l.split(':').map(PathBuf::from).collect())
        .unwrap_or_default();
    let layers = layers();
    let name_of = |path: &Path| {
        layers
            .iter()
            .find(|(_, p)| p == path)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| path.display().to_string())
    };
    let order: Vec<String> = lower.iter().map(|p| name_of(p)).collect();
    let top_first: Vec<String> = layers.iter().rev().map(|(n, _)| n.clone()).collect();
    let inside = |path: &str| {
        fs::read_to_string(format!("/proc/{pid}/root{}/{path}", merged.display()))
            .map(|t| t.trim().to_string())
            .unwrap_or_else(|_| "missing".into())
    };
    let motd = inside("etc/motd");
    // A write through the merged view, from the container's side.
    let probe = "written-by-lab-check";
    let wrote = fs::write(
        format!("/proc/{pid}/root{}/{probe}", merged.display()),
        "the lab was here\n",
    )
    .is_ok();
    let in_upper = upper.join(probe).is_file();
    let in_layers = layers.iter().any(|(_, p)| p.join(probe).exists());
    vec![
        Check::new(
            is_overlay,
            "an overlay is mounted on merged/ in the container's mount namespace",
            match &mount {
                Some(m) => format!("merged/ holds a {} mount, not an overlay", m.fs_type),
                None => "nothing is mounted on merged/ in the container's mount namespace".into(),
            },
        ),
        Check::new(
            is_overlay && order == top_first,
            format!(
                "lowerdir lists {}, the top layer first: etc/motd reads {motd:?}",
                order.join(", ")
            ),
            if is_overlay {
                format!(
                    "lowerdir lists {}, so etc/motd reads {motd:?}: lowerdir must list \
                     the layers from the top down ({})",
                    order.join(", "),
                    top_first.join(", ")
                )
            } else {
                "there are no layers to look at".into()
            },
        ),
        Check::new(
            is_overlay && wrote && in_upper && !in_layers,
            "a file written through the merged view lands in upper/, and no layer changes",
            if in_layers {
                "a file written through the merged view landed in a layer: the layers must \
                 be lowerdirs, read-only, and upper/ the upperdir"
                    .to_string()
            } else {
                "a file written through the merged view is not in upper/: upper/ must be \
                 the upperdir"
                    .to_string()
            },
        ),
    ]
}

fn whiteout(s: &Subject) -> Vec<Check> {
    let upper = s.run_dir.join("upper");
    let layers = layers();
    let layer = |name: &str| {
        layers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    };
    let motd = upper.join("etc/motd");
    let copied = fs::read_to_string(&motd).ok();
    let app_motd = fs::read_to_string(layer("app").join("etc/motd")).unwrap_or_default();
    let deleted = "usr/lib/runtime/libgreet.txt";
    let mark = overlay::inspect_upper(&upper.join(deleted));
    let still_in_layer = layer("runtime").join(deleted).is_file();
    vec![
        Check::new(
            copied.as_deref().is_some_and(|c| c != app_motd),
            format!(
                "etc/motd was copied up: upper/ holds the changed file ({} bytes); the \
                 app layer keeps its own",
                copied.as_deref().map_or(0, str::len)
            ),
            "upper/ holds no changed etc/motd: change it through the merged view",
        ),
        Check::new(
            mark == UpperEntry::Whiteout,
            format!("{deleted} is a whiteout in upper/: a 0/0 character device"),
            format!("upper/ has no whiteout for {deleted}: delete it through the merged view"),
        ),
        Check::new(
            still_in_layer && app_motd.contains("app layer"),
            "the layers are untouched: the runtime layer still has libgreet.txt",
            "a layer itself was changed: work through the merged view only (rebuild the \
             layers: sudo rm -rf /var/lib/container-lab/images/layers)",
        ),
    ]
}
