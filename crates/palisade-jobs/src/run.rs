//! One run of a job: take the lease, make sure the run record exists, do the work batch by
//! batch, record the outcome.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use palisade_config::JobKind;
use palisade_telemetry::audit::{AuditCategory, AuditEvent, AuditOutcome};
use palisade_telemetry::metrics::JobMetrics;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::db::{Conn, RowId};
use crate::record::{self, RecordedRun};
use crate::{Job, JobError, lease};

/// Stuck ids named in the record, the audit event and the log, at most.
const NAMED_IDS: usize = 20;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Count what a retention run would delete (or list what a scan would touch) and change
    /// nothing; takes no lease and records nothing.
    pub dry_run: bool,
    /// Stops the run between batches (graceful shutdown).
    pub cancel: CancellationToken,
    /// Identifies this process in the run record (see [`crate::runner_id`]).
    pub runner: String,
    /// Skip the run when a successful one started at or after this time: replicas that wake
    /// for the same firing (this time is the firing's, less a few seconds for clock skew) run
    /// it once, even when the first run ends before the next replica asks for the lock.
    /// `None` (a run asked for by hand) always runs.
    pub skip_if_ran_since: Option<SystemTime>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success,
    Failure(String),
    /// Another run held the job's lease; nothing was done.
    Skipped,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub job: String,
    pub outcome: Outcome,
    pub dry_run: bool,
    pub started_at: SystemTime,
    pub duration: Duration,
    /// Transactions committed (deleting batches, or recovered rows).
    pub batches: u64,
    /// Rows deleted per table, in the order of the job's rules.
    pub deleted: Vec<(String, u64)>,
    /// Dry run: rows each table would lose now.
    pub would_delete: Vec<(String, u64)>,
    /// Stuck scan: rows fixed by `recover`.
    pub recovered: Vec<RowId>,
    /// Stuck scan: rows found that `recover` left alone (or every row, without `recover`).
    pub stuck: Vec<RowId>,
}

impl RunReport {
    fn new(job: &Job, dry_run: bool) -> Self {
        Self {
            job: job.name.clone(),
            outcome: Outcome::Success,
            dry_run,
            started_at: SystemTime::now(),
            duration: Duration::ZERO,
            batches: 0,
            deleted: job.rules.iter().map(|r| (r.label.clone(), 0)).collect(),
            would_delete: Vec::new(),
            recovered: Vec::new(),
            stuck: Vec::new(),
        }
    }

    pub fn rows_deleted(&self) -> u64 {
        self.deleted.iter().map(|(_, n)| n).sum()
    }

