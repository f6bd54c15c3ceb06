//! The few random draws the simulation needs, from one seeded ChaCha8 stream, so that the same
//! seed gives the same run on every machine.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

pub struct Draw {
    rng: ChaCha8Rng,
}

impl Draw {
    pub fn new(seed: u64) -> Draw {
        Draw {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `min..=max`.
    pub fn range(&mut self, min: u64, max: u64) -> u64 {
        let span = max.saturating_sub(min).saturating_add(1);
        min.saturating_add(((self.rng.next_u64() as u128 * span as u128) >> 64) as u64)
    }

    /// Exponential with mean `mean` (an inter-arrival time of a Poisson process).
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// An index drawn with probability proportional to `weights` (all zero: the first).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if *w > 0.0 {
                if x < *w {
                    return i;
                }
                x -= w;
            }
        }
        weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
    }
}

/// A stateless uniform draw in [0, 1) from a key (SplitMix64): per-task values that need no
/// storage and do not depend on the order in which tasks are looked at.
pub fn keyed_unit(seed: u64, key: u64) -> f64 {
    let mut z = seed ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws_and_sane_moments() {
        let (mut a, mut b) = (Draw::new(7), Draw::new(7));
        let xs: Vec<f64> = (0..10_000).map(|_| a.exp(2.0)).collect();
        let ys: Vec<f64> = (0..10_000).map(|_| b.exp(2.0)).collect();
        assert_eq!(xs, ys);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 2.0).abs() < 0.1, "mean {mean}");
        let mut d = Draw::new(1);
        let mut ln: Vec<f64> = (0..10_001).map(|_| d.log_normal(100.0, 0.5)).collect();
        ln.sort_by(f64::total_cmp);
        assert!((ln[5_000] - 100.0).abs() < 5.0, "median {}", ln[5_000]);
        assert!((0..1000).all(|_| (3..=5).contains(&d.range(3, 5))));
        let picks: Vec<usize> = (0..1000).map(|_| d.weighted(&[0.0, 1.0, 3.0])).collect();
        assert!(!picks.contains(&0));
        let threes = picks.iter().filter(|p| **p == 2).count();
        assert!((650..850).contains(&threes), "{threes}");
    }
}
