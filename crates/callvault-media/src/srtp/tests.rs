//! The SRTP receiver against the published test vectors (RFC 3711 appendix B, RFC 7714 §16-17)
//! and against packets made by an independent implementation, `webrtc-srtp`, for every suite.

use super::*;
use bytes::Bytes;
use rtp::header::Header;
use rtp::packet::Packet;
use webrtc_srtp::context::Context as Oracle;
use webrtc_srtp::protection_profile::ProtectionProfile;
use webrtc_util::marshal::Marshal;

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text.split_whitespace().collect::<String>()).unwrap()
}

fn keying(suite: SrtpSuite, seed: u8) -> SrtpKeying {
    let bytes: Vec<u8> = (0..suite.key_len() + suite.salt_len())
        .map(|i| {
            seed.wrapping_mul(31)
                .wrapping_add((i as u8).wrapping_mul(7))
        })
        .collect();
    SrtpKeying::new(suite, &bytes).unwrap()
}

fn profile(suite: SrtpSuite) -> ProtectionProfile {
    match suite {
        SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        SrtpSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        SrtpSuite::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
    }
}

fn oracle(keying: &SrtpKeying) -> Oracle {
    Oracle::new(
        keying.master_key(),
        keying.master_salt(),
        profile(keying.suite()),
        None,
        None,
    )
    .unwrap()
}

/// A plain RTP packet: PCMU, `payload` of 160 bytes derived from `sequence`.
fn rtp(sequence: u16, ssrc: u32) -> Vec<u8> {
    let payload: Vec<u8> = (0..160u16)
        .map(|i| (sequence.wrapping_mul(13).wrapping_add(i)) as u8)
        .collect();
    Packet {
        header: Header {
            version: 2,
            payload_type: 0,
            sequence_number: sequence,
            timestamp: u32::from(sequence).wrapping_mul(160),
            ssrc,
            ..Header::default()
        },
        payload: Bytes::from(payload),
    }
    .marshal()
    .unwrap()
    .to_vec()
}

fn protect(oracle: &mut Oracle, plain: &[u8]) -> Vec<u8> {
    oracle.encrypt_rtp(plain).unwrap().to_vec()
}

fn now() -> Instant {
    Instant::now()
}

/// Unprotects a copy of `packet`; the plain packet, or why not.
fn receive(receiver: &mut SrtpReceiver, at: Instant, packet: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut buffer = packet.to_vec();
    let len = receiver.unprotect_rtp(at, &mut buffer)?;
    Ok(buffer[..len].to_vec())
}

#[test]
fn key_derivation_matches_rfc_3711_b3() {
    let master = unhex("E1F97A0D3E018BE0D64FA32C06DE4139 0EC675AD498AFEEBB6960B3AABE6");
    let keying = SrtpKeying::new(SrtpSuite::AesCm128HmacSha1_80, &master).unwrap();
    let mut key = [0; 16];
    let mut salt = [0; 14];
    let mut auth = [0; 20];
    derive(&keying, LABEL_RTP_ENCRYPTION, &mut key);
    derive(&keying, LABEL_RTP_SALT, &mut salt);
    derive(&keying, LABEL_RTP_AUTHENTICATION, &mut auth);
    assert_eq!(key.to_vec(), unhex("C61E7A93744F39EE10734AFE3FF7A087"));
    assert_eq!(salt.to_vec(), unhex("30CBBC08863D8C85D49DB34A9AE1"));
    assert_eq!(
        auth.to_vec(),
        unhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
    );
}

