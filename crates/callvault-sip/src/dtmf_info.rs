//! DTMF carried in SIP INFO bodies: `application/dtmf-relay` (the Cisco format, also sent by
//! AudioCodes, Avaya, Asterisk, FreeSWITCH) and `application/dtmf` (the digit alone). Neither has
//! an RFC; the grammar here is what those implementations send. Pure and allocation-free.

use crate::error::{Error, Result};

/// A DTMF event from an INFO body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfoDtmf {
    /// `0`-`9`, `*`, `#`, `A`-`D` (upper case), or `!` for a hook flash.
    pub digit: char,
    /// `Duration=` of `application/dtmf-relay`, in milliseconds; `None` when absent.
    pub duration_ms: Option<u32>,
}

/// Bodies longer than this are not DTMF (the real ones are under 40 bytes).
const MAX_BODY: usize = 1024;

/// Parses the body of an INFO request.
///
/// * `application/dtmf-relay`: lines `Signal=5` / `Signal= 5` / `signal=#` and `Duration=160`,
///   CRLF or LF, any order, keys case-insensitive, other keys ignored. Signal 10 = `*`,
///   11 = `#`, 12-15 = `A`-`D`, 16 or `hf` = flash (`!`). Exactly one `Signal` is required; at
///   most one `Duration`.
/// * `application/dtmf`: the body is the digit alone, or a number 0-16 (same mapping).
///
/// Content-type parameters (`;charset=...`) are ignored. Returns `Ok(None)` for any other or no
/// content type (not DTMF: the TU answers 200 anyway) and [`Error::DtmfInfo`] for a DTMF
/// content type with a malformed body (the TU answers 400).
pub fn parse_info_dtmf(content_type: Option<&str>, body: &[u8]) -> Result<Option<InfoDtmf>> {
    let Some(content_type) = content_type else {
        return Ok(None);
    };
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    let relay = media_type.eq_ignore_ascii_case("application/dtmf-relay");
    if !relay && !media_type.eq_ignore_ascii_case("application/dtmf") {
        return Ok(None);
    }
    if body.len() > MAX_BODY {
        return Err(bad("DTMF body too long"));
    }
    let text = std::str::from_utf8(body).map_err(|_| bad("DTMF body is not text"))?;
    if relay {
        parse_relay(text).map(Some)
    } else {
        let digit = signal(text.trim())?;
        Ok(Some(InfoDtmf {
            digit,
            duration_ms: None,
        }))
    }
}

fn bad(reason: &'static str) -> Error {
    Error::DtmfInfo { reason }
}

fn parse_relay(text: &str) -> Result<InfoDtmf> {
    let mut digit = None;
    let mut duration_ms = None;
    for line in text.split('\n') {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or(bad("DTMF relay line has no '='"))?;
        let key = key.trim();
        let value = value.trim();
        if key.eq_ignore_ascii_case("signal") {
            if digit.is_some() {
                return Err(bad("DTMF relay has two Signal lines"));
            }
            digit = Some(signal(value)?);
        } else if key.eq_ignore_ascii_case("duration") {
            if duration_ms.is_some() {
                return Err(bad("DTMF relay has two Duration lines"));
            }
            duration_ms = Some(decimal(value).ok_or(bad("DTMF relay Duration is malformed"))?);
        }
    }
    let digit = digit.ok_or(bad("DTMF relay has no Signal"))?;
    Ok(InfoDtmf { digit, duration_ms })
}

/// A signal value: one event character, a number 0-16 (RFC 4733 event codes), or `hf`.
fn signal(value: &str) -> Result<char> {
    if value.eq_ignore_ascii_case("hf") {
        return Ok('!');
    }
    if let [c] = value.as_bytes()
        && matches!(c, b'*' | b'#' | b'A'..=b'D' | b'a'..=b'd')
    {
        return Ok(char::from(c.to_ascii_uppercase()));
    }
    let code = decimal(value).ok_or(bad("DTMF signal is malformed"))?;
    match code {
        0..=9 => Ok(char::from(b'0' + code as u8)),
        10 => Ok('*'),
        11 => Ok('#'),
        12..=15 => Ok(char::from(b'A' + (code - 12) as u8)),
        16 => Ok('!'),
        _ => Err(bad("DTMF signal out of range")),
    }
}

