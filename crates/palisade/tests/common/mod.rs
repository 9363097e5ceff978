//! Shared set-up for the integration tests: a real upstream from the test kit and the real
//! `palisade` binary in front of it.
#![allow(dead_code)]

pub mod raw;
pub mod tokens;
pub mod wire;

use std::time::Duration;

use palisade_testkit::gateway::{Gateway, GatewayBuilder};
use palisade_testkit::upstream::UpstreamServer;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_palisade")
}

/// A config with one upstream "app" at `upstream` and one catch-all route "api", plus `extra`.
pub fn config_for(upstream: std::net::SocketAddr, extra: &str) -> String {
    format!(
        r#"
[lifecycle]
drain_delay = "0s"
grace_period = "5s"

[ops]
ready_check_interval = "100ms"

[upstreams.app]
endpoints = ["{upstream}"]

[[routes]]
name = "api"
path = "/"
upstream = "app"
timeout = "1s"
{extra}
"#
    )
}

/// Which codec serves the proxy's requests: each proxy-behaviour test runs on both
/// ([`both_codecs!`]), so every rule is proven on the fast codec and on hyper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `server.direct_path = true` (the default): bodiless HTTP/1.1 on the fast codec.
    Fast,
    /// `server.direct_path = false`: every request through the general codec (hyper).
    General,
}

impl Codec {
    fn direct_path(self) -> &'static str {
        match self {
            Codec::Fast => "true",
            Codec::General => "false",
        }
    }
}

/// Defines each `async fn name(codec: Codec) { ... }` as a module `name` with two tests,
/// `fast` and `general`, one per codec.
#[macro_export]
macro_rules! both_codecs {
    ($(async fn $name:ident($codec:ident: Codec) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($codec: $crate::common::Codec) $body

                #[tokio::test]
                async fn fast() {
                    run($crate::common::Codec::Fast).await
                }

                #[tokio::test]
                async fn general() {
                    run($crate::common::Codec::General).await
                }
            }
        )*
    };
}

/// The gateway on `config` with `codec`, to add files or environment to before it starts.
pub fn builder(codec: Codec, config: &str) -> GatewayBuilder {
    GatewayBuilder::new(bin())
        .config(config)
        .env("PALISADE_SERVER__DIRECT_PATH", codec.direct_path())
}

/// The gateway on `config` with `codec`, waiting for `/ready` too when `ready`.
pub async fn spawn(codec: Codec, config: &str, ready: bool) -> Gateway {
    builder(codec, config)
        .wait_ready(ready)
        .spawn()
        .await
        .expect("gateway starts")
}

/// Upstream plus gateway whose readiness probe runs once at start and then not for an hour,
/// so the upstream's connection count shows only the proxy's own connections; the count
/// after start-up is returned with them.
pub async fn start_without_probes(codec: Codec) -> (UpstreamServer, Gateway, u64) {
    let upstream = UpstreamServer::start().await.expect("upstream starts");
    let config = config_for(upstream.addr(), "").replace("\"100ms\"", "\"1h\"");
    let gateway = spawn(codec, &config, true).await;
    let probes = upstream.connections_seen();
    (upstream, gateway, probes)
}

/// The `/metrics` page.
pub async fn metrics_text(gw: &Gateway) -> String {
    client()
        .get(gw.ops_url("/metrics"))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics body")
}

/// Upstream plus gateway, ready to take traffic.
pub async fn start(codec: Codec, extra: &str) -> (UpstreamServer, Gateway) {
    let upstream = UpstreamServer::start().await.expect("upstream starts");
    let gateway = spawn(codec, &config_for(upstream.addr(), extra), true).await;
    (upstream, gateway)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client builds")
}

/// Parses a JSON response body, with the raw text in the panic message when it is not JSON.
pub async fn json(resp: reqwest::Response) -> serde_json::Value {
    let text = resp.text().await.expect("body reads");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The access-log line of the request with id `id`, as JSON, waiting up to 10 s for it.
pub async fn access_line(gw: &Gateway, id: &str) -> serde_json::Value {
    let line = gw
        .wait_for_line(
            |l| l.contains(id) && l.contains("\"status\""),
            Duration::from_secs(10),
        )
        .await
        .expect("an access-log line");
    serde_json::from_str(&line).expect("a JSON line")
}
