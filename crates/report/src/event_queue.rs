//! The events waiting to be sent: bounded, so an unreachable control plane costs a fixed amount
//! of memory. When full, the oldest event goes (the newest say most about the hosts now).

use std::collections::VecDeque;
use std::sync::Arc;

use outrider_upstream::events::HostEvent;

#[derive(Debug)]
pub(crate) struct EventQueue {
    events: VecDeque<Arc<HostEvent>>,
    capacity: usize,
}

impl EventQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            events: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
        }
    }

    /// Queues `event`; returns how many events were dropped to make room (0 or 1).
    pub(crate) fn push(&mut self, event: Arc<HostEvent>) -> u64 {
        let mut dropped = 0;
        if self.events.len() >= self.capacity {
            self.events.pop_front();
            dropped = 1;
        }
        self.events.push_back(event);
        dropped
    }

    /// Puts back events taken but not sent, ahead of the rest; returns how many of the oldest
    /// had to go to stay within capacity.
    pub(crate) fn requeue(&mut self, events: Vec<Arc<HostEvent>>) -> u64 {
        for event in events.into_iter().rev() {
            self.events.push_front(event);
        }
        let excess = self.events.len().saturating_sub(self.capacity);
        self.events.drain(..excess);
        excess as u64
    }

    /// Takes up to `max` of the oldest events.
    pub(crate) fn take(&mut self, max: usize) -> Vec<Arc<HostEvent>> {
        let n = self.events.len().min(max);
        self.events.drain(..n).collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use outrider_upstream::events::{HealthCheckerType, HealthEvent, HealthTransition, HostEvent};

    use super::*;

    fn event(port: u16) -> Arc<HostEvent> {
        Arc::new(HostEvent::Health(HealthEvent {
            checker: HealthCheckerType::Tcp,
            cluster_name: "c".into(),
            address: ([127, 0, 0, 1], port).into(),
            transition: HealthTransition::Degraded,
            timestamp: SystemTime::UNIX_EPOCH,
        }))
    }

    fn ports(events: &[Arc<HostEvent>]) -> Vec<u16> {
        events
            .iter()
            .map(|e| match &**e {
                HostEvent::Health(h) => h.address.port(),
                HostEvent::Outlier(o) => o.address.port(),
            })
            .collect()
    }

    #[test]
    fn keeps_the_newest_when_full_and_counts_what_it_drops() {
        let mut queue = EventQueue::new(3);
        let dropped: u64 = (1..=5).map(|p| queue.push(event(p))).sum();
        assert_eq!(dropped, 2);
        assert_eq!(queue.len(), 3);
        assert_eq!(ports(&queue.take(2)), [3, 4]);
        assert_eq!(ports(&queue.take(10)), [5]);
        assert!(queue.is_empty());
    }

    #[test]
    fn events_put_back_go_first_and_the_oldest_give_way() {
        let mut queue = EventQueue::new(3);
        queue.push(event(1));
        queue.push(event(2));
        let taken = queue.take(2);
        queue.push(event(3));
        queue.push(event(4));
        assert_eq!(queue.requeue(taken), 1);
        assert_eq!(ports(&queue.take(10)), [2, 3, 4]);
    }
}
