//! Issue 10, item 5: publishing a port on the host's 127.0.0.1 turns on
//! `route_localnet` for the bridge, which would let any container reach
//! services bound only to the host's loopback (CVE-2020-8558). Attacked
//! as a hostile container would: with CAP_NET_RAW (Docker's default
//! keeps it) it writes raw Ethernet frames for 127.0.0.1 to the gateway's
//! MAC. Checked from outside, by the host's own sockets: nothing arrives
//! at the loopback service, the same frames aimed at the host's other
//! address do arrive, and `-p` still answers on both addresses.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The host's address besides 127.0.0.1, on a veth pair of its own
/// (an "uplink" as a real host has one).
const HOST_ADDRESS: &str = "10.200.0.1";
const SECRET_PORT: u16 = 7001;

/// mini-docker, always in the test's own "host" network namespace.
struct Lab {
    host: common::HostNetns,
    state: PathBuf,
}

impl Lab {
    fn new(test: &str) -> Lab {
        Lab {
            host: common::HostNetns::new(),
            state: common::state_root(test),
        }
    }

    /// `mini-docker ARGS`, ended (and the test failed) if it hangs.
    fn md(&self, args: &[&str]) -> Output {
        let mut child = self
            .host
            .command(common::mini_docker(&self.state, args))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stdout.read_to_end(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text);
            text
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mini-docker {args:?} hung: killed after 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        };
        println!(
            "--- mini-docker {args:?}: {:?}\n{}{}",
            status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.md(args);
        assert_eq!(output.status.code(), Some(0), "mini-docker {args:?} failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A command in the host namespace that must succeed.
    fn host_runs(&self, program: &str, args: &[&str]) {
        let mut command = Command::new(program);
        command.args(args);
        let status = self.host.command(command).status().unwrap();
        assert!(status.success(), "{program} {args:?} failed in the host");
    }
}

impl Drop for Lab {
    /// A failed test still removes its containers: detached, they would
    /// outlive the test.
    fn drop(&mut self) {
        let Ok(out) = self.md_quiet(&["ps", "-a", "-q"]) else {
            return;
        };
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = self.md_quiet(&["rm", "-f", id]);
        }
    }
}

impl Lab {
    fn md_quiet(&self, args: &[&str]) -> std::io::Result<Output> {
        self.host
            .command(common::mini_docker(&self.state, args))
            .output()
    }
}

/// The attacker's tool, built for this run: static, so it runs in the
/// busybox image.
fn build_rawsend(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/rawsend.c");
    let binary = dir.join("rawsend");
    let status = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("run cc (the build-essential package)");
    assert!(
        status.success(),
        "cc -static failed for {}",
        source.display()
    );
    binary
}

fn http_get(address: SocketAddr, path: &str) -> Result<String, String> {
    let mut stream =
        TcpStream::connect_timeout(&address, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    Ok(response.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

/// What a socket has received so far, without waiting.
fn received(socket: &UdpSocket) -> Vec<String> {
    socket.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buffer = [0u8; 512];
    while let Ok((n, _)) = socket.recv_from(&mut buffer) {
        got.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
    }
    got
}

/// Waits (a generous limit for a slow guest, not a measure) for the
/// control datagram: sent last from one CPU, it arrives after the host has
/// handled every frame before it, delivered or dropped.
fn wait_for_control(socket: &UdpSocket, wanted: &str) {
    socket.set_nonblocking(false).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buffer = [0u8; 512];
    loop {
        let (n, _) = socket
            .recv_from(&mut buffer)
            .expect("the control datagram to the host's other address never arrived");
        if &buffer[..n] == wanted.as_bytes() {
            return;
        }
    }
}

#[test]
#[cfg_attr(
    not(lab_root),
    ignore = "needs root: run the test suite as root (sudo -E cargo test)"
)]
fn a_container_cannot_reach_the_hosts_loopback_while_published_ports_answer_there() {
    common::assert_root();
    let lab = Lab::new("escapes-network-loopback");
    let helpers = lab.state.join("helpers");
    build_rawsend(&helpers);
    lab.host_runs(
        "ip",
        &[
            "link",
            "add",
            "uplink",
            "type",
            "veth",
            "peer",
            "name",
            "uplink-peer",
        ],
    );
    lab.host_runs(
        "ip",
        &[
            "addr",
            "add",
            &format!("{HOST_ADDRESS}/24"),
            "dev",
            "uplink",
        ],
    );
    lab.host_runs("ip", &["link", "set", "uplink-peer", "up"]);
    lab.host_runs("ip", &["link", "set", "uplink", "up"]);
    // The host's services: one bound to 127.0.0.1 only, the secret; one on
    // the other address, the control.
    let (secret, control) = common::in_netns(&lab.host.file, || {
        (
            UdpSocket::bind(("127.0.0.1", SECRET_PORT)).unwrap(),
            UdpSocket::bind((HOST_ADDRESS, SECRET_PORT)).unwrap(),
        )
    });

    // A published container (route_localnet is on from here), and another
    // one, the attacker, with nothing published of its own.
    lab.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "8080:80",
        "busybox",
        "sh",
        "-c",
        "echo served-by-web > /www; exec httpd -f -p 80 -h /",
    ]);
    let volume = format!("{}:/helpers:ro", helpers.display());
    lab.ok(&[
        "run", "-d", "--name", "attacker", "-v", &volume, "busybox", "sleep", "300",
    ]);
    let localnet = lab
        .host
        .command({
            let mut c = Command::new("sysctl");
            c.args(["-n", "net.ipv4.conf.lab0.route_localnet"]);
            c
        })
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&localnet.stdout).trim(), "1");

    // `-p` answers on the host's 127.0.0.1 and on its other address.
    for address in ["127.0.0.1:8080", &format!("{HOST_ADDRESS}:8080")] {
        let address: SocketAddr = address.parse().unwrap();
        let page = common::in_netns(&lab.host.file, move || {
            common::wait_for(common::PATIENCE, || http_get(address, "/www").ok())
        });
        assert_eq!(
            page.as_deref(),
            Some("served-by-web\n"),
            "the published port did not answer on {address}"
        );
    }

    // The attack: a datagram to 127.0.0.1 in a frame to the gateway's MAC,
    // then the control to the host's other address.
    let link = lab.host.ip(&["-br", "link", "show", "lab0"]);
    let mac = link
        .split_whitespace()
        .nth(2)
        .expect("lab0's MAC")
        .to_string();
    let attack = |secret_payload: &str, control_payload: &str| {
        lab.ok(&[
            "exec",
            "attacker",
            "/helpers/rawsend",
            "eth0",
            &mac,
            &format!("127.0.0.1:{SECRET_PORT}"),
            secret_payload,
            &format!("{HOST_ADDRESS}:{SECRET_PORT}"),
            control_payload,
        ]);
        wait_for_control(&control, control_payload);
        received(&secret)
    };
    assert_eq!(
        attack("stolen-1", "control-1"),
        Vec::<String>::new(),
        "a container reached a service bound to the host's 127.0.0.1"
    );

    // The guard is what stops it: without its chain the same frames reach
    // the loopback service, so this test can fail.
    lab.host_runs(
        "nft",
        &["delete", "chain", "ip", "container_lab", "localnet_guard"],
    );
    assert_eq!(
        attack("stolen-2", "control-2"),
        ["stolen-2"],
        "with the guard deleted the frame should arrive (route_localnet is on): \
         the attack above proved nothing"
    );

    lab.ok(&["rm", "-f", "web", "attacker"]);
    let mut links: Vec<String> = lab
        .host
        .ip(&["-br", "link"])
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    links.sort();
    assert_eq!(
        links,
        ["lo", "uplink-peer@uplink", "uplink@uplink-peer"],
        "links were left"
    );
    assert!(
        !lab.host.nft_tables().contains("container_lab"),
        "{}",
        lab.host.nft_tables()
    );
}
