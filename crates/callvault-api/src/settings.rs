//! `[api]`: what an operator configures about the HTTP API. A plain serde struct with
//! defaults, embedded by the binary's configuration; [`ApiSettings::validate`] refuses what
//! cannot work (a bad file-name pattern, a zero rate) when the configuration is loaded.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use callvault_catalog::Role;

use serde::{Deserialize, Serialize};

use crate::audio::FileNamePattern;
use crate::error::{Error, Result};

/// An action that `[api] require_reason` can make need a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasonAction {
    Play,
    Download,
    Delete,
    Lock,
    Unlock,
    Annotate,
    Update,
    Pause,
    Resume,
    /// Flagging a recording restricted, or clearing the flag.
    Restrict,
    /// Releasing a legal matter.
    Release,
}

impl ReasonAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonAction::Play => "play",
            ReasonAction::Download => "download",
            ReasonAction::Delete => "delete",
            ReasonAction::Lock => "lock",
            ReasonAction::Unlock => "unlock",
            ReasonAction::Annotate => "annotate",
            ReasonAction::Update => "update",
            ReasonAction::Pause => "pause",
            ReasonAction::Resume => "resume",
            ReasonAction::Restrict => "restrict",
            ReasonAction::Release => "release",
        }
    }
}

impl fmt::Display for ReasonAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[api]` of the configuration file.
///
/// ```toml
/// [api]
/// require_reason = ["play", "download", "delete"]
/// reasons = ["Customer complaint", "Quality review", "Legal request"]   # optional
/// filename_pattern = "{yyyymmdd}-{hhmmss}_{from}_{to}_{session_id}_{n}"
/// cookie_secure = true            # behind TLS
/// session_lifetime_s = 28800
/// login_attempts_per_minute_per_client = 10
/// login_attempts_per_minute_per_user = 5
/// export_ttl_s = 3600             # an export package is downloadable this long once ready
/// share_max_days = 7              # the longest a share link may last
/// share_requests_per_minute_per_client = 120
/// public_url = "https://recordings.example.com"   # the start of share links' URLs
/// allow_other_reason = true      # a typed reason besides the pick list
///
/// [api.roles.reviewer]
/// max_age_days = 90              # reviewers see only the last 90 days' recordings
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Actions whose requests must carry a reason (`reason` in the JSON body, or the
    /// `X-Callvault-Reason` header / `reason` query parameter of a GET): 422 without one.
    pub require_reason: Vec<ReasonAction>,
    /// When not empty, the reason of an action in `require_reason` must be one of these,
    /// exactly (a pick list); when empty, any text of 1 to 1000 characters.
    pub reasons: Vec<String>,
    /// Download file names (without extension): placeholders `{queue}` (the `queue` custom
    /// field), `{yyyymmdd}`, `{hhmm}`, `{hhmmss}` (the start, UTC), `{from}`, `{to}`,
    /// `{session_id}`, `{recording_id}`, `{n}` (the file's number in a zip), `{tenant}`,
    /// `{label}` (a leg's label).
    pub filename_pattern: String,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Turn on whenever the API is
    /// reached over TLS (directly or through a proxy); off by default so that a first run on
    /// `http://127.0.0.1` can sign in.
    pub cookie_secure: bool,
    /// How long a browser session lasts after sign-in, in seconds.
    pub session_lifetime_s: u64,
    /// Sign-in attempts allowed per minute from one client address (a burst of as many, then
    /// one every 60/n seconds); 429 beyond.
    pub login_attempts_per_minute_per_client: u32,
    /// Sign-in attempts allowed per minute for one user name, whatever the client.
    pub login_attempts_per_minute_per_user: u32,
    /// How long an export package stays downloadable once built, in seconds; then its file
    /// is removed and it answers 410.
    pub export_ttl_s: u64,
    /// The longest a share link may last, in days (1 to 365).
    pub share_max_days: u32,
    /// Requests to the public share pages (`/share/…`) allowed per minute from one client
    /// address (a player seeking sends one per jump); 429 beyond.
    pub share_requests_per_minute_per_client: u32,
    /// Where people reach this server (`https://host[:port]`, no path): share links are
    /// this followed by `/share/TOKEN`. Empty: `http://` and the `Host` of the request that
    /// made the link (set it when a TLS proxy is in front).
    pub public_url: String,
    /// With a `reasons` pick list: also accept a reason typed freely ("Other…").
    pub allow_other_reason: bool,
    /// Per role: what its users may see beyond what the role allows (`[api.roles.<role>]`).
    pub roles: BTreeMap<Role, RoleSettings>,
}

/// `[api.roles.<role>]`: limits on what a role's users see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoleSettings {
    /// Only recordings started within the last this many days are visible (searches, details,
    /// audio, everything: older ones are 404 as if absent). `None`: no limit.
    pub max_age_days: Option<u32>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            require_reason: Vec::new(),
            reasons: Vec::new(),
            filename_pattern: "{yyyymmdd}-{hhmmss}_{from}_{to}_{session_id}_{n}".to_owned(),
            cookie_secure: false,
            session_lifetime_s: 8 * 3600,
            login_attempts_per_minute_per_client: 10,
            login_attempts_per_minute_per_user: 5,
            export_ttl_s: 3600,
            share_max_days: 7,
            share_requests_per_minute_per_client: 120,
            public_url: String::new(),
            allow_other_reason: false,
            roles: BTreeMap::new(),
        }
    }
}

