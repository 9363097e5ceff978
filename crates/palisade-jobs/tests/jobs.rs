//! Maintenance jobs against the real PostgreSQL (127.0.0.1:5432, database `palisade_test`,
//! made by scripts/services.sh) and a real SQLite file. Every test runs on both, with tables of
//! its own so the tests can run in parallel.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use palisade_jobs::{Jobs, Outcome, RowId, RunOptions, check_database, last_run, run};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, AssertSqlSafe};

#[derive(Clone, Copy, Debug)]
enum Db {
    Postgres,
    Sqlite,
}

/// A database for one test: its URL and a pool to set up and inspect tables with.
struct TestDb {
    db: Db,
    url: String,
    pool: AnyPool,
    _dir: Option<tempfile_dir::Dir>,
}

mod tempfile_dir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn open(db: Db) -> TestDb {
    sqlx::any::install_default_drivers();
    let (url, dir) = match db {
        Db::Postgres => (
            std::env::var("PALISADE_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/palisade_test".to_owned()),
            None,
        ),
        Db::Sqlite => {
            let dir = std::env::temp_dir().join(unique("palisade-jobs"));
            std::fs::create_dir_all(&dir).unwrap();
            let url = format!("sqlite://{}/app.db?mode=rwc", dir.display());
            (url, Some(tempfile_dir::Dir(dir)))
        }
    };
    let pool = AnyPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{db:?} at {url} must be reachable for this test: {e}"));
    TestDb {
        db,
        url,
        pool,
        _dir: dir,
    }
}

impl TestDb {
    async fn exec(&self, sql: &str) {
        sqlx::query(AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `n` rows in `table` dated `days` days ago (NULL when `days` is None).
    async fn insert(&self, table: &str, column: &str, n: usize, days: Option<i64>) {
        let value = match (self.db, days) {
            (_, None) => "NULL".to_owned(),
            (Db::Postgres, Some(d)) => format!("now() - interval '{d} days'"),
            (Db::Sqlite, Some(d)) => format!("datetime('now', '-{d} days')"),
        };
        let series = match self.db {
            Db::Postgres => format!("SELECT {value} FROM generate_series(1, {n})"),
            Db::Sqlite => format!(
                "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) \
                 SELECT {value} FROM s"
            ),
        };
        self.exec(&format!("INSERT INTO {table} ({column}) {series}"))
            .await;
    }

    fn id_column(&self) -> &'static str {
        match self.db {
            Db::Postgres => "id BIGSERIAL PRIMARY KEY",
            Db::Sqlite => "id INTEGER PRIMARY KEY AUTOINCREMENT",
        }
    }

    fn time_type(&self) -> &'static str {
        match self.db {
            Db::Postgres => "TIMESTAMPTZ",
            Db::Sqlite => "TEXT",
        }
    }

    /// A token table with `expired` rows 40 days old and `fresh` rows 1 day old.
    async fn tokens(&self, expired: usize, fresh: usize) -> String {
        let table = unique("tokens");
        self.exec(&format!(
            "CREATE TABLE {table} ({}, expires_at {})",
            self.id_column(),
            self.time_type()
        ))
        .await;
        self.insert(&table, "expires_at", expired, Some(40)).await;
        self.insert(&table, "expires_at", fresh, Some(1)).await;
        table
    }

    /// The jobs of a config made of `toml` and this database as `[databases.app]`.
    fn jobs(&self, toml: &str) -> Jobs {
        let text = format!(
            "[[routes]]\nname = \"all\"\npath = \"/\"\nupstream = \"app\"\n[upstreams.app]\nendpoints = [\"127.0.0.1:9\"]\n\
             [databases.app]\nurl = \"{}\"\nprotected_tables = [\"audit_events\"]\n{toml}",
            self.url
        );
        let loaded = palisade_config::load_str("test.toml", &text, &[])
            .unwrap_or_else(|e| panic!("config must load: {e}\n{text}"));
        Jobs::build(&loaded.config).expect("jobs build")
    }
}

fn cleanup(job: &str, table: &str, batch_size: u32) -> String {
    format!(
        "[jobs.{job}]\ndatabase = \"app\"\nschedule = \"0 */6 * * *\"\nbatch_size = {batch_size}\n\
         [[jobs.{job}.delete]]\ntable = \"{table}\"\ntime_column = \"expires_at\"\nolder_than = \"30d\"\n"
    )
}

