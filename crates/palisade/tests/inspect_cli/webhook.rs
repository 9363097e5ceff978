//! `palisade webhook verify` and `sign` on each provider's published example, and round trips
//! through both for every scheme.

use super::{Run, Scratch, assert_usage, data, palisade, verdict};

const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SW_TS: i64 = 1_614_265_330;
const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
const STRIPE_SECRET: &str = "webhook_secret";
const STRIPE_TS: i64 = 1_533_204_620;
const STRIPE_HEADER: &str = "t=1533204620,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef";
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITHUB_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
const GITHUB_DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const SLACK_TS: i64 = 1_531_420_618;
const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
const SHOPIFY_SECRET: &str = "shpss_example_client_secret";
const SHOPIFY_SIG: &str = "gkUsHHWEjqMzS266vd+WmhpUHPyQQEDhJS3LJuSVpCY=";
const SHOPIFY_ID: &str = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043";
const RFC4231_KEY: &str = "Jefe";
const RFC4231_SHA512_HEX: &str = "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737";
const RFC4231_SHA256_BASE64: &str = "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=";

const NO_MATCH: &str =
    "invalid: no_matching_signature (no signature of the webhook matches a configured secret)\n";

/// Slack's rules written as a generic HMAC.
const SLACK_AS_HMAC: &str = "--scheme hmac --signature-header X-Slack-Signature --prefix v0= \
     --timestamp-header X-Slack-Request-Timestamp --template v0:{timestamp}:{body}";

/// Command-line words, for flags whose values hold no space.
fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

/// A published delivery: the scheme's flags, the secret, the headers as sent, the body file,
/// the time it was signed (for the schemes with a timestamp), and what `verify` prints.
struct Example {
    scheme: &'static str,
    secret: &'static str,
    headers: Vec<String>,
    body: &'static str,
    signed_at: Option<i64>,
    valid: String,
}

impl Example {
    fn new(
        scheme: &'static str,
        secret: &'static str,
        headers: &[String],
        body: &'static str,
        signed_at: Option<i64>,
        id: &str,
    ) -> Self {
        let name = words(scheme)[1];
        let timestamp = signed_at.map_or("-".to_owned(), |t| t.to_string());
        Self {
            scheme,
            secret,
            headers: headers.to_vec(),
            body,
            signed_at,
            valid: format!("valid: scheme={name}, id={id}, timestamp={timestamp}, secret=0\n"),
        }
    }

    /// The example's own time, or any time for a scheme without a timestamp.
    fn now(&self) -> i64 {
        self.signed_at.unwrap_or(1_700_000_000)
    }

    fn verify(&self, secrets: &[&str], body: &str, now: i64, more: &[&str]) -> Run {
        let now = now.to_string();
        let mut args = vec!["webhook", "verify"];
        args.extend(words(self.scheme));
        for secret in secrets {
            args.extend(["--secret", secret]);
        }
        for header in &self.headers {
            args.extend(["--header", header]);
        }
        args.extend(["--body-file", body, "--now", &now]);
        args.extend(more);
        palisade(&args)
    }
}

