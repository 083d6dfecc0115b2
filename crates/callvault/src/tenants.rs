//! `[[tenants]]`: which tenant a recording belongs to, decided once when it starts from the
//! recording INVITE's Request-URI user part and the address it came from.
//!
//! Pure and small on purpose: the recorder holds a [`Tenants`] built (every pattern compiled)
//! once at start and asks it per INVITE; nothing here reads a clock, a file or a socket.
//! Rules are tried in the order written and the first that matches wins; a rule with both keys
//! needs both to match.

use std::fmt;
use std::net::IpAddr;

use anyhow::{Context, bail};
use ipnet::IpNet;
use regex::Regex;
use serde::Deserialize;

/// One `[[tenants]]` table as written in the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRule {
    /// The tenant the matching recordings belong to (what users' `--tenant` names).
    pub name: String,
    /// A regular expression searched in the user part of the recording INVITE's Request-URI
    /// (`+15551234` of `sip:+15551234@srs.example.com`), as written there (not
    /// percent-decoded). Unanchored: write `^…$` for a whole match.
    pub request_user: Option<String>,
    /// The network the INVITE must come from, in CIDR notation (a bare address is one host).
    pub source: Option<String>,
}

/// The compiled rules; `Default` has none (no recording gets a tenant).
#[derive(Clone, Default)]
pub struct Tenants {
    rules: Vec<Rule>,
}

#[derive(Clone)]
struct Rule {
    name: String,
    request_user: Option<Regex>,
    source: Option<IpNet>,
}

impl fmt::Debug for Tenants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.rules.iter().map(|r| {
                (
                    &r.name,
                    r.request_user.as_ref().map(Regex::as_str),
                    r.source,
                )
            }))
            .finish()
    }
}

impl Tenants {
    /// Compiles the rules; an invalid pattern or network, a bad name, or a rule without any
    /// key is refused with the rule named.
    pub fn new(rules: &[TenantRule]) -> anyhow::Result<Tenants> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                compile(rule)
                    .with_context(|| format!("[[tenants]] #{} ({:?})", index + 1, rule.name))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Tenants { rules })
    }

    /// The tenant of a recording whose INVITE had this Request-URI and came from `source`.
    pub fn tenant_of(&self, request_uri: &str, source: IpAddr) -> Option<&str> {
        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; rules name them as IPv4.
        let source = source.to_canonical();
        let user = request_user(request_uri);
        self.rules
            .iter()
            .find(|rule| {
                rule.source.is_none_or(|net| net.contains(&source))
                    && rule
                        .request_user
                        .as_ref()
                        .is_none_or(|re| user.is_some_and(|u| re.is_match(u)))
            })
            .map(|rule| rule.name.as_str())
    }
}

fn compile(rule: &TenantRule) -> anyhow::Result<Rule> {
    let name = rule.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        bail!("name: give 1 to 64 characters, none of them control characters");
    }
    if name != rule.name {
        bail!("name: no leading or trailing spaces");
    }
    if rule.request_user.is_none() && rule.source.is_none() {
        bail!(
            "give request_user, source or both (request_user = \".*\" matches every INVITE \
             with a user part)"
        );
    }
    let request_user = rule
        .request_user
        .as_deref()
        .map(|pattern| {
            Regex::new(pattern).with_context(|| {
                format!("request_user {pattern:?} is not a valid regular expression")
            })
        })
        .transpose()?;
    let source = rule
        .source
        .as_deref()
        .map(|text| {
            let text = text.trim();
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    anyhow::anyhow!(
                        "source {text:?} is not a network in CIDR notation (e.g. 192.0.2.0/24)"
                    )
                })
        })
        .transpose()?;
    Ok(Rule {
        name: rule.name.clone(),
        request_user,
        source,
    })
}

