//! The log: one line per event on standard error — `key=value` text or one JSON object — with
//! every control character that reached it from the network escaped and the password of every
//! URL in it hidden. The filter can be replaced while running (SIGHUP, see `reload.rs`); the
//! format is chosen once, at start.
//!
//! Call-IDs, labels, display names, reason phrases and error texts come from outside; printed
//! raw, an ESC sequence in one of them rewrites the operator's terminal, and a CR or LF forges
//! log lines. A database URL's password reaches error texts (a driver's, or a TOML parser
//! quoting the line). Doing both at the writer covers every field of every crate's log lines at
//! once, instead of trusting each call site to remember; the CLI's error output goes through
//! the same two functions.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Deserialize;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// How each log line is written (`--log-format`, `[log] format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-12-03T06:00:00Z  INFO callvault::recorder: answered: recording call_id=… recording_id=…`
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and every field of
    /// the event (`call_id`, `recording_id`, …) at the top level, for log shippers.
    Json,
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Replaces the log filter of the running process.
#[derive(Clone)]
pub struct FilterHandle(reload::Handle<EnvFilter, Registry>);

impl FilterHandle {
    /// Parses `directives` (an `EnvFilter`: `info`, `warn,callvault::recorder=debug`) and uses
    /// it from now on; a bad one changes nothing.
    pub fn set(&self, directives: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        self.0.reload(filter).map_err(|e| e.to_string())
    }
}

/// Starts the log on standard error with `directives` (an `EnvFilter`; a bad one falls back
/// to `info` and says so) in `format`. Once per process.
pub fn init(format: LogFormat, directives: &str) -> FilterHandle {
    let (filter, bad) = match EnvFilter::try_new(directives) {
        Ok(filter) => (filter, None),
        Err(e) => (EnvFilter::new("info"), Some(e.to_string())),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(|| Escaping(io::stderr()))
                    .with_ansi(false),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(|| JsonEscaping(io::stderr())),
            )
            .init(),
    }
    if let Some(error) = bad {
        tracing::warn!(filter = directives, %error, "bad log filter: using info");
    }
    FilterHandle(handle)
}

/// Writes JSON log lines with the user info of URLs hidden ([`redact_urls`]) and DEL and the
/// C1 controls written as `\u` escapes ([`escape_json`]); serde_json has escaped the C0 ones
/// (a CR or LF inside a value never splits the line).
pub struct JsonEscaping<W>(pub W);

impl<W: Write> Write for JsonEscaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => {
                let text = escape_json(redact_urls(text).into_owned());
                self.0.write_all(text.as_bytes())?;
            }
            // The formatter writes UTF-8 only; anything else is escaped like a text line.
            Err(_) => Escaping(&mut self.0).write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Writes formatted log lines, each control character (C0, DEL, C1) but the line's own final
/// newline replaced by a visible escape (`\x1b`, `\u{9b}`), and URLs' user info hidden
/// ([`redact_urls`]).
pub struct Escaping<W>(pub W);

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (line, newline) = match buf.strip_suffix(b"\n") {
            Some(line) => (line, true),
            None => (buf, false),
        };
        let redacted;
        let line = match std::str::from_utf8(line) {
            Ok(text) if text.contains("://") => {
                redacted = redact_urls(text);
                redacted.as_bytes()
            }
            _ => line,
        };
        let mut out = Vec::with_capacity(buf.len());
        escape_into(&mut out, line);
        if newline {
            out.push(b'\n');
        }
        self.0.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `text` with every control character (C0 but tab, DEL, C1; newlines too) replaced by a
/// visible escape, as the log writes it: for whatever the CLI prints that came from outside
/// (labels, Call-IDs, display names, reasons).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len() + 8);
    escape_into(&mut out, text.as_bytes());
    Cow::Owned(
        String::from_utf8(out)
            .expect("escaping replaces whole ASCII controls and whole C1 characters by ASCII"),
    )
}

