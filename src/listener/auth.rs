//! JWT authentication of endpoint requests (docs/listener.md "Authentication and CORS") and token signing for
//! `flexscript token`.
//!
//! Contract:
//! - The token comes from `Authorization: Bearer <token>` (scheme case-insensitive) or, failing
//!   that, a `token: <token>` header (an optional `Bearer ` prefix is tolerated there too).
//!   No token → [`AuthError::Missing`] (403).
//! - Everything else that is wrong → [`AuthError::Invalid`] (401): the algorithm must be HS256,
//!   HS384 or HS512 (read from the header, anything else refused before any verification, then
//!   verified with exactly that algorithm); the HMAC signature must verify with the rendered
//!   secret (constant time, `hmac`'s `verify_slice`); `iss` must be present and equal the
//!   rendered key;
//!   `exp` is required unless `require_exp = false`; `exp`, `nbf` and `iat` get 60 s of leeway
//!   (`iat` more than 60 s in the future is refused); `aud` is ignored. A claims object naming
//!   one of `iss`, `exp`, `nbf`, `iat`, `sub`, `aud`, `data` twice is malformed.
//! - The checks are made here in one pass over the token (one base64 decoding and one JSON parse
//!   per part, the HMAC keyed once per [`Verifier`]); they accept and refuse what the
//!   `jsonwebtoken` crate's `decode` with our validation did (a test compares the two), which
//!   took three header parses, two claims parses and a fresh HMAC key per token.
//! - An empty secret refuses every token (a missing `env()` must not turn into a guessable key).
//! - Reasons are short fixed phrases: they never contain the token, the secret or claim values.
//! - A [`Verifier`] remembers up to [`CACHED_TOKENS`] tokens that passed (see [`TokenCache`]):
//!   a repeated token costs a keyed-hash look-up and a constant-time comparison instead of an
//!   HMAC and two JSON parses, and its time claims are checked again on every use.

use crate::builtins::crypto::ct_eq;
use crate::Value;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use hyper::http::HeaderMap;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::hash::BuildHasherDefault;
use std::sync::Mutex;

/// Clock-skew allowance on `exp`, `nbf` and `iat`, in seconds: the templates' `jwtDecode`
/// allows the same.
pub const LEEWAY_S: u64 = crate::builtins::crypto::JWT_LEEWAY_S;

/// The rendered authentication settings of one endpoint.
pub struct AuthSettings<'a> {
    /// Expected issuer (`iss`): the rendered `endpoint_key`.
    pub key: &'a str,
    /// HMAC secret: the rendered `endpoint_secret`.
    pub secret: &'a str,
    /// Whether `exp` must be present.
    pub require_exp: bool,
}

/// Why a request failed authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No token at all → 403.
    Missing,
    /// A token that is not acceptable → 401. The reason is safe to show.
    Invalid(String),
}

impl AuthError {
    /// The HTTP status: 403 for [`AuthError::Missing`], 401 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing => 403,
            AuthError::Invalid(_) => 401,
        }
    }

    /// A client-safe message for the JSON error body.
    pub fn message(&self) -> String {
        match self {
            AuthError::Missing => "missing token".to_string(),
            AuthError::Invalid(reason) => format!("invalid token: {reason}"),
        }
    }
}

fn invalid(reason: &str) -> AuthError {
    AuthError::Invalid(reason.to_string())
}

/// The token carried by the request, if any.
fn extract_token(headers: &HeaderMap) -> Option<&str> {
    for value in headers.get_all(hyper::http::header::AUTHORIZATION) {
        if let Some(token) = value.to_str().ok().and_then(strip_bearer) {
            return Some(token);
        }
    }
    for value in headers.get_all("token") {
        if let Ok(v) = value.to_str() {
            let v = v.trim();
            let token = strip_bearer(v).unwrap_or(v);
            if !token.is_empty() {
                return Some(token);
            }
        }
    }
    None
}

/// `"Bearer xyz"` (any case, any amount of spaces) → `Some("xyz")`; empty tokens → `None`.
fn strip_bearer(v: &str) -> Option<&str> {
    let v = v.trim();
    let (scheme, rest) = v.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

fn hs_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "HS256" => Some(Algorithm::HS256),
        "HS384" => Some(Algorithm::HS384),
        "HS512" => Some(Algorithm::HS512),
        _ => None,
    }
}

/// Checks the request's token. `Ok(Some(data))` when valid and the token has a `data` claim,
/// `Ok(None)` when valid without one. Builds a [`Verifier`] on the spot: a server keeps one per
/// endpoint instead.
pub fn authenticate(
    headers: &HeaderMap,
    s: &AuthSettings<'_>,
) -> Result<Option<serde_json::Value>, AuthError> {
    Ok(Verifier::new(s).verify(headers)?.map(|d| d.to_json()))
}

/// Most tokens one [`Verifier`] remembers as verified.
pub const CACHED_TOKENS: usize = 1024;
/// Longer tokens are verified every time (bounds the cache's memory to ~4 MiB per endpoint).
pub const CACHED_TOKEN_MAX_LEN: usize = 4096;

/// Tokens that passed every check, with what a repeated use must check again.
///
/// Keyed by a SipHash of the token's signature part (after its last `.`: the HMAC, distinct
/// for distinct tokens, about a fifth of the token) under a per-process random key (so nobody
/// can aim at a slot); the stored token, all of it, is compared in constant time, so a look-up never tells how much of
/// a remembered token a guess matched. Only successes are kept; a full cache first drops what
/// has expired, then everything. Built with the verifier, so a reload (new secret) starts
/// empty.
#[derive(Default)]
pub struct TokenCache {
    hasher: std::collections::hash_map::RandomState,
    entries: Mutex<HashMap<u64, Accepted, BuildHasherDefault<SlotHasher>>>,
}

