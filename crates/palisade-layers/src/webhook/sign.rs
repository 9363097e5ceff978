//! The sender's side: the headers a scheme's provider would attach to a body, for
//! `palisade webhook sign` and for tests. It runs the verifier's own rules and keys, so what
//! is signed here is what is checked there.

use arrayvec::ArrayVec;
use base64::Engine as _;

use super::key::{BASE64, Key, hex_lower};
use super::schemes::{
    GITHUB_DELIVERY, GITHUB_SIGNATURE, Presented, Rules, SHOPIFY_HMAC, SHOPIFY_ID, SLACK_SIGNATURE,
    SLACK_TIMESTAMP, STANDARD_ID, STANDARD_SIGNATURE, STANDARD_TIMESTAMP, STRIPE_SIGNATURE, Stamp,
    is_message_id,
};
use super::{Encoding, Field, SetupError, Spec};

/// Why a message cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("this scheme signs the message id; give one")]
    MissingId,
    #[error("the message id must be 1 to 256 characters of visible ASCII")]
    BadId,
    #[error("this scheme sends the timestamp as unix seconds, 0 or more")]
    NegativeTimestamp,
}

/// The `(name, value)` headers that sign `body` under `spec` with `secret`. `timestamp` is unix
/// seconds, used by the schemes that carry one; `id` is sent by the schemes that carry one
/// (required where it is signed) and ignored by stripe and slack. Names are lower case.
pub fn sign(
    spec: &Spec,
    secret: impl AsRef<[u8]>,
    id: Option<&str>,
    timestamp: i64,
    body: &[u8],
) -> Result<Vec<(String, String)>, SignError> {
    let rules = Rules::compile(spec)?;
    let key = Key::new(&rules, 0, secret.as_ref())?;
    if id.is_some_and(|id| !is_message_id(id.as_bytes())) {
        return Err(SignError::BadId);
    }
    if id.is_none() && rules.signs_id() {
        return Err(SignError::MissingId);
    }
    if timestamp < 0 && rules.header_name(Field::Timestamp).is_some() {
        return Err(SignError::NegativeTimestamp);
    }
    let text = timestamp.to_string();
    let stamp = Stamp {
        text: text.as_bytes(),
        value: timestamp,
    };
    let presented = Presented::new(id, Some(stamp), ArrayVec::new());
    let tag = key.tag(&rules.content(&presented, body));
    let tag = tag.as_slice();
    let mut headers = Vec::new();
    let mut add = |name: &str, value: String| headers.push((name.to_owned(), value));
    match &rules {
        Rules::StandardWebhooks => {
            add(STANDARD_ID[0], id.unwrap_or_default().to_owned());
            add(STANDARD_TIMESTAMP[0], text);
            add(STANDARD_SIGNATURE[0], format!("v1,{}", BASE64.encode(tag)));
        }
        Rules::Stripe => add(STRIPE_SIGNATURE, format!("t={text},v1={}", hex_lower(tag))),
        Rules::GitHub => {
            add(GITHUB_SIGNATURE, format!("sha256={}", hex_lower(tag)));
            if let Some(id) = id {
                add(GITHUB_DELIVERY, id.to_owned());
            }
        }
        Rules::Slack => {
            add(SLACK_TIMESTAMP, text);
            add(SLACK_SIGNATURE, format!("v0={}", hex_lower(tag)));
        }
        Rules::Shopify => {
            add(SHOPIFY_HMAC, BASE64.encode(tag));
            if let Some(id) = id {
                add(SHOPIFY_ID, id.to_owned());
            }
        }
        Rules::Hmac(g) => {
            let encoded = match g.encoding {
                Encoding::Hex => hex_lower(tag),
                Encoding::Base64 => BASE64.encode(tag),
            };
            let prefix = String::from_utf8_lossy(&g.prefix);
            add(&g.signature, format!("{prefix}{encoded}"));
            if let Some(name) = &g.timestamp {
                add(name, text);
            }
            if let (Some(name), Some(id)) = (&g.id, id) {
                add(name, id.to_owned());
            }
        }
    }
    Ok(headers)
}
