//! callvault's load generator: N SIPREC calls set up at R calls per second over UDP, two
//! PCMU streams per call at 20 ms for D seconds, then BYE; every recording verified in the
//! catalog; the measured process read from `/proc` (CPU, resident memory, writes).
//!
//! The same traffic can go to the floor receiver (`floor/floor.c`: epoll, recv, µ-law decode,
//! buffered append per stream, nothing else), so every report is a ratio taken on one machine
//! in one sitting (`scripts/bench` runs floor → server → floor).
//!
//! Design: the calls are tokio tasks over one SIP socket ([`signalling`]); their media is
//! sent by one thread on a common 20 ms tick ([`pacer`]), which also marks the full-load window
//! the per-packet figures are taken over. The generator's own cost never counts: only the
//! measured process's `/proc` times do.

#![warn(unreachable_pub)]

mod calls;
mod pacer;
mod proc_stats;
mod report;
mod signalling;
mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use calls::Outcome;
pub use proc_stats::Sample;
pub use report::{Figures, combine, summary};
pub use verify::Verified;

use pacer::Pacer;

/// What to load and for how long.
#[derive(Debug, Clone)]
pub struct Plan {
    pub calls: u32,
    /// New calls per second.
    pub rate: f64,
    /// Seconds of media per call.
    pub seconds: u32,
}

impl Plan {
    fn packets_per_stream(&self) -> u32 {
        self.seconds * 50
    }

    fn start_of(&self, call: u32) -> Duration {
        Duration::from_secs_f64(f64::from(call) / self.rate.max(0.001))
    }
}

/// Where the catalog of the server under test is, to verify its recordings.
#[derive(Debug, Clone)]
pub struct CatalogAt {
    pub database_url: String,
    pub data_dir: PathBuf,
}

impl CatalogAt {
    /// The SQLite catalog a server keeps in its data directory (the default).
    pub fn sqlite(data_dir: &std::path::Path) -> CatalogAt {
        CatalogAt {
            database_url: callvault_catalog::Catalog::sqlite_url(data_dir),
            data_dir: data_dir.to_owned(),
        }
    }
}

/// A run against a callvault server at `sip` (process `pid` when measured).
pub async fn run_server(
    plan: &Plan,
    sip: SocketAddr,
    pid: Option<u32>,
    catalog: Option<&CatalogAt>,
) -> anyhow::Result<(Figures, Vec<Outcome>, Option<Verified>)> {
    raise_open_files();
    let signalling = signalling::Signalling::open(sip).await?;
    let before = pid.map(Sample::read).transpose()?;
    let (pacer, handle) = Pacer::start(pid);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..plan.calls {
        tokio::time::sleep_until((start + plan.start_of(index)).into()).await;
        tasks.spawn(calls::siprec(
            signalling.clone(),
            index,
            plan.packets_per_stream(),
            start,
            handle.clone(),
        ));
    }
    drop(handle);
    let mut outcomes = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome.context("a call task panicked")?);
    }
    let totals = tokio::task::spawn_blocking(move || pacer.finish()).await?;
    let elapsed = start.elapsed();
    let after = pid.map(Sample::read).transpose()?;
    let verified = match catalog {
        Some(at) => Some(
            verify::verify(
                &at.database_url,
                &at.data_dir,
                &outcomes,
                Duration::from_secs(60),
            )
            .await?,
        ),
        None => None,
    };

    let mut figures = Figures::default();
    let ok = outcomes.iter().filter(|o| o.error.is_none()).count();
    figures.add("calls", f64::from(plan.calls), "calls");
    figures.add("calls_failed", (outcomes.len() - ok) as f64, "calls");
    let answered: Vec<Duration> = outcomes.iter().filter_map(|o| o.answered_at).collect();
    if let Some(last) = answered.iter().max() {
        figures.add(
            "setups_per_s",
            answered.len() as f64 / last.as_secs_f64().max(0.001),
            "calls/s",
        );
    }
    let mut setups: Vec<Duration> = outcomes.iter().filter_map(|o| o.setup).collect();
    figures.add("setup_p50_ms", percentile_ms(&mut setups, 0.50), "ms");
    figures.add("setup_p99_ms", percentile_ms(&mut setups, 0.99), "ms");
    let mut teardowns: Vec<Duration> = outcomes.iter().filter_map(|o| o.teardown).collect();
    figures.add("teardown_p99_ms", percentile_ms(&mut teardowns, 0.99), "ms");
    let sent: u64 = outcomes.iter().flat_map(|o| o.sent).map(u64::from).sum();
    figures.add("packets_sent", sent as f64, "packets");
    if let Some(v) = &verified {
        figures.add("packets_received", v.packets_received as f64, "packets");
        figures.add(
            "packets_lost",
            sent.saturating_sub(v.packets_received) as f64,
            "packets",
        );
        figures.add("recordings_verified", v.recordings as f64, "recordings");
        figures.add("recordings_failed", v.failed as f64, "recordings");
        let (least, most) = v.wav_excess.unwrap_or_default();
        // PCMU: 8 samples a millisecond.
        figures.add("wav_least_beyond_sent_ms", least as f64 / 8.0, "ms");
        figures.add("wav_most_beyond_sent_ms", most as f64 / 8.0, "ms");
    }
    measured_figures(
        &mut figures,
        &totals,
        before,
        after,
        elapsed,
        sent,
        ok as u64,
    );
    Ok((figures, outcomes, verified))
}

