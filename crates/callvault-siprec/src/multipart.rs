//! `multipart/mixed` framing (RFC 2046 §5.1) as SBCs actually send it: boundary quoted or not,
//! CRLF or bare LF, part headers in any case with or without a space after the colon, a preamble
//! and an epilogue, parts in any order.

use crate::error::{Error, Result};

/// One body part: its media type (lower-case, parameters removed) and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part<'a> {
    /// `None` when the part carries no Content-Type header (RFC 2046 default text/plain).
    pub media_type: Option<String>,
    /// The full Content-Type value, parameters included; nested multiparts need the boundary.
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// The media type of a Content-Type value: `Multipart/Mixed ; boundary=x` → `multipart/mixed`.
pub(crate) fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The `boundary` parameter of a Content-Type value, unquoted.
pub(crate) fn boundary(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!value.is_empty()).then_some(value)
    })
}

/// The boundary guessed from the first delimiter line, for bodies whose Content-Type lost its
/// parameter (or was missing): `--uniqueBoundary` → `uniqueBoundary`.
pub(crate) fn sniff_boundary(body: &[u8]) -> Option<&str> {
    let prefix = &body[..body.len().min(1024)];
    // The cut at 1024 bytes may split a character; what precedes it is enough.
    let text = match std::str::from_utf8(prefix) {
        Ok(text) => text,
        Err(error) => std::str::from_utf8(&prefix[..error.valid_up_to()]).ok()?,
    };
    let first = text.lines().map(str::trim).find(|line| !line.is_empty())?;
    let boundary = first.strip_prefix("--")?;
    (!boundary.is_empty() && !boundary.contains(char::is_whitespace)).then_some(boundary)
}

/// Split a multipart body into its parts.
///
/// A missing close delimiter is an error: it means the body was cut (UDP truncation, a broken
/// Content-Length), and a cut SDP or metadata part would be misread rather than refused.
pub(crate) fn split<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut parts = Vec::new();
    // A delimiter must begin a line, so the body is walked line by line.
    let mut open: Option<usize> = None; // where the content of the part being read starts
    let mut line_start = 0;
    let mut closed = false;
    while line_start <= body.len() {
        let line_end = find(&body[line_start..], b"\n").map_or(body.len(), |i| line_start + i);
        let line = &body[line_start..line_end];
        if let Some(rest) = line.strip_prefix(delimiter) {
            let rest = rest.trim_ascii();
            let is_close = rest.starts_with(b"--");
            // Anything else after the boundary means this line merely starts like one.
            if is_close || rest.is_empty() {
                if let Some(start) = open.take() {
                    // The line break before the delimiter belongs to the delimiter.
                    let mut end = line_start.max(start);
                    if end > start && body[end - 1] == b'\n' {
                        end -= 1;
                        if end > start && body[end - 1] == b'\r' {
                            end -= 1;
                        }
                    }
                    parts.push(parse_part(&body[start..end])?);
                }
                if is_close {
                    closed = true;
                    break;
                }
                open = Some((line_end + 1).min(body.len()));
            }
        }
        line_start = line_end + 1;
    }
    if parts.is_empty() && open.is_none() && !closed {
        return Err(Error::BadMultipart {
            reason: format!("boundary {boundary:?} not found in body"),
        });
    }
    if !closed {
        return Err(Error::BadMultipart {
            reason: "no close delimiter: body truncated".into(),
        });
    }
    Ok(parts)
}

/// Headers, a blank line, the content. Header names are case-insensitive and may be followed by
/// the colon without a space (`Content-Type:application/sdp`, BroadWorks).
fn parse_part(raw: &[u8]) -> Result<Part<'_>> {
    let mut content_type = None;
    let mut position = 0;
    loop {
        let Some(offset) = find(&raw[position..], b"\n") else {
            // No blank line: either a part with only headers, or garbage.
            if raw[position..].trim_ascii().is_empty() {
                position = raw.len();
                break;
            }
            return Err(Error::BadMultipart {
                reason: "body part has no blank line after its headers".into(),
            });
        };
        let line = &raw[position..position + offset];
        position += offset + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return Err(Error::BadMultipart {
                reason: "body part header is not UTF-8".into(),
            });
        };
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-type")
        {
            content_type = Some(value.trim());
        } else if !line.contains(':') && !line.starts_with([' ', '\t']) {
            return Err(Error::BadMultipart {
                reason: format!("body part header line without a colon: {line:.60}"),
            });
        }
    }
    Ok(Part {
        media_type: content_type.map(media_type),
        content_type,
        body: &raw[position.min(raw.len())..],
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_quoted_unquoted_and_spaced() {
        assert_eq!(boundary("multipart/mixed;boundary=foo"), Some("foo"));
        assert_eq!(
            boundary("multipart/mixed; boundary=\"foo bar\""),
            Some("foo bar")
        );
        assert_eq!(
            boundary("Multipart/Mixed ; Boundary = x1 ; charset=utf-8"),
            Some("x1")
        );
        assert_eq!(boundary("multipart/mixed"), None);
        assert_eq!(boundary("multipart/mixed;boundary=\"\""), None);
    }

    #[test]
    fn media_type_drops_parameters_and_case() {
        assert_eq!(media_type(" Application/SDP ;charset=x"), "application/sdp");
    }

    #[test]
    fn splits_crlf_body_with_preamble_and_epilogue() {
        let body = b"preamble\r\n--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--b\r\ncontent-type:application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n<x/>\r\n--b--\r\nepilogue";
        let parts = split(body, "b").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].media_type.as_deref(), Some("application/sdp"));
        assert_eq!(parts[0].body, b"v=0\r\n");
        assert_eq!(
            parts[1].media_type.as_deref(),
            Some("application/rs-metadata+xml")
        );
        assert_eq!(parts[1].body, b"<x/>");
    }

    #[test]
    fn splits_bare_lf_body() {
        let body = b"--b\nContent-Type: application/sdp\n\nv=0\n--b--\n";
        let parts = split(body, "b").unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].body, b"v=0");
    }

    #[test]
    fn a_line_that_only_starts_like_the_boundary_is_content() {
        let body = b"--b\r\nContent-Type: text/plain\r\n\r\n--bx is not a delimiter\r\n--b--";
        let parts = split(body, "b").unwrap();
        assert_eq!(parts[0].body, b"--bx is not a delimiter");
    }

    #[test]
    fn truncated_body_is_refused() {
        let body =
            b"--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\no=- 1 1 IN IP4 10.0.0.1\r\n";
        assert!(matches!(split(body, "b"), Err(Error::BadMultipart { .. })));
    }

    #[test]
    fn wrong_boundary_is_refused() {
        let body = b"--other\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--other--";
        let error = split(body, "b").unwrap_err();
        assert!(error.to_string().contains("not found"), "{error}");
    }

    #[test]
    fn part_without_header_end_is_refused() {
        let body = b"--b\r\nContent-Type: application/sdp\r\nv=0 no blank line\r\n--b--";
        assert!(matches!(split(body, "b"), Err(Error::BadMultipart { .. })));
    }

    #[test]
    fn sniffs_boundary_from_first_line() {
        assert_eq!(
            sniff_boundary(b"\r\n--abc\r\nContent-Type: x\r\n"),
            Some("abc")
        );
        assert_eq!(sniff_boundary(b"v=0\r\n"), None);
    }
}
