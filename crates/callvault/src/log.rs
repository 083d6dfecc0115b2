//! The log: one line per event on standard error, with every control character that reached it
//! from the network escaped.
//!
//! Call-IDs, labels, display names, reason phrases and error texts come from outside; printed
//! raw, an ESC sequence in one of them rewrites the operator's terminal, and a CR or LF forges
//! log lines. Escaping at the writer covers every field of every crate's log lines at once,
//! instead of trusting each call site to remember.

use std::io::{self, Write};

/// Writes formatted log lines, each control character (C0, DEL, C1) but the line's own final
/// newline replaced by a visible escape (`\x1b`, `\u{9b}`).
pub struct Escaping<W>(pub W);

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(&escape(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn escape(buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len());
    let mut bytes = buf.iter().copied().enumerate().peekable();
    while let Some((index, byte)) = bytes.next() {
        let line_end = byte == b'\n' && index + 1 == buf.len();
        match byte {
            b'\t' => out.push(byte),
            _ if line_end => out.push(byte),
            0x00..=0x1f | 0x7f => {
                let _ = write!(out, "\\x{byte:02x}");
            }
            // U+0080..U+009F in UTF-8: C1 controls (CSI is U+009B).
            0xc2 if bytes
                .peek()
                .is_some_and(|(_, next)| (0x80..=0x9f).contains(next)) =>
            {
                let (_, next) = bytes.next().expect("peeked just above");
                let _ = write!(out, "\\u{{{next:x}}}");
            }
            _ => out.push(byte),
        }
    }
    out
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
}
