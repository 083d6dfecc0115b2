//! Users (argon2id passwords, a role, an optional tenant) and their bearer tokens.
//!
//! Tokens are `cv_` and 43 base64url characters: 256 bits from the operating system's random
//! number generator. Only their SHA-256 is stored (a token is as good as a password, and a
//! leaked catalog must not hand them out); a plain hash is enough where the secret has 256
//! bits of entropy, and it lets a request's token be found by an index lookup. A token's
//! `last_used_at` is written at most once a minute, so authenticating is not a write per
//! request.

use std::fmt;
use std::str::FromStr;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use super::Catalog;
use super::audit::{AuditAction, NewAuditEntry, append};
use crate::db::{Arg, Row};
use crate::error::{Error, Result};
use crate::model::to_unix_ms;
use crate::scope::{Actor, Scope};

/// What a user may do; each role includes the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Search, view, play.
    Viewer,
    /// + annotate, score and update the review.
    Reviewer,
    /// Viewer's and reviewer's rights, and download, lock, unlock, delete, pause, resume,
    /// read the audit trail, build export packages, make share links.
    Compliance,
    /// Everything, users and custom fields included.
    Admin,
}

/// One thing a role may or may not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Permission {
    View,
    Play,
    Annotate,
    Download,
    Lock,
    Delete,
    Pause,
    ReadAudit,
    ManageUsers,
    /// Build export packages (many recordings, every catalog field, in one file).
    Export,
    /// Make and revoke links that let someone without an account play a recording.
    Share,
    /// Flag a recording restricted (or not).
    Restrict,
    /// See restricted recordings (everyone else gets 404 for them).
    ViewRestricted,
    /// Retention policies, the "never expire" flag, legal matters.
    ManageRetention,
    /// Write a recording's transcript (a speech-to-text service's token).
    WriteTranscript,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Reviewer, Role::Compliance, Role::Admin];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Compliance => "compliance",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        let needed = match permission {
            Permission::View | Permission::Play => Role::Viewer,
            Permission::Annotate | Permission::WriteTranscript => Role::Reviewer,
            Permission::Download
            | Permission::Lock
            | Permission::Delete
            | Permission::Pause
            | Permission::ReadAudit
            | Permission::Export
            | Permission::Share
            | Permission::Restrict
            | Permission::ViewRestricted
            | Permission::ManageRetention => Role::Compliance,
            Permission::ManageUsers => Role::Admin,
        };
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given to [`Role::from_str`] is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected viewer, reviewer, compliance or admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// A user as the catalog keeps it (never its password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// A user with a tenant sees and touches only that tenant's recordings.
    pub tenant: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Set once disabled: a disabled user cannot sign in and its tokens stop working.
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
}

impl User {
    /// The recordings this user may see and touch.
    pub fn scope(&self) -> Scope {
        match &self.tenant {
            Some(tenant) => Scope::Tenant(tenant.clone()),
            None => Scope::All,
        }
    }
}

/// A user to add. `Debug` does not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// 1-64 characters of `A-Z a-z 0-9 . _ @ -`; `cli:…` is reserved for the operator CLI.
    pub name: String,
    /// At least 8 characters; only its argon2id hash is stored.
    pub password: String,
    pub role: Role,
    pub tenant: Option<String>,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("password", &"***")
            .field("role", &self.role)
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// A token as the catalog keeps it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// `tok_` and 16 hex digits: what `tokens revoke` and listings name it by.
    pub id: String,
    pub user: String,
    /// What the token is for (e.g. `wallboard`), as given when it was created.
    pub label: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops working; `None`: never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// To the minute.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// What a new token carries besides its user ([`Catalog::create_token_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenOptions {
    /// What the token is for: 1-100 characters, no control characters.
    pub label: Option<String>,
    /// When it stops working (after its creation); `None`: never.
    pub expires_at: Option<OffsetDateTime>,
}

/// A token just created: the only time its value exists outside its holder. `Debug` does not
/// show it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    /// `cv_…`: give it to the user, it cannot be read back.
    pub token: String,
    pub info: Token,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("token", &"***")
            .field("info", &self.info)
            .finish()
    }
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user: User,
    pub token_id: String,
}

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "cv_";
/// How often at most `last_used_at` is written.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

const USER_COLUMNS: &str = "name, role, tenant, created_at, disabled_at";
const TOKEN_COLUMNS: &str =
    "id, user_name, label, created_at, expires_at, revoked_at, last_used_at";
/// Longest token label, in characters.
const MAX_LABEL: usize = 100;

fn user_from_row(row: &Row) -> Result<User> {
    Ok(User {
        name: row.text("name")?,
        role: row.parse("role")?,
        tenant: row.opt_text("tenant")?,
        created_at: row.time("created_at")?,
        disabled_at: row.opt_time("disabled_at")?,
    })
}

