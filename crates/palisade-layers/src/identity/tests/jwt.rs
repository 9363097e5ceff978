//! What a token must be to pass, and every way it is refused: time, issuer, audience, claim
//! types, algorithms, keys, `crit`, header-named keys, malformed input.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::super::{JwtError, JwtRules, JwtVerifier, KeySet, Method, RulesError};
use super::support::*;

fn rs256() -> Value {
    json!({ "alg": "RS256" })
}

fn rsa_keys() -> KeySet {
    KeySet::from_pem(RSA_PEM.as_bytes()).unwrap()
}

/// Verifies an RS256 token with `claims` under `rules` at [`NOW`].
fn check(rules: JwtRules, claims: Value) -> Result<super::super::Identity, JwtError> {
    let token = sign(&rs256(), &claims, &rsa_signer(), Algorithm::RS256);
    verifier(rules, rsa_keys()).verify_cached(&token, NOW)
}

fn at_leeway(secs: u64) -> JwtRules {
    let mut rules = rules(&["RS256"]);
    rules.leeway = Duration::from_secs(secs);
    rules
}

#[test]
fn a_valid_token_gives_subject_tier_and_scopes() {
    let mut rules = rules(&["RS256"]);
    rules.tier_claim = Some("plan".to_owned());
    let identity = check(
        rules,
        json!({ "sub": "alice", "exp": EXP, "plan": "gold", "scope": "read  write" }),
    )
    .unwrap();
    assert_eq!(identity.subject, "alice");
    assert_eq!(identity.tier.as_deref(), Some("gold"));
    assert_eq!(identity.method, Method::Jwt);
    assert_eq!(identity.scopes, ["read", "write"]);
    assert!(identity.has_scopes(&["write", "read"]));
    assert!(identity.has_scopes::<&str>(&[]));
    assert!(!identity.has_scopes(&["read".to_owned(), "admin".to_owned()]));
}

#[test]
fn exp_equal_to_now_is_expired_and_one_second_later_is_not() {
    let at = |exp: u64| check(at_leeway(0), json!({ "sub": "a", "exp": exp }));
    assert_eq!(at(NOW), Err(JwtError::Expired));
    assert_eq!(at(NOW - 1), Err(JwtError::Expired));
    assert!(at(NOW + 1).is_ok());
    // The default leeway is 60 s.
    let default = |exp: u64| check(rules(&["RS256"]), json!({ "sub": "a", "exp": exp }));
    assert!(default(NOW - 59).is_ok());
    assert_eq!(default(NOW - 60), Err(JwtError::Expired));
}

#[test]
fn a_fractional_exp_or_nbf_is_rounded_towards_refusal() {
    let exp = check(at_leeway(0), json!({ "sub": "a", "exp": NOW as f64 + 0.5 }));
    assert_eq!(exp, Err(JwtError::Expired));
    let nbf = json!({ "sub": "a", "exp": EXP, "nbf": NOW as f64 + 0.5 });
    assert_eq!(check(at_leeway(0), nbf), Err(JwtError::NotYetValid));
}

#[test]
fn nbf_is_honoured_with_the_leeway() {
    let at =
        |rules: JwtRules, nbf: u64| check(rules, json!({ "sub": "a", "exp": EXP, "nbf": nbf }));
    assert!(at(at_leeway(0), NOW).is_ok());
    assert_eq!(at(at_leeway(0), NOW + 1), Err(JwtError::NotYetValid));
    assert!(at(at_leeway(30), NOW + 30).is_ok());
    assert_eq!(at(at_leeway(30), NOW + 31), Err(JwtError::NotYetValid));
}

#[test]
fn exp_is_required_unless_the_rules_say_otherwise() {
    assert_eq!(
        check(rules(&["RS256"]), json!({ "sub": "a" })),
        Err(JwtError::MissingClaim)
    );
    assert_eq!(
        check(rules(&["RS256"]), json!({ "sub": "a", "exp": null })),
        Err(JwtError::MissingClaim)
    );
    let mut none_required = rules(&["RS256"]);
    none_required.required_claims.clear();
    assert!(check(none_required, json!({ "sub": "a" })).is_ok());
    let mut jti = rules(&["RS256"]);
    jti.required_claims.push("jti".to_owned());
    assert_eq!(check(jti, claims()), Err(JwtError::MissingClaim));
}

