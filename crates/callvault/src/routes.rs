//! `[[routes]]`: pass-through recording. An INVITE that is not a recording session (no
//! `siprec` option tag, no `+sip.src` Contact, no metadata in its body) is matched against the
//! routes in the order written; the first whose keys all match sends the call on to its
//! `target` with callvault in the path as a B2BUA (see `recorder/passthrough`). No route: 404.
//!
//! Pure and small like `tenants.rs`: compiled once at start (every pattern and target checked,
//! so `check-config` and `serve` refuse a bad route before any call), asked per INVITE.

use std::fmt;
use std::net::IpAddr;

use anyhow::{Context, bail};
use callvault_sip::{Peer, Request, peer_for_uri};
use ipnet::IpNet;
use regex::Regex;
use serde::Deserialize;

use crate::tenants::request_user;

/// One `[[routes]]` table as written in the configuration. The key names are a contract.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Unique; stored as the recording's `route`.
    pub name: String,
    /// A regular expression searched in the user part of the INVITE's Request-URI
    /// (unanchored: write `^…$` for a whole match).
    pub request_user: Option<String>,
    /// A regular expression searched in the To URI (`sip:bob@example.com`).
    pub to: Option<String>,
    /// A regular expression searched in the From URI.
    pub from: Option<String>,
    /// The network the INVITE must come from (CIDR; a bare address is one host).
    pub source: Option<String>,
    /// Where callvault sends its own INVITE: `sip:IP[:port]` (`;transport=tcp` for TCP). The
    /// Request-URI's user part is kept: the callee sees the number that was dialled.
    pub target: String,
    /// Record the call (both directions). Only `true` is accepted for now.
    #[serde(default = "yes")]
    pub record: bool,
    /// Keep DTMF digits of this route's calls (RFC 4733 and INFO); they are forwarded either
    /// way. Also needs `[sip] dtmf_capture`.
    #[serde(default = "yes")]
    pub dtmf: bool,
    /// The tenant of this route's recordings; none: `[[tenants]]` decides as for SIPREC.
    pub tenant: Option<String>,
}

fn yes() -> bool {
    true
}

/// A compiled route.
#[derive(Clone)]
pub struct Route {
    pub name: String,
    request_user: Option<Regex>,
    to: Option<Regex>,
    from: Option<Regex>,
    source: Option<IpNet>,
    /// The target as written, and where it sends.
    pub target: String,
    pub target_peer: Peer,
    pub record: bool,
    pub dtmf: bool,
    pub tenant: Option<String>,
}

/// The compiled routes; `Default` has none (every INVITE is a SIPREC recording session).
#[derive(Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|r| (&r.name, &r.target)))
            .finish()
    }
}

impl Routes {
    /// Compiles the rules: an invalid pattern, network or target, a bad or repeated name is
    /// refused with the route named.
    pub fn new(rules: &[RouteRule]) -> anyhow::Result<Routes> {
        let mut routes: Vec<Route> = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            let route = compile(rule)
                .with_context(|| format!("[[routes]] #{} ({:?})", index + 1, rule.name))?;
            if routes.iter().any(|r| r.name == route.name) {
                bail!(
                    "[[routes]] #{} ({:?}): name already used by another route",
                    index + 1,
                    rule.name
                );
            }
            routes.push(route);
        }
        Ok(Routes { routes })
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The first route whose every key matches `invite`, received from `source`.
    pub fn route_for(&self, invite: &Request, source: IpAddr) -> Option<&Route> {
        let source = source.to_canonical();
        let user = request_user(invite.uri());
        let to = invite.to_uri();
        let from = invite.from_uri();
        let matches = |re: &Option<Regex>, text: Option<&str>| {
            re.as_ref()
                .is_none_or(|re| text.is_some_and(|t| re.is_match(t)))
        };
        self.routes.iter().find(|route| {
            route.source.is_none_or(|net| net.contains(&source))
                && matches(&route.request_user, user)
                && matches(&route.to, Some(&to))
                && matches(&route.from, Some(&from))
        })
    }
}

