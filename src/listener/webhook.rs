//! Outbound HTTP for `webhook` steps (docs/listener.md "Workflows"), `http://` and `https://`. TLS is rustls
//! (the `ring` provider, TLS 1.2 and 1.3) and trusts exactly the Mozilla roots compiled in by
//! `webpki-roots` (no system certificate files are read); a certificate or handshake failure is
//! `ok = false` with the TLS error in `error`. Each attempt is bounded by `timeout_ms`;
//! a transport error, a timeout or a 5xx status is retried up to `retries` more times (after
//! 100 ms, 200 ms, … capped at 2 s). The response body is read up to [`MAX_BODY`] bytes. The
//! result is never an error: `{ok, status, body, headers}` (+ `error` when no usable response),
//! `ok` = 2xx, `status` = 0 without a response, `body` parsed when it is JSON, `headers` named
//! like request headers (lower case, `-` → `_`, repeated values joined with `, `).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};
use serde_json::{json, Value as Json};
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

/// Largest webhook response body kept (1 MiB).
pub const MAX_BODY: usize = 1 << 20;

/// The shared outbound client (http and https).
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The production client: TLS trusts the `webpki-roots` (Mozilla) set only.
pub fn client() -> HttpClient {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    client_with_roots(roots)
}

/// A client trusting `roots` instead of the Mozilla set (crate-internal: tests inject a
/// self-signed certificate here; the runtime always goes through [`client`]).
pub(crate) fn client_with_roots(roots: RootCertStore) -> HttpClient {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // The ring provider implements TLS 1.2 and 1.3, the safe defaults: cannot fail.
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
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
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub timeout: Duration,
    pub retries: u32,
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
            Ok(Err(e)) => failure(&e),
            Ok(Ok(r)) => r,
        };
        let status = last["status"].as_u64().unwrap_or(0);
        if status != 0 && status < 500 {
            break;
        }
    }
    last
}

async fn once(
    client: &HttpClient,
    call: &Call,
    uri: &Uri,
    method: &Method,
) -> Result<Json, String> {
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
    let req = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("invalid request: {e}"))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
    let status = resp.status().as_u16();
    let headers = crate::Value::map(super::request::header_map(resp.headers())).to_json();
    let bytes = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the response failed: {e}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str::<Json>(&text).unwrap_or(Json::String(text));
    Ok(json!({
        "ok": (200..300).contains(&status),
        "status": status,
        "body": body,
        "headers": headers,
    }))
}

#[cfg(test)]
mod tests {
    //! Real sockets: a TLS server on 127.0.0.1 with a certificate generated at test time.
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let line = text.lines().next().unwrap_or("").to_string();
                    let body = json!({ "line": line }).to_string();
                    let resp = format!(
                        "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
                         x-tls: yes\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        addr
    }

    fn call(url: String, retries: u32) -> Call {
        Call {
            method: "POST".into(),
            url,
            headers: vec![],
            body: Some("{\"a\":1}".into()),
            timeout: Duration::from_secs(10),
            retries,
        }
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
        // The production client: webpki roots only, which do not hold the self-signed cert.
        let r = perform(&client(), &call(format!("https://{addr}/"), 1)).await;
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
        let r = perform(&client(), &call(format!("https://{addr}/"), 0)).await;
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
}
