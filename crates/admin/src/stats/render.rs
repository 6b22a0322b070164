//! Rendering stats as Envoy does: `name: value` lines (or JSON) for `/stats`, the Prometheus
//! text exposition format for `/stats/prometheus`.

use std::fmt::Write as _;

use regex::Regex;

use super::stat::{Stat, StatKind};

/// `/stats`: sorted `name: value` lines, or `{"stats":[{"name","value"}]}` with `json`;
/// `filter` keeps the names the regex matches.
pub(crate) fn text_or_json(mut stats: Vec<Stat>, filter: Option<&Regex>, json: bool) -> String {
    stats.retain(|s| filter.is_none_or(|f| f.is_match(&s.name)));
    stats.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        let entries: Vec<serde_json::Value> = stats
            .iter()
            .map(|s| serde_json::json!({ "name": s.name, "value": s.value }))
            .collect();
        return serde_json::json!({ "stats": entries }).to_string();
    }
    let mut out = String::new();
    for stat in &stats {
        let _ = writeln!(out, "{}: {}", stat.name, stat.value);
    }
    out
}

/// `/stats/prometheus`: one `# TYPE` line per metric, then a sample per tag set.
pub(crate) fn prometheus(mut stats: Vec<Stat>, filter: Option<&Regex>) -> String {
    stats.retain(|s| filter.is_none_or(|f| f.is_match(&s.name)));
    stats.sort_by(|a, b| a.metric.cmp(&b.metric).then_with(|| a.tags.cmp(&b.tags)));
    let mut out = String::new();
    let mut current: Option<&str> = None;
    for stat in &stats {
        let metric = metric_name(&stat.metric);
        if current != Some(stat.metric.as_str()) {
            let kind = match stat.kind {
                StatKind::Counter => "counter",
                StatKind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# TYPE {metric} {kind}");
            current = Some(stat.metric.as_str());
        }
        out.push_str(&metric);
        if !stat.tags.is_empty() {
            out.push('{');
            for (index, (name, value)) in stat.tags.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{name}=\"{}\"", escape_label(value));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {}", stat.value);
    }
    out
}

/// `envoy_` + the metric, with every character Prometheus does not allow replaced by `_`.
fn metric_name(metric: &str) -> String {
    let mut name = String::with_capacity(metric.len() + 6);
    name.push_str("envoy_");
    name.extend(metric.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            c
        } else {
            '_'
        }
    }));
    name
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_groups_samples_under_one_type_line_and_escapes_labels() {
        let stats = vec![
            Stat::cluster_class("b", "upstream_rq", 5, 1),
            Stat::cluster_class("a", "upstream_rq", 2, 7),
            Stat::cluster("we\"ird.name", "upstream_rq_total", StatKind::Counter, 3),
            Stat::plain("control_plane.connected_state", StatKind::Gauge, 1),
        ];
        let text = prometheus(stats, None);
        assert_eq!(
            text,
            "# TYPE envoy_cluster_upstream_rq_total counter\n\
             envoy_cluster_upstream_rq_total{envoy_cluster_name=\"we\\\"ird.name\"} 3\n\
             # TYPE envoy_cluster_upstream_rq_xx counter\n\
             envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"a\"} 7\n\
             envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",envoy_cluster_name=\"b\"} 1\n\
             # TYPE envoy_control_plane_connected_state gauge\n\
             envoy_control_plane_connected_state 1\n"
        );
    }

    #[test]
    fn text_is_sorted_and_filtered() {
        let stats = vec![
            Stat::cluster("b", "upstream_rq_total", StatKind::Counter, 2),
            Stat::cluster("a", "upstream_rq_total", StatKind::Counter, 1),
            Stat::plain("control_plane.connected_state", StatKind::Gauge, 1),
        ];
        let filter = Regex::new("^cluster\\.").ok();
        assert_eq!(
            text_or_json(stats.clone(), filter.as_ref(), false),
            "cluster.a.upstream_rq_total: 1\ncluster.b.upstream_rq_total: 2\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&text_or_json(stats, None, true)).expect("JSON");
        assert_eq!(json["stats"][0]["name"], "cluster.a.upstream_rq_total");
        assert_eq!(json["stats"][2]["value"], 1);
    }
}
