//! A raw HTTP/1.1 client for the adversarial suites: it never panics on what the gateway does
//! but reports it ([`Answer`]), so a failing assertion says what came back.

use std::time::Duration;

use palisade_testkit::gateway::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::wire::{Reply, dechunk};

/// Longest wait for an answer: past it the gateway is taken to hang.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Fails with every wrong answer listed.
pub fn assert_all_right(wrong: &[String]) {
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
}

/// `method target HTTP/1.1`, the header `lines` and `body`, framed as the caller wrote them.
pub fn request(method: &str, target: &str, lines: &[&str], body: &str) -> String {
    let mut text = format!("{method} {target} HTTP/1.1\r\n");
    for line in lines {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

/// What the gateway sent back for one request.
pub enum Answer {
    /// A whole response and its bytes as they came.
    Reply(Reply, Vec<u8>),
    /// The connection closed before a whole response; what came before it.
    Closed(Vec<u8>),
    /// Neither a response nor a close within [`ANSWER_WITHIN`].
    Hung(Vec<u8>),
    /// Bytes that are not an HTTP/1.1 response.
    Garbage(String, Vec<u8>),
}

impl Answer {
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Answer::Reply(reply, _) => Some(reply),
            _ => None,
        }
    }

    pub fn raw(&self) -> &[u8] {
        match self {
            Answer::Reply(_, raw)
            | Answer::Closed(raw)
            | Answer::Hung(raw)
            | Answer::Garbage(_, raw) => raw,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Answer::Reply(reply, _) => format!(
                "{} ({}) {}",
                reply.status,
                reply.header("content-type").unwrap_or("no content-type"),
                shown(&reply.body)
            ),
            Answer::Closed(raw) if raw.is_empty() => "closed without a response".to_owned(),
            Answer::Closed(raw) => format!("closed after {}", shown(raw)),
            Answer::Hung(raw) => format!("no answer within {ANSWER_WITHIN:?}: {}", shown(raw)),
            Answer::Garbage(why, raw) => format!("{why}: {}", shown(raw)),
        }
    }
}

/// At most 160 bytes, escaped.
pub fn shown(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(160)];
    format!("{:?}", String::from_utf8_lossy(cut))
}

/// A client connection that never panics on what the gateway does: it reports it.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    closed: bool,
}

impl Conn {
    pub async fn open(gw: &Gateway) -> Self {
        let url = gw.url("");
        let addr = url.trim_start_matches("http://");
        Self {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
            closed: false,
        }
    }

    /// Writes `bytes`; a gateway that stops reading or closes early shows in the answer.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = tokio::time::timeout(ANSWER_WITHIN, self.stream.write_all(bytes)).await;
    }

    /// Reads more before `until`; false when the time ran out.
    async fn read_more(&mut self, until: Instant) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(until, self.stream.read(&mut chunk)).await {
            Err(_) => false,
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.closed = true;
                true
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next response, interim ones included.
    pub async fn answer(&mut self) -> Answer {
        self.answer_to(false).await
    }

    /// The next response; `head`: it answers a HEAD, so it has no body whatever its headers
    /// say.
    pub async fn answer_to(&mut self, head: bool) -> Answer {
        let until = Instant::now() + ANSWER_WITHIN;
        loop {
            match parse(&self.buf, head, self.closed) {
                Ok(Some((reply, n))) => return Answer::Reply(reply, self.buf.drain(..n).collect()),
                Err(why) => return Answer::Garbage(why, std::mem::take(&mut self.buf)),
                Ok(None) if self.closed => return Answer::Closed(std::mem::take(&mut self.buf)),
                Ok(None) => {}
            }
            if !self.read_more(until).await {
                return Answer::Hung(std::mem::take(&mut self.buf));
            }
        }
    }

    /// The next final response (interim ones skipped).
    pub async fn final_answer(&mut self) -> Answer {
        loop {
            let answer = self.answer().await;
            match answer.reply() {
                Some(reply) if (100..200).contains(&reply.status) => continue,
                _ => return answer,
            }
        }
    }

    /// The next response as a [`Reply`], or what came instead.
    pub async fn response(&mut self, head: bool) -> Result<Reply, String> {
        match self.answer_to(head).await {
            Answer::Reply(reply, _) => Ok(reply),
            other => Err(other.describe()),
        }
    }

    /// The next final response (interim ones skipped), or what came instead.
    pub async fn final_response(&mut self, head: bool) -> Result<Reply, String> {
        loop {
            let reply = self.response(head).await?;
            if !(100..200).contains(&reply.status) {
                return Ok(reply);
            }
        }
    }

    /// Bytes that arrive within `within` with nothing asked (stray bytes after a response).
    pub async fn stray(&mut self, within: Duration) -> Vec<u8> {
        let until = Instant::now() + within;
        while !self.closed && self.read_more(until).await {}
        std::mem::take(&mut self.buf)
    }

    /// The gateway closed the connection (as far as this client has read).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// True when the gateway closes the connection within `within`.
    pub async fn closes(&mut self, within: Duration) -> bool {
        let until = Instant::now() + within;
        while !self.closed {
            if !self.read_more(until).await {
                return false;
            }
        }
        true
    }
}

/// The first response in `buf` and how many bytes it took; `Ok(None)` while incomplete.
/// `head`: it answers a HEAD. `eof`: nothing more will come, so a body delimited by the close
/// ends here.
fn parse(buf: &[u8], head: bool, eof: bool) -> Result<Option<(Reply, usize)>, String> {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut slots);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP/1.1 response ({e})")),
    };
    let headers = resp
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).into_owned();
            (h.name.to_ascii_lowercase(), value)
        })
        .collect();
    let mut reply = Reply {
        status: resp.code.unwrap_or(0),
        headers,
        body: Vec::new(),
    };
    let rest = &buf[head_len..];
    if head || (100..200).contains(&reply.status) || reply.status == 204 || reply.status == 304 {
        return Ok(Some((reply, head_len)));
    }
    let chunked = reply
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    let body_len = if chunked {
        let Some((body, n)) = dechunk(rest)? else {
            return Ok(None);
        };
        reply.body = body;
        n
    } else if let Some(len) = reply.header("content-length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| format!("content-length {len:?}"))?;
        if rest.len() < len {
            return Ok(None);
        }
        reply.body = rest[..len].to_vec();
        len
    } else if eof {
        reply.body = rest.to_vec();
        rest.len()
    } else {
        return Ok(None);
    };
    Ok(Some((reply, head_len + body_len)))
}
