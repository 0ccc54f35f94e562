//! Request → `__data` end to end (docs/listener.md "Request → `__data`") and `data` content-type detection (docs/listener.md "`data` Content-Type detection"),
//! through a real server: every mapping rule, hostile bodies, and every detection rule.
#![cfg(feature = "listener")]

mod listener_support;

use listener_support::{ep_path, hash, serve, Resp, Server};
use serde_json::{json, Value as Json};

fn config() -> String {
    format!(
        r#"[server]
body_limit = 4194304

[[endpoint]]
name = "echo"
first_hash = "{a}"
second_hash = "{b}"
return_type = "data"
return_data = "{{{{ __data|json_encode|raw }}}}"

[[endpoint]]
name = "detect"
first_hash = "{c}"
second_hash = "{b}"
return_type = "data"
return_data = "{{{{ __data.b|raw }}}}"
"#,
        a = hash('a'),
        b = hash('b'),
        c = hash('c'),
    )
}

/// `__data` without the headers the test client always sends.
async fn echo(s: &Server, method: &str, query: &str, ct: Option<&str>, body: &[u8]) -> Json {
    let r = echo_raw(s, method, query, ct, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut v = r.json();
    if let Some(h) = v.get_mut("__headers").and_then(Json::as_object_mut) {
        for k in ["host", "connection", "content_length"] {
            h.remove(k);
        }
    }
    v
}

async fn echo_raw(s: &Server, method: &str, query: &str, ct: Option<&str>, body: &[u8]) -> Resp {
    let path = format!("{}{query}", ep_path('a', 'b'));
    let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
    s.request(method, &path, &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_with_bracket_names_and_query_merge() {
    let s = serve(&config()).await;
    let d = echo(
        &s,
        "POST",
        "?page=2&name=from-query",
        Some("application/x-www-form-urlencoded"),
        b"name=Jane+Doe&tags[]=a&tags[]=b&c[name]=x&a[b][c]=1&items[][sku]=A1&items[][sku]=B2&e=%E2%82%AC",
    )
    .await;
    insta::assert_snapshot!(
        "form_and_query",
        serde_json::to_string_pretty(&d).unwrap_or_default()
    );
    assert_eq!(d["name"], "Jane Doe", "body keys win");
    assert_eq!(d["page"], "2");
    assert_eq!(d["__query"], json!({"page": "2", "name": "from-query"}));
    assert_eq!(d["items"], json!([{"sku": "A1"}, {"sku": "B2"}]));
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_fields_and_files() {
    let s = serve(&config()).await;
    let body = "--XB\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nReport\r\n\
--XB\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"r.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7 xyz\r\n\
--XB\r\nContent-Disposition: form-data; name=\"pics[]\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x01\x02\x03\r\n\
--XB--\r\n";
    let d = echo(
        &s,
        "POST",
        "",
        Some("multipart/form-data; boundary=XB"),
        body.as_bytes(),
    )
    .await;
    assert_eq!(d["title"], "Report");
    assert_eq!(
        d["__files"],
        json!({
            "doc": {"filename": "r.pdf", "content_type": "application/pdf", "size": 12},
            "pics": [{"filename": "a.png", "content_type": "image/png", "size": 3}]
        })
    );
    // unterminated multipart → 400
    let cut = &body[..body.len() - "--XB--\r\n".len() - 5];
    let r = echo_raw(
        &s,
        "POST",
        "",
        Some("multipart/form-data; boundary=XB"),
        cut.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap_or("")
        .starts_with("malformed multipart body"));
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_and_invalid_json() {
    let s = serve(&config()).await;
    let d = echo(
        &s,
        "PUT",
        "?q=1",
        Some("application/json"),
        br#"{"order": {"items": [{"sku": "A1", "qty": 2}]}, "q": "body"}"#,
    )
    .await;
    insta::assert_snapshot!(
        "json_object",
        serde_json::to_string_pretty(&d).unwrap_or_default()
    );
    assert_eq!(d["order"]["items"][0]["sku"], "A1");
    let d = echo(
        &s,
        "POST",
        "",
        Some("application/vnd.api+json"),
        b"[1, 2, 3]",
    )
    .await;
    assert_eq!(d["__json"], json!([1, 2, 3]));
    let d = echo(&s, "POST", "", Some("application/json"), b"42").await;
    assert_eq!(d["__json"], 42);
    // sniffed JSON object without a JSON content type
    let d = echo(&s, "POST", "", None, br#"{"sniffed": true}"#).await;
    assert_eq!(d["sniffed"], true);
    // invalid JSON sent as JSON: 400 with message and position
    let r = echo_raw(
        &s,
        "POST",
        "",
        Some("application/json"),
        b"{\"a\": 1,\n  \"b\": tru}",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": "invalid JSON body: expected ident at line 2 column 11"})
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_xml_headers_and_runtime_keys() {
    let s = serve(&config()).await;
    let d = echo(&s, "POST", "", Some("text/csv"), b"a,b\n1,2\n").await;
    assert_eq!(d["__raw"], "a,b\n1,2\n");
    let xml = br#"<?xml version="1.0"?><order id="77"><line sku="A">2</line><line sku="B">1</line><note>rush</note></order>"#;
    let d = echo(&s, "POST", "", Some("application/xml"), xml).await;
    insta::assert_snapshot!("xml", serde_json::to_string_pretty(&d).unwrap_or_default());
    assert_eq!(d["__xml"]["order"]["@id"], "77");
    assert_eq!(d["__xml"]["order"]["note"], "rush");
    // headers, method, path, query; the runtime's keys cannot be forged
    let path = format!("{}?__method=FAKE&x=1", ep_path('a', 'b'));
    let r = s
        .request(
            "POST",
            &path,
            &[
                ("X-Signature", "sig-1"),
                ("X-Multi", "1"),
                ("X-Multi", "2"),
                ("--jwt-data", "forged"),
                ("content-type", "application/json"),
            ],
            br#"{"__headers": "forged", "__path": "/forged"}"#,
        )
        .await;
    let d = r.json();
    assert_eq!(d["__headers"]["x_signature"], "sig-1");
    assert_eq!(d["__headers"]["x_multi"], "1, 2");
    assert!(d["__headers"].get("__jwt_data").is_none());
    assert_eq!(d["__method"], "POST");
    assert_eq!(d["__path"], ep_path('a', 'b'));
    assert_eq!(d["__query"], json!({"__method": "FAKE", "x": "1"}));
    assert_eq!(d["x"], "1");
    // no body: query only
    let d = echo(&s, "GET", "?only=query", None, b"").await;
    assert_eq!(d["only"], "query");
    assert!(d.get("__raw").is_none());
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies() {
    let s = serve(&config()).await;
    let bad = |r: &Resp| -> String {
        assert_eq!(r.status, 400, "{}", r.body);
        r.json()["error"].as_str().unwrap_or("").to_string()
    };
    // deep JSON
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    let r = echo_raw(&s, "POST", "", Some("application/json"), deep.as_bytes()).await;
    assert_eq!(bad(&r), "request data nested deeper than 64 levels");
    let abyss = "[".repeat(200_000);
    let r = echo_raw(&s, "POST", "", Some("application/json"), abyss.as_bytes()).await;
    assert!(bad(&r).starts_with("invalid JSON body: recursion limit exceeded"));
    // 10,001 form fields
    let many: Vec<String> = (0..10_001).map(|i| format!("f{i}=1")).collect();
    let r = echo_raw(
        &s,
        "POST",
        "",
        Some("application/x-www-form-urlencoded"),
        many.join("&").as_bytes(),
    )
    .await;
    assert_eq!(bad(&r), "form body has more than 10000 fields");
    // deep bracket names
    let name = format!("a{}=1", "[x]".repeat(65));
    let r = echo_raw(
        &s,
        "POST",
        "",
        Some("application/x-www-form-urlencoded"),
        name.as_bytes(),
    )
    .await;
    assert_eq!(bad(&r), "request data nested deeper than 64 levels");
    // invalid UTF-8 is replaced, not refused
    let d = echo(&s, "POST", "", Some("text/plain"), b"caf\xe9 \xff").await;
    assert_eq!(d["__raw"], "caf\u{FFFD} \u{FFFD}");
    // entity expansion and external entities: never expanded, not XML
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>"#;
    let d = echo(&s, "POST", "", Some("application/xml"), bomb.as_bytes()).await;
    assert_eq!(d["__raw"], bomb);
    assert!(d.get("__xml").is_none());
    let xxe = r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>"#;
    let d = echo(&s, "POST", "", Some("text/xml"), xxe.as_bytes()).await;
    assert!(d.get("__xml").is_none() && !d.to_string().contains("root:"));
    // deep XML
    let deep_xml = format!("{}{}", "<a>".repeat(65), "</a>".repeat(65));
    let r = echo_raw(&s, "POST", "", Some("application/xml"), deep_xml.as_bytes()).await;
    assert_eq!(bad(&r), "XML body nested deeper than 64 elements");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_content_type_detection_rules() {
    let s = serve(&config()).await;
    let cases = [
        // (1) JSON
        (r#"{"a": 1}"#, "application/json; charset=utf-8"),
        ("  [1, 2]  ", "application/json; charset=utf-8"),
        ("{not json", "text/plain; charset=utf-8"),
        // (2) XML prolog, even with an HTML root
        (
            "<?xml version=\"1.0\"?><div>x</div>",
            "application/xml; charset=utf-8",
        ),
        // (3) HTML documents
        ("<!DOCTYPE html><p>x</p>", "text/html; charset=utf-8"),
        ("<html><body>x</body></html>", "text/html; charset=utf-8"),
        // (4) XML with a non-HTML root
        (
            "<order><id>1</id></order>",
            "application/xml; charset=utf-8",
        ),
        // (5) other markup
        ("<div>hi</div>", "text/html; charset=utf-8"),
        ("<order><id>1</order>", "text/html; charset=utf-8"),
        (
            "<?xml version=\"1.0\"?><!DOCTYPE o><o/>",
            "text/html; charset=utf-8",
        ),
        // (6) text
        ("hello", "text/plain; charset=utf-8"),
        ("a,b\n1,2", "text/plain; charset=utf-8"),
    ];
    for (body, ct) in cases {
        let q = percent_encoding::utf8_percent_encode(body, percent_encoding::NON_ALPHANUMERIC);
        let r = s.get(&format!("{}?b={q}", ep_path('c', 'b'))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, body, "rendered as is");
        assert_eq!(r.header("content-type"), Some(ct), "{body}");
    }
    s.running.shutdown().await;
}
