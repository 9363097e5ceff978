//! The command line: `run`, `validate`, `config example`, `config schema`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use palisade_config::{ConfigErrors, LoadedConfig};

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
    /// Check a config file and report every error at once; exit 1 when it has any.
    Validate(ConfigArg),
    /// Print an example config or the config's JSON Schema.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Args)]
pub struct ConfigArg {
    /// Config file (TOML). Also read from PALISADE_CONFIG. Without either, `run` uses the
    /// built-in example config (the one `palisade config example` prints).
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

/// Name shown for the embedded example config in messages.
pub const EMBEDDED: &str = "<built-in example>";

/// Loads the config named by `arg`, or the embedded example when none is named.
pub fn load(arg: &ConfigArg) -> Result<LoadedConfig, ConfigErrors> {
    match &arg.config {
        Some(path) => palisade_config::load_file(path),
        None => {
            let env: Vec<(String, String)> = std::env::vars().collect();
            palisade_config::load_str(EMBEDDED, palisade_config::EXAMPLE, &env)
        }
    }
}

pub fn validate(arg: &ConfigArg) -> ExitCode {
    match load(arg) {
        Ok(loaded) => {
            println!(
                "{}: valid (config version {}, {} upstreams, {} routes)",
                loaded.source,
                loaded.version,
                loaded.config.upstreams.len(),
                loaded.config.routes.len()
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

pub fn config(cmd: ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Example => print!("{}", palisade_config::EXAMPLE),
        ConfigCommand::Schema => println!("{}", palisade_config::json_schema()),
    }
    ExitCode::SUCCESS
}
