//! The maintenance part of the config tree: `[databases.NAME]` and `[jobs.NAME]` (see
//! [`crate::model`] for the conventions every field follows).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::units::Duration;

/// The name of the table in which Palisade records each job run, in the job's own database.
/// No job may delete from it.
pub const JOB_RUNS_TABLE: &str = "palisade_job_runs";

/// A database that maintenance jobs work on: the protected app's own (`[databases.NAME]`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// "postgres://user:password@host:5432/app" (also "postgresql://"; `?sslmode=require`
    /// for TLS) or "sqlite:///var/lib/app/app.db" (also "sqlite://app.db" relative to the
    /// working directory). Usually a secret reference ("${env:APP_DATABASE_URL}"), resolved
    /// at load and never logged.
    pub url: Secret,
    /// Tables no job may delete from, e.g. ["audit_events"]: a job that names one is a config
    /// error. Palisade's own run record, `palisade_job_runs`, is always protected.
    #[serde(default)]
    pub protected_tables: Vec<String>,
    /// Most connections Palisade opens to this database at once for reading job status; each
    /// running job holds one more of its own.
    #[serde(default = "default_db_connections")]
    pub max_connections: u32,
    /// Longest wait to open a connection; past it the run (or the status read) fails.
    #[serde(default = "default_db_connect_timeout")]
    pub connect_timeout: Duration,
}

/// A maintenance job (`[jobs.NAME]`): a retention clean-up or a stuck-work scan on a database.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// The `[databases.NAME]` the job works on.
    pub database: String,
    /// When it runs: a five-field cron expression in UTC ("0 */6 * * *": every 6 hours), the
    /// same a Kubernetes CronJob takes; "@hourly", "@daily" and the like also work.
    pub schedule: String,
    /// "retention" (the default): delete rows older than a cutoff, by the `delete` rules; or
    /// "stuck_scan": find stuck work with `query` and fix each row with `recover`.
    #[serde(default)]
    pub kind: JobKind,
    /// "in_process" (the default): the gateway runs the job on its schedule, and one replica
    /// at a time does (a PostgreSQL advisory lock, a SQLite file lock); or "cronjob": the
    /// gateway never runs it and a scheduler outside (a Kubernetes CronJob) runs `palisade jobs
    /// run NAME`. Either way every replica reports the job's runs in its metrics.
    #[serde(default)]
    pub runner: JobRunner,
    /// Rows deleted per transaction. Each batch commits on its own, so a run that is stopped
    /// keeps what it deleted and the next run goes on from there.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Retention: the tables to clean, each with the column that dates a row and the age
    /// past which a row goes. Rows whose column is NULL never match.
    #[serde(default)]
    pub delete: Vec<DeleteRule>,
    /// Stuck scan: a SELECT whose first column identifies each stuck row (an integer or text
    /// id), e.g. "SELECT id FROM batches WHERE status = 'processing' AND updated_at < now() -
    /// interval '15 minutes'".
    #[serde(default)]
    pub query: Option<String>,
    /// Stuck scan: the statement run for each row `query` found, with the row's id as `$1`,
    /// in its own transaction; a row it changes counts as recovered, a row it leaves alone is
    /// reported as still stuck. Without it the scan only reports.
    #[serde(default)]
    pub recover: Option<String>,
    /// Stuck scan: most rows handled by one scan; the rest wait for the next.
    #[serde(default = "default_max_per_scan")]
    pub max_per_scan: u32,
    /// Longest a run may take. A retention run past it stops after the current batch (what
    /// it deleted stays deleted) and counts as failed.
    #[serde(default = "default_job_timeout")]
    pub timeout: Duration,
}

/// What a job does.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Delete old rows in batches.
    #[default]
    Retention,
    /// Find and recover stuck work.
    StuckScan,
}

/// Who starts a job's runs.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobRunner {
    /// The gateway, on the job's schedule, one replica at a time.
    #[default]
    InProcess,
    /// An outside scheduler running `palisade jobs run NAME` (a Kubernetes CronJob).
    Cronjob,
}

/// One table a retention job cleans.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeleteRule {
    /// The table, as the database names it: letters, digits and "_", optionally with its
    /// schema ("auth.refresh_tokens"). It is quoted, so the case must match (PostgreSQL keeps
    /// unquoted names in lowercase).
    pub table: String,
    /// The column that dates a row: a timestamp (PostgreSQL `timestamp`/`timestamptz`; in
    /// SQLite ISO-8601 text in UTC such as "2026-01-02 03:04:05", or Unix seconds).
    pub time_column: String,
    /// Rows whose `time_column` is older than this go, e.g. "30d".
    pub older_than: Duration,
}

fn default_db_connections() -> u32 {
    2
}
fn default_db_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_batch_size() -> u32 {
    1000
}
fn default_max_per_scan() -> u32 {
    100
}
fn default_job_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}
