//! The UTS namespace's one setting: the hostname. Every chapter and the
//! runtime set it here, the one way: `sethostname(2)`, in the caller's own
//! UTS namespace (which must be the container's).

use nix::errno::Errno;

/// `hostname NAME`, for the UTS namespace this process is in.
// ANCHOR: set
pub fn set(name: &str) -> Result<(), HostnameError> {
    nix::unistd::sethostname(name).map_err(|errno| HostnameError {
        name: name.to_string(),
        errno,
    })
}
// ANCHOR_END: set

/// `hostname`: the name of this process's UTS namespace.
pub fn get() -> String {
    nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
#[error("failed to set the hostname to {name:?}: {errno}")]
pub struct HostnameError {
    pub name: String,
    pub errno: Errno,
}
