//! Misbehaviour on command and the server's fixed options.
//!
//! A [`Behavior`] can be changed at any time with `ManagementServer::set_behavior`; every open
//! stream re-evaluates what it owes its client at once (turning `silent` off releases the held
//! answers). One-shot actions (drop every stream, inject a raw response) are methods of the
//! server, not flags.

/// How the server deviates from a well-behaved go-control-plane. All off by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Behavior {
    /// SotW: answer a NACK at once with the NACKed version again, as go-control-plane really does
    /// (its watch sees the NACK's `version_info`, the last accepted one, differ from the
    /// snapshot's). Delta has its own switch, `resend_nacked_delta`.
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
    /// List the resources of every response (and re-send) in a new random order, as
    /// go-control-plane does: it builds each response from a Go map.
    pub shuffle_resources: bool,
    /// SotW: read a request that names nothing as a wildcard for every type, EDS and RDS
    /// included, as go-control-plane's snapshot cache does (`createResponse` returns every
    /// resource when the request names none). A client that unsubscribes from all of a type
    /// gets that type's every resource, under a new nonce.
    pub empty_names_wildcard: bool,
    /// The reporting services answer as grpc-go handlers do: `StreamEvents`, which only
    /// receives, sends no response headers until the client ends the stream; `StreamLoadStats`
    /// sends its headers with its first response, which it sends only after the client's first
    /// request. A client that waits for headers before sending stalls.
    pub grpc_go_report_streams: bool,
    /// Refuse every new `StreamEvents` stream with UNIMPLEMENTED before reading it, as a grpc-go
    /// server without the service does.
    pub refuse_event_streams: bool,
    /// Delta: re-send a NACKed response at once, like `resend_nacked` does for SotW. Stricter
    /// than go-control-plane, whose delta server records what it sent and does not re-send.
    pub resend_nacked_delta: bool,
}

impl Behavior {
    /// The well-behaved server.
    pub fn normal() -> Self {
        Behavior::default()
    }

    /// A go-control-plane v0.12 server (grpc-go) as it really behaves: a NACKed SotW version
    /// re-sent at once, resources in random order, an empty name list read as a wildcard, and
    /// grpc-go's response headers on the reporting streams. Stale nonces are ignored in every
    /// mode. Add `ServerOptions::ads_strict` for its ADS-mode snapshot cache.
    pub fn go_control_plane() -> Self {
        Behavior {
            resend_nacked: true,
            shuffle_resources: true,
            empty_names_wildcard: true,
            grpc_go_report_streams: true,
            ..Behavior::default()
        }
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
