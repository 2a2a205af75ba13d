//! The bundle: `config.json`, read with the `oci-spec` crate's runtime
//! types, and the root filesystem it names. Fields lab-runc does not
//! honour are refused here, before anything is made, each by its JSON
//! name: a runtime must never silently ignore part of a configuration.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::OciError;

/// A bundle, read and checked.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    /// `root.path`, made absolute against the bundle.
    pub rootfs: PathBuf,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle, OciError> {
        let dir = std::fs::canonicalize(dir).map_err(|e| {
            OciError::Other(format!(
                "bundle {}: {e}; give --bundle the directory holding config.json",
                dir.display()
            ))
        })?;
        let path = dir.join("config.json");
        let text = std::fs::read(&path).map_err(|e| {
            OciError::Other(format!(
                "cannot read {}: {e}; `lab-runc spec` writes a default one",
                path.display()
            ))
        })?;
        let spec: Spec = serde_json::from_slice(&text).map_err(|e| {
            OciError::Other(format!(
                "{} is not a valid OCI configuration: {e}",
                path.display()
            ))
        })?;
        let root = spec.root().as_ref().ok_or_else(|| {
            OciError::invalid("root", "missing: name the root filesystem in root.path")
        })?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            dir.join(root.path())
        };
        let rootfs = std::fs::canonicalize(&rootfs)
            .map_err(|e| OciError::invalid("root.path", format!("{}: {e}", rootfs.display())))?;
        check_supported(&spec)?;
        Ok(Bundle { dir, spec, rootfs })
    }
}

/// Refuses every field lab-runc would otherwise have to ignore.
pub fn check_supported(spec: &Spec) -> Result<(), OciError> {
    let major = spec.version().split('.').next().unwrap_or("");
    if major != "1" {
        return Err(OciError::unsupported(
            "ociVersion",
            format!("{} (this runtime reads version 1.x)", spec.version()),
        ));
    }
    if spec.solaris().is_some() {
        return Err(OciError::unsupported("solaris", "a Linux runtime"));
    }
    if spec.windows().is_some() {
        return Err(OciError::unsupported("windows", "a Linux runtime"));
    }
    if spec.vm().is_some() {
        return Err(OciError::unsupported(
            "vm",
            "containers, not virtual machines",
        ));
    }
    if spec.zos().is_some() {
        return Err(OciError::unsupported("zos", "a Linux runtime"));
    }
    for mount in spec.mounts().iter().flatten() {
        if mount.uid_mappings().is_some() || mount.gid_mappings().is_some() {
            return Err(OciError::unsupported(
                "mounts[].uidMappings",
                "id-mapped mounts are not implemented",
            ));
        }
    }
    if let Some(process) = spec.process() {
        if process
            .apparmor_profile()
            .as_ref()
            .is_some_and(|p| !p.is_empty())
        {
            return Err(OciError::unsupported(
                "process.apparmorProfile",
                "lab-runc does not load AppArmor profiles",
            ));
        }
        if process
            .selinux_label()
            .as_ref()
            .is_some_and(|p| !p.is_empty())
        {
            return Err(OciError::unsupported(
                "process.selinuxLabel",
                "lab-runc does not set SELinux labels",
            ));
        }
        if process.io_priority().is_some() {
            return Err(OciError::unsupported(
                "process.ioPriority",
                "not implemented",
            ));
        }
        if process.scheduler().is_some() {
            return Err(OciError::unsupported(
                "process.scheduler",
                "not implemented",
            ));
        }
        if process.exec_cpu_affinity().is_some() {
            return Err(OciError::unsupported(
                "process.execCPUAffinity",
                "not implemented",
            ));
        }
        if process.command_line().is_some() {
            return Err(OciError::unsupported(
                "process.commandLine",
                "a Windows field",
            ));
        }
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(OciError::invalid(
                "process.args",
                "empty: name the program to run",
            ));
        }
        if !process.cwd().is_absolute() {
            return Err(OciError::invalid(
                "process.cwd",
                format!("{} must be an absolute path", process.cwd().display()),
            ));
        }
    }
    let Some(linux) = spec.linux() else {
        return Err(OciError::invalid(
            "linux",
            "missing: a Linux container needs linux",
        ));
    };
    if linux.intel_rdt().is_some() {
        return Err(OciError::unsupported("linux.intelRdt", "not implemented"));
    }
    if linux.personality().is_some() {
        return Err(OciError::unsupported(
            "linux.personality",
            "not implemented",
        ));
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(OciError::unsupported(
            "linux.timeOffsets",
            "no time namespaces",
        ));
    }
    if linux.memory_policy().is_some() {
        return Err(OciError::unsupported(
            "linux.memoryPolicy",
            "not implemented",
        ));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(OciError::unsupported("linux.netDevices", "not implemented"));
    }
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(OciError::unsupported(
            "linux.mountLabel",
            "lab-runc does not set SELinux labels",
        ));
    }
    let mut seen = Vec::new();
    for ns in linux.namespaces().iter().flatten() {
        if seen.contains(&ns.typ()) {
            return Err(OciError::invalid(
                "linux.namespaces",
                format!("{} is listed twice", ns.typ()),
            ));
        }
        seen.push(ns.typ());
        match ns.typ() {
            LinuxNamespaceType::Time => {
                return Err(OciError::unsupported(
                    "linux.namespaces[time]",
                    "time namespaces are not implemented",
                ))
            }
            LinuxNamespaceType::User if ns.path().is_some() => {
                return Err(OciError::unsupported(
                    "linux.namespaces[user].path",
                    "joining an existing user namespace is not implemented",
                ))
            }
            _ => {}
        }
    }
    let new_user = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|ns| ns.typ() == LinuxNamespaceType::User);
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if maps && !new_user {
        return Err(OciError::invalid(
            "linux.uidMappings",
            "id mappings need a user namespace in linux.namespaces",
        ));
    }
    if let Some(seccomp) = linux.seccomp() {
        super::seccomp::check(seccomp)?;
    }
    if let Some(propagation) = linux.rootfs_propagation() {
        if ![
            "",
            "shared",
            "slave",
            "private",
            "unbindable",
            "rshared",
            "rslave",
            "rprivate",
            "runbindable",
        ]
        .contains(&propagation.as_str())
        {
            return Err(OciError::invalid(
                "linux.rootfsPropagation",
                format!("{propagation:?}: use shared, slave, private or unbindable"),
            ));
        }
    }
    Ok(())
}

/// `lab-runc spec`: runc's default configuration (a shell on a terminal,
/// Docker's capabilities, the usual mounts and masked paths).
pub fn default_spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_version(super::OCI_VERSION.to_string());
    if let Some(process) = spec.process_mut() {
        process.set_args(Some(vec!["sh".to_string()]));
        process.set_terminal(Some(true));
    }
    spec.set_hostname(Some("lab-runc".to_string()));
    spec
}

/// `lab-runc spec --docker-seccomp`: Docker's default seccomp profile (the
/// engine's own) for the capabilities `spec`'s process keeps.
pub fn add_docker_seccomp(spec: &mut Spec) -> Result<(), OciError> {
    let keep: std::collections::BTreeSet<String> = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .into_iter()
        .flatten()
        .map(|cap| format!("CAP_{cap}"))
        .collect();
    let profile = super::seccomp::docker_default(&keep)?;
    if let Some(linux) = spec.linux_mut() {
        linux.set_seccomp(Some(profile));
    }
    Ok(())
}
