//! The run record: one row per finished run in `palisade_job_runs`, in the job's own database.
//! It is how `palisade jobs list` knows the last run, and how every replica's metrics learn
//! about runs that another replica or a Kubernetes CronJob made. Palisade keeps the last 100
//! runs of each job.

use palisade_config::JOB_RUNS_TABLE;
use sqlx::Row;

use crate::JobError;
use crate::db::{Conn, on_conn, trusted};

/// Runs kept per job.
const KEEP_RUNS: i64 = 100;

/// A finished run as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRun {
    pub id: i64,
    /// Which process ran it (host name and process id).
    pub runner: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// "success" or "failure".
    pub outcome: String,
    pub batches: i64,
    pub rows_deleted: i64,
    pub rows_recovered: i64,
    pub stuck_rows: i64,
    /// JSON: rows deleted per table, the error of a failed run, the ids still stuck.
    pub detail: serde_json::Value,
}

/// Creates the table if it is missing, and only then: a database user without `CREATE` works
/// with a table made ahead of time (docs/jobs.md). Concurrent creators (two jobs starting
/// together) are serialized by a transaction-scoped advisory lock on PostgreSQL; SQLite
/// serializes writers.
pub(crate) async fn ensure_table(conn: &mut Conn) -> Result<(), JobError> {
    if let Some(pg) = conn.pg() {
        let exists: bool = sqlx::query_scalar(trusted(format!(
            "SELECT to_regclass('{JOB_RUNS_TABLE}') IS NOT NULL"
        )))
        .fetch_one(&mut *pg)
        .await?;
        if exists {
            return Ok(());
        }
        let mut tx = sqlx::Connection::begin(&mut *pg).await?;
        sqlx::query("SELECT pg_advisory_xact_lock(7306010497561227875)")
            .execute(&mut *tx)
            .await?;
        sqlx::query(trusted(format!(
            "CREATE TABLE IF NOT EXISTS {JOB_RUNS_TABLE} (\
             id BIGSERIAL PRIMARY KEY, job TEXT NOT NULL, runner TEXT NOT NULL, \
             started_at_ms BIGINT NOT NULL, finished_at_ms BIGINT NOT NULL, outcome TEXT NOT NULL, \
             batches BIGINT NOT NULL, rows_deleted BIGINT NOT NULL, rows_recovered BIGINT NOT NULL, \
             stuck_rows BIGINT NOT NULL, detail TEXT NOT NULL)"
        )))
        .execute(&mut *tx)
        .await?;
        sqlx::query(trusted(format!(
            "CREATE INDEX IF NOT EXISTS {JOB_RUNS_TABLE}_job ON {JOB_RUNS_TABLE} (job, id)"
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(());
    }
    if let Some(lite) = conn.lite() {
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'palisade_job_runs'",
        )
        .fetch_one(&mut *lite)
        .await?;
        if tables > 0 {
            return Ok(());
        }
    }
    conn.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {JOB_RUNS_TABLE} (\
         id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, runner TEXT NOT NULL, \
         started_at_ms INTEGER NOT NULL, finished_at_ms INTEGER NOT NULL, outcome TEXT NOT NULL, \
         batches INTEGER NOT NULL, rows_deleted INTEGER NOT NULL, rows_recovered INTEGER NOT NULL, \
         stuck_rows INTEGER NOT NULL, detail TEXT NOT NULL)"
    ))
    .await?;
    conn.execute(&format!(
        "CREATE INDEX IF NOT EXISTS {JOB_RUNS_TABLE}_job ON {JOB_RUNS_TABLE} (job, id)"
    ))
    .await
}

