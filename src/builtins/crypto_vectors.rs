//! Known-answer tests for the security builtins: RFC 4231 (HMAC-SHA256/384/512), RFC 2202
//! (HMAC-MD5/SHA1) and the jwt.io HS256 example, each checked directly and through templates
//! rendered by the engine.

use super::crypto::{hmac, jwt_verify};
use crate::{Engine, RenderOptions};

/// `(key, data)` as bytes and the expected hex MACs.
struct Vector {
    key: Vec<u8>,
    data: Vec<u8>,
    algo: &'static str,
    hex: &'static str,
}

fn rfc4231() -> Vec<Vector> {
    let case1_key = vec![0x0b; 20];
    let case1_data = b"Hi There".to_vec();
    let case2_key = b"Jefe".to_vec();
    let case2_data = b"what do ya want for nothing?".to_vec();
    let case6_key = vec![0xaa; 131];
    let case6_data = b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec();
    let v = |key: &Vec<u8>, data: &Vec<u8>, algo, hex| Vector {
        key: key.clone(),
        data: data.clone(),
        algo,
        hex,
    };
    vec![
        v(&case1_key, &case1_data, "sha256", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        v(&case1_key, &case1_data, "sha384", "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"),
        v(&case1_key, &case1_data, "sha512", "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"),
        v(&case2_key, &case2_data, "sha256", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        v(&case2_key, &case2_data, "sha384", "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"),
        v(&case2_key, &case2_data, "sha512", "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
        v(&case6_key, &case6_data, "sha256", "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        v(&case6_key, &case6_data, "sha384", "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952"),
        v(&case6_key, &case6_data, "sha512", "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"),
    ]
}

fn rfc2202() -> Vec<Vector> {
    let v = |key: Vec<u8>, data: &[u8], algo, hex| Vector {
        key,
        data: data.to_vec(),
        algo,
        hex,
    };
    vec![
        v(
            vec![0x0b; 16],
            b"Hi There",
            "md5",
            "9294727a3638bb1c13f48ef8158bfc9d",
        ),
        v(
            b"Jefe".to_vec(),
            b"what do ya want for nothing?",
            "md5",
            "750c783e6ab0b503eaa86e310a5db738",
        ),
        v(
            vec![0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "md5",
            "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
        ),
        v(
            vec![0x0b; 20],
            b"Hi There",
            "sha1",
            "b617318655057264e28bc0b6fb378c8ef146be00",
        ),
        v(
            b"Jefe".to_vec(),
            b"what do ya want for nothing?",
            "sha1",
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        ),
        v(
            vec![0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "sha1",
            "aa4ae5e15272d00e95705637ce8a3b55ed402112",
        ),
    ]
}

fn render(src: &str, ctx: serde_json::Value) -> String {
    let engine = Engine::new();
    let tpl = engine.compile("test", src).expect("compiles");
    tpl.render_with(&ctx, RenderOptions::default())
        .unwrap_or_else(|e| panic!("render failed: {e}"))
}

#[test]
fn hmac_vectors_directly() {
    for v in rfc4231().into_iter().chain(rfc2202()) {
        let mac = hmac(v.algo, &v.key, &v.data).expect("known algorithm");
        assert_eq!(hex::encode(mac), v.hex, "{} over {:?}", v.algo, v.data);
    }
}

#[test]
fn hmac_vectors_through_templates() {
    // Keys and data that are valid UTF-8 go through the template as strings.
    for v in rfc4231().into_iter().chain(rfc2202()) {
        let (Ok(key), Ok(data)) = (
            String::from_utf8(v.key.clone()),
            String::from_utf8(v.data.clone()),
        ) else {
            continue;
        };
        let ctx = serde_json::json!({"algo": v.algo, "key": key, "data": data});
        let out = render("{{ hashHmac(algo, data, key) }}", ctx);
        assert_eq!(out, v.hex, "{} via template", v.algo);
    }
}

const JWT_IO: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

#[test]
fn jwt_io_example_directly() {
    let claims = jwt_verify(JWT_IO, "your-256-bit-secret", "HS256").expect("valid token");
    assert_eq!(
        claims,
        serde_json::json!({"sub": "1234567890", "name": "John Doe", "iat": 1516239022})
    );
    assert!(jwt_verify(JWT_IO, "your-256-bit-secreT", "HS256").is_none());
    assert!(jwt_verify(JWT_IO, "your-256-bit-secret", "HS512").is_none());
}

#[test]
fn jwt_io_example_through_templates() {
    let ctx = serde_json::json!({"token": JWT_IO});
    let out = render(
        r#"{% set c = jwtDecode(token, "your-256-bit-secret") %}{{ c.sub }}|{{ c.name }}|{{ c.iat }}"#,
        ctx.clone(),
    );
    assert_eq!(out, "1234567890|John Doe|1516239022");
    let out = render(
        r#"{{ jwtDecode(token, "wrong") is null ? "null" : "claims" }}"#,
        ctx,
    );
    assert_eq!(out, "null");
    // Encoding the same claims gives a token whose signature is the HMAC of its first two parts.
    let token = render(
        r#"{{ jwtEncode({sub: "1234567890", name: "John Doe", iat: 1516239022}, "your-256-bit-secret") }}"#,
        serde_json::json!({}),
    );
    let (signed, sig) = token.rsplit_once('.').expect("three parts");
    let mac = hmac("sha256", b"your-256-bit-secret", signed.as_bytes()).expect("sha256");
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac),
        sig
    );
    assert_eq!(
        jwt_verify(&token, "your-256-bit-secret", "HS256"),
        Some(serde_json::json!({"sub": "1234567890", "name": "John Doe", "iat": 1516239022}))
    );
}
