//! Inbound webhook signature verification: pure, without I/O, so the pipeline, the CLI and the
//! tests run the same code.
//!
//! A [`Verifier`] is compiled once from a [`Spec`] (which provider's rules) and the route's
//! secrets; a bad secret or setting is refused there, at config load. Per request,
//! [`Verifier::verify`] reads the headers through [`Headers`] (fed from an `http::HeaderMap`,
//! the codec's header lines or `(name, value)` pairs), checks the timestamp against a `now` the
//! caller passes in, and computes one HMAC per secret over the signed content without copying
//! the body. It answers [`Verified`] or a [`Failure`], a short stable reason fit for a metric
//! label and a problem body. [`sign`] produces the headers a sender would, for the
//! `palisade webhook sign` command and for tests.
//!
//! Replays: a valid request can be sent again by whoever saw it. The timestamped schemes
//! (standard-webhooks, stripe, slack, and hmac with a timestamp header) bound that window to the
//! tolerance; within it, and always for github and shopify, only a store of seen deliveries can
//! refuse a replay. [`Verifier::replay_key`] gives the key to store and how long to keep it.

mod headers;
mod key;
#[cfg(test)]
mod proptests;
mod schemes;
mod sign;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use subtle::{Choice, ConstantTimeEq};

pub use headers::{Headers, Lookup};
pub use sign::{SignError, sign};

use key::Key;
use schemes::Rules;

/// How far a timestamp may be from `now`, either way, unless the route says otherwise.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// Header values longer than this are refused before they are parsed.
pub const MAX_HEADER_BYTES: usize = 4096;
/// At most this many signatures of the expected version are read from one header; a header
/// with more is refused, so the work per request stays bounded.
pub const MAX_SIGNATURES: usize = 16;
/// Message ids longer than this are refused: they become replay-store keys.
pub const MAX_ID_BYTES: usize = 256;

/// A provider's signing rules, by the name the config and the CLI use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    StandardWebhooks,
    Stripe,
    GitHub,
    Slack,
    Shopify,
    /// Generic HMAC with configured header names, algorithm, encoding and signed content.
    Hmac,
}

impl Scheme {
    pub const ALL: [Scheme; 6] = [
        Self::StandardWebhooks,
        Self::Stripe,
        Self::GitHub,
        Self::Slack,
        Self::Shopify,
        Self::Hmac,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard-webhooks",
            Self::Stripe => "stripe",
            Self::GitHub => "github",
            Self::Slack => "slack",
            Self::Shopify => "shopify",
            Self::Hmac => "hmac",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scheme| scheme.as_str() == s)
            .ok_or_else(|| UnknownName::new("webhook scheme", s, &Self::ALL.map(Self::as_str)))
    }
}

/// The hash of a generic `hmac` scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// Bytes of a MAC with this hash.
    pub(crate) fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

impl FromStr for Algorithm {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(Self::Sha256),
            "sha512" => Ok(Self::Sha512),
            _ => Err(UnknownName::new("HMAC algorithm", s, &["sha256", "sha512"])),
        }
    }
}

/// How a generic `hmac` scheme writes the signature in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Lower-case hex when signing; either case is read.
    Hex,
    /// Standard base64; padding is optional when read.
    Base64,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hex => "hex",
            Self::Base64 => "base64",
        }
    }
}

impl FromStr for Encoding {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hex" => Ok(Self::Hex),
            "base64" => Ok(Self::Base64),
            _ => Err(UnknownName::new(
                "signature encoding",
                s,
                &["hex", "base64"],
            )),
        }
    }
}

/// A name in the config that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of: {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

impl UnknownName {
    fn new(what: &'static str, value: &str, expected: &[&str]) -> Self {
        Self {
            what,
            value: value.to_owned(),
            expected: expected.join(", "),
        }
    }
}

/// Which rules a verifier applies: a provider's, or a generic HMAC's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// Standard Webhooks (also Svix): `webhook-id`, `webhook-timestamp`, `webhook-signature`
    /// (or the `svix-` names), `v1,<base64>` entries over `{id}.{timestamp}.{body}`, with a
    /// `whsec_<base64>` secret.
    StandardWebhooks,
    /// `Stripe-Signature: t=…,v1=<hex>` over `{t}.{body}`; the whole secret text is the key.
    Stripe,
    /// `X-Hub-Signature-256: sha256=<hex>` over the body; id from `X-GitHub-Delivery`.
    GitHub,
    /// `X-Slack-Signature: v0=<hex>` over `v0:{timestamp}:{body}`, with
    /// `X-Slack-Request-Timestamp`.
    Slack,
    /// `X-Shopify-Hmac-Sha256: <base64>` over the body; id from `X-Shopify-Webhook-Id`.
    Shopify,
    Hmac(HmacSpec),
}