#[test]
fn dates_of_the_wrong_type_are_refused() {
    for exp in [json!("2030-01-01"), json!(-5), json!(true), json!([EXP])] {
        let result = check(rules(&["RS256"]), json!({ "sub": "a", "exp": exp }));
        assert_eq!(result, Err(JwtError::InvalidClaim), "exp {exp}");
    }
    let nbf = json!({ "sub": "a", "exp": EXP, "nbf": "now" });
    assert_eq!(check(rules(&["RS256"]), nbf), Err(JwtError::InvalidClaim));
}

fn with_issuer() -> JwtRules {
    let mut rules = rules(&["RS256"]);
    rules.issuer = Some("https://idp.example".to_owned());
    rules
}

#[test]
fn a_configured_issuer_must_be_present_and_equal() {
    let with = |iss: Value| check(with_issuer(), json!({ "sub": "a", "exp": EXP, "iss": iss }));
    assert!(with(json!("https://idp.example")).is_ok());
    assert_eq!(
        with(json!("https://evil.example")),
        Err(JwtError::WrongIssuer)
    );
    assert_eq!(
        with(json!("https://idp.example/")),
        Err(JwtError::WrongIssuer)
    );
    assert_eq!(check(with_issuer(), claims()), Err(JwtError::MissingClaim));
}

/// jsonwebtoken takes an array `iss` and skips an `iss` it cannot parse.
#[test]
fn iss_must_be_a_string_configured_or_not() {
    for iss in [json!(["https://idp.example"]), json!(7), json!({ "a": 1 })] {
        let claims = json!({ "sub": "a", "exp": EXP, "iss": iss });
        assert_eq!(
            check(with_issuer(), claims.clone()),
            Err(JwtError::InvalidClaim)
        );
        assert_eq!(
            check(rules(&["RS256"]), claims),
            Err(JwtError::InvalidClaim)
        );
    }
}

fn with_audience() -> JwtRules {
    let mut rules = rules(&["RS256"]);
    rules.audiences = vec!["orders".to_owned(), "billing".to_owned()];
    rules
}

#[test]
fn a_configured_audience_must_be_named_by_aud() {
    let with = |aud: Value| {
        check(
            with_audience(),
            json!({ "sub": "a", "exp": EXP, "aud": aud }),
        )
    };
    assert!(with(json!("billing")).is_ok());
    assert!(with(json!(["other", "orders"])).is_ok());
    assert_eq!(with(json!("other")), Err(JwtError::WrongAudience));
    assert_eq!(with(json!([])), Err(JwtError::WrongAudience));
    assert_eq!(with(json!(["orders", 5])), Err(JwtError::InvalidClaim));
    assert_eq!(with(json!(5)), Err(JwtError::InvalidClaim));
    assert_eq!(
        check(with_audience(), claims()),
        Err(JwtError::MissingClaim)
    );
}

#[test]
fn without_a_configured_audience_only_the_type_of_aud_is_checked() {
    let with = |aud: Value| {
        check(
            rules(&["RS256"]),
            json!({ "sub": "a", "exp": EXP, "aud": aud }),
        )
    };
    assert!(with(json!("anyone")).is_ok());
    assert_eq!(with(json!(false)), Err(JwtError::InvalidClaim));
}

#[test]
fn the_subject_comes_from_the_user_claim_and_must_be_a_string() {
    let mut by_email = rules(&["RS256"]);
    by_email.user_claim = "email".to_owned();
    let identity = check(
        by_email.clone(),
        json!({ "email": "a@example.com", "exp": EXP }),
    )
    .unwrap();
    assert_eq!(identity.subject, "a@example.com");
    assert_eq!(check(by_email, claims()), Err(JwtError::MissingClaim));
    for sub in [json!(42), json!(""), json!(["a"])] {
        let result = check(rules(&["RS256"]), json!({ "sub": sub, "exp": EXP }));
        assert_eq!(result, Err(JwtError::InvalidClaim), "sub {sub}");
    }
}

