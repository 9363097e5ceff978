//! A JWK Set fetched from the issuer's URL (`jwks_uri`) and kept in memory.
//!
//! Requests read the cached set through an `ArcSwap`: no lock, no await. The set is fetched
//! again
//! - every `refresh_every` by [`JwksCache::spawn_refresher`] (a fixed period; `Cache-Control`
//!   is not read, so an issuer cannot make the gateway poll it faster or stop polling), and
//!   after `min_refresh_interval` when a periodic fetch failed;
//! - when a token names a key the set does not have (the issuer rotated keys), at most once
//!   per `min_refresh_interval`: the requests that arrive during a fetch wait for it instead
//!   of starting their own, so a burst of tokens with an unknown `kid` costs one fetch.
//!
//! A failed fetch (unreachable, timeout, not 200, too large, no usable key) keeps the cached set
//! in use for as long as the issuer is down, and is logged. A response is read within `timeout`
//! and `max_body`.
//!
//! [`JwksCache::new`] fetches `http://` URLs. For `https://`, pass a TLS connector (for
//! example hyper-rustls's `HttpsConnector`) to [`JwksCache::with_connector`]: this crate carries
//! no TLS stack of its own.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::keys::{KeyError, KeySet};

/// How a [`JwksCache`] fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksOptions {
    /// The period of [`JwksCache::spawn_refresher`]. Default: 5 minutes.
    pub refresh_every: Duration,
    /// The shortest time between two fetches caused by unknown keys, and the retry delay after
    /// a failed periodic fetch. Default: 30 s.
    pub min_refresh_interval: Duration,
    /// The longest a fetch may take, from connecting to the body's last byte. Default: 5 s.
    pub timeout: Duration,
    /// The largest response body read, in bytes. Default: 1 MiB.
    pub max_body: usize,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self {
            refresh_every: Duration::from_secs(300),
            min_refresh_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            max_body: 1024 * 1024,
        }
    }
}

/// Why a JWK Set URL is refused or a fetch failed. A fetch error never replaces the cached set.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("the JWKS URL is not an absolute http:// or https:// URL")]
    InvalidUrl,
    #[error("an https:// JWKS URL needs a TLS connector: use JwksCache::with_connector")]
    HttpsNeedsConnector,
    #[error("the JWKS endpoint could not be reached")]
    Unreachable(#[source] hyper_util::client::legacy::Error),
    #[error("the JWKS endpoint did not answer in time")]
    Timeout,
    #[error("the JWKS endpoint answered {0}, not 200")]
    Status(StatusCode),
    #[error("the JWKS response is larger than the limit")]
    TooLarge,
    #[error("the JWKS response body could not be read")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the JWKS response is not a usable JWK Set")]
    Invalid(#[source] KeyError),
}

/// What the cache needs of an HTTP client, so that any connector fits behind one type.
trait Fetch: Send + Sync {
    fn get(&self, request: Request<Empty<Bytes>>) -> ResponseFuture;
}

impl<C> Fetch for Client<C, Empty<Bytes>>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    fn get(&self, request: Request<Empty<Bytes>>) -> ResponseFuture {
        self.request(request)
    }
}

/// A cached JWK Set; clones share it.
#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

struct Inner {
    uri: Uri,
    client: Box<dyn Fetch>,
    options: JwksOptions,
    /// Empty until the first fetch succeeds.
    keys: ArcSwap<KeySet>,
    /// Held during every fetch, so that concurrent refreshes wait for the one in flight rather
    /// than start their own. Holds when the last fetch for an unknown key started: periodic and
    /// explicit fetches do not count, so a rotation just after one is still picked up.
    fetching: Mutex<Option<Instant>>,
}

impl JwksCache {
    /// A cache of the set at an `http://` URL. Nothing is fetched yet: call
    /// [`JwksCache::refresh`] at startup to fail early, or let the first token fetch it.
    pub fn new(url: &str, options: JwksOptions) -> Result<Self, JwksError> {
        let uri = parse_url(url)?;
        if uri.scheme() == Some(&Scheme::HTTPS) {
            return Err(JwksError::HttpsNeedsConnector);
        }
        Ok(Self::build(uri, options, HttpConnector::new()))
    }

    /// A cache fetching through `connector`, which decides the schemes it serves (an HTTPS
    /// connector for `https://`).
    pub fn with_connector<C>(
        url: &str,
        options: JwksOptions,
        connector: C,
    ) -> Result<Self, JwksError>
    where
        C: Connect + Clone + Send + Sync + 'static,
    {
        Ok(Self::build(parse_url(url)?, options, connector))
    }

