//! Maintenance jobs through the real binary against the real PostgreSQL: `palisade jobs run`
//! and `jobs list` as a CronJob and an operator use them, `validate --check-db`, and the
//! gateway's in-process runner with two replicas.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{Codec, bin, builder, config_for, metrics_text};
use palisade_testkit::upstream::UpstreamServer;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn url() -> String {
    std::env::var("PALISADE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/palisade_test".to_owned())
}

async fn pool() -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(&url())
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (scripts/services.sh starts it) must be reachable")
}

async fn exec(pool: &PgPool, sql: String) {
    sqlx::query(AssertSqlSafe(sql.clone()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(pool: &PgPool, sql: String) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql.clone()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A token table with `expired` rows 40 days past and `fresh` ones a day past.
async fn tokens(pool: &PgPool, expired: u32, fresh: u32) -> String {
    let table = unique("gpt_authorization_codes");
    exec(
        pool,
        format!("CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, expires_at TIMESTAMPTZ)"),
    )
    .await;
    exec(pool, format!("INSERT INTO {table} (expires_at) SELECT now() - interval '40 days' FROM generate_series(1, {expired})")).await;
    exec(pool, format!("INSERT INTO {table} (expires_at) SELECT now() - interval '1 day' FROM generate_series(1, {fresh})")).await;
    table
}

/// The issue's token clean-up job on `table`, with `runner`.
fn job_config(job: &str, table: &str, runner: &str) -> String {
    format!(
        r#"
[databases.app]
url = "${{env:APP_DATABASE_URL}}"
protected_tables = ["audit_events"]

[jobs.{job}]
database = "app"
schedule = "0 */6 * * *"
batch_size = 1000
runner = "{runner}"
[[jobs.{job}.delete]]
table = "{table}"
time_column = "expires_at"
older_than = "30d"
"#
    )
}

fn palisade(args: &[&str], config: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .env("APP_DATABASE_URL", url())
        .output()
        .expect("palisade runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(text: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(unique("palisade-jobs-cli"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("palisade.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[tokio::test]
async fn a_cronjob_run_cleans_up_and_the_gateway_reports_it() {
    let db = pool().await;
    let table = tokens(&db, 2_500, 40).await;
    let job = unique("token-cleanup").replace('_', "-");
    let config = config_for(
        "127.0.0.1:9".parse().unwrap(),
        &job_config(&job, &table, "cronjob"),
    );
    let (dir, path) = write_config(&config);

    let (code, out, err) = palisade(&["validate", "--check-db"], &path);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("warning: no index starts with \"expires_at\""),
        "{err}"
    );

    let (code, out, err) = palisade(&["jobs", "run", &job, "--dry-run"], &path);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "would delete 2500 rows from {table} (3 batches of at most 1000)"
        )),
        "{out}"
    );
    assert_eq!(
        count(&db, format!("SELECT count(*) FROM {table}")).await,
        2_540
    );

    let (code, out, err) = palisade(&["jobs", "run", &job], &path);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{job}: succeeded in")), "{out}");
    assert!(
        out.contains(&format!("deleted 2500 rows from {table}")),
        "{out}"
    );
    let audit = out
        .lines()
        .find(|l| l.contains("\"type\":\"audit\"") && l.contains("\"category\":\"job\""))
        .unwrap_or_else(|| panic!("an audit event for the run: {out}"));
    assert!(
        audit.contains("\"action\":\"job_run\"") && audit.contains("\"outcome\":\"success\""),
        "{audit}"
    );
    assert_eq!(
        count(&db, format!("SELECT count(*) FROM {table}")).await,
        40
    );

    let (code, out, err) = palisade(&["jobs", "list"], &path);
    assert_eq!(code, 0, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&job))
        .unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (
            cells[1],
            cells[2],
            cells[3],
            cells[cells.len() - 2],
            cells[cells.len() - 1]
        ),
        ("retention", "app", "cronjob", "success", "2500"),
        "{out}"
    );

    // The gateway does not run a cronjob job, and reads its last success from the record.
    let gw = builder(Codec::Fast, &config)
        .env("APP_DATABASE_URL", &url())
        .spawn()
        .await
        .expect("gateway starts");
    let label = format!("{{job_name=\"{job}\"");
    let last_success = format!("palisade_job_last_success_timestamp_seconds{label}}} ");
    // The gateway reads the run record once it has started.
    let mut page = metrics_text(&gw).await;
    for _ in 0..100 {
        if page
            .lines()
            .any(|l| l.starts_with(&last_success) && !l.ends_with(" 0.0"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        page = metrics_text(&gw).await;
    }
    let series = |name: &str| -> f64 {
        page.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} on /metrics:\n{page}"))
    };
    assert!(
        series(&format!(
            "palisade_job_last_success_timestamp_seconds{label}}}"
        )) > 1.7e9
    );
    assert_eq!(
        series(&format!("palisade_job_interval_seconds{label}}}")),
        21_600.0
    );
    assert_eq!(
        series(&format!(
            "palisade_job_runs_total{label},outcome=\"success\"}}"
        )),
        0.0
    );
    assert_eq!(
        series(&format!(
            "palisade_job_rows_deleted_total{label},table=\"{table}\"}}"
        )),
        0.0
    );
    assert_eq!(
        count(&db, format!("SELECT count(*) FROM {table}")).await,
        40
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn check_db_and_unknown_jobs_fail_clearly() {
    let db = pool().await;
    let table = tokens(&db, 1, 1).await;
    let job = unique("typo").replace('_', "-");
    let config = config_for(
        "127.0.0.1:9".parse().unwrap(),
        &job_config(&job, &format!("{table}_typo"), "cronjob"),
    );
    let (dir, path) = write_config(&config);
    let (code, out, err) = palisade(&["validate", "--check-db"], &path);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "jobs.{job}.delete[0].table: no table \"{table}_typo\""
        )),
        "{err}"
    );
    let (code, _, err) = palisade(&["jobs", "run", "no-such-job"], &path);
    assert_eq!(code, 2);
    assert!(
        err.contains("no job \"no-such-job\"") && err.contains(&job),
        "{err}"
    );
    // A run against a missing table fails with exit 1, recorded as a failure.
    let (code, out, _) = palisade(&["jobs", "run", &job], &path);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{job}: failed: database error")),
        "{out}"
    );
    let failures = count(
        &db,
        format!(
            "SELECT count(*) FROM palisade_job_runs WHERE job = '{job}' AND outcome = 'failure'"
        ),
    )
    .await;
    assert_eq!(failures, 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn two_gateways_run_an_overdue_job_exactly_once() {
    let db = pool().await;
    let table = tokens(&db, 5_000, 25).await;
    let job = unique("replicas").replace('_', "-");
    let upstream = UpstreamServer::start().await.expect("upstream starts");
    let config = config_for(upstream.addr(), &job_config(&job, &table, "in_process"));
    // Two replicas start together; the job has never run, so it is overdue at start-up.
    let (a, b) = tokio::join!(
        builder(Codec::Fast, &config)
            .env("APP_DATABASE_URL", &url())
            .spawn(),
        builder(Codec::Fast, &config)
            .env("APP_DATABASE_URL", &url())
            .spawn(),
    );
    let (a, b) = (a.expect("replica a starts"), b.expect("replica b starts"));
    let left = format!("SELECT count(*) FROM {table}");
    for _ in 0..200 {
        if count(&db, left.clone()).await == 25 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count(&db, left).await,
        25,
        "the expired rows are gone, the fresh ones stay"
    );
    let recorded = format!("SELECT count(*) FROM palisade_job_runs WHERE job = '{job}'");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&db, recorded).await,
        1,
        "one run between the two replicas"
    );
    let successes = {
        let success =
            format!("palisade_job_runs_total{{job_name=\"{job}\",outcome=\"success\"}} 1");
        let pages = [metrics_text(&a).await, metrics_text(&b).await];
        pages.iter().filter(|p| p.contains(&success)).count()
    };
    assert_eq!(successes, 1, "exactly one replica ran the job");
    let ran = if a
        .output_lines()
        .iter()
        .any(|l| l.contains("job run succeeded"))
    {
        &a
    } else {
        &b
    };
    ran.wait_for_line(
        |l| l.contains("\"category\":\"job\"") && l.contains("\"deleted\":{") && l.contains("5000"),
        Duration::from_secs(5),
    )
    .await
    .expect("the runner writes an audit event with the rows deleted");
}

