//! The ways a request fails: wrong secret, changed body, time, headers, and what several
//! signatures or secrets change.

use super::*;

#[test]
fn a_wrong_secret_or_a_changed_body_matches_nothing() {
    for (spec, secret, headers, body, now) in examples() {
        let headers = as_refs(&headers);
        let right = verifier(&spec, &[secret]);
        assert!(check(&right, &headers, &body, now).is_ok(), "{spec:?}");
        // A Standard Webhooks secret must be base64; any other scheme takes any text.
        let wrong_secret = match spec {
            Spec::StandardWebhooks => "whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQ=",
            _ => "not-the-secret",
        };
        let wrong = verifier(&spec, &[wrong_secret]);
        assert_eq!(
            check(&wrong, &headers, &body, now),
            Err(Failure::NoMatchingSignature),
            "{spec:?}"
        );
        let mut tampered = body.clone();
        tampered[0] ^= 1;
        assert_eq!(
            check(&right, &headers, &tampered, now),
            Err(Failure::NoMatchingSignature),
            "{spec:?}"
        );
        let mut longer = body.clone();
        longer.push(b' ');
        assert_eq!(
            check(&right, &headers, &longer, now),
            Err(Failure::NoMatchingSignature),
            "{spec:?}"
        );
    }
}

#[test]
fn a_signed_id_cannot_be_changed() {
    let v = verifier(&Spec::StandardWebhooks, &[SW_SECRET]);
    let mut headers = sw_headers(SW_SIG);
    headers[0].1 = "msg_another".into();
    assert_eq!(
        check(&v, &as_refs(&headers), SW_BODY, SW_TS),
        Err(Failure::NoMatchingSignature)
    );
}

// --- time -----------------------------------------------------------------------------------

#[test]
fn the_tolerance_is_inclusive_in_both_directions() {
    for (spec, secret, headers, body, ts) in examples() {
        if matches!(spec, Spec::GitHub | Spec::Shopify) {
            continue;
        }
        let headers = as_refs(&headers);
        let v = verifier(&spec, &[secret]);
        let at = |now| check(&v, &headers, &body, now).map(|_| ());
        assert_eq!(at(ts + 300), Ok(()), "{spec:?}: exactly 5 minutes late");
        assert_eq!(at(ts + 301), Err(Failure::TimestampTooOld), "{spec:?}");
        assert_eq!(at(ts - 300), Ok(()), "{spec:?}: exactly 5 minutes early");
        assert_eq!(at(ts - 301), Err(Failure::TimestampInFuture), "{spec:?}");
        assert_eq!(at(i64::MAX), Err(Failure::TimestampTooOld), "{spec:?}");
        assert_eq!(at(i64::MIN), Err(Failure::TimestampInFuture), "{spec:?}");
    }
}

#[test]
fn a_configured_tolerance_has_the_same_boundary() {
    let v = verifier(&Spec::StandardWebhooks, &[SW_SECRET]).with_tolerance(Duration::from_secs(10));
    let owned = sw_headers(SW_SIG);
    let headers = as_refs(&owned);
    assert!(check(&v, &headers, SW_BODY, SW_TS + 10).is_ok());
    assert_eq!(
        check(&v, &headers, SW_BODY, SW_TS + 11),
        Err(Failure::TimestampTooOld)
    );
    assert!(check(&v, &headers, SW_BODY, SW_TS - 10).is_ok());
    assert_eq!(
        check(&v, &headers, SW_BODY, SW_TS - 11),
        Err(Failure::TimestampInFuture)
    );
    let exact = v.with_tolerance(Duration::ZERO);
    assert!(check(&exact, &headers, SW_BODY, SW_TS).is_ok());
    assert_eq!(
        check(&exact, &headers, SW_BODY, SW_TS + 1),
        Err(Failure::TimestampTooOld)
    );
}

