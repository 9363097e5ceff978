//! Maintenance jobs on the protected app's own database (`[jobs.NAME]`).
//!
//! Two kinds: a **retention** job deletes rows older than a cutoff, table by table, in batches
//! of `batch_size` rows, each batch its own transaction, so a run that is killed keeps what it
//! deleted and the next run goes on; a **stuck scan** finds stuck work with the user's query and
//! fixes each row with the user's recover statement, one transaction per row.
//!
//! A run holds the job's [lease](lease) for its whole length, so two replicas (or a replica and
//! a CronJob pod) never run the same job at once: the one that finds it held skips. Each
//! finished run is recorded in `palisade_job_runs` in the same database ([record]), which is how
//! `palisade jobs list` and every replica's metrics learn about runs made elsewhere.
//!
//! Table and column names come from the config as validated [`SqlName`]s and are always
//! quoted; the user's stuck-scan statements are the user's SQL, run as given with the row id
//! bound as `$1`.

mod check;
mod db;
mod lease;
mod record;
mod run;
mod scheduler;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use palisade_config::{Config, JobConfig, JobKind, SqlName, parse_schedule};

pub use check::{Finding, check_database};
pub use db::{Database, RowId};
pub use record::RecordedRun;
pub use run::{Outcome, RunOptions, RunReport, last_run, run};
pub use scheduler::{Scheduler, runner_id};

/// Why a run (or opening a database) failed. Messages name what to fix.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("databases.{database}.url cannot be used: {message}")]
    Url { database: String, message: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("could not connect to the database within {0:?}")]
    ConnectTimeout(Duration),
    #[error("cannot use the job lock file {path}: {error}")]
    Lock {
        path: std::path::PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error(
        "the stuck-scan query's first column must be a non-NULL integer or text id; cast \
         others, e.g. SELECT id::text, and cast back in recover, e.g. WHERE id = $1::uuid"
    )]
    IdType,
    #[error("table {table} {reason}")]
    Table { table: String, reason: &'static str },
    #[error(
        "stopped after {timeout:?} (the job's timeout), {batches} batches in; what they deleted \
         stays deleted and the next run goes on"
    )]
    TimedOut { timeout: Duration, batches: u64 },
    #[error("stopped by shutdown, {batches} batches in; the next run goes on")]
    Stopped { batches: u64 },
}

/// One retention rule, with its names checked.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) table: SqlName,
    /// The table as the config names it, for logs and metric labels.
    pub(crate) label: String,
    pub(crate) column: SqlName,
    pub(crate) older_than: Duration,
}

/// A job's cron schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    pattern: String,
}

impl Schedule {
    /// The first time after `after` the schedule fires.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    /// The last time before `before` the schedule fired.
    pub fn previous_before(&self, before: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&before, false).ok()
    }

    /// The longest gap between two firings over the next eight days (at most 3000 firings), in
    /// seconds: what "has not run for two schedules" is measured in. A weekdays-only job has a
    /// weekend gap, a 09:00 to 17:00 job a night.
    pub fn interval_secs(&self) -> f64 {
        let start = Utc::now();
        let horizon = start + chrono::Duration::days(8);
        let mut longest = 0.0_f64;
        let Some(mut previous) = self.next_after(start) else {
            return 0.0;
        };
        for _ in 0..3000 {
            let Some(next) = self.next_after(previous) else {
                break;
            };
            longest = longest.max((next - previous).as_seconds_f64());
            if next > horizon {
                break;
            }
            previous = next;
        }
        longest
    }

    /// The pattern as configured.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

/// A configured job, ready to run.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub config: JobConfig,
    pub database_name: String,
    pub database: Arc<Database>,
    pub schedule: Schedule,
    pub(crate) rules: Vec<Rule>,
}

impl Job {
    /// "retention" or "stuck_scan".
    pub fn kind(&self) -> &'static str {
        match self.config.kind {
            JobKind::Retention => "retention",
            JobKind::StuckScan => "stuck_scan",
        }
    }
}

/// Every job of a config, sharing one [`Database`] per `[databases.NAME]`.
#[derive(Debug, Clone, Default)]
pub struct Jobs {
    jobs: BTreeMap<String, Job>,
}

impl Jobs {
    /// The jobs of a validated config. Connects to nothing yet.
    pub fn build(config: &Config) -> Result<Jobs, JobError> {
        let mut databases = BTreeMap::new();
        for (name, database) in &config.databases {
            databases.insert(name.clone(), Arc::new(Database::open(name, database)?));
        }
        let mut jobs = BTreeMap::new();
        for (name, job) in &config.jobs {
            // A validated config names a configured database and a valid schedule and names.
            let Some(database) = databases.get(&job.database) else {
                continue;
            };
            let Ok(cron) = parse_schedule(&job.schedule) else {
                continue;
            };
            let rules = job
                .delete
                .iter()
                .filter_map(|rule| {
                    Some(Rule {
                        table: SqlName::parse(&rule.table, 2)?,
                        label: rule.table.clone(),
                        column: SqlName::parse(&rule.time_column, 1)?,
                        older_than: rule.older_than.get(),
                    })
                })
                .collect();
            jobs.insert(
                name.clone(),
                Job {
                    name: name.clone(),
                    config: job.clone(),
                    database_name: job.database.clone(),
                    database: database.clone(),
                    schedule: Schedule {
                        cron,
                        pattern: job.schedule.clone(),
                    },
                    rules,
                },
            );
        }
        Ok(Jobs { jobs })
    }

    pub fn get(&self, name: &str) -> Option<&Job> {
        self.jobs.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// The configured job names, for "no such job" messages.
    pub fn names(&self) -> Vec<&str> {
        self.jobs.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(pattern: &str) -> Schedule {
        Schedule {
            cron: parse_schedule(pattern).unwrap(),
            pattern: pattern.to_owned(),
        }
    }

    #[test]
    fn the_interval_is_the_longest_gap_of_the_coming_week() {
        assert_eq!(schedule("0 */6 * * *").interval_secs(), 6.0 * 3600.0);
        assert_eq!(schedule("*/5 * * * *").interval_secs(), 300.0);
        // Weekdays only: the weekend, Friday to Monday.
        assert_eq!(schedule("0 0 * * 1-5").interval_secs(), 3.0 * 86_400.0);
        // Office hours: the night, 17:00 to 09:00, whatever the time now.
        assert_eq!(schedule("0 9-17 * * *").interval_secs(), 16.0 * 3600.0);
        assert!(schedule("0 0 1 * *").interval_secs() >= 28.0 * 86_400.0);
    }
}
