//! Label values of `/metrics`. Each comes from a set bounded by the code or the configuration,
//! never by what the network sends: a label taken from a packet (a method name, an address)
//! would let anyone create series without end. Typed vocabulary (`EndReason`, `RecordingMode`,
//! `TransportKind`) gives its own stored names.

use std::net::IpAddr;

use callvault_sip::Method;
use ipnet::IpNet;
use prometheus_client::encoding::EncodeLabelSet;

/// What a source address is counted under: the most specific network of the allow-list that
/// holds it — the address itself when that entry names one host (`192.0.2.10/32` →
/// `192.0.2.10`), else the network as configured (`198.51.100.0/24`) — or `other` when none
/// does. So there are never more sources than entries in `[sip] allowed_sources` (and the
/// routes' targets), plus one.
pub fn source(allowed: &[IpNet], ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    allowed
        .iter()
        .filter(|net| net.contains(&ip))
        .max_by_key(|net| net.prefix_len())
        .map_or_else(
            || OTHER.to_owned(),
            |net| {
                if net.prefix_len() == net.max_prefix_len() {
                    net.addr().to_string()
                } else {
                    net.to_string()
                }
            },
        )
}

/// The label of what is outside a bounded set.
pub const OTHER: &str = "other";

/// A SIP method as a label: the methods we know by name, every other one `other`.
pub fn method(method: &Method) -> &'static str {
    match method {
        Method::Invite => "INVITE",
        Method::Ack => "ACK",
        Method::Bye => "BYE",
        Method::Cancel => "CANCEL",
        Method::Options => "OPTIONS",
        Method::Info => "INFO",
        Method::Update => "UPDATE",
        Method::Register => "REGISTER",
        Method::Prack => "PRACK",
        Method::Subscribe => "SUBSCRIBE",
        Method::Notify => "NOTIFY",
        Method::Refer => "REFER",
        Method::Message => "MESSAGE",
        Method::Publish => "PUBLISH",
        Method::Other(_) => OTHER,
    }
}

/// The status code of a response we send, read from its first line (`SIP/2.0 200 OK`); `None`
/// for a request. Our own responses always have a three-digit code.
pub fn response_status(bytes: &[u8]) -> Option<u16> {
    let rest = bytes.strip_prefix(b"SIP/2.0 ")?;
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// `transport`, `method`: SIP requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub transport: &'static str,
    pub method: &'static str,
}

/// `transport`, `status`: SIP responses.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub transport: &'static str,
    pub status: u16,
}

/// `mode`, `source`: calls taken.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    pub mode: &'static str,
    pub source: String,
}

/// `source`: calls refused for their source's limits.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

/// `mode`, `end_reason`, `state`: recordings ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CompletionLabels {
    pub mode: &'static str,
    pub end_reason: &'static str,
    pub state: &'static str,
}

/// `mode`: call setup and duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    pub mode: &'static str,
}

/// `codec`: legs and packets.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodecLabels {
    pub codec: &'static str,
}

/// `version`, `git_commit`, `rustc`: the build.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
    pub git_commit: &'static str,
    pub rustc: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn a_source_is_its_host_entry_its_network_or_other() {
        let allowed = nets(&["192.0.2.10/32", "198.51.100.0/24", "::1/128"]);
        assert_eq!(
            source(&allowed, "192.0.2.10".parse().unwrap()),
            "192.0.2.10"
        );
        assert_eq!(
            source(&allowed, "198.51.100.77".parse().unwrap()),
            "198.51.100.0/24"
        );
        assert_eq!(source(&allowed, "::1".parse().unwrap()), "::1");
        assert_eq!(source(&allowed, "203.0.113.5".parse().unwrap()), "other");
        assert_eq!(source(&[], "192.0.2.10".parse().unwrap()), "other");
    }

    #[test]
    fn the_most_specific_entry_names_the_source_and_mapped_ipv4_counts_as_ipv4() {
        let allowed = nets(&["0.0.0.0/0", "10.0.0.0/8", "10.1.2.3/32"]);
        assert_eq!(source(&allowed, "10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(source(&allowed, "10.9.9.9".parse().unwrap()), "10.0.0.0/8");
        assert_eq!(source(&allowed, "8.8.8.8".parse().unwrap()), "0.0.0.0/0");
        assert_eq!(
            source(&allowed, "::ffff:10.1.2.3".parse().unwrap()),
            "10.1.2.3"
        );
    }

    #[test]
    fn however_many_addresses_send_there_are_never_more_sources_than_entries_plus_one() {
        let allowed = nets(&["192.0.2.0/24", "198.51.100.7/32"]);
        let labels: std::collections::HashSet<String> = (0..=255u8)
            .flat_map(|last| {
                [
                    IpAddr::from([192, 0, 2, last]),
                    IpAddr::from([198, 51, 100, last]),
                    IpAddr::from([203, 0, 113, last]),
                ]
            })
            .map(|ip| source(&allowed, ip))
            .collect();
        assert_eq!(labels.len(), 3, "{labels:?}");
    }

    #[test]
    fn an_unknown_method_is_other_whatever_its_name() {
        assert_eq!(method(&Method::Invite), "INVITE");
        assert_eq!(method(&Method::Bye), "BYE");
        assert_eq!(method(&Method::Other("X-RANDOM-1234".into())), "other");
    }

    #[test]
    fn the_status_is_read_from_a_response_line_only() {
        assert_eq!(response_status(b"SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(
            response_status(b"SIP/2.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(response_status(b"BYE sip:a@b SIP/2.0\r\n"), None);
        assert_eq!(response_status(b"SIP/2.0 2x0 OK\r\n"), None);
        assert_eq!(response_status(b"SIP/2.0 20"), None);
    }
}