/// The user part of a SIP, SIPS or tel Request-URI: what stands before the `@` (without a
/// password), or a tel URI's number. `None` when the URI has none (`sip:srs.example.com`).
pub fn request_user(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.trim().split_once(':')?;
    if scheme.eq_ignore_ascii_case("tel") {
        let number = rest.split(';').next().unwrap_or_default();
        return (!number.is_empty()).then_some(number);
    }
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return None;
    }
    // RFC 3261 §25.1: '@' appears unescaped only after the userinfo, never in a host, a
    // parameter or a header of the URI.
    let (userinfo, _) = rest.split_once('@')?;
    let user = userinfo.split(':').next().unwrap_or_default();
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, request_user: Option<&str>, source: Option<&str>) -> TenantRule {
        TenantRule {
            name: name.to_owned(),
            request_user: request_user.map(str::to_owned),
            source: source.map(str::to_owned),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_user_part_is_read_from_sip_sips_and_tel_uris() {
        assert_eq!(
            request_user("sip:+15551234@srs.example.com"),
            Some("+15551234")
        );
        assert_eq!(
            request_user("SIPS:acme-rec;npdi@10.0.0.1:5061;transport=tls"),
            Some("acme-rec;npdi")
        );
        assert_eq!(request_user("sip:alice:secret@example.com"), Some("alice"));
        assert_eq!(
            request_user("tel:+15551234;phone-context=x"),
            Some("+15551234")
        );
        assert_eq!(request_user("sip:srs.example.com;transport=tcp"), None);
        assert_eq!(request_user("sip:@example.com"), None);
        assert_eq!(request_user("http://user@example.com"), None);
        assert_eq!(request_user("garbage"), None);
    }

    #[test]
    fn the_first_matching_rule_wins_and_both_keys_must_match() {
        let tenants = Tenants::new(&[
            rule("both", Some("^acme-"), Some("192.0.2.0/24")),
            rule("by-user", Some("^acme-"), None),
            rule("by-source", None, Some("198.51.100.7")),
            rule("v6", Some("^\\+44"), Some("2001:db8::/32")),
        ])
        .unwrap();
        let uri = "sip:acme-sales@srs.example.com";
        assert_eq!(tenants.tenant_of(uri, ip("192.0.2.9")), Some("both"));
        // Same user, another source: the first rule needs both, the second only the user.
        assert_eq!(tenants.tenant_of(uri, ip("203.0.113.1")), Some("by-user"));
        // An IPv4 peer seen through a dual-stack socket is still IPv4.
        assert_eq!(tenants.tenant_of(uri, ip("::ffff:192.0.2.9")), Some("both"));
        assert_eq!(
            tenants.tenant_of("sip:other@srs", ip("198.51.100.7")),
            Some("by-source")
        );
        assert_eq!(
            tenants.tenant_of("sip:+441234@srs", ip("2001:db8::1")),
            Some("v6")
        );
        assert_eq!(
            tenants.tenant_of("sip:+441234@srs", ip("2001:db9::1")),
            None
        );
        assert_eq!(tenants.tenant_of("sip:other@srs", ip("203.0.113.1")), None);
        // A rule on the user never matches a Request-URI without one.
        assert_eq!(
            tenants.tenant_of("sip:srs.example.com", ip("203.0.113.1")),
            None
        );
        assert_eq!(Tenants::default().tenant_of(uri, ip("192.0.2.9")), None);
    }

    #[test]
    fn bad_rules_are_refused_naming_the_rule_and_the_key() {
        let cases = [
            (
                rule("a", Some("(unclosed"), None),
                "request_user \"(unclosed\"",
            ),
            (
                rule("b", None, Some("10.0.0.0/33")),
                "source \"10.0.0.0/33\"",
            ),
            (rule("c", None, Some("not-a-net")), "CIDR"),
            (rule("d", None, None), "give request_user, source or both"),
            (rule("", Some("x"), None), "name"),
            (rule("e\u{1b}", Some("x"), None), "control"),
        ];
        for (bad, expected) in cases {
            let err = format!(
                "{:#}",
                Tenants::new(&[rule("ok", Some("x"), None), bad]).unwrap_err()
            );
            assert!(err.contains("[[tenants]] #2"), "{err}");
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
    }
}
