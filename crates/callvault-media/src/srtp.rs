//! SRTP and SRTCP on the receive side (RFC 3711, RFC 7714 for AES-GCM): every packet of an SDES
//! leg is authenticated, checked against replay and decrypted in place, in the receive thread's
//! datagram buffer, before the sequence tracker and the timeline see it. A relayed leg
//! (pass-through) also protects what it forwards ([`SrtpSender`]) under callvault's own key
//! toward the other side, in place in the leg's forward buffer, with the same transforms.
//!
//! **Why our own transforms, on RustCrypto primitives, rather than an SRTP library.**
//! `webrtc-srtp` returns every packet in a new buffer (`decrypt_rtp(&[u8]) -> Result<Bytes>`, plus
//! a `Vec` per parsed header, GCM nonce and AAD, and per-SSRC state in a `HashMap`), and our packet
//! path makes no allocation; libsrtp decrypts in place but only through `unsafe` FFI to a C library
//! (the `srtp`/`srtp2-sys` binding, which also pins `bytes` 0.6 and needs OpenSSL for GCM), and
//! the workspace forbids `unsafe`. So only RFC 3711's glue is ours (key derivation, IVs, rollover
//! counter, replay window), over the primitives `webrtc-srtp` itself uses (`aes`, `ctr`, `hmac`,
//! `sha1`, `aes-gcm`), which all work in the caller's buffer; tags are checked in constant time
//! (`verify_truncated_left`, and GCM checks its tag before it decrypts).
//!
//! **Checked against an independent implementation.** Besides the RFC 3711 appendix B and
//! RFC 7714 §16-17 test vectors, `webrtc-srtp` is kept as a dev-dependency: every suite must
//! decrypt what it encrypts bit-exact (`srtp/tests.rs`, the stream and engine tests), and the
//! end-to-end tests record calls whose SRTP it produced from the INVITE's `a=crypto` key.
//!
//! **State.** A [`Context`] is one master key: the derived session keys for SRTP and SRTCP and,
//! per SSRC (a few, in a fixed array), the highest index received and a 128-packet replay window
//! (RFC 3711 §3.3.2 asks for at least 64). State changes only after a packet authenticated, so
//! forged packets can neither move the rollover counter nor evict a source. The key derivation
//! rate is 0 (the SDP layer declines any other), so session keys are derived once.
//!
//! **Re-keying.** A re-offer with a new key makes a new current context; the old one is kept for
//! [`REKEY_GRACE`] and tried when the current one refuses a packet, so packets the SRC sent under
//! the old key before it read our answer are still recorded. The same key again keeps the
//! context, its rollover counters and replay windows.
//!
//! **SRTCP** is authenticated and counted, never decrypted: nothing reads RTCP yet. It has no
//! replay check for the same reason.
//!
//! Keys never reach a log: no type here derives `Debug` over key material.

use std::fmt;
use std::time::{Duration, Instant};

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher};
use aes::{Aes128, Aes256};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce, Tag};
use callvault_types::{Mki, SrtpKeying, SrtpSuite};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::rtp::header_len;

type HmacSha1 = Hmac<Sha1>;

/// How long the previous key still decrypts after a re-key. The SRC switches keys when it reads
/// our answer, milliseconds after the update reaches the leg; two seconds also cover a
/// retransmitted 200 OK and packets reordered within the jitter window.
pub(crate) const REKEY_GRACE: Duration = Duration::from_secs(2);
/// Replay window, in packets (RFC 3711 §3.3.2: at least 64).
const REPLAY_WINDOW: u64 = 128;
/// SSRCs a context tracks at once; a new one replaces the oldest (a leg has one sender at a time,
/// a few around a media server change).
const SSRC_SLOTS: usize = 4;
/// The AES-GCM tag (RFC 7714 §5: 16 octets for both suites).
const GCM_TAG_LEN: usize = 16;
/// The SRTCP HMAC-SHA1 tag of both counter-mode suites (RFC 4568 §6.2: 80 bits, also for `_32`).
const SRTCP_HMAC_TAG_LEN: usize = 10;
/// The SRTCP trailer word: E flag and 31-bit index (RFC 3711 §3.4).
const SRTCP_INDEX_LEN: usize = 4;
/// The RTCP header SRTCP leaves in clear: first word and sender SSRC.
const RTCP_HEADER_LEN: usize = 8;

