//! The command line: `run`, `validate`, `config example`, `config schema`, `ratelimit simulate`,
//! `schema check`, `jwt verify`, `webhook verify` and `webhook sign`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use palisade_config::{ConfigErrors, LoadedConfig};

use crate::inspect::{JwtCommand, WebhookCommand};

#[derive(Parser)]
#[command(
    name = "palisade",
    version,
    about = "Production hardening for any HTTP service, in one binary."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start the proxy and ops listeners.
    Run(ConfigArg),
    /// Check a config file and report every error at once; exit 1 when it has any, 2 when no
    /// config file is named.
    Validate(ValidateArgs),
    /// Print an example config or the config's JSON Schema.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Rate-limit tools.
    #[command(subcommand)]
    Ratelimit(RatelimitCommand),
    /// JSON Schema tools.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// JWT tools.
    #[command(subcommand)]
    Jwt(JwtCommand),
    /// Inbound webhook tools.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Maintenance jobs (`[jobs.NAME]`): run one now, or list them with their last run.
    #[command(subcommand)]
    Jobs(crate::jobs::JobsCommand),
}

#[derive(Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Also connect to each `[databases.NAME]` and check that the tables and columns the jobs
    /// name exist (and warn when a retention job has no index to use).
    #[arg(long)]
    pub check_db: bool,
}

#[derive(Subcommand)]
pub enum SchemaCommand {
    /// Check a JSON document against a schema as a route's `json_schema` would: exit 0 when it
    /// is valid; else print the JSON pointer and reason of each failure and exit 1 (2 when a
    /// file cannot be read or the schema is invalid).
    Check(SchemaCheckArgs),
}

#[derive(Args)]
pub struct SchemaCheckArgs {
    /// The JSON Schema file.
    #[arg(long)]
    pub schema: PathBuf,
    /// The JSON document to check.
    #[arg(long)]
    pub instance: PathBuf,
}

/// Runs `palisade schema check`.
pub fn schema_check(args: &SchemaCheckArgs) -> ExitCode {
    let schema = args.schema.display().to_string();
    let validator = match palisade_config::load_schema(&schema) {
        Ok(validator) => validator,
        Err(problem) => {
            eprintln!("palisade schema check: {problem}");
            return ExitCode::from(2);
        }
    };
    let instance = args.instance.display().to_string();
    let value: serde_json::Value = match std::fs::read_to_string(&args.instance)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(value) => value,
        Err(problem) => {
            eprintln!("palisade schema check: {instance}: {problem}");
            return ExitCode::from(2);
        }
    };
    let mut failed = false;
    for failure in validator.iter_errors(&value) {
        failed = true;
        let pointer = failure.instance_path().to_string();
        println!(
            "{}: {failure}",
            if pointer.is_empty() { "/" } else { &pointer }
        );
    }
    if failed {
        ExitCode::from(1)
    } else {
        println!("{instance}: valid");
        ExitCode::SUCCESS
    }
}

#[derive(Args)]
pub struct ConfigArg {
    /// Config file (TOML). Also read from PALISADE_CONFIG. Without either, `run` serves the
    /// built-in example config (the one `palisade config example` prints) on 127.0.0.1 only,
    /// and `validate` refuses to run.
    #[arg(long, short, env = "PALISADE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print a complete, commented example config that validates.
    Example,
    /// Print the JSON Schema of the config file, for editors.
    Schema,
}

#[derive(Subcommand)]
pub enum RatelimitCommand {
    /// Replay arrival times through a rate-limit policy and print the proxy's decision on each
    /// request, one JSON object a line; exit 2 on a bad line, flag or policy name.
    Simulate(SimulateArgs),
}

/// The policy (from flags, or by name from a config file) and the arrival times.
#[derive(Args)]
pub struct SimulateArgs {
    /// Requests admitted per --per, on average, for each key (at least 1).
    #[arg(
        long,
        value_name = "N",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub limit: Option<u32>,
    /// The period --limit is counted over, e.g. "1m" or "1s".
    #[arg(
        long,
        value_name = "DURATION",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub per: Option<palisade_config::Duration>,
    /// Requests admitted back to back from idle (at least 1); absent: --limit.
    #[arg(long, value_name = "B", conflicts_with = "config")]
    pub burst: Option<u32>,
    /// Config file (TOML) holding the policy named by --policy; it must validate.
    #[arg(long, short, value_name = "FILE", requires = "policy")]
    pub config: Option<PathBuf>,
    /// The policy to simulate, `[rate_limits.NAME]` in --config.
    #[arg(long, value_name = "NAME", requires = "config")]
    pub policy: Option<String>,
    /// One of the policy's tiers, `[rate_limits.NAME.tiers.TIER]`; absent: the policy's own
    /// limit, per and burst.
    #[arg(long, value_name = "NAME", requires = "policy")]
    pub tier: Option<String>,
    /// Arrival times, "-" for stdin: one a line, in seconds ("12", "0.25"), in time order,
    /// each optionally followed by a space and the request's key. Blank lines and lines
    /// starting with "#" are skipped.
    #[arg(long, value_name = "FILE")]
    pub times: PathBuf,
}

