//! One run of a job at a time, across every replica and CronJob pod: the lease a run holds.
//!
//! On PostgreSQL it is a session advisory lock, `pg_try_advisory_lock(key)`, taken on the
//! run's own connection; it is freed when the run ends or its connection closes, so a killed
//! run never leaves it behind. On SQLite it is an exclusive `flock` on a file beside the
//! database (`app.db.palisade-job-NAME.lock`), which the kernel frees with the process; an
//! in-memory database can only be shared within one process, so a set of names in the
//! process stands in.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

use crate::JobError;
use crate::db::{Conn, Database};

/// Names of the jobs on in-memory SQLite databases that run in this process now.
static IN_MEMORY: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// A held lease; dropping it frees the lock (the PostgreSQL one goes with its connection).
pub(crate) enum Lease {
    Advisory(i64),
    /// Held for its lock, which the kernel frees when the file closes.
    File {
        _held: File,
    },
    InMemory(String),
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Lease::InMemory(job) = self
            && let Some(held) = IN_MEMORY
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
        {
            held.remove(job);
        }
    }
}

/// The advisory-lock key of a job: the first 8 bytes of SHA-256("palisade:job:NAME").
pub(crate) fn advisory_key(job: &str) -> i64 {
    let digest = Sha256::digest(format!("palisade:job:{job}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Takes the lease of `job` on `conn` if no other run holds it.
pub(crate) async fn acquire(
    database: &Database,
    conn: &mut Conn,
    job: &str,
) -> Result<Option<Lease>, JobError> {
    match database {
        Database::Postgres { .. } => {
            let key = advisory_key(job);
            Ok(conn
                .try_advisory_lock(key)
                .await?
                .then_some(Lease::Advisory(key)))
        }
        Database::Sqlite { file: Some(db), .. } => {
            let mut path = db.clone().into_os_string();
            path.push(format!(".palisade-job-{job}.lock"));
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|error| JobError::Lock {
                    path: path.clone().into(),
                    error,
                })?;
            match file.try_lock() {
                Ok(()) => Ok(Some(Lease::File { _held: file })),
                Err(TryLockError::WouldBlock) => Ok(None),
                Err(TryLockError::Error(error)) => Err(JobError::Lock {
                    path: path.into(),
                    error,
                }),
            }
        }
        Database::Sqlite { file: None, .. } => {
            let mut held = IN_MEMORY.lock().unwrap_or_else(PoisonError::into_inner);
            let inserted = held.get_or_insert_with(HashSet::new).insert(job.to_owned());
            Ok(inserted.then(|| Lease::InMemory(job.to_owned())))
        }
    }
}

/// Frees the lease at the end of a run (the file and in-memory ones go when dropped).
pub(crate) async fn release(lease: Lease, conn: &mut Conn) {
    if let Lease::Advisory(key) = &lease
        && let Err(error) = conn.advisory_unlock(*key).await
    {
        // The lock goes with the connection, which the caller closes next.
        tracing::debug!(%error, "could not release the job's advisory lock");
    }
    drop(lease);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_differ_by_job() {
        assert_eq!(advisory_key("token-cleanup"), advisory_key("token-cleanup"));
        assert_ne!(advisory_key("token-cleanup"), advisory_key("stuck-batches"));
    }
}
