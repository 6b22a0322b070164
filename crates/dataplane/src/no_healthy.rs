//! "Why no healthy upstream?" in one line, for the `x-outrider-no-healthy-upstream` header of
//! a `503 no healthy upstream`: the cluster, how many endpoints it has, how many are out and
//! why, and when EDS last spoke. Envoy sends the 503 alone; users ask for exactly this.

use std::fmt::Write;
use std::time::SystemTime;

use outrider_tables::ClusterEntry;
use outrider_upstream::NoHealthyUpstream;

pub(crate) fn explain(entry: &ClusterEntry, why: &NoHealthyUpstream) -> String {
    let cluster = &entry.config.name;
    let mut text = if why.total == 0 {
        format!("cluster {cluster}: no endpoints")
    } else {
        format!("cluster {cluster}: 0 of {} endpoints available", why.total)
    };
    let mut reasons = Vec::new();
    if why.failed_outlier > 0 {
        // Names the detectors: `2 ejected by outlier detection (consecutive_5xx)`.
        reasons.push(why.outlier_reason());
    }
    if why.failed_active_hc > 0 {
        reasons.push(format!(
            "{} failing active health checks",
            why.failed_active_hc
        ));
    }
    if why.eds_unhealthy > 0 {
        reasons.push(format!("{} unhealthy per EDS", why.eds_unhealthy));
    }
    if why.degraded > 0 {
        reasons.push(format!("{} degraded", why.degraded));
    }
    if why.avoided > 0 {
        reasons.push(format!("{} already tried by this request", why.avoided));
    }
    if !reasons.is_empty() {
        let _ = write!(text, " ({})", reasons.join(", "));
    }
    let endpoints = &entry.endpoints;
    if !endpoints.version.is_empty() {
        let _ = write!(text, "; EDS version {}", endpoints.version);
    }
    if let Some(updated) = endpoints.eds_updated_at
        && let Ok(age) = SystemTime::now().duration_since(updated)
    {
        let _ = write!(text, " updated {}s ago", age.as_secs());
    } else if entry.config.eds_resource_name().is_some() && endpoints.version.is_empty() {
        text.push_str("; no EDS update received");
    }
    text
}
