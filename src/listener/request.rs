//! Request → `__data` (docs/listener.md "Request → `__data`"). Synchronous and pure, so it can be fuzzed.
//!
//! The first body rule that applies, then merged with the query string (body keys win, compared
//! at the top level):
//! 1. `application/x-www-form-urlencoded` / `multipart/form-data` → fields, with PHP bracket
//!    names (`a[]`, `c[name]`, `a[b][c]`, `a[][x]`); a map whose keys are exactly `0..n-1` in
//!    order becomes a list, as PHP's `json_encode` does. Uploaded files go under
//!    `__files.<field>` as `{filename, content_type, size}` (bracket names apply there too).
//! 2. JSON (content type `application/json` or `…+json`, or any other non-form body that parses
//!    as a JSON object) → its fields; an array or scalar lands in `__json`. Invalid JSON sent as
//!    JSON → [`BadRequest`] with the parser's message and position. A blank JSON body counts as
//!    no body.
//! 3. Any other body → `__raw` (invalid UTF-8 replaced by U+FFFD, never refused); a well-formed
//!    XML body (see [`crate::detect::xml`]: no DOCTYPE, nothing expanded) also → `__xml`.
//! 4. No body → query string only.
//!
//! Then `__headers` (names lower-cased with `-` → `_`, repeats joined with `, `, non-UTF-8
//! bytes replaced), `__headers.__jwt_data` (`[data]` when given, otherwise absent even if a
//! header tried to set it), `__method`, `__path`, `__query`.
//! The runtime's own keys (`__headers`, `__method`, `__path`, `__query`, `__files`, `__json`,
//! `__raw`, `__xml`) can never be set by the body or the query: such keys are dropped there.
//!
//! Limits against hostile input, each a 400: nesting deeper than [`MAX_DEPTH`] (JSON, XML,
//! bracket names), more than [`MAX_FIELDS`] form fields / multipart parts / query pairs or XML
//! elements, a multipart body without its end boundary.

use crate::detect::xml::{self, XmlLimits};
use crate::value::Map as Fields;
use crate::Value;
use bytes::Bytes;
/// The `http` types [`RequestParts`] is made of, re-exported for callers without a direct
/// `hyper` dependency (the fuzz targets).
pub use hyper::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use indexmap::IndexMap;
use serde_json::{Map, Value as Json};
use std::sync::Arc;

/// Maximum nesting depth of JSON bodies, XML bodies and bracket names.
pub const MAX_DEPTH: usize = 64;
/// Maximum number of form fields, multipart parts, query pairs or XML elements.
pub const MAX_FIELDS: usize = 10_000;

/// Keys only the runtime sets.
const RESERVED: [&str; 8] = [
    "__headers",
    "__method",
    "__path",
    "__query",
    "__files",
    "__json",
    "__raw",
    "__xml",
];

/// What [`INTERNED`] holds besides [`RESERVED`]: the other runtime keys and the usual methods.
const INTERNED_MORE: [&str; 10] = [
    "__jwt_data",
    "__data",
    "GET",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "HEAD",
    "OPTIONS",
    "TRACE",
];

/// The runtime's keys of `__data` and the usual method names, allocated once per process: a
/// map key or a string value is an `Arc<str>`, so a request clones these (a reference count)
/// instead of allocating and copying each one.
static INTERNED: std::sync::LazyLock<Vec<Arc<str>>> = std::sync::LazyLock::new(|| {
    RESERVED
        .iter()
        .chain(INTERNED_MORE.iter())
        .map(|k| Arc::from(*k))
        .collect()
});

/// `text` as an `Arc<str>`: shared when it is one of [`INTERNED`], else a new one.
pub(crate) fn key(text: &str) -> Arc<str> {
    match interned_index(text) {
        Some(i) => INTERNED[i].clone(),
        None => Arc::from(text),
    }
}

