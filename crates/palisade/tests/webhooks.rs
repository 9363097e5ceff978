//! Inbound webhooks through the gateway, on both codec settings (the fast codec hands webhook
//! routes to the general one): every scheme admits a delivery signed as its provider signs and
//! refuses a tampered, stale or unsigned one with 401; the upstream gets the exact bytes and
//! what was verified; a replay is 409; development mode without a secret passes deliveries
//! with a warning; two gateways sharing Redis refuse each other's replays.

mod common;

use std::time::Duration;

use common::Codec;
use common::wire::{Reply, Wire};
use palisade_layers::webhook::{self, HmacSpec, Spec};
use palisade_testkit::UpstreamServer;
use palisade_testkit::gateway::{Gateway, GatewayBuilder};
use palisade_testkit::upstream::fnv64_hex;

/// Standard Webhooks secrets: the current one and the one being rotated out.
const CLERK_OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CLERK_NEW: &str = "whsec_dGhlIG5ldyBzZWNyZXQgYWZ0ZXIgcm90YXRpb24=";
const STRIPE: &str = "whsec_stripe_test_secret";
const SLACK: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const SHOPIFY: &str = "shpss_example_client_secret";
const CUSTOM: &str = "custom-provider-secret";
/// GitHub's published example (docs.github.com, "Validating webhook deliveries").
const GITHUB: &str = "It's a Secret to Everybody";
const GITHUB_BODY: &str = "Hello, World!";
const GITHUB_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

const BODY: &str = r#"{"type":"user.created","data":{"id":"user_29w83sxmDNGwOuEthce5gg56FcC"}}"#;

fn custom() -> Spec {
    let mut spec = HmacSpec::new("x-signature");
    spec.algorithm = webhook::Algorithm::Sha512;
    spec.encoding = webhook::Encoding::Base64;
    spec.timestamp_header = Some("x-timestamp".to_owned());
    spec.template = Some("{timestamp}.{body}".to_owned());
    Spec::Hmac(spec)
}

/// The routes: one per scheme under `/hooks/NAME`, and an open `/`.
fn config(up: &UpstreamServer, extra: &str) -> String {
    format!(
        r#"
{extra}
[audit]
sink = "stdout"

[lifecycle]
drain_delay = "0s"
grace_period = "5s"

[upstreams.app]
endpoints = ["{up}"]

[[routes]]
name = "clerk"
path = "/hooks/clerk"
upstream = "app"
[routes.webhook]
scheme = "standard-webhooks"
secrets = ["${{env:CLERK_SECRET}}", "{CLERK_NEW}"]

[[routes]]
name = "stripe"
path = "/hooks/stripe"
upstream = "app"
[routes.webhook]
scheme = "stripe"
secrets = ["{STRIPE}"]

[[routes]]
name = "github"
path = "/hooks/github"
upstream = "app"
[routes.webhook]
scheme = "github"
secrets = ["{GITHUB}"]

[[routes]]
name = "slack"
path = "/hooks/slack"
upstream = "app"
[routes.webhook]
scheme = "slack"
secrets = ["{SLACK}"]

[[routes]]
name = "shopify"
path = "/hooks/shopify"
upstream = "app"
[routes.webhook]
scheme = "shopify"
secrets = ["{SHOPIFY}"]

[[routes]]
name = "custom"
path = "/hooks/custom"
upstream = "app"
[routes.webhook]
scheme = "hmac"
secrets = ["{CUSTOM}"]
header = "x-signature"
algorithm = "sha512"
encoding = "base64"
timestamp_header = "x-timestamp"
template = "{{timestamp}}.{{body}}"

[[routes]]
name = "open"
path = "/"
upstream = "app"
"#,
        up = up.addr()
    )
}

async fn gateway(codec: Codec, extra: &str, env: &[(&str, &str)]) -> (UpstreamServer, Gateway) {
    let up = UpstreamServer::start().await.unwrap();
    let mut builder = common::builder(codec, &config(&up, extra));
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    (up, builder.spawn().await.expect("gateway starts"))
}

fn now() -> i64 {
    common::tokens::now() as i64
}

async fn post(wire: &mut Wire, path: &str, headers: &[(String, String)], body: &str) -> Reply {
    let lines: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: app\r\ncontent-type: application/json\r\n{lines}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    wire.send(request.as_bytes()).await;
    wire.response(false).await
}