fn options() -> RunOptions {
    RunOptions {
        runner: "test/1".to_owned(),
        ..RunOptions::default()
    }
}

async fn deletes_exactly_the_expired_rows_in_batches(db: Db) {
    let t = open(db).await;
    let table = t.tokens(10_500, 500).await;
    let audit = unique("audit_events");
    t.exec(&format!(
        "CREATE TABLE {audit} ({}, created_at {})",
        t.id_column(),
        t.time_type()
    ))
    .await;
    t.insert(&audit, "created_at", 300, Some(400)).await;
    let job = unique("cleanup");
    let jobs = t.jobs(&cleanup(&job, &table, 1000));

    let report = run(jobs.get(&job).unwrap(), &options()).await;

    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert_eq!(report.deleted, vec![(table.clone(), 10_500)]);
    assert_eq!(report.batches, 11, "10 full batches of 1000 and one of 500");
    assert_eq!(t.count(&format!("SELECT count(*) FROM {table}")).await, 500);
    let fresh = match db {
        Db::Postgres => {
            format!("SELECT count(*) FROM {table} WHERE expires_at > now() - interval '2 days'")
        }
        Db::Sqlite => {
            format!("SELECT count(*) FROM {table} WHERE expires_at > datetime('now', '-2 days')")
        }
    };
    assert_eq!(t.count(&fresh).await, 500, "only fresh rows are left");
    assert_eq!(t.count(&format!("SELECT count(*) FROM {audit}")).await, 300);

    let (last, success) = last_run(jobs.get(&job).unwrap()).await.unwrap();
    let last = last.expect("the run is recorded");
    assert_eq!(
        (last.outcome.as_str(), last.rows_deleted, last.batches),
        ("success", 10_500, 11)
    );
    assert_eq!(last.runner, "test/1");
    assert_eq!(success, Some(last.finished_at_ms));

    // Nothing left to do: the next run deletes nothing and succeeds.
    let again = run(jobs.get(&job).unwrap(), &options()).await;
    assert_eq!(
        (again.outcome.clone(), again.rows_deleted(), again.batches),
        (Outcome::Success, 0, 0)
    );
}

#[tokio::test]
async fn postgres_deletes_exactly_the_expired_rows_in_batches() {
    deletes_exactly_the_expired_rows_in_batches(Db::Postgres).await;
}

#[tokio::test]
async fn sqlite_deletes_exactly_the_expired_rows_in_batches() {
    deletes_exactly_the_expired_rows_in_batches(Db::Sqlite).await;
}

async fn null_times_never_match(db: Db) {
    let t = open(db).await;
    let table = unique("refresh_tokens");
    t.exec(&format!(
        "CREATE TABLE {table} ({}, revoked_at {})",
        t.id_column(),
        t.time_type()
    ))
    .await;
    t.insert(&table, "revoked_at", 20, None).await;
    t.insert(&table, "revoked_at", 30, Some(31)).await;
    t.insert(&table, "revoked_at", 40, Some(29)).await;
    let job = unique("revoked");
    let jobs = t.jobs(&format!(
        "[jobs.{job}]\ndatabase = \"app\"\nschedule = \"@daily\"\n[[jobs.{job}.delete]]\n\
         table = \"{table}\"\ntime_column = \"revoked_at\"\nolder_than = \"30d\"\n"
    ));
    let report = run(jobs.get(&job).unwrap(), &options()).await;
    assert_eq!(report.outcome, Outcome::Success);
    assert_eq!(report.rows_deleted(), 30);
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM {table} WHERE revoked_at IS NULL"
        ))
        .await,
        20
    );
    assert_eq!(t.count(&format!("SELECT count(*) FROM {table}")).await, 60);
}

#[tokio::test]
async fn postgres_null_times_never_match() {
    null_times_never_match(Db::Postgres).await;
}

#[tokio::test]
async fn sqlite_null_times_never_match() {
    null_times_never_match(Db::Sqlite).await;
}