impl Spec {
    pub fn scheme(&self) -> Scheme {
        match self {
            Self::StandardWebhooks => Scheme::StandardWebhooks,
            Self::Stripe => Scheme::Stripe,
            Self::GitHub => Scheme::GitHub,
            Self::Slack => Scheme::Slack,
            Self::Shopify => Scheme::Shopify,
            Self::Hmac(_) => Scheme::Hmac,
        }
    }
}

/// A provider's scheme by name; `hmac` has no rules without its settings.
impl TryFrom<Scheme> for Spec {
    type Error = SetupError;

    fn try_from(scheme: Scheme) -> Result<Self, Self::Error> {
        match scheme {
            Scheme::StandardWebhooks => Ok(Self::StandardWebhooks),
            Scheme::Stripe => Ok(Self::Stripe),
            Scheme::GitHub => Ok(Self::GitHub),
            Scheme::Slack => Ok(Self::Slack),
            Scheme::Shopify => Ok(Self::Shopify),
            Scheme::Hmac => Err(SetupError::HmacNeedsSettings),
        }
    }
}

/// The settings of a generic `hmac` scheme. The secret is used as given (its bytes are the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacSpec {
    /// The header that carries the signature.
    pub signature_header: String,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    /// Text before the encoded signature, e.g. `sha256=`; empty for none.
    pub prefix: String,
    /// A header with the unix time of sending; the template must then sign `{timestamp}`.
    pub timestamp_header: Option<String>,
    /// A header with the message id (reported in [`Verified::message_id`]).
    pub id_header: Option<String>,
    /// The signed content, from `{timestamp}`, `{id}`, `{body}` (once) and literal text.
    /// `None` means `{body}`.
    pub template: Option<String>,
}

impl HmacSpec {
    /// HMAC-SHA256 of the body, hex, in `signature_header`, without prefix or timestamp.
    pub fn new(signature_header: impl Into<String>) -> Self {
        Self {
            signature_header: signature_header.into(),
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Hex,
            prefix: String::new(),
            timestamp_header: None,
            id_header: None,
            template: None,
        }
    }
}

/// Why a spec or a secret cannot make a verifier. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("no secret given; a webhook verifier needs at least one")]
    NoSecrets,
    #[error("secrets[{index}] is empty")]
    EmptySecret { index: usize },
    #[error("secrets[{index}] {problem}")]
    BadSecret { index: usize, problem: &'static str },
    #[error("the hmac scheme needs its settings: at least signature_header")]
    HmacNeedsSettings,
    #[error("{field} {name:?} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~)")]
    HeaderName { field: &'static str, name: String },
    #[error("the template {template:?} {problem}")]
    Template {
        template: String,
        problem: &'static str,
    },
    #[error("the prefix is not printable ASCII, so no header value could carry it")]
    Prefix,
}

/// Which header of a scheme a failure is about. For Stripe the timestamp is a field of the
/// signature header; [`Verifier::header_name`] names the header either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Signature,
    Timestamp,
    Id,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Timestamp => "timestamp",
            Self::Id => "id",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request is not accepted as signed. The reasons are few and stable (a metric label, a
/// problem body) and say nothing of the secrets or of the signature that was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Failure {
    #[error("the webhook's {0} header is missing")]
    MissingHeader(Field),
    #[error("the webhook's {0} header appears more than once")]
    DuplicateHeader(Field),
    #[error("the webhook's {0} header is longer than 4096 bytes")]
    HeaderTooLarge(Field),
    #[error("the webhook's {0} is malformed")]
    MalformedHeader(Field),
    #[error("the webhook's timestamp is older than the tolerance allows")]
    TimestampTooOld,
    #[error("the webhook's timestamp is further ahead than the tolerance allows")]
    TimestampInFuture,
    #[error("no signature of the webhook matches a configured secret")]
    NoMatchingSignature,
}

impl Failure {
    /// The reason alone, for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::DuplicateHeader(_) => "duplicate_header",
            Self::HeaderTooLarge(_) => "header_too_large",
            Self::MalformedHeader(_) => "malformed_header",
            Self::TimestampTooOld => "timestamp_too_old",
            Self::TimestampInFuture => "timestamp_in_future",
            Self::NoMatchingSignature => "no_matching_signature",
        }
    }

    /// The header the failure is about, if it is about one.
    pub fn field(self) -> Option<Field> {
        match self {
            Self::MissingHeader(f)
            | Self::DuplicateHeader(f)
            | Self::HeaderTooLarge(f)
            | Self::MalformedHeader(f) => Some(f),
            _ => None,
        }
    }
}

/// A request whose signature matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub scheme: Scheme,
    /// The sender's message or delivery id, when the scheme carries one. Signed only by
    /// standard-webhooks and by an hmac template with `{id}`; elsewhere a peer can change it.
    pub message_id: Option<String>,
    /// The signed timestamp (unix seconds), for the timestamped schemes.
    pub timestamp: Option<i64>,
    /// Which secret matched (its position in the list), to tell when a rotated-out secret is
    /// no longer used.
    pub secret_index: usize,
    /// The first bytes of the matched signature: what identifies this delivery when nothing
    /// signed does.
    fingerprint: [u8; 16],
}

