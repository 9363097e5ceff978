//! One request: parse the behaviour from the query, consume the body as a stream (after the
//! answer when told to answer early), then answer
//! with the echo JSON or a generated body, shaped by the query's headers, status and latency.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::body::{Fnv64, PatternBody};
use super::query::Behaviour;
use super::{Stats, ws};

/// The body type of every upstream response.
pub(crate) type ResponseBody = BoxBody<Bytes, Infallible>;

/// The value of the `server` field of the echo and of the `x-upstream` header.
pub const SERVER_NAME: &str = "palisade-testkit";

pub(crate) fn empty() -> ResponseBody {
    Empty::new().boxed()
}

pub(crate) async fn handle(
    req: Request<Incoming>,
    stats: Arc<Stats>,
    shutdown: watch::Receiver<bool>,
) -> Result<Response<ResponseBody>, Infallible> {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let mut behaviour = match Behaviour::parse(req.uri().query()) {
        Ok(behaviour) => behaviour,
        Err(message) => return Ok(text(StatusCode::BAD_REQUEST, message)),
    };
    let failing = stats.failing.load(Ordering::Relaxed);
    if failing != 0 {
        behaviour.status = StatusCode::from_u16(failing).ok();
    }
    if req.uri().path() == "/ws" && ws::is_upgrade(&req) {
        return Ok(ws::accept(req, shutdown));
    }

    let (parts, body) = req.into_parts();
    let received = if behaviour.early {
        // Drained after the answer, so the connection closes (or goes on) cleanly rather
        // than with a reset.
        tokio::spawn(async move {
            let _ = consume(body).await;
        });
        Received { bytes: 0, fnv64: 0 }
    } else {
        match consume(body).await {
            Ok(received) => received,
            Err(error) => {
                let message = format!("reading the request body failed: {error}");
                return Ok(text(StatusCode::BAD_REQUEST, message));
            }
        }
    };
    if let Some(latency) = behaviour.latency {
        tokio::time::sleep(latency).await;
    }

    let mut response = match (&behaviour.body, behaviour.size) {
        (Some(body), _) => given(body, &behaviour),
        (None, Some(size)) => generated(size, !behaviour.chunked),
        (None, None) => echo(&parts, &received),
    };
    *response.status_mut() = behaviour.status.unwrap_or(StatusCode::OK);
    add_headers(response.headers_mut(), &behaviour, parts.version);
    Ok(response)
}

/// What arrived in the request body: its length and FNV-1a 64 hash.
struct Received {
    bytes: u64,
    fnv64: u64,
}

/// Reads the body frame by frame, keeping only the count and the hash.
async fn consume(mut body: Incoming) -> Result<Received, hyper::Error> {
    let mut received = Received { bytes: 0, fnv64: 0 };
    let mut hash = Fnv64::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            received.bytes += data.len() as u64;
            hash.update(&data);
        }
    }
    received.fnv64 = hash.finish();
    Ok(received)
}

fn echo(parts: &Parts, received: &Received) -> Response<ResponseBody> {
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<_> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_owned(), Value::String(values.join(", ")));
    }
    let echo = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "authority": parts.uri.authority().map(|authority| authority.as_str()),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_bytes": received.bytes,
        "body_fnv64": format!("{:016x}", received.fnv64),
        "server": SERVER_NAME,
    });
    let mut response = Response::new(Full::new(Bytes::from(echo.to_string())).boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The body a test asked for, whole or in two chunks.
fn given(text: &str, behaviour: &Behaviour) -> Response<ResponseBody> {
    let bytes = Bytes::copy_from_slice(text.as_bytes());
    let body = if behaviour.chunked {
        let half = bytes.len() / 2;
        let frames = [bytes.slice(..half), bytes.slice(half..)]
            .map(|part| Ok::<_, Infallible>(hyper::body::Frame::data(part)));
        http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed()
    } else {
        Full::new(bytes).boxed()
    };
    let mut response = Response::new(body);
    let typed = behaviour
        .set_headers
        .iter()
        .any(|(name, _)| name == header::CONTENT_TYPE);
    if !typed {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}

fn generated(size: u64, with_length: bool) -> Response<ResponseBody> {
    let mut response = Response::new(PatternBody::new(size, with_length).boxed());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if with_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    response
}

fn add_headers(headers: &mut HeaderMap, behaviour: &Behaviour, version: Version) {
    // HTTP/2 has no connection-specific headers; hyper would strip them with a warning.
    let http1 = version < Version::HTTP_2;
    headers.insert("x-upstream", HeaderValue::from_static(SERVER_NAME));
    if http1 {
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    }
    if behaviour.hop {
        headers.insert("x-hop-test", HeaderValue::from_static("secret"));
        headers.insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic"),
        );
    }
    let connection = match (behaviour.close, behaviour.hop) {
        (true, true) => Some("close, x-hop-test"),
        (true, false) => Some("close"),
        (false, true) => Some("x-hop-test"),
        (false, false) => None,
    };
    if let Some(connection) = connection.filter(|_| http1) {
        headers.insert(header::CONNECTION, HeaderValue::from_static(connection));
    }
    for (name, value) in &behaviour.set_headers {
        headers.append(name.clone(), value.clone());
    }
}

fn text(status: StatusCode, message: String) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from(message + "\n")).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
