//! Shared helpers for the listener end-to-end tests: write a TOML config to a fresh temp dir
//! (deleted again when its guard drops),
//! start a real server on 127.0.0.1:0, and talk HTTP/1.1 to it over a raw `TcpStream`
//! (so tests see exactly what goes on the wire: status, headers, chunked bodies, SSE frames).
#![allow(dead_code)]

pub mod tls;

use flexscript::listener::{start_with, Options, Running};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// 32-hex-char hashes for test endpoints: `hash('a')` = "aaaa…" (32 chars).
pub fn hash(c: char) -> String {
    std::iter::repeat_n(c, 32).collect()
}

/// The path of the endpoint with hashes `hash(a)`/`hash(b)`.
pub fn ep_path(a: char, b: char) -> String {
    format!("/listener/{}/{}", hash(a), hash(b))
}

/// A fresh empty directory under the system temp dir, removed (with its contents) when the
/// guard is dropped. Derefs to its [`Path`].
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory must not fail (or panic in) a test.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file inside its own [`TempDir`]; dropping it removes the directory. Derefs to the file's
/// [`Path`].
pub struct TempFile {
    path: PathBuf,
    _dir: TempDir,
}

impl TempFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for TempFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// A fresh empty directory under the system temp dir (deleted when the guard drops).
pub fn temp_dir() -> TempDir {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "flexscript-test-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    TempDir(dir)
}

/// Writes `toml` as `endpoints.toml` in a fresh temp dir; the directory lives as long as the
/// returned guard.
pub fn write_config(toml: &str) -> TempFile {
    let dir = temp_dir();
    let path = dir.join("endpoints.toml");
    std::fs::write(&path, toml).expect("write config");
    TempFile { path, _dir: dir }
}

/// A running test server.
pub struct Server {
    pub addr: SocketAddr,
    pub base: String,
    pub config_path: PathBuf,
    pub running: Running,
    /// The temp config written by [`serve`]/[`serve_with`] (removed with the server).
    pub config_file: Option<TempFile>,
}

impl Server {
    /// Sends one request (see [`request`]).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        request(self.addr, method, path, headers, body).await
    }
    pub async fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], b"").await
    }
    pub async fn post_json(&self, path: &str, json: &str) -> Resp {
        self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            json.as_bytes(),
        )
        .await
    }
}

/// Starts a server for `toml` on 127.0.0.1:0 (inside the current tokio runtime).
pub async fn serve(toml: &str) -> Server {
    serve_with(toml, Options::default()).await
}

/// Starts a server for `toml` with explicit server [`Options`] (e.g. a small connection cap).
pub async fn serve_with(toml: &str, options: Options) -> Server {
    let file = write_config(toml);
    let mut server = serve_file_with(&file, options).await;
    server.config_file = Some(file);
    server
}

/// Starts a server for an existing config file.
pub async fn serve_file(path: &Path) -> Server {
    serve_file_with(path, Options::default()).await
}

/// Starts a server for an existing config file with explicit [`Options`].
pub async fn serve_file_with(path: &Path, options: Options) -> Server {
    let running = start_with(path, Some("127.0.0.1:0".parse().expect("addr")), options)
        .await
        .unwrap_or_else(|e| panic!("server did not start:\n{e}"));
    let addr = running.local_addr();
    Server {
        addr,
        base: format!("http://{addr}"),
        config_path: path.to_path_buf(),
        running,
        config_file: None,
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    /// First value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body parsed as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Writes the request head (+ body) with `Connection: close` and a Content-Length.
pub async fn send_head(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    let has_len = headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    });
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len && (!body.is_empty() || method != "GET") {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
}

/// Sends one request and reads the whole response (10 s limit).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    send_head(&mut stream, method, path, headers, body).await;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(40), stream.read_to_end(&mut raw))
        .await
        .expect("response within 40 s")
        .ok();
    parse_response(&raw)
}

/// POSTs `json` (`Content-Type: application/json`) to a server at `addr` (a `serve` child).
pub async fn post_json_to(addr: SocketAddr, path: &str, json: &str) -> Resp {
    request(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        json.as_bytes(),
    )
    .await
}

/// Parses a complete HTTP/1.1 response (Content-Length, chunked, or read-to-close body).
pub fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Decodes a chunked body (tolerates a truncated last chunk).
pub fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_txt = String::from_utf8_lossy(&rest[..pos]).into_owned();
        let size =
            usize::from_str_radix(size_txt.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        rest = &rest[pos + 2..];
        if size == 0 {
            break;
        }
        let take = size.min(rest.len());
        out.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        if rest.starts_with(b"\r\n") {
            rest = &rest[2..];
        }
    }
    out
}

/// An open streaming response (SSE): read the head, then decoded body text as it arrives.
pub struct Stream {
    pub stream: TcpStream,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    buf: Vec<u8>,
    /// Decoded body text not consumed yet.
    pub text: String,
}