#[test]
fn a_stale_request_is_refused_before_any_signature_is_read() {
    // The signature is garbage, but the timestamp decides first.
    let v = verifier(&Spec::StandardWebhooks, &[SW_SECRET]);
    let headers = sw_headers("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=");
    assert_eq!(
        check(&v, &as_refs(&headers), SW_BODY, SW_TS + 3600),
        Err(Failure::TimestampTooOld)
    );
}

// --- missing, malformed, duplicated headers -------------------------------------------------

#[test]
fn each_required_header_is_named_when_missing() {
    let cases = [
        (Spec::StandardWebhooks, "webhook-id", Field::Id),
        (
            Spec::StandardWebhooks,
            "webhook-timestamp",
            Field::Timestamp,
        ),
        (
            Spec::StandardWebhooks,
            "webhook-signature",
            Field::Signature,
        ),
        (Spec::Stripe, "stripe-signature", Field::Signature),
        (Spec::GitHub, "x-hub-signature-256", Field::Signature),
        (Spec::Slack, "x-slack-request-timestamp", Field::Timestamp),
        (Spec::Slack, "x-slack-signature", Field::Signature),
        (Spec::Shopify, "x-shopify-hmac-sha256", Field::Signature),
        (
            slack_spec_as_hmac(),
            "x-slack-request-timestamp",
            Field::Timestamp,
        ),
        (slack_spec_as_hmac(), "x-slack-signature", Field::Signature),
    ];
    let all = examples();
    for (spec, name, field) in cases {
        let (_, secret, headers, body, now) = all.iter().find(|e| e.0 == spec).unwrap();
        let v = verifier(&spec, &[secret]);
        let without: Vec<_> = as_refs(headers)
            .into_iter()
            .filter(|(n, _)| *n != name)
            .collect();
        assert_eq!(
            check(&v, &without, body, *now),
            Err(Failure::MissingHeader(field)),
            "{spec:?} without {name}"
        );
        assert_eq!(v.header_name(field), Some(name));
    }
}

#[test]
fn malformed_headers_are_refused() {
    let sw = verifier(&Spec::StandardWebhooks, &[SW_SECRET]);
    let with = |name: &'static str, value: &str| {
        let mut h = sw_headers(SW_SIG);
        h.iter_mut().find(|(n, _)| *n == name).unwrap().1 = value.into();
        check(&sw, &as_refs(&h), SW_BODY, SW_TS)
    };
    let malformed = |field| Err(Failure::MalformedHeader(field));
    for ts in [
        "hello",
        "-1614265330",
        "+1614265330",
        "1614265330.5",
        "1e9",
        "9999999999999999999",
    ] {
        assert_eq!(
            with("webhook-timestamp", ts),
            malformed(Field::Timestamp),
            "{ts}"
        );
    }
    for id in ["msg id", "msg\u{e9}", "msg\tid"] {
        assert_eq!(with("webhook-id", id), malformed(Field::Id), "{id:?}");
    }
    assert_eq!(with("webhook-id", &"m".repeat(257)), malformed(Field::Id));
    // From the Standard Webhooks tests: an invalid and a partial signature.
    for sig in ["v1,dawfeoifkpqwoekfpqoekf", "v1,", &SW_SIG[..8], "v1,!!!!"] {
        let got = with("webhook-signature", sig);
        assert!(
            matches!(
                got,
                Err(Failure::MalformedHeader(_) | Failure::NoMatchingSignature)
            ),
            "{sig}: {got:?}"
        );
    }
    assert_eq!(
        with("webhook-signature", "   "),
        malformed(Field::Signature)
    );

    let stripe = verifier(&Spec::Stripe, &[STRIPE_SECRET]);
    // From stripe-dotnet's ValidateSignatureHandlesIncorrectHeaderValues, and a second `t`.
    for header in [
        "t=,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7",
        "t,v1=,v0=",
        "t,,",
        ",,",
        "t",
        "v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7",
        "t=1533204620,t=1533204620,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7",
    ] {
        let got = check(
            &stripe,
            &[("stripe-signature", header)],
            STRIPE_BODY.as_bytes(),
            STRIPE_TS,
        );
        assert!(
            matches!(got, Err(Failure::MalformedHeader(_))),
            "{header}: {got:?}"
        );
    }
    // A v1 that is not 64 hex digits.
    let short = "t=1533204620,v1=2220f87e";
    let got = check(
        &stripe,
        &[("stripe-signature", short)],
        STRIPE_BODY.as_bytes(),
        STRIPE_TS,
    );
    assert_eq!(got, malformed(Field::Signature));

    let github = verifier(&Spec::GitHub, &[GITHUB_SECRET]);
    for sig in [
        &GITHUB_SIG["sha256=".len()..],
        "sha1=757107ea",
        "sha256=zz",
        "sha256=",
    ] {
        let got = check(&github, &[("x-hub-signature-256", sig)], GITHUB_BODY, 0);
        assert_eq!(got, malformed(Field::Signature), "{sig}");
    }
    let slack = verifier(&Spec::Slack, &[SLACK_SECRET]);
    let bare = &SLACK_SIG["v0=".len()..];
    let got = check(
        &slack,
        &[
            ("x-slack-request-timestamp", "1531420618"),
            ("x-slack-signature", bare),
        ],
        SLACK_BODY,
        SLACK_TS,
    );
    assert_eq!(got, malformed(Field::Signature));
    let shopify = verifier(&Spec::Shopify, &[SHOPIFY_SECRET]);
    let hex = "827e2c1c75848ea3334b6ebabddf969a1a541cfc904040e1252dcb26e495a426";
    let got = check(&shopify, &[("x-shopify-hmac-sha256", hex)], SHOPIFY_BODY, 0);
    assert_eq!(got, malformed(Field::Signature));
}

