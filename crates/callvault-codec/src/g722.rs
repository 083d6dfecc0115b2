//! G.722 at 64 kbit/s (ITU-T G.722 (09/2012)), written from the Recommendation's block diagrams.
//!
//! Each 8-bit code word carries two sub-band ADPCM codes for one pair of 16 kHz samples: 6 bits for
//! the lower band (0–4 kHz) and 2 bits for the upper band (4–8 kHz). The quadrature mirror filter
//! (QMF) splits the 16 kHz signal into the two bands at 8 kHz on the way in and merges them on the
//! way out. All arithmetic is the Recommendation's 16/32-bit fixed point; block names in comments
//! (INVQAL, LOGSCL, UPPOL2, ...) are the Recommendation's, so the code can be checked against it.
//!
//! Every code word is valid, so a decoder cannot fail on content: garbage decodes to noise.

use crate::{Error, Result, check_output};

/// The 24-tap QMF's coefficients, one half (the filter is symmetric): G.722 Table 11, scaled by
/// 2^13.
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

/// Lower band: decision levels of the 6-bit quantizer, Q12 of the scale factor (Table 6 "Q6").
/// Index 30 and 31 are unused: magnitudes above level 29 all map to interval 30.
const LOW_DECISION: [i32; 31] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0,
];
/// Lower band 6-bit codes for interval `i` (1..=30) of a negative / positive difference (Table 6).
const LOW_CODE_NEGATIVE: [i32; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];
const LOW_CODE_POSITIVE: [i32; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];
/// Lower band inverse quantizer output levels for the full 6-bit code (QQ6 of Table 7 × sign).
const LOW_LEVEL_6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Lower band inverse quantizer for the code truncated to 4 bits, which drives the adaptation
/// (so that the 56 and 48 kbit/s modes, which drop the low bits, stay in step): QQ4 × sign.
const LOW_LEVEL_4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// Lower band log scale factor multipliers (Table 8 "WL"), indexed through `LOW_MAGNITUDE`.
const LOW_LOG_STEP: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// The 4-bit code's magnitude class (RIL → IL4 of block 3L).
const LOW_MAGNITUDE: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];

/// Upper band inverse quantizer output levels for the 2-bit code (QQ2 × sign).
const HIGH_LEVEL: [i32; 4] = [-7408, -1616, 7408, 1616];
/// Upper band log scale factor multipliers (Table 9 "WH"), indexed through `HIGH_MAGNITUDE`.
const HIGH_LOG_STEP: [i32; 3] = [0, -214, 798];
const HIGH_MAGNITUDE: [usize; 4] = [2, 1, 2, 1];
/// Upper band decision level: Q12 of the scale factor.
const HIGH_DECISION: i32 = 564;

/// Antilog table of the scale factor (Table 10 "ILB"): 2^(i/32) in Q11.
const ANTILOG: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

