//! Each scheme's rules: which headers it reads, how it parses them, and what it signs.
//!
//! Sources of the rules (the tests cite the examples):
//! - Standard Webhooks: <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>
//!   and Svix's <https://docs.svix.com/receiving/verifying-payloads/how-manual> (the `svix-`
//!   names).
//! - Stripe: <https://docs.stripe.com/webhooks#verify-manually>.
//! - GitHub: <https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries>.
//! - Slack: <https://api.slack.com/authentication/verifying-requests-from-slack>.
//! - Shopify: <https://shopify.dev/docs/apps/build/webhooks/verify-deliveries>.
//!
//! Parsing faces whoever sends the request: it works on bytes, never indexes past what it
//! checked, and keeps at most [`MAX_SIGNATURES`] candidates.

use arrayvec::ArrayVec;

use super::headers::{read, require};
use super::key::{SecretForm, Tag};
use super::{
    Algorithm, Encoding, Failure, Field, Headers, HmacSpec, MAX_ID_BYTES, MAX_SIGNATURES, Scheme,
    SetupError, Spec,
};

pub(super) const STANDARD_ID: [&str; 2] = ["webhook-id", "svix-id"];
pub(super) const STANDARD_TIMESTAMP: [&str; 2] = ["webhook-timestamp", "svix-timestamp"];
pub(super) const STANDARD_SIGNATURE: [&str; 2] = ["webhook-signature", "svix-signature"];
pub(super) const STRIPE_SIGNATURE: &str = "stripe-signature";
pub(super) const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
pub(super) const GITHUB_DELIVERY: &str = "x-github-delivery";
pub(super) const SLACK_SIGNATURE: &str = "x-slack-signature";
pub(super) const SLACK_TIMESTAMP: &str = "x-slack-request-timestamp";
pub(super) const SHOPIFY_HMAC: &str = "x-shopify-hmac-sha256";
pub(super) const SHOPIFY_ID: &str = "x-shopify-webhook-id";

/// Pieces of signed content at most: a template's literals and placeholders together.
pub(super) const MAX_PIECES: usize = 16;

/// A spec, checked and ready for requests.
pub(super) enum Rules {
    StandardWebhooks,
    Stripe,
    GitHub,
    Slack,
    Shopify,
    Hmac(Box<Generic>),
}

pub(super) struct Generic {
    pub(super) signature: String,
    pub(super) algorithm: Algorithm,
    pub(super) encoding: Encoding,
    pub(super) prefix: Box<[u8]>,
    pub(super) timestamp: Option<String>,
    pub(super) id: Option<String>,
    template: Vec<Piece>,
}

enum Piece {
    Literal(Box<[u8]>),
    Timestamp,
    Id,
    Body,
}

/// What a request presents, borrowed from its headers.
pub(super) struct Presented<'h> {
    pub(super) id: Option<&'h str>,
    pub(super) timestamp: Option<Stamp<'h>>,
    pub(super) signatures: ArrayVec<Tag, MAX_SIGNATURES>,
}

/// A timestamp as sent (the signed text) and as read.
#[derive(Clone, Copy)]
pub(super) struct Stamp<'h> {
    pub(super) text: &'h [u8],
    pub(super) value: i64,
}

impl Rules {
    pub(super) fn compile(spec: &Spec) -> Result<Self, SetupError> {
        Ok(match spec {
            Spec::StandardWebhooks => Self::StandardWebhooks,
            Spec::Stripe => Self::Stripe,
            Spec::GitHub => Self::GitHub,
            Spec::Slack => Self::Slack,
            Spec::Shopify => Self::Shopify,
            Spec::Hmac(spec) => Self::Hmac(Box::new(Generic::compile(spec)?)),
        })
    }

    pub(super) fn scheme(&self) -> Scheme {
        match self {
            Self::StandardWebhooks => Scheme::StandardWebhooks,
            Self::Stripe => Scheme::Stripe,
            Self::GitHub => Scheme::GitHub,
            Self::Slack => Scheme::Slack,
            Self::Shopify => Scheme::Shopify,
            Self::Hmac(_) => Scheme::Hmac,
        }
    }

    pub(super) fn algorithm(&self) -> Algorithm {
        match self {
            Self::Hmac(g) => g.algorithm,
            _ => Algorithm::Sha256,
        }
    }

