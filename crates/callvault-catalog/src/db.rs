//! The two database engines behind one small interface.
//!
//! The catalog's SQL is written once, in the dialect both engines accept (`$N` placeholders,
//! `ON CONFLICT`, BIGINT/TEXT only), and values cross the boundary as [`Arg`] and [`Row`].
//! This keeps the queries free of the trait-bound maze that generic sqlx code needs, and adding a
//! statement means adding it once.
//!
//! A [`Row`] knows the table it came from, and its accessors (`row.text("from_uri")?`) turn
//! a value that does not decode into [`Error::Corrupt`] naming that table and column, so the
//! code reading rows says only which column it wants.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection as _, Postgres, Row as _, Sqlite};

use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::error::{Error, Result, redact_url};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a writer waits for SQLite's single write lock before failing with "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite has one writer at a time; a few connections let readers (the API) run beside it.
const SQLITE_MAX_CONNECTIONS: u32 = 4;
const POSTGRES_MAX_CONNECTIONS: u32 = 8;
/// How long a statement waits for a PostgreSQL connection (sqlx retries a refused connect
/// until then) before failing with a pool timeout ([`Error::is_transient`]): short enough that
/// callers see an outage quickly and decide themselves (the archive retries and spools).
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A catalog URL parsed into its engine's connection options; nothing is connected yet.
pub(crate) enum ConnectTo {
    Sqlite(SqliteConnectOptions),
    Postgres(PgConnectOptions),
}

impl ConnectTo {
    /// `sqlite:…` or `postgres://…` (`postgresql://…`), as the engine's driver reads it.
    pub(crate) fn parse(url: &str) -> Result<ConnectTo> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: redact_url(url),
            reason,
        };
        if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url)
                .map(ConnectTo::Sqlite)
                .map_err(|e| invalid(e.to_string()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            PgConnectOptions::from_str(url)
                .map(ConnectTo::Postgres)
                .map_err(|e| invalid(format!("{e}{}", unencoded_password_hint(url))))
        } else {
            Err(invalid("expected sqlite://PATH or postgres://…".to_owned()))
        }
    }
}

/// The likely cause when a URL's user info holds a character that ends the authority: the
/// driver's own message ("invalid port number") does not say.
fn unencoded_password_hint(url: &str) -> &'static str {
    let user_info = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .map_or("", |(user_info, _)| user_info);
    if user_info.contains(['#', '/', '?']) {
        " (write '#', '/' and '?' in the user name or password percent-encoded: %23, %2F, %3F)"
    } else {
        ""
    }
}

/// The migrations this build applies to each engine.
pub(crate) fn sqlite_migrator() -> &'static Migrator {
    &SQLITE_MIGRATOR
}

pub(crate) fn postgres_migrator() -> &'static Migrator {
    &POSTGRES_MIGRATOR
}

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One bind value; every column of the schema is one of these.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
}

pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

pub(crate) enum DbRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Pool {
    /// Connects and brings the schema up to date.
    pub(crate) async fn open(url: &str) -> Result<Pool> {
        match ConnectTo::parse(url)? {
            ConnectTo::Sqlite(options) => {
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                Self::open_sqlite(options, in_memory).await
            }
            ConnectTo::Postgres(options) => Self::open_postgres(options).await,
        }
    }

    async fn open_sqlite(options: SqliteConnectOptions, in_memory: bool) -> Result<Pool> {
        let options = options
            .create_if_missing(true)
            // WAL: readers never block the writer; NORMAL is durable across process crashes in
            // WAL mode, only a power cut can lose the last transactions.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        let mut pool_options = SqlitePoolOptions::new()
            .max_connections(SQLITE_MAX_CONNECTIONS)
            .after_release(|conn, _| Box::pin(sqlite_connection_reusable(conn)));
        if in_memory {
            // An in-memory database lives as long as one connection to it: keep one forever.
            pool_options = pool_options
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(Error::database("open the SQLite catalog"))?;
        SQLITE_MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| Error::Migration {
                backend: "sqlite",
                source,
            })?;
        Ok(Pool::Sqlite(pool))
    }

    async fn open_postgres(options: PgConnectOptions) -> Result<Pool> {
        let pool = PgPoolOptions::new()
            .max_connections(POSTGRES_MAX_CONNECTIONS)
            .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(Error::database("open the PostgreSQL catalog"))?;
        // sqlx takes an advisory lock here, so several nodes starting at once migrate once.
        POSTGRES_MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| Error::Migration {
                backend: "postgres",
                source,
            })?;
        Ok(Pool::Postgres(pool))
    }

    /// A transaction for writes.
    ///
    /// Callers make their first statement a write (usually on the parent `recordings` row):
    /// SQLite then takes its write lock up front, waiting out `busy_timeout`, instead of failing
    /// with SQLITE_BUSY when a read snapshot must be upgraded; PostgreSQL locks the parent row, so
    /// the `MAX(position) + 1` numbering of child rows cannot race another node.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        let tx = match self {
            Pool::Sqlite(pool) => pool.begin().await.map(Tx::Sqlite),
            Pool::Postgres(pool) => pool.begin().await.map(Tx::Postgres),
        };
        tx.map_err(Error::database("begin a transaction"))
    }

    /// A read-only transaction that sees one snapshot for all its queries (a recording and its
    /// children are read by separate statements).
    pub(crate) async fn begin_read(&self) -> Result<Tx> {
        let mut tx = self.begin().await?;
        if let Tx::Postgres(_) = tx {
            // READ COMMITTED (the default) would take a new snapshot per statement.
            tx.execute(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                &[],
            )
            .await
            .map_err(Error::database("begin a read transaction"))?;
        }
        // SQLite: a deferred transaction takes its snapshot at the first read and keeps it.
        Ok(tx)
    }

    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// Whether a SQLite connection coming back to the pool may be handed out again: only if sqlx
