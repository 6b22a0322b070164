//! Success-rate outliers of one interval (Envoy's `successRateEjectionThreshold` and the
//! success-rate half of `processSuccessRateEjections`): among hosts with at least
//! `request_volume` requests, and only if there are at least `minimum_hosts` of them, a host
//! whose success rate is strictly below `mean − factor/1000 · population stdev` is an outlier.

/// One host's interval, as the detectors see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Sample {
    pub requests: u64,
    pub successes: u64,
    /// Already ejected: not part of the statistics.
    pub ejected: bool,
}

impl Sample {
    /// Percent, `None` without requests.
    pub(crate) fn success_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.successes as f64 * 100.0 / self.requests as f64)
    }
}

/// The cluster's statistic for one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Threshold {
    pub mean: f64,
    pub threshold: f64,
}

/// `mean − factor · stdev` over `rates` (population standard deviation). `rates` non-empty.
pub(crate) fn threshold(rates: &[f64], stdev_factor_thousandths: u32) -> Threshold {
    let n = rates.len().max(1) as f64;
    let mean = rates.iter().sum::<f64>() / n;
    let variance = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
    let factor = f64::from(stdev_factor_thousandths) / 1000.0;
    Threshold {
        mean,
        threshold: mean - factor * variance.sqrt(),
    }
}

/// The success-rate outliers among `samples`: `(index, success rate)`, with the statistic they
/// were judged by (`None` when too few hosts qualified).
pub(crate) fn outliers(
    samples: &[Sample],
    minimum_hosts: u32,
    request_volume: u32,
    stdev_factor_thousandths: u32,
) -> (Option<Threshold>, Vec<(usize, f64)>) {
    let qualified: Vec<(usize, f64)> = samples
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.ejected && s.requests >= u64::from(request_volume))
        .filter_map(|(i, s)| s.success_rate().map(|rate| (i, rate)))
        .collect();
    if qualified.is_empty() || qualified.len() < minimum_hosts as usize {
        return (None, Vec::new());
    }
    let rates: Vec<f64> = qualified.iter().map(|(_, rate)| *rate).collect();
    let stat = threshold(&rates, stdev_factor_thousandths);
    let below = qualified
        .into_iter()
        .filter(|(_, rate)| *rate < stat.threshold)
        .collect();
    (Some(stat), below)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(requests: u64, successes: u64) -> Sample {
        Sample {
            requests,
            successes,
            ejected: false,
        }
    }

    #[test]
    fn envoys_example() {
        let t = threshold(&[50.0, 100.0, 100.0, 100.0, 100.0], 1900);
        assert!((t.mean - 90.0).abs() < 1e-9);
        assert!((t.threshold - 52.0).abs() < 1e-9, "{t:?}");
    }

    /// (name, samples, minimum hosts, request volume, threshold or factor, outlier indices)
    type Case = (&'static str, Vec<Sample>, u32, u32, u32, Vec<usize>);

    #[test]
    fn outliers_table() {
        // (name, samples, minimum hosts, volume, factor, outlier indices)
        let spec = [50, 100, 100, 100, 100].map(|s| sample(100, s));
        let cases: Vec<Case> = vec![
            (
                "the spec example: 50 < 52",
                spec.to_vec(),
                5,
                100,
                1900,
                vec![0],
            ),
            (
                "too few hosts with volume",
                spec.to_vec(),
                6,
                100,
                1900,
                vec![],
            ),
            (
                "a host below the request volume does not count",
                vec![
                    sample(99, 0),
                    sample(100, 100),
                    sample(100, 100),
                    sample(100, 100),
                    sample(100, 100),
                ],
                5,
                100,
                1900,
                vec![],
            ),
            (
                "ejected hosts are left out",
                {
                    let mut s = spec.to_vec();
                    s[0].ejected = true;
                    s
                },
                4,
                100,
                1900,
                vec![],
            ),
            (
                "all equal: nobody is strictly below",
                vec![sample(10, 7); 5],
                5,
                10,
                1900,
                vec![],
            ),
            (
                "a smaller factor catches more",
                vec![
                    sample(100, 80),
                    sample(100, 90),
                    sample(100, 100),
                    sample(100, 100),
                ],
                3,
                100,
                1000,
                vec![0],
            ),
            ("no hosts", vec![], 0, 0, 1900, vec![]),
            (
                "no requests is no rate, even with volume 0",
                vec![sample(0, 0), sample(0, 0)],
                0,
                0,
                1900,
                vec![],
            ),
        ];
        for (name, samples, min_hosts, volume, factor, want) in cases {
            let (_, got) = outliers(&samples, min_hosts, volume, factor);
            let got: Vec<usize> = got.into_iter().map(|(i, _)| i).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