/// The place of `text` in [`INTERNED`] ([`RESERVED`] then [`INTERNED_MORE`]), by one `match`
/// instead of a comparison with each entry (a test checks it against the two lists).
fn interned_index(text: &str) -> Option<usize> {
    Some(match text {
        "__headers" => 0,
        "__method" => 1,
        "__path" => 2,
        "__query" => 3,
        "__files" => 4,
        "__json" => 5,
        "__raw" => 6,
        "__xml" => 7,
        "__jwt_data" => 8,
        "__data" => 9,
        "GET" => 10,
        "POST" => 11,
        "PUT" => 12,
        "PATCH" => 13,
        "DELETE" => 14,
        "HEAD" => 15,
        "OPTIONS" => 16,
        "TRACE" => 17,
        _ => return None,
    })
}

/// The method's name as a `__data.__method` value.
fn method_text(m: &Method) -> Arc<str> {
    key(m.as_str())
}

/// One request, as the runtime received it.
pub struct RequestParts<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request target (path and query).
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The whole body (within `body_limit`).
    pub body: &'a [u8],
    /// The token's `data` claim when authentication passed (goes to __headers.__jwt_data as a
    /// 1-item list).
    pub jwt_data: Option<&'a Value>,
}

/// A request the runtime answers with 400; `message()` is safe to send to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRequest {
    message: String,
}

impl BadRequest {
    fn new(message: impl Into<String>) -> Self {
        BadRequest {
            message: message.into(),
        }
    }

    /// The client-safe explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for BadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BadRequest {}

/// Builds `__data` (a map Value) from one request. Synchronous and pure (fuzzable).
pub fn to_data(req: &RequestParts<'_>) -> Result<Value, BadRequest> {
    to_data_for(req, None)
}

/// The parts of `__data` a reader looks at: its top-level keys and, under `__headers`, the
/// entries (see [`to_data_for`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DataNeeds {
    keys: Vec<Arc<str>>,
    /// `None`: every header (the `__headers` map itself is read).
    headers: Option<Vec<Arc<str>>>,
}

impl DataNeeds {
    /// From the constant attribute paths read under `__data` (`[["ref"], ["__headers",
    /// "__jwt_data"]]` for `__data.ref` and `__data.__headers.__jwt_data[0]`).
    pub(crate) fn from_paths(paths: &[Vec<Arc<str>>]) -> DataNeeds {
        let mut keys: Vec<Arc<str>> = Vec::new();
        let mut headers = Some(Vec::new());
        for p in paths {
            let Some(first) = p.first() else { continue };
            if !keys.contains(first) {
                keys.push(first.clone());
            }
            if &**first == "__headers" {
                match (p.get(1), &mut headers) {
                    (None, h) => *h = None,
                    (Some(name), Some(h)) if !h.contains(name) => h.push(name.clone()),
                    _ => {}
                }
            }
        }
        DataNeeds { keys, headers }
    }

    fn key(&self, k: &str) -> bool {
        self.keys.iter().any(|x| **x == *k)
    }
}

/// [`to_data`], building only what `needs` names (all of it when `None`): the same answers
/// and errors for a reader that looks at nothing else. The body and the query string are
/// parsed in full either way (their errors are 400s whatever is read).
pub(crate) fn to_data_for(
    req: &RequestParts<'_>,
    needs: Option<&DataNeeds>,
) -> Result<Value, BadRequest> {
    let query_str = req.uri.query().unwrap_or("");
    let want = |k: &str| needs.is_none_or(|n| n.key(k));
    // A reader that does not look at `__query`, of a query string without bracket names, too
    // short to hold more than MAX_FIELDS pairs (k non-empty pairs take at least 2k - 1 bytes,
    // so no error is possible): the query's fields go straight into `__data` after the body's
    // (`direct_query`) instead of through a map of their own.
    let direct = needs.is_some()
        && !want("__query")
        && query_str.len() < 2 * MAX_FIELDS
        && !flat_needs_brackets(query_str.as_bytes());
    let query = if direct {
        Fields::new()
    } else {
        urlencoded(query_str.as_bytes(), "query string")?
    };
    let body = parse_body(req)?;

    let mut data = Fields::with_capacity(body.fields.len() + query.len() + 8);
    for (k, v) in body.fields {
        if !RESERVED.contains(&&*k) && want(&k) {
            data.insert(k, v);
        }
    }
    if direct {
        direct_query(&mut data, query_str.as_bytes(), &want)?;
    }
    for (k, v) in &query {
        if !RESERVED.contains(&&**k) && want(k) && !data.contains_key(k) {
            data.insert(k.clone(), v.clone());
        }
    }
    if let Some(files) = body.files.filter(|_| want("__files")) {
        data.insert(key("__files"), files);
    }
    if let Some(j) = body.json.filter(|_| want("__json")) {
        data.insert(key("__json"), j);
    }
    if let Some(raw) = body.raw.filter(|_| want("__raw")) {
        data.insert(key("__raw"), Value::str(raw));
    }
    if let Some(x) = body.xml.filter(|_| want("__xml")) {
        data.insert(key("__xml"), x);
    }
    if want("__headers") {
        let only = needs.and_then(|n| n.headers.as_deref());
        data.insert(key("__headers"), headers(req.headers, req.jwt_data, only));
    }
    if want("__method") {
        data.insert(key("__method"), Value::Str(method_text(req.method)));
    }
    if want("__path") {
        data.insert(key("__path"), Value::str(req.uri.path()));
    }
    if want("__query") {
        data.insert(key("__query"), Value::map(query));
    }
    Ok(Value::map(data))
}

