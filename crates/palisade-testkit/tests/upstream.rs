//! The test upstream over real sockets: HTTP/1.1, h2c and WebSocket clients against it.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, stream};
use http::{Method, Request, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::rt::TokioIo;
use palisade_testkit::UpstreamServer;
use palisade_testkit::client::{self, TestResponse};
use palisade_testkit::upstream::fnv64_hex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

async fn get(server: &UpstreamServer, path: &str) -> TestResponse {
    client::get(&server.url(path)).await.unwrap()
}

#[tokio::test]
async fn echoes_method_path_query_headers_and_body() {
    let server = UpstreamServer::start().await.unwrap();
    let request = Request::builder()
        .method(Method::PUT)
        .uri(server.url("/some/path?x=1&y=two"))
        .header("x-one", "1")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .body(Full::new(Bytes::from_static(b"hello world")))
        .unwrap();
    let response = client::send(&client::client(), request).await.unwrap();

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("x-upstream"), Some("palisade-testkit"));
    assert_eq!(response.header("keep-alive"), Some("timeout=5"));
    assert_eq!(response.header("connection"), None);
    let echo = response.json().unwrap();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/some/path");
    assert_eq!(echo["query"], "x=1&y=two");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["headers"]["x-one"], "1");
    assert_eq!(echo["headers"]["x-multi"], "a, b");
    assert_eq!(echo["headers"]["host"], server.addr().to_string());
    assert_eq!(echo["body_bytes"], 11);
    assert_eq!(echo["body_fnv64"], fnv64_hex(b"hello world"));
    assert_eq!(echo["server"], "palisade-testkit");

    let plain = get(&server, "/").await.json().unwrap();
    assert_eq!(plain["query"], serde_json::Value::Null);
    assert_eq!(plain["body_bytes"], 0);
    assert_eq!(server.requests_seen(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn status_parameter_sets_the_status_and_keeps_the_echo() {
    let server = UpstreamServer::start().await.unwrap();
    let response = get(&server, "/x?status=503").await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.json().unwrap()["path"], "/x");
}

#[tokio::test]
async fn latency_parameter_delays_the_response() {
    let server = UpstreamServer::start().await.unwrap();
    let started = Instant::now();
    let response = get(&server, "/?latency=50ms").await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bad_query_values_get_400_naming_the_parameter() {
    let server = UpstreamServer::start().await.unwrap();
    for (query, param) in [
        ("status=abc", "status"),
        ("status=42", "status"),
        ("latency=soon", "latency"),
        ("size=lots", "size"),
        ("set_header=nocolon", "set_header"),
    ] {
        let response = get(&server, &format!("/?{query}")).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            response.text().starts_with(param),
            "{query}: {}",
            response.text()
        );
    }
}

#[tokio::test]
async fn size_parameter_streams_exactly_that_many_bytes() {
    let server = UpstreamServer::start().await.unwrap();
    let size = 5 * 1024 * 1024 + 3;

    let response = get(&server, &format!("/?size={size}")).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        response.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(response.body.len(), size);
    assert!(
        response
            .body
            .iter()
            .enumerate()
            .all(|(i, &byte)| byte == (i % 256) as u8)
    );

    let chunked = get(&server, &format!("/?size={size}&chunked=1&status=206")).await;
    assert_eq!(chunked.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(chunked.header("content-length"), None);
    assert_eq!(chunked.header("transfer-encoding"), Some("chunked"));
    assert_eq!(chunked.body.len(), size);

    let empty = get(&server, "/?size=0").await;
    assert_eq!(
        (empty.header("content-length"), empty.body.len()),
        (Some("0"), 0)
    );
}

#[tokio::test]
async fn streamed_upload_is_counted_and_hashed() {
    let server = UpstreamServer::start().await.unwrap();
    let chunk: Bytes = (0..64 * 1024)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let chunks = 64; // 4 MiB
    let expected: Vec<u8> = chunk
        .iter()
        .copied()
        .cycle()
        .take(chunk.len() * chunks)
        .collect();

    let frames =
        stream::iter((0..chunks).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))));
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::post("/upload")
        .header(header::HOST, server.addr().to_string())
        .body(StreamBody::new(frames))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();

    assert_eq!(echo["headers"]["transfer-encoding"], "chunked");
    assert_eq!(echo["body_bytes"], expected.len());
    assert_eq!(echo["body_fnv64"], fnv64_hex(&expected));
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let server = UpstreamServer::start().await.unwrap();
    let pooled = client::client();
    for _ in 0..3 {
        let request = Request::get(server.url("/")).body(Full::default()).unwrap();
        assert_eq!(
            client::send(&pooled, request).await.unwrap().status,
            StatusCode::OK
        );
    }
    assert_eq!(server.requests_seen(), 3);
    assert_eq!(server.connections_seen(), 1);
}

