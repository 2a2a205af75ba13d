//! `mini-docker --runtime PATH run …`: the same container, made by any
//! runc-compatible runtime (runc, crun, lab-runc) instead of the engine's
//! own start path. mini-docker writes a bundle (config.json from the run
//! configuration, the image's layers under an upper directory) and runs
//! `PATH run` on it in the foreground; the bundle goes when it exits.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use container_lab::engine::dirs::{self, LabDirs};
use container_lab::engine::images::local;
use container_lab::engine::lifecycle::from_image;
use container_lab::engine::oci::bundle;
use container_lab::engine::oci::external::External;
use container_lab::engine::runtime;
use container_lab::lab::privilege;
use container_lab::support::ids;

use crate::run::RunArgs;

/// Runs the container through `runtime`; its exit status.
pub fn run(args: &RunArgs, runtime: &Path) -> anyhow::Result<i32> {
    let mut config = args.config()?;
    let mut refused = bundle::refused_flags(&config);
    if args.detach {
        refused
            .push("-d: nothing stays to supervise it: the runtime runs in the foreground".into());
    }
    if args.explain {
        refused.push("--explain: the steps are the runtime's own".into());
    }
    if let Some(first) = refused.first() {
        bail!("--runtime {} cannot run it with {first}", runtime.display());
    }
    privilege::ensure_root(
        "mini-docker",
        "containers need namespaces, mounts and cgroups",
    )?;
    let dirs = LabDirs::from_env();
    dirs.prepare()?;
    let id = match &args.name {
        Some(name) => name.clone(),
        None => ids::random_id()?[..12].to_string(),
    };
    config.hostname = args.hostname.clone().unwrap_or_else(|| id.clone());
    config.name = id.clone();
    let store = local::open(&dirs)?;
    let image = local::resolve(&store, &dirs, &config.image)?;
    // The image's Entrypoint, Cmd, Env, WorkingDir and User, as `run` has.
    from_image::apply(&mut config, &image).map_err(|e| anyhow::anyhow!(e))?;
    let layers = runtime::image_layers(&dirs, &config)?;
    // The image's own users: the topmost layer with an /etc/passwd.
    let image_root = layers
        .iter()
        .rev()
        .map(|l| l.path.clone())
        .find(|p| p.join("etc/passwd").exists())
        .or_else(|| layers.last().map(|l| l.path.clone()))
        .context("the image has no layers")?;
    let bundles = dirs.run.join("bundles");
    std::fs::create_dir_all(&bundles)?;
    let dir = bundles.join(&id);
    if let Err(err) = std::fs::create_dir(&dir) {
        bail!(
            "cannot make the bundle {} ({err}): a container named {id} runs already; pick another --name",
            dir.display()
        );
    }
    let bundle = Bundle(dir);
    // ANCHOR: bundle
    let parent = Path::new("container-lab");
    let cgroups_path = format!("{}/{id}", parent.display());
    let spec = bundle::spec_for(&dirs, &config, &image_root, &cgroups_path)?;
    spec.save(bundle.0.join("config.json"))?;
    let name = runtime.file_name().unwrap_or(runtime.as_os_str());
    let external = External {
        program: runtime.to_path_buf(),
        root: dirs.run.join("runtimes").join(name),
    };
    let stdin = if config.interactive {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let code = external.run(&bundle.0, &layers, &id, stdin);
    external.delete(&id, parent);
    // ANCHOR_END: bundle
    Ok(code?)
}

/// The bundle's directory (config.json, upper, work), removed at the end.
struct Bundle(PathBuf);

impl Drop for Bundle {
    fn drop(&mut self) {
        if let Err(err) = dirs::remove_tree(&self.0) {
            log::warn!("cannot remove the bundle {}: {err}", self.0.display());
        }
    }
}
