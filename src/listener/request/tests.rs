use super::*;
use hyper::http::HeaderValue;
use serde_json::json;

struct Req {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn req(method: &str, uri: &str, ct: Option<&str>, body: &[u8]) -> Req {
    let mut headers = HeaderMap::new();
    if let Some(ct) = ct {
        headers.insert("content-type", HeaderValue::from_str(ct).unwrap());
    }
    Req {
        method: method.parse().unwrap(),
        uri: uri.parse().unwrap(),
        headers,
        body: body.to_vec(),
    }
}

fn run(r: &Req) -> Result<Json, BadRequest> {
    run_jwt(r, None)
}

fn run_jwt(r: &Req, jwt: Option<&Json>) -> Result<Json, BadRequest> {
    let jwt = jwt.map(Value::from);
    to_json(&RequestParts {
        method: &r.method,
        uri: &r.uri,
        headers: &r.headers,
        body: &r.body,
        jwt_data: jwt.as_ref(),
    })
}

/// The data without the runtime keys that every request has.
fn fields(r: &Req) -> Json {
    let mut v = run(r).unwrap();
    let m = v.as_object_mut().unwrap();
    for k in ["__headers", "__method", "__path", "__query"] {
        m.remove(k);
    }
    v
}

fn form(body: &str) -> Json {
    fields(&req(
        "POST",
        "/x",
        Some("application/x-www-form-urlencoded"),
        body.as_bytes(),
    ))
}

#[test]
fn urlencoded_fields_and_decoding() {
    assert_eq!(
        form("name=Jane+Doe&email=jane%40example.com&empty=&flag"),
        json!({"name": "Jane Doe", "email": "jane@example.com", "empty": "", "flag": ""})
    );
    assert_eq!(
        form("a=%E2%82%AC&b=%FF"),
        json!({"a": "€", "b": "\u{FFFD}"})
    );
    assert_eq!(form("a=1&&a=2&=x"), json!({"a": "2"}));
}

#[test]
fn php_bracket_names() {
    assert_eq!(form("a[]=1&a[]=2"), json!({"a": ["1", "2"]}));
    assert_eq!(
        form("c[name]=x&c[age]=3"),
        json!({"c": {"name": "x", "age": "3"}})
    );
    assert_eq!(
        form("a[b][c]=1&a[b][d]=2"),
        json!({"a": {"b": {"c": "1", "d": "2"}}})
    );
    assert_eq!(
        form("a[][x]=1&a[][x]=2"),
        json!({"a": [{"x": "1"}, {"x": "2"}]})
    );
    assert_eq!(form("a[0]=x&a[1]=y"), json!({"a": ["x", "y"]}));
    assert_eq!(form("a[1]=x&a[0]=y"), json!({"a": {"1": "x", "0": "y"}}));
    assert_eq!(form("a[5]=x&a[]=y"), json!({"a": {"5": "x", "6": "y"}}));
    assert_eq!(form("a[x]=1&a[]=2"), json!({"a": {"x": "1", "0": "2"}}));
    // later scalars replace structures and vice versa (PHP)
    assert_eq!(form("a=1&a[b]=2"), json!({"a": {"b": "2"}}));
    assert_eq!(form("a[b]=2&a=1"), json!({"a": "1"}));
    // odd names
    assert_eq!(form("a[b]x=1"), json!({"a": {"b": "1"}}));
    assert_eq!(form("a[b=1"), json!({"a[b": "1"}));
    assert_eq!(form("[a]=1"), json!({"[a]": "1"}));
    assert_eq!(form("a[b][c=1"), json!({"a": {"b": "1"}}));
    // encoded brackets work too
    assert_eq!(form("a%5B%5D=1&a%5B%5D=2"), json!({"a": ["1", "2"]}));
}

#[test]
fn bracket_depth_limit() {
    let ok = format!("a{}=1", "[x]".repeat(MAX_DEPTH));
    assert!(run(&req(
        "POST",
        "/",
        Some("application/x-www-form-urlencoded"),
        ok.as_bytes()
    ))
    .is_ok());
    let deep = format!("a{}=1", "[x]".repeat(MAX_DEPTH + 1));
    let e = run(&req(
        "POST",
        "/",
        Some("application/x-www-form-urlencoded"),
        deep.as_bytes(),
    ))
    .unwrap_err();
    assert!(e.message().contains("nested deeper than 64"), "{e}");
    let deep_query = format!("/p?a{}=1", "[]".repeat(1000));
    assert!(run(&req("GET", &deep_query, None, b"")).is_err());
}

#[test]
fn field_count_limit() {
    let ok: Vec<String> = (0..MAX_FIELDS).map(|i| format!("f{i}=1")).collect();
    let r = req(
        "POST",
        "/",
        Some("application/x-www-form-urlencoded"),
        ok.join("&").as_bytes(),
    );
    assert!(run(&r).is_ok());
    let too_many = format!("{}&last=1", ok.join("&"));
    let r = req(
        "POST",
        "/",
        Some("application/x-www-form-urlencoded"),
        too_many.as_bytes(),
    );
    assert_eq!(
        run(&r).unwrap_err().message(),
        "form body has more than 10000 fields"
    );
    let q = format!("/p?{}", "a&".repeat(MAX_FIELDS + 1));
    assert_eq!(
        run(&req("GET", &q, None, b"")).unwrap_err().message(),
        "query string has more than 10000 fields"
    );
}

const BOUNDARY: &str = "XyZ123";

/// (field name, file (filename, content type), content)
type Part<'a> = (&'a str, Option<(&'a str, Option<&'a str>)>, &'a [u8]);

fn multipart_body(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, file, content) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some((filename, ct)) => {
                out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                    )
                    .as_bytes(),
                );
                if let Some(ct) = ct {
                    out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
                }
            }
            None => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes(),
            ),
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn mp(body: &[u8]) -> Req {
    req(
        "POST",
        "/u",
        Some(&format!("multipart/form-data; boundary={BOUNDARY}")),
        body,
    )
}

