//! Security builtins (docs/catalogue.md): `hashHmac`, `encrypt`/`decrypt` (AES-256-GCM),
//! `jwtEncode`/`jwtDecode` (HS256/384/512 via `jsonwebtoken`) and `signUrl`.
//!
//! Keys and secrets are template strings. MAC and tag checks happen inside `aes-gcm`,
//! `hmac` and `jsonwebtoken`, which compare in constant time; [`ct_eq`] is the helper for any
//! comparison of secrets done here.

use super::typed::convert_value;
use super::{Registry, State};
use crate::error::{Error, ErrorKind};
use crate::value::{Map, Value};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// HMAC of `data` under `key` with a PHP `hash_hmac` algorithm name (case-insensitive);
/// `None` for an unknown algorithm.
pub fn hmac(algo: &str, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        let mut m = <M as Mac>::new_from_slice(key).ok()?;
        m.update(data);
        Some(m.finalize().into_bytes().to_vec())
    }
    match algo.to_ascii_lowercase().as_str() {
        "md5" => run::<Hmac<md5::Md5>>(key, data),
        "sha1" => run::<Hmac<sha1::Sha1>>(key, data),
        "sha256" => run::<Hmac<Sha256>>(key, data),
        "sha384" => run::<Hmac<sha2::Sha384>>(key, data),
        "sha512" => run::<Hmac<sha2::Sha512>>(key, data),
        _ => None,
    }
}

/// Constant-time equality of two byte strings (lengths are not secret). The listener compares
/// its keys and tokens with it.
#[cfg_attr(not(feature = "listener"), allow(dead_code))]
///
/// The bytes are compared eight at a time: the differences are OR-ed into one word, which
/// passes through an optimisation barrier after every step (so the compiler cannot stop at the
/// first difference), and only the final word is tested, with `subtle`. `subtle`'s own slice
/// comparison puts a barrier after every byte, which made it the largest part of a cached
/// token check (a token is a few hundred bytes).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u64;
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (wa.remainder(), wb.remainder());
    for (x, y) in wa.zip(wb) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(y.try_into().unwrap_or([0; 8]));
        diff = std::hint::black_box(diff | (x ^ y));
    }
    for (x, y) in ra.iter().zip(rb) {
        diff = std::hint::black_box(diff | u64::from(x ^ y));
    }
    bool::from(diff.ct_eq(&0))
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

/// A non-empty secret argument.
fn secret<'a>(name: &str, what: &str, s: Cow<'a, str>) -> Result<Cow<'a, str>, Error> {
    if s.is_empty() {
        return Err(invalid(format!("{name}: the {what} must not be empty")));
    }
    Ok(s)
}

/// `hashHmac(algo, data, key, raw = false)`.
fn hash_hmac(
    _state: &mut dyn State,
    algo: Cow<str>,
    data: Cow<str>,
    key: Cow<str>,
    raw: Option<bool>,
) -> Result<Value, Error> {
    let raw = raw.unwrap_or(false);
    let mac = hmac(&algo, key.as_bytes(), data.as_bytes()).ok_or_else(|| {
        invalid(format!(
            "hashHmac: unknown algorithm \"{algo}\" (md5, sha1, sha256, sha384, sha512)"
        ))
    })?;
    Ok(Value::from(if raw {
        STANDARD.encode(mac)
    } else {
        hex::encode(mac)
    }))
}

fn cipher(key: &str) -> Option<Aes256Gcm> {
    Aes256Gcm::new_from_slice(&Sha256::digest(key.as_bytes())).ok()
}

/// Encrypts `text` with AES-256-GCM under SHA-256(`key`); token = base64url(nonce ‖ ct ‖ tag).
pub fn encrypt_str(text: &str, key: &str) -> Option<String> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher(key)?
        .encrypt(Nonce::from_slice(&nonce), text.as_bytes())
        .ok()?;
    let mut token = nonce.to_vec();
    token.extend_from_slice(&ct);
    Some(URL_SAFE_NO_PAD.encode(token))
}

/// Decrypts a token of [`encrypt_str`]; `None` on any failure (format, key, tag, UTF-8).
pub fn decrypt_str(token: &str, key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim().trim_end_matches('='))
        .ok()?;
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ct) = bytes.split_at(NONCE_LEN);
    let plain = cipher(key)?.decrypt(Nonce::from_slice(nonce), ct).ok()?;
    String::from_utf8(plain).ok()
}

/// `encrypt(text, key)`.
fn encrypt(state: &mut dyn State, text: Cow<str>, key: Cow<str>) -> Result<Value, Error> {
    let key = secret("encrypt", "key", key)?;
    state.check_size(text.len().saturating_mul(4) / 3 + 64)?;
    encrypt_str(&text, &key)
        .map(Value::from)
        .ok_or_else(|| Error::new(ErrorKind::Runtime, "encrypt: encryption failed"))
}

