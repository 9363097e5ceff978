//! `palisade ratelimit simulate`: the decisions one rate-limit policy makes on a list of
//! arrival times, for trying a policy before deploying it.
//!
//! The decisions are the proxy's own: the policy is built by the same [`Registry`] and checked
//! by the same [`Policy`], on a limiter clock set by hand to each line's time. The key text of
//! a line selects the bucket ([`Policy::check_key`]); idle keys are swept every
//! [`SWEEP_INTERVAL`] of simulated time, as the proxy sweeps them, which matters only once a
//! policy tracks `max_keys` keys.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_config::RateLimitConfig;
use palisade_layers::ratelimit::{LimiterClock, Policy, Registry, SWEEP_INTERVAL};
use palisade_telemetry::audit::AuditSink;
use palisade_telemetry::metrics::Metrics;

use crate::cli::SimulateArgs;

const COMMAND: &str = "palisade ratelimit simulate";

/// Times past this are refused: the limiter counts nanoseconds in 64 bits (584 years).
const LATEST: u64 = 10_000_000_000;

enum Failure {
    /// A bad flag, policy name, file or line: exit 2.
    Input(String),
    /// Writing the decisions failed: exit 1.
    Output(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Self::Output(e)
    }
}

pub fn simulate(args: &SimulateArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(message)) => {
            eprintln!("{COMMAND}: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Output(e)) => {
            eprintln!("{COMMAND}: writing the decisions: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &SimulateArgs) -> Result<(), Failure> {
    let (name, config) = policy_config(args).map_err(Failure::Input)?;
    let shadow = config.shadow;
    let (source, input): (String, Box<dyn BufRead>) = if args.times.as_os_str() == "-" {
        ("<stdin>".to_owned(), Box::new(io::stdin().lock()))
    } else {
        let source = args.times.display().to_string();
        let file = File::open(&args.times)
            .map_err(|e| Failure::Input(format!("{source}: cannot read the times: {e}")))?;
        (source, Box::new(BufReader::new(file)))
    };

    let now = Arc::new(Mutex::new(Duration::ZERO));
    let set_clock = |t: Duration| *now.lock().unwrap_or_else(|e| e.into_inner()) = t;
    let registry = Registry::new(LimiterClock::Manual(now.clone()));
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"));
    let policy: Arc<Policy> = registry
        .build(
            &BTreeMap::from([(name.clone(), config)]),
            &metrics,
            &AuditSink::off(),
        )
        .remove(&name)
        .expect("the registry builds every policy it is given");

    let mut out = BufWriter::new(io::stdout().lock());
    let (mut total, mut admitted) = (0u64, 0u64);
    let mut last = Duration::ZERO;
    let mut next_sweep = SWEEP_INTERVAL;
    for (index, line) in input.split(b'\n').enumerate() {
        let at = format!("{source}:{}", index + 1);
        let line = line.map_err(|e| Failure::Input(format!("{at}: cannot read: {e}")))?;
        let line = std::str::from_utf8(&line)
            .map_err(|_| Failure::Input(format!("{at}: not UTF-8 text")))?
            .trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (time, key) = match line.split_once([' ', '\t']) {
            Some((time, key)) => (time, Some(key.trim())),
            None => (line, None),
        };
        let t = parse_time(time).ok_or_else(|| {
            Failure::Input(format!(
                "{at}: {time:?} is not a time in seconds; write e.g. \"12\" or \"0.25\" \
                 (at most 9 decimals, at most {LATEST})"
            ))
        })?;
        if t < last {
            return Err(Failure::Input(format!(
                "{at}: time {} is before the previous line's {}; lines must be in time order",
                Seconds(t),
                Seconds(last)
            )));
        }
        last = t;
        if t >= next_sweep {
            set_clock(t);
            registry.sweep();
            next_sweep = t + SWEEP_INTERVAL;
        }
        set_clock(t);
        let decision = policy.check_key(key.unwrap_or_default().as_bytes());
        total += 1;
        admitted += u64::from(decision.allowed);
        write!(out, "{{\"t\":{}", Seconds(t))?;
        if let Some(key) = key {
            write!(out, ",\"key\":{}", serde_json::Value::from(key))?;
        }
        writeln!(
            out,
            ",\"allowed\":{},\"retry_after\":{},\"remaining\":{}}}",
            decision.allowed, decision.retry_after, decision.remaining
        )?;
    }
    out.flush()?;
    if shadow {
        eprintln!(
            "admitted {admitted} of {total} (policy {name:?} is in shadow mode: the proxy would \
             let every request through and only log the refusals)"
        );
    } else {
        eprintln!("admitted {admitted} of {total}");
    }
    Ok(())
}

/// The policy to simulate and its name: from `--config` and `--policy` (and `--tier`), or from
/// `--limit`, `--per` and `--burst`, checked as a config file's policy is.
fn policy_config(args: &SimulateArgs) -> Result<(String, RateLimitConfig), String> {
    let (Some(path), Some(name)) = (&args.config, &args.policy) else {
        let (Some(limit), Some(per)) = (args.limit, args.per) else {
            return Err("give --limit and --per, or --config and --policy".to_owned());
        };
        let config = RateLimitConfig::new(limit, per, args.burst);
        let problems: Vec<String> = config
            .problems()
            .into_iter()
            .map(|(field, message)| {
                // The config's own message, in the words of the flags.
                let message = message
                    .replace("`per`", "--per")
                    .replace("`limit`", "--limit");
                format!("--{field}: {message}")
            })
            .collect();
        if !problems.is_empty() {
            return Err(problems.join(&format!("\n{COMMAND}: ")));
        }
        return Ok(("simulated".to_owned(), config));
    };
    let source = path.display();
    let loaded = palisade_config::load_file(path)
        .map_err(|errors| format!("cannot take the policy from {source}:\n{errors}"))?;
    let policies = &loaded.config.rate_limits;
    let Some(config) = policies.get(name) else {
        let defined = if policies.is_empty() {
            "it defines none".to_owned()
        } else {
            let names: Vec<&str> = policies.keys().map(String::as_str).collect();
            format!("defined: {}", names.join(", "))
        };
        return Err(format!(
            "{source}: no rate-limit policy {name:?} ([rate_limits.{name}]); {defined}"
        ));
    };
    let Some(tier) = &args.tier else {
        return Ok((name.clone(), config.clone()));
    };
    let Some(settings) = config.tiers.get(tier) else {
        let defined = if config.tiers.is_empty() {
            "it has none".to_owned()
        } else {
            let names: Vec<&str> = config.tiers.keys().map(String::as_str).collect();
            format!("defined: {}", names.join(", "))
        };
        return Err(format!(
            "{source}: policy {name:?} has no tier {tier:?}; {defined}"
        ));
    };
    // The quota the proxy builds for this tier: its limit and burst, its `per` or the policy's,
    // and the policy's other settings.
    let config = RateLimitConfig {
        limit: settings.limit,
        per: settings.per.unwrap_or(config.per),
        burst: settings.burst,
        tier_header: None,
        tiers: BTreeMap::new(),
        ..config.clone()
    };
    Ok((name.clone(), config))
}

/// Seconds written as digits with up to 9 decimals ("12", "0.25"), up to [`LATEST`].
fn parse_time(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) || fraction.len() > 9 {
        return None;
    }
    let secs: u64 = whole.parse().ok().filter(|s| *s <= LATEST)?;
    let nanos: u32 = format!("{fraction:0<9}").parse().ok()?;
    let t = Duration::new(secs, nanos);
    (t <= Duration::from_secs(LATEST)).then_some(t)
}

/// A time as a JSON number of seconds, exactly: "12", "0.25".
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs())?;
        let nanos = self.0.subsec_nanos();
        if nanos > 0 {
            let fraction = format!("{nanos:09}");
            write!(f, ".{}", fraction.trim_end_matches('0'))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_exact_decimal_seconds() {
        let t = |s: &str| parse_time(s).map(|d| Seconds(d).to_string());
        assert_eq!(t("0"), Some("0".into()));
        assert_eq!(t("0.25"), Some("0.25".into()));
        assert_eq!(t("59.500"), Some("59.5".into()));
        assert_eq!(
            t("1700000000.000000001"),
            Some("1700000000.000000001".into())
        );
        for bad in [
            "",
            ".5",
            "5.",
            "-1",
            "1e3",
            "0x10",
            "1.0000000001",
            "nan",
            "99999999999",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }
}
