use std::fs;
use std::path::Path;

use crossbeam_channel::{bounded, unbounded};
use sha2::{Digest, Sha256};

use super::*;
use crate::wav::MAX_RIFF_SIZE;

/// A writer driven by hand on synthetic instants; its closer runs on [`Harness::close_all`].
struct Harness {
    writer: Writer,
    closed: Receiver<Closed>,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    events_tx: mpsc::UnboundedSender<MediaEvent>,
    recycled: Receiver<Vec<i16>>,
    stats: Arc<SharedStats>,
}

fn harness() -> Harness {
    let (recycle, recycled) = bounded(16);
    let (closer, closed) = unbounded();
    let (events_tx, events) = mpsc::unbounded_channel();
    let stats = Arc::new(SharedStats::default());
    let writer = Writer::new(
        vec![recycle],
        Arc::clone(&stats),
        events_tx.clone(),
        closer,
        MAX_RIFF_SIZE,
    );
    Harness {
        writer,
        closed,
        events,
        events_tx,
        recycled,
        stats,
    }
}

impl Harness {
    fn open(&mut self, leg: u64, path: &Path) {
        self.stats.active_legs.fetch_add(1, Ordering::Relaxed);
        self.writer.handle_control(WriterControl::Open {
            leg: LegId(leg),
            call: CallIds::default(),
            label: format!("label-{leg}"),
            path: path.to_path_buf(),
            sample_rate: 8000,
            record: true,
        });
    }

    fn block(&mut self, now: Instant, leg: u64, start: u64, samples: Vec<i16>) {
        self.writer.handle_block(
            now,
            Block {
                leg: LegId(leg),
                thread: 0,
                start,
                samples,
            },
        );
    }

    fn close(&mut self, leg: u64, blocks_sent: u64) {
        self.writer.handle_control(WriterControl::Close {
            leg: LegId(leg),
            blocks_sent,
            counters: Some(Box::new(LegCounters {
                packets: 42,
                ..LegCounters::default()
            })),
        });
    }

    /// Runs the closer over what the writer closed so far; returns every event since the last
    /// call.
    fn events(&mut self) -> Vec<MediaEvent> {
        let (closer, closed) = unbounded();
        for item in self.closed.try_iter() {
            closer.send(item).unwrap();
        }
        drop(closer);
        run_closer(closed, self.events_tx.clone(), Arc::clone(&self.stats));
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }
}

fn report_of(events: &[MediaEvent], leg: u64) -> LegReport {
    let reports: Vec<&LegReport> = events
        .iter()
        .filter_map(|event| match event {
            MediaEvent::LegClosed { leg: id, report } if *id == LegId(leg) => Some(&**report),
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 1, "one LegClosed for leg {leg}: {events:?}");
    reports[0].clone()
}

fn read_back(path: &Path) -> Vec<i16> {
    let mut reader = hound::WavReader::open(path).unwrap();
    reader.samples::<i16>().map(Result::unwrap).collect()
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

#[test]
fn blocks_become_a_wav_with_dropped_blocks_filled_by_silence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/leg.wav");
    let mut h = harness();
    let now = Instant::now();
    h.open(1, &path);
    // Close may be seen before the blocks: it waits for both.
    h.close(1, 2);
    h.block(now, 1, 0, vec![7; 100]);
    assert!(h.events().is_empty(), "one block is still on its way");
    // The block for 100..200 was dropped upstream.
    h.block(now, 1, 200, vec![9; 50]);
    let report = report_of(&h.events(), 1);
    assert_eq!((report.samples, report.sample_rate), (250, 8000));
    assert_eq!(report.label, "label-1");
    assert_eq!(report.counters.silence_filled, 100);
    assert_eq!(
        report.counters.packets, 42,
        "the stream's counters, carried through"
    );
    assert!(report.error.is_none(), "{:?}", report.error);

    let samples = read_back(&path);
    assert_eq!(samples.len(), 250);
    assert!(samples[..100].iter().all(|s| *s == 7));
    assert!(samples[100..200].iter().all(|s| *s == 0));
    assert!(samples[200..].iter().all(|s| *s == 9));
    let digest = hex::encode(Sha256::digest(fs::read(&path).unwrap()));
    assert_eq!(report.sha256.as_deref(), Some(digest.as_str()));
    assert_eq!(report.path, path);
    // Both buffers came back for reuse.
    assert_eq!(h.recycled.try_iter().count(), 2);
    assert_eq!(h.stats.active_legs.load(Ordering::Relaxed), 0);
}

/// What `kill -9` leaves: the header lags the data on disk by at most one period, whatever the
/// moment of the kill, and `repair` makes it exact. Blocks arrive every 40 ms (a busy writer);
/// header rewrites come at most once per period.
#[test]
fn header_lags_the_data_by_at_most_one_period_and_repair_makes_it_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.wav");
    let mut h = harness();
    let start = Instant::now();
    h.open(1, &path);
    // (when written, samples on disk after it)
    let mut written: Vec<(Instant, u64)> = Vec::new();
    let mut passes: Vec<Instant> = Vec::new();
    let mut samples = 0u64;
    for step in 0..60u64 {
        let now = start + ms(step * 40);
        if let Some(due) = h.writer.poll_timeout().filter(|due| *due <= now) {
            h.writer.handle_timeout(due);
            passes.push(due);
        }
        let block: Vec<i16> = (0..320).map(|i| (samples + i) as i16 | 1).collect();
        h.block(now, 1, samples, block);
        samples += 320;
        written.push((now, samples));

        let header_samples = read_back(&path).len() as u64;
        let must_count = written
            .iter()
            .filter(|(at, _)| now.duration_since(*at) >= HEADER_PERIOD)
            .map(|(_, total)| *total)
            .max()
            .unwrap_or(0);
        assert!(
            header_samples >= must_count,
            "at {step}: header {header_samples}, data older than a period {must_count}"
        );
    }
    for pair in passes.windows(2) {
        assert!(pair[1] - pair[0] >= HEADER_PERIOD, "{passes:?}");
    }
    assert!(
        passes.len() >= 14,
        "a pass every period while data comes: {passes:?}"
    );

    // The process dies: no close, no final header.
    drop(h);
    assert!((read_back(&path).len() as u64) < samples, "the header lags");
    let repaired = crate::repair(&path).unwrap();
    assert_eq!(repaired.samples, samples);
    assert_eq!(read_back(&path).len() as u64, samples);
}