/// [`to_data`] as JSON.
pub fn to_json(req: &RequestParts<'_>) -> Result<Json, BadRequest> {
    Ok(to_data(req)?.to_json())
}

/// What the body contributed.
#[derive(Default)]
struct Body {
    fields: Fields,
    files: Option<Value>,
    json: Option<Value>,
    raw: Option<String>,
    xml: Option<Value>,
}

/// The fields of a JSON object.
fn json_fields(m: &Map<String, Json>) -> Fields {
    m.iter()
        .map(|(k, v)| (Arc::from(k.as_str()), Value::from(v)))
        .collect()
}

/// The media type of the request (lower-cased, parameters removed) and the raw header value.
fn media_type(headers: &HeaderMap) -> (String, String) {
    let raw = headers
        .get(hyper::http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let media = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (media, raw)
}

fn parse_body(req: &RequestParts<'_>) -> Result<Body, BadRequest> {
    let mut out = Body::default();
    if req.body.is_empty() {
        return Ok(out);
    }
    let (media, raw_ct) = media_type(req.headers);
    // (1) forms
    if media == "application/x-www-form-urlencoded" {
        out.fields = urlencoded(req.body, "form body")?;
        return Ok(out);
    }
    if media == "multipart/form-data" {
        let (fields, files) = multipart(req.body, &raw_ct)?;
        out.fields = fields;
        out.files = files.map(Value::map);
        return Ok(out);
    }
    // (2) JSON
    let is_json_type = media == "application/json" || media.ends_with("+json");
    if is_json_type {
        if req.body.trim_ascii().is_empty() {
            return Ok(out);
        }
        let value: Json = serde_json::from_slice(req.body)
            .map_err(|e| BadRequest::new(format!("invalid JSON body: {e}")))?;
        check_json_depth(&value)?;
        match &value {
            Json::Object(m) => out.fields = json_fields(m),
            other => out.json = Some(Value::from(other)),
        }
        return Ok(out);
    }
    let trimmed = req.body.trim_ascii();
    if trimmed.first() == Some(&b'{') {
        if let Ok(Json::Object(m)) = serde_json::from_slice::<Json>(trimmed) {
            check_json_depth_map(&m)?;
            out.fields = json_fields(&m);
            return Ok(out);
        }
    }
    // (3) anything else
    let text = String::from_utf8_lossy(req.body).into_owned();
    if trimmed.first() == Some(&b'<') {
        let limits = XmlLimits {
            max_depth: MAX_DEPTH,
            max_elements: MAX_FIELDS,
        };
        out.xml = xml::parse(text.trim(), limits)
            .map_err(|e| BadRequest::new(e.to_string()))?
            .map(Value::from);
    }
    out.raw = Some(text);
    Ok(out)
}

fn too_deep() -> BadRequest {
    BadRequest::new(format!(
        "request data nested deeper than {MAX_DEPTH} levels"
    ))
}

/// Depth of a JSON value: scalars 0, `{}`/`[]` 1, … (iterative, no recursion).
fn json_depth(v: &Json) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Json::Array(a) => {
                max = max.max(d + 1);
                stack.extend(a.iter().map(|x| (x, d + 1)));
            }
            Json::Object(m) => {
                max = max.max(d + 1);
                stack.extend(m.values().map(|x| (x, d + 1)));
            }
            _ => {}
        }
    }
    max
}

