//! The engine's error type.
//!
//! Variants separate the caller's fault (invalid input, missing or foreign
//! resources, conflicts, unconfigured features) from the engine's own failures
//! (database, git, file system). Front ends map the first group to 4xx answers
//! with the message shown as is, and the second to a generic 500 after logging.

use std::io;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is well-formed but a value in it is not acceptable.
    #[error("{message}")]
    Invalid {
        /// Stable snake_case code, e.g. `invalid_name`.
        code: &'static str,
        /// A sentence a person can act on.
        message: String,
    },
    /// The resource does not exist, or belongs to someone else.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for: `project`, `job`, `token`, ...
        what: &'static str,
    },
    /// The request clashes with the current state (a name taken, a job already finished).
    #[error("{message}")]
    Conflict {
        /// Stable snake_case code.
        code: &'static str,
        /// A sentence a person can act on.
        message: String,
    },
    /// A feature the request needs is not configured or not running.
    #[error("{message}")]
    Unavailable {
        /// Stable snake_case code.
        code: &'static str,
        /// A sentence naming what is missing.
        message: String,
    },
    /// The ledger failed.
    #[error("ledger error: {0}")]
    Db(#[from] deadpool_sqlite::rusqlite::Error),
    /// No ledger connection could be had, or its worker thread failed.
    #[error("ledger pool error: {0}")]
    Pool(String),
    /// A git operation failed; the message has credentials removed.
    #[error("git {action} failed: {message}")]
    Git {
        /// What was being done: `fetch`, `worktree add`, ...
        action: &'static str,
        /// libgit2's message with any credentials redacted.
        message: String,
    },
    /// A file system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The engine is shutting down or one of its actors is gone.
    #[error("the engine is not running")]
    Stopped,
}

/// Shorthand for results of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An invalid-input error with a code and a sentence.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid { code, message: message.into() }
    }

    /// A conflict error with a code and a sentence.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict { code, message: message.into() }
    }

    /// An unconfigured-feature error with a code and a sentence naming what to set.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Error::Unavailable { code, message: message.into() }
    }

    /// A file system error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// A git error with what was being done; credentials in the message are redacted.
    pub fn git(action: &'static str, err: git2::Error) -> Self {
        Error::Git { action, message: crate::validate::redact_credentials(err.message()) }
    }

    /// The stable snake_case code front ends put in error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. }
            | Error::Conflict { code, .. }
            | Error::Unavailable { code, .. } => code,
            Error::NotFound { .. } => "not_found",
            Error::Db(_) | Error::Pool(_) | Error::Io { .. } => "internal",
            Error::Git { .. } => "git_failed",
            Error::Stopped => "unavailable",
        }
    }

    /// True when the caller caused the error and the message is fit to show them.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::Invalid { .. }
                | Error::NotFound { .. }
                | Error::Conflict { .. }
                | Error::Unavailable { .. }
        )
    }
}

impl From<deadpool_sqlite::InteractError> for Error {
    fn from(e: deadpool_sqlite::InteractError) -> Self {
        Error::Pool(e.to_string())
    }
}

impl From<deadpool_sqlite::PoolError> for Error {
    fn from(e: deadpool_sqlite::PoolError) -> Self {
        Error::Pool(e.to_string())
    }
}