/// ASCII digits only (no sign, no spaces inside), fitting a `u32`.
fn decimal(value: &str) -> Option<u32> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: Option<&str> = Some("application/dtmf-relay");
    const DTMF: Option<&str> = Some("application/dtmf");

    fn relay(body: &str) -> Result<Option<InfoDtmf>> {
        parse_info_dtmf(RELAY, body.as_bytes())
    }

    fn digit(c: char, duration_ms: Option<u32>) -> Option<InfoDtmf> {
        Some(InfoDtmf {
            digit: c,
            duration_ms,
        })
    }

    #[test]
    fn real_world_relay_bodies() {
        // Cisco IOS / CUBE.
        assert_eq!(
            relay("Signal=1\r\nDuration=250\r\n").unwrap(),
            digit('1', Some(250))
        );
        // AudioCodes: a space after `=`, LF only, no final newline.
        assert_eq!(
            relay("Signal= 5\nDuration= 160").unwrap(),
            digit('5', Some(160))
        );
        // Avaya / Asterisk style: lower-case keys, `#`, Duration first.
        assert_eq!(
            relay("duration=100\r\nsignal=#\r\n").unwrap(),
            digit('#', Some(100))
        );
        assert_eq!(
            relay("SIGNAL = *\r\n\r\n").unwrap(),
            digit('*', None),
            "no Duration, blank lines"
        );
        // Unknown keys are ignored.
        assert_eq!(
            relay("Signal=9\r\nVolume=10\r\nDuration=80\r\n").unwrap(),
            digit('9', Some(80))
        );
    }

    #[test]
    fn numeric_signals_map_to_events() {
        let expected = [
            (0, '0'),
            (7, '7'),
            (9, '9'),
            (10, '*'),
            (11, '#'),
            (12, 'A'),
            (13, 'B'),
            (14, 'C'),
            (15, 'D'),
            (16, '!'),
        ];
        for (code, c) in expected {
            assert_eq!(
                relay(&format!("Signal={code}\r\n")).unwrap(),
                digit(c, None)
            );
            assert_eq!(
                parse_info_dtmf(DTMF, code.to_string().as_bytes()).unwrap(),
                digit(c, None)
            );
        }
        assert_eq!(relay("Signal=hf\r\n").unwrap(), digit('!', None));
        assert_eq!(relay("Signal=HF\r\n").unwrap(), digit('!', None));
        assert_eq!(relay("Signal=b\r\n").unwrap(), digit('B', None));
        assert_eq!(relay("Signal=05\r\n").unwrap(), digit('5', None));
    }

    #[test]
    fn application_dtmf_is_the_digit_alone() {
        assert_eq!(parse_info_dtmf(DTMF, b"5").unwrap(), digit('5', None));
        assert_eq!(parse_info_dtmf(DTMF, b"#\r\n").unwrap(), digit('#', None));
        assert_eq!(parse_info_dtmf(DTMF, b" 11 ").unwrap(), digit('#', None));
        assert_eq!(parse_info_dtmf(DTMF, b"d").unwrap(), digit('D', None));
        assert!(parse_info_dtmf(DTMF, b"").is_err());
        assert!(parse_info_dtmf(DTMF, b"55 5").is_err());
        assert!(parse_info_dtmf(DTMF, b"17").is_err());
        assert!(parse_info_dtmf(DTMF, b"Signal=5").is_err());
    }

    #[test]
    fn content_type_is_matched_case_insensitively_with_parameters() {
        for ct in [
            "Application/DTMF-Relay",
            "application/dtmf-relay; charset=utf-8",
            " application/dtmf-relay ",
        ] {
            assert_eq!(
                parse_info_dtmf(Some(ct), b"Signal=3").unwrap(),
                digit('3', None)
            );
        }
    }

    #[test]
    fn other_content_types_are_not_dtmf() {
        assert_eq!(parse_info_dtmf(None, b"Signal=5").unwrap(), None);
        assert_eq!(
            parse_info_dtmf(Some("application/sdp"), b"Signal=5").unwrap(),
            None
        );
        assert_eq!(
            parse_info_dtmf(Some("application/media_control+xml"), b"<x/>").unwrap(),
            None
        );
        assert_eq!(parse_info_dtmf(Some(""), b"").unwrap(), None);
        assert_eq!(
            parse_info_dtmf(Some("application/dtmf-relayx"), b"Signal=5").unwrap(),
            None
        );
    }

    #[test]
    fn malformed_relay_bodies_are_errors() {
        for body in [
            "",
            "\r\n\r\n",
            "Duration=160\r\n",
            "Signal=\r\n",
            "Signal=99\r\n",
            "Signal=17\r\n",
            "Signal=-1\r\n",
            "Signal=+5\r\n",
            "Signal=55555555555555555555\r\n",
            "Signal=E\r\n",
            "Signal=5 5\r\n",
            "Signal=1\r\nSignal=2\r\n",
            "Signal=1\r\nDuration=\r\n",
            "Signal=1\r\nDuration=abc\r\n",
            "Signal=1\r\nDuration=-5\r\n",
            "Signal=1\r\nDuration=99999999999\r\n",
            "Signal=1\r\nDuration=10\r\nDuration=20\r\n",
            "Signal 5\r\n",
            "hello",
        ] {
            let result = relay(body);
            assert!(
                matches!(result, Err(Error::DtmfInfo { .. })),
                "{body:?} gave {result:?}"
            );
        }
    }

    #[test]
    fn binary_and_huge_bodies_are_errors_not_panics() {
        assert!(parse_info_dtmf(RELAY, &[0xff, 0xfe, b'=', 0x00]).is_err());
        assert!(parse_info_dtmf(DTMF, &[0xc3]).is_err());
        assert!(parse_info_dtmf(RELAY, "Signal=5\u{0}".as_bytes()).is_err());
        let huge = format!("Signal=5\r\n{}", "X=1\r\n".repeat(100_000));
        assert!(parse_info_dtmf(RELAY, huge.as_bytes()).is_err());
        // Multi-byte characters next to the `=` and in values do not split a char.
        assert!(relay("Signal=é\r\n").is_err());
        assert!(relay("Sïgnal=5\r\n").is_err());
    }

    #[test]
    fn every_short_byte_string_parses_without_panic() {
        let alphabet = b"Sig=nal15#*\r\n hfD\xff";
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let body = [*a, *b, *c, b'=', *a, *c];
                    let _ = parse_info_dtmf(RELAY, &body);
                    let _ = parse_info_dtmf(DTMF, &body[..3]);
                }
            }
        }
    }
}
