//! Catalogue string filters and text functions (docs/catalogue.md): `capitalize`,
//! `format`, `nl2br`, `replace`, `split`, `striptags`, `title`, `trim`, `truncate`,
//! `url_encode`; functions `truncate`, `htmlToText`, `extractEmails`.
//!
//! A `null` input reads as `""`; numbers are printed first. Results are plain
//! strings (escaped under autoescape), except `nl2br`, which escapes a plain input
//! and returns a safe string. `sprintf` lives in the inner module `sprintf`.

use super::typed::{convert_value, type_error, ArgType, Rest};
use super::{Registry, State};
use crate::error::{Error, ErrorKind};
use crate::value::{Map, Value};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::borrow::Cow;
use std::sync::OnceLock;

/// Registers this module's builtins.
pub fn register(r: &mut Registry) {
    r.declare_filter("capitalize", &[], |st: &mut dyn State, s: Cow<str>| {
        st.check_size(s.len())?;
        if s.is_ascii() {
            return Ok(ascii_mapped(&s, |i, b| cased(b[i], i == 0)));
        }
        let out = capitalize_chars(&s);
        st.check_size(out.len())?;
        Ok::<_, Error>(Value::str(out))
    });
    r.declare_filter(
        "format",
        &["values..."],
        |st: &mut dyn State, fmt: Cow<str>, Rest(values): Rest| {
            let out = sprintf::sprintf(&fmt, values)?;
            st.check_size(out.len())?;
            Ok::<_, Error>(Value::str(out))
        },
    );
    r.declare_filter("nl2br", &[], |st: &mut dyn State, v: &Value| {
        let text = convert_value::<Cow<str>>("nl2br", "the input", v)?;
        let escaped = if v.is_safe() {
            text.into_owned()
        } else {
            html_special_chars(&text)
        };
        let out = nl2br(&escaped);
        st.check_size(out.len())?;
        Ok::<_, Error>(Value::safe(out))
    });
    r.declare_filter("replace", &["from|map"], replace);
    r.declare_filter(
        "split",
        &["delimiter|sep", "limit?"],
        |st: &mut dyn State, s: Cow<str>, sep: Cow<str>, limit: Option<i64>| {
            // a generated list: at most `max_range` items, one unit of fuel each
            let parts = if sep.is_empty() {
                let size = usize::try_from(limit.unwrap_or(1).max(1)).unwrap_or(usize::MAX);
                s.chars().count().div_ceil(size)
            } else {
                s.matches(&*sep).count() + 1
            };
            let max = st.limits().max_range;
            if parts > max {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!(
                        "split: the result would have {parts} items, more than the limit of {max}"
                    ),
                ));
            }
            st.fuel(parts as u64)?;
            Ok(split(&s, &sep, limit)
                .into_iter()
                .map(Value::from)
                .collect::<Value>())
        },
    );
    r.declare_filter(
        "striptags",
        &["allowable_tags|allowed?"],
        |_: &mut dyn State, s: Cow<str>, allowed: Cow<str>| Value::str(striptags(&s, &allowed)),
    );
    r.declare_filter("title", &[], |st: &mut dyn State, s: Cow<str>| {
        st.check_size(s.len())?;
        if s.is_ascii() {
            return Ok(ascii_mapped(&s, |i, b| {
                cased(b[i], starts_ascii_word(i, b))
            }));
        }
        let out = title_chars(&s);
        st.check_size(out.len())?;
        Ok::<_, Error>(Value::str(out))
    });
    r.declare_filter("trim", &["character_mask|chars?", "side?"], trim);
    r.declare_filter("spaceless", &[], |st: &mut dyn State, s: Cow<str>| {
        st.fuel(s.len() as u64 / 64)?;
        Ok::<_, Error>(Value::safe(spaceless(&s)))
    });
    r.declare_filter("truncate", &["length", "suffix?"], truncate_builtin);
    r.declare_filter("url_encode", &[], |st: &mut dyn State, v: &Value| {
        let out = url_encode(v)?;
        st.check_size(out.len())?;
        Ok::<_, Error>(Value::str(out))
    });
    r.declare_function("truncate", &["text", "length", "suffix?"], truncate_builtin);
    r.declare_function("htmlToText", &["html"], |_: &mut dyn State, s: Cow<str>| {
        Value::str(html_to_text(&s))
    });
    r.declare_function(
        "extractEmails",
        &["text"],
        |st: &mut dyn State, s: Cow<str>| {
            // the scan costs about four times a plain copy: pay for it beforehand
            st.fuel(s.len() as u64 / 64)?;
            let found = extract_emails(&s)?;
            let max = st.limits().max_range;
            if found.len() > max {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!(
                        "extractEmails: found {} addresses, more than the limit of {max}",
                        found.len()
                    ),
                ));
            }
            st.fuel(found.len() as u64)?;
            Ok(found.into_iter().map(Value::from).collect::<Value>())
        },
    );
}