fn signed(spec: &Spec, secret: &str, id: &str, at: i64, body: &str) -> Vec<(String, String)> {
    webhook::sign(spec, secret, Some(id), at, body.as_bytes()).unwrap()
}

/// The upstream got exactly `body`, and was told what was verified.
fn assert_delivered(reply: &Reply, body: &str, scheme: &str) {
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let echo = reply.json();
    assert_eq!(echo["body_bytes"], body.len());
    assert_eq!(echo["body_fnv64"], fnv64_hex(body.as_bytes()));
    assert_eq!(echo["headers"]["x-webhook-verified"], scheme);
}

fn assert_refused(reply: &Reply, status: u16, reason: &str) {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let problem = reply.json();
    assert_eq!(problem["reason"], reason);
    // Nothing about the secret or the expected signature.
    let text = String::from_utf8_lossy(&reply.body);
    assert!(!text.contains("v1,") && !text.contains("sha256="), "{text}");
}

both_codecs! {
    async fn every_scheme_admits_its_signature_and_refuses_a_tampered_body(codec: Codec) {
        let (_up, gw) = gateway(codec, "", &[("CLERK_SECRET", CLERK_OLD)]).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let cases: [(&str, Spec, &str, &str); 5] = [
            ("clerk", Spec::StandardWebhooks, CLERK_OLD, "standard-webhooks"),
            ("stripe", Spec::Stripe, STRIPE, "stripe"),
            ("slack", Spec::Slack, SLACK, "slack"),
            ("shopify", Spec::Shopify, SHOPIFY, "shopify"),
            ("custom", custom(), CUSTOM, "hmac"),
        ];
        for (n, (route, spec, secret, scheme)) in cases.iter().enumerate() {
            let path = format!("/hooks/{route}");
            let headers = signed(spec, secret, &format!("msg_{n}"), now(), BODY);
            let ok = post(&mut wire, &path, &headers, BODY).await;
            assert_delivered(&ok, BODY, scheme);
            let tampered = BODY.replace("created", "deleted");
            let headers = signed(spec, secret, &format!("msg_t{n}"), now(), BODY);
            assert_refused(&post(&mut wire, &path, &headers, &tampered).await, 401, "no_matching_signature");
            let unsigned = post(&mut wire, &path, &[], BODY).await;
            assert_refused(&unsigned, 401, "missing_header");
            let wrong = signed(spec, "whsec_d3Jvbmcgc2VjcmV0IGZvciB0ZXN0cw==", &format!("msg_w{n}"), now(), BODY);
            assert_eq!(post(&mut wire, &path, &wrong, BODY).await.status, 401, "{route}");
        }
        // GitHub's published example, through the gateway.
        let headers = vec![("x-hub-signature-256".to_owned(), GITHUB_SIG.to_owned())];
        assert_delivered(&post(&mut wire, "/hooks/github", &headers, GITHUB_BODY).await, GITHUB_BODY, "github");
        assert_refused(&post(&mut wire, "/hooks/github", &headers, "Hello, World?").await, 401, "no_matching_signature");

        let metrics = common::metrics_text(&gw).await;
        for line in [
            r#"palisade_webhook_verifications_total{route="stripe",scheme="stripe",result="valid"} 1"#,
            r#"palisade_webhook_verifications_total{route="stripe",scheme="stripe",result="no_matching_signature"} 2"#,
            r#"palisade_webhook_verifications_total{route="clerk",scheme="standard-webhooks",result="missing_header"} 1"#,
            r#"palisade_http_rejections_total{route="github",reason="bad-signature"} 1"#,
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line} missing from\n{metrics}");
        }
        let audit = gw
            .wait_for_line(|l| l.contains("\"signature_invalid\"") && l.contains("\"stripe\""), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!audit.contains(STRIPE), "the secret leaked: {audit}");
    }

    async fn timestamps_rotation_and_replays(codec: Codec) {
        let (_up, gw) = gateway(codec, "", &[("CLERK_SECRET", CLERK_OLD)]).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let spec = Spec::StandardWebhooks;
        // Signed with the new secret while the old one is still listed: both work.
        let rotated = signed(&spec, CLERK_NEW, "msg_rotated", now(), BODY);
        assert_delivered(&post(&mut wire, "/hooks/clerk", &rotated, BODY).await, BODY, "standard-webhooks");
        // The upstream learns the delivery id.
        let again = signed(&spec, CLERK_OLD, "msg_id_check", now(), BODY);
        let ok = post(&mut wire, "/hooks/clerk", &again, BODY).await;
        assert_eq!(ok.json()["headers"]["x-webhook-id"], "msg_id_check");
        // The same delivery again: 409, counted and audited.
        let replay = post(&mut wire, "/hooks/clerk", &again, BODY).await;
        assert_refused(&replay, 409, "replayed");
        // Stale and future timestamps, past the default 5 minute tolerance.
        let stale = signed(&spec, CLERK_OLD, "msg_stale", now() - 301 - 5, BODY);
        assert_refused(&post(&mut wire, "/hooks/clerk", &stale, BODY).await, 401, "timestamp_too_old");
        let future = signed(&spec, CLERK_OLD, "msg_future", now() + 301 + 5, BODY);
        assert_refused(&post(&mut wire, "/hooks/clerk", &future, BODY).await, 401, "timestamp_in_future");
        // A headers-only duplicate of the signature header is ambiguous.
        let mut doubled = signed(&spec, CLERK_OLD, "msg_doubled", now(), BODY);
        let signature = doubled.iter().find(|(n, _)| n == "webhook-signature").cloned().unwrap();
        doubled.push(signature);
        assert_refused(&post(&mut wire, "/hooks/clerk", &doubled, BODY).await, 401, "duplicate_header");
        gw.wait_for_line(|l| l.contains("\"signature_replayed\""), Duration::from_secs(5))
            .await
            .expect("an audit event for the replay");
    }

    async fn development_mode_without_a_secret_passes_with_a_warning(codec: Codec) {
        // CLERK_SECRET is not set: in development that means "not configured".
        let (_up, gw) = gateway(codec, "mode = \"development\"", &[]).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let path = "/hooks/clerk";
        // The route still has CLERK_NEW, so it verifies; a route with no secret at all passes.
        let ok = post(&mut wire, path, &signed(&Spec::StandardWebhooks, CLERK_NEW, "m1", now(), BODY), BODY).await;
        assert_delivered(&ok, BODY, "standard-webhooks");
        drop(gw);
        let up = UpstreamServer::start().await.unwrap();
        let unconfigured = config(&up, "mode = \"development\"")
            .replace(&format!(", \"{CLERK_NEW}\""), "");
        let gw = common::builder(codec, &unconfigured)
            .spawn()
            .await
            .unwrap();
        let mut wire = Wire::connect(&gw.url("/")).await;
        let passed = post(&mut wire, path, &[], BODY).await;
        assert_delivered(&passed, BODY, "skipped");
        gw.wait_for_line(|l| l.contains("UNVERIFIED"), Duration::from_secs(5)).await.unwrap();
        // Production refuses the same config at load.
        let out = std::process::Command::new(common::bin())
            .args(["validate", "--config"])
            .arg(gw.config_path())
            .env("PALISADE_MODE", "production")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("CLERK_SECRET"), "{stderr}");
    }
}

