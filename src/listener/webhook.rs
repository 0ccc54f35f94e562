//! Outbound HTTP for `webhook` steps (docs/listener.md "Workflows", docs/security.md), `http://` and
//! `https://`.
//!
//! - Destinations go through the [`GuardedConnector`]: private, loopback, link-local and the
//!   other non-public ranges are refused unless `[server] webhook_allow` opens them, the cloud
//!   metadata addresses always; a refusal is `ok = false` with `error = "destination refused:
//!   <reason>"`, final (no retry), and nothing is sent. User info in the URL is refused too.
//!   Redirects are never followed: a 3xx is the result.
//! - TLS is rustls (the `ring` provider, TLS 1.2 and 1.3) trusting the Mozilla roots compiled
//!   in by `webpki-roots`, or the system store (`webhook_trust = "system"`), plus the
//!   `webhook_ca` PEM roots; ALPN offers HTTP/2 and HTTP/1.1 (HTTP/2 when the receiver picks
//!   it). A certificate or handshake failure is `ok = false` with the TLS error in `error`.
//! - Each attempt is bounded by `timeout_ms`; a transport error, a timeout or a 5xx status is
//!   retried up to `retries` more times (after 100 ms, 200 ms, … capped at 2 s).
//! - With a signing key the request carries the Standard Webhooks headers `webhook-id`,
//!   `webhook-timestamp` and `webhook-signature`, signed afresh at each attempt.
//! - The response body is read up to `max_response_bytes` (the step's, else the client's,
//!   default [`MAX_BODY`]); a larger body is `ok = false` with the reason and no body kept.
//!
//! The result is never an error: `{ok, status, body, headers}` (+ `error` when no usable
//! response), `ok` = 2xx, `status` = 0 without a response, `body` parsed when it is JSON,
//! `headers` named like request headers (lower case, `-` → `_`, repeated values joined with
//! `, `).

use super::guard::{Guard, GuardedConnector, Refused, Resolve, SystemResolver, Unresolved};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use serde_json::{json, Value as Json};
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Default cap on a webhook response body (1 MiB): `[server] webhook_max_response_bytes`,
/// or a step's `max_response_bytes`.
pub const MAX_BODY: usize = 1 << 20;

type Inner = Client<HttpsConnector<GuardedConnector>, Full<Bytes>>;

/// A webhook response as a [`Transport`] reads it: status, headers, body (at most the cap).
pub type Answer = (StatusCode, HeaderMap, Bytes);

/// Why a [`Transport`] produced no usable answer.
pub enum SendError {
    /// The destination guard refused the address: final, no retry.
    Refused(String),
    /// The response body is larger than the cap (status and headers of the response).
    TooLarge(StatusCode, HeaderMap),
    /// A transport error (its text ends up in the step's `error`).
    Other(String),
}

impl From<String> for SendError {
    fn from(s: String) -> SendError {
        SendError::Other(s)
    }
}

/// A boxed future of a [`Transport`].
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<Answer, SendError>> + Send + 'a>>;

/// The seam where a built webhook request leaves: the network (the guarded hyper client), or
/// the stubs of `flexscript test` (src/listener/testing.rs). Timeouts and retries stay in
/// [`perform`].
pub trait Transport: Send + Sync {
    /// Sends `req` and reads at most `max_body` bytes of the response.
    fn send(&self, req: Request<Full<Bytes>>, max_body: usize) -> Sending<'_>;
}

impl Transport for Inner {
    fn send(&self, req: Request<Full<Bytes>>, cap: usize) -> Sending<'_> {
        Box::pin(async move {
            let resp = self.request(req).await.map_err(|e| match guard_error(&e) {
                Some(g) if g.starts_with("destination refused") => SendError::Refused(g),
                Some(g) => SendError::Other(g),
                None => SendError::Other(format!("request failed: {}", error_chain(&e))),
            })?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let declared = headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > cap as u64) {
                return Err(SendError::TooLarge(status, headers));
            }
            match Limited::new(resp.into_body(), cap).collect().await {
                Ok(b) => Ok((status, headers, b.to_bytes())),
                Err(e) if e.is::<LengthLimitError>() => Err(SendError::TooLarge(status, headers)),
                Err(e) => Err(SendError::Other(format!(
                    "reading the response failed: {e}"
                ))),
            }
        })
    }
}

