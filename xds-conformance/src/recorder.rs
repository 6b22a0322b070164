//! The log of everything a client did and everything the server sent, for tests to read and wait on.
//!
//! Waiting never polls (`Watched`).

use std::net::SocketAddr;
use std::sync::MutexGuard;
use std::time::{Duration, Instant, SystemTime};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};

use crate::watched::Watched;

/// Which ADS method a stream uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `StreamAggregatedResources` (state of the world).
    Sotw,
    /// `DeltaAggregatedResources` (incremental).
    Delta,
}

/// What a request means in the sequence of its stream and type, as the server saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestClass {
    /// The first request for this type on this stream.
    Initial,
    /// Answers the last response of this type (its nonce) without `error_detail`.
    Ack,
    /// Answers the last response of this type with `error_detail`.
    Nack,
    /// Carries a nonce that is not the last one sent for this type (SotW: ignored, as
    /// go-control-plane does; delta: its subscription changes still apply).
    Stale,
    /// A later request without a nonce: a subscription change (delta) or a re-request before any
    /// response (SotW).
    Update,
}

/// The request as received.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestBody {
    /// A state-of-the-world request.
    Sotw(DiscoveryRequest),
    /// A delta request.
    Delta(DeltaDiscoveryRequest),
}

/// One request received by the server.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    /// Position in the request log, from 0.
    pub seq: usize,
    /// The stream it arrived on.
    pub stream_id: u64,
    /// Arrival time (monotonic, for ordering and intervals).
    pub at: Instant,
    /// Arrival time (wall clock, for logs).
    pub wall_time: SystemTime,
    /// How the server classified it.
    pub class: RequestClass,
    /// The message.
    pub body: RequestBody,
}

impl RecordedRequest {
    /// The protocol of its stream.
    pub fn protocol(&self) -> Protocol {
        match self.body {
            RequestBody::Sotw(_) => Protocol::Sotw,
            RequestBody::Delta(_) => Protocol::Delta,
        }
    }

    /// The request's `type_url`.
    pub fn type_url(&self) -> &str {
        match &self.body {
            RequestBody::Sotw(r) => &r.type_url,
            RequestBody::Delta(r) => &r.type_url,
        }
    }

    /// The request's `response_nonce`.
    pub fn response_nonce(&self) -> &str {
        match &self.body {
            RequestBody::Sotw(r) => &r.response_nonce,
            RequestBody::Delta(r) => &r.response_nonce,
        }
    }

    /// `version_info` of a SotW request (`""` for delta).
    pub fn version_info(&self) -> &str {
        match &self.body {
            RequestBody::Sotw(r) => &r.version_info,
            RequestBody::Delta(_) => "",
        }
    }

    /// `resource_names` of a SotW request, `resource_names_subscribe` of a delta one.
    pub fn resource_names(&self) -> &[String] {
        match &self.body {
            RequestBody::Sotw(r) => &r.resource_names,
            RequestBody::Delta(r) => &r.resource_names_subscribe,
        }
    }

    /// The node, if this request carried one.
    pub fn node(&self) -> Option<&Node> {
        match &self.body {
            RequestBody::Sotw(r) => r.node.as_ref(),
            RequestBody::Delta(r) => r.node.as_ref(),
        }
    }

    /// The NACK's `error_detail.message`, if the request carries `error_detail`.
    pub fn error_message(&self) -> Option<&str> {
        let detail = match &self.body {
            RequestBody::Sotw(r) => r.error_detail.as_ref(),
            RequestBody::Delta(r) => r.error_detail.as_ref(),
        };
        detail.map(|s| s.message.as_str())
    }

    /// An ACK of the last response of its type.
    pub fn is_ack(&self) -> bool {
        self.class == RequestClass::Ack
    }

    /// A NACK of the last response of its type.
    pub fn is_nack(&self) -> bool {
        self.class == RequestClass::Nack
    }

    /// The SotW message, if it is one.
    pub fn sotw(&self) -> Option<&DiscoveryRequest> {
        match &self.body {
            RequestBody::Sotw(r) => Some(r),
            RequestBody::Delta(_) => None,
        }
    }

    /// The delta message, if it is one.
    pub fn delta(&self) -> Option<&DeltaDiscoveryRequest> {
        match &self.body {
            RequestBody::Delta(r) => Some(r),
            RequestBody::Sotw(_) => None,
        }
    }
}