/// Name shown for the embedded example config in messages.
pub const EMBEDDED: &str = "<built-in example>";

/// The overrides that set the listen addresses; the test kit and deployments use them.
const LISTEN_VARS: [&str; 2] = ["PALISADE_SERVER__LISTEN", "PALISADE_OPS__LISTEN"];

/// Loads the config `run` serves (at start and on reload): the file named by `arg`, or the
/// embedded example, bound to loopback, when none is named.
pub fn load(arg: &ConfigArg) -> Result<LoadedConfig, ConfigErrors> {
    match &arg.config {
        Some(path) => palisade_config::load_file(path),
        None => {
            // Variables that are not valid UTF-8 cannot be overrides or secrets; skip them.
            let env: Vec<(String, String)> = std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect();
            load_example(env)
        }
    }
}

/// The example config with its listeners moved to 127.0.0.1 (same ports), except where the
/// environment sets them: whoever runs Palisade without a config is trying it out and has not
/// asked to be reachable from the network.
fn load_example(mut env: Vec<(String, String)>) -> Result<LoadedConfig, ConfigErrors> {
    let example = palisade_config::load_str(EMBEDDED, palisade_config::EXAMPLE, &env)?;
    let defaults = [example.config.server.listen, example.config.ops.listen];
    for (var, addr) in LISTEN_VARS.into_iter().zip(defaults) {
        // Override names map case-insensitively after the prefix, as the loader reads them.
        let given = env
            .iter()
            .any(|(k, _)| k.starts_with("PALISADE_") && k.eq_ignore_ascii_case(var));
        if !given {
            let loopback = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port());
            env.push((var.to_owned(), loopback.to_string()));
        }
    }
    palisade_config::load_str(EMBEDDED, palisade_config::EXAMPLE, &env)
}

pub fn validate(args: &ValidateArgs) -> ExitCode {
    let Some(path) = &args.config.config else {
        // Validating the built-in example would say "valid" about a file nobody wrote.
        eprintln!(
            "palisade validate: no config file given; name it with --config FILE or the \
             PALISADE_CONFIG environment variable. To start from the built-in example: \
             palisade config example > palisade.toml"
        );
        return ExitCode::from(2);
    };
    match palisade_config::load_file(path) {
        Ok(loaded) => {
            let problems = verifier_problems(&loaded.config);
            if !problems.is_empty() {
                for problem in &problems {
                    eprintln!("{}: {problem}", loaded.source);
                }
                eprintln!("{} error(s); nothing was started", problems.len());
                return ExitCode::FAILURE;
            }
            if args.check_db && !crate::jobs::check_db(&loaded) {
                return ExitCode::FAILURE;
            }
            println!(
                "{}: valid (config version {}, {} upstreams, {} routes, {} jobs)",
                loaded.source,
                loaded.version,
                loaded.config.upstreams.len(),
                loaded.config.routes.len(),
                loaded.config.jobs.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s); nothing was started", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

/// What building the config's verifiers finds that the config alone cannot tell: key files
/// that do not parse, API key entries, webhook secrets of the wrong form.
fn verifier_problems(config: &palisade_config::Config) -> Vec<String> {
    use palisade_layers::verifiers;
    let mut problems = Vec::new();
    if let Err(e) = verifiers::Verifiers::build(&config.auth, &Default::default()) {
        problems.push(e.to_string());
    }
    for (index, route) in config.routes.iter().enumerate() {
        let Some(hook) = route.webhook.as_ref().filter(|h| !h.secrets.is_empty()) else {
            continue;
        };
        let secrets: Vec<&[u8]> = hook.secrets.iter().map(|s| s.expose().as_bytes()).collect();
        if let Err(e) =
            palisade_layers::webhook::Verifier::new(&verifiers::webhook_spec(hook), &secrets)
        {
            problems.push(format!("routes[{index}] ({}).webhook: {e}", route.name));
        }
    }
    problems
}

pub fn config(cmd: ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Example => print!("{}", palisade_config::EXAMPLE),
        ConfigCommand::Schema => println!("{}", palisade_config::json_schema()),
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_example_without_a_config_listens_on_loopback_only() {
        let loaded = load_example(Vec::new()).unwrap();
        assert_eq!(loaded.config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(loaded.config.ops.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(loaded.source, EMBEDDED);
    }

    #[test]
    fn listen_overrides_win_over_the_loopback_default() {
        let loaded = load_example(env(&[("PALISADE_OPS__LISTEN", "0.0.0.0:9191")])).unwrap();
        assert_eq!(loaded.config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(loaded.config.ops.listen.to_string(), "0.0.0.0:9191");
        let errors = load_example(env(&[("PALISADE_SERVER__LISTEN", "nowhere")])).unwrap_err();
        assert!(
            errors
                .to_string()
                .starts_with("env PALISADE_SERVER__LISTEN"),
            "{errors}"
        );
    }
}