impl Route {
    /// The match keys, for `routes list`.
    pub fn describe_match(&self) -> String {
        let mut keys = Vec::new();
        if let Some(re) = &self.request_user {
            keys.push(format!("request_user={}", re.as_str()));
        }
        if let Some(re) = &self.to {
            keys.push(format!("to={}", re.as_str()));
        }
        if let Some(re) = &self.from {
            keys.push(format!("from={}", re.as_str()));
        }
        if let Some(net) = &self.source {
            keys.push(format!("source={net}"));
        }
        if keys.is_empty() {
            "any".to_owned()
        } else {
            keys.join(" ")
        }
    }
}

/// What `callvault routes list` prints: a table (escaped: a pattern may hold anything), or one
/// JSON object per line.
pub fn listing(routes: &Routes, json: bool) -> String {
    let mut out = String::new();
    if json {
        for route in routes.iter() {
            let line = serde_json::json!({
                "name": route.name,
                "match": route.describe_match(),
                "target": route.target,
                "record": route.record,
                "dtmf": route.dtmf,
                "tenant": route.tenant,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        return out;
    }
    if routes.is_empty() {
        out.push_str("no [[routes]]: every INVITE is a SIPREC recording session\n");
        return out;
    }
    out.push_str("NAME\tMATCH\tTARGET\tRECORD\tDTMF\tTENANT\n");
    for route in routes.iter() {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            crate::log::escape(&route.name),
            crate::log::escape(&route.describe_match()),
            crate::log::escape(&route.target),
            if route.record { "yes" } else { "no" },
            if route.dtmf { "yes" } else { "no" },
            crate::log::escape(route.tenant.as_deref().unwrap_or("-")),
        ));
    }
    out
}

/// Whether an INVITE is a SIPREC recording session, whatever the routes say: `siprec` in
/// `Require` or `Supported`, a Contact with `+sip.src` (or the older `;src`), or a body
/// carrying RFC 7865 metadata.
pub fn is_recording_session(invite: &Request) -> bool {
    let tagged = ["require", "supported"].iter().any(|name| {
        invite
            .header_values(name)
            .flat_map(|v| v.split(','))
            .any(|tag| tag.trim().eq_ignore_ascii_case("siprec"))
    });
    let src_contact = invite.header_values("contact").any(|contact| {
        contact
            .split(';')
            .skip(1)
            .map(|p| p.trim().trim_end_matches('>').to_ascii_lowercase())
            .any(|p| p == "+sip.src" || p == "src")
    });
    let metadata_body = invite.content_type().is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.contains("rs-metadata")
            || (ct.starts_with("multipart/")
                && String::from_utf8_lossy(invite.body())
                    .to_ascii_lowercase()
                    .contains("rs-metadata"))
    });
    tagged || src_contact || metadata_body
}