/// Records a finished run of `job` and drops its runs beyond the last 100.
pub(crate) async fn insert(conn: &mut Conn, job: &str, run: &RecordedRun) -> Result<(), JobError> {
    let insert = format!(
        "INSERT INTO {JOB_RUNS_TABLE} (job, runner, started_at_ms, finished_at_ms, outcome, \
         batches, rows_deleted, rows_recovered, stuck_rows, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    let prune = format!(
        "DELETE FROM {JOB_RUNS_TABLE} WHERE job = $1 AND id <= \
         (SELECT id FROM {JOB_RUNS_TABLE} WHERE job = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)"
    );
    on_conn!(conn, each c => {
            sqlx::query(trusted(&insert))
                .bind(job)
                .bind(&run.runner)
                .bind(run.started_at_ms)
                .bind(run.finished_at_ms)
                .bind(&run.outcome)
                .bind(run.batches)
                .bind(run.rows_deleted)
                .bind(run.rows_recovered)
                .bind(run.stuck_rows)
                .bind(run.detail.to_string())
                .execute(&mut *c)
                .await?;
            sqlx::query(trusted(&prune))
                .bind(job)
                .bind(KEEP_RUNS)
                .execute(&mut *c)
                .await?;
    });
    Ok(())
}

/// When the last successful run of `job` started (Unix ms), if there is one.
pub(crate) async fn last_success_start(
    conn: &mut Conn,
    job: &str,
) -> Result<Option<i64>, JobError> {
    let sql = format!(
        "SELECT max(started_at_ms) FROM {JOB_RUNS_TABLE} WHERE job = $1 AND outcome = 'success'"
    );
    let started: Option<i64> = on_conn!(conn, each c => {
        sqlx::query_scalar(trusted(&sql)).bind(job).fetch_one(&mut *c).await?
    });
    Ok(started)
}

/// The runs of `job` recorded after run `after` (0 for all), oldest first, at most 100.
pub(crate) async fn runs_after(
    conn: &mut Conn,
    job: &str,
    after: i64,
) -> Result<Vec<RecordedRun>, JobError> {
    let sql = format!(
        "SELECT id, runner, started_at_ms, finished_at_ms, outcome, batches, rows_deleted, \
         rows_recovered, stuck_rows, detail FROM {JOB_RUNS_TABLE} \
         WHERE job = $1 AND id > $2 ORDER BY id LIMIT 100"
    );
    let runs = on_conn!(conn, each c => {
            let rows = sqlx::query(trusted(&sql))
                .bind(job)
                .bind(after)
                .fetch_all(&mut *c)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(RecordedRun {
                        id: row.try_get(0)?,
                        runner: row.try_get(1)?,
                        started_at_ms: row.try_get(2)?,
                        finished_at_ms: row.try_get(3)?,
                        outcome: row.try_get(4)?,
                        batches: row.try_get(5)?,
                        rows_deleted: row.try_get(6)?,
                        rows_recovered: row.try_get(7)?,
                        stuck_rows: row.try_get(8)?,
                        detail: serde_json::from_str(&row.try_get::<String, _>(9)?)
                            .unwrap_or(serde_json::Value::Null),
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(runs)
}

/// The last recorded run of `job`, and when its last successful run ended (Unix ms).
pub(crate) async fn last(
    conn: &mut Conn,
    job: &str,
) -> Result<(Option<RecordedRun>, Option<i64>), JobError> {
    let newest = format!("SELECT max(id) FROM {JOB_RUNS_TABLE} WHERE job = $1");
    let success = format!(
        "SELECT max(finished_at_ms) FROM {JOB_RUNS_TABLE} WHERE job = $1 AND outcome = 'success'"
    );
    let (newest, success): (Option<i64>, Option<i64>) = on_conn!(conn, each c => (
        sqlx::query_scalar(trusted(&newest)).bind(job).fetch_one(&mut *c).await?,
        sqlx::query_scalar(trusted(&success)).bind(job).fetch_one(&mut *c).await?,
    ));
    let last = match newest {
        Some(id) => runs_after(conn, job, id - 1).await?.into_iter().next(),
        None => None,
    };
    Ok((last, success))
}

/// Whether `error` says the run record's table does not exist yet (no run was ever recorded).
pub(crate) fn is_missing_table(error: &JobError) -> bool {
    let JobError::Database(sqlx::Error::Database(db)) = error else {
        return false;
    };
    db.code().as_deref() == Some("42P01") || db.message().contains("no such table")
}