/// Twig's `spaceless`: trims, then removes whitespace between HTML tags (`>  <`).
pub(crate) fn spaceless(s: &str) -> String {
    let t = s.trim();
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(i) = rest.find('>') {
        out.push_str(&rest[..=i]);
        let after = &rest[i + 1..];
        let trimmed = after.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
        rest = if trimmed.len() < after.len() && trimmed.starts_with('<') {
            trimmed
        } else {
            after
        };
    }
    out.push_str(rest);
    out
}

/// `capitalize` (first character upper case, the rest lower case) by Unicode case mapping;
/// ASCII text takes `ascii_mapped` with the same result.
fn capitalize_chars(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c
            .to_uppercase()
            .chain(chars.as_str().to_lowercase().chars())
            .collect(),
        None => String::new(),
    }
}

/// `title` by Unicode case mapping: upper-cases the first letter of every word and lower-cases
/// the rest; a word continues across letters, digits and apostrophes (`o'neil` → `O'neil`,
/// `1st` → `1st`). ASCII text takes `ascii_mapped` with the same result.
fn title_chars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if in_word {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        in_word = c.is_alphanumeric() || c == '\'' || c == '’';
    }
    out
}

/// Whether byte `i` of ASCII text `b` starts a word for `title`: `title_chars`'s rule on
/// bytes (ASCII letters, digits and `'` continue a word).
fn starts_ascii_word(i: usize, b: &[u8]) -> bool {
    i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'\'')
}

/// An ASCII byte upper-cased or lower-cased.
fn cased(c: u8, upper: bool) -> u8 {
    if upper {
        c.to_ascii_uppercase()
    } else {
        c.to_ascii_lowercase()
    }
}

/// The string of ASCII text `s` with byte `i` replaced by `f(i, bytes)` (ASCII to ASCII), in
/// one allocation: short texts are mapped on the stack and copied once into the value.
pub(crate) fn ascii_mapped(s: &str, f: impl Fn(usize, &[u8]) -> u8) -> Value {
    let b = s.as_bytes();
    let mut stack = [0u8; 64];
    let mut heap = Vec::new();
    let out = if b.len() <= stack.len() {
        &mut stack[..b.len()]
    } else {
        heap.resize(b.len(), 0);
        &mut heap[..]
    };
    for (i, o) in out.iter_mut().enumerate() {
        *o = f(i, b);
    }
    match std::str::from_utf8(out) {
        Ok(t) => Value::str(t),
        Err(_) => Value::str(String::from_utf8_lossy(out).into_owned()),
    }
}

/// PHP `htmlspecialchars` (as Twig's `escape("html")`): `& < > " '`.
pub(crate) fn html_special_chars(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            c => out.push(c),
        }
    }
    out
}

/// PHP `nl2br`: `<br />` before every `\r\n`, `\n\r`, `\n` or `\r`.
pub(crate) fn nl2br(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' || c == '\r' {
            out.push_str("<br />");
            out.push(c);
            let pair = if c == '\n' { '\r' } else { '\n' };
            if chars.peek() == Some(&pair) {
                out.push(pair);
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `from` map of `replace`.
struct Pairs<'a>(&'a Map);

impl<'a> ArgType<'a> for Pairs<'_> {
    type Output = Pairs<'a>;
    fn from_arg(v: &'a Value) -> Result<Pairs<'a>, &'static str> {
        v.as_map()
            .map(Pairs)
            .ok_or("a map of search => replacement")
    }
    fn type_name() -> &'static str {
        "map"
    }
}

fn replace(state: &mut dyn State, s: Cow<str>, Pairs(from): Pairs) -> Result<Value, Error> {
    let pairs = from
        .iter()
        .map(|(k, v)| match v {
            Value::List(_) | Value::Map(_) | Value::Callable(_) => {
                Err(type_error("replace", "each replacement", "a string", v))
            }
            other => Ok((k.to_string(), other.to_output())),
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let out = strtr(&s, &pairs, state)?;
    Ok(Value::str(out))
}

/// PHP `strtr` with pairs: at each position the longest matching key wins and the
/// replaced text is never searched again. Empty keys are ignored.
fn strtr(s: &str, pairs: &[(String, String)], state: &mut dyn State) -> Result<String, Error> {
    let mut pairs: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| !k.is_empty()).collect();
    pairs.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    if pairs.is_empty() {
        return Ok(s.to_string());
    }
    // Each position of `s` is tried against every key: pay for that product.
    state.fuel((s.len() as u64).saturating_mul(pairs.len() as u64) / 1024)?;
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        match pairs.iter().find(|(k, _)| rest.starts_with(k.as_str())) {
            Some((k, v)) => {
                out.push_str(v);
                state.check_size(out.len())?;
                rest = rest.get(k.len()..).unwrap_or("");
            }
            None => {
                out.push(c);
                rest = rest.get(c.len_utf8()..).unwrap_or("");
            }
        }
    }
    Ok(out)
}