async fn dry_run_deletes_nothing(db: Db) {
    let t = open(db).await;
    let table = t.tokens(1_234, 10).await;
    let job = unique("dry");
    let jobs = t.jobs(&cleanup(&job, &table, 100));
    let report = run(
        jobs.get(&job).unwrap(),
        &RunOptions {
            dry_run: true,
            ..options()
        },
    )
    .await;
    assert_eq!(report.outcome, Outcome::Success);
    assert_eq!(report.would_delete, vec![(table.clone(), 1_234)]);
    assert_eq!(report.rows_deleted(), 0);
    assert_eq!(
        t.count(&format!("SELECT count(*) FROM {table}")).await,
        1_244
    );
    let (last, _) = last_run(jobs.get(&job).unwrap()).await.unwrap();
    assert!(last.is_none(), "a dry run is not recorded");
}

#[tokio::test]
async fn postgres_dry_run_deletes_nothing() {
    dry_run_deletes_nothing(Db::Postgres).await;
}

#[tokio::test]
async fn sqlite_dry_run_deletes_nothing() {
    dry_run_deletes_nothing(Db::Sqlite).await;
}

async fn two_runners_never_run_a_job_at_once(db: Db) {
    let t = open(db).await;
    let table = t.tokens(10_500, 500).await;
    let job = unique("race");
    let jobs = t.jobs(&cleanup(&job, &table, 100));
    let runs = (0..4).map(|i| {
        let job = jobs.get(&job).unwrap().clone();
        tokio::spawn(async move {
            let options = RunOptions {
                runner: format!("replica/{i}"),
                ..RunOptions::default()
            };
            run(&job, &options).await
        })
    });
    let reports: Vec<_> = futures_join(runs).await;
    let ran: Vec<_> = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Success)
        .collect();
    let skipped = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Skipped)
        .count();
    assert_eq!((ran.len(), skipped), (1, 3), "{reports:?}");
    assert_eq!(ran[0].rows_deleted(), 10_500);
    assert_eq!(t.count(&format!("SELECT count(*) FROM {table}")).await, 500);
    let recorded = t
        .count(&format!(
            "SELECT count(*) FROM palisade_job_runs WHERE job = '{job}'"
        ))
        .await;
    assert_eq!(recorded, 1, "skipped runs are not recorded");
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.expect("run task"));
    }
    out
}

#[tokio::test]
async fn postgres_two_runners_never_run_a_job_at_once() {
    two_runners_never_run_a_job_at_once(Db::Postgres).await;
}

#[tokio::test]
async fn sqlite_two_runners_never_run_a_job_at_once() {
    two_runners_never_run_a_job_at_once(Db::Sqlite).await;
}

