//! Each scheme against its provider's published example; the examples and helpers here are
//! shared by [`refusals`] (how requests fail) and [`setup`] (what load refuses, replay keys).
//! Every vector below was also recomputed with `openssl dgst -hmac` before it was written down.

use std::time::Duration;

use super::*;

mod refusals;
mod setup;

// https://github.com/standard-webhooks/standard-webhooks/blob/main/libraries/javascript/src/webhook.test.ts
// ("sign function works"; the same values are in svix/svix-webhooks' tests).
const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SW_TS: i64 = 1_614_265_330;
const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

// https://github.com/stripe/stripe-dotnet/blob/master/src/StripeTests/Services/Events/EventUtilityTest.cs
// with its fixture src/StripeTests/Resources/event_test_signature.json (trailing newline
// included, as `cat` gives it to the openssl line the test quotes).
const STRIPE_SECRET: &str = "webhook_secret";
const STRIPE_TS: i64 = 1_533_204_620;
const STRIPE_HEADER: &str = "t=1533204620,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
const STRIPE_BODY: &str = r#"{
  "id": "evt_123",
  "object": "event",
  "account": "acct_123",
  "api_version": "2017-05-25",
  "created": 1533204620,
  "data": {
    "object": {
      "id": "cus_123",
      "object": "customer",
      "created": 123456789,
      "email": "test@stripe.com",
      "livemode": false,
      "metadata": {}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {
    "id": "req_123",
    "idempotency_key": "idempotency-key-123"
  },
  "type": "customer.created"
}
"#;

// https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
// ("Testing the webhook payload validation").
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITHUB_BODY: &[u8] = b"Hello, World!";
const GITHUB_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

// https://api.slack.com/authentication/verifying-requests-from-slack (the walk-through), also
// in slackapi/python-slack-sdk tests/slack_sdk/signature/test_signature_verifier.py.
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const SLACK_TS: i64 = 1_531_420_618;
const SLACK_BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

// Shopify publishes no example signature
// (https://shopify.dev/docs/apps/build/webhooks/verify-deliveries gives the rule only). This
// one was computed outside this code: `printf '%s' BODY | openssl dgst -sha256 -hmac SECRET
// -binary | base64`.
const SHOPIFY_SECRET: &str = "shpss_example_client_secret";
const SHOPIFY_BODY: &[u8] = br#"{"id":820982911946154508,"topic":"orders/create"}"#;
const SHOPIFY_SIG: &str = "gkUsHHWEjqMzS266vd+WmhpUHPyQQEDhJS3LJuSVpCY=";

// RFC 4231 §4.3 (test case 2): key "Jefe", data "what do ya want for nothing?".
// https://www.rfc-editor.org/rfc/rfc4231#section-4.3
const RFC4231_KEY: &str = "Jefe";
const RFC4231_DATA: &[u8] = b"what do ya want for nothing?";
const RFC4231_SHA512_HEX: &str = "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737";
// The same test case's HMAC-SHA-256 (5bdcc146…3843), in base64.
const RFC4231_SHA256_BASE64: &str = "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=";

fn verifier(spec: &Spec, secrets: &[&str]) -> Verifier {
    Verifier::new(spec, secrets).unwrap()
}

fn check(
    v: &Verifier,
    headers: &[(&str, &str)],
    body: &[u8],
    now: i64,
) -> Result<Verified, Failure> {
    v.verify(headers, body, now)
}

fn sw_headers(sig: &str) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", SW_ID.to_owned()),
        ("webhook-timestamp", SW_TS.to_string()),
        ("webhook-signature", sig.to_owned()),
    ]
}

fn as_refs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

fn slack_spec_as_hmac() -> Spec {
    Spec::Hmac(HmacSpec {
        prefix: "v0=".into(),
        timestamp_header: Some("X-Slack-Request-Timestamp".into()),
        template: Some("v0:{timestamp}:{body}".into()),
        ..HmacSpec::new("X-Slack-Signature")
    })
}

// --- published examples ---------------------------------------------------------------------

#[test]
fn standard_webhooks_example_verifies_with_and_without_the_prefix() {
    for secret in [SW_SECRET, &SW_SECRET["whsec_".len()..]] {
        let v = verifier(&Spec::StandardWebhooks, &[secret]);
        let ok = check(&v, &as_refs(&sw_headers(SW_SIG)), SW_BODY, SW_TS).unwrap();
        assert_eq!(ok.scheme, Scheme::StandardWebhooks);
        assert_eq!(ok.message_id.as_deref(), Some(SW_ID));
        assert_eq!(ok.timestamp, Some(SW_TS));
        assert_eq!(ok.secret_index, 0);
    }
}

