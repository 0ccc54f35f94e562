//! End-to-end over real sockets: return types (data/html/redirect/continue/sse), 404/405/413,
//! the listing, settings rendering with env(), reload and graceful shutdown.
#![cfg(feature = "listener")]
mod listener_support;
use listener_support::*;
use std::time::{Duration, Instant};

/// An `[[endpoint]]` at `hash(a)/hash('b')` with extra fields (and steps) appended.
fn endpoint(a: char, extra: &str) -> String {
    format!(
        "[[endpoint]]\nname = \"ep-{a}\"\nfirst_hash = \"{}\"\nsecond_hash = \"{}\"\n{extra}\n",
        hash(a),
        hash('b')
    )
}

fn data_endpoint(a: char, body: &str) -> String {
    endpoint(
        a,
        &format!("return_type = \"data\"\nreturn_data = '''{body}'''"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_json_is_detected_and_rendered_with_request_data() {
    let s = serve(&data_endpoint(
        'a',
        r#"{"status": "received", "ref": "{{ __data.case_ref }}"}"#,
    ))
    .await;
    let r = s
        .post_json(&ep_path('a', 'b'), r#"{"case_ref": "C-9"}"#)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "received", "ref": "C-9"})
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_content_type_follows_the_rendered_body() {
    let cfg = [
        data_endpoint('a', "<order><id>{{ __data.id }}</id></order>"),
        data_endpoint('c', "<div>{{ __data.id }}</div>"),
        data_endpoint('d', "thanks {{ __data.id }}"),
        data_endpoint('e', "{% if __data.id %}[1, 2]{% else %}<x/>{% endif %}"),
    ]
    .concat();
    let s = serve(&cfg).await;
    let cases = [
        (
            'a',
            "application/xml; charset=utf-8",
            "<order><id>7</id></order>",
        ),
        ('c', "text/html; charset=utf-8", "<div>7</div>"),
        ('d', "text/plain; charset=utf-8", "thanks 7"),
        ('e', "application/json; charset=utf-8", "[1, 2]"),
    ];
    for (c, ct, body) in cases {
        let r = s.get(&format!("{}?id=7", ep_path(c, 'b'))).await;
        assert_eq!(
            (r.status, r.header("content-type"), r.body.as_str()),
            (200, Some(ct), body)
        );
    }
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_is_autoescaped() {
    let s = serve(&endpoint(
        'a',
        "return_type = \"html\"\nreturn_html = '''<p>{{ __data.name }}</p>{{ '<br>'|raw }}'''",
    ))
    .await;
    let r = s.get(&format!("{}?name=%3Cb%3Ex", ep_path('a', 'b'))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.body, "<p>&lt;b&gt;x</p><br>");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_only_to_http_or_paths() {
    let s = serve(&endpoint(
        'a',
        "return_type = \"redirect\"\nreturn_redirect = \"{{ __data.to }}\"",
    ))
    .await;
    let p = ep_path('a', 'b');
    let r = s
        .get(&format!("{p}?to=https://example.com/x%3Fa%3D1"))
        .await;
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("https://example.com/x?a=1"))
    );
    let r = s.get(&format!("{p}?to=/thanks")).await;
    assert_eq!((r.status, r.header("location")), (302, Some("/thanks")));
    for bad in [
        "javascript:alert(1)",
        "https://a.com/%0D%0ASet-Cookie:x=1",
        "//evil.com",
    ] {
        let r = s.get(&format!("{p}?to={bad}")).await;
        assert_eq!(r.status, 500, "{bad}: {r:?}");
        assert!(r.header("location").is_none());
        assert!(r.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("redirect")));
    }
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_error_is_a_500_that_does_not_leak_values() {
    let s = serve(&data_endpoint(
        'a',
        "{{ __data.secret ~ (1 / __data.zero) }}",
    ))
    .await;
    let r = s
        .post_json(&ep_path('a', 'b'), r#"{"secret": "hunter2", "zero": 0}"#)
        .await;
    assert_eq!(r.status, 500);
    assert!(!r.body.contains("hunter2"), "{}", r.body);
    insta::assert_snapshot!(r.body, @r#"{"error":"the response could not be rendered (endpoint[0].return_data)"}"#);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_unpublished_are_the_same_404() {
    let cfg = [
        data_endpoint('a', "ok"),
        endpoint(
            'c',
            "published = false\nreturn_type = \"data\"\nreturn_data = \"hidden\"",
        ),
    ]
    .concat();
    let s = serve(&cfg).await;
    let unpublished = s.get(&ep_path('c', 'b')).await;
    let unknown = s.get(&ep_path('d', 'b')).await;
    let elsewhere = s.get("/nothing/here").await;
    assert_eq!(unpublished.status, 404);
    assert_eq!(unpublished.body, unknown.body);
    assert_eq!(unknown.body, elsewhere.body);
    assert_eq!(
        unpublished.header("content-type"),
        unknown.header("content-type")
    );
    insta::assert_snapshot!(unknown.body, @r#"{"error":"not found"}"#);
    // The path is exactly /listener/FIRST/SECOND: one segment more or less is no endpoint.
    let known = ep_path('a', 'b');
    assert_eq!(s.get(&known).await.status, 200);
    let (first, _) = known
        .trim_start_matches("/listener/")
        .split_once('/')
        .unwrap();
    for path in [
        format!("{known}/"),
        format!("{known}/x"),
        format!("/listener/{first}"),
        format!("/listener/{first}/"),
        format!("/listener/{first}//"),
        format!("/listener//{first}"),
        "/listener/".to_string(),
    ] {
        let r = s.get(&path).await;
        assert_eq!((r.status, &*r.body), (404, unknown.body.as_str()), "{path}");
    }
    // A method not allowed on an unknown endpoint is still a 404.
    assert_eq!(
        s.request("DELETE", &ep_path('c', 'b'), &[], b"")
            .await
            .status,
        404
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_get_405_with_allow_and_bare_options_204() {
    let s = serve(&data_endpoint('a', "ok")).await;
    for m in ["DELETE", "PATCH", "HEAD"] {
        let r = s.request(m, &ep_path('a', 'b'), &[], b"").await;
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, POST, PUT, OPTIONS"));
    }
    for m in ["GET", "POST", "PUT"] {
        assert_eq!(
            s.request(m, &ep_path('a', 'b'), &[], b"").await.status,
            200,
            "{m}"
        );
    }
    let r = s.request("OPTIONS", &ep_path('a', 'b'), &[], b"").await;
    assert_eq!(
        (r.status, r.header("allow")),
        (204, Some("GET, POST, PUT, OPTIONS"))
    );
    assert!(r.header("access-control-allow-origin").is_none());
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_above_the_limit_get_413() {
    let cfg = format!(
        "[server]\nbody_limit = 100\n{}",
        data_endpoint('a', "{{ __data.__raw|length }}")
    );
    let s = serve(&cfg).await;
    let p = ep_path('a', 'b');
    let ok = s
        .request("POST", &p, &[("content-type", "text/plain")], &[b'x'; 100])
        .await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "100"));
    // Declared too large: refused from the header, before the body is sent.
    let r = s
        .request(
            "POST",
            &p,
            &[
                ("content-type", "text/plain"),
                ("content-length", "5000000"),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, 413);
    // Chunked: counted while streaming.
    let mut chunked = Vec::new();
    for _ in 0..5 {
        chunked.extend_from_slice(b"20\r\n");
        chunked.extend_from_slice(&[b'y'; 32]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = s
        .request(
            "POST",
            &p,
            &[
                ("content-type", "text/plain"),
                ("transfer-encoding", "chunked"),
            ],
            &chunked,
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "request body too large");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_requires_the_api_key() {
    let endpoints = [
        data_endpoint('a', "ok"),
        endpoint('c', "published = false\nreturn_type = \"data\"\nreturn_data = \"x\""),
        endpoint(
            'd',
            "return_type = \"continue\"\nrun_mode = \"sync\"\nadd_authentication = true\nendpoint_key = \"iss\"\nendpoint_secret = \"very-secret-value\"\nallow_cors = true\ncors_domains = \"*\"\n[[endpoint.step]]\nid = \"r\"\ntype = \"respond\"\nreturn_type = \"data\"\nreturn_data = \"x\"",
        ),
    ]
    .concat();
    let off = serve(&endpoints).await;
    assert_eq!(off.get("/dynamic-endpoints").await.status, 404);
    off.running.shutdown().await;

    let s = serve(&format!("[server]\napi_key = \"k-123\"\n{endpoints}")).await;
    assert_eq!(s.get("/dynamic-endpoints").await.status, 401);
    assert_eq!(s.get("/dynamic-endpoints?apikey=wrong").await.status, 401);
    let r = s
        .request("GET", "/dynamic-endpoints", &[("apikey", "k-123")], b"")
        .await;
    assert_eq!(r.status, 200);
    assert!(!r.body.contains("very-secret-value") && !r.body.contains("\"iss\""));
    assert_eq!(
        r.json(),
        serde_json::json!([
            {"name": "ep-a", "url": ep_path('a', 'b'), "methods": ["GET", "POST", "PUT", "OPTIONS"],
             "return_type": "data", "add_authentication": false, "allow_cors": false},
            {"name": "ep-d", "url": ep_path('d', 'b'), "methods": ["GET", "POST", "PUT", "OPTIONS"],
             "return_type": "continue", "add_authentication": true, "allow_cors": true},
        ])
    );
    let q = s.get("/dynamic-endpoints?apikey=k-123").await;
    assert_eq!(q.body, r.body);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_render_with_env_but_without_request_data() {
    std::env::set_var("FLEXSCRIPT_TEST_SECRET_RESP", "s3cr3t-from-env");
    let s = serve(&endpoint(
        'a',
        "return_type = \"data\"\nreturn_data = \"hi {{ __data.__headers.__jwt_data[0].who }}\"\nadd_authentication = true\nendpoint_key = \"iss-{{ __data.k }}\"\nendpoint_secret = \"{{ env('FLEXSCRIPT_TEST_SECRET_RESP') }}\"",
    ))
    .await;
    let p = ep_path('a', 'b');
    let good = flexscript::listener::auth::sign(
        "iss-",
        "s3cr3t-from-env",
        "HS256",
        60,
        Some(serde_json::json!({"who": "bob"})),
    )
    .expect("sign");
    let r = s
        .request(
            "GET",
            &format!("{p}?k=zzz"),
            &[("authorization", &format!("Bearer {good}"))],
            b"",
        )
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "hi bob"));
    // The caller cannot choose the key through request data.
    let chosen = flexscript::listener::auth::sign("iss-zzz", "s3cr3t-from-env", "HS256", 60, None)
        .expect("sign");
    let r = s
        .request(
            "GET",
            &format!("{p}?k=zzz"),
            &[("authorization", &format!("Bearer {chosen}"))],
            b"",
        )
        .await;
    assert_eq!(r.status, 401);
    // Response bodies have no env().
    let s2 = serve(&data_endpoint(
        'a',
        "{{ env('FLEXSCRIPT_TEST_SECRET_RESP') }}",
    ))
    .await;
    let r = s2.get(&ep_path('a', 'b')).await;
    assert_ne!(r.body, "s3cr3t-from-env");
    assert!(!r.body.contains("s3cr3t"));
    s.running.shutdown().await;
    s2.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_good_file_and_keeps_serving_on_a_broken_one() {
    let mem = |v: &str| {
        endpoint(
            'a',
            &format!("return_type = \"data\"\nreturn_data = \"{v} {{{{ memoryGet('k', '-') }}}}\"\n[[endpoint.step]]\nid = \"m\"\ntype = \"set_memory\"\nname = \"k\"\nvalue = \"kept\""),
        )
    };
    let s = serve(&mem("v1")).await;
    let p = ep_path('a', 'b');
    assert_eq!(s.get(&p).await.body, "v1 -");
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(
        &s.config_path,
        data_endpoint('a', "v2 {{ memoryGet('k', '-') }}"),
    )
    .expect("write");
    s.running.reload().expect("good reload");
    assert_eq!(
        s.get(&p).await.body,
        "v2 kept",
        "the shared store survives a reload"
    );
    std::fs::write(&s.config_path, data_endpoint('a', "{{ broken")).expect("write");
    let err = s
        .running
        .reload()
        .expect_err("broken file refused")
        .to_string();
    assert!(
        err.contains("endpoints.toml:") && err.contains("return_data"),
        "{err}"
    );
    assert_eq!(s.get(&p).await.body, "v2 kept");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_refuses_a_broken_file_with_every_error() {
    let path = write_config("[server]\nbogus = 1\n[[endpoint]]\nname = \"x\"\n");
    let err = match flexscript::listener::start(&path, Some("127.0.0.1:0".parse().expect("addr")))
        .await
    {
        Ok(_) => panic!("started"),
        Err(e) => e,
    };
    let flexscript::listener::StartError::Config(errors) = &err else {
        panic!("not a configuration error: {err:?}");
    };
    assert!(errors.diagnostics.len() >= 3, "{err}");
    let err = err.to_string();
    assert!(
        err.contains("endpoints.toml:2: server.bogus: unknown field"),
        "{err}"
    );
    assert!(err.contains("endpoint[0].first_hash: is required"), "{err}");
    assert!(
        err.contains("endpoint[0].return_type: is required"),
        "{err}"
    );
}

/// The start errors are typed and keep their cause: the TOML parse error behind a file that is
/// not TOML, the I/O error behind a missing file, the socket's error behind a taken address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_errors_keep_their_cause() {
    use flexscript::listener::StartError;
    use std::error::Error as _;
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let path = write_config("[server\n");
    let err = match flexscript::listener::start(&path, Some(any)).await {
        Ok(_) => panic!("started"),
        Err(e) => e,
    };
    assert!(matches!(err, StartError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("TOML syntax"), "{err}");
    let config = err.source().expect("the configuration errors");
    let toml = config.source().expect("the TOML error");
    assert!(!toml.to_string().is_empty());

    let missing = path.with_file_name("missing.toml");
    let err = match flexscript::listener::start(&missing, Some(any)).await {
        Ok(_) => panic!("started"),
        Err(e) => e,
    };
    let io = err
        .source()
        .and_then(|c| c.source())
        .expect("the I/O error");
    let io = io.downcast_ref::<std::io::Error>().expect("an io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);

    let taken = std::net::TcpListener::bind(any).expect("bind");
    let addr = taken.local_addr().expect("addr");
    let path = write_config(&data_endpoint('a', "x"));
    let err = match flexscript::listener::start(&path, Some(addr)).await {
        Ok(_) => panic!("started on a taken address"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, StartError::Listen { addr: a, admin: false, .. } if *a == addr),
        "{err:?}"
    );
    assert_eq!(err.to_string().lines().count(), 1, "{err}");
    assert!(err
        .to_string()
        .starts_with(&format!("cannot listen on {addr}: ")));
    let io = err.source().expect("the socket error");
    assert_eq!(
        io.downcast_ref::<std::io::Error>().map(|e| e.kind()),
        Some(std::io::ErrorKind::AddrInUse)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_requests_and_ends_sse_streams() {
    let cfg = [
        endpoint(
            'a',
            "return_type = \"sse\"\nrun_mode = \"sync\"\n[[endpoint.step]]\nid = \"e1\"\ntype = \"emit\"\ndata = \"first\"\n[[endpoint.step]]\nid = \"e2\"\ntype = \"emit\"\ndelay_ms = 60000\ndata = \"never\"",
        ),
        endpoint(
            'c',
            "return_type = \"continue\"\nrun_mode = \"sync\"\n[[endpoint.step]]\nid = \"r\"\ntype = \"respond\"\ndelay_ms = 500\nreturn_type = \"data\"\nreturn_data = \"late but fine\"",
        ),
    ]
    .concat();
    let s = serve(&cfg).await;
    let mut stream = Stream::open(s.addr, "GET", &ep_path('a', 'b'), &[]).await;
    assert_eq!(stream.status, 200);
    assert_eq!(
        stream.next_frame(Duration::from_secs(5)).await.as_deref(),
        Some("id: 1\ndata: first")
    );
    let addr = s.addr;
    let slow =
        tokio::spawn(async move { request(addr, "GET", &ep_path('c', 'b'), &[], b"").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    s.running.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(
        stream.next_frame(Duration::from_secs(5)).await.as_deref(),
        Some("event: end\ndata:")
    );
    let r = slow.await.expect("join");
    assert_eq!((r.status, r.body.as_str()), (200, "late but fine"));
    // No longer accepting.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Takes 30 s of wall-clock time (the header-read timeout); sleeps, costs no CPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_after_30_s() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = serve(&data_endpoint('a', "ok")).await;
    let mut conn = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    let t = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(40), conn.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server closed the connection");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(29) && took < Duration::from_secs(35),
        "{took:?}"
    );
    s.running.shutdown().await;
}

/// Takes 30 s of wall-clock time (the body-read timeout); sleeps, costs no CPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_get_408_after_30_s() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = serve(&data_endpoint('a', "ok")).await;
    let mut conn = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc",
        ep_path('a', 'b')
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let t = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(40), conn.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "answered and closed");
    assert!(t.elapsed() >= Duration::from_secs(29), "{:?}", t.elapsed());
    let r = parse_response(&buf);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (408, Some("request body not received in time"))
    );
    s.running.shutdown().await;
}