#[test]
fn a_repeated_header_is_ambiguous() {
    for (spec, secret, headers, body, now) in examples() {
        let v = verifier(&spec, &[secret]);
        for (i, line) in headers.iter().enumerate() {
            let mut doubled = as_refs(&headers);
            doubled.insert(i, (line.0, line.1.as_str()));
            let got = check(&v, &doubled, &body, now);
            assert!(
                matches!(got, Err(Failure::DuplicateHeader(_))),
                "{spec:?} {}: {got:?}",
                line.0
            );
        }
    }
    // Also when the names differ only in case.
    let v = verifier(&Spec::GitHub, &[GITHUB_SECRET]);
    let headers = [
        ("X-Hub-Signature-256", GITHUB_SIG),
        ("x-hub-signature-256", GITHUB_SIG),
    ];
    assert_eq!(
        check(&v, &headers, GITHUB_BODY, 0),
        Err(Failure::DuplicateHeader(Field::Signature))
    );
    // And for an optional header.
    let headers = [
        ("x-hub-signature-256", GITHUB_SIG),
        ("x-github-delivery", "a"),
        ("x-github-delivery", "b"),
    ];
    assert_eq!(
        check(&v, &headers, GITHUB_BODY, 0),
        Err(Failure::DuplicateHeader(Field::Id))
    );
}

#[test]
fn a_header_map_is_read_the_same_way() {
    let v = verifier(&Spec::GitHub, &[GITHUB_SECRET]);
    let mut map = http::HeaderMap::new();
    map.insert(
        "X-Hub-Signature-256",
        http::HeaderValue::from_static(GITHUB_SIG),
    );
    assert!(v.verify(&map, GITHUB_BODY, 0).is_ok());
    map.append(
        "x-hub-signature-256",
        http::HeaderValue::from_static(GITHUB_SIG),
    );
    assert_eq!(
        v.verify(&map, GITHUB_BODY, 0),
        Err(Failure::DuplicateHeader(Field::Signature))
    );
}

#[test]
fn the_codecs_header_lines_are_read_the_same_way() {
    use crate::pipeline::head::Line;
    let v = verifier(&Spec::GitHub, &[GITHUB_SECRET]);
    let lines = [Line::new(b"X-Hub-Signature-256", GITHUB_SIG.as_bytes())];
    assert!(v.verify(&lines[..], GITHUB_BODY, 0).is_ok());
}