async fn a_killed_run_resumes(db: Db) {
    let t = open(db).await;
    let table = t.tokens(10_500, 500).await;
    let job = unique("killed");
    let jobs = t.jobs(&cleanup(&job, &table, 50));
    let first = {
        let job = jobs.get(&job).unwrap().clone();
        tokio::spawn(async move { run(&job, &options()).await })
    };
    // Kill it once some batches have committed and many are left.
    let count = format!("SELECT count(*) FROM {table}");
    let mut left = t.count(&count).await;
    for _ in 0..2000 {
        if left < 10_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        left = t.count(&count).await;
    }
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    // A batch in flight at the kill commits or rolls back on the server as the connection goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_kill = t.count(&count).await;
    assert!(
        after_kill < 11_000 && after_kill > 500,
        "killed mid-run: {after_kill} rows left"
    );

    // The lock of the killed run goes with its connection; the next run takes it and finishes.
    let mut report = run(jobs.get(&job).unwrap(), &options()).await;
    for _ in 0..50 {
        if report.outcome != Outcome::Skipped {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        report = run(jobs.get(&job).unwrap(), &options()).await;
    }
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert_eq!(report.rows_deleted() as i64, after_kill - 500);
    assert_eq!(
        t.count(&count).await,
        500,
        "every expired row is gone, every fresh one stays"
    );
}

#[tokio::test]
async fn postgres_a_killed_run_resumes() {
    a_killed_run_resumes(Db::Postgres).await;
}

#[tokio::test]
async fn sqlite_a_killed_run_resumes() {
    a_killed_run_resumes(Db::Sqlite).await;
}

async fn stuck_scan_recovers_only_batches_whose_recipients_are_final(db: Db) {
    let t = open(db).await;
    let batches = unique("batches");
    let recipients = unique("recipients");
    t.exec(&format!(
        "CREATE TABLE {batches} (id INTEGER PRIMARY KEY, status TEXT NOT NULL, updated_at {})",
        t.time_type()
    ))
    .await;
    t.exec(&format!(
        "CREATE TABLE {recipients} (batch_id INTEGER NOT NULL, status TEXT NOT NULL)"
    ))
    .await;
    let (old, recent) = match db {
        Db::Postgres => ("now() - interval '1 hour'", "now()"),
        Db::Sqlite => ("datetime('now', '-1 hour')", "datetime('now')"),
    };
    // 1-3: stuck, every recipient final; 4-5: stuck with a recipient pending; 6: processing
    // but recent; 7: completed long ago.
    for (id, status, at) in [
        (1, "processing", old),
        (2, "processing", old),
        (3, "processing", old),
        (4, "processing", old),
        (5, "processing", old),
        (6, "processing", recent),
        (7, "completed", old),
    ] {
        t.exec(&format!(
            "INSERT INTO {batches} VALUES ({id}, '{status}', {at})"
        ))
        .await;
    }
    for (batch, status) in [
        (1, "sent"),
        (1, "failed"),
        (2, "sent"),
        (4, "sent"),
        (4, "queued"),
        (5, "sending"),
        (6, "queued"),
    ] {
        t.exec(&format!(
            "INSERT INTO {recipients} VALUES ({batch}, '{status}')"
        ))
        .await;
    }
    let stale = match db {
        Db::Postgres => "now() - interval '15 minutes'",
        Db::Sqlite => "datetime('now', '-15 minutes')",
    };
    let job = unique("stuck");
    let jobs = t.jobs(&format!(
        "[jobs.{job}]\ndatabase = \"app\"\nschedule = \"*/5 * * * *\"\nkind = \"stuck_scan\"\n\
         query = \"SELECT id FROM {batches} WHERE status = 'processing' AND updated_at < {stale} ORDER BY id\"\n\
         recover = \"UPDATE {batches} SET status = 'completed' WHERE id = $1 AND NOT EXISTS \
         (SELECT 1 FROM {recipients} WHERE batch_id = $1 AND status NOT IN ('sent','failed'))\"\n\
         max_per_scan = 100\n"
    ));
    let report = run(jobs.get(&job).unwrap(), &options()).await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    let ids = |ids: &[RowId]| ids.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(ids(&report.recovered), ["1", "2", "3"]);
    assert_eq!(ids(&report.stuck), ["4", "5"]);
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM {batches} WHERE status = 'completed'"
        ))
        .await,
        4,
        "1, 2, 3 recovered and 7 as it was"
    );
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM {batches} WHERE status = 'processing' AND id IN (4, 5, 6)"
        ))
        .await,
        3
    );
    let (last, _) = last_run(jobs.get(&job).unwrap()).await.unwrap();
    let last = last.unwrap();
    assert_eq!((last.rows_recovered, last.stuck_rows), (3, 2));
    assert_eq!(last.detail["stuck_ids"], serde_json::json!(["4", "5"]));
}

#[tokio::test]
async fn postgres_stuck_scan_recovers_only_batches_whose_recipients_are_final() {
    stuck_scan_recovers_only_batches_whose_recipients_are_final(Db::Postgres).await;
}

#[tokio::test]
async fn sqlite_stuck_scan_recovers_only_batches_whose_recipients_are_final() {
    stuck_scan_recovers_only_batches_whose_recipients_are_final(Db::Sqlite).await;
}

async fn check_db_names_missing_tables_columns_and_indexes(db: Db) {
    let t = open(db).await;
    let table = t.tokens(1, 1).await;
    let job = unique("checked");
    let jobs = t.jobs(&format!(
        "[jobs.{job}]\ndatabase = \"app\"\nschedule = \"@daily\"\n\
         [[jobs.{job}.delete]]\ntable = \"{table}\"\ntime_column = \"expires_at\"\nolder_than = \"30d\"\n\
         [[jobs.{job}.delete]]\ntable = \"no_such_table_at_all\"\ntime_column = \"expires_at\"\nolder_than = \"30d\"\n\
         [[jobs.{job}.delete]]\ntable = \"{table}\"\ntime_column = \"created\"\nolder_than = \"30d\"\n\
         [jobs.{job}-scan]\ndatabase = \"app\"\nschedule = \"@hourly\"\nkind = \"stuck_scan\"\n\
         query = \"SELECT id FROM {table} WHERE nonsense_column > 1\"\n"
    ));
    let findings = check_database(&jobs).await;
    let summary: Vec<(String, bool)> = findings
        .iter()
        .map(|f| (f.field.clone(), f.error))
        .collect();
    assert_eq!(
        summary,
        [
            (format!("jobs.{job}.delete[0].time_column"), false),
            (format!("jobs.{job}.delete[1].table"), true),
            (format!("jobs.{job}.delete[2].time_column"), true),
            (format!("jobs.{job}-scan.query"), true),
        ],
        "{findings:#?}"
    );
    assert!(
        findings[0].message.contains("no index"),
        "{}",
        findings[0].message
    );
    t.exec(&format!(
        "CREATE INDEX {table}_expires ON {table} (expires_at)"
    ))
    .await;
    let findings = check_database(&jobs).await;
    assert!(
        !findings
            .iter()
            .any(|f| f.field.ends_with("delete[0].time_column"))
    );
}

