//! `palisade jobs run NAME`, `palisade jobs list` and `palisade validate --check-db`: the
//! maintenance jobs from the command line, as a Kubernetes CronJob or an operator runs them.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use palisade_config::LoadedConfig;
use palisade_jobs::{Job, Jobs, Outcome, RunOptions, RunReport};
use palisade_telemetry::{AuditSink, Metrics, logging};

use crate::cli::{self, ConfigArg};

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Run one job now, once, and exit: 0 when it succeeded or another run held its lock
    /// (nothing to do twice), 1 when it failed, 2 for a config error or an unknown job. This is
    /// what a Kubernetes CronJob runs.
    Run(JobRunArgs),
    /// Show each job: kind, database, runner, schedule, next run, and the last recorded run
    /// with its outcome. Exit 1 when a job's database cannot be read.
    List(ConfigArg),
}

#[derive(Args)]
pub struct JobRunArgs {
    /// The job, `[jobs.NAME]` in the config.
    pub name: String,
    /// Print what the run would delete (or which stuck rows it would touch) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// Loads the named config file for a jobs command; `None` (with the errors printed) when it
/// does not load.
fn load(arg: &ConfigArg, command: &str) -> Option<LoadedConfig> {
    if arg.config.is_none() {
        eprintln!(
            "palisade {command}: no config file given; name it with --config FILE or the \
             PALISADE_CONFIG environment variable"
        );
        return None;
    }
    match cli::load(arg) {
        Ok(loaded) => Some(loaded),
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s)", errors.0.len());
            None
        }
    }
}

/// A runtime for a jobs command and the config's jobs, built inside it (their database pools
/// belong to it). On failure the error is printed and the exit code returned: 1 for the
/// runtime, 2 for the jobs' databases.
fn open(loaded: &LoadedConfig) -> Result<(tokio::runtime::Runtime, Jobs), ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            eprintln!("palisade: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        })?;
    let jobs = {
        let _enter = rt.enter();
        Jobs::build(&loaded.config).map_err(|error| {
            eprintln!("{}: {error}", loaded.source);
            ExitCode::from(2)
        })?
    };
    Ok((rt, jobs))
}

/// `palisade jobs run NAME`.
pub fn run(args: &JobRunArgs) -> ExitCode {
    let Some(loaded) = load(&args.config, "jobs run") else {
        return ExitCode::from(2);
    };
    let (rt, jobs) = match open(&loaded) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let Some(job) = jobs.get(&args.name) else {
        let names = jobs.names();
        eprintln!(
            "palisade jobs run: no job {:?} in {}; configured: {}",
            args.name,
            loaded.source,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
        return ExitCode::from(2);
    };
    let _log = match logging::init(loaded.config.log.format, &loaded.config.log.level) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("palisade: {}: log.level: {error}", loaded.source);
            return ExitCode::from(2);
        }
    };
    let report = rt.block_on(async {
        let metrics = Metrics::new(env!("CARGO_PKG_VERSION"));
        let (audit, writer) = match AuditSink::start(&loaded.config.audit, metrics) {
            Ok(sink) => sink,
            Err(error) => {
                eprintln!("palisade: cannot open the audit sink: {error}");
                return None;
            }
        };
        let writer = writer.spawn();
        let options = RunOptions {
            dry_run: args.dry_run,
            runner: palisade_jobs::runner_id(),
            ..RunOptions::default()
        };
        let report = palisade_jobs::run(job, &options).await;
        report.log();
        if let Some(event) = report.audit_event() {
            audit.emit(event);
        }
        audit.close(Duration::from_secs(2)).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
        Some(report)
    });
    let Some(report) = report else {
        return ExitCode::FAILURE;
    };
    println!("{}", summary(job, &report));
    match report.outcome {
        Outcome::Success | Outcome::Skipped => ExitCode::SUCCESS,
        Outcome::Failure(_) => ExitCode::FAILURE,
    }
}

