//! Download file names from a pattern, and the `Content-Disposition` that carries them.
//!
//! A pattern such as `{queue}_{yyyymmdd}-{hhmm}_{from}_{to}_{session_id}_{n}` is parsed once, when
//! the configuration is loaded: an unknown placeholder, an unbalanced brace, a path separator or
//! a control character is an error then, not at the first download. Rendering never fails: each
//! value comes from a call (From and To are whatever the SBC sent) and is sanitised to characters
//! that are safe in a file name on every system — letters and digits of any script, `-`, `_`,
//! `.`, `+`, `@`; anything else (path separators, quotes, spaces, control characters, `%`)
//! becomes `_` — and cut to [`MAX_VALUE_CHARS`]. The whole name is then sanitised again, cut to
//! [`MAX_NAME_BYTES`], stripped of leading dots (no hidden files, no `..`), and never empty.
//!
//! `Content-Disposition` follows RFC 6266: `attachment; filename="…"` with an ASCII fallback,
//! then `filename*=UTF-8''…` (RFC 8187 percent-encoding) with the real name, which every current
//! browser prefers.

use std::fmt::Write as _;
use std::str::FromStr;

use http::HeaderValue;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;
use time::format_description::StaticFormatDescription;
use time::macros::format_description;

use crate::error::{Error, PatternProblem, Result};

/// The longest a placeholder's value may be, in characters.
pub const MAX_VALUE_CHARS: usize = 64;
/// The longest a whole name may be, in bytes of UTF-8, extension included (file systems allow
/// 255).
pub const MAX_NAME_BYTES: usize = 200;
/// What an empty name becomes.
const FALLBACK_NAME: &str = "recording";

/// RFC 8187 `attr-char`: what `filename*` may carry unencoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// A placeholder of a file-name pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Queue,
    Date,
    HourMinute,
    HourMinuteSecond,
    From,
    To,
    SessionId,
    RecordingId,
    N,
    Tenant,
    Label,
}

impl Field {
    const ALL: [(&'static str, Field); 11] = [
        ("queue", Field::Queue),
        ("yyyymmdd", Field::Date),
        ("hhmm", Field::HourMinute),
        ("hhmmss", Field::HourMinuteSecond),
        ("from", Field::From),
        ("to", Field::To),
        ("session_id", Field::SessionId),
        ("recording_id", Field::RecordingId),
        ("n", Field::N),
        ("tenant", Field::Tenant),
        ("label", Field::Label),
    ];

    fn named(name: &str) -> Option<Field> {
        Field::ALL
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, field)| *field)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(Field),
}

/// A parsed file-name pattern (without extension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileNamePattern {
    parts: Vec<Part>,
}

/// The values a pattern's placeholders take; a `None` renders as nothing.
#[derive(Clone, Debug, Default)]
pub struct NameFields<'a> {
    pub queue: Option<&'a str>,
    /// The recording's start, in the offset the names should use (UTC unless configured).
    pub started_at: Option<OffsetDateTime>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub recording_id: Option<&'a str>,
    /// The file's number in a download of several (1, 2, …).
    pub n: Option<u32>,
    pub tenant: Option<&'a str>,
    /// A leg's label, for a leg's file.
    pub label: Option<&'a str>,
}

impl FileNamePattern {
    /// Parses `pattern`; every error names the problem.
    pub fn parse(pattern: &str) -> Result<FileNamePattern> {
        let problem = |problem| Error::Pattern {
            pattern: pattern.to_owned(),
            problem,
        };
        if pattern.trim().is_empty() {
            return Err(problem(PatternProblem::Empty));
        }
        let mut parts = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            let literal_end = rest.find(['{', '}']).unwrap_or(rest.len());
            let literal = &rest[..literal_end];
            if literal.contains(['/', '\\']) {
                return Err(problem(PatternProblem::PathSeparator));
            }
            if literal.chars().any(char::is_control) {
                return Err(problem(PatternProblem::ControlCharacter));
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.to_owned()));
            }
            rest = &rest[literal_end..];
            if rest.starts_with('}') {
                return Err(problem(PatternProblem::StrayBrace));
            }
            if let Some(placeholder) = rest.strip_prefix('{') {
                let close = placeholder
                    .find('}')
                    .ok_or_else(|| problem(PatternProblem::Unclosed))?;
                let name = &placeholder[..close];
                let field = Field::named(name)
                    .ok_or_else(|| problem(PatternProblem::UnknownPlaceholder(name.to_owned())))?;
                parts.push(Part::Field(field));
                rest = &placeholder[close + 1..];
            }
        }
        Ok(FileNamePattern { parts })
    }

    /// The file name for `fields`, with `extension` (without the dot) appended: sanitised,
    /// bounded, never empty.
    pub fn render(&self, fields: &NameFields<'_>, extension: &str) -> String {
        let mut name = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => name.push_str(text),
                Part::Field(field) => push_value(&mut name, *field, fields),
            }
        }
        with_extension(&name, extension)
    }
}