fn check_json_depth(v: &Json) -> Result<(), BadRequest> {
    if json_depth(v) > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(())
}

fn check_json_depth_map(m: &Map<String, Json>) -> Result<(), BadRequest> {
    if m.values().map(json_depth).max().unwrap_or(0) + 1 > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(())
}

/// Headers as a map: names lower-cased with `-` turned into `_`, repeated values joined with
/// `, ` (docs/listener.md "Request → `__data`"). Also names the headers of a webhook's response.
pub(crate) fn header_map(h: &HeaderMap) -> Fields {
    header_fields(h, |_| true)
}

/// Whether header `name` becomes the `__headers` key `key` (`-` → `_`).
fn names_key(name: &str, key: &str) -> bool {
    name.len() == key.len()
        && name
            .bytes()
            .zip(key.bytes())
            .all(|(n, k)| n == k || (n == b'-' && k == b'_'))
}

/// [`header_map`] of the headers whose name `keep` accepts.
fn header_fields(h: &HeaderMap, keep: impl Fn(&str) -> bool) -> Fields {
    let mut out = Fields::with_capacity(h.keys_len() + 1);
    // `iter()` yields every value of one name before the next name, names in the order of
    // `keys()`: consecutive values of the same name are joined, with no look-up per name.
    let mut iter = h.iter().peekable();
    while let Some((name, value)) = iter.next() {
        if !keep(name.as_str()) {
            while iter.next_if(|(next, _)| *next == name).is_some() {}
            continue;
        }
        // One value (the usual case) is borrowed, not copied.
        let mut joined = header_text(value);
        while let Some((_, more)) = iter.next_if(|(next, _)| *next == name) {
            joined = (joined.into_owned() + ", " + &header_text(more)).into();
        }
        // `HeaderName`s are lower-case already; only `-` needs replacing.
        let name = name.as_str();
        let key: Arc<str> = if name.contains('-') {
            Arc::from(name.replace('-', "_"))
        } else {
            Arc::from(name)
        };
        out.insert(key, Value::str(&*joined));
    }
    out
}

/// A header value as text: visible ASCII as it is (checked faster than UTF-8), other bytes
/// decoded as UTF-8 with invalid sequences replaced.
fn header_text(v: &HeaderValue) -> std::borrow::Cow<'_, str> {
    match v.to_str() {
        Ok(s) => s.into(),
        Err(_) => String::from_utf8_lossy(v.as_bytes()),
    }
}

/// `__headers`: [`header_map`] plus `__jwt_data`, which only the runtime sets; with `only`,
/// just the entries it names.
fn headers(h: &HeaderMap, jwt_data: Option<&Value>, only: Option<&[Arc<str>]>) -> Value {
    let mut out = match only {
        None => header_map(h),
        // Only `__jwt_data`: a header whose name reads as it would be removed just below.
        Some(keys) if keys.iter().all(|k| &**k == "__jwt_data") => Fields::with_capacity(1),
        Some(keys) => header_fields(h, |name| keys.iter().any(|k| names_key(name, k))),
    };
    out.shift_remove("__jwt_data");
    let jwt_wanted = only.is_none_or(|keys| keys.iter().any(|k| &**k == "__jwt_data"));
    if let Some(d) = jwt_data.filter(|_| jwt_wanted) {
        out.insert(key("__jwt_data"), Value::list(vec![d.clone()]));
    }
    Value::map(out)
}

// ---------------------------------------------------------------- forms and bracket names

/// A node of a PHP-style form structure being built.
enum Node {
    Leaf(Value),
    Branch(Branch),
}

/// An ordered map with PHP's "next integer key" for `[]`.
#[derive(Default)]
struct Branch {
    entries: IndexMap<String, Node>,
    next_index: u64,
}

impl Branch {
    fn note_key(&mut self, key: &str) {
        if let Ok(k) = key.parse::<u64>() {
            if k.to_string() == key {
                self.next_index = self.next_index.max(k.saturating_add(1));
            }
        }
    }

