//! HTTP/1.1 on a bare TCP connection, for tests where the bytes on the wire matter
//! (pipelining, keep-alive, connection close, interim responses).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response as it came off the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A client connection that keeps whatever it read past the last response.
pub struct Wire {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    /// Connects to the gateway at `url` (as given by `Gateway::url`).
    pub async fn connect(url: &str) -> Self {
        let addr = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .expect("host:port");
        Self {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Sends what the gateway may refuse to read: it can answer and close first.
    pub async fn send_rest(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .expect("the gateway answers within 10 s")
            .expect("read");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response; `head_request` when it answers a HEAD.
    pub async fn response(&mut self, head_request: bool) -> Reply {
        let (status, headers, consumed) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut slots);
            if let httparse::Status::Complete(n) = resp.parse(&self.buf).expect("valid head") {
                let headers = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                break (resp.code.expect("status"), headers, n);
            }
            assert!(
                self.fill().await > 0,
                "connection closed before a response head"
            );
        };
        self.buf.drain(..consumed);
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return reply;
        }
        if reply.header("transfer-encoding") == Some("chunked") {
            reply.body = self.dechunk().await;
        } else if let Some(len) = reply.header("content-length") {
            let len: usize = len.parse().expect("numeric content-length");
            while self.buf.len() < len {
                assert!(self.fill().await > 0, "connection closed mid-body");
            }
            reply.body = self.buf.drain(..len).collect();
        } else {
            while self.fill().await > 0 {}
            reply.body = std::mem::take(&mut self.buf);
        }
        reply
    }

    async fn dechunk(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                assert!(self.fill().await > 0, "connection closed mid-chunk");
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                .expect("hex chunk size");
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // No trailers in these tests: the final CRLF.
                while self.buf.len() < 2 {
                    assert!(
                        self.fill().await > 0,
                        "connection closed before the last CRLF"
                    );
                }
                self.buf.drain(..2);
                return body;
            }
            while self.buf.len() < size + 2 {
                assert!(self.fill().await > 0, "connection closed mid-chunk");
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    /// True when the gateway closes the connection within `within` (with nothing more sent).
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(within, self.stream.read(&mut byte)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// A chunked body at the start of `buf` and its length on the wire; chunk extensions and
/// trailer fields are skipped (tests that care look at the raw bytes).
pub fn dechunk(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let line_end = |from: usize| buf[from..].windows(2).position(|w| w == b"\r\n");
    let (mut body, mut at) = (Vec::new(), 0);
    loop {
        let Some(eol) = line_end(at) else {
            return Ok(None);
        };
        let line = &buf[at..at + eol];
        let size = line.split(|b| *b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| format!("chunk size line {:?}", String::from_utf8_lossy(line)))?;
        at += eol + 2;
        if size == 0 {
            loop {
                let Some(eol) = line_end(at) else {
                    return Ok(None);
                };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}
