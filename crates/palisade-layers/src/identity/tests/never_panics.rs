//! Whatever a client sends, reading it refuses or accepts; it never panics.

use proptest::prelude::*;

use super::super::{KeySet, credential};
use super::support::*;

fn any_verifier() -> super::super::JwtVerifier {
    let keys = KeySet::from_json(&jwks(&[rsa_jwk("r"), ec_jwk("e"), ed_jwk("d")])).unwrap();
    verifier(rules(&["RS256", "PS256", "ES256", "EdDSA"]), keys)
}

/// Three dot-separated base64url parts of arbitrary bytes: tokens that get past the split.
fn shaped_token() -> impl Strategy<Value = String> {
    let part = proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| b64(&b));
    (part.clone(), part.clone(), part).prop_map(|(h, p, s)| format!("{h}.{p}.{s}"))
}

/// A header that parses, with arbitrary JSON-ish values for the members that are read.
fn header_token() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("\"RS256\"".to_owned()),
        Just("\"none\"".to_owned()),
        Just("null".to_owned()),
        Just("[]".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-zA-Z0-9]{0,8}".prop_map(|s| format!("\"{s}\"")),
    ];
    (
        value.clone(),
        value.clone(),
        value,
        proptest::collection::vec(any::<u8>(), 0..100),
    )
        .prop_map(|(alg, kid, exp, sig)| {
            let header = format!("{{\"alg\":{alg},\"kid\":{kid}}}");
            let claims = format!("{{\"sub\":\"a\",\"exp\":{exp},\"aud\":{kid}}}");
            format!(
                "{}.{}.{}",
                b64(header.as_bytes()),
                b64(claims.as_bytes()),
                b64(&sig)
            )
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_as_a_token(bytes in proptest::collection::vec(any::<u8>(), 0..10_000)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(any_verifier().verify_cached(&text, NOW).is_err());
        let _ = credential::bearer_token(&bytes);
        let _ = credential::api_key(&bytes);
    }

    #[test]
    fn arbitrary_three_part_tokens(token in shaped_token()) {
        prop_assert!(any_verifier().verify_cached(&token, NOW).is_err());
    }

    #[test]
    fn arbitrary_header_values(token in header_token()) {
        prop_assert!(any_verifier().verify_cached(&token, NOW).is_err());
    }

    #[test]
    fn arbitrary_key_material(bytes in proptest::collection::vec(any::<u8>(), 0..2_000)) {
        let _ = KeySet::from_pem(&bytes);
        let _ = KeySet::from_json(&String::from_utf8_lossy(&bytes));
        let mut pem = b"-----BEGIN PUBLIC KEY-----\n".to_vec();
        pem.extend(b64(&bytes).into_bytes());
        pem.extend(b"\n-----END PUBLIC KEY-----\n");
        let _ = KeySet::from_pem(&pem);
    }
}
