//! `palisade jwt verify` on RFC 7515 Appendix A.1-A.3 and RFC 8037 Appendix A.4, and on tokens
//! signed here for the claims the RFC payload lacks (tier, scopes, aud, no exp).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{Run, Scratch, assert_usage, data, palisade, palisade_with_stdin, verdict};

/// The payload of RFC 7515 A.1-A.3: `{"iss":"joe",\r\n "exp":1300819380,\r\n
/// "http://example.com/is_root":true}`. It has no `sub`: `--user-claim iss` makes joe the
/// subject.
const RFC_PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
const RFC_EXP: u64 = 1_300_819_380;
const A1_HEADER: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9";
const A1_SIGNATURE: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const A2_HEADER: &str = "eyJhbGciOiJSUzI1NiJ9";
const A2_SIGNATURE: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const A3_HEADER: &str = "eyJhbGciOiJFUzI1NiJ9";
const A3_SIGNATURE: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
/// RFC 8037 A.4: the JWS of the text "Example of Ed25519 signing".
const ED_JWS: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

fn rfc_token(header: &str, signature: &str) -> String {
    format!("{header}.{RFC_PAYLOAD}.{signature}")
}

fn a1_token() -> String {
    rfc_token(A1_HEADER, A1_SIGNATURE)
}

/// Each RFC 7515 example: its token, a file of its key, and its algorithm.
fn rfc_examples() -> [(String, &'static str, &'static str); 6] {
    let a2 = rfc_token(A2_HEADER, A2_SIGNATURE);
    let a3 = rfc_token(A3_HEADER, A3_SIGNATURE);
    [
        (a1_token(), "jwt/rfc7515-a1.jwk", "HS256"),
        (a2.clone(), "jwt/rfc7515-a2.jwk", "RS256"),
        (a2.clone(), "jwt/rfc7515-a2.pem", "RS256"),
        (a2, "jwt/rfc7515-a2-pkcs1.pem", "RS256"),
        (a3.clone(), "jwt/rfc7515-a3.jwk", "ES256"),
        (a3, "jwt/rfc7515-a3.pem", "ES256"),
    ]
}

fn jwt_verify(token: &str, key: &str, flags: &[&str]) -> Run {
    let mut args = vec!["jwt", "verify", "--token", token, "--key", key];
    args.extend(flags);
    palisade(&args)
}

/// `jwt verify` of the A.1 token as joe's, at `now`, with more flags.
fn a1_at(now: u64, flags: &[&str]) -> Run {
    let now = now.to_string();
    let mut all = vec!["--alg", "HS256", "--user-claim", "iss", "--now", &now];
    all.extend(flags);
    jwt_verify(&a1_token(), &data("jwt/rfc7515-a1.jwk"), &all)
}

fn identity(run: &Run) -> Value {
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(run.stdout.trim()).expect("one JSON line")
}

const EXPIRED: &str = "invalid: expired (the token has expired)\n";
const MISSING_CLAIM: &str = "invalid: missing_claim (the token lacks a required claim)\n";

#[test]
fn rfc7515_examples_are_joe_before_exp_and_expired_after() {
    let before = (RFC_EXP - 100).to_string();
    // Past exp and the default leeway of 60 s.
    let after = (RFC_EXP + 60).to_string();
    for (token, key, alg) in rfc_examples() {
        let key = data(key);
        let flags = ["--alg", alg, "--user-claim", "iss", "--now"];
        let run = jwt_verify(&token, &key, &[&flags[..], &[before.as_str()]].concat());
        assert_eq!(
            identity(&run),
            json!({ "subject": "joe", "tier": null, "scopes": [], "method": "jwt" }),
            "{key}"
        );
        let run = jwt_verify(&token, &key, &[&flags[..], &[after.as_str()]].concat());
        assert_eq!(verdict(&run), (1, EXPIRED), "{key}");
    }
}

#[test]
fn leeway_stretches_exp_by_its_seconds() {
    assert_eq!(a1_at(RFC_EXP, &[]).code, 0, "within the default 60 s");
    assert_eq!(a1_at(RFC_EXP + 59, &[]).code, 0);
    assert_eq!(verdict(&a1_at(RFC_EXP, &["--leeway", "0"])), (1, EXPIRED));
    assert_eq!(
        verdict(&a1_at(RFC_EXP + 600, &["--leeway", "600"])),
        (1, EXPIRED)
    );
    assert_eq!(a1_at(RFC_EXP + 600, &["--leeway", "601"]).code, 0);
}