impl Stream {
    /// Opens `path` and reads the response head.
    pub async fn open(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Stream {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        send_head(&mut stream, method, path, headers, b"").await;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let r = parse_response(&buf[..end + 4]);
                let rest = buf[end + 4..].to_vec();
                let mut s = Stream {
                    stream,
                    status: r.status,
                    headers: r.headers,
                    buf: rest,
                    text: String::new(),
                };
                s.decode();
                return s;
            }
            let n = tokio::time::timeout(Duration::from_secs(40), stream.read(&mut chunk))
                .await
                .expect("head within 40 s")
                .expect("read");
            assert!(n > 0, "connection closed before the head");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn decode(&mut self) {
        // Decode every complete chunk in buf.
        loop {
            let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_txt = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
            let Ok(size) = usize::from_str_radix(size_txt.trim(), 16) else {
                return;
            };
            if self.buf.len() < pos + 2 + size + 2 {
                return;
            }
            let data = self.buf[pos + 2..pos + 2 + size].to_vec();
            self.text.push_str(&String::from_utf8_lossy(&data));
            self.buf.drain(..pos + 2 + size + 2);
        }
    }

    /// Reads until the decoded text holds a complete SSE frame (blank line) and returns it
    /// (without the blank line); `None` when the stream closed first.
    pub async fn next_frame(&mut self, limit: Duration) -> Option<String> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let frame = self.text[..end].to_string();
                self.text.drain(..end + 2);
                return Some(frame);
            }
            let n = tokio::time::timeout(limit, self.stream.read(&mut chunk))
                .await
                .expect("frame in time")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
            self.decode();
        }
    }
}

/// Waits for a `flexscript serve` child's ready line (`listening on http://ADDR`, its first line
/// on stdout, which must be piped) and returns ADDR.
pub async fn ready_addr(child: &mut std::process::Child) -> SocketAddr {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("ready line");
    line.trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("ready line: {line:?}"))
        .parse()
        .expect("addr")
}

/// One call seen by the receiver: `Idempotency-Key`, path, body, when.
#[derive(Clone, Debug)]
pub struct Call {
    pub key: String,
    pub path: String,
    pub body: String,
    pub at: std::time::Instant,
}

/// A real webhook receiver on 127.0.0.1 recording every call (to count `Idempotency-Key`s);
/// answers 200 `{}` after `delay`.
pub struct Receiver {
    pub addr: SocketAddr,
    calls: std::sync::Arc<std::sync::Mutex<Vec<Call>>>,
}

impl Receiver {
    pub async fn start(delay: Duration) -> Receiver {
        use http_body_util::{BodyExt, Full};
        use hyper::{body::Incoming, Request, Response};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let calls2 = calls.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let calls = calls2.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let calls = calls.clone();
                        async move {
                            let key = req
                                .headers()
                                .get("idempotency-key")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let path = req.uri().path().to_string();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            calls.lock().expect("lock").push(Call {
                                key,
                                path,
                                body: String::from_utf8_lossy(&body).into_owned(),
                                at: std::time::Instant::now(),
                            });
                            tokio::time::sleep(delay).await;
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                bytes::Bytes::from_static(b"{}"),
                            )))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver { addr, calls }
    }

    pub fn url(&self, p: &str) -> String {
        format!("http://{}{p}", self.addr)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }
}

/// A private CA and a leaf certificate for `127.0.0.1` signed by it (rcgen), for the TLS
/// webhook receivers and the TLS-only redis-server.
pub struct PrivateCa {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The leaf certificate, PEM and DER.
    pub leaf_pem: String,
    pub leaf_der: Vec<u8>,
    /// The leaf's private key, PEM and DER (PKCS#8).
    pub key_pem: String,
    pub key_der: Vec<u8>,
}

/// A fresh [`PrivateCa`] whose CA is called `name`.
pub fn private_ca(name: &str) -> PrivateCa {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("leaf cert");
    PrivateCa {
        ca_pem: ca.pem(),
        leaf_pem: leaf.pem(),
        leaf_der: leaf.der().to_vec(),
        key_pem: leaf_key.serialize_pem(),
        key_der: leaf_key.serialize_der(),
    }
}

// Numbered endpoints: the TOML of endpoint `n` (hashes `{n:032x}`), its path, its steps.

/// The first and second hash of numbered endpoint `n`.
pub fn h(n: usize) -> String {
    format!("{n:032x}")
}

/// The path of numbered endpoint `n`.
pub fn path(n: usize) -> String {
    format!("/listener/{}/{}", h(n), h(n))
}

/// Numbered endpoint `n` (named `ep{n}`) with its own fields and steps.
pub fn ep(n: usize, fields: &str, steps: &str) -> String {
    format!(
        "[[endpoint]]\nname = \"ep{n}\"\nfirst_hash = \"{}\"\nsecond_hash = \"{}\"\n{fields}\n{steps}\n",
        h(n),
        h(n)
    )
}

/// A `[[endpoint.step]]` of type `ty` with its other fields.
pub fn step(id: &str, ty: &str, fields: &str) -> String {
    format!("[[endpoint.step]]\nid = \"{id}\"\ntype = \"{ty}\"\n{fields}\n")
}

/// A webhook step posting `{{ __data.n }}` to `url`, with `extra` fields.
pub fn hook(id: &str, url: &str, extra: &str) -> String {
    step(
        id,
        "webhook",
        &format!("url = \"{url}\"\nbody = '''{{{{ __data.n }}}}'''\n{extra}"),
    )
}