    pub(super) fn secret_form(&self) -> SecretForm {
        match self {
            Self::StandardWebhooks => SecretForm::Whsec,
            _ => SecretForm::Raw,
        }
    }

    /// True when the message id is part of the signed content.
    pub(super) fn signs_id(&self) -> bool {
        match self {
            Self::StandardWebhooks => true,
            Self::Hmac(g) => g.template.iter().any(|p| matches!(p, Piece::Id)),
            _ => false,
        }
    }

    pub(super) fn header_name(&self, field: Field) -> Option<&str> {
        match (self, field) {
            (Self::StandardWebhooks, Field::Signature) => Some(STANDARD_SIGNATURE[0]),
            (Self::StandardWebhooks, Field::Timestamp) => Some(STANDARD_TIMESTAMP[0]),
            (Self::StandardWebhooks, Field::Id) => Some(STANDARD_ID[0]),
            (Self::Stripe, Field::Signature | Field::Timestamp) => Some(STRIPE_SIGNATURE),
            (Self::GitHub, Field::Signature) => Some(GITHUB_SIGNATURE),
            (Self::GitHub, Field::Id) => Some(GITHUB_DELIVERY),
            (Self::Slack, Field::Signature) => Some(SLACK_SIGNATURE),
            (Self::Slack, Field::Timestamp) => Some(SLACK_TIMESTAMP),
            (Self::Shopify, Field::Signature) => Some(SHOPIFY_HMAC),
            (Self::Shopify, Field::Id) => Some(SHOPIFY_ID),
            (Self::Hmac(g), Field::Signature) => Some(&g.signature),
            (Self::Hmac(g), Field::Timestamp) => g.timestamp.as_deref(),
            (Self::Hmac(g), Field::Id) => g.id.as_deref(),
            _ => None,
        }
    }

    /// Reads and parses the headers the scheme needs.
    pub(super) fn read<'h, H: Headers + ?Sized>(
        &self,
        headers: &'h H,
    ) -> Result<Presented<'h>, Failure> {
        let mut signatures = ArrayVec::new();
        let presented = match self {
            Self::StandardWebhooks => {
                let id = message_id(require(headers, &STANDARD_ID, Field::Id)?)?;
                let stamp = stamp(require(headers, &STANDARD_TIMESTAMP, Field::Timestamp)?)?;
                let value = require(headers, &STANDARD_SIGNATURE, Field::Signature)?;
                // Space-separated `version,signature` entries; only `v1` is HMAC-SHA256 (`v1a`
                // is ed25519, and later versions are not ours to read).
                for entry in value.split(|b| *b == b' ') {
                    if let Some(encoded) = entry.strip_prefix(b"v1,") {
                        push(&mut signatures, Tag::from_base64(encoded, 32))?;
                    }
                }
                Presented::new(Some(id), Some(stamp), signatures)
            }
            Self::Stripe => {
                let value = require(headers, &[STRIPE_SIGNATURE], Field::Signature)?;
                let mut timestamp = None;
                // Comma-separated `key=value` items: one `t`, any number of `v1`; the rest
                // (`v0` test-mode signatures, future schemes) is not ours to read.
                for item in value.split(|b| *b == b',') {
                    let item = item.trim_ascii();
                    let Some(eq) = item.iter().position(|b| *b == b'=') else {
                        continue;
                    };
                    let (name, text) = (&item[..eq], &item[eq + 1..]);
                    match name {
                        b"t" if timestamp.is_some() => {
                            return Err(Failure::MalformedHeader(Field::Timestamp));
                        }
                        b"t" => timestamp = Some(stamp(text)?),
                        b"v1" => push(&mut signatures, Tag::from_hex(text, 32))?,
                        _ => {}
                    }
                }
                let stamp = timestamp.ok_or(Failure::MalformedHeader(Field::Timestamp))?;
                Presented::new(None, Some(stamp), signatures)
            }
            Self::GitHub => {
                let value = require(headers, &[GITHUB_SIGNATURE], Field::Signature)?;
                let hex = value.strip_prefix(b"sha256=");
                push(&mut signatures, hex.and_then(|h| Tag::from_hex(h, 32)))?;
                let id = read(headers, &[GITHUB_DELIVERY], Field::Id)?;
                Presented::new(id.map(message_id).transpose()?, None, signatures)
            }
            Self::Slack => {
                let stamp = stamp(require(headers, &[SLACK_TIMESTAMP], Field::Timestamp)?)?;
                let value = require(headers, &[SLACK_SIGNATURE], Field::Signature)?;
                let hex = value.strip_prefix(b"v0=");
                push(&mut signatures, hex.and_then(|h| Tag::from_hex(h, 32)))?;
                Presented::new(None, Some(stamp), signatures)
            }
            Self::Shopify => {
                let value = require(headers, &[SHOPIFY_HMAC], Field::Signature)?;
                push(&mut signatures, Tag::from_base64(value, 32))?;
                let id = read(headers, &[SHOPIFY_ID], Field::Id)?;
                Presented::new(id.map(message_id).transpose()?, None, signatures)
            }
            Self::Hmac(g) => g.read(headers, signatures)?,
        };
        Ok(presented)
    }

    /// The signed content in pieces, so the MAC runs over the body where it lies.
    pub(super) fn content<'a>(
        &'a self,
        presented: &Presented<'a>,
        body: &'a [u8],
    ) -> ArrayVec<&'a [u8], MAX_PIECES> {
        let mut pieces = ArrayVec::new();
        let id = presented.id.map(str::as_bytes).unwrap_or_default();
        let timestamp = presented.timestamp.map(|s| s.text).unwrap_or_default();
        match self {
            Self::StandardWebhooks => pieces.extend([id, b".", timestamp, b".", body]),
            Self::Stripe => pieces.extend([timestamp, b".", body]),
            Self::GitHub | Self::Shopify => pieces.push(body),
            Self::Slack => pieces.extend([b"v0:", timestamp, b":", body]),
            Self::Hmac(g) => pieces.extend(g.template.iter().map(|piece| match piece {
                Piece::Literal(text) => &text[..],
                Piece::Timestamp => timestamp,
                Piece::Id => id,
                Piece::Body => body,
            })),
        }
        pieces
    }
}

