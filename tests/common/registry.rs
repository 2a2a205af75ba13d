//! Registries for the image tests, all on 127.0.0.1: Debian's
//! `docker-registry` (distribution 2.8) started from a small YAML config,
//! a token endpoint for its `silly` Bearer auth, images put into it with
//! `umoci` and `skopeo`, and a hostile HTTP server that misbehaves on
//! purpose. Everything started here is ended by its PID when the test
//! binary exits (and, should the binary be killed, by PR_SET_PDEATHSIG).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub const USER: &str = "lab";
pub const PASSWORD: &str = "s3cret";

/// Fails with the reason when a peer tool is missing: the provisioning
/// script installs them, and a test that silently skipped would hide it.
pub fn require_tools() {
    for tool in ["docker-registry", "skopeo", "umoci", "htpasswd"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{tool} is missing: install it with sudo bash scripts/provision.sh (Debian: docker-registry, skopeo, umoci, apache2-utils)"
        );
    }
}

pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the test binary started and must end: (pid, directory to remove).
static STARTED: Mutex<Vec<(u32, Option<PathBuf>)>> = Mutex::new(Vec::new());

extern "C" fn stop_everything() {
    if let Ok(started) = STARTED.lock() {
        for (pid, dir) in started.iter() {
            unsafe {
                libc::kill(*pid as i32, libc::SIGKILL);
                libc::waitpid(*pid as i32, std::ptr::null_mut(), 0);
            }
            if let Some(dir) = dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns on a thread that lives as long as the process: the death signal
/// fires when the spawning *thread* ends, and test threads end early.
fn spawn_kept(command: Command) -> Child {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        unsafe { libc::atexit(stop_everything) };
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::spawn(move || {
            for (mut command, reply) in rx {
                unsafe {
                    command.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                let _ = reply.send(command.spawn());
            }
            // Keep the thread (and so the children) alive until exit.
            loop {
                std::thread::park();
            }
        });
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    keeper.lock().unwrap().send((command, reply)).unwrap();
    answer.recv().unwrap().expect("spawn")
}

/// The token endpoint's requests: (path and query, Authorization).
pub type TokenLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `silly`: a Bearer challenge whose realm is our token endpoint.
    Bearer,
    /// htpasswd: Basic.
    Basic,
}

pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub auth: Auth,
    pub dir: PathBuf,
    /// The token endpoint's requests (query, Authorization), for Bearer.
    pub token_requests: TokenLog,
}

/// One registry of each kind per test binary, started on first use.
pub fn registry(auth: Auth) -> &'static Registry {
    static OPEN: OnceLock<Registry> = OnceLock::new();
    static BEARER: OnceLock<Registry> = OnceLock::new();
    static BASIC: OnceLock<Registry> = OnceLock::new();
    let cell = match auth {
        Auth::None => &OPEN,
        Auth::Bearer => &BEARER,
        Auth::Basic => &BASIC,
    };
    cell.get_or_init(|| Registry::start(auth))
}

impl Registry {
    fn start(auth: Auth) -> Registry {
        require_tools();
        let dir = std::env::temp_dir().join(format!(
            "lab-registry-{}-{}",
            std::process::id(),
            format!("{auth:?}").to_lowercase()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let token_requests = Arc::new(Mutex::new(Vec::new()));
        let auth_yaml = match auth {
            Auth::None => String::new(),
            Auth::Bearer => {
                let token = token_endpoint(token_requests.clone());
                format!("auth:\n  silly:\n    realm: http://{token}/token\n    service: lab-test-registry\n")
            }
            Auth::Basic => {
                let htpasswd = dir.join("htpasswd");
                let line = run(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
                std::fs::write(&htpasswd, line).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: lab-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: lab-test\n{auth_yaml}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let mut command = Command::new("docker-registry");
        command
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap());
        let child = spawn_kept(command);
        STARTED
            .lock()
            .unwrap()
            .push((child.id(), Some(dir.clone())));
        let host = format!("127.0.0.1:{port}");
        let up = super::wait_for(Duration::from_secs(20), || TcpStream::connect(&host).ok());
        assert!(
            up.is_some(),
            "docker-registry did not listen on {host}: {}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        std::mem::forget(child);
        Registry {
            host,
            auth,
            dir,
            token_requests,
        }
    }

    /// skopeo's flags to reach this registry: `side` is "dest" or "src"
    /// for copy, "" for inspect.
    pub fn skopeo_flags(&self, side: &str) -> Vec<String> {
        let prefix = if side.is_empty() {
            String::new()
        } else {
            format!("{side}-")
        };
        let mut flags = vec![format!("--{prefix}tls-verify=false")];
        if self.auth == Auth::Basic {
            flags.push(format!("--{prefix}creds={USER}:{PASSWORD}"));
        }
        flags
    }

    /// `skopeo copy SRC docker://HOST/NAME` with extra flags.
    pub fn skopeo_push(&self, source: &str, name: &str, extra: &[&str]) {
        let mut command = Command::new("skopeo");
        command
            .arg("copy")
            .arg("-q")
            .args(self.skopeo_flags("dest"))
            .args(extra);
        command
            .arg(source)
            .arg(format!("docker://{}/{name}", self.host));
        run(&mut command);
    }

    pub fn skopeo(&self, args: &[&str], image: &str) -> String {
        let mut command = Command::new("skopeo");
        command.args(args).args(self.skopeo_flags(""));
        command.arg(format!("docker://{}/{image}", self.host));
        run(&mut command)
    }
}

/// A token endpoint for `silly` auth: any token will do; it records what
/// it was asked.
fn token_endpoint(requests: TokenLog) -> String {
    let server = Server::start(move |request| {
        requests.lock().unwrap().push((
            request.path.clone(),
            request.headers.get("authorization").cloned(),
        ));
        Reply::json(
            200,
            r#"{"token":"lab-token","access_token":"lab-token","expires_in":300}"#,
        )
    });
    let host = server.host.clone();
    std::mem::forget(server);
    host
}

// ---------------------------------------------------------------------------
// Images made by umoci.

/// A tar of (path, content) files, made with the tar crate; a content of
/// None is a directory. Names are written raw, so `.wh.` names pass.
pub fn layer_tar(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_600_000_000);
        header.set_uid(0);
        header.set_gid(0);
        match content {
            Some(body) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(body.len() as u64);
                builder.append_data(&mut header, path, *body).unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, path, &b""[..]).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// An OCI layout made by umoci: a new image `tag` with these layers (each
/// added verbatim with `umoci raw add-layer`, which gzips it), a Cmd, and
/// the platform given.
pub fn umoci_image(layout: &Path, tag: &str, layers: &[Vec<u8>], arch: &str) {
    if !layout.join("index.json").exists() {
        run(Command::new("umoci")
            .arg("init")
            .arg("--layout")
            .arg(layout));
    }
    let image = format!("{}:{tag}", layout.display());
    run(Command::new("umoci").args(["new", "--image", &image]));
    for (i, layer) in layers.iter().enumerate() {
        let file = layout.with_extension(format!("{tag}-{i}.tar"));
        std::fs::write(&file, layer).unwrap();
        run(Command::new("umoci")
            .args(["raw", "add-layer", "--image", &image])
            .arg(&file));
        std::fs::remove_file(&file).unwrap();
    }
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--os",
        "linux",
        "--architecture",
        arch,
        "--config.cmd",
        "/bin/sh",
        "--config.env",
        "LAB=1",
    ]));
}

/// The host's Go architecture name.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Adds to `layout` an image index over two of its tags, one per
/// platform, named `name` (umoci makes no indexes itself).
pub fn index_over(layout: &Path, name: &str, entries: &[(&str, &str, Option<&str>)]) {
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let by_tag: HashMap<String, serde_json::Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                d.clone(),
            )
        })
        .collect();
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(tag, arch, variant)| {
            let d = &by_tag[*tag];
            let mut platform = serde_json::json!({"os": "linux", "architecture": arch});
            if let Some(v) = variant {
                platform["variant"] = serde_json::json!(v);
            }
            serde_json::json!({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"], "platform": platform})
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    let digest = sha256(&body);
    std::fs::write(layout.join("blobs/sha256").join(&digest[7..]), &body).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest,
            "size": body.len(),
            "annotations": {"org.opencontainers.image.ref.name": name},
        }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

// ---------------------------------------------------------------------------
// A small HTTP/1.1 server (std::net) for the token endpoint and the
// hostile registry.

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
}

pub enum Reply {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Sends the headers (with `Content-Length: length`) and `prefix`,
    /// tells `started`, then sends nothing more until the server stops.
    Stall {
        length: u64,
        prefix: Vec<u8>,
        started: Option<mpsc::Sender<()>>,
    },
    /// Sends the headers and `prefix`, then closes the connection: a
    /// download cut off.
    Cut { length: u64, prefix: Vec<u8> },
    /// A 200 that never ends (capped at 1 GiB so a broken client cannot
    /// keep it going forever).
    Endless,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    pub fn redirect(location: &str) -> Reply {
        Reply::Full {
            status: 307,
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
        }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

pub struct Server {
    pub host: String,
    stop: Arc<AtomicBool>,
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub connections: Arc<AtomicUsize>,
}

impl Server {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let (stop, requests, connections) =
                (stop.clone(), requests.clone(), connections.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (handler, stop, requests) =
                        (handler.clone(), stop.clone(), requests.clone());
                    std::thread::spawn(move || serve(stream, &*handler, &stop, &requests));
                }
            });
        }
        Server {
            host,
            stop,
            requests,
            connections,
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(&self.host);
    }
}

fn serve(stream: TcpStream, handler: &Handler, stop: &AtomicBool, requests: &Mutex<Vec<Request>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            return;
        };
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_lowercase(), value.trim().to_string());
            }
        }
        let length: u64 = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let _ = std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink());
        let request = Request {
            method: method.to_string(),
            path: path.to_string(),
            headers,
        };
        requests.lock().unwrap().push(request.clone());
        let head_only = request.method == "HEAD";
        match handler(&request) {
            Reply::Full {
                status,
                headers,
                body,
            } => {
                let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                if out.write_all(head.as_bytes()).is_err() {
                    return;
                }
                if !head_only && out.write_all(&body).is_err() {
                    return;
                }
            }
            Reply::Stall {
                length,
                prefix,
                started,
            } => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
                let _ = out.write_all(head.as_bytes());
                let _ = out.write_all(&prefix);
                let _ = out.flush();
                if let Some(started) = started {
                    let _ = started.send(());
                }
                // Bounded: at most two minutes, or until the server stops.
                for _ in 0..1200 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                return;
            }
            Reply::Cut { length, prefix } => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
                let _ = out.write_all(head.as_bytes());
                let _ = out.write_all(&prefix);
                let _ = out.shutdown(std::net::Shutdown::Both);
                return;
            }
            Reply::Endless => {
                let _ = out.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n",
                );
                let chunk = vec![0x1fu8; 64 * 1024];
                for _ in 0..(1 << 14) {
                    if stop.load(Ordering::SeqCst) || out.write_all(&chunk).is_err() {
                        break;
                    }
                }
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// An image served by the hostile server: blobs by digest, one manifest.

