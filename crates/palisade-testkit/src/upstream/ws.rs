//! `/ws`: accepts a WebSocket upgrade and echoes every text and binary message back.
//!
//! The handshake goes through hyper's upgrade machinery, exactly as a proxied upgrade arrives;
//! tungstenite then speaks the protocol on the upgraded connection and answers pings and
//! close frames itself.

use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role};

use super::handler::{ResponseBody, empty};

/// Whether `req` asks for a WebSocket upgrade (HTTP/1.1 `Upgrade: websocket` with a key).
pub(crate) fn is_upgrade(req: &Request<Incoming>) -> bool {
    let upgrade_websocket = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    upgrade_websocket && req.headers().contains_key(header::SEC_WEBSOCKET_KEY)
}

/// Answers the handshake with 101 and spawns the echo loop on the upgraded connection; the
/// loop ends when the peer closes or `shutdown` fires.
pub(crate) fn accept(
    mut req: Request<Incoming>,
    mut shutdown: watch::Receiver<bool>,
) -> Response<ResponseBody> {
    let Some(accept_key) = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|key| derive_accept_key(key.as_bytes()))
    else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(empty())
            .unwrap_or_default();
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            () = echo(ws) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => {}
        }
    });

    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::try_from(accept_key) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}

async fn echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = ws.next().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                if ws.send(message).await.is_err() {
                    return;
                }
            }
            // tungstenite queues the pong and the close reply itself; flushing sends them, and
            // after a close the next read reports the end of the connection.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => {
                if ws.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}