#[test]
fn the_subject_comes_from_sub_unless_told_otherwise() {
    let run = jwt_verify(
        &a1_token(),
        &data("jwt/rfc7515-a1.jwk"),
        &["--alg", "HS256", "--now", "1300819000"],
    );
    assert_eq!(verdict(&run), (1, MISSING_CLAIM));
}

#[test]
fn issuer_audience_and_required_claims_are_checked() {
    assert_eq!(a1_at(RFC_EXP - 100, &["--issuer", "joe"]).code, 0);
    assert_eq!(
        verdict(&a1_at(RFC_EXP - 100, &["--issuer", "alice"])),
        (
            1,
            "invalid: wrong_issuer (the token's issuer is not the expected one)\n"
        )
    );
    // The RFC payload has no aud: a configured audience cannot be found in it.
    assert_eq!(
        verdict(&a1_at(RFC_EXP - 100, &["--audience", "api"])),
        (1, MISSING_CLAIM)
    );
    let custom = ["--require", "exp,http://example.com/is_root"];
    assert_eq!(a1_at(RFC_EXP - 100, &custom).code, 0);
    assert_eq!(
        verdict(&a1_at(RFC_EXP - 100, &["--require", "nbf"])),
        (1, MISSING_CLAIM)
    );
}

#[test]
fn an_algorithm_outside_the_list_is_refused() {
    let not_allowed = "invalid: algorithm_not_allowed (the token's algorithm is not allowed)\n";
    let a2 = rfc_token(A2_HEADER, A2_SIGNATURE);
    // The RSA key could verify PS256, so the list is usable; the token is RS256.
    let run = jwt_verify(&a2, &data("jwt/rfc7515-a2.pem"), &["--alg", "PS256"]);
    assert_eq!(verdict(&run), (1, not_allowed));
    // A.1's key is 64 bytes, long enough for HS384 and HS512; the token is HS256.
    let run = jwt_verify(
        &a1_token(),
        &data("jwt/rfc7515-a1.jwk"),
        &["--alg", "HS384,HS512"],
    );
    assert_eq!(verdict(&run), (1, not_allowed));
    // RS256 is allowed, but the only key is A.3's P-256 key.
    let run = jwt_verify(&a2, &data("jwt/rfc7515-a3.pem"), &["--alg", "RS256,ES256"]);
    assert_eq!(
        verdict(&run),
        (
            1,
            "invalid: key_mismatch (the key does not fit the token's algorithm)\n"
        )
    );
}

/// RFC 8037 A.4 signs the text "Example of Ed25519 signing", not a claims set. The library
/// checks the signature before it reads the payload: the published token is refused as
/// `malformed` (for its payload), the same token with another signature as `bad_signature`.
#[test]
fn rfc8037_a4_verifies_its_signature_then_is_refused_for_its_payload() {
    let mut tampered = ED_JWS.to_owned();
    let signature_start = ED_JWS.rfind('.').unwrap() + 1;
    // "h" -> "i" changes the first signature byte, and keeps the base64url canonical.
    tampered.replace_range(signature_start..signature_start + 1, "i");
    for key in ["jwt/rfc8037-a1.jwk", "jwt/rfc8037-a1.pem"] {
        let run = jwt_verify(ED_JWS, &data(key), &["--alg", "EdDSA"]);
        assert_eq!(
            verdict(&run),
            (1, "invalid: malformed (the token is malformed)\n"),
            "{key}"
        );
        let run = jwt_verify(&tampered, &data(key), &["--alg", "EdDSA"]);
        assert_eq!(
            verdict(&run),
            (
                1,
                "invalid: bad_signature (the token's signature does not verify)\n"
            ),
            "{key}"
        );
    }
}

/// A secret of this test's own, and its base64url (the `k` of its JWK), for tokens with the
/// claims the RFC payload lacks.
const SECRET: &[u8] = b"palisade-cli-test-secret-of-40-bytes!!!!";
const SECRET_K: &str = "cGFsaXNhZGUtY2xpLXRlc3Qtc2VjcmV0LW9mLTQwLWJ5dGVzISEhIQ";
const NOW: u64 = 1_700_000_000;