fn token_from_row(row: &Row) -> Result<Token> {
    Ok(Token {
        id: row.text("id")?,
        user: row.text("user_name")?,
        label: row.opt_text("label")?,
        created_at: row.time("created_at")?,
        expires_at: row.opt_time("expires_at")?,
        revoked_at: row.opt_time("revoked_at")?,
        last_used_at: row.opt_time("last_used_at")?,
    })
}

fn validate_name(name: &str) -> Result<()> {
    let valid = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if !valid {
        return Err(Error::InvalidInput {
            field: "name",
            reason: "1-64 characters of A-Z a-z 0-9 . _ @ -".to_owned(),
        });
    }
    Ok(())
}

/// A tenant name: 1-64 characters, no control characters.
pub(crate) fn validate_tenant(tenant: &str) -> Result<()> {
    if tenant.is_empty() || tenant.chars().count() > 64 || tenant.chars().any(char::is_control) {
        return Err(Error::InvalidInput {
            field: "tenant",
            reason: "1-64 characters, none of them control characters".to_owned(),
        });
    }
    Ok(())
}

/// `n` bytes from the operating system's random number generator.
fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0_u8; N];
    getrandom::fill(&mut bytes).map_err(|source| Error::Random { source })?;
    Ok(bytes)
}

fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The argon2id PHC string of `password` (run off the async threads: it takes tens of ms).
async fn hash_password(password: String) -> Result<String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|source| Error::PasswordHash { source })?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|source| Error::PasswordHash { source })
    })
    .await
    .expect("argon2 hashing does not panic")
}

/// Whether `password` matches the PHC string `stored`; a stored value that is not a PHC
/// string matches nothing.
async fn password_matches(stored: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
    })
    .await
    .expect("argon2 verification does not panic")
}

/// The hash checked when the user is unknown, so that answering "no such user" takes as long
/// as "wrong password" (a timing difference would tell which names exist).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$VIsbq9Xhfp8b6e34KIq1Fg$PLsKnISxP7uqv5a9q8iHZ7926iLQOZm0fP5fVKhy+GM";