/// Why a response was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseOrigin {
    /// The normal answer from the snapshot.
    Snapshot,
    /// Re-sent after a NACK (the `resend_nacked` misbehaviour).
    Resend,
    /// The second copy of a response (the `duplicate_responses` misbehaviour).
    Duplicate,
    /// Injected with `push_raw` / `push_raw_delta`.
    Raw,
}

/// One response sent by the server.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedResponse {
    /// Position in the response log, from 0.
    pub seq: usize,
    /// The stream it was sent on.
    pub stream_id: u64,
    /// Send time.
    pub at: Instant,
    /// The stream's protocol.
    pub protocol: Protocol,
    /// The response's `type_url`.
    pub type_url: String,
    /// `version_info` (SotW) or `system_version_info` (delta).
    pub version: String,
    /// The response's nonce.
    pub nonce: String,
    /// The resource names, in order, duplicates included. For a raw SotW response each `Any` is
    /// decoded far enough to read its name; an undecodable one is listed as `""`.
    pub resource_names: Vec<String>,
    /// `removed_resources` (delta only).
    pub removed: Vec<String>,
    /// Why it was sent.
    pub origin: ResponseOrigin,
}

/// One ADS stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamInfo {
    /// The server-wide stream id, from 1, in order of opening.
    pub id: u64,
    /// SotW or delta.
    pub protocol: Protocol,
    /// The client's address, when the transport knows it.
    pub peer: Option<SocketAddr>,
    /// When the stream opened.
    pub opened_at: Instant,
    /// When it closed, if it did.
    pub closed_at: Option<Instant>,
    /// Why it closed (`client closed the stream`, a gRPC error, `dropped by the server`).
    pub close_reason: Option<String>,
    /// The `node` of the stream's first request (`None` if the first request had none).
    pub node: Option<Node>,
    /// Whether a request has arrived yet (tells "no node" from "no request").
    pub first_request_seen: bool,
}

/// How many requests, responses and closed streams the log keeps at least; it keeps at most
/// twice as many (the oldest half goes at once), so a server that runs for days (the demo, a
/// watched snapshot file) holds a bounded history instead of ~5 KB more per update.
pub const HISTORY: usize = 4096;

#[derive(Default)]
struct Log {
    requests: Vec<RecordedRequest>,
    responses: Vec<RecordedResponse>,
    streams: Vec<StreamInfo>,
    /// Requests and responses ever recorded: the `seq` of the next one.
    requests_seen: usize,
    responses_seen: usize,
    streams_seen: usize,
}

/// Drops the oldest half of `items` once they reach twice [`HISTORY`] (amortised O(1) a push).
fn trim<T>(items: &mut Vec<T>) {
    if items.len() >= 2 * HISTORY {
        items.drain(..HISTORY);
    }
}