/// Twig `split`: PHP `explode` with its limit rules (positive: at most `limit`
/// parts, the last holding the rest; negative: all but the last `-limit`; 0 is 1);
/// an empty delimiter splits into chunks of `limit` characters (default 1).
pub(crate) fn split(s: &str, sep: &str, limit: Option<i64>) -> Vec<String> {
    if sep.is_empty() {
        let size = usize::try_from(limit.unwrap_or(1).max(1)).unwrap_or(usize::MAX);
        let chars: Vec<char> = s.chars().collect();
        return chars.chunks(size).map(|c| c.iter().collect()).collect();
    }
    match limit {
        None => s.split(sep).map(String::from).collect(),
        Some(l) if l >= 0 => {
            let n = usize::try_from(l.max(1)).unwrap_or(usize::MAX);
            s.splitn(n, sep).map(String::from).collect()
        }
        Some(l) => {
            let parts: Vec<&str> = s.split(sep).collect();
            let drop = usize::try_from(l.unsigned_abs()).unwrap_or(usize::MAX);
            let keep = parts.len().saturating_sub(drop);
            parts.into_iter().take(keep).map(String::from).collect()
        }
    }
}

/// PHP `strip_tags`: removes tags (quotes inside a tag are honoured), comments and
/// `<?…?>`; a `<` not followed by a letter, `/`, `!` or `?` is text. `allowed`
/// (`"<b><i>"`) lists tags to keep.
pub(crate) fn striptags(s: &str, allowed: &str) -> String {
    let allowed: std::collections::HashSet<String> = allowed
        .split(['<', '>'])
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('<') {
        out.push_str(rest.get(..pos).unwrap_or(""));
        let tail = rest.get(pos..).unwrap_or("");
        let next = tail.chars().nth(1);
        if tail.starts_with("<!--") {
            rest = tail
                .find("-->")
                .and_then(|e| tail.get(e + 3..))
                .unwrap_or("");
            continue;
        }
        if !next.is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?')) {
            out.push('<');
            rest = tail.get(1..).unwrap_or("");
            continue;
        }
        let end = tag_end(tail);
        let tag = tail.get(..end).unwrap_or(tail);
        if !allowed.is_empty() && allowed.contains(&tag_name(tag)) {
            out.push_str(tag);
        }
        rest = tail.get(end..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Byte length of the tag starting at `<` (through `>`, quotes honoured), or the whole rest.
fn tag_end(tail: &str) -> usize {
    let mut quote: Option<char> = None;
    for (i, c) in tail.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if i > 1 => quote = Some(c),
            (None, '>') => return i + 1,
            _ => {}
        }
    }
    tail.len()
}

/// Lower-case element name of a tag text like `</B class="x">`.
fn tag_name(tag: &str) -> String {
    tag.trim_start_matches('<')
        .trim_start_matches('/')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// PHP's default `trim` characters.
fn trim_default(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\0' | '\x0B')
}

/// PHP's character mask (`php_charmask`), as sorted, merged character ranges: `a..z` is a
/// range; a `..` without a valid range around it (`a..`, `..a`, `z..a`) adds its characters
/// one by one except the first dot, as PHP does after its warning.
fn char_mask(mask: &str) -> Vec<(char, char)> {
    let m: Vec<char> = mask.chars().collect();
    let mut ranges = Vec::with_capacity(m.len());
    let mut i = 0;
    while i < m.len() {
        let c = m[i];
        if i + 3 < m.len() && m[i + 1] == '.' && m[i + 2] == '.' && m[i + 3] >= c {
            ranges.push((c, m[i + 3]));
            i += 4;
            continue;
        }
        if c == '.' && m.get(i + 1) == Some(&'.') {
            i += 1;
            continue;
        }
        ranges.push((c, c));
        i += 1;
    }
    ranges.sort_unstable();
    let mut merged: Vec<(char, char)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// Whether `c` lies in one of the sorted, disjoint `ranges`.
fn in_mask(ranges: &[(char, char)], c: char) -> bool {
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `s` trimmed of the characters `f` accepts on `side` (`both`, `left`, `right`).
fn trim_side<'a>(s: &'a str, side: &str, f: impl Fn(char) -> bool) -> Result<&'a str, Error> {
    Ok(match side {
        "both" => s.trim_matches(f),
        "left" => s.trim_start_matches(f),
        "right" => s.trim_end_matches(f),
        other => {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("trim: side must be \"both\", \"left\" or \"right\", got \"{other}\""),
            ))
        }
    })
}

