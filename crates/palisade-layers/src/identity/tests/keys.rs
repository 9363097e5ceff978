//! Loading keys: what each form yields, and the keys refused (with a reason) or left out of a
//! set.

use serde_json::json;

use super::super::KeySet;
use super::super::keys::KeyKind;
use super::support::*;

fn kinds(set: &KeySet) -> Vec<KeyKind> {
    set.keys().iter().map(|k| k.kind()).collect()
}

#[test]
fn each_pem_form_yields_its_kind() {
    let kind = |pem: &str| kinds(&KeySet::from_pem(pem.as_bytes()).unwrap());
    assert_eq!(kind(RSA_PEM), [KeyKind::Rsa]);
    assert_eq!(kind(RSA_PKCS1_PEM), [KeyKind::Rsa]);
    assert_eq!(kind(EC_PEM), [KeyKind::EcP256]);
    assert_eq!(kind(P384_PEM), [KeyKind::EcP384]);
    assert_eq!(kind(ED_PEM), [KeyKind::Ed25519]);
}

#[test]
fn pem_that_is_not_a_supported_public_key_is_refused() {
    let cert = RSA_PEM.replace("PUBLIC KEY", "CERTIFICATE");
    let private = RSA_PEM.replace("PUBLIC KEY", "PRIVATE KEY");
    let cases = [
        (cert.as_str(), "certificate"),
        (private.as_str(), "private key"),
        (K256_PEM, "P-256 or P-384"),
        ("not a pem", "BEGIN"),
        (
            "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----",
            "base64",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----",
            "SubjectPublicKeyInfo",
        ),
    ];
    for (pem, reason) in cases {
        let error = KeySet::from_pem(pem.as_bytes()).unwrap_err().to_string();
        assert!(error.contains(reason), "{error}");
    }
    let two = format!("{RSA_PEM}{EC_PEM}");
    let error = KeySet::from_pem(two.as_bytes()).unwrap_err().to_string();
    assert!(error.contains("more than one"), "{error}");
}

#[test]
fn weak_or_broken_keys_are_refused_with_the_reason() {
    let short_rsa = json!({ "kty": "RSA", "n": b64(&[0xc5; 128]), "e": "AQAB" });
    let even_e = json!({ "kty": "RSA", "n": A2_N, "e": b64(&[2]) });
    let mut off_curve = unb64(A3_X);
    off_curve[31] ^= 1;
    let off_curve = json!({ "kty": "EC", "crv": "P-256", "x": b64(&off_curve), "y": A3_Y });
    let short_secret = json!({ "kty": "oct", "k": b64(&[1; 31]) });
    let private = json!({ "kty": "EC", "crv": "P-256", "x": A3_X, "y": A3_Y, "d": "AAAA" });
    let p521 = json!({ "kty": "EC", "crv": "P-521", "x": A3_X, "y": A3_Y });
    let mismatched_alg =
        json!({ "kty": "EC", "crv": "P-256", "x": A3_X, "y": A3_Y, "alg": "RS256" });
    let cases = [
        (short_rsa, "1024 bits"),
        (even_e, "exponent"),
        (off_curve, "not on its curve"),
        (short_secret, "31 bytes"),
        (private, "private key"),
        (p521, "P-521"),
        (mismatched_alg, "does not fit"),
        (json!({ "kty": "RSA", "n": A2_N }), "no \"e\""),
        (json!({ "n": A2_N, "e": "AQAB" }), "no \"kty\""),
        (
            json!({ "kty": "RSA", "n": "a+b", "e": "AQAB" }),
            "base64url",
        ),
        (
            json!({ "kty": "RSA", "n": A2_N, "e": "AQAB", "use": "enc" }),
            "\"enc\"",
        ),
    ];
    for (jwk, reason) in cases {
        let error = KeySet::from_json(&jwk.to_string()).unwrap_err().to_string();
        assert!(error.contains(reason), "{jwk}: {error}");
    }
    assert!(KeySet::from_secret(&[0; 31]).is_err());
    assert!(KeySet::from_secret(&[0; 32]).is_ok());
}

#[test]
fn a_set_leaves_out_keys_it_cannot_use_and_says_why() {
    let set = jwks(&[
        json!({ "kty": "RSA", "kid": "enc", "use": "enc", "n": A2_N, "e": A2_E }),
        json!({ "kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA" }),
        json!({ "kty": "RSA", "kid": "oaep", "alg": "RSA-OAEP", "n": A2_N, "e": A2_E }),
        json!("not an object"),
        rsa_jwk("sig"),
        ed_jwk("ed"),
    ]);
    let keys = KeySet::from_json(&set).unwrap();
    assert_eq!(kinds(&keys), [KeyKind::Rsa, KeyKind::Ed25519]);
    assert_eq!(keys.keys()[0].kid(), Some("sig"));
    assert_eq!(keys.skipped().len(), 4);
    assert!(
        keys.skipped()[0].starts_with("key 0: kid \"enc\""),
        "{:?}",
        keys.skipped()
    );
    let useless = jwks(&[json!({ "kty": "RSA", "use": "enc", "n": A2_N, "e": A2_E })]);
    let error = KeySet::from_json(&useless).unwrap_err().to_string();
    assert!(
        error.contains("no key this gateway can verify with"),
        "{error}"
    );
    assert!(KeySet::from_json(r#"{"keys": {}}"#).is_err());
    assert!(KeySet::from_json("[]").is_err());
}

/// A JWK Set served over the network is public: a secret in it is never a key.
#[test]
fn a_fetched_set_never_yields_a_shared_secret() {
    let set = jwks(&[json!({ "kty": "oct", "kid": "h", "k": A1_K }), rsa_jwk("r")]);
    let fetched = KeySet::from_fetched(set.as_bytes()).unwrap();
    assert_eq!(kinds(&fetched), [KeyKind::Rsa]);
    assert!(fetched.skipped()[0].contains("never used"));
    assert_eq!(
        kinds(&KeySet::from_json(&set).unwrap()),
        [KeyKind::Hmac, KeyKind::Rsa]
    );
}

#[test]
fn debug_output_names_keys_without_their_material() {
    let keys = KeySet::from_json(&json!({ "kty": "oct", "kid": "h", "k": A1_K }).to_string());
    let shown = format!("{:?}", keys.unwrap());
    assert!(shown.contains("kid: Some(\"h\")"), "{shown}");
    assert!(
        !shown.contains(A1_K) && !shown.contains("decoding"),
        "{shown}"
    );
}