/// What a replay store keeps for one delivery (see [`Verifier::replay_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayKey {
    /// Starts with the scheme's name; prefix it with the route if stores are shared.
    pub key: String,
    /// How long the key must be kept to refuse every replay the timestamp check lets through;
    /// `None` for schemes without a timestamp, whose replays can come at any time.
    pub keep_for: Option<Duration>,
}

/// One route's webhook check: its rules, its secrets (as prepared HMAC keys) and tolerance.
pub struct Verifier {
    rules: Rules,
    keys: Vec<Key>,
    tolerance: u64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("scheme", &self.rules.scheme())
            .field("secrets", &format_args!("{} [redacted]", self.keys.len()))
            .field("tolerance_secs", &self.tolerance)
            .finish()
    }
}

impl Verifier {
    /// Compiles `spec` and the secrets, in the order they are tried. Errors name the setting
    /// or the secret's position and what would be valid, never a secret's value.
    pub fn new<S: AsRef<[u8]>>(spec: &Spec, secrets: &[S]) -> Result<Self, SetupError> {
        let rules = Rules::compile(spec)?;
        if secrets.is_empty() {
            return Err(SetupError::NoSecrets);
        }
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(index, secret)| Key::new(&rules, index, secret.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rules,
            keys,
            tolerance: DEFAULT_TOLERANCE.as_secs(),
        })
    }

    /// Sets how far the timestamp may be from `now` either way; a timestamp exactly this far
    /// passes. Whole seconds; the schemes carry no finer time.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance.as_secs();
        self
    }

    pub fn scheme(&self) -> Scheme {
        self.rules.scheme()
    }

    pub fn tolerance(&self) -> Duration {
        Duration::from_secs(self.tolerance)
    }

    /// The (lower-case) header a field is read from, e.g. to name it in a problem body. For
    /// standard-webhooks the `webhook-` name; the `svix-` one is read too.
    pub fn header_name(&self, field: Field) -> Option<&str> {
        self.rules.header_name(field)
    }

    /// Checks a request: its headers, its whole body as received, and the time (unix
    /// seconds). Cheap checks come first, so a stale or malformed request costs no HMAC.
    pub fn verify<H: Headers + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, Failure> {
        let presented = self.rules.read(headers)?;
        if let Some(stamp) = &presented.timestamp {
            self.check_time(stamp.value, now)?;
        }
        if presented.signatures.is_empty() {
            return Err(Failure::NoMatchingSignature);
        }
        let content = self.rules.content(&presented, body);
        for (secret_index, key) in self.keys.iter().enumerate() {
            let tag = key.tag(&content);
            let mut matched = Choice::from(0);
            for candidate in &presented.signatures {
                matched |= tag.as_slice().ct_eq(candidate.as_slice());
            }
            if bool::from(matched) {
                return Ok(Verified {
                    scheme: self.scheme(),
                    message_id: presented.id.map(str::to_owned),
                    timestamp: presented.timestamp.map(|s| s.value),
                    secret_index,
                    fingerprint: tag.fingerprint(),
                });
            }
        }
        Err(Failure::NoMatchingSignature)
    }

    /// `now - timestamp` may be at most the tolerance either way; i128 so no pair of i64
    /// overflows.
    fn check_time(&self, timestamp: i64, now: i64) -> Result<(), Failure> {
        let age = i128::from(now) - i128::from(timestamp);
        let tolerance = i128::from(self.tolerance);
        if age > tolerance {
            Err(Failure::TimestampTooOld)
        } else if -age > tolerance {
            Err(Failure::TimestampInFuture)
        } else {
            Ok(())
        }
    }

    /// The key under which a replay store remembers this delivery: the signed message id
    /// where the scheme signs one (standard-webhooks, an hmac template with `{id}`; a retry
    /// keeps its id, so a key kept longer than `keep_for` catches retries as well); otherwise
    /// the signature itself (with the timestamp when
    /// there is one), since an unsigned id such as `X-GitHub-Delivery` could be changed by
    /// whoever replays the request.
    pub fn replay_key(&self, verified: &Verified) -> ReplayKey {
        let scheme = self.scheme().as_str();
        let fingerprint = key::hex_lower(&verified.fingerprint);
        let key = match (&verified.message_id, verified.timestamp) {
            (Some(id), _) if self.rules.signs_id() => format!("{scheme}:id:{id}"),
            (_, Some(timestamp)) => format!("{scheme}:{timestamp}:{fingerprint}"),
            (_, None) => format!("{scheme}:{fingerprint}"),
        };
        // A timestamp passes while it is within the tolerance of now, before or after: a
        // window of twice the tolerance, both ends included.
        let keep_for = verified
            .timestamp
            .map(|_| Duration::from_secs(self.tolerance.saturating_mul(2).saturating_add(1)));
        ReplayKey { key, keep_for }
    }
}
