//! SDES-SRTP (RFC 4568) across the relay: each side gets keys of callvault's own, never the
//! other side's. callvault decrypts what each side sends (to record it) and encrypts what it
//! forwards under the key it gave the receiving side.
//!
//! **Offer and answer, mirrored.** When side X offers SRTP, the SDP we send on to Y carries one
//! `a=crypto` line per usable line of X's offer, with the same tag and suite and a key of ours
//! (so Y has the choice X offered). Y answers one tag `t` with its key. Then: X's leg decrypts
//! with X's own line `t`, Y's leg with Y's answered key; we answer X with tag `t` and our key for
//! X, and what each leg forwards is protected with our key toward the receiving side. When X
//! offers plain RTP, Y is offered plain RTP (no route option forces SRTP on one side: a
//! callee that needs it is reached by a caller that offers it). A plain answer to an SRTP offer
//! leaves both sides plain, as the answerer chose.
//!
//! **Our keys** are drawn once per side and suite and kept across re-offers (RFC 4568 §7.1.4
//! lets the answerer keep its key; a stable key keeps the far side's rollover state). The keys
//! never reach a log: [`SrtpKeying`]'s `Debug` redacts them.

use callvault_siprec::{self as siprec, AnswerCrypto, Protection, SrtpDecline};
use callvault_types::{Party, SrtpKeying};

use super::super::answer::our_key;
use super::other;

fn index(side: Party) -> usize {
    match side {
        Party::Caller => 0,
        _ => 1,
    }
}

/// The SDES state of one relayed call.
#[derive(Default)]
pub(super) struct Sdes {
    /// Our keys toward each side (caller, callee), one per suite used.
    ours: [Vec<SrtpKeying>; 2],
    /// The offer being answered: who made it and its usable lines (tag, that side's key).
    offer: Option<(Party, Vec<(u32, SrtpKeying)>)>,
    /// The key each side (caller, callee) sends with, as the last answer settled it.
    theirs: [Option<SrtpKeying>; 2],
    /// Our key for what we send to each side (caller, callee).
    toward: [Option<SrtpKeying>; 2],
}

impl Sdes {
    /// The key `side` protects its media with (its leg decrypts with it).
    pub(super) fn sent_by(&self, side: Party) -> Option<&SrtpKeying> {
        self.theirs[index(side)].as_ref()
    }

    /// The key what we forward to `side` is protected with.
    pub(super) fn sent_to(&self, side: Party) -> Option<&SrtpKeying> {
        self.toward[index(side)].as_ref()
    }

    /// An offer from `from` passes: the `a=crypto` values for the SDP sent on to the other side
    /// (empty for plain RTP). `Err` when its SRTP cannot be taken (DTLS-SRTP, no usable line).
    pub(super) fn handle_offer(
        &mut self,
        from: Party,
        media: &siprec::Media,
    ) -> Result<Vec<String>, SrtpDecline> {
        let lines: Vec<(u32, SrtpKeying)> = match media.protection() {
            Protection::Plain | Protection::NotRtp => Vec::new(),
            Protection::DtlsSrtp | Protection::Sdes => {
                siprec::choose_crypto(media)?;
                media
                    .crypto
                    .iter()
                    .filter_map(|line| Some((line.tag, line.usable.as_ref().ok()?.keying.clone())))
                    .collect()
            }
        };
        let to = other(from);
        let values = lines
            .iter()
            .map(|(tag, theirs)| self.our_line(to, *tag, theirs))
            .collect();
        self.offer = Some((from, lines));
        Ok(values)
    }

    /// The answer from `from` to the offer in progress: the keys in force change, and the
    /// `a=crypto` values for the answer sent on to the offerer (empty for plain RTP).
    pub(super) fn handle_answer(&mut self, from: Party, media: &siprec::Media) -> Vec<String> {
        let offerer = other(from);
        let answered = match media.protection() {
            Protection::Sdes => siprec::choose_crypto(media)
                .ok()
                .map(|(tag, offer)| (tag, offer.keying.clone())),
            _ => None,
        };
        let offered = answered.as_ref().and_then(|(tag, _)| {
            let (who, lines) = self.offer.as_ref()?;
            let (_, key) = lines.iter().find(|(t, _)| t == tag)?;
            (*who == offerer).then(|| key.clone())
        });
        let (Some((tag, answer_key)), Some(offer_key)) = (answered, offered) else {
            // Plain, or an answer that matches no offered line: no SRTP either way.
            self.theirs = [None, None];
            self.toward = [None, None];
            return Vec::new();
        };
        let to_offerer = self.key_for(offerer, &offer_key);
        let to_answerer = self.key_for(from, &answer_key);
        self.theirs[index(offerer)] = Some(offer_key);
        self.theirs[index(from)] = Some(answer_key);
        self.toward[index(offerer)] = Some(to_offerer.clone());
        self.toward[index(from)] = Some(to_answerer);
        vec![
            AnswerCrypto {
                tag,
                keying: to_offerer,
                unencrypted_srtcp: false,
            }
            .attribute_value(),
        ]
    }

