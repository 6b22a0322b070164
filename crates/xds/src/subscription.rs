//! What the client wants of one resource type and where it stands on the current stream.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use envoy_types::pb::google::rpc::Status;

use crate::{Outbound, ResourceType};

/// The longest a repeated NACK is held back. A server like go-control-plane pushes a fixed
/// version only once it has our request, so this also bounds how late a fix can arrive after
/// a loop of rejections; at one exchange per 5 s the loop itself costs nothing.
pub const MAX_REPEAT_NACK_DELAY: Duration = Duration::from_secs(5);

/// gRPC's INVALID_ARGUMENT, the code Envoy puts in a NACK's `error_detail`.
pub const INVALID_ARGUMENT: i32 = 3;

#[derive(Debug)]
pub struct Subscription {
    pub kind: ResourceType,
    /// The names wanted (EDS, RDS). Wildcard types (LDS, CDS) keep this empty.
    pub names: BTreeSet<String>,
    /// The names this stream has been told; `None` until the first request of this type on the
    /// current stream.
    pub sent_names: Option<BTreeSet<String>>,
    /// The nonce of the last response on this stream; nonces do not survive a reconnect.
    pub nonce: String,
    /// SotW: the last version accepted whole (sent as `version_info` in every request).
    pub version: String,
    /// SotW: the NACK for the current nonce, repeated on any request that carries that nonce.
    pub error: Option<Status>,
    /// Delta: the version of every resource accepted, for `initial_resource_versions`.
    pub known: BTreeMap<String, String>,
    /// A hash of the last response rejected, to recognise a server re-sending it unchanged.
    pub rejected: Option<u64>,
    /// How many times in a row that same rejected response came back.
    pub rejected_repeats: u32,
    /// A NACK held back because the server keeps re-sending what was rejected.
    pub pending_nack: Option<(Instant, Outbound)>,
    /// A first response arrived, or `initial_fetch_timeout` passed (readiness).
    pub answered: bool,
    /// When waiting for the first response stops holding up readiness; `None` waits forever.
    pub initial_deadline: Option<Instant>,
}

impl Subscription {
    pub fn new(kind: ResourceType, initial_deadline: Option<Instant>) -> Self {
        Subscription {
            kind,
            names: BTreeSet::new(),
            sent_names: None,
            nonce: String::new(),
            version: String::new(),
            error: None,
            known: BTreeMap::new(),
            rejected: None,
            rejected_repeats: 0,
            pending_nack: None,
            answered: false,
            initial_deadline,
        }
    }

    /// Forgets everything that belonged to the previous stream, the last rejection included:
    /// its NACK went on that stream, so the same response on a new one is judged (and NACKed,
    /// with its reasons) afresh.
    pub fn reset_stream(&mut self) {
        self.sent_names = None;
        self.nonce.clear();
        self.error = None;
        self.pending_nack = None;
        self.rejected = None;
        self.rejected_repeats = 0;
    }

    /// Whether this type has anything to ask for: wildcard types always, named types once a
    /// resource references a name.
    pub fn wants_anything(&self) -> bool {
        self.kind.is_wildcard() || !self.names.is_empty()
    }

    /// Records an accepted response.
    pub fn accepted(&mut self) {
        self.error = None;
        self.rejected = None;
        self.rejected_repeats = 0;
    }

    /// Records a rejected response and the NACK that goes with it.
    pub fn rejected(&mut self, hash: u64, reasons: &[String]) {
        self.error = Some(Status {
            code: INVALID_ARGUMENT,
            message: reasons.join("\n"),
            details: Vec::new(),
        });
        self.rejected = Some(hash);
        self.rejected_repeats = 0;
    }

    /// How long to hold back the NACK of a response the server sent again unchanged: it grows
    /// with each repeat, so a server that re-sends a rejected version at once (go-control-plane
    /// does) costs one exchange every few seconds rather than a busy loop.
    pub fn repeat_nack_delay(&mut self) -> Duration {
        self.rejected_repeats = self.rejected_repeats.saturating_add(1);
        let factor = 1u32
            .checked_shl(self.rejected_repeats.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        Duration::from_millis(500)
            .saturating_mul(factor)
            .min(MAX_REPEAT_NACK_DELAY)
    }
}