/// Two replicas sharing one Redis: a delivery accepted by one is a replay at the other.
#[tokio::test]
async fn replicas_sharing_redis_refuse_each_others_replays() {
    let prefix = format!("palisade-test-{}", std::process::id());
    let redis = format!("[redis]\nurl = \"redis://127.0.0.1:6379\"\nprefix = \"{prefix}\"\n");
    let up = UpstreamServer::start().await.unwrap();
    let shared = config(&up, &redis).replace(
        "scheme = \"standard-webhooks\"",
        "scheme = \"standard-webhooks\"\nreplay = \"redis\"",
    );
    let start = || {
        GatewayBuilder::new(common::bin())
            .config(&shared)
            .env("CLERK_SECRET", CLERK_OLD)
            .spawn()
    };
    let (a, b) = (start().await.unwrap(), start().await.unwrap());
    let id = format!("msg_shared_{}", std::process::id());
    let headers = signed(&Spec::StandardWebhooks, CLERK_OLD, &id, now(), BODY);
    let mut to_a = Wire::connect(&a.url("/")).await;
    let mut to_b = Wire::connect(&b.url("/")).await;
    assert_delivered(
        &post(&mut to_a, "/hooks/clerk", &headers, BODY).await,
        BODY,
        "standard-webhooks",
    );
    assert_refused(
        &post(&mut to_b, "/hooks/clerk", &headers, BODY).await,
        409,
        "replayed",
    );
}