#[test]
fn a_tier_claim_of_the_wrong_type_is_refused_and_an_absent_one_is_no_tier() {
    let mut tiered = rules(&["RS256"]);
    tiered.tier_claim = Some("tier".to_owned());
    assert_eq!(check(tiered.clone(), claims()).unwrap().tier, None);
    let numeric = json!({ "sub": "a", "exp": EXP, "tier": 3 });
    assert_eq!(check(tiered, numeric), Err(JwtError::InvalidClaim));
}

#[test]
fn scopes_come_from_scope_or_else_scp() {
    let scopes = |extra: Value| {
        let mut claims = claims();
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        check(rules(&["RS256"]), claims).map(|i| i.scopes)
    };
    assert_eq!(scopes(json!({ "scp": ["a", "b"] })).unwrap(), ["a", "b"]);
    assert_eq!(scopes(json!({ "scp": "a b" })).unwrap(), ["a", "b"]);
    assert_eq!(
        scopes(json!({ "scope": "x", "scp": ["a"] })).unwrap(),
        ["x"]
    );
    assert!(scopes(json!({})).unwrap().is_empty());
    assert_eq!(
        scopes(json!({ "scope": ["a"] })),
        Err(JwtError::InvalidClaim)
    );
    assert_eq!(
        scopes(json!({ "scp": ["a", 1] })),
        Err(JwtError::InvalidClaim)
    );
}

#[test]
fn the_rules_refuse_none_and_unknown_algorithms() {
    assert_eq!(
        JwtRules::new(&["none"]).err(),
        Some(RulesError::NoneAlgorithm)
    );
    assert_eq!(
        JwtRules::new(&["RS256", "NONE"]).err(),
        Some(RulesError::NoneAlgorithm)
    );
    assert_eq!(
        JwtRules::new::<&str>(&[]).err(),
        Some(RulesError::NoAlgorithm)
    );
    assert_eq!(
        JwtRules::new(&["ES512"]).err(),
        Some(RulesError::UnknownAlgorithm("ES512".to_owned()))
    );
    assert_eq!(
        JwtRules::new(&["RS256", "RS256"]).unwrap().algorithms(),
        [Algorithm::RS256]
    );
}

#[test]
fn an_unsigned_token_is_refused() {
    let v = verifier(rules(&["RS256", "HS256"]), rsa_keys());
    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({ "alg": alg }).to_string().as_bytes());
        let body = b64(claims().to_string().as_bytes());
        for token in [format!("{header}.{body}."), format!("{header}.{body}.c2ln")] {
            assert_eq!(
                v.verify_cached(&token, NOW),
                Err(JwtError::AlgorithmNotAllowed)
            );
        }
    }
}

#[test]
fn an_algorithm_outside_the_list_is_refused_even_with_a_fitting_key() {
    let token = sign(
        &json!({ "alg": "PS256" }),
        &claims(),
        &rsa_signer(),
        Algorithm::PS256,
    );
    let rs256_only = verifier(rules(&["RS256"]), rsa_keys());
    assert_eq!(
        rs256_only.verify_cached(&token, NOW),
        Err(JwtError::AlgorithmNotAllowed)
    );
    let both = verifier(rules(&["RS256", "PS256"]), rsa_keys());
    assert!(both.verify_cached(&token, NOW).is_ok());
}