#[test]
fn header_values_are_bounded() {
    let v = verifier(&Spec::StandardWebhooks, &[SW_SECRET]);
    // 4096 bytes is read (and found wanting); 4097 is not read at all.
    let padded = format!("{SW_SIG}{}", " ".repeat(MAX_HEADER_BYTES - SW_SIG.len()));
    assert!(check(&v, &as_refs(&sw_headers(&padded)), SW_BODY, SW_TS).is_ok());
    let over = format!("{padded} ");
    assert_eq!(
        check(&v, &as_refs(&sw_headers(&over)), SW_BODY, SW_TS),
        Err(Failure::HeaderTooLarge(Field::Signature))
    );
}

// --- several signatures, several secrets ----------------------------------------------------

#[test]
fn one_valid_signature_among_several_is_enough() {
    // From the Standard Webhooks tests ("multi sig payload is valid").
    let v = verifier(&Spec::StandardWebhooks, &[SW_SECRET]);
    let other = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
    let sigs = format!("v1,{other} v2,{other} {SW_SIG} v1,{other}");
    assert!(check(&v, &as_refs(&sw_headers(&sigs)), SW_BODY, SW_TS).is_ok());

    let stripe = verifier(&Spec::Stripe, &[STRIPE_SECRET]);
    let wrong = "deadbeef".repeat(8);
    let header = STRIPE_HEADER.replace("t=1533204620,", &format!("t=1533204620,v1={wrong},"));
    let headers = [("stripe-signature", header.as_str())];
    assert!(check(&stripe, &headers, STRIPE_BODY.as_bytes(), STRIPE_TS).is_ok());
}

#[test]
fn signatures_of_other_versions_are_not_read() {
    // `v1a` is ed25519 (Standard Webhooks), `v0` Stripe's test mode: neither can match.
    let v = verifier(&Spec::StandardWebhooks, &[SW_SECRET]);
    let sig = SW_SIG.replacen("v1,", "v1a,", 1);
    assert_eq!(
        check(&v, &as_refs(&sw_headers(&sig)), SW_BODY, SW_TS),
        Err(Failure::NoMatchingSignature)
    );
    let stripe = verifier(&Spec::Stripe, &[STRIPE_SECRET]);
    let v0_only =
        "t=1533204620,v0=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7";
    let got = check(
        &stripe,
        &[("stripe-signature", v0_only)],
        STRIPE_BODY.as_bytes(),
        STRIPE_TS,
    );
    assert_eq!(got, Err(Failure::NoMatchingSignature));
}

#[test]
fn at_most_sixteen_signatures_are_read() {
    let v = verifier(&Spec::StandardWebhooks, &[SW_SECRET]);
    let other = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
    let mut sigs = vec![other; MAX_SIGNATURES - 1];
    sigs.push(SW_SIG);
    assert!(check(&v, &as_refs(&sw_headers(&sigs.join(" "))), SW_BODY, SW_TS).is_ok());
    sigs.insert(0, other);
    assert_eq!(
        check(&v, &as_refs(&sw_headers(&sigs.join(" "))), SW_BODY, SW_TS),
        Err(Failure::MalformedHeader(Field::Signature))
    );
}

#[test]
fn any_configured_secret_may_match() {
    for (spec, secret, headers, body, now) in examples() {
        let old = match spec {
            Spec::StandardWebhooks => "whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQ=",
            _ => "the-old-secret",
        };
        let v = verifier(&spec, &[old, secret]);
        let ok = check(&v, &as_refs(&headers), &body, now).unwrap();
        assert_eq!(ok.secret_index, 1, "{spec:?}");
        let v = verifier(&spec, &[secret, old]);
        assert_eq!(
            check(&v, &as_refs(&headers), &body, now)
                .unwrap()
                .secret_index,
            0
        );
    }
}