#[test]
fn multipart_fields_and_files() {
    let body = multipart_body(&[
        ("name", None, b"Jane"),
        ("tags[]", None, b"a"),
        ("tags[]", None, b"b"),
        (
            "doc",
            Some(("invoice.pdf", Some("application/pdf"))),
            b"%PDF-1.4 1234",
        ),
        ("pics[]", Some(("a.png", Some("image/png"))), b"\x89PNG"),
        ("pics[]", Some(("b.bin", None)), b""),
    ]);
    assert_eq!(
        fields(&mp(&body)),
        json!({
            "name": "Jane",
            "tags": ["a", "b"],
            "__files": {
                "doc": {"filename": "invoice.pdf", "content_type": "application/pdf", "size": 13},
                "pics": [
                    {"filename": "a.png", "content_type": "image/png", "size": 4},
                    {"filename": "b.bin", "content_type": "application/octet-stream", "size": 0}
                ]
            }
        })
    );
}

#[test]
fn multipart_errors() {
    let mut body = multipart_body(&[("a", None, b"1")]);
    // cut the end boundary
    body.truncate(body.len() - format!("--{BOUNDARY}--\r\n").len());
    let e = run(&mp(&body)).unwrap_err();
    assert!(e.message().starts_with("malformed multipart body"), "{e}");
    let e = run(&mp(
        b"--XyZ123\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
    ))
    .unwrap_err();
    assert!(e.message().starts_with("malformed multipart body"), "{e}");
    let e = run(&req("POST", "/", Some("multipart/form-data"), b"x")).unwrap_err();
    assert_eq!(e.message(), "multipart body without a valid boundary");
    assert!(run(&mp(b"garbage")).is_err());
}

#[test]
fn multipart_part_limit() {
    let parts: Vec<Part<'_>> = (0..=MAX_FIELDS).map(|_| ("f[]", None, &b"1"[..])).collect();
    let e = run(&mp(&multipart_body(&parts))).unwrap_err();
    assert_eq!(e.message(), "multipart body has more than 10000 parts");
}

fn json_req(ct: &str, body: &str) -> Req {
    req("POST", "/j", Some(ct), body.as_bytes())
}