/// The shared outbound client (http and https): the [`GuardedConnector`] under TLS (or the
/// test runner's stubs), plus the default response-body cap. Cloning shares the connection
/// pool.
#[derive(Clone)]
pub struct HttpClient {
    transport: Arc<dyn Transport>,
    max_body: usize,
}

/// Where TLS trust comes from (`[server] webhook_trust`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Trust {
    /// The Mozilla roots compiled in (`webpki-roots`).
    #[default]
    Mozilla,
    /// The operating system's store (`rustls-native-certs`).
    System,
}

/// Everything an [`HttpClient`] is built from.
pub struct ClientSettings {
    /// Which destinations may be called (`webhook_allow`).
    pub guard: Guard,
    /// The trusted TLS roots.
    pub roots: RootCertStore,
    /// Default cap on a response body, in bytes.
    pub max_response_bytes: usize,
    /// Resolves host names (the system's; tests lend their own).
    pub resolver: Arc<dyn Resolve>,
}

impl Default for ClientSettings {
    /// Default guard (no `webhook_allow`), Mozilla roots, 1 MiB, the system resolver.
    fn default() -> ClientSettings {
        ClientSettings {
            guard: Guard::default(),
            roots: roots(Trust::Mozilla, &[]).unwrap_or_else(|_| RootCertStore::empty()),
            max_response_bytes: MAX_BODY,
            resolver: Arc::new(SystemResolver),
        }
    }
}

/// Why [`roots`] could not build a root store; `Display` is a short message for the
/// configuration report.
#[derive(Debug)]
#[non_exhaustive]
pub enum RootsError {
    /// `webhook_trust = "system"` found no usable certificate (with the first loading error).
    NoSystemCertificate(Option<String>),
    /// A `webhook_ca` file is not PEM.
    NotPem(rustls::pki_types::pem::Error),
    /// A certificate rustls refuses.
    Unusable(rustls::Error),
    /// A `webhook_ca` file without any certificate.
    Empty,
}

impl fmt::Display for RootsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootsError::NoSystemCertificate(None) => {
                f.write_str("no certificate found in the system store")
            }
            RootsError::NoSystemCertificate(Some(why)) => {
                write!(f, "no certificate found in the system store: {why}")
            }
            RootsError::NotPem(e) => write!(f, "not a PEM certificate file ({e})"),
            RootsError::Unusable(e) => write!(f, "unusable certificate: {e}"),
            RootsError::Empty => {
                f.write_str("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file")
            }
        }
    }
}

impl std::error::Error for RootsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RootsError::NotPem(e) => Some(e),
            RootsError::Unusable(e) => Some(e),
            _ => None,
        }
    }
}

/// The root store for `trust` plus the PEM certificates `extra_pem` (the contents of
/// `webhook_ca` files).
pub fn roots(trust: Trust, extra_pem: &[&[u8]]) -> Result<RootCertStore, RootsError> {
    let mut roots = RootCertStore::empty();
    match trust {
        Trust::Mozilla => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Trust::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.first().map(|e| e.to_string());
                return Err(RootsError::NoSystemCertificate(why));
            }
        }
    }
    for pem in extra_pem {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(RootsError::NotPem)?;
            roots.add(cert).map_err(RootsError::Unusable)?;
            n += 1;
        }
        if n == 0 {
            return Err(RootsError::Empty);
        }
    }
    Ok(roots)
}

/// The default client: no `webhook_allow`, Mozilla roots, 1 MiB responses.
pub fn client() -> HttpClient {
    HttpClient::new(ClientSettings::default())
}

