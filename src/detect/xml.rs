//! A small, safe XML reader on top of `quick-xml`: well-formedness checks for content-type
//! detection (docs/listener.md "`data` Content-Type detection") and the `__data.__xml` mapping of request bodies (docs/listener.md "Request → `__data`").
//!
//! Safety decisions:
//! - A document with a `<!DOCTYPE …>` is **not XML** for this runtime: DTDs are never read, so no
//!   entity can be declared, let alone expanded (no "billion laughs", no external entities).
//! - Only the five predefined entities and numeric character references are decoded; any other
//!   `&name;` makes the document not well-formed.
//! - [`parse`] bounds nesting depth and element count ([`XmlLimits`]); the check used by
//!   detection keeps no tree and is linear in the input.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde_json::{Map, Value as Json};

/// Bounds applied when an XML request body is turned into a tree.
#[derive(Clone, Copy, Debug)]
pub struct XmlLimits {
    /// Maximum element nesting depth (the root is depth 1).
    pub max_depth: usize,
    /// Maximum number of elements in the document.
    pub max_elements: usize,
}

/// Why [`parse`] refused a well-formed document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XmlLimitError {
    /// Elements nested deeper than this limit.
    TooDeep(usize),
    /// More elements than this limit.
    TooManyElements(usize),
}

impl std::fmt::Display for XmlLimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XmlLimitError::TooDeep(n) => write!(f, "XML body nested deeper than {n} elements"),
            XmlLimitError::TooManyElements(n) => {
                write!(f, "XML body has more than {n} elements")
            }
        }
    }
}

/// The root element's name when `s` is a well-formed XML document without a DOCTYPE,
/// `None` otherwise. Does not build a tree.
pub fn well_formed_root(s: &str) -> Option<String> {
    match walk(s, None) {
        Ok(Some((root, _))) => Some(root),
        _ => None,
    }
}

/// Parses a well-formed document into `{root_name: value}` following docs/listener.md "Request → `__data`": an element
/// with neither attributes nor child elements becomes its text (exactly, `""` when empty); any
/// other element becomes a map with attributes under `@name`, children by name (repeated names
/// become lists, in document order) and its non-blank text, trimmed, under `#text`.
///
/// `Ok(None)`: not XML (malformed, or has a DOCTYPE). `Err`: well-formed so far but over `limits`.
pub fn parse(s: &str, limits: XmlLimits) -> Result<Option<Json>, XmlLimitError> {
    Ok(walk(s, Some(limits))?.map(|(root, value)| {
        let mut m = Map::new();
        m.insert(root, value.unwrap_or(Json::Null));
        Json::Object(m)
    }))
}

/// One open element while building the tree.
struct Frame {
    name: String,
    attrs: Vec<(String, String)>,
    children: Map<String, Json>,
    has_children: bool,
    text: String,
}

impl Frame {
    fn into_value(self) -> Json {
        if self.attrs.is_empty() && !self.has_children {
            return Json::String(self.text);
        }
        let mut m = Map::new();
        for (k, v) in self.attrs {
            m.insert(format!("@{k}"), Json::String(v));
        }
        for (k, v) in self.children {
            m.insert(k, v);
        }
        let text = self.text.trim();
        if !text.is_empty() {
            m.insert("#text".to_string(), Json::String(text.to_string()));
        }
        Json::Object(m)
    }

    fn add_child(&mut self, name: String, value: Json) {
        self.has_children = true;
        match self.children.get_mut(&name) {
            // Element values are strings or maps, never lists: a list here is a repetition.
            Some(Json::Array(items)) => items.push(value),
            Some(existing) => {
                let first = std::mem::take(existing);
                *existing = Json::Array(vec![first, value]);
            }
            None => {
                self.children.insert(name, value);
            }
        }
    }
}

/// Marker for "not XML".
struct NotXml;

impl From<quick_xml::Error> for NotXml {
    fn from(_: quick_xml::Error) -> Self {
        NotXml
    }
}

impl From<quick_xml::events::attributes::AttrError> for NotXml {
    fn from(_: quick_xml::events::attributes::AttrError) -> Self {
        NotXml
    }
}

/// The shared event loop. With `limits` it builds the tree, without it only checks.
/// `Ok(None)` = not XML; `Ok(Some((root, tree)))` with `tree` present iff `limits` was given.
#[allow(clippy::type_complexity)]
fn walk(
    s: &str,
    limits: Option<XmlLimits>,
) -> Result<Option<(String, Option<Json>)>, XmlLimitError> {
    match walk_inner(s, limits) {
        Ok(r) => Ok(Some(r)),
        Err(Ok(NotXml)) => Ok(None),
        Err(Err(e)) => Err(e),
    }
}

