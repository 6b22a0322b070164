//! Failure-percentage outliers of one interval (the failure-percentage half of Envoy's
//! `processSuccessRateEjections`): among hosts with at least `request_volume` requests, and only
//! if there are at least `minimum_hosts` of them, a host whose failure percentage
//! (100 − success rate) is at least `threshold` is an outlier.

use super::success_rate::Sample;

/// The failure-percentage outliers among `samples`: `(index, success rate)`.
pub(crate) fn outliers(
    samples: &[Sample],
    minimum_hosts: u32,
    request_volume: u32,
    threshold: u32,
) -> Vec<(usize, f64)> {
    let qualified: Vec<(usize, f64)> = samples
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.ejected && s.requests >= u64::from(request_volume))
        .filter_map(|(i, s)| s.success_rate().map(|rate| (i, rate)))
        .collect();
    if qualified.is_empty() || qualified.len() < minimum_hosts as usize {
        return Vec::new();
    }
    qualified
        .into_iter()
        .filter(|(_, rate)| 100.0 - rate >= f64::from(threshold))
        .collect()
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

    /// (name, samples, minimum hosts, request volume, threshold or factor, outlier indices)
    type Case = (&'static str, Vec<Sample>, u32, u32, u32, Vec<usize>);

    #[test]
    fn outliers_table() {
        // (name, samples, minimum hosts, volume, threshold %, outlier indices)
        let cases: Vec<Case> = vec![
            (
                "exactly at the threshold is ejected",
                vec![sample(100, 15), sample(100, 16), sample(100, 100)],
                3,
                50,
                85,
                vec![0],
            ),
            (
                "every host may be an outlier (no comparison with the others)",
                vec![sample(50, 0), sample(50, 0), sample(50, 0)],
                3,
                50,
                85,
                vec![0, 1, 2],
            ),
            (
                "too few hosts with volume",
                vec![sample(50, 0), sample(49, 0), sample(50, 50)],
                3,
                50,
                85,
                vec![],
            ),
            (
                "ejected hosts neither count nor get judged",
                vec![
                    Sample {
                        ejected: true,
                        ..sample(50, 0)
                    },
                    sample(50, 0),
                ],
                2,
                50,
                85,
                vec![],
            ),
            (
                "threshold 0 ejects every qualified host",
                vec![sample(10, 10), sample(10, 9)],
                1,
                10,
                0,
                vec![0, 1],
            ),
            (
                "minimum hosts 0 still needs one qualified host",
                vec![sample(1, 0)],
                0,
                5,
                50,
                vec![],
            ),
        ];
        for (name, samples, min_hosts, volume, threshold, want) in cases {
            let got: Vec<usize> = outliers(&samples, min_hosts, volume, threshold)
                .into_iter()
                .map(|(i, _)| i)
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