fn examples() -> Vec<Example> {
    let example = Example::new;
    let slack_headers = [
        format!("X-Slack-Request-Timestamp: {SLACK_TS}"),
        format!("X-Slack-Signature: {SLACK_SIG}"),
    ];
    let standard = [
        format!("webhook-id: {SW_ID}"),
        format!("webhook-timestamp: {SW_TS}"),
        format!("webhook-signature: {SW_SIG}"),
    ];
    let sha512 = "--scheme hmac --signature-header X-Signature --algorithm sha512";
    let base64 = "--scheme hmac --signature-header X-Signature --encoding base64";
    vec![
        example(
            "--scheme standard-webhooks",
            SW_SECRET,
            &standard,
            "webhook/standard-webhooks.json",
            Some(SW_TS),
            SW_ID,
        ),
        example(
            "--scheme stripe",
            STRIPE_SECRET,
            &[format!("Stripe-Signature: {STRIPE_HEADER}")],
            "webhook/stripe.json",
            Some(STRIPE_TS),
            "-",
        ),
        example(
            "--scheme github",
            GITHUB_SECRET,
            &[
                format!("X-Hub-Signature-256: {GITHUB_SIG}"),
                format!("X-GitHub-Delivery: {GITHUB_DELIVERY}"),
            ],
            "webhook/github.txt",
            None,
            GITHUB_DELIVERY,
        ),
        example(
            "--scheme slack",
            SLACK_SECRET,
            &slack_headers,
            "webhook/slack.txt",
            Some(SLACK_TS),
            "-",
        ),
        example(
            "--scheme shopify",
            SHOPIFY_SECRET,
            &[
                format!("X-Shopify-Hmac-Sha256: {SHOPIFY_SIG}"),
                format!("X-Shopify-Webhook-Id: {SHOPIFY_ID}"),
            ],
            "webhook/shopify.json",
            None,
            SHOPIFY_ID,
        ),
        example(
            SLACK_AS_HMAC,
            SLACK_SECRET,
            &slack_headers,
            "webhook/slack.txt",
            Some(SLACK_TS),
            "-",
        ),
        example(
            sha512,
            RFC4231_KEY,
            &[format!("X-Signature: {RFC4231_SHA512_HEX}")],
            "webhook/rfc4231.txt",
            None,
            "-",
        ),
        example(
            base64,
            RFC4231_KEY,
            &[format!("X-Signature: {RFC4231_SHA256_BASE64}")],
            "webhook/rfc4231.txt",
            None,
            "-",
        ),
    ]
}

/// A secret other than the example's, in the scheme's format, so that a verdict is about the
/// signature and not the secret's form.
fn other_secret(example: &Example) -> &'static str {
    if example.secret.starts_with("whsec_") {
        "whsec_b3RoZXIgc2VjcmV0"
    } else {
        "other secret"
    }
}

#[test]
fn each_published_example_is_valid_at_its_time() {
    for example in examples() {
        let run = example.verify(&[example.secret], &data(example.body), example.now(), &[]);
        assert_eq!(verdict(&run), (0, example.valid.as_str()), "{run:?}");
    }
}

#[test]
fn a_wrong_secret_or_a_changed_body_matches_no_signature() {
    let scratch = Scratch::new("tampered");
    for (i, example) in examples().iter().enumerate() {
        let body = data(example.body);
        let run = example.verify(&[other_secret(example)], &body, example.now(), &[]);
        assert_eq!(verdict(&run), (1, NO_MATCH), "{}", example.valid);
        let mut changed = std::fs::read(&body).unwrap();
        changed.push(b' ');
        let changed = scratch.file(&format!("{i}.body"), &changed);
        let run = example.verify(&[example.secret], &changed, example.now(), &[]);
        assert_eq!(verdict(&run), (1, NO_MATCH), "{}", example.valid);
    }
}

#[test]
fn a_timestamp_outside_the_tolerance_is_refused_unless_it_is_widened() {
    for example in examples() {
        let body = data(example.body);
        let Some(signed) = example.signed_at else {
            // No timestamp is signed: any time will do (replays are the store's business).
            let run = example.verify(&[example.secret], &body, 4_000_000_000, &[]);
            assert_eq!(run.code, 0, "{run:?}");
            continue;
        };
        let at = |now: i64, more: &str| example.verify(&[example.secret], &body, now, &words(more));
        assert_eq!(at(signed + 300, "").code, 0, "the default 300 s, inclusive");
        let expected = format!(
            "invalid: timestamp_too_old (the webhook's timestamp is older than the tolerance \
             allows; now {}, tolerance 300 s)\n",
            signed + 301
        );
        assert_eq!(verdict(&at(signed + 301, "")), (1, expected.as_str()));
        let ahead = at(signed - 301, "");
        assert_eq!(ahead.code, 1);
        assert!(
            ahead.stdout.starts_with("invalid: timestamp_in_future ("),
            "{ahead:?}"
        );
        assert_eq!(at(signed + 301, "--tolerance 301").code, 0);
        assert_eq!(at(signed - 3600, "--tolerance 3600").code, 0);
        assert_eq!(at(signed + 3601, "--tolerance 3600").code, 1);
    }
}

