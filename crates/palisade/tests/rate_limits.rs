//! Rate limits on the wire, on both codecs: the fields on every response of a limited route
//! (parsed back with an RFC 9651 parser), 429 with `Retry-After` and a problem naming the
//! policy, the metric and the audit event of a refusal, keys that a client cannot spoof,
//! tiers, shadow mode, an upstream's own fields kept, and counters that outlive a reload.

mod common;

use std::time::Duration;

use common::Codec;
use common::wire::{Reply, Wire};
use palisade_testkit::UpstreamServer;
use palisade_testkit::gateway::Gateway;
use sfv::{BareItem, ListEntry, Parser};

/// `(name, params)` of each member of an RFC 9651 list field, all lines of it combined.
fn members(reply: &Reply, field: &str) -> Vec<(String, Vec<(String, i64)>)> {
    let joined = reply.all(field).join(", ");
    let list = Parser::parse_list(joined.as_bytes())
        .unwrap_or_else(|e| panic!("{field}: {joined:?} is not an RFC 9651 list: {e}"));
    list.into_iter()
        .map(|entry| {
            let ListEntry::Item(item) = entry else {
                panic!("{field}: an inner list in {joined:?}")
            };
            let BareItem::String(name) = item.bare_item else {
                panic!("{field}: a member that is not a string in {joined:?}")
            };
            let params = item
                .params
                .into_iter()
                .map(|(k, v)| match v {
                    BareItem::Integer(n) => (k, n),
                    other => panic!("{field}: parameter {k} is {other:?}"),
                })
                .collect();
            (name, params)
        })
        .collect()
}

fn param(members: &[(String, Vec<(String, i64)>)], policy: &str, key: &str) -> i64 {
    let (_, params) = members
        .iter()
        .find(|(name, _)| name == policy)
        .unwrap_or_else(|| panic!("no member {policy:?} in {members:?}"));
    params
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} on {policy:?}"))
        .1
}

/// A gateway whose catch-all route "api" is limited by `policies` (TOML of `[rate_limits.*]`).
async fn limited(
    codec: Codec,
    policies: &str,
    names: &[&str],
    server: &str,
) -> (UpstreamServer, Gateway) {
    let up = UpstreamServer::start().await.unwrap();
    let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let config = common::config_for(up.addr(), &format!("rate_limits = [{}]", list.join(", ")))
        .replace(
            "[lifecycle]",
            &format!("{server}\n[audit]\nsink = \"stdout\"\n\n{policies}\n[lifecycle]"),
        );
    let gw = common::spawn(codec, &config, true).await;
    (up, gw)
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: app\r\n{extra}\r\n").into_bytes()
}

