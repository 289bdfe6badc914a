//! Timing, medians, and output (table and JSON lines).
//!
//! A comparison runs K rounds; each round takes one matou sample then one
//! tokio sample, so slow drifts of the machine (thermal, other processes on
//! the shared cores) hit both sides alike. Each sample is a closure that
//! builds its runtime once, measures the workload inside it with
//! [`std::time::Instant`] (runtime construction and teardown are excluded),
//! and returns nanoseconds. The reported figures are the medians of the K
//! samples; `ratio` is matou's median over tokio's (< 1 means matou faster).

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::time::{Duration, Instant};

/// How much work a run does.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Rounds of (matou sample, tokio sample).
    pub rounds: usize,
    /// Timed iterations of the workload inside one sample (after one warm-up);
    /// the sample is their mean.
    pub inner: usize,
    /// `--quick`: fewer rounds and iterations, smaller unix workloads.
    pub quick: bool,
    /// `--backend`: the reactor backends the I/O rows (echo, small files)
    /// run on, each against the same tokio baseline.
    pub backends: &'static [matou::unix::Backend],
}

impl Config {
    /// The configuration for `--quick` or a full run.
    pub fn new(quick: bool) -> Config {
        if quick {
            Config {
                rounds: 3,
                inner: 3,
                quick,
                backends: &[matou::unix::Backend::Epoll],
            }
        } else {
            Config {
                rounds: 9,
                inner: 10,
                quick,
                backends: &[matou::unix::Backend::Epoll],
            }
        }
    }
}

/// The suffix of a row measured on `backend`: none for epoll (the rows'
/// historical names), ` [uring]` for io_uring.
pub fn backend_label(backend: matou::unix::Backend) -> &'static str {
    match backend {
        matou::unix::Backend::Epoll => "",
        matou::unix::Backend::Uring => " [uring]",
    }
}

/// One result row.
#[derive(Clone, Debug)]
pub struct Row {
    /// Suite name (`core`, `sync`, `unix`).
    pub suite: &'static str,
    /// Benchmark name, with its unit when it is not "ns per workload".
    pub name: String,
    /// The tokio runtime compared against, e.g. `multi_thread(2)`.
    pub baseline: String,
    /// matou's median, in nanoseconds.
    pub matou_ns: f64,
    /// tokio's median, in nanoseconds.
    pub tokio_ns: f64,
}

impl Row {
    /// matou over tokio (< 1: matou faster).
    pub fn ratio(&self) -> f64 {
        self.matou_ns / self.tokio_ns
    }

    /// The row as one JSON object (no trailing newline).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"suite\":{},\"name\":{},\"baseline\":{},\"matou_ns\":{},\"tokio_ns\":{},\"ratio\":{}}}",
            json_str(self.suite),
            json_str(&self.name),
            json_str(&self.baseline),
            json_num(self.matou_ns, 1),
            json_num(self.tokio_ns, 1),
            json_num(self.ratio(), 4),
        )
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "null".to_string()
    }
}

