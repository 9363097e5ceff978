//! Identity on both codecs: routes with `auth` admit a valid JWT or API key and nothing else
//! (401 with `WWW-Authenticate`, 403 for missing scopes), the upstream learns the caller from
//! headers a client cannot forge, rate limits count per caller and tier, refusals are counted
//! and audited, and a key rotated at the issuer is fetched once.

mod common;

use std::time::Duration;

use common::Codec;
use common::tokens::{self, claims};
use common::wire::{Reply, Wire};
use palisade_testkit::UpstreamServer;
use palisade_testkit::document::DocumentServer;
use palisade_testkit::gateway::Gateway;
use serde_json::json;
use sha2::Digest;

const API_KEY: &str = "pk_live_4f9a1c2e";

fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Routes: `/jwt` (auth jwt), `/keys` (api_key), `/write` (either, scope orders:write),
/// `/limited` (jwt, per-user tiers), and `/` open to anyone.
async fn gateway(codec: Codec, jwt: &str) -> (UpstreamServer, Gateway) {
    let up = UpstreamServer::start().await.unwrap();
    let config = format!(
        r#"
[audit]
sink = "stdout"

[auth.jwt]
{jwt}
algorithms = ["HS256", "EdDSA"]
issuer = "https://issuer.test/"
audience = "orders"
tier_claim = "plan"
leeway = "0s"

[[auth.api_keys.keys]]
id = "partner-1"
sha256 = "{key}"
tier = "pro"
scopes = ["orders:write"]

[rate_limits.per-user]
key = "identity"
limit = 1
per = "1m"
[rate_limits.per-user.tiers.pro]
limit = 3

[lifecycle]
drain_delay = "0s"
grace_period = "5s"

[upstreams.app]
endpoints = ["{up}"]

[[routes]]
name = "jwt"
path = "/jwt"
upstream = "app"
auth = "jwt"

[[routes]]
name = "keys"
path = "/keys"
upstream = "app"
auth = "api_key"

[[routes]]
name = "write"
path = "/write"
upstream = "app"
auth = "either"
scopes = ["orders:write"]

[[routes]]
name = "limited"
path = "/limited"
upstream = "app"
auth = "jwt"
rate_limits = ["per-user"]

[[routes]]
name = "open"
path = "/"
upstream = "app"
"#,
        key = sha256_hex(API_KEY),
        up = up.addr(),
    );
    let gw = common::builder(codec, &config)
        .file("jwt.json", tokens::hs256_jwk())
        .spawn()
        .await
        .expect("gateway starts");
    (up, gw)
}

async fn get(wire: &mut Wire, path: &str, headers: &str) -> Reply {
    let request = format!("GET {path} HTTP/1.1\r\nhost: app\r\n{headers}\r\n");
    wire.send(request.as_bytes()).await;
    wire.response(false).await
}

fn bearer(token: &str) -> String {
    format!("authorization: Bearer {token}\r\n")
}

fn echoed(reply: &Reply, header: &str) -> Option<String> {
    reply.json()["headers"][header].as_str().map(str::to_owned)
}

