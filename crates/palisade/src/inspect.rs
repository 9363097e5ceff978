//! `palisade jwt verify`, `palisade webhook verify` and `palisade webhook sign`: answer "why was
//! this request refused?" from a shell, with the code a route runs.
//!
//! Each command builds its checker with the libraries' own constructors (`JwtRules` and
//! `JwtVerifier::new`; `webhook::Verifier::new` and `webhook::sign`) and prints their answer:
//! the stable reason (`as_str()`, the one in the metric label and the problem body) and its
//! sentence. Exit 0 is valid, 1 invalid (the verdict on stdout), 2 bad usage (on stderr, naming
//! the flag and what would be valid), so a script can tell a refused token from a typo.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use palisade_layers::identity::jwt::DEFAULT_LEEWAY;
use palisade_layers::identity::{Identity, JwtRules, JwtVerifier, KeySet};
use palisade_layers::webhook::{
    Algorithm, DEFAULT_TOLERANCE, Encoding, Failure, HmacSpec, Scheme, SetupError, SignError, Spec,
    Verifier, sign,
};

#[derive(Subcommand)]
pub enum JwtCommand {
    /// Verify a token as a route with `auth = "jwt"` would.
    ///
    /// Runs the gateway's verifier with `[auth.jwt]`'s rules and a `keys_file`: exit 0 printing
    /// the identity as one JSON line, 1 printing `invalid: REASON (why)`, 2 on bad usage (an
    /// unreadable or unusable key, an unknown algorithm, "none").
    Verify(JwtVerifyArgs),
}

#[derive(Args)]
pub struct JwtVerifyArgs {
    /// The token, without "Bearer "; "-" reads it from stdin, out of shell history.
    #[arg(long, value_name = "TOKEN")]
    pub token: String,
    /// What `[auth.jwt] keys_file` holds: a JWK, a JWK Set (the token's `kid` picks the key) or
    /// a PEM public key; read as JSON when it starts with "{", else as PEM. A JWK with
    /// "kty": "oct" is the secret of HS256, HS384 and HS512.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The algorithms a token may use, comma-separated, e.g. RS256 or RS256,ES256. "none" is
    /// never accepted.
    #[arg(
        long = "alg",
        value_name = "ALG[,ALG...]",
        value_delimiter = ',',
        required = true
    )]
    pub algorithms: Vec<String>,
    /// The `iss` a token must have. Absent: not checked.
    #[arg(long, value_name = "ISSUER")]
    pub issuer: Option<String>,
    /// An `aud` the token must name; repeat to accept several. Absent: not compared.
    #[arg(long, value_name = "AUDIENCE")]
    pub audience: Vec<String>,
    /// The claims a token must carry, comma-separated, instead of the default "exp";
    /// `--require ''` requires none. `exp` and `nbf` are checked whenever present.
    #[arg(long, value_name = "CLAIM,...")]
    pub require: Option<String>,
    /// The time to verify at, in Unix seconds. Default: now.
    #[arg(long, value_name = "UNIX")]
    pub now: Option<u64>,
    /// The clock skew allowed on `exp` and `nbf`, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_LEEWAY.as_secs())]
    pub leeway: u64,
    /// The claim naming the caller (the JSON's "subject"). Default: sub.
    #[arg(long, value_name = "CLAIM")]
    pub user_claim: Option<String>,
    /// The claim naming the caller's rate-limit tier. Absent: no tier.
    #[arg(long, value_name = "CLAIM")]
    pub tier_claim: Option<String>,
}

pub fn jwt_verify(args: &JwtVerifyArgs) -> ExitCode {
    const COMMAND: &str = "palisade jwt verify";
    let setup = jwt_verifier(args).and_then(|verifier| Ok((verifier, read_token(&args.token)?)));
    let (verifier, token) = match setup {
        Ok(setup) => setup,
        Err(message) => return usage(COMMAND, &message),
    };
    // `verify_cached` is what a route runs with fixed keys; `verify` only adds JWKS refreshes.
    match verifier.verify_cached(&token, args.now.unwrap_or_else(unix_now)) {
        Ok(identity) => {
            println!("{}", identity_json(&identity));
            ExitCode::SUCCESS
        }
        Err(refused) => invalid(refused.as_str(), &refused.to_string()),
    }
}

