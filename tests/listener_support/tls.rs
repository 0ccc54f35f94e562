//! A TLS test receiver on 127.0.0.1:0, shared by the webhook client's unit tests
//! (src/listener/webhook.rs, through `#[path]`) and the end-to-end webhook tests: it reads each
//! connection's request head and writes the HTTP/1.1 response `answer` builds from the request
//! line, then closes. Depends only on rustls, tokio-rustls and tokio (no crate paths).

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves every TLS connection with the certificate `cert` and key `key`; `answer` turns the
/// request line into the whole response (status line, headers and body).
pub async fn tls_server(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    answer: fn(&str) -> String,
) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let line = text.lines().next().unwrap_or("");
                let _ = tls.write_all(answer(line).as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}
