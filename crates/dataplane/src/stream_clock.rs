//! The connection manager's timers on one stream, as Envoy's `ActiveStream` keeps them: idle
//! (no activity either way), whole request (disarmed once the response begins) and maximum
//! duration. The stream's bodies report activity here; the request path races its work
//! against [`StreamClock::expiry`] until the response head is ready, and the response body
//! (or an upgrade's tunnel) checks the clock after that.
//!
//! One clock per stream, on the worker's thread (`Rc`, `Cell`): activity costs a clock read
//! and a store, and a timer is armed only for the earliest deadline.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::http_stats::HttpStats;
use crate::stream_body::BodyFailure;

/// The stream's limits, from the connection manager and the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StreamLimits {
    /// No activity either way for this long ends the stream.
    pub idle: Option<Duration>,
    /// The whole request must have arrived by then (disarmed once the response begins).
    pub request: Option<Duration>,
    /// The stream ends this long after it began.
    pub max_duration: Option<Duration>,
}

/// Which limit a stream reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamTimeout {
    Idle,
    Request,
    MaxDuration,
}

pub(crate) struct StreamClock {
    started: Instant,
    limits: StreamLimits,
    last_activity: Cell<Instant>,
    request_complete: Cell<bool>,
    response_started: Cell<bool>,
    /// The client's request body failed. An HTTP/2 upstream connection only logs the body's
    /// error and resets its stream, so the request path learns whose fault it was here.
    client_body_failed: Cell<Option<BodyFailure>>,
    /// The connection manager's counters (`downstream_rq_idle_timeout` …).
    stats: Rc<HttpStats>,
}

impl StreamClock {
    /// A clock for a stream that began at `started`; `None` when no limit applies and the
    /// request has no body (whose failure the clock must still record, see
    /// `client_body_failed`).
    pub(crate) fn start(
        started: std::time::Instant,
        limits: StreamLimits,
        request_complete: bool,
        stats: &Rc<HttpStats>,
    ) -> Option<Rc<Self>> {
        let unlimited =
            limits.idle.is_none() && limits.request.is_none() && limits.max_duration.is_none();
        if unlimited && request_complete {
            return None;
        }
        let started = Instant::from_std(started);
        Some(Rc::new(StreamClock {
            started,
            limits,
            // The head that began the stream is its first activity.
            last_activity: Cell::new(started),
            request_complete: Cell::new(request_complete),
            response_started: Cell::new(false),
            client_body_failed: Cell::new(None),
            stats: stats.clone(),
        }))
    }

    /// Data moved on the stream, either way.
    pub(crate) fn touch(&self) {
        if self.limits.idle.is_some() {
            self.last_activity.set(Instant::now());
        }
    }

    pub(crate) fn client_body_failed(&self, how: BodyFailure) {
        self.client_body_failed.set(Some(how));
    }

    /// How the client's request body failed, if it did.
    pub(crate) fn client_body_failure(&self) -> Option<BodyFailure> {
        self.client_body_failed.get()
    }

    /// The client's request has arrived whole.
    pub(crate) fn request_complete(&self) {
        self.request_complete.set(true);
    }

    pub(crate) fn is_request_complete(&self) -> bool {
        self.request_complete.get()
    }

    /// The response head is ready: the request timeout no longer applies.
    pub(crate) fn response_started(&self) {
        self.response_started.set(true);
    }

