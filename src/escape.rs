//! Output escaping (docs/language.md §4): the render-wide [`Escape`] mode, the strategies of
//! Twig's `escape` filter ([`Strategy`]) and their functions, and a non-allocating integer
//! writer. A leaf: used by the compiler, the VM and the builtins, imports none of them.

use std::fmt::Write;

/// Output escaping strategy of a render (docs/language.md §4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Escape {
    /// Print values as they are (every field but `return_html`).
    #[default]
    None,
    /// HTML-escape `{{ }}` output unless it is marked safe.
    Html,
}

/// An escaping strategy (docs/language.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Html,
    HtmlAttr,
    Js,
    Css,
    Url,
}

impl Strategy {
    pub fn from_name(n: &str) -> Option<Strategy> {
        Some(match n {
            "html" => Strategy::Html,
            "html_attr" => Strategy::HtmlAttr,
            "js" => Strategy::Js,
            "css" => Strategy::Css,
            "url" => Strategy::Url,
            _ => return None,
        })
    }
}

/// Appends `i` in decimal without going through `fmt` (itoa: two digits per step from a
/// table, one `push_str`).
pub fn write_int(out: &mut String, i: i64) {
    out.push_str(itoa::Buffer::new().format(i));
}

/// Appends `s` escaped with `strategy`.
pub fn escape_into(out: &mut String, s: &str, strategy: Strategy) {
    match strategy {
        Strategy::Html => html(out, s),
        Strategy::HtmlAttr => html_attr(out, s),
        Strategy::Js => js(out, s),
        Strategy::Css => css(out, s),
        Strategy::Url => url(out, s),
    }
}

/// `s` escaped with `strategy`.
pub fn escape(s: &str, strategy: Strategy) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    escape_into(&mut out, s, strategy);
    out
}

fn html(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#039;",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        out.push_str(rep);
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

fn html_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, ',' | '.' | '-' | '_') {
            out.push(c);
            continue;
        }
        match c {
            '"' => out.push_str("&quot;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if ((c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}' => {
                out.push_str("&#xFFFD;")
            }
            c if c.is_ascii() => {
                let _ = write!(out, "&#x{:02X};", c as u32);
            }
            c => {
                let _ = write!(out, "&#x{:04X};", c as u32);
            }
        }
    }
}

/// Twig 3's `js` strategy: short escapes for `\\`, `/` and a few controls, `\uHHHH`
/// (UTF-16, surrogate pairs included) for every other character outside `[a-zA-Z0-9,._]`.
fn js(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, ',' | '.' | '_') {
            out.push(c);
            continue;
        }
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            c => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04X}", u);
                }
            }
        }
    }
}

fn css(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            let _ = write!(out, "\\{:X} ", c as u32);
        }
    }
}

fn url(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{:02X}", b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies() {
        assert_eq!(
            escape("<a href='x'>&\"", Strategy::Html),
            "&lt;a href=&#039;x&#039;&gt;&amp;&quot;"
        );
        assert_eq!(escape("a b", Strategy::Url), "a%20b");
        assert_eq!(escape("a\"b\né", Strategy::Js), "a\\u0022b\\n\\u00E9");
        assert_eq!(escape("a b", Strategy::HtmlAttr), "a&#x20;b");
        assert_eq!(escape("é\u{7f}", Strategy::HtmlAttr), "&#x00E9;&#xFFFD;");
        assert_eq!(escape("a;", Strategy::Css), "a\\3B ");
        let mut s = String::new();
        write_int(&mut s, i64::MIN);
        write_int(&mut s, 0);
        write_int(&mut s, 42);
        assert_eq!(s, "-9223372036854775808042");
    }
}
