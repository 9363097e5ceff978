//! Maintenance jobs. Label values come from the config (job and table names) and from a fixed
//! list (outcomes). The job's label is `job_name`: `job` is Prometheus's own (the scrape job),
//! which would rename ours to `exported_job`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use super::F64Gauge;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct JobLabel {
    job_name: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    job_name: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TableLabels {
    job_name: Arc<str>,
    table: String,
}

/// Runs from 100 ms to an hour.
const DURATION_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

#[derive(Clone, Debug)]
pub(super) struct JobFamilies {
    pub(super) runs: Family<OutcomeLabels, Counter>,
    pub(super) deleted: Family<TableLabels, Counter>,
    pub(super) recovered: Family<JobLabel, Counter>,
    pub(super) stuck: Family<JobLabel, Gauge>,
    pub(super) duration: Family<JobLabel, Histogram, fn() -> Histogram>,
    pub(super) last_success: Family<JobLabel, F64Gauge>,
    pub(super) interval: Family<JobLabel, F64Gauge>,
}

impl Default for JobFamilies {
    fn default() -> Self {
        Self {
            runs: Family::default(),
            deleted: Family::default(),
            recovered: Family::default(),
            stuck: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            last_success: Family::default(),
            interval: Family::default(),
        }
    }
}

/// One job's handle. Creating it puts the job's series on the page at 0, so an alert on a job
/// that never ran has something to look at.
#[derive(Clone, Debug)]
pub struct JobMetrics {
    job: Arc<str>,
    families: JobFamilies,
}

impl JobMetrics {
    pub(super) fn new(
        job: &str,
        tables: &[&str],
        interval_secs: f64,
        families: &JobFamilies,
    ) -> Self {
        let this = Self {
            job: Arc::from(job),
            families: families.clone(),
        };
        for outcome in ["success", "failure", "skipped"] {
            drop(this.families.runs.get_or_create(&this.outcome(outcome)));
        }
        for table in tables {
            this.deleted(table, 0);
        }
        drop(this.families.recovered.get_or_create(&this.label()));
        drop(this.families.stuck.get_or_create(&this.label()));
        drop(this.families.duration.get_or_create(&this.label()));
        drop(this.families.last_success.get_or_create(&this.label()));
        this.families
            .interval
            .get_or_create(&this.label())
            .set(interval_secs);
        this
    }

    fn label(&self) -> JobLabel {
        JobLabel {
            job_name: self.job.clone(),
        }
    }

    fn outcome(&self, outcome: &'static str) -> OutcomeLabels {
        OutcomeLabels {
            job_name: self.job.clone(),
            outcome,
        }
    }

    /// Counts a finished run (`success` or `failure`) with how long it took.
    pub fn run(&self, success: bool, seconds: f64) {
        let outcome = if success { "success" } else { "failure" };
        self.families
            .runs
            .get_or_create(&self.outcome(outcome))
            .inc();
        self.families
            .duration
            .get_or_create(&self.label())
            .observe(seconds);
    }

    /// Counts a run not started because another replica held the job's lock.
    pub fn skipped(&self) {
        self.families
            .runs
            .get_or_create(&self.outcome("skipped"))
            .inc();
    }

    /// Counts rows deleted from `table`.
    pub fn deleted(&self, table: &str, rows: u64) {
        let labels = TableLabels {
            job_name: self.job.clone(),
            table: table.to_owned(),
        };
        self.families.deleted.get_or_create(&labels).inc_by(rows);
    }

    /// Counts recovered rows and sets the rows still stuck after the scan.
    pub fn scanned(&self, recovered: u64, still_stuck: u64) {
        self.families
            .recovered
            .get_or_create(&self.label())
            .inc_by(recovered);
        self.families
            .stuck
            .get_or_create(&self.label())
            .set(i64::try_from(still_stuck).unwrap_or(i64::MAX));
    }

    /// Moves the Unix time the last successful run ended forward to `unix_secs` (a run read
    /// late from the record never moves it back).
    pub fn last_success(&self, unix_secs: f64) {
        let gauge = self.families.last_success.get_or_create(&self.label());
        if unix_secs > gauge.get() {
            gauge.set(unix_secs);
        }
    }
}
