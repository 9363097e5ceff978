//! What is settled at load (secrets, generic settings, names) and the replay keys.

use super::*;

// --- secrets and settings at load -----------------------------------------------------------

#[test]
fn bad_secrets_are_refused_at_load_without_showing_them() {
    let secret = "whsec_not*base64";
    let err = Verifier::new(&Spec::StandardWebhooks, &[SW_SECRET, secret]).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, SetupError::BadSecret { index: 1, .. }),
        "{err:?}"
    );
    assert!(
        text.contains("secrets[1]") && text.contains("whsec_"),
        "{text}"
    );
    assert!(!text.contains("not*base64"), "{text}");

    let none: [&str; 0] = [];
    assert_eq!(
        Verifier::new(&Spec::GitHub, &none).unwrap_err(),
        SetupError::NoSecrets
    );
    assert_eq!(
        Verifier::new(&Spec::GitHub, &["x", ""]).unwrap_err(),
        SetupError::EmptySecret { index: 1 }
    );
    assert_eq!(
        Verifier::new(&Spec::StandardWebhooks, &["whsec_"]).unwrap_err(),
        SetupError::EmptySecret { index: 0 }
    );
    // Stripe's secret is text, `whsec_` and all: not decoded, so never refused for it.
    assert!(Verifier::new(&Spec::Stripe, &["whsec_not*base64"]).is_ok());
}