/// knows it to be outside any transaction. Otherwise the pool closes it (closing rolls back
/// whatever SQLite still has open) and opens a fresh one when needed.
///
/// Why: when a COMMIT fails with SQLITE_FULL (or IOERR, NOMEM), SQLite rolls the whole
/// transaction back by itself (<https://www.sqlite.org/lang_transaction.html>, "Response To
/// Errors Within A Transaction"). sqlx does not expect that: its `Transaction` keeps the
/// connection's transaction depth at 1, and the ROLLBACK it queues on drop fails ("no
/// transaction is active"), which leaves the depth at 1 (sqlx-sqlite 0.8.6,
/// `connection/worker.rs`). Reused, the connection begins its next transaction with
/// `SAVEPOINT` instead of `BEGIN`. When that one fails too (the disk is still full), its
/// rollback is `ROLLBACK TO SAVEPOINT`, which leaves the transaction open; every later
/// transaction on the connection is then a savepoint nested inside it, whose `RELEASE` commits
/// nothing while reporting success, and whose first write takes SQLite's write lock for good.
/// That was the "database is locked" after a full disk: the server's own pooled connection
/// held the WAL write lock from the archive's first retries on, so once space was back every
/// write on another connection waited out the busy timeout and failed, and the holder's
/// "committed" writes were never committed. Every catalog transaction ends before its
/// connection comes back (committed, or rolled back by the ROLLBACK a dropped one queues, which
/// the ping below waits for), so a depth other than 0 here is exactly that lost track.
async fn sqlite_connection_reusable(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    // The ROLLBACK queued by a dropped `Transaction` runs on the connection's worker before
    // this ping is answered, so the depth read next is the one it left.
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::debug!(
            "closing a catalog connection whose transaction state sqlx lost track of \
             (SQLite rolled back a failed commit by itself)"
        );
        return Ok(false);
    }
    Ok(true)
}

fn sqlite_query<'q>(
    sql: &'q str,
    args: &[Arg<'q>],
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    args.iter().fold(sqlx::query(sql), |query, arg| match *arg {
        Arg::Int(v) => query.bind(v),
        Arg::OptInt(v) => query.bind(v),
        Arg::Text(v) => query.bind(v),
        Arg::OptText(v) => query.bind(v),
    })
}

fn postgres_query<'q>(
    sql: &'q str,
    args: &[Arg<'q>],
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    args.iter().fold(sqlx::query(sql), |query, arg| match *arg {
        Arg::Int(v) => query.bind(v),
        Arg::OptInt(v) => query.bind(v),
        Arg::Text(v) => query.bind(v),
        Arg::OptText(v) => query.bind(v),
    })
}