    /// Inserts `value` at the path of a bracket `name`.
    fn insert(&mut self, name: &str, value: Value) -> Result<(), BadRequest> {
        let (first, segments) = split_name(name);
        if segments.len() > MAX_DEPTH {
            return Err(too_deep());
        }
        let mut cur = self;
        let mut key = first.to_string();
        for seg in segments {
            cur.note_key(&key);
            let node = cur
                .entries
                .entry(key)
                .or_insert_with(|| Node::Branch(Branch::default()));
            if let Node::Leaf(_) = node {
                *node = Node::Branch(Branch::default());
            }
            let Node::Branch(b) = node else {
                unreachable!("replaced by a branch just above")
            };
            cur = b;
            key = match seg {
                Some(s) => s.to_string(),
                None => cur.next_index.to_string(),
            };
        }
        cur.note_key(&key);
        cur.entries.insert(key, Node::Leaf(value));
        Ok(())
    }

    fn into_value(self) -> Value {
        let sequential = self
            .entries
            .keys()
            .enumerate()
            .all(|(i, k)| k.parse::<usize>().ok() == Some(i) && k == &i.to_string());
        if sequential && !self.entries.is_empty() {
            Value::list(self.entries.into_values().map(Node::into_value).collect())
        } else {
            Value::map(self.into_fields())
        }
    }

    /// The top level is always a map (never turned into a list).
    fn into_fields(self) -> Fields {
        self.entries
            .into_iter()
            .map(|(k, v)| (Arc::from(k), v.into_value()))
            .collect()
    }
}

impl Node {
    fn into_value(self) -> Value {
        match self {
            Node::Leaf(v) => v,
            Node::Branch(b) => b.into_value(),
        }
    }
}

/// `a[b][][c]` → (`a`, [Some("b"), None, Some("c")]). PHP rules: text after a `]` that does not
/// open a new `[` is ignored, an unclosed `[` ends the name; a name starting with `[` or whose
/// first `[` is unclosed is taken literally.
fn split_name(name: &str) -> (&str, Vec<Option<&str>>) {
    let Some(open) = name.find('[') else {
        return (name, Vec::new());
    };
    if open == 0 || !name[open..].contains(']') {
        return (name, Vec::new());
    }
    let first = &name[..open];
    let mut segments = Vec::new();
    let mut rest = &name[open..];
    while let Some(after) = rest.strip_prefix('[') {
        let Some(close) = after.find(']') else { break };
        let seg = &after[..close];
        segments.push(if seg.is_empty() { None } else { Some(seg) });
        rest = &after[close + 1..];
        if segments.len() > MAX_DEPTH {
            break;
        }
    }
    (first, segments)
}

/// Decodes `application/x-www-form-urlencoded` text (also used for query strings) into a map.
fn urlencoded(input: &[u8], what: &str) -> Result<Fields, BadRequest> {
    if input.is_empty() {
        return Ok(Fields::new());
    }
    // Without brackets (`[`, or `%5B` once decoded) every key is a plain top-level name: the
    // fields go straight into the map (a repeated name keeps its first place and takes its
    // last value, as `Branch::insert` does).
    if !flat_needs_brackets(input) {
        return urlencoded_flat(input, what);
    }
    urlencoded_nested(input, what)
}

/// Whether [`urlencoded`] would read `input` with bracket names (not [`urlencoded_flat`]).
fn flat_needs_brackets(input: &[u8]) -> bool {
    input.contains(&b'[') || contains_ci(input, b"%5b")
}

/// The fields of a flat query string merged into `data` as [`to_data_for`] merges the map of
/// [`urlencoded_flat`]: after the `body_keys` first entries (the body's, which win), each
/// wanted, non-reserved name once, at its first place, with its last value.
fn direct_query(
    data: &mut Fields,
    input: &[u8],
    want: &dyn Fn(&str) -> bool,
) -> Result<(), BadRequest> {
    let body_keys = data.len();
    for_each_field(input, "query string", |key, value| {
        if RESERVED.contains(&key) || !want(key) {
            return Ok(());
        }
        match data.get_index_of(key) {
            Some(i) if i < body_keys => {}
            Some(i) => data[i] = value,
            None => {
                data.insert(Arc::from(key), value);
            }
        }
        Ok(())
    })
}

