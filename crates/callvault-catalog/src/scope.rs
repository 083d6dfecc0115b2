//! Who may see what, and who did it: the [`Scope`] every management operation runs in, and the
//! [`Actor`] its audit entry names.

use serde::{Deserialize, Serialize};

use crate::db::Arg;
use crate::sql::Conditions;

/// Which recordings an operation may see and touch. A user with a tenant works in
/// `Tenant(name)`; one without, in `All`. Enforced inside the SQL of each operation (a
/// recording of another tenant is [`crate::Error::NotFound`], as if it did not exist), never by
/// filtering afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    All,
    Tenant(String),
}

impl Scope {
    /// The tenant this scope is limited to.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Tenant(tenant) => Some(tenant),
        }
    }

    /// Adds `column = tenant` to `conditions` when the scope is a tenant's.
    pub(crate) fn restrict<'a>(&'a self, conditions: &mut Conditions<'a>, column: &str) {
        if let Scope::Tenant(tenant) = self {
            let p = conditions.bind(Arg::Text(tenant));
            conditions.and(format!("{column} = {p}"));
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
