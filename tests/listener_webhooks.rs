//! Outbound webhooks end to end (docs/security.md): the destination guard, redirects, the
//! response cap, private-CA trust through `webhook_ca`, and Standard Webhooks signatures checked
//! by independent verifiers. Every socket is on 127.0.0.1; the refusals of other ranges are
//! covered on the guard's decision (src/listener/guard.rs), never by connecting.
mod listener_support;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use listener_support::*;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A sync `continue` endpoint whose webhook step calls `url` (+ `extra` fields) and answers
/// with `__data.webhook` as JSON.
fn hook_ep(n: usize, url: &str, extra: &str) -> String {
    format!(
        r#"[[endpoint]]
name = "ep{n}"
first_hash = "{h}"
second_hash = "{h}"
return_type = "continue"
run_mode = "sync"

[[endpoint.step]]
id = "call{n}"
type = "webhook"
url = "{url}"
{extra}

[[endpoint.step]]
id = "r"
type = "respond"
return_type = "data"
return_data = '''{{{{ __data.webhook|json_encode|raw }}}}'''
"#,
        h = h(n)
    )
}

/// One request seen by a [`Receiver`]: method, path and query, headers, body.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A real HTTP/1.1 receiver on 127.0.0.1 that records every request.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    hits: Arc<AtomicUsize>,
}

/// Answers by path: `/redirect` → 302 to this receiver's own `/followed` (an allowed loopback
/// destination, so a client that followed redirects would show a second hit), `/big` → 5 MB (with a length),
/// `/stream-big` → 5 MB read to the close (no length), anything else → 200 `{"got": true}`.
async fn receiver() -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (seen2, hits2) = (seen.clone(), hits.clone());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (seen, hits) = (seen2.clone(), hits2.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p;
                    }
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut lines = head.split("\r\n");
                let target = lines
                    .next()
                    .unwrap_or("")
                    .split(' ')
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let headers: BTreeMap<String, String> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = buf[head_end + 4..].to_vec();
                while body.len() < len {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => body.extend_from_slice(&chunk[..n]),
                    }
                }
                hits.fetch_add(1, Ordering::SeqCst);
                seen.lock().expect("lock").push(Seen {
                    target: target.clone(),
                    headers,
                    body,
                });
                let big = vec![b'x'; 5 * 1024 * 1024];
                let resp: Vec<u8> = match target.split('?').next().unwrap_or("") {
                    "/redirect" => format!(
                        "HTTP/1.1 302 Found\r\nlocation: http://{addr}/followed\r\n\
                         content-length: 0\r\nconnection: close\r\n\r\n"
                    )
                    .into_bytes(),
                    "/big" => [
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            big.len()
                        )
                        .into_bytes(),
                        big,
                    ]
                    .concat(),
                    "/stream-big" => [
                        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec(),
                        big,
                    ]
                    .concat(),
                    "/small" => {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2000\r\nconnection: close\r\n\r\n"
                            .iter()
                            .copied()
                            .chain(std::iter::repeat_n(b'y', 2000))
                            .collect()
                    }
                    _ => b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        content-length: 12\r\nconnection: close\r\n\r\n{\"got\":true}"
                        .to_vec(),
                };
                let _ = tcp.write_all(&resp).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    Receiver { addr, seen, hits }
}

