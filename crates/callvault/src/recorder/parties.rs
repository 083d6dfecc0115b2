//! Who is on the call: participants from the metadata (or the INVITE), the recording's
//! from/to, and which participant sends which leg.

use callvault_catalog as catalog;
use callvault_sip::Request;
use callvault_siprec::{self as siprec, Metadata, RecordingOffer, Sdp};

use super::session::LegSlot;

/// Participants from the metadata; without metadata (Cisco BIB, plain SDP), the parties of
/// the recording INVITE itself so the catalog still says who was on the call.
pub(super) fn participants_of(
    request: &Request,
    offer: &RecordingOffer,
) -> Vec<catalog::NewParticipant> {
    match &offer.metadata {
        Some(m) if !m.participants.is_empty() => m
            .participants
            .iter()
            .map(|p| catalog::NewParticipant {
                id: p.id.clone(),
                aor: p.aor.clone(),
                name: p.name.clone(),
            })
            .collect(),
        _ => vec![
            catalog::NewParticipant {
                id: "from".to_owned(),
                aor: Some(request.from_uri()),
                name: request.from_display_name(),
            },
            catalog::NewParticipant {
                id: "to".to_owned(),
                aor: Some(request.to_uri()),
                name: None,
            },
        ],
    }
}

/// The recording's `from`/`to`: the AORs of the participants sending the first two legs,
/// else the first two participants with an AOR, else the recording INVITE's From/To.
pub(super) fn parties(
    request: &Request,
    offer: &RecordingOffer,
    legs: &[catalog::NewLeg],
) -> (String, String) {
    let Some(metadata) = &offer.metadata else {
        return (request.from_uri(), request.to_uri());
    };
    let aor_of = |id: &str| {
        metadata
            .participants
            .iter()
            .find(|p| p.id == id)
            .and_then(|p| p.aor.clone())
    };
    let mut found: Vec<String> = legs
        .iter()
        .filter_map(|l| l.participant.as_deref().and_then(aor_of))
        .collect();
    found.dedup();
    for p in &metadata.participants {
        if let Some(aor) = &p.aor
            && !found.contains(aor)
        {
            found.push(aor.clone());
        }
    }
    let mut it = found.into_iter();
    (
        it.next().unwrap_or_else(|| request.from_uri()),
        it.next().unwrap_or_else(|| request.to_uri()),
    )
}

/// (participant, leg label) for every recorded leg a participant sends, per the binding rules.
pub(super) fn associations(
    sdp: &Sdp,
    metadata: Option<&Metadata>,
    legs: &[LegSlot],
) -> Vec<(String, String)> {
    siprec::bind_streams(sdp, metadata)
        .into_iter()
        .filter_map(|b| {
            let participant = b.participant_id?;
            match legs.get(b.media_index)? {
                LegSlot::Recording {
                    label,
                    removed: false,
                    ..
                } => Some((participant, label.clone())),
                _ => None,
            }
        })
        .collect()
}
