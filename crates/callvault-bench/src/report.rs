//! Figures: one run's as `name<TAB>value<TAB>unit` lines (what `scripts/bench` keeps per run),
//! and the summary over several runs (min / median / max, the server-to-floor ratio) as a
//! Markdown table ready to paste into BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

#[derive(Debug, Default, Clone)]
pub struct Figures(pub Vec<(String, f64, String)>);

impl Figures {
    pub fn add(&mut self, name: &str, value: f64, unit: &str) {
        self.0.push((name.to_owned(), value, unit.to_owned()));
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, _)| *v)
    }

    pub fn to_tsv(&self) -> String {
        let mut out = String::new();
        for (name, value, unit) in &self.0 {
            let _ = writeln!(out, "{name}\t{}\t{unit}", round(*value));
        }
        out
    }

    pub fn parse(text: &str) -> anyhow::Result<Figures> {
        let mut figures = Figures::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.split('\t');
            let (Some(name), Some(value), unit) = (parts.next(), parts.next(), parts.next()) else {
                anyhow::bail!("not a figure line: {line:?}");
            };
            let value = value
                .parse()
                .with_context(|| format!("not a number in {line:?}"))?;
            figures.add(name, value, unit.unwrap_or(""));
        }
        Ok(figures)
    }

    pub fn read(path: &Path) -> anyhow::Result<Figures> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Figures::parse(&text).with_context(|| format!("reading {}", path.display()))
    }
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The figures of one run directory (`floor-before.tsv`, `server.tsv`, `floor-after.tsv`),
/// with the floor's mean and the ratios added.
pub fn combine(server: &Figures, before: &Figures, after: &Figures) -> Figures {
    let mut out = Figures::default();
    for (name, value, unit) in &server.0 {
        out.add(name, *value, unit);
    }
    let floor = |name: &str| -> Option<f64> { Some((before.get(name)? + after.get(name)?) / 2.0) };
    if let Some(floor_cpu) = floor("cpu_per_packet_us") {
        out.add("floor_cpu_per_packet_us", floor_cpu, "µs");
        if let Some(server_cpu) = server.get("cpu_per_packet_us") {
            out.add("cpu_ratio_to_floor", server_cpu / floor_cpu, "×");
        }
    }
    if let Some(lost) = floor("packets_lost") {
        out.add("floor_packets_lost", lost, "packets");
    }
    if let Some(rss) = floor("rss_per_call_kib") {
        out.add("floor_rss_per_call_kib", rss, "KiB");
    }
    out
}

/// Whether the generator offered the nominal load in a run's full-load window (50 packets a
/// second per stream, within 5 %): a run where it fell behind measured a lighter load.
pub(crate) fn offered_in_full(run: &Figures) -> bool {
    match (run.get("window_packets_per_s"), run.get("window_streams")) {
        (Some(rate), Some(streams)) => rate >= 0.95 * streams * 50.0,
        _ => false,
    }
}

/// min / median / max of every figure over the runs, in the order of the first run, after a
/// warning for each run whose generator fell behind.
pub fn summary(runs: &[Figures]) -> String {
    let mut out = String::new();
    for (index, run) in runs.iter().enumerate() {
        if !offered_in_full(run) {
            let streams = run.get("window_streams").unwrap_or(0.0);
            let _ = writeln!(
                out,
                "WARNING: run {}: the generator offered {} packets/s to {streams} streams ({} nominal): \
                 a lighter load than asked (see BENCHMARKS.md)\n",
                index + 1,
                round(run.get("window_packets_per_s").unwrap_or(0.0)),
                streams * 50.0
            );
        }
    }
    out.push_str("| Figure | Min | Median | Max | Unit |\n|---|---|---|---|---|\n");
    let Some(first) = runs.first() else {
        return out;
    };
    for (name, _, unit) in &first.0 {
        let mut values: Vec<f64> = runs.iter().filter_map(|r| r.get(name)).collect();
        values.sort_by(f64::total_cmp);
        let median = if values.len() % 2 == 1 {
            values[values.len() / 2]
        } else {
            (values[values.len() / 2 - 1] + values[values.len() / 2]) / 2.0
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {unit} |",
            round(values[0]),
            round(median),
            round(values[values.len() - 1])
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_survive_their_text_form() {
        let mut figures = Figures::default();
        figures.add("cpu_per_packet_us", 2.5, "µs");
        figures.add("packets_lost", 0.0, "packets");
        let back = Figures::parse(&figures.to_tsv()).unwrap();
        assert_eq!(back.get("cpu_per_packet_us"), Some(2.5));
        assert_eq!(back.get("packets_lost"), Some(0.0));
        assert!(Figures::parse("oops").is_err());
    }

    #[test]
    fn the_ratio_is_to_the_mean_of_the_floor_before_and_after() {
        let parse = |t: &str| Figures::parse(t).unwrap();
        let combined = combine(
            &parse("cpu_per_packet_us\t3\tµs\n"),
            &parse("cpu_per_packet_us\t1\tµs\n"),
            &parse("cpu_per_packet_us\t2\tµs\n"),
        );
        assert_eq!(combined.get("floor_cpu_per_packet_us"), Some(1.5));
        assert_eq!(combined.get("cpu_ratio_to_floor"), Some(2.0));
    }

    #[test]
    fn the_summary_gives_min_median_and_max() {
        let runs: Vec<Figures> = [3.0, 1.0, 2.0]
            .iter()
            .map(|v| {
                let run =
                    format!("x\t{v}\tµs\nwindow_streams\t10\t\nwindow_packets_per_s\t500\t\n");
                Figures::parse(&run).unwrap()
            })
            .collect();
        assert!(!summary(&runs).contains("WARNING"), "{}", summary(&runs));
        assert!(
            summary(&runs).contains("| x | 1 | 2 | 3 | µs |"),
            "{}",
            summary(&runs)
        );
    }

    #[test]
    fn a_run_whose_generator_fell_behind_is_flagged() {
        let slow =
            Figures::parse("window_streams\t2000\t\nwindow_packets_per_s\t49000\t\n").unwrap();
        assert!(!offered_in_full(&slow));
        assert!(summary(&[slow]).starts_with("WARNING: run 1"));
    }
}