#[test]
fn json_bodies() {
    assert_eq!(
        fields(&json_req(
            "application/json",
            r#"{"order": {"items": [{"sku": "A1"}]}, "n": 1.5}"#
        )),
        json!({"order": {"items": [{"sku": "A1"}]}, "n": 1.5})
    );
    assert_eq!(
        fields(&json_req(
            "application/vnd.api+json; charset=utf-8",
            "[1, 2]"
        )),
        json!({"__json": [1, 2]})
    );
    assert_eq!(
        fields(&json_req("Application/JSON", "\"text\"")),
        json!({"__json": "text"})
    );
    assert_eq!(
        fields(&json_req("application/json", "null")),
        json!({"__json": null})
    );
    assert_eq!(fields(&json_req("application/json", "  \n")), json!({}));
    // sniffed: any non-form type whose body is a JSON object
    assert_eq!(
        fields(&json_req("text/plain", " {\"a\": 1} ")),
        json!({"a": 1})
    );
    assert_eq!(
        fields(&req("POST", "/", None, b"{\"a\": [true]}")),
        json!({"a": [true]})
    );
    // a JSON array sent as text stays raw
    assert_eq!(
        fields(&json_req("text/plain", "[1]")),
        json!({"__raw": "[1]"})
    );
}

#[test]
fn invalid_json_is_400_with_position() {
    let e = run(&json_req("application/json", "{\"a\": 1,\n \"b\": }")).unwrap_err();
    assert_eq!(
        e.message(),
        "invalid JSON body: expected value at line 2 column 7"
    );
    let e = run(&req(
        "POST",
        "/",
        Some("application/json"),
        b"{\"a\": \"\xff\"}",
    ))
    .unwrap_err();
    assert!(e.message().starts_with("invalid JSON body:"), "{e}");
    // not sent as JSON: raw
    assert_eq!(
        fields(&json_req("text/plain", "{\"a\": ")),
        json!({"__raw": "{\"a\": "})
    );
}

#[test]
fn json_depth_limit() {
    let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(run(&json_req("application/json", &ok)).is_ok());
    let deep = format!(
        "{}1{}",
        "[".repeat(MAX_DEPTH + 1),
        "]".repeat(MAX_DEPTH + 1)
    );
    let e = run(&json_req("application/json", &deep)).unwrap_err();
    assert!(e.message().contains("nested deeper"), "{e}");
    let deep_obj = format!(
        "{}1{}",
        "{\"a\":".repeat(MAX_DEPTH + 1),
        "}".repeat(MAX_DEPTH + 1)
    );
    assert!(run(&json_req("text/plain", &deep_obj)).is_err());
    // far beyond serde_json's own recursion limit: an error, not a crash
    let abyss = "[".repeat(100_000);
    assert!(run(&json_req("application/json", &abyss)).is_err());
    let abyss_obj = "{\"a\":".repeat(100_000);
    assert!(fields(&json_req("text/plain", &abyss_obj))["__raw"].is_string());
}

#[test]
fn raw_and_xml_bodies() {
    assert_eq!(
        fields(&json_req("text/csv", "a,b\n1,2")),
        json!({"__raw": "a,b\n1,2"})
    );
    assert_eq!(
        fields(&json_req("application/xml", "<order><id>77</id></order>")),
        json!({"__raw": "<order><id>77</id></order>", "__xml": {"order": {"id": "77"}}})
    );
    assert_eq!(
        fields(&req(
            "POST",
            "/",
            None,
            b"\n<?xml version=\"1.0\"?>\n<o a=\"1\"><i>x</i><i>y</i>t</o>\n"
        ))["__xml"],
        json!({"o": {"@a": "1", "i": ["x", "y"], "#text": "t"}})
    );
    // malformed XML: raw only
    assert_eq!(
        fields(&json_req("application/xml", "<a><b></a>")),
        json!({"__raw": "<a><b></a>"})
    );
    // invalid UTF-8: replaced, never refused
    assert_eq!(
        fields(&req("POST", "/", Some("text/plain"), b"caf\xe9")),
        json!({"__raw": "caf\u{FFFD}"})
    );
}

#[test]
fn xml_doctype_and_entities_never_expanded() {
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><l>&b;</l>";
    let d = fields(&json_req("application/xml", bomb));
    assert_eq!(d, json!({"__raw": bomb}));
    let xxe = "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>";
    assert_eq!(fields(&json_req("text/xml", xxe)), json!({"__raw": xxe}));
}

