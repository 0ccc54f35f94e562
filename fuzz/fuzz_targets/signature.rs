//! The signature header parsers and the destination guard's parsers on arbitrary input:
//! `listener::signature::verify` for every scheme (never a panic; a missing header is always
//! `Missing`, a present one never is; a header made by `sign_standard` always verifies), and
//! `guard::literal_ipv4`, `Guard::new`, `guard::canonical`/`refused_range` (a standard dotted
//! quad reads as itself; an allowed verdict is stable under the IPv4-mapped spelling).
#![no_main]
use arbitrary::Arbitrary;
use flexscript::listener::guard::{canonical, literal_ipv4, refused_range, Guard};
use flexscript::listener::request::{HeaderMap, HeaderName, HeaderValue};
use flexscript::listener::signature::{sign_standard, verify, Encoding, Scheme, SigError};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Arbitrary, Debug)]
enum ArbScheme {
    Standard,
    Github,
    Stripe,
    HmacHex,
    HmacBase64,
}

#[derive(Arbitrary, Debug)]
struct Input {
    scheme: ArbScheme,
    key: Vec<u8>,
    tolerance_s: u16,
    now: i64,
    /// Header lines for the scheme's signature header (and `webhook-id`/`-timestamp`).
    lines: Vec<Vec<u8>>,
    id: Option<Vec<u8>>,
    timestamp: Option<Vec<u8>>,
    body: Vec<u8>,
    host: String,
    allow: Vec<String>,
    v6: [u8; 16],
}

fuzz_target!(|input: Input| {
    let scheme = match input.scheme {
        ArbScheme::Standard => Scheme::StandardWebhooks,
        ArbScheme::Github => Scheme::Github,
        ArbScheme::Stripe => Scheme::Stripe,
        ArbScheme::HmacHex => Scheme::HmacSha256 {
            header: HeaderName::from_static("x-signature"),
            encoding: Encoding::Hex,
        },
        ArbScheme::HmacBase64 => Scheme::HmacSha256 {
            header: HeaderName::from_static("x-signature"),
            encoding: Encoding::Base64,
        },
    };
    let mut headers = HeaderMap::new();
    for line in input.lines.iter().take(64) {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(scheme.header(), v);
        }
    }
    for (name, value) in [
        ("webhook-id", &input.id),
        ("webhook-timestamp", &input.timestamp),
    ] {
        if let Some(v) = value.as_ref().and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.insert(name, v);
        }
    }
    let tol = u64::from(input.tolerance_s);
    let r = verify(&scheme, &input.key, tol, &headers, &input.body, input.now);
    assert_eq!(
        r == Err(SigError::Missing),
        !headers.contains_key(scheme.header())
    );
    if let Err(e) = &r {
        assert!(matches!(e.status(), 401 | 403));
    }

    // Round trip: our own Standard Webhooks headers verify.
    if let Ok(id) = std::str::from_utf8(input.id.as_deref().unwrap_or(b"msg")) {
        if let Ok(idv) = HeaderValue::from_str(id) {
            let now = input.now.clamp(0, 1 << 40);
            let mut h = HeaderMap::new();
            h.insert("webhook-id", idv);
            h.insert("webhook-timestamp", HeaderValue::from(now));
            let sig = sign_standard(&input.key, id, now, &input.body);
            h.insert("webhook-signature", HeaderValue::from_str(&sig).unwrap());
            if id.trim() == id {
                assert_eq!(
                    verify(
                        &Scheme::StandardWebhooks,
                        &input.key,
                        tol,
                        &h,
                        &input.body,
                        now
                    ),
                    Ok(())
                );
            }
        }
    }

    // Guard parsers.
    if let Some(v4) = literal_ipv4(&input.host) {
        if let Ok(std) = input.host.parse::<Ipv4Addr>() {
            assert_eq!(v4, std, "a dotted quad reads as itself");
        }
    }
    if let Ok(g) = Guard::new(&input.allow) {
        let v6 = Ipv6Addr::from(input.v6);
        let _ = g.check(&input.host, IpAddr::V6(v6), 443);
        let c = canonical(IpAddr::V6(v6));
        if let IpAddr::V4(v4) = c {
            // The mapped spelling of an IPv4 address gets the same verdict as the address.
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            assert_eq!(refused_range(mapped), refused_range(c));
            assert_eq!(
                g.check("h", mapped, 443).is_ok(),
                g.check("h", c, 443).is_ok()
            );
        }
    }
});
