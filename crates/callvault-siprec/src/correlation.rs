//! Correlation ids: the recorded call's own identifiers, wherever the SRC put them (INTEROP.md
//! rule 7), so a recording can be found from any system that saw the call.
//!
//! Kinds from SIP headers are the header's canonical name (`Cisco-Guid`, `Session-ID`); derived
//! values get a dotted suffix (`Session-ID.remote`); wildcard families (`X-Genesys-*`, From `x-`
//! parameters) use the lower-cased name as received.

/// One identifier of the recorded call, e.g. `("sipSessionID", "ab30…")`, `("ucid", "00010001…")`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct CorrelationId {
    pub kind: String,
    pub value: String,
}

impl CorrelationId {
    pub fn new(kind: impl Into<String>, value: impl Into<String>) -> Self {
        CorrelationId {
            kind: kind.into(),
            value: value.into(),
        }
    }
}

/// Push unless empty or already present: the same id often arrives in several places.
pub(crate) fn push_unique(ids: &mut Vec<CorrelationId>, kind: &str, value: &str) {
    let value = value.trim();
    if value.is_empty() || ids.iter().any(|id| id.kind == kind && id.value == value) {
        return;
    }
    ids.push(CorrelationId::new(kind, value));
}

/// An RFC 7989 session identifier, also the shape Cisco uses in `sipSessionID`:
/// `<local uuid>;remote=<remote uuid>`. Pushes `kind` with the local part and `kind.remote`
/// with the remote part unless it is the all-zero "not known yet" value.
pub(crate) fn push_session_id(ids: &mut Vec<CorrelationId>, kind: &str, value: &str) {
    let mut pieces = value.split(';');
    push_unique(ids, kind, pieces.next().unwrap_or_default());
    for parameter in pieces {
        if let Some((name, remote)) = parameter.split_once('=')
            && name.trim().eq_ignore_ascii_case("remote")
        {
            let remote = remote.trim();
            if !remote.chars().all(|c| c == '0') {
                push_unique(ids, &format!("{kind}.remote"), remote);
            }
        }
    }
}

/// An Avaya UCID in a User-to-User value: hex, optionally behind the `00`/`04` protocol
/// discriminator, as the information element `FA`, length `08`, then 8 bytes (node, sequence,
/// timestamp). Returned upper-case, the form Oracle puts in `apkt:ucid`.
pub(crate) fn ucid_from_user_to_user(value: &str) -> Option<String> {
    let payload = value.split(';').next()?.trim();
    if !payload.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let payload = payload.to_ascii_uppercase();
    let start = payload.find("FA08")?;
    // The element must sit on a byte boundary, at the start or after a discriminator byte.
    if start > 2 || start % 2 != 0 {
        return None;
    }
    payload.get(start + 4..start + 20).map(str::to_owned)
}

