//! Reading the credential from header bytes, and the whole per-request path through
//! [`Authenticator`]: which header decides, duplicates, API keys as bearer tokens, JWTs.

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::super::credential::{self, MAX_CREDENTIAL_LEN};
use super::super::{
    ApiKeyEntry, ApiKeyStore, AuthError, Authenticator, CredentialError, JwtError, KeySet, Method,
};
use super::support::*;

#[test]
fn a_bearer_token_is_read_whatever_the_scheme_case() {
    for value in [
        "Bearer abc.def-_~+/==",
        "bearer abc.def-_~+/==",
        "BEARER   abc.def-_~+/== ",
    ] {
        assert_eq!(
            credential::bearer_token(value.as_bytes()),
            Ok("abc.def-_~+/=="),
            "{value}"
        );
    }
}

#[test]
fn other_schemes_and_malformed_values_are_refused() {
    use CredentialError::*;
    let cases: [(&[u8], CredentialError); 10] = [
        (b"Basic dXNlcjpwYXNz", NotBearer),
        (b"Bearerabc", NotBearer),
        (b"", NotBearer),
        (b"Bearer", Malformed),
        (b"Bearer    ", Malformed),
        (b"Bearer a b", Malformed),
        (b"Bearer a\tb", Malformed),
        (b"Bearer =abc", Malformed),
        (b"Bearer a=b", Malformed),
        (b"Bearer \xc3\xa9t\xc3\xa9", Malformed),
    ];
    for (value, expected) in cases {
        let shown = String::from_utf8_lossy(value);
        assert_eq!(credential::bearer_token(value), Err(expected), "{shown}");
    }
}

#[test]
fn a_credential_is_bounded_to_8_kib() {
    let longest = format!("Bearer {}", "a".repeat(MAX_CREDENTIAL_LEN));
    assert!(credential::bearer_token(longest.as_bytes()).is_ok());
    let longer = format!("Bearer {}", "a".repeat(MAX_CREDENTIAL_LEN + 1));
    assert_eq!(
        credential::bearer_token(longer.as_bytes()),
        Err(CredentialError::TooLong)
    );
    let huge = vec![b'a'; 1 << 20];
    assert_eq!(credential::api_key(&huge), Err(CredentialError::TooLong));
}

#[test]
fn a_repeated_credential_header_is_refused() {
    let one: &[u8] = b"Bearer a";
    assert_eq!(
        credential::single([one, one]),
        Err(CredentialError::Duplicated)
    );
    assert_eq!(credential::single([one]), Ok(Some(one)));
    assert_eq!(credential::single(Vec::<&[u8]>::new()), Ok(None));
}

#[test]
fn an_api_key_value_is_visible_ascii() {
    assert_eq!(credential::api_key(b" k-123_x "), Ok(&b"k-123_x"[..]));
    for bad in [&b""[..], b"   ", b"a b", b"a\x00b", b"\xff"] {
        assert_eq!(credential::api_key(bad), Err(CredentialError::Malformed));
    }
}

const KEY: &[u8] = b"pk_live_0123456789";

fn store() -> ApiKeyStore {
    ApiKeyStore::from_entries(vec![ApiKeyEntry {
        id: "ci".to_owned(),
        sha256: super::super::api_key::key_digest_hex(KEY),
        tier: Some("internal".to_owned()),
        scopes: vec!["deploy".to_owned()],
    }])
    .unwrap()
}

fn both() -> Authenticator {
    let jwt = verifier(
        rules(&["RS256"]),
        KeySet::from_pem(RSA_PEM.as_bytes()).unwrap(),
    );
    Authenticator::new(Some(jwt), Some(store()))
}

async fn authenticate(
    auth: &Authenticator,
    lines: &[(&str, &[u8])],
) -> Result<Option<super::super::Identity>, AuthError> {
    auth.authenticate(lines.iter().map(|(n, v)| (n.as_bytes(), *v)), NOW)
        .await
}

#[tokio::test]
async fn a_jwt_bearer_token_gives_a_jwt_identity() {
    let token = sign(
        &json!({ "alg": "RS256" }),
        &claims(),
        &rsa_signer(),
        Algorithm::RS256,
    );
    let bearer = format!("Bearer {token}");
    let lines = [("Host", &b"a"[..]), ("AUTHORIZATION", bearer.as_bytes())];
    let identity = authenticate(&both(), &lines).await.unwrap().unwrap();
    assert_eq!(
        (identity.subject.as_str(), identity.method),
        ("alice", Method::Jwt)
    );
}

#[tokio::test]
async fn an_api_key_is_read_from_its_header_or_as_a_bearer_token() {
    let bearer = [&b"Bearer "[..], KEY].concat();
    for lines in [[("X-Api-Key", KEY)], [("authorization", &bearer[..])]] {
        let identity = authenticate(&both(), &lines).await.unwrap().unwrap();
        assert_eq!(identity.subject, "ci");
        assert_eq!(identity.method, Method::ApiKey);
        assert_eq!(identity.tier.as_deref(), Some("internal"));
        assert!(identity.has_scopes(&["deploy"]));
    }
    let custom = Authenticator::new(None, Some(store())).with_api_key_header("X-Partner-Key");
    let identity = authenticate(&custom, &[("x-partner-key", KEY)])
        .await
        .unwrap();
    assert_eq!(identity.map(|i| i.subject).as_deref(), Some("ci"));
    assert_eq!(authenticate(&custom, &[("x-api-key", KEY)]).await, Ok(None));
}

#[tokio::test]
async fn the_api_key_header_decides_when_present() {
    let lines = [
        ("authorization", &b"Basic dXNlcjpwYXNz"[..]),
        ("x-api-key", KEY),
    ];
    let identity = authenticate(&both(), &lines).await.unwrap().unwrap();
    assert_eq!(identity.method, Method::ApiKey);
    let unknown = [
        ("authorization", &b"Bearer whatever"[..]),
        ("x-api-key", b"nope"),
    ];
    assert_eq!(
        authenticate(&both(), &unknown).await,
        Err(AuthError::UnknownApiKey)
    );
}

#[tokio::test]
async fn refusals_name_their_reason() {
    let auth = both();
    let twice = [
        ("authorization", &b"Bearer a"[..]),
        ("Authorization", b"Bearer a"),
    ];
    let result = authenticate(&auth, &twice).await;
    assert_eq!(
        result,
        Err(AuthError::Credential(CredentialError::Duplicated))
    );
    assert_eq!(result.unwrap_err().as_str(), "duplicate_header");
    let twice = [("x-api-key", KEY), ("x-api-key", KEY)];
    assert_eq!(
        authenticate(&auth, &twice).await.map_err(AuthError::as_str),
        Err("duplicate_header")
    );
    let opaque = [("authorization", &b"Bearer not-a-key-nor-a-jwt"[..])];
    assert_eq!(
        authenticate(&auth, &opaque).await,
        Err(AuthError::Jwt(JwtError::Malformed))
    );
    let keys_only = Authenticator::new(None, Some(store()));
    assert_eq!(
        authenticate(&keys_only, &opaque).await,
        Err(AuthError::UnknownApiKey)
    );
    assert_eq!(
        authenticate(&auth, &[("cookie", &b"a=b"[..])]).await,
        Ok(None)
    );
}

/// The pipeline runs requests on a multi-threaded runtime: the future must be `Send`.
#[test]
fn authentication_can_run_on_any_worker_thread() {
    fn send<T: Send>(_: &T) {}
    let auth = both();
    let lines: Vec<(&[u8], &[u8])> = Vec::new();
    send(&auth.authenticate(lines, NOW));
}