// RFC 3711 §4.3.1 key derivation labels.
const LABEL_RTP_ENCRYPTION: u8 = 0x00;
const LABEL_RTP_AUTHENTICATION: u8 = 0x01;
const LABEL_RTP_SALT: u8 = 0x02;
const LABEL_RTCP_ENCRYPTION: u8 = 0x03;
const LABEL_RTCP_AUTHENTICATION: u8 = 0x04;
const LABEL_RTCP_SALT: u8 = 0x05;

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not even an RTP/RTCP header: counted as malformed.
    Malformed,
    /// Too short for the tag, wrong MKI, or the tag does not verify.
    Authentication,
    /// Index already received, or older than the replay window.
    Replayed,
}

/// The SRTP state of one leg: the current context and, for a while after a re-key, the previous.
/// Without keying (plain RTP) every packet passes unchanged.
pub(crate) struct SrtpReceiver {
    current: Option<Context>,
    previous: Option<(Context, Instant)>,
}

impl fmt::Debug for SrtpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpReceiver")
            .field("suite", &self.current.as_ref().map(|c| c.keying.suite()))
            .field("previous", &self.previous.as_ref().map(|(_, until)| until))
            .finish()
    }
}

impl SrtpReceiver {
    pub(crate) fn new(keying: Option<&SrtpKeying>) -> SrtpReceiver {
        SrtpReceiver {
            current: keying.map(Context::new),
            previous: None,
        }
    }

    /// Whether packets are authenticated and decrypted (a key now, or one in its grace period).
    pub(crate) fn is_keyed(&self) -> bool {
        self.current.is_some() || self.previous.is_some()
    }

    /// A re-offer's keying, applied at `now`: a different key becomes current and the old one
    /// stays for [`REKEY_GRACE`]; the same key keeps everything.
    pub(crate) fn rekey(&mut self, now: Instant, keying: Option<&SrtpKeying>) {
        if self.current.as_ref().map(|c| &c.keying) == keying {
            return;
        }
        let old = std::mem::replace(&mut self.current, keying.map(Context::new));
        if let Some(old) = old {
            self.previous = Some((old, now + REKEY_GRACE));
        }
    }

    /// Authenticates and decrypts one RTP datagram in place; returns the length of the plain RTP
    /// packet at its start. Plain RTP legs get the datagram's length back untouched.
    pub(crate) fn unprotect_rtp(
        &mut self,
        now: Instant,
        packet: &mut [u8],
    ) -> Result<usize, Refusal> {
        self.expire(now);
        let Some(current) = &mut self.current else {
            // Plain RTP now; SRTP sent before a switch to plain is still recognised for a while.
            if let Some((previous, _)) = &mut self.previous
                && let Ok(len) = previous.unprotect_rtp(packet)
            {
                return Ok(len);
            }
            return Ok(packet.len());
        };
        let refusal = match current.unprotect_rtp(packet) {
            Ok(len) => return Ok(len),
            Err(refusal) => refusal,
        };
        match &mut self.previous {
            Some((previous, _)) if refusal != Refusal::Malformed => {
                previous.unprotect_rtp(packet).map_err(|_| refusal)
            }
            _ => Err(refusal),
        }
    }