impl<'h> Presented<'h> {
    pub(super) fn new(
        id: Option<&'h str>,
        timestamp: Option<Stamp<'h>>,
        signatures: ArrayVec<Tag, MAX_SIGNATURES>,
    ) -> Self {
        Self {
            id,
            timestamp,
            signatures,
        }
    }
}

/// Adds a decoded signature; one that does not decode to a MAC of the right length, or one
/// too many, makes the header malformed.
fn push(signatures: &mut ArrayVec<Tag, MAX_SIGNATURES>, tag: Option<Tag>) -> Result<(), Failure> {
    let tag = tag.ok_or(Failure::MalformedHeader(Field::Signature))?;
    signatures
        .try_push(tag)
        .map_err(|_| Failure::MalformedHeader(Field::Signature))
}

/// Unix seconds as ASCII digits. 18 digits at most, so the value fits an i64 (year 31 billion).
pub(super) fn stamp(text: &[u8]) -> Result<Stamp<'_>, Failure> {
    let malformed = Failure::MalformedHeader(Field::Timestamp);
    if text.is_empty() || text.len() > 18 || !text.iter().all(u8::is_ascii_digit) {
        return Err(malformed);
    }
    let value = text.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    Ok(Stamp { text, value })
}

/// A message id: visible ASCII, as ids are in practice, and short enough to be a store key.
pub(super) fn message_id(text: &[u8]) -> Result<&str, Failure> {
    if !is_message_id(text) {
        return Err(Failure::MalformedHeader(Field::Id));
    }
    std::str::from_utf8(text).map_err(|_| Failure::MalformedHeader(Field::Id))
}

pub(super) fn is_message_id(text: &[u8]) -> bool {
    !text.is_empty() && text.len() <= MAX_ID_BYTES && text.iter().all(u8::is_ascii_graphic)
}

