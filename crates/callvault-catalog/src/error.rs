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
    /// A stored value cannot be turned back into its Rust type (edited by hand, or a newer
    /// schema): `value` is what was stored, or why it could not be read at all.
    #[error("corrupt catalog value in {table}.{column}: {value:?}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        value: String,
    },
    /// The recording is a tombstone: it can be read, not changed (HTTP 410).
    #[error("recording {id} is deleted")]
    Deleted { id: String },
    /// The recording has locks (legal holds) in force: nothing may delete it until every one
    /// is removed (HTTP 409).
    #[error("recording {id} is locked ({locks} lock(s) in force)")]
    Locked { id: String, locks: u64 },
    /// The recording is still being recorded, so it cannot be deleted yet (HTTP 409).
    #[error("recording {id} is still being recorded")]
    Active { id: String },
    /// A value given to the catalog is outside what the field accepts (HTTP 422).
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    /// `add_user` was given a name already taken.
    #[error("user {name:?} already exists")]
    UserExists { name: String },
    /// No user has this name.
    #[error("no user {name:?}")]
    UnknownUser { name: String },
    /// No token has this id (or value).
    #[error("no token {id:?}")]
    UnknownToken {
        /// The id asked for; a token's value is never repeated here.
        id: String,
    },
    /// The recording has no lock in force with this id.
    #[error("recording {recording_id} has no lock {lock_id:?} in force")]
    UnknownLock {
        recording_id: String,
        lock_id: String,
    },
    /// No custom field has this name.
    #[error("no custom field {name:?}")]
    UnknownCustomField { name: String },
    /// No retention policy or legal matter has this id (within the caller's scope).
    #[error("no {what} {id:?}")]
    UnknownItem { what: &'static str, id: String },
    /// A retention policy of this name exists already.
    #[error("a retention policy named {name:?} already exists")]
    PolicyExists { name: String },
    /// Hashing a password (argon2id) failed: its parameters are fixed, so this is a bug.
    #[error("hashing a password failed")]
    PasswordHash {
        #[source]
        source: argon2::password_hash::Error,
    },
    /// The operating system's random number generator failed (tokens, salts).
    #[error("the operating system's random number generator failed")]
    Random {
        #[source]
        source: getrandom::Error,
    },
}

impl Error {
    /// Whether waiting can cure this failure, so the same call should be tried again later
    /// (the binary's archive retries these with back-off and spools to disk meanwhile).
    ///
    /// True when the catalog could not take the statement *now*: the server unreachable or
    /// going away (connection refused, reset or closed, PostgreSQL shutting down or not yet
    /// accepting connections, a failover to a read-only standby), the pool busy or closed,
    /// SQLite's write lock held by another writer (BUSY/LOCKED), a full disk (SQLITE_FULL,
    /// PostgreSQL `disk_full` and other exhausted resources), I/O errors, and PostgreSQL
    /// serialization failures, deadlocks, lock and statement timeouts. False when the same
    /// call would fail again whatever happens: a constraint violation, an unknown recording,
    /// a corrupt stored value, an invalid URL or query, a failed migration.
    ///
    /// A closed pool counts as transient: it only happens while the binary shuts down, and
    /// the command must then be kept (spooled), not given up.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database { source, .. } => sqlx_is_transient(source),
            Error::Migration {
                source: sqlx::migrate::MigrateError::Execute(source),
                ..
            } => sqlx_is_transient(source),
            Error::Migration { .. }
            | Error::InvalidUrl { .. }
            | Error::NotFound { .. }
            | Error::AlreadyExists { .. }
            | Error::InvalidQuery { .. }
            | Error::Corrupt { .. }
            | Error::Deleted { .. }
            | Error::Locked { .. }
            | Error::Active { .. }
            | Error::InvalidInput { .. }
            | Error::UserExists { .. }
            | Error::UnknownUser { .. }
            | Error::UnknownToken { .. }
            | Error::UnknownLock { .. }
            | Error::UnknownCustomField { .. }
            | Error::UnknownItem { .. }
            | Error::PolicyExists { .. }
            | Error::PasswordHash { .. }
            | Error::Random { .. } => false,
        }
    }

    /// Wraps a driver error with the operation that failed; for `map_err`.
    pub(crate) fn database(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
        move |source| Error::Database { operation, source }
    }
}