    /// Authenticates one SRTCP datagram (the packet is not decrypted: nothing reads it).
    /// Plain legs accept every RTCP packet.
    pub(crate) fn authenticate_rtcp(
        &mut self,
        now: Instant,
        packet: &mut [u8],
    ) -> Result<(), Refusal> {
        self.expire(now);
        let Some(current) = &self.current else {
            return Ok(());
        };
        let refusal = match current.authenticate_rtcp(packet) {
            Ok(()) => return Ok(()),
            Err(refusal) => refusal,
        };
        match &self.previous {
            Some((previous, _)) => previous.authenticate_rtcp(packet).map_err(|_| refusal),
            None => Err(refusal),
        }
    }

    fn expire(&mut self, now: Instant) {
        if self
            .previous
            .as_ref()
            .is_some_and(|(_, until)| now >= *until)
        {
            self.previous = None;
        }
    }
}

/// Bytes SRTP adds to an RTP packet we protect: the longest tag (GCM's 16 octets). Keys we
/// send with are our own and carry no MKI.
pub(crate) const PROTECT_OVERHEAD: usize = GCM_TAG_LEN;

/// The SRTP state of what a relayed leg forwards (pass-through recording): the key callvault put
/// in its own `a=crypto` line toward the far side, and per SSRC the rollover counter of what was
/// sent. Without keying the packets go out in clear.
///
/// The index of each packet is estimated from its sequence number as a receiver does (RFC 3711
/// §3.3.1): packets are forwarded in the order they arrive, reordered ones included, and the far
/// side's estimate then agrees with ours.
pub(crate) struct SrtpSender {
    current: Option<Context>,
}

impl fmt::Debug for SrtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpSender")
            .field("suite", &self.current.as_ref().map(|c| c.keying.suite()))
            .finish()
    }
}

impl SrtpSender {
    pub(crate) fn new(keying: Option<&SrtpKeying>) -> SrtpSender {
        SrtpSender {
            current: keying.map(Context::new),
        }
    }

    pub(crate) fn is_keyed(&self) -> bool {
        self.current.is_some()
    }

    /// A new key applies from the next packet (rollover counters start over, as the far side's
    /// new context does); the same key keeps everything.
    pub(crate) fn rekey(&mut self, keying: Option<&SrtpKeying>) {
        if self.current.as_ref().map(|c| &c.keying) != keying {
            self.current = keying.map(Context::new);
        }
    }

    /// Protects the plain RTP packet at the start of `buffer` (`len` bytes) in place and
    /// appends its tag: returns the SRTP packet's length. `buffer` needs [`PROTECT_OVERHEAD`]
    /// bytes of room after the packet. Without keying the packet is left as it is.
    pub(crate) fn protect_rtp(&mut self, buffer: &mut [u8], len: usize) -> Result<usize, Refusal> {
        let Some(current) = &mut self.current else {
            return Ok(len);
        };
        current.protect_rtp(buffer, len)
    }
}

/// One master key's session keys and the per-SSRC receive state (RFC 3711 §3.2).
struct Context {
    keying: SrtpKeying,
    rtp: Transform,
    rtcp: Transform,
    sources: [Option<Source>; SSRC_SLOTS],
    /// The slot the next new SSRC replaces when all are taken.
    next_slot: usize,
}

/// What RFC 3711 §3.2.1 keeps per SSRC on the receive side.
#[derive(Clone, Copy, Debug)]
struct Source {
    ssrc: u32,
    /// Highest index authenticated: rollover counter × 2^16 + sequence number.
    highest: u64,
    /// Bit k set: index `highest - k` was received.
    window: u128,
}

impl Source {
    /// The index of `sequence` (RFC 3711 §3.3.1, appendix A): the one of ROC-1, ROC, ROC+1 that
    /// puts it nearest the highest index. `None` before index 0 (a wrap back from ROC 0).
    fn estimate(&self, sequence: u16) -> Option<u64> {
        let roc = (self.highest >> 16) as i64;
        let s_l = i64::from(self.highest as u16);
        let seq = i64::from(sequence);
        let v = if s_l < 1 << 15 {
            if seq - s_l > 1 << 15 { roc - 1 } else { roc }
        } else if s_l - (1 << 15) > seq {
            roc + 1
        } else {
            roc
        };
        (0..=i64::from(u32::MAX))
            .contains(&v)
            .then_some(((v as u64) << 16) | u64::from(sequence))
    }

