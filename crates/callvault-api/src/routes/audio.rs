//! Playing and downloading: one leg with seeking, the legs mixed (WAV or MP3, mono or
//! stereo), several recordings in one zip. The audio itself comes from [`crate::audio`].
//!
//! Audit: a player seeks with one `Range` request per jump, so a play (or download) is
//! audited once per request that starts at the first byte (no `Range`, or `bytes=0-…`), not
//! per range; a HEAD (axum answers it with the GET's handler) sends no audio and is not
//! audited.

use std::path::{Component, Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use callvault_catalog::{AuditAction, Leg, Permission, RecordingDetails};
use http::header::{CONTENT_DISPOSITION, RANGE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::macros::format_description;
use utoipa::{IntoParams, ToSchema};

use super::{audit, media_recording, now, tags};
use crate::audio::{
    Channels, ExportFormat, LegAudio, MAX_BUCKETS, MixLeg, NameFields, Party, ZipEntry, ZipStream,
    content_disposition, download_response, leg_response, mix_response, mix_source,
};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};
use crate::reason;
use crate::response::ErrorBody;
use crate::settings::ReasonAction;
use crate::state::ApiState;

/// A reason as a query parameter (an `<audio>` element cannot send headers).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PlayParams {
    /// Why (or the `X-Callvault-Reason` header); required where `[api] require_reason` lists
    /// `play`.
    pub(crate) reason: Option<String>,
}

/// Whether a request sends audio from the first byte (a new play, not a seek or a HEAD).
pub(crate) fn starts_playback(method: &Method, range: Option<&HeaderValue>) -> bool {
    *method != Method::HEAD && starts_at_zero(range)
}

/// Whether a request with this `Range` starts at the first byte.
fn starts_at_zero(range: Option<&HeaderValue>) -> bool {
    let Some(range) = range else { return true };
    range
        .to_str()
        .ok()
        .and_then(|r| r.trim().strip_prefix("bytes="))
        .is_some_and(|specs| specs.trim_start().starts_with("0-"))
}

/// A leg's file, which the catalog names relative to the data dir.
fn leg_file(data_dir: &FsPath, leg: &Leg) -> Result<PathBuf> {
    let relative = FsPath::new(&leg.path);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        // Not written by callvault: never served.
        tracing::error!(path = %leg.path, "a leg path in the catalog leaves the data directory");
        return Err(Error::NotFound { what: "leg file" });
    }
    Ok(data_dir.join(relative))
}

/// Where to read a leg: its file on this node's disk while it is there; else its object once
/// uploaded; a leg of another node not uploaded yet is [`Error::NotArchived`] (503, retry: the
/// upload follows the call's end), never proxied to that node.
pub(crate) fn leg_audio(
    state: &ApiState,
    details: &RecordingDetails,
    leg: &Leg,
) -> Result<LegAudio> {
    let local = leg_file(state.data_dir(), leg)?;
    let Some(objects) = state.objects() else {
        return Ok(LegAudio::File(local));
    };
    if local.exists() {
        return Ok(LegAudio::File(local));
    }
    let recording = &details.item.recording;
    match &leg.object_key {
        Some(key) => Ok(LegAudio::Object {
            objects: objects.clone(),
            key: key.clone(),
        }),
        None => match recording.node_id.as_deref() {
            Some(node) if node != state.node_id() => Err(Error::NotArchived {
                recording_id: recording.id.clone(),
                node: node.to_owned(),
            }),
            _ => Ok(LegAudio::File(local)),
        },
    }
}

/// The leg named `label`; `@N` names the leg at position N (for labels that repeat).
fn find_leg<'a>(details: &'a RecordingDetails, label: &str) -> Result<&'a Leg> {
    let legs = &details.item.recording.legs;
    let mut labelled = legs.iter().filter(|leg| leg.label == label);
    match (labelled.next(), labelled.next()) {
        (Some(leg), None) => return Ok(leg),
        (Some(_), Some(_)) => {
            return Err(Error::AmbiguousLeg {
                label: label.to_owned(),
            });
        }
        (None, _) => {}
    }
    label
        .strip_prefix('@')
        .and_then(|n| n.parse::<i64>().ok())
        .and_then(|position| legs.iter().find(|leg| leg.position == position))
        .ok_or(Error::NotFound { what: "leg" })
}

