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
    // (`trim_ascii` trims the bytes `char::is_ascii_whitespace` names, without decoding chars)
    let t = body.trim_start_matches('\u{feff}').trim_ascii();
    // (1) JSON
    if (t.starts_with('{') || t.starts_with('[')) && is_json(t) {
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

/// Whether `serde_json::from_str::<serde::de::IgnoredAny>(t)` accepts `t`: the same grammar
/// as serde_json's `ignore_value` (strings: any byte but `"`, `\\` and controls below 0x20,
/// escapes `\\ " / b f n r t` and `\\u` with four hex digits, surrogates not paired; numbers
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; whitespace space, tab, CR, LF; nothing
/// after the value), checked without the deserializer's machinery. Nesting deeper than
/// [`JSON_DEPTH`] is left to serde_json itself. A test compares the two on generated input.
fn is_json(t: &str) -> bool {
    json_shape(t.as_bytes())
        .unwrap_or_else(|| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok())
}

/// Nesting that [`json_shape`] follows itself.
const JSON_DEPTH: usize = 64;

/// [`is_json`]'s check; `None` when the nesting goes deeper than [`JSON_DEPTH`].
fn json_shape(s: &[u8]) -> Option<bool> {
    let mut frames = [0u8; JSON_DEPTH];
    let mut depth = 0;
    let mut i = 0;
    'value: loop {
        i = json_ws(s, i);
        let Some(&c) = s.get(i) else {
            return Some(false);
        };
        let end = match c {
            b'{' | b'[' => {
                if depth == JSON_DEPTH {
                    return None;
                }
                frames[depth] = c;
                depth += 1;
                i = json_ws(s, i + 1);
                match (c, s.get(i)) {
                    (b'[', Some(b']')) | (b'{', Some(b'}')) => {
                        depth -= 1;
                        Some(i + 1)
                    }
                    (b'{', _) => match json_key(s, i) {
                        Some(j) => {
                            i = j;
                            continue 'value;
                        }
                        None => None,
                    },
                    _ => continue 'value,
                }
            }
            b'"' => json_string(s, i + 1),
            b'n' => s[i..].starts_with(b"null").then_some(i + 4),
            b't' => s[i..].starts_with(b"true").then_some(i + 4),
            b'f' => s[i..].starts_with(b"false").then_some(i + 5),
            b'-' => json_number(s, i + 1),
            b'0'..=b'9' => json_number(s, i),
            _ => None,
        };
        let Some(mut at) = end else {
            return Some(false);
        };
        // After a value: the end of the text, or a comma or the closer of the enclosing frame.
        loop {
            at = json_ws(s, at);
            if depth == 0 {
                return Some(at == s.len());
            }
            let frame = frames[depth - 1];
            match (frame, s.get(at)) {
                (b'[', Some(b',')) => {
                    i = at + 1;
                    continue 'value;
                }
                (b'{', Some(b',')) => match json_key(s, at + 1) {
                    Some(j) => {
                        i = j;
                        continue 'value;
                    }
                    None => return Some(false),
                },
                (b'[', Some(b']')) | (b'{', Some(b'}')) => {
                    depth -= 1;
                    at += 1;
                }
                _ => return Some(false),
            }
        }
    }
}

fn json_ws(s: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = s.get(i) {
        i += 1;
    }
    i
}

/// `"key"` then `:` from `i` (whitespace allowed around): the index after the colon.
fn json_key(s: &[u8], i: usize) -> Option<usize> {
    let i = json_ws(s, i);
    if s.get(i) != Some(&b'"') {
        return None;
    }
    let i = json_ws(s, json_string(s, i + 1)?);
    (s.get(i) == Some(&b':')).then_some(i + 1)
}

/// The rest of a string whose opening quote is before `i`: the index after the closing quote.
fn json_string(s: &[u8], mut i: usize) -> Option<usize> {
    loop {
        // Plain bytes skipped; then the quote, the escape or the control byte.
        i = string_stop(s, i)?;
        match s[i] {
            b'"' => return Some(i + 1),
            b'\\' => match *s.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    let hex = s.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            },
            // a control byte
            _ => return None,
        }
    }
}

/// Where the first `"`, `\\` or control byte (below 0x20) at or after `i` is, eight bytes at a
/// time (src/swar.rs: JSON strings are short, and a byte loop's per-call cost is most of theirs).
fn string_stop(s: &[u8], i: usize) -> Option<usize> {
    use crate::swar::{below, eq, find};
    find(
        s,
        i,
        |x| eq(x, b'"') | eq(x, b'\\') | below(x, 0x20),
        |b| b == b'"' || b == b'\\' || b < 0x20,
    )
}