    fn is_replay(&self, index: u64) -> bool {
        if index > self.highest {
            return false;
        }
        let behind = self.highest - index;
        behind >= REPLAY_WINDOW || self.window & (1 << behind) != 0
    }

    fn accept(&mut self, index: u64) {
        if index > self.highest {
            let ahead = index - self.highest;
            self.window = if ahead >= REPLAY_WINDOW {
                0
            } else {
                self.window << ahead
            };
            self.window |= 1;
            self.highest = index;
        } else {
            self.window |= 1 << (self.highest - index);
        }
    }
}

impl Context {
    fn new(keying: &SrtpKeying) -> Context {
        Context {
            keying: keying.clone(),
            rtp: Transform::derive(keying, false),
            rtcp: Transform::derive(keying, true),
            sources: [None; SSRC_SLOTS],
            next_slot: 0,
        }
    }

    fn unprotect_rtp(&mut self, packet: &mut [u8]) -> Result<usize, Refusal> {
        let header = header_len(packet).map_err(|_| Refusal::Malformed)?;
        let sequence = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let slot = self
            .sources
            .iter()
            .position(|s| s.is_some_and(|s| s.ssrc == ssrc));
        // A new SSRC starts at rollover counter 0 with its first packet (RFC 3711 §3.3.1).
        let index = match slot.and_then(|slot| self.sources[slot]) {
            Some(source) => {
                let index = source.estimate(sequence).ok_or(Refusal::Replayed)?;
                if source.is_replay(index) {
                    return Err(Refusal::Replayed);
                }
                index
            }
            None => u64::from(sequence),
        };
        let mki_len = self.keying.mki().map_or(0, |mki| usize::from(mki.length));
        let len =
            self.rtp
                .unprotect_rtp(packet, header, ssrc, index, self.keying.mki(), mki_len)?;
        let slot = slot.unwrap_or_else(|| {
            let free = self.sources.iter().position(Option::is_none);
            free.unwrap_or_else(|| {
                let slot = self.next_slot;
                self.next_slot = (self.next_slot + 1) % SSRC_SLOTS;
                slot
            })
        });
        let source = self.sources[slot].get_or_insert(Source {
            ssrc,
            highest: index,
            window: 0,
        });
        if source.ssrc != ssrc {
            *source = Source {
                ssrc,
                highest: index,
                window: 0,
            };
        }
        source.accept(index);
        Ok(len)
    }

    /// The sending side of RFC 3711 §3.3: index from the SSRC's highest index sent, encryption
    /// and tag. Packets of a new SSRC start at rollover counter 0.
    fn protect_rtp(&mut self, buffer: &mut [u8], len: usize) -> Result<usize, Refusal> {
        let packet = buffer.get(..len).ok_or(Refusal::Malformed)?;
        let header = header_len(packet).map_err(|_| Refusal::Malformed)?;
        if buffer.len() < len + PROTECT_OVERHEAD {
            return Err(Refusal::Malformed);
        }
        let sequence = u16::from_be_bytes([buffer[2], buffer[3]]);
        let ssrc = u32::from_be_bytes([buffer[8], buffer[9], buffer[10], buffer[11]]);
        let slot = self
            .sources
            .iter()
            .position(|s| s.is_some_and(|s| s.ssrc == ssrc));
        let (slot, index) = match slot.and_then(|slot| Some((slot, self.sources[slot]?))) {
            Some((slot, source)) => (slot, source.estimate(sequence).ok_or(Refusal::Replayed)?),
            None => {
                let slot = self
                    .sources
                    .iter()
                    .position(Option::is_none)
                    .unwrap_or_else(|| {
                        let slot = self.next_slot;
                        self.next_slot = (self.next_slot + 1) % SSRC_SLOTS;
                        slot
                    });
                self.sources[slot] = Some(Source {
                    ssrc,
                    highest: u64::from(sequence),
                    window: 0,
                });
                (slot, u64::from(sequence))
            }
        };
        if let Some(source) = &mut self.sources[slot]
            && index > source.highest
        {
            source.highest = index;
        }
        Ok(self.rtp.protect_rtp(buffer, len, header, ssrc, index))
    }

