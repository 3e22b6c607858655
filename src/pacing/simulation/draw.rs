//! The few distributions the simulated contact centre draws from, written
//! out so the simulation needs no crate beyond `rand` and stays the same
//! for a seed across `rand` feature changes.

use rand::Rng;

/// A standard normal draw (Box–Muller).
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    // 1 - u keeps the logarithm's argument in (0, 1].
    let u: f64 = 1.0 - rng.gen::<f64>();
    let v: f64 = rng.gen::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A lognormal draw with the given mean and log-space spread: the shape
/// of talk times, right-skewed with a long tail of long calls.
pub fn lognormal_with_mean(rng: &mut impl Rng, mean: f64, sigma: f64) -> f64 {
    let mu = mean.ln() - sigma * sigma / 2.0;
    (mu + sigma * standard_normal(rng)).exp()
}

/// A uniform draw in `[low, high)`.
pub fn between(rng: &mut impl Rng, low: f64, high: f64) -> f64 {
    low + (high - low) * rng.gen::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn lognormal_has_the_asked_mean() {
        let mut rng = StdRng::seed_from_u64(7);
        let n = 200_000;
        let mean = (0..n)
            .map(|_| lognormal_with_mean(&mut rng, 180.0, 0.6))
            .sum::<f64>()
            / n as f64;
        assert!((mean - 180.0).abs() < 2.0, "{mean}");
    }

    #[test]
    fn normal_is_centred_with_unit_spread() {
        let mut rng = StdRng::seed_from_u64(3);
        let draws: Vec<f64> = (0..100_000).map(|_| standard_normal(&mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
