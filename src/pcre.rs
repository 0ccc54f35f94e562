//! PHP (PCRE) regular expressions `"/pattern/flags"` translated to the `regex` crate.
//!
//! Supported flags: `i m s x u` (and `U`, ungreedy). The `regex` crate guarantees
//! linear-time matching; patterns with backreferences or look-around, which it does
//! not support, are rejected with a clear error instead of hanging.

use crate::error::{Error, ErrorKind};
use regex::{Regex, RegexBuilder};

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

/// Compiles a PHP-style delimited pattern such as `"/^a.c$/i"` or `"#\d+#"`.
pub fn compile(pattern: &str) -> Result<Regex, Error> {
    let mut chars = pattern.chars();
    let open = chars
        .next()
        .ok_or_else(|| err("matches: empty regular expression"))?;
    if open.is_alphanumeric() || open == '\\' || open.is_whitespace() {
        return Err(err(format!(
            "matches: the pattern must be delimited, like \"/{pattern}/\""
        )));
    }
    let close = match open {
        '(' => ')',
        '[' => ']',
        '{' => '}',
        '<' => '>',
        c => c,
    };
    let body_and_flags = &pattern[open.len_utf8()..];
    let end = body_and_flags.rfind(close).ok_or_else(|| {
        err(format!(
            "matches: no ending delimiter `{close}` in \"{pattern}\""
        ))
    })?;
    let body = &body_and_flags[..end];
    let flags = &body_and_flags[end + close.len_utf8()..];
    let mut b = RegexBuilder::new(&translate(body, open)?);
    b.size_limit(1 << 20).nest_limit(128);
    for f in flags.chars() {
        match f {
            'i' => {
                b.case_insensitive(true);
            }
            'm' => {
                b.multi_line(true);
            }
            's' => {
                b.dot_matches_new_line(true);
            }
            'x' => {
                b.ignore_whitespace(true);
            }
            'U' => {
                b.swap_greed(true);
            }
            'u' | 'D' => {}
            other => {
                return Err(err(format!(
                    "matches: unsupported regular expression flag `{other}` (supported: i m s x u)"
                )))
            }
        }
    }
    b.build().map_err(|e| {
        err(format!(
            "matches: invalid regular expression \"{pattern}\": {}",
            e.to_string().lines().last().unwrap_or("")
        ))
    })
}

/// Rejects PCRE-only constructs and unescapes the delimiter.
fn translate(body: &str, delim: char) -> Result<String, Error> {
    let unsupported = |what: &str| {
        err(format!(
            "matches: {what} are not supported (the engine guarantees linear-time matching)"
        ))
    };
    let mut out = String::with_capacity(body.len());
    let mut it = body.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some(d) if d.is_ascii_digit() && d != '0' => {
                    return Err(unsupported("backreferences"))
                }
                Some('k') | Some('g') => return Err(unsupported("backreferences")),
                Some(d) if d == delim && !d.is_alphanumeric() => {
                    out.push('\\');
                    out.push(d);
                }
                Some(d) => {
                    out.push('\\');
                    out.push(d);
                }
                None => out.push('\\'),
            },
            '(' if it.peek() == Some(&'?') => {
                let rest: String = it.clone().take(3).collect();
                if rest.starts_with("?=")
                    || rest.starts_with("?!")
                    || rest.starts_with("?<=")
                    || rest.starts_with("?<!")
                {
                    return Err(unsupported("look-around assertions"));
                }
                if rest.starts_with("?>") {
                    return Err(unsupported("atomic groups"));
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_patterns() {
        assert!(compile("/^a.c$/").unwrap().is_match("abc"));
        assert!(compile("/ABC/i").unwrap().is_match("xabcx"));
        assert!(compile("#\\d+#").unwrap().is_match("a1"));
        assert!(compile("/a\\/b/").unwrap().is_match("a/b"));
        let e = compile("/(a)\\1/").unwrap_err();
        assert!(e.message().contains("backreferences"));
        assert!(compile("/a(?=b)/")
            .unwrap_err()
            .message()
            .contains("look-around"));
        assert!(compile("abc").is_err());
        assert!(compile("/a/q").is_err());
    }
}
