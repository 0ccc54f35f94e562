//! Signed webhooks both ways (docs/security.md).
//!
//! Outbound, [`sign_standard`] makes the `webhook-signature` value of the Standard Webhooks
//! specification: `v1,` + base64 of HMAC-SHA256 over `id.timestamp.body`.
//!
//! Inbound, [`verify`] checks a request against an endpoint's `[endpoint.signature]`, over the
//! raw body bytes (before any parsing):
//! - `standard-webhooks`: `webhook-id`, `webhook-timestamp`, `webhook-signature` (space-separated
//!   `v1,<base64>` entries);
//! - `github`: `X-Hub-Signature-256: sha256=<hex>` over the body;
//! - `stripe`: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over `t.body`;
//! - `hmac-sha256`: a configured header holding `<hex>` or `<base64>` (an optional `sha256=`
//!   prefix is accepted) over the body.
//!
//! Every scheme accepts several signatures in its header (comma- or, for Standard Webhooks,
//! space-separated, and repeated header lines): one match is enough, so a sender can rotate
//! keys. The expected MAC is computed once and compared with each candidate in constant time.
//! The work is bounded: a header over [`MAX_HEADER_BYTES`] or with more than [`MAX_ENTRIES`]
//! entries is refused before any MAC is computed. A missing signature header is
//! [`SigError::Missing`] (403); anything else wrong is [`SigError::Invalid`] (401) with a short
//! fixed reason that never quotes the header, the body or the secret.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use hyper::header::{HeaderMap, HeaderName};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Longest signature header accepted (all its lines together), in bytes.
pub const MAX_HEADER_BYTES: usize = 4096;
/// Most signatures one header may list.
pub const MAX_ENTRIES: usize = 16;
/// Default `tolerance_s` of the timestamped schemes.
pub const DEFAULT_TOLERANCE_S: u64 = 300;

/// How a `hmac-sha256` signature is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Lower-case hex digits.
    Hex,
    /// Standard base64.
    Base64,
}

/// An inbound signature scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `standard-webhooks`: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
    /// `github`: `X-Hub-Signature-256: sha256=HEX`.
    Github,
    /// `stripe`: `Stripe-Signature: t=…,v1=…`.
    Stripe,
    /// `hmac-sha256`: an HMAC-SHA256 of the body in a header of the endpoint's choice.
    HmacSha256 {
        /// The header carrying the signature.
        header: HeaderName,
        /// How the signature is written.
        encoding: Encoding,
    },
}

impl Scheme {
    /// The scheme names of `[endpoint.signature] scheme`.
    pub const NAMES: &'static str = "standard-webhooks, github, stripe, hmac-sha256";

    /// Whether the scheme carries a timestamp (and so uses `tolerance_s`).
    pub fn timestamped(&self) -> bool {
        matches!(self, Scheme::StandardWebhooks | Scheme::Stripe)
    }

    /// The header that carries the signature(s).
    pub fn header(&self) -> HeaderName {
        match self {
            Scheme::StandardWebhooks => HeaderName::from_static("webhook-signature"),
            Scheme::Github => HeaderName::from_static("x-hub-signature-256"),
            Scheme::Stripe => HeaderName::from_static("stripe-signature"),
            Scheme::HmacSha256 { header, .. } => header.clone(),
        }
    }

    /// The HMAC key for a rendered `secret`: Standard Webhooks secrets written `whsec_<base64>`
    /// are the decoded bytes; every other secret is its own bytes (Stripe's `whsec_…` secrets
    /// included: Stripe uses the whole string as the key).
    pub fn key(&self, secret: &str) -> Result<Vec<u8>, &'static str> {
        if secret.is_empty() {
            return Err("the secret is empty");
        }
        match self {
            Scheme::StandardWebhooks => standard_key(secret),
            _ => Ok(secret.as_bytes().to_vec()),
        }
    }
}