/// The legs to mix, each with its party. The first participant the recording lists is the
/// caller (SIPREC metadata and pass-through both list the originating party first), any other
/// the callee; a leg of no participant is heard on both channels. Without participants, the
/// first leg is the caller's and the second the callee's.
pub(super) fn mix_legs(state: &ApiState, details: &RecordingDetails) -> Result<Vec<MixLeg>> {
    let recording = &details.item.recording;
    if recording.legs.is_empty() {
        return Err(Error::NotFound { what: "audio" });
    }
    let caller = recording.participants.first().map(|p| p.id.as_str());
    recording
        .legs
        .iter()
        .enumerate()
        .map(|(i, leg)| {
            let party = match (&leg.participant, caller) {
                (Some(p), Some(c)) if p == c => Party::Caller,
                (Some(_), Some(_)) => Party::Callee,
                _ if recording.participants.is_empty() => match i {
                    0 => Party::Caller,
                    1 => Party::Callee,
                    _ => Party::Unknown,
                },
                _ => Party::Unknown,
            };
            Ok(MixLeg::new(leg_audio(state, details, leg)?, party))
        })
        .collect()
}

/// The download name of a recording's mix.
pub(super) fn file_name(
    state: &ApiState,
    details: &RecordingDetails,
    n: Option<u32>,
    ext: &str,
) -> String {
    let item = &details.item;
    let queue = details.custom.get("queue").and_then(Value::as_str);
    state.pattern().render(
        &NameFields {
            queue,
            started_at: Some(item.recording.started_at),
            from: Some(&item.recording.from),
            to: Some(&item.recording.to),
            session_id: Some(&item.recording.session_id),
            recording_id: Some(&item.recording.id),
            n,
            tenant: item.tenant.as_deref(),
            label: None,
        },
        ext,
    )
}

/// Opens a body on the blocking pool (file opens and header reads are blocking I/O).
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await?
}

/// One leg's WAV, for a player: `Range` requests are answered 206 with `Content-Range` (416
/// past the end), so the player can seek.
#[utoipa::path(
    get,
    path = "/recordings/{id}/legs/{label}/audio",
    tag = tags::AUDIO,
    params(
        ("id" = String, Path, description = "Recording id"),
        ("label" = String, Path, description = "The leg's label, or `@N` for the leg at position N"),
        PlayParams,
    ),
    responses(
        (status = 200, description = "The whole file", content_type = "audio/wav", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "audio/wav", body = Vec<u8>),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Several legs have this label: use `@N`", body = ErrorBody),
        (status = 410, description = "The recording is deleted", body = ErrorBody),
        (status = 416, description = "The range is past the end"),
        (status = 422, description = "A reason is required", body = ErrorBody),
    )
)]
pub(crate) async fn leg(
    State(state): State<ApiState>,
    method: Method,
    caller: Caller,
    Path((id, label)): Path<(String, String)>,
    Query(params): Query<PlayParams>,
    headers: HeaderMap,
) -> Result<Response> {
    caller.require(Permission::Play, "play recordings")?;
    let reason = reason::require(
        state.settings(),
        ReasonAction::Play,
        &headers,
        params.reason,
    )?;
    let details = media_recording(&state, &caller, &id).await?;
    let leg = find_leg(&details, &label)?;
    let path = leg_audio(&state, &details, leg)?;
    let range = headers.get(RANGE).cloned();
    let starts = starts_playback(&method, range.as_ref());
    let response = blocking(move || leg_response(&path, range.as_ref())).await?;
    if starts && response.status() != StatusCode::RANGE_NOT_SATISFIABLE {
        let detail = format!("leg {} ({})", leg.position, leg.label);
        audit(
            &state,
            &caller,
            AuditAction::Play,
            Some(&id),
            reason,
            Some(detail),
        )
        .await?;
    }
    Ok(response.map(Body::new))
}

/// `wav` or `mp3`.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    #[default]
    Wav,
    Mp3,
}

impl From<Format> for ExportFormat {
    fn from(format: Format) -> ExportFormat {
        match format {
            Format::Wav => ExportFormat::Wav,
            Format::Mp3 => ExportFormat::Mp3,
        }
    }
}

/// `mono` (every leg summed) or `stereo` (caller left, callee right).
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mix {
    #[default]
    Mono,
    Stereo,
}

impl From<Mix> for Channels {
    fn from(mix: Mix) -> Channels {
        match mix {
            Mix::Mono => Channels::Mono,
            Mix::Stereo => Channels::Stereo,
        }
    }
}

