//! Framing SIP on stream transports (RFC 3261 §18.3): a message ends where its Content-Length
//! says; CRLF keep-alives (RFC 5626 §3.5.1) may come between messages.

use crate::error::{Error, Result};
use crate::message::{content_length, find_head_end, header_lines_lenient};
use bytes::{Buf, Bytes, BytesMut};

/// What a stream yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// One whole SIP message, ready for `Endpoint::handle_input`.
    Message(Bytes),
    /// A double-CRLF keep-alive ping: answer a single CRLF (the pong).
    Ping,
}

/// Takes the next frame off the front of `buf`: `Ok(None)` until one is complete. Single CRLFs
/// (pongs, stray line ends) are skipped. Errors mean the stream cannot be resynchronised and
/// must be closed: a head or message larger than `max`, a missing or bad Content-Length.
pub fn take_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>> {
    loop {
        if buf.starts_with(b"\r\n\r\n") {
            buf.advance(4);
            return Ok(Some(Frame::Ping));
        }
        match buf.first() {
            // A CRLF that could still become a ping: wait for more.
            Some(b'\r') if buf.len() < 4 && buf.iter().all(|b| *b == b'\r' || *b == b'\n') => {
                return Ok(None);
            }
            Some(b'\r') if buf.get(1) == Some(&b'\n') => buf.advance(2),
            Some(b'\n') => buf.advance(1),
            Some(_) => break,
            None => return Ok(None),
        }
    }
    let Some((head_end, body_start)) = find_head_end(buf) else {
        if buf.len() > max {
            return Err(Error::TooLarge {
                size: buf.len(),
                max,
            });
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let headers = header_lines_lenient(&head);
    let length = content_length(&headers)?.ok_or(Error::MissingContentLength)?;
    let total = body_start.saturating_add(length);
    if total > max {
        return Err(Error::TooLarge { size: total, max });
    }
    if buf.len() < total {
        // Make room once for the whole message instead of growing read by read.
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    Ok(Some(Frame::Message(buf.split_to(total).freeze())))
}

/// Like [`take_frame`], skipping keep-alives.
#[cfg(test)]
fn take_message(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>> {
    loop {
        match take_frame(buf, max)? {
            Some(Frame::Message(m)) => return Ok(Some(m)),
            Some(Frame::Ping) => continue,
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> String {
        format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn two_messages_in_one_read() {
        let (a, b) = (msg("hello"), msg(""));
        let mut buf = BytesMut::from(format!("{a}{b}").as_bytes());
        assert_eq!(
            take_message(&mut buf, 65535).unwrap().unwrap(),
            a.as_bytes()
        );
        assert_eq!(
            take_message(&mut buf, 65535).unwrap().unwrap(),
            b.as_bytes()
        );
        assert_eq!(take_message(&mut buf, 65535).unwrap(), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn one_message_over_many_reads() {
        let a = msg("v=0\r\n\r\nbody with a blank line");
        let mut buf = BytesMut::new();
        for (i, byte) in a.bytes().enumerate() {
            assert_eq!(take_message(&mut buf, 65535).unwrap(), None, "at {i}");
            buf.extend_from_slice(&[byte]);
        }
        assert_eq!(
            take_message(&mut buf, 65535).unwrap().unwrap(),
            a.as_bytes()
        );
    }

    #[test]
    fn keepalives_between_messages() {
        let a = msg("x");
        let mut buf = BytesMut::from(format!("\r\n\r\n{a}\r\n").as_bytes());
        assert_eq!(take_frame(&mut buf, 65535).unwrap(), Some(Frame::Ping));
        assert_eq!(
            take_frame(&mut buf, 65535).unwrap(),
            Some(Frame::Message(Bytes::from(a.clone())))
        );
        // A lone CRLF (a pong) waits, then is skipped when a message follows.
        assert_eq!(take_frame(&mut buf, 65535).unwrap(), None);
        buf.extend_from_slice(a.as_bytes());
        assert_eq!(
            take_message(&mut buf, 65535).unwrap().unwrap(),
            a.as_bytes()
        );
    }

    #[test]
    fn content_length_in_any_case_and_form() {
        let m = "BYE sip:a@b SIP/2.0\r\ncontent-LENGTH:   3\r\n\r\nabcBYE";
        let mut buf = BytesMut::from(m.as_bytes());
        assert_eq!(
            take_message(&mut buf, 65535).unwrap().unwrap(),
            &m.as_bytes()[..m.len() - 3]
        );
        assert_eq!(&buf[..], b"BYE");
    }

    #[test]
    fn oversize_and_missing_length_are_errors() {
        let mut buf = BytesMut::from(msg(&"x".repeat(100)).as_bytes());
        assert!(matches!(
            take_message(&mut buf, 80),
            Err(Error::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&b"INVITE sip:a@b SIP/2.0\r\nVia: x"[..]);
        buf.extend_from_slice(&[b'a'; 100]);
        assert!(matches!(
            take_message(&mut buf, 80),
            Err(Error::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&b"BYE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"[..]);
        assert!(matches!(
            take_message(&mut buf, 800),
            Err(Error::MissingContentLength)
        ));
        let mut buf = BytesMut::from(&b"BYE sip:a@b SIP/2.0\r\nl: -1\r\n\r\n"[..]);
        assert!(matches!(take_message(&mut buf, 800), Err(Error::Parse(_))));
    }
}