#[tokio::test]
async fn postgres_check_db_names_missing_tables_columns_and_indexes() {
    check_db_names_missing_tables_columns_and_indexes(Db::Postgres).await;
}

#[tokio::test]
async fn sqlite_check_db_names_missing_tables_columns_and_indexes() {
    check_db_names_missing_tables_columns_and_indexes(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_partitioned_tables_are_refused_before_anything_is_deleted() {
    let t = open(Db::Postgres).await;
    let table = unique("partitioned");
    t.exec(&format!(
        "CREATE TABLE {table} (id BIGINT, expires_at TIMESTAMPTZ) PARTITION BY RANGE (expires_at)"
    ))
    .await;
    t.exec(&format!("CREATE TABLE {table}_old PARTITION OF {table} FOR VALUES FROM ('2000-01-01') TO ('2026-01-01')")).await;
    t.exec(&format!("CREATE TABLE {table}_new PARTITION OF {table} FOR VALUES FROM ('2026-01-01') TO ('2100-01-01')")).await;
    // One old and one fresh row, both at ctid (0,1) of their partitions.
    t.exec(&format!(
        "INSERT INTO {table} VALUES (1, '2020-01-01'), (2, now())"
    ))
    .await;
    let job = unique("partitioned");
    let jobs = t.jobs(&cleanup(&job, &table, 100));
    let report = run(jobs.get(&job).unwrap(), &options()).await;
    let Outcome::Failure(error) = &report.outcome else {
        panic!("a partitioned table must be refused: {report:?}");
    };
    assert!(error.contains("is partitioned"), "{error}");
    assert_eq!(t.count(&format!("SELECT count(*) FROM {table}")).await, 2);
    let findings = check_database(&jobs).await;
    assert!(
        findings
            .iter()
            .any(|f| f.error && f.message.contains("is partitioned")),
        "{findings:?}"
    );
    // Its partitions, named one by one, are plain tables: the old row goes, the fresh stays.
    let jobs = t.jobs(&cleanup(&job, &format!("{table}_old"), 100));
    let report = run(jobs.get(&job).unwrap(), &options()).await;
    assert_eq!(
        (report.outcome.clone(), report.rows_deleted()),
        (Outcome::Success, 1)
    );
    assert_eq!(t.count(&format!("SELECT count(*) FROM {table}")).await, 1);
}

#[tokio::test]
async fn sqlite_deletes_only_times_it_can_read() {
    let t = open(Db::Sqlite).await;
    let table = unique("mixed");
    t.exec(&format!("CREATE TABLE {table} (note TEXT, expires_at)"))
        .await;
    let old_unix = chrono::Utc::now().timestamp() - 40 * 86_400;
    let fresh_unix = chrono::Utc::now().timestamp() - 3_600;
    for (note, value) in [
        ("old iso space", "datetime('now', '-40 days')".to_owned()),
        (
            "old iso T Z",
            "strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-40 days')".to_owned(),
        ),
        ("old unix seconds", old_unix.to_string()),
        ("fresh iso", "datetime('now', '-1 hour')".to_owned()),
        ("fresh unix seconds", fresh_unix.to_string()),
        ("fresh digits as text", format!("'{fresh_unix}'")),
        ("fresh unix millis", (fresh_unix * 1000).to_string()),
        ("fresh julian day", "julianday('now')".to_owned()),
        ("null", "NULL".to_owned()),
        ("garbage", "'not a time'".to_owned()),
    ] {
        t.exec(&format!("INSERT INTO {table} VALUES ('{note}', {value})"))
            .await;
    }
    let job = unique("mixed");
    let jobs = t.jobs(&cleanup(&job, &table, 100));
    let report = run(jobs.get(&job).unwrap(), &options()).await;
    assert_eq!(
        (report.outcome.clone(), report.rows_deleted()),
        (Outcome::Success, 3)
    );
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM {table} WHERE note LIKE 'old%'"
        ))
        .await,
        0
    );
    assert_eq!(t.count(&format!("SELECT count(*) FROM {table}")).await, 7);
}