impl Generic {
    fn compile(spec: &HmacSpec) -> Result<Self, SetupError> {
        let signature = header_name("signature_header", &spec.signature_header)?;
        let timestamp = spec
            .timestamp_header
            .as_deref()
            .map(|n| header_name("timestamp_header", n))
            .transpose()?;
        let id = spec
            .id_header
            .as_deref()
            .map(|n| header_name("id_header", n))
            .transpose()?;
        if !spec
            .prefix
            .bytes()
            .all(|b| b == b' ' || b.is_ascii_graphic())
        {
            return Err(SetupError::Prefix);
        }
        let source = spec.template.as_deref().unwrap_or("{body}");
        let template = parse_template(source)?;
        let problem = |problem| SetupError::Template {
            template: source.to_owned(),
            problem,
        };
        let has = |wanted: fn(&Piece) -> bool| template.iter().any(wanted);
        if has(|p| matches!(p, Piece::Timestamp)) != timestamp.is_some() {
            return Err(problem(if timestamp.is_some() {
                "does not sign {timestamp}, so the timestamp header could be changed at will; \
                 add it, e.g. \"{timestamp}.{body}\""
            } else {
                "uses {timestamp} but no timestamp_header is set"
            }));
        }
        if has(|p| matches!(p, Piece::Id)) && id.is_none() {
            return Err(problem("uses {id} but no id_header is set"));
        }
        Ok(Self {
            signature,
            algorithm: spec.algorithm,
            encoding: spec.encoding,
            prefix: spec.prefix.as_bytes().into(),
            timestamp,
            id,
            template,
        })
    }

    fn read<'h, H: Headers + ?Sized>(
        &self,
        headers: &'h H,
        mut signatures: ArrayVec<Tag, MAX_SIGNATURES>,
    ) -> Result<Presented<'h>, Failure> {
        let value = require(headers, &[&self.signature], Field::Signature)?;
        let len = self.algorithm.output_len();
        let tag = value
            .strip_prefix(&self.prefix[..])
            .and_then(|encoded| match self.encoding {
                Encoding::Hex => Tag::from_hex(encoded, len),
                Encoding::Base64 => Tag::from_base64(encoded, len),
            });
        push(&mut signatures, tag)?;
        let timestamp = match &self.timestamp {
            Some(name) => Some(stamp(require(headers, &[name], Field::Timestamp)?)?),
            None => None,
        };
        let id = match &self.id {
            // A signed id cannot be left out; an unsigned one is only reported.
            Some(name) if self.template.iter().any(|p| matches!(p, Piece::Id)) => {
                Some(message_id(require(headers, &[name], Field::Id)?)?)
            }
            Some(name) => read(headers, &[name], Field::Id)?
                .map(message_id)
                .transpose()?,
            None => None,
        };
        Ok(Presented::new(id, timestamp, signatures))
    }
}

/// A configured header name, in lower case, if it is an HTTP token.
fn header_name(field: &'static str, name: &str) -> Result<String, SetupError> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(SetupError::HeaderName {
            field,
            name: name.to_owned(),
        });
    }
    Ok(name.to_ascii_lowercase())
}

/// Splits a template into literals and `{timestamp}`, `{id}`, `{body}`; `{body}` exactly once,
/// no other braces.
fn parse_template(source: &str) -> Result<Vec<Piece>, SetupError> {
    let problem = |problem| SetupError::Template {
        template: source.to_owned(),
        problem,
    };
    let mut pieces = Vec::new();
    let mut rest = source;
    while !rest.is_empty() {
        let literal_end = rest.find(['{', '}']).unwrap_or(rest.len());
        if literal_end > 0 {
            pieces.push(Piece::Literal(rest.as_bytes()[..literal_end].into()));
            rest = &rest[literal_end..];
            continue;
        }
        let (piece, len) = [
            ("{timestamp}", Piece::Timestamp),
            ("{id}", Piece::Id),
            ("{body}", Piece::Body),
        ]
        .into_iter()
        .find(|(name, _)| rest.starts_with(name))
        .map(|(name, piece)| (piece, name.len()))
        .ok_or(problem(
            "has a brace that is not one of {timestamp}, {id}, {body}",
        ))?;
        pieces.push(piece);
        rest = &rest[len..];
    }
    if pieces.iter().filter(|p| matches!(p, Piece::Body)).count() != 1 {
        return Err(problem("must contain {body} exactly once"));
    }
    if pieces.len() > MAX_PIECES {
        return Err(problem("has more than 16 parts"));
    }
    Ok(pieces)
}