/// Correlation ids carried in SIP headers. Names are compared case-insensitively; values are
/// kept as sent apart from the extractions documented on each header.
pub fn correlation_from_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<CorrelationId> {
    let mut ids = Vec::new();
    for (name, value) in headers {
        let name = name.trim();
        let value = value.trim();
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "cisco-guid" => push_unique(&mut ids, "Cisco-Guid", value),
            "user-to-user" | "x-user-to-user" => {
                push_unique(&mut ids, "User-to-User", value);
                if let Some(ucid) = ucid_from_user_to_user(value) {
                    push_unique(&mut ids, "ucid", &ucid);
                }
            }
            "x-audc-call-id" => push_unique(&mut ids, "x-audc-call-id", value),
            "x-broadworks-correlation-info" => push_unique(
                &mut ids,
                "X-BroadWorks-Correlation-Info",
                value.split(';').next().unwrap_or_default(),
            ),
            "session-id" => push_session_id(&mut ids, "Session-ID", value),
            "x-cisco-recording-participant" => {
                push_unique(&mut ids, "X-Cisco-Recording-Participant", value)
            }
            "from" | "f" => {
                // Cisco network-based recording: x-nearend, x-farend, x-refci… on From.
                for parameter in value.split(';').skip(1) {
                    if let Some((key, parameter_value)) = parameter.split_once('=') {
                        let key = key.trim().to_ascii_lowercase();
                        if key.starts_with("x-") {
                            push_unique(&mut ids, &key, parameter_value.trim().trim_matches('"'));
                        }
                    }
                }
            }
            _ if lower.starts_with("x-genesys-") => push_unique(&mut ids, &lower, value),
            _ => {}
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(ids: &[CorrelationId]) -> Vec<(&str, &str)> {
        ids.iter()
            .map(|id| (id.kind.as_str(), id.value.as_str()))
            .collect()
    }

    #[test]
    fn known_headers_any_case() {
        let ids = correlation_from_headers([
            ("cisco-GUID", "1234567890-0987654321-1111111111-2222222222"),
            ("X-Audc-Call-Id", " 7e1f2a-19 "),
            (
                "X-BroadWorks-Correlation-Info",
                "5f7c1f6e-3b1a-4c55-9e0a-2a1d0c4c1d11;extra=1",
            ),
            ("X-Genesys-CallUUID", "02HVB4T8"),
            ("Via", "SIP/2.0/UDP 10.0.0.1"),
            (
                "X-Cisco-Recording-Participant",
                "\"Alice\" <sip:1001@10.0.0.5>;media-index=\"0\"",
            ),
        ]);
        assert_eq!(
            pairs(&ids),
            [
                ("Cisco-Guid", "1234567890-0987654321-1111111111-2222222222"),
                ("x-audc-call-id", "7e1f2a-19"),
                (
                    "X-BroadWorks-Correlation-Info",
                    "5f7c1f6e-3b1a-4c55-9e0a-2a1d0c4c1d11"
                ),
                ("x-genesys-calluuid", "02HVB4T8"),
                (
                    "X-Cisco-Recording-Participant",
                    "\"Alice\" <sip:1001@10.0.0.5>;media-index=\"0\""
                ),
            ]
        );
    }

    #[test]
    fn avaya_ucid_from_user_to_user() {
        let ids =
            correlation_from_headers([("User-to-User", "00FA080019001038F725B3;encoding=hex")]);
        assert_eq!(
            pairs(&ids),
            [
                ("User-to-User", "00FA080019001038F725B3;encoding=hex"),
                ("ucid", "0019001038F725B3")
            ]
        );
        let not_ucid =
            correlation_from_headers([("User-to-User", "3132333435;encoding=hex;purpose=isdn")]);
        assert_eq!(not_ucid.len(), 1);
    }

    #[test]
    fn session_id_local_and_remote() {
        let ids = correlation_from_headers([(
            "Session-ID",
            "ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2",
        )]);
        assert_eq!(
            pairs(&ids),
            [
                ("Session-ID", "ab30317f1a784dc48ff824d0d3715d86"),
                ("Session-ID.remote", "47755a9de7794ba387653f2099600ef2"),
            ]
        );
        let unknown_remote = correlation_from_headers([(
            "Session-ID",
            "ab30;remote=00000000000000000000000000000000",
        )]);
        assert_eq!(pairs(&unknown_remote), [("Session-ID", "ab30")]);
    }

    #[test]
    fn cisco_bib_from_parameters() {
        let ids = correlation_from_headers([(
            "From",
            "<sip:1001@cucm.example.com>;tag=1234;x-farendrefci=22;x-farendguid=ABCD;x-nearendaddr=1001;x-refci=21",
        )]);
        assert_eq!(
            pairs(&ids),
            [
                ("x-farendrefci", "22"),
                ("x-farendguid", "ABCD"),
                ("x-nearendaddr", "1001"),
                ("x-refci", "21")
            ]
        );
    }

    #[test]
    fn duplicates_and_empties_are_dropped() {
        let ids = correlation_from_headers([
            ("Cisco-Guid", "1"),
            ("CISCO-GUID", "1"),
            ("X-Audc-Call-Id", ""),
        ]);
        assert_eq!(pairs(&ids), [("Cisco-Guid", "1")]);
    }
}
