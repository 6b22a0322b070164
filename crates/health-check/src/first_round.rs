//! The first round of a cluster's health checks: done once every session started before it
//! was done has completed one check (or ended). Envoy keeps a new health-checked cluster
//! warming until then; here it sets `ClusterHealthCheckState::first_round_done`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use outrider_tables::ClusterState;

pub(crate) struct FirstRound {
    outstanding: AtomicUsize,
    cluster: Arc<ClusterState>,
}

impl FirstRound {
    pub(crate) fn new(cluster: Arc<ClusterState>) -> Arc<Self> {
        Arc::new(Self {
            outstanding: AtomicUsize::new(0),
            cluster,
        })
    }

    /// A ticket the round waits for until it is dropped. The supervisor holds one while it
    /// starts sessions, so the round cannot end between two of them.
    pub(crate) fn ticket(self: &Arc<Self>) -> FirstRoundTicket {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
        FirstRoundTicket(Arc::clone(self))
    }

    pub(crate) fn is_done(&self) -> bool {
        self.cluster.health_check.first_round_done()
    }
}

pub(crate) struct FirstRoundTicket(Arc<FirstRound>);

impl Drop for FirstRoundTicket {
    fn drop(&mut self) {
        if self.0.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.cluster.health_check.mark_first_round_done();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_when_the_last_ticket_goes() {
        let cluster = Arc::new(ClusterState::new());
        let round = FirstRound::new(cluster.clone());
        let supervisor = round.ticket();
        let a = round.ticket();
        let b = round.ticket();
        drop(a);
        drop(supervisor);
        assert!(!round.is_done());
        drop(b);
        assert!(round.is_done());
        assert!(cluster.health_check.first_round_done());
    }
}
