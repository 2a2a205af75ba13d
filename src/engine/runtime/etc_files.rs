//! /etc/hosts, /etc/resolv.conf and /etc/hostname, per container, as
//! Docker provides them: written by the host into the container's run
//! directory, then bind-mounted over the image's files from inside, so that
//! the image stays untouched and each container has its own.
//!
//! - hosts: localhost (v4 and v6), Docker's IPv6 names, `--add-host`
//!   lines, and the container's own address with its hostname.
//! - resolv.conf: on a user-defined network its resolver (see
//!   `network::dns`); on the default bridge the host's, without resolvers on
//!   loopback (they would be the container's own loopback; Docker falls
//!   back to Google's public ones when none is left); `--dns` and
//!   `--dns-search` in their place.
//! - hostname: the container's hostname.
//!
//! With `--network host` the container shares the host's: its hosts and
//! resolv.conf as they are.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::config::{NetworkMode, RunConfig};
use super::RuntimeError;
use crate::kernel::mounts;

/// The files, in the order they are mounted.
pub const FILES: [&str; 3] = ["hosts", "resolv.conf", "hostname"];

/// Docker's fallback when the host's resolvers are all on loopback.
const FALLBACK_DNS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// Docker's /etc/hosts for a container with `ip` (none: no network).
pub fn hosts(config: &RunConfig, ip: Option<Ipv4Addr>) -> String {
    if config.network == NetworkMode::Host {
        return std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    }
    let mut text = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for (name, address) in &config.extra.add_hosts {
        text.push_str(&format!("{address}\t{name}\n"));
    }
    if let Some(ip) = ip {
        text.push_str(&format!("{ip}\t{}\n", config.hostname));
    }
    text
}

/// The container's /etc/resolv.conf, from the host's `host` text.
pub fn resolv_conf(config: &RunConfig, host: &str) -> String {
    if config.network == NetworkMode::Host && config.extra.dns.is_empty() {
        return host.to_string();
    }
    let mut lines: Vec<String> = Vec::new();
    let mut servers = Vec::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words
                    .next()
                    .and_then(|w| w.parse::<std::net::IpAddr>().ok())
                {
                    if !ip.is_loopback() {
                        servers.push(ip.to_string());
                    }
                }
            }
            Some("search" | "domain") if !config.extra.dns_search.is_empty() => {}
            _ => lines.push(line.to_string()),
        }
    }
    if !config.extra.dns.is_empty() {
        servers = config.extra.dns.clone();
    } else if servers.is_empty() {
        servers = FALLBACK_DNS.iter().map(|s| s.to_string()).collect();
    }
    if !config.extra.dns_search.is_empty() {
        lines.push(format!("search {}", config.extra.dns_search.join(" ")));
    }
    lines.extend(servers.iter().map(|s| format!("nameserver {s}")));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Writes the three files into `dir` (the container's run directory).
/// `network_resolv`: the resolv.conf of the network it joins, if that
/// network resolves names itself.
pub fn write(
    dir: &Path,
    config: &RunConfig,
    ip: Option<Ipv4Addr>,
    network_resolv: Option<String>,
) -> Result<(), RuntimeError> {
    let asked = !config.extra.dns.is_empty() || !config.extra.dns_search.is_empty();
    let resolv = match network_resolv {
        // The network's resolver, as the network writes it.
        Some(text) if !asked => text,
        Some(text) => resolv_conf(config, &text),
        None => resolv_conf(
            config,
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        ),
    };
    let contents = [hosts(config, ip), resolv, format!("{}\n", config.hostname)];
    for (name, text) in FILES.iter().zip(contents) {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| RuntimeError::Setup(format!("write {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Inside, before pivot_root: binds each file of `dir` over the image's
/// `/etc/NAME` in `merged` (made when the image has none; a symlink there
/// is replaced in the writable layer, as it would lead elsewhere).
pub fn mount(dir: &Path, merged: &Path) -> Result<(), RuntimeError> {
    let etc = merged.join("etc");
    std::fs::create_dir_all(&etc)
        .map_err(|e| RuntimeError::Setup(format!("create {}: {e}", etc.display())))?;
    for name in FILES {
        let target: PathBuf = etc.join(name);
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_file() => {}
            Ok(meta) if meta.is_dir() => {
                return Err(RuntimeError::Setup(format!(
                    "the image's /etc/{name} is a directory; it must be a file"
                )))
            }
            Ok(_) => {
                std::fs::remove_file(&target)
                    .and_then(|_| std::fs::write(&target, ""))
                    .map_err(|e| RuntimeError::Setup(format!("replace /etc/{name}: {e}")))?;
            }
            Err(_) => std::fs::write(&target, "")
                .map_err(|e| RuntimeError::Setup(format!("create /etc/{name}: {e}")))?,
        }
        mounts::bind(&dir.join(name), &target, false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_resolvers_as_docker_does() {
        let mut config = RunConfig::new("busybox", &["true"]);
        let host = "# from the host\nnameserver 127.0.0.53\noptions edns0\nsearch lan\n";
        assert_eq!(
            resolv_conf(&config, host),
            "# from the host\noptions edns0\nsearch lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        config.extra.dns = vec!["1.1.1.1".into()];
        config.extra.dns_search = vec!["example.com".into()];
        assert_eq!(
            resolv_conf(&config, host),
            "# from the host\noptions edns0\nsearch example.com\nnameserver 1.1.1.1\n"
        );
        config.network = NetworkMode::Host;
        config.extra.dns.clear();
        assert_eq!(resolv_conf(&config, host), host);
    }

    #[test]
    fn hosts_names_localhost_the_extra_hosts_and_the_container() {
        let mut config = RunConfig::new("busybox", &["true"]);
        config.hostname = "web".into();
        config.extra.add_hosts = vec![("db".into(), "10.0.0.5".into())];
        let text = hosts(&config, Some(Ipv4Addr::new(172, 30, 0, 2)));
        assert!(text.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost"));
        assert!(text.ends_with("10.0.0.5\tdb\n172.30.0.2\tweb\n"), "{text}");
    }
}