impl ApiSettings {
    /// Checks what deserialising cannot: the pattern parses, the rates and the lifetime are
    /// not zero, the allowed reasons are usable. The binary calls it when loading the
    /// configuration; [`crate::ApiState::new`] calls it too.
    pub fn validate(&self) -> Result<()> {
        self.pattern()?;
        let invalid = |reason: &str| Error::Invalid {
            reason: format!("[api] {reason}"),
        };
        if self.session_lifetime_s == 0 {
            return Err(invalid("session_lifetime_s must be at least 1"));
        }
        if self.login_attempts_per_minute_per_client == 0
            || self.login_attempts_per_minute_per_user == 0
        {
            return Err(invalid("login attempts per minute must be at least 1"));
        }
        if self.reasons.iter().any(|r| r.trim().is_empty()) {
            return Err(invalid("reasons must not be blank"));
        }
        if self.export_ttl_s == 0 {
            return Err(invalid("export_ttl_s must be at least 1"));
        }
        if !(1..=365).contains(&self.share_max_days) {
            return Err(invalid("share_max_days must be 1 to 365"));
        }
        if self.share_requests_per_minute_per_client == 0 {
            return Err(invalid(
                "share_requests_per_minute_per_client must be at least 1",
            ));
        }
        let url = self.public_url.as_str();
        let url_ok = url.is_empty()
            || ((url.starts_with("https://") || url.starts_with("http://"))
                && !url.trim_end_matches('/').ends_with(':')
                && url.split("://").nth(1).is_some_and(|rest| {
                    !rest.trim_end_matches('/').is_empty()
                        && !rest.trim_end_matches('/').contains('/')
                })
                && !url.chars().any(|c| c.is_whitespace() || c.is_control()));
        if !url_ok {
            return Err(invalid(
                "public_url must be http(s)://host[:port] without a path",
            ));
        }
        Ok(())
    }

    pub fn export_ttl(&self) -> Duration {
        Duration::from_secs(self.export_ttl_s)
    }

    /// The parsed `filename_pattern`.
    pub fn pattern(&self) -> Result<FileNamePattern> {
        FileNamePattern::parse(&self.filename_pattern)
    }

    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(self.session_lifetime_s)
    }

    /// The `max_age_days` of `role`, if limited.
    pub fn max_age_days(&self, role: Role) -> Option<u32> {
        self.roles.get(&role).and_then(|r| r.max_age_days)
    }

    /// Whether `action` needs a reason.
    pub fn requires_reason(&self, action: ReasonAction) -> bool {
        self.require_reason.contains(&action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_gives_the_defaults_and_every_key_reads() {
        let empty: ApiSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, ApiSettings::default());
        assert!(empty.validate().is_ok());
        let set: ApiSettings = serde_json::from_value(serde_json::json!({
            "require_reason": ["play", "delete"],
            "reasons": ["Legal request"],
            "filename_pattern": "{queue}_{yyyymmdd}-{hhmm}_{from}_{to}_{session_id}_{n}",
            "cookie_secure": true,
            "session_lifetime_s": 60,
            "login_attempts_per_minute_per_client": 3,
            "login_attempts_per_minute_per_user": 2,
            "export_ttl_s": 600,
            "share_max_days": 30,
            "share_requests_per_minute_per_client": 60,
            "public_url": "https://recordings.example.com",
        }))
        .unwrap();
        assert!(set.requires_reason(ReasonAction::Play));
        assert!(!set.requires_reason(ReasonAction::Download));
        assert!(set.validate().is_ok());
    }

    #[test]
    fn unknown_keys_actions_and_unusable_values_are_refused() {
        assert!(serde_json::from_str::<ApiSettings>(r#"{"require_reasons": []}"#).is_err());
        assert!(serde_json::from_str::<ApiSettings>(r#"{"require_reason": ["view"]}"#).is_err());
        for bad in [
            ApiSettings {
                filename_pattern: "{nope}".to_owned(),
                ..ApiSettings::default()
            },
            ApiSettings {
                session_lifetime_s: 0,
                ..ApiSettings::default()
            },
            ApiSettings {
                login_attempts_per_minute_per_user: 0,
                ..ApiSettings::default()
            },
            ApiSettings {
                reasons: vec![" ".to_owned()],
                ..ApiSettings::default()
            },
            ApiSettings {
                export_ttl_s: 0,
                ..ApiSettings::default()
            },
            ApiSettings {
                share_max_days: 0,
                ..ApiSettings::default()
            },
            ApiSettings {
                share_requests_per_minute_per_client: 0,
                ..ApiSettings::default()
            },
            ApiSettings {
                public_url: "https://example.com/base".to_owned(),
                ..ApiSettings::default()
            },
            ApiSettings {
                public_url: "ftp://example.com".to_owned(),
                ..ApiSettings::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