/// The hasher of [`TokenCache`]'s map: its keys are already keyed SipHashes
/// ([`TokenCache::slot`]), uniform and out of a client's reach, so they are used as they are
/// instead of being hashed a second time.
#[derive(Default)]
struct SlotHasher(u64);

impl std::hash::Hasher for SlotHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // only `write_u64` is used (the keys are `u64`); any other input is folded in
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A verified token and its time claims (as the `jsonwebtoken` crate reads them).
struct Accepted {
    token: Box<str>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<f64>,
    data: Option<Value>,
}

impl Accepted {
    /// The time checks of a fresh verification, in the same order and with the same reasons.
    fn still_valid(&self, now: u64) -> Result<Option<Value>, AuthError> {
        if self
            .exp
            .is_some_and(|exp| exp < now.saturating_sub(LEEWAY_S))
        {
            return Err(invalid("token expired"));
        }
        if self
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_S))
        {
            return Err(invalid("token not yet valid"));
        }
        if self.iat.is_some_and(|iat| issued_in_future(iat, now)) {
            return Err(invalid("token issued in the future"));
        }
        Ok(self.data.clone())
    }
}

impl TokenCache {
    /// The slot of `token`: the keyed hash of its signature part (the whole text when it has no
    /// `.`). Two tokens that share it share a slot: the later one replaces the earlier.
    fn slot(&self, token: &str) -> u64 {
        let signature = token.rsplit_once('.').map_or(token, |(_, sig)| sig);
        self.hasher.hash_one(signature.as_bytes())
    }

    fn entries(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, Accepted, BuildHasherDefault<SlotHasher>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The checks of a remembered token in `slot` (its [`TokenCache::slot`]), or `None` when
    /// it is not remembered.
    fn lookup(&self, slot: u64, token: &str, now: u64) -> Option<Result<Option<Value>, AuthError>> {
        let entries = self.entries();
        let hit = entries.get(&slot)?;
        if !ct_eq(hit.token.as_bytes(), token.as_bytes()) {
            return None;
        }
        Some(hit.still_valid(now))
    }

    /// Keeps `a` in `slot` (the [`TokenCache::slot`] of its token, hashed once per request).
    fn remember(&self, slot: u64, a: Accepted, now: u64) {
        if a.token.len() > CACHED_TOKEN_MAX_LEN {
            return;
        }
        debug_assert_eq!(slot, self.slot(&a.token));
        let mut entries = self.entries();
        if entries.len() >= CACHED_TOKENS && !entries.contains_key(&slot) {
            entries.retain(|_, e| e.still_valid(now).is_ok());
            if entries.len() >= CACHED_TOKENS {
                entries.clear();
            }
        }
        entries.insert(slot, a);
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether no token is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `iat` lies more than [`LEEWAY_S`] after `now`.
fn issued_in_future(iat: f64, now: u64) -> bool {
    iat > now.saturating_add(LEEWAY_S) as f64
}

/// A NumericDate as the `jsonwebtoken` crate reads it: a non-negative integer, or a finite
/// float rounded to the nearest second.
fn numeric_date(v: Option<&serde_json::Value>) -> Option<u64> {
    let v = v?;
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f.round() as u64)
    })
}

/// Everything needed to check tokens against one endpoint's rendered settings, built once
/// (the HMAC of each allowed algorithm keyed with the secret). Holds the secret: never logged,
/// and its `Debug` shows nothing of it.
pub struct Verifier {
    key: String,
    require_exp: bool,
    empty_secret: bool,
    hs256: Hmac<sha2::Sha256>,
    hs384: Hmac<sha2::Sha384>,
    hs512: Hmac<sha2::Sha512>,
    /// Tokens that passed.
    cache: TokenCache,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

/// The claims a token's checks read, from one parse of its payload. A present claim is
/// `Some` even when it is `null` (`present`); naming a field twice fails the parse (serde's
/// derive refuses duplicates), so `sub` and `aud` are listed only for that.
#[derive(Deserialize)]
struct Claims {
    #[serde(default, deserialize_with = "present")]
    iss: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    exp: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    nbf: Option<Json>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<Json>,
    #[serde(default, deserialize_with = "present_data")]
    data: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    sub: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    aud: Option<IgnoredAny>,
}

/// A claim that is there, `null` included.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(d).map(Some)
}

/// The `data` claim, `null` included, read straight into a [`Value`] (as `Value::from` of
/// the JSON value would give it, without building the JSON value first).
fn present_data<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    d.deserialize_any(DataVisitor).map(Some)
}

/// Builds the [`Value`] that `Value::from(&serde_json::Value)` gives for the same JSON:
/// integers that fit `i64` → `Int`, other numbers → `Float` (a non-finite float → `Null`, as
/// serde_json's own value does), strings → `Str`, objects keep their first key order and
/// their last value for a repeated key.
struct DataVisitor;

impl<'de> serde::de::Visitor<'de> for DataVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(if v.is_finite() {
            Value::Float(v)
        } else {
            Value::Null
        })
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::str(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(DataVisitor)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(DataSeed)? {
            items.push(v);
        }
        Ok(Value::list(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = crate::value::Map::with_capacity(map.size_hint().unwrap_or(0).min(64));
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let v = map.next_value_seed(DataSeed)?;
            fields.insert(std::sync::Arc::from(&*k), v);
        }
        Ok(Value::map(fields))
    }
}

/// [`DataVisitor`] as a seed (for the items of lists and maps).
struct DataSeed;

impl<'de> serde::de::DeserializeSeed<'de> for DataSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(DataVisitor)
    }
}

