//! The two databases a job can work on, and the statements it runs there. Every statement that
//! differs between PostgreSQL and SQLite is in this file, side by side.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use palisade_config::{DatabaseConfig, SqlName};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{Connection, Row, Sqlite};

use crate::JobError;

/// A `[databases.NAME]`: a small pool for status reads, and what it takes to open a connection
/// of a job's own. Nothing connects until first use, so a database that is down at start-up
/// fails runs, not the gateway.
#[derive(Debug, Clone)]
pub enum Database {
    Postgres {
        pool: PgPool,
        options: Box<PgConnectOptions>,
        connect_timeout: Duration,
    },
    Sqlite {
        pool: SqlitePool,
        options: Box<SqliteConnectOptions>,
        /// The database file, for the job locks beside it; `None` for an in-memory database.
        file: Option<PathBuf>,
    },
}

impl Database {
    /// The database `name` as configured.
    pub fn open(name: &str, config: &DatabaseConfig) -> Result<Database, JobError> {
        let url = config.url.expose();
        let connect_timeout = config.connect_timeout.get();
        let invalid = |error: sqlx::Error| JobError::Url {
            database: name.to_owned(),
            message: error.to_string(),
        };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(invalid)?
                .busy_timeout(Duration::from_secs(5));
            let file = (!url.contains(":memory:")).then(|| options.get_filename().to_owned());
            let pool = SqlitePoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(connect_timeout)
                .connect_lazy_with(options.clone());
            Ok(Database::Sqlite {
                pool,
                options: Box::new(options),
                file,
            })
        } else {
            let options = PgConnectOptions::from_str(url)
                .map_err(invalid)?
                .application_name("palisade-jobs");
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(connect_timeout)
                .idle_timeout(Duration::from_secs(60))
                .connect_lazy_with(options.clone());
            Ok(Database::Postgres {
                pool,
                options: Box::new(options),
                connect_timeout,
            })
        }
    }

    /// A connection of the run's own, not a pooled one: on PostgreSQL the job's advisory lock
    /// lives and dies with it (a run that is killed closes it and frees the lock), and runs
    /// never wait for the status pool. An in-memory SQLite database exists only in the pool.
    pub(crate) async fn connect(&self) -> Result<Conn, JobError> {
        match self {
            Database::Postgres {
                options,
                connect_timeout,
                ..
            } => {
                let conn =
                    tokio::time::timeout(*connect_timeout, PgConnection::connect_with(&**options))
                        .await
                        .map_err(|_| JobError::ConnectTimeout(*connect_timeout))??;
                Ok(Conn::Pg(conn))
            }
            Database::Sqlite {
                pool, file: None, ..
            } => Ok(Conn::LitePooled(pool.acquire().await?)),
            Database::Sqlite { options, .. } => Ok(Conn::Lite(
                sqlx::SqliteConnection::connect_with(options).await?,
            )),
        }
    }

    /// A pooled connection, for reads of the run record and checks.
    pub(crate) async fn pooled(&self) -> Result<Conn, JobError> {
        Ok(match self {
            Database::Postgres { pool, .. } => Conn::PgPooled(pool.acquire().await?),
            Database::Sqlite { pool, .. } => Conn::LitePooled(pool.acquire().await?),
        })
    }
}

/// An open connection to either database: a run's own, or one from the status pool.
pub(crate) enum Conn {
    Pg(PgConnection),
    PgPooled(PoolConnection<sqlx::Postgres>),
    Lite(sqlx::SqliteConnection),
    LitePooled(PoolConnection<Sqlite>),
}

/// An id the stuck scan found: the first column of its query, bound back as `$1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowId {
    Int(i64),
    Int4(i32),
    Text(String),
}

impl std::fmt::Display for RowId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowId::Int(id) => write!(f, "{id}"),
            RowId::Int4(id) => write!(f, "{id}"),
            RowId::Text(id) => f.write_str(id),
        }
    }
}

/// Runs a body with an ident bound to the connection as `&mut PgConnection` or `&mut
/// SqliteConnection`: `pg c => …, lite c => …` where the statements differ, `each c => …` where
/// the same code serves both (it is compiled once per database).
macro_rules! on_conn {
    ($conn:expr, pg $pg:ident => $pg_body:expr, lite $lite:ident => $lite_body:expr) => {
        match $conn {
            $crate::db::Conn::Pg($pg) => $pg_body,
            $crate::db::Conn::PgPooled(pooled) => {
                let $pg: &mut sqlx::PgConnection = &mut *pooled;
                $pg_body
            }
            $crate::db::Conn::Lite($lite) => $lite_body,
            $crate::db::Conn::LitePooled(pooled) => {
                let $lite: &mut sqlx::SqliteConnection = &mut *pooled;
                $lite_body
            }
        }
    };
    ($conn:expr, each $c:ident => $body:expr) => {
        on_conn!($conn, pg $c => $body, lite $c => $body)
    };
}
pub(crate) use on_conn;