/// How to mix.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct MixParams {
    /// `wav` (default; with ranges) or `mp3`.
    #[param(inline)]
    format: Option<Format>,
    /// `mono` (default) or `stereo`.
    #[param(inline)]
    channels: Option<Mix>,
    /// `true`: to listen (needs the play permission, audited as `play`, no attachment
    /// header); otherwise a download (needs download, audited as `download`).
    play: Option<bool>,
    /// Why (or the `X-Callvault-Reason` header).
    reason: Option<String>,
}

/// The recording's legs mixed, as WAV (with ranges) or MP3, mono or stereo; a download carries
/// `Content-Disposition: attachment` with the name from `[api] filename_pattern`.
#[utoipa::path(
    get,
    path = "/recordings/{id}/audio",
    tag = tags::AUDIO,
    params(("id" = String, Path, description = "Recording id"), MixParams),
    responses(
        (status = 200, description = "The mix", content((Vec<u8> = "audio/wav"), (Vec<u8> = "audio/mpeg"))),
        (status = 206, description = "A range of the WAV mix", content_type = "audio/wav", body = Vec<u8>),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, description = "The recording is deleted", body = ErrorBody),
        (status = 422, description = "A reason is required", body = ErrorBody),
    )
)]
pub(crate) async fn mix(
    State(state): State<ApiState>,
    method: Method,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<MixParams>,
    headers: HeaderMap,
) -> Result<Response> {
    let play = params.play.unwrap_or(false);
    let (action, audited) = if play {
        caller.require(Permission::Play, "play recordings")?;
        (ReasonAction::Play, AuditAction::Play)
    } else {
        caller.require(Permission::Download, "download recordings")?;
        (ReasonAction::Download, AuditAction::Download)
    };
    let reason = reason::require(state.settings(), action, &headers, params.reason)?;
    let details = media_recording(&state, &caller, &id).await?;
    let legs = mix_legs(&state, &details)?;
    let format = ExportFormat::from(params.format.unwrap_or_default());
    let channels = Channels::from(params.channels.unwrap_or_default());
    let range = headers.get(RANGE).cloned();
    let starts = starts_playback(&method, range.as_ref())
        || (format == ExportFormat::Mp3 && method != Method::HEAD);
    let mut response =
        blocking(move || mix_response(&legs, format, channels, range.as_ref())).await?;
    if !play {
        let name = file_name(&state, &details, None, format.extension());
        response
            .headers_mut()
            .insert(CONTENT_DISPOSITION, content_disposition(&name));
    }
    if starts && response.status() != StatusCode::RANGE_NOT_SATISFIABLE {
        let detail = format!("{} {:?}", format.extension(), channels).to_lowercase();
        audit(&state, &caller, audited, Some(&id), reason, Some(detail)).await?;
    }
    Ok(response.map(Body::new))
}

/// Recordings to export together.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportBody {
    /// 1 to 100 recording ids.
    ids: Vec<String>,
    /// `wav` (default) or `mp3`.
    #[serde(default)]
    format: Format,
    /// `mono` (default) or `stereo`.
    #[serde(default)]
    channels: Mix,
    reason: Option<String>,
}

/// The most recordings one export packs.
const MAX_EXPORT: usize = 100;