/// A claim that counts as present for the `jsonwebtoken` crate (which reads `null` as absent).
fn given(v: &Option<Json>) -> Option<&Json> {
    v.as_ref().filter(|v| !v.is_null())
}

/// The issuer as the `jsonwebtoken` crate parses it: a string, or a list of strings.
fn issuer_parses(iss: Option<&Json>) -> bool {
    match iss {
        Some(Json::String(_)) => true,
        Some(Json::Array(a)) => a.iter().all(Json::is_string),
        _ => false,
    }
}

fn malformed() -> AuthError {
    invalid("malformed token")
}

/// The header parts most issuers write (`flexscript token` and the `jsonwebtoken` crate:
/// `{"typ":"JWT","alg":…}`; PyJWT and jose: `{"alg":…,"typ":"JWT"}`; `{"alg":…}`), each for
/// HS256, HS384 and HS512, base64url-encoded, with their algorithm. A token whose header part
/// is one of these exact strings skips the header's decoding and parse: the parse of each gives
/// that algorithm (a test checks), so nothing is accepted or refused differently.
fn known_header(part: &str) -> Option<Algorithm> {
    static KNOWN: std::sync::LazyLock<Vec<(String, Algorithm)>> = std::sync::LazyLock::new(|| {
        let mut known = Vec::new();
        for (name, alg) in [
            ("HS256", Algorithm::HS256),
            ("HS384", Algorithm::HS384),
            ("HS512", Algorithm::HS512),
        ] {
            for json in [
                format!(r#"{{"typ":"JWT","alg":"{name}"}}"#),
                format!(r#"{{"alg":"{name}","typ":"JWT"}}"#),
                format!(r#"{{"alg":"{name}"}}"#),
            ] {
                known.push((URL_SAFE_NO_PAD.encode(json), alg));
            }
        }
        known
    });
    KNOWN
        .iter()
        .find(|(text, _)| text == part)
        .map(|(_, alg)| *alg)
}

/// A keyed HMAC's verdict on `input` against `sig` (constant-time comparison in `hmac`).
fn mac_verifies<M: Mac + Clone>(keyed: &M, input: &[u8], sig: &[u8]) -> bool {
    let mut m = keyed.clone();
    m.update(input);
    m.verify_slice(sig).is_ok()
}

impl Verifier {
    /// Prepares the checks for `s`.
    pub fn new(s: &AuthSettings<'_>) -> Verifier {
        let secret = s.secret.as_bytes();
        Verifier {
            key: s.key.to_string(),
            require_exp: s.require_exp,
            empty_secret: secret.is_empty(),
            // HMAC takes keys of any length: these never fail.
            hs256: Hmac::new_from_slice(secret).unwrap_or_else(|_| unreachable!()),
            hs384: Hmac::new_from_slice(secret).unwrap_or_else(|_| unreachable!()),
            hs512: Hmac::new_from_slice(secret).unwrap_or_else(|_| unreachable!()),
            cache: TokenCache::default(),
        }
    }

    /// The tokens this verifier remembers as verified.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// Checks the request's token (see [`authenticate`]); `Ok(Some(data))` carries the
    /// token's `data` claim.
    pub fn verify(&self, headers: &HeaderMap) -> Result<Option<Value>, AuthError> {
        let token = extract_token(headers).ok_or(AuthError::Missing)?;
        if token.len() > 16 * 1024 {
            return Err(invalid("token too long"));
        }
        if self.empty_secret {
            return Err(invalid("endpoint secret is not configured"));
        }
        let now = crate::clock::now_millis().div_euclid(1000).max(0) as u64;
        // One keyed hash of the token serves the look-up and, on a miss, the insertion.
        let slot = self.cache.slot(token);
        if let Some(checked) = self.cache.lookup(slot, token, now) {
            return checked;
        }
        let accepted = self.verify_fully(token, now)?;
        let data = accepted.data.clone();
        self.cache.remember(slot, accepted, now);
        Ok(data)
    }

    /// Every check of a token not seen before, in the order (and with the reasons) of the
    /// `jsonwebtoken` crate's `decode` followed by our own checks.
    fn verify_fully(&self, token: &str, now: u64) -> Result<Accepted, AuthError> {
        // header.payload.signature: a header part holding a dot fails its base64 decoding.
        let (signing_input, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
        let (header, payload) = signing_input.rsplit_once('.').ok_or_else(malformed)?;
        // Pin the algorithm: only the HMAC family, chosen by us from a closed list. A header
        // the crate does not parse (including "alg":"none", unknown to it) is malformed.
        let alg = match known_header(header) {
            Some(alg) => alg,
            None => {
                let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
                let header: Header = serde_json::from_slice(&header).map_err(|_| malformed())?;
                header.alg
            }
        };
        if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(invalid("algorithm not allowed"));
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
        let input = signing_input.as_bytes();
        let good = match alg {
            Algorithm::HS256 => mac_verifies(&self.hs256, input, &signature),
            Algorithm::HS384 => mac_verifies(&self.hs384, input, &signature),
            _ => mac_verifies(&self.hs512, input, &signature),
        };
        if !good {
            return Err(invalid("bad signature"));
        }
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| malformed())?;
        // The claims must be a JSON object (serde's derive would also take a list).
        if payload.trim_ascii_start().first() != Some(&b'{') {
            return Err(malformed());
        }
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| malformed())?;
        // Required claims, then the issuer (a list of strings parses but is never our issuer).
        let iss = given(&claims.iss);
        if !issuer_parses(iss) {
            return Err(invalid("missing or malformed claim iss"));
        }
        if self.require_exp && numeric_date(given(&claims.exp)).is_none() {
            return Err(invalid("missing or malformed claim exp"));
        }
        match iss {
            Some(Json::String(iss)) if ct_eq(iss.as_bytes(), self.key.as_bytes()) => {}
            _ => return Err(invalid("wrong issuer")),
        }
        for (claim, message) in [
            (&claims.exp, "malformed claim exp"),
            (&claims.nbf, "malformed claim nbf"),
        ] {
            if claim.is_some() && numeric_date(claim.as_ref()).is_none() {
                return Err(invalid(message));
            }
        }
        let exp = numeric_date(claims.exp.as_ref());
        if exp.is_some_and(|exp| exp < now.saturating_sub(LEEWAY_S)) {
            return Err(invalid("token expired"));
        }
        let nbf = numeric_date(claims.nbf.as_ref());
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_S)) {
            return Err(invalid("token not yet valid"));
        }
        let iat = match &claims.iat {
            None => None,
            Some(iat) => match iat.as_f64() {
                Some(iat) if issued_in_future(iat, now) => {
                    return Err(invalid("token issued in the future"))
                }
                Some(iat) => Some(iat),
                None => return Err(invalid("malformed claim iat")),
            },
        };
        Ok(Accepted {
            token: token.into(),
            exp,
            nbf,
            iat,
            data: claims.data,
        })
    }
}