fn saturate(value: i32) -> i32 {
    value.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// Which sub-band: they differ only in their scale factor constants.
#[derive(Clone, Copy)]
enum SubBand {
    Lower,
    Upper,
}

impl SubBand {
    /// Upper limit of the log scale factor (blocks 3L/3H "LIMIT"): 18432 and 22528.
    fn max_log_scale(self) -> i32 {
        match self {
            SubBand::Lower => 18432,
            SubBand::Upper => 22528,
        }
    }

    /// Shift offset of SCALEL/SCALEH: the lower band's scale factor is 4 times finer.
    fn scale_shift(self) -> i32 {
        match self {
            SubBand::Lower => 8,
            SubBand::Upper => 10,
        }
    }

    /// Initial scale factor (DETL = 32, DETH = 8, §6.3 "reset").
    fn initial_scale(self) -> i32 {
        match self {
            SubBand::Lower => 32,
            SubBand::Upper => 8,
        }
    }
}

/// The ADPCM state of one sub-band, shared by encoder and decoder (they must track each other
/// exactly, so both run this same code on the same quantized differences).
#[derive(Clone, Debug)]
struct Band {
    /// Log scale factor (NBL/NBH) and scale factor (DETL/DETH).
    log_scale: i32,
    scale: i32,
    /// Signal estimate (SL/SH) = pole part (SPL) + zero part (SZL).
    estimate: i32,
    pole_part: i32,
    zero_part: i32,
    /// Reconstructed signal (RLT) and partially reconstructed signal (PLT), current and 2 past.
    reconstructed: [i32; 3],
    partial: [i32; 3],
    /// Second-order pole predictor coefficients AL1, AL2 (index 0 unused).
    poles: [i32; 3],
    /// Quantized difference (DLT), current and 6 past, and the sixth-order zero predictor
    /// coefficients BL1..BL6 (index 0 unused).
    differences: [i32; 7],
    zeros: [i32; 7],
}

impl Band {
    fn new(band: SubBand) -> Band {
        Band {
            log_scale: 0,
            scale: band.initial_scale(),
            estimate: 0,
            pole_part: 0,
            zero_part: 0,
            reconstructed: [0; 3],
            partial: [0; 3],
            poles: [0; 3],
            differences: [0; 7],
            zeros: [0; 7],
        }
    }

    /// LOGSCL/LOGSCH then SCALEL/SCALEH: adapts the scale factor to the magnitude class of the
    /// code just sent or received.
    fn adapt_scale(&mut self, band: SubBand, log_step: i32) {
        // Leaky log-domain integrator: decays by 127/128 per sample.
        let log_scale = ((self.log_scale * 127) >> 7) + log_step;
        self.log_scale = log_scale.clamp(0, band.max_log_scale());
        // Antilog: the low 5 bits of the integer part index the table, the rest is a shift.
        let mantissa = ANTILOG[((self.log_scale >> 6) & 31) as usize];
        let shift = band.scale_shift() - (self.log_scale >> 11);
        let scale = if shift >= 0 {
            mantissa >> shift
        } else {
            mantissa << -shift
        };
        self.scale = scale << 2;
    }

    /// Block 4: reconstruction, predictor adaptation and the next signal estimate, from the
    /// quantized difference `difference`.
    fn adapt_predictor(&mut self, difference: i32) {
        // RECONS and PARREC.
        let reconstructed = saturate(self.estimate + difference);
        let partial = saturate(self.zero_part + difference);

        // UPPOL2: the second pole coefficient follows the sign correlation of the partial
        // reconstructions, with leakage; its bound keeps the filter stable.
        let negative = |x: i32| x < 0;
        let same_1 = negative(partial) == negative(self.partial[1]);
        let same_2 = negative(partial) == negative(self.partial[2]);
        let a1_times_4 = saturate(self.poles[1] << 2);
        let correction = if same_1 { -a1_times_4 } else { a1_times_4 }.min(32767);
        let pole_2 =
            (correction >> 7) + if same_2 { 128 } else { -128 } + ((self.poles[2] * 32512) >> 15);
        let pole_2 = pole_2.clamp(-12288, 12288);

        // UPPOL1, bounded by 15360 − |AL2| (the stability triangle).
        let pole_1 = saturate(if same_1 { 192 } else { -192 } + ((self.poles[1] * 32640) >> 15));
        let bound = saturate(15360 - pole_2);
        let pole_1 = pole_1.clamp(-bound, bound);

        // UPZERO: each zero coefficient moves towards the sign agreement of the current and the
        // past differences (not at all when the difference is zero), with leakage.
        let step = if difference == 0 { 0 } else { 128 };
        for (zero, &past) in self.zeros[1..].iter_mut().zip(&self.differences[1..]) {
            let agree = negative(difference) == negative(past);
            let nudge = if agree { step } else { -step };
            *zero = saturate(nudge + ((*zero * 32640) >> 15));
        }

        // DELAYA: age the histories.
        self.differences.copy_within(0..6, 1);
        self.differences[1] = difference;
        self.reconstructed = [0, reconstructed, self.reconstructed[1]];
        self.partial = [0, partial, self.partial[1]];
        self.poles = [0, pole_1, pole_2];

        // FILTEP: pole section on the two past reconstructed samples.
        let pole_term = |a: i32, r: i32| (a * saturate(r + r)) >> 15;
        self.pole_part = saturate(
            pole_term(self.poles[1], self.reconstructed[1])
                + pole_term(self.poles[2], self.reconstructed[2]),
        );
        // FILTEZ: zero section on the six past differences.
        let zero_part: i32 = (1..7)
            .map(|i| (self.zeros[i] * saturate(self.differences[i] + self.differences[i])) >> 15)
            .sum();
        self.zero_part = saturate(zero_part);
        // PREDIC.
        self.estimate = saturate(self.pole_part + self.zero_part);
    }
}

/// G.722 decoder state: both sub-bands and the receive QMF's history.
#[derive(Clone, Debug)]
pub(crate) struct Decoder {
    lower: Band,
    upper: Band,
    /// The last 12 sums (lower + upper) and differences (lower − upper) fed to the QMF, oldest
    /// first.
    qmf_sums: [i32; 12],
    qmf_differences: [i32; 12],
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder {
            lower: Band::new(SubBand::Lower),
            upper: Band::new(SubBand::Upper),
            qmf_sums: [0; 12],
            qmf_differences: [0; 12],
        }
    }
}

