//! SDES-SRTP (RFC 4568): the `a=crypto` lines of an m-line, read into keys the media plane can
//! use, and the choice among them.
//!
//! What a receive-only recorder does with each part of a crypto line:
//! - **Suites**: `AES_CM_128_HMAC_SHA1_80`, `AES_CM_128_HMAC_SHA1_32`, `AEAD_AES_128_GCM`,
//!   `AEAD_AES_256_GCM`. Others (F8, NULL, AES-192/256 counter mode, ARIA) make the line
//!   unusable; the next line is tried.
//! - **Key parameters**: exactly one `inline:` key, base64 with or without padding, as long as the
//!   suite's key and salt. A lifetime is read (`2^31` or decimal) and not enforced: it binds the
//!   sender, who re-keys by re-INVITE. An MKI (`|value:length`) is kept and checked in every
//!   packet. Several keys on one line (MKI-switched keys) are not supported: the line is
//!   unusable.
//! - **Session parameters** (RFC 4568 §6.3): `UNENCRYPTED_SRTCP` is accepted and echoed (we only
//!   authenticate SRTCP, whose E flag says per packet whether it is encrypted). `WSH` (a window
//!   size hint) and `FEC_ORDER`/`FEC_KEY` (we use no FEC) change nothing for us and are
//!   accepted. `KDR` other than 0 (periodic re-derivation), `UNENCRYPTED_SRTP` (media in clear
//!   on a session set up as secure) and `UNAUTHENTICATED_SRTP` (anyone could inject audio) make
//!   the line unusable, as does any unknown parameter not marked optional with a leading `-`.
//!
//! An unusable line is never an error for the offer: it is a [`CryptoDecline`] kept with the
//! line, so the recorder can say why an m-line was declined. Key material is never printed:
//! [`SrtpKeying`]'s `Debug` redacts it, and the `Serialize` of these types omits it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use callvault_types::{Mki, SrtpKeying, SrtpSuite};

use crate::sdp::Media;

/// Standard base64 that accepts keys with or without their `=` padding (both are seen).
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One `a=crypto` line of an offered m-line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CryptoAttribute {
    /// The tag (`1*9DIGIT`), which the answer repeats; 0 when the line is too broken to have one.
    pub tag: u32,
    /// The suite as written, e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub suite: String,
    /// What can be used of it, or why nothing can.
    #[serde(skip)]
    pub usable: Result<CryptoOffer, CryptoDecline>,
}

/// A usable crypto line: what the SRC encrypts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptoOffer {
    /// The SRC's suite, master key and salt, MKI.
    pub keying: SrtpKeying,
    /// `UNENCRYPTED_SRTCP` was offered: echoed in the answer (it applies to both directions).
    pub unencrypted_srtcp: bool,
}

/// Why one crypto line cannot be accepted.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CryptoDecline {
    /// The line does not follow RFC 4568's grammar (the reason says where).
    Malformed(&'static str),
    /// A suite we do not decrypt.
    UnsupportedSuite,
    /// A key method other than `inline`.
    UnsupportedKeyMethod,
    /// Several master keys on one line.
    SeveralKeys,
    /// The key is not base64, or not the suite's length.
    BadKey,
    /// A session parameter we cannot honour (its name).
    UnsupportedParameter(String),
}

impl fmt::Display for CryptoDecline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoDecline::Malformed(reason) => write!(f, "malformed ({reason})"),
            CryptoDecline::UnsupportedSuite => f.write_str("suite not supported"),
            CryptoDecline::UnsupportedKeyMethod => f.write_str("key method is not inline"),
            CryptoDecline::SeveralKeys => f.write_str("several master keys (MKI) not supported"),
            CryptoDecline::BadKey => f.write_str("key is not base64 of the suite's length"),
            CryptoDecline::UnsupportedParameter(name) => {
                write!(f, "session parameter {name} not supported")
            }
        }
    }
}

/// How an m-line's RTP would be protected, from its protocol and attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// `RTP/AVP`, `RTP/AVPF`: plain RTP.
    Plain,
    /// `RTP/SAVP`, `RTP/SAVPF` with keys in `a=crypto` (RFC 4568), or without any key at all.
    Sdes,
    /// `UDP/TLS/RTP/SAVP(F)`, or SAVP with `a=fingerprint` and no `a=crypto`: keys from a DTLS
    /// handshake (RFC 5763/5764), which a recorder that never sends cannot hold.
    DtlsSrtp,
    /// Not RTP at all (`udptl`, `TCP/MSRP`…).
    NotRtp,
}