fn hs256(kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

/// A JWK Set of two `oct` keys: A.1's as "old", this test's secret as "new".
fn key_set(scratch: &Scratch) -> String {
    let set = json!({ "keys": [
        { "kty": "oct", "kid": "old", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow" },
        { "kty": "oct", "kid": "new", "k": SECRET_K },
    ]});
    scratch.file("keys.json", set.to_string().as_bytes())
}

#[test]
fn a_jwk_set_key_is_chosen_by_kid_and_the_identity_has_tier_and_scopes() {
    let scratch = Scratch::new("jwks");
    let keys = key_set(&scratch);
    let claims = json!({
        "sub": "alice", "exp": NOW + 600, "tier": "gold", "scope": "orders:read orders:write",
    });
    let now = NOW.to_string();
    let flags = ["--alg", "HS256", "--now", &now];
    let token = hs256(Some("new"), &claims);
    let run = jwt_verify(
        &token,
        &keys,
        &[&flags[..], &["--tier-claim", "tier"]].concat(),
    );
    assert_eq!(
        identity(&run),
        json!({
            "subject": "alice", "tier": "gold", "scopes": ["orders:read", "orders:write"],
            "method": "jwt",
        })
    );
    assert_eq!(
        identity(&jwt_verify(&token, &keys, &flags))["tier"],
        json!(null)
    );
    let run = jwt_verify(&hs256(Some("gone"), &claims), &keys, &flags);
    assert_eq!(
        verdict(&run),
        (1, "invalid: unknown_kid (no key matches the token's kid)\n")
    );
    let run = jwt_verify(&hs256(None, &claims), &keys, &flags);
    assert_eq!(
        verdict(&run),
        (
            1,
            "invalid: kid_required (the token has no kid and several keys could verify it)\n"
        )
    );
}

#[test]
fn require_empty_accepts_a_token_without_exp_and_audiences_may_repeat() {
    let scratch = Scratch::new("require");
    let keys = key_set(&scratch);
    let token = hs256(
        Some("new"),
        &json!({ "sub": "alice", "aud": ["api", "web"] }),
    );
    let now = NOW.to_string();
    let verify = |more: &[&str]| {
        let flags = [&["--alg", "HS256", "--now", now.as_str()][..], more].concat();
        jwt_verify(&token, &keys, &flags)
    };
    assert_eq!(verdict(&verify(&[])), (1, MISSING_CLAIM), "exp is required");
    assert_eq!(identity(&verify(&["--require", ""]))["subject"], "alice");
    assert_eq!(verify(&["--require", "", "--audience", "web"]).code, 0);
    assert_eq!(
        verdict(&verify(&["--require", "", "--audience", "admin"])),
        (
            1,
            "invalid: wrong_audience (the token is not meant for this audience)\n"
        )
    );
    let either = ["--require", "", "--audience", "admin", "--audience", "api"];
    assert_eq!(verify(&either).code, 0);
}

#[test]
fn the_token_can_come_from_stdin() {
    let args = [
        "jwt",
        "verify",
        "--token",
        "-",
        "--key",
        &data("jwt/rfc7515-a1.jwk"),
        "--alg",
        "HS256",
        "--user-claim",
        "iss",
        "--now",
        "1300819000",
    ];
    let run = palisade_with_stdin(&args, &format!("{}\n", a1_token()));
    assert_eq!(identity(&run)["subject"], "joe");
}

#[test]
fn jwt_bad_usage_exits_2_naming_what_would_be_valid() {
    let scratch = Scratch::new("jwt-usage");
    let a1 = data("jwt/rfc7515-a1.jwk");
    let token = a1_token();
    let broken = scratch.file("broken.jwk", br#"{"kty": "oct""#);
    // RFC 8037 A.1's published private key, as PKCS#8.
    let private = scratch.file(
        "private.pem",
        b"-----BEGIN PRIVATE KEY-----\n\
          MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
          -----END PRIVATE KEY-----\n",
    );
    let missing = scratch.0.join("missing.jwk").display().to_string();
    let never_none = "\"none\" is never accepted";
    let cases: [(&str, &[&str], &str); 11] = [
        (&a1, &["--alg", "none"], never_none),
        (&a1, &["--alg", "HS256,none"], never_none),
        (&a1, &["--alg", "HS257"], "use HS256, HS384, HS512, RS256"),
        (&a1, &["--alg", ""], "list at least one"),
        (&a1, &["--alg", "RS256"], "a secret HS*"),
        (&missing, &["--alg", "HS256"], "cannot read the key"),
        (&broken, &["--alg", "HS256"], "not valid JSON"),
        (&private, &["--alg", "EdDSA"], "give only the public key"),
        (
            &a1,
            &["--alg", "HS256", "--require", "none"],
            "--require ''",
        ),
        (&a1, &["--alg", "HS256", "--leeway", "1m"], "--leeway"),
        (&a1, &[], "--alg"),
    ];
    for (key, flags, expected) in cases {
        assert_usage(&jwt_verify(&token, key, flags), expected);
    }
    let header_value = format!("Bearer {token}");
    let run = jwt_verify(&header_value, &a1, &["--alg", "HS256"]);
    assert_usage(&run, "without \"Bearer \"");
}