#[test]
fn xml_limits_are_400() {
    let deep = format!(
        "{}{}",
        "<a>".repeat(MAX_DEPTH + 1),
        "</a>".repeat(MAX_DEPTH + 1)
    );
    let e = run(&json_req("application/xml", &deep)).unwrap_err();
    assert_eq!(e.message(), "XML body nested deeper than 64 elements");
    let many = format!("<r>{}</r>", "<i/>".repeat(MAX_FIELDS));
    let e = run(&json_req("application/xml", &many)).unwrap_err();
    assert_eq!(e.message(), "XML body has more than 10000 elements");
}

#[test]
fn query_merge_body_wins() {
    let r = req(
        "POST",
        "/p?a=q&b=q&list[]=1&list[]=2",
        Some("application/json"),
        br#"{"a": "body", "c": 3}"#,
    );
    let d = run(&r).unwrap();
    assert_eq!(d["a"], "body");
    assert_eq!(d["b"], "q");
    assert_eq!(d["c"], 3);
    assert_eq!(d["list"], json!(["1", "2"]));
    assert_eq!(
        d["__query"],
        json!({"a": "q", "b": "q", "list": ["1", "2"]})
    );
    // no body: query only
    assert_eq!(
        fields(&req("GET", "/p?x=1&y=%20", None, b"")),
        json!({"x": "1", "y": " "})
    );
}

#[test]
fn runtime_keys_cannot_be_spoofed() {
    let mut r = req(
        "POST",
        "/real/path?__method=FAKE&__query=1",
        Some("application/json"),
        br#"{"__headers": {"x": 1}, "__path": "/fake", "__files": {}, "__raw": "r", "ok": 1}"#,
    );
    r.headers
        .insert("--jwt-data", HeaderValue::from_static("forged"));
    let d = run(&r).unwrap();
    assert_eq!(d["__method"], "POST");
    assert_eq!(d["__path"], "/real/path");
    assert_eq!(d["__query"], json!({"__method": "FAKE", "__query": "1"}));
    assert!(d.get("__files").is_none() && d.get("__raw").is_none());
    assert!(d["__headers"].get("__jwt_data").is_none());
    assert!(d["__headers"].get("x").is_none());
    assert_eq!(d["ok"], 1);
}

#[test]
fn headers_method_path() {
    let mut r = req("PUT", "/listener/a/b?k=v", Some("text/plain"), b"hi");
    r.headers
        .insert("X-Signature", HeaderValue::from_static("abc"));
    r.headers.append("x-multi", HeaderValue::from_static("1"));
    r.headers.append("x-multi", HeaderValue::from_static("2"));
    r.headers
        .insert("x-bin", HeaderValue::from_bytes(b"a\xffb").unwrap());
    let d = run(&r).unwrap();
    assert_eq!(
        d["__headers"],
        json!({
            "content_type": "text/plain",
            "x_signature": "abc",
            "x_multi": "1, 2",
            "x_bin": "a\u{FFFD}b"
        })
    );
    assert_eq!(d["__method"], "PUT");
    assert_eq!(d["__path"], "/listener/a/b");
    assert_eq!(d["__query"], json!({"k": "v"}));
    assert_eq!(d["__raw"], "hi");
}

#[test]
fn jwt_data_is_a_one_item_list() {
    let r = req("GET", "/", None, b"");
    let claim = json!({"user": {"id": 7}});
    let d = run_jwt(&r, Some(&claim)).unwrap();
    assert_eq!(d["__headers"]["__jwt_data"], json!([{"user": {"id": 7}}]));
    let d = run(&r).unwrap();
    assert!(d["__headers"].get("__jwt_data").is_none());
}

#[test]
fn to_data_gives_an_engine_map() {
    let r = req(
        "POST",
        "/?q=1",
        Some("application/json"),
        br#"{"a": {"b": [1]}}"#,
    );
    let v = to_data(&RequestParts {
        method: &r.method,
        uri: &r.uri,
        headers: &r.headers,
        body: &r.body,
        jwt_data: None,
    })
    .unwrap();
    assert!(v.as_map().is_some());
    assert_eq!(v.get_attr("a").get_attr("b").len(), Some(1));
    assert_eq!(v.get_attr("q").as_str(), Some("1"));
}

