//! API keys: lookup by hash, what an entry grants, and the entries refused at construction.

use super::super::api_key::key_digest_hex;
use super::super::{ApiKeyEntry, ApiKeyStore, Method};

fn entry(id: &str, key: &[u8]) -> ApiKeyEntry {
    ApiKeyEntry {
        id: id.to_owned(),
        sha256: key_digest_hex(key),
        tier: None,
        scopes: vec![],
    }
}

#[test]
fn the_digest_is_the_sha256_of_the_key_in_hex() {
    // FIPS 180-2 B.1: SHA-256("abc").
    assert_eq!(
        key_digest_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn a_presented_key_is_found_by_its_hash() {
    let mut partner = entry("partner-a", b"key-a");
    partner.tier = Some("partner".to_owned());
    partner.scopes = vec!["orders:read".to_owned(), "orders:write".to_owned()];
    // Operators may paste the digest in upper case.
    let mut upper = entry("batch", b"key-b");
    upper.sha256 = upper.sha256.to_uppercase();
    let store = ApiKeyStore::from_entries(vec![partner, upper]).unwrap();
    let identity = store.lookup(b"key-a").unwrap();
    assert_eq!(identity.subject, "partner-a");
    assert_eq!(identity.method, Method::ApiKey);
    assert_eq!(identity.tier.as_deref(), Some("partner"));
    assert!(identity.has_scopes(&["orders:write"]));
    assert!(!identity.has_scopes(&["orders:delete"]));
    assert_eq!(
        store.lookup(b"key-b").map(|i| i.subject).as_deref(),
        Some("batch")
    );
    assert_eq!(store.lookup(b"key-c"), None);
    assert_eq!(store.lookup(b""), None);
    assert_eq!(store.len(), 2);
}

#[test]
fn every_bad_entry_is_reported_by_position_and_id() {
    let mut short = entry("short", b"k1");
    short.sha256.pop();
    let mut not_hex = entry("not-hex", b"k2");
    not_hex.sha256.replace_range(0..1, "g");
    let mut bad_scope = entry("scoped", b"k5");
    bad_scope.scopes = vec!["read write".to_owned()];
    let errors = ApiKeyStore::from_entries(vec![
        entry("a", b"k0"),
        short,
        not_hex,
        entry("a", b"k3"),
        entry("b", b"k0"),
        bad_scope,
        entry(" ", b"k6"),
    ])
    .unwrap_err();
    let seen: Vec<(usize, &str)> = errors.iter().map(|e| (e.index, e.id.as_str())).collect();
    assert_eq!(
        seen,
        [
            (1, "short"),
            (2, "not-hex"),
            (3, "a"),
            (4, "b"),
            (5, "scoped"),
            (6, " ")
        ]
    );
    assert_eq!(
        errors[0].to_string(),
        "API key entry 1 (\"short\"): sha256 must be the 64 hex digits of the key's SHA-256, not 63 characters"
    );
    assert!(errors[2].problem.contains("already used by entry 0"));
    assert!(errors[3].problem.contains("same as entry 0"));
}

#[test]
fn the_store_shows_ids_never_keys_or_hashes() {
    let store = ApiKeyStore::from_entries(vec![entry("ci", b"secret-key")]).unwrap();
    let shown = format!("{store:?}");
    assert_eq!(shown, "ApiKeyStore { ids: [\"ci\"] }");
    assert!(!shown.contains(&key_digest_hex(b"secret-key")));
}

#[derive(serde::Deserialize)]
struct File {
    keys: Vec<ApiKeyEntry>,
}

#[test]
fn entries_read_from_toml_and_refuse_unknown_fields() {
    let text = format!(
        "[[keys]]\nid = \"ci\"\nsha256 = \"{}\"\ntier = \"internal\"\nscopes = [\"deploy\"]\n",
        key_digest_hex(b"k")
    );
    let file: File = toml::from_str(&text).unwrap();
    let store = ApiKeyStore::from_entries(file.keys).unwrap();
    assert_eq!(store.lookup(b"k").unwrap().scopes, ["deploy"]);
    let typo = text.replace("scopes", "scope");
    assert!(toml::from_str::<File>(&typo).is_err());
}
