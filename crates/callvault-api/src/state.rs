//! [`ApiState`]: what every route works with, shared by all requests.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use callvault_catalog::Catalog;
use callvault_objects::Objects;

use crate::audio::FileNamePattern;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::events::{NoRecordingEvents, RecordingEvents};
use crate::export::Jobs;
use crate::live::LiveRecordings;
use crate::rate_limit::{ClientLimiter, LoginLimiter};
use crate::retention::RetentionSettings;
use crate::session::Sessions;
use crate::settings::ApiSettings;

/// The API's shared state; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Catalog,
    data_dir: PathBuf,
    settings: ApiSettings,
    pattern: FileNamePattern,
    live: Arc<dyn LiveRecordings>,
    events: Arc<dyn RecordingEvents>,
    retention: RetentionSettings,
    clock: Arc<dyn Clock>,
    /// The bucket legs are uploaded to (`[storage] backend = "s3"`).
    objects: Option<Objects>,
    sessions: Sessions,
    login_limiter: LoginLimiter,
    share_limiter: ClientLimiter,
    /// The node this API runs on: export packages are built and kept on it; a leg of
    /// another node not uploaded yet is not served here.
    node_id: String,
    export_jobs: Jobs,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("data_dir", &self.inner.data_dir)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// The state of an API serving `catalog`, whose leg paths are relative to `data_dir`, on
    /// the system clock. `settings` are validated ([`ApiSettings::validate`]).
    pub fn new(
        catalog: Catalog,
        data_dir: impl Into<PathBuf>,
        settings: ApiSettings,
        live: Arc<dyn LiveRecordings>,
    ) -> Result<ApiState> {
        ApiState::with_clock(catalog, data_dir, settings, live, Arc::new(SystemClock))
    }

    /// [`ApiState::new`] on another clock (tests move time by hand).
    pub fn with_clock(
        catalog: Catalog,
        data_dir: impl Into<PathBuf>,
        settings: ApiSettings,
        live: Arc<dyn LiveRecordings>,
        clock: Arc<dyn Clock>,
    ) -> Result<ApiState> {
        settings.validate()?;
        let pattern = settings.pattern()?;
        let rate = |n: u32| {
            NonZeroU32::new(n).ok_or_else(|| Error::Invalid {
                reason: "[api] login attempts per minute must be at least 1".to_owned(),
            })
        };
        let login_limiter = LoginLimiter::new(
            rate(settings.login_attempts_per_minute_per_client)?,
            rate(settings.login_attempts_per_minute_per_user)?,
            Arc::clone(&clock),
        );
        let share_limiter = ClientLimiter::new(
            rate(settings.share_requests_per_minute_per_client)?,
            Arc::clone(&clock),
        );
        Ok(ApiState {
            inner: Arc::new(Inner {
                catalog,
                data_dir: data_dir.into(),
                sessions: Sessions::new(settings.session_lifetime()),
                settings,
                pattern,
                live,
                events: Arc::new(NoRecordingEvents),
                retention: RetentionSettings::default(),
                clock,
                objects: None,
                login_limiter,
                share_limiter,
                node_id: "local".to_owned(),
                export_jobs: Jobs::default(),
            }),
        })
    }

    /// The same state on node `node_id` (`[node] id`): export packages record the node that
    /// builds them, and a node's start fails only its own interrupted ones. Call before
    /// serving.
    pub fn with_node(mut self, node_id: impl Into<String>) -> ApiState {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.node_id = node_id.into(),
            None => panic!("ApiState::with_node is called before the state is cloned"),
        }
        self
    }

    /// The same state telling `events` of every deletion, lock and unlock the routes commit.
    /// Call before serving (the state is shared once cloned).
    pub fn with_events(mut self, events: Arc<dyn RecordingEvents>) -> ApiState {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.events = events,
            None => panic!("ApiState::with_events is called before the state is cloned"),
        }
        self
    }

    /// The same state with `[retention]` (what the dry run reports beside the policies).
    /// Call before serving (the state is shared once cloned).
    pub fn with_retention(mut self, retention: RetentionSettings) -> ApiState {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.retention = retention,
            None => panic!("ApiState::with_retention is called before the state is cloned"),
        }
        self
    }

    /// The same state reading legs from `objects` once they were uploaded there, on the node
    /// `node_id` (a leg recorded on another node and not uploaded yet is answered 503
    /// `not_archived`). Call before serving.
    pub fn with_objects(mut self, objects: Objects, node_id: impl Into<String>) -> ApiState {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => {
                inner.objects = Some(objects);
                inner.node_id = node_id.into();
            }
            None => panic!("ApiState::with_objects is called before the state is cloned"),
        }
        self
    }

    pub fn retention(&self) -> &RetentionSettings {
        &self.inner.retention
    }

    pub fn objects(&self) -> Option<&Objects> {
        self.inner.objects.as_ref()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    pub fn settings(&self) -> &ApiSettings {
        &self.inner.settings
    }

    pub(crate) fn pattern(&self) -> &FileNamePattern {
        &self.inner.pattern
    }

    pub(crate) fn live(&self) -> &dyn LiveRecordings {
        &*self.inner.live
    }

    pub(crate) fn events(&self) -> &dyn RecordingEvents {
        &*self.inner.events
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    pub(crate) fn login_limiter(&self) -> &LoginLimiter {
        &self.inner.login_limiter
    }

    pub(crate) fn share_limiter(&self) -> &ClientLimiter {
        &self.inner.share_limiter
    }

    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub(crate) fn export_jobs(&self) -> &Jobs {
        &self.inner.export_jobs
    }
}
