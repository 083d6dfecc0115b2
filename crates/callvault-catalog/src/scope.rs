//! Who may see what, and who did it: the [`Scope`] every management operation runs in, and the
//! [`Actor`] its audit entry names.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::db::Arg;
use crate::sql::Conditions;

/// Which recordings an operation may see and touch. A user with a tenant works in
/// `Tenant(name)`; one without, in `All`. Enforced inside the SQL of each operation (a
/// recording of another tenant is [`crate::Error::NotFound`], as if it did not exist), never by
/// filtering afterwards.
///
/// `Limited` adds what a role's settings take away: restricted recordings (unless the role may
/// view them) and recordings older than the role's `max_age_days`. Those are hidden exactly as
/// another tenant's are (not found), in searches, details, audio, locks and deletion alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    All,
    Tenant(String),
    Limited(Limits),
}

/// The limits of a [`Scope::Limited`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limits {
    /// Only this tenant's recordings; `None`: every tenant's.
    pub tenant: Option<String>,
    /// Whether recordings flagged restricted are visible.
    pub restricted: bool,
    /// Only recordings started at or after this instant.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_since: Option<OffsetDateTime>,
}

impl Scope {
    /// The tenant this scope is limited to.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Tenant(tenant) => Some(tenant),
            Scope::Limited(limits) => limits.tenant.as_deref(),
        }
    }

    /// Adds `column = tenant` to `conditions` when the scope is a tenant's (for tables that
    /// carry a tenant but are not recordings: the audit trail).
    pub(crate) fn restrict<'a>(&'a self, conditions: &mut Conditions<'a>, column: &str) {
        if let Some(tenant) = self.tenant() {
            let p = conditions.bind(Arg::Text(tenant));
            conditions.and(format!("{column} = {p}"));
        }
    }

    /// Adds every limit of the scope on the `recordings` table: the tenant, restricted
    /// recordings, the oldest start visible.
    pub(crate) fn restrict_recordings<'a>(&'a self, conditions: &mut Conditions<'a>) {
        self.restrict(conditions, "recordings.tenant");
        if let Scope::Limited(limits) = self {
            if !limits.restricted {
                conditions.and("recordings.restricted = 0");
            }
            if let Some(since) = limits.started_since {
                let p = conditions.bind(Arg::Int(crate::model::to_unix_ms(since)));
                conditions.and(format!("recordings.started_at >= {p}"));
            }
        }
    }
}

/// Who does something, for its audit entry: a user name (`cli:<login>` for the operator CLI)
/// and, when known, the client (the HTTP client's address, or `cli`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user: String,
    pub client: Option<String>,
}

impl Actor {
    pub fn new(user: impl Into<String>, client: Option<String>) -> Actor {
        Actor {
            user: user.into(),
            client,
        }
    }
}