#[test]
fn flat_and_nested_form_decoding_agree_without_brackets() {
    for text in [
        "",
        "a=1",
        "a=1&b=2&a=3",
        "&&a&=x&b=&c=%20+%41",
        "%61=1&a=2",
        "x=%ZZ&y=%e9&z=%C3%A9",
        "k%5D=1&k]=2&0=a&1=b",
        "+=1&%20=2",
    ] {
        let flat = urlencoded_flat(text.as_bytes(), "t").unwrap();
        let nested = urlencoded_nested(text.as_bytes(), "t").unwrap();
        assert_eq!(
            Value::map(flat).to_json().to_string(),
            Value::map(nested).to_json().to_string(),
            "{text}"
        );
        assert_eq!(
            Value::map(urlencoded(text.as_bytes(), "t").unwrap())
                .to_json()
                .to_string(),
            Value::map(urlencoded_nested(text.as_bytes(), "t").unwrap())
                .to_json()
                .to_string()
        );
    }
    // Brackets, raw or percent-encoded in either case, take the nested path.
    for text in ["a[]=1&a[]=2", "a%5B%5D=1&a%5b%5d=2", "c%5bx%5D=1"] {
        let got = Value::map(urlencoded(text.as_bytes(), "t").unwrap()).to_json();
        assert!(
            got.as_object().unwrap().values().all(|v| !v.is_string()),
            "{text}: {got}"
        );
    }
    let many = vec!["a=1"; MAX_FIELDS + 1].join("&");
    assert!(urlencoded(many.as_bytes(), "query string").is_err());
}

#[test]
fn repeated_and_non_utf8_headers() {
    let mut headers = HeaderMap::new();
    headers.append("x-multi", HeaderValue::from_static("one"));
    headers.insert("accept", HeaderValue::from_static("text/plain"));
    headers.append("x-multi", HeaderValue::from_static("two"));
    headers.append(
        "x-bytes",
        HeaderValue::from_bytes(b"caf\xc3\xa9 \xff").unwrap(),
    );
    headers.append("x-multi", HeaderValue::from_bytes(b"\xe9").unwrap());
    let got = Value::map(header_map(&headers)).to_json();
    assert_eq!(
        got,
        json!({"x_multi": "one, two, \u{fffd}", "accept": "text/plain", "x_bytes": "caf\u{e9} \u{fffd}"})
    );
    assert_eq!(
        got.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["x_multi", "accept", "x_bytes"]
    );
}

/// Renders `src` with the full `__data` and with the parts its reads need: the same text (or
/// both fail alike). Returns whether the template's reads could be followed.
fn same_render(src: &str, r: &Req, jwt: Option<&Json>, strict: bool) -> bool {
    let mut engine = crate::Engine::new();
    engine.set_strict(strict);
    let t = engine.compile("answer", src).unwrap();
    let jwt = jwt.map(Value::from);
    let parts = RequestParts {
        method: &r.method,
        uri: &r.uri,
        headers: &r.headers,
        body: &r.body,
        jwt_data: jwt.as_ref(),
    };
    let needs = t.attr_paths("__data").map(|p| DataNeeds::from_paths(&p));
    let render = |needs: Option<&DataNeeds>| {
        let data = to_data_for(&parts, needs).unwrap();
        t.render_value(
            &crate::listener::respond::context(&data),
            Default::default(),
        )
        .map_err(|e| e.to_string())
    };
    assert_eq!(render(None), render(needs.as_ref()), "{src}");
    needs.is_some()
}