/// The classic confusion: an HS256 token whose "secret" is the RSA public key's PEM text. A
/// library that hands the configured key to whatever algorithm the token names accepts it.
#[test]
fn an_hs256_token_signed_with_the_rsa_public_key_is_refused() {
    let forged = sign(
        &json!({ "alg": "HS256" }),
        &claims(),
        &EncodingKey::from_secret(RSA_PEM.as_bytes()),
        Algorithm::HS256,
    );
    let rs256 = verifier(rules(&["RS256"]), rsa_keys());
    assert_eq!(
        rs256.verify_cached(&forged, NOW),
        Err(JwtError::AlgorithmNotAllowed)
    );
    // Even with HS256 allowed, an RSA key never verifies it.
    let both = verifier(rules(&["RS256", "HS256"]), rsa_keys());
    assert_eq!(both.verify_cached(&forged, NOW), Err(JwtError::KeyMismatch));
    let jwk = KeySet::from_json(&rsa_jwk("r1").to_string()).unwrap();
    let forged = sign(
        &json!({ "alg": "HS256", "kid": "r1" }),
        &claims(),
        &EncodingKey::from_secret(rsa_jwk("r1").to_string().as_bytes()),
        Algorithm::HS256,
    );
    let both = verifier(rules(&["RS256", "HS256"]), jwk);
    assert_eq!(both.verify_cached(&forged, NOW), Err(JwtError::KeyMismatch));
}

#[test]
fn a_key_verifies_only_the_algorithms_of_its_kind() {
    let es = ["ES256", "ES384", "EdDSA", "RS256"];
    let p256 = KeySet::from_pem(EC_PEM.as_bytes()).unwrap();
    let es384 = sign(
        &json!({ "alg": "ES384" }),
        &claims(),
        &ec_signer(),
        Algorithm::ES256,
    );
    assert_eq!(
        verifier(rules(&es), p256.clone()).verify_cached(&es384, NOW),
        Err(JwtError::KeyMismatch)
    );
    let es256 = sign(
        &json!({ "alg": "ES256" }),
        &claims(),
        &ec_signer(),
        Algorithm::ES256,
    );
    assert!(
        verifier(rules(&es), p256)
            .verify_cached(&es256, NOW)
            .is_ok()
    );
    let p384 = KeySet::from_pem(P384_PEM.as_bytes()).unwrap();
    assert_eq!(
        verifier(rules(&es), p384).verify_cached(&es256, NOW),
        Err(JwtError::KeyMismatch)
    );
    let ed = KeySet::from_pem(ED_PEM.as_bytes()).unwrap();
    assert_eq!(
        verifier(rules(&es), ed).verify_cached(&es256, NOW),
        Err(JwtError::KeyMismatch)
    );
    assert!(JwtVerifier::new(rules(&["ES256"]), rsa_keys()).is_err());
}

#[test]
fn a_jwk_alg_restricts_its_key_to_that_algorithm() {
    let mut jwk = rsa_jwk("r1");
    jwk["alg"] = json!("RS256");
    let keys = KeySet::from_json(&jwk.to_string()).unwrap();
    let v = verifier(rules(&["RS256", "PS256"]), keys);
    let header = |alg: &str| json!({ "alg": alg, "kid": "r1" });
    let ps = sign(&header("PS256"), &claims(), &rsa_signer(), Algorithm::PS256);
    assert_eq!(v.verify_cached(&ps, NOW), Err(JwtError::KeyMismatch));
    let rs = sign(&header("RS256"), &claims(), &rsa_signer(), Algorithm::RS256);
    assert!(v.verify_cached(&rs, NOW).is_ok());
}

/// RFC 7518 §3.2: an HS384 key must be at least 48 bytes, an HS512 key 64.
#[test]
fn an_hmac_secret_shorter_than_the_hash_is_not_used_for_it() {
    let secret = [7u8; 32];
    let keys = KeySet::from_secret(&secret).unwrap();
    let v = verifier(rules(&["HS256", "HS384"]), keys);
    let key = EncodingKey::from_secret(&secret);
    let hs384 = sign(
        &json!({ "alg": "HS384" }),
        &claims(),
        &key,
        Algorithm::HS384,
    );
    assert_eq!(v.verify_cached(&hs384, NOW), Err(JwtError::KeyMismatch));
    let hs256 = sign(
        &json!({ "alg": "HS256" }),
        &claims(),
        &key,
        Algorithm::HS256,
    );
    assert!(v.verify_cached(&hs256, NOW).is_ok());
}

