//! Checks of `[databases.NAME]` and `[jobs.NAME]`, and the two things the jobs need from the
//! config beyond its values: table and column names that are safe to put into SQL, and cron
//! schedules.

use std::fmt;

use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::error::{FieldPath, Issue};
use crate::model::{JOB_RUNS_TABLE, JobConfig, JobKind};
use crate::validate::{Draft, NAME_RULE, check_positive, valid_name};

/// A table or column name that can go into SQL: one or two parts (`schema.table`), each of
/// letters, digits and `_`, not starting with a digit, at most 63 bytes (PostgreSQL's limit).
/// It is always written quoted, so it can never be read as anything but a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlName(Vec<String>);

impl SqlName {
    /// `name` if it is a valid name of at most `max_parts` parts.
    pub fn parse(name: &str, max_parts: usize) -> Option<SqlName> {
        let parts: Vec<&str> = name.split('.').collect();
        let valid = |part: &&str| {
            (1..=63).contains(&part.len())
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !part.as_bytes()[0].is_ascii_digit()
        };
        (parts.len() <= max_parts && parts.iter().all(valid))
            .then(|| SqlName(parts.into_iter().map(str::to_owned).collect()))
    }

    /// The last part: the table or column itself, without its schema.
    pub fn base(&self) -> &str {
        self.0.last().map_or("", String::as_str)
    }

    /// The schema, for a qualified name.
    pub fn schema(&self) -> Option<&str> {
        (self.0.len() == 2).then(|| self.0[0].as_str())
    }
}

/// Quoted, part by part: `"auth"."refresh_tokens"`.
impl fmt::Display for SqlName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "\"{part}\"")?;
        }
        Ok(())
    }
}

const SQL_NAME_RULE: &str = "letters, digits and \"_\" (not starting with a digit), at most 63 \
                             characters, e.g. \"refresh_tokens\"";

/// A job's schedule: five cron fields (minute, hour, day of month, month, day of week) in UTC,
/// or a nickname such as "@hourly", as a Kubernetes CronJob takes them.
pub fn parse_schedule(schedule: &str) -> Result<Cron, String> {
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(schedule)
        .map_err(|error| {
            format!(
                "{schedule:?} is not a cron schedule ({error}); give five fields in UTC, \
                 minute hour day-of-month month day-of-week, e.g. \"0 */6 * * *\" for every \
                 6 hours, or \"@daily\""
            )
        })?;
    // croner's extensions (last day "L", nearest weekday "W", nth weekday "#") are not what a
    // Kubernetes CronJob takes, and a job's schedule must mean the same to both runners.
    let fields: Vec<String> = schedule.split_whitespace().map(str::to_uppercase).collect();
    if fields.len() == 5 && (fields[2].contains(['L', 'W']) || fields[4].contains(['L', '#'])) {
        return Err(format!(
            "{schedule:?} uses a cron extension (L, W or #) that a Kubernetes CronJob does not \
             take; give plain fields, e.g. \"0 0 1 * *\" for the first of the month"
        ));
    }
    // "0 0 30 2 *" parses but never fires.
    if cron
        .find_next_occurrence(&chrono::Utc::now(), false)
        .is_err()
    {
        return Err(format!(
            "{schedule:?} never fires (no such date); check the day-of-month and month fields"
        ));
    }
    Ok(cron)
}

/// Whether a statement has a `?` not followed by a digit outside quotes: SQLite numbers such
/// parameters one after another, and only the first would get the id.
fn unnumbered_parameter(statement: &str) -> bool {
    let mut quoted = None;
    let bytes = statement.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match (quoted, b) {
            (None, b'\'' | b'"') => quoted = Some(b),
            (Some(q), _) if b == q => quoted = None,
            (None, b'?') if !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => return true,
            _ => {}
        }
    }
    false
}

pub(crate) fn check(draft: &Draft, issues: &mut Vec<Issue>) {
    let root = FieldPath::root();
    for (name, database) in &draft.databases {
        let path = root.key("databases").key(name);
        if !valid_name(name) {
            issues.push(Issue::new(
                path.clone(),
                format!("invalid database name {name:?}; names are {NAME_RULE}"),
            ));
        }
        let Some(database) = database else { continue };
        let url = database.url.expose();
        if !["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            issues.push(Issue::new(
                path.key("url"),
                "expected a postgres:// or sqlite: URL, e.g. \"postgres://app@db:5432/app\" or \
                 \"sqlite:///var/lib/app/app.db\"",
            ));
        }
        for (i, table) in database.protected_tables.iter().enumerate() {
            if SqlName::parse(table, 2).is_none() {
                issues.push(Issue::new(
                    path.key("protected_tables").index(i),
                    format!("{table:?} is not a table name; names are {SQL_NAME_RULE}"),
                ));
            }
        }
        if database.max_connections == 0 {
            issues.push(Issue::new(
                path.key("max_connections"),
                "must be at least 1, e.g. 2",
            ));
        }
        check_positive(
            database.connect_timeout,
            path.key("connect_timeout"),
            issues,
        );
    }
    for (name, job) in &draft.jobs {
        let path = root.key("jobs").key(name);
        if !valid_name(name) {
            issues.push(Issue::new(
                path.clone(),
                format!("invalid job name {name:?}; names are {NAME_RULE}"),
            ));
        }
        if let Some(job) = job {
            check_job(draft, job, &path, issues);
        }
    }
}

