//! The network primitives: links, addresses and routes over rtnetlink,
//! nftables rulesets and the sysctls of a network namespace. They take
//! names and addresses; which names and which addresses a container gets
//! is the engine's business (`engine::network`).

pub mod links;
pub mod netlink;
pub mod nft;
pub mod sysctl;

use std::io;

use crate::support::error::IoError;

/// `map_err` for a netlink request: what was being done to which link.
pub(crate) fn op<D: std::fmt::Display>(
    what: &'static str,
    name: D,
) -> impl FnOnce(io::Error) -> NetError {
    let name = name.to_string();
    move |source| NetError::Netlink { what, name, source }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("failed to {what} {name}: {source}")]
    Netlink {
        what: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("no network interface called {0}")]
    NoSuchLink(String),
    #[error("nft refused the rules: {0}; is the nftables package installed and nf_tables loaded?")]
    Nft(String),
    #[error(transparent)]
    Io(#[from] IoError),
}