fn trim(
    _: &mut dyn State,
    input: &Value,
    mask: Option<Cow<str>>,
    side: Option<Cow<str>>,
) -> Result<Value, Error> {
    let s = convert_value::<Cow<str>>("trim", "the input", input)?;
    // Trimming safe markup with the default characters keeps it safe (as Twig).
    let keep_safe = input.is_safe() && mask.is_none();
    let side = side.as_deref().unwrap_or("both");
    let out = match mask.as_deref() {
        None => trim_side(&s, side, trim_default)?,
        Some(mask) => {
            let ranges = char_mask(mask);
            trim_side(&s, side, |c| in_mask(&ranges, c))?
        }
    };
    // nothing trimmed: the input as it came (a string keeps its allocation; safe markup only
    // when it stays safe)
    let unchanged = match input {
        Value::Str(_) => true,
        Value::Safe(_) => keep_safe,
        _ => false,
    };
    if unchanged && out.len() == s.len() {
        return Ok(input.clone());
    }
    if keep_safe {
        return Ok(Value::safe(out));
    }
    Ok(Value::str(out))
}

/// `truncate` filter and function.
fn truncate_builtin(
    _: &mut dyn State,
    s: Cow<str>,
    length: Option<i64>,
    suffix: Option<Cow<str>>,
) -> Result<Value, Error> {
    let name = "truncate";
    let length = length.ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{name}: length is required"),
        )
    })?;
    let length = usize::try_from(length).map_err(|_| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{name}: length must not be negative, got {length}"),
        )
    })?;
    let suffix = suffix.unwrap_or(Cow::Borrowed("..."));
    Ok(Value::str(truncate(&s, length, &suffix)))
}

/// The first `length` characters of `s`, plus `suffix` when something was cut.
pub(crate) fn truncate(s: &str, length: usize, suffix: &str) -> String {
    match s.char_indices().nth(length) {
        Some((i, _)) => format!("{}{suffix}", s.get(..i).unwrap_or(s)),
        None => s.to_string(),
    }
}

/// RFC 3986 unreserved characters stay; everything else is percent-encoded.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// PHP `rawurlencode`.
pub(crate) fn rawurlencode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// Twig `url_encode`: a string is percent-encoded (RFC 3986); a list or map becomes a
/// query string as PHP `http_build_query` (nested keys `a[b]=…`, `null` skipped,
/// booleans as `1`/`0`).
pub(crate) fn url_encode(v: &Value) -> Result<String, Error> {
    match v {
        Value::List(_) | Value::Map(_) => {
            let mut parts = Vec::new();
            build_query(None, v, &mut parts, 0)?;
            Ok(parts.join("&"))
        }
        Value::Callable(_) => Err(type_error(
            "url_encode",
            "the input",
            "a string, a list or a map",
            v,
        )),
        other => Ok(rawurlencode(&other.to_output())),
    }
}

fn build_query(
    prefix: Option<&str>,
    v: &Value,
    out: &mut Vec<String>,
    depth: usize,
) -> Result<(), Error> {
    if depth > 64 {
        return Err(Error::new(
            ErrorKind::Limit,
            "url_encode: the value is nested too deeply",
        ));
    }
    let items: Vec<(String, &Value)> = match v {
        Value::List(l) => l
            .iter()
            .enumerate()
            .map(|(i, x)| (i.to_string(), x))
            .collect(),
        Value::Map(m) => m.iter().map(|(k, x)| (k.to_string(), x)).collect(),
        _ => Vec::new(),
    };
    for (k, item) in items {
        let key = match prefix {
            None => k,
            Some(p) => format!("{p}[{k}]"),
        };
        match item {
            Value::Undefined | Value::Null | Value::Callable(_) => {}
            Value::List(_) | Value::Map(_) => build_query(Some(&key), item, out, depth + 1)?,
            Value::Bool(b) => out.push(format!("{}={}", rawurlencode(&key), u8::from(*b))),
            other => out.push(format!(
                "{}={}",
                rawurlencode(&key),
                rawurlencode(&other.to_output())
            )),
        }
    }
    Ok(())
}