fn sqlx_is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => {
            let code = e.code();
            let code = code.as_deref().unwrap_or_default();
            if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                sqlite_code_is_transient(code)
            } else if e
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                postgres_state_is_transient(code)
            } else {
                false
            }
        }
        _ => false,
    }
}

/// SQLite result codes (the primary code is the low byte of the extended one that sqlx
/// reports) that waiting can cure: <https://www.sqlite.org/rescode.html>.
fn sqlite_code_is_transient(code: &str) -> bool {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    const SQLITE_NOMEM: i32 = 7;
    const SQLITE_READONLY: i32 = 8; // includes a file system remounted read-only
    const SQLITE_IOERR: i32 = 10;
    const SQLITE_FULL: i32 = 13;
    const SQLITE_CANTOPEN: i32 = 14;
    const SQLITE_PROTOCOL: i32 = 15;
    code.parse::<i32>().is_ok_and(|code| {
        matches!(
            code & 0xff,
            SQLITE_BUSY
                | SQLITE_LOCKED
                | SQLITE_NOMEM
                | SQLITE_READONLY
                | SQLITE_IOERR
                | SQLITE_FULL
                | SQLITE_CANTOPEN
                | SQLITE_PROTOCOL
        )
    })
}

/// PostgreSQL SQLSTATEs that waiting can cure (Appendix A of its manual).
fn postgres_state_is_transient(state: &str) -> bool {
    // 08: connection exception; 53: insufficient resources (disk_full 53100, out of memory,
    // too many connections); 57P0x: admin/crash shutdown, cannot connect now; 58: system
    // error (I/O); 40001/40P01: serialization failure, deadlock; 55P03: lock not available;
    // 57014: statement timeout; 25006: read-only transaction (a standby during failover).
    state.starts_with("08")
        || state.starts_with("53")
        || state.starts_with("57P0")
        || state.starts_with("58")
        || matches!(state, "40001" | "40P01" | "55P03" | "57014" | "25006")
}

/// Hides the user info (`user:password@`) of a URL so it can go into errors and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The user info ends at the last '@' of the whole URL, not of the authority: people write
    // passwords holding '/', '?', '#' or '@' without percent-encoding them, and each of the
    // first three would end the authority early and leave the password in the text. A '@'
    // further on (in a path or query, rare in a database URL) only hides more than needed.
    match rest.rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_and_postgres_codes_are_classified() {
        // Extended codes reduce to their primary code: SQLITE_BUSY_SNAPSHOT (517) is BUSY,
        // SQLITE_IOERR_WRITE (778) is IOERR; SQLITE_CONSTRAINT_PRIMARYKEY (1555) is not.
        for code in ["5", "517", "6", "13", "10", "778", "8"] {
            assert!(sqlite_code_is_transient(code), "{code}");
        }
        for code in ["1555", "2067", "19", "11", "1", "not a number"] {
            assert!(!sqlite_code_is_transient(code), "{code}");
        }
        for state in [
            "08006", "08001", "57P01", "57P03", "53100", "40001", "40P01", "58030",
        ] {
            assert!(postgres_state_is_transient(state), "{state}");
        }
        for state in ["23505", "23503", "22P02", "42601", "42P01", "XX000"] {
            assert!(!postgres_state_is_transient(state), "{state}");
        }
    }

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
        // Unencoded '#', '/' and '?' in a password would end the authority early.
        for password in ["pa#ss", "pa/ss", "pa?ss", "p@#/?x"] {
            let url = format!("postgres://vault:{password}@db.example:5432/callvault");
            let redacted = redact_url(&url);
            assert_eq!(redacted, "postgres://***@db.example:5432/callvault");
            assert!(!redacted.contains(password));
        }
    }
}
