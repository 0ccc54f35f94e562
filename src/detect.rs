//! Content-type detection of rendered `data` bodies (docs/listener.md "`data` Content-Type detection"), shared by the listener and
//! the CLI.
//!
//! The first rule that holds on the trimmed body (ASCII whitespace and a leading BOM removed) wins:
//! 1. starts with `{` or `[` and parses as JSON → `application/json`;
//! 2. starts with an `<?xml` prolog and is well-formed XML → `application/xml`;
//! 3. starts with `<!DOCTYPE html` or a `<html` root (both case-insensitive) → `text/html`;
//! 4. well-formed XML whose root element is not an HTML element name (the WHATWG list,
//!    case-insensitive) → `application/xml`;
//! 5. starts with `<` → `text/html`;
//! 6. otherwise `text/plain`.
//!
//! Always with `; charset=utf-8`. "Well-formed" is [`xml::well_formed_root`]: a document with a
//! DOCTYPE never counts as XML (DTDs are never read), so `<?xml …?><!DOCTYPE x><x/>` falls
//! through to rule 5 (`text/html`).

pub mod xml;

/// `application/json; charset=utf-8`
pub const JSON: &str = "application/json; charset=utf-8";
/// `application/xml; charset=utf-8`
pub const XML: &str = "application/xml; charset=utf-8";
/// `text/html; charset=utf-8`
pub const HTML: &str = "text/html; charset=utf-8";
/// `text/plain; charset=utf-8`
pub const TEXT: &str = "text/plain; charset=utf-8";

/// The element names of the WHATWG HTML standard's element index (plus `svg` and `math`,
/// which HTML embeds), sorted for binary search.
const HTML_ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "address",
    "area",
    "article",
    "aside",
    "audio",
    "b",
    "base",
    "bdi",
    "bdo",
    "blockquote",
    "body",
    "br",
    "button",
    "canvas",
    "caption",
    "cite",
    "code",
    "col",
    "colgroup",
    "data",
    "datalist",
    "dd",
    "del",
    "details",
    "dfn",
    "dialog",
    "div",
    "dl",
    "dt",
    "em",
    "embed",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hgroup",
    "hr",
    "html",
    "i",
    "iframe",
    "img",
    "input",
    "ins",
    "kbd",
    "label",
    "legend",
    "li",
    "link",
    "main",
    "map",
    "mark",
    "math",
    "menu",
    "meta",
    "meter",
    "nav",
    "noscript",
    "object",
    "ol",
    "optgroup",
    "option",
    "output",
    "p",
    "picture",
    "pre",
    "progress",
    "q",
    "rp",
    "rt",
    "ruby",
    "s",
    "samp",
    "script",
    "search",
    "section",
    "select",
    "slot",
    "small",
    "source",
    "span",
    "strong",
    "style",
    "sub",
    "summary",
    "sup",
    "svg",
    "table",
    "tbody",
    "td",
    "template",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "time",
    "title",
    "tr",
    "track",
    "u",
    "ul",
    "var",
    "video",
    "wbr",
];

/// True when `name` (any case) is an HTML element name.
pub fn is_html_element(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    HTML_ELEMENTS.binary_search(&lower.as_str()).is_ok()
}