    /// The earliest deadline still armed, and which limit it is.
    fn next(&self) -> Option<(Instant, StreamTimeout)> {
        let idle = self
            .limits
            .idle
            .map(|d| (self.last_activity.get() + d, StreamTimeout::Idle));
        let request = self
            .limits
            .request
            .filter(|_| !self.request_complete.get() && !self.response_started.get())
            .map(|d| (self.started + d, StreamTimeout::Request));
        let duration = self
            .limits
            .max_duration
            .map(|d| (self.started + d, StreamTimeout::MaxDuration));
        [idle, request, duration]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at)
    }

    /// The limit reached at `now`, if any (the idle deadline may have moved on since a timer
    /// was armed for it).
    fn reached(&self, now: Instant) -> Option<StreamTimeout> {
        self.next()
            .filter(|(at, _)| *at <= now)
            .map(|(_, which)| which)
    }

    /// A response moved data: [`StreamClock::touch`], and whether the stream is past its
    /// maximum duration (counted), so that a response that never pauses ends there too.
    pub(crate) fn touch_response(&self) -> Option<StreamTimeout> {
        if self.limits.idle.is_none() && self.limits.max_duration.is_none() {
            return None;
        }
        let now = Instant::now();
        self.last_activity.set(now);
        let past = self
            .limits
            .max_duration
            .is_some_and(|d| now >= self.started + d);
        past.then(|| {
            self.count(StreamTimeout::MaxDuration);
            StreamTimeout::MaxDuration
        })
    }

    /// The limit reached by now, if any, counted.
    pub(crate) fn reached_now(&self) -> Option<StreamTimeout> {
        let which = self.reached(Instant::now())?;
        self.count(which);
        Some(which)
    }

    /// Resolves when a limit is reached (never, when none is armed), counting it.
    pub(crate) async fn expiry(&self) -> StreamTimeout {
        // `within` on work that never ends: it returns only when a limit is reached.
        let mut never = std::pin::pin!(std::future::pending::<()>());
        loop {
            if let Err(Expired::Stream(which)) = within(never.as_mut(), None, Some(self)).await {
                return which;
            }
        }
    }

    /// [`StreamClock::expiry`] for a body's `poll_frame`: `timer` is the body's own, armed
    /// on first use.
    pub(crate) fn poll_expiry(
        &self,
        timer: &mut Option<Pin<Box<Sleep>>>,
        cx: &mut Context<'_>,
    ) -> Poll<StreamTimeout> {
        loop {
            let Some((at, _)) = self.next() else {
                return Poll::Pending;
            };
            match timer {
                Some(sleep) if sleep.deadline() != at => sleep.as_mut().reset(at),
                Some(_) => {}
                None => *timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            let Some(sleep) = timer.as_mut() else {
                return Poll::Pending;
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if let Some(which) = self.reached(Instant::now()) {
                self.count(which);
                return Poll::Ready(which);
            }
        }
    }

    /// The earliest of `deadline` and this clock's next deadline.
    fn earliest(clock: Option<&Self>, deadline: Option<Instant>) -> Option<Instant> {
        let stream = clock.and_then(|c| c.next()).map(|(at, _)| at);
        match (stream, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn count(&self, which: StreamTimeout) {
        let counters = self.stats.local();
        let counter = match which {
            StreamTimeout::Idle => &counters.downstream_rq_idle_timeout,
            StreamTimeout::Request => &counters.downstream_rq_timeout,
            StreamTimeout::MaxDuration => &counters.downstream_rq_max_duration_reached,
        };
        counter.fetch_add(1, Relaxed);
        tracing::debug!(?which, "stream timeout");
    }
}

/// Why [`within`] gave up on its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// The caller's own deadline passed.
    Deadline,
    /// The stream reached one of its limits (counted).
    Stream(StreamTimeout),
}

/// Runs `work` until it completes, `deadline` passes or the stream (`clock`) reaches a limit,
/// with one timer for all of them (the request path's every wait goes through here, so a
/// stream with limits costs no timer of its own). `work` is pinned by the caller: a send
/// future is large, and moving it per request would cost more than the timer.
pub(crate) async fn within<F: Future>(
    mut work: Pin<&mut F>,
    deadline: Option<std::time::Instant>,
    clock: Option<&StreamClock>,
) -> Result<F::Output, Expired> {
    let deadline = deadline.map(Instant::from_std);
    let Some(first) = StreamClock::earliest(clock, deadline) else {
        return Ok(work.await);
    };
    let timer = tokio::time::sleep_until(first);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            biased;
            output = work.as_mut() => return Ok(output),
            () = &mut timer => {
                if let Some(which) = clock.and_then(StreamClock::reached_now) {
                    return Err(Expired::Stream(which));
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Expired::Deadline);
                }
                // The idle deadline moved on with activity: wait for the new one.
                match StreamClock::earliest(clock, deadline) {
                    Some(next) => timer.as_mut().reset(next),
                    None => return Ok(work.await),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(limits: StreamLimits) -> Rc<StreamClock> {
        let stats = Rc::new(HttpStats::default());
        StreamClock::start(std::time::Instant::now(), limits, false, &stats)
            .expect("a clock with limits")
    }

    #[test]
    fn no_limits_no_clock_unless_a_body_may_fail() {
        let stats = Rc::new(HttpStats::default());
        let start = |request_complete| {
            StreamClock::start(
                std::time::Instant::now(),
                StreamLimits::default(),
                request_complete,
                &stats,
            )
        };
        assert!(start(true).is_none());
        // A body to come: a clock that records its failure and never expires.
        let watching = start(false).expect("a clock for the body");
        assert_eq!(watching.next(), None);
        watching.client_body_failed(BodyFailure::Malformed);
        assert_eq!(watching.client_body_failure(), Some(BodyFailure::Malformed));
    }

    #[test]
    fn the_request_timeout_ends_with_the_request_or_the_response() {
        let ms = Duration::from_millis;
        let limits = StreamLimits {
            idle: Some(ms(500)),
            request: Some(ms(100)),
            max_duration: Some(ms(900)),
        };
        let armed = clock(limits);
        assert_eq!(armed.next().map(|n| n.1), Some(StreamTimeout::Request));
        armed.request_complete();
        assert_eq!(armed.next().map(|n| n.1), Some(StreamTimeout::Idle));
        let responding = clock(limits);
        responding.response_started();
        assert_eq!(responding.next().map(|n| n.1), Some(StreamTimeout::Idle));
        let no_idle = clock(StreamLimits {
            idle: None,
            ..limits
        });
        no_idle.request_complete();
        assert_eq!(
            no_idle.next().map(|n| n.1),
            Some(StreamTimeout::MaxDuration)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn activity_moves_the_idle_deadline() {
        let idle = clock(StreamLimits {
            idle: Some(Duration::from_millis(100)),
            ..StreamLimits::default()
        });
        tokio::time::advance(Duration::from_millis(80)).await;
        idle.touch();
        tokio::time::advance(Duration::from_millis(80)).await;
        assert_eq!(idle.reached(Instant::now()), None);
        assert_eq!(idle.expiry().await, StreamTimeout::Idle);
        assert!(idle.last_activity.get() + Duration::from_millis(100) <= Instant::now());
        assert_eq!(
            idle.stats.total(|c| &c.downstream_rq_idle_timeout),
            1,
            "counted"
        );
    }
}