/// Why [`sign`] could not sign a token.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignError {
    /// An algorithm other than `HS256`, `HS384` or `HS512`.
    Algorithm(String),
    /// An empty secret.
    EmptySecret,
    /// The JWT library refused (the cause is kept as the source).
    Encode(jsonwebtoken::errors::Error),
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignError::Algorithm(alg) => {
                write!(
                    f,
                    "unsupported algorithm {alg:?} (use HS256, HS384 or HS512)"
                )
            }
            SignError::EmptySecret => f.write_str("the secret is empty"),
            SignError::Encode(_) => f.write_str("could not sign the token"),
        }
    }
}

impl std::error::Error for SignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SignError::Encode(e) => Some(e),
            _ => None,
        }
    }
}

/// Signs a token for `flexscript token`: claims `iss = key`, `iat = now`, `exp = now + ttl_s`
/// (no `exp` when `ttl_s == 0`) and `data` when given. `alg` is `HS256`, `HS384` or `HS512`.
pub fn sign(
    key: &str,
    secret: &str,
    alg: &str,
    ttl_s: u64,
    data: Option<serde_json::Value>,
) -> Result<String, SignError> {
    let algorithm = hs_algorithm(alg).ok_or_else(|| SignError::Algorithm(alg.to_string()))?;
    if secret.is_empty() {
        return Err(SignError::EmptySecret);
    }
    let now = crate::clock::now_millis().div_euclid(1000).max(0) as u64;
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), key.into());
    claims.insert("iat".into(), now.into());
    if ttl_s > 0 {
        claims.insert("exp".into(), now.saturating_add(ttl_s).into());
    }
    if let Some(data) = data {
        claims.insert("data".into(), data);
    }
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(SignError::Encode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use hyper::http::HeaderValue;
    use serde_json::{json, Value as Json};

    const KEY: &str = "issuer-7f3a";
    const SECRET: &str = "s3cr3t-with-enough-entropy-0123456789";

    fn settings() -> AuthSettings<'static> {
        AuthSettings {
            key: KEY,
            secret: SECRET,
            require_exp: true,
        }
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Builds and signs a token by hand (independent of the crate under test).
    fn token_with(header: &Json, claims: &Json, secret: &str, alg: &str) -> String {
        raw_token(&header.to_string(), &claims.to_string(), secret, alg)
    }

    fn token(claims: &Json) -> String {
        token_with(
            &json!({"alg": "HS256", "typ": "JWT"}),
            claims,
            SECRET,
            "HS256",
        )
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    fn check(claims: &Json) -> Result<Option<Json>, AuthError> {
        authenticate(&bearer(&token(claims)), &settings())
    }

    fn reason<T: std::fmt::Debug>(r: Result<T, AuthError>) -> String {
        match r {
            Err(AuthError::Invalid(reason)) => reason,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn known_answer_token_verifies() {
        // HS256 over {"alg":"HS256","typ":"JWT"} / {"iss":"issuer-7f3a"} with SECRET, computed
        // independently (Python: hmac.new(secret, input, sha256)).
        let fixed = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJpc3N1ZXItN2YzYSJ9.\
                     PFKfmHcwFngey6IGDRPJ1ocDmNgz2yF2T6ZLVLzxhK0";
        let s = AuthSettings {
            require_exp: false,
            ..settings()
        };
        assert_eq!(authenticate(&bearer(fixed), &s), Ok(None));
        // the hand-built signer agrees with the fixed vector
        assert_eq!(token(&json!({"iss": KEY})), fixed);
    }

    #[test]
    fn valid_tokens_and_data_claim() {
        let n = now();
        assert_eq!(
            check(&json!({"iss": KEY, "exp": n + 300, "iat": n})),
            Ok(None)
        );
        assert_eq!(
            check(&json!({"iss": KEY, "exp": n + 300, "data": {"user": 7}})),
            Ok(Some(json!({"user": 7})))
        );
        for alg in ["HS384", "HS512"] {
            let t = token_with(
                &json!({"alg": alg}),
                &json!({"iss": KEY, "exp": n + 60}),
                SECRET,
                alg,
            );
            assert_eq!(authenticate(&bearer(&t), &settings()), Ok(None), "{alg}");
        }
    }

    #[test]
    fn token_sources() {
        let t = token(&json!({"iss": KEY, "exp": now() + 300}));
        for auth in [
            format!("bearer {t}"),
            format!("BEARER  {t} "),
            format!("Bearer {t}"),
        ] {
            let mut h = HeaderMap::new();
            h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
            assert_eq!(authenticate(&h, &settings()), Ok(None), "{auth}");
        }
        let mut h = HeaderMap::new();
        h.insert("token", HeaderValue::from_str(&t).unwrap());
        assert_eq!(authenticate(&h, &settings()), Ok(None));
        // a Basic Authorization header is no token; a token header still counts
        h.insert(
            "authorization",
            HeaderValue::from_static("Basic dXNlcjpwdw=="),
        );
        assert_eq!(authenticate(&h, &settings()), Ok(None));
    }

    #[test]
    fn missing_token_is_403() {
        let e = authenticate(&HeaderMap::new(), &settings()).unwrap_err();
        assert_eq!((e.status(), e.message().as_str()), (403, "missing token"));
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(authenticate(&h, &settings()), Err(AuthError::Missing));
        h.insert("authorization", HeaderValue::from_static("Bearer   "));
        assert_eq!(authenticate(&h, &settings()), Err(AuthError::Missing));
        h.insert("token", HeaderValue::from_static(""));
        assert_eq!(authenticate(&h, &settings()), Err(AuthError::Missing));
    }

    #[test]
    fn bad_signature_and_garbage() {
        let n = now();
        let t = token_with(
            &json!({"alg": "HS256"}),
            &json!({"iss": KEY, "exp": n + 300}),
            "another-secret",
            "HS256",
        );
        let e = authenticate(&bearer(&t), &settings()).unwrap_err();
        assert_eq!(e.status(), 401);
        assert_eq!(reason::<()>(Err(e)), "bad signature");
        for garbage in [
            "abc",
            "a.b.c",
            "....",
            "eyJhbGciOiJIUzI1NiJ9.e30",
            "Zm9v.YmFy.YmF6",
        ] {
            assert_eq!(
                reason(authenticate(&bearer(garbage), &settings())),
                "malformed token",
                "{garbage}"
            );
        }
        // the header says HS384 but the signature is HS256: bad signature
        let t = token_with(
            &json!({"alg": "HS384"}),
            &json!({"iss": KEY, "exp": n + 300}),
            SECRET,
            "HS256",
        );
        assert_eq!(
            reason(authenticate(&bearer(&t), &settings())),
            "bad signature"
        );
    }

    #[test]
    fn issuer_rules() {
        let n = now();
        assert_eq!(
            reason(check(&json!({"iss": "someone-else", "exp": n + 300}))),
            "wrong issuer"
        );
        assert_eq!(
            reason(check(&json!({"exp": n + 300}))),
            "missing or malformed claim iss"
        );
        assert_eq!(
            reason(check(&json!({"iss": [KEY], "exp": n + 300}))),
            "wrong issuer"
        );
        assert_eq!(
            reason(check(&json!({"iss": 5, "exp": n + 300}))),
            "missing or malformed claim iss"
        );
        // aud is ignored
        assert_eq!(
            check(&json!({"iss": KEY, "exp": n + 300, "aud": "anything"})),
            Ok(None)
        );
    }

    #[test]
    fn time_claims_with_leeway() {
        let n = now();
        assert_eq!(
            reason(check(&json!({"iss": KEY}))),
            "missing or malformed claim exp"
        );
        assert_eq!(
            reason(check(&json!({"iss": KEY, "exp": n - 120}))),
            "token expired"
        );
        assert_eq!(check(&json!({"iss": KEY, "exp": n - 30})), Ok(None));
        assert_eq!(
            reason(check(&json!({"iss": KEY, "exp": n + 300, "nbf": n + 120}))),
            "token not yet valid"
        );
        assert_eq!(
            check(&json!({"iss": KEY, "exp": n + 300, "nbf": n + 30})),
            Ok(None)
        );
        assert_eq!(
            reason(check(&json!({"iss": KEY, "exp": n + 300, "iat": n + 120}))),
            "token issued in the future"
        );
        assert_eq!(
            check(&json!({"iss": KEY, "exp": n + 300, "iat": n + 30})),
            Ok(None)
        );
        assert_eq!(
            reason(check(&json!({"iss": KEY, "exp": "soon"}))),
            "missing or malformed claim exp"
        );
        assert_eq!(
            reason(check(&json!({"iss": KEY, "exp": n + 300, "iat": "x"}))),
            "malformed claim iat"
        );
        // require_exp = false: no exp is fine, but a present exp is still checked
        let lax = AuthSettings {
            require_exp: false,
            ..settings()
        };
        assert_eq!(
            authenticate(&bearer(&token(&json!({"iss": KEY}))), &lax),
            Ok(None)
        );
        assert_eq!(
            reason(authenticate(
                &bearer(&token(&json!({"iss": KEY, "exp": n - 120}))),
                &lax
            )),
            "token expired"
        );
    }

    #[test]
    fn only_hmac_algorithms() {
        let claims = json!({"iss": KEY, "exp": now() + 300});
        // alg none, unsigned
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(claims.to_string().as_bytes())
        );
        assert_eq!(
            reason(authenticate(&bearer(&none), &settings())),
            "malformed token"
        );
        for alg in ["RS256", "ES256", "PS256", "EdDSA", "RS512", "ES384"] {
            let t = token_with(&json!({"alg": alg}), &claims, SECRET, "none");
            assert_eq!(
                reason(authenticate(&bearer(&t), &settings())),
                "algorithm not allowed",
                "{alg}"
            );
            // even with an HMAC signature made with the secret (key-confusion attack)
            let t = token_with(&json!({"alg": alg}), &claims, SECRET, "HS256");
            assert_eq!(
                reason(authenticate(&bearer(&t), &settings())),
                "algorithm not allowed",
                "{alg}"
            );
        }
    }

    #[test]
    fn empty_secret_refuses_everything() {
        let t = token_with(
            &json!({"alg": "HS256"}),
            &json!({"iss": KEY, "exp": now() + 300}),
            "",
            "HS256",
        );
        let s = AuthSettings {
            secret: "",
            ..settings()
        };
        assert_eq!(
            reason(authenticate(&bearer(&t), &s)),
            "endpoint secret is not configured"
        );
    }

    #[test]
    fn messages_never_contain_token_or_secret() {
        let n = now();
        let cases = [
            json!({"iss": KEY, "exp": n - 999}),
            json!({"iss": "x", "exp": n + 300}),
            json!({"exp": n + 300}),
        ];
        for c in cases {
            let t = token(&c);
            let e = authenticate(&bearer(&t), &settings()).unwrap_err();
            let msg = e.message();
            assert!(
                !msg.contains(&t) && !msg.contains(SECRET) && !msg.contains(KEY),
                "{msg}"
            );
            for part in t.split('.') {
                assert!(!msg.contains(part), "{msg}");
            }
        }
    }

    #[test]
    fn sign_round_trips() {
        for alg in ["HS256", "HS384", "HS512"] {
            let t = sign(KEY, SECRET, alg, 600, Some(json!({"a": 1}))).unwrap();
            assert_eq!(
                authenticate(&bearer(&t), &settings()),
                Ok(Some(json!({"a": 1}))),
                "{alg}"
            );
            let h = jsonwebtoken::decode_header(&t).unwrap();
            assert_eq!(format!("{:?}", h.alg), alg);
        }
        let t = sign(KEY, SECRET, "HS256", 0, None).unwrap();
        assert_eq!(
            reason(authenticate(&bearer(&t), &settings())),
            "missing or malformed claim exp"
        );
        assert!(sign(KEY, SECRET, "RS256", 60, None).is_err());
        assert!(sign(KEY, SECRET, "none", 60, None).is_err());
        assert!(sign(KEY, "", "HS256", 60, None).is_err());
        // wrong secret does not verify
        let t = sign(KEY, "other", "HS256", 60, None).unwrap();
        assert_eq!(
            reason(authenticate(&bearer(&t), &settings())),
            "bad signature"
        );
    }

    #[test]
    fn verified_tokens_are_remembered_and_their_time_claims_checked_again() {
        let n = now();
        let v = Verifier::new(&settings());
        let t =
            token(&json!({"iss": KEY, "exp": n + 30, "nbf": n - 5, "iat": n, "data": {"u": 1}}));
        let first = v.verify(&bearer(&t)).unwrap().map(|d| d.to_json());
        assert_eq!(first, Some(json!({"u": 1})));
        assert_eq!(v.cache().len(), 1);
        // the second use is a cache hit with the same answer
        let second = v.verify(&bearer(&t)).unwrap().map(|d| d.to_json());
        assert_eq!(second, first);
        assert_eq!(v.cache().len(), 1);
        // once the clock passes exp + leeway, the remembered token is refused as a fresh one is
        let later = n as u64 + 30 + LEEWAY_S + 1;
        assert_eq!(
            v.cache.lookup(v.cache.slot(&t), &t, later).map(reason),
            Some("token expired".to_string())
        );
        assert!(v
            .cache
            .lookup(v.cache.slot(&t), &t, later - 2)
            .is_some_and(|r| r.is_ok()));
        // a time travelling clock is checked too
        let earlier = (n as u64).saturating_sub(200);
        assert_eq!(
            v.cache.lookup(v.cache.slot(&t), &t, earlier).map(reason),
            Some("token not yet valid".to_string())
        );
        // a token with another payload under a remembered token's signature lands in its slot
        // (the slot hashes the signature part) and still fails; the remembered one still hits
        let (signed, sig) = t.rsplit_once('.').unwrap();
        let (head, _) = signed.split_once('.').unwrap();
        let other_payload = b64(json!({"iss": KEY, "exp": n + 30, "data": {"u": 2}})
            .to_string()
            .as_bytes());
        let forged = format!("{head}.{other_payload}.{sig}");
        assert_eq!(v.cache.slot(&forged), v.cache.slot(&t));
        assert_eq!(reason(v.verify(&bearer(&forged))), "bad signature");
        assert_eq!(v.cache().len(), 1);
        assert_eq!(v.verify(&bearer(&t)).unwrap().map(|d| d.to_json()), first);
        // failures are never remembered; a tampered copy of a remembered token still fails
        let mut tampered = t.clone();
        tampered.push('A');
        assert_eq!(reason(v.verify(&bearer(&tampered))), "bad signature");
        let expired = token(&json!({"iss": KEY, "exp": n - 120}));
        assert!(v.verify(&bearer(&expired)).is_err());
        assert_eq!(v.cache().len(), 1);
    }

    #[test]
    fn the_token_cache_is_bounded() {
        let n = now();
        let v = Verifier::new(&settings());
        for i in 0..(CACHED_TOKENS + 10) {
            let t = token(&json!({"iss": KEY, "exp": n + 300, "i": i}));
            assert_eq!(v.verify(&bearer(&t)), Ok(None));
            assert!(v.cache().len() <= CACHED_TOKENS);
        }
        assert!(!v.cache().is_empty());
        // long tokens are verified every time, never kept
        let long =
            token(&json!({"iss": KEY, "exp": n + 300, "pad": "x".repeat(CACHED_TOKEN_MAX_LEN)}));
        let before = v.cache().len();
        let v2 = Verifier::new(&settings());
        assert_eq!(v2.verify(&bearer(&long)), Ok(None));
        assert!(v2.cache().is_empty());
        assert_eq!(v.cache().len(), before);
    }

    #[test]
    fn a_remembered_token_is_not_accepted_by_another_verifier() {
        // A reload builds a new verifier: a token signed with the old secret must fail there.
        let n = now();
        let v = Verifier::new(&settings());
        let t = token(&json!({"iss": KEY, "exp": n + 300}));
        assert_eq!(v.verify(&bearer(&t)), Ok(None));
        let rotated = Verifier::new(&AuthSettings {
            secret: "a-new-secret-after-reload-0123456789",
            ..settings()
        });
        assert_eq!(reason(rotated.verify(&bearer(&t))), "bad signature");
    }

    /// What a check keeps of an accepted token: `exp`, `nbf` and the `data` claim.
    type Kept = (Option<u64>, Option<u64>, Option<Json>);

    /// The checks as they were made with the `jsonwebtoken` crate's `decode` before the
    /// one-pass verification: the reference `verify_fully` is compared with.
    fn verify_with_crate(s: &AuthSettings<'_>, token: &str, now: u64) -> Result<Kept, String> {
        use jsonwebtoken::errors::ErrorKind;
        use jsonwebtoken::{DecodingKey, Validation};
        let map_error = |kind: &ErrorKind| match kind {
            ErrorKind::InvalidSignature => "bad signature".to_string(),
            ErrorKind::InvalidIssuer => "wrong issuer".to_string(),
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                "algorithm not allowed".to_string()
            }
            ErrorKind::MissingRequiredClaim(c) => format!("missing or malformed claim {c}"),
            _ => "malformed token".to_string(),
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token")?;
        if !matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err("algorithm not allowed".into());
        }
        let mut v = Validation::new(header.alg);
        v.leeway = LEEWAY_S;
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.set_issuer(&[s.key]);
        v.required_spec_claims.clear();
        v.required_spec_claims.insert("iss".to_string());
        if s.require_exp {
            v.required_spec_claims.insert("exp".to_string());
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, Json>>(
            token,
            &DecodingKey::from_secret(s.secret.as_bytes()),
            &v,
        )
        .map_err(|e| map_error(e.kind()))?;
        let mut claims = data.claims;
        match claims.get("iss") {
            Some(Json::String(iss)) if iss == s.key => {}
            Some(_) => return Err("wrong issuer".into()),
            None => return Err("missing or malformed claim iss".into()),
        }
        for (claim, message) in [
            ("exp", "malformed claim exp"),
            ("nbf", "malformed claim nbf"),
        ] {
            if claims
                .get(claim)
                .is_some_and(|v| numeric_date(Some(v)).is_none())
            {
                return Err(message.into());
            }
        }
        let exp = numeric_date(claims.get("exp"));
        if exp.is_some_and(|exp| exp < now.saturating_sub(LEEWAY_S)) {
            return Err("token expired".into());
        }
        let nbf = numeric_date(claims.get("nbf"));
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_S)) {
            return Err("token not yet valid".into());
        }
        match claims.get("iat") {
            None => {}
            Some(iat) => match iat.as_f64() {
                Some(iat) if issued_in_future(iat, now) => {
                    return Err("token issued in the future".into())
                }
                Some(_) => {}
                None => return Err("malformed claim iat".into()),
            },
        }
        Ok((exp, nbf, claims.remove("data")))
    }

    /// A token over raw (possibly broken) header and claims texts, signed with `alg` (another
    /// name: a bogus signature).
    fn raw_token(header: &str, claims: &str, secret: &str, alg: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let sig = match alg {
            "HS256" => {
                let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                m.update(input.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            "HS384" => {
                let mut m = Hmac::<sha2::Sha384>::new_from_slice(secret.as_bytes()).unwrap();
                m.update(input.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            "HS512" => {
                let mut m = Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
                m.update(input.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            _ => b"x".to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }

    #[test]
    fn one_pass_checks_agree_with_the_crate() {
        let n = now() as u64;
        let claims_texts: Vec<String> = [
            json!({"iss": KEY, "exp": n + 300}),
            json!({"iss": KEY, "exp": n + 300, "data": {"u": [1, 2, {"x": null}]}}),
            json!({"iss": KEY, "exp": n + 300, "data": null}),
            json!({"iss": KEY, "exp": (n + 300) as f64 + 0.4}),
            json!({"iss": KEY, "exp": 1e30}),
            json!({"iss": KEY, "exp": -5}),
            json!({"iss": KEY, "exp": null}),
            json!({"iss": KEY, "exp": "soon"}),
            json!({"iss": KEY, "exp": n - 61}),
            json!({"iss": KEY, "exp": n - 59}),
            json!({"iss": KEY, "exp": n + 300, "nbf": n + 61}),
            json!({"iss": KEY, "exp": n + 300, "nbf": n + 59}),
            json!({"iss": KEY, "exp": n + 300, "nbf": "x"}),
            json!({"iss": KEY, "exp": n + 300, "nbf": null}),
            json!({"iss": KEY, "exp": n + 300, "iat": n + 61}),
            json!({"iss": KEY, "exp": n + 300, "iat": n as f64 + 59.5}),
            json!({"iss": KEY, "exp": n + 300, "iat": "x"}),
            json!({"iss": KEY, "exp": n + 300, "iat": null}),
            json!({"iss": KEY}),
            json!({"iss": "other", "exp": n + 300}),
            json!({"iss": [KEY], "exp": n + 300}),
            json!({"iss": [], "exp": n + 300}),
            json!({"iss": [KEY, 5], "exp": n + 300}),
            json!({"iss": 5, "exp": n + 300}),
            json!({"iss": null, "exp": n + 300}),
            json!({"exp": n + 300}),
            json!({"iss": KEY, "exp": n + 300, "sub": 5, "aud": ["a", 1]}),
            json!({"iss": format!("{KEY}x"), "exp": n + 300}),
        ]
        .iter()
        .map(|c| c.to_string())
        .chain(
            [
                "[1, 2]",
                "\"text\"",
                "7",
                "",
                "{",
                " {\"iss\": \"issuer-7f3a\", \"exp\": 99999999999}",
                "{\"iss\": \"issuer-7f3a\", \"exp\": 99999999999, \"exp\": 1}",
                "{\"iss\": \"issuer-7f3a\", \"iss\": \"x\", \"exp\": 99999999999}",
                "{\"iss\": \"issuer-7f3a\", \"exp\": 99999999999, \"sub\": 1, \"sub\": 2}",
            ]
            .map(String::from),
        )
        .collect();
        let headers = [
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"typ":"JWT","alg":"HS512"}"#,
            r#"{"alg":"HS384"}"#,
            r#"{"alg":"HS512","kid":"k1"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"none"}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":"HS256","kid":5}"#,
            r#"[]"#,
            r#"{"alg":"HS256","#,
        ];
        let mut compared = 0;
        for require_exp in [true, false] {
            let s = AuthSettings {
                require_exp,
                ..settings()
            };
            let v = Verifier::new(&s);
            for header in headers {
                for claims in &claims_texts {
                    for (alg, secret) in [
                        ("HS256", SECRET),
                        ("HS384", SECRET),
                        ("HS512", SECRET),
                        ("HS256", "wrong-secret"),
                    ] {
                        let t = raw_token(header, claims, secret, alg);
                        let mut tokens = vec![t.clone(), format!("{t}A"), format!("x.{t}")];
                        tokens.push(t.replacen('.', "..", 1));
                        for t in tokens {
                            let ours = v
                                .verify_fully(&t, n)
                                .map(|a| (a.exp, a.nbf, a.data.map(|d| d.to_json())));
                            let theirs = verify_with_crate(&s, &t, n);
                            // Both refuse; the crate's order of its required claims varies.
                            let same = match (&ours, &theirs) {
                                (Err(AuthError::Invalid(a)), Err(b))
                                    if a.starts_with("missing or malformed")
                                        && b.starts_with("missing or malformed") =>
                                {
                                    true
                                }
                                (Err(AuthError::Invalid(a)), Err(b)) => a == b,
                                (Ok(a), Ok(b)) => a == b,
                                _ => false,
                            };
                            assert!(
                                same,
                                "{header} {claims} {alg} {secret}: ours {ours:?}, crate {theirs:?}"
                            );
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert!(compared > 2000);
    }

    #[test]
    fn known_headers_parse_to_their_algorithm() {
        let known = [
            r#"{"typ":"JWT","alg":"HS256"}"#,
            r#"{"alg":"HS384","typ":"JWT"}"#,
            r#"{"alg":"HS512"}"#,
        ];
        for json in known {
            let part = b64(json.as_bytes());
            let parsed: Header = serde_json::from_str(json).unwrap();
            assert_eq!(known_header(&part), Some(parsed.alg), "{json}");
        }
        // Every entry of the table, as the crate reads it.
        for alg in ["HS256", "HS384", "HS512"] {
            for json in [
                format!(r#"{{"typ":"JWT","alg":"{alg}"}}"#),
                format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
                format!(r#"{{"alg":"{alg}"}}"#),
            ] {
                let t = format!("{}.e30.c2ln", b64(json.as_bytes()));
                let header = jsonwebtoken::decode_header(&t).unwrap();
                assert_eq!(known_header(&b64(json.as_bytes())), Some(header.alg));
            }
        }
        // What `flexscript token` writes is in the table.
        let t = sign(KEY, SECRET, "HS256", 60, None).unwrap();
        assert_eq!(
            known_header(t.split('.').next().unwrap()),
            Some(Algorithm::HS256)
        );
        for other in [
            r#"{"alg":"HS256","typ":"JWT","kid":"k"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"none"}"#,
            r#"{ "alg":"HS256"}"#,
        ] {
            assert_eq!(known_header(&b64(other.as_bytes())), None, "{other}");
        }
    }

    #[test]
    fn data_claim_reads_as_value_from_json() {
        for text in [
            "null",
            "true",
            "0",
            "-9223372036854775808",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "1.5",
            "-0.0",
            "1e300",
            r#""caf\u00e9 \n \ud83d\ude00""#,
            "[]",
            "{}",
            r#"[1, [2, [3, {"a": null}]], "x"]"#,
            r#"{"b": 1, "a": 2, "b": 3, "c": {"d": [true, false]}}"#,
        ] {
            let want = Value::from(&serde_json::from_str::<Json>(text).unwrap());
            let mut de = serde_json::Deserializer::from_str(text);
            let got = present_data(&mut de).unwrap().unwrap();
            assert!(
                crate::value::strict_eq(&got, &want) && got.to_json() == want.to_json(),
                "{text}: {got:?} vs {want:?}"
            );
            // the key order too
            assert_eq!(
                got.to_json().to_string(),
                want.to_json().to_string(),
                "{text}"
            );
        }
    }

    #[test]
    fn duplicate_claims_are_malformed() {
        let v = Verifier::new(&settings());
        for claims in [
            r#"{"iss": "issuer-7f3a", "exp": 99999999999, "exp": 1}"#,
            r#"{"iss": "x", "iss": "issuer-7f3a", "exp": 99999999999}"#,
            r#"{"iss": "issuer-7f3a", "exp": 99999999999, "data": 1, "data": 2}"#,
            r#"{"iss": "issuer-7f3a", "exp": 99999999999, "iat": 1, "iat": 2}"#,
        ] {
            let t = raw_token(r#"{"alg":"HS256"}"#, claims, SECRET, "HS256");
            assert_eq!(reason(v.verify(&bearer(&t))), "malformed token", "{claims}");
        }
    }
}