#[test]
fn a_verifier_does_not_print_its_secrets() {
    let v = verifier(&Spec::GitHub, &[GITHUB_SECRET]);
    let shown = format!("{v:?}");
    assert!(!shown.contains("Secret to Everybody"), "{shown}");
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[test]
fn generic_settings_are_checked_at_load() {
    let spec = |f: fn(&mut HmacSpec)| {
        let mut s = HmacSpec::new("x-signature");
        f(&mut s);
        Verifier::new(&Spec::Hmac(s), &["k"]).map(|_| ())
    };
    let template = |e: Result<(), SetupError>| match e {
        Err(SetupError::Template { problem, .. }) => problem,
        other => panic!("{other:?}"),
    };
    assert!(template(spec(|s| s.template = Some("{ts}.{body}".into()))).contains("brace"));
    assert!(template(spec(|s| s.template = Some("{timestamp}".into()))).contains("{body}"));
    assert!(template(spec(|s| s.template = Some("{body}{body}".into()))).contains("once"));
    assert!(template(spec(|s| s.template = Some("{body}}".into()))).contains("brace"));
    assert!(template(spec(|s| s.template = Some("{id}.{body}".into()))).contains("id_header"));
    let unsigned_time = spec(|s| s.timestamp_header = Some("x-ts".into()));
    assert!(template(unsigned_time).contains("could be changed"));
    assert!(
        template(spec(|s| s.template = Some("{timestamp}.{body}".into())))
            .contains("no timestamp_header")
    );
    assert!(matches!(
        spec(|s| s.signature_header = "x signature".into()),
        Err(SetupError::HeaderName {
            field: "signature_header",
            ..
        })
    ));
    assert!(matches!(
        spec(|s| s.prefix = "sha256=\n".into()),
        Err(SetupError::Prefix)
    ));
    assert_eq!(
        Spec::try_from(Scheme::Hmac),
        Err(SetupError::HmacNeedsSettings)
    );
    assert_eq!(Spec::try_from(Scheme::Slack), Ok(Spec::Slack));
    let fine = spec(|s| {
        s.timestamp_header = Some("X-Ts".into());
        s.id_header = Some("X-Id".into());
        s.template = Some("{id}:{timestamp}:{body}".into());
    });
    assert_eq!(fine, Ok(()));
}

#[test]
fn a_generic_template_signs_what_it_names() {
    let spec = Spec::Hmac(HmacSpec {
        encoding: Encoding::Base64,
        prefix: "v1=".into(),
        timestamp_header: Some("X-Ts".into()),
        id_header: Some("X-Id".into()),
        template: Some("{id}|{timestamp}|{body}|end".into()),
        ..HmacSpec::new("X-Sig")
    });
    let headers = sign(&spec, "k", Some("evt_1"), 1_700_000_000, b"{}").unwrap();
    // Cross-checked: printf 'evt_1|1700000000|{}|end' | openssl dgst -sha256 -hmac k -binary | base64
    assert_eq!(
        headers[0],
        (
            "x-sig".into(),
            "v1=0wgQbBZaa0pk2mbt+ExYVFdIqH1pg/4Cb3uDx1F/7rs=".into()
        )
    );
    let v = verifier(&spec, &["k"]);
    let pairs: Vec<_> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let ok = check(&v, &pairs, b"{}", 1_700_000_000).unwrap();
    assert_eq!(ok.message_id.as_deref(), Some("evt_1"));
    // The id is signed: it cannot be left out or changed.
    assert_eq!(
        check(&v, &pairs[..2], b"{}", 1_700_000_000),
        Err(Failure::MissingHeader(Field::Id))
    );
    let changed = [pairs[0], pairs[1], ("x-id", "evt_2")];
    assert_eq!(
        check(&v, &changed, b"{}", 1_700_000_000),
        Err(Failure::NoMatchingSignature)
    );
    assert_eq!(sign(&spec, "k", None, 0, b"{}"), Err(SignError::MissingId));
}

// --- names and reasons ----------------------------------------------------------------------

#[test]
fn scheme_names_round_trip() {
    for scheme in Scheme::ALL {
        assert_eq!(scheme.as_str().parse::<Scheme>(), Ok(scheme));
    }
    let names = Scheme::ALL.map(Scheme::as_str);
    assert_eq!(
        names,
        [
            "standard-webhooks",
            "stripe",
            "github",
            "slack",
            "shopify",
            "hmac"
        ]
    );
    let err = "svix".parse::<Scheme>().unwrap_err().to_string();
    assert!(
        err.contains("\"svix\"") && err.contains("standard-webhooks, stripe"),
        "{err}"
    );
    assert_eq!("sha512".parse(), Ok(Algorithm::Sha512));
    assert_eq!("base64".parse(), Ok(Encoding::Base64));
    assert!("sha1".parse::<Algorithm>().is_err() && "b64".parse::<Encoding>().is_err());
}

#[test]
fn failure_reasons_are_stable_and_say_nothing_secret() {
    let all = [
        (Failure::MissingHeader(Field::Id), "missing_header"),
        (
            Failure::DuplicateHeader(Field::Signature),
            "duplicate_header",
        ),
        (
            Failure::HeaderTooLarge(Field::Signature),
            "header_too_large",
        ),
        (
            Failure::MalformedHeader(Field::Timestamp),
            "malformed_header",
        ),
        (Failure::TimestampTooOld, "timestamp_too_old"),
        (Failure::TimestampInFuture, "timestamp_in_future"),
        (Failure::NoMatchingSignature, "no_matching_signature"),
    ];
    for (failure, reason) in all {
        assert_eq!(failure.as_str(), reason);
        // The texts are fixed strings: no secret, no expected signature can be in them.
        let text = failure.to_string();
        assert!(
            !text.contains("757107") && !text.contains("Secret"),
            "{text}"
        );
    }
    assert_eq!(Failure::MissingHeader(Field::Id).field(), Some(Field::Id));
    assert_eq!(Failure::TimestampTooOld.field(), None);
}

// --- replay keys ----------------------------------------------------------------------------

#[test]
fn replay_keys_follow_what_is_signed() {
    let sw = verifier(&Spec::StandardWebhooks, &[SW_SECRET]);
    let ok = check(&sw, &as_refs(&sw_headers(SW_SIG)), SW_BODY, SW_TS).unwrap();
    let key = sw.replay_key(&ok);
    assert_eq!(key.key, format!("standard-webhooks:id:{SW_ID}"));
    assert_eq!(key.keep_for, Some(Duration::from_secs(601)));

    let stripe = verifier(&Spec::Stripe, &[STRIPE_SECRET]).with_tolerance(Duration::from_secs(60));
    let ok = check(
        &stripe,
        &[("stripe-signature", STRIPE_HEADER)],
        STRIPE_BODY.as_bytes(),
        STRIPE_TS,
    )
    .unwrap();
    let key = stripe.replay_key(&ok);
    assert_eq!(
        key.key,
        "stripe:1533204620:2220f87ef101a04665f11cdf77052314"
    );
    assert_eq!(key.keep_for, Some(Duration::from_secs(121)));

    // GitHub's delivery id is not signed: a replay with another id has the same key.
    let github = verifier(&Spec::GitHub, &[GITHUB_SECRET]);
    let keys: Vec<_> = ["id-1", "id-2"]
        .into_iter()
        .map(|id| {
            let headers = [
                ("x-hub-signature-256", GITHUB_SIG),
                ("x-github-delivery", id),
            ];
            github.replay_key(&check(&github, &headers, GITHUB_BODY, 0).unwrap())
        })
        .collect();
    assert_eq!(keys[0], keys[1]);
    assert_eq!(keys[0].key, "github:757107ea0eb2509fc211221cce984b8a");
    assert_eq!(keys[0].keep_for, None);
}