#[allow(clippy::type_complexity)]
fn walk_inner(
    s: &str,
    limits: Option<XmlLimits>,
) -> Result<(String, Option<Json>), Result<NotXml, XmlLimitError>> {
    let not_xml = |_| Ok(NotXml);
    let mut reader = Reader::from_str(s);
    {
        let cfg = reader.config_mut();
        cfg.check_end_names = true;
        cfg.check_comments = true;
        cfg.allow_unmatched_ends = false;
        cfg.expand_empty_elements = false;
        cfg.trim_text(false);
    }
    let build = limits.is_some();
    let mut stack: Vec<Frame> = Vec::new();
    let mut depth = 0usize;
    let mut elements = 0usize;
    let mut root: Option<String> = None;
    let mut root_closed = false;
    let mut tree: Option<Json> = None;
    let mut first = true;
    loop {
        let event = reader.read_event().map_err(|e| not_xml(NotXml::from(e)))?;
        let was_first = std::mem::replace(&mut first, false);
        match event {
            Event::Decl(_) => {
                if !was_first {
                    return Err(Ok(NotXml));
                }
            }
            Event::DocType(_) => return Err(Ok(NotXml)),
            Event::PI(_) | Event::Comment(_) => {}
            Event::Start(_) | Event::Empty(_) if root_closed => return Err(Ok(NotXml)),
            Event::Start(e) => {
                let (name, attrs) = element(&e, build).map_err(Ok)?;
                elements += 1;
                depth += 1;
                check_limits(limits, depth, elements).map_err(Err)?;
                if root.is_none() {
                    root = Some(name.clone());
                }
                if build {
                    stack.push(Frame {
                        name,
                        attrs,
                        children: Map::new(),
                        has_children: false,
                        text: String::new(),
                    });
                }
            }
            Event::Empty(e) => {
                let (name, attrs) = element(&e, build).map_err(Ok)?;
                elements += 1;
                check_limits(limits, depth + 1, elements).map_err(Err)?;
                let is_root = root.is_none();
                if is_root {
                    root = Some(name.clone());
                    root_closed = true;
                }
                if build {
                    let value = Frame {
                        name: String::new(),
                        attrs,
                        children: Map::new(),
                        has_children: false,
                        text: String::new(),
                    }
                    .into_value();
                    match stack.last_mut() {
                        Some(parent) => parent.add_child(name, value),
                        None => tree = Some(value),
                    }
                }
            }
            Event::End(_) => {
                if depth == 0 {
                    return Err(Ok(NotXml));
                }
                depth -= 1;
                if depth == 0 {
                    root_closed = true;
                }
                if build {
                    let frame = stack.pop().ok_or(Ok(NotXml))?;
                    let name = frame.name.clone();
                    let value = frame.into_value();
                    match stack.last_mut() {
                        Some(parent) => parent.add_child(name, value),
                        None => tree = Some(value),
                    }
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| not_xml(NotXml::from(e)))?;
                if depth == 0 {
                    if !text.chars().all(is_xml_space) {
                        return Err(Ok(NotXml));
                    }
                } else if let Some(frame) = stack.last_mut() {
                    frame.text.push_str(&text);
                }
            }
            Event::CData(c) => {
                if depth == 0 {
                    return Err(Ok(NotXml));
                }
                let text = std::str::from_utf8(&c).map_err(|_| Ok(NotXml))?;
                if let Some(frame) = stack.last_mut() {
                    frame.text.push_str(text);
                }
            }
            Event::Eof => break,
        }
    }
    match root {
        Some(root) if depth == 0 && root_closed => Ok((root, tree)),
        _ => Err(Ok(NotXml)),
    }
}

fn check_limits(
    limits: Option<XmlLimits>,
    depth: usize,
    elements: usize,
) -> Result<(), XmlLimitError> {
    if let Some(l) = limits {
        if depth > l.max_depth {
            return Err(XmlLimitError::TooDeep(l.max_depth));
        }
        if elements > l.max_elements {
            return Err(XmlLimitError::TooManyElements(l.max_elements));
        }
    }
    Ok(())
}

