//! A fixed-bucket histogram of relaxed atomics, for metrics recorded on hot paths.
//!
//! Recording is one bucket search over a short slice and three relaxed atomic adds: no lock,
//! no allocation. Readers take a [`HistogramSnapshot`] whose bucket counts are cumulative, the
//! shape Prometheus' text format wants. The counters are read one after the other, so a
//! snapshot taken while values are recorded may be off by those few values; every count only
//! grows, which is all a scraper needs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counts of values at or below each upper bound, plus their sum and count.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One counter per bound, and the last one for values above every bound.
    buckets: Box<[AtomicU64]>,
    /// Sum of the recorded values, as `f64` bits.
    sum_bits: AtomicU64,
    count: AtomicU64,
}

/// A reading of a [`Histogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, values at or below it)`, cumulative, in increasing bound order.
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    /// A histogram with the given increasing upper bounds (`+Inf` is implied).
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds must increase");
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }
    }

    /// Records one value.
    pub fn record(&self, value: f64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.buckets[i].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        // A compare-and-swap loop adds to the f64 sum; contention is per histogram only.
        let _ = self.sum_bits.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
    }

    /// The counts so far, cumulative per bound.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(self.buckets.iter())
            .map(|(bound, n)| {
                running += n.load(Relaxed);
                (*bound, running)
            })
            .collect();
        HistogramSnapshot {
            buckets,
            sum: f64::from_bits(self.sum_bits.load(Relaxed)),
            count: self.count.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_into_cumulative_buckets() {
        static BOUNDS: [f64; 3] = [1.0, 10.0, 100.0];
        let h = Histogram::new(&BOUNDS);
        for v in [0.5, 1.0, 2.0, 10.0, 50.0, 1000.0] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1.0, 2), (10.0, 4), (100.0, 5)]);
        assert_eq!(s.count, 6);
        assert!((s.sum - 1063.5).abs() < 1e-9);
    }

    #[test]
    fn an_empty_histogram_reads_zero() {
        static BOUNDS: [f64; 2] = [1.0, 2.0];
        let s = Histogram::new(&BOUNDS).snapshot();
        assert_eq!(s.buckets, vec![(1.0, 0), (2.0, 0)]);
        assert_eq!((s.sum, s.count), (0.0, 0));
    }
}