#[test]
fn standard_webhooks_reads_the_svix_header_names() {
    // https://docs.svix.com/receiving/verifying-payloads/how-manual: svix-id, svix-timestamp,
    // svix-signature carry the same values.
    let v = verifier(&Spec::StandardWebhooks, &[SW_SECRET]);
    let ts = SW_TS.to_string();
    let headers = [
        ("svix-id", SW_ID),
        ("svix-timestamp", &ts),
        ("svix-signature", SW_SIG),
    ];
    assert!(check(&v, &headers, SW_BODY, SW_TS).is_ok());
    // Both families at once are fine while they agree, and ambiguous when they do not.
    let webhook = sw_headers(SW_SIG);
    let mut both = as_refs(&webhook);
    both.extend(headers);
    assert!(check(&v, &both, SW_BODY, SW_TS).is_ok());
    both.pop();
    both.push((
        "svix-signature",
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
    ));
    assert_eq!(
        check(&v, &both, SW_BODY, SW_TS),
        Err(Failure::DuplicateHeader(Field::Signature))
    );
}

#[test]
fn standard_webhooks_signer_reproduces_the_example() {
    let headers = sign(
        &Spec::StandardWebhooks,
        SW_SECRET,
        Some(SW_ID),
        SW_TS,
        SW_BODY,
    )
    .unwrap();
    let expected = [
        ("webhook-id", SW_ID),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", SW_SIG),
    ];
    assert_eq!(headers, expected.map(|(n, v)| (n.to_owned(), v.to_owned())));
}

#[test]
fn stripe_example_verifies_and_its_signer_agrees() {
    let v = verifier(&Spec::Stripe, &[STRIPE_SECRET]);
    let headers = [("Stripe-Signature", STRIPE_HEADER)];
    // EventUtilityTest.ConstructEvent: 100 s after signing, tolerance 300.
    let ok = check(&v, &headers, STRIPE_BODY.as_bytes(), STRIPE_TS + 100).unwrap();
    assert_eq!(
        (ok.scheme, ok.timestamp, ok.message_id),
        (Scheme::Stripe, Some(STRIPE_TS), None)
    );
    // RejectOutdatedTimestamp: tolerance + 100 s after.
    assert_eq!(
        check(&v, &headers, STRIPE_BODY.as_bytes(), STRIPE_TS + 400),
        Err(Failure::TimestampTooOld)
    );
    let signed = sign(
        &Spec::Stripe,
        STRIPE_SECRET,
        None,
        STRIPE_TS,
        STRIPE_BODY.as_bytes(),
    );
    let v1 = &STRIPE_HEADER[..STRIPE_HEADER.find(",v0=").unwrap()];
    assert_eq!(
        signed.unwrap(),
        [("stripe-signature".to_owned(), v1.to_owned())]
    );
}

