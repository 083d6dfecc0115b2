//! The SRC's side of SDES-SRTP, played by an implementation independent of the server's:
//! `webrtc-srtp` encrypts what the test client sends, keyed from the `a=crypto` line the client
//! put in its INVITE (parsed back from the offer's text, so the key on the wire is the key used).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

/// The SDES suites, as RFC 4568 and RFC 7714 name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
    AeadAes128Gcm,
    AeadAes256Gcm,
}

impl Suite {
    const ALL: [Suite; 4] = [
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
        Suite::AeadAes128Gcm,
        Suite::AeadAes256Gcm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Suite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            Suite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            Suite::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
        }
    }

    /// Master key and master salt lengths in bytes.
    fn lengths(self) -> (usize, usize) {
        let profile = self.profile();
        (profile.key_len(), profile.salt_len())
    }

    /// A fresh master key and salt (from v4 UUIDs: random enough for a test key).
    pub fn new_key(self) -> Vec<u8> {
        let (key, salt) = self.lengths();
        let mut bytes: Vec<u8> = (0..3)
            .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
            .collect();
        bytes.truncate(key + salt);
        bytes
    }
}

/// The value of an `a=crypto` attribute: `<tag> <suite> inline:<base64 key||salt>`.
pub fn crypto_value(tag: u32, suite: Suite, key_and_salt: &[u8]) -> String {
    format!(
        "{tag} {} inline:{}",
        suite.name(),
        STANDARD.encode(key_and_salt)
    )
}

/// The suite and key of an `a=crypto` value (lifetime and MKI, if any, ignored).
pub fn parse_crypto(value: &str) -> (u32, Suite, Vec<u8>) {
    let mut fields = value.split_whitespace();
    let tag = fields.next().and_then(|t| t.parse().ok()).expect("a tag");
    let name = fields.next().expect("a suite");
    let suite = Suite::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("unknown suite {name}"));
    let inline = fields
        .next()
        .and_then(|k| k.strip_prefix("inline:"))
        .expect("an inline key");
    let key = STANDARD
        .decode(inline.split('|').next().unwrap())
        .expect("base64");
    (tag, suite, key)
}

/// A sending context for the key in an `a=crypto` value.
pub fn sender_for(value: &str) -> Context {
    let (_, suite, key) = parse_crypto(value);
    let (key_len, _) = suite.lengths();
    Context::new(
        &key[..key_len],
        &key[key_len..],
        suite.profile(),
        None,
        None,
    )
    .expect("the offered key fits its suite")
}

/// The `a=crypto` values of each m-line of an SDP, in order (one list per m-line).
pub fn crypto_lines(sdp: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            out.push(Vec::new());
        } else if let (Some(value), Some(media)) = (line.strip_prefix("a=crypto:"), out.last_mut())
        {
            media.push(value.to_owned());
        }
    }
    out
}
