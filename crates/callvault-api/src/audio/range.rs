//! Answering `Range: bytes=…` (RFC 9110 §14) for a representation of known length.
//!
//! Parsing is `http-range-header`'s (strict, fuzzed, the parser tower-http's `ServeDir` uses);
//! what to answer is decided here:
//! - no `Range`, one we cannot parse, or one the parser rejects as abusive: `200` with the whole
//!   representation (a server may always ignore `Range`, §14.2);
//! - one satisfiable range: `206` with `Content-Range: bytes first-last/len`;
//! - several satisfiable ranges: `200` with the whole representation. We do not produce
//!   `multipart/byteranges` bodies, and answering only the first range would hand the client
//!   fewer bytes than it asked for under a `206`; browsers' media elements ask for one range;
//! - nothing satisfiable: `416` with `Content-Range: bytes */len`.

use std::ops::Range;

use http::{HeaderValue, StatusCode};

/// What to answer for a `Range` header and a length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200, the whole representation.
    Full,
    /// 206, bytes `first..=last` (both within the length).
    Partial { first: u64, last: u64 },
    /// 416, nothing.
    Unsatisfiable,
}

impl RangeAnswer {
    /// Decides the answer to `range` (the request's `Range` header, if any) for a
    /// representation of `len` bytes.
    pub fn for_request(range: Option<&HeaderValue>, len: u64) -> RangeAnswer {
        let Some(text) = range.and_then(|value| value.to_str().ok()) else {
            return RangeAnswer::Full;
        };
        let Ok(parsed) = http_range_header::parse_range_header(text) else {
            return RangeAnswer::Full;
        };
        match parsed.validate(len) {
            Ok(ranges) => match ranges.as_slice() {
                [one] => RangeAnswer::Partial {
                    first: *one.start(),
                    last: *one.end(),
                },
                // None (only on an empty representation, for a suffix range) or several.
                _ => RangeAnswer::Full,
            },
            Err(http_range_header::RangeUnsatisfiableError::Unsatisfiable) => {
                RangeAnswer::Unsatisfiable
            }
            Err(_) => RangeAnswer::Full,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            RangeAnswer::Full => StatusCode::OK,
            RangeAnswer::Partial { .. } => StatusCode::PARTIAL_CONTENT,
            RangeAnswer::Unsatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        }
    }

    /// The bytes of the body, within a representation of `len` bytes.
    pub fn bytes(&self, len: u64) -> Range<u64> {
        match *self {
            RangeAnswer::Full => 0..len,
            RangeAnswer::Partial { first, last } => first..last + 1,
            RangeAnswer::Unsatisfiable => 0..0,
        }
    }

    /// The `Content-Range` header for a representation of `len` bytes, on 206 and 416.
    pub fn content_range(&self, len: u64) -> Option<HeaderValue> {
        let text = match *self {
            RangeAnswer::Full => return None,
            RangeAnswer::Partial { first, last } => format!("bytes {first}-{last}/{len}"),
            RangeAnswer::Unsatisfiable => format!("bytes */{len}"),
        };
        Some(
            HeaderValue::try_from(text)
                .expect("digits, spaces, '-', '/' and '*' are a valid header value"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(range: &str, len: u64) -> RangeAnswer {
        RangeAnswer::for_request(Some(&HeaderValue::from_str(range).unwrap()), len)
    }

    #[test]
    fn single_ranges_of_every_form() {
        assert_eq!(
            answer("bytes=0-99", 1000),
            RangeAnswer::Partial { first: 0, last: 99 }
        );
        assert_eq!(
            answer("bytes=100-", 1000),
            RangeAnswer::Partial {
                first: 100,
                last: 999
            }
        );
        assert_eq!(
            answer("bytes=-500", 1000),
            RangeAnswer::Partial {
                first: 500,
                last: 999
            }
        );
        // A last byte past the end, or a suffix longer than the file, stops at the end.
        assert_eq!(
            answer("bytes=990-5000", 1000),
            RangeAnswer::Partial {
                first: 990,
                last: 999
            }
        );
        assert_eq!(
            answer("bytes=-5000", 1000),
            RangeAnswer::Partial {
                first: 0,
                last: 999
            }
        );
        let partial = answer("bytes=10-19", 1000);
        assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(partial.bytes(1000), 10..20);
        assert_eq!(partial.content_range(1000).unwrap(), "bytes 10-19/1000");
    }

    #[test]
    fn a_range_past_the_end_is_unsatisfiable() {
        for range in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
            let unsatisfiable = answer(range, 1000);
            assert_eq!(unsatisfiable, RangeAnswer::Unsatisfiable, "{range}");
            assert_eq!(unsatisfiable.status(), StatusCode::RANGE_NOT_SATISFIABLE);
            assert_eq!(unsatisfiable.content_range(1000).unwrap(), "bytes */1000");
            assert_eq!(unsatisfiable.bytes(1000), 0..0);
        }
    }

    #[test]
    fn no_range_a_bad_range_or_several_ranges_get_everything() {
        assert_eq!(RangeAnswer::for_request(None, 1000), RangeAnswer::Full);
        for range in [
            "items=0-10",
            "bytes=10-5",
            "bytes=abc",
            "bytes=",
            "bytes=0-10,20-30",
            "bytes=0-5,1-6,2-7",
        ] {
            let full = answer(range, 1000);
            assert_eq!(full, RangeAnswer::Full, "{range}");
            assert_eq!(full.status(), StatusCode::OK);
            assert_eq!(full.bytes(1000), 0..1000);
            assert_eq!(full.content_range(1000), None);
        }
        let not_text = HeaderValue::from_bytes(b"bytes=\xff-").unwrap();
        assert_eq!(
            RangeAnswer::for_request(Some(&not_text), 1000),
            RangeAnswer::Full
        );
    }

    #[test]
    fn of_several_ranges_only_the_satisfiable_ones_count() {
        assert_eq!(
            answer("bytes=5000-6000,0-9", 1000),
            RangeAnswer::Partial { first: 0, last: 9 }
        );
    }
}