    /// The run's facts as JSON: for the record, the audit event and `--json` output.
    pub fn detail(&self) -> serde_json::Value {
        let ids = |ids: &[RowId]| -> Vec<String> {
            ids.iter()
                .take(NAMED_IDS)
                .map(ToString::to_string)
                .collect()
        };
        let mut detail = json!({
            "batches": self.batches,
            "deleted": self
                .deleted
                .iter()
                .map(|(t, n)| (t.clone(), json!(n)))
                .collect::<serde_json::Map<_, _>>(),
            "duration_ms": self.duration.as_millis() as u64,
            "dry_run": self.dry_run,
        });
        if self.dry_run {
            detail["would_delete"] = self
                .would_delete
                .iter()
                .map(|(t, n)| (t.clone(), json!(n)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        if !self.recovered.is_empty() || !self.stuck.is_empty() {
            detail["recovered"] = json!(self.recovered.len());
            detail["stuck"] = json!(self.stuck.len());
            detail["stuck_ids"] = json!(ids(&self.stuck));
            detail["recovered_ids"] = json!(ids(&self.recovered));
        }
        if let Outcome::Failure(error) = &self.outcome {
            detail["error"] = json!(error);
        }
        detail
    }

    /// The audit event of a run that did something: none for a skip or a dry run, which
    /// change nothing (the run that did the work is audited by its own process).
    pub fn audit_event(&self) -> Option<AuditEvent> {
        let outcome = match &self.outcome {
            _ if self.dry_run => return None,
            Outcome::Skipped => return None,
            Outcome::Success => AuditOutcome::Success,
            Outcome::Failure(_) => AuditOutcome::Failure,
        };
        let mut detail = self.detail();
        detail["job"] = json!(self.job);
        Some(AuditEvent::now(AuditCategory::Job, "job_run", outcome).details(detail))
    }

    /// Counts the run in the job's metrics.
    pub fn count(&self, metrics: &JobMetrics) {
        match &self.outcome {
            Outcome::Skipped => metrics.skipped(),
            outcome => {
                let success = *outcome == Outcome::Success;
                metrics.run(success, self.duration.as_secs_f64());
                if success {
                    metrics.last_success(unix_secs(SystemTime::now()));
                }
            }
        }
        for (table, rows) in &self.deleted {
            if *rows > 0 {
                metrics.deleted(table, *rows);
            }
        }
        if !self.recovered.is_empty() || !self.stuck.is_empty() {
            metrics.scanned(self.recovered.len() as u64, self.stuck.len() as u64);
        }
    }

    /// Writes the run's log line: info for a success, warn for a skip, error for a failure.
    pub fn log(&self) {
        let deleted = self.rows_deleted();
        let duration_ms = self.duration.as_millis() as u64;
        let (job, batches) = (&self.job, self.batches);
        let (recovered, stuck) = (self.recovered.len(), self.stuck.len());
        match &self.outcome {
            Outcome::Success if self.dry_run => tracing::info!(
                job, would_delete = ?self.would_delete, stuck, "job dry run: nothing changed"
            ),
            Outcome::Success => tracing::info!(
                job,
                batches,
                deleted,
                recovered,
                stuck,
                duration_ms,
                "job run succeeded"
            ),
            Outcome::Skipped => tracing::info!(
                job,
                "job run skipped: another replica or CronJob holds the job's lock"
            ),
            Outcome::Failure(error) => tracing::error!(
                job, %error, batches, deleted, recovered, duration_ms, "job run failed"
            ),
        }
        if stuck > 0 {
            let ids: Vec<String> = self
                .stuck
                .iter()
                .take(NAMED_IDS)
                .map(ToString::to_string)
                .collect();
            tracing::warn!(job, stuck, ids = ?ids, "stuck rows the scan could not recover");
        }
    }
}

/// Runs `job` once.
pub async fn run(job: &Job, options: &RunOptions) -> RunReport {
    let mut report = RunReport::new(job, options.dry_run);
    let clock = Instant::now();
    let result = attempt(job, options, &mut report, clock).await;
    report.duration = clock.elapsed();
    report.outcome = match result {
        Ok(true) => Outcome::Success,
        Ok(false) => Outcome::Skipped,
        Err(error) => Outcome::Failure(error.to_string()),
    };
    report
}

/// The last recorded run of `job` and when its last successful one ended (Unix ms); `None`
/// for both when no run was recorded yet.
pub async fn last_run(job: &Job) -> Result<(Option<RecordedRun>, Option<i64>), JobError> {
    let mut conn = job.database.pooled().await?;
    match record::last(&mut conn, &job.name).await {
        Err(error) if record::is_missing_table(&error) => Ok((None, None)),
        other => other,
    }
}

/// Ok(false) when the lease was held elsewhere.
async fn attempt(
    job: &Job,
    options: &RunOptions,
    report: &mut RunReport,
    clock: Instant,
) -> Result<bool, JobError> {
    let mut conn = job.database.connect().await?;
    conn.limit_statements(job.config.timeout.get()).await?;
    if options.dry_run {
        let result = dry_run(job, &mut conn, report).await;
        conn.close().await;
        return result.map(|()| true);
    }
    let Some(lease) = lease::acquire(&job.database, &mut conn, &job.name).await? else {
        conn.close().await;
        return Ok(false);
    };
    // The record must be writable before anything is deleted.
    let mut result = record::ensure_table(&mut conn).await;
    if result.is_ok()
        && let Some(since) = options.skip_if_ran_since
    {
        match record::last_success_start(&mut conn, &job.name).await {
            Ok(Some(started_ms)) if started_ms >= unix_ms(since) => {
                tracing::debug!(job = %job.name, "this firing already ran elsewhere");
                lease::release(lease, &mut conn).await;
                conn.close().await;
                return Ok(false);
            }
            Ok(_) => {}
            Err(error) => result = Err(error),
        }
    }
    if result.is_ok() && job.config.kind == JobKind::Retention {
        for rule in &job.rules {
            if let Err(error) = conn.check_deletable(&rule.table).await {
                result = Err(error);
                break;
            }
        }
    }
    if result.is_ok() {
        let deadline = clock + job.config.timeout.get();
        result = match job.config.kind {
            JobKind::Retention => retention(job, &mut conn, report, options, deadline).await,
            JobKind::StuckScan => stuck_scan(job, &mut conn, report, options, deadline).await,
        };
        let mut finished = report.clone();
        finished.duration = clock.elapsed();
        if let Err(error) = &result {
            finished.outcome = Outcome::Failure(error.to_string());
        }
        let recorded =
            record::insert(&mut conn, &job.name, &recorded(&finished, &options.runner)).await;
        if let (Ok(()), Err(error)) = (&result, recorded) {
            result = Err(error);
        }
    }
    lease::release(lease, &mut conn).await;
    conn.close().await;
    result.map(|()| true)
}

fn recorded(report: &RunReport, runner: &str) -> RecordedRun {
    let started_at_ms = unix_ms(report.started_at);
    RecordedRun {
        id: 0,
        runner: runner.to_owned(),
        started_at_ms,
        finished_at_ms: started_at_ms + report.duration.as_millis() as i64,
        outcome: match report.outcome {
            Outcome::Success => "success",
            _ => "failure",
        }
        .to_owned(),
        batches: report.batches as i64,
        rows_deleted: report.rows_deleted() as i64,
        rows_recovered: report.recovered.len() as i64,
        stuck_rows: report.stuck.len() as i64,
        detail: report.detail(),
    }
}

/// Checked between batches: shutdown, then the job's timeout.
fn go_on(
    job: &Job,
    options: &RunOptions,
    report: &RunReport,
    deadline: Instant,
) -> Result<(), JobError> {
    if options.cancel.is_cancelled() {
        return Err(JobError::Stopped {
            batches: report.batches,
        });
    }
    if Instant::now() >= deadline {
        return Err(JobError::TimedOut {
            timeout: job.config.timeout.get(),
            batches: report.batches,
        });
    }
    Ok(())
}

async fn retention(
    job: &Job,
    conn: &mut Conn,
    report: &mut RunReport,
    options: &RunOptions,
    deadline: Instant,
) -> Result<(), JobError> {
    let batch_size = job.config.batch_size;
    for (index, rule) in job.rules.iter().enumerate() {
        loop {
            go_on(job, options, report, deadline)?;
            let deleted = conn
                .delete_batch(&rule.table, &rule.column, rule.older_than, batch_size)
                .await?;
            if deleted > 0 {
                report.batches += 1;
                report.deleted[index].1 += deleted;
            }
            tracing::debug!(
                job = %job.name,
                table = %rule.label,
                batch = report.batches,
                deleted,
                total = report.deleted[index].1,
                "job batch committed"
            );
            if deleted < u64::from(batch_size) {
                break;
            }
        }
    }
    Ok(())
}

async fn stuck_scan(
    job: &Job,
    conn: &mut Conn,
    report: &mut RunReport,
    options: &RunOptions,
    deadline: Instant,
) -> Result<(), JobError> {
    let query = job.config.query.as_deref().unwrap_or_default();
    let ids = conn.stuck_ids(query, job.config.max_per_scan).await?;
    let Some(recover) = job.config.recover.as_deref() else {
        report.stuck = ids;
        return Ok(());
    };
    for id in ids {
        go_on(job, options, report, deadline)?;
        if conn.recover(recover, &id).await? {
            report.batches += 1;
            tracing::debug!(job = %job.name, %id, "stuck row recovered");
            report.recovered.push(id);
        } else {
            report.stuck.push(id);
        }
    }
    Ok(())
}

async fn dry_run(job: &Job, conn: &mut Conn, report: &mut RunReport) -> Result<(), JobError> {
    match job.config.kind {
        JobKind::Retention => {
            for rule in &job.rules {
                let rows = conn
                    .count_older(&rule.table, &rule.column, rule.older_than)
                    .await?;
                report.would_delete.push((rule.label.clone(), rows));
            }
        }
        JobKind::StuckScan => {
            let query = job.config.query.as_deref().unwrap_or_default();
            report.stuck = conn.stuck_ids(query, job.config.max_per_scan).await?;
        }
    }
    Ok(())
}

pub(crate) fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn unix_secs(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