impl HttpClient {
    /// A client with the given guard, trust and cap. TLS is rustls (ring provider, TLS 1.2 and
    /// 1.3) offering HTTP/2 and HTTP/1.1 by ALPN; plain http is HTTP/1.1.
    pub fn new(settings: ClientSettings) -> HttpClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            // The ring provider implements TLS 1.2 and 1.3, the safe defaults: cannot fail.
            .expect("ring supports the default TLS versions")
            .with_root_certificates(settings.roots)
            .with_no_client_auth();
        let connector = GuardedConnector::new(Arc::new(settings.guard), settings.resolver);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(connector);
        let inner: Inner = Client::builder(TokioExecutor::new()).build(https);
        HttpClient {
            transport: Arc::new(inner),
            max_body: settings.max_response_bytes,
        }
    }

    /// A client sending through `transport` (the test runner's stubs), with the default cap.
    pub fn with_transport(transport: Arc<dyn Transport>) -> HttpClient {
        HttpClient {
            transport,
            max_body: MAX_BODY,
        }
    }
}

/// A client trusting `roots` instead of the Mozilla set, with `webhook_allow = ["127.0.0.1"]`
/// (crate-internal: tests inject a self-signed certificate here).
#[cfg(test)]
pub(crate) fn client_with_roots(roots: RootCertStore) -> HttpClient {
    HttpClient::new(ClientSettings {
        guard: Guard::new(&["127.0.0.1"]).expect("valid rule"),
        roots,
        ..ClientSettings::default()
    })
}

/// The host of `url` (for log lines: never the path or the query), or `-`.
pub fn host_of(url: &str) -> String {
    url.trim()
        .parse::<Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string))
        .unwrap_or_else(|| "-".into())
}

/// The guard's verdict hidden in a client error, if any.
fn guard_error(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(r.to_string());
        }
        if let Some(u) = c.downcast_ref::<Unresolved>() {
            return Some(u.to_string());
        }
        cur = c.source();
    }
    None
}

/// `e` and its causes, `: `-separated (the TLS reason sits a few levels down). The parts are
/// transport errors (no URL, header or body), so no secret can leak through them.
fn error_chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
    }
    out
}

/// One rendered webhook call.
pub struct Call {
    /// The HTTP method.
    pub method: String,
    /// The destination URL.
    pub url: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Option<String>,
    /// Time limit of one attempt.
    pub timeout: Duration,
    /// Further attempts after a transport error, a timeout or a 5xx.
    pub retries: u32,
    /// The step's `max_response_bytes`; `None`: the client's default.
    pub max_response_bytes: Option<usize>,
    /// Standard Webhooks signing: (HMAC key, `webhook-id`).
    pub sign: Option<(Vec<u8>, String)>,
}

fn failure(message: &str) -> Json {
    json!({"ok": false, "status": 0, "body": null, "headers": {}, "error": message})
}

