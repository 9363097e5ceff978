//! Request ids and W3C trace context: kept when valid, generated otherwise, forwarded upstream
//! and returned to the client.

mod common;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

both_codecs! {
    async fn a_valid_request_id_is_kept_forwarded_and_returned(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let resp = common::client()
            .get(gw.url("/"))
            .header("x-request-id", "client-req-0042")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-request-id"], "client-req-0042");
        let echo = common::json(resp).await;
        assert_eq!(echo["headers"]["x-request-id"], "client-req-0042");
    }

    async fn a_missing_or_invalid_request_id_is_replaced_by_a_generated_one(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let client = common::client();
        let mut seen = Vec::new();
        for incoming in [None, Some("bad id with spaces\" and quotes")] {
            let mut req = client.get(gw.url("/"));
            if let Some(v) = incoming {
                req = req.header("x-request-id", v);
            }
            let resp = req.send().await.unwrap();
            let returned = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
            assert_eq!(returned.len(), 36, "a UUID: {returned}");
            let echo = common::json(resp).await;
            assert_eq!(echo["headers"]["x-request-id"], returned.as_str());
            seen.push(returned);
        }
        assert_ne!(seen[0], seen[1]);
    }

    async fn a_valid_traceparent_is_continued_with_a_child_span(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let resp = common::client()
            .get(gw.url("/"))
            .header("traceparent", TRACEPARENT)
            .header("tracestate", "vendor=abc")
            .send()
            .await
            .unwrap();
        let returned = resp.headers()["traceresponse"].to_str().unwrap().to_owned();
        let echo = common::json(resp).await;
        let forwarded = echo["headers"]["traceparent"].as_str().unwrap();
        let parts: Vec<&str> = forwarded.split('-').collect();
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
        assert_ne!(parts[2], "00f067aa0ba902b7", "a new span: the gateway's");
        assert_eq!(parts[3], "01");
        assert_eq!(echo["headers"]["tracestate"], "vendor=abc");
        assert_eq!(returned, forwarded, "the client learns the gateway's span");
    }

    async fn a_missing_or_malformed_traceparent_starts_a_new_trace(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let resp = common::client()
            .get(gw.url("/"))
            .header("traceparent", "00-zzzz-not-valid")
            .header("tracestate", "vendor=abc")
            .send()
            .await
            .unwrap();
        let echo = common::json(resp).await;
        let forwarded = echo["headers"]["traceparent"].as_str().unwrap();
        assert_eq!(forwarded.len(), 55);
        assert!(forwarded.starts_with("00-"));
        assert!(
            echo["headers"].get("tracestate").is_none(),
            "state of a broken context is dropped"
        );
    }

    async fn the_access_log_line_carries_ids(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        common::client()
            .get(gw.url("/orders/9?secret=should-not-be-logged"))
            .header("x-request-id", "log-me-123")
            .header("traceparent", TRACEPARENT)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let line = gw
            .wait_for_line(
                |l| l.contains("log-me-123"),
                std::time::Duration::from_secs(5),
            )
            .await
            .expect("an access log line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        let field = |name: &str| {
            v.get(name)
                .or_else(|| v["fields"].get(name))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(field("route"), "api");
        assert_eq!(field("method"), "GET");
        assert_eq!(field("path"), "/orders/9");
        assert_eq!(field("status"), 200);
        assert_eq!(field("trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(field("client_ip"), "127.0.0.1");
        assert!(field("span_id").as_str().is_some_and(|s| s.len() == 16));
        assert!(field("duration_ms").is_number());
        assert!(field("bytes_out").as_u64().is_some_and(|b| b > 0));
        assert!(
            !line.contains("should-not-be-logged"),
            "the query string is not logged"
        );
    }
}