impl FromStr for FileNamePattern {
    type Err = Error;

    fn from_str(pattern: &str) -> Result<FileNamePattern> {
        FileNamePattern::parse(pattern)
    }
}

fn push_value(name: &mut String, field: Field, fields: &NameFields<'_>) {
    let text = |value: Option<&str>| value.map(sanitize_value).unwrap_or_default();
    let time = |format: StaticFormatDescription| {
        fields
            .started_at
            .and_then(|at| at.format(format).ok())
            .unwrap_or_default()
    };
    let value = match field {
        Field::Queue => text(fields.queue),
        Field::From => text(fields.from),
        Field::To => text(fields.to),
        Field::SessionId => text(fields.session_id),
        Field::RecordingId => text(fields.recording_id),
        Field::Tenant => text(fields.tenant),
        Field::Label => text(fields.label),
        Field::N => fields.n.map(|n| n.to_string()).unwrap_or_default(),
        Field::Date => time(format_description!("[year][month][day]")),
        Field::HourMinute => time(format_description!("[hour][minute]")),
        Field::HourMinuteSecond => time(format_description!("[hour][minute][second]")),
    };
    name.push_str(&value);
}

/// Whether `c` may stand in a file name as it is.
fn is_safe(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '@')
}

/// `value` with every run of unsafe characters replaced by one `_`.
fn replace_unsafe(value: &str) -> String {
    let mut safe = String::with_capacity(value.len());
    let mut replaced = false;
    for c in value.chars() {
        if is_safe(c) {
            safe.push(c);
            replaced = false;
        } else if !replaced {
            safe.push('_');
            replaced = true;
        }
    }
    safe
}

/// A placeholder's value made safe, at most [`MAX_VALUE_CHARS`] characters.
fn sanitize_value(value: &str) -> String {
    replace_unsafe(value)
        .chars()
        .take(MAX_VALUE_CHARS)
        .collect()
}

/// A whole file name made safe: unsafe characters replaced, no leading dots, no trailing dots
/// or underscores, at most [`MAX_NAME_BYTES`] bytes, never empty; an extension (up to 7
/// characters after the last dot) is kept whole. Used on every name that leaves this crate
/// (zip entries included).
pub fn sanitize_file_name(name: &str) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 8 => {
            with_extension(&name[..dot], &name[dot + 1..])
        }
        _ => with_extension(name, ""),
    }
}

/// `stem` with `.extension` (none if empty), made safe as a whole.
fn with_extension(stem: &str, extension: &str) -> String {
    let extension = replace_unsafe(extension.trim_matches('.'));
    let extension = if extension.is_empty() {
        String::new()
    } else {
        format!(".{extension}")
    };
    bounded(&replace_unsafe(stem), &extension)
}

/// Trims what makes a poor name at either end, cuts the stem so the whole fits
/// [`MAX_NAME_BYTES`], and falls back to [`FALLBACK_NAME`] when nothing is left.
fn bounded(stem: &str, extension: &str) -> String {
    let trimmed = stem
        .trim_start_matches(['.', '_', '-'])
        .trim_end_matches(['.', '_', '-']);
    let budget = MAX_NAME_BYTES.saturating_sub(extension.len());
    let mut end = trimmed.len().min(budget);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    let cut = trimmed[..end].trim_end_matches(['.', '_', '-']);
    let stem = if cut.is_empty() { FALLBACK_NAME } else { cut };
    // Names Windows keeps for devices, whatever the extension: `CON.wav` cannot be extracted.
    let device = stem.split('.').next().unwrap_or(stem).to_ascii_uppercase();
    let reserved = matches!(device.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((device.starts_with("COM") || device.starts_with("LPT"))
            && device.len() == 4
            && device.as_bytes()[3].is_ascii_digit());
    let prefix = if reserved { "_" } else { "" };
    format!("{prefix}{stem}{extension}")
}

/// `Content-Disposition: attachment` for `file_name` (RFC 6266): an ASCII `filename` (other
/// characters as `_`) for old clients, and `filename*` in UTF-8 for the rest.
pub fn content_disposition(file_name: &str) -> HeaderValue {
    let name = sanitize_file_name(file_name);
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut value = format!("attachment; filename=\"{fallback}\"");
    let _ = write!(
        value,
        "; filename*=UTF-8''{}",
        utf8_percent_encode(&name, ATTR_CHAR)
    );
    HeaderValue::try_from(value)
        .expect("printable ASCII (the fallback is ASCII-graphic, the rest percent-encoded)")
}

#[cfg(test)]
mod tests;
