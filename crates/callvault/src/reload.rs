//! SIGHUP: the configuration is read again (the file and the `CALLVAULT_*` variables, under the
//! same flags) and what can change on a running server changes; the log says what changed and
//! what waits for the next start.
//!
//! Live: `[log] filter`, `[sip] allowed_sources` (the next datagram and the next connection see
//! the new list; connections already accepted stay), and the `[tls]` certificate, key and CA
//! (new handshakes; read again even when the file names the same paths, since a renewal
//! replaces the files). Everything else — addresses, ports, limits, storage, the log format —
//! is bound at start: a change is reported, once per SIGHUP, until the process restarts.
//! A configuration that does not load changes nothing and says why.

use std::collections::BTreeMap;
use std::path::PathBuf;

use callvault_sip_transport::Transports;
use tracing::{info, warn};

use crate::config::{Config, Overrides};
use crate::log::FilterHandle;
use crate::sources::AllowList;

/// The keys SIGHUP applies, as `section.key`.
const LIVE_KEYS: &[&str] = &[
    "log.filter",
    // The webhook receivers, reloaded by `notify::reload_on_sighup`.
    "notify",
    "sip.allowed_sources",
    "tls.cert_file",
    "tls.key_file",
    "tls.client_ca_file",
    "tls.require_client_cert",
    "tls.verify_server_name",
];

/// What a reload reads from and what it changes.
pub struct Reloader {
    pub file: Option<PathBuf>,
    pub overrides: Overrides,
    /// The configuration in force (its live parts as last applied).
    pub config: Config,
    /// The keys as the file and variables set them at start: what needs a restart is compared
    /// with these, so it is reported until the restart.
    pub started_with: toml::Table,
    pub filter: FilterHandle,
    pub allow_list: AllowList,
    pub transports: Transports,
}

impl Reloader {
    /// From now on, each SIGHUP reloads. The handler is installed before this returns, so a
    /// SIGHUP sent once `serve` says it is listening never kills the process (its default).
    pub fn on_sighup(mut self) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hangups = match signal(SignalKind::hangup()) {
                Ok(hangups) => hangups,
                Err(e) => {
                    warn!(error = %e, "no SIGHUP handler: the configuration cannot be reloaded");
                    return;
                }
            };
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    self.reload().await;
                }
            });
        }
        #[cfg(not(unix))]
        {
            let _ = self;
        }
    }

    async fn reload(&mut self) {
        let (file, overrides) = (self.file.clone(), self.overrides.clone());
        // File reads, off the runtime's worker threads.
        let loaded = tokio::task::spawn_blocking(move || {
            Config::load_from(file.as_deref(), std::env::vars(), &overrides)
        })
        .await;
        let (config, table) = match loaded {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => {
                warn!(
                    error = format!("{e:#}"),
                    "SIGHUP: the configuration does not load; nothing changed"
                );
                return;
            }
            Err(e) => {
                warn!(error = %e, "SIGHUP: reload failed");
                return;
            }
        };
        let plan = Plan::new(&self.config, &config, &self.started_with, &table);
        if let Some((from, to)) = &plan.filter {
            match self.filter.set(to) {
                Ok(()) => info!(from = %from, to = %to, "SIGHUP: log filter changed"),
                Err(e) => warn!(filter = %to, error = %e, "SIGHUP: log filter refused"),
            }
        }
        if let Some(allowed) = &plan.allowed_sources {
            // The routes in force keep their targets trusted.
            self.allow_list.set(self.config.sip_sources_with(allowed));
            info!(
                from = %list(&self.config.sip.allowed_sources),
                to = %list(allowed),
                "SIGHUP: [sip] allowed_sources changed: new messages and connections are checked against it"
            );
        }
        if !plan.overridden.is_empty() {
            info!(
                keys = %plan.overridden.join(", "),
                "SIGHUP: changed in the file, but a flag or its variable sets it: unchanged"
            );
        }
        if !plan.needs_restart.is_empty() {
            warn!(
                keys = %plan.needs_restart.join(", "),
                "SIGHUP: changed, but applied only at the next start"
            );
        }
        if plan.filter.is_none() && plan.allowed_sources.is_none() && plan.needs_restart.is_empty()
        {
            info!(
                "SIGHUP: configuration reloaded; the log filter and allowed sources are unchanged"
            );
        }
        crate::tls::reload(&self.transports, &config.tls).await;
        self.config.log.filter = config.log.filter;
        self.config.sip.allowed_sources = config.sip.allowed_sources;
        self.config.tls = config.tls;
    }
}

