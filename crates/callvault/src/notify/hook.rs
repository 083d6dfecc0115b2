//! The `on_complete` command: run for each final recording, as argv (no shell: nothing in a
//! recording's data can become shell syntax), in its own task so neither the SIP loop nor the
//! archive waits for it.
//!
//! The command gets the recording id and its folder (absolute) as its last two arguments, and
//! in its environment `CALLVAULT_EVENT`, `CALLVAULT_RECORDING_ID`, `CALLVAULT_RECORDING_DIR`,
//! `CALLVAULT_RECORDING_JSON` (the `recording.json` path) and `CALLVAULT_RECORDING_STATE`. Its
//! standard output and error are logged line by line (the first `MAX_LOGGED_LINES` of each);
//! a run past the timeout is killed. A failure (exit status, signal, timeout, not started) is
//! logged and counted, never retried.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use callvault_catalog::RecordingState;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use super::{Event, HooksConfig, NotifyStats};

/// Lines of each output stream logged per run; the rest are read and dropped.
const MAX_LOGGED_LINES: usize = 200;

pub struct Hook {
    argv: Arc<Vec<String>>,
    timeout: Duration,
    slots: Arc<Semaphore>,
    stats: Arc<NotifyStats>,
}

/// One run's inputs.
pub struct Run {
    pub event: Event,
    pub recording_id: String,
    pub state: RecordingState,
    /// The recording's folder, absolute or relative to the working directory.
    pub folder: PathBuf,
}

impl Hook {
    pub fn new(config: &HooksConfig, stats: &Arc<NotifyStats>) -> Hook {
        Hook {
            argv: Arc::new(config.on_complete.clone()),
            timeout: config.timeout(),
            slots: Arc::new(Semaphore::new(config.on_complete_max_concurrent)),
            stats: Arc::clone(stats),
        }
    }

    /// Starts a run in its own task (it waits for a free slot there).
    pub fn spawn(&self, run: Run) {
        let (argv, timeout, slots, stats) = (
            Arc::clone(&self.argv),
            self.timeout,
            Arc::clone(&self.slots),
            Arc::clone(&self.stats),
        );
        tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            stats.hook_runs_total.fetch_add(1, Ordering::Relaxed);
            let recording_id = run.recording_id.clone();
            if let Err(why) = execute(&argv, timeout, run).await {
                stats.hook_failures_total.fetch_add(1, Ordering::Relaxed);
                error!(recording_id = %recording_id, program = %argv[0], error = %why, "on_complete hook failed");
            }
        });
    }
}

async fn execute(argv: &[String], timeout: Duration, run: Run) -> Result<(), String> {
    let folder = std::path::absolute(&run.folder).unwrap_or(run.folder);
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .arg(&run.recording_id)
        .arg(&folder)
        .env("CALLVAULT_EVENT", run.event.as_str())
        .env("CALLVAULT_RECORDING_ID", &run.recording_id)
        .env("CALLVAULT_RECORDING_DIR", &folder)
        .env(
            "CALLVAULT_RECORDING_JSON",
            folder.join(super::record_file::NAME),
        )
        .env("CALLVAULT_RECORDING_STATE", run.state.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", argv[0]))?;
    let id = run.recording_id;
    let out = child
        .stdout
        .take()
        .map(|o| tokio::spawn(log_lines(o, id.clone(), false)));
    let err = child
        .stderr
        .take()
        .map(|e| tokio::spawn(log_lines(e, id.clone(), true)));
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.map_err(|e| format!("waiting for it: {e}"))?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!(
                "killed after {} s (on_complete_timeout_secs)",
                timeout.as_secs()
            ));
        }
    };
    for reader in [out, err].into_iter().flatten() {
        let _ = reader.await;
    }
    if status.success() {
        info!(recording_id = %id, "on_complete hook done");
        Ok(())
    } else {
        Err(format!("ended with {status}"))
    }
}

async fn log_lines(stream: impl AsyncRead + Unpin, recording_id: String, stderr: bool) {
    let mut lines = BufReader::new(stream).lines();
    let mut logged = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        if logged == MAX_LOGGED_LINES {
            continue;
        }
        logged += 1;
        if stderr {
            warn!(recording_id = %recording_id, "on_complete: {line}");
        } else {
            info!(recording_id = %recording_id, "on_complete: {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(folder: &std::path::Path) -> Run {
        Run {
            event: Event::Completed,
            recording_id: "r1".to_owned(),
            state: RecordingState::Complete,
            folder: folder.to_owned(),
        }
    }

    fn argv(script: &str) -> Vec<String> {
        ["/bin/sh", "-c", script, "hook"]
            .map(str::to_owned)
            .to_vec()
    }

    #[tokio::test]
    async fn the_command_gets_the_id_and_folder_as_arguments_and_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "printf '%s|' \"$1\" \"$2\" \"$CALLVAULT_EVENT\" \"$CALLVAULT_RECORDING_STATE\" > {}",
            out.display()
        );
        execute(&argv(&script), Duration::from_secs(30), run(dir.path()))
            .await
            .unwrap();
        let folder = dir.path().display();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            format!("r1|{folder}|recording.completed|complete|")
        );
    }

    #[tokio::test]
    async fn a_failing_or_missing_program_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let failed = execute(&argv("exit 3"), Duration::from_secs(30), run(dir.path()))
            .await
            .unwrap_err();
        assert!(failed.contains("exit status: 3"), "{failed}");
        let missing = execute(
            &["/nonexistent/hook".to_owned()],
            Duration::from_secs(30),
            run(dir.path()),
        )
        .await
        .unwrap_err();
        assert!(
            missing.starts_with("cannot start /nonexistent/hook"),
            "{missing}"
        );
    }

    /// On paused time: the timeout fires while the child still sleeps (it is killed).
    #[tokio::test(start_paused = true)]
    async fn a_run_past_its_timeout_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let error = execute(&argv("sleep 600"), Duration::from_secs(5), run(dir.path()))
            .await
            .unwrap_err();
        assert!(error.starts_with("killed after 5 s"), "{error}");
    }
}