    fn authenticate_rtcp(&self, packet: &mut [u8]) -> Result<(), Refusal> {
        if packet.len() < RTCP_HEADER_LEN || packet[0] >> 6 != 2 {
            return Err(Refusal::Malformed);
        }
        let mki_len = self.keying.mki().map_or(0, |mki| usize::from(mki.length));
        self.rtcp
            .authenticate_rtcp(packet, self.keying.mki(), mki_len)
    }
}

/// The session keys of one direction (SRTP or SRTCP) of one suite.
enum Transform {
    /// AES-128 counter mode with an HMAC-SHA1 tag (RFC 3711 §4.1.1, §4.2.1).
    CounterMode {
        cipher: Aes128,
        salt: [u8; 14],
        auth: HmacSha1,
        tag_len: usize,
    },
    /// AEAD_AES_128_GCM (RFC 7714).
    Gcm128 { aead: Aes128Gcm, salt: [u8; 12] },
    /// AEAD_AES_256_GCM (RFC 7714).
    Gcm256 { aead: Aes256Gcm, salt: [u8; 12] },
}

impl Transform {
    /// Session keys from the master key and salt, key derivation rate 0 (RFC 3711 §4.3;
    /// RFC 7714 §11 for GCM, whose 96-bit salt is padded with zeros to the PRF's 112 bits).
    fn derive(keying: &SrtpKeying, rtcp: bool) -> Transform {
        let [encryption, authentication, salting] = if rtcp {
            [
                LABEL_RTCP_ENCRYPTION,
                LABEL_RTCP_AUTHENTICATION,
                LABEL_RTCP_SALT,
            ]
        } else {
            [
                LABEL_RTP_ENCRYPTION,
                LABEL_RTP_AUTHENTICATION,
                LABEL_RTP_SALT,
            ]
        };
        match keying.suite() {
            suite @ (SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm128HmacSha1_32) => {
                let mut key = [0; 16];
                let mut auth = [0; 20];
                let mut salt = [0; 14];
                derive(keying, encryption, &mut key);
                derive(keying, authentication, &mut auth);
                derive(keying, salting, &mut salt);
                let tag_len = match (rtcp, suite) {
                    (false, SrtpSuite::AesCm128HmacSha1_32) => 4,
                    _ => SRTCP_HMAC_TAG_LEN,
                };
                Transform::counter_mode(&key, salt, &auth, tag_len)
            }
            SrtpSuite::AeadAes128Gcm => {
                let mut key = [0; 16];
                let mut salt = [0; 12];
                derive(keying, encryption, &mut key);
                derive(keying, salting, &mut salt);
                Transform::Gcm128 {
                    aead: Aes128Gcm::new(GenericArray::from_slice(&key)),
                    salt,
                }
            }
            SrtpSuite::AeadAes256Gcm => {
                let mut key = [0; 32];
                let mut salt = [0; 12];
                derive(keying, encryption, &mut key);
                derive(keying, salting, &mut salt);
                Transform::Gcm256 {
                    aead: Aes256Gcm::new(GenericArray::from_slice(&key)),
                    salt,
                }
            }
        }
    }

    fn counter_mode(key: &[u8; 16], salt: [u8; 14], auth: &[u8; 20], tag_len: usize) -> Transform {
        Transform::CounterMode {
            cipher: Aes128::new(GenericArray::from_slice(key)),
            salt,
            auth: <HmacSha1 as Mac>::new_from_slice(auth).expect("HMAC takes a key of any length"),
            tag_len,
        }
    }

