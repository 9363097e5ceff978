//! Connection caps on the proxy listener, on both codecs: one client address past
//! `max_connections_per_ip` has its new connection closed at once (and counted), and past
//! `max_connections` new connections wait until one closes.

mod common;

use std::time::Duration;

use common::Codec;
use common::wire::Wire;

async fn gateway(
    codec: Codec,
    server: &str,
) -> (palisade_testkit::UpstreamServer, palisade_testkit::Gateway) {
    let up = palisade_testkit::UpstreamServer::start().await.unwrap();
    let config = common::config_for(up.addr(), "")
        .replace("[lifecycle]", &format!("[server]\n{server}\n\n[lifecycle]"));
    let gw = common::spawn(codec, &config, true).await;
    (up, gw)
}

/// A connection that has been served one request, so the gateway holds it open.
async fn served(gw: &palisade_testkit::Gateway) -> Wire {
    let mut wire = Wire::connect(&gw.url("/")).await;
    wire.send(b"GET /x HTTP/1.1\r\nhost: app\r\n\r\n").await;
    assert_eq!(wire.response(false).await.status, 200);
    wire
}

both_codecs! {
    async fn one_address_past_its_cap_has_new_connections_closed(codec: Codec) {
        let (_up, gw) = gateway(codec, "max_connections_per_ip = 2").await;
        let first = served(&gw).await;
        let _second = served(&gw).await;
        let mut third = Wire::connect(&gw.url("/")).await;
        assert!(third.closed_within(Duration::from_secs(2)).await, "the third connection stays open");
        let metrics = common::metrics_text(&gw).await;
        assert!(metrics.contains(r#"palisade_connections_refused_total{reason="per_ip"} 1"#), "{metrics}");
        // A connection closes: the address may open another.
        drop(first);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _again = served(&gw).await;
    }

    async fn past_the_listeners_cap_a_connection_waits_for_one_to_close(codec: Codec) {
        let (_up, gw) = gateway(codec, "max_connections = 2").await;
        let first = served(&gw).await;
        let _second = served(&gw).await;
        let mut third = common::raw::Conn::open(&gw).await;
        third.send(b"GET /waiting HTTP/1.1\r\nhost: app\r\n\r\n").await;
        assert!(third.stray(Duration::from_millis(500)).await.is_empty(), "served past the cap");
        drop(first);
        // Served once a place frees up (the wait is in the kernel's backlog).
        let reply = third.response(false).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((reply.status, reply.json()["path"].as_str()), (200, Some("/waiting")));
    }
}