/// `decrypt(token, key)`: the text, or `null` when anything is wrong.
fn decrypt(_state: &mut dyn State, token: &Value, key: &Value) -> Value {
    let (Some(token), Some(key)) = (token.as_str(), key.as_str()) else {
        return Value::Null;
    };
    decrypt_str(token, key).map_or(Value::Null, Value::from)
}

fn algorithm(name: &str) -> Option<jsonwebtoken::Algorithm> {
    match name.to_ascii_uppercase().as_str() {
        "HS256" => Some(jsonwebtoken::Algorithm::HS256),
        "HS384" => Some(jsonwebtoken::Algorithm::HS384),
        "HS512" => Some(jsonwebtoken::Algorithm::HS512),
        _ => None,
    }
}

/// `jwtEncode(claims, secret, alg = "HS256")`.
fn jwt_encode(
    _state: &mut dyn State,
    claims: &Value,
    key: Cow<str>,
    alg: Option<Cow<str>>,
) -> Result<Value, Error> {
    convert_value::<&Map>("jwtEncode", "claims", claims)?;
    let key = secret("jwtEncode", "secret", key)?;
    let alg_name = alg.unwrap_or(Cow::Borrowed("HS256"));
    let alg = algorithm(&alg_name).ok_or_else(|| {
        invalid(format!(
            "jwtEncode: unsupported algorithm \"{alg_name}\" (HS256, HS384, HS512)"
        ))
    })?;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &claims.to_json(),
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .map(Value::from)
    .map_err(|e| Error::new(ErrorKind::Runtime, format!("jwtEncode: {e}")))
}

/// Leeway in seconds for `exp`, `nbf` and `iat`: `jwtDecode` and the listener's token checks.
pub const JWT_LEEWAY_S: u64 = 60;

/// Verifies a compact JWT with `secret` and `alg`: signature, `exp` and `nbf` ([`JWT_LEEWAY_S`]);
/// no audience and no required claims. `None` on any failure.
pub fn jwt_verify(token: &str, secret: &str, alg: &str) -> Option<serde_json::Value> {
    let alg = algorithm(alg)?;
    if secret.is_empty() {
        return None;
    }
    let mut v = jsonwebtoken::Validation::new(alg);
    v.leeway = JWT_LEEWAY_S;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<serde_json::Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &v,
    )
    .ok()?;
    data.claims.is_object().then_some(data.claims)
}

/// `jwtDecode(token, secret, alg = "HS256")`: the verified claims map or `null`.
fn jwt_decode(_state: &mut dyn State, token: &Value, key: &Value, alg: &Value) -> Value {
    let (Some(token), Some(key)) = (token.as_str(), key.as_str()) else {
        return Value::Null;
    };
    let alg = match alg {
        v if v.is_null() => Cow::Borrowed("HS256"),
        v => v.to_cow_str(),
    };
    jwt_verify(token, key, &alg).map_or(Value::Null, Value::from)
}

