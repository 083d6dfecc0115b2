//! `/metrics` read as Prometheus reads it: parsed by `prometheus-parse`, a text-format parser
//! independent of the library that writes the page, then looked up by name and labels.

use prometheus_parse::{Sample, Scrape, Value};

pub struct Metrics {
    scrape: Scrape,
    page: String,
}

/// A histogram's series: cumulative buckets `(le, count)` in order, its sum and count.
#[derive(Debug)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Metrics {
    pub fn parse(page: &str) -> Metrics {
        let scrape = Scrape::parse(page.lines().map(|l| Ok(l.to_owned())))
            .unwrap_or_else(|e| panic!("/metrics does not parse ({e}):\n{page}"));
        Metrics {
            scrape,
            page: page.to_owned(),
        }
    }

    /// Every series named `name` whose labels include all of `labels`.
    pub fn series(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect()
    }

    /// The value of the one series named `name` with `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.series(name, labels).as_slice() {
            [one] => scalar(one),
            [] => panic!("no {name}{labels:?} in:\n{}", self.page),
            many => panic!("{} series {name}{labels:?} in:\n{}", many.len(), self.page),
        }
    }

    /// The sum of every series of `name` (what PromQL's `sum(name)` gives); 0 for a metric
    /// the page declares with no series yet, a panic for one it does not know.
    pub fn total(&self, name: &str) -> f64 {
        let series = self.series(name, &[]);
        if series.is_empty() {
            let declared = self
                .page
                .lines()
                .any(|l| l.starts_with(&format!("# TYPE {name} ")));
            assert!(declared, "no {name} in:\n{}", self.page);
        }
        series.into_iter().map(scalar).sum()
    }

    /// The histogram `name` with `labels`.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Histogram {
        let buckets = match self.series(name, labels).as_slice() {
            [one] => match &one.value {
                Value::Histogram(buckets) => {
                    let mut buckets: Vec<(f64, f64)> =
                        buckets.iter().map(|b| (b.less_than, b.count)).collect();
                    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                    buckets
                }
                other => panic!("{name} is not a histogram: {other:?}"),
            },
            other => panic!(
                "{} histograms {name}{labels:?} in:\n{}",
                other.len(),
                self.page
            ),
        };
        Histogram {
            buckets,
            sum: self.value(&format!("{name}_sum"), labels),
            count: self.value(&format!("{name}_count"), labels),
        }
    }
}

impl Histogram {
    /// Buckets never decrease, and the last (`+Inf`) holds every observation.
    pub fn assert_consistent(&self) {
        assert!(
            self.buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "buckets decrease: {self:?}"
        );
        let last = self.buckets.last().expect("a histogram has buckets");
        assert_eq!(last.0, f64::INFINITY, "{self:?}");
        assert_eq!(last.1, self.count, "{self:?}");
    }

    /// Observations at or below `le`.
    pub fn at_most(&self, le: f64) -> f64 {
        self.buckets
            .iter()
            .find(|(bound, _)| *bound == le)
            .unwrap_or_else(|| panic!("no bucket le={le} in {self:?}"))
            .1
    }
}

fn scalar(sample: &Sample) -> f64 {
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{} is not a single value: {other:?}", sample.metric),
    }
}
