//! A bundle's `config.json` from the engine's run configuration: the same
//! container `mini-docker run` makes, described for any runc-compatible
//! runtime (`mini-docker --runtime PATH run …`). What the description has
//! no field for here (another container's network, devices, a restart
//! policy) is refused by its Docker flag before anything is made.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    Mount, MountBuilder, Spec,
};

use super::OciError;
use crate::engine::dirs::LabDirs;
use crate::engine::runtime::config::{NetworkMode, RestartPolicy, RunConfig};
use crate::engine::runtime::etc_files;
use crate::engine::volumes::{self, Source};

/// The Docker flags a bundle cannot carry, as `flag: why`; empty when it can.
pub fn refused_flags(config: &RunConfig) -> Vec<String> {
    let mut refused = Vec::new();
    let mut refuse = |flag: &str, why: &str| refused.push(format!("{flag}: {why}"));
    // The lab's bridge and user-defined networks are joined by the
    // monitor between the runtime's create and start (see `monitor`).
    let joined = matches!(config.network, NetworkMode::Bridge | NetworkMode::Named(_));
    if let NetworkMode::Container(name) = &config.network {
        refuse(
            &format!("--network container:{name}"),
            "the other container's namespace is the engine's; use --network none, host, bridge or a network's name",
        );
    }
    if !config.publish.is_empty() && !joined {
        refuse(
            "-p",
            "published ports need the lab's bridge or a network of its own",
        );
    }
    if !config.devices.is_empty() {
        refuse("--device", "not described in the bundle yet");
    }
    if config.privileged {
        refuse("--privileged", "not described in the bundle yet");
    }
    if config.init {
        refuse("--init", "the lab's init is the engine's");
    }
    if config.profile.seccomp_profile.is_some() {
        refuse(
            "--security-opt seccomp=FILE",
            "not described in the bundle yet; Docker's default and unconfined are",
        );
    }
    if config.restart != RestartPolicy::No {
        refuse(
            "--restart",
            "nothing stays to restart it: the runtime exits",
        );
    }
    if config.volumes.iter().any(|v| v.source == Source::Anonymous) {
        refuse("-v /TARGET", "name the volume or the host path");
    }
    refused
}

/// `config.json` for `config`, whose root filesystem is `rootfs` (the
/// image's files, for its /etc/passwd) and whose cgroup is `cgroups_path`.
pub fn spec_for(
    dirs: &LabDirs,
    config: &RunConfig,
    image_root: &Path,
    cgroups_path: &str,
) -> Result<Spec, OciError> {
    let mut spec = Spec::default();
    spec.set_version(super::OCI_VERSION.to_string());
    spec.set_hostname(Some(config.hostname.clone()));
    if let Some(root) = spec.root_mut() {
        root.set_path(PathBuf::from("rootfs"));
        root.set_readonly(Some(config.read_only));
    }
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(config.tty));
        process.set_args(Some(config.command.clone()));
        let env = crate::engine::runtime::environment(config, &[]);
        process.set_env(Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()));
        process.set_cwd(PathBuf::from(config.workdir.as_deref().unwrap_or("/")));
        if let Some(user) = &config.user {
            let (uid, gid) = crate::engine::images::users::lookup_user(image_root, user)
                .map_err(|e| OciError::invalid("process.user", e.to_string()))?;
            let mut oci_user = process.user().clone();
            oci_user.set_uid(uid);
            oci_user.set_gid(gid);
            process.set_user(oci_user);
        }
        // oci-spec parses the names without their CAP_ prefix.
        let keep = config
            .profile
            .keep
            .iter()
            .map(|name| {
                let bare = name.strip_prefix("CAP_").unwrap_or(name);
                bare.parse::<oci_spec::runtime::Capability>().map_err(|_| {
                    OciError::invalid("process.capabilities", format!("unknown capability {name}"))
                })
            })
            .collect::<Result<std::collections::HashSet<_>, _>>()?;
        let mut caps = process.capabilities().clone().unwrap_or_default();
        caps.set_bounding(Some(keep.clone()));
        caps.set_effective(Some(keep.clone()));
        caps.set_permitted(Some(keep));
        caps.set_inheritable(None);
        caps.set_ambient(None);
        process.set_capabilities(Some(caps));
        // Off unless --security-opt no-new-privileges, as in Docker (and
        // the engine); oci-spec's default is on.
        process.set_no_new_privileges(Some(config.profile.no_new_privs));
    }
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for volume in &config.volumes {
        let source = volumes::host_path(dirs, volume, "")
            .map_err(|e| OciError::invalid("mounts", e.to_string()))?;
        let mut options = vec!["rbind".to_string()];
        if volume.read_only {
            options.push("ro".into());
        }
        mounts.push(bind(&source, &volume.target, options)?);
    }
    for tmpfs in &config.tmpfs {
        mounts.push(tmpfs_mount(&tmpfs.target, tmpfs.flags, &tmpfs.data)?);
    }
    spec.set_mounts(Some(mounts));
    if let Some(linux) = spec.linux_mut() {
        if config.network == NetworkMode::Host {
            let namespaces = linux.namespaces().clone().unwrap_or_default();
            let kept = namespaces
                .into_iter()
                .filter(|n| n.typ() != LinuxNamespaceType::Network)
                .collect();
            linux.set_namespaces(Some(kept));
        }
        linux.set_cgroups_path(Some(PathBuf::from(cgroups_path)));
        // The engine's filter, for the capabilities the process keeps; none
        // with --security-opt seccomp=unconfined.
        if config.profile.seccomp {
            let profile = super::seccomp::docker_default(&config.profile.keep)?;
            linux.set_seccomp(Some(profile));
        }
        let mut resources = linux.resources().clone().unwrap_or_default();
        let limits = &config.limits;
        let build = |e: oci_spec::OciSpecError| OciError::Other(e.to_string());
        if let Some(bytes) = limits.memory_bytes {
            // No swap, as the engine's own containers (`-m` alone).
            let bytes = bytes as i64;
            let memory = LinuxMemoryBuilder::default()
                .limit(bytes)
                .swap(bytes)
                .build()
                .map_err(build)?;
            resources.set_memory(Some(memory));
        }
        if let Some(cpus) = limits.cpus {
            let period = crate::kernel::cgroups::CPU_PERIOD_US;
            let cpu = LinuxCpuBuilder::default()
                .period(period)
                .quota((cpus * period as f64) as i64)
                .build()
                .map_err(build)?;
            resources.set_cpu(Some(cpu));
        }
        if let Some(pids) = limits.pids {
            let pids = LinuxPidsBuilder::default()
                .limit(pids as i64)
                .build()
                .map_err(build)?;
            resources.set_pids(Some(pids));
        }
        if let Some(weight) = limits.blkio_weight {
            let io = LinuxBlockIoBuilder::default()
                .weight(weight)
                .build()
                .map_err(build)?;
            resources.set_block_io(Some(io));
        }
        let throttled = !(limits.device_read_bps.is_empty()
            && limits.device_write_bps.is_empty()
            && limits.device_read_iops.is_empty()
            && limits.device_write_iops.is_empty());
        if throttled {
            return Err(OciError::unsupported(
                "linux.resources.blockIO",
                "--device-read-bps and the like are not described in the bundle yet",
            ));
        }
        linux.set_resources(Some(resources));
    }
    Ok(spec)
}

