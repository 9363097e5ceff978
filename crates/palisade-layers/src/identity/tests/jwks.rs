//! The JWK Set cache against a real HTTP server on 127.0.0.1: refresh on an unknown `kid` (once
//! per interval, one fetch for many requests), periodic refresh, an issuer that goes down,
//! bounded responses.
//!
//! The interval tests move tokio's clock with `pause`/`advance` and `resume` it before any
//! network exchange: a paused runtime that waits on a socket jumps straight to its next timer,
//! which would fire the fetch timeout before the server had a chance to answer.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use hyper_util::client::legacy::connect::HttpConnector;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::super::{JwksCache, JwksError, JwksOptions, JwtError, JwtVerifier};
use super::support::*;

fn token(kid: &str) -> String {
    sign(
        &json!({ "alg": "RS256", "kid": kid }),
        &claims(),
        &rsa_signer(),
        Algorithm::RS256,
    )
}

/// The A.2 key under several kids: a rotation only has to change the names.
fn set(kids: &[&str]) -> String {
    jwks(&kids.iter().map(|kid| rsa_jwk(kid)).collect::<Vec<Value>>())
}

fn cache(server: &JwksServer) -> JwksCache {
    JwksCache::new(&server.url, JwksOptions::default()).unwrap()
}

fn jwt(cache: JwksCache) -> JwtVerifier {
    JwtVerifier::with_jwks(rules(&["RS256"]), cache)
}