/// `signUrl(url, secret, ttl = 3600)`: appends `expires` and `signature` (hex HMAC-SHA256 of
/// the URL with `expires`). A `#fragment` is kept at the end and is not signed.
fn sign_url(
    _state: &mut dyn State,
    url: Cow<str>,
    key: Cow<str>,
    ttl: Option<i64>,
) -> Result<Value, Error> {
    let key = secret("signUrl", "secret", key)?;
    let ttl = ttl.unwrap_or(3600);
    let expires = crate::clock::now()
        .timestamp()
        .checked_add(ttl)
        .ok_or_else(|| invalid(format!("signUrl: ttl {ttl} is out of range")))?;
    let (base, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (&*url, ""),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    let with_expires = format!("{base}{sep}expires={expires}");
    let mac = hmac("sha256", key.as_bytes(), with_expires.as_bytes())
        .ok_or_else(|| Error::new(ErrorKind::Runtime, "signUrl: HMAC failed"))?;
    Ok(Value::from(format!(
        "{with_expires}&signature={}{fragment}",
        hex::encode(mac)
    )))
}

/// Registers this module's builtins.
pub fn register(r: &mut Registry) {
    r.declare_function("hashHmac", &["algo", "data", "key", "raw?"], hash_hmac);
    r.declare_function("encrypt", &["text", "key"], encrypt);
    r.declare_function("decrypt", &["token", "key"], decrypt);
    r.declare_function("jwtEncode", &["claims", "secret", "alg?"], jwt_encode);
    r.declare_function("jwtDecode", &["token", "secret", "alg?"], jwt_decode);
    r.declare_function("signUrl", &["url", "secret", "ttl?"], sign_url);
    // A fresh nonce, `iat` and `expires` from the clock.
    for name in ["encrypt", "jwtEncode", "signUrl"] {
        r.mark_non_deterministic(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::teststate::TestState;

    #[test]
    fn ct_eq_agrees_with_plain_equality() {
        // Every length around the 8-byte steps, a difference at every position.
        for len in 0..40usize {
            let a: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert!(ct_eq(&a, &a.clone()), "{len}");
            for at in 0..len {
                for bit in [0x01u8, 0x80] {
                    let mut b = a.clone();
                    b[at] ^= bit;
                    assert!(!ct_eq(&a, &b), "{len} {at} {bit}");
                }
            }
            assert!(!ct_eq(&a, &[a.as_slice(), b"x"].concat()));
            if len > 0 {
                assert!(!ct_eq(&a, &a[..len - 1]));
            }
        }
    }

    crate::builtins::teststate::shims!(
        hash_hmac => function "hashHmac",
        encrypt => function "encrypt",
        decrypt => function "decrypt",
        jwt_encode => function "jwtEncode",
        jwt_decode => function "jwtDecode",
        sign_url => function "signUrl",
    );

    type F = fn(&mut dyn State, &[Value]) -> Result<Value, Error>;
    fn call(f: F, args: &[Value]) -> Result<Value, Error> {
        f(&mut TestState::default(), args)
    }
    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn hmac_vectors() {
        // RFC 4231 test case 2.
        let out = call(
            hash_hmac,
            &[s("SHA256"), s("what do ya want for nothing?"), s("Jefe")],
        );
        assert_eq!(
            out.unwrap().to_output(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let raw = call(hash_hmac, &[s("md5"), s(""), s(""), Value::Bool(true)]).unwrap();
        assert_eq!(raw.to_output(), "dOb3KYqcLRaJNfWMAButiA==");
        let err = call(hash_hmac, &[s("crc32"), s("x"), s("k")]).unwrap_err();
        assert!(err.message().contains("hashHmac: unknown algorithm"));
        assert!(call(hash_hmac, &[s("md5"), Value::list(vec![]), s("k")]).is_err());
    }

    #[test]
    fn aes_round_trip() {
        let token = encrypt_str("héllo ✓", "k").unwrap();
        assert_eq!(decrypt_str(&token, "k").as_deref(), Some("héllo ✓"));
        assert_eq!(decrypt_str(&token, "other"), None);
        assert_ne!(encrypt_str("x", "k"), encrypt_str("x", "k"));
        let mut tampered = token.clone().into_bytes();
        if let Some(b) = tampered.get_mut(20) {
            *b = if *b == b'A' { b'B' } else { b'A' };
        }
        assert_eq!(
            decrypt_str(&String::from_utf8(tampered).unwrap(), "k"),
            None
        );
        assert_eq!(decrypt_str("short", "k"), None);
        assert!(call(encrypt, &[s("x"), s("")]).is_err());
        assert!(call(decrypt, &[Value::Null, s("k")]).unwrap().is_null());
    }

    #[test]
    fn jwt_round_trip() {
        let claims = Value::from(serde_json::json!({"sub": "42", "name": "Zoë"}));
        let token = call(jwt_encode, &[claims, s("secret"), s("HS384")]).unwrap();
        let t = token.to_output();
        let back = call(jwt_decode, &[s(&t), s("secret"), s("HS384")]).unwrap();
        assert_eq!(back.get_attr("name").to_output(), "Zoë");
        assert!(call(jwt_decode, &[s(&t), s("secret")]).unwrap().is_null());
        assert!(call(jwt_decode, &[s(&t), s("wrong"), s("HS384")])
            .unwrap()
            .is_null());
        assert!(call(jwt_decode, &[s(&t), s("secret"), s("RS256")])
            .unwrap()
            .is_null());
        assert!(call(jwt_encode, &[Value::empty_map(), s("k"), s("none")]).is_err());
        assert!(call(jwt_encode, &[s("x"), s("k")]).is_err());
        let old = Value::from(serde_json::json!({"exp": 1_000_000}));
        let t = call(jwt_encode, &[old, s("k")]).unwrap().to_output();
        assert!(call(jwt_decode, &[s(&t), s("k")]).unwrap().is_null());
    }

    #[test]
    fn signed_urls() {
        let u = call(sign_url, &[s("https://x.test/a?b=1#top"), s("k")]).unwrap();
        let u = u.to_output();
        let (signed, sig) = u.split_once("&signature=").unwrap();
        let sig = sig.strip_suffix("#top").unwrap();
        assert!(signed.starts_with("https://x.test/a?b=1&expires="));
        let mac = hmac("sha256", b"k", signed.as_bytes()).unwrap();
        assert!(ct_eq(hex::encode(mac).as_bytes(), sig.as_bytes()));
        let plain = call(sign_url, &[s("https://x.test/a"), s("k"), Value::Int(0)]).unwrap();
        assert!(plain.to_output().starts_with("https://x.test/a?expires="));
        assert!(call(sign_url, &[s("https://x.test"), s("")]).is_err());
    }
}