both_codecs! {
    async fn a_jwt_route_admits_valid_tokens_only(codec: Codec) {
        let (_up, gw) = gateway(codec, "keys_file = \"jwt.json\"").await;
        let mut wire = Wire::connect(&gw.url("/")).await;

        let none = get(&mut wire, "/jwt", "").await;
        assert_eq!(none.status, 401);
        assert_eq!(none.header("www-authenticate"), Some("Bearer realm=\"palisade\""));
        assert_eq!(none.json()["reason"], "missing");
        assert_eq!(none.json()["type"], "https://palisade.dev/problems/unauthorized");

        let refused = [
            ("bad_signature", tokens::hs256(claims("ann", json!({})), b"another-secret-another-secret-xx")),
            ("expired", tokens::hs256(claims("ann", json!({ "exp": tokens::now() - 1 })), tokens::SECRET)),
            ("wrong_issuer", tokens::hs256(claims("ann", json!({ "iss": "https://evil.test/" })), tokens::SECRET)),
            ("wrong_audience", tokens::hs256(claims("ann", json!({ "aud": "billing" })), tokens::SECRET)),
            ("malformed", "not.a.jwt".to_owned()),
        ];
        for (reason, token) in refused {
            let reply = get(&mut wire, "/jwt", &bearer(&token)).await;
            assert_eq!((reply.status, reply.json()["reason"].as_str()), (401, Some(reason)), "{token}");
            let challenge = reply.header("www-authenticate").unwrap_or_default();
            assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        }

        // A valid token: the upstream learns who called, and a forged identity header is gone.
        let token = tokens::hs256(claims("ann", json!({ "plan": "free" })), tokens::SECRET);
        let forged = format!("{}x-user-id: admin\r\nx-auth-method: api_key\r\n", bearer(&token));
        let ok = get(&mut wire, "/jwt", &forged).await;
        assert_eq!(ok.status, 200);
        assert_eq!(echoed(&ok, "x-user-id").as_deref(), Some("ann"));
        assert_eq!(echoed(&ok, "x-user-tier").as_deref(), Some("free"));
        assert_eq!(echoed(&ok, "x-auth-method").as_deref(), Some("jwt"));
        // The token itself goes on: the app may want it.
        assert!(echoed(&ok, "authorization").is_some());

        // On a route without auth a client's copies never reach the upstream either.
        let open = get(&mut wire, "/open", "x-user-id: admin\r\nx-user-tier: pro\r\nx-webhook-verified: stripe\r\n").await;
        assert_eq!(open.status, 200);
        for header in ["x-user-id", "x-user-tier", "x-webhook-verified"] {
            assert_eq!(echoed(&open, header), None, "{header} reached the upstream");
        }

        let metrics = common::metrics_text(&gw).await;
        for line in [
            r#"palisade_auth_decisions_total{route="jwt",method="none",result="missing"} 1"#,
            r#"palisade_auth_decisions_total{route="jwt",method="jwt",result="expired"} 1"#,
            r#"palisade_auth_decisions_total{route="jwt",method="jwt",result="ok"} 1"#,
            r#"palisade_http_rejections_total{route="jwt",reason="unauthorized"} 6"#,
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line} missing from\n{metrics}");
        }
        let audit = gw
            .wait_for_line(|l| l.contains("\"auth_failed\"") && l.contains("expired"), Duration::from_secs(5))
            .await
            .unwrap();
        let event: serde_json::Value = serde_json::from_str(&audit).unwrap();
        assert_eq!((event["category"].as_str(), event["outcome"].as_str()), (Some("authentication"), Some("denied")));
        assert_eq!((event["route"].as_str(), event["actor"].as_str()), (Some("jwt"), Some("127.0.0.1")));
        assert!(!audit.contains(&token[..20]), "the token leaked into the audit log");
    }

    async fn api_keys_are_checked_by_hash_and_scopes_give_403(codec: Codec) {
        let (_up, gw) = gateway(codec, "keys_file = \"jwt.json\"").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let ok = get(&mut wire, "/keys", &format!("x-api-key: {API_KEY}\r\n")).await;
        assert_eq!(ok.status, 200);
        assert_eq!(echoed(&ok, "x-user-id").as_deref(), Some("partner-1"));
        assert_eq!(echoed(&ok, "x-user-tier").as_deref(), Some("pro"));
        assert_eq!(echoed(&ok, "x-auth-method").as_deref(), Some("api_key"));
        // As a bearer credential too.
        assert_eq!(get(&mut wire, "/keys", &bearer(API_KEY)).await.status, 200);
        let unknown = get(&mut wire, "/keys", "x-api-key: pk_live_guess\r\n").await;
        assert_eq!((unknown.status, unknown.json()["reason"].as_str()), (401, Some("unknown_api_key")));
        // A JWT is not an API key: this route takes keys only.
        let token = tokens::hs256(claims("ann", json!({})), tokens::SECRET);
        assert_eq!(get(&mut wire, "/keys", &bearer(&token)).await.status, 401);
        let twice = get(&mut wire, "/keys", &format!("x-api-key: {API_KEY}\r\nx-api-key: {API_KEY}\r\n")).await;
        assert_eq!(twice.status, 401, "a repeated credential is ambiguous");

        // Scopes: the key has orders:write; a token without it is known but forbidden.
        assert_eq!(get(&mut wire, "/write", &format!("x-api-key: {API_KEY}\r\n")).await.status, 200);
        let read_only = tokens::hs256(claims("ann", json!({ "scope": "orders:read" })), tokens::SECRET);
        let forbidden = get(&mut wire, "/write", &bearer(&read_only)).await;
        assert_eq!(forbidden.status, 403);
        assert_eq!(forbidden.json()["reason"], "insufficient_scope");
        let challenge = forbidden.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("scope=\"orders:write\""), "{challenge}");
        let writer = tokens::hs256(claims("ann", json!({ "scope": "orders:read orders:write" })), tokens::SECRET);
        assert_eq!(get(&mut wire, "/write", &bearer(&writer)).await.status, 200);
        gw.wait_for_line(|l| l.contains("\"auth_forbidden\"") && l.contains("\"ann\""), Duration::from_secs(5))
            .await
            .expect("an audit event naming the caller");
    }

    async fn rate_limits_count_each_caller_on_its_tier(codec: Codec) {
        let (_up, gw) = gateway(codec, "keys_file = \"jwt.json\"").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let statuses = |plan: &'static str, user: &'static str| {
            let token = tokens::hs256(claims(user, json!({ "plan": plan })), tokens::SECRET);
            bearer(&token)
        };
        let mut seen = Vec::new();
        for (plan, user) in [("free", "ann"), ("free", "ann"), ("free", "bob"), ("pro", "cat"), ("pro", "cat"), ("pro", "cat"), ("pro", "cat")] {
            let reply = get(&mut wire, "/limited", &statuses(plan, user)).await;
            seen.push(reply.status);
            if reply.status == 429 {
                assert_eq!(reply.json()["policy"], "per-user");
            }
        }
        // ann: 1 a minute (free); bob: his own bucket; cat: 3 a minute (pro).
        assert_eq!(seen, [200, 429, 200, 200, 200, 200, 429]);
        // The refusal's audit event names the caller, not an address.
        let audit = gw
            .wait_for_line(|l| l.contains("\"request_limited\"") && l.contains("\"actor\":\"ann\""), Duration::from_secs(5))
            .await;
        assert!(audit.is_ok(), "no request_limited event with actor ann");
        // A client cannot pick its tier by header when it has a verified one.
        let spoofed = format!("{}x-user-tier: pro\r\n", statuses("free", "dan"));
        assert_eq!(get(&mut wire, "/limited", &spoofed).await.status, 200);
        assert_eq!(get(&mut wire, "/limited", &spoofed).await.status, 429);
    }

    async fn a_rotated_key_is_fetched_once_and_kept_while_the_issuer_is_down(codec: Codec) {
        let jwks = DocumentServer::start(&tokens::ed_jwks(&["k1"])).await.unwrap();
        let (_up, gw) = gateway(
            codec,
            &format!("jwks_url = \"{}\"\njwks_min_refresh = \"1h\"", jwks.url("/jwks.json")),
        )
        .await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let token = |kid| bearer(&tokens::eddsa(claims("eve", json!({})), kid));
        // The first fetch happens at start (or for the first token).
        assert_eq!(get(&mut wire, "/jwt", &token("k1")).await.status, 200);
        let fetched = jwks.requests();
        assert!(fetched >= 1);

        // The issuer rotates to k2: the first k2 token causes one fetch and is admitted.
        jwks.set(&tokens::ed_jwks(&["k1", "k2"]));
        assert_eq!(get(&mut wire, "/jwt", &token("k2")).await.status, 200);
        assert_eq!(jwks.requests(), fetched + 1);
        // An unknown kid within jwks_min_refresh fetches nothing and is refused.
        let unknown = get(&mut wire, "/jwt", &token("k9")).await;
        assert_eq!((unknown.status, unknown.json()["reason"].as_str()), (401, Some("unknown_kid")));
        assert_eq!(get(&mut wire, "/jwt", &token("k9")).await.status, 401);
        assert_eq!(jwks.requests(), fetched + 1);

        // The issuer goes down: the cached keys still verify.
        jwks.stop();
        assert_eq!(get(&mut wire, "/jwt", &token("k2")).await.status, 200);
        // HS256 tokens are refused on a JWK Set: a remote set never yields an HMAC secret.
        let hs = tokens::hs256(claims("eve", json!({})), tokens::SECRET);
        assert_eq!(get(&mut wire, "/jwt", &bearer(&hs)).await.status, 401);
    }
}

