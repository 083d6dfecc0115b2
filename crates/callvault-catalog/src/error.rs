//! The crate's one error type.

/// The result of every catalog operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the catalog.
///
/// Messages never contain a database password: URLs are redacted before they are stored here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The catalog URL is neither `sqlite://…` nor `postgres://…`, or its driver rejected it.
    #[error("invalid catalog URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL with any user info replaced by `***`.
        url: String,
        reason: String,
    },
    /// The database refused or failed a statement.
    #[error("catalog database error while trying to {operation}")]
    Database {
        /// What the catalog was doing, e.g. "insert recording".
        operation: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// Applying the schema migrations failed (or the database has migrations this build lacks).
    #[error("catalog migration failed on {backend}")]
    Migration {
        backend: &'static str,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// No recording with this id is in the catalog.
    #[error("recording {id} not found in the catalog")]
    NotFound { id: String },
    /// `insert_recording` was given an id that is already in the catalog.
    #[error("recording {id} is already in the catalog")]
    AlreadyExists { id: String },
    /// A [`crate::ListQuery`] the catalog cannot run, e.g. `digits` with a character that is
    /// not a DTMF digit.
    #[error("invalid catalog query: {reason}")]
    InvalidQuery { reason: String },
    /// A stored value cannot be turned back into its Rust type (edited by hand, or a newer schema).
    #[error("corrupt catalog value in {table}.{column}: {value:?}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        value: String,
    },
}

impl Error {
    /// Wraps a driver error with the operation that failed; for `map_err`.
    pub(crate) fn database(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
        move |source| Error::Database { operation, source }
    }
}

/// Hides the user info (`user:password@`) of a URL so it can go into errors and logs.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The user info ends at the last '@' before the path; a password may itself contain '@'.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_user_info_only() {
        assert_eq!(
            redact_url("postgres://vault:s3cr@t@db.example:5432/callvault?sslmode=require"),
            "postgres://***@db.example:5432/callvault?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/callvault"),
            "postgres://db/callvault"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/callvault/callvault.db"),
            "sqlite:///var/lib/callvault/callvault.db"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
