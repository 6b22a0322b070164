//! HTTP/1.1 upgrades (WebSocket and the like): whether a request asks for one and the listener
//! and route allow it (Envoy's `upgrade_configs`), and, once the upstream answers 101, the
//! tunnel that copies bytes both ways between the two upgraded connections.

use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use http::header::{self, HeaderMap};
use http::{Response, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use outrider_model::{ForwardAction, HttpConnectionManager};
use outrider_upstream::BreakerGuard;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::access_log::TunnelLog;
use crate::connection_hold::ConnectionHold;
use crate::drain::DrainSignal;
use crate::head_timer::HeadWatch;
use crate::local_reply::ResponseFlag;
use crate::stream_clock::{StreamClock, StreamTimeout};

/// The upgrade a request asks for (lower case, e.g. `websocket`): an HTTP/1.1 request whose
/// `Connection` header names `upgrade` and that carries an `Upgrade` header.
pub(crate) fn requested(version: Version, headers: &HeaderMap) -> Option<String> {
    if version != Version::HTTP_11 {
        return None;
    }
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return None;
    }
    let kind = headers.get(header::UPGRADE)?.to_str().ok()?.trim();
    (!kind.is_empty()).then(|| kind.to_ascii_lowercase())
}

/// Envoy's rule: the route's entry for this upgrade type wins (enabled or not); without one,
/// the connection manager's entry decides; an upgrade neither names is refused.
pub(crate) fn allowed(kind: &str, hcm: &HttpConnectionManager, action: &ForwardAction) -> bool {
    let entry = |upgrades: &[(String, bool)]| {
        upgrades
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, enabled)| *enabled)
    };
    entry(&action.upgrades)
        .or_else(|| entry(&hcm.upgrades))
        .unwrap_or(false)
}

/// The downstream side of an upgrade.
pub(crate) struct Downstream {
    upgrade: OnUpgrade,
    /// The listener's drain, which ends the tunnel after the drain time.
    drain: Option<DrainSignal>,
    /// The connection's place under the connection limits, kept until the tunnel closes.
    hold: Option<ConnectionHold>,
    /// HTTP/1.1: the connection's head timer, told that what follows is a tunnel.
    head: Option<Arc<HeadWatch>>,
}

/// The downstream side of an upgrade, taken from the request before it is forwarded (the
/// upstream request is built from the headers alone, so it never carries it).
pub(crate) fn take_downstream(extensions: &mut http::Extensions) -> Option<Downstream> {
    let upgrade = extensions.remove::<OnUpgrade>()?;
    Some(Downstream {
        upgrade,
        drain: extensions.remove::<DrainSignal>(),
        hold: extensions.remove::<ConnectionHold>(),
        head: extensions.remove::<Arc<HeadWatch>>(),
    })
}

/// Once hyper hands over both connections (the downstream's when its 101 is written, the
/// upstream's now), joins them in a task of this worker. The breaker guard travels with the
/// tunnel: an upgraded stream is an active request until it closes, as in Envoy.
pub(crate) fn tunnel(
    response: &mut Response<Incoming>,
    downstream: Downstream,
    active_request: BreakerGuard,
    clock: Option<Rc<StreamClock>>,
) {
    let upstream = hyper::upgrade::on(&mut *response);
    let Downstream {
        upgrade,
        drain,
        hold,
        head,
    } = downstream;
    let log = TunnelLog::default();
    response.extensions_mut().insert(log.clone());
    tokio::task::spawn_local(async move {
        // Told however the tunnel ends, a failed upgrade included.
        let _logged = LogOnClose(log.clone());
        // Logged as Envoy flags a tunnel that never opened: whose side failed.
        let (downstream, upstream) = match tokio::join!(upgrade, upstream) {
            (Ok(downstream), Ok(upstream)) => (downstream, upstream),
            (Err(e), _) => {
                tracing::debug!(error = %e, "the client's upgrade did not complete");
                log.ended_by(ResponseFlag::DownstreamConnectionTermination);
                return;
            }
            (_, Err(e)) => {
                tracing::debug!(error = %e, "the upstream's upgrade did not complete");
                log.ended_by(ResponseFlag::UpstreamConnectionTermination);
                return;
            }
        };
        if let Some(head) = head {
            head.tunnelled();
        }
        let mut downstream = Active {
            io: TokioIo::new(downstream),
            clock: clock.clone(),
            counted: log,
        };
        let mut upstream = TokioIo::new(upstream);
        // The stream's idle and duration limits go on applying to the tunnel, as in Envoy.
        let limits = async {
            match &clock {
                Some(clock) => clock.expiry().await,
                None => std::future::pending().await,
            }
        };
        let drain_over = async {
            match drain {
                Some(drain) => drain.over().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut downstream, &mut upstream) => match copied {
                Ok((sent, received)) => {
                    tracing::debug!(sent, received, "upgraded connection closed");
                }
                Err(e) => tracing::debug!(error = %e, "upgraded connection ended"),
            },
            () = drain_over => tracing::debug!("drain time over; closing the upgraded connection"),
            which = limits => {
                tracing::debug!(?which, "stream limit reached; closing the upgraded connection");
                if which == StreamTimeout::Idle {
                    downstream.counted.ended_by(ResponseFlag::StreamIdleTimeout);
                }
            }
        }
        drop(active_request);
        drop(hold);
    });
}

/// The client's side of a tunnel: each byte keeps the stream's idle timer from firing, and
/// is counted for the access log.
struct Active<T> {
    io: T,
    clock: Option<Rc<StreamClock>>,
    counted: TunnelLog,
}

/// Tells the stream's log entries that the tunnel task ended.
struct LogOnClose(TunnelLog);

impl Drop for LogOnClose {
    fn drop(&mut self) {
        self.0.closed.notify_one();
    }
}

impl<T> Active<T> {
    fn touch(&self) {
        if let Some(clock) = &self.clock {
            clock.touch();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.touch();
            this.counted.received.fetch_add(read as u64, Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &polled
            && *n > 0
        {
            this.touch();
            this.counted.sent.fetch_add(*n as u64, Relaxed);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn an_upgrade_needs_connection_upgrade_and_http_1_1() {
        let ws = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ]);
        assert_eq!(
            requested(Version::HTTP_11, &ws).as_deref(),
            Some("websocket")
        );
        assert_eq!(requested(Version::HTTP_10, &ws), None);
        assert_eq!(requested(Version::HTTP_2, &ws), None);
        let no_token = headers(&[("connection", "keep-alive"), ("upgrade", "websocket")]);
        assert_eq!(requested(Version::HTTP_11, &no_token), None);
        let no_upgrade = headers(&[("connection", "upgrade")]);
        assert_eq!(requested(Version::HTTP_11, &no_upgrade), None);
    }
}