/// Several recordings' mixes in one zip (entries stored, named from `[api] filename_pattern`
/// with `{n}` their number), streamed as it is written. (Export packages, built in the
/// background with the catalog's fields and a manifest, are `POST /exports`.)
#[utoipa::path(
    post,
    path = "/downloads",
    tag = tags::AUDIO,
    request_body = ExportBody,
    responses(
        (status = 200, description = "The archive", content_type = "application/zip", body = Vec<u8>),
        (status = 403, body = ErrorBody),
        (status = 404, description = "A recording that is unknown, another tenant's, or without audio", body = ErrorBody),
        (status = 410, description = "A deleted recording", body = ErrorBody),
        (status = 422, description = "No ids, too many, or no reason where one is required", body = ErrorBody),
    )
)]
pub(crate) async fn export(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<ExportBody>,
) -> Result<Response> {
    caller.require(Permission::Download, "download recordings")?;
    if body.ids.is_empty() || body.ids.len() > MAX_EXPORT {
        return Err(Error::Invalid {
            reason: format!("ids must name 1 to {MAX_EXPORT} recordings"),
        });
    }
    let reason = reason::require(
        state.settings(),
        ReasonAction::Download,
        &headers,
        body.reason,
    )?;
    let format = ExportFormat::from(body.format);
    let channels = Channels::from(body.channels);
    let mut entries = Vec::with_capacity(body.ids.len());
    let mut all_legs = Vec::new();
    for (n, id) in (1_u32..).zip(&body.ids) {
        let details = media_recording(&state, &caller, id).await?;
        let legs = mix_legs(&state, &details)?;
        all_legs.extend(legs.iter().map(|leg| leg.path.clone()));
        let name = file_name(&state, &details, Some(n), format.extension());
        entries.push(
            ZipEntry::new(name, move || mix_source(&legs, format, channels))
                .modified(details.item.recording.started_at),
        );
    }
    // Every file is there before the first byte goes out: a missing one midway would cut the
    // archive with nothing but a broken transfer to show for it.
    blocking(move || {
        for audio in all_legs {
            audio.check().map_err(|source| Error::Io {
                path: audio.shown(),
                source,
            })?;
        }
        Ok(())
    })
    .await?;
    for id in &body.ids {
        let detail = format!("zip {} {:?}", format.extension(), channels).to_lowercase();
        audit(
            &state,
            &caller,
            AuditAction::Download,
            Some(id),
            reason.clone(),
            Some(detail),
        )
        .await?;
    }
    let stamp = now(&state)
        .format(format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .unwrap_or_default();
    let mut response = download_response(ZipStream::new(entries), "application/zip");
    response.headers_mut().insert(
        CONTENT_DISPOSITION,
        content_disposition(&format!("callvault-export-{stamp}.zip")),
    );
    Ok(response.map(Body::new))
}

/// How many buckets of peaks.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PeaksParams {
    /// Buckets per leg, 1 to 4000 (default 1000).
    buckets: Option<u32>,
}

/// One leg's waveform lane.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LegPeaksBody {
    position: i64,
    label: String,
    sample_rate: u32,
    /// This leg's own length.
    duration_ms: u64,
    /// The loudest sample of each bucket, 0 (silence) to 255 (full scale).
    peaks: Vec<u8>,
}

/// Every leg's lane over one time axis.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PeaksBody {
    /// The span every lane covers (the longest leg): bucket `i` of every lane is the same
    /// `duration_ms / buckets` milliseconds.
    duration_ms: u64,
    buckets: usize,
    legs: Vec<LegPeaksBody>,
}

/// The default number of buckets.
const DEFAULT_BUCKETS: u32 = 1000;

/// Waveform peaks of every leg, computed from the files by the server so a player draws its
/// lanes without downloading the audio. Needs the play permission; not audited as a play (no
/// audio is sent).
#[utoipa::path(
    get,
    path = "/recordings/{id}/peaks",
    tag = tags::AUDIO,
    params(("id" = String, Path, description = "Recording id"), PeaksParams),
    responses(
        (status = 200, description = "One lane per leg, in position order", body = PeaksBody),
        (status = 400, description = "`buckets` out of 1 to 4000", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown, another tenant's, or a leg file missing", body = ErrorBody),
        (status = 410, description = "The recording is deleted", body = ErrorBody),
    )
)]
pub(crate) async fn peaks(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<PeaksParams>,
) -> Result<axum::Json<PeaksBody>> {
    caller.require(Permission::Play, "play recordings")?;
    let buckets = params.buckets.unwrap_or(DEFAULT_BUCKETS);
    if !(1..=MAX_BUCKETS as u32).contains(&buckets) {
        return Err(Error::BadRequest {
            reason: format!("buckets must be 1 to {MAX_BUCKETS}"),
        });
    }
    let details = media_recording(&state, &caller, &id).await?;
    let legs = &details.item.recording.legs;
    let files = legs
        .iter()
        .map(|leg| leg_audio(&state, &details, leg))
        .collect::<Result<Vec<_>>>()?;
    // A missing leg file is 404 `file_missing` (`Error::status`).
    let computed = blocking(move || crate::audio::peaks(&files, buckets as usize)).await?;
    Ok(axum::Json(PeaksBody {
        duration_ms: computed.duration_ms,
        buckets: buckets as usize,
        legs: legs
            .iter()
            .zip(computed.legs)
            .map(|(leg, lane)| LegPeaksBody {
                position: leg.position,
                label: leg.label.clone(),
                sample_rate: lane.sample_rate,
                duration_ms: lane.duration_ms,
                peaks: lane.peaks,
            })
            .collect(),
    }))
}