/// Full Content-Type header value for a rendered `data` body, e.g.
/// `"application/json; charset=utf-8"`. See the module documentation for the rules.
pub fn content_type(body: &str) -> &'static str {
    let t = body
        .trim_start_matches('\u{feff}')
        .trim_matches(|c: char| c.is_ascii_whitespace());
    // (1) JSON
    if (t.starts_with('{') || t.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
    {
        return JSON;
    }
    if !t.starts_with('<') {
        return TEXT; // (6): rules 2–5 all need a leading `<`
    }
    // (2) XML with a prolog
    let root = xml::well_formed_root(t);
    if root.is_some()
        && starts_with_ci(t, "<?xml")
        && t[5..].starts_with(|c: char| c.is_ascii_whitespace())
    {
        return XML;
    }
    // (3) an HTML document
    if starts_with_ci(t, "<!doctype html")
        && t[14..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>')
        || starts_with_ci(t, "<html")
            && t[5..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
    {
        return HTML;
    }
    // (4) XML whose root is not an HTML element
    if let Some(root) = root {
        if !is_html_element(&root) {
            return XML;
        }
    }
    // (5)
    HTML
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_list_is_sorted_and_lower_case() {
        assert!(HTML_ELEMENTS.windows(2).all(|w| w[0] < w[1]));
        assert!(HTML_ELEMENTS.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())));
        assert!(is_html_element("DIV") && is_html_element("h1") && !is_html_element("order"));
    }

    #[test]
    fn rule1_json() {
        assert_eq!(content_type(r#"{"a": 1}"#), JSON);
        assert_eq!(content_type("  [1, 2]\n"), JSON);
        assert_eq!(content_type("\u{feff}{}"), JSON);
        // starts like JSON but is not: falls through
        assert_eq!(content_type("{not json"), TEXT);
        assert_eq!(content_type("[1, 2"), TEXT);
        // JSON scalars are not rule 1
        assert_eq!(content_type("42"), TEXT);
        assert_eq!(content_type("\"s\""), TEXT);
    }

    #[test]
    fn rule2_xml_with_prolog() {
        assert_eq!(
            content_type("<?xml version=\"1.0\"?><div>x</div>"),
            XML,
            "a prolog makes even an HTML-named root XML"
        );
        assert_eq!(content_type("<?XML version=\"1.0\"?><a/>"), XML);
        // prolog but malformed: rule 5
        assert_eq!(content_type("<?xml version=\"1.0\"?><a>"), HTML);
        // DOCTYPE is never XML
        assert_eq!(
            content_type("<?xml version=\"1.0\"?><!DOCTYPE a><a/>"),
            HTML
        );
        // `<?xml-stylesheet` is not a prolog; the document is not well-formed without a root
        assert_eq!(content_type("<?xml-stylesheet href=\"a\"?>"), HTML);
    }

    #[test]
    fn rule3_html_documents() {
        assert_eq!(content_type("<!DOCTYPE html><p>x"), HTML);
        assert_eq!(content_type("<!doctype html>\n<html></html>"), HTML);
        assert_eq!(content_type("<html><body>ok</body></html>"), HTML);
        assert_eq!(content_type("<HTML lang=\"en\">"), HTML);
        // `<htmlx>` is not an html root; well-formed with a non-HTML name: XML
        assert_eq!(content_type("<htmlx>1</htmlx>"), XML);
    }

    #[test]
    fn rule4_xml_without_prolog() {
        assert_eq!(content_type("<order><id>1</id></order>"), XML);
        assert_eq!(content_type("  <order/>  "), XML);
        assert_eq!(content_type("<soap:Envelope xmlns:soap=\"x\"/>"), XML);
        // HTML element roots: rule 5
        assert_eq!(content_type("<div>hi</div>"), HTML);
        assert_eq!(content_type("<DIV>hi</DIV>"), HTML);
        assert_eq!(content_type("<p>a</p>"), HTML);
        assert_eq!(content_type("<table><tr><td>1</td></tr></table>"), HTML);
        assert_eq!(
            content_type("<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            HTML
        );
    }

    #[test]
    fn rule5_and_rule6() {
        assert_eq!(content_type("<b>bold</i>"), HTML);
        assert_eq!(content_type("<order><id>1</order>"), HTML);
        assert_eq!(content_type("<"), HTML);
        assert_eq!(content_type("hello <b>x</b>"), TEXT);
        assert_eq!(content_type(""), TEXT);
        assert_eq!(content_type("   "), TEXT);
        assert_eq!(content_type("a,b\n1,2"), TEXT);
    }

    #[test]
    fn every_answer_has_utf8_charset() {
        for ct in [JSON, XML, HTML, TEXT] {
            assert!(ct.ends_with("; charset=utf-8"));
        }
    }
}