#[test]
fn a_file_that_cannot_be_created_fails_at_once_and_its_blocks_are_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taken.wav");
    fs::write(&path, b"another leg's file").unwrap();
    let good = dir.path().join("good.wav");
    let mut h = harness();
    let now = Instant::now();
    h.open(1, &path);
    h.open(2, &good);
    let events = h.events();
    assert!(
        matches!(&events[..], [MediaEvent::LegFailed { leg: LegId(1), error }] if error.contains("already exists")),
        "{events:?}"
    );
    h.block(now, 1, 0, vec![1; 100]);
    h.block(now, 2, 0, vec![2; 100]);
    h.block(now, 1, 100, vec![1; 100]);
    h.close(1, 2);
    h.close(2, 1);
    let events = h.events();
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, MediaEvent::LegFailed { .. })),
        "sent once: {events:?}"
    );
    let failed = report_of(&events, 1);
    assert!(failed.error.as_deref().unwrap().contains("already exists"));
    assert_eq!((failed.samples, failed.sha256), (0, None));
    assert_eq!(failed.counters.blocks_discarded, 2);
    assert_eq!(fs::read(&path).unwrap(), b"another leg's file");
    let other = report_of(&events, 2);
    assert!(other.error.is_none());
    assert_eq!(read_back(&good), vec![2; 100]);
    assert_eq!(h.stats.write_errors.load(Ordering::Relaxed), 1);
}

#[test]
fn legs_left_open_are_closed_and_reported_when_the_senders_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leg.wav");
    let mut h = harness();
    h.open(2, &path);
    let (control, control_rx) = unbounded();
    let (data, data_rx) = bounded(4);
    data.send(Block {
        leg: LegId(2),
        thread: 0,
        start: 0,
        samples: vec![3; 80],
    })
    .unwrap();
    drop((control, data));
    let Harness {
        writer,
        closed,
        events_tx,
        mut events,
        stats,
        ..
    } = h;
    run(writer, control_rx, data_rx);
    run_closer(closed, events_tx, stats);
    let report = match events.try_recv().unwrap() {
        MediaEvent::LegClosed { report, .. } => report,
        other => panic!("{other:?}"),
    };
    assert_eq!(read_back(&path).len(), 80);
    assert_eq!(report.samples, 80);
    assert!(report.sha256.is_some());
    assert!(report.error.as_deref().unwrap().contains("abnormally"));
}

#[test]
fn a_relay_only_leg_creates_no_file_and_still_reports_its_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay/leg.wav");
    let mut h = harness();
    h.stats.active_legs.fetch_add(1, Ordering::Relaxed);
    h.writer.handle_control(WriterControl::Open {
        leg: LegId(5),
        call: CallIds::default(),
        label: "caller".to_owned(),
        path: path.clone(),
        sample_rate: 8000,
        record: false,
    });
    h.block(Instant::now(), 5, 0, vec![7; 100]);
    h.close(5, 1);
    let report = report_of(&h.events(), 5);
    assert_eq!(report.counters.packets, 42, "the stream's counters");
    assert_eq!(
        (report.samples, report.sha256, report.error),
        (0, None, None)
    );
    assert!(
        !path.exists() && !dir.path().join("relay").exists(),
        "no file, no folder"
    );
    assert_eq!(h.recycled.try_iter().count(), 1, "the buffer came back");
    assert_eq!(h.stats.active_legs.load(Ordering::Relaxed), 0);
}