impl Media {
    /// How this m-line's RTP is protected.
    pub fn protection(&self) -> Protection {
        let protocol = self.protocol.to_ascii_uppercase();
        match protocol.as_str() {
            "UDP/TLS/RTP/SAVP" | "UDP/TLS/RTP/SAVPF" => Protection::DtlsSrtp,
            "RTP/SAVP" | "RTP/SAVPF" if self.crypto.is_empty() && self.fingerprint => {
                Protection::DtlsSrtp
            }
            "RTP/SAVP" | "RTP/SAVPF" => Protection::Sdes,
            other if other.contains("RTP/AVP") => Protection::Plain,
            _ => Protection::NotRtp,
        }
    }
}

/// Why an SDES m-line cannot be recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SrtpDecline {
    /// DTLS-SRTP: not supported.
    DtlsSrtp,
    /// An SRTP m-line without any `a=crypto` line.
    NoCrypto,
    /// Every crypto line is unusable: each one's tag, suite and reason, in offer order.
    NoAcceptableCrypto(Vec<(u32, String, CryptoDecline)>),
}

impl fmt::Display for SrtpDecline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SrtpDecline::DtlsSrtp => f.write_str(
                "DTLS-SRTP (UDP/TLS/RTP/SAVP, a=fingerprint) is not supported: configure SDES-SRTP \
                 (a=crypto) or RTP toward the recorder",
            ),
            SrtpDecline::NoCrypto => f.write_str("SRTP offered without any a=crypto line"),
            SrtpDecline::NoAcceptableCrypto(lines) => {
                f.write_str("no acceptable a=crypto line")?;
                for (index, (tag, suite, reason)) in lines.iter().enumerate() {
                    let separator = if index == 0 { ": " } else { "; " };
                    // The suite comes from outside: printed without control characters.
                    let suite: String =
                        suite.chars().filter(|c| !c.is_control()).take(40).collect();
                    write!(f, "{separator}tag {tag} {suite}: {reason}")?;
                }
                Ok(())
            }
        }
    }
}

/// The crypto line to accept for an SDES m-line: the first usable one in the offer's order (the
/// SRC's preference, RFC 4568 §7.1.2), with its tag.
pub fn choose_crypto(media: &Media) -> Result<(u32, &CryptoOffer), SrtpDecline> {
    if media.protection() == Protection::DtlsSrtp {
        return Err(SrtpDecline::DtlsSrtp);
    }
    if media.crypto.is_empty() {
        return Err(SrtpDecline::NoCrypto);
    }
    if let Some((tag, offer)) = media
        .crypto
        .iter()
        .find_map(|line| line.usable.as_ref().ok().map(|offer| (line.tag, offer)))
    {
        return Ok((tag, offer));
    }
    Err(SrtpDecline::NoAcceptableCrypto(
        media
            .crypto
            .iter()
            .filter_map(|line| {
                line.usable
                    .as_ref()
                    .err()
                    .map(|reason| (line.tag, line.suite.clone(), reason.clone()))
            })
            .collect(),
    ))
}

/// Our side of the answer's `a=crypto` line: the offer's tag, the chosen suite, our own key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerCrypto {
    pub tag: u32,
    /// Our suite (the offer's) and our master key and salt, from a random source the caller
    /// owns. Never used to send (we only receive), but RFC 4568 requires a key of our own.
    pub keying: SrtpKeying,
    /// Echo `UNENCRYPTED_SRTCP`.
    pub unencrypted_srtcp: bool,
}

impl AnswerCrypto {
    /// The attribute value, `<tag> <suite> inline:<base64 key||salt>[ UNENCRYPTED_SRTCP]`.
    pub fn attribute_value(&self) -> String {
        let mut value = format!(
            "{} {} inline:{}",
            self.tag,
            self.keying.suite(),
            general_purpose::STANDARD.encode(self.keying.key_and_salt())
        );
        if self.unencrypted_srtcp {
            value.push_str(" UNENCRYPTED_SRTCP");
        }
        value
    }
}

/// Parses the value of one `a=crypto` attribute (after `crypto:`). Never panics.
pub(crate) fn parse_crypto(value: &str) -> CryptoAttribute {
    let mut fields = value.split_ascii_whitespace();
    let tag_field = fields.next().unwrap_or_default();
    let suite = fields.next().unwrap_or_default();
    let tag = tag_field.parse::<u32>().ok().filter(|_| {
        (1..=9).contains(&tag_field.len()) && tag_field.bytes().all(|b| b.is_ascii_digit())
    });
    let usable = match tag {
        None => Err(CryptoDecline::Malformed("tag is not 1-9 digits")),
        Some(_) if suite.is_empty() => Err(CryptoDecline::Malformed("no suite")),
        Some(_) => match suite.parse::<SrtpSuite>() {
            Err(_) => Err(CryptoDecline::UnsupportedSuite),
            Ok(suite) => fields
                .next()
                .ok_or(CryptoDecline::Malformed("no key parameters"))
                .and_then(|keys| parse_key_params(suite, keys))
                .and_then(|keying| {
                    let unencrypted_srtcp = parse_session_params(fields)?;
                    Ok(CryptoOffer {
                        keying,
                        unencrypted_srtcp,
                    })
                }),
        },
    };
    CryptoAttribute {
        tag: tag.unwrap_or(0),
        suite: suite.chars().take(64).collect(),
        usable,
    }
}

