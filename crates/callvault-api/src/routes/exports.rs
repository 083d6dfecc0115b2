//! Export packages: asked for, watched, downloaded, removed. The building is in
//! [`crate::export`].
//!
//! Who: the `export` permission (compliance, admin) asks for a package and sees its own; an
//! admin (`manage_users`) sees and removes every package of its scope. The recordings are
//! chosen when the package is asked for, within the caller's scope: by `ids` (each must be
//! visible), by `filter` (the search's filters), or, with neither, every recording the caller
//! may see — tombstones included (they appear in the tables as deleted, without audio).
//! Asking is audited (`export`), and so is every download (`download`, naming the package).

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use callvault_catalog::{AuditAction, Export, ExportState, NewExport, Permission, SearchQuery};
use http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, RANGE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audio::{Format, PlayParams, blocking, starts_playback};
use super::recordings::SearchParams;
use super::{audit, now, tags};
use crate::audio::{ChunkSource, RangedAudio, content_disposition, ranged_response};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::export::{self, Layout};
use crate::extract::{Json, Path, Query};
use crate::reason;
use crate::response::ErrorBody;
use crate::settings::ReasonAction;
use crate::state::ApiState;

/// The most recordings one package holds.
pub(crate) const MAX_RECORDINGS: usize = 10_000;

/// `legs` (one file per leg) or `mixed` (the legs mixed to mono, one file per recording).
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Channels {
    Legs,
    #[default]
    Mixed,
}

impl From<Channels> for Layout {
    fn from(channels: Channels) -> Layout {
        match channels {
            Channels::Legs => Layout::Legs,
            Channels::Mixed => Layout::Mixed,
        }
    }
}

/// A package to build.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewExportBody {
    /// What to call it (1-200 characters); also the download's file name.
    name: String,
    /// The recordings, by id (1 to 10,000, each visible to the caller). Not with `filter`.
    ids: Option<Vec<String>>,
    /// The recordings the search would find with these filters (no `limit`, no `cursor`).
    /// Neither `ids` nor `filter`: every recording the caller may see.
    filter: Option<SearchParams>,
    /// `wav` (default) or `mp3`.
    #[serde(default)]
    format: Format,
    /// `mixed` (default) or `legs`.
    #[serde(default)]
    channels: Channels,
    /// An age X25519 recipient (`age1…`): the package is then a `.zip.age` only its
    /// identity opens (`age -d -i key.txt`).
    encrypt_to: Option<String>,
    /// Why; required where `[api] require_reason` lists `download`.
    reason: Option<String>,
}

/// An export package.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExportBody {
    id: String,
    name: String,
    /// `queued`, `running`, `ready`, `failed` or `expired`.
    state: String,
    /// 0 to 1 (files written of the package's files).
    progress: f64,
    /// Until when it can be downloaded (set once ready).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>)]
    expires_at: Option<time::OffsetDateTime>,
    /// Files in the package (once ready): audio, `recordings.csv`, `recordings.json`,
    /// `manifest.json`.
    files: Option<i64>,
    /// Size of the package's file (once ready).
    bytes: Option<i64>,
    /// SHA-256 (hex) of the package's file, as downloaded (once ready).
    sha256: Option<String>,
    owner: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    created_at: time::OffsetDateTime,
    format: String,
    channels: String,
    /// The age recipient it is encrypted to.
    encrypt_to: Option<String>,
    /// How many recordings it holds.
    recordings: usize,
    /// Why it failed.
    error: Option<String>,
    /// Where to download it (once ready).
    download: String,
}

impl From<Export> for ExportBody {
    fn from(export: Export) -> ExportBody {
        ExportBody {
            progress: export.progress(),
            download: format!("{}/exports/{}/download", crate::PREFIX, export.id),
            recordings: export.recording_ids.len(),
            state: export.state.as_str().to_owned(),
            id: export.id,
            name: export.name,
            expires_at: export.expires_at,
            files: export.files,
            bytes: export.bytes,
            sha256: export.sha256,
            owner: export.owner,
            created_at: export.created_at,
            format: export.format,
            channels: export.channels,
            encrypt_to: export.encrypt_to,
            error: export.error,
        }
    }
}

