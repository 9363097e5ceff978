//! Tests of the whole loading pipeline through the public API.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(text: &str, vars: &[(&str, &str)]) -> LoadedConfig {
    match load_str("palisade.toml", text, &env(vars)) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("expected a valid config, got:\n{errors}"),
    }
}

fn errors(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match load_str("palisade.toml", text, &env(vars)) {
        Ok(_) => panic!("expected errors"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = r#"
[upstreams.app]
endpoints = ["127.0.0.1:3000"]

[[routes]]
name = "default"
upstream = "app"
"#;

/// A route to upstream "app", for tests about other sections (a config needs a route).
const ROUTE: &str = "\n[[routes]]\nname = \"default\"\nupstream = \"app\"\n";

// The five messages the product's integration tests assert too.

#[test]
fn syntax_error_names_the_line() {
    let text = "[server]\nlisten = \"0.0.0.0:8080\nhttp2 = true\n";
    assert_eq!(
        errors(text, &[]),
        ["palisade.toml:2: invalid TOML at column 23: invalid basic string, expected '\"'"]
    );
}

#[test]
fn unknown_field_lists_the_valid_ones() {
    let text = format!("[server]\nlistn = \"0.0.0.0:8080\"\n{MINIMAL}");
    assert_eq!(
        errors(&text, &[]),
        [
            "palisade.toml:2: server: unknown field \"listn\"; valid fields: listen, \
             worker_threads, trusted_proxies, header_read_timeout, keepalive_timeout, http2, direct_path, request_body_timeout, send_timeout, max_connections, max_connections_per_ip"
        ]
    );
}

#[test]
fn dangling_upstream_lists_the_defined_ones() {
    let text = r#"
[upstreams.app]
endpoints = ["127.0.0.1:3000"]

[upstreams.billing]
endpoints = ["127.0.0.1:3001"]

[[routes]]
name = "api"
path = "/api"
upstream = "ap"
"#;
    assert_eq!(
        errors(text, &[]),
        [
            "palisade.toml:11: routes[0].upstream: route \"api\" refers to upstream \"ap\", \
             which is not defined; defined upstreams: app, billing"
        ]
    );
}

#[test]
fn a_duration_no_deadline_could_hold_is_refused() {
    // `now + request_body_timeout` would overflow the clock and panic a connection.
    let text = r#"
[server]
request_body_timeout = "18446744073709551615s"

[upstreams.app]
endpoints = ["127.0.0.1:3000"]

[[routes]]
name = "api"
upstream = "app"
"#;
    assert_eq!(
        errors(text, &[]),
        [
            "palisade.toml:3: server.request_body_timeout: duration \"18446744073709551615s\" \
             is longer than the longest accepted, 365 days"
        ]
    );
}

#[test]
fn bad_duration_says_what_is_valid() {
    let text = r#"
[upstreams.app]
endpoints = ["127.0.0.1:3000"]

[[routes]]
name = "api"
upstream = "app"
timeout = "3 parsecs"
"#;
    assert_eq!(
        errors(text, &[]),
        [
            "palisade.toml:8: routes[0].timeout: invalid duration \"3 parsecs\" (unknown time \
             unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, \
             months, years (and few variations)); expected a number and a unit such as \
             \"500ms\", \"30s\", \"5m\" or \"1h\""
        ]
    );
}

#[test]
fn missing_env_secret_names_the_variable() {
    let text = r#"
[upstreams.app]
endpoints = ["127.0.0.1:3000"]
request_headers = { Authorization = "${env:APP_TOKEN}" }
"#
    .to_owned()
        + ROUTE;
    assert_eq!(
        errors(&text, &[]),
        [
            "palisade.toml:4: upstreams.app.request_headers.Authorization: environment variable \
             \"APP_TOKEN\" is not set; set it or change the reference"
        ]
    );
}

#[test]
fn reports_errors_from_every_section_at_once() {
    let text = r#"
[server]
listen = "localhost:8080"

[log]
format = "xml"

[audit]
sink = "file"

[upstreams.app]
endpoints = ["https://app:443"]

[upstreams.web]
endpoints = []
bogus = 1

[[routes]]
name = "API"
upstream = "nope"

[[routes]]
name = "ok"
upstream = "app"
timeout = "0s"
"#;
    let all = errors(text, &[]);
    let expected = [
        "palisade.toml:3: server.listen: invalid address \"localhost:8080\"",
        "palisade.toml:6: log.format: invalid value \"xml\"; valid values: json, pretty",
        "palisade.toml:8: audit.path: audit.sink = \"file\" needs audit.path",
        "palisade.toml:12: upstreams.app.endpoints[0]: invalid endpoint \"https://app:443\": https upstreams are not supported yet",
        "palisade.toml:16: upstreams.web: unknown field \"bogus\"; valid fields: endpoints,",
        "palisade.toml:19: routes[0].name: invalid route name \"API\"",
        "palisade.toml:20: routes[0].upstream: route \"API\" refers to upstream \"nope\", which is not defined; defined upstreams: app, web",
        "palisade.toml:25: routes[1].timeout: must be longer than 0",
    ];
    assert_eq!(all.len(), expected.len(), "{all:#?}");
    for (got, want) in all.iter().zip(expected) {
        assert!(got.starts_with(want), "{got:?} should start with {want:?}");
    }
}

#[test]
fn env_overrides_listen_endpoints_and_more() {
    let loaded = load(
        MINIMAL,
        &[
            ("PALISADE_SERVER__LISTEN", "127.0.0.1:8081"),
            (
                "PALISADE_UPSTREAMS__APP__ENDPOINTS",
                r#"["127.0.0.1:3001"]"#,
            ),
            ("PALISADE_LOG__FORMAT", "pretty"),
            ("PALISADE_LIFECYCLE__DRAIN_DELAY", "0s"),
            ("PALISADE_SERVER__WORKER_THREADS", "4"),
            ("PALISADE_CONFIG", "/etc/palisade/palisade.toml"),
            ("HOME", "/root"),
        ],
    );
    let config = loaded.config;
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8081");
    assert_eq!(config.upstreams["app"].endpoints, ["127.0.0.1:3001"]);
    assert_eq!(config.log.format, LogFormat::Pretty);
    assert!(config.lifecycle.drain_delay.get().is_zero());
    assert_eq!(config.server.worker_threads, 4);
}

#[test]
fn env_override_creates_missing_tables() {
    let loaded = load(
        ROUTE,
        &[(
            "PALISADE_UPSTREAMS__APP__ENDPOINTS",
            r#"["127.0.0.1:3001"]"#,
        )],
    );
    assert_eq!(loaded.config.upstreams["app"].endpoints, ["127.0.0.1:3001"]);
}

#[test]
fn env_override_into_unknown_field_names_the_variable() {
    assert_eq!(
        errors(MINIMAL, &[("PALISADE_SERVER__LISTN", "127.0.0.1:8081")]),
        [
            "env PALISADE_SERVER__LISTN: server: unknown field \"listn\"; valid fields: listen, \
             worker_threads, trusted_proxies, header_read_timeout, keepalive_timeout, http2, direct_path, request_body_timeout, send_timeout, max_connections, max_connections_per_ip"
        ]
    );
    assert_eq!(
        errors(MINIMAL, &[("PALISADE_SERVR__LISTEN", "127.0.0.1:8081")]),
        [
            "env PALISADE_SERVR__LISTEN: unknown field \"servr\"; valid fields: mode, server, ops, log, \
             audit, lifecycle, upstreams, redis, rate_limits, auth, routes, databases, jobs"
        ]
    );
    let bad_value = errors(MINIMAL, &[("PALISADE_LIFECYCLE__GRACE_PERIOD", "soon")]);
    assert_eq!(bad_value.len(), 1);
    assert!(
        bad_value[0].starts_with(
            "env PALISADE_LIFECYCLE__GRACE_PERIOD: lifecycle.grace_period: invalid duration \"soon\""
        ),
        "{bad_value:?}"
    );
}

#[test]
fn env_override_into_routes_is_refused_by_name() {
    assert_eq!(
        errors(MINIMAL, &[("PALISADE_ROUTES__0__TIMEOUT", "5s")]),
        [
            "env PALISADE_ROUTES__0__TIMEOUT: routes.0.timeout: routes cannot be overridden from \
             the environment (PALISADE_ROUTES__0__TIMEOUT): routes is a list and overrides do not \
             index into lists; change the config file instead"
        ]
    );
}

#[test]
fn env_secret_is_resolved() {
    let text = r#"
[upstreams.app]
endpoints = ["127.0.0.1:3000"]
request_headers = { Authorization = "${env:APP_TOKEN}", X-Static = "literal" }
"#
    .to_owned()
        + ROUTE;
    let loaded = load(&text, &[("APP_TOKEN", "Bearer hunter2")]);
    let headers = &loaded.config.upstreams["app"].request_headers;
    assert_eq!(headers["Authorization"].expose(), "Bearer hunter2");
    assert_eq!(headers["X-Static"].expose(), "literal");

    let from_env = load(
        MINIMAL,
        &[
            (
                "PALISADE_UPSTREAMS__APP__REQUEST_HEADERS__AUTHORIZATION",
                "${env:APP_TOKEN}",
            ),
            ("APP_TOKEN", "Bearer hunter2"),
        ],
    );
    let headers = &from_env.config.upstreams["app"].request_headers;
    assert_eq!(headers["authorization"].expose(), "Bearer hunter2");
}

#[test]
fn file_secret_is_read_without_its_trailing_newline() {
    let path = std::env::temp_dir().join(format!("palisade-secret-{}", std::process::id()));
    std::fs::write(&path, "from-a-file\n").unwrap();
    let text = format!(
        "[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n\
         request_headers = {{ X-Key = \"${{file:{}}}\" }}\n{ROUTE}",
        path.display()
    );
    let loaded = load(&text, &[]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        loaded.config.upstreams["app"].request_headers["X-Key"].expose(),
        "from-a-file"
    );

    let missing = format!(
        "[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n\
         request_headers = {{ X-Key = \"${{file:/nonexistent/palisade/key}}\" }}\n{ROUTE}"
    );
    assert_eq!(
        errors(&missing, &[]),
        [
            "palisade.toml:3: upstreams.app.request_headers.X-Key: cannot read secret file \
             \"/nonexistent/palisade/key\": not found"
        ]
    );
    let unsupported = format!(
        "[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n\
         request_headers = {{ X-Key = \"${{vault:kv/key}}\" }}\n{ROUTE}"
    );
    let message = &errors(&unsupported, &[])[0];
    assert!(message.contains("\"${env:NAME}\""), "{message}");
    assert!(message.contains("\"${file:/path}\""), "{message}");
}

#[test]
fn secret_values_never_reach_errors_or_debug_output() {
    let text = r#"
[server]
listn = 1

[upstreams.app]
endpoints = ["127.0.0.1:3000"]
request_headers = { Authorization = "${env:APP_TOKEN}", X-Literal = "hunter3", X-Bad = "${env:BAD}" }

[[routes]]
name = "default"
upstream = "app"
"#;
    let vars = [
        ("APP_TOKEN", "hunter2"),
        ("BAD", "hunter4\r\nX-Injected: 1"),
    ];
    let all = errors(text, &vars).join("\n");
    assert!(all.contains("upstreams.app.request_headers.X-Bad"), "{all}");
    for secret in ["hunter2", "hunter3", "hunter4"] {
        assert!(!all.contains(secret), "{all}");
    }

    let text = text
        .replace("listn = 1", "")
        .replace(", X-Bad = \"${env:BAD}\"", "");
    let loaded = load(&text, &vars);
    let dump = format!(
        "{loaded:?} {}",
        serde_json::to_string(&loaded.config).unwrap()
    );
    assert!(dump.contains("[redacted]"));
    for secret in ["hunter2", "hunter3"] {
        assert!(!dump.contains(secret), "{dump}");
    }
}

#[test]
fn example_validates() {
    let loaded = load(EXAMPLE, &[]);
    let config = loaded.config;
    assert_eq!(config.upstreams.len(), 1);
    assert_eq!(config.upstreams["app"].endpoints, ["127.0.0.1:3000"]);
    assert_eq!(config.routes.len(), 2);
    assert_eq!(config.routes[0].path, "/api");
    assert_eq!(config.routes[1].path, "/");
    assert_eq!(config.routes[0].rate_limits, ["per-ip"]);
    assert_eq!(config.rate_limits["per-ip"].burst, Some(20));
    assert!(EXAMPLE.contains("${env:APP_TOKEN}"));
    // The example's values are the defaults wherever it does not say otherwise.
    assert_eq!(config.server.listen, defaults().config.server.listen);
    assert_eq!(config.lifecycle, LifecycleConfig::default());
}

#[test]
fn rate_limit_mistakes_name_the_field_and_what_is_valid() {
    let text = r#"
[upstreams.app]
endpoints = ["127.0.0.1:3000"]

[rate_limits.per-ip]
key = "cookie:session"
limit = 0
per = "0s"
burst = 0
backend = "redis"

[rate_limits.tiered]
limit = 10
per = "1m"
[rate_limits.tiered.tiers.pro]
limit = 100

[[routes]]
name = "api"
upstream = "app"
rate_limits = ["per-ip", "per-user"]
"#;
    assert_eq!(
        errors(text, &[]),
        [
            "palisade.toml:6: rate_limits.per-ip.key: key \"cookie:session\" is not a key; valid \
             keys: \"client_ip\", \"header:NAME\", \"route\", \"identity\", \"api_key\"",
            "palisade.toml:7: rate_limits.per-ip.limit: must be at least 1 request per `per`; to \
             refuse every request, leave the route out",
            "palisade.toml:8: rate_limits.per-ip.per: must be longer than 0, e.g. \"500ms\" or \"30s\"",
            "palisade.toml:9: rate_limits.per-ip.burst: must be at least 1 (1 spaces requests \
             evenly); leave it out for `limit`",
            "palisade.toml:10: rate_limits.per-ip.backend: backend \"redis\" needs a [redis] \
             section with the server's url, e.g. url = \"redis://127.0.0.1:6379\"",
            "palisade.toml:15: rate_limits.tiered.tiers: tiers need a tier_header naming the request \
             header that selects the tier, e.g. \"x-plan\", or key = \"identity\" so the verified \
             caller's tier selects it",
            "palisade.toml:21: routes[0].rate_limits[1]: route \"api\" refers to rate-limit policy \
             \"per-user\", which is not defined; defined policies: per-ip, tiered",
        ]
    );
}

#[test]
fn a_media_type_with_parameters_or_no_subtype_is_refused() {
    let text = r#"
[upstreams.app]
endpoints = ["127.0.0.1:3000"]

[[routes]]
name = "api"
upstream = "app"
content_types = ["application/json", "text/*", "application/json; charset=utf-8", "json", "*/*"]
"#;
    let expected: Vec<String> = [2, 3, 4]
        .iter()
        .map(|i| {
            let media = ["application/json; charset=utf-8", "json", "*/*"][i - 2];
            format!(
                "palisade.toml:8: routes[0].content_types[{i}]: invalid media type {media:?}; \
                 write a type and subtype without parameters, e.g. \"application/json\", or \
                 \"text/*\" for any subtype"
            )
        })
        .collect();
    assert_eq!(errors(text, &[]), expected);
}

#[test]
fn the_redis_url_is_a_secret_and_must_be_redis() {
    let text = r#"
[redis]
url = "${env:REDIS_URL}"
timeout = "0s"

[upstreams.app]
endpoints = ["127.0.0.1:3000"]

[[routes]]
name = "api"
upstream = "app"
"#;
    let loaded = load(
        &text.replace("\"0s\"", "\"50ms\""),
        &[("REDIS_URL", "redis://:hunter2@cache:6379")],
    );
    let redis = loaded.config.redis.as_ref().expect("a redis section");
    assert_eq!(redis.url.expose(), "redis://:hunter2@cache:6379");
    assert_eq!(redis.prefix, "palisade");
    assert!(!format!("{:?}", loaded.config).contains("hunter2"));
    assert_eq!(
        errors(text, &[("REDIS_URL", "http://cache:6379")]),
        [
            "palisade.toml:3: redis.url: expected a redis:// URL, e.g. \"redis://127.0.0.1:6379\" \
             (TLS, rediss://, is not available yet)",
            "palisade.toml:4: redis.timeout: must be longer than 0, e.g. \"500ms\" or \"30s\""
        ]
    );
}

#[test]
fn security_header_values_are_checked() {
    let text = r#"
[upstreams.app]
endpoints = ["127.0.0.1:3000"]

[[routes]]
name = "api"
upstream = "app"
hsts = "includeSubDomains"
frame_options = "ALLOW-FROM https://x"
"#;
    assert_eq!(
        errors(text, &[]),
        [
            "palisade.toml:8: routes[0].hsts: invalid Strict-Transport-Security value \
             \"includeSubDomains\"; it starts with max-age=SECONDS, e.g. \"max-age=31536000; \
             includeSubDomains\"",
            "palisade.toml:9: routes[0].frame_options: invalid X-Frame-Options value \
             \"ALLOW-FROM https://x\"; expected \"DENY\" or \"SAMEORIGIN\""
        ]
    );
}

#[test]
fn a_json_schema_file_must_exist_and_be_a_schema() {
    let dir = std::env::temp_dir();
    let not_schema = dir.join(format!("palisade-not-schema-{}.json", std::process::id()));
    std::fs::write(&not_schema, r#"{"type": 7}"#).unwrap();
    let text = format!(
        "[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n\n[[routes]]\nname = \"a\"\nupstream = \"app\"\njson_schema = \"/nonexistent/order.json\"\n\n[[routes]]\nname = \"b\"\nupstream = \"app\"\njson_schema = {:?}\n",
        not_schema.display().to_string()
    );
    let found = errors(&text, &[]);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("palisade.toml:7: routes[0].json_schema: cannot read the JSON Schema file \"/nonexistent/order.json\""), "{}", found[0]);
    assert!(
        found[1].contains("routes[1].json_schema: the JSON Schema file")
            && found[1].contains("is not a valid schema"),
        "{}",
        found[1]
    );
}

#[test]
fn json_schema_is_json_with_descriptions() {
    let schema: serde_json::Value = serde_json::from_str(&json_schema()).unwrap();
    assert!(schema.is_object());
    assert!(
        json_schema().contains("Address and port the proxy listens on"),
        "field doc comments become descriptions"
    );
}

#[test]
fn version_is_stable_and_tracks_content() {
    let a = load(MINIMAL, &[]);
    let b = load(MINIMAL, &[]);
    assert_eq!(a.version, b.version);
    assert_eq!(a.version.len(), 12);
    assert!(a.version.chars().all(|c| c.is_ascii_hexdigit()));
    let c = load(MINIMAL, &[("PALISADE_LOG__LEVEL", "debug")]);
    assert_ne!(a.version, c.version);
    assert_eq!(a.source, "palisade.toml");
}

#[test]
fn defaults_fill_every_section_a_file_leaves_out() {
    let minimal = load(MINIMAL, &[]).config;
    let mut expected = defaults().config;
    expected.upstreams = minimal.upstreams.clone();
    expected.routes = minimal.routes.clone();
    assert_eq!(expected, minimal);
}

#[test]
fn a_config_without_routes_is_refused_with_an_example_route() {
    // An empty file used to validate and then answer every request with 404.
    let expected = "palisade.toml: routes: no routes are defined, so every request would get \
                    404; add at least one, e.g. [[routes]] with name = \"default\", path = \"/\", \
                    upstream = \"app\" (an upstream defined under [upstreams.app])";
    assert_eq!(errors("", &[]), [expected]);
    let billing = "[upstreams.billing]\nendpoints = [\"127.0.0.1:3001\"]\n";
    assert_eq!(errors(billing, &[]), [expected.replace("app", "billing")]);
    // Routes that are there but unreadable are reported once, as unreadable.
    let all = errors("routes = 1\n", &[]);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(all[0].contains("expected an array of tables"), "{all:#?}");
}

#[test]
fn load_file_reads_the_file_and_reports_a_missing_one() {
    let path = std::env::temp_dir().join(format!("palisade-config-{}.toml", std::process::id()));
    std::fs::write(&path, MINIMAL).unwrap();
    let loaded = load_file(&path);
    std::fs::remove_file(&path).unwrap();
    let loaded = loaded.unwrap();
    assert_eq!(loaded.source, path.display().to_string());
    assert_eq!(loaded.config.routes[0].name, "default");

    let missing = load_file(std::path::Path::new("/nonexistent/palisade.toml")).unwrap_err();
    assert_eq!(missing.len(), 1);
    assert!(
        missing
            .to_string()
            .starts_with("/nonexistent/palisade.toml: cannot read")
    );
}

#[test]
fn junk_input_never_panics() {
    const PIECES: &[&str] = &[
        "[server]",
        "[[routes]]",
        "[upstreams.app]",
        "[upstreams.",
        "listen",
        "=",
        " = ",
        "\"",
        "'",
        "${env:X}",
        "${file:}",
        "\n",
        "[",
        "]",
        "{",
        "}",
        ",",
        "1",
        "-1",
        "3.5",
        "true",
        "\"0.0.0.0:8080\"",
        "endpoints",
        "name",
        "upstream",
        "timeout",
        "\"3 parsecs\"",
        "é",
        "\u{0}",
        "\r\n",
        "#",
        "=[",
        "x.y.z",
        "\"\"\"",
        "1979-05-27",
        "inf",
        "routes",
        "\\",
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let len = (next() % 24) as usize;
        let text: String = (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        let key = PIECES[(next() % PIECES.len() as u64) as usize].to_uppercase();
        let vars = env(&[
            (&format!("PALISADE_{key}"), &text),
            ("PALISADE_SERVER__LISTEN", PIECES[(next() % 8) as usize]),
        ]);
        let _ = load_str("junk.toml", &text, &vars);
        let _ = load_str("junk.toml", MINIMAL, &vars);
    }
}

#[test]
fn type_errors_say_what_would_be_valid() {
    let text = "[[routes]]\nname = \"a\"\nupstream = \"app\"\nmax_request_body = true\n";
    let all = errors(
        text,
        &[("PALISADE_UPSTREAMS__APP__ENDPOINTS", "127.0.0.1:1")],
    );
    assert_eq!(
        all,
        [
            "palisade.toml:4: routes[0].max_request_body: invalid size; expected a number of \
             bytes or a number and a unit such as \"512KiB\" or \"10MiB\"",
            "env PALISADE_UPSTREAMS__APP__ENDPOINTS: upstreams.app.endpoints: invalid type: \
             string \"127.0.0.1:1\", expected an array such as [\"a\", \"b\"]",
        ]
    );
}

#[test]
fn request_headers_palisade_manages_are_refused_in_any_case() {
    let text = r#"
[upstreams.app]
endpoints = ["127.0.0.1:3000"]

[upstreams.app.request_headers]
host = "evil.example"
X-FORWARDED-FOR = "10.0.0.1"
Transfer-Encoding = "chunked"
X_Api_Key = "k"
Authorization = "Bearer ok"

[[routes]]
name = "default"
upstream = "app"
"#;
    let all = errors(text, &[]);
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(
        all[0].starts_with(
            "palisade.toml:6: upstreams.app.request_headers.host: header \"host\" cannot be set \
             here: Palisade forwards the Host the client sent;"
        ),
        "{all:#?}"
    );
    assert!(
        all[1].contains("X-FORWARDED-FOR: header \"X-FORWARDED-FOR\" cannot be set here: Palisade sets the forwarding headers"),
        "{all:#?}"
    );
    assert!(all[2].contains("hop-by-hop"), "{all:#?}");
    assert!(all[3].contains("names with \"_\" are refused"), "{all:#?}");
    assert!(MANAGED_REQUEST_HEADERS.contains(&"traceparent"));
}

#[test]
fn the_issues_job_config_loads() {
    let text = format!(
        "{MINIMAL}{}",
        r#"
[databases.app]
url = "${env:APP_DATABASE_URL}"
protected_tables = ["audit_events"]

[jobs.token-cleanup]
database = "app"
schedule = "0 */6 * * *"
batch_size = 1000
[[jobs.token-cleanup.delete]]
table = "gpt_authorization_codes"
time_column = "expires_at"
older_than = "30d"
[[jobs.token-cleanup.delete]]
table = "gpt_refresh_tokens"
time_column = "revoked_at"
older_than = "30d"

[jobs.stuck-batches]
database = "app"
schedule = "*/5 * * * *"
kind = "stuck_scan"
query = "SELECT id FROM batches WHERE status = 'processing' AND updated_at < now() - interval '15 minutes'"
recover = "UPDATE batches SET status = 'completed' WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM recipients WHERE batch_id = $1 AND status NOT IN ('sent','failed'))"
max_per_scan = 100
"#
    );
    let loaded = load(
        &text,
        &[("APP_DATABASE_URL", "postgres://app:pw@db:5432/app")],
    );
    let cleanup = &loaded.config.jobs["token-cleanup"];
    assert_eq!(
        (cleanup.kind, cleanup.runner, cleanup.batch_size),
        (JobKind::Retention, JobRunner::InProcess, 1000)
    );
    assert_eq!(cleanup.delete[1].older_than.get().as_secs(), 30 * 86_400);
    assert_eq!(loaded.config.jobs["stuck-batches"].kind, JobKind::StuckScan);
    assert_eq!(
        loaded.config.databases["app"].url.expose(),
        "postgres://app:pw@db:5432/app"
    );
    // The database URL is a secret: the version hash and Debug output never hold it.
    assert!(!format!("{:?}", loaded.config).contains("pw@"));
}

#[test]
fn job_mistakes_name_the_field_and_what_is_valid() {
    let text = format!(
        "{MINIMAL}{}",
        r#"
[databases.app]
url = "mysql://db/app"
protected_tables = ["audit_events", "bad name"]

[jobs.cleanup]
database = "app"
schedule = "every six hours"
batch_size = 0
[[jobs.cleanup.delete]]
table = "audit_events"
time_column = "created_at"
older_than = "30d"
[[jobs.cleanup.delete]]
table = "tokens; DROP TABLE users"
time_column = "1st"
older_than = "10s"
[[jobs.cleanup.delete]]
table = "palisade_job_runs"
time_column = "finished_at_ms"
older_than = "1d"

[jobs.scan]
database = "other"
schedule = "* * * * * *"
kind = "stuck_scan"
"#
    );
    assert_eq!(
        errors(&text, &[]),
        [
            "palisade.toml:10: databases.app.url: expected a postgres:// or sqlite: URL, e.g. \
             \"postgres://app@db:5432/app\" or \"sqlite:///var/lib/app/app.db\"",
            "palisade.toml:11: databases.app.protected_tables[1]: \"bad name\" is not a table name; \
             names are letters, digits and \"_\" (not starting with a digit), at most 63 characters, \
             e.g. \"refresh_tokens\"",
            "palisade.toml:15: jobs.cleanup.schedule: \"every six hours\" is not a cron schedule \
             (Invalid pattern: Pattern must have 5 fields when seconds are disallowed.); give five \
             fields in UTC, minute hour day-of-month month day-of-week, e.g. \"0 */6 * * *\" for \
             every 6 hours, or \"@daily\"",
            "palisade.toml:16: jobs.cleanup.batch_size: must be from 1 to 100000, e.g. 1000",
            "palisade.toml:18: jobs.cleanup.delete[0].table: \"audit_events\" is protected \
             (databases.app.protected_tables): no job may delete from it",
            "palisade.toml:22: jobs.cleanup.delete[1].table: \"tokens; DROP TABLE users\" is not a \
             table name; names are letters, digits and \"_\" (not starting with a digit), at most \
             63 characters, e.g. \"refresh_tokens\"",
            "palisade.toml:23: jobs.cleanup.delete[1].time_column: \"1st\" is not a column name; \
             names are letters, digits and \"_\" (not starting with a digit), at most 63 \
             characters, e.g. \"refresh_tokens\"",
            "palisade.toml:24: jobs.cleanup.delete[1].older_than: must be at least 1 minute, e.g. \"30d\"",
            "palisade.toml:26: jobs.cleanup.delete[2].table: palisade_job_runs is Palisade's record \
             of job runs and is protected; Palisade keeps its last 100 runs per job itself",
            "palisade.toml:30: jobs.scan.query: a stuck_scan job needs a query: a SELECT whose \
             first column is the id of each stuck row",
            "palisade.toml:31: jobs.scan.database: no database \"other\"; configured: app",
            "palisade.toml:32: jobs.scan.schedule: \"* * * * * *\" is not a cron schedule (Invalid \
             pattern: Pattern must have 5 fields when seconds are disallowed.); give five fields \
             in UTC, minute hour day-of-month month day-of-week, e.g. \"0 */6 * * *\" for every 6 \
             hours, or \"@daily\"",
        ]
    );
}

#[test]
fn schedules_that_never_fire_case_tricks_and_bare_parameters_are_refused() {
    let text = format!(
        "{MINIMAL}{}",
        r#"
[databases.app]
url = "sqlite:///var/lib/app/app.db"
protected_tables = ["audit_events"]

[jobs.never]
database = "app"
schedule = "0 0 30 2 *"
[[jobs.never.delete]]
table = "Audit_Events"
time_column = "created_at"
older_than = "30d"
[[jobs.never.delete]]
table = "PALISADE_JOB_RUNS"
time_column = "finished_at_ms"
older_than = "30d"

[jobs.scan]
database = "app"
schedule = "0 0 L * *"
kind = "stuck_scan"
query = "SELECT id FROM batches WHERE status = '?'"
recover = "UPDATE batches SET status = 'completed' WHERE id = ? AND NOT EXISTS (SELECT 1 FROM recipients WHERE batch_id = ?)"
"#
    );
    let errors = errors(&text, &[]);
    let fields: Vec<&str> = errors
        .iter()
        .map(|e| e.split(": ").nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        fields,
        [
            "jobs.never.schedule",
            "jobs.never.delete[0].table",
            "jobs.never.delete[1].table",
            "jobs.scan.schedule",
            "jobs.scan.recover",
        ],
        "{errors:#?}"
    );
    assert!(
        errors[3].contains("Kubernetes CronJob does not take"),
        "{}",
        errors[3]
    );
    assert!(errors[0].contains("never fires"), "{}", errors[0]);
    assert!(errors[1].contains("is protected"), "{}", errors[1]);
    assert!(errors[4].contains("bare \"?\""), "{}", errors[4]);
}
