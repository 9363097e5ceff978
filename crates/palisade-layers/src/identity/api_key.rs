//! API keys: the gateway stores only the SHA-256 of each key, with the id, tier and scopes the
//! key grants. A presented key is hashed and looked up by its hash.
//!
//! Why a map lookup on the hash is safe against timing attacks: the comparisons it makes are on
//! SHA-256 digests, and they can reveal at most how much of the presented key's digest matches
//! a stored one. An attacker cannot choose digest bytes without preimages, so that leaks nothing
//! that helps guess a key, unlike a byte-by-byte comparison of the keys themselves. The map's
//! hasher is also randomly keyed per process.
//!
//! The presented key is never kept, logged or put in an error; the store's `Debug` shows ids.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use super::{Identity, Method};
use crate::hex;

/// One configured key (`[[auth.api_keys.keys]]`, or `[[keys]]` in the key file): the config's
/// own type, so the file, the config and the store read the same fields.
pub use palisade_config::ApiKeyEntry;

/// A refused entry, named by its position (from 0) and id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("API key entry {index} ({id:?}): {problem}")]
pub struct ApiKeyConfigError {
    pub index: usize,
    pub id: String,
    pub problem: String,
}

/// What a stored key grants.
struct Grant {
    id: String,
    tier: Option<String>,
    scopes: Vec<String>,
}

/// The configured keys, by the SHA-256 of the key.
pub struct ApiKeyStore {
    by_digest: HashMap<[u8; 32], Grant>,
}

impl ApiKeyStore {
    /// Checks every entry and returns every problem: a `sha256` that is not 64 hex digits, an
    /// empty id, an id or a hash used twice, an empty scope or one with spaces.
    pub fn from_entries(entries: Vec<ApiKeyEntry>) -> Result<Self, Vec<ApiKeyConfigError>> {
        let mut errors = Vec::new();
        let mut by_digest = HashMap::with_capacity(entries.len());
        let mut first_of_digest: HashMap<[u8; 32], usize> = HashMap::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let mut refuse = |problem: String| {
                errors.push(ApiKeyConfigError {
                    index,
                    id: entry.id.clone(),
                    problem,
                })
            };
            if entry.id.trim().is_empty() {
                refuse("id is empty".to_owned());
            } else if let Some(first) = ids.insert(entry.id.clone(), index) {
                refuse(format!("id is already used by entry {first}"));
            }
            if entry
                .scopes
                .iter()
                .any(|s| s.is_empty() || s.contains(char::is_whitespace))
            {
                refuse("a scope is empty or contains whitespace".to_owned());
            }
            if entry.tier.as_deref().is_some_and(|t| t.trim().is_empty()) {
                refuse("tier is empty; leave it out for the default tier".to_owned());
            }
            let digest = match parse_digest(&entry.sha256) {
                Ok(digest) => digest,
                Err(problem) => {
                    refuse(problem);
                    continue;
                }
            };
            if let Some(first) = first_of_digest.insert(digest, index) {
                refuse(format!(
                    "sha256 is the same as entry {first}'s: one key, two entries"
                ));
                continue;
            }
            let grant = Grant {
                id: entry.id,
                tier: entry.tier,
                scopes: entry.scopes,
            };
            by_digest.insert(digest, grant);
        }
        if errors.is_empty() {
            Ok(Self { by_digest })
        } else {
            Err(errors)
        }
    }

    /// The identity of a presented key, or `None` for a key that is not configured.
    pub fn lookup(&self, presented: &[u8]) -> Option<Identity> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let grant = self.by_digest.get(&digest)?;
        Some(Identity {
            subject: grant.id.clone(),
            tier: grant.tier.clone(),
            method: Method::ApiKey,
            scopes: grant.scopes.clone(),
        })
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// The `sha256` value of an entry for `key`: what an operator (or a CLI command) stores.
pub fn key_digest_hex(key: &[u8]) -> String {
    Sha256::digest(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_digest(text: &str) -> Result<[u8; 32], String> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return Err(format!(
            "sha256 must be the 64 hex digits of the key's SHA-256, not {} characters",
            bytes.len()
        ));
    }
    let mut digest = [0u8; 32];
    for (out, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
        match (hex::value(pair[0]), hex::value(pair[1])) {
            (Some(hi), Some(lo)) => *out = hi << 4 | lo,
            _ => return Err("sha256 has a character that is not a hex digit".to_owned()),
        }
    }
    Ok(digest)
}

/// Shows the ids only.
impl fmt::Debug for ApiKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.by_digest.values().map(|g| g.id.as_str()).collect();
        ids.sort_unstable();
        f.debug_struct("ApiKeyStore").field("ids", &ids).finish()
    }
}