both_codecs! {
    async fn a_client_past_its_limit_gets_429_with_retry_after_and_the_fields(codec: Codec) {
        let (_up, gw) = limited(codec, "[rate_limits.per-ip]\nlimit = 3\nper = \"1m\"\n", &["per-ip"], "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        for left in [2, 1, 0] {
            wire.send(&get("/x", "")).await;
            let reply = wire.response(false).await;
            assert_eq!(reply.status, 200);
            let policy = members(&reply, "ratelimit-policy");
            assert_eq!((param(&policy, "per-ip", "q"), param(&policy, "per-ip", "w")), (3, 60));
            let limit = members(&reply, "ratelimit");
            assert_eq!(param(&limit, "per-ip", "r"), left);
            // One request's cell comes back every 20 s.
            assert_eq!(param(&limit, "per-ip", "t"), 20 * (3 - left));
        }
        // A POST with a body is refused before its body is read; the body is skipped and the
        // connection goes on.
        wire.send(b"POST /x HTTP/1.1\r\nhost: app\r\nx-request-id: limited-1\r\ncontent-length: 5\r\n\r\nhello").await;
        let refused = wire.response(false).await;
        assert_eq!(refused.status, 429);
        assert_eq!(refused.header("retry-after"), Some("20"));
        assert_eq!(refused.header("content-type"), Some("application/problem+json"));
        let problem = refused.json();
        assert_eq!(problem["type"], "https://palisade.dev/problems/rate-limited");
        assert_eq!(problem["policy"], "per-ip");
        assert_eq!(param(&members(&refused, "ratelimit"), "per-ip", "r"), 0);
        // hyper closes a connection whose body was left unread, and says so; the fast codec
        // skips the body and keeps it.
        if refused.header("connection") == Some("close") {
            assert_eq!(codec, Codec::General);
            wire = Wire::connect(&gw.url("/")).await;
        }
        wire.send(&get("/y", "")).await;
        assert_eq!(wire.response(false).await.status, 429);

        let metrics = common::metrics_text(&gw).await;
        for line in [
            r#"palisade_ratelimit_decisions_total{policy="per-ip",result="allowed"} 3"#,
            r#"palisade_ratelimit_decisions_total{policy="per-ip",result="limited"} 2"#,
            r#"palisade_http_rejections_total{route="api",reason="rate-limited"} 2"#,
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line} missing from\n{metrics}");
        }
        let audit = gw
            .wait_for_line(|l| l.contains("\"request_limited\"") && l.contains("limited-1"), Duration::from_secs(5))
            .await
            .unwrap();
        let event: serde_json::Value = serde_json::from_str(&audit).unwrap();
        assert_eq!((event["category"].as_str(), event["outcome"].as_str()), (Some("rate_limit"), Some("denied")));
        assert_eq!((event["route"].as_str(), event["actor"].as_str()), (Some("api"), Some("127.0.0.1")));
        assert_eq!(event["details"]["policy"], "per-ip");
        assert_eq!(event["details"]["key"].as_str().map(str::len), Some(16), "a hash, not the key");
    }

    async fn forwarded_headers_from_an_untrusted_peer_do_not_change_the_key(codec: Codec) {
        let (_up, gw) = limited(codec, "[rate_limits.per-ip]\nlimit = 2\nper = \"1m\"\n", &["per-ip"], "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let mut statuses = Vec::new();
        for i in 0..4 {
            let spoof = format!("x-forwarded-for: 203.0.113.{i}\r\nforwarded: for=198.51.100.{i}\r\n");
            wire.send(&get("/x", &spoof)).await;
            statuses.push(wire.response(false).await.status);
        }
        assert_eq!(statuses, [200, 200, 429, 429]);
    }

    async fn behind_a_trusted_proxy_each_client_address_has_its_own_bucket(codec: Codec) {
        let server = "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n";
        let (_up, gw) = limited(codec, "[rate_limits.per-ip]\nlimit = 1\nper = \"1m\"\n", &["per-ip"], server).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let mut statuses = Vec::new();
        for client in ["203.0.113.1", "203.0.113.2", "203.0.113.1"] {
            wire.send(&get("/x", &format!("x-forwarded-for: {client}\r\n"))).await;
            statuses.push(wire.response(false).await.status);
        }
        assert_eq!(statuses, [200, 200, 429]);
    }

    async fn a_trusted_proxy_may_name_the_client_in_forwarded(codec: Codec) {
        let server = "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n";
        let (_up, gw) = limited(codec, "[rate_limits.per-ip]\nlimit = 1\nper = \"1m\"\n", &["per-ip"], server).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let mut statuses = Vec::new();
        for client in ["\"198.51.100.1:4711\"", "\"[2001:db8::7]\"", "198.51.100.1"] {
            wire.send(&get("/x", &format!("forwarded: for={client};proto=https\r\n"))).await;
            let reply = wire.response(false).await;
            statuses.push(reply.status);
            if reply.status == 200 {
                // The upstream hears of the same client.
                let real_ip = reply.json()["headers"]["x-real-ip"].as_str().map(str::to_owned);
                assert!(real_ip.is_some_and(|ip| client.contains(&ip)), "{client}");
            }
        }
        assert_eq!(statuses, [200, 200, 429]);
    }

    async fn the_strictest_of_several_policies_answers(codec: Codec) {
        let policies = "[rate_limits.per-ip]\nlimit = 100\nper = \"1m\"\n\n\
            [rate_limits.per-user]\nkey = \"header:x-user\"\nlimit = 1\nper = \"1h\"\n\
            tier_header = \"x-plan\"\n[rate_limits.per-user.tiers.pro]\nlimit = 2\n";
        let (_up, gw) = limited(codec, policies, &["per-ip", "per-user"], "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let mut ask = async |user: &str, plan: &str| {
            wire.send(&get("/x", &format!("x-user: {user}\r\nx-plan: {plan}\r\n"))).await;
            wire.response(false).await
        };
        assert_eq!(ask("alice", "free").await.status, 200);
        let refused = ask("alice", "free").await;
        assert_eq!(refused.status, 429);
        assert_eq!(refused.json()["policy"], "per-user");
        assert_eq!(refused.header("retry-after"), Some("3600"));
        // Both policies are listed, each with the quota the request was on.
        let listed = members(&refused, "ratelimit-policy");
        assert_eq!(param(&listed, "per-ip", "q"), 100);
        assert_eq!(param(&listed, "per-user", "q"), 1);
        let pro: Vec<u16> = [ask("bob", "pro").await, ask("bob", "pro").await, ask("bob", "pro").await]
            .iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(pro, [200, 200, 429]);
    }

    async fn shadow_mode_counts_and_refuses_nothing(codec: Codec) {
        let (_up, gw) = limited(codec, "[rate_limits.trial]\nlimit = 1\nper = \"1h\"\nshadow = true\n", &["trial"], "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        for _ in 0..3 {
            wire.send(&get("/x", "")).await;
            let reply = wire.response(false).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.header("retry-after"), None);
        }
        let metrics = common::metrics_text(&gw).await;
        assert!(metrics.contains(r#"palisade_ratelimit_decisions_total{policy="trial",result="shadow_limited"} 2"#), "{metrics}");
    }

    async fn the_upstreams_own_fields_are_kept_beside_the_proxys(codec: Codec) {
        let (_up, gw) = limited(codec, "[rate_limits.per-ip]\nlimit = 5\nper = \"1s\"\n", &["per-ip"], "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        wire.send(&get("/x?set_header=ratelimit:%22app%22;r=7;t=9", "")).await;
        let reply = wire.response(false).await;
        let limit = members(&reply, "ratelimit");
        assert_eq!(param(&limit, "app", "r"), 7);
        assert_eq!(param(&limit, "per-ip", "r"), 4);
    }
}

#[tokio::test]
async fn a_reload_keeps_the_counters_of_an_unchanged_policy() {
    let policy = "[rate_limits.per-ip]\nlimit = 1\nper = \"1h\"\n";
    let (_up, gw) = limited(Codec::Fast, policy, &["per-ip"], "").await;
    let client = common::client();
    let status = async || {
        client
            .get(gw.url("/x"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status().await, 200);
    assert_eq!(status().await, 429);
    // Another setting changes; the policy does not: the client stays limited.
    let config = std::fs::read_to_string(gw.config_path()).unwrap();
    let changed = config.replace("timeout = \"1s\"", "timeout = \"2s\"");
    assert_ne!(changed, config);
    std::fs::write(gw.config_path(), &changed).unwrap();
    gw.signal("HUP").unwrap();
    gw.wait_for_line(
        |l| l.contains("\"action\":\"reload\"") && l.contains("success"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(status().await, 429);
    // The policy itself changes: it starts afresh.
    std::fs::write(
        gw.config_path(),
        changed.replace("limit = 1\n", "limit = 2\n"),
    )
    .unwrap();
    gw.signal("HUP").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while status().await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the changed policy never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