/// The server's log. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Recorder {
    log: Watched<Log>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            log: Watched::new(Log::default()),
        }
    }
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock()
    }

    fn bump(&self) {
        self.log.bump();
    }

    pub(crate) fn stream_opened(&self, id: u64, protocol: Protocol, peer: Option<SocketAddr>) {
        let mut log = self.lock();
        log.streams_seen += 1;
        if log.streams.len() >= 2 * HISTORY {
            // Closed streams go first, oldest first; open ones are kept whatever their number.
            let mut excess = HISTORY;
            log.streams.retain(|s| {
                let drop = excess > 0 && s.closed_at.is_some();
                excess -= usize::from(drop);
                !drop
            });
        }
        log.streams.push(StreamInfo {
            id,
            protocol,
            peer,
            opened_at: Instant::now(),
            closed_at: None,
            close_reason: None,
            node: None,
            first_request_seen: false,
        });
        drop(log);
        self.bump();
    }

    pub(crate) fn stream_closed(&self, id: u64, reason: String) {
        if let Some(s) = self.lock().streams.iter_mut().find(|s| s.id == id) {
            s.closed_at = Some(Instant::now());
            s.close_reason = Some(reason);
        }
        self.bump();
    }

    /// Records a request; the stream's node is taken from its first request.
    pub(crate) fn request(&self, stream_id: u64, class: RequestClass, body: RequestBody) {
        {
            let mut log = self.lock();
            let node = match &body {
                RequestBody::Sotw(r) => r.node.clone(),
                RequestBody::Delta(r) => r.node.clone(),
            };
            if let Some(s) = log.streams.iter_mut().find(|s| s.id == stream_id)
                && !s.first_request_seen
            {
                s.first_request_seen = true;
                s.node = node;
            }
            let seq = log.requests_seen;
            log.requests_seen += 1;
            trim(&mut log.requests);
            log.requests.push(RecordedRequest {
                seq,
                stream_id,
                at: Instant::now(),
                wall_time: SystemTime::now(),
                class,
                body,
            });
        }
        self.bump();
    }

    /// Records a response; `seq` and `at` are filled in here.
    pub(crate) fn response(&self, mut response: RecordedResponse) {
        {
            let mut log = self.lock();
            response.seq = log.responses_seen;
            log.responses_seen += 1;
            response.at = Instant::now();
            trim(&mut log.responses);
            log.responses.push(response);
        }
        self.bump();
    }

    /// The requests so far (the last [`HISTORY`] at least), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The responses so far (the last [`HISTORY`] at least), in send order.
    pub fn responses(&self) -> Vec<RecordedResponse> {
        self.lock().responses.clone()
    }

    /// The streams so far, in opening order: every open one and at least the last [`HISTORY`]
    /// closed ones.
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.lock().streams.clone()
    }

    /// How many requests have arrived (the `seq` the next one will get).
    pub fn request_count(&self) -> usize {
        self.lock().requests_seen
    }

    /// How many responses have been sent.
    pub fn response_count(&self) -> usize {
        self.lock().responses_seen
    }

    /// How many streams have been opened.
    pub fn streams_opened(&self) -> usize {
        self.lock().streams_seen
    }

    /// The first recorded request (past or future) matching `pred`, or `None` after `timeout`.
    /// To wait for a new one, include `r.seq >= mark` with `mark = request_count()` taken before.
    pub async fn wait_for_request(
        &self,
        pred: impl Fn(&RecordedRequest) -> bool,
        timeout: Duration,
    ) -> Option<RecordedRequest> {
        self.wait(timeout, |log| {
            log.requests.iter().find(|r| pred(r)).cloned()
        })
        .await
    }

    /// The first recorded response (past or future) matching `pred`, or `None` after `timeout`.
    pub async fn wait_for_response(
        &self,
        pred: impl Fn(&RecordedResponse) -> bool,
        timeout: Duration,
    ) -> Option<RecordedResponse> {
        self.wait(timeout, |log| {
            log.responses.iter().find(|r| pred(r)).cloned()
        })
        .await
    }

    /// The first stream (past or future) matching `pred`, or `None` after `timeout`.
    pub async fn wait_for_stream(
        &self,
        pred: impl Fn(&StreamInfo) -> bool,
        timeout: Duration,
    ) -> Option<StreamInfo> {
        self.wait(timeout, |log| log.streams.iter().find(|s| pred(s)).cloned())
            .await
    }

    async fn wait<T>(&self, timeout: Duration, check: impl Fn(&Log) -> Option<T>) -> Option<T> {
        self.log.wait(timeout, check).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_is_bounded_and_seq_keeps_counting() {
        let recorder = Recorder::default();
        let total = 3 * HISTORY + 5;
        for i in 0..total {
            let id = u64::try_from(i).expect("small");
            recorder.stream_opened(id, Protocol::Sotw, None);
            recorder.request(
                id,
                RequestClass::Initial,
                RequestBody::Sotw(DiscoveryRequest::default()),
            );
            recorder.stream_closed(id, "done".into());
        }
        let requests = recorder.requests();
        assert!(
            (HISTORY..2 * HISTORY).contains(&requests.len()),
            "{} kept",
            requests.len()
        );
        assert_eq!(recorder.request_count(), total);
        assert_eq!(requests.last().map(|r| r.seq), Some(total - 1));
        assert!(requests.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        assert!(recorder.streams().len() < 2 * HISTORY);
        assert_eq!(recorder.streams_opened(), total);

        // Open streams are kept, however old.
        let recorder = Recorder::default();
        recorder.stream_opened(0, Protocol::Delta, None);
        for id in 1..=2 * HISTORY as u64 {
            recorder.stream_opened(id, Protocol::Sotw, None);
            recorder.stream_closed(id, "done".into());
        }
        assert!(recorder.streams().iter().any(|s| s.id == 0));
    }
}
