//! The proxy core against a real upstream: methods, bodies, headers, forwarding rules,
//! streaming without buffering, keep-alive pooling, h2c and WebSocket pass-through.

mod common;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const MIB: u64 = 1024 * 1024;

both_codecs! {
    async fn get_and_post_reach_the_upstream_with_path_query_and_body(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let client = common::client();

        let resp = client
            .get(gw.url("/users/7?expand=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let echo = common::json(resp).await;
        assert_eq!(echo["method"], "GET");
        assert_eq!(echo["path"], "/users/7");
        assert_eq!(echo["query"], "expand=1");

        let resp = client
            .post(gw.url("/orders"))
            .header("content-type", "application/json")
            .body(r#"{"sku":"A-1","qty":2}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let echo = common::json(resp).await;
        assert_eq!(echo["method"], "POST");
        assert_eq!(echo["body_bytes"], 21);
        assert_eq!(echo["headers"]["content-type"], "application/json");
    }

    async fn upstream_status_and_headers_come_back_unchanged(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let resp = common::client()
            .get(gw.url("/x?status=418&set_header=x-app:teapot"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 418);
        assert_eq!(resp.headers()["x-app"], "teapot");
    }

    async fn hop_by_hop_headers_are_removed_both_ways(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let resp = common::client()
            .get(gw.url("/hop?hop=1"))
            .header("connection", "x-private")
            .header("x-private", "drop-me")
            .header("proxy-authorization", "Basic c2VjcmV0")
            .header("te", "trailers")
            .header("x-end-to-end", "keep-me")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        // Response side: the upstream sent Connection: x-hop-test, x-hop-test, keep-alive, proxy-authenticate.
        for name in ["x-hop-test", "keep-alive", "proxy-authenticate"] {
            assert!(
                !resp.headers().contains_key(name),
                "{name} leaked to the client"
            );
        }
        let echo = common::json(resp).await;
        let sent = &echo["headers"];
        for name in ["x-private", "proxy-authorization", "te"] {
            assert!(
                sent.get(name).is_none(),
                "{name} reached the upstream: {sent}"
            );
        }
        assert_eq!(sent["x-end-to-end"], "keep-me");
    }

    async fn forwarded_headers_from_an_untrusted_peer_are_replaced(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let resp = common::client()
            .get(gw.url("/"))
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "forged.example")
            .header("host", "shop.example")
            .send()
            .await
            .unwrap();
        let echo = common::json(resp).await;
        let h = &echo["headers"];
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        assert_eq!(
            h["host"], "shop.example",
            "the original Host is kept for the upstream"
        );
    }

    async fn forwarded_headers_from_a_trusted_proxy_are_extended(codec: Codec) {
        let upstream = palisade_testkit::upstream::UpstreamServer::start()
            .await
            .unwrap();
        let config = common::config_for(upstream.addr(), "").replace(
            "[lifecycle]",
            "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n\n[lifecycle]",
        );
        let gw = common::spawn(codec, &config, false).await;
        let resp = common::client()
            .get(gw.url("/"))
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "shop.example")
            .send()
            .await
            .unwrap();
        let echo = common::json(resp).await;
        let h = &echo["headers"];
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "shop.example");
    }

    async fn streams_100_mib_both_ways_without_buffering(codec: Codec) {
        // The route timeout runs until the response headers, so it covers the upload: give a
        // 100 MiB body on a busy CI machine room.
        let up = palisade_testkit::upstream::UpstreamServer::start()
            .await
            .unwrap();
        let config = common::config_for(up.addr(), "max_request_body = \"1GiB\"")
            .replace("timeout = \"1s\"", "timeout = \"60s\"");
        let gw = common::spawn(codec, &config, true).await;
        let client = common::client();
        let baseline = gw.rss_kb().expect("rss readable");

        // Uploads: 100 MiB produced lazily, 64 KiB at a time, framed by Content-Length (the
        // fast codec's streaming) and chunked (the general codec's).
        for framing in ["content-length", "chunked"] {
            let chunk = Bytes::from(vec![b'u'; 64 * 1024]);
            let chunks = (100 * MIB / chunk.len() as u64) as usize;
            let stream = futures_util::stream::iter(
                (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            let mut upload = client
                .post(gw.url("/upload"))
                .body(reqwest::Body::wrap_stream(stream));
            if framing == "content-length" {
                upload = upload.header("content-length", 100 * MIB);
            }
            let resp = upload.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{framing}");
            let echo = common::json(resp).await;
            assert_eq!(echo["body_bytes"], 100 * MIB, "{framing}");
            assert_eq!(echo["headers"].get("content-length").is_some(), framing == "content-length", "{echo}");
        }

        // Download: 100 MiB read chunk by chunk.
        let mut resp = client
            .get(gw.url(&format!("/download?size={}", 100 * MIB)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut received = 0u64;
        while let Some(chunk) = resp.chunk().await.unwrap() {
            received += chunk.len() as u64;
        }
        assert_eq!(received, 100 * MIB);

        // A buffering proxy would have grown by 100 MiB; allow a few MiB of buffers.
        let peak = gw.peak_rss_kb().expect("peak rss readable");
        assert!(
            peak < baseline + 32 * 1024,
            "peak RSS {peak} kB grew by more than 32 MiB over the {baseline} kB baseline"
        );
    }

    async fn upstream_connections_are_pooled_and_reused(codec: Codec) {
        let (up, gw, probes) = common::start_without_probes(codec).await;
        let client = common::client();
        for _ in 0..50 {
            let resp = client.get(gw.url("/ping")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
        }
        assert_eq!(up.requests_seen(), 50);
        let opened = up.connections_seen() - probes;
        assert!(
            opened <= 2,
            "50 sequential requests opened {opened} upstream connections"
        );
    }

    async fn upstream_connections_are_reused_after_requests_with_bodies(codec: Codec) {
        let (up, gw, probes) = common::start_without_probes(codec).await;
        let client = common::client();
        for i in 0..20 {
            let resp = client.post(gw.url("/orders")).body(format!("{{\"n\":{i}}}")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
        }
        let opened = up.connections_seen() - probes;
        assert!(opened <= 2, "20 sequential POSTs opened {opened} upstream connections");
    }

    async fn h2c_prior_knowledge_is_served(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let client = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let resp = client.get(gw.url("/h2?x=1")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        let echo = common::json(resp).await;
        assert_eq!(echo["path"], "/h2");
        assert_eq!(
            echo["version"], "HTTP/1.1",
            "the upstream is spoken to over HTTP/1.1"
        );
        assert!(
            echo["headers"]["host"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );
    }

    async fn websocket_upgrade_passes_through(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let url = format!("ws://{}/ws", gw.proxy_addr);
        let (mut ws, resp) = tokio_tungstenite::connect_async(url)
            .await
            .expect("handshake through the proxy");
        assert_eq!(resp.status(), 101);
        for text in ["hello", "second message"] {
            ws.send(Message::text(text)).await.unwrap();
            let echoed = ws.next().await.expect("a reply").unwrap();
            assert_eq!(echoed.into_text().unwrap().as_str(), text);
        }
        ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_data().as_ref(), &[1, 2, 3]);
        ws.close(None).await.unwrap();
    }

    async fn endpoints_of_an_upstream_share_the_load_round_robin(codec: Codec) {
        let (a, b) = (
            palisade_testkit::upstream::UpstreamServer::start()
                .await
                .unwrap(),
            palisade_testkit::upstream::UpstreamServer::start()
                .await
                .unwrap(),
        );
        let config = common::config_for(a.addr(), "").replace(
            &format!("endpoints = [\"{}\"]", a.addr()),
            &format!("endpoints = [\"{}\", \"http://{}\"]", a.addr(), b.addr()),
        );
        let gw = common::spawn(codec, &config, true).await;
        let client = common::client();
        for _ in 0..10 {
            let resp = client.get(gw.url("/rr")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
        }
        assert_eq!((a.requests_seen(), b.requests_seen()), (5, 5));
    }

    async fn a_connection_the_upstream_closed_is_not_reused(codec: Codec) {
        let (up, gw) = common::start(codec, "").await;
        let client = common::client();
        // The upstream closes the connection after this response; the next request must not fail.
        for path in ["/a?close=1", "/b", "/c?close=1", "/d"] {
            let resp = client.get(gw.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            resp.bytes().await.unwrap();
        }
        assert_eq!(up.requests_seen(), 4);
    }

    async fn head_and_empty_responses_keep_the_connection_pooled(codec: Codec) {
        let (up, gw, probes) = common::start_without_probes(codec).await;
        let client = common::client();
        for _ in 0..10 {
            let resp = client.head(gw.url("/head")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let resp = client
                .get(gw.url("/empty?status=204"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 204);
        }
        let opened = up.connections_seen() - probes;
        assert!(
            opened <= 2,
            "20 sequential requests opened {opened} upstream connections"
        );
    }

    async fn an_h2c_upstream_is_spoken_to_over_http2(codec: Codec) {
        let up = palisade_testkit::upstream::UpstreamServer::start()
            .await
            .unwrap();
        let config = common::config_for(up.addr(), "").replace(
            &format!("endpoints = [\"{}\"]", up.addr()),
            &format!("endpoints = [\"{}\"]\nhttp2 = true", up.addr()),
        );
        let gw = common::spawn(codec, &config, true).await;
        let resp = common::client()
            .post(gw.url("/h2-up?q=1"))
            .body("abc")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let echo = common::json(resp).await;
        assert_eq!(echo["version"], "HTTP/2.0");
        assert_eq!(echo["path"], "/h2-up");
        assert_eq!(echo["body_bytes"], 3);
    }
}
