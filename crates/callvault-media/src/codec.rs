//! Codecs: kinds and decoders come from `callvault-codec`; this module holds what a leg maps
//! payload types to.
//!
//! A codec has two rates that the pipeline keeps apart: the RTP clock its timestamps count in
//! ([`CodecKind::rtp_clock_rate`]) and the sample rate of its decoded audio
//! ([`CodecKind::sample_rate`]); they differ for G.722 (8000 / 16000). Samples per packet are
//! whatever the decoder returns, never assumed from the ptime.

pub use callvault_codec::CodecKind;

/// The codec of a leg. The media API's name for [`CodecKind`], kept so existing code compiles.
pub type Codec = CodecKind;

/// RTP payload type of comfort noise (RFC 3389): written as silence.
pub const COMFORT_NOISE_PT: u8 = 13;

/// One audio payload type of a leg and its codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AudioFormat {
    pub payload_type: u8,
    pub codec: Codec,
}
