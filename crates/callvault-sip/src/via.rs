//! The Via header (RFC 3261 §20.42, §18.2; RFC 3581 rport): what the transaction layer keys on
//! and routes responses by.

use crate::error::ParseError;

type Result<T, E = ParseError> = std::result::Result<T, E>;
use crate::header::params;
use std::fmt::Write as _;

/// The magic cookie of RFC 3261 branches; without it the sender is RFC 2543 and keys differ.
pub(crate) const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via element, e.g. `SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK..;rport`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    /// Parses one element; linear whitespace is allowed around `/`, `;` and `=` (RFC 4475 wsinv).
    pub(crate) fn parse(element: &str) -> Result<Via> {
        Via::parse_with(element, true)
    }

    /// Parses protocol and sent-by, skipping parameters that do not parse and accepting any SIP
    /// version: enough to route the 400 for a request whose Via is otherwise broken (RFC 4475
    /// badinv01), or the 505 for another version (badvers).
    pub(crate) fn parse_sent_by(element: &str) -> Result<Via> {
        Via::parse_with(element, false)
    }

    fn parse_with(element: &str, strict: bool) -> Result<Via> {
        let (proto, rest) = element
            .split_once(';')
            .map_or((element, ""), |(a, b)| (a, b));
        let mut parts = proto.splitn(3, '/');
        let name = parts.next().unwrap_or("").trim();
        let version = parts.next().unwrap_or("").trim();
        let tail = parts.next().unwrap_or("").trim();
        // Lenient parsing takes any version, so a request of another SIP version can still be
        // routed its 505 (RFC 4475 badvers).
        if !name.eq_ignore_ascii_case("SIP") || strict && version != "2.0" {
            return Err(ParseError::ViaProtocol);
        }
        let (transport, sent_by) = tail
            .split_once(|c: char| c.is_ascii_whitespace())
            .ok_or(ParseError::ViaSentByMissing)?;
        let sent_by = sent_by.trim();
        if transport.is_empty() || sent_by.is_empty() || sent_by.contains(char::is_whitespace) {
            return Err(ParseError::ViaSentBy);
        }
        let (host, port) = split_host_port(sent_by)?;
        let mut out_params = Vec::new();
        // `;;` is malformed (RFC 4475 badinv01); one trailing `;` is tolerated as harmless.
        let pieces: Vec<&str> = rest.split(';').collect();
        if strict
            && !rest.trim().is_empty()
            && pieces[..pieces.len() - 1]
                .iter()
                .any(|p| p.trim().is_empty())
        {
            return Err(ParseError::ViaParameter);
        }
        for (n, v) in params(rest) {
            if n.is_empty() || n.contains(char::is_whitespace) {
                if strict {
                    return Err(ParseError::ViaParameter);
                }
                continue;
            }
            out_params.push((n.to_owned(), v.map(str::to_owned)));
        }
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host: host.to_owned(),
            port,
            params: out_params,
        })
    }

    pub(crate) fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    pub(crate) fn branch(&self) -> Option<&str> {
        self.param("branch").flatten().filter(|b| !b.is_empty())
    }

    /// `host[:port]` as sent, the sent-by of RFC 3261 §17.2.3 matching.
    pub(crate) fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host.to_ascii_lowercase()),
            None => self.host.to_ascii_lowercase(),
        }
    }

    pub(crate) fn set_param(&mut self, name: &str, value: Option<String>) {
        match self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(p) => p.1 = value,
            None => self.params.push((name.to_owned(), value)),
        }
    }

    pub(crate) fn to_wire(&self) -> String {
        let mut s = format!("SIP/2.0/{} {}", self.transport, self.host);
        if let Some(p) = self.port {
            let _ = write!(s, ":{p}");
        }
        for (n, v) in &self.params {
            match v {
                Some(v) => {
                    let _ = write!(s, ";{n}={v}");
                }
                None => {
                    let _ = write!(s, ";{n}");
                }
            }
        }
        s
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(s: &str) -> Result<(&str, Option<u16>)> {
    let bad = || ParseError::ViaSentBy;
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']').ok_or_else(bad)?;
        let host = &s[..close + 2];
        let after = &rest[close + 1..];
        if after.is_empty() {
            return Ok((host, None));
        }
        let port = after.strip_prefix(':').ok_or_else(bad)?;
        return Ok((host, Some(port.parse().map_err(|_| bad())?)));
    }
    match s.split_once(':') {
        Some((h, p)) if !h.is_empty() => Ok((h, Some(p.trim().parse().map_err(|_| bad())?))),
        Some(_) => Err(bad()),
        None => Ok((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lws_everywhere() {
        let v =
            Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.host, "spindle.example.com");
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
    }

    #[test]
    fn ipv6_port_and_rport() {
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9]:5070;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(v.host, "[2001:db8::9]");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.param("rport"), Some(None));
        assert_eq!(v.sent_by(), "[2001:db8::9]:5070");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("SIP/3.0/UDP host").is_err());
        assert!(Via::parse("SIP/2.0/UDP host:99999").is_err());
        assert!(Via::parse("").is_err());
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;branch=z9hG4bK1;").is_ok());
    }

    #[test]
    fn round_trips_with_added_received() {
        let mut v = Via::parse("SIP/2.0/UDP pc33.example.com;branch=z9hG4bKabc;rport").unwrap();
        v.set_param("rport", Some("5062".into()));
        v.set_param("received", Some("192.0.2.9".into()));
        assert_eq!(
            v.to_wire(),
            "SIP/2.0/UDP pc33.example.com;branch=z9hG4bKabc;rport=5062;received=192.0.2.9"
        );
    }
}
