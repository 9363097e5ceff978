//! What must hold for any input: the parsers never panic on bytes a peer chose, what the
//! signer signs verifies, and one changed byte of the body does not.

use proptest::prelude::*;

use super::*;

/// Every scheme, the generic one in two shapes, each with a secret it accepts.
fn specs() -> Vec<(Spec, &'static str)> {
    vec![
        (
            Spec::StandardWebhooks,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        (Spec::Stripe, "whsec_stripe"),
        (Spec::GitHub, "github secret"),
        (Spec::Slack, "slack secret"),
        (Spec::Shopify, "shopify secret"),
        (
            Spec::Hmac(HmacSpec {
                prefix: "sha256=".into(),
                ..HmacSpec::new("x-signature")
            }),
            "hmac secret",
        ),
        (
            Spec::Hmac(HmacSpec {
                algorithm: Algorithm::Sha512,
                encoding: Encoding::Base64,
                timestamp_header: Some("x-timestamp".into()),
                id_header: Some("x-id".into()),
                template: Some("{id}.{timestamp}.{body}".into()),
                ..HmacSpec::new("x-signature")
            }),
            "hmac secret",
        ),
    ]
}

/// Names the schemes read, and one they do not, in assorted case.
const NAMES: [&str; 16] = [
    "webhook-id",
    "Webhook-Timestamp",
    "webhook-signature",
    "svix-id",
    "SVIX-TIMESTAMP",
    "svix-signature",
    "stripe-signature",
    "x-hub-signature-256",
    "X-GitHub-Delivery",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-shopify-hmac-sha256",
    "x-shopify-webhook-id",
    "x-signature",
    "x-timestamp",
    "x-other",
];

/// A header value: arbitrary bytes, or text shaped like a signature so parsing goes deeper.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        "(t=[0-9]{1,20},)?(v[01a]?[,=][A-Za-z0-9+/=]{0,90}[ ,]?){0,20}"
            .prop_map(String::into_bytes),
        "(sha256=|v0=)?[0-9a-fA-F]{0,130}".prop_map(String::into_bytes),
        "[0-9]{0,20}".prop_map(String::into_bytes),
        (0usize..5000).prop_map(|n| vec![b'a'; n]),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    proptest::collection::vec(
        (
            proptest::sample::select(&NAMES[..]).prop_map(str::to_owned),
            value(),
        ),
        0..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_headers_never_panic(
        headers in headers(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        now in any::<i64>(),
    ) {
        for (spec, secret) in specs() {
            let verifier = Verifier::new(&spec, &[secret]).unwrap();
            if let Ok(verified) = verifier.verify(&headers[..], &body, now) {
                // A random signature that matches would be a broken MAC, not luck.
                prop_assert!(false, "{spec:?} accepted {verified:?}");
            }
        }
    }

    #[test]
    fn what_is_signed_verifies_and_a_changed_byte_does_not(
        body in proptest::collection::vec(any::<u8>(), 1..512),
        id in "[!-~]{1,40}",
        timestamp in 0i64..=10_000_000_000,
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        for (spec, secret) in specs() {
            let verifier = Verifier::new(&spec, &[secret]).unwrap();
            let headers = sign(&spec, secret, Some(&id), timestamp, &body).unwrap();
            let verified = verifier.verify(&headers[..], &body, timestamp);
            prop_assert!(verified.is_ok(), "{spec:?}: {verified:?}");
            let mut changed = body.clone();
            changed[at.index(body.len())] ^= flip;
            prop_assert_eq!(
                verifier.verify(&headers[..], &changed, timestamp),
                Err(Failure::NoMatchingSignature),
                "{:?}", spec
            );
        }
    }
}