/// Validates an element's name and attributes; returns them (attributes only when `build`).
#[allow(clippy::type_complexity)]
fn element(e: &BytesStart<'_>, build: bool) -> Result<(String, Vec<(String, String)>), NotXml> {
    let qname = e.name();
    let name = std::str::from_utf8(qname.as_ref()).map_err(|_| NotXml)?;
    if !is_xml_name(name) {
        return Err(NotXml);
    }
    let mut attrs = Vec::new();
    for attr in e.attributes().with_checks(true) {
        let attr = attr?;
        let key = std::str::from_utf8(attr.key.as_ref()).map_err(|_| NotXml)?;
        if !is_xml_name(key) {
            return Err(NotXml);
        }
        let value = attr.unescape_value()?;
        if value.contains('<') {
            return Err(NotXml);
        }
        if build {
            attrs.push((key.to_string(), value.into_owned()));
        }
    }
    Ok((name.to_string(), attrs))
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// An XML `Name` (simplified: ASCII rules exact, any non-ASCII letter accepted).
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let start_ok = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':' || !c.is_ascii();
    start_ok(first) && chars.all(|c| start_ok(c) || c.is_ascii_digit() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const L: XmlLimits = XmlLimits {
        max_depth: 64,
        max_elements: 10_000,
    };

    fn p(s: &str) -> Option<Json> {
        parse(s, L).expect("within limits")
    }

    #[test]
    fn text_only_elements_become_strings() {
        assert_eq!(
            p("<order><id>77</id></order>"),
            Some(json!({"order": {"id": "77"}}))
        );
        assert_eq!(p("<a>hi</a>"), Some(json!({"a": "hi"})));
        assert_eq!(p("<a/>"), Some(json!({"a": ""})));
        assert_eq!(p("<a></a>"), Some(json!({"a": ""})));
        assert_eq!(p("<a> x </a>"), Some(json!({"a": " x "})));
    }

    #[test]
    fn repeated_children_become_lists_in_order() {
        assert_eq!(
            p("<o><i>1</i><n>x</n><i>2</i><i><s>3</s></i></o>"),
            Some(json!({"o": {"i": ["1", "2", {"s": "3"}], "n": "x"}}))
        );
    }

    #[test]
    fn attributes_and_mixed_text() {
        assert_eq!(
            p(r#"<a id="1" b='x &amp; y'>hello</a>"#),
            Some(json!({"a": {"@id": "1", "@b": "x & y", "#text": "hello"}}))
        );
        assert_eq!(
            p("<p>one <b>two</b> three</p>"),
            Some(json!({"p": {"b": "two", "#text": "one  three"}}))
        );
        assert_eq!(
            p(r#"<a><e k="v"/></a>"#),
            Some(json!({"a": {"e": {"@k": "v"}}}))
        );
    }

    #[test]
    fn entities_and_cdata() {
        assert_eq!(
            p("<a>&lt;x&gt; &#65;&#x42; &quot;&apos;</a>"),
            Some(json!({"a": "<x> AB \"'"}))
        );
        assert_eq!(
            p("<a><![CDATA[<raw> & stuff]]></a>"),
            Some(json!({"a": "<raw> & stuff"}))
        );
        // undeclared entities are not expanded: not XML
        assert_eq!(p("<a>&foo;</a>"), None);
        assert_eq!(p("<a>a & b</a>"), None);
    }

    #[test]
    fn prolog_comments_and_pis() {
        assert_eq!(
            p("<?xml version=\"1.0\"?>\n<!-- c --><a>1</a><!-- after -->\n"),
            Some(json!({"a": "1"}))
        );
        assert_eq!(p("<a/><?xml version=\"1.0\"?>"), None);
    }

    #[test]
    fn doctype_is_never_xml() {
        let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<lolz>&lol2;</lolz>"#;
        assert_eq!(p(bomb), None);
        assert_eq!(well_formed_root(bomb), None);
        let xxe = r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>"#;
        assert_eq!(p(xxe), None);
        assert_eq!(p("<!DOCTYPE x><x/>"), None);
    }

    #[test]
    fn malformed_documents() {
        for bad in [
            "",
            "hello",
            "<a>",
            "<a></b>",
            "</a>",
            "<a/><b/>",
            "<a></a>tail",
            "text<a/>",
            "<a x=1/>",
            "<a x=\"1\" x=\"2\"/>",
            "<1a/>",
            "<a><![CDATA[x]]></a><![CDATA[y]]>",
            "<a b=\"<\"/>",
            "<a><!-- a -- b --></a>",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
            assert_eq!(well_formed_root(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn root_name_reported() {
        assert_eq!(well_formed_root("<order/>").as_deref(), Some("order"));
        assert_eq!(
            well_formed_root("<soap:Envelope xmlns:soap=\"u\"><b/></soap:Envelope>").as_deref(),
            Some("soap:Envelope")
        );
    }

    #[test]
    fn limits_are_enforced() {
        let deep = format!("{}{}", "<a>".repeat(65), "</a>".repeat(65));
        assert_eq!(parse(&deep, L), Err(XmlLimitError::TooDeep(64)));
        let ok = format!("{}{}", "<a>".repeat(64), "</a>".repeat(64));
        assert!(parse(&ok, L).expect("limits").is_some());
        let many = format!("<r>{}</r>", "<i/>".repeat(10_000));
        assert_eq!(parse(&many, L), Err(XmlLimitError::TooManyElements(10_000)));
        // the detection check has no limits and no recursion
        let very_deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        assert_eq!(well_formed_root(&very_deep).as_deref(), Some("a"));
    }
}
