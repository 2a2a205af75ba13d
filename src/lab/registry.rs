//! Chapter 9's registry: Debian's `docker-registry` (distribution 2.8)
//! serving a directory on a free port of 127.0.0.1, so that the chapter
//! works in a room with no internet. Ended by its PID when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

pub struct LocalRegistry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    child: Child,
}

impl LocalRegistry {
    /// Starts `docker-registry serve` with a config in `dir` and waits
    /// until it listens.
    pub fn start(dir: &Path) -> anyhow::Result<LocalRegistry> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let host = format!("127.0.0.1:{port}");
        std::fs::create_dir_all(dir)?;
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {host}\n  secret: lab\n",
                dir.join("data").display()
            ),
        )?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "cannot start docker-registry: install it with sudo apt-get install \
                 docker-registry (scripts/provision.sh does)",
            )?;
        let registry = LocalRegistry { host, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&registry.host).is_err() {
            if Instant::now() > deadline {
                anyhow::bail!("docker-registry did not listen on {}", registry.host);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(registry)
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
