//! Misbehaviour on command and the server's fixed options.
//!
//! A [`Behavior`] can be changed at any time with `ManagementServer::set_behavior`; every open
//! stream re-evaluates what it owes its client at once (turning `silent` off releases the held
//! answers). One-shot actions (drop every stream, inject a raw response) are methods of the
//! server, not flags.

/// How the server deviates from a well-behaved go-control-plane. All off by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Behavior {
    /// Answer a NACK at once with the NACKed version again, as go-control-plane really does (its
    /// watch sees the NACK's `version_info`, the last accepted one, differ from the snapshot's).
    /// Lets a test prove that a client does not busy-loop on a bad version.
    pub resend_nacked: bool,
    /// Send every response twice (identical, same nonce).
    pub duplicate_responses: bool,
    /// Put the first resource of every non-empty response in it twice.
    pub duplicate_resources: bool,
    /// Add every resource of the type the snapshot holds, asked for or not (EDS/RDS by name).
    pub unrequested_resources: bool,
    /// Accept and record requests but never answer. Turning it off answers what was held.
    pub silent: bool,
}

impl Behavior {
    /// The well-behaved server.
    pub fn normal() -> Self {
        Behavior::default()
    }
}

/// Options fixed when the server starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerOptions {
    /// Emulate go-control-plane's ADS mode (`NewSnapshotCache(ads = true, …)`): a request that
    /// names resources (EDS, RDS, SDS; not a wildcard) is answered only when its names cover every
    /// resource of that type in the snapshot. Otherwise it is dropped without an answer, and only
    /// a new request of that type can get one. With it on, a test proves that a client always
    /// sends the complete name list; a stale or partial list stalls the client, as it would
    /// against a real go-control-plane in ADS mode. Default off.
    pub ads_strict: bool,
}

impl ServerOptions {
    /// Turns ADS strict mode on or off (builder style).
    #[must_use]
    pub fn ads_strict(mut self, on: bool) -> Self {
        self.ads_strict = on;
        self
    }
}