/// `json` (serde_json's output) with DEL and the C1 controls written as `\u` escapes too:
/// serde_json escapes only C0, and a raw U+009B is a CSI to many terminals. Valid JSON still,
/// since those characters can only stand inside strings.
pub fn escape_json(json: String) -> String {
    if !json.chars().any(|c| ('\u{7f}'..='\u{9f}').contains(&c)) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if ('\u{7f}'..='\u{9f}').contains(&c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` with the user info of every URL in it replaced by `***`
/// (`postgres://vault:secret@db/cv` → `postgres://***@db/cv`): for error texts and log lines,
/// which may quote a database URL.
///
/// The same rule as `callvault_catalog::redact_url`, applied to each URL found in running
/// text: a URL runs to the next space, quote or line break, and its user info ends at its last
/// '@', not at the first '/', '?' or '#' (people write passwords holding those unencoded).
pub fn redact_urls(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let url_end = after
            .find([' ', '\t', '"', '\'', '`', '\n', '\r'])
            .unwrap_or(after.len());
        match after[..url_end].rfind('@') {
            Some(user_end) => {
                out.push_str("***");
                out.push_str(&after[user_end..url_end]);
            }
            None => out.push_str(&after[..url_end]),
        }
        rest = &after[url_end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn is_escaped(c: char) -> bool {
    c != '\t' && c.is_control()
}

fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut bytes = bytes.iter().copied().peekable();
    while let Some(byte) = bytes.next() {
        match byte {
            b'\t' => out.push(byte),
            0x00..=0x1f | 0x7f => {
                let _ = io::Write::write_fmt(out, format_args!("\\x{byte:02x}"));
            }
            // U+0080..U+009F in UTF-8: C1 controls (CSI is U+009B).
            0xc2 if bytes
                .peek()
                .is_some_and(|next| (0x80..=0x9f).contains(next)) =>
            {
                let next = bytes.next().expect("peeked just above");
                let _ = io::Write::write_fmt(out, format_args!("\\u{{{next:x}}}"));
            }
            _ => out.push(byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_but_the_line_and_text_stay() {
        let line = "INVITE call_id=abc\x1b[31mred\r\nFAKE LINE label=caf\u{e9}\u{9b}2J\x7f\tok\n";
        let mut out = Vec::new();
        Escaping(&mut out).write_all(line.as_bytes()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "INVITE call_id=abc\\x1b[31mred\\x0d\\x0aFAKE LINE label=caf\u{e9}\\u{9b}2J\\x7f\tok\n"
        );
        assert_eq!(text.lines().count(), 1, "one event stays one line");
    }

    #[test]
    fn cli_text_is_escaped_newlines_included_and_plain_text_borrowed() {
        assert!(matches!(escape("sip:alice@example.com"), Cow::Borrowed(_)));
        assert_eq!(
            escape("lab\x1b]0;owned\x07el\r\nx\u{9b}2Jcaf\u{e9}\t"),
            "lab\\x1b]0;owned\\x07el\\x0d\\x0ax\\u{9b}2Jcaf\u{e9}\t"
        );
    }

    #[test]
    fn urls_lose_their_user_info_wherever_they_stand() {
        assert_eq!(
            redact_urls(
                "cannot reach postgres://vault:s3cr@t@db:5432/cv?x=1 (refused) or ftp://a@b"
            ),
            "cannot reach postgres://***@db:5432/cv?x=1 (refused) or ftp://***@b"
        );
        assert_eq!(
            redact_urls("sqlite:///var/lib/cv.db"),
            "sqlite:///var/lib/cv.db"
        );
        assert_eq!(redact_urls("no url here"), "no url here");
        assert!(matches!(redact_urls("no url here"), Cow::Borrowed(_)));
        assert_eq!(
            redact_urls("bad url \"postgres://vault:p#s/s?w@rd@db:5432/cv\": invalid port"),
            "bad url \"postgres://***@db:5432/cv\": invalid port"
        );
        // A log line: the password is gone, the rest of the line stays.
        let mut out = Vec::new();
        Escaping(&mut out)
            .write_all(b"WARN catalog url=postgres://vault:s3/c#r?t@db:5432/cv error=refused\n")
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "WARN catalog url=postgres://***@db:5432/cv error=refused\n"
        );
    }

    #[test]
    fn a_json_line_stays_one_valid_object_without_raw_controls_or_passwords() {
        let value = serde_json::json!({
            "message": "catalog unreachable",
            "call_id": "abc\u{1b}[31m\r\n{\"forged\":1}\u{9b}2J",
            "url": "postgres://vault:s3cr3t@db:5432/cv",
        });
        let mut line = serde_json::to_string(&value).unwrap();
        line.push('\n');
        let mut out = Vec::new();
        JsonEscaping(&mut out).write_all(line.as_bytes()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(text.ends_with('\n'));
        assert!(!text.trim_end().chars().any(char::is_control), "{text:?}");
        let back: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(back["call_id"], value["call_id"], "the value survives");
        assert_eq!(back["url"], "postgres://***@db:5432/cv");
        assert!(!text.contains("s3cr3t"));
    }

    #[test]
    fn the_format_reads_from_toml_and_the_command_line() {
        #[derive(Deserialize)]
        struct T {
            format: LogFormat,
        }
        let t: T = toml::from_str("format = \"json\"").unwrap();
        assert_eq!(t.format, LogFormat::Json);
        assert!(toml::from_str::<T>("format = \"xml\"").is_err());
        use clap::ValueEnum as _;
        assert_eq!(LogFormat::from_str("text", false).unwrap(), LogFormat::Text);
    }

    #[test]
    fn json_keeps_its_value_but_loses_raw_c1_and_del() {
        let value = serde_json::json!({"label": "a\u{9b}2J\u{7f}\u{1b}b\u{e9}"});
        let json = escape_json(serde_json::to_string(&value).unwrap());
        assert!(!json.chars().any(char::is_control), "{json:?}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back, value);
    }
}