#[test]
fn a_rotated_secret_matches_second_and_says_so() {
    for example in examples() {
        let secrets = [other_secret(&example), example.secret];
        let run = example.verify(&secrets, &data(example.body), example.now(), &[]);
        let expected = example.valid.replace("secret=0", "secret=1");
        assert_eq!(verdict(&run), (0, expected.as_str()));
    }
}

#[test]
fn a_missing_or_repeated_header_is_named() {
    let slack = examples().swap_remove(3);
    let body = data(slack.body);
    let twice = ["--header", "x-slack-signature: v0=00"];
    let run = slack.verify(&[SLACK_SECRET], &body, SLACK_TS, &twice);
    let expected = "invalid: duplicate_header (the webhook's signature header appears more \
                    than once; header x-slack-signature)\n";
    assert_eq!(verdict(&run), (1, expected));
    let without_timestamp = Example {
        headers: vec![format!("X-Slack-Signature: {SLACK_SIG}")],
        ..slack
    };
    let run = without_timestamp.verify(&[SLACK_SECRET], &body, SLACK_TS, &[]);
    let expected = "invalid: missing_header (the webhook's timestamp header is missing; \
                    header x-slack-request-timestamp)\n";
    assert_eq!(verdict(&run), (1, expected));
}

/// `palisade webhook sign` with the scheme's flags, a secret, a body file and more flags.
fn sign(scheme: &str, secret: &str, body: &str, more: &[&str]) -> Run {
    let mut args = vec!["webhook", "sign"];
    args.extend(words(scheme));
    args.extend(["--secret", secret, "--body-file", body]);
    args.extend(more);
    palisade(&args)
}

#[test]
fn sign_prints_the_published_headers() {
    let at = |t: i64| format!("--now {t}");
    let stripe_v1 = &STRIPE_HEADER[..STRIPE_HEADER.find(",v0=").unwrap()];
    let cases = [
        (
            "--scheme standard-webhooks",
            SW_SECRET,
            "webhook/standard-webhooks.json",
            format!("--id {SW_ID} {}", at(SW_TS)),
            format!(
                "webhook-id: {SW_ID}\nwebhook-timestamp: {SW_TS}\nwebhook-signature: {SW_SIG}\n"
            ),
        ),
        (
            "--scheme stripe",
            STRIPE_SECRET,
            "webhook/stripe.json",
            at(STRIPE_TS),
            format!("stripe-signature: {stripe_v1}\n"),
        ),
        (
            "--scheme github",
            GITHUB_SECRET,
            "webhook/github.txt",
            format!("--id {GITHUB_DELIVERY}"),
            format!("x-hub-signature-256: {GITHUB_SIG}\nx-github-delivery: {GITHUB_DELIVERY}\n"),
        ),
        (
            "--scheme slack",
            SLACK_SECRET,
            "webhook/slack.txt",
            at(SLACK_TS),
            format!("x-slack-request-timestamp: {SLACK_TS}\nx-slack-signature: {SLACK_SIG}\n"),
        ),
        (
            "--scheme shopify",
            SHOPIFY_SECRET,
            "webhook/shopify.json",
            String::new(),
            format!("x-shopify-hmac-sha256: {SHOPIFY_SIG}\n"),
        ),
        (
            SLACK_AS_HMAC,
            SLACK_SECRET,
            "webhook/slack.txt",
            at(SLACK_TS),
            format!("x-slack-signature: {SLACK_SIG}\nx-slack-request-timestamp: {SLACK_TS}\n"),
        ),
    ];
    for (scheme, secret, body, more, expected) in cases {
        let run = sign(scheme, secret, &data(body), &words(&more));
        assert_eq!(verdict(&run), (0, expected.as_str()), "{run:?}");
    }
}

