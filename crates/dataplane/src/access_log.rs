//! The access log: one line per request in Envoy's default format, written when the response
//! body ends (so bytes and duration are final), buffered per worker and flushed every second or
//! when the buffer fills — never a write syscall per request.
//!
//! ```text
//! [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
//! %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//! %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//! "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Version};
use hyper::body::{Body, Frame, SizeHint};
use outrider_model::AccessLogSink;

use crate::headers::{UPSTREAM_SERVICE_TIME, X_FORWARDED_FOR, X_REQUEST_ID};
use crate::local_reply::AccessInfo;

/// A worker's buffer reaching this size is flushed at once.
const FLUSH_AT: usize = 64 * 1024;

/// One worker's pending log lines, per sink.
#[derive(Default)]
pub(crate) struct AccessLogBuffers {
    buffers: RefCell<HashMap<AccessLogSink, Vec<u8>>>,
}

impl AccessLogBuffers {
    fn append(&self, sinks: &[AccessLogSink], line: &str) {
        let mut buffers = self.buffers.borrow_mut();
        for sink in sinks {
            let buffer = buffers.entry(sink.clone()).or_default();
            buffer.extend_from_slice(line.as_bytes());
            if buffer.len() >= FLUSH_AT {
                write_out(sink, buffer);
            }
        }
    }

    /// Writes every pending line (called every second by the worker).
    pub(crate) fn flush(&self) {
        for (sink, buffer) in self.buffers.borrow_mut().iter_mut() {
            if !buffer.is_empty() {
                write_out(sink, buffer);
            }
        }
    }
}

fn write_out(sink: &AccessLogSink, buffer: &mut Vec<u8>) {
    let result = match sink {
        AccessLogSink::Stdout => std::io::stdout().lock().write_all(buffer),
        AccessLogSink::Stderr => std::io::stderr().lock().write_all(buffer),
        AccessLogSink::File(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(buffer)),
    };
    if let Err(e) = result {
        tracing::warn!(?sink, error = %e, "cannot write the access log");
    }
    buffer.clear();
}

/// What the log line needs of the request, taken before the request is forwarded.
pub(crate) struct RequestRecord {
    start: SystemTime,
    started: Instant,
    method: http::Method,
    path: String,
    version: Version,
    forwarded_for: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    authority: Option<String>,
    bytes_received: u64,
}

impl RequestRecord {
    pub(crate) fn new<B: Body>(request: &Request<B>) -> Self {
        let headers = request.headers();
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| header(headers, &http::header::HOST));
        RequestRecord {
            start: SystemTime::now(),
            started: Instant::now(),
            method: request.method().clone(),
            path: request
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            version: request.version(),
            forwarded_for: header(headers, &X_FORWARDED_FOR),
            user_agent: header(headers, &http::header::USER_AGENT),
            request_id: header(headers, &X_REQUEST_ID),
            authority,
            bytes_received: request.body().size_hint().exact().unwrap_or(0),
        }
    }
}

fn header(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A response body that writes the request's log line when it ends (or is dropped early).
pub(crate) struct LoggedBody<B> {
    inner: B,
    pending: Option<PendingLine>,
}

struct PendingLine {
    record: RequestRecord,
    status: u16,
    upstream_time: Option<String>,
    info: AccessInfo,
    bytes_sent: u64,
    sinks: Rc<[AccessLogSink]>,
    buffers: Rc<AccessLogBuffers>,
}

impl<B> LoggedBody<B> {
    /// Wraps a response for logging to `sinks`; with no sinks, nothing is recorded.
    pub(crate) fn wrap(
        response: Response<B>,
        record: Option<RequestRecord>,
        sinks: &Rc<[AccessLogSink]>,
        buffers: &Rc<AccessLogBuffers>,
    ) -> Response<LoggedBody<B>> {
        let status = response.status().as_u16();
        let upstream_time = header(response.headers(), &UPSTREAM_SERVICE_TIME);
        let info = response
            .extensions()
            .get::<AccessInfo>()
            .copied()
            .unwrap_or_default();
        response.map(|inner| LoggedBody {
            inner,
            pending: record.map(|record| PendingLine {
                record,
                status,
                upstream_time,
                info,
                bytes_sent: 0,
                sinks: sinks.clone(),
                buffers: buffers.clone(),
            }),
        })
    }
}

impl<B> Body for LoggedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let (Some(data), Some(pending)) = (frame.data_ref(), self.pending.as_mut())
        {
            pending.bytes_sent += data.len() as u64;
        }
        if let Poll::Ready(None) = polled
            && let Some(pending) = self.pending.take()
        {
            pending.write();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for LoggedBody<B> {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.write();
        }
    }
}

impl PendingLine {
    fn write(self) {
        let r = &self.record;
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
        let mut line = String::with_capacity(256);
        let _ = writeln!(
            line,
            "[{}] \"{} {} {}\" {} {} {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\"",
            rfc3339_millis(r.start),
            r.method,
            r.path,
            protocol(r.version),
            self.status,
            self.info.flag.map_or("-", |f| f.code()),
            r.bytes_received,
            self.bytes_sent,
            r.started.elapsed().as_millis(),
            dash(&self.upstream_time),
            dash(&r.forwarded_for),
            dash(&r.user_agent),
            dash(&r.request_id),
            dash(&r.authority),
            self.info
                .upstream
                .map_or_else(|| "-".to_string(), |a| a.to_string()),
        );
        self.buffers.append(&self.sinks, &line);
    }
}

/// Envoy's `%PROTOCOL%`.
pub(crate) fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// `2026-11-21T05:50:01.123Z`, as Envoy prints `%START_TIME%`.
pub(crate) fn rfc3339_millis(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn start_time_is_rfc3339_with_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339_millis(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }
}
