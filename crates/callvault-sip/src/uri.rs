//! What routing needs from a SIP URI (RFC 3261 §19.1): its scheme, and the socket address and
//! transport it names when its host is an IP literal. Host names are not resolved here (a
//! sans-IO helper cannot ask DNS); callers treat such a URI as unusable.

use crate::header::param;
use crate::peer::TransportKind;
use std::net::{IpAddr, SocketAddr};

/// Whether `uri` is a `sips:` URI (RFC 3261 §19.1: TLS on every hop), in any case.
pub(crate) fn is_sips(uri: &str) -> bool {
    uri.trim()
        .split_once(':')
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("sips"))
}

/// The socket address and transport a `sip:` or `sips:` URI names, when its host is an IP
/// literal: `sips:` and `;transport=tls` mean TLS (default port 5061), `;transport=tcp` TCP,
/// none or `;transport=udp` UDP (default port 5060). `None` for a host name, another scheme or
/// transport (SCTP, WS), a `sips:` URI naming a transport other than TLS's TCP, or a malformed
/// URI.
pub(crate) fn uri_address(uri: &str) -> Option<(SocketAddr, TransportKind)> {
    let (scheme, rest) = uri.trim().split_once(':')?;
    let secure = if scheme.eq_ignore_ascii_case("sips") {
        true
    } else if scheme.eq_ignore_ascii_case("sip") {
        false
    } else {
        return None;
    };
    let rest = rest.split('?').next().unwrap_or("");
    let rest = rest.split_once('@').map_or(rest, |(_, host)| host);
    let (host_port, uri_params) = rest.split_once(';').unwrap_or((rest, ""));
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let ip: IpAddr = host.parse().ok()?;
    let named = match param(uri_params, "transport") {
        None => None,
        Some(Some(t)) if t.eq_ignore_ascii_case("udp") => Some(TransportKind::Udp),
        Some(Some(t)) if t.eq_ignore_ascii_case("tcp") => Some(TransportKind::Tcp),
        Some(Some(t)) if t.eq_ignore_ascii_case("tls") => Some(TransportKind::Tls),
        Some(_) => return None,
    };
    let transport = match (secure, named) {
        // RFC 5630 §3.2: `sips:` is TLS over TCP; `;transport=tcp` on it says the same.
        (true, None | Some(TransportKind::Tcp | TransportKind::Tls)) => TransportKind::Tls,
        (true, Some(_)) => return None,
        (false, named) => named.unwrap_or(TransportKind::Udp),
    };
    let port = match port {
        None => transport.default_port(),
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        Some(_) => return None,
    };
    if port == 0 {
        return None;
    }
    Some((SocketAddr::new(ip, port), transport))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str, transport: TransportKind) -> Option<(SocketAddr, TransportKind)> {
        Some((s.parse().unwrap(), transport))
    }

    #[test]
    fn transport_and_default_port_follow_scheme_and_parameter() {
        use TransportKind::{Tcp, Tls, Udp};
        for (uri, expected) in [
            ("sip:src@198.51.100.9", at("198.51.100.9:5060", Udp)),
            (
                "sip:src@198.51.100.9:5070;transport=TCP",
                at("198.51.100.9:5070", Tcp),
            ),
            (
                "sip:src@198.51.100.9;transport=tls",
                at("198.51.100.9:5061", Tls),
            ),
            ("SIPS:src@198.51.100.9", at("198.51.100.9:5061", Tls)),
            ("sips:src@[2001:db8::9]:5081", at("[2001:db8::9]:5081", Tls)),
            (
                "sips:198.51.100.9;transport=tcp;lr",
                at("198.51.100.9:5061", Tls),
            ),
            ("sips:src@198.51.100.9;transport=udp", None),
            ("sip:src@198.51.100.9;transport=sctp", None),
            ("sips:src@sbc.example.com", None),
            ("sip:src@198.51.100.9:", None),
            ("sip:src@198.51.100.9:0", None),
            ("tel:+15551234", None),
        ] {
            assert_eq!(uri_address(uri), expected, "{uri}");
        }
    }

    #[test]
    fn sips_is_recognised_in_any_case() {
        assert!(is_sips("sips:srs@192.0.2.1"));
        assert!(is_sips(" SIPS:srs@192.0.2.1"));
        assert!(!is_sips("sip:srs@192.0.2.1;transport=tls"));
        assert!(!is_sips("garbage"));
    }
}