#[test]
fn sign_then_verify_round_trips_for_every_scheme_and_a_rotated_secret() {
    let scratch = Scratch::new("round-trip");
    // Bytes no text tool would keep as they are: a CR LF, a NUL, invalid UTF-8.
    let body = scratch.file("body", b"{\"a\": 1}\r\n\0\xff");
    let every_option = "--scheme hmac --signature-header X-Sig --algorithm sha512 \
        --encoding base64 --prefix v1= --timestamp-header X-Ts --id-header X-Id \
        --template {id}.{timestamp}.{body}";
    let schemes = [
        (
            "--scheme standard-webhooks",
            SW_SECRET,
            "whsec_b2xkIHNlY3JldA==",
        ),
        ("--scheme stripe", "whsec_stripe_test", "whsec_old"),
        ("--scheme github", "new secret", "old secret"),
        ("--scheme slack", "new secret", "old secret"),
        ("--scheme shopify", "new secret", "old secret"),
        (SLACK_AS_HMAC, "new secret", "old secret"),
        (every_option, "new secret", "old secret"),
    ];
    for (scheme, secret, old) in schemes {
        let signed = sign(scheme, secret, &body, &words("--id evt_1 --now 1700000000"));
        assert_eq!(signed.code, 0, "{signed:?}");
        let mut args = vec!["webhook", "verify"];
        args.extend(words(scheme));
        args.extend(["--secret", old, "--secret", secret, "--body-file", &body]);
        args.extend(["--now", "1700000000"]);
        for line in signed.stdout.lines() {
            args.extend(["--header", line]);
        }
        let run = palisade(&args);
        assert_eq!(run.code, 0, "{signed:?} {run:?}");
        assert!(run.stdout.ends_with(", secret=1\n"), "{run:?}");
    }
}

#[test]
fn verify_bad_usage_exits_2_naming_what_would_be_valid() {
    let scratch = Scratch::new("verify-usage");
    let body = data("webhook/github.txt");
    let missing = scratch.0.join("missing.txt").display().to_string();
    let header = format!("x-hub-signature-256: {GITHUB_SIG}");
    let hmac = "--scheme hmac --signature-header x-sig --secret s";
    let cases = [
        (
            words("--scheme svix --secret s"),
            "expected one of: standard-webhooks, stripe, github, slack, shopify, hmac",
        ),
        (
            vec![
                "--scheme", "github", "--secret", "s", "--header", "no colon",
            ],
            "\"name: value\"",
        ),
        (
            vec!["--scheme", "github", "--secret", "s", "--header", "x y: z"],
            "\"name: value\"",
        ),
        (
            words("--scheme standard-webhooks --secret not*base64"),
            "expected `whsec_` followed by base64",
        ),
        (
            vec!["--scheme", "github", "--secret", ""],
            "secrets[0] is empty",
        ),
        (
            words("--scheme github --secret s --prefix x"),
            "--prefix is an option of --scheme hmac",
        ),
        (
            words("--scheme hmac --secret s"),
            "--scheme hmac needs --signature-header",
        ),
        (
            [words(hmac), words("--algorithm sha1")].concat(),
            "expected one of: sha256, sha512",
        ),
        (
            [words(hmac), words("--timestamp-header x-ts")].concat(),
            "--template \"{body}\" does not sign {timestamp}",
        ),
        (words("--scheme github"), "--secret"),
    ];
    for (flags, expected) in cases {
        let mut args = vec![
            "webhook",
            "verify",
            "--body-file",
            &body,
            "--header",
            &header,
        ];
        args.extend(flags);
        assert_usage(&palisade(&args), expected);
    }
    let unreadable = [
        "webhook",
        "verify",
        "--scheme",
        "github",
        "--secret",
        "s",
        "--body-file",
        &missing,
    ];
    let expected = format!("--body-file {missing}: cannot read");
    assert_usage(&palisade(&unreadable), &expected);
}

#[test]
fn sign_bad_usage_exits_2_naming_what_would_be_valid() {
    let body = data("webhook/github.txt");
    let hmac = "--scheme hmac --signature-header x-sig";
    let cases = [
        (
            words("--scheme standard-webhooks"),
            "--scheme standard-webhooks signs the message id; give it with --id ID",
        ),
        (
            [
                words(hmac),
                words("--id-header x-id --template {id}.{body}"),
            ]
            .concat(),
            "--template signs {id}; give the message id with --id ID",
        ),
        (vec!["--scheme", "github", "--id", "has space"], "--id: "),
        (words("--scheme slack --now=-1"), "--now: "),
        (
            [words(hmac), words("--template {timestamp}.{body}")].concat(),
            "no --timestamp-header is set",
        ),
    ];
    for (flags, expected) in cases {
        // Valid as a Standard Webhooks secret and as raw text alike.
        assert_usage(&sign("", "whsec_c2VjcmV0", &body, &flags), expected);
    }
}