/// A number from its first digit at `i` (after any `-`): the index after it.
fn json_number(s: &[u8], mut i: usize) -> Option<usize> {
    let digits = |s: &[u8], mut i: usize| {
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    match *s.get(i)? {
        b'0' => {
            i += 1;
            if s.get(i).is_some_and(u8::is_ascii_digit) {
                return None;
            }
        }
        b'1'..=b'9' => i = digits(s, i + 1),
        _ => return None,
    }
    if s.get(i) == Some(&b'.') {
        let j = digits(s, i + 1);
        if j == i + 1 {
            return None;
        }
        i = j;
    }
    if let Some(b'e' | b'E') = s.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = s.get(i) {
            i += 1;
        }
        let j = digits(s, i);
        if j == i {
            return None;
        }
        i = j;
    }
    Some(i)
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_stop_finds_the_first_quote_backslash_or_control_byte() {
        crate::swar::tests::agrees_with_a_byte_loop(
            &[
                b'"', b'\\', 0x1f, 0x20, 0, 0x7f, 0xff, b'a', 0x21, 0xa2, 0xdc, 0x5d,
            ],
            300,
            string_stop,
            |b| b == b'"' || b == b'\\' || b < 0x20,
        );
    }

    fn serde_says(t: &str) -> bool {
        serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
    }

    #[test]
    fn json_check_agrees_with_serde_json() {
        let fixed = [
            "{}",
            "[]",
            "{ }",
            "[ ]",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\" : 1 , \"b\":[true,false,null]}",
            "{\"a\"}",
            "{\"a\":}",
            "{1:2}",
            "{\"a\":1 \"b\":2}",
            "[1 2]",
            "[01]",
            "[-0]",
            "[-01]",
            "[-]",
            "[1.]",
            "[1.5]",
            "[.5]",
            "[1e5]",
            "[1E+5]",
            "[1e-]",
            "[1e]",
            "[-1.5e-3]",
            "[1.5e3.2]",
            "[nul]",
            "[nulll]",
            "[null ]",
            "[truefalse]",
            "[True]",
            "[\"\\u00e9\"]",
            "[\"\\u00g9\"]",
            "[\"\\ud800\"]",
            "[\"\\u12\"]",
            "[\"\\x\"]",
            "[\"\\/\"]",
            "[\"a\tb\"]",
            "[\"a\u{7f}b\"]",
            "[\"é\u{1F600}\"]",
            "[\"unterminated]",
            "{\"a\":1}}",
            "[[]]]",
            "[[[]]",
            "[] x",
            "[]\n\t\r ",
            "[\u{a0}1]",
            "[1]\u{0}",
            "{\"a\":{\"b\":{\"c\":[1,{\"d\":\"e\"}]}}}",
            "[\"\\\"\"]",
            "{\"status\": \"received\", \"user\": \"ann\", \"ref\": \"A-1\", \"method\": \"GET\"}",
        ];
        for t in fixed {
            assert_eq!(is_json(t), serde_says(t), "{t:?}");
            assert_eq!(json_shape(t.as_bytes()), Some(serde_says(t)), "{t:?}");
        }
        // deep nesting: past JSON_DEPTH serde_json decides (it has no limit in this mode)
        for depth in [63, 64, 65, 200, 5000] {
            let t = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(is_json(&t), serde_says(&t), "{depth}");
            let t = format!("{}1{}", "[".repeat(depth), "]".repeat(depth - 1));
            assert_eq!(is_json(&t), serde_says(&t), "{depth}");
            let t = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            assert_eq!(is_json(&t), serde_says(&t), "{depth}");
        }
        // generated: token soups, and valid documents with one byte changed, dropped or added
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(10);
        let atoms = [
            "{", "}", "[", "]", ",", ":", "\"", "\"k\"", "\\", "\\u", "\\n", "0", "1", "9", "-",
            ".", "e", "E", "+", " ", "\n", "\t", "\r", "\u{1}", "a", "f", "null", "true", "false",
            "é", "\u{2028}", "00", "1.5", "\"v\"",
        ];
        let mut agree = 0;
        for _ in 0..40_000 {
            let n = rng.gen_range(1..12);
            let mut t = String::from(if rng.gen_bool(0.5) { "{" } else { "[" });
            for _ in 0..n {
                t.push_str(atoms[rng.gen_range(0..atoms.len())]);
            }
            assert_eq!(is_json(&t), serde_says(&t), "{t:?}");
            agree += usize::from(serde_says(&t));
        }
        let docs = [
            r#"{"status": "received", "user": "ann", "ref": "A-1", "n": [1, -2.5e3, 0, true, null, {}]}"#,
            r#"[{"a": "é
"x"", "b": [[], [[]], {"c": -0.0}]}, 12345678901234567890, 1E-7]"#,
        ];
        for _ in 0..40_000 {
            let doc = docs[rng.gen_range(0..docs.len())].as_bytes();
            let mut b = doc.to_vec();
            let at = rng.gen_range(0..b.len());
            match rng.gen_range(0..3) {
                0 => b[at] = b" \"\\{}[],:0123456789-.eEnultrfsaxu\t\n\x01"[rng.gen_range(0..34)],
                1 => {
                    b.remove(at);
                }
                _ => b.insert(at, b"\"\\{}[],:0-.e \x1f"[rng.gen_range(0..14)]),
            }
            let Ok(t) = String::from_utf8(b) else {
                continue;
            };
            assert_eq!(is_json(&t), serde_says(&t), "{t:?}");
            agree += usize::from(serde_says(&t));
        }
        assert!(agree > 1_000, "some generated texts are JSON ({agree})");
    }

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