/// [`urlencoded`] of a text whose keys hold no bracket.
fn urlencoded_flat(input: &[u8], what: &str) -> Result<Fields, BadRequest> {
    let mut fields = Fields::new();
    for_each_field(input, what, |key, value| {
        fields.insert(Arc::from(key), value);
        Ok(())
    })?;
    Ok(fields)
}

/// [`urlencoded`] with PHP bracket names.
fn urlencoded_nested(input: &[u8], what: &str) -> Result<Fields, BadRequest> {
    let mut root = Branch::default();
    for_each_field(input, what, |key, value| root.insert(key, value))?;
    Ok(root.into_fields())
}

/// Calls `put` with each decoded `name=value` pair of a query string or form body (empty pairs
/// and empty names skipped), refusing more than [`MAX_FIELDS`] pairs.
fn for_each_field(
    input: &[u8],
    what: &str,
    mut put: impl FnMut(&str, Value) -> Result<(), BadRequest>,
) -> Result<(), BadRequest> {
    let mut count = 0usize;
    for pair in input.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        count += 1;
        if count > MAX_FIELDS {
            return Err(BadRequest::new(format!(
                "{what} has more than {MAX_FIELDS} fields"
            )));
        }
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let key = form_decode(k);
        if key.is_empty() {
            continue;
        }
        put(&key, Value::str(&*form_decode(v)))?;
    }
    Ok(())
}

/// Whether `needle` (lower-case ASCII) occurs in `hay`, ignoring ASCII case.
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// `+` → space, then percent-decoding, then UTF-8 (invalid sequences replaced).
fn form_decode(s: &[u8]) -> std::borrow::Cow<'_, str> {
    if !s.iter().any(|&b| b == b'+' || b == b'%') {
        return String::from_utf8_lossy(s);
    }
    let plus: Vec<u8> = s
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
    String::from_utf8_lossy(&bytes).into_owned().into()
}

/// Parses a whole multipart body: (fields map, `__files` map if any file).
fn multipart(body: &[u8], content_type: &str) -> Result<(Fields, Option<Fields>), BadRequest> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| BadRequest::new("multipart body without a valid boundary"))?;
    let chunk = Bytes::copy_from_slice(body);
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(chunk) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let bad = |e: multer::Error| BadRequest::new(format!("malformed multipart body: {e}"));
    let work = async move {
        let mut fields = Branch::default();
        let mut files = Branch::default();
        let mut any_file = false;
        let mut count = 0usize;
        while let Some(field) = mp.next_field().await.map_err(bad)? {
            count += 1;
            if count > MAX_FIELDS {
                return Err(BadRequest::new(format!(
                    "multipart body has more than {MAX_FIELDS} parts"
                )));
            }
            let name = field.name().unwrap_or("").to_string();
            let file = field.file_name().map(str::to_string).map(|filename| {
                let ct = field
                    .content_type()
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "application/octet-stream".to_string());
                (filename, ct)
            });
            let bytes = field.bytes().await.map_err(bad)?;
            if name.is_empty() {
                continue;
            }
            match file {
                Some((filename, ct)) => {
                    any_file = true;
                    let mut info = Fields::with_capacity(3);
                    info.insert("filename".into(), Value::str(filename));
                    info.insert("content_type".into(), Value::str(ct));
                    info.insert(
                        "size".into(),
                        Value::Int(i64::try_from(bytes.len()).unwrap_or(i64::MAX)),
                    );
                    files.insert(&name, Value::map(info))?;
                }
                None => {
                    let text = String::from_utf8_lossy(&bytes);
                    fields.insert(&name, Value::str(&*text))?;
                }
            }
        }
        Ok((fields.into_fields(), any_file.then(|| files.into_fields())))
    };
    block_on_ready(work).unwrap_or_else(|| Err(BadRequest::new("multipart body could not be read")))
}

/// Polls a future that never waits (all its input is in memory) to completion. `None` if it
/// would wait, which cannot happen with a one-chunk in-memory stream.
fn block_on_ready<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests;
