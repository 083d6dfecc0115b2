//! The log: one line per event on standard error, with every control character that reached it
//! from the network escaped.
//!
//! Call-IDs, labels, display names, reason phrases and error texts come from outside; printed
//! raw, an ESC sequence in one of them rewrites the operator's terminal, and a CR or LF forges
//! log lines. Escaping at the writer covers every field of every crate's log lines at once,
//! instead of trusting each call site to remember.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

/// Writes formatted log lines, each control character (C0, DEL, C1) but the line's own final
/// newline replaced by a visible escape (`\x1b`, `\u{9b}`).
pub struct Escaping<W>(pub W);

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (line, newline) = match buf.strip_suffix(b"\n") {
            Some(line) => (line, true),
            None => (buf, false),
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
    fn json_keeps_its_value_but_loses_raw_c1_and_del() {
        let value = serde_json::json!({"label": "a\u{9b}2J\u{7f}\u{1b}b\u{e9}"});
        let json = escape_json(serde_json::to_string(&value).unwrap());
        assert!(!json.chars().any(char::is_control), "{json:?}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back, value);
    }
}