#[tokio::test]
async fn close_parameter_closes_the_connection() {
    let server = UpstreamServer::start().await.unwrap();
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"GET /?close=1 HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    // Reading to the end only finishes because the server closes the connection.
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("the server should close the connection")
        .unwrap();
    let response = String::from_utf8_lossy(&response).to_lowercase();
    assert!(response.starts_with("http/1.1 200 ok\r\n"), "{response}");
    assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
}

#[tokio::test]
async fn hop_and_set_header_parameters_add_headers() {
    let server = UpstreamServer::start().await.unwrap();
    let response = get(
        &server,
        "/?hop=1&set_header=x-a:one&set_header=x-a:two&set_header=x-b%3A%20b",
    )
    .await;
    assert_eq!(response.header("connection"), Some("x-hop-test"));
    assert_eq!(response.header("x-hop-test"), Some("secret"));
    assert_eq!(response.header("keep-alive"), Some("timeout=5"));
    assert_eq!(response.header("proxy-authenticate"), Some("Basic"));
    let x_a: Vec<_> = response.headers.get_all("x-a").iter().collect();
    assert_eq!(x_a, ["one", "two"]);
    assert_eq!(response.header("x-b"), Some("b"));
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let server = UpstreamServer::start().await.unwrap();
    let h2 = client::h2c_client();
    let request = Request::post(server.url("/h2?size=100000"))
        .body(Full::from("abc"))
        .unwrap();
    let generated = client::send(&h2, request).await.unwrap();
    assert_eq!(generated.body.len(), 100_000);

    let request = Request::get(server.url("/h2?close=1&hop=1"))
        .body(Full::default())
        .unwrap();
    let response = client::send(&h2, request).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("x-upstream"), Some("palisade-testkit"));
    assert_eq!(response.header("connection"), None);
    assert_eq!(response.header("keep-alive"), None);
    let echo = response.json().unwrap();
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echo["path"], "/h2");
    assert_eq!(echo["authority"], server.addr().to_string());
    assert_eq!(server.connections_seen(), 1);
}

#[tokio::test]
async fn websocket_echoes_messages_and_answers_pings() {
    let server = UpstreamServer::start().await.unwrap();
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let url = format!("ws://{}/ws", server.addr());
    let (mut ws, response) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);

    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Pong(Bytes::from_static(b"p"))
    );

    ws.close(None).await.unwrap();
    let closing = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = ws.next().await {
            if matches!(message, Message::Close(_)) {
                return true;
            }
        }
        false
    });
    assert!(closing.await.unwrap(), "the server should answer the close");
}

#[tokio::test]
async fn shutdown_closes_open_websockets() {
    let server = UpstreamServer::start().await.unwrap();
    let stream = TcpStream::connect(server.addr()).await.unwrap();
    let url = format!("ws://{}/ws", server.addr());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    server.shutdown().await;
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert!(!matches!(
        next,
        Ok(Some(Ok(Message::Text(_) | Message::Binary(_))))
    ));
    assert!(
        next.is_ok(),
        "the socket should end when the server shuts down"
    );
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let server = UpstreamServer::start().await.unwrap();
    let addr = server.addr();
    let idle = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "idle connections close at once"
    );
    assert!(TcpStream::connect(addr).await.is_err());
    drop(idle);
}

#[tokio::test]
async fn serve_runs_until_its_shutdown_future_completes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(palisade_testkit::upstream::serve(listener, async {
        let _ = stopped.await;
    }));
    let response = client::get(&format!("http://{addr}/served")).await.unwrap();
    assert_eq!(response.json().unwrap()["path"], "/served");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
}