#[test]
fn github_example_verifies_and_its_signer_agrees() {
    let v = verifier(&Spec::GitHub, &[GITHUB_SECRET]);
    let headers = [
        ("X-Hub-Signature-256", GITHUB_SIG),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ];
    let ok = check(&v, &headers, GITHUB_BODY, 0).unwrap();
    assert_eq!(
        ok.message_id.as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    assert_eq!(ok.timestamp, None);
    // No timestamp: any `now` will do, and the id is optional.
    assert!(check(&v, &headers[..1], GITHUB_BODY, i64::MAX).is_ok());
    let signed = sign(&Spec::GitHub, GITHUB_SECRET, None, 0, GITHUB_BODY).unwrap();
    assert_eq!(
        signed,
        [("x-hub-signature-256".to_owned(), GITHUB_SIG.to_owned())]
    );
}

#[test]
fn slack_example_verifies_and_its_signer_agrees() {
    let v = verifier(&Spec::Slack, &[SLACK_SECRET]);
    let ts = SLACK_TS.to_string();
    let headers = [
        ("X-Slack-Request-Timestamp", ts.as_str()),
        ("X-Slack-Signature", SLACK_SIG),
    ];
    let ok = check(&v, &headers, SLACK_BODY, SLACK_TS).unwrap();
    assert_eq!(ok.timestamp, Some(SLACK_TS));
    let signed = sign(&Spec::Slack, SLACK_SECRET, None, SLACK_TS, SLACK_BODY).unwrap();
    assert_eq!(
        signed[1],
        ("x-slack-signature".to_owned(), SLACK_SIG.to_owned())
    );
}

#[test]
fn shopify_example_verifies_and_its_signer_agrees() {
    let v = verifier(&Spec::Shopify, &[SHOPIFY_SECRET]);
    let headers = [
        ("X-Shopify-Hmac-Sha256", SHOPIFY_SIG),
        (
            "X-Shopify-Webhook-Id",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        ),
    ];
    let ok = check(&v, &headers, SHOPIFY_BODY, 0).unwrap();
    assert_eq!(
        ok.message_id.as_deref(),
        Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    );
    assert!(check(&v, &headers[..1], SHOPIFY_BODY, 0).is_ok());
    let signed = sign(&Spec::Shopify, SHOPIFY_SECRET, None, 0, SHOPIFY_BODY).unwrap();
    assert_eq!(
        signed,
        [("x-shopify-hmac-sha256".to_owned(), SHOPIFY_SIG.to_owned())]
    );
}

#[test]
fn generic_hmac_reproduces_github_slack_and_rfc_4231() {
    let github = Spec::Hmac(HmacSpec {
        prefix: "sha256=".into(),
        ..HmacSpec::new("X-Hub-Signature-256")
    });
    let v = verifier(&github, &[GITHUB_SECRET]);
    assert!(check(&v, &[("x-hub-signature-256", GITHUB_SIG)], GITHUB_BODY, 0).is_ok());

    let v = verifier(&slack_spec_as_hmac(), &[SLACK_SECRET]);
    let ts = SLACK_TS.to_string();
    let headers = [
        ("X-Slack-Request-Timestamp", ts.as_str()),
        ("X-Slack-Signature", SLACK_SIG),
    ];
    assert_eq!(
        check(&v, &headers, SLACK_BODY, SLACK_TS).unwrap().timestamp,
        Some(SLACK_TS)
    );

    let sha512 = Spec::Hmac(HmacSpec {
        algorithm: Algorithm::Sha512,
        ..HmacSpec::new("x-signature")
    });
    let v = verifier(&sha512, &[RFC4231_KEY]);
    assert!(check(&v, &[("X-Signature", RFC4231_SHA512_HEX)], RFC4231_DATA, 0).is_ok());
    // Hex is read in either case.
    let upper = RFC4231_SHA512_HEX.to_ascii_uppercase();
    assert!(check(&v, &[("X-Signature", &upper)], RFC4231_DATA, 0).is_ok());

    let base64 = Spec::Hmac(HmacSpec {
        encoding: Encoding::Base64,
        ..HmacSpec::new("x-signature")
    });
    let v = verifier(&base64, &[RFC4231_KEY]);
    assert!(
        check(
            &v,
            &[("X-Signature", RFC4231_SHA256_BASE64)],
            RFC4231_DATA,
            0
        )
        .is_ok()
    );
    // Padding is optional when read.
    let unpadded = RFC4231_SHA256_BASE64.trim_end_matches('=');
    assert!(check(&v, &[("X-Signature", unpadded)], RFC4231_DATA, 0).is_ok());
}

/// A scheme's example: spec, secret, headers, body, and the time it was signed.
type Example = (
    Spec,
    &'static str,
    Vec<(&'static str, String)>,
    Vec<u8>,
    i64,
);

fn examples() -> Vec<Example> {
    let owned = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(n, v)| (*n, (*v).to_owned())).collect()
    };
    vec![
        (
            Spec::StandardWebhooks,
            SW_SECRET,
            sw_headers(SW_SIG),
            SW_BODY.to_vec(),
            SW_TS,
        ),
        (
            Spec::Stripe,
            STRIPE_SECRET,
            owned(&[("stripe-signature", STRIPE_HEADER)]),
            STRIPE_BODY.as_bytes().to_vec(),
            STRIPE_TS,
        ),
        (
            Spec::GitHub,
            GITHUB_SECRET,
            owned(&[("x-hub-signature-256", GITHUB_SIG)]),
            GITHUB_BODY.to_vec(),
            0,
        ),
        (
            Spec::Slack,
            SLACK_SECRET,
            owned(&[
                ("x-slack-request-timestamp", "1531420618"),
                ("x-slack-signature", SLACK_SIG),
            ]),
            SLACK_BODY.to_vec(),
            SLACK_TS,
        ),
        (
            Spec::Shopify,
            SHOPIFY_SECRET,
            owned(&[("x-shopify-hmac-sha256", SHOPIFY_SIG)]),
            SHOPIFY_BODY.to_vec(),
            0,
        ),
        (
            slack_spec_as_hmac(),
            SLACK_SECRET,
            owned(&[
                ("x-slack-request-timestamp", "1531420618"),
                ("x-slack-signature", SLACK_SIG),
            ]),
            SLACK_BODY.to_vec(),
            SLACK_TS,
        ),
    ]
}