    /// Our line toward `side` for an offered line: same tag and suite, our key.
    fn our_line(&mut self, side: Party, tag: u32, theirs: &SrtpKeying) -> String {
        AnswerCrypto {
            tag,
            keying: self.key_for(side, theirs),
            unencrypted_srtcp: false,
        }
        .attribute_value()
    }

    /// Our key toward `side` in the suite of `theirs`, drawn the first time.
    fn key_for(&mut self, side: Party, theirs: &SrtpKeying) -> SrtpKeying {
        let suite = theirs.suite();
        let ours = &mut self.ours[index(side)];
        if let Some(key) = ours.iter().find(|k| k.suite() == suite) {
            return key.clone();
        }
        let key = our_key(suite);
        ours.push(key.clone());
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(protocol: &str, crypto: &[&str]) -> siprec::Media {
        let mut sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 {protocol} 0\r\n"
        );
        for line in crypto {
            sdp.push_str(&format!("a=crypto:{line}\r\n"));
        }
        siprec::parse_sdp(&sdp).unwrap().media.remove(0)
    }

    const KEY_A: &str = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    const KEY_B: &str = "inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB";

    fn key_of(value: &str) -> SrtpKeying {
        let media = audio("RTP/SAVP", &[value]);
        siprec::choose_crypto(&media).unwrap().1.keying.clone()
    }

    #[test]
    fn each_side_gets_our_keys_and_each_leg_decrypts_with_its_sides_key() {
        let mut sdes = Sdes::default();
        let offer = audio(
            "RTP/SAVP",
            &[
                "1 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==",
                &format!("2 AES_CM_128_HMAC_SHA1_80 {KEY_A}"),
            ],
        );
        let sent_on = sdes.handle_offer(Party::Caller, &offer).unwrap();
        assert_eq!(sent_on.len(), 2, "{sent_on:?}");
        assert!(sent_on[0].starts_with("1 AEAD_AES_128_GCM inline:"));
        assert!(sent_on[1].starts_with("2 AES_CM_128_HMAC_SHA1_80 inline:"));
        assert!(!sent_on[1].contains(&KEY_A[7..]), "never the caller's key");

        let answer = audio("RTP/SAVP", &[&format!("2 AES_CM_128_HMAC_SHA1_80 {KEY_B}")]);
        let back = sdes.handle_answer(Party::Callee, &answer);
        assert_eq!(back.len(), 1);
        assert!(back[0].starts_with("2 AES_CM_128_HMAC_SHA1_80 inline:"));
        let caller_key = key_of(&format!("2 AES_CM_128_HMAC_SHA1_80 {KEY_A}"));
        assert_eq!(sdes.sent_by(Party::Caller), Some(&caller_key));
        assert_eq!(
            sdes.sent_by(Party::Callee),
            Some(&key_of(&format!("2 AES_CM_128_HMAC_SHA1_80 {KEY_B}")))
        );
        // What we forward to the callee is under the key we offered it for tag 2, and what we
        // forward to the caller under the key we answered it with.
        assert_eq!(sdes.sent_to(Party::Callee), Some(&key_of(&sent_on[1])));
        assert_eq!(sdes.sent_to(Party::Caller), Some(&key_of(&back[0])));
        assert_ne!(sdes.sent_to(Party::Caller), sdes.sent_to(Party::Callee));

        // A re-offer from the callee keeps our keys (same suite).
        let reoffer = sdes
            .handle_offer(
                Party::Callee,
                &audio("RTP/SAVP", &[&format!("5 AES_CM_128_HMAC_SHA1_80 {KEY_B}")]),
            )
            .unwrap();
        assert_eq!(
            key_of(&reoffer[0]),
            key_of(&back[0]),
            "our key toward the caller kept"
        );
    }

    #[test]
    fn plain_stays_plain_and_unusable_srtp_is_declined() {
        let mut sdes = Sdes::default();
        assert_eq!(
            sdes.handle_offer(Party::Caller, &audio("RTP/AVP", &[])),
            Ok(Vec::new())
        );
        assert!(
            sdes.handle_answer(Party::Callee, &audio("RTP/AVP", &[]))
                .is_empty()
        );
        assert_eq!(sdes.sent_by(Party::Caller), None);
        assert_eq!(sdes.sent_to(Party::Callee), None);
        assert!(
            sdes.handle_offer(Party::Caller, &audio("RTP/SAVP", &[]))
                .is_err()
        );
        assert!(
            sdes.handle_offer(
                Party::Caller,
                &audio("RTP/SAVP", &["1 F8_128_HMAC_SHA1_80 inline:x"])
            )
            .is_err()
        );
        // An answer naming a tag nobody offered leaves the call plain.
        sdes.handle_offer(
            Party::Caller,
            &audio("RTP/SAVP", &[&format!("1 AES_CM_128_HMAC_SHA1_80 {KEY_A}")]),
        )
        .unwrap();
        assert!(
            sdes.handle_answer(
                Party::Callee,
                &audio("RTP/SAVP", &[&format!("9 AES_CM_128_HMAC_SHA1_80 {KEY_B}")])
            )
            .is_empty()
        );
        assert_eq!(sdes.sent_by(Party::Callee), None);
    }
}
