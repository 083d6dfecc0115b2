//! SDP rewriting for the relay: what one side offers or answers goes to the other side with
//! callvault's address and relay port in it, so that both sides send their media to us.
//!
//! Text in, text out, line by line: the B2BUA relays the rest of each side's SDP as written
//! (codecs, payload types, ptime, direction, telephone-event, `o=` versions), which a typed
//! round trip could reorder or lose. Only what routes media is changed.

use std::net::IpAddr;

/// `sdp` as the other side must see it: every `c=` and the `o=` address are ours, the first
/// audio m-line's port is `port` (others are declined, port 0: one audio stream is relayed),
/// and the lines that would send media around us (`a=rtcp:` with its own address, ICE) are
/// dropped. `c=` of `0.0.0.0` (hold, RFC 2543) is kept: it means "send nothing". The relayed
/// m-line's `a=crypto` lines are the other side's keys, never passed on: `crypto` (our own lines
/// toward this side, see `sdes`) takes their place, right after the m-line.
pub(crate) fn rewrite(sdp: &[u8], ip: IpAddr, port: u16, crypto: &[String]) -> Vec<u8> {
    let text = String::from_utf8_lossy(sdp);
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut out = String::with_capacity(text.len() + 32);
    let mut audio_done = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("m=") {
            let mut fields = rest.splitn(3, ' ');
            let (kind, media_port, tail) = (
                fields.next().unwrap_or(""),
                fields.next().unwrap_or("0"),
                fields.next().unwrap_or(""),
            );
            let relayed = kind == "audio" && !audio_done && media_port != "0";
            if relayed {
                audio_done = true;
                out.push_str(&format!("m={kind} {port} {tail}\r\n"));
                for line in crypto {
                    out.push_str(&format!("a=crypto:{line}\r\n"));
                }
            } else {
                out.push_str(&format!("m={kind} 0 {tail}\r\n"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("c=") {
            let held = rest
                .rsplit(' ')
                .next()
                .is_some_and(|addr| addr.split('/').next() == Some("0.0.0.0"));
            if held {
                out.push_str(line);
            } else {
                out.push_str(&format!("c=IN {family} {ip}"));
            }
            out.push_str("\r\n");
            continue;
        }
        if let Some(rest) = line.strip_prefix("o=") {
            let mut fields: Vec<&str> = rest.split(' ').collect();
            let ours = ip.to_string();
            if fields.len() == 6 {
                fields[4] = family;
                fields[5] = &ours;
                out.push_str(&format!("o={}\r\n", fields.join(" ")));
            } else {
                out.push_str(line);
                out.push_str("\r\n");
            }
            continue;
        }
        let dropped = [
            "a=rtcp:",
            "a=candidate",
            "a=ice-",
            "a=end-of-candidates",
            "a=remote-candidates",
        ]
        .iter()
        .any(|prefix| line.starts_with(prefix));
        if dropped || line.starts_with("a=crypto") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// Whether a message body is SDP.
pub(crate) fn is_sdp(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/sdp")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_the_audio_port_become_ours_and_the_rest_is_kept() {
        let offer = b"v=0\r\no=alice 2890844526 2890844527 IN IP4 10.0.0.1\r\ns=-\r\n\
c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n\
a=rtcp:49171 IN IP4 10.0.0.1\r\na=candidate:1 1 UDP 1 10.0.0.1 49170 typ host\r\na=sendrecv\r\n\
m=video 51372 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        let out =
            String::from_utf8(rewrite(offer, "198.51.100.5".parse().unwrap(), 40002, &[])).unwrap();
        assert_eq!(
            out,
            "v=0\r\no=alice 2890844526 2890844527 IN IP4 198.51.100.5\r\ns=-\r\n\
c=IN IP4 198.51.100.5\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        );
    }

    #[test]
    fn a_hold_address_stays_and_garbage_does_not_panic() {
        let hold = b"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 49170 RTP/AVP 0\r\na=sendonly\r\n";
        let out =
            String::from_utf8(rewrite(hold, "192.0.2.1".parse().unwrap(), 40000, &[])).unwrap();
        assert!(out.contains("c=IN IP4 0.0.0.0\r\n"));
        assert!(out.contains("m=audio 40000 RTP/AVP 0\r\n"));
        for garbage in [&b"m="[..], b"o=", b"c=", b"\xff\xfe m=audio", b""] {
            let _ = rewrite(garbage, "192.0.2.1".parse().unwrap(), 40000, &[]);
        }
    }

    #[test]
    fn the_other_sides_keys_are_replaced_by_ours() {
        let offer = b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 49170 RTP/SAVP 0\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:THEIRS\r\na=sendrecv\r\n\
m=audio 49172 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:OTHER\r\n";
        let ours = ["1 AES_CM_128_HMAC_SHA1_80 inline:OURS".to_owned()];
        let out =
            String::from_utf8(rewrite(offer, "192.0.2.1".parse().unwrap(), 40000, &ours)).unwrap();
        assert_eq!(
            out,
            "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 40000 RTP/SAVP 0\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:OURS\r\na=sendrecv\r\nm=audio 0 RTP/SAVP 0\r\n"
        );
    }
}