/// `inline:<key||salt>[|lifetime][|MKI:length]`, one key only.
fn parse_key_params(suite: SrtpSuite, keys: &str) -> Result<SrtpKeying, CryptoDecline> {
    if keys.contains(';') {
        return Err(CryptoDecline::SeveralKeys);
    }
    let (method, info) = keys
        .split_once(':')
        .ok_or(CryptoDecline::Malformed("key parameter without method"))?;
    if !method.eq_ignore_ascii_case("inline") {
        return Err(CryptoDecline::UnsupportedKeyMethod);
    }
    let mut parts = info.split('|');
    let key = parts.next().unwrap_or_default();
    let mut mki = None;
    let mut lifetime_seen = false;
    for part in parts {
        if let Some((value, length)) = part.split_once(':') {
            if mki.is_some() {
                return Err(CryptoDecline::Malformed("two MKIs"));
            }
            mki = Some(parse_mki(value, length)?);
        } else if !lifetime_seen && mki.is_none() {
            parse_lifetime(part)?;
            lifetime_seen = true;
        } else {
            return Err(CryptoDecline::Malformed("unexpected key field"));
        }
    }
    // Longest base64 key of any suite: 46 bytes → 64 characters; refuse more before decoding.
    if key.is_empty() || key.len() > 64 {
        return Err(CryptoDecline::BadKey);
    }
    let bytes = KEY_BASE64.decode(key).map_err(|_| CryptoDecline::BadKey)?;
    let keying = SrtpKeying::new(suite, &bytes).map_err(|_| CryptoDecline::BadKey)?;
    Ok(keying.with_mki(mki))
}

/// `2^n` (n ≤ 48) or a decimal packet count (RFC 4568 §6.1). Read to reject nonsense; the limit
/// binds the sender and is not enforced here.
fn parse_lifetime(lifetime: &str) -> Result<(), CryptoDecline> {
    let valid = match lifetime.strip_prefix("2^") {
        Some(power) => power.len() <= 2 && power.parse::<u8>().is_ok_and(|n| n <= 48),
        None => {
            lifetime.len() <= 15
                && lifetime.bytes().all(|b| b.is_ascii_digit())
                && lifetime.parse::<u64>().is_ok_and(|n| n > 0 && n <= 1 << 48)
        }
    };
    if valid {
        Ok(())
    } else {
        Err(CryptoDecline::Malformed("bad lifetime"))
    }
}

/// `value:length`: a decimal value that fits in `length` (1-128) bytes.
fn parse_mki(value: &str, length: &str) -> Result<Mki, CryptoDecline> {
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(value, 20) || !digits(length, 3) {
        return Err(CryptoDecline::Malformed("bad MKI"));
    }
    let value = value
        .parse::<u64>()
        .map_err(|_| CryptoDecline::Malformed("MKI value too large"))?;
    let length = length
        .parse::<u8>()
        .ok()
        .filter(|length| (1..=128).contains(length))
        .ok_or(CryptoDecline::Malformed("MKI length not 1-128"))?;
    if length < 8 && value >> (8 * u32::from(length)) != 0 {
        return Err(CryptoDecline::Malformed("MKI value longer than its length"));
    }
    Ok(Mki { value, length })
}

/// The session parameters; `Ok(true)` when `UNENCRYPTED_SRTCP` is among them.
fn parse_session_params<'a>(params: impl Iterator<Item = &'a str>) -> Result<bool, CryptoDecline> {
    let mut unencrypted_srtcp = false;
    for param in params {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        match name {
            "UNENCRYPTED_SRTCP" => unencrypted_srtcp = true,
            // Re-derivation every 2^n packets; 0 (not in the grammar, but sent) means none.
            "KDR" if value == "0" => {}
            "WSH" | "FEC_ORDER" | "FEC_KEY" => {}
            // RFC 4568 §6.3: a parameter starting with '-' may be ignored when not understood.
            optional if optional.starts_with('-') => {}
            other => {
                return Err(CryptoDecline::UnsupportedParameter(
                    other.chars().filter(|c| !c.is_control()).take(32).collect(),
                ));
            }
        }
    }
    Ok(unencrypted_srtcp)
}

#[cfg(test)]
mod tests;