/// The same traffic sent to the floor receiver `floor` (spawned here, on ports from
/// `port_base`, writing under `dir`).
pub async fn run_floor(
    plan: &Plan,
    floor: &std::path::Path,
    port_base: u16,
    dir: &std::path::Path,
) -> anyhow::Result<Figures> {
    raise_open_files();
    let streams = plan.calls * 2;
    let mut child = spawn_floor(floor, port_base, streams, dir)?;
    let pid = child.id();
    let result = async {
        let before = Sample::read(pid)?;
        let (pacer, handle) = Pacer::start(Some(pid));
        let start = Instant::now();
        let ip: std::net::IpAddr = [127, 0, 0, 1].into();
        let mut waits = Vec::new();
        for index in 0..plan.calls {
            tokio::time::sleep_until((start + plan.start_of(index)).into()).await;
            let sockets = calls::bind_pair(ip)?;
            let port = |i: u32| port_base + u16::try_from(index * 2 + i).unwrap_or(u16::MAX);
            let targets = [
                Some(SocketAddr::new(ip, port(0))),
                Some(SocketAddr::new(ip, port(1))),
            ];
            waits.push(calls::stream(
                sockets,
                targets,
                plan.packets_per_stream(),
                index,
                &handle,
            ));
        }
        drop(handle);
        let mut sent = 0u64;
        for done in waits {
            sent += calls::sent(done)
                .await
                .iter()
                .map(|&s| u64::from(s))
                .sum::<u64>();
        }
        let totals = tokio::task::spawn_blocking(move || pacer.finish()).await?;
        let elapsed = start.elapsed();
        // What is still queued in the floor's sockets is read before it is asked to stop.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = Sample::read(pid)?;
        anyhow::Ok((totals, before, after, elapsed, sent))
    }
    .await;
    let received = stop_floor(&mut child)?;
    let (totals, before, after, elapsed, sent) = result?;
    let mut figures = Figures::default();
    figures.add("calls", f64::from(plan.calls), "calls");
    figures.add("packets_sent", sent as f64, "packets");
    figures.add("packets_received", received as f64, "packets");
    figures.add(
        "packets_lost",
        sent.saturating_sub(received) as f64,
        "packets",
    );
    measured_figures(
        &mut figures,
        &totals,
        Some(before),
        Some(after),
        elapsed,
        sent,
        u64::from(plan.calls),
    );
    Ok(figures)
}