/// Performs `call`; never fails (see the module docs).
pub async fn perform(client: &HttpClient, call: &Call) -> Json {
    let uri: Uri = match call.url.trim().parse() {
        Ok(u) => u,
        Err(_) => return failure("invalid URL"),
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return failure("the URL must start with http:// or https://"),
    }
    let Ok(method) = Method::from_bytes(call.method.as_bytes()) else {
        return failure("invalid method");
    };
    let mut last = failure("no attempt");
    for attempt in 0..=call.retries {
        if attempt > 0 {
            let ms = (100u64 << (attempt - 1).min(5)).min(2000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let result = tokio::time::timeout(call.timeout, once(client, call, &uri, &method)).await;
        last = match result {
            Err(_) => failure("timed out"),
            Ok(Err(Failed::Refused(e))) => return failure(&e),
            Ok(Err(Failed::Other(e))) => failure(&e),
            Ok(Ok(r)) => r,
        };
        let status = last["status"].as_u64().unwrap_or(0);
        if status != 0 && status < 500 {
            break;
        }
    }
    last
}

/// Why an attempt produced no response.
enum Failed {
    /// The guard refused the destination: final, no retry.
    Refused(String),
    Other(String),
}

impl From<String> for Failed {
    fn from(s: String) -> Failed {
        Failed::Other(s)
    }
}

async fn once(
    client: &HttpClient,
    call: &Call,
    uri: &Uri,
    method: &Method,
) -> Result<Json, Failed> {
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(Failed::Refused(
            "destination refused: user info in the URL".into(),
        ));
    }
    let mut builder = Request::builder().method(method.clone()).uri(uri.clone());
    let mut has_ct = false;
    for (k, v) in &call.headers {
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("invalid header name {k}"))?;
        let value =
            HeaderValue::from_str(v).map_err(|_| format!("invalid value for header {k}"))?;
        has_ct |= name == CONTENT_TYPE;
        builder = builder.header(name, value);
    }
    let body = call.body.clone().unwrap_or_default();
    if !has_ct && !body.is_empty() {
        builder = builder.header(CONTENT_TYPE, crate::detect::content_type(&body));
    }
    if let Some((key, id)) = &call.sign {
        // Signed at each attempt, so a retry carries a fresh timestamp.
        let ts = super::signature::now();
        let sig = super::signature::sign_standard(key, id, ts, body.as_bytes());
        let id = HeaderValue::from_str(id).map_err(|_| "invalid webhook-id".to_string())?;
        builder = builder
            .header("webhook-id", id)
            .header("webhook-timestamp", ts)
            .header("webhook-signature", sig);
    }
    let req = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("invalid request: {e}"))?;
    let cap = call.max_response_bytes.unwrap_or(client.max_body);
    let (status, headers, bytes) = match client.transport.send(req, cap).await {
        Ok(answer) => answer,
        Err(SendError::Refused(why)) => return Err(Failed::Refused(why)),
        Err(SendError::Other(why)) => return Err(Failed::Other(why)),
        Err(SendError::TooLarge(status, headers)) => {
            return Ok(json!({
                "ok": false,
                "status": status.as_u16(),
                "body": null,
                "headers": crate::Value::map(super::request::header_map(&headers)).to_json(),
                "error": format!("response body larger than max_response_bytes ({cap} bytes)"),
            }))
        }
    };
    let status = status.as_u16();
    let headers = crate::Value::map(super::request::header_map(&headers)).to_json();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str::<Json>(&text).unwrap_or(Json::String(text));
    Ok(json!({
        "ok": (200..300).contains(&status),
        "status": status,
        "body": body,
        "headers": headers,
    }))
}

/// The TLS test receiver, shared with the end-to-end webhook tests.
#[cfg(test)]
#[path = "../../tests/listener_support/tls.rs"]
mod test_tls;

