//! `palisade validate --check-db`: the jobs' names and statements checked against the real
//! database, so a typo in a table name fails a deploy instead of the first run at 3 a.m.

use palisade_config::JobKind;
use sqlx::{Executor, SqlSafeStr};

use crate::db::{Conn, trusted};
use crate::{Job, Jobs, Rule};

/// One result of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The config field it is about, e.g. `jobs.token-cleanup.delete[0].table`.
    pub field: String,
    pub message: String,
    /// An error fails the check; a warning (no index on a time column) does not.
    pub error: bool,
}

/// Checks every job against its database: tables and time columns exist, time columns hold
/// times, retention has an index to use, and stuck-scan statements compile.
pub async fn check_database(jobs: &Jobs) -> Vec<Finding> {
    let mut findings = Vec::new();
    for job in jobs.iter() {
        let at = format!("jobs.{}", job.name);
        let mut conn = match job.database.pooled().await {
            Ok(conn) => conn,
            Err(error) => {
                findings.push(Finding {
                    field: format!("databases.{}.url", job.database_name),
                    message: format!("cannot connect: {error}"),
                    error: true,
                });
                continue;
            }
        };
        match job.config.kind {
            JobKind::Retention => {
                for (i, rule) in job.rules.iter().enumerate() {
                    let at = format!("{at}.delete[{i}]");
                    check_rule(&mut conn, rule, &job.database_name, &at, &mut findings).await;
                }
            }
            JobKind::StuckScan => check_scan(&mut conn, job, &at, &mut findings).await,
        }
    }
    findings
}

async fn check_rule(
    conn: &mut Conn,
    rule: &Rule,
    database: &str,
    at: &str,
    findings: &mut Vec<Finding>,
) {
    // A field of the rule ("table"), or a whole path ("databases.app").
    let mut note = |field: &str, message: String, error: bool| {
        let field = if field.starts_with("databases.") {
            field.to_owned()
        } else {
            format!("{at}.{field}")
        };
        findings.push(Finding {
            field,
            message,
            error,
        })
    };
    let table = rule.table.to_string();
    let column = rule.column.base();
    let postgres = conn.pg().is_some();
    let found = if let Some(pg) = conn.pg() {
        pg_column(pg, &table, column).await
    } else if let Some(lite) = conn.lite() {
        lite_column(lite, rule.table.base(), column).await
    } else {
        return;
    };
    let (exists, column_type, indexed) = match found {
        Ok(found) => found,
        Err(e) => return note("table", format!("cannot read the catalogue: {e}"), true),
    };
    if !exists {
        return note(
            "table",
            format!("no table {table} in the database (names are case-sensitive once quoted)"),
            true,
        );
    }
    if let Err(error) = conn.check_deletable(&rule.table).await {
        return note("table", error.to_string(), true);
    }
    let Some(column_type) = column_type else {
        return note(
            "time_column",
            format!("no column \"{column}\" in {table}"),
            true,
        );
    };
    if postgres {
        match column_type.as_str() {
            "timestamp with time zone" | "date" => {}
            "timestamp without time zone" => note(
                "time_column",
                format!(
                    "\"{column}\" is a timestamp without time zone, which Palisade compares as \
                     UTC; if the app writes local times into it, rows go early or late by the \
                     offset (timestamptz avoids this)"
                ),
                false,
            ),
            other => note(
                "time_column",
                format!(
                    "\"{column}\" is {other}; a time column must be a timestamp, timestamptz or date"
                ),
                true,
            ),
        }
        if let Some(pg) = conn.pg() {
            match pg_privileges(pg, &table).await {
                Ok((on_table, on_record)) => {
                    for message in on_table {
                        note("table", message, true);
                    }
                    for message in on_record {
                        note(&format!("databases.{database}"), message, true);
                    }
                }
                Err(e) => note("table", format!("cannot read the privileges: {e}"), true),
            }
        }
    }
    if !indexed {
        note(
            "time_column",
            format!(
                "no index starts with \"{column}\": each batch scans {table}; add one, e.g. \
                 CREATE INDEX \"{}_{column}\" ON {table} (\"{column}\")",
                rule.table.base()
            ),
            false,
        );
    }
}