fn compile(rule: &RouteRule) -> anyhow::Result<Route> {
    let name = rule.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        bail!("name: give 1 to 64 characters, none of them control characters");
    }
    if name != rule.name {
        bail!("name: no leading or trailing spaces");
    }
    let regex = |key: &str, pattern: &Option<String>| {
        pattern
            .as_deref()
            .map(|p| {
                Regex::new(p)
                    .with_context(|| format!("{key} {p:?} is not a valid regular expression"))
            })
            .transpose()
    };
    let source = rule
        .source
        .as_deref()
        .map(|text| {
            let text = text.trim();
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| anyhow::anyhow!("source {text:?} is not a network in CIDR notation"))
        })
        .transpose()?;
    let target_peer = peer_for_uri(&rule.target).with_context(|| {
        format!(
            "target {:?}: give sip:IP[:port] (;transport=tcp for TCP); host names are not resolved",
            rule.target
        )
    })?;
    if target_peer.addr.ip().is_unspecified() || target_peer.addr.port() == 0 {
        bail!("target {:?}: no usable address", rule.target);
    }
    if let Some(tenant) = &rule.tenant
        && (tenant.trim().is_empty() || tenant.chars().any(char::is_control))
    {
        bail!("tenant: give a name");
    }
    Ok(Route {
        name: rule.name.clone(),
        request_user: regex("request_user", &rule.request_user)?,
        to: regex("to", &rule.to)?,
        from: regex("from", &rule.from)?,
        source,
        target: rule.target.clone(),
        target_peer,
        record: rule.record,
        dtmf: rule.dtmf,
        tenant: rule.tenant.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use callvault_sip::{Method, TransportKind};

    fn rule(name: &str, request_user: Option<&str>, target: &str) -> RouteRule {
        RouteRule {
            name: name.to_owned(),
            request_user: request_user.map(str::to_owned),
            target: target.to_owned(),
            record: true,
            dtmf: true,
            ..RouteRule::default()
        }
    }

    fn invite(uri: &str) -> Request {
        Request::new(Method::Invite, uri)
            .with_header("From", "<sip:alice@pbx.example.com>;tag=a")
            .with_header("To", "<sip:+441234@example.com>")
            .with_header("Call-ID", "c1")
            .with_header("CSeq", "1 INVITE")
    }

    #[test]
    fn the_first_route_whose_keys_all_match_wins() {
        let mut by_from = rule("from-alice", None, "sip:10.0.0.6:5070;transport=tcp");
        by_from.from = Some("^sip:alice@".into());
        by_from.source = Some("192.0.2.0/24".into());
        let routes = Routes::new(&[
            by_from,
            rule("uk", Some("^\\+44"), "sip:10.0.0.5"),
            rule("any", None, "sip:10.0.0.7:5080"),
        ])
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let uk = routes
            .route_for(&invite("sip:+441234@cv"), ip("198.51.100.1"))
            .unwrap();
        assert_eq!(uk.name, "uk");
        assert_eq!(uk.target_peer, Peer::udp("10.0.0.5:5060".parse().unwrap()));
        let alice = routes
            .route_for(&invite("sip:+441234@cv"), ip("192.0.2.9"))
            .unwrap();
        assert_eq!(alice.name, "from-alice");
        assert_eq!(alice.target_peer.transport, TransportKind::Tcp);
        assert_eq!(
            routes
                .route_for(&invite("sip:+331@cv"), ip("198.51.100.1"))
                .unwrap()
                .name,
            "any"
        );
        let only_uk = Routes::new(&[rule("uk", Some("^\\+44"), "sip:10.0.0.5")]).unwrap();
        assert!(
            only_uk
                .route_for(&invite("sip:cv.example.com"), ip("192.0.2.9"))
                .is_none(),
            "no user part: no match"
        );
    }

    #[test]
    fn bad_routes_are_refused_naming_the_route() {
        let cases = [
            (rule("x", Some("["), "sip:10.0.0.5"), "request_user"),
            (rule("x", None, "sip:pbx.example.com"), "target"),
            (rule("x", None, "http://10.0.0.5"), "target"),
            (rule(" x", None, "sip:10.0.0.5"), "name"),
        ];
        for (bad, what) in cases {
            let error = format!("{:#}", Routes::new(&[bad]).unwrap_err());
            assert!(
                error.contains("[[routes]] #1") && error.contains(what),
                "{error}"
            );
        }
        let twice = Routes::new(&[
            rule("a", None, "sip:10.0.0.5"),
            rule("a", None, "sip:10.0.0.6"),
        ]);
        assert!(format!("{:#}", twice.unwrap_err()).contains("already used"));
    }

    #[test]
    fn recording_sessions_are_told_from_calls() {
        let plain = invite("sip:+44@cv").with_body("application/sdp", b"v=0\r\n".to_vec());
        assert!(!is_recording_session(&plain));
        assert!(is_recording_session(
            &plain.clone().with_header("Require", "siprec")
        ));
        assert!(is_recording_session(
            &plain.clone().with_header("Supported", "timer, siprec")
        ));
        assert!(is_recording_session(
            &plain
                .clone()
                .with_header("Contact", "<sip:src@10.0.0.1>;+sip.src")
        ));
        assert!(is_recording_session(&plain.clone().with_body(
            "multipart/mixed;boundary=x",
            b"--x\r\nContent-Type: application/rs-metadata+xml\r\n\r\n<a/>\r\n--x--\r\n".to_vec()
        )));
        assert!(!is_recording_session(
            &plain.with_header("Contact", "<sip:alice@10.0.0.1;transport=tcp>")
        ));
    }
}