/// What a reload does, worked out from the configurations before and after.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// The log filter, from and to.
    filter: Option<(String, String)>,
    allowed_sources: Option<Vec<ipnet::IpNet>>,
    /// Keys changed since the start that only a restart applies, as `[section] key`.
    needs_restart: Vec<String>,
    /// Live keys changed in the file whose flag overrides them.
    overridden: Vec<String>,
}

impl Plan {
    fn new(now: &Config, new: &Config, started: &toml::Table, table: &toml::Table) -> Plan {
        let mut plan = Plan::default();
        if new.log.filter != now.log.filter {
            plan.filter = Some((now.log.filter.clone(), new.log.filter.clone()));
        }
        if new.sip.allowed_sources != now.sip.allowed_sources {
            plan.allowed_sources = Some(new.sip.allowed_sources.clone());
        }
        for key in changed_keys(started, table) {
            let effective_change = match key.as_str() {
                "log.filter" => plan.filter.is_some(),
                "sip.allowed_sources" => plan.allowed_sources.is_some(),
                _ => true,
            };
            if !LIVE_KEYS.contains(&key.as_str()) {
                plan.needs_restart.push(display(&key));
            } else if !effective_change && !key.starts_with("tls.") {
                plan.overridden.push(display(&key));
            }
        }
        plan
    }
}

/// `sip.max_sessions` → `[sip] max_sessions`.
fn display(key: &str) -> String {
    match key.rsplit_once('.') {
        Some((section, key)) => format!("[{section}] {key}"),
        None => key.to_owned(),
    }
}

fn list(nets: &[ipnet::IpNet]) -> String {
    let nets: Vec<String> = nets.iter().map(ToString::to_string).collect();
    nets.join(" ")
}

/// Every leaf key (`section.key`) whose value differs between `a` and `b`, or that only one of
/// them has, in order.
fn changed_keys(a: &toml::Table, b: &toml::Table) -> Vec<String> {
    let (a, b) = (leaves(a), leaves(b));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|key| a.get(*key) != b.get(*key))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn leaves(table: &toml::Table) -> BTreeMap<String, &toml::Value> {
    fn walk<'a>(prefix: &str, table: &'a toml::Table, out: &mut BTreeMap<String, &'a toml::Value>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => walk(&path, inner, out),
                leaf => {
                    out.insert(path, leaf);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", table, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, overrides: &Overrides) -> (Config, toml::Table) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load_from(Some(&path), Vec::new(), overrides).unwrap()
    }

    #[test]
    fn live_keys_apply_and_the_rest_waits_for_a_restart() {
        let none = Overrides::default();
        let (before, started) = load(
            "[sip]\nallowed_sources = [\"10.0.0.0/8\"]\nmax_sessions = 10\n[log]\nfilter = \"info\"\n",
            &none,
        );
        let (after, table) = load(
            "[sip]\nallowed_sources = [\"192.0.2.0/24\"]\nmax_sessions = 20\n\
             [log]\nfilter = \"debug\"\nformat = \"json\"\n[tls]\ncert_file = \"new.pem\"\n",
            &none,
        );
        let plan = Plan::new(&before, &after, &started, &table);
        assert_eq!(plan.filter, Some(("info".to_owned(), "debug".to_owned())));
        assert_eq!(
            plan.allowed_sources,
            Some(vec!["192.0.2.0/24".parse().unwrap()])
        );
        assert_eq!(plan.needs_restart, ["[log] format", "[sip] max_sessions"]);
        assert!(plan.overridden.is_empty());

        // The same file again: nothing to do.
        let plan = Plan::new(&before, &before, &started, &started);
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn a_flag_keeps_its_value_and_says_so() {
        let flags = Overrides {
            allowed_sources: vec!["10.0.0.0/8".parse().unwrap()],
            log_filter: Some("warn".to_owned()),
            ..Overrides::default()
        };
        let (before, started) = load("[sip]\nallowed_sources = [\"10.1.0.0/16\"]\n", &flags);
        let (after, table) = load(
            "[sip]\nallowed_sources = [\"192.0.2.0/24\"]\n[log]\nfilter = \"debug\"\n",
            &flags,
        );
        let plan = Plan::new(&before, &after, &started, &table);
        assert_eq!(plan.filter, None);
        assert_eq!(plan.allowed_sources, None);
        assert_eq!(plan.overridden, ["[log] filter", "[sip] allowed_sources"]);
        assert!(plan.needs_restart.is_empty());
    }
}