#[tokio::test]
async fn a_run_skips_a_firing_that_already_ran_and_runs_the_next() {
    let t = open(Db::Postgres).await;
    let table = t.tokens(10, 0).await;
    let job = unique("firing");
    let jobs = t.jobs(&cleanup(&job, &table, 100));
    let job = jobs.get(&job).unwrap();
    let firing = std::time::SystemTime::now() - Duration::from_secs(1);
    let first = run(
        job,
        &RunOptions {
            skip_if_ran_since: Some(firing),
            ..options()
        },
    )
    .await;
    assert_eq!(
        (first.outcome.clone(), first.rows_deleted()),
        (Outcome::Success, 10)
    );
    // A replica waking late for the same firing finds it done.
    let late = run(
        job,
        &RunOptions {
            skip_if_ran_since: Some(firing),
            ..options()
        },
    )
    .await;
    assert_eq!(late.outcome, Outcome::Skipped);
    // The next firing runs, even right after the last run.
    let next = run(
        job,
        &RunOptions {
            skip_if_ran_since: Some(std::time::SystemTime::now()),
            ..options()
        },
    )
    .await;
    assert_eq!(next.outcome, Outcome::Success);
    // By hand, it always runs.
    assert_eq!(run(job, &options()).await.outcome, Outcome::Success);
}

#[tokio::test]
async fn postgres_check_db_names_missing_privileges() {
    let t = open(Db::Postgres).await;
    let table = t.tokens(1, 1).await;
    let role = unique("cleaner");
    t.exec(&format!("CREATE ROLE {role} LOGIN")).await;
    t.exec(&format!("GRANT SELECT, DELETE ON {table} TO {role}"))
        .await;
    let url = t
        .url
        .replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    let text = format!(
        "[[routes]]\nname = \"all\"\npath = \"/\"\nupstream = \"app\"\n[upstreams.app]\nendpoints = [\"127.0.0.1:9\"]\n\
         [databases.app]\nurl = \"{url}\"\n{}",
        cleanup("privileges", &table, 100)
    );
    let loaded = palisade_config::load_str("test.toml", &text, &[]).unwrap();
    let jobs = Jobs::build(&loaded.config).unwrap();
    let findings = check_database(&jobs).await;
    t.exec(&format!("DROP OWNED BY {role}")).await;
    t.exec(&format!("DROP ROLE {role}")).await;
    assert!(
        findings
            .iter()
            .any(|f| f.error && f.message.contains(&format!("lacks UPDATE on \"{table}\""))),
        "{findings:#?}"
    );
    assert!(
        !findings
            .iter()
            .any(|f| f.message.contains(&format!("lacks DELETE on \"{table}\"")))
    );
    assert!(
        findings
            .iter()
            .any(|f| f.field == "databases.app" && f.message.contains("palisade_job_runs")),
        "the run record's privileges are the database's: {findings:#?}"
    );
}

#[tokio::test]
async fn postgres_a_statement_cannot_outlast_the_jobs_timeout() {
    let t = open(Db::Postgres).await;
    let job = unique("slow");
    let jobs = t.jobs(&format!(
        "[jobs.{job}]\ndatabase = \"app\"\nschedule = \"@hourly\"\nkind = \"stuck_scan\"\n\
         timeout = \"1s\"\nquery = \"SELECT 1 AS id FROM pg_sleep(30)\"\n"
    ));
    let started = std::time::Instant::now();
    let report = run(jobs.get(&job).unwrap(), &options()).await;
    let Outcome::Failure(error) = &report.outcome else {
        panic!("{report:?}");
    };
    assert!(error.contains("statement timeout"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped at the timeout, not after 30 s"
    );
}