impl Decoder {
    /// Decodes `payload` (one code word per byte) into two samples per byte at 16 kHz.
    pub(crate) fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize> {
        let needed = payload.len() * 2;
        check_output("G722", needed, out)?;
        for (&code, pair) in payload.iter().zip(out.chunks_exact_mut(2)) {
            let (first, second) = self.decode_code(code);
            pair[0] = first;
            pair[1] = second;
        }
        Ok(needed)
    }

    fn decode_code(&mut self, code: u8) -> (i16, i16) {
        let low_code = usize::from(code & 0x3f);
        let high_code = usize::from(code >> 6);

        // Lower band. INVQBL with the full 6 bits gives the output; RECONS and LIMIT.
        let band = &mut self.lower;
        let low_output = (band.scale * LOW_LEVEL_6[low_code]) >> 15;
        let low_signal = (band.estimate + low_output).clamp(-16384, 16383);
        // INVQAL with the 4-bit truncation drives the adaptation.
        let truncated = low_code >> 2;
        let low_difference = (band.scale * LOW_LEVEL_4[truncated]) >> 15;
        band.adapt_scale(SubBand::Lower, LOW_LOG_STEP[LOW_MAGNITUDE[truncated]]);
        band.adapt_predictor(low_difference);

        // Upper band: INVQAH, RECONS, LIMIT, then the same adaptation.
        let band = &mut self.upper;
        let high_difference = (band.scale * HIGH_LEVEL[high_code]) >> 15;
        let high_signal = (band.estimate + high_difference).clamp(-16384, 16383);
        band.adapt_scale(SubBand::Upper, HIGH_LOG_STEP[HIGH_MAGNITUDE[high_code]]);
        band.adapt_predictor(high_difference);

        // Receive QMF: interpolate both bands to 16 kHz and recombine; each output sample is one
        // polyphase branch of the 24-tap filter.
        self.qmf_sums.copy_within(1.., 0);
        self.qmf_sums[11] = low_signal + high_signal;
        self.qmf_differences.copy_within(1.., 0);
        self.qmf_differences[11] = low_signal - high_signal;
        let mut first = 0;
        let mut second = 0;
        for i in 0..12 {
            first += self.qmf_differences[i] * QMF[11 - i];
            second += self.qmf_sums[i] * QMF[i];
        }
        (saturate(first >> 11) as i16, saturate(second >> 11) as i16)
    }
}

/// G.722 encoder state: both sub-bands and the transmit QMF's history.
#[derive(Clone, Debug)]
pub(crate) struct Encoder {
    lower: Band,
    upper: Band,
    /// The last 12 pairs of input samples, oldest first: the earlier and the later of each pair.
    qmf_earlier: [i32; 12],
    qmf_later: [i32; 12],
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder {
            lower: Band::new(SubBand::Lower),
            upper: Band::new(SubBand::Upper),
            qmf_earlier: [0; 12],
            qmf_later: [0; 12],
        }
    }
}

