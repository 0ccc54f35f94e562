//! An arbitrary request (method, URI, content type, headers, body, JWT data) through
//! `listener::request::to_data`, plus the body through `detect::content_type` and a differential
//! check of the two XML readers: never a panic, and the invariants of docs/listener.md "Request → `__data`" hold.
#![no_main]
use arbitrary::Arbitrary;
use flexscript::detect::{self, xml};
use flexscript::listener::request::{
    to_data, HeaderMap, HeaderName, HeaderValue, Method, RequestParts, Uri,
};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

#[derive(Arbitrary, Debug)]
enum ContentType {
    None,
    Form,
    Multipart,
    Json,
    PlusJson,
    Xml,
    Text,
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: String,
    path_and_query: String,
    content_type: ContentType,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    jwt: Option<common::ArbValue>,
}

fuzz_target!(|input: Input| {
    let method = Method::from_bytes(input.method.as_bytes()).unwrap_or(Method::POST);
    let uri: Uri = format!("/{}", input.path_and_query)
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/"));
    let mut headers = HeaderMap::new();
    for (name, value) in input.headers.iter().take(32) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    let ct = match &input.content_type {
        ContentType::None => None,
        ContentType::Form => Some("application/x-www-form-urlencoded".to_string()),
        ContentType::Multipart => Some("multipart/form-data; boundary=B".to_string()),
        ContentType::Json => Some("application/json".to_string()),
        ContentType::PlusJson => Some("application/ld+json; charset=utf-8".to_string()),
        ContentType::Xml => Some("application/xml".to_string()),
        ContentType::Text => Some("text/plain".to_string()),
        ContentType::Other(s) => Some(s.clone()),
    };
    if let Some(v) = ct.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert("content-type", v);
    }
    let jwt = input
        .jwt
        .as_ref()
        .map(|v| flexscript::Value::from(v.to_json(0)));
    let parts = RequestParts {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &input.body,
        jwt_data: jwt.as_ref(),
    };
    match to_data(&parts) {
        Ok(data) => {
            let map = data.as_map().expect("__data is a map");
            assert_eq!(
                data.get_attr("__method").as_str(),
                Some(method.as_str()),
                "__method is the real method"
            );
            assert_eq!(data.get_attr("__path").as_str(), Some(uri.path()));
            assert!(data.get_attr("__query").as_map().is_some());
            let h = data.get_attr("__headers");
            assert!(h.as_map().is_some());
            assert_eq!(h.get_attr("__jwt_data").is_undefined(), jwt.is_none());
            assert!(map.len() >= 4);
        }
        Err(e) => assert!(!e.message().is_empty()),
    }

    let text = String::from_utf8_lossy(&input.body);
    let ct = detect::content_type(&text);
    assert!([detect::JSON, detect::XML, detect::HTML, detect::TEXT].contains(&ct));
    // The tree builder and the checker agree on well-formedness and the root name.
    let limits = xml::XmlLimits {
        max_depth: 1 << 20,
        max_elements: 1 << 20,
    };
    if let Ok(tree) = xml::parse(&text, limits) {
        let root = xml::well_formed_root(&text);
        match (&tree, &root) {
            (Some(t), Some(r)) => {
                let obj = t.as_object().expect("tree is a map");
                assert_eq!(obj.len(), 1);
                assert!(obj.contains_key(r));
            }
            (None, None) => {}
            _ => panic!("xml readers disagree: tree {tree:?}, root {root:?}"),
        }
    }
});