#[test]
fn counter_mode_keystream_matches_rfc_3711_b2() {
    let key = unhex("2B7E151628AED2A6ABF7158809CF4F3C");
    let cipher = Aes128::new(GenericArray::from_slice(&key));
    let salt: [u8; 14] = unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap();
    // Blocks 0000 to FF01 of the keystream of SSRC 0, index 0: XORed onto zeros, in place.
    let mut stream = vec![0u8; 16 * 0xFF02];
    counter_mode_keystream(&cipher, &salt, 0, 0, &mut stream);
    let block = |n: usize| stream[16 * n..16 * (n + 1)].to_vec();
    assert_eq!(block(0), unhex("E03EAD0935C95E80E166B16DD92B4EB4"));
    assert_eq!(block(1), unhex("D23513162B02D0F72A43A2FE4A5F97AB"));
    assert_eq!(block(2), unhex("41E95B3BB0A2E8DD477901E4FCA894C0"));
    assert_eq!(block(0xFEFF), unhex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
    assert_eq!(block(0xFF00), unhex("362B7C3C6773516318A077D7FC5073AE"));
    assert_eq!(block(0xFF01), unhex("6A2CC3787889374FBEB4C81B17BA6C44"));
}

/// RFC 7714's vectors are given with session keys (no derivation): a context built on them.
fn rfc_7714_context(key: &[u8]) -> Context {
    let salt: [u8; 12] = unhex("517569642070726f2071756f").try_into().unwrap();
    let transform = || match key.len() {
        16 => Transform::Gcm128 {
            aead: Aes128Gcm::new(GenericArray::from_slice(key)),
            salt,
        },
        _ => Transform::Gcm256 {
            aead: Aes256Gcm::new(GenericArray::from_slice(key)),
            salt,
        },
    };
    let suite = if key.len() == 16 {
        SrtpSuite::AeadAes128Gcm
    } else {
        SrtpSuite::AeadAes256Gcm
    };
    Context {
        keying: keying(suite, 0),
        rtp: transform(),
        rtcp: transform(),
        sources: [None; SSRC_SLOTS],
        next_slot: 0,
    }
}

const RFC_7714_RTP: &str = "8040f17b8041f8d35501a0b2 47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
const RFC_7714_RTCP: &str = "81c8000d4d617273 4e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

#[test]
fn aead_aes_128_gcm_matches_rfc_7714_16_1_and_17_1() {
    let mut context = rfc_7714_context(&unhex("000102030405060708090a0b0c0d0e0f"));
    let mut srtp = unhex(
        "8040f17b8041f8d35501a0b2 f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce",
    );
    let len = context.unprotect_rtp(&mut srtp).unwrap();
    assert_eq!(srtp[..len], unhex(RFC_7714_RTP)[..]);
    let mut srtcp = unhex(
        "81c8000d4d617273 63e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4",
    );
    // Authenticated, and decrypted in place: the plain report appears in the buffer.
    context.authenticate_rtcp(&mut srtcp).unwrap();
    assert_eq!(srtcp[8..srtcp.len() - 20], unhex(RFC_7714_RTCP)[8..]);
}

#[test]
fn aead_aes_256_gcm_matches_rfc_7714_16_2_and_17_2() {
    let mut context = rfc_7714_context(&unhex(
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    ));
    let mut srtp = unhex(
        "8040f17b8041f8d35501a0b2 32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b7aa3db36dfffd6b0f9bb7878d7a76c13",
    );
    let len = context.unprotect_rtp(&mut srtp).unwrap();
    assert_eq!(srtp[..len], unhex(RFC_7714_RTP)[..]);
    let mut srtcp = unhex(
        "81c8000d4d617273 d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658c61de0476f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be800005d4",
    );
    context.authenticate_rtcp(&mut srtcp).unwrap();
    assert_eq!(srtcp[8..srtcp.len() - 20], unhex(RFC_7714_RTCP)[8..]);
    // One flipped bit anywhere fails.
    let mut tampered = unhex(
        "81c8000d4d617273 d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658c61de0476f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be800005d4",
    );
    tampered[20] ^= 0x01;
    assert_eq!(
        context.authenticate_rtcp(&mut tampered),
        Err(Refusal::Authentication)
    );
}

#[test]
fn every_suite_decrypts_what_webrtc_srtp_encrypts_bit_exact() {
    for suite in SrtpSuite::ALL {
        let keying = keying(*suite, 3);
        let mut sender = oracle(&keying);
        let mut receiver = SrtpReceiver::new(Some(&keying));
        for sequence in 1000..1200u16 {
            let plain = rtp(sequence, 0xCAFE_0001);
            let protected = protect(&mut sender, &plain);
            assert_ne!(
                protected[12..172],
                plain[12..],
                "{suite}: encrypted on the wire"
            );
            assert_eq!(
                receive(&mut receiver, now(), &protected),
                Ok(plain),
                "{suite} packet {sequence}"
            );
        }
        // SRTCP from the same implementation authenticates; a flipped bit does not.
        let report = [0x80, 201, 0, 1, 0xCA, 0xFE, 0, 1];
        let mut srtcp = sender.encrypt_rtcp(&report).unwrap().to_vec();
        let mut tampered = srtcp.clone();
        tampered[9] ^= 0x40;
        assert_eq!(
            receiver.authenticate_rtcp(now(), &mut srtcp),
            Ok(()),
            "{suite}"
        );
        assert_eq!(
            receiver.authenticate_rtcp(now(), &mut tampered),
            Err(Refusal::Authentication),
            "{suite}"
        );
    }
}

#[test]
fn a_flipped_bit_anywhere_fails_authentication_and_leaves_no_state() {
    for suite in SrtpSuite::ALL {
        let keying = keying(*suite, 5);
        let mut sender = oracle(&keying);
        let mut receiver = SrtpReceiver::new(Some(&keying));
        let first = protect(&mut sender, &rtp(10, 7));
        receive(&mut receiver, now(), &first).unwrap();
        let genuine = protect(&mut sender, &rtp(11, 7));
        for position in [1, 3, 9, 12, 100, genuine.len() - 1] {
            let mut tampered = genuine.clone();
            tampered[position] ^= 0x10;
            assert_eq!(
                receive(&mut receiver, now(), &tampered),
                Err(Refusal::Authentication),
                "{suite}: bit flipped at {position}"
            );
        }
        // Too short for the tag.
        assert_eq!(
            receive(&mut receiver, now(), &genuine[..14]),
            Err(Refusal::Authentication)
        );
        assert_eq!(
            receive(&mut receiver, now(), &[0x80; 5]),
            Err(Refusal::Malformed)
        );
        // The genuine packet still passes: the forgeries changed nothing.
        assert_eq!(receive(&mut receiver, now(), &genuine), Ok(rtp(11, 7)));
    }
}

#[test]
fn a_replayed_or_too_old_packet_is_refused() {
    let keying = keying(SrtpSuite::AesCm128HmacSha1_80, 9);
    let mut sender = oracle(&keying);
    let mut receiver = SrtpReceiver::new(Some(&keying));
    let packets: Vec<Vec<u8>> = (0..300u16)
        .map(|sequence| protect(&mut sender, &rtp(sequence, 1)))
        .collect();
    // Out of order within the window is fine, once.
    receive(&mut receiver, now(), &packets[0]).unwrap();
    receive(&mut receiver, now(), &packets[2]).unwrap();
    receive(&mut receiver, now(), &packets[1]).unwrap();
    assert_eq!(
        receive(&mut receiver, now(), &packets[1]),
        Err(Refusal::Replayed)
    );
    assert_eq!(
        receive(&mut receiver, now(), &packets[2]),
        Err(Refusal::Replayed)
    );
    for packet in &packets[200..300] {
        receive(&mut receiver, now(), packet).unwrap();
    }
    // 150 behind the highest: never received, but older than the 128-packet window.
    assert_eq!(
        receive(&mut receiver, now(), &packets[149]),
        Err(Refusal::Replayed)
    );
    assert!(
        receive(&mut receiver, now(), &packets[180]).is_ok(),
        "119 behind: in the window"
    );
}

#[test]
fn the_rollover_counter_follows_sequence_wrap_and_reordering_across_it() {
    for suite in SrtpSuite::ALL {
        let keying = keying(*suite, 11);
        let mut sender = oracle(&keying);
        let mut receiver = SrtpReceiver::new(Some(&keying));
        // Three wraps from 65500, every 97th packet plus the last before and the first after
        // each wrap (the sender's rollover counter goes 0, 1, 2, 3; both sides follow gaps of
        // less than 2^15).
        let mut extended: Vec<u32> = (65500..65500 + 3 * 65536 + 200).step_by(97).collect();
        for wrap in 1..=3u32 {
            extended.extend([wrap * 65536 - 1, wrap * 65536]);
        }
        extended.sort_unstable();
        extended.dedup();
        let mut protected: Vec<(u16, Vec<u8>)> = extended
            .iter()
            .map(|&n| (n as u16, protect(&mut sender, &rtp(n as u16, 2))))
            .collect();
        // Received with the packets around each wrap swapped (65535 after 0): the estimate still
        // picks the right rollover counter for each.
        let mut at = 0;
        while at + 1 < protected.len() {
            if protected[at].0 == 65535 {
                protected.swap(at, at + 1);
                at += 1;
            }
            at += 1;
        }
        for (sequence, packet) in &protected {
            assert_eq!(
                receive(&mut receiver, now(), packet),
                Ok(rtp(*sequence, 2)),
                "{suite} sequence {sequence}"
            );
        }
    }
}

#[test]
fn a_new_key_applies_at_once_and_the_old_one_for_the_grace_period() {
    let start = Instant::now();
    let old = keying(SrtpSuite::AesCm128HmacSha1_80, 1);
    let new = keying(SrtpSuite::AeadAes128Gcm, 2);
    let mut old_sender = oracle(&old);
    let mut new_sender = oracle(&new);
    let mut receiver = SrtpReceiver::new(Some(&old));
    receive(&mut receiver, start, &protect(&mut old_sender, &rtp(1, 5))).unwrap();
    let late_old = protect(&mut old_sender, &rtp(2, 5));
    let later_old = protect(&mut old_sender, &rtp(3, 5));
    receiver.rekey(start, Some(&new));
    // The new key from the answer on; the old key's late packet still decrypts.
    assert_eq!(
        receive(&mut receiver, start, &protect(&mut new_sender, &rtp(10, 6))),
        Ok(rtp(10, 6))
    );
    assert_eq!(
        receive(&mut receiver, start + Duration::from_millis(300), &late_old),
        Ok(rtp(2, 5))
    );
    // After the grace period the old key is gone.
    assert_eq!(
        receive(&mut receiver, start + REKEY_GRACE, &later_old),
        Err(Refusal::Authentication)
    );
    assert_eq!(
        receive(
            &mut receiver,
            start + REKEY_GRACE,
            &protect(&mut new_sender, &rtp(11, 6))
        ),
        Ok(rtp(11, 6))
    );
}

#[test]
fn the_same_key_again_keeps_the_replay_state() {
    let key = keying(SrtpSuite::AesCm128HmacSha1_32, 4);
    let mut sender = oracle(&key);
    let mut receiver = SrtpReceiver::new(Some(&key));
    let packet = protect(&mut sender, &rtp(40, 9));
    receive(&mut receiver, now(), &packet).unwrap();
    receiver.rekey(now(), Some(&key.clone()));
    assert_eq!(
        receive(&mut receiver, now(), &packet),
        Err(Refusal::Replayed)
    );
}

#[test]
fn a_switch_to_plain_rtp_passes_plain_packets_and_still_decrypts_late_srtp() {
    let start = Instant::now();
    let key = keying(SrtpSuite::AesCm128HmacSha1_80, 6);
    let mut sender = oracle(&key);
    let mut receiver = SrtpReceiver::new(Some(&key));
    let late = protect(&mut sender, &rtp(1, 3));
    receiver.rekey(start, None);
    assert_eq!(receive(&mut receiver, start, &late), Ok(rtp(1, 3)));
    assert_eq!(receive(&mut receiver, start, &rtp(2, 3)), Ok(rtp(2, 3)));
    // Plain legs never look at RTCP.
    let mut report = [0x80, 201, 0, 1, 0, 0, 0, 3];
    assert_eq!(receiver.authenticate_rtcp(start, &mut report), Ok(()));
}

#[test]
fn an_mki_is_checked_and_stripped() {
    for suite in SrtpSuite::ALL {
        let mki = Mki {
            value: 0x0102,
            length: 4,
        };
        let key = keying(*suite, 8);
        let mut sender = oracle(&key);
        let mut receiver = SrtpReceiver::new(Some(&key.clone().with_mki(Some(mki))));
        let plain = rtp(77, 4);
        let protected = protect(&mut sender, &plain);
        // The MKI is not authenticated: it sits before the HMAC tag, or after the GCM
        // ciphertext, so it can be put into the independent implementation's packet.
        let at = if suite.is_aead() {
            protected.len()
        } else {
            protected.len()
                - if *suite == SrtpSuite::AesCm128HmacSha1_32 {
                    4
                } else {
                    10
                }
        };
        let with_mki = |field: [u8; 4]| {
            let mut packet = protected.clone();
            packet.splice(at..at, field);
            packet
        };
        assert_eq!(
            receive(&mut receiver, now(), &with_mki([0, 0, 1, 3])),
            Err(Refusal::Authentication),
            "{suite}: another key's MKI"
        );
        assert_eq!(
            receive(&mut receiver, now(), &with_mki([0, 0, 1, 2])),
            Ok(plain),
            "{suite}"
        );
    }
}

#[test]
fn hostile_datagrams_never_panic() {
    let mut receivers: Vec<SrtpReceiver> = SrtpSuite::ALL
        .iter()
        .map(|suite| {
            SrtpReceiver::new(Some(&keying(*suite, 1).with_mki(Some(Mki {
                value: u64::MAX,
                length: 128,
            }))))
        })
        .collect();
    receivers.push(SrtpReceiver::new(Some(&keying(
        SrtpSuite::AeadAes128Gcm,
        2,
    ))));
    let mut seed = 0x1234_5678u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for _ in 0..5000 {
        let len = (next() % 200) as usize;
        let mut datagram: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Some(first) = datagram.first_mut() {
            *first = (*first & 0x3f) | 0x80;
        }
        for receiver in &mut receivers {
            let _ = receiver.unprotect_rtp(now(), &mut datagram.clone());
            let _ = receiver.authenticate_rtcp(now(), &mut datagram.clone());
        }
    }
}

/// Protects a copy of `plain` with `sender`; the SRTP packet.
fn send(sender: &mut SrtpSender, plain: &[u8]) -> Vec<u8> {
    let mut buffer = vec![0u8; plain.len() + PROTECT_OVERHEAD];
    buffer[..plain.len()].copy_from_slice(plain);
    let len = sender.protect_rtp(&mut buffer, plain.len()).unwrap();
    buffer.truncate(len);
    buffer
}

#[test]
fn webrtc_srtp_decrypts_what_every_suite_protects_bit_exact_across_a_sequence_wrap() {
    for suite in SrtpSuite::ALL {
        let keying = keying(*suite, 7);
        let mut sender = SrtpSender::new(Some(&keying));
        let mut far_end = oracle(&keying);
        // Two sources, the sequence wrapping (rollover counter 1), one packet reordered.
        let mut sequences: Vec<u16> = (65_500..=65_535).chain(0..40).collect();
        sequences.swap(30, 31);
        for (n, sequence) in sequences.into_iter().enumerate() {
            let ssrc = if n % 5 == 0 { 0x0BAD_F00D } else { 0xCAFE_0002 };
            let plain = rtp(sequence, ssrc);
            let protected = send(&mut sender, &plain);
            assert_ne!(protected[12..172], plain[12..], "{suite}: encrypted");
            let decrypted = far_end
                .decrypt_rtp(&protected)
                .unwrap_or_else(|e| panic!("{suite} packet {sequence}: {e}"));
            assert_eq!(&decrypted[..], &plain[..], "{suite} packet {sequence}");
        }
    }
}

#[test]
fn a_sender_rekeyed_protects_with_the_new_key_and_the_same_key_keeps_its_counters() {
    let old = keying(SrtpSuite::AesCm128HmacSha1_80, 8);
    let new = keying(SrtpSuite::AeadAes128Gcm, 9);
    let mut sender = SrtpSender::new(Some(&old));
    let mut old_end = oracle(&old);
    for sequence in 65_530..=65_535u16 {
        old_end
            .decrypt_rtp(&send(&mut sender, &rtp(sequence, 1)))
            .unwrap();
    }
    // The same key again: the wrap still counts (a reset counter would fail the far end's tag).
    sender.rekey(Some(&old));
    old_end.decrypt_rtp(&send(&mut sender, &rtp(2, 1))).unwrap();
    sender.rekey(Some(&new));
    let mut new_end = oracle(&new);
    let plain = rtp(3, 1);
    assert_eq!(
        &new_end.decrypt_rtp(&send(&mut sender, &plain)).unwrap()[..],
        &plain[..]
    );
    sender.rekey(None);
    assert_eq!(
        send(&mut sender, &plain)[..plain.len()],
        plain[..],
        "plain again"
    );
}

#[test]
fn a_sender_refuses_a_packet_without_room_or_header_and_never_panics() {
    let keying = keying(SrtpSuite::AesCm128HmacSha1_80, 10);
    let mut sender = SrtpSender::new(Some(&keying));
    let plain = rtp(1, 1);
    let mut tight = plain.clone();
    assert_eq!(
        sender.protect_rtp(&mut tight, plain.len()),
        Err(Refusal::Malformed)
    );
    for garbage in [&[][..], &[0x80, 0][..], &[0xff; 40][..]] {
        let mut buffer = vec![0u8; garbage.len() + PROTECT_OVERHEAD];
        buffer[..garbage.len()].copy_from_slice(garbage);
        let _ = sender.protect_rtp(&mut buffer, garbage.len());
        let past = buffer.len() + 5;
        let _ = sender.protect_rtp(&mut buffer, past);
    }
}