impl Encoder {
    /// Encodes 16 kHz samples, two per output byte.
    pub(crate) fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<()> {
        if !pcm.len().is_multiple_of(2) {
            return Err(Error::EncoderInput {
                codec: "G722",
                samples: pcm.len(),
                problem: "one code word carries a pair of samples: the count must be even",
            });
        }
        out.extend(
            pcm.chunks_exact(2)
                .map(|pair| self.encode_pair(pair[0], pair[1])),
        );
        Ok(())
    }

    fn encode_pair(&mut self, earlier: i16, later: i16) -> u8 {
        // Transmit QMF: split into the lower and upper band at 8 kHz.
        self.qmf_earlier.copy_within(1.., 0);
        self.qmf_earlier[11] = i32::from(earlier);
        self.qmf_later.copy_within(1.., 0);
        self.qmf_later[11] = i32::from(later);
        let mut odd = 0;
        let mut even = 0;
        for i in 0..12 {
            odd += self.qmf_earlier[i] * QMF[i];
            even += self.qmf_later[i] * QMF[11 - i];
        }
        let low_input = (even + odd) >> 14;
        let high_input = (even - odd) >> 14;

        // Lower band: SUBTRA, then QUANTL — find the interval of |el| among the scaled
        // decision levels (the one's-complement magnitude keeps the quantizer symmetric).
        let band = &mut self.lower;
        let error = saturate(low_input - band.estimate);
        let magnitude = if error >= 0 { error } else { -(error + 1) };
        let interval = (1..30)
            .find(|&i| magnitude < (LOW_DECISION[i] * band.scale) >> 12)
            .unwrap_or(30);
        let low_code = if error < 0 {
            LOW_CODE_NEGATIVE[interval]
        } else {
            LOW_CODE_POSITIVE[interval]
        };
        let truncated = (low_code >> 2) as usize;
        let low_difference = (band.scale * LOW_LEVEL_4[truncated]) >> 15;
        band.adapt_scale(SubBand::Lower, LOW_LOG_STEP[LOW_MAGNITUDE[truncated]]);
        band.adapt_predictor(low_difference);

        // Upper band: SUBTRA, QUANTH (one decision level), then the shared adaptation.
        let band = &mut self.upper;
        let error = saturate(high_input - band.estimate);
        let magnitude = if error >= 0 { error } else { -(error + 1) };
        let large = magnitude >= (HIGH_DECISION * band.scale) >> 12;
        let high_code: usize = match (error < 0, large) {
            (true, true) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (false, false) => 3,
        };
        let high_difference = (band.scale * HIGH_LEVEL[high_code]) >> 15;
        band.adapt_scale(SubBand::Upper, HIGH_LOG_STEP[HIGH_MAGNITUDE[high_code]]);
        band.adapt_predictor(high_difference);

        ((high_code as u8) << 6) | low_code as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::{goertzel, tone};

    fn round_trip(input: &[i16]) -> Vec<i16> {
        let mut payload = Vec::new();
        Encoder::default().encode(input, &mut payload).unwrap();
        assert_eq!(payload.len(), input.len() / 2);
        let mut out = vec![0i16; input.len()];
        let count = Decoder::default().decode(&payload, &mut out).unwrap();
        assert_eq!(count, input.len());
        out
    }

    fn samples(bytes: &[u8]) -> Vec<i16> {
        let (pairs, _) = bytes.as_chunks::<2>();
        pairs.iter().map(|&pair| i16::from_le_bytes(pair)).collect()
    }

    #[test]
    fn encoder_matches_the_reference_bitstream() {
        let input = samples(include_bytes!("../fixtures/g722/input.s16le"));
        let mut payload = Vec::new();
        Encoder::default().encode(&input, &mut payload).unwrap();
        let expected = include_bytes!("../fixtures/g722/encoded.g722");
        assert_eq!(payload.len(), expected.len());
        let first_difference = payload.iter().zip(expected).position(|(a, b)| a != b);
        assert_eq!(first_difference, None);
    }

    #[test]
    fn decoder_matches_the_reference_output() {
        let encoded = include_bytes!("../fixtures/g722/encoded.g722");
        let expected = samples(include_bytes!("../fixtures/g722/decoded.s16le"));
        let mut decoder = Decoder::default();
        let mut out = vec![0i16; expected.len()];
        // In 20 ms packets, as they arrive: the state carries across packets.
        for (packet, samples) in encoded.chunks(160).zip(out.chunks_mut(320)) {
            decoder.decode(packet, samples).unwrap();
        }
        let first_difference = out.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(first_difference, None);
    }

    #[test]
    fn silence_stays_nearly_silent() {
        // ADPCM has idle channel noise: the quantizer has no zero level, so the predictor
        // dithers by a few LSBs around zero.
        let out = round_trip(&[0i16; 3200]);
        assert!(out.iter().all(|&s| s.abs() <= 8), "{out:?}");
    }

    #[test]
    fn decoded_signal_tracks_the_input_after_the_qmf_delay() {
        // The two QMFs together delay the signal by 22 samples (11 each); after that the
        // waveform, not only its spectrum, must match: 64 kbit/s ADPCM is near-transparent for
        // tones. Two tones, so that no other delay lines the waveforms up.
        let input: Vec<i16> = tone(440.0, 5000.0, 16000, 0.5)
            .iter()
            .zip(tone(1700.0, 3000.0, 16000, 0.5))
            .map(|(a, b)| a + b)
            .collect();
        let out = round_trip(&input);
        const DELAY: usize = 22;
        let start = 1600;
        let (mut error, mut signal) = (0.0, 0.0);
        for n in start..input.len() {
            error += (f64::from(out[n]) - f64::from(input[n - DELAY])).powi(2);
            signal += f64::from(input[n - DELAY]).powi(2);
        }
        let snr = 10.0 * (signal / error).log10();
        assert!(snr > 30.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn a_tone_in_the_upper_band_comes_out_at_its_frequency_not_its_mirror() {
        // 6 kHz lives in the upper band only; a QMF with swapped branches would put it at its
        // mirror image around 4 kHz (2 kHz).
        let out = round_trip(&tone(6000.0, 8000.0, 16000, 0.5));
        let settled = &out[1600..];
        let wanted = goertzel(settled, 16000, 6000.0);
        let mirror = goertzel(settled, 16000, 2000.0);
        assert!(wanted > 3000.0, "6 kHz at {wanted:.0}");
        assert!(wanted > 10.0 * mirror, "mirror at {mirror:.0}");
    }

    #[test]
    fn every_code_word_decodes_without_overflow() {
        // Long runs of every extreme code drive the scale factors and predictors to their
        // limits; the fixed-point arithmetic must stay in range (overflow panics in debug).
        let mut decoder = Decoder::default();
        let mut out = [0i16; 2 * 256];
        for code in 0..=255u8 {
            for _ in 0..50 {
                decoder.decode(&[code; 256], &mut out).unwrap();
            }
        }
        let mut encoder = Encoder::default();
        let mut payload = Vec::new();
        for input in [[i16::MAX; 640], [i16::MIN; 640]] {
            encoder.encode(&input, &mut payload).unwrap();
        }
        let alternating: Vec<i16> = (0..640)
            .map(|n| if n % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        encoder.encode(&alternating, &mut payload).unwrap();
    }

    #[test]
    fn odd_encoder_input_is_refused() {
        let mut payload = Vec::new();
        assert!(Encoder::default().encode(&[0; 3], &mut payload).is_err());
    }

    #[test]
    fn short_output_is_refused_before_writing() {
        let mut decoder = Decoder::default();
        let mut out = [9i16; 5];
        assert!(decoder.decode(&[0xff; 3], &mut out).is_err());
        assert_eq!(out, [9; 5]);
    }
}