fn check_job(draft: &Draft, job: &JobConfig, path: &FieldPath, issues: &mut Vec<Issue>) {
    let database = match draft.databases.get(&job.database) {
        Some(database) => database.as_ref(),
        None => {
            let known: Vec<&str> = draft.databases.keys().map(String::as_str).collect();
            issues.push(Issue::new(
                path.key("database"),
                if known.is_empty() {
                    format!(
                        "no database {:?}: add a [databases.{}] section with its url",
                        job.database, job.database
                    )
                } else {
                    format!(
                        "no database {:?}; configured: {}",
                        job.database,
                        known.join(", ")
                    )
                },
            ));
            None
        }
    };
    if let Err(message) = parse_schedule(&job.schedule) {
        issues.push(Issue::new(path.key("schedule"), message));
    }
    if !(1..=100_000).contains(&job.batch_size) {
        issues.push(Issue::new(
            path.key("batch_size"),
            "must be from 1 to 100000, e.g. 1000",
        ));
    }
    check_positive(job.timeout, path.key("timeout"), issues);
    match job.kind {
        JobKind::Retention => {
            if job.delete.is_empty() {
                issues.push(Issue::new(
                    path.key("delete"),
                    "a retention job needs at least one [[jobs.NAME.delete]] with table, \
                     time_column and older_than",
                ));
            }
            for field in [
                ("query", job.query.is_some()),
                ("recover", job.recover.is_some()),
            ] {
                if field.1 {
                    issues.push(Issue::new(
                        path.key(field.0),
                        "only a job with kind = \"stuck_scan\" runs a query; remove it or set \
                         the kind",
                    ));
                }
            }
        }
        JobKind::StuckScan => {
            if job.query.as_deref().is_none_or(|q| q.trim().is_empty()) {
                issues.push(Issue::new(
                    path.key("query"),
                    "a stuck_scan job needs a query: a SELECT whose first column is the id of \
                     each stuck row",
                ));
            }
            if job.recover.as_deref().is_some_and(unnumbered_parameter) {
                issues.push(Issue::new(
                    path.key("recover"),
                    "uses a bare \"?\" parameter; write the row's id as $1 (or ?1) wherever it \
                     appears, since only one value is bound",
                ));
            }
            if job.recover.as_deref().is_some_and(|q| q.trim().is_empty()) {
                issues.push(Issue::new(
                    path.key("recover"),
                    "is empty; give the statement that fixes one row ($1 is its id), or leave \
                     it out to only report stuck rows",
                ));
            }
            if !job.delete.is_empty() {
                issues.push(Issue::new(
                    path.key("delete"),
                    "only a retention job deletes; a stuck_scan job uses query and recover",
                ));
            }
            if !(1..=10_000).contains(&job.max_per_scan) {
                issues.push(Issue::new(
                    path.key("max_per_scan"),
                    "must be from 1 to 10000, e.g. 100",
                ));
            }
        }
    }
    let protected: Vec<SqlName> = database
        .map(|d| {
            d.protected_tables
                .iter()
                .filter_map(|t| SqlName::parse(t, 2))
                .collect()
        })
        .unwrap_or_default();
    for (i, rule) in job.delete.iter().enumerate() {
        let at = path.key("delete").index(i);
        match SqlName::parse(&rule.table, 2) {
            None => issues.push(Issue::new(
                at.key("table"),
                format!(
                    "{:?} is not a table name; names are {SQL_NAME_RULE}",
                    rule.table
                ),
            )),
            Some(table) => {
                // SQLite matches names without regard to case, even quoted: so do these checks.
                let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
                let is_protected = |p: &SqlName| {
                    same(p.base(), table.base())
                        && match (p.schema(), table.schema()) {
                            (Some(a), Some(b)) => same(a, b),
                            _ => true,
                        }
                };
                if same(table.base(), JOB_RUNS_TABLE) {
                    issues.push(Issue::new(
                        at.key("table"),
                        format!(
                            "{JOB_RUNS_TABLE} is Palisade's record of job runs and is protected; \
                             Palisade keeps its last 100 runs per job itself"
                        ),
                    ));
                } else if protected.iter().any(is_protected) {
                    issues.push(Issue::new(
                        at.key("table"),
                        format!(
                            "{:?} is protected (databases.{}.protected_tables): no job may \
                             delete from it",
                            rule.table, job.database
                        ),
                    ));
                }
            }
        }
        if SqlName::parse(&rule.time_column, 1).is_none() {
            issues.push(Issue::new(
                at.key("time_column"),
                format!(
                    "{:?} is not a column name; names are {SQL_NAME_RULE}",
                    rule.time_column
                ),
            ));
        }
        if rule.older_than.get() < std::time::Duration::from_secs(60) {
            issues.push(Issue::new(
                at.key("older_than"),
                "must be at least 1 minute, e.g. \"30d\"",
            ));
        }
    }
}
