//! A request the HTTP/1 codec answered before it reached the connection manager: a head
//! hyper cannot parse (hyper writes 400, or 431 for one over `max_request_headers_kb`, 414
//! for a URI over its own limit) or a head out of time (the 408 of `head_timer.rs`). Envoy's
//! stream exists from the head's first byte, so it counts and logs these as requests:
//! `downstream_rq_total` and the status class, `downstream_cx_protocol_error` (flag `DPE`)
//! or the timeout's counter, and an access-log entry whose headers are `-`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use outrider_model::HttpConnectionManager;

use crate::access_log::{AccessLogBuffers, HeadlessEntry};
use crate::head_timer::{HeadLimits, HeadTimeout, HeadWatch};
use crate::http_stats::HttpStats;
use crate::local_reply::ResponseFlag;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadRefusal {
    status: u16,
    flag: Option<ResponseFlag>,
    duration: Duration,
    /// `None`: a protocol error.
    timeout: Option<HeadTimeout>,
}

impl HeadRefusal {
    /// What ended the connection before a head was whole, if anything did; `ended`: the
    /// codec's error.
    pub(crate) fn of(
        head: &HeadWatch,
        limits: HeadLimits,
        ended: Option<&hyper::Error>,
    ) -> Option<Self> {
        if let Some(which) = head.timed_out() {
            let (limit, flag) = match which {
                HeadTimeout::Headers => (limits.headers, None),
                HeadTimeout::Idle => (limits.idle, Some(ResponseFlag::StreamIdleTimeout)),
            };
            return Some(HeadRefusal {
                status: 408,
                flag,
                duration: limit.unwrap_or_default(),
                timeout: Some(which),
            });
        }
        let error = ended.filter(|e| e.is_parse())?;
        Some(HeadRefusal {
            status: parse_error_status(error),
            flag: Some(ResponseFlag::DownstreamProtocolError),
            duration: Duration::ZERO,
            timeout: None,
        })
    }

    pub(crate) fn count_and_log(
        &self,
        stats: &HttpStats,
        hcm: &HttpConnectionManager,
        buffers: &AccessLogBuffers,
        peer: SocketAddr,
        local: SocketAddr,
    ) {
        let counters = stats.local();
        counters.downstream_rq_total.fetch_add(1, Relaxed);
        counters.count_response(self.status);
        let counter = match self.timeout {
            Some(HeadTimeout::Headers) => &counters.downstream_rq_header_timeout,
            Some(HeadTimeout::Idle) => &counters.downstream_rq_idle_timeout,
            None => &counters.downstream_cx_protocol_error,
        };
        counter.fetch_add(1, Relaxed);
        if !hcm.access_log.is_empty() {
            let entry = HeadlessEntry {
                status: self.status,
                flag: self.flag,
                duration: self.duration,
                peer,
                local,
            };
            entry.write(&hcm.access_log, buffers);
        }
    }
}

/// The status hyper's HTTP/1 server wrote for a head it could not parse. hyper tells a URI
/// over its limit from a head over its own only in the error's text.
fn parse_error_status(error: &hyper::Error) -> u16 {
    if !error.is_parse_too_large() {
        400
    } else if error.to_string().contains("URI too long") {
        414
    } else {
        431
    }
}
