//! Opaque page cursors: what the last item of a page was, so the next page starts after it
//! (keyset pagination: no `OFFSET`, so a page costs the same however deep it is, and rows
//! added meanwhile neither repeat nor shift items). Callers see base64url text; only this
//! crate reads it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

/// A search cursor: the (`started_at` in unix ms, id) of the last recording of a page.
pub(crate) fn recordings(started_at_ms: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("r1:{started_at_ms}:{id}"))
}

pub(crate) fn parse_recordings(cursor: &str) -> Result<(i64, String)> {
    let text = decode(cursor)?;
    text.strip_prefix("r1:")
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_owned())))
        .ok_or_else(invalid)
}

/// An audit cursor: the `seq` of the last entry of a page.
pub(crate) fn audit(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("a1:{seq}"))
}

pub(crate) fn parse_audit(cursor: &str) -> Result<i64> {
    decode(cursor)?
        .strip_prefix("a1:")
        .and_then(|seq| seq.parse().ok())
        .ok_or_else(invalid)
}

fn decode(cursor: &str) -> Result<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

fn invalid() -> Error {
    Error::InvalidQuery {
        reason: "the cursor is not one this catalog gave out".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_what_they_did_not_make() {
        let c = recordings(1_796_030_553_456, "0193-a:b");
        assert_eq!(
            parse_recordings(&c).unwrap(),
            (1_796_030_553_456, "0193-a:b".to_owned())
        );
        assert_eq!(parse_audit(&audit(42)).unwrap(), 42);
        for bad in ["", "!!", &audit(1), &URL_SAFE_NO_PAD.encode("r1:x:y")] {
            assert!(
                matches!(parse_recordings(bad), Err(Error::InvalidQuery { .. })),
                "{bad:?}"
            );
        }
        assert!(parse_audit(&c).is_err());
    }
}