#[allow(clippy::too_many_arguments)] // reason: one place turns a run's readings into figures
fn measured_figures(
    figures: &mut Figures,
    totals: &pacer::Totals,
    before: Option<Sample>,
    after: Option<Sample>,
    elapsed: Duration,
    sent: u64,
    calls: u64,
) {
    figures.add("send_errors", totals.send_errors as f64, "packets");
    figures.add(
        "generator_worst_tick_lag_ms",
        totals.worst_tick_lag.as_secs_f64() * 1000.0,
        "ms",
    );
    let (Some(before), Some(after)) = (before, after) else {
        return;
    };
    match &totals.window {
        Some(window) if window.packets > 0 => {
            let cpu = window.end.cpu_since(&window.start);
            figures.add(
                "cpu_per_packet_us",
                cpu.as_secs_f64() * 1e6 / window.packets as f64,
                "µs",
            );
            figures.add(
                "cpu_busy_percent",
                100.0 * cpu.as_secs_f64() / window.elapsed.as_secs_f64().max(0.001),
                "%",
            );
            figures.add("window_s", window.elapsed.as_secs_f64(), "s");
            // The load actually offered: below streams × 50 the generator could not keep up.
            figures.add(
                "window_packets_per_s",
                window.packets as f64 / window.elapsed.as_secs_f64().max(0.001),
                "packets/s",
            );
            figures.add("window_streams", window.streams as f64, "streams");
            let per_call = window.end.rss_kib.saturating_sub(before.rss_kib) as f64
                / (window.streams as f64 / 2.0).max(1.0);
            figures.add("rss_per_call_kib", per_call, "KiB");
        }
        _ => {
            // Calls ended before the last one started (D < N / R): no full-load window; the
            // whole run stands in, setups and teardowns included.
            let cpu = after.cpu_since(&before);
            figures.add(
                "cpu_per_packet_us",
                cpu.as_secs_f64() * 1e6 / (sent.max(1)) as f64,
                "µs",
            );
            figures.add("window_s", 0.0, "s");
        }
    }
    figures.add(
        "cpu_per_packet_whole_run_us",
        after.cpu_since(&before).as_secs_f64() * 1e6 / (sent.max(1)) as f64,
        "µs",
    );
    figures.add("rss_before_kib", before.rss_kib as f64, "KiB");
    figures.add("rss_peak_kib", after.peak_rss_kib as f64, "KiB");
    figures.add(
        "write_bytes_per_recording",
        after.write_bytes.saturating_sub(before.write_bytes) as f64 / calls.max(1) as f64,
        "bytes",
    );
    figures.add(
        "write_calls_per_recording",
        after.write_calls.saturating_sub(before.write_calls) as f64 / calls.max(1) as f64,
        "calls",
    );
    figures.add("run_s", elapsed.as_secs_f64(), "s");
}

fn percentile_ms(values: &mut [Duration], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort();
    let index = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[index].as_secs_f64() * 1000.0
}

/// Two sockets per call: a thousand calls need more descriptors than the usual soft limit.
fn raise_open_files() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let mut raised = limit;
    raised.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, raised);
}

fn spawn_floor(
    floor: &std::path::Path,
    port_base: u16,
    streams: u32,
    dir: &std::path::Path,
) -> anyhow::Result<Child> {
    use std::io::BufRead as _;
    let mut child = Command::new(floor)
        .arg(port_base.to_string())
        .arg(streams.to_string())
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the floor receiver {}", floor.display()))?;
    let stdout = child.stdout.as_mut().expect("stdout is piped");
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    if line.trim() != "ready" {
        let _ = child.kill();
        bail!("the floor receiver did not start: {line:?}");
    }
    Ok(child)
}

/// SIGTERM, then the floor's last line: `packets N`.
fn stop_floor(child: &mut Child) -> anyhow::Result<u64> {
    use std::io::Read as _;
    let pid =
        rustix::process::Pid::from_raw(i32::try_from(child.id())?).context("the floor's pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_string(&mut out)?;
    child.wait()?;
    out.lines()
        .find_map(|l| l.strip_prefix("packets "))
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("the floor receiver's report: {out:?}"))
}