#[test]
fn validate_reports_a_key_file_that_does_not_parse() {
    let dir = std::env::temp_dir().join(format!("palisade-auth-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keys.json"), "{\"kty\":\"RSA\"}").unwrap();
    let config = dir.join("palisade.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.jwt]\nkeys_file = \"{}\"\nalgorithms = [\"RS256\"]\n\n[upstreams.app]\nendpoints = [\"127.0.0.1:9\"]\n\n[[routes]]\nname = \"api\"\nupstream = \"app\"\nauth = \"jwt\"\n",
            dir.join("keys.json").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("auth.jwt") && stderr.contains("keys.json"),
        "{stderr}"
    );
}

/// Credential headers face attackers: any bytes in `Authorization` and `X-API-Key`, once or
/// twice, on an auth route get a 4xx (400 from the parser, 401/403 from the check), never a
/// 5xx or a hang, on both codecs; and the gateway logs no panic.
fn no_credential_bytes_get_a_5xx(codec: Codec) {
    use common::raw::{Answer, Conn};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_up, gw) = rt.block_on(gateway(codec, "keys_file = \"jwt.json\""));
    let value = prop_oneof![
        "[ -~]{0,64}",
        "Bearer [ -~]{0,80}",
        "Bearer [A-Za-z0-9_-]{1,30}\\.[A-Za-z0-9_-]{0,30}\\.[A-Za-z0-9_-]{0,30}",
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[A-Za-z]{0,8} {0,3}[ -~]{0,9000}",
    ];
    let header = prop::sample::select(vec!["authorization", "x-api-key", "Authorization"]);
    let path = prop::sample::select(vec!["/jwt", "/keys", "/write"]);
    let case = (path, prop::collection::vec((header, value), 1..3));
    let mut runner = TestRunner::new(Config {
        cases: 150,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case, |(path, lines)| {
            let lines: String = lines.iter().map(|(h, v)| format!("{h}: {v}\r\n")).collect();
            let request = format!("GET {path} HTTP/1.1\r\nhost: app\r\n{lines}\r\n");
            let answer = rt.block_on(async {
                let mut conn = Conn::open(&gw).await;
                conn.send(request.as_bytes()).await;
                conn.answer().await
            });
            match &answer {
                Answer::Reply(reply, _) => prop_assert!(
                    (400..500).contains(&reply.status),
                    "{request:?} -> {}",
                    answer.describe()
                ),
                Answer::Closed(_) => {}
                _ => prop_assert!(false, "{request:?} -> {}", answer.describe()),
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{codec:?}: {e}"));
    let panicked = gw
        .output_lines()
        .into_iter()
        .filter(|l| l.contains("panicked"))
        .count();
    assert_eq!(panicked, 0);
}

#[test]
fn no_credential_bytes_get_a_5xx_on_the_fast_codec() {
    no_credential_bytes_get_a_5xx(Codec::Fast);
}

#[test]
fn no_credential_bytes_get_a_5xx_on_the_general_codec() {
    no_credential_bytes_get_a_5xx(Codec::General);
}
