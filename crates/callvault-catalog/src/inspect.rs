//! Looking at a catalog without changing it, for `callvault check-config`: what a URL names
//! (parsed by the engine's driver, nothing connected) and which schema version the database
//! holds (one read-only connection: nothing is created, migrated or backfilled, unlike
//! [`Catalog::open`]). A check must never upgrade a catalog that older nodes still use.

use std::path::PathBuf;

use sqlx::migrate::Migrator;
use sqlx::{Connection as _, PgConnection, SqliteConnection};

use crate::Catalog;
use crate::db::{ConnectTo, postgres_migrator, sqlite_migrator};
use crate::error::{Error, Result};

/// The table where sqlx records the migrations applied.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// What a catalog URL names, read without connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogUrl {
    /// An embedded database: its file (`None` in memory).
    Sqlite { file: Option<PathBuf> },
    /// A PostgreSQL server and database (the database defaults to the user's name).
    Postgres {
        host: String,
        port: u16,
        database: Option<String>,
    },
}

/// The schema a catalog holds, as this build sees it. Versions count this build's migrations:
/// version 5 is the fifth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaVersion {
    /// No catalog there yet (no SQLite file, or a database without the migrations table):
    /// [`Catalog::open`] creates it.
    Missing,
    /// `version` of this build's `latest` migrations are applied; fewer than `latest`: the
    /// next [`Catalog::open`] applies the rest.
    Known { version: usize, latest: usize },
    /// The database records migrations this build does not have (a newer build's): this build
    /// cannot open it.
    Newer { latest: usize },
    /// A migration failed part-way (`version` is its sqlx version): sqlx refuses to go on until
    /// the database is repaired by hand.
    Failed { version: i64 },
}

impl Catalog {
    /// Parses `url` as [`Catalog::open`] would, without connecting. Errors never hold the
    /// URL's password ([`crate::redact_url`]).
    pub fn parse_url(url: &str) -> Result<CatalogUrl> {
        Ok(match ConnectTo::parse(url)? {
            ConnectTo::Sqlite(options) => CatalogUrl::Sqlite {
                file: (!in_memory(url)).then(|| options.get_filename().to_path_buf()),
            },
            ConnectTo::Postgres(options) => CatalogUrl::Postgres {
                host: options.get_host().to_owned(),
                port: options.get_port(),
                database: options.get_database().map(str::to_owned),
            },
        })
    }

    /// Connects once, read-only, and reads which migrations the database has. A SQLite file
    /// that does not exist is [`SchemaVersion::Missing`], not created.
    pub async fn schema_version(url: &str) -> Result<SchemaVersion> {
        let applied = match ConnectTo::parse(url)? {
            ConnectTo::Sqlite(options) => {
                if in_memory(url) || !options.get_filename().exists() {
                    return Ok(SchemaVersion::Missing);
                }
                let mut conn = SqliteConnection::connect_with(
                    &options.read_only(true).create_if_missing(false),
                )
                .await
                .map_err(Error::database("open the SQLite catalog read-only"))?;
                let applied = sqlite_applied(&mut conn).await;
                let _ = conn.close().await;
                applied?
            }
            ConnectTo::Postgres(options) => {
                let mut conn = PgConnection::connect_with(&options)
                    .await
                    .map_err(Error::database("connect to the PostgreSQL catalog"))?;
                let applied = postgres_applied(&mut conn).await;
                let _ = conn.close().await;
                applied?
            }
        };
        let migrator = if url.starts_with("sqlite:") {
            sqlite_migrator()
        } else {
            postgres_migrator()
        };
        Ok(applied.map_or(SchemaVersion::Missing, |applied| {
            version_of(migrator, &applied)
        }))
    }
}

/// `(version, success)` of each migration recorded; `None` without the table.
type Applied = Option<Vec<(i64, bool)>>;

async fn sqlite_applied(conn: &mut SqliteConnection) -> Result<Applied> {
    let (tables,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1")
            .bind(MIGRATIONS_TABLE)
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::database("look for the migrations table"))?;
    if tables == 0 {
        return Ok(None);
    }
    sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut *conn)
        .await
        .map(Some)
        .map_err(Error::database("read the migrations applied"))
}

async fn postgres_applied(conn: &mut PgConnection) -> Result<Applied> {
    let (present,): (bool,) = sqlx::query_as("SELECT to_regclass($1) IS NOT NULL")
        .bind(MIGRATIONS_TABLE)
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::database("look for the migrations table"))?;
    if !present {
        return Ok(None);
    }
    sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut *conn)
        .await
        .map(Some)
        .map_err(Error::database("read the migrations applied"))
}

fn version_of(migrator: &Migrator, applied: &[(i64, bool)]) -> SchemaVersion {
    let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
    let latest = known.len();
    if let Some((version, _)) = applied.iter().find(|(_, success)| !success) {
        return SchemaVersion::Failed { version: *version };
    }
    if applied.iter().any(|(version, _)| !known.contains(version)) {
        return SchemaVersion::Newer { latest };
    }
    if applied.is_empty() {
        return SchemaVersion::Missing;
    }
    SchemaVersion::Known {
        version: known
            .iter()
            .filter(|v| applied.iter().any(|(a, _)| a == *v))
            .count(),
        latest,
    }
}

fn in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

impl std::fmt::Display for CatalogUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogUrl::Sqlite { file: Some(file) } => write!(f, "SQLite {}", file.display()),
            CatalogUrl::Sqlite { file: None } => f.write_str("SQLite in memory"),
            CatalogUrl::Postgres {
                host,
                port,
                database,
            } => write!(
                f,
                "PostgreSQL {host}:{port}, database {}",
                database.as_deref().unwrap_or("(the user's name)")
            ),
        }
    }
}
