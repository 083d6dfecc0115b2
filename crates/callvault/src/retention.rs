//! The retention sweeper of `serve`: every `[retention] interval_s` (first at start), it applies
//! the retention policies, `[retention] days`, `max_bytes` and the audit period through
//! [`callvault_api::sweep`] — the same deletions as `callvault retention run` and as a user's
//! deletion (tombstones, audit entries as `policy:<name>` or `retention:config`, webhooks).
//! A sweep that fails (the catalog unreachable) is logged and tried again at the next tick.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use callvault_api::{RecordingEvents, RetentionSettings};
use callvault_catalog::Catalog;
use tracing::{info, warn};

/// Starts the sweeper; it runs until the runtime stops.
pub fn spawn_sweeper(
    catalog: Catalog,
    data_dir: PathBuf,
    objects: Option<callvault_objects::Objects>,
    settings: RetentionSettings,
    events: Arc<dyn RecordingEvents>,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(settings.interval_s));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = time::OffsetDateTime::now_utc();
            match callvault_api::sweep(
                &catalog,
                &data_dir,
                objects.as_ref(),
                &settings,
                &*events,
                now,
                true,
            )
            .await
            {
                Ok(report) => {
                    let deleted = report
                        .items
                        .iter()
                        .filter(|i| i.outcome == callvault_api::retention::Outcome::Deleted)
                        .count();
                    if deleted > 0 || report.audit_pruned > 0 {
                        info!(
                            deleted,
                            held = report
                                .items
                                .iter()
                                .filter(|i| i.item.held.is_some())
                                .count(),
                            audit_pruned = report.audit_pruned,
                            media_bytes = report.media_bytes,
                            "retention sweep"
                        );
                    }
                }
                Err(e) => warn!(error = %e, "retention sweep failed; trying again next interval"),
            }
        }
    });
}
