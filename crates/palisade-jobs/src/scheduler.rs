//! Jobs inside the gateway: each `runner = "in_process"` job on its schedule, and, for every
//! job, the status read that keeps this replica's metrics in step with the run record.
//!
//! Every replica schedules every in-process job; at each firing the replicas race for the
//! job's lease and one runs it while the others count a skip. A replica's metrics count its
//! own runs as they end and, every 30 seconds, the runs other replicas and CronJob pods
//! recorded, so any one replica's page tells the job's story.

use std::collections::BTreeMap;
use std::time::Duration;

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use palisade_config::JobRunner;
use palisade_telemetry::metrics::JobMetrics;
use palisade_telemetry::{AuditSink, Metrics};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::record::{self, RecordedRun};
use crate::run::{RunOptions, run};
use crate::{Job, Jobs};

/// How often the run record is read for runs made elsewhere.
const STATUS_INTERVAL: Duration = Duration::from_secs(30);

/// Identifies this process in the run record: the host name (a Pod's name in Kubernetes) and
/// the process id.
pub fn runner_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{host}/{}", std::process::id())
}

/// The running scheduler; [`Scheduler::stop`] ends it.
pub struct Scheduler {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Scheduler {
    /// A scheduler with nothing to do, to stand in while one is replaced.
    pub fn idle() -> Scheduler {
        Scheduler {
            cancel: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// Starts the jobs' tasks. With no jobs it starts nothing.
    pub fn start(jobs: &Jobs, metrics: &Metrics, audit: &AuditSink) -> Scheduler {
        let cancel = CancellationToken::new();
        let runner = runner_id();
        let mut tasks = Vec::new();
        let mut handles = BTreeMap::new();
        for job in jobs.iter() {
            let tables: Vec<&str> = job.rules.iter().map(|r| r.label.as_str()).collect();
            let handle = metrics.job(&job.name, &tables, job.schedule.interval_secs());
            handles.insert(job.name.clone(), handle.clone());
            if job.config.runner == JobRunner::InProcess {
                tasks.push(tokio::spawn(scheduled(
                    job.clone(),
                    handle,
                    audit.clone(),
                    RunOptions {
                        dry_run: false,
                        cancel: cancel.clone(),
                        runner: runner.clone(),
                        skip_if_ran_since: None,
                    },
                )));
            }
        }
        if !jobs.is_empty() {
            let jobs: Vec<Job> = jobs.iter().cloned().collect();
            tasks.push(tokio::spawn(status(jobs, handles, runner, cancel.clone())));
        }
        Scheduler { cancel, tasks }
    }

    /// Stops the tasks, all within `grace`. A run in progress stops after its current batch
    /// (what it deleted stays deleted) and is recorded as a failure that says so; a batch that
    /// would outlast `grace` is cut off, rolled back by the database, and nothing is recorded.
    /// Either way the next run goes on from there.
    pub async fn stop(self, grace: Duration) {
        self.cancel.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

async fn scheduled(job: Job, metrics: JobMetrics, audit: AuditSink, options: RunOptions) {
    // The firing to run now: a missed one at start-up, then each one as it comes.
    let mut firing = overdue(&job).await;
    loop {
        if let Some(at) = firing {
            let options = RunOptions {
                skip_if_ran_since: Some(SystemTime::from(at) - CLOCK_SKEW),
                ..options.clone()
            };
            let report = run(&job, &options).await;
            report.log();
            report.count(&metrics);
            if let Some(event) = report.audit_event() {
                audit.emit(event);
            }
            if options.cancel.is_cancelled() {
                return;
            }
        }
        let now = Utc::now();
        let Some(next) = job.schedule.next_after(now) else {
            tracing::warn!(job = %job.name, schedule = job.schedule.pattern(), "the schedule never fires again");
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = options.cancel.cancelled() => return,
        }
        firing = Some(next);
    }
}

/// How far replicas' clocks may disagree: a run that started this long before a firing, by
/// another replica's clock, still counts as that firing's.
const CLOCK_SKEW: Duration = Duration::from_secs(5);

/// The firing a job missed while no gateway ran it, if any: the schedule's last firing before
/// now, when no successful run started after it (none ever did, or no replica was up then).
/// It runs at start-up instead of waiting for the next firing; one replica does, the others
/// find it done. When the record cannot be read, the schedule decides.
async fn overdue(job: &Job) -> Option<DateTime<Utc>> {
    let previous = job.schedule.previous_before(Utc::now())?;
    let mut conn = match job.database.pooled().await {
        Ok(conn) => conn,
        Err(error) => {
            tracing::warn!(job = %job.name, %error, "cannot read the job's run record; it runs at its next scheduled time");
            return None;
        }
    };
    match record::last_success_start(&mut conn, &job.name).await {
        Ok(Some(started_ms))
            if started_ms >= previous.timestamp_millis() - CLOCK_SKEW.as_millis() as i64 =>
        {
            None
        }
        Ok(_) => Some(previous),
        Err(error) if record::is_missing_table(&error) => Some(previous),
        Err(error) => {
            tracing::warn!(job = %job.name, %error, "cannot read the job's run record; it runs at its next scheduled time");
            None
        }
    }
}

/// Keeps every job's metrics in step with its run record.
async fn status(
    jobs: Vec<Job>,
    metrics: BTreeMap<String, JobMetrics>,
    runner: String,
    cancel: CancellationToken,
) {
    // Runs recorded before this process started are not counted again; only the last
    // success is taken from them.
    let mut seen: BTreeMap<String, Option<i64>> = BTreeMap::new();
    loop {
        for job in &jobs {
            let Some(handle) = metrics.get(&job.name) else {
                continue;
            };
            let cursor = seen.entry(job.name.clone()).or_default();
            if let Err(error) = refresh(job, handle, &runner, cursor).await {
                tracing::debug!(job = %job.name, %error, "could not read the job's run record");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(STATUS_INTERVAL) => {}
            () = cancel.cancelled() => return,
        }
    }
}

async fn refresh(
    job: &Job,
    metrics: &JobMetrics,
    runner: &str,
    cursor: &mut Option<i64>,
) -> Result<(), crate::JobError> {
    let mut conn = job.database.pooled().await?;
    let result = async {
        match *cursor {
            None => {
                let (last, success) = record::last(&mut conn, &job.name).await?;
                *cursor = Some(last.map_or(0, |run| run.id));
                if let Some(ms) = success {
                    metrics.last_success(ms as f64 / 1000.0);
                }
            }
            Some(after) => {
                for run in record::runs_after(&mut conn, &job.name, after).await? {
                    *cursor = Some(run.id);
                    if run.runner != runner {
                        count_recorded(metrics, &run);
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    match result {
        Err(error) if record::is_missing_table(&error) => {
            *cursor = Some(0);
            Ok(())
        }
        other => other,
    }
}

/// Counts a run another process recorded.
fn count_recorded(metrics: &JobMetrics, run: &RecordedRun) {
    let success = run.outcome == "success";
    let seconds = (run.finished_at_ms - run.started_at_ms).max(0) as f64 / 1000.0;
    metrics.run(success, seconds);
    if success {
        metrics.last_success(run.finished_at_ms as f64 / 1000.0);
    }
    if let Some(tables) = run.detail.get("deleted").and_then(|d| d.as_object()) {
        for (table, rows) in tables {
            if let Some(rows) = rows.as_u64().filter(|r| *r > 0) {
                metrics.deleted(table, rows);
            }
        }
    }
    if run.rows_recovered > 0 || run.stuck_rows > 0 {
        metrics.scanned(run.rows_recovered as u64, run.stuck_rows as u64);
    }
}
