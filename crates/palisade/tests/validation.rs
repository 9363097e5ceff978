//! Request validation on both codecs: a path whose routes take other methods is a 405 with
//! `Allow`, and a body of a media type the route does not accept is a 415; both are small
//! problem documents, counted, and leave the connection usable.

mod common;

use common::Codec;
use common::wire::Wire;
use palisade_testkit::UpstreamServer;
use palisade_testkit::gateway::Gateway;

/// `/api` reads with GET and HEAD, `/api/orders` also takes JSON POSTs; nothing else is routed.
async fn gateway(codec: Codec) -> (UpstreamServer, Gateway) {
    let up = UpstreamServer::start().await.unwrap();
    let config = common::config_for(
        up.addr(),
        "methods = [\"POST\"]\ncontent_types = [\"application/json\", \"text/*\"]",
    )
    .replace(
        "name = \"api\"\npath = \"/\"",
        "name = \"orders\"\npath = \"/api/orders\"",
    ) + "\n[[routes]]\nname = \"read\"\npath = \"/api\"\nupstream = \"app\"\nmethods = [\"GET\", \"HEAD\"]\n";
    let gw = common::spawn(codec, &config, true).await;
    (up, gw)
}

fn request(method: &str, path: &str, content_type: Option<&str>, body: &str) -> Vec<u8> {
    let ct = content_type
        .map(|t| format!("content-type: {t}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nhost: app\r\n{ct}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

both_codecs! {
    async fn a_method_no_route_on_the_path_takes_is_405_with_allow(codec: Codec) {
        let (_up, gw) = gateway(codec).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        wire.send(&request("DELETE", "/api/orders/7", None, "")).await;
        let reply = wire.response(false).await;
        assert_eq!(reply.status, 405);
        // Every route on the path, in config order.
        assert_eq!(reply.header("allow"), Some("POST, GET, HEAD"));
        assert_eq!(reply.json()["type"], "https://palisade.dev/problems/method-not-allowed");
        wire.send(&request("PUT", "/api/users", None, "")).await;
        assert_eq!(wire.response(false).await.header("allow"), Some("GET, HEAD"));
        // No route on the path at all: still a 404.
        wire.send(&request("GET", "/elsewhere", None, "")).await;
        let missing = wire.response(false).await;
        assert_eq!((missing.status, missing.header("allow")), (404, None));
        // The connection still serves a routed request.
        wire.send(&request("GET", "/api/users", None, "")).await;
        assert_eq!(wire.response(false).await.status, 200);
        let metrics = common::metrics_text(&gw).await;
        assert!(metrics.contains(r#"palisade_http_rejections_total{route="none",reason="method-not-allowed"} 2"#), "{metrics}");
    }

    async fn a_body_of_a_type_the_route_does_not_take_is_415(codec: Codec) {
        let (_up, gw) = gateway(codec).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let mut statuses = Vec::new();
        for (content_type, body) in [
            (Some("application/json"), "{}"),
            (Some("Application/JSON; charset=utf-8"), "{}"),
            (Some("text/csv"), "a,b"),
            (Some("application/xml"), "<a/>"),
            (None, "{}"),
            (Some("application/xml"), ""),
        ] {
            wire.send(&request("POST", "/api/orders", content_type, body)).await;
            let reply = wire.response(false).await;
            if reply.status == 415 {
                assert_eq!(reply.json()["type"], "https://palisade.dev/problems/unsupported-media-type");
            }
            statuses.push(reply.status);
            if reply.header("connection") == Some("close") {
                // hyper closes when it left the refused body unread.
                assert_eq!(codec, Codec::General);
                wire = Wire::connect(&gw.url("/")).await;
            }
        }
        // Accepted: JSON with parameters and in any case, text/* of any subtype, and a POST
        // without a body whatever its type says. Refused: another type, or none at all.
        assert_eq!(statuses, [200, 200, 200, 415, 415, 200]);
    }
}

mod responses {
    use super::*;

    both_codecs! {
        async fn responses_get_security_headers_and_lose_the_upstreams_fingerprint(codec: Codec) {
            let up = UpstreamServer::start().await.unwrap();
            let config = common::config_for(
                up.addr(),
                "hsts = \"max-age=31536000; includeSubDomains\"\nframe_options = \"DENY\"",
            );
            let gw = common::spawn(codec, &config, true).await;
            let mut wire = Wire::connect(&gw.url("/")).await;
            wire.send(&request(
                "GET",
                "/x?set_header=server:nginx%2F1.2&set_header=x-powered-by:PHP&set_header=referrer-policy:no-referrer",
                None,
                "",
            ))
            .await;
            let reply = wire.response(false).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.header("server"), None);
            assert_eq!(reply.header("x-powered-by"), None);
            assert_eq!(reply.all("x-content-type-options"), ["nosniff"]);
            // The upstream's own value wins, and is not doubled.
            assert_eq!(reply.all("referrer-policy"), ["no-referrer"]);
            assert_eq!(reply.header("strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
            assert_eq!(reply.header("x-frame-options"), Some("DENY"));
            // Palisade's own answers say nosniff too.
            wire.send(&request("GET", "/x?status=200", None, "")).await;
            assert_eq!(wire.response(false).await.header("referrer-policy"), Some("strict-origin-when-cross-origin"));
            let mut refused = Wire::connect(&gw.url("/")).await;
            refused.send(b"GET /a/%2e%2e/%2e%2e/b HTTP/1.1\r\nhost: app\r\n\r\n").await;
            let problem = refused.response(false).await;
            assert_eq!((problem.status, problem.header("x-content-type-options")), (400, Some("nosniff")));
        }
    }
}

mod schemas {
    use super::*;

    const ORDER: &str = r#"{
        "type": "object",
        "required": ["sku", "quantity"],
        "properties": {
            "sku": {"type": "string"},
            "quantity": {"type": "integer", "minimum": 1},
            "items": {"type": "array", "items": {"type": "object", "properties": {"price": {"type": "number"}}}}
        }
    }"#;

    async fn gateway(codec: Codec) -> (UpstreamServer, Gateway) {
        let up = UpstreamServer::start().await.unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "palisade-order-{}-{nanos}.json",
            std::process::id()
        ));
        std::fs::write(&path, ORDER).unwrap();
        let config = common::config_for(
            up.addr(),
            &format!("json_schema = {:?}", path.display().to_string()),
        );
        let gw = common::spawn(codec, &config, true).await;
        (up, gw)
    }

    both_codecs! {
        async fn a_json_body_must_satisfy_the_routes_schema(codec: Codec) {
            let (up, gw) = gateway(codec).await;
            let mut answers = Vec::new();
            for body in [
                r#"{"sku": "a-1", "quantity": 2}"#,
                r#"{"sku": "a-1", "quantity": 0}"#,
                r#"{"sku": "a-1", "quantity": 1, "items": [{"price": 1}, {"price": "free"}]}"#,
                r#"{"quantity": 1}"#,
                r#"{"sku": "a-1", "quantity": "#,
            ] {
                let mut wire = Wire::connect(&gw.url("/")).await;
                wire.send(&request("POST", "/orders", Some("application/json"), body)).await;
                let reply = wire.response(false).await;
                let pointer = (reply.status == 422).then(|| reply.json()["pointer"].as_str().map(str::to_owned)).flatten();
                if reply.status == 200 {
                    // The body reaches the upstream as it came.
                    assert_eq!(reply.json()["body_bytes"], body.len(), "{body}");
                }
                answers.push((reply.status, pointer));
            }
            assert_eq!(
                answers,
                [
                    (200, None),
                    (422, Some("/quantity".to_owned())),
                    (422, Some("/items/1/price".to_owned())),
                    (422, Some(String::new())),
                    (400, None),
                ]
            );
            // Requests without a body are not checked.
            let mut wire = Wire::connect(&gw.url("/")).await;
            wire.send(&request("GET", "/orders", None, "")).await;
            assert_eq!(wire.response(false).await.status, 200);
            assert_eq!(up.requests_seen(), 2, "refused bodies never reach the upstream");
            let metrics = common::metrics_text(&gw).await;
            assert!(metrics.contains(r#"palisade_http_rejections_total{route="api",reason="invalid-body"} 3"#), "{metrics}");
        }
    }
}