    /// RFC 3711 §3.3 steps 4-6 for one packet whose index is `index`: MKI, tag, then decryption
    /// in place. Returns the length of the plain packet.
    fn unprotect_rtp(
        &self,
        packet: &mut [u8],
        header: usize,
        ssrc: u32,
        index: u64,
        mki: Option<Mki>,
        mki_len: usize,
    ) -> Result<usize, Refusal> {
        match self {
            Transform::CounterMode {
                cipher,
                salt,
                auth,
                tag_len,
            } => {
                // header | encrypted payload | MKI | tag; the tag covers header, payload, ROC.
                let end = packet
                    .len()
                    .checked_sub(tag_len + mki_len)
                    .filter(|end| *end >= header)
                    .ok_or(Refusal::Authentication)?;
                check_mki(&packet[end..end + mki_len], mki)?;
                let mut mac = auth.clone();
                mac.update(&packet[..end]);
                mac.update(&((index >> 16) as u32).to_be_bytes());
                mac.verify_truncated_left(&packet[end + mki_len..])
                    .map_err(|_| Refusal::Authentication)?;
                counter_mode_keystream(cipher, salt, ssrc, index, &mut packet[header..end]);
                Ok(end)
            }
            Transform::Gcm128 { aead, salt } => {
                gcm_unprotect_rtp(aead, salt, packet, header, ssrc, index, mki, mki_len)
            }
            Transform::Gcm256 { aead, salt } => {
                gcm_unprotect_rtp(aead, salt, packet, header, ssrc, index, mki, mki_len)
            }
        }
    }

    /// RFC 3711 §3.3 steps 4-5 (and RFC 7714 §8) for one packet: encryption in place and the
    /// tag appended after `len`, where the caller left room. Returns the protected length.
    fn protect_rtp(
        &self,
        buffer: &mut [u8],
        len: usize,
        header: usize,
        ssrc: u32,
        index: u64,
    ) -> usize {
        match self {
            Transform::CounterMode {
                cipher,
                salt,
                auth,
                tag_len,
            } => {
                counter_mode_keystream(cipher, salt, ssrc, index, &mut buffer[header..len]);
                let mut mac = auth.clone();
                mac.update(&buffer[..len]);
                mac.update(&((index >> 16) as u32).to_be_bytes());
                let tag = mac.finalize().into_bytes();
                buffer[len..len + tag_len].copy_from_slice(&tag[..*tag_len]);
                len + tag_len
            }
            Transform::Gcm128 { aead, salt } => {
                gcm_protect_rtp(aead, salt, buffer, len, header, ssrc, index)
            }
            Transform::Gcm256 { aead, salt } => {
                gcm_protect_rtp(aead, salt, buffer, len, header, ssrc, index)
            }
        }
    }

    /// RFC 3711 §3.4 / RFC 7714 §9: the SRTCP tag (GCM: by decrypting a copy in place, which the
    /// caller's buffer is).
    fn authenticate_rtcp(
        &self,
        packet: &mut [u8],
        mki: Option<Mki>,
        mki_len: usize,
    ) -> Result<(), Refusal> {
        match self {
            Transform::CounterMode { auth, tag_len, .. } => {
                // header | encrypted | E+index | MKI | tag; the tag covers all before the MKI.
                let end = packet
                    .len()
                    .checked_sub(tag_len + mki_len)
                    .filter(|end| *end >= RTCP_HEADER_LEN + SRTCP_INDEX_LEN)
                    .ok_or(Refusal::Authentication)?;
                check_mki(&packet[end..end + mki_len], mki)?;
                let mut mac = auth.clone();
                mac.update(&packet[..end]);
                mac.verify_truncated_left(&packet[end + mki_len..])
                    .map_err(|_| Refusal::Authentication)
            }
            Transform::Gcm128 { aead, salt } => {
                gcm_authenticate_rtcp(aead, salt, packet, mki, mki_len)
            }
            Transform::Gcm256 { aead, salt } => {
                gcm_authenticate_rtcp(aead, salt, packet, mki, mki_len)
            }
        }
    }
}

