//! A cheap scan that bounds bracket nesting BEFORE the source reaches pest, so that
//! `((((…5,000…))))` is a clear limit error and never a deep recursion.

use crate::error::{Error, ErrorKind};

fn too_deep(name: &str, src: &str, pos: usize, max: usize) -> Error {
    Error::new(
        ErrorKind::Limit,
        format!("expression nesting exceeds the depth limit of {max}"),
    )
    .with_location(name, src, pos..pos + 1)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Str(u8),
    Interp,
    Bracket,
}

/// Scans one code region starting at `i` (just after `{{` / `{%`, or at the start of a
/// standalone expression); returns where it ends (after `}}` / `%}`, or the end).
fn scan_code(name: &str, src: &str, mut i: usize, max: usize) -> Result<usize, Error> {
    let b = src.as_bytes();
    let mut stack: Vec<Mode> = Vec::new();
    let mut depth = 0usize;
    // Unary operators and `?` also recurse in the parser: count runs of prefix
    // operators, and every ternary `?` of the region.
    let mut prefix_run = 0usize;
    let mut ternaries = 0usize;
    while i < b.len() {
        let c = b[i];
        if !matches!(stack.last(), Some(Mode::Str(_))) {
            let is_not = c == b'n'
                && src[i..].starts_with("not")
                && !b
                    .get(i + 3)
                    .is_some_and(|x| x.is_ascii_alphanumeric() || *x == b'_')
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'));
            if is_not || c == b'-' || c == b'+' {
                prefix_run += 1;
                if prefix_run + depth + ternaries > max {
                    return Err(too_deep(name, src, i, max));
                }
            } else if c == b'?'
                && !matches!(b.get(i + 1), Some(b'?' | b':'))
                && (i == 0 || b[i - 1] != b'?')
            {
                ternaries += 1;
                if depth + ternaries > max {
                    return Err(too_deep(name, src, i, max));
                }
            } else if !c.is_ascii_whitespace() {
                prefix_run = 0;
            }
            if is_not {
                i += 3;
                continue;
            }
        }
        if let Some(Mode::Str(q)) = stack.last().copied() {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                stack.pop();
            } else if q == b'"' && c == b'#' && b.get(i + 1) == Some(&b'{') {
                depth += 1;
                if depth > max {
                    return Err(too_deep(name, src, i, max));
                }
                stack.push(Mode::Interp);
                i += 1;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' | b'\'' => stack.push(Mode::Str(c)),
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(too_deep(name, src, i, max));
                }
                stack.push(Mode::Bracket);
            }
            b')' | b']' | b'}' => {
                if stack.is_empty() {
                    if c == b'}' && b.get(i + 1) == Some(&b'}') {
                        return Ok(i + 2);
                    }
                } else {
                    stack.pop();
                    depth = depth.saturating_sub(1);
                }
            }
            b'%' if stack.is_empty() && b.get(i + 1) == Some(&b'}') => return Ok(i + 2),
            _ => {}
        }
        i += 1;
    }
    Ok(i)
}

/// Checks the bracket nesting of every `{{ }}` and `{% %}` region of a template.
pub fn check_depth(name: &str, src: &str, max: usize) -> Result<(), Error> {
    let b = src.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'#' => {
                i = src[i..].find("#}").map_or(b.len(), |j| i + j + 2);
            }
            b'{' | b'%' => {
                let is_tag = b[i + 1] == b'%';
                let start = i + 2;
                if is_tag
                    && src[start..]
                        .trim_start_matches(['-', '~', ' ', '\t', '\r', '\n'])
                        .starts_with("verbatim")
                {
                    i = src[start..]
                        .find("endverbatim")
                        .map_or(b.len(), |j| start + j + 11);
                    continue;
                }
                i = scan_code(name, src, start, max)?;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Checks the bracket nesting of a standalone expression.
pub fn check_expr_depth(name: &str, src: &str, max: usize) -> Result<(), Error> {
    scan_code(name, src, 0, max).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_parens_are_a_limit_error() {
        let src = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
        let e = check_depth("t", &src, 128).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Limit);
        assert!(check_depth("t", "{{ ((1)) }} {\"a\": {\"b\": 1}}", 128).is_ok());
        assert!(check_depth("t", "{{ \"#{ (1) }\" ~ '}}' }}", 128).is_ok());
    }
}