/// One paragraph on what a run did, for the terminal and the CronJob's log.
fn summary(job: &Job, report: &RunReport) -> String {
    let name = &report.job;
    let ms = report.duration.as_millis();
    let ids = |ids: &[palisade_jobs::RowId]| {
        ids.iter()
            .take(20)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = Vec::new();
    match &report.outcome {
        Outcome::Skipped => {
            lines.push(format!("{name}: skipped: another run holds the job's lock"));
        }
        Outcome::Success if report.dry_run => {
            lines.push(format!("{name}: dry run, nothing changed"));
            let batch = u64::from(job.config.batch_size).max(1);
            for (table, rows) in &report.would_delete {
                lines.push(format!(
                    "  would delete {rows} rows from {table} ({} batches of at most {batch})",
                    rows.div_ceil(batch)
                ));
            }
            if !report.stuck.is_empty() {
                lines.push(format!(
                    "  would look at {} stuck rows: {}",
                    report.stuck.len(),
                    ids(&report.stuck)
                ));
            }
        }
        outcome => {
            let verdict = match outcome {
                Outcome::Failure(error) => format!("failed: {error}"),
                _ => "succeeded".to_owned(),
            };
            lines.push(format!(
                "{name}: {verdict} in {ms} ms, {} batches",
                report.batches
            ));
            for (table, rows) in &report.deleted {
                lines.push(format!("  deleted {rows} rows from {table}"));
            }
            if !report.recovered.is_empty() {
                lines.push(format!(
                    "  recovered {} rows: {}",
                    report.recovered.len(),
                    ids(&report.recovered)
                ));
            }
            if !report.stuck.is_empty() {
                lines.push(format!(
                    "  still stuck, {} rows: {}",
                    report.stuck.len(),
                    ids(&report.stuck)
                ));
            }
        }
    }
    lines.join("\n")
}

/// `palisade jobs list`.
pub fn list(arg: &ConfigArg) -> ExitCode {
    let Some(loaded) = load(arg, "jobs list") else {
        return ExitCode::from(2);
    };
    let (rt, jobs) = match open(&loaded) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    if jobs.is_empty() {
        println!("{}: no jobs configured ([jobs.NAME])", loaded.source);
        return ExitCode::SUCCESS;
    }
    let mut unreadable = false;
    let mut rows = vec![
        [
            "JOB",
            "KIND",
            "DATABASE",
            "RUNNER",
            "SCHEDULE",
            "NEXT RUN (UTC)",
            "LAST RUN (UTC)",
            "OUTCOME",
            "ROWS",
        ]
        .map(str::to_owned),
    ];
    for job in jobs.iter() {
        let next = job
            .schedule
            .next_after(chrono::Utc::now())
            .map_or("never".to_owned(), |t| {
                t.format("%Y-%m-%d %H:%M").to_string()
            });
        let last = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), palisade_jobs::last_run(job)).await
        });
        let (when, outcome, rows_done) = match last {
            Ok(Ok((Some(run), _))) => (
                chrono::DateTime::from_timestamp_millis(run.started_at_ms)
                    .map_or("?".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string()),
                run.outcome.clone(),
                (run.rows_deleted + run.rows_recovered).to_string(),
            ),
            Ok(Ok((None, _))) => ("never".to_owned(), "-".to_owned(), "-".to_owned()),
            Ok(Err(error)) => {
                unreadable = true;
                eprintln!("jobs.{}: cannot read its run record: {error}", job.name);
                ("?".to_owned(), "unknown".to_owned(), "-".to_owned())
            }
            Err(_) => {
                unreadable = true;
                eprintln!("jobs.{}: the database did not answer within 10 s", job.name);
                ("?".to_owned(), "unknown".to_owned(), "-".to_owned())
            }
        };
        let runner = match job.config.runner {
            palisade_config::JobRunner::InProcess => "in_process",
            palisade_config::JobRunner::Cronjob => "cronjob",
        };
        rows.push([
            job.name.clone(),
            job.kind().to_owned(),
            job.database_name.clone(),
            runner.to_owned(),
            job.schedule.pattern().to_owned(),
            next,
            when,
            outcome,
            rows_done,
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    if unreadable {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `palisade validate --check-db`: the jobs checked against their databases; false when any
/// check failed (warnings are printed and pass).
pub fn check_db(loaded: &LoadedConfig) -> bool {
    let Ok((rt, jobs)) = open(loaded) else {
        return false;
    };
    if jobs.is_empty() {
        return true;
    }
    let findings = rt.block_on(palisade_jobs::check_database(&jobs));
    let mut ok = true;
    for finding in &findings {
        let level = if finding.error { "" } else { "warning: " };
        ok &= !finding.error;
        eprintln!(
            "{}: {}: {level}{}",
            loaded.source, finding.field, finding.message
        );
    }
    if ok {
        println!(
            "{}: the databases have every table and column the jobs name",
            loaded.source
        );
    }
    ok
}
