//! The two relay legs as the SDPs say: the codec the answer chose, who sends, where from.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use callvault_catalog as catalog;
use callvault_media::{LegSpec, LegUpdate};
use callvault_siprec::{self as siprec, Direction};
use callvault_types::Party;

use super::super::answer::{codec_of, recordable_codec, sources_of};

/// The first audio m-line of an SDP that is not declined.
pub(super) fn first_audio(sdp: &siprec::Sdp) -> Option<siprec::Media> {
    sdp.media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)
        .cloned()
}

/// Whether the side whose SDP this is sends media (so its leg records sound, not silence).
fn sends(media: &siprec::Media) -> bool {
    matches!(media.direction, Direction::SendRecv | Direction::SendOnly)
        && media.connection.is_none_or(|ip| !ip.is_unspecified())
}

/// The leg recording what `side` sends: its codec is the answer's (what both ends use), its
/// sources its own SDP's.
#[allow(clippy::too_many_arguments)] // reason: one call site; a struct would only rename them
pub(super) fn leg_spec(
    side: Party,
    position: usize,
    media: &siprec::Media,
    answer: &siprec::Media,
    signalling: IpAddr,
    rel_dir: &std::path::Path,
    anchor: Instant,
    max_rate: u32,
    capture_dtmf: bool,
    rtp_timeout: Option<Duration>,
    since_start: Duration,
) -> (LegSpec, catalog::NewLeg) {
    let label = side.as_str();
    let path = rel_dir.join(format!("{label}.wav"));
    let (payload_type, codec, te) = negotiated(answer, max_rate);
    let mut spec = LegSpec::new(label, path.clone(), payload_type, codec, anchor);
    if let Some(te) = te {
        spec.telephone_event_pt = Some(te.payload_type);
        spec.telephone_event_clock = te.clock_rate;
    }
    spec.capture_dtmf = capture_dtmf;
    spec.inactivity_timeout = rtp_timeout;
    spec.sources = sources_of(media, signalling);
    spec.active = sends(media);
    let new_leg = catalog::NewLeg {
        position: position as i64,
        label: label.to_owned(),
        participant: Some(label.to_owned()),
        binding_rule: "passthrough".to_owned(),
        codec: codec.name().to_owned(),
        sample_rate: codec.sample_rate(),
        path: path.to_string_lossy().into_owned(),
        added_at_ms: i64::try_from(since_start.as_millis()).unwrap_or(i64::MAX),
    };
    (spec, new_leg)
}

pub(super) fn leg_update(
    media: &siprec::Media,
    answer: &siprec::Media,
    signalling: IpAddr,
    max_rate: u32,
) -> LegUpdate {
    let (payload_type, codec, te) = negotiated(answer, max_rate);
    let mut update = LegUpdate::new(payload_type, codec, sends(media));
    if let Some(te) = te {
        update.telephone_event_pt = Some(te.payload_type);
        update.telephone_event_clock = te.clock_rate;
    }
    update.sources = sources_of(media, signalling);
    update
}

/// The codec the answer chose (its first format we decode); PCMU when none is decodable: the
/// relay goes on, the leg records its packets as unknown payload.
fn negotiated(
    answer: &siprec::Media,
    max_rate: u32,
) -> (u8, callvault_media::Codec, Option<siprec::Format>) {
    match recordable_codec(answer, max_rate) {
        Some((format, codec)) => {
            let te = answer.telephone_event_for(&format).cloned();
            (format.payload_type, codec, te)
        }
        None => {
            let fallback = siprec::Format::from_static(0).and_then(|f| codec_of(&f));
            (
                0,
                fallback.unwrap_or(callvault_media::Codec::Pcmu),
                answer.telephone_event().cloned(),
            )
        }
    }
}
