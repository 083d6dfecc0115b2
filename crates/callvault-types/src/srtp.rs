//! SRTP keying shared by the SDP layer (which reads it from `a=crypto`) and the media plane
//! (which decrypts with it): the suite, the master key and salt, the MKI. Defined here so that
//! neither crate depends on the other, and so that the key has one type whose `Debug` never
//! shows it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::vocabulary::UnknownName;

/// The SRTP protection suites callvault decrypts: RFC 4568 §6.2 (AES counter mode with an
/// HMAC-SHA1 tag of 80 or 32 bits) and RFC 7714 §14.2 (AES-GCM). Named as SDES writes them.
/// Exhaustive on purpose: a new suite must be handled wherever suites are matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SrtpSuite {
    #[serde(rename = "AES_CM_128_HMAC_SHA1_80")]
    AesCm128HmacSha1_80,
    #[serde(rename = "AES_CM_128_HMAC_SHA1_32")]
    AesCm128HmacSha1_32,
    #[serde(rename = "AEAD_AES_128_GCM")]
    AeadAes128Gcm,
    #[serde(rename = "AEAD_AES_256_GCM")]
    AeadAes256Gcm,
}

impl SrtpSuite {
    /// Every suite, in the order callvault prefers them when nothing else decides.
    pub const ALL: &'static [SrtpSuite] = &[
        SrtpSuite::AeadAes256Gcm,
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ];

    /// The SDES name (`AES_CM_128_HMAC_SHA1_80`…).
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80
            | SrtpSuite::AesCm128HmacSha1_32
            | SrtpSuite::AeadAes128Gcm => 16,
            SrtpSuite::AeadAes256Gcm => 32,
        }
    }

    /// Master salt length in bytes: 112 bits for counter mode (RFC 3711), 96 for GCM (RFC 7714).
    pub fn salt_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm128HmacSha1_32 => 14,
            SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm => 12,
        }
    }

    /// True for the AEAD (GCM) suites, whose tag is part of the ciphertext.
    pub fn is_aead(self) -> bool {
        matches!(self, SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm)
    }
}

impl fmt::Display for SrtpSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SrtpSuite {
    type Err = UnknownName;

    /// Suite names are case-sensitive in RFC 4568's grammar, but they are tokens compared by
    /// SBCs without regard to case in practice: accept any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SrtpSuite::ALL
            .iter()
            .copied()
            .find(|suite| suite.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownName {
                kind: "SRTP suite",
                name: s.to_owned(),
            })
    }
}

/// The longest master key and salt of any suite: 32 + 14 bytes.
const MAX_MASTER_LEN: usize = 46;

/// A master key whose length is not its suite's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{suite} takes {expected} bytes of key and salt, got {got}")]
pub struct KeyLengthError {
    pub suite: SrtpSuite,
    pub expected: usize,
    pub got: usize,
}

/// An RFC 3711 master key identifier as SDES gives it (`|MKI:length`): every packet carries
/// `length` bytes holding `value` (big-endian) between the payload and the tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mki {
    pub value: u64,
    /// 1 to 128 bytes (RFC 4568 §9.2).
    pub length: u8,
}

/// What one side protects its SRTP with: a suite, its master key and salt, and the MKI its
/// packets carry, if any. `Debug` prints the suite only: keys never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeying {
    suite: SrtpSuite,
    master: [u8; MAX_MASTER_LEN],
    mki: Option<Mki>,
}

impl SrtpKeying {
    /// `key_and_salt` is the `inline:` key after base64 decoding: the master key followed by the
    /// master salt, exactly as long as the suite says.
    pub fn new(suite: SrtpSuite, key_and_salt: &[u8]) -> Result<SrtpKeying, KeyLengthError> {
        let expected = suite.key_len() + suite.salt_len();
        if key_and_salt.len() != expected {
            return Err(KeyLengthError {
                suite,
                expected,
                got: key_and_salt.len(),
            });
        }
        let mut master = [0; MAX_MASTER_LEN];
        master[..expected].copy_from_slice(key_and_salt);
        Ok(SrtpKeying {
            suite,
            master,
            mki: None,
        })
    }

    /// The same keying with packets carrying `mki`.
    pub fn with_mki(mut self, mki: Option<Mki>) -> SrtpKeying {
        self.mki = mki;
        self
    }

    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    pub fn master_key(&self) -> &[u8] {
        &self.master[..self.suite.key_len()]
    }

    pub fn master_salt(&self) -> &[u8] {
        let key = self.suite.key_len();
        &self.master[key..key + self.suite.salt_len()]
    }

    /// Key then salt, as `inline:` carries them (before base64).
    pub fn key_and_salt(&self) -> &[u8] {
        &self.master[..self.suite.key_len() + self.suite.salt_len()]
    }

    pub fn mki(&self) -> Option<Mki> {
        self.mki
    }
}

impl fmt::Debug for SrtpKeying {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpKeying")
            .field("suite", &self.suite)
            .field("master", &"<redacted>")
            .field("mki", &self.mki)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_names_round_trip_in_any_case() {
        for suite in SrtpSuite::ALL {
            assert_eq!(suite.as_str().parse::<SrtpSuite>(), Ok(*suite));
            assert_eq!(
                suite.as_str().to_ascii_lowercase().parse::<SrtpSuite>(),
                Ok(*suite)
            );
            assert_eq!(
                serde_json::to_value(suite).unwrap(),
                serde_json::Value::String(suite.as_str().to_owned())
            );
        }
        assert!("AES_CM_256_HMAC_SHA1_80".parse::<SrtpSuite>().is_err());
        assert!("F8_128_HMAC_SHA1_80".parse::<SrtpSuite>().is_err());
    }

    #[test]
    fn keying_splits_key_and_salt_and_checks_the_length() {
        let bytes: Vec<u8> = (0..30).collect();
        let keying = SrtpKeying::new(SrtpSuite::AesCm128HmacSha1_80, &bytes).unwrap();
        assert_eq!(keying.master_key(), &bytes[..16]);
        assert_eq!(keying.master_salt(), &bytes[16..]);
        assert_eq!(keying.key_and_salt(), &bytes[..]);
        let gcm: Vec<u8> = (0..44).collect();
        let keying = SrtpKeying::new(SrtpSuite::AeadAes256Gcm, &gcm).unwrap();
        assert_eq!(
            (keying.master_key().len(), keying.master_salt().len()),
            (32, 12)
        );
        assert_eq!(
            SrtpKeying::new(SrtpSuite::AeadAes128Gcm, &bytes),
            Err(KeyLengthError {
                suite: SrtpSuite::AeadAes128Gcm,
                expected: 28,
                got: 30
            })
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let keying = SrtpKeying::new(SrtpSuite::AesCm128HmacSha1_32, &[0xab; 30]).unwrap();
        let text = format!("{keying:?}");
        assert!(text.contains("AesCm128HmacSha1_32"), "{text}");
        assert!(!text.contains("171") && !text.contains("ab"), "{text}");
    }
}
