//! `[[notify]]` (webhook receivers) and `[hooks]` (the `on_complete` command), as the
//! configuration file writes them, and their validation: a bad URL, an unknown event name or an
//! empty command refuses to start (and fails `check-config`) with the table named.

use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

use super::Event;

/// One `[[notify]]` table: where recording events are POSTed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// `http://` or `https://` URL the events are POSTed to.
    pub url: String,
    /// Signs each body: `X-Callvault-Signature: sha256=HEX`, the HMAC-SHA256 of the raw body
    /// with this secret. Unset: no signature header.
    #[serde(default)]
    pub secret: Option<String>,
    /// Which events go to this receiver (names as in `X-Callvault-Event`). Empty or unset:
    /// `recording.completed` and `recording.failed`.
    #[serde(default)]
    pub events: Vec<String>,
    /// One POST may take this long before it counts as failed.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The first retry waits this long; each further failure doubles it…
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// …up to this.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_retry_initial_ms() -> u64 {
    1_000
}
fn default_retry_max_ms() -> u64 {
    10 * 60 * 1_000
}

/// `[hooks]`: local post-processing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// A command run when a recording is final (`recording.completed` or `recording.failed`),
    /// as argv: no shell. The recording id and its folder are appended as two arguments.
    pub on_complete: Vec<String>,
    /// A run not finished by then is killed and counted as failed.
    pub on_complete_timeout_secs: u64,
    /// Runs at once; more wait their turn.
    pub on_complete_max_concurrent: usize,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            on_complete: Vec::new(),
            on_complete_timeout_secs: 300,
            on_complete_max_concurrent: 4,
        }
    }
}

impl HooksConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.on_complete_timeout_secs)
    }
}

impl NotifyTarget {
    /// The events this receiver takes.
    pub fn wants(&self, event: Event) -> bool {
        if self.events.is_empty() {
            return matches!(event, Event::Completed | Event::Failed);
        }
        self.events.iter().any(|name| name == event.as_str())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn retry_initial(&self) -> Duration {
        Duration::from_millis(self.retry_initial_ms)
    }

    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry_max_ms)
    }

    /// The URL without user info or query (which may hold a token), for logs and reports.
    pub fn shown_url(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(url) => format!(
                "{}://{}{}{}",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port().map(|p| format!(":{p}")).unwrap_or_default(),
                url.path()
            ),
            Err(_) => "(not a URL)".to_owned(),
        }
    }
}

/// Checks every `[[notify]]` table and `[hooks]`.
pub fn validate(targets: &[NotifyTarget], hooks: &HooksConfig) -> anyhow::Result<()> {
    for (index, target) in targets.iter().enumerate() {
        let n = index + 1;
        let url = match reqwest::Url::parse(&target.url) {
            Ok(url) => url,
            Err(e) => bail!("[[notify]] #{n}: url {:?} is not a URL: {e}", target.url),
        };
        if !matches!(url.scheme(), "http" | "https") {
            bail!(
                "[[notify]] #{n}: url {}: the scheme must be http or https, not {:?}",
                target.shown_url(),
                url.scheme()
            );
        }
        if url.host_str().is_none_or(str::is_empty) {
            bail!("[[notify]] #{n}: url {:?} names no host", target.url);
        }
        for name in &target.events {
            if name.parse::<Event>().is_err() {
                bail!(
                    "[[notify]] #{n}: unknown event {name:?}; known: {}",
                    Event::ALL.map(Event::as_str).join(", ")
                );
            }
        }
        if target.secret.as_deref() == Some("") {
            bail!("[[notify]] #{n}: secret is empty: remove it or give one");
        }
        if target.timeout_ms == 0 || target.retry_initial_ms == 0 {
            bail!("[[notify]] #{n}: timeout_ms and retry_initial_ms must be at least 1");
        }
        if target.retry_max_ms < target.retry_initial_ms {
            bail!("[[notify]] #{n}: retry_max_ms is below retry_initial_ms");
        }
    }
    if let Some(program) = hooks.on_complete.first()
        && program.is_empty()
    {
        bail!("[hooks] on_complete: the program (its first element) is empty");
    }
    if !hooks.on_complete.is_empty() {
        if hooks.on_complete_timeout_secs == 0 {
            bail!("[hooks] on_complete_timeout_secs must be at least 1");
        }
        if hooks.on_complete_max_concurrent == 0 {
            bail!("[hooks] on_complete_max_concurrent must be at least 1");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, events: &[&str]) -> NotifyTarget {
        NotifyTarget {
            url: url.to_owned(),
            secret: None,
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            timeout_ms: default_timeout_ms(),
            retry_initial_ms: default_retry_initial_ms(),
            retry_max_ms: default_retry_max_ms(),
        }
    }

    #[test]
    fn good_targets_pass_and_bad_ones_are_named() {
        let hooks = HooksConfig::default();
        validate(
            &[target(
                "https://hooks.example.com/cv",
                &["recording.deleted"],
            )],
            &hooks,
        )
        .unwrap();
        let error = |t: NotifyTarget| format!("{:#}", validate(&[t], &hooks).unwrap_err());
        assert!(error(target("ftp://x/", &[])).contains("scheme must be http or https"));
        assert!(error(target("not a url", &[])).contains("is not a URL"));
        let unknown = error(target("http://x/", &["recording.exploded"]));
        assert!(
            unknown.contains("unknown event \"recording.exploded\""),
            "{unknown}"
        );
        assert!(unknown.contains("recording.completed"), "{unknown}");
    }

    #[test]
    fn no_events_listed_means_the_final_ones() {
        let t = target("http://x/", &[]);
        assert!(t.wants(Event::Completed) && t.wants(Event::Failed));
        assert!(!t.wants(Event::Deleted));
        let t = target("http://x/", &["recording.locked"]);
        assert!(t.wants(Event::Locked) && !t.wants(Event::Completed));
    }

    #[test]
    fn shown_urls_lose_credentials_and_queries() {
        let t = target("https://user:pw@hooks.example.com:8443/cv?token=abc", &[]);
        assert_eq!(t.shown_url(), "https://hooks.example.com:8443/cv");
    }

    #[test]
    fn an_empty_program_is_refused() {
        let hooks = HooksConfig {
            on_complete: vec![String::new()],
            ..HooksConfig::default()
        };
        assert!(validate(&[], &hooks).is_err());
    }
}