/// The AES-CM PRF of RFC 3711 §4.3.3 with the master key: `out` gets the session key of
/// `label` (key derivation rate 0, so `r` is 0 and only the label touches the salt).
fn derive(keying: &SrtpKeying, label: u8, out: &mut [u8]) {
    let mut input = [0u8; 16];
    let salt = keying.master_salt();
    input[..salt.len()].copy_from_slice(salt);
    input[7] ^= label;
    let key = keying.master_key();
    let mut fill = |encrypt: &dyn Fn(&mut [u8; 16])| {
        for (counter, chunk) in out.chunks_mut(16).enumerate() {
            let mut block = input;
            block[14..].copy_from_slice(&(counter as u16).to_be_bytes());
            encrypt(&mut block);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    };
    if key.len() == 32 {
        let cipher = Aes256::new(GenericArray::from_slice(key));
        fill(&|block| cipher.encrypt_block(GenericArray::from_mut_slice(block)));
    } else {
        let cipher = Aes128::new(GenericArray::from_slice(key));
        fill(&|block| cipher.encrypt_block(GenericArray::from_mut_slice(block)));
    }
}

/// XORs `data` with the AES-CM keystream of packet `index` from `ssrc` (RFC 3711 §4.1.1):
/// IV = salt·2^16 ⊕ SSRC·2^64 ⊕ index·2^16. The cipher is cloned (its key schedule is copied
/// on the stack), never allocated.
fn counter_mode_keystream(
    cipher: &Aes128,
    salt: &[u8; 14],
    ssrc: u32,
    index: u64,
    data: &mut [u8],
) {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (byte, x) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *byte ^= x;
    }
    for (byte, x) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *byte ^= x;
    }
    let core = ctr::CtrCore::<Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(
        cipher.clone(),
        GenericArray::from_slice(&iv),
    );
    ctr::Ctr128BE::<Aes128>::from_core(core).apply_keystream(data);
}

fn check_mki(field: &[u8], mki: Option<Mki>) -> Result<(), Refusal> {
    let Some(mki) = mki else {
        return Ok(());
    };
    // The value is written big-endian in `length` bytes; beyond 8 bytes the high ones are zero.
    let value = mki.value.to_be_bytes();
    let matches = field.iter().rev().enumerate().all(|(i, byte)| {
        let expected = if i < 8 { value[7 - i] } else { 0 };
        *byte == expected
    });
    if matches {
        Ok(())
    } else {
        Err(Refusal::Authentication)
    }
}

/// The IV of RFC 7714 §8.1: (00 00 || SSRC || ROC || SEQ) ⊕ salt.
fn gcm_rtp_iv(salt: &[u8; 12], ssrc: u32, index: u64) -> [u8; 12] {
    let mut iv = *salt;
    for (byte, x) in iv[2..6].iter_mut().zip(ssrc.to_be_bytes()) {
        *byte ^= x;
    }
    for (byte, x) in iv[6..12].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *byte ^= x;
    }
    iv
}

/// RFC 7714 §8 on the sending side: the payload encrypted in place, the tag after it.
fn gcm_protect_rtp<A: AeadInPlace>(
    aead: &A,
    salt: &[u8; 12],
    buffer: &mut [u8],
    len: usize,
    header: usize,
    ssrc: u32,
    index: u64,
) -> usize {
    let iv = gcm_rtp_iv(salt, ssrc, index);
    let (aad, plaintext) = buffer[..len].split_at_mut(header);
    let tag = aead
        .encrypt_in_place_detached(Nonce::from_slice(&iv), aad, plaintext)
        .expect("AES-GCM encrypts any packet shorter than 2^36 bytes");
    buffer[len..len + GCM_TAG_LEN].copy_from_slice(&tag);
    len + GCM_TAG_LEN
}