fn jwt_verifier(args: &JwtVerifyArgs) -> Result<JwtVerifier, String> {
    let algorithms: Vec<&str> = args
        .algorithms
        .iter()
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .collect();
    let mut rules = JwtRules::new(&algorithms).map_err(|e| format!("--alg: {e}"))?;
    rules.issuer = args.issuer.clone();
    rules.audiences = args.audience.clone();
    rules.leeway = Duration::from_secs(args.leeway);
    if let Some(list) = &args.require {
        rules.required_claims = required_claims(list)?;
    }
    if let Some(claim) = &args.user_claim {
        rules.user_claim = claim.clone();
    }
    rules.tier_claim = args.tier_claim.clone();
    let path = args.key.display();
    let keys = read_keys(&args.key).map_err(|e| format!("--key {path}: {e}"))?;
    for why in keys.skipped() {
        eprintln!("note: --key {path}: left out {why}");
    }
    JwtVerifier::new(rules, keys).map_err(|e| format!("--key {path}: {e}"))
}

/// The `--require` list. `none` is refused rather than taken for a claim of that name: it is
/// what someone guessing the spelling of "no claim" would type.
fn required_claims(list: &str) -> Result<Vec<String>, String> {
    let claims: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    if claims.iter().any(|c| c.eq_ignore_ascii_case("none")) {
        return Err("--require none: to require no claim give --require '' (an empty list)".into());
    }
    Ok(claims)
}

fn read_keys(path: &Path) -> Result<KeySet, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the key: {e}"))?;
    KeySet::from_file_contents(&bytes).map_err(|e| e.to_string())
}

fn read_token(arg: &str) -> Result<String, String> {
    let token = if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("--token -: cannot read the token from stdin: {e}"))?;
        text.trim().to_owned()
    } else {
        arg.to_owned()
    };
    // The whole header value is an easy thing to paste, and would only be called malformed.
    if token
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
    {
        return Err("--token: give the token alone, without \"Bearer \"".into());
    }
    Ok(token)
}

fn identity_json(identity: &Identity) -> serde_json::Value {
    serde_json::json!({
        "subject": identity.subject,
        "tier": identity.tier,
        "scopes": identity.scopes,
        "method": identity.method.as_str(),
    })
}

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Verify a delivery's signature as a route's `[routes.webhook]` would.
    ///
    /// Exit 0 printing `valid: scheme=S, id=ID, timestamp=T, secret=N` (N: which --secret
    /// matched, counting from 0; "-" where the scheme carries no id or timestamp), 1 printing
    /// `invalid: REASON (why)`, 2 on bad usage (a bad secret or setting, an unreadable body
    /// file, a malformed --header).
    Verify(WebhookVerifyArgs),
    /// Print the headers a sender would sign a body with.
    ///
    /// One "name: value" a line, each ready for `palisade webhook verify --header`; exit 2 on
    /// bad usage.
    Sign(WebhookSignArgs),
}

#[derive(Args)]
pub struct WebhookVerifyArgs {
    #[command(flatten)]
    pub scheme: SchemeArgs,
    /// A signing secret, as in the route's `secrets`; repeat while rotating (a signature by any
    /// of them is valid). standard-webhooks takes "whsec_" and base64; the others use the text
    /// as written.
    #[arg(long, value_name = "SECRET", required = true)]
    pub secret: Vec<String>,
    /// A request header as received, "name: value"; repeat for each.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte as received.
    #[arg(long, value_name = "FILE")]
    pub body_file: PathBuf,
    /// The time to verify at, in Unix seconds. Default: now.
    #[arg(long, value_name = "UNIX")]
    pub now: Option<i64>,
    /// How far the delivery's timestamp may be from --now, either way, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TOLERANCE.as_secs())]
    pub tolerance: u64,
}

#[derive(Args)]
pub struct WebhookSignArgs {
    #[command(flatten)]
    pub scheme: SchemeArgs,
    /// The signing secret, as `webhook verify --secret` takes it.
    #[arg(long, value_name = "SECRET")]
    pub secret: String,
    /// The body to sign, byte for byte.
    #[arg(long, value_name = "FILE")]
    pub body_file: PathBuf,
    /// The message id: needed by standard-webhooks and by an hmac --template with {id}; sent
    /// by github, shopify and hmac with --id-header when given; unused by stripe and slack.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// The time of sending, in Unix seconds. Default: now.
    #[arg(long, value_name = "UNIX")]
    pub now: Option<i64>,
}

const HMAC_OPTIONS: &str = "Options of --scheme hmac";