/// A Standard Webhooks key: `whsec_<base64>` → the decoded bytes, anything else → its bytes.
pub fn standard_key(secret: &str) -> Result<Vec<u8>, &'static str> {
    match secret.strip_prefix("whsec_") {
        Some(b64) => match B64.decode(b64.trim()) {
            Ok(k) if !k.is_empty() => Ok(k),
            Ok(_) => Err("the secret is empty after whsec_"),
            Err(_) => Err("the secret after whsec_ is not valid base64"),
        },
        None if secret.is_empty() => Err("the secret is empty"),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// Why a request's signature was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigError {
    /// No signature header at all → 403.
    Missing,
    /// A bad, stale or malformed signature → 401 (a fixed, client-safe reason).
    Invalid(&'static str),
}

impl SigError {
    /// The status the request is answered with.
    pub fn status(&self) -> u16 {
        match self {
            SigError::Missing => 403,
            SigError::Invalid(_) => 401,
        }
    }
    /// The message the request is answered with (safe to show).
    pub fn message(&self) -> String {
        match self {
            SigError::Missing => "missing signature".to_string(),
            SigError::Invalid(why) => format!("invalid signature: {why}"),
        }
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The Standard Webhooks signature value `v1,<base64>` of `body` sent as message `id` at
/// `timestamp` (Unix seconds), for the HMAC key `key` (see [`standard_key`]).
pub fn sign_standard(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let m = mac(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", B64.encode(m))
}

/// Whether the request carries the scheme's signature header at all (checked before the
/// body is read: a request without it is refused at once).
pub fn present(scheme: &Scheme, headers: &HeaderMap) -> bool {
    headers.contains_key(scheme.header())
}

/// The header's lines joined with `sep`, bounded by [`MAX_HEADER_BYTES`] (empty when absent).
fn header_text(headers: &HeaderMap, name: &HeaderName, sep: char) -> Result<String, SigError> {
    let mut out = String::new();
    for (i, v) in headers.get_all(name).iter().enumerate() {
        if out.len() + v.len() + 1 > MAX_HEADER_BYTES {
            return Err(SigError::Invalid("signature header too long"));
        }
        let s = v
            .to_str()
            .map_err(|_| SigError::Invalid("malformed signature header"))?;
        if i > 0 {
            out.push(sep);
        }
        out.push_str(s);
    }
    Ok(out)
}

/// The non-empty entries of `text` split on `sep`, at most [`MAX_ENTRIES`].
fn entries(text: &str, sep: impl Fn(char) -> bool) -> Result<Vec<&str>, SigError> {
    let mut out = Vec::new();
    for e in text.split(sep).map(str::trim).filter(|e| !e.is_empty()) {
        if out.len() == MAX_ENTRIES {
            return Err(SigError::Invalid("too many signatures"));
        }
        out.push(e);
    }
    Ok(out)
}

/// The one value of `name` as raw bytes (a repeated or missing header is refused).
fn single<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h [u8], SigError> {
    let mut all = headers.get_all(name).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return Err(SigError::Invalid(match name {
            "webhook-id" => "missing or repeated webhook-id",
            _ => "missing or repeated webhook-timestamp",
        }));
    };
    Ok(v.as_bytes())
}

fn fresh(ts: &str, now: i64, tolerance_s: u64) -> Result<(), SigError> {
    let t: i64 = ts
        .parse()
        .map_err(|_| SigError::Invalid("malformed timestamp"))?;
    let tol = i64::try_from(tolerance_s).unwrap_or(i64::MAX);
    if now.saturating_sub(t) > tol || t.saturating_sub(now) > tol {
        return Err(SigError::Invalid("timestamp outside the tolerance"));
    }
    Ok(())
}

/// Constant-time comparison of `expected` with every decodable candidate.
fn any_matches(expected: &[u8; 32], candidates: &[Vec<u8>]) -> Result<(), SigError> {
    let mut ok = subtle::Choice::from(0u8);
    for c in candidates {
        if c.len() == expected.len() {
            ok |= c.as_slice().ct_eq(expected);
        }
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(SigError::Invalid("signature mismatch"))
    }
}

/// Checks the request (`headers` and raw `body`) against `scheme` with the HMAC `key`, at
/// `now` (Unix seconds) for the timestamped schemes.
pub fn verify(
    scheme: &Scheme,
    key: &[u8],
    tolerance_s: u64,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), SigError> {
    let name = scheme.header();
    if !headers.contains_key(&name) {
        return Err(SigError::Missing);
    }
    match scheme {
        Scheme::StandardWebhooks => {
            let text = header_text(headers, &name, ' ')?;
            let list = entries(&text, char::is_whitespace)?;
            // The id is signed as the bytes it is sent as (it may hold any visible byte).
            let id = single(headers, "webhook-id")?;
            let ts = std::str::from_utf8(single(headers, "webhook-timestamp")?)
                .map_err(|_| SigError::Invalid("malformed timestamp"))?;
            fresh(ts, now, tolerance_s)?;
            let candidates: Vec<Vec<u8>> = list
                .iter()
                .filter_map(|e| e.strip_prefix("v1,"))
                .filter_map(|b| B64.decode(b).ok())
                .collect();
            if candidates.is_empty() {
                return Err(SigError::Invalid("no v1 signature"));
            }
            let ts = ts.trim();
            let expected = mac(key, &[id, b".", ts.as_bytes(), b".", body]);
            any_matches(&expected, &candidates)
        }
        Scheme::Stripe => {
            let text = header_text(headers, &name, ',')?;
            let list = entries(&text, |c| c == ',')?;
            let mut t = None;
            let mut candidates = Vec::new();
            for e in list {
                match e.split_once('=') {
                    Some(("t", v)) if t.is_none() => t = Some(v.trim()),
                    Some(("v1", v)) => candidates.extend(hex::decode(v.trim()).ok()),
                    _ => {}
                }
            }
            let t = t.ok_or(SigError::Invalid("no timestamp"))?;
            fresh(t, now, tolerance_s)?;
            if candidates.is_empty() {
                return Err(SigError::Invalid("no v1 signature"));
            }
            let expected = mac(key, &[t.as_bytes(), b".", body]);
            any_matches(&expected, &candidates)
        }
        Scheme::Github => {
            let text = header_text(headers, &name, ',')?;
            let list = entries(&text, |c| c == ',')?;
            let candidates: Vec<Vec<u8>> = list
                .iter()
                .filter_map(|e| e.strip_prefix("sha256="))
                .filter_map(|h| hex::decode(h).ok())
                .collect();
            if candidates.is_empty() {
                return Err(SigError::Invalid("no sha256 signature"));
            }
            any_matches(&mac(key, &[body]), &candidates)
        }
        Scheme::HmacSha256 { encoding, .. } => {
            let text = header_text(headers, &name, ',')?;
            let list = entries(&text, |c| c == ',')?;
            let candidates: Vec<Vec<u8>> = list
                .iter()
                .map(|e| {
                    let lower = e.get(..7).map(str::to_ascii_lowercase);
                    if lower.as_deref() == Some("sha256=") {
                        &e[7..]
                    } else {
                        e
                    }
                })
                .filter_map(|v| match encoding {
                    Encoding::Hex => hex::decode(v).ok(),
                    Encoding::Base64 => B64.decode(v).ok(),
                })
                .collect();
            if candidates.is_empty() {
                return Err(SigError::Invalid("malformed signature"));
            }
            any_matches(&mac(key, &[body]), &candidates)
        }
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    //! Signatures here are made with the `hmac` crate directly (not with `sign_standard`),
    //! except in the round trip.
    use super::*;
    use hyper::header::HeaderValue;

    fn hm(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn standard_webhooks_known_vector() {
        // The example of the Standard Webhooks specification (and its reference libraries).
        let key = standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = sign_standard(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let h = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", &format!("v1,bm90IGl0 {sig}")),
        ]);
        let s = Scheme::StandardWebhooks;
        assert_eq!(verify(&s, &key, 300, &h, body, 1614265330 + 299), Ok(()));
        assert_eq!(
            verify(&s, &key, 300, &h, body, 1614265330 + 301),
            Err(SigError::Invalid("timestamp outside the tolerance"))
        );
        assert_eq!(
            verify(&s, &key, 300, &h, body, 1614265330 - 301),
            Err(SigError::Invalid("timestamp outside the tolerance"))
        );
        assert_eq!(
            verify(&s, &key, 300, &h, b"{\"test\": 2432232315}", 1614265330),
            Err(SigError::Invalid("signature mismatch"))
        );
        assert_eq!(
            verify(&s, b"other key", 300, &h, body, 1614265330),
            Err(SigError::Invalid("signature mismatch"))
        );
    }

    #[test]
    fn github_stripe_and_hmac() {
        let key = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let hexsig = hex::encode(hm(key, body));
        // GitHub's documented example value.
        assert_eq!(
            hexsig,
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let gh = headers(&[("x-hub-signature-256", &format!("sha256={hexsig}"))]);
        assert_eq!(verify(&Scheme::Github, key, 0, &gh, body, NOW), Ok(()));
        assert!(verify(&Scheme::Github, key, 0, &gh, b"Hello, World?", NOW).is_err());
        let bare = headers(&[("x-hub-signature-256", &hexsig)]);
        assert_eq!(
            verify(&Scheme::Github, key, 0, &bare, body, NOW),
            Err(SigError::Invalid("no sha256 signature"))
        );

        let t = NOW.to_string();
        let v1 = hex::encode(hm(
            key,
            format!("{t}.")
                .as_bytes()
                .iter()
                .chain(body)
                .copied()
                .collect::<Vec<_>>()
                .as_slice(),
        ));
        let st = headers(&[(
            "stripe-signature",
            &format!("t={t},v1={},v1={v1},v0=abc", "00".repeat(32)),
        )]);
        assert_eq!(verify(&Scheme::Stripe, key, 300, &st, body, NOW), Ok(()));
        assert_eq!(
            verify(&Scheme::Stripe, key, 300, &st, body, NOW + 1000),
            Err(SigError::Invalid("timestamp outside the tolerance"))
        );
        let no_t = headers(&[("stripe-signature", &format!("v1={v1}"))]);
        assert_eq!(
            verify(&Scheme::Stripe, key, 300, &no_t, body, NOW),
            Err(SigError::Invalid("no timestamp"))
        );

        let hs = Scheme::HmacSha256 {
            header: HeaderName::from_static("x-signature"),
            encoding: Encoding::Base64,
        };
        let b64 = B64.encode(hm(key, body));
        let h = headers(&[("x-signature", &b64)]);
        assert_eq!(verify(&hs, key, 0, &h, body, NOW), Ok(()));
        let h = headers(&[("x-signature", &format!("SHA256={b64}"))]);
        assert_eq!(verify(&hs, key, 0, &h, body, NOW), Ok(()));
        let hx = Scheme::HmacSha256 {
            header: HeaderName::from_static("x-signature"),
            encoding: Encoding::Hex,
        };
        let h = headers(&[("x-signature", &hexsig.to_uppercase())]);
        assert_eq!(verify(&hx, key, 0, &h, body, NOW), Ok(()));
        assert_eq!(
            verify(&hx, key, 0, &HeaderMap::new(), body, NOW),
            Err(SigError::Missing)
        );
    }

    #[test]
    fn work_is_bounded() {
        let key = b"k";
        let long = "a".repeat(10 * 1024);
        for scheme in [Scheme::Github, Scheme::Stripe, Scheme::StandardWebhooks] {
            let h = headers(&[(scheme.header().as_str(), &long)]);
            assert_eq!(
                verify(&scheme, key, 300, &h, b"", NOW),
                Err(SigError::Invalid("signature header too long"))
            );
        }
        let many = vec!["sha256=00"; 1000].join(",");
        let h = headers(&[("x-hub-signature-256", &many)]);
        // 1000 × 10 bytes is over the length cap already; 17 short entries hit the count cap.
        assert!(verify(&Scheme::Github, key, 0, &h, b"", NOW).is_err());
        let seventeen = vec!["sha256=00"; MAX_ENTRIES + 1].join(",");
        let h = headers(&[("x-hub-signature-256", &seventeen)]);
        assert_eq!(
            verify(&Scheme::Github, key, 0, &h, b"", NOW),
            Err(SigError::Invalid("too many signatures"))
        );
        // Many repeated header lines count together.
        let mut h = HeaderMap::new();
        for _ in 0..1000 {
            h.append("x-hub-signature-256", HeaderValue::from_static("sha256=00"));
        }
        assert!(verify(&Scheme::Github, key, 0, &h, b"", NOW).is_err());
    }

    #[test]
    fn keys() {
        assert_eq!(standard_key("whsec_AAEC").unwrap(), vec![0, 1, 2]);
        assert_eq!(standard_key("plain").unwrap(), b"plain".to_vec());
        assert!(standard_key("whsec_!!").is_err());
        assert!(standard_key("whsec_").is_err());
        assert!(Scheme::Github.key("").is_err());
        // Stripe keys are the whole string.
        assert_eq!(
            Scheme::Stripe.key("whsec_AAEC").unwrap(),
            b"whsec_AAEC".to_vec()
        );
    }

    #[test]
    fn malformed_standard_headers() {
        let key = b"k";
        let s = Scheme::StandardWebhooks;
        let sig = sign_standard(key, "id", NOW, b"x");
        let ok = [
            ("webhook-id", "id"),
            ("webhook-timestamp", "1700000000"),
            ("webhook-signature", sig.as_str()),
        ];
        assert_eq!(verify(&s, key, 300, &headers(&ok), b"x", NOW), Ok(()));
        let no_id = headers(&ok[1..]);
        assert!(verify(&s, key, 300, &no_id, b"x", NOW).is_err());
        let bad_ts = headers(&[ok[0], ("webhook-timestamp", "soon"), ok[2]]);
        assert_eq!(
            verify(&s, key, 300, &bad_ts, b"x", NOW),
            Err(SigError::Invalid("malformed timestamp"))
        );
        let v2 = headers(&[ok[0], ok[1], ("webhook-signature", "v2,abc v1,!!!")]);
        assert_eq!(
            verify(&s, key, 300, &v2, b"x", NOW),
            Err(SigError::Invalid("no v1 signature"))
        );
        // Found by the `signature` fuzz target: an id with bytes beyond ASCII is signed and
        // checked as the bytes sent (it used to be refused as a malformed header).
        let id = "msg-\u{e9}";
        let sig = sign_standard(key, id, NOW, b"x");
        let mut h = HeaderMap::new();
        h.insert(
            "webhook-id",
            HeaderValue::from_bytes(id.as_bytes()).unwrap(),
        );
        h.insert("webhook-timestamp", HeaderValue::from(NOW));
        h.insert("webhook-signature", HeaderValue::from_str(&sig).unwrap());
        assert_eq!(verify(&s, key, 300, &h, b"x", NOW), Ok(()));
        let no_sig = headers(&ok[..2]);
        assert_eq!(
            verify(&s, key, 300, &no_sig, b"x", NOW),
            Err(SigError::Missing)
        );
    }
}