#[tokio::test]
async fn a_run_killed_with_sigkill_loses_nothing_and_the_next_one_finishes() {
    let db = pool().await;
    let table = tokens(&db, 100_000, 100).await;
    let job = unique("killed").replace('_', "-");
    let config = config_for(
        "127.0.0.1:9".parse().unwrap(),
        &job_config(&job, &table, "cronjob"),
    )
    .replace("batch_size = 1000", "batch_size = 100");
    let (dir, path) = write_config(&config);
    let mut child = tokio::process::Command::new(bin())
        .args(["jobs", "run", &job, "--config"])
        .arg(&path)
        .env("APP_DATABASE_URL", url())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("palisade jobs run starts");
    let left = format!("SELECT count(*) FROM {table}");
    for _ in 0..400 {
        if count(&db, left.clone()).await < 97_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().await.expect("SIGKILL");
    // The batch in flight rolls back (or commits) as the server sees the connection go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_kill = count(&db, left.clone()).await;
    assert!(
        (100..97_000).contains(&after_kill),
        "killed mid-run: {after_kill} rows left"
    );
    let recorded = format!("SELECT count(*) FROM palisade_job_runs WHERE job = '{job}'");
    assert_eq!(
        count(&db, recorded.clone()).await,
        0,
        "a killed run records nothing"
    );

    // Its advisory lock went with its connection: the next run takes it and finishes.
    let mut result = palisade(&["jobs", "run", &job], &path);
    for _ in 0..20 {
        if !result.1.contains("skipped") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        result = palisade(&["jobs", "run", &job], &path);
    }
    let (code, out, err) = result;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("deleted {} rows from {table}", after_kill - 100)),
        "the second run deletes exactly what the first left: {out}"
    );
    assert_eq!(
        count(&db, left).await,
        100,
        "every expired row is gone, every fresh one stays"
    );
    assert_eq!(count(&db, recorded).await, 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_reload_that_adds_a_job_schedules_it_without_a_restart() {
    let db = pool().await;
    let table = tokens(&db, 300, 5).await;
    let job = unique("reloaded").replace('_', "-");
    let upstream = UpstreamServer::start().await.expect("upstream starts");
    let without = config_for(upstream.addr(), "");
    let gw = builder(Codec::Fast, &without)
        .env("APP_DATABASE_URL", &url())
        .spawn()
        .await
        .expect("gateway starts");
    let with = config_for(upstream.addr(), &job_config(&job, &table, "in_process"));
    std::fs::write(gw.config_path(), with).unwrap();
    gw.signal("HUP").unwrap();
    let left = format!("SELECT count(*) FROM {table}");
    for _ in 0..200 {
        if count(&db, left.clone()).await == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count(&db, left).await,
        5,
        "the job, new in the reloaded config, ran"
    );
    let page = metrics_text(&gw).await;
    let success = format!("palisade_job_runs_total{{job_name=\"{job}\",outcome=\"success\"}} 1");
    assert!(page.contains(&success), "{page}");
    assert!(
        !page.contains("palisade_config_restart_required{field=\"jobs\"}"),
        "{page}"
    );
    let reloaded = gw
        .output_lines()
        .into_iter()
        .find(|l| l.contains("\"config reloaded\""))
        .expect("the reload is logged");
    assert!(
        reloaded.contains("\"restart_required\":\"[]\""),
        "{reloaded}"
    );
}