#[test]
fn any_crit_header_is_refused() {
    let v = verifier(rules(&["RS256"]), rsa_keys());
    for header in [
        json!({ "alg": "RS256", "crit": ["exp"], "exp": EXP }),
        json!({ "alg": "RS256", "crit": ["jku"], "jku": "https://evil.example/keys" }),
        json!({ "alg": "RS256", "crit": ["b64"], "b64": false }),
        json!({ "alg": "RS256", "crit": [] }),
    ] {
        let token = sign(&header, &claims(), &rsa_signer(), Algorithm::RS256);
        assert_eq!(
            v.verify_cached(&token, NOW),
            Err(JwtError::UnsupportedCrit),
            "{header}"
        );
    }
}

#[test]
fn keys_named_by_the_header_are_ignored() {
    let trusted = KeySet::from_json(&json!({ "kty": "oct", "k": A1_K }).to_string()).unwrap();
    let v = verifier(rules(&["HS256", "ES256"]), trusted);
    let attacker = [9u8; 64];
    let header = json!({
        "alg": "HS256",
        "jku": "http://127.0.0.1:9/keys.json",
        "x5u": "http://127.0.0.1:9/cert.pem",
        "jwk": { "kty": "oct", "k": b64(&attacker) },
        "x5c": ["MIIB"],
    });
    let forged = sign(
        &header,
        &claims(),
        &EncodingKey::from_secret(&attacker),
        Algorithm::HS256,
    );
    assert_eq!(v.verify_cached(&forged, NOW), Err(JwtError::BadSignature));
    let genuine = sign(&header, &claims(), &hmac_signer(), Algorithm::HS256);
    assert!(v.verify_cached(&genuine, NOW).is_ok());
    // An attacker's EC key in the header does not become a candidate either.
    let ec_header = json!({ "alg": "ES256", "jwk": ec_jwk("mine") });
    let forged = sign(&ec_header, &claims(), &ec_signer(), Algorithm::ES256);
    assert_eq!(v.verify_cached(&forged, NOW), Err(JwtError::KeyMismatch));
}

#[test]
fn the_kid_chooses_among_several_keys() {
    let keys = KeySet::from_json(&jwks(&[rsa_jwk("r1"), ec_jwk("e1")])).unwrap();
    let v = verifier(rules(&["RS256", "ES256"]), keys);
    let rs = |kid: Value| {
        let header = json!({ "alg": "RS256", "kid": kid });
        v.verify_cached(
            &sign(&header, &claims(), &rsa_signer(), Algorithm::RS256),
            NOW,
        )
    };
    assert!(rs(json!("r1")).is_ok());
    assert_eq!(rs(json!("e1")), Err(JwtError::KeyMismatch));
    assert_eq!(rs(json!("zz")), Err(JwtError::UnknownKid));
    assert_eq!(rs(json!(1)), Err(JwtError::Malformed));
    let es = sign(
        &json!({ "alg": "ES256", "kid": "e1" }),
        &claims(),
        &ec_signer(),
        Algorithm::ES256,
    );
    assert!(v.verify_cached(&es, NOW).is_ok());
    let kidless = sign(&rs256(), &claims(), &rsa_signer(), Algorithm::RS256);
    assert_eq!(v.verify_cached(&kidless, NOW), Err(JwtError::KidRequired));
}

#[test]
fn a_single_key_serves_tokens_with_or_without_a_kid() {
    // A key without a kid (a PEM) is used whatever kid the token names.
    let pem = verifier(rules(&["RS256"]), rsa_keys());
    let named = sign(
        &json!({ "alg": "RS256", "kid": "2024" }),
        &claims(),
        &rsa_signer(),
        Algorithm::RS256,
    );
    assert!(pem.verify_cached(&named, NOW).is_ok());
    // A set whose only usable key has a kid serves a token without one, not one naming another.
    let set = KeySet::from_json(&jwks(&[rsa_jwk("r1"), ed_jwk("ed")])).unwrap();
    let v = verifier(rules(&["RS256"]), set);
    let kidless = sign(&rs256(), &claims(), &rsa_signer(), Algorithm::RS256);
    assert!(v.verify_cached(&kidless, NOW).is_ok());
    assert_eq!(v.verify_cached(&named, NOW), Err(JwtError::UnknownKid));
}