/// RFC 7714 §8: header (AAD) | ciphertext with its 16-byte tag | MKI.
#[allow(clippy::too_many_arguments)] // reason: one transform's inputs, called from one match
fn gcm_unprotect_rtp<A: AeadInPlace>(
    aead: &A,
    salt: &[u8; 12],
    packet: &mut [u8],
    header: usize,
    ssrc: u32,
    index: u64,
    mki: Option<Mki>,
    mki_len: usize,
) -> Result<usize, Refusal> {
    let end = packet
        .len()
        .checked_sub(mki_len)
        .filter(|end| *end >= header + GCM_TAG_LEN)
        .ok_or(Refusal::Authentication)?;
    check_mki(&packet[end..], mki)?;
    let iv = gcm_rtp_iv(salt, ssrc, index);
    let (aad, rest) = packet[..end].split_at_mut(header);
    let (ciphertext, tag) = rest.split_at_mut(rest.len() - GCM_TAG_LEN);
    aead.decrypt_in_place_detached(
        Nonce::from_slice(&iv),
        aad,
        ciphertext,
        Tag::from_slice(tag),
    )
    .map_err(|_| Refusal::Authentication)?;
    Ok(end - GCM_TAG_LEN)
}

/// RFC 7714 §9: header | ciphertext with its tag | E+index | MKI. With E set the AAD is the
/// header and the trailer word; without, everything before the tag is AAD and nothing is
/// encrypted.
fn gcm_authenticate_rtcp<A: AeadInPlace>(
    aead: &A,
    salt: &[u8; 12],
    packet: &mut [u8],
    mki: Option<Mki>,
    mki_len: usize,
) -> Result<(), Refusal> {
    let trailer = packet
        .len()
        .checked_sub(mki_len + SRTCP_INDEX_LEN)
        .filter(|at| *at >= RTCP_HEADER_LEN + GCM_TAG_LEN)
        .ok_or(Refusal::Authentication)?;
    check_mki(&packet[trailer + SRTCP_INDEX_LEN..], mki)?;
    let word: [u8; 4] = packet[trailer..trailer + SRTCP_INDEX_LEN]
        .try_into()
        .expect("the trailer slice is SRTCP_INDEX_LEN long");
    let encrypted = word[0] & 0x80 != 0;
    let index = u32::from_be_bytes(word) & 0x7fff_ffff;
    // IV = (00 00 || SSRC || 00 00 || 0 || index) ⊕ salt.
    let mut iv = *salt;
    for (byte, x) in iv[2..6].iter_mut().zip(&packet[4..8]) {
        *byte ^= x;
    }
    for (byte, x) in iv[8..12].iter_mut().zip(index.to_be_bytes()) {
        *byte ^= x;
    }
    let nonce = Nonce::from_slice(&iv);
    let (body, _) = packet.split_at_mut(trailer);
    let (body, tag) = body.split_at_mut(trailer - GCM_TAG_LEN);
    let tag = Tag::from_slice(tag);
    let result = if encrypted {
        let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
        aad[..RTCP_HEADER_LEN].copy_from_slice(&body[..RTCP_HEADER_LEN]);
        aad[RTCP_HEADER_LEN..].copy_from_slice(&word);
        aead.decrypt_in_place_detached(nonce, &aad, &mut body[RTCP_HEADER_LEN..], tag)
    } else {
        // The AAD is the packet up to the tag followed by the trailer word, which are not
        // contiguous in the packet: assembled on the stack (RTCP larger than one MTU is refused).
        let mut aad = [0u8; 1500];
        let len = body.len() + SRTCP_INDEX_LEN;
        let Some(aad) = aad.get_mut(..len) else {
            return Err(Refusal::Authentication);
        };
        aad[..body.len()].copy_from_slice(body);
        aad[body.len()..].copy_from_slice(&word);
        aead.decrypt_in_place_detached(nonce, aad, &mut [], tag)
    };
    result.map_err(|_| Refusal::Authentication)
}

#[cfg(test)]
mod tests;
