//! Timing: N measured runs after W warm-ups; median, min and max.

use std::time::Duration;

use serde::Serialize;

/// Summary of a set of measured runs, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Median.
    pub median_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// Slowest run.
    pub max_ms: f64,
    /// Number of measured runs.
    pub runs: usize,
}

impl Stats {
    /// Summarise `samples` (must be non-empty).
    pub fn from_samples(samples: &[Duration]) -> Stats {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 {
            ms[n / 2]
        } else {
            (ms[n / 2 - 1] + ms[n / 2]) / 2.0
        };
        Stats {
            median_ms: median,
            min_ms: ms[0],
            max_ms: ms[n - 1],
            runs: n,
        }
    }
}

/// Run `f` `warmups` times unmeasured, then `runs` times; `f` returns the duration of the
/// part it times (so per-run setup and teardown stay outside the figure).
pub fn measure(
    runs: usize,
    warmups: usize,
    mut f: impl FnMut(usize) -> Result<Duration, String>,
) -> Result<Stats, String> {
    for i in 0..warmups {
        f(i).map_err(|e| format!("warm-up {}: {e}", i + 1))?;
    }
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs.max(1) {
        samples.push(f(warmups + i).map_err(|e| format!("run {}: {e}", i + 1))?);
    }
    Ok(Stats::from_samples(&samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let s = Stats::from_samples(&[3, 1, 2].map(Duration::from_millis));
        assert_eq!(
            (s.median_ms, s.min_ms, s.max_ms, s.runs),
            (2.0, 1.0, 3.0, 3)
        );
        let s = Stats::from_samples(&[4, 1, 2, 3].map(Duration::from_millis));
        assert_eq!(s.median_ms, 2.5);
    }

    #[test]
    fn warmups_are_not_measured_and_errors_name_the_run() {
        let mut calls = 0;
        let s = measure(3, 2, |i| {
            calls += 1;
            Ok(Duration::from_millis(if i < 2 { 1000 } else { 5 }))
        })
        .unwrap();
        assert_eq!(calls, 5);
        assert_eq!(s.max_ms, 5.0);
        let e = measure(3, 0, |i| {
            if i == 1 {
                Err("boom".into())
            } else {
                Ok(Duration::ZERO)
            }
        })
        .unwrap_err();
        assert_eq!(e, "run 2: boom");
    }
}