/// Which rules apply: a provider's, or a generic HMAC's settings (`[routes.webhook]`'s
/// `header`, `algorithm`, `encoding`, `prefix`, `timestamp_header`, `id_header`, `template`).
#[derive(Args)]
pub struct SchemeArgs {
    /// standard-webhooks, stripe, github, slack, shopify, or hmac with the options below.
    #[arg(long, value_name = "SCHEME")]
    pub scheme: Scheme,
    /// The header that carries the signature (required).
    #[arg(long, value_name = "NAME", help_heading = HMAC_OPTIONS)]
    pub signature_header: Option<String>,
    /// The hash: sha256 (the default) or sha512.
    #[arg(long, value_name = "HASH", help_heading = HMAC_OPTIONS)]
    pub algorithm: Option<Algorithm>,
    /// How the signature is written: hex (the default) or base64.
    #[arg(long, value_name = "ENCODING", help_heading = HMAC_OPTIONS)]
    pub encoding: Option<Encoding>,
    /// Text before the signature in its header, e.g. "sha256=".
    #[arg(long, value_name = "TEXT", help_heading = HMAC_OPTIONS)]
    pub prefix: Option<String>,
    /// The header with the Unix time of sending; --template must then sign {timestamp}.
    #[arg(long, value_name = "NAME", help_heading = HMAC_OPTIONS)]
    pub timestamp_header: Option<String>,
    /// The header with the message id.
    #[arg(long, value_name = "NAME", help_heading = HMAC_OPTIONS)]
    pub id_header: Option<String>,
    /// What is signed: {timestamp}, {id}, {body} (exactly once) and literal text, e.g.
    /// "{timestamp}.{body}". Default: "{body}".
    #[arg(long, value_name = "TEMPLATE", help_heading = HMAC_OPTIONS)]
    pub template: Option<String>,
}

impl SchemeArgs {
    fn spec(&self) -> Result<Spec, String> {
        let given = [
            ("--signature-header", self.signature_header.is_some()),
            ("--algorithm", self.algorithm.is_some()),
            ("--encoding", self.encoding.is_some()),
            ("--prefix", self.prefix.is_some()),
            ("--timestamp-header", self.timestamp_header.is_some()),
            ("--id-header", self.id_header.is_some()),
            ("--template", self.template.is_some()),
        ];
        if self.scheme != Scheme::Hmac {
            // Silently ignoring them would verify by rules the user did not ask for.
            if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
                return Err(format!(
                    "{flag} is an option of --scheme hmac; {} has fixed headers and hash",
                    self.scheme
                ));
            }
            return Spec::try_from(self.scheme).map_err(|e| e.to_string());
        }
        let Some(header) = &self.signature_header else {
            let missing =
                "--scheme hmac needs --signature-header NAME, the header with the signature";
            return Err(missing.into());
        };
        let mut spec = HmacSpec::new(header.as_str());
        spec.algorithm = self.algorithm.unwrap_or(spec.algorithm);
        spec.encoding = self.encoding.unwrap_or(spec.encoding);
        if let Some(prefix) = &self.prefix {
            spec.prefix = prefix.clone();
        }
        spec.timestamp_header = self.timestamp_header.clone();
        spec.id_header = self.id_header.clone();
        spec.template = self.template.clone();
        Ok(Spec::Hmac(spec))
    }
}

/// A `--header` argument: "name: value", as curl's `-H` takes it.
fn parse_header(arg: &str) -> Result<(String, String), String> {
    match arg.split_once(':') {
        Some((name, value)) if http::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
            Ok((name.to_owned(), value.trim().to_owned()))
        }
        _ => Err("expected \"name: value\", the name of letters, digits and \
                  !#$%&'*+-.^_`|~, e.g. 'x-hub-signature-256: sha256=757107ea...'"
            .into()),
    }
}

pub fn webhook_verify(args: &WebhookVerifyArgs) -> ExitCode {
    const COMMAND: &str = "palisade webhook verify";
    let setup = args
        .scheme
        .spec()
        .and_then(|spec| Verifier::new(&spec, &args.secret).map_err(|e| setup_message(&e)))
        .and_then(|verifier| Ok((verifier, read_body(&args.body_file)?)));
    let (verifier, body) = match setup {
        Ok(setup) => setup,
        Err(message) => return usage(COMMAND, &message),
    };
    let verifier = verifier.with_tolerance(Duration::from_secs(args.tolerance));
    let now = args.now.unwrap_or_else(unix_now_signed);
    match verifier.verify(args.headers.as_slice(), &body, now) {
        Ok(valid) => {
            let timestamp = valid.timestamp.map(|t| t.to_string());
            println!(
                "valid: scheme={}, id={}, timestamp={}, secret={}",
                valid.scheme,
                valid.message_id.as_deref().unwrap_or("-"),
                timestamp.as_deref().unwrap_or("-"),
                valid.secret_index
            );
            ExitCode::SUCCESS
        }
        Err(failure) => invalid(failure.as_str(), &explain(&verifier, failure, now)),
    }
}

/// The failure's sentence, with what it depended on: the header it is about, or the clock.
fn explain(verifier: &Verifier, failure: Failure, now: i64) -> String {
    if matches!(
        failure,
        Failure::TimestampTooOld | Failure::TimestampInFuture
    ) {
        let tolerance = verifier.tolerance().as_secs();
        return format!("{failure}; now {now}, tolerance {tolerance} s");
    }
    match failure
        .field()
        .and_then(|field| verifier.header_name(field))
    {
        Some(header) => format!("{failure}; header {header}"),
        None => failure.to_string(),
    }
}