    fn build<C>(uri: Uri, options: JwksOptions, connector: C) -> Self
    where
        C: Connect + Clone + Send + Sync + 'static,
    {
        // Fetches are minutes apart: a pooled connection would mostly be a stale one.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Self {
            inner: Arc::new(Inner {
                uri,
                client: Box::new(client),
                options,
                keys: ArcSwap::from_pointee(KeySet::default()),
                fetching: Mutex::new(None),
            }),
        }
    }

    /// The cached set, without waiting.
    pub fn current(&self) -> Guard<Arc<KeySet>> {
        self.inner.keys.load()
    }

    /// The cached set, as an `Arc` a verified token can be remembered with.
    pub fn current_full(&self) -> Arc<KeySet> {
        self.inner.keys.load_full()
    }

    pub fn options(&self) -> &JwksOptions {
        &self.inner.options
    }

    /// Fetches the set now and swaps it in, returning its number of keys. On failure the
    /// cached set stays in use.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        let _fetching = self.inner.fetching.lock().await;
        self.inner.fetch_and_store().await
    }

    /// For a token whose key the cached set lacks: fetches unless such a fetch started within
    /// `min_refresh_interval`, or waits for the one in flight. True when the set changed, so
    /// the token is worth another try.
    pub async fn refresh_for_unknown_key(&self) -> bool {
        let seen = self.inner.keys.load_full();
        let mut last = self.inner.fetching.lock().await;
        if !Arc::ptr_eq(&seen, &self.inner.keys.load()) {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < self.inner.options.min_refresh_interval) {
            return false;
        }
        *last = Some(Instant::now());
        self.inner.fetch_and_store().await.is_ok()
    }

    /// Refreshes the set every `refresh_every` (after a jittered backoff from
    /// `min_refresh_interval` when a fetch failed). The task ends once every clone of the
    /// cache is dropped, so a reload that replaces the cache retires its refresher.
    pub fn spawn_refresher(&self) -> JoinHandle<()> {
        let inner = Arc::downgrade(&self.inner);
        let options = self.inner.options;
        let mut next = Instant::now() + options.refresh_every;
        // After failed fetches: the upstreams' backoff (full jitter, growing to the refresh
        // period), so replicas do not all retry an issuer that is down at the same moments;
        // never sooner than half the minimum interval.
        let backoff = crate::resilience::Backoff::new(
            options.min_refresh_interval,
            options.refresh_every.max(options.min_refresh_interval),
        );
        tokio::spawn(async move {
            let mut failures = 0;
            loop {
                tokio::time::sleep_until(next).await;
                let Some(inner) = inner.upgrade() else { return };
                let wait = match (JwksCache { inner }).refresh().await {
                    Ok(_) => {
                        failures = 0;
                        options.refresh_every
                    }
                    Err(_) => {
                        let wait = backoff.jittered(failures, &mut rand::rng());
                        failures = failures.saturating_add(1);
                        wait.max(options.min_refresh_interval / 2)
                    }
                };
                next = Instant::now() + wait;
            }
        })
    }
}

impl Inner {
    /// One fetch, with the `fetching` lock held.
    async fn fetch_and_store(&self) -> Result<usize, JwksError> {
        match self.fetch().await {
            Ok(set) => {
                if !set.skipped().is_empty() {
                    debug!(url = %self.uri, skipped = ?set.skipped(), "JWKS keys left out");
                }
                let count = set.len();
                self.keys.store(Arc::new(set));
                Ok(count)
            }
            Err(error) => {
                warn!(%error, url = %self.uri, "JWKS fetch failed; the cached keys stay in use");
                Err(error)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let request = Request::get(self.uri.clone())
            .header(header::ACCEPT, "application/jwk-set+json, application/json")
            .body(Empty::new())
            .map_err(|_| JwksError::InvalidUrl)?;
        let exchange = async {
            let response = self
                .client
                .get(request)
                .await
                .map_err(JwksError::Unreachable)?;
            if response.status() != StatusCode::OK {
                return Err(JwksError::Status(response.status()));
            }
            let body = Limited::new(response.into_body(), self.options.max_body)
                .collect()
                .await
                .map_err(|e| match e.downcast::<LengthLimitError>() {
                    Ok(_) => JwksError::TooLarge,
                    Err(e) => JwksError::Body(e),
                })?
                .to_bytes();
            KeySet::from_fetched(&body).map_err(JwksError::Invalid)
        };
        tokio::time::timeout(self.options.timeout, exchange)
            .await
            .map_err(|_| JwksError::Timeout)?
    }
}

fn parse_url(url: &str) -> Result<Uri, JwksError> {
    let uri: Uri = url.parse().map_err(|_| JwksError::InvalidUrl)?;
    let scheme_ok = uri.scheme() == Some(&Scheme::HTTP) || uri.scheme() == Some(&Scheme::HTTPS);
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return Err(JwksError::InvalidUrl);
    }
    Ok(uri)
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.inner.uri)
            .field("keys", &self.inner.keys.load().len())
            .field("options", &self.inner.options)
            .finish()
    }
}