#[test]
fn reduced_data_renders_the_same() {
    let mut r = req(
        "POST",
        "/listener/a/b?ref=A-1&q=%20x&__path=no",
        Some("application/json"),
        br#"{"ref": "body", "n": [1, 2], "__headers": "no"}"#,
    );
    r.headers
        .insert("user-agent", HeaderValue::from_static("curl/8"));
    r.headers.append("x-two", HeaderValue::from_static("a"));
    r.headers.append("x-two", HeaderValue::from_static("b"));
    r.headers
        .insert("__jwt_data", HeaderValue::from_static("forged"));
    let jwt = json!({"user": "ann"});
    let followed = [
        "{{ __data.ref }} {{ __data.q }} {{ __data.n|json_encode }} {{ __data.__method }}",
        r#"{"user": {{ __data.__headers.__jwt_data[0].user|json_encode|raw }}, "ref": {{ __data.ref|default('')|json_encode|raw }}}"#,
        "{{ __data.__headers.user_agent }}|{{ __data.__headers.x_two }}|{{ __data.__headers.x_three is defined ? 'y' : 'n' }}",
        "{{ __data.__headers|keys|join(',') }}",
        "{{ __data.__query|json_encode }} {{ __data.__path }} {{ __data.missing ?? 'none' }}",
        "{% if __data.ref == 'body' %}{% for x in __data.n %}{{ x }}{% endfor %}{% endif %}",
        "{% set r = __data.ref %}{{ r }}{{ __data.__raw is defined ? 1 : 0 }}",
        "{{ __data.nope.deeper }}",
        "no data at all",
    ];
    for src in followed {
        assert!(same_render(src, &r, Some(&jwt), false), "{src}");
        assert!(same_render(src, &r, None, false), "{src}");
    }
    // Strict mode: a missing key fails alike.
    assert!(same_render("{{ __data.nope }}", &r, Some(&jwt), true));
    assert!(same_render(
        "{{ __data.__headers.nope }}",
        &r,
        Some(&jwt),
        true
    ));
    // Reads that are not constant paths: everything is built.
    for src in [
        "{{ __data|json_encode }}",
        "{{ __data|keys|join(',') }}",
        "{% for k, v in __data %}{{ k }}{% endfor %}",
        "{{ __data['ref'] }}",
        "{{ attribute(__data, 'ref') }}",
        "{% set d = __data %}{{ d.ref }}",
        "{% macro m(x) %}{{ x }}{% endmacro %}{{ _self.m(__data.ref) }}",
        "{% block b %}{{ __data.ref }}{% endblock %}",
        "{{ (__data.n|map(x => x ~ __data.ref))|join }}",
    ] {
        if let Ok(t) = crate::Engine::new().compile("answer", src) {
            assert_eq!(t.attr_paths("__data"), None, "{src}");
            same_render(src, &r, Some(&jwt), false);
        }
    }
}

#[test]
fn needs_from_paths() {
    let p = |v: &[&[&str]]| -> Vec<Vec<Arc<str>>> {
        v.iter()
            .map(|p| p.iter().map(|s| Arc::from(*s)).collect())
            .collect()
    };
    let n = DataNeeds::from_paths(&p(&[
        &["ref"],
        &["__headers", "__jwt_data", "0"],
        &["ref", "x"],
    ]));
    assert_eq!(n.keys, vec![Arc::from("ref"), Arc::from("__headers")]);
    assert_eq!(n.headers, Some(vec![Arc::from("__jwt_data")]));
    let n = DataNeeds::from_paths(&p(&[&["__headers", "host"], &["__headers"]]));
    assert_eq!(n.headers, None);
    assert!(names_key("user-agent", "user_agent"));
    assert!(names_key("user_agent", "user_agent"));
    assert!(!names_key("user_agent", "user-agent"));
    assert!(!names_key("user-agent", "user_agen"));
}