impl Tx {
    /// Runs one statement; returns the number of rows it changed.
    pub(crate) async fn execute<'q>(
        &mut self,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<u64, sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => Ok(sqlite_query(sql, args)
                .execute(&mut **tx)
                .await?
                .rows_affected()),
            Tx::Postgres(tx) => Ok(postgres_query(sql, args)
                .execute(&mut **tx)
                .await?
                .rows_affected()),
        }
    }

    pub(crate) async fn fetch_all<'q>(
        &mut self,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<Vec<DbRow>, sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => Ok(sqlite_query(sql, args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(DbRow::Sqlite)
                .collect()),
            Tx::Postgres(tx) => Ok(postgres_query(sql, args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(DbRow::Postgres)
                .collect()),
        }
    }

    /// The first column of the first row, e.g. of `SELECT COUNT(*)`.
    pub(crate) async fn fetch_i64<'q>(
        &mut self,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<i64, sqlx::Error> {
        let rows = self.fetch_all(sql, args).await?;
        let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
        match row {
            DbRow::Sqlite(row) => row.try_get(0),
            DbRow::Postgres(row) => row.try_get(0),
        }
    }

    /// [`Tx::execute`] with a failure reported as the catalog `operation` that failed.
    pub(crate) async fn run<'q>(
        &mut self,
        operation: &'static str,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<u64> {
        self.execute(sql, args)
            .await
            .map_err(Error::database(operation))
    }

    /// For a write transaction whose first statements must be reads: SQLite takes its write lock
    /// now (waiting out `busy_timeout`), so the reads that follow are not a snapshot that
    /// another connection's commit makes stale, which SQLite refuses to upgrade to a write
    /// (SQLITE_BUSY at once, without waiting: the API's audit entry racing the archive's pause
    /// row answered 503). A write statement that changes nothing is enough; PostgreSQL needs
    /// nothing here (its transactions lock the rows they write).
    pub(crate) async fn take_write_lock(&mut self) -> Result<()> {
        if let Tx::Sqlite(_) = self {
            self.run(
                "take the write lock",
                "UPDATE audit_head SET seq = seq WHERE 0 = 1",
                &[],
            )
            .await?;
        }
        Ok(())
    }

    /// The rows of a query on `table` (named by decode errors), a failure reported as the
    /// catalog `operation` that failed.
    pub(crate) async fn rows<'q>(
        &mut self,
        operation: &'static str,
        table: &'static str,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<Vec<Row>> {
        Ok(self
            .fetch_all(sql, args)
            .await
            .map_err(Error::database(operation))?
            .into_iter()
            .map(|inner| Row { inner, table })
            .collect())
    }

    /// [`Tx::fetch_i64`] with a failure reported as the catalog `operation` that failed.
    pub(crate) async fn count<'q>(
        &mut self,
        operation: &'static str,
        sql: &'q str,
        args: &[Arg<'q>],
    ) -> Result<i64> {
        self.fetch_i64(sql, args)
            .await
            .map_err(Error::database(operation))
    }

    /// Commits; a failure is reported as the catalog `operation` that failed.
    pub(crate) async fn finish(self, operation: &'static str) -> Result<()> {
        self.commit().await.map_err(Error::database(operation))
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }
}

impl DbRow {
    /// One column by name, decoded the same way on both engines.
    pub(crate) fn get<T>(&self, column: &str) -> Result<T, sqlx::Error>
    where
        T: for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>,
    {
        match self {
            DbRow::Sqlite(row) => row.try_get(column),
            DbRow::Postgres(row) => row.try_get(column),
        }
    }
}

/// A row of one table, read by column name; a value that does not decode, or that does not
/// make sense as what the column holds, is [`Error::Corrupt`] naming the table and column.
pub(crate) struct Row {
    inner: DbRow,
    table: &'static str,
}

impl Row {
    fn get<T>(&self, column: &'static str) -> Result<T>
    where
        T: for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>,
    {
        self.inner.get(column).map_err(|e| self.corrupt(column, e))
    }

    /// The error for `column`'s stored `value`.
    pub(crate) fn corrupt(&self, column: &'static str, value: impl ToString) -> Error {
        Error::Corrupt {
            table: self.table,
            column,
            value: value.to_string(),
        }
    }

    pub(crate) fn text(&self, column: &'static str) -> Result<String> {
        self.get(column)
    }

    pub(crate) fn opt_text(&self, column: &'static str) -> Result<Option<String>> {
        self.get(column)
    }

    pub(crate) fn int(&self, column: &'static str) -> Result<i64> {
        self.get(column)
    }

    pub(crate) fn opt_int(&self, column: &'static str) -> Result<Option<i64>> {
        self.get(column)
    }

    pub(crate) fn opt_float(&self, column: &'static str) -> Result<Option<f64>> {
        self.get(column)
    }

    /// A count that cannot be negative.
    pub(crate) fn count(&self, column: &'static str) -> Result<u64> {
        let value = self.int(column)?;
        u64::try_from(value).map_err(|_| self.corrupt(column, value))
    }

    /// A flag stored as 0 or 1.
    pub(crate) fn opt_flag(&self, column: &'static str) -> Result<Option<bool>> {
        match self.opt_int(column)? {
            None => Ok(None),
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            Some(other) => Err(self.corrupt(column, other)),
        }
    }

    /// A timestamp stored as unix milliseconds.
    pub(crate) fn time(&self, column: &'static str) -> Result<OffsetDateTime> {
        let ms = self.int(column)?;
        crate::model::from_unix_ms(ms, self.table, column)
    }

    pub(crate) fn opt_time(&self, column: &'static str) -> Result<Option<OffsetDateTime>> {
        self.opt_int(column)?
            .map(|ms| crate::model::from_unix_ms(ms, self.table, column))
            .transpose()
    }

    /// A name stored with its type's `as_str` spelling, parsed back.
    pub(crate) fn parse<T: FromStr>(&self, column: &'static str) -> Result<T> {
        let value = self.text(column)?;
        value.parse().map_err(|_| self.corrupt(column, value))
    }

    pub(crate) fn opt_parse<T: FromStr>(&self, column: &'static str) -> Result<Option<T>> {
        self.opt_text(column)?
            .map(|value| value.parse().map_err(|_| self.corrupt(column, value)))
            .transpose()
    }

    /// A JSON document stored as TEXT.
    pub(crate) fn json<T: DeserializeOwned>(&self, column: &'static str) -> Result<T> {
        let value = self.text(column)?;
        serde_json::from_str(&value).map_err(|_| self.corrupt(column, value))
    }
}
