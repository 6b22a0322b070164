//! What a client's recorded requests say: the names it is subscribed to on a stream (the last
//! SotW request, or the sum of delta subscribe/unsubscribe changes), and one-line descriptions of
//! requests for failure messages.

use std::collections::{BTreeMap, BTreeSet};

use crate::recorder::{RecordedRequest, RequestBody};
use crate::type_url;

/// The names a stream is subscribed to for `type_url` after all its requests: SotW replaces the
/// set with each request, delta adds `resource_names_subscribe` and takes away
/// `resource_names_unsubscribe`. `*` stays in the set as a name.
pub fn subscribed_names(
    requests: &[RecordedRequest],
    stream_id: u64,
    type_url: &str,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for request in requests
        .iter()
        .filter(|r| r.stream_id == stream_id && r.type_url() == type_url)
    {
        match &request.body {
            RequestBody::Sotw(r) => names = r.resource_names.iter().cloned().collect(),
            RequestBody::Delta(r) => {
                names.extend(r.resource_names_subscribe.iter().cloned());
                for name in &r.resource_names_unsubscribe {
                    names.remove(name);
                }
            }
        }
    }
    names
}

/// Delta requests that subscribe to a name the stream is already subscribed to (changes only
/// means a name is sent once): `(request seq, name)`.
pub fn repeated_subscriptions(
    requests: &[RecordedRequest],
    stream_id: u64,
    type_url: &str,
) -> Vec<(usize, String)> {
    let mut names = BTreeSet::new();
    let mut repeated = Vec::new();
    for request in requests
        .iter()
        .filter(|r| r.stream_id == stream_id && r.type_url() == type_url)
    {
        if let RequestBody::Delta(r) = &request.body {
            for name in &r.resource_names_subscribe {
                if !names.insert(name.clone()) {
                    repeated.push((request.seq, name.clone()));
                }
            }
            for name in &r.resource_names_unsubscribe {
                names.remove(name);
            }
        }
    }
    repeated
}

/// `initial_resource_versions` of a delta request (empty for SotW).
pub fn initial_versions(request: &RecordedRequest) -> BTreeMap<String, String> {
    match &request.body {
        RequestBody::Delta(r) => r
            .initial_resource_versions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        RequestBody::Sotw(_) => BTreeMap::new(),
    }
}

/// One line: `#12 stream 1 Cluster Ack version="v1" nonce="3" names=[a, b] error="…"`.
pub fn describe(request: &RecordedRequest) -> String {
    let mut line = format!(
        "#{} stream {} {} {:?}",
        request.seq,
        request.stream_id,
        type_url::short_name(request.type_url()),
        request.class
    );
    match &request.body {
        RequestBody::Sotw(r) => {
            line.push_str(&format!(
                " version={:?} nonce={:?} names={:?}",
                r.version_info, r.response_nonce, r.resource_names
            ));
        }
        RequestBody::Delta(r) => {
            line.push_str(&format!(" nonce={:?}", r.response_nonce));
            if !r.resource_names_subscribe.is_empty() {
                line.push_str(&format!(" subscribe={:?}", r.resource_names_subscribe));
            }
            if !r.resource_names_unsubscribe.is_empty() {
                line.push_str(&format!(" unsubscribe={:?}", r.resource_names_unsubscribe));
            }
            if !r.initial_resource_versions.is_empty() {
                let versions: BTreeMap<_, _> = r.initial_resource_versions.iter().collect();
                line.push_str(&format!(" initial_versions={versions:?}"));
            }
        }
    }
    if let Some(message) = request.error_message() {
        line.push_str(&format!(
            " error={:?}",
            super::admin::first_chars(message, 200)
        ));
    }
    line
}

/// The last `n` requests, one per line.
pub fn describe_last(requests: &[RecordedRequest], n: usize) -> String {
    let skip = requests.len().saturating_sub(n);
    let lines: Vec<String> = requests.iter().skip(skip).map(describe).collect();
    if lines.is_empty() {
        "(no requests)".to_string()
    } else {
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Instant, SystemTime};

    use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};

    use super::*;
    use crate::recorder::RequestClass;

    fn record(seq: usize, stream_id: u64, body: RequestBody) -> RecordedRequest {
        RecordedRequest {
            seq,
            stream_id,
            at: Instant::now(),
            wall_time: SystemTime::now(),
            class: RequestClass::Update,
            body,
        }
    }

    fn delta(subscribe: &[&str], unsubscribe: &[&str]) -> RequestBody {
        RequestBody::Delta(DeltaDiscoveryRequest {
            type_url: type_url::ENDPOINT.into(),
            resource_names_subscribe: subscribe.iter().map(|s| (*s).to_string()).collect(),
            resource_names_unsubscribe: unsubscribe.iter().map(|s| (*s).to_string()).collect(),
            ..Default::default()
        })
    }

    fn sotw(names: &[&str]) -> RequestBody {
        RequestBody::Sotw(DiscoveryRequest {
            type_url: type_url::ENDPOINT.into(),
            resource_names: names.iter().map(|s| (*s).to_string()).collect(),
            ..Default::default()
        })
    }

    #[test]
    fn delta_subscriptions_add_up_per_stream() {
        let requests = vec![
            record(0, 1, delta(&["a", "b"], &[])),
            record(1, 2, delta(&["x"], &[])),
            record(2, 1, delta(&["c"], &["a"])),
            record(3, 1, delta(&["b"], &[])),
        ];
        let names = subscribed_names(&requests, 1, type_url::ENDPOINT);
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(
            repeated_subscriptions(&requests, 1, type_url::ENDPOINT),
            [(3, "b".to_string())]
        );
        assert!(subscribed_names(&requests, 1, type_url::CLUSTER).is_empty());
    }

    #[test]
    fn sotw_subscription_is_the_last_request() {
        let requests = vec![record(0, 1, sotw(&["a", "b"])), record(1, 1, sotw(&["b"]))];
        let names = subscribed_names(&requests, 1, type_url::ENDPOINT);
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["b"]);
        assert!(repeated_subscriptions(&requests, 1, type_url::ENDPOINT).is_empty());
        let line = describe(&requests[1]);
        assert!(
            line.contains("#1 stream 1 ClusterLoadAssignment Update"),
            "{line}"
        );
        assert!(line.contains("names=[\"b\"]"), "{line}");
        assert!(describe_last(&[], 3).contains("no requests"));
    }
}