/// The query string of a reader that does not read `__query` is merged into `__data` without a
/// map of its own (`direct_query`): the same entries, in the same order, with the same values
/// as the full `__data` restricted to what the reader names.
#[test]
fn direct_query_fields_match_the_full_map() {
    let requests = [
        req("GET", "/l/a/b?ref=A-1", None, b""),
        req("GET", "/l/a/b?ref=1&x=2&ref=3&&=e&y&ref=4", None, b""),
        req("GET", "/l/a/b?a+b=c%20d&%72ef=%FF&q=1", None, b""),
        req(
            "GET",
            "/l/a/b?__path=p&__method=m&__headers=h&ref=q",
            None,
            b"",
        ),
        req(
            "POST",
            "/l/a/b?ref=q&x=q&x=q2",
            Some("application/json"),
            br#"{"ref": "body", "z": 1}"#,
        ),
        req(
            "POST",
            "/l/a/b?x=q&ref=q",
            Some("application/x-www-form-urlencoded"),
            b"x=b&ref=b&ref=b2",
        ),
        req("POST", "/l/a/b?ref=q", None, b"plain body"),
        // bracket names (and their encoded form) still go through the nested reader
        req("GET", "/l/a/b?ref[]=1&ref[]=2&x=3", None, b""),
        req("GET", "/l/a/b?ref%5B%5D=1&x=3", None, b""),
        req("GET", "/l/a/b", None, b""),
    ];
    let paths = |v: &[&[&str]]| -> Vec<Vec<Arc<str>>> {
        v.iter()
            .map(|p| p.iter().map(|s| Arc::from(*s)).collect())
            .collect()
    };
    let reads = [
        paths(&[&["ref"]]),
        paths(&[&["ref"], &["x"], &["__method"]]),
        paths(&[&["x"], &["y"], &["a b"], &["__path"]]),
        paths(&[&["ref"], &["__query"]]),
        paths(&[&["q"], &["z"], &["__raw"]]),
        paths(&[&["__headers"], &["__method"]]),
    ];
    for r in &requests {
        let parts = RequestParts {
            method: &r.method,
            uri: &r.uri,
            headers: &r.headers,
            body: &r.body,
            jwt_data: None,
        };
        let full = to_data_for(&parts, None).unwrap().to_json();
        for p in &reads {
            let needs = DataNeeds::from_paths(p);
            let reduced = to_data_for(&parts, Some(&needs)).unwrap().to_json();
            let expected: Map<String, Json> = full
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| needs.key(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(reduced, Json::Object(expected), "{} {:?}", r.uri, p);
            // the order too
            assert_eq!(
                reduced.as_object().unwrap().keys().collect::<Vec<_>>(),
                full.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| needs.key(k))
                    .collect::<Vec<_>>(),
                "{} {:?}",
                r.uri,
                p
            );
        }
    }
}

#[test]
fn interned_keys_are_found_by_their_index() {
    let all: Vec<&str> = RESERVED
        .iter()
        .chain(INTERNED_MORE.iter())
        .copied()
        .collect();
    assert_eq!(INTERNED.len(), all.len());
    for (i, k) in all.iter().enumerate() {
        assert_eq!(interned_index(k), Some(i), "{k}");
        assert_eq!(&*INTERNED[i], *k);
        // shared, not a new allocation
        assert!(Arc::ptr_eq(&key(k), &INTERNED[i]), "{k}");
    }
    for k in ["", "ref", "__Headers", "get", "__data ", "CONNECT"] {
        assert_eq!(interned_index(k), None, "{k}");
        assert_eq!(&*key(k), k);
    }
}

#[test]
fn only_jwt_data_headers_skip_the_header_walk() {
    // A reader of `__headers.__jwt_data` alone gets what the walk of every header would have
    // left: headers whose names read as `__jwt_data` are dropped either way.
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("example.com"));
    h.insert("--jwt-data", HeaderValue::from_static("forged"));
    h.append("__jwt_data", HeaderValue::from_static("forged too"));
    h.insert("x-other", HeaderValue::from_static("1"));
    let only: Vec<Arc<str>> = vec![key("__jwt_data")];
    for jwt in [None, Some(Value::from(&json!({"user": "ann"})))] {
        let walked = {
            let mut out = header_fields(&h, |name| only.iter().any(|k| names_key(name, k)));
            out.shift_remove("__jwt_data");
            if let Some(d) = &jwt {
                out.insert(key("__jwt_data"), Value::list(vec![d.clone()]));
            }
            Value::map(out)
        };
        let got = headers(&h, jwt.as_ref(), Some(&only));
        assert_eq!(got.to_json(), walked.to_json());
        let twice: Vec<Arc<str>> = vec![key("__jwt_data"), key("__jwt_data")];
        assert_eq!(
            headers(&h, jwt.as_ref(), Some(&twice)).to_json(),
            walked.to_json()
        );
    }
}