#[cfg(test)]
mod tests {
    //! Real sockets: a TLS server on 127.0.0.1 with a certificate generated at test time.
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::net::SocketAddr;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A self-signed certificate for `127.0.0.1`/`localhost` and its PKCS#8 key.
    fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let ck = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .expect("generate certificate");
        let key = PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der());
        (ck.cert.der().clone(), PrivateKeyDer::Pkcs8(key))
    }

    /// Serves every TLS connection with one JSON response echoing the request line.
    async fn tls_server(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> SocketAddr {
        super::test_tls::tls_server(cert, key, |line| {
            let body = json!({ "line": line }).to_string();
            format!(
                "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
                 x-tls: yes\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        })
        .await
    }

    fn call(url: String, retries: u32) -> Call {
        Call {
            method: "POST".into(),
            url,
            headers: vec![],
            body: Some("{\"a\":1}".into()),
            timeout: Duration::from_secs(10),
            retries,
            max_response_bytes: None,
            sign: None,
        }
    }

    /// Mozilla roots only, with 127.0.0.1 opened for the local test servers.
    fn local_client() -> HttpClient {
        client_with_roots(roots(Trust::Mozilla, &[]).expect("mozilla roots"))
    }

    #[tokio::test]
    async fn https_with_a_trusted_certificate_works() {
        let (cert, key) = self_signed();
        let mut roots = RootCertStore::empty();
        roots.add(cert.clone()).expect("add root");
        let addr = tls_server(cert, key).await;
        let client = client_with_roots(roots);
        let r = perform(&client, &call(format!("https://{addr}/hook?x=1"), 0)).await;
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["status"], 201);
        assert_eq!(r["body"]["line"], "POST /hook?x=1 HTTP/1.1");
        assert_eq!(r["headers"]["x_tls"], "yes");
    }

    #[tokio::test]
    async fn https_with_an_untrusted_certificate_is_ok_false_with_the_tls_reason() {
        let (cert, key) = self_signed();
        let addr = tls_server(cert, key).await;
        // The production roots (webpki), which do not hold the self-signed cert.
        let r = perform(&local_client(), &call(format!("https://{addr}/"), 1)).await;
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["status"], 0);
        let err = r["error"].as_str().unwrap_or("");
        assert!(err.contains("certificate"), "{err}");
        assert!(!err.contains("scheme"), "{err}");
    }

    #[tokio::test]
    async fn https_to_a_plain_tcp_port_is_a_tls_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        let r = perform(&local_client(), &call(format!("https://{addr}/"), 0)).await;
        assert_eq!(r["ok"], false, "{r}");
        let err = r["error"].as_str().unwrap_or("");
        assert!(
            !err.contains("scheme") && !err.contains("supported"),
            "{err}"
        );
        // rustls rejects the plain-HTTP bytes as a TLS record ("received corrupt message").
        assert!(
            err.starts_with("request failed: client error (Connect): "),
            "{err}"
        );
        assert!(err.contains("corrupt message"), "{err}");
    }

    #[tokio::test]
    async fn other_schemes_are_refused() {
        let r = perform(&client(), &call("ftp://127.0.0.1/".into(), 0)).await;
        assert_eq!(r["ok"], false);
        assert_eq!(r["error"], "the URL must start with http:// or https://");
    }

    #[tokio::test]
    async fn user_info_is_refused_and_not_retried() {
        let t = std::time::Instant::now();
        let r = perform(&local_client(), &call("http://u:p@127.0.0.1:1/".into(), 5)).await;
        assert_eq!(r["error"], "destination refused: user info in the URL");
        // A refusal is final: five retries would take 100+200+400+800+1600 ms.
        assert!(t.elapsed() < Duration::from_millis(1500));
        let r = perform(&client(), &call("http://127.0.0.1:1/".into(), 5)).await;
        assert_eq!(
            r["error"],
            "destination refused: 127.0.0.1 is a loopback address (open it with [server] webhook_allow)"
        );
    }

    /// An HTTP/2 server over TLS (ALPN `h2`) answering with the request's version.
    async fn h2_server(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> SocketAddr {
        use hyper::{body::Incoming, Response};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let v = format!("{:?}", req.version());
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            json!({ "version": v }).to_string(),
                        ))))
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn https_speaks_http2_when_the_receiver_offers_it() {
        let (cert, key) = self_signed();
        let mut roots = RootCertStore::empty();
        roots.add(cert.clone()).expect("add root");
        let addr = h2_server(cert.clone(), key.clone_key()).await;
        let client = client_with_roots(roots.clone());
        let r = perform(&client, &call(format!("https://{addr}/h2"), 0)).await;
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["body"]["version"], "HTTP/2.0");
        // A receiver without ALPN gets HTTP/1.1.
        let addr = tls_server(cert, key).await;
        let r = perform(&client, &call(format!("https://{addr}/h1"), 0)).await;
        assert_eq!(r["body"]["line"], "POST /h1 HTTP/1.1", "{r}");
    }
}