/// Moves the paused clock by `by`, then lets it run again.
async fn skip(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

#[tokio::test]
async fn an_unknown_kid_refreshes_once_per_interval() {
    let server = JwksServer::start(set(&["a"])).await;
    let v = jwt(cache(&server));
    assert_eq!(v.jwks().unwrap().refresh().await.unwrap(), 1);
    assert_eq!(server.requests(), 1);
    assert!(v.verify(&token("a"), NOW).await.is_ok());
    assert_eq!(server.requests(), 1, "a cached key needs no fetch");

    // The issuer rotates: "b" is fetched once, on first sight.
    server.serve(StatusCode::OK, set(&["a", "b"]));
    assert!(v.verify(&token("b"), NOW).await.is_ok());
    assert_eq!(server.requests(), 2);
    assert!(v.verify(&token("b"), NOW).await.is_ok());
    assert_eq!(server.requests(), 2);

    // Another unknown kid within min_refresh_interval (30 s) is refused without a fetch.
    assert_eq!(v.verify(&token("c"), NOW).await, Err(JwtError::UnknownKid));
    assert_eq!(server.requests(), 2);
    skip(Duration::from_secs(29)).await;
    assert_eq!(v.verify(&token("c"), NOW).await, Err(JwtError::UnknownKid));
    assert_eq!(server.requests(), 2);

    skip(Duration::from_secs(2)).await;
    server.serve(StatusCode::OK, set(&["b", "c"]));
    assert!(v.verify(&token("c"), NOW).await.is_ok());
    assert_eq!(server.requests(), 3);
    // "a" was retired by the issuer, and it is too soon to look again.
    assert_eq!(v.verify(&token("a"), NOW).await, Err(JwtError::UnknownKid));
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn the_first_token_fetches_the_set_when_nothing_did() {
    let server = JwksServer::start(set(&["a"])).await;
    let v = jwt(cache(&server));
    assert_eq!(v.verify_cached(&token("a"), NOW), Err(JwtError::UnknownKid));
    assert_eq!(server.requests(), 0, "verify_cached never fetches");
    assert!(v.verify(&token("a"), NOW).await.is_ok());
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn concurrent_requests_with_an_unknown_kid_share_one_fetch() {
    let server = JwksServer::start(set(&["a"])).await;
    let v = Arc::new(jwt(cache(&server)));
    v.jwks().unwrap().refresh().await.unwrap();
    server.serve(StatusCode::OK, set(&["a", "b"]));
    server.delay(Duration::from_millis(200));
    let mut requests = JoinSet::new();
    for _ in 0..20 {
        let v = v.clone();
        requests.spawn(async move { v.verify(&token("b"), NOW).await });
    }
    while let Some(result) = requests.join_next().await {
        assert!(result.unwrap().is_ok());
    }
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn cached_keys_keep_verifying_while_the_issuer_is_down() {
    let server = JwksServer::start(set(&["a"])).await;
    let cache = cache(&server);
    let v = jwt(cache.clone());
    cache.refresh().await.unwrap();
    server.down().await;
    assert!(v.verify(&token("a"), NOW).await.is_ok());
    // An unknown kid tries the issuer, fails, and is refused; the cached key still works.
    assert_eq!(v.verify(&token("z"), NOW).await, Err(JwtError::UnknownKid));
    assert!(matches!(
        cache.refresh().await,
        Err(JwksError::Unreachable(_))
    ));
    assert!(v.verify(&token("a"), NOW).await.is_ok());
    assert_eq!(cache.current().len(), 1);
}

#[tokio::test]
async fn a_bad_answer_keeps_the_cached_set() {
    let server = JwksServer::start(set(&["a"])).await;
    let cache = cache(&server);
    cache.refresh().await.unwrap();
    server.serve(StatusCode::SERVICE_UNAVAILABLE, set(&["b"]));
    let status = cache.refresh().await;
    assert!(matches!(
        status,
        Err(JwksError::Status(StatusCode::SERVICE_UNAVAILABLE))
    ));
    server.serve(StatusCode::OK, "<html>maintenance</html>".to_owned());
    assert!(matches!(cache.refresh().await, Err(JwksError::Invalid(_))));
    server.serve(StatusCode::OK, jwks(&[json!({ "kty": "oct", "k": A1_K })]));
    assert!(matches!(cache.refresh().await, Err(JwksError::Invalid(_))));
    assert_eq!(cache.current().keys()[0].kid(), Some("a"));
    assert!(jwt(cache).verify(&token("a"), NOW).await.is_ok());
}

#[tokio::test]
async fn a_response_larger_than_the_limit_is_refused() {
    let padding = "x".repeat(2 * 1024 * 1024);
    let big = json!({ "keys": [rsa_jwk("a")], "padding": padding }).to_string();
    let server = JwksServer::start(big).await;
    assert!(matches!(
        cache(&server).refresh().await,
        Err(JwksError::TooLarge)
    ));
    let generous = JwksOptions {
        max_body: 4 * 1024 * 1024,
        ..JwksOptions::default()
    };
    let cache = JwksCache::new(&server.url, generous).unwrap();
    assert_eq!(cache.refresh().await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_fetch_that_does_not_finish_in_time_is_abandoned() {
    let server = JwksServer::start(set(&["a"])).await;
    server.delay(Duration::from_secs(3600));
    let started = tokio::time::Instant::now();
    assert!(matches!(
        cache(&server).refresh().await,
        Err(JwksError::Timeout)
    ));
    assert_eq!(started.elapsed(), JwksOptions::default().timeout);
}

#[tokio::test]
async fn the_refresher_picks_up_a_rotation_and_retires_with_the_cache() {
    let server = JwksServer::start(set(&["a"])).await;
    let cache = cache(&server);
    let v = jwt(cache.clone());
    cache.refresh().await.unwrap();
    let refresher = cache.spawn_refresher();
    server.serve(StatusCode::OK, set(&["b"]));

    skip(JwksOptions::default().refresh_every).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.requests() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.requests(), 2);
    while v.verify_cached(&token("b"), NOW).is_err() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(v.verify_cached(&token("b"), NOW).is_ok());
    assert_eq!(v.verify_cached(&token("a"), NOW), Err(JwtError::UnknownKid));

    drop((v, cache));
    skip(JwksOptions::default().refresh_every).await;
    tokio::time::timeout(Duration::from_secs(5), refresher)
        .await
        .expect("the refresher ends once the cache is gone")
        .unwrap();
    assert_eq!(server.requests(), 2);
}

#[test]
fn urls_are_checked_and_https_needs_a_connector() {
    let options = JwksOptions::default();
    assert!(matches!(
        JwksCache::new("https://idp.example/jwks", options),
        Err(JwksError::HttpsNeedsConnector)
    ));
    for bad in [
        "idp.example/jwks",
        "ftp://idp.example/jwks",
        "/jwks",
        "http:///jwks",
    ] {
        assert!(
            matches!(JwksCache::new(bad, options), Err(JwksError::InvalidUrl)),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn any_connector_can_fetch() {
    let server = JwksServer::start(set(&["a"])).await;
    let cache =
        JwksCache::with_connector(&server.url, JwksOptions::default(), HttpConnector::new())
            .unwrap();
    assert_eq!(cache.refresh().await.unwrap(), 1);
}