/// What the connecting user lacks for a retention run on PostgreSQL: `SELECT`, `UPDATE` (the
/// batches lock their rows `FOR UPDATE`) and `DELETE` on the table; and for the run record,
/// which it must be able to create, or write when it exists.
async fn pg_privileges(
    pg: &mut sqlx::PgConnection,
    table: &str,
) -> Result<(Vec<String>, Vec<String>), sqlx::Error> {
    let mut missing = Vec::new();
    for privilege in ["SELECT", "UPDATE", "DELETE"] {
        let held: bool = sqlx::query_scalar("SELECT has_table_privilege(to_regclass($1), $2)")
            .bind(table)
            .bind(privilege)
            .fetch_one(&mut *pg)
            .await?;
        if !held {
            missing.push(format!(
                "the database user lacks {privilege} on {table} (the batches select, lock FOR \
                 UPDATE and delete rows)"
            ));
        }
    }
    let on_table = std::mem::take(&mut missing);
    let record: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('palisade_job_runs')::text")
            .fetch_one(&mut *pg)
            .await?;
    if record.is_none() {
        let can_create: bool =
            sqlx::query_scalar("SELECT has_schema_privilege(current_schema(), 'CREATE')")
                .fetch_one(&mut *pg)
                .await?;
        if !can_create {
            missing.push(
                "palisade_job_runs does not exist and the database user cannot create it; \
                 create it ahead of time (docs/jobs.md, \"The run record\")"
                    .to_owned(),
            );
        }
    } else {
        for privilege in ["SELECT", "INSERT", "DELETE"] {
            let held: bool =
                sqlx::query_scalar("SELECT has_table_privilege('palisade_job_runs', $1)")
                    .bind(privilege)
                    .fetch_one(&mut *pg)
                    .await?;
            if !held {
                missing.push(format!(
                    "the database user lacks {privilege} on palisade_job_runs, the run record"
                ));
            }
        }
        let sequence: bool = sqlx::query_scalar(
            "SELECT to_regclass('palisade_job_runs_id_seq') IS NULL \
             OR has_sequence_privilege('palisade_job_runs_id_seq', 'USAGE')",
        )
        .fetch_one(&mut *pg)
        .await?;
        if !sequence {
            missing.push(
                "the database user lacks USAGE on palisade_job_runs_id_seq (recording a run \
                 takes the next id)"
                    .to_owned(),
            );
        }
    }
    Ok((on_table, missing))
}

/// (table exists, the column's type if it exists, an index starts with the column).
async fn pg_column(
    pg: &mut sqlx::PgConnection,
    table: &str,
    column: &str,
) -> Result<(bool, Option<String>, bool), sqlx::Error> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(table)
        .fetch_one(&mut *pg)
        .await?;
    if exists.is_none() {
        return Ok((false, None, false));
    }
    let column_type: Option<String> = sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped",
    )
    .bind(table)
    .bind(column)
    .fetch_optional(&mut *pg)
    .await?;
    let indexed: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a \
         ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE i.indrelid = to_regclass($1) AND a.attname = $2)",
    )
    .bind(table)
    .bind(column)
    .fetch_one(&mut *pg)
    .await?;
    Ok((true, column_type, indexed))
}

async fn lite_column(
    lite: &mut sqlx::SqliteConnection,
    table: &str,
    column: &str,
) -> Result<(bool, Option<String>, bool), sqlx::Error> {
    let tables: i64 = sqlx::query_scalar(trusted(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
    ))
    .bind(table)
    .fetch_one(&mut *lite)
    .await?;
    if tables == 0 {
        return Ok((false, None, false));
    }
    let column_type: Option<String> =
        sqlx::query_scalar("SELECT type FROM pragma_table_info(?1) WHERE name = ?2")
            .bind(table)
            .bind(column)
            .fetch_optional(&mut *lite)
            .await?;
    let indexed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pragma_index_list(?1) AS l, pragma_index_info(l.name) AS i \
         WHERE i.seqno = 0 AND i.name = ?2",
    )
    .bind(table)
    .bind(column)
    .fetch_one(&mut *lite)
    .await?;
    Ok((true, column_type, indexed > 0))
}

async fn check_scan(conn: &mut Conn, job: &Job, at: &str, findings: &mut Vec<Finding>) {
    let statements = [
        ("query", job.config.query.as_deref()),
        ("recover", job.config.recover.as_deref()),
    ];
    for (field, statement) in statements {
        let Some(statement) = statement else { continue };
        let prepared = if let Some(pg) = conn.pg() {
            pg.prepare(trusted(statement).into_sql_str())
                .await
                .map(drop)
        } else if let Some(lite) = conn.lite() {
            lite.prepare(trusted(statement).into_sql_str())
                .await
                .map(drop)
        } else {
            Ok(())
        };
        if let Err(error) = prepared {
            findings.push(Finding {
                field: format!("{at}.{field}"),
                message: format!("the database refuses it: {error}"),
                error: true,
            });
        }
    }
}