/// The ids a package holds and how they were chosen (for the audit entry).
async fn choose(
    state: &ApiState,
    caller: &Caller,
    ids: Option<Vec<String>>,
    filter: Option<SearchParams>,
) -> Result<(Vec<String>, String)> {
    let scope = caller.scope();
    if let Some(ids) = ids {
        if ids.is_empty() || ids.len() > MAX_RECORDINGS {
            return Err(Error::Invalid {
                reason: format!("ids must name 1 to {MAX_RECORDINGS} recordings"),
            });
        }
        let mut seen = HashSet::new();
        let mut chosen = Vec::with_capacity(ids.len());
        for id in ids {
            if !seen.insert(id.clone()) {
                continue;
            }
            // Unknown or another tenant's: 404, as everywhere.
            super::recording(state, caller, &id).await?;
            chosen.push(id);
        }
        let how = format!("{} id(s)", chosen.len());
        return Ok((chosen, how));
    }
    let (query, how) = match filter {
        Some(filter) => {
            if filter.limit.is_some() || filter.cursor.is_some() {
                return Err(Error::Invalid {
                    reason: "a filter takes no limit or cursor".to_owned(),
                });
            }
            let how = format!("filter {filter:?}");
            (filter.query()?, how)
        }
        None => (SearchQuery::default(), "all the caller may see".to_owned()),
    };
    let mut query = SearchQuery {
        limit: SearchQuery::MAX_LIMIT,
        ..query
    };
    let mut chosen = Vec::new();
    loop {
        let page = state.catalog().search(&scope, &query).await?;
        chosen.extend(page.items.into_iter().map(|item| item.recording.id));
        if chosen.len() > MAX_RECORDINGS {
            return Err(Error::Invalid {
                reason: format!(
                    "more than {MAX_RECORDINGS} recordings match: narrow the filter or make \
                     several packages"
                ),
            });
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    // Oldest first reads better in a package than the search's newest first.
    chosen.reverse();
    Ok((chosen, how))
}

/// Asks for a package: answered at once (202) while it is built in the background; follow it
/// with `GET /exports/{id}`.
#[utoipa::path(
    post,
    path = "/exports",
    tag = tags::EXPORTS,
    request_body = NewExportBody,
    responses(
        (status = 202, description = "Queued", body = ExportBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "An id unknown or another tenant's", body = ErrorBody),
        (status = 422, description = "Both ids and filter, too many recordings, a bad name or recipient, or no reason where one is required", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<NewExportBody>,
) -> Result<Response> {
    caller.require(Permission::Export, "build export packages")?;
    let reason = reason::require(
        state.settings(),
        ReasonAction::Download,
        &headers,
        body.reason,
    )?;
    if body.ids.is_some() && body.filter.is_some() {
        return Err(Error::Invalid {
            reason: "give ids or filter, not both".to_owned(),
        });
    }
    if let Some(recipient) = &body.encrypt_to {
        recipient
            .parse::<age::x25519::Recipient>()
            .map_err(|_| Error::Invalid {
                reason: "encrypt_to must be an age X25519 recipient (age1…)".to_owned(),
            })?;
    }
    let (ids, chosen_by) = choose(&state, &caller, body.ids, body.filter).await?;
    let format = crate::audio::ExportFormat::from(body.format);
    let export = state
        .catalog()
        .insert_export(
            &NewExport {
                id: uuid_like()?,
                name: body.name,
                owner: caller.user.name.clone(),
                tenant: caller.user.tenant.clone(),
                node_id: state.node_id().to_owned(),
                format: format.extension().to_owned(),
                channels: Layout::from(body.channels).as_str().to_owned(),
                encrypt_to: body.encrypt_to,
                recording_ids: ids,
                created_at: now(&state),
                chosen_by,
                reason,
            },
            &caller.actor(),
        )
        .await?;
    export::spawn(&state, export.clone());
    Ok((StatusCode::ACCEPTED, axum::Json(ExportBody::from(export))).into_response())
}

/// A random id for a package (128 bits, hex): it names its file too.
fn uuid_like() -> Result<String> {
    let mut bytes = [0_u8; 16];
    getrandom::fill(&mut bytes).map_err(|source| Error::Random { source })?;
    Ok(hex::encode(bytes))
}

/// The package `id` if the caller may see it: its owner, or an admin of its scope.
async fn visible(state: &ApiState, caller: &Caller, id: &str) -> Result<Export> {
    caller.require(Permission::Export, "see export packages")?;
    let export = state
        .catalog()
        .export(&caller.scope(), id)
        .await?
        .filter(|e| e.owner == caller.user.name || caller.user.role.allows(Permission::ManageUsers))
        .ok_or(Error::NotFound {
            what: "export package",
        })?;
    export::current(state, export).await
}

/// The caller's packages (an admin's: every package of its scope), newest first.
#[utoipa::path(
    get,
    path = "/exports",
    tag = tags::EXPORTS,
    responses(
        (status = 200, body = [ExportBody]),
        (status = 403, body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Vec<ExportBody>>> {
    caller.require(Permission::Export, "see export packages")?;
    let owner =
        (!caller.user.role.allows(Permission::ManageUsers)).then_some(caller.user.name.as_str());
    let mut out = Vec::new();
    for export in state.catalog().exports(&caller.scope(), owner).await? {
        out.push(ExportBody::from(export::current(&state, export).await?));
    }
    Ok(axum::Json(out))
}

/// One package: its state and progress, and once ready its size, digest and expiry.
#[utoipa::path(
    get,
    path = "/exports/{id}",
    tag = tags::EXPORTS,
    params(("id" = String, Path, description = "Export id")),
    responses(
        (status = 200, body = ExportBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn details(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<ExportBody>> {
    Ok(axum::Json(ExportBody::from(
        visible(&state, &caller, &id).await?,
    )))
}

/// Cancels a package being built, or removes a built one (its file goes at once).
#[utoipa::path(
    delete,
    path = "/exports/{id}",
    tag = tags::EXPORTS,
    params(("id" = String, Path, description = "Export id")),
    responses(
        (status = 204, description = "Cancelled or removed"),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let export = visible(&state, &caller, &id).await?;
    state.catalog().remove_export(&id).await?;
    state.export_jobs().cancel(&id);
    if export.node_id == state.node_id() {
        let data_dir = state.data_dir().to_owned();
        blocking(move || {
            export::remove_files(&data_dir, &export);
            Ok(())
        })
        .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The package file (`application/zip`, or `application/octet-stream` for a `.zip.age`), with
/// `Range` support; audited once per download from the first byte.
#[utoipa::path(
    get,
    path = "/exports/{id}/download",
    tag = tags::EXPORTS,
    params(("id" = String, Path, description = "Export id"), PlayParams),
    responses(
        (status = 200, description = "The package", content((Vec<u8> = "application/zip"), (Vec<u8> = "application/octet-stream"))),
        (status = 206, description = "The range asked for", body = Vec<u8>),
        (status = 404, description = "Unknown, another user's, or its file is not on this node", body = ErrorBody),
        (status = 409, description = "Not ready (queued, running or failed)", body = ErrorBody),
        (status = 410, description = "Expired: its file is removed", body = ErrorBody),
        (status = 416, description = "The range is past the end"),
    )
)]
pub(crate) async fn download(
    State(state): State<ApiState>,
    method: Method,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<PlayParams>,
    headers: HeaderMap,
) -> Result<Response> {
    let export = visible(&state, &caller, &id).await?;
    match export.state {
        ExportState::Ready => {}
        ExportState::Expired => {
            return Err(Error::Gone {
                what: "export package",
                how: "expired",
            });
        }
        state => return Err(Error::ExportNotReady { state }),
    }
    let reason = reason::require(
        state.settings(),
        ReasonAction::Download,
        &headers,
        params.reason,
    )?;
    let path = export::file_of(state.data_dir(), &export);
    let encrypted = export.encrypt_to.is_some();
    let range = headers.get(RANGE).cloned();
    let starts = starts_playback(&method, range.as_ref());
    let mut response = blocking(move || {
        let file = PackageFile::open(path, encrypted)?;
        ranged_response(file, range.as_ref())
    })
    .await?;
    let name = format!(
        "{}.{}",
        export.name,
        if encrypted { "zip.age" } else { "zip" }
    );
    let headers = response.headers_mut();
    headers.insert(CONTENT_DISPOSITION, content_disposition(&name));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if starts && response.status() != StatusCode::RANGE_NOT_SATISFIABLE {
        let detail = format!("export {} {:?}", export.id, export.name);
        audit(
            &state,
            &caller,
            AuditAction::Download,
            None,
            reason,
            Some(detail),
        )
        .await?;
    }
    Ok(response.map(Body::new))
}

/// A package's file, served by ranges like the audio.
struct PackageFile {
    path: PathBuf,
    file: std::fs::File,
    len: u64,
    encrypted: bool,
}

impl PackageFile {
    fn open(path: PathBuf, encrypted: bool) -> Result<PackageFile> {
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Ok(PackageFile {
            path,
            file,
            len,
            encrypted,
        })
    }
}

impl RangedAudio for PackageFile {
    fn byte_len(&self) -> u64 {
        self.len
    }

    fn content_type(&self) -> &'static str {
        if self.encrypted {
            "application/octet-stream"
        } else {
            "application/zip"
        }
    }

    fn into_body(self, range: Range<u64>) -> Result<Box<dyn ChunkSource>> {
        Ok(Box::new(FileRange {
            file: self,
            next: range.start,
            end: range.end,
        }))
    }
}

struct FileRange {
    file: PackageFile,
    next: u64,
    end: u64,
}

impl ChunkSource for FileRange {
    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        const CHUNK: u64 = 256 * 1024;
        let count = (self.end - self.next).min(CHUNK) as usize;
        if count == 0 {
            return Ok(None);
        }
        let io = |source| Error::Io {
            path: self.file.path.clone(),
            source,
        };
        let mut chunk = BytesMut::zeroed(count);
        self.file
            .file
            .seek(SeekFrom::Start(self.next))
            .map_err(io)?;
        self.file.file.read_exact(&mut chunk).map_err(io)?;
        self.next += count as u64;
        Ok(Some(chunk.freeze()))
    }

    fn exact_len(&self) -> Option<u64> {
        Some(self.end - self.next)
    }
}

/// Every package a test started has finished building.
#[cfg(test)]
pub(crate) async fn finished(state: &ApiState, id: &str) {
    state.export_jobs().finished(id).await;
}