/// Text of an HTML fragment: tags dropped, `script`/`style` content dropped,
/// whitespace collapsed as a browser does, `<br>` and the end of block elements
/// become newlines, entities decoded, lines trimmed, runs of blank lines collapsed
/// to one.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut raw = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(pos) = rest.find('<') {
        if skip_until.is_none() {
            push_collapsed(&mut raw, rest.get(..pos).unwrap_or(""));
        }
        let tail = rest.get(pos..).unwrap_or("");
        if tail.starts_with("<!--") {
            rest = tail
                .find("-->")
                .and_then(|e| tail.get(e + 3..))
                .unwrap_or("");
            continue;
        }
        if !tail
            .chars()
            .nth(1)
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'))
        {
            if skip_until.is_none() {
                raw.push('<');
            }
            rest = tail.get(1..).unwrap_or("");
            continue;
        }
        let end = tag_end(tail);
        let tag = tail.get(..end).unwrap_or(tail);
        let closing = tag.starts_with("</");
        let name = tag_name(tag);
        rest = tail.get(end..).unwrap_or("");
        if let Some(until) = skip_until {
            if closing && name == until {
                skip_until = None;
            }
            continue;
        }
        match (name.as_str(), closing) {
            ("script", false) => skip_until = Some("script"),
            ("style", false) => skip_until = Some("style"),
            ("head", false) => skip_until = Some("head"),
            ("br", _) | ("hr", _) => raw.push('\n'),
            (
                "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "ul" | "ol"
                | "table" | "blockquote" | "pre",
                true,
            ) => raw.push('\n'),
            ("p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6", false)
                if !raw.is_empty() && !raw.ends_with('\n') =>
            {
                raw.push('\n')
            }
            _ => {}
        }
    }
    if skip_until.is_none() {
        push_collapsed(&mut raw, rest);
    }
    let decoded = html_escape::decode_html_entities(&raw);
    let mut out: Vec<String> = Vec::new();
    for line in decoded.lines() {
        let line = line.trim_matches(|c: char| c.is_whitespace()).to_string();
        if line.is_empty() && out.last().is_some_and(|l| l.is_empty()) {
            continue;
        }
        out.push(line);
    }
    while out.first().is_some_and(|l| l.is_empty()) {
        out.remove(0);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// Appends text with every run of HTML whitespace collapsed to one space.
fn push_collapsed(out: &mut String, text: &str) {
    for c in text.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0C') {
            if !out.ends_with(' ') && !out.ends_with('\n') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

fn email_regex() -> Result<&'static regex::Regex, Error> {
    static RE: OnceLock<Option<regex::Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(concat!(
            r"[\p{L}\p{N}._%+\-]+@",
            r"[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?",
            r"(?:\.[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?)*",
            r"\.\p{L}{2,}"
        ))
        .ok()
    })
    .as_ref()
    .ok_or_else(|| Error::new(ErrorKind::Runtime, "extractEmails: internal pattern error"))
}