impl Catalog {
    /// Adds a user; its password is stored as an argon2id hash. A taken name is
    /// [`Error::UserExists`]; a bad name, short password or bad tenant [`Error::InvalidInput`].
    pub async fn add_user(&self, user: &NewUser, by: &Actor, at: OffsetDateTime) -> Result<User> {
        validate_name(&user.name)?;
        if user.name.starts_with("cli:") {
            return Err(Error::InvalidInput {
                field: "name",
                reason: "names starting with cli: are reserved for the operator CLI".to_owned(),
            });
        }
        if user.password.chars().count() < 8 {
            return Err(Error::InvalidInput {
                field: "password",
                reason: "at least 8 characters".to_owned(),
            });
        }
        if let Some(tenant) = &user.tenant {
            validate_tenant(tenant)?;
        }
        let hash = hash_password(user.password.clone()).await?;
        let mut tx = self.pool.begin().await?;
        let inserted = tx
            .execute(
                "INSERT INTO users (name, password_hash, role, tenant, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    Arg::Text(&user.name),
                    Arg::Text(&hash),
                    Arg::Text(user.role.as_str()),
                    Arg::OptText(user.tenant.as_deref()),
                    Arg::Int(to_unix_ms(at)),
                ],
            )
            .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(Error::UserExists {
                    name: user.name.clone(),
                });
            }
            Err(source) => {
                return Err(Error::Database {
                    operation: "add user",
                    source,
                });
            }
        }
        let detail = format!(
            "added user {} with role {}{}",
            user.name,
            user.role,
            user.tenant
                .as_deref()
                .map(|t| format!(" in tenant {t}"))
                .unwrap_or_default()
        );
        audit_users(&mut tx, by, at, detail, user.tenant.as_deref()).await?;
        tx.finish("commit user").await?;
        Ok(User {
            name: user.name.clone(),
            role: user.role,
            tenant: user.tenant.clone(),
            created_at: crate::model::from_unix_ms(to_unix_ms(at), "users", "created_at")?,
            disabled_at: None,
        })
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "list users",
                "users",
                &format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"),
                &[],
            )
            .await?;
        tx.finish("end read").await?;
        rows.iter().map(user_from_row).collect()
    }

    /// One user, or `None`.
    pub async fn user(&self, name: &str) -> Result<Option<User>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "read user",
                "users",
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"),
                &[Arg::Text(name)],
            )
            .await?;
        tx.finish("end read").await?;
        rows.first().map(user_from_row).transpose()
    }

    /// Disables a user (it can no longer sign in, its tokens stop working); disabling twice
    /// keeps the first time. Unknown: [`Error::UnknownUser`].
    pub async fn disable_user(&self, name: &str, by: &Actor, at: OffsetDateTime) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        let updated = tx
            .run(
                "disable user",
                "UPDATE users SET disabled_at = COALESCE(disabled_at, $2) WHERE name = $1",
                &[Arg::Text(name), Arg::Int(to_unix_ms(at))],
            )
            .await?;
        if updated == 0 {
            return Err(Error::UnknownUser {
                name: name.to_owned(),
            });
        }
        let rows = tx
            .rows(
                "read user",
                "users",
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"),
                &[Arg::Text(name)],
            )
            .await?;
        let user = rows
            .first()
            .map(user_from_row)
            .transpose()?
            .ok_or_else(|| Error::UnknownUser {
                name: name.to_owned(),
            })?;
        audit_users(
            &mut tx,
            by,
            at,
            format!("disabled user {name}"),
            user.tenant.as_deref(),
        )
        .await?;
        tx.finish("commit disabled user").await?;
        Ok(user)
    }

    /// The user if `password` is theirs and they are not disabled; `None` otherwise (unknown
    /// name, wrong password, disabled — indistinguishable, also in time).
    pub async fn verify_password(&self, name: &str, password: &str) -> Result<Option<User>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "read user",
                "users",
                &format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE name = $1"),
                &[Arg::Text(name)],
            )
            .await?;
        tx.finish("end read").await?;
        let Some(row) = rows.first() else {
            password_matches(DUMMY_HASH.to_owned(), password.to_owned()).await;
            return Ok(None);
        };
        let user = user_from_row(row)?;
        let matches = password_matches(row.text("password_hash")?, password.to_owned()).await;
        Ok((matches && user.disabled_at.is_none()).then_some(user))
    }

    /// Creates a bearer token for `user` (which must exist and not be disabled), without a
    /// label or an expiry.
    pub async fn create_token(
        &self,
        user: &str,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<NewToken> {
        self.create_token_with(user, &TokenOptions::default(), by, at)
            .await
    }

    /// Creates a bearer token for `user` (which must exist and not be disabled) with a label
    /// and an expiry. A label too long or with control characters, or an expiry not after
    /// `at`: [`Error::InvalidInput`].
    pub async fn create_token_with(
        &self,
        user: &str,
        options: &TokenOptions,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<NewToken> {
        if let Some(label) = &options.label
            && (label.trim().is_empty()
                || label.chars().count() > MAX_LABEL
                || label.chars().any(char::is_control))
        {
            return Err(Error::InvalidInput {
                field: "label",
                reason: format!("1 to {MAX_LABEL} characters, none of them control characters"),
            });
        }
        let expires_at = options.expires_at.map(to_unix_ms);
        if expires_at.is_some_and(|expiry| expiry <= to_unix_ms(at)) {
            return Err(Error::InvalidInput {
                field: "expires_at",
                reason: "must be later than the token's creation".to_owned(),
            });
        }
        let token = format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
        );
        let id = format!("tok_{}", hex::encode(random_bytes::<8>()?));
        let mut tx = self.pool.begin().await?;
        tx.take_write_lock().await?;
        let owner = tx
            .rows(
                "read user",
                "users",
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"),
                &[Arg::Text(user)],
            )
            .await?
            .first()
            .map(user_from_row)
            .transpose()?;
        let Some(owner) = owner.filter(|u| u.disabled_at.is_none()) else {
            return Err(Error::UnknownUser {
                name: user.to_owned(),
            });
        };
        tx.run(
            "create token",
            "INSERT INTO tokens (id, user_name, token_sha256, created_at, label, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                Arg::Text(&id),
                Arg::Text(user),
                Arg::Text(&token_digest(&token)),
                Arg::Int(to_unix_ms(at)),
                Arg::OptText(options.label.as_deref()),
                Arg::OptInt(expires_at),
            ],
        )
        .await?;
        let mut detail = format!("created token {id} for {user}");
        if let Some(label) = &options.label {
            detail.push_str(&format!(" labelled {label:?}"));
        }
        if let Some(expiry) = expires_at {
            detail.push_str(&format!(" expiring at {expiry} ms"));
        }
        audit_users(&mut tx, by, at, detail, owner.tenant.as_deref()).await?;
        tx.finish("commit token").await?;
        Ok(NewToken {
            token,
            info: Token {
                id,
                user: user.to_owned(),
                label: options.label.clone(),
                created_at: crate::model::from_unix_ms(to_unix_ms(at), "tokens", "created_at")?,
                expires_at: expires_at
                    .map(|ms| crate::model::from_unix_ms(ms, "tokens", "expires_at"))
                    .transpose()?,
                revoked_at: None,
                last_used_at: None,
            },
        })
    }

    /// The tokens of `user` (every user's when `None`), oldest first, revoked ones included.
    pub async fn tokens(&self, user: Option<&str>) -> Result<Vec<Token>> {
        let mut tx = self.pool.begin_read().await?;
        let rows = match user {
            Some(user) => {
                tx.rows(
                    "list tokens",
                    "tokens",
                    &format!(
                        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE user_name = $1 \
                         ORDER BY created_at, id"
                    ),
                    &[Arg::Text(user)],
                )
                .await?
            }
            None => {
                tx.rows(
                    "list tokens",
                    "tokens",
                    &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"),
                    &[],
                )
                .await?
            }
        };
        tx.finish("end read").await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token named by its id (`tok_…`) or by the token itself (`cv_…`); revoking
    /// twice keeps the first time. Neither: [`Error::UnknownToken`].
    pub async fn revoke_token(
        &self,
        id_or_token: &str,
        by: &Actor,
        at: OffsetDateTime,
    ) -> Result<Token> {
        let (column, key) = if id_or_token.starts_with(TOKEN_PREFIX) {
            ("token_sha256", token_digest(id_or_token))
        } else {
            ("id", id_or_token.to_owned())
        };
        let unknown = || Error::UnknownToken {
            id: if column == "id" {
                id_or_token.to_owned()
            } else {
                format!("{TOKEN_PREFIX}…")
            },
        };
        let mut tx = self.pool.begin().await?;
        let updated = tx
            .run(
                "revoke token",
                &format!(
                    "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE {column} = $1"
                ),
                &[Arg::Text(&key), Arg::Int(to_unix_ms(at))],
            )
            .await?;
        if updated == 0 {
            return Err(unknown());
        }
        let token = tx
            .rows(
                "read token",
                "tokens",
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE {column} = $1"),
                &[Arg::Text(&key)],
            )
            .await?
            .first()
            .map(token_from_row)
            .transpose()?
            .ok_or_else(unknown)?;
        let tenant = tx
            .rows(
                "read user",
                "users",
                "SELECT tenant FROM users WHERE name = $1",
                &[Arg::Text(&token.user)],
            )
            .await?
            .first()
            .map(|row| row.opt_text("tenant"))
            .transpose()?
            .flatten();
        audit_users(
            &mut tx,
            by,
            at,
            format!("revoked token {} of {}", token.id, token.user),
            tenant.as_deref(),
        )
        .await?;
        tx.finish("commit revoked token").await?;
        Ok(token)
    }

    /// The user a bearer token belongs to, if the token is known, neither revoked nor
    /// expired at `at`, and its user not disabled; `None` otherwise. Notes the use in `last_used_at` (at most once a minute).
    pub async fn authenticate(
        &self,
        token: &str,
        at: OffsetDateTime,
    ) -> Result<Option<Authenticated>> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let digest = token_digest(token);
        let now = to_unix_ms(at);
        let mut tx = self.pool.begin_read().await?;
        let rows = tx
            .rows(
                "authenticate",
                "users",
                "SELECT t.id AS token_id, t.last_used_at, u.name, u.role, u.tenant, \
                 u.created_at, u.disabled_at FROM tokens t JOIN users u ON u.name = t.user_name \
                 WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND u.disabled_at IS NULL \
                 AND (t.expires_at IS NULL OR t.expires_at > $2)",
                &[Arg::Text(&digest), Arg::Int(now)],
            )
            .await?;
        tx.finish("end read").await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let user = user_from_row(row)?;
        let token_id = row.text("token_id")?;
        if row
            .opt_int("last_used_at")?
            .is_none_or(|last| now - last >= LAST_USED_GRANULARITY_MS)
        {
            let mut tx = self.pool.begin().await?;
            tx.run(
                "note token use",
                "UPDATE tokens SET last_used_at = $2 WHERE id = $1 \
                 AND (last_used_at IS NULL OR last_used_at < $2)",
                &[Arg::Text(&token_id), Arg::Int(now)],
            )
            .await?;
            tx.finish("commit token use").await?;
        }
        Ok(Some(Authenticated { user, token_id }))
    }
}

async fn audit_users(
    tx: &mut crate::db::Tx,
    by: &Actor,
    at: OffsetDateTime,
    detail: String,
    tenant: Option<&str>,
) -> Result<()> {
    let entry = NewAuditEntry {
        at,
        actor: by.clone(),
        action: AuditAction::Users,
        recording_id: None,
        reason: None,
        detail: Some(detail),
        tenant: tenant.map(str::to_owned),
    };
    append(tx, &entry, tenant).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