const ALLOW_LOCAL: &str = "[server]\nwebhook_allow = [\"127.0.0.1\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_receiver_is_refused_by_default_in_every_spelling() {
    let rx = receiver().await;
    let port = rx.addr.port();
    let urls = [
        format!("http://127.0.0.1:{port}/hook?token=QUERYSECRET"),
        format!("http://localhost:{port}/hook"),
        format!("http://0x7f.1:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0177.0.0.1:{port}/hook"),
        format!("http://127.1:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("https://127.0.0.1:{port}/hook"),
        format!("http://0.0.0.0:{port}/hook"),
    ];
    let cfg: String = urls
        .iter()
        .enumerate()
        .map(|(i, u)| hook_ep(i + 1, u, ""))
        .collect();
    let s = serve(&cfg).await;
    for (i, u) in urls.iter().enumerate() {
        let r = s.get(&path(i + 1)).await;
        let w = r.json();
        assert_eq!(w["ok"], false, "{u}: {w}");
        assert_eq!(w["status"], 0, "{u}: {w}");
        let err = w["error"].as_str().unwrap_or("");
        assert!(err.starts_with("destination refused: "), "{u}: {err}");
        assert!(
            err.contains("loopback") || err.contains("unspecified"),
            "{u}: {err}"
        );
        assert!(!err.contains("QUERYSECRET"), "{err}");
    }
    assert_eq!(
        rx.hits.load(Ordering::SeqCst),
        0,
        "no connection reached it"
    );
    let w = s.get(&path(1)).await.json();
    assert_eq!(
        w["error"],
        "destination refused: 127.0.0.1 is a loopback address (open it with [server] webhook_allow)"
    );
    let w = s.get(&path(3)).await.json();
    assert_eq!(
        w["error"],
        "destination refused: 0x7f.1 resolves to 127.0.0.1, a loopback address (open it with [server] webhook_allow)"
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_allow_opens_the_receiver_and_redirects_are_not_followed() {
    let rx = receiver().await;
    let port = rx.addr.port();
    let cfg = [
        ALLOW_LOCAL.to_string(),
        hook_ep(1, &format!("http://127.0.0.1:{port}/hook"), ""),
        // Numeric spellings are normalised, then connected to the checked address.
        hook_ep(2, &format!("http://2130706433:{port}/numeric"), ""),
        hook_ep(3, &format!("http://127.0.0.1:{port}/redirect"), ""),
        // Allowed is 127.0.0.1 only: other loopback addresses stay refused.
        hook_ep(4, &format!("http://127.0.0.2:{port}/hook"), ""),
    ]
    .concat();
    let s = serve(&cfg).await;
    let w = s.get(&path(1)).await.json();
    assert_eq!(
        (w["ok"].clone(), w["body"].clone()),
        (json!(true), json!({"got": true})),
        "{w}"
    );
    let w = s.get(&path(2)).await.json();
    assert_eq!(w["ok"], true, "{w}");
    assert!(rx
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|x| x.target == "/numeric"));
    let before = rx.hits.load(Ordering::SeqCst);
    let w = s.get(&path(3)).await.json();
    assert_eq!(w["status"], 302, "{w}");
    assert_eq!(w["ok"], false);
    assert_eq!(
        w["headers"]["location"],
        format!("http://127.0.0.1:{port}/followed")
    );
    assert_eq!(
        rx.hits.load(Ordering::SeqCst) - before,
        1,
        "one request, no follow-up"
    );
    let w = s.get(&path(4)).await.json();
    assert!(
        w["error"]
            .as_str()
            .unwrap_or("")
            .contains("127.0.0.2 is a loopback address"),
        "{w}"
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_responses_are_capped() {
    let rx = receiver().await;
    let port = rx.addr.port();
    let cfg = [
        ALLOW_LOCAL.to_string(),
        hook_ep(1, &format!("http://127.0.0.1:{port}/big"), ""),
        hook_ep(2, &format!("http://127.0.0.1:{port}/stream-big"), ""),
        hook_ep(
            3,
            &format!("http://127.0.0.1:{port}/small"),
            "max_response_bytes = 1000",
        ),
        hook_ep(
            4,
            &format!("http://127.0.0.1:{port}/small"),
            "max_response_bytes = 2000",
        ),
    ]
    .concat();
    let s = serve(&cfg).await;
    for (n, cap) in [(1, 1_048_576), (2, 1_048_576), (3, 1000)] {
        let r = s.get(&path(n)).await;
        assert!(
            r.body.len() < 10_000,
            "nothing large kept: {} bytes",
            r.body.len()
        );
        let w = r.json();
        assert_eq!(w["ok"], false, "{w}");
        assert_eq!(w["status"], 200);
        assert_eq!(w["body"], Json::Null);
        assert_eq!(
            w["error"],
            format!("response body larger than max_response_bytes ({cap} bytes)")
        );
    }
    let w = s.get(&path(4)).await.json();
    assert_eq!(w["ok"], true);
    assert_eq!(w["body"].as_str().map(str::len), Some(2000));
    s.running.shutdown().await;

    // The server-wide default.
    let cfg = format!(
        "[server]\nwebhook_allow = [\"127.0.0.1\"]\nwebhook_max_response_bytes = 100\n{}",
        hook_ep(1, &format!("http://127.0.0.1:{port}/small"), "")
    );
    let s = serve(&cfg).await;
    let w = s.get(&path(1)).await.json();
    assert_eq!(
        w["error"],
        "response body larger than max_response_bytes (100 bytes)"
    );
    s.running.shutdown().await;
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// A second implementation of the Standard Webhooks check, written from the specification.
fn verify_standard(secret: &str, headers: &BTreeMap<String, String>, body: &[u8]) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = match secret.strip_prefix("whsec_") {
        Some(s) => b64.decode(s).expect("base64 secret"),
        None => secret.as_bytes().to_vec(),
    };
    let (Some(id), Some(ts), Some(sigs)) = (
        headers.get("webhook-id"),
        headers.get("webhook-timestamp"),
        headers.get("webhook-signature"),
    ) else {
        return false;
    };
    let signed = [id.as_bytes(), b".", ts.as_bytes(), b".", body].concat();
    let expected = format!("v1,{}", b64.encode(hmac256(&key, &signed)));
    sigs.split(' ').any(|s| s == expected)
}

/// Verifies with the `standardwebhooks` package from PyPI; `None` when Python or the package
/// is missing (install: `pip install standardwebhooks`).
fn python_verify(secret: &str, headers: &BTreeMap<String, String>, body: &[u8]) -> Option<bool> {
    use std::process::{Command, Stdio};
    let script = r#"
import json, sys
try:
    from standardwebhooks.webhooks import Webhook
except ImportError:
    sys.exit(3)
d = json.load(sys.stdin)
try:
    Webhook(d["secret"]).verify(bytes(d["body"]), d["headers"])
    print("verified")
except Exception as e:
    print("refused:", e)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let input = json!({"secret": secret, "headers": headers, "body": body});
    {
        use std::io::Write;
        let mut stdin = child.stdin.take()?;
        let _ = stdin.write_all(input.to_string().as_bytes());
    }
    let out = child.wait_with_output().ok()?;
    if out.status.code() == Some(3) {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(text.trim() == "verified")
}

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_verify_with_independent_verifiers() {
    std::env::set_var("FLEXSCRIPT_TEST_HOOK_SECRET", WHSEC);
    let rx = receiver().await;
    let port = rx.addr.port();
    let cfg = [
        ALLOW_LOCAL.to_string(),
        hook_ep(
            1,
            &format!("http://127.0.0.1:{port}/signed"),
            "sign_secret = \"{{ env('FLEXSCRIPT_TEST_HOOK_SECRET') }}\"\nbody = '''{\"n\": {{ __data.n }}, \"s\": \"é\"}'''",
        ),
        hook_ep(
            2,
            &format!("http://127.0.0.1:{port}/raw-key"),
            "sign_secret = \"plain raw key\"\nmethod = \"GET\"",
        ),
        hook_ep(
            3,
            &format!("http://127.0.0.1:{port}/missing"),
            "sign_secret = \"{{ env('FLEXSCRIPT_TEST_NO_SUCH_SECRET') }}\"",
        ),
    ]
    .concat();
    let s = serve(&cfg).await;
    let w = s.get(&format!("{}?n=42", path(1))).await.json();
    assert_eq!(w["ok"], true, "{w}");
    let w = s.get(&path(2)).await.json();
    assert_eq!(w["ok"], true, "{w}");
    // A secret that renders empty sends nothing.
    let before = rx.hits.load(Ordering::SeqCst);
    let w = s.get(&path(3)).await.json();
    assert_eq!(w["ok"], false);
    assert_eq!(w["error"], "sign_secret is empty");
    assert_eq!(rx.hits.load(Ordering::SeqCst), before);
    s.running.shutdown().await;

    let seen = rx.seen.lock().unwrap().clone();
    let signed = seen
        .iter()
        .find(|x| x.target == "/signed")
        .expect("signed request");
    assert_eq!(signed.body, "{\"n\": 42, \"s\": \"é\"}".as_bytes());
    let id = &signed.headers["webhook-id"];
    assert!(
        id.ends_with(".call1") && id.len() == 32 + 6,
        "run id . step id: {id}"
    );
    let ts: i64 = signed.headers["webhook-timestamp"]
        .parse()
        .expect("unix seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts).abs() < 120, "{ts} vs {now}");
    assert!(verify_standard(WHSEC, &signed.headers, &signed.body));
    assert!(!verify_standard(WHSEC, &signed.headers, b"{\"n\": 43}"));
    assert!(!verify_standard(
        "whsec_b3RoZXI=",
        &signed.headers,
        &signed.body
    ));
    let raw = seen
        .iter()
        .find(|x| x.target == "/raw-key")
        .expect("raw-key request");
    assert!(verify_standard("plain raw key", &raw.headers, &raw.body));

    match python_verify(WHSEC, &signed.headers, &signed.body) {
        None => eprintln!(
            "SKIPPED the standardwebhooks check: python3 or the package is missing \
             (pip install standardwebhooks)"
        ),
        Some(ok) => {
            assert!(ok, "standardwebhooks refused our signature");
            let tampered = python_verify(WHSEC, &signed.headers, b"{\"n\": 43}");
            assert_eq!(tampered, Some(false));
        }
    }
}

/// A CA and a leaf for 127.0.0.1 signed by it: (CA PEM, leaf DER, leaf key DER).
fn private_ca() -> (String, Vec<u8>, Vec<u8>) {
    let ca = listener_support::private_ca("flexscript test CA");
    (ca.ca_pem, ca.leaf_der, ca.key_der)
}

/// An HTTPS receiver (HTTP/1.1) with the given leaf; answers `{"tls": true}`.
async fn tls_receiver(cert: Vec<u8>, key: Vec<u8>) -> SocketAddr {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    listener_support::tls::tls_server(
        CertificateDer::from(cert),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        |_| {
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
             content-length: 12\r\nconnection: close\r\n\r\n{\"tls\":true}"
                .to_string()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_through_webhook_ca_only() {
    let (ca_pem, leaf, key) = private_ca();
    let addr = tls_receiver(leaf, key).await;
    let url = format!("https://127.0.0.1:{}/hook", addr.port());

    let dir = temp_dir();
    // Two certificates in one file: an unrelated one first.
    let (other_ca, _, _) = private_ca();
    std::fs::write(dir.join("internal-ca.pem"), format!("{other_ca}{ca_pem}")).unwrap();
    let trusted = format!(
        "[server]\nwebhook_allow = [\"127.0.0.1\"]\nwebhook_ca = \"internal-ca.pem\"\n{}",
        hook_ep(1, &url, "")
    );
    std::fs::write(dir.join("endpoints.toml"), &trusted).unwrap();
    let s = serve_file(&dir.join("endpoints.toml")).await;
    let w = s.get(&path(1)).await.json();
    assert_eq!(
        (w["ok"].clone(), w["body"].clone()),
        (json!(true), json!({"tls": true})),
        "{w}"
    );
    s.running.shutdown().await;

    let untrusted = format!("{ALLOW_LOCAL}{}", hook_ep(1, &url, ""));
    let s = serve(&untrusted).await;
    let w = s.get(&path(1)).await.json();
    assert_eq!(w["ok"], false, "{w}");
    let err = w["error"].as_str().unwrap_or("");
    assert!(err.contains("UnknownIssuer"), "{err}");
    s.running.shutdown().await;

    // The system store is an alternative base (this machine has one; the CA still adds).
    let system = trusted.replace("webhook_ca =", "webhook_trust = \"system\"\nwebhook_ca =");
    std::fs::write(dir.join("endpoints.toml"), &system).unwrap();
    if rustls_native_certs::load_native_certs().certs.is_empty() {
        eprintln!("SKIPPED webhook_trust = \"system\": no system certificate store here");
    } else {
        let s = serve_file(&dir.join("endpoints.toml")).await;
        let w = s.get(&path(1)).await.json();
        assert_eq!(w["ok"], true, "{w}");
        s.running.shutdown().await;
    }
}

#[test]
fn bad_webhook_settings_are_configuration_errors() {
    let dir = temp_dir();
    std::fs::write(dir.join("empty.pem"), "no certificates here\n").unwrap();
    std::fs::write(
        dir.join("endpoints.toml"),
        format!(
            r#"[server]
webhook_allow = ["10.0.0.0/33", "127.0.0.1"]
webhook_ca = ["missing.pem", "empty.pem"]
webhook_trust = "browser"
webhook_max_response_bytes = 0
{}"#,
            hook_ep(
                1,
                "http://example.com/",
                "max_response_bytes = 0\nsign_secret = \"whsec_!!\""
            )
        ),
    )
    .unwrap();
    let (errors, _) = flexscript::listener::check_config(&dir.join("endpoints.toml"));
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let text = text.join("\n");
    for want in [
        "server.webhook_allow: `10.0.0.0/33` is not an address, CIDR range or host name",
        "server.webhook_ca: cannot read missing.pem",
        "server.webhook_trust: must be \"mozilla\" or \"system\"",
        "server.webhook_max_response_bytes: must be an integer from 1 to",
        "step[0].max_response_bytes: must be an integer from 1 to",
        "step[0].sign_secret: the secret after whsec_ is not valid base64",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // A file without any certificate.
    std::fs::write(
        dir.join("endpoints.toml"),
        "[server]\nwebhook_ca = \"empty.pem\"\n",
    )
    .unwrap();
    let (errors, _) = flexscript::listener::check_config(&dir.join("endpoints.toml"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .to_string()
            .contains("server.webhook_ca: no PEM certificate"),
        "{}",
        errors[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_quick_and_logged_without_the_query() {
    // The log line is checked on the real binary's standard error.
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let rx = receiver().await;
    let cfg = hook_ep(
        1,
        &format!("http://127.0.0.1:{}/hook?token=QUERYSECRET", rx.addr.port()),
        "",
    );
    let file = write_config(&cfg);
    let mut child = Command::new(env!("CARGO_BIN_EXE_flexscript"))
        .args([
            "serve",
            file.path().to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flexscript");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut addr = None;
    while addr.is_none() && Instant::now() < deadline {
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(200)) {
            if let Some(a) = l.strip_prefix("listening on http://") {
                addr = a.trim().parse::<SocketAddr>().ok();
            }
        }
    }
    let addr = addr.expect("the server prints its address");
    let t = Instant::now();
    let r = request(addr, "GET", &path(1), &[], b"").await;
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(r.json()["ok"], false);
    let mut found = None;
    while found.is_none() && Instant::now() < deadline {
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(200)) {
            if l.contains("webhook call failed") {
                found = Some(l);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = found.expect("a warning line");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("endpoint=ep1"), "{line}");
    assert!(line.contains("step=call1"), "{line}");
    assert!(line.contains("host=127.0.0.1"), "{line}");
    assert!(line.contains("destination refused"), "{line}");
    assert!(
        !line.contains("QUERYSECRET") && !line.contains("/hook"),
        "{line}"
    );
    assert_eq!(rx.hits.load(Ordering::SeqCst), 0);
}
