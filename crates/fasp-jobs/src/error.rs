//! What can go wrong, each case its own variant, naming what and where.

use crate::model::{JobId, JobState};

/// An error of the job store or of a worker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The URL names no backend this crate knows (`sqlite:`, a path, `postgres://`).
    #[error("unsupported job store URL {url:?}: use a SQLite path, sqlite:PATH or postgres://...")]
    UnsupportedUrl {
        /// The URL, its password (if any) replaced by `<redacted>`.
        url: String,
    },
    /// The database could not be opened.
    #[error("cannot open the job store {url}: {source}")]
    Open {
        /// The URL, its password (if any) replaced by `<redacted>`.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot migrate the job store schema of {url}: {source}")]
    Migrate {
        /// The URL, its password (if any) replaced by `<redacted>`.
        url: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("job store query failed ({what}): {source}")]
    Database {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// No job has this id.
    #[error("no job {id}")]
    NotFound {
        /// The id asked for.
        id: JobId,
    },
    /// The worker's lease on the job is gone: another worker took the job over (its epoch is
    /// higher), or the job ended or was cancelled meanwhile. Nothing was written.
    #[error(
        "the lease of job {id} at epoch {epoch} is lost (taken over, or the job ended): nothing was recorded"
    )]
    LeaseLost {
        /// The job.
        id: JobId,
        /// The epoch the worker held.
        epoch: i64,
    },
    /// The request makes no sense in the job's current state.
    #[error("job {id} is {state}: cannot {action}")]
    InvalidState {
        /// The job.
        id: JobId,
        /// Its state.
        state: JobState,
        /// What was asked.
        action: &'static str,
    },
    /// Paths cannot be added to the job, or it cannot be closed: it is not persistent, it
    /// ended, or its close was asked. `reason` says which, and what to do instead.
    #[error("job {id} takes no paths: {reason}")]
    NotAccepting {
        /// The job.
        id: JobId,
        /// Why, and what to do.
        reason: String,
    },
    /// The spec holds a secret, which the store does not keep unless told to: pass it by the
    /// name of an environment variable of the worker instead
    /// ([`NewJob::secret_from_env`](crate::NewJob::secret_from_env)), or allow it with
    /// [`NewJob::store_secrets`](crate::NewJob::store_secrets).
    #[error(
        "the transfer spec holds the secret {key:?}: the job store does not keep secrets unless allowed; name an environment variable of the worker instead"
    )]
    SecretInSpec {
        /// The spec key.
        key: String,
    },
    /// The job request is invalid.
    #[error("invalid job: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// A stored row cannot be read back (a newer schema, or a row edited by hand).
    #[error("job {id} in the store cannot be read: {reason}")]
    Corrupt {
        /// The job.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl JobError {
    pub(crate) fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> JobError {
        move |source| JobError::Database { what, source }
    }

    /// Whether the error is the loss of a lease ([`JobError::LeaseLost`]).
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, JobError::LeaseLost { .. })
    }
}

/// `url` with the password of its user info (if any) replaced by `<redacted>`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_of_urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://jobs:s3cr@t@db:5432/fasp?sslmode=disable"),
            "postgres://jobs:<redacted>@db:5432/fasp?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://jobs@db/fasp"),
            "postgres://jobs@db/fasp"
        );
        assert_eq!(redact_url("sqlite:/tmp/jobs.db"), "sqlite:/tmp/jobs.db");
        assert_eq!(
            redact_url("postgres://u:p@/db?host=/tmp/x"),
            "postgres://u:<redacted>@/db?host=/tmp/x"
        );
    }
}