pub fn webhook_sign(args: &WebhookSignArgs) -> ExitCode {
    let signed = args.scheme.spec().and_then(|spec| {
        let body = read_body(&args.body_file)?;
        let now = args.now.unwrap_or_else(unix_now_signed);
        sign(&spec, &args.secret, args.id.as_deref(), now, &body)
            .map_err(|e| sign_message(&e, spec.scheme()))
    });
    match signed {
        Ok(headers) => {
            for (name, value) in headers {
                println!("{name}: {value}");
            }
            ExitCode::SUCCESS
        }
        Err(message) => usage("palisade webhook sign", &message),
    }
}

/// A [`SetupError`] in the command line's words: flags where the library names config fields.
fn setup_message(error: &SetupError) -> String {
    let text = error.to_string();
    match error {
        SetupError::EmptySecret { .. } | SetupError::BadSecret { .. } => {
            format!("{text} (the --secret values count from 0)")
        }
        SetupError::HeaderName { field, .. } => {
            format!("--{}{}", field.replace('_', "-"), &text[field.len()..])
        }
        SetupError::Template { template, problem } => {
            let problem = problem
                .replace("timestamp_header", "--timestamp-header")
                .replace("id_header", "--id-header");
            format!("--template {template:?} {problem}")
        }
        _ => text,
    }
}

fn sign_message(error: &SignError, scheme: Scheme) -> String {
    match error {
        SignError::Setup(e) => setup_message(e),
        SignError::MissingId if scheme == Scheme::Hmac => {
            "--template signs {id}; give the message id with --id ID".into()
        }
        SignError::MissingId => {
            format!("--scheme {scheme} signs the message id; give it with --id ID")
        }
        SignError::BadId => format!("--id: {error}"),
        SignError::NegativeTimestamp => format!("--now: {error}"),
    }
}

fn read_body(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("--body-file {}: cannot read: {e}", path.display()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

fn unix_now_signed() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX)
}

/// The verdict "invalid": the stable reason, then the sentence, on stdout; exit 1.
fn invalid(reason: &str, why: &str) -> ExitCode {
    println!("invalid: {reason} ({why})");
    ExitCode::FAILURE
}

/// Bad usage: the message on stderr; exit 2, as clap exits for a bad flag.
fn usage(command: &str, message: &str) -> ExitCode {
    eprintln!("{command}: {message}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_lists_claims_and_the_empty_list_requires_none() {
        assert_eq!(
            required_claims("exp, nbf,"),
            Ok(vec!["exp".into(), "nbf".into()])
        );
        assert_eq!(required_claims(""), Ok(vec![]));
        let err = required_claims("exp,None").unwrap_err();
        assert!(err.contains("--require ''"), "{err}");
    }

    #[test]
    fn a_header_argument_is_a_name_a_colon_and_a_value() {
        assert_eq!(
            parse_header("X-Slack-Signature:  v0=ab "),
            Ok(("X-Slack-Signature".into(), "v0=ab".into()))
        );
        // The value may hold colons; only the first one ends the name.
        assert_eq!(
            parse_header("webhook-signature: v1,a:b"),
            Ok(("webhook-signature".into(), "v1,a:b".into()))
        );
        for bad in ["no colon", "bad name: x", ": x"] {
            let err = parse_header(bad).unwrap_err();
            assert!(err.contains("name: value"), "{bad}: {err}");
        }
    }

    #[test]
    fn setup_errors_name_the_flags() {
        let mut args = SchemeArgs {
            scheme: Scheme::Hmac,
            signature_header: Some("x sig".into()),
            algorithm: None,
            encoding: None,
            prefix: None,
            timestamp_header: None,
            id_header: None,
            template: Some("{timestamp}.{body}".into()),
        };
        let error = |args: &SchemeArgs| match Verifier::new(&args.spec().unwrap(), &["k"]) {
            Err(e) => setup_message(&e),
            Ok(_) => panic!("accepted"),
        };
        let text = error(&args);
        assert!(
            text.starts_with("--signature-header \"x sig\" is not"),
            "{text}"
        );
        args.signature_header = Some("x-sig".into());
        let text = error(&args);
        assert!(
            text.starts_with("--template \"{timestamp}.{body}\""),
            "{text}"
        );
        assert!(text.contains("no --timestamp-header"), "{text}");
        args.scheme = Scheme::GitHub;
        let text = args.spec().unwrap_err();
        assert!(
            text.starts_with("--signature-header is an option of --scheme hmac"),
            "{text}"
        );
    }
}