/// E-mail addresses in `text`, in order of appearance, without duplicates
/// (compared case-insensitively; the first spelling is kept).
pub(crate) fn extract_emails(text: &str) -> Result<Vec<String>, Error> {
    let re = email_regex()?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for m in re.find_iter(text) {
        let e = m.as_str().trim_start_matches('.');
        if seen.insert(e.to_lowercase()) {
            out.push(e.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::filters::test_support::{call, j};
    use super::*;

    fn f(name: &str, args: &[Value]) -> String {
        match call("filter", name, args) {
            Ok(v) => v.to_output(),
            Err(e) => format!("ERR {}", e.message()),
        }
    }

    #[test]
    fn ascii_case_paths_agree_with_the_unicode_ones() {
        let all: String = (0u8..128).map(char::from).collect();
        let samples = [
            all.as_str(),
            "o'neil-smith 1st",
            " team7 fc ",
            "HELLO wORLD",
            "a'b'c 9x x9 _a .b",
            "",
        ];
        for s in samples {
            assert_eq!(f("title", &[Value::str(s)]), title_chars(s), "title {s:?}");
            assert_eq!(
                f("capitalize", &[Value::str(s)]),
                capitalize_chars(s),
                "capitalize {s:?}"
            );
            assert_eq!(
                f("upper", &[Value::str(s)]),
                s.to_uppercase(),
                "upper {s:?}"
            );
            assert_eq!(
                f("lower", &[Value::str(s)]),
                s.to_lowercase(),
                "lower {s:?}"
            );
        }
    }

    #[test]
    fn char_masks_follow_php() {
        assert_eq!(char_mask("a..c"), vec![('a', 'c')]);
        assert_eq!(char_mask("c..a"), vec![('.', '.'), ('a', 'a'), ('c', 'c')]);
        assert_eq!(char_mask("a.."), vec![('.', '.'), ('a', 'a')]);
        assert_eq!(char_mask("..a"), vec![('.', '.'), ('a', 'a')]);
        assert_eq!(char_mask("0..9a..fb"), vec![('0', '9'), ('a', 'f')]);
        assert_eq!(char_mask(""), vec![]);
        let m = char_mask("xz-");
        assert!(in_mask(&m, 'x') && in_mask(&m, '-') && !in_mask(&m, 'y'));
    }

    #[test]
    fn case() {
        let f = |name: &str, s: &str| f(name, &[Value::str(s)]);
        assert_eq!(f("capitalize", "jOHN"), "John");
        assert_eq!(f("capitalize", "émile"), "Émile");
        assert_eq!(f("title", "acme ltd"), "Acme Ltd");
        assert_eq!(f("title", "o'neil-smith 1st"), "O'neil-Smith 1st");
    }

    #[test]
    fn strings() {
        assert_eq!(nl2br("a\nb\r\nc"), "a<br />\nb<br />\r\nc");
        assert_eq!(
            call("filter", "nl2br", &[Value::str("<b>\n")])
                .map(|v| v.is_safe())
                .ok(),
            Some(true)
        );
        assert_eq!(f("nl2br", &[Value::str("<b>\n")]), "&lt;b&gt;<br />\n");
        assert_eq!(f("nl2br", &[Value::safe("<b>\n")]), "<b><br />\n");
        assert_eq!(f("replace", &[Value::str("a-b"), j(r#"{"-":" "}"#)]), "a b");
        assert_eq!(
            f(
                "replace",
                &[
                    Value::str("hi all"),
                    j(r#"{"hi":"hello","hello":"x","a":"A"}"#)
                ]
            ),
            "hello All"
        );
        assert!(f("replace", &[Value::str("x"), Value::str("y")])
            .contains("replace: from must be a map of search => replacement, got a string"));
        assert_eq!(split("a,b,c", ",", None), ["a", "b", "c"]);
        assert_eq!(split("a,b,c", ",", Some(2)), ["a", "b,c"]);
        assert_eq!(split("a,b,c", ",", Some(-1)), ["a", "b"]);
        assert_eq!(split("a,b,c", ",", Some(0)), ["a,b,c"]);
        assert_eq!(split("héllo", "", None), ["h", "é", "l", "l", "o"]);
        assert_eq!(split("abcde", "", Some(2)), ["ab", "cd", "e"]);
        assert_eq!(
            striptags("<p>Hi <b>you</b></p><!-- c --> 1 < 2", ""),
            "Hi you 1 < 2"
        );
        assert_eq!(striptags(r#"<a title="x>y">link</a>"#, ""), "link");
        assert_eq!(striptags("<p><b>x</b></p>", "<b>"), "<b>x</b>");
        assert_eq!(f("trim", &[Value::str("  x \n")]), "x");
        assert_eq!(
            f(
                "trim",
                &[Value::str("--x--"), Value::str("-"), Value::str("left")]
            ),
            "x--"
        );
        assert!(f(
            "trim",
            &[Value::str("x"), Value::Null, Value::str("middle")]
        )
        .contains("side must be"));
        assert_eq!(truncate("héllo world", 5, "..."), "héllo...");
        assert_eq!(truncate("short", 5, "..."), "short");
        assert_eq!(
            f("truncate", &[Value::str("abc"), Value::Int(-1)]),
            "ERR truncate: length must not be negative, got -1"
        );
    }

    #[test]
    fn urls() {
        assert_eq!(rawurlencode("a b&c/é~"), "a%20b%26c%2F%C3%A9~");
        assert_eq!(
            url_encode(&j(r#"{"a":1,"b":{"c":"x y","d":[true,null]},"e":"é"}"#))
                .unwrap_or_default(),
            "a=1&b%5Bc%5D=x%20y&b%5Bd%5D%5B0%5D=1&e=%C3%A9"
        );
    }

    #[test]
    fn html_text_and_emails() {
        assert_eq!(
            html_to_text("<p>Hello <b>World</b></p>\n\n<p>Second &amp; third</p><br><br><br><div>x</div><script>bad()</script>"),
            "Hello World\nSecond & third\n\nx"
        );
        assert_eq!(html_to_text("a<br/>b"), "a\nb");
        assert_eq!(
            extract_emails("Mail Ann@x.com, bob@mail.example.org. or ann@X.com; not@x")
                .unwrap_or_default(),
            ["Ann@x.com", "bob@mail.example.org"]
        );
        assert_eq!(
            extract_emails("<emile.dupont+crm@société.fr> / émile@mail.fr").unwrap_or_default(),
            ["emile.dupont+crm@société.fr", "émile@mail.fr"]
        );
    }
}

/// PHP `sprintf` for the `format` filter.
pub(crate) mod sprintf {
    use crate::error::{Error, ErrorKind};
    use crate::value::{Number, Value};

    /// Largest width or precision a conversion accepts; larger is an error, so
    /// `%999999999s` never allocates.
    pub const MAX_WIDTH: usize = 100_000;
    /// PHP caps float precision at 53 digits.
    const MAX_FLOAT_PRECISION: usize = 53;

    fn invalid(msg: String) -> Error {
        Error::new(ErrorKind::InvalidArgument, format!("format: {msg}"))
    }

    /// One parsed conversion: `%[argnum$][flags][width][.precision]spec`.
    #[derive(Default)]
    struct Spec {
        left: bool,
        plus: bool,
        pad: char,
        width: usize,
        precision: Option<usize>,
    }

    /// Formats `fmt` with `args` as PHP `sprintf`: `b c d e E f F g G o s u x X %`,
    /// flags `- + 0 space 'c`, width, `.precision`, positional `%1$s`.
    pub fn sprintf(fmt: &str, args: &[Value]) -> Result<String, Error> {
        let mut out = String::with_capacity(fmt.len());
        let mut chars = fmt.chars().peekable();
        let mut next_arg = 0usize;
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                out.push('%');
                continue;
            }
            // argnum$ or width: read digits, then decide
            let mut spec = Spec {
                pad: ' ',
                ..Spec::default()
            };
            let mut argnum: Option<usize> = None;
            let mut lookahead = chars.clone();
            let digits = read_number(&mut lookahead)?;
            if digits.is_some() && lookahead.peek() == Some(&'$') {
                lookahead.next();
                let n = digits.unwrap_or(0);
                if n == 0 {
                    return Err(invalid("argument number must be greater than zero".into()));
                }
                argnum = Some(n - 1);
                chars = lookahead;
            }
            // flags
            loop {
                match chars.peek() {
                    Some('-') => spec.left = true,
                    Some('+') => spec.plus = true,
                    Some('0') => spec.pad = '0',
                    Some(' ') => spec.pad = ' ',
                    Some('\'') => {
                        chars.next();
                        spec.pad = chars
                            .peek()
                            .copied()
                            .ok_or_else(|| invalid("missing padding character".into()))?;
                    }
                    _ => break,
                }
                chars.next();
            }
            spec.width = read_number(&mut chars)?.unwrap_or(0);
            if chars.peek() == Some(&'.') {
                chars.next();
                spec.precision = Some(read_number(&mut chars)?.unwrap_or(0));
            }
            let conv = chars
                .next()
                .ok_or_else(|| invalid("missing format specifier at end of string".into()))?;
            if !"bcdeEfFgGosuxX".contains(conv) {
                return Err(invalid(format!("unknown format specifier \"{conv}\"")));
            }
            let index = match argnum {
                Some(i) => i,
                None => {
                    next_arg += 1;
                    next_arg - 1
                }
            };
            let value = args.get(index).ok_or_else(|| {
                invalid(format!(
                    "{} arguments are required, {} given",
                    index + 1,
                    args.len()
                ))
            })?;
            convert(&mut out, conv, &spec, value)?;
        }
        Ok(out)
    }

    /// Reads a decimal number, failing when it exceeds [`MAX_WIDTH`].
    fn read_number(
        chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    ) -> Result<Option<usize>, Error> {
        let mut n: Option<usize> = None;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            chars.next();
            let v = n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize);
            if v > MAX_WIDTH {
                return Err(invalid(format!(
                    "width or precision is too large (at most {MAX_WIDTH})"
                )));
            }
            n = Some(v);
        }
        Ok(n)
    }

    /// PHP's cast of an argument: a leading-numeric string counts (`"123abc"` → 123).
    fn int_of(v: &Value) -> i64 {
        match v.as_number().or_else(|| crate::value::to_number(v)) {
            Some(Number::Int(i)) => i,
            Some(Number::Float(f)) if f.is_finite() => f.trunc() as i64,
            _ => 0,
        }
    }

    fn float_of(v: &Value) -> f64 {
        match v.as_number().or_else(|| crate::value::to_number(v)) {
            Some(n) => n.as_f64(),
            None => 0.0,
        }
    }

    /// PHP exponent form: `1.234500e+3`.
    fn exp_form(f: f64, precision: usize, upper: bool) -> String {
        let s = format!("{f:.precision$e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e = if e.starts_with('-') {
            e.to_string()
        } else {
            format!("+{e}")
        };
        let marker = if upper { 'E' } else { 'e' };
        format!("{m}{marker}{e}")
    }

    /// C-style `%g`: the shorter of `%e` and `%f`, trailing zeros removed.
    fn general_form(f: f64, precision: usize, upper: bool) -> String {
        if f == 0.0 || !f.is_finite() {
            return if f.is_finite() {
                "0".into()
            } else {
                f.to_string()
            };
        }
        let p = precision.max(1);
        let exp = f.abs().log10().floor() as i64;
        let trim = |s: String| -> String {
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        };
        if exp < -4 || exp >= p as i64 {
            let s = exp_form(f, p - 1, upper);
            let marker = if upper { 'E' } else { 'e' };
            match s.split_once(marker) {
                Some((m, e)) => format!("{}{marker}{e}", trim(m.to_string())),
                None => s,
            }
        } else {
            let decimals = usize::try_from(p as i64 - 1 - exp).unwrap_or(0);
            trim(format!("{f:.decimals$}"))
        }
    }

    fn convert(out: &mut String, conv: char, spec: &Spec, v: &Value) -> Result<(), Error> {
        let float_precision = spec.precision.unwrap_or(6).min(MAX_FLOAT_PRECISION);
        let (sign, body): (&str, String) = match conv {
            's' => {
                let s = v.to_output();
                let s = match spec.precision {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                };
                ("", s)
            }
            'd' => {
                let i = int_of(v);
                let sign = if i < 0 {
                    "-"
                } else if spec.plus {
                    "+"
                } else {
                    ""
                };
                (sign, i.unsigned_abs().to_string())
            }
            'u' => ("", (int_of(v) as u64).to_string()),
            'c' => {
                let code = u32::try_from(int_of(v)).unwrap_or(0);
                out.extend(char::from_u32(code));
                return Ok(());
            }
            'x' => ("", format!("{:x}", int_of(v) as u64)),
            'X' => ("", format!("{:X}", int_of(v) as u64)),
            'o' => ("", format!("{:o}", int_of(v) as u64)),
            'b' => ("", format!("{:b}", int_of(v) as u64)),
            'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
                let f = float_of(v);
                let sign = if f.is_sign_negative() && f != 0.0 {
                    "-"
                } else if spec.plus {
                    "+"
                } else {
                    ""
                };
                let a = f.abs();
                let body = match conv {
                    'e' | 'E' => exp_form(a, float_precision, conv == 'E'),
                    'g' | 'G' => general_form(a, float_precision, conv == 'G'),
                    _ => format!("{a:.float_precision$}"),
                };
                (sign, body)
            }
            _ => ("", String::new()),
        };
        let len = sign.chars().count() + body.chars().count();
        let fill = spec.width.saturating_sub(len);
        if spec.left {
            out.push_str(sign);
            out.push_str(&body);
            out.extend(std::iter::repeat_n(spec.pad, fill));
        } else if spec.pad == '0' && !sign.is_empty() {
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', fill));
            out.push_str(&body);
        } else {
            out.extend(std::iter::repeat_n(spec.pad, fill));
            out.push_str(sign);
            out.push_str(&body);
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn p(fmt: &str, args: &[Value]) -> String {
            sprintf(fmt, args).unwrap_or_else(|e| format!("ERR {}", e.message()))
        }

        #[test]
        fn conversions() {
            let n = |i: i64| Value::Int(i);
            assert_eq!(p("%s|%d|%%", &[Value::str("a"), n(42)]), "a|42|%");
            assert_eq!(p("%.2f", &[Value::Float(1.23456)]), "1.23");
            assert_eq!(p("%f", &[n(1)]), "1.000000");
            assert_eq!(
                p("[%5s][%-5s]", &[Value::str("ab"), Value::str("ab")]),
                "[   ab][ab   ]"
            );
            assert_eq!(p("%05d|%05d", &[n(42), n(-42)]), "00042|-0042");
            assert_eq!(
                p("%x %X %o %b", &[n(255), n(255), n(8), n(5)]),
                "ff FF 10 101"
            );
            assert_eq!(p("%e", &[Value::Float(1234.5)]), "1.234500e+3");
            assert_eq!(p("%+d %+d", &[n(5), n(-5)]), "+5 -5");
            assert_eq!(p("%u", &[n(-1)]), "18446744073709551615");
            assert_eq!(p("%c", &[n(65)]), "A");
            assert_eq!(p("%2$s %1$s", &[Value::str("a"), Value::str("b")]), "b a");
            assert_eq!(p("%'*8s", &[Value::str("é")]), "*******é");
            assert_eq!(p("%.3s", &[Value::str("abcdef")]), "abc");
            assert_eq!(p("%g", &[Value::Float(0.00001234)]), "1.234e-5");
            assert_eq!(p("%d", &[Value::str("12")]), "12");
            assert!(p("%s %s", &[n(1)]).contains("2 arguments are required, 1 given"));
            assert!(p("%999999999s", &[n(1)]).contains("too large"));
            assert!(p("%y", &[n(1)]).contains("unknown format specifier \"y\""));
            assert!(p("abc%", &[]).contains("missing format specifier"));
        }
    }
}
