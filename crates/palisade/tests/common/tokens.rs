//! JWTs made by hand for the identity tests: HS256 with a test secret and EdDSA with the
//! RFC 8037 key, so a test controls every header field and claim (including the wrong ones).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::Signer;
use hmac::{KeyInit, Mac};

/// The HS256 secret of the tests' `keys_file` (32 bytes or more, as the verifier requires).
pub const SECRET: &[u8] = b"palisade-test-secret-0123456789abcdef";

/// The `keys_file` holding [`SECRET`] as a JWK.
pub fn hs256_jwk() -> String {
    serde_json::json!({ "kty": "oct", "k": B64.encode(SECRET), "alg": "HS256" }).to_string()
}

/// RFC 8037 Appendix A.1's Ed25519 key: private `d` and public `x`.
const ED_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
pub const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

/// A JWK Set with the Ed25519 key under each of `kids`.
pub fn ed_jwks(kids: &[&str]) -> String {
    let keys: Vec<_> = kids
        .iter()
        .map(|kid| serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": kid, "alg": "EdDSA" }))
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

fn signing_input(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

/// An HS256 token with `claims`, signed with `secret`.
pub fn hs256(claims: serde_json::Value, secret: &[u8]) -> String {
    let input = signing_input(
        &serde_json::json!({ "alg": "HS256", "typ": "JWT" }),
        &claims,
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

/// An EdDSA token with `claims` under key id `kid`.
pub fn eddsa(claims: serde_json::Value, kid: &str) -> String {
    let d: [u8; 32] = B64.decode(ED_D).unwrap().try_into().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&d);
    let header = serde_json::json!({ "alg": "EdDSA", "kid": kid });
    let input = signing_input(&header, &claims);
    format!(
        "{input}.{}",
        B64.encode(key.sign(input.as_bytes()).to_bytes())
    )
}

/// Now, in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims the tests' verifier accepts: issuer, audience, an hour of validity, and `extra`.
pub fn claims(sub: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut claims = serde_json::json!({
        "iss": "https://issuer.test/",
        "aud": "orders",
        "sub": sub,
        "exp": now() + 3600,
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    claims
}