#[test]
fn a_changed_signature_or_payload_is_a_bad_signature() {
    let v = verifier(rules(&["RS256"]), rsa_keys());
    let token = sign(&rs256(), &claims(), &rsa_signer(), Algorithm::RS256);
    let (input, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let bad_signature = format!("{input}.{flipped}{}", &signature[1..]);
    assert_eq!(
        v.verify_cached(&bad_signature, NOW),
        Err(JwtError::BadSignature)
    );
    let (header, _) = input.split_once('.').unwrap();
    let admin = b64(json!({ "sub": "admin", "exp": EXP }).to_string().as_bytes());
    let swapped = format!("{header}.{admin}.{signature}");
    assert_eq!(v.verify_cached(&swapped, NOW), Err(JwtError::BadSignature));
}

#[test]
fn malformed_tokens_are_refused() {
    let v = verifier(rules(&["RS256"]), rsa_keys());
    let good = sign(&rs256(), &claims(), &rsa_signer(), Algorithm::RS256);
    let (header, rest) = good.split_once('.').unwrap();
    let signed_payload = |payload: &str| {
        let input = format!("{header}.{payload}");
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &rsa_signer(), Algorithm::RS256).unwrap();
        format!("{input}.{signature}")
    };
    let huge = format!("{good}{}", "A".repeat(8 * 1024));
    let cases = [
        String::new(),
        ".".to_owned(),
        "..".to_owned(),
        "a.b".to_owned(),
        format!("{good}.x"),
        format!("!!!.{rest}"),
        format!("{}.{rest}", b64(b"not json")),
        format!("{}.{rest}", b64(b"[\"RS256\"]")),
        format!("{}.{rest}", b64(br#"{"typ":"JWT"}"#)),
        format!("{good}="),
        format!(" {good}"),
        signed_payload("!!!"),
        signed_payload(&b64(b"[1,2]")),
        signed_payload(&b64(b"{\"sub\":")),
        huge,
    ];
    for token in &cases {
        let shown = &token[..token.len().min(40)];
        assert_eq!(
            v.verify_cached(token, NOW),
            Err(JwtError::Malformed),
            "{shown}"
        );
    }
}

#[test]
fn reasons_are_distinct_labels() {
    use JwtError::*;
    let all = [
        Malformed,
        AlgorithmNotAllowed,
        UnsupportedCrit,
        UnknownKid,
        KidRequired,
        NoKey,
        KeyMismatch,
        BadSignature,
        Expired,
        NotYetValid,
        WrongIssuer,
        WrongAudience,
        MissingClaim,
        InvalidClaim,
    ];
    let labels: std::collections::HashSet<&str> = all.iter().map(|e| e.as_str()).collect();
    assert_eq!(labels.len(), all.len());
    assert!(
        labels
            .iter()
            .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    );
}

#[test]
fn a_remembered_token_is_still_checked_against_the_clock() {
    let token = sign(
        &rs256(),
        &json!({ "sub": "a", "exp": NOW + 10, "nbf": NOW - 5 }),
        &rsa_signer(),
        Algorithm::RS256,
    );
    let verifier = verifier(at_leeway(0), rsa_keys());
    assert!(verifier.verify_cached(&token, NOW).is_ok());
    // The second use comes from memory, and the same rules hold.
    assert!(verifier.verify_cached(&token, NOW + 9).is_ok());
    assert_eq!(
        verifier.verify_cached(&token, NOW + 10),
        Err(JwtError::Expired)
    );
    assert_eq!(
        verifier.verify_cached(&token, NOW - 6),
        Err(JwtError::NotYetValid)
    );
    // A token differing in one byte of its signature is not the remembered one.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(verifier.verify_cached(&forged, NOW).is_err());
}
