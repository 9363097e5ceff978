//! The published examples: RFC 7515 Appendix A.1 (HS256), A.2 (RS256), A.3 (ES256) and RFC 8037
//! Appendix A.4 (Ed25519), verified with the published keys as a JWK and as a PEM.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use super::super::jwt::verify_jws;
use super::super::{Identity, JwtError, JwtRules, KeySet, Method};
use super::support::*;

fn rfc_token(header: &str, signature: &str) -> String {
    format!("{header}.{RFC_PAYLOAD}.{signature}")
}

/// The RFC payload names no `sub`; its `iss` stands in as the subject.
fn rfc_rules(alg: &str) -> JwtRules {
    let mut rules = rules(&[alg]);
    rules.user_claim = "iss".to_owned();
    rules
}

/// Before the examples' `exp` (1300819380, in March 2011).
const BEFORE_EXP: u64 = RFC_EXP - 100;

fn joe() -> Identity {
    Identity {
        subject: "joe".to_owned(),
        tier: None,
        method: Method::Jwt,
        scopes: vec![],
    }
}

#[test]
fn a1_hs256_verifies_with_the_oct_jwk() {
    let keys = KeySet::from_json(&json!({ "kty": "oct", "k": A1_K }).to_string()).unwrap();
    let token = rfc_token(A1_HEADER, A1_SIGNATURE);
    let v = verifier(rfc_rules("HS256"), keys);
    assert_eq!(v.verify_cached(&token, BEFORE_EXP), Ok(joe()));
    assert_eq!(
        v.verify_cached(&token, RFC_EXP + 60),
        Err(JwtError::Expired)
    );
}

#[test]
fn a2_rs256_verifies_with_the_jwk_and_both_pem_forms() {
    let token = rfc_token(A2_HEADER, A2_SIGNATURE);
    let jwk = json!({ "kty": "RSA", "n": A2_N, "e": A2_E }).to_string();
    for keys in [
        KeySet::from_json(&jwk).unwrap(),
        KeySet::from_pem(RSA_PEM.as_bytes()).unwrap(),
        KeySet::from_pem(RSA_PKCS1_PEM.as_bytes()).unwrap(),
    ] {
        let v = verifier(rfc_rules("RS256"), keys);
        assert_eq!(v.verify_cached(&token, BEFORE_EXP), Ok(joe()));
    }
}

#[test]
fn a3_es256_verifies_with_the_jwk_and_the_pem() {
    let token = rfc_token(A3_HEADER, A3_SIGNATURE);
    let jwk = json!({ "kty": "EC", "crv": "P-256", "x": A3_X, "y": A3_Y }).to_string();
    for keys in [
        KeySet::from_json(&jwk).unwrap(),
        KeySet::from_pem(EC_PEM.as_bytes()).unwrap(),
    ] {
        let v = verifier(rfc_rules("ES256"), keys);
        assert_eq!(v.verify_cached(&token, BEFORE_EXP), Ok(joe()));
    }
}

/// The A.4 payload is the text "Example of Ed25519 signing", not a claims set: the signature
/// verifies, and the token is then refused as a JWT for its payload, not its signature.
#[test]
fn rfc8037_a4_ed25519_signature_verifies_with_the_published_key() {
    let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": ED_X }).to_string();
    for keys in [
        KeySet::from_json(&jwk).unwrap(),
        KeySet::from_pem(ED_PEM.as_bytes()).unwrap(),
    ] {
        assert!(verify_jws(ED_JWS, &keys, &[Algorithm::EdDSA]).is_ok());
        let v = verifier(rules(&["EdDSA"]), keys);
        assert_eq!(v.verify_cached(ED_JWS, NOW), Err(JwtError::Malformed));
    }
    let mut tampered = ED_JWS.to_owned();
    tampered.replace_range(25..26, "Z");
    let keys = KeySet::from_pem(ED_PEM.as_bytes()).unwrap();
    assert_eq!(
        verify_jws(&tampered, &keys, &[Algorithm::EdDSA]).err(),
        Some(JwtError::BadSignature)
    );
}

/// The signing keys the other tests use are the RFC's: with the deterministic algorithms they
/// reproduce the published signatures.
#[test]
fn the_rfc_private_keys_reproduce_the_published_signatures() {
    fn sign(
        input: &str,
        key: &EncodingKey,
        alg: Algorithm,
    ) -> jsonwebtoken::errors::Result<String> {
        jsonwebtoken::crypto::sign(input.as_bytes(), key, alg)
    }
    let a1 = format!("{A1_HEADER}.{RFC_PAYLOAD}");
    let a2 = format!("{A2_HEADER}.{RFC_PAYLOAD}");
    let (ed_input, ed_signature) = ED_JWS.rsplit_once('.').unwrap();
    assert_eq!(
        sign(&a1, &hmac_signer(), Algorithm::HS256).unwrap(),
        A1_SIGNATURE
    );
    assert_eq!(
        sign(&a2, &rsa_signer(), Algorithm::RS256).unwrap(),
        A2_SIGNATURE
    );
    assert_eq!(
        sign(ed_input, &ed_signer(), Algorithm::EdDSA).unwrap(),
        ed_signature
    );
    // ECDSA signatures are randomized: a signature of the A.3 key verifies with its public key.
    let a3 = format!("{A3_HEADER}.{RFC_PAYLOAD}");
    let es = sign(&a3, &ec_signer(), Algorithm::ES256).unwrap();
    let keys = KeySet::from_pem(EC_PEM.as_bytes()).unwrap();
    assert!(verify_jws(&format!("{a3}.{es}"), &keys, &[Algorithm::ES256]).is_ok());
}

#[test]
fn an_eddsa_jwt_signed_with_the_rfc8037_key_gives_its_identity() {
    let token = sign(
        &json!({ "alg": "EdDSA" }),
        &claims(),
        &ed_signer(),
        Algorithm::EdDSA,
    );
    let v = verifier(
        rules(&["EdDSA"]),
        KeySet::from_pem(ED_PEM.as_bytes()).unwrap(),
    );
    assert_eq!(v.verify_cached(&token, NOW).unwrap().subject, "alice");
}