pub struct ServedImage {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub blobs: HashMap<String, Vec<u8>>,
    /// Layer digests, bottom first.
    pub layers: Vec<String>,
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

impl ServedImage {
    /// An OCI image of these (uncompressed) layer tars, gzipped.
    pub fn new(layers: &[Vec<u8>]) -> ServedImage {
        let mut blobs = HashMap::new();
        let mut descriptors = Vec::new();
        let mut diff_ids = Vec::new();
        let mut digests = Vec::new();
        for tar in layers {
            let compressed = gzip(tar);
            let digest = sha256(&compressed);
            diff_ids.push(sha256(tar));
            descriptors.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest, "size": compressed.len(),
            }));
            digests.push(digest.clone());
            blobs.insert(digest, compressed);
        }
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": host_arch(), "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let config_digest = sha256(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": descriptors,
        }))
        .unwrap();
        blobs.insert(config_digest, config);
        ServedImage {
            manifest_digest: sha256(&manifest),
            manifest,
            blobs,
            layers: digests,
        }
    }

    /// The plain registry answer for `request`, if it is one of ours.
    pub fn answer(&self, request: &Request) -> Option<Reply> {
        if request.path == "/v2/" {
            return Some(Reply::json(200, "{}"));
        }
        if request.path.contains("/manifests/") {
            return Some(Reply::bytes(
                200,
                "application/vnd.oci.image.manifest.v1+json",
                self.manifest.clone(),
            ));
        }
        let digest = request.path.rsplit('/').next()?;
        let body = self.blobs.get(digest)?;
        Some(Reply::bytes(200, "application/octet-stream", body.clone()))
    }
}

/// A tar of raw entries (name, type, link target, body), for the names
/// and links the tar crate's builder refuses to write.
/// (name, type, link target, body).
pub type RawEntry<'a> = (&'a [u8], tar::EntryType, &'a [u8], &'a [u8]);

pub fn raw_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, link, body) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(*kind);
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            header
                .set_device_major(if *kind == tar::EntryType::Char { 1 } else { 8 })
                .unwrap();
            header.set_device_minor(3).unwrap();
        }
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_600_000_000);
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        header.set_cksum();
        builder.append(&header, *body).unwrap();
    }
    builder.into_inner().unwrap()
}