/// The container's /etc/hosts, resolv.conf and hostname, as the engine's
/// own containers have them (`runtime::etc_files`): written into the
/// bundle's `etc` directory and bind-mounted over the image's by the
/// runtime. `network_resolv`: the resolver of the network it joins, if it
/// has one. Written again, in place, once the address is known.
// ANCHOR: etc_files
pub fn add_etc_files(
    spec: &mut Spec,
    bundle: &Path,
    config: &RunConfig,
    network_resolv: Option<String>,
) -> Result<(), OciError> {
    write_etc_files(bundle, config, None, network_resolv)?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for name in etc_files::FILES {
        let source = bundle.join("etc").join(name);
        let target = format!("/etc/{name}");
        mounts.push(bind(&source, &target, vec!["rbind".into()])?);
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}
// ANCHOR_END: etc_files

/// The files of [`add_etc_files`], with the container's address `ip`.
pub fn write_etc_files(
    bundle: &Path,
    config: &RunConfig,
    ip: Option<std::net::Ipv4Addr>,
    network_resolv: Option<String>,
) -> Result<(), OciError> {
    let dir = bundle.join("etc");
    std::fs::create_dir_all(&dir).map_err(crate::support::error::io_err("create", &dir))?;
    etc_files::write(&dir, config, ip, network_resolv).map_err(|e| OciError::Other(e.to_string()))
}

fn bind(source: &Path, target: &str, options: Vec<String>) -> Result<Mount, OciError> {
    MountBuilder::default()
        .destination(PathBuf::from(target))
        .typ("bind")
        .source(source.to_path_buf())
        .options(options)
        .build()
        .map_err(|e| OciError::Other(e.to_string()))
}

fn tmpfs_mount(target: &str, flags: u64, data: &str) -> Result<Mount, OciError> {
    let flags = MsFlags::from_bits_truncate(flags as _);
    let mut options = Vec::new();
    for (flag, name) in [
        (MsFlags::MS_NOSUID, "nosuid"),
        (MsFlags::MS_NODEV, "nodev"),
        (MsFlags::MS_NOEXEC, "noexec"),
        (MsFlags::MS_RDONLY, "ro"),
    ] {
        if flags.contains(flag) {
            options.push(name.to_string());
        }
    }
    options.extend(data.split(',').filter(|o| !o.is_empty()).map(String::from));
    MountBuilder::default()
        .destination(PathBuf::from(target))
        .typ("tmpfs")
        .source(PathBuf::from("tmpfs"))
        .options(options)
        .build()
        .map_err(|e| OciError::Other(e.to_string()))
}