/// The median of `xs` (mean of the two middle values for an even count).
///
/// # Panics
/// When `xs` is empty.
pub fn median(xs: &mut [f64]) -> f64 {
    assert!(!xs.is_empty(), "median of nothing");
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The `q` quantile (0..=1) of `xs`, nearest rank.
///
/// # Panics
/// When `xs` is empty.
pub fn quantile(xs: &mut [f64], q: f64) -> f64 {
    assert!(!xs.is_empty(), "quantile of nothing");
    xs.sort_by(f64::total_cmp);
    let rank = (q * xs.len() as f64).ceil() as usize;
    xs[rank.clamp(1, xs.len()) - 1]
}

/// Nanoseconds in `d`, as a float.
pub fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// Runs `rounds` rounds of (one matou sample, one tokio sample); each sample
/// may yield several figures (e.g. time per message and p99 latency). Returns
/// the per-figure medians, matou's then tokio's.
pub fn alternate<M, T>(rounds: usize, mut matou: M, mut tokio: T) -> (Vec<f64>, Vec<f64>)
where
    M: FnMut() -> Vec<f64>,
    T: FnMut() -> Vec<f64>,
{
    let mut ms: Vec<Vec<f64>> = Vec::new();
    let mut ts: Vec<Vec<f64>> = Vec::new();
    for _ in 0..rounds {
        ms.push(matou());
        ts.push(tokio());
    }
    (columns_median(&ms), columns_median(&ts))
}

fn columns_median(samples: &[Vec<f64>]) -> Vec<f64> {
    let width = samples.first().map_or(0, Vec::len);
    (0..width)
        .map(|i| median(&mut samples.iter().map(|s| s[i]).collect::<Vec<_>>()))
        .collect()
}

/// Collects rows and prints/writes them.
#[derive(Debug, Default)]
pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// Adds a row and prints it at once (progress on long runs).
    pub fn push(&mut self, row: Row) {
        if self.rows.is_empty() {
            print_header();
        }
        print_row(&row);
        self.rows.push(row);
    }

    /// Writes one JSON object per line to `path`.
    ///
    /// # Errors
    /// The file system's.
    pub fn write_json(&self, path: &str) -> io::Result<()> {
        let mut out = String::new();
        for r in &self.rows {
            out.push_str(&r.to_json());
            out.push('\n');
        }
        std::fs::write(path, out)
    }
}

fn print_header() {
    println!(
        "{:<6} {:<44} {:<16} {:>14} {:>14} {:>7}",
        "suite", "name", "baseline", "matou_ns", "tokio_ns", "ratio"
    );
}

fn print_row(r: &Row) {
    println!(
        "{:<6} {:<44} {:<16} {:>14.0} {:>14.0} {:>7.3}",
        r.suite,
        r.name,
        r.baseline,
        r.matou_ns,
        r.tokio_ns,
        r.ratio()
    );
    let _ = io::stdout().flush();
}

/// A closed-loop load from client threads, the same for both runtimes: the
/// connections in `shares` (one list per thread) run one warm-up `round`,
/// wait for each other, then `rounds` timed rounds; `round` pushes the
/// latency of each request it makes. Returns the elapsed nanoseconds of
/// the timed part and every latency.
pub fn drive_clients<C: Send + 'static>(
    shares: Vec<Vec<C>>,
    rounds: usize,
    round: fn(&mut [C], &mut Vec<f64>),
) -> (f64, Vec<f64>) {
    use std::sync::{Arc, Barrier};
    let start = Arc::new(Barrier::new(shares.len() + 1));
    let total: usize = shares.iter().map(Vec::len).sum();
    let clients: Vec<_> = shares
        .into_iter()
        .map(|mut share| {
            let start = start.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(rounds * share.len());
                let mut scratch = Vec::new();
                round(&mut share, &mut scratch); // warm-up
                start.wait();
                for _ in 0..rounds {
                    round(&mut share, &mut lat);
                }
                lat
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    let mut lat: Vec<f64> = Vec::with_capacity(rounds * total);
    for c in clients {
        lat.extend(c.join().expect("client thread"));
    }
    (ns(t.elapsed()), lat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_quantiles() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let mut xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut xs, 0.99), 99.0);
        assert_eq!(quantile(&mut xs, 1.0), 100.0);
    }

    #[test]
    fn json_escapes() {
        let r = Row {
            suite: "core",
            name: "a \"b\"".into(),
            baseline: "current_thread".into(),
            matou_ns: 2.0,
            tokio_ns: 4.0,
        };
        assert_eq!(
            r.to_json(),
            "{\"suite\":\"core\",\"name\":\"a \\\"b\\\"\",\"baseline\":\"current_thread\",\"matou_ns\":2.0,\"tokio_ns\":4.0,\"ratio\":0.5000}"
        );
    }
}