impl Conn {
    /// Takes the job's lock if it is free; false when another run holds it. On PostgreSQL an
    /// advisory lock held by this session; SQLite's is a file lock (see [`crate::lease`]).
    pub(crate) async fn try_advisory_lock(&mut self, key: i64) -> Result<bool, JobError> {
        match self {
            Conn::Pg(pg) => Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(pg)
                .await?),
            // A pooled connection would keep the lock after the run: never lock on one.
            Conn::PgPooled(_) => Ok(false),
            Conn::Lite(_) | Conn::LitePooled(_) => Ok(true),
        }
    }

    pub(crate) async fn advisory_unlock(&mut self, key: i64) -> Result<(), JobError> {
        if let Conn::Pg(pg) = self {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .execute(pg)
                .await?;
        }
        Ok(())
    }

    /// Bounds every statement of a run's own PostgreSQL connection by the job's timeout, so
    /// one slow batch or stuck-scan query cannot outlast it (between statements the run checks
    /// the timeout itself). SQLite has no such setting.
    pub(crate) async fn limit_statements(&mut self, timeout: Duration) -> Result<(), JobError> {
        if let Conn::Pg(pg) = self {
            let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
            sqlx::query(trusted(format!("SET statement_timeout = {ms}")))
                .execute(pg)
                .await?;
        }
        Ok(())
    }

    /// Closes a connection of its own cleanly (pooled ones go back to the pool).
    pub(crate) async fn close(self) {
        match self {
            Conn::Pg(pg) => drop(pg.close().await),
            Conn::Lite(lite) => drop(lite.close().await),
            Conn::PgPooled(_) | Conn::LitePooled(_) => {}
        }
    }

    /// Deletes at most `limit` rows of `table` whose `column` is older than `older_than`, in
    /// one transaction; returns how many it deleted. PostgreSQL skips rows the app has locked
    /// (they go in a later batch) and gives up on a table lock after 10 s.
    pub(crate) async fn delete_batch(
        &mut self,
        table: &SqlName,
        column: &SqlName,
        older_than: Duration,
        limit: u32,
    ) -> Result<u64, JobError> {
        on_conn!(self,
            pg pg => {
                let sql = format!(
                    "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} \
                     WHERE {column} < now() - make_interval(secs => $1) \
                     LIMIT $2 FOR UPDATE SKIP LOCKED))"
                );
                let mut tx = pg.begin().await?;
                sqlx::query("SET LOCAL lock_timeout = '10s'").execute(&mut *tx).await?;
                let done = sqlx::query(trusted(&sql))
                    .bind(older_than.as_secs_f64())
                    .bind(i64::from(limit))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            },
            lite lite => {
                let sql = format!(
                    "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} \
                     WHERE {} LIMIT ?3)",
                    sqlite_older(column)
                );
                let (text, unix) = sqlite_cutoff(older_than);
                let mut tx = lite.begin().await?;
                let done = sqlx::query(trusted(&sql))
                    .bind(text)
                    .bind(unix)
                    .bind(i64::from(limit))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }
        )
    }

    /// Refuses a table the batched delete cannot handle: on PostgreSQL a partitioned table or
    /// one with inheritance children (a `ctid` is unique only within one physical table, so a
    /// delete through the parent could match rows of another partition); on SQLite a table
    /// `WITHOUT ROWID`. A missing table is left to the statements to report.
    pub(crate) async fn check_deletable(&mut self, table: &SqlName) -> Result<(), JobError> {
        let refusal = on_conn!(self,
            pg pg => {
                let found: Option<(String, bool)> = sqlx::query_as(
                    "SELECT c.relkind::text, EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid) \
                     FROM pg_class c WHERE c.oid = to_regclass($1)",
                )
                .bind(table.to_string())
                .fetch_optional(pg)
                .await?;
                match found {
                    Some((kind, _)) if kind == "p" => Some("is partitioned: name its partitions instead (or drop old partitions)"),
                    Some((_, true)) => Some("has inheritance children: name each table instead"),
                    _ => None,
                }
            },
            lite lite => {
                let sql: Option<String> = sqlx::query_scalar(
                    "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
                )
                .bind(table.base().to_owned())
                .fetch_optional(lite)
                .await?;
                sql.filter(|sql| sql.to_uppercase().contains("WITHOUT ROWID"))
                    .map(|_| "is a WITHOUT ROWID table, which the batched delete cannot address")
            }
        );
        match refusal {
            Some(reason) => Err(JobError::Table {
                table: table.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// How many rows a retention rule would delete now.
    pub(crate) async fn count_older(
        &mut self,
        table: &SqlName,
        column: &SqlName,
        older_than: Duration,
    ) -> Result<u64, JobError> {
        let count: i64 = on_conn!(self,
            pg pg => {
                let sql = format!(
                    "SELECT count(*) FROM {table} WHERE {column} < now() - make_interval(secs => $1)"
                );
                sqlx::query_scalar(trusted(&sql)).bind(older_than.as_secs_f64()).fetch_one(pg).await?
            },
            lite lite => {
                let sql = format!("SELECT count(*) FROM {table} WHERE {}", sqlite_older(column));
                let (text, unix) = sqlite_cutoff(older_than);
                sqlx::query_scalar(trusted(&sql)).bind(text).bind(unix).fetch_one(lite).await?
            }
        );
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The ids the stuck-scan `query` returns, at most `limit` of them.
    pub(crate) async fn stuck_ids(
        &mut self,
        query: &str,
        limit: u32,
    ) -> Result<Vec<RowId>, JobError> {
        let sql = format!(
            "SELECT * FROM ({}\n) AS palisade_stuck LIMIT {limit}",
            query.trim().trim_end_matches(';')
        );
        on_conn!(self,
            pg pg => {
                let rows = sqlx::query(trusted(&sql)).fetch_all(pg).await?;
                rows.iter().map(pg_id).collect()
            },
            lite lite => {
                let rows = sqlx::query(trusted(&sql)).fetch_all(lite).await?;
                rows.iter().map(lite_id).collect()
            }
        )
    }

    /// Runs the stuck-scan `recover` statement for one id in its own transaction; true when it
    /// changed a row.
    pub(crate) async fn recover(&mut self, statement: &str, id: &RowId) -> Result<bool, JobError> {
        let changed = on_conn!(self, each c => {
            let mut tx = c.begin().await?;
            let query = sqlx::query(trusted(statement));
            let query = match id {
                RowId::Int(id) => query.bind(*id),
                RowId::Int4(id) => query.bind(*id),
                RowId::Text(id) => query.bind(id.clone()),
            };
            let done = query.execute(&mut *tx).await?;
            tx.commit().await?;
            done.rows_affected()
        });
        Ok(changed > 0)
    }

    /// Runs one statement with no result (the run record's table, checks).
    pub(crate) async fn execute(&mut self, sql: &str) -> Result<(), JobError> {
        on_conn!(self, each c => {
            sqlx::query(trusted(sql)).execute(c).await?;
        });
        Ok(())
    }

    /// Access to the raw connections, for the run record's statements.
    pub(crate) fn pg(&mut self) -> Option<&mut PgConnection> {
        match self {
            Conn::Pg(pg) => Some(pg),
            Conn::PgPooled(pooled) => Some(&mut *pooled),
            Conn::Lite(_) | Conn::LitePooled(_) => None,
        }
    }

    pub(crate) fn lite(&mut self) -> Option<&mut sqlx::SqliteConnection> {
        match self {
            Conn::Lite(lite) => Some(lite),
            Conn::LitePooled(pooled) => Some(&mut *pooled),
            Conn::Pg(_) | Conn::PgPooled(_) => None,
        }
    }
}

/// SQL built here: table and column names are [`SqlName`]s (validated, always quoted), and
/// the stuck-scan statements are the operator's own SQL from the config, run as written with
/// values bound as parameters. Nothing a client sends reaches a statement.
pub(crate) fn trusted(sql: impl Into<String>) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.into())
}

/// SQLite keeps times as ISO-8601 text or as Unix seconds, and compares text and numbers by
/// type before value: each form is compared only with a cutoff of its own form, and a value in
/// neither form (digits stored as text, a Julian day, Unix milliseconds) never matches.
fn sqlite_older(column: &SqlName) -> String {
    format!(
        "(({column} < ?1 AND typeof({column}) = 'text' \
           AND {column} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][ T][0-9][0-9]:*') OR \
         ({column} < ?2 AND {column} >= 100000000 AND typeof({column}) IN ('integer', 'real')))"
    )
}

/// The cutoff as SQLite text ("2026-01-02 03:04:05", UTC) and as Unix seconds.
fn sqlite_cutoff(older_than: Duration) -> (String, i64) {
    let age = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let cutoff = chrono::Utc::now()
        .checked_sub_signed(age)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    (
        cutoff.format("%Y-%m-%d %H:%M:%S").to_string(),
        cutoff.timestamp(),
    )
}

fn pg_id(row: &PgRow) -> Result<RowId, JobError> {
    if let Ok(id) = row.try_get::<i64, _>(0) {
        return Ok(RowId::Int(id));
    }
    if let Ok(id) = row.try_get::<i32, _>(0) {
        return Ok(RowId::Int4(id));
    }
    row.try_get::<String, _>(0)
        .map(RowId::Text)
        .map_err(|_| JobError::IdType)
}

fn lite_id(row: &SqliteRow) -> Result<RowId, JobError> {
    if let Ok(id) = row.try_get::<i64, _>(0) {
        return Ok(RowId::Int(id));
    }
    row.try_get::<String, _>(0)
        .map(RowId::Text)
        .map_err(|_| JobError::IdType)
}
