//! Relays given up on for the rest of a queue run.
//!
//! When a relay cannot be reached or times out, the next message for it
//! would wait the whole timeout again: with fifty messages queued behind
//! a relay that black-holes connections, a run would take fifty timeouts.
//! As Postfix suspends a dead destination, the runner records the relay
//! here on its first such failure and defers the rest of its messages
//! without connecting, each with the reason (so `mailq` says why). The
//! next run tries the relay again.

use std::collections::HashMap;

/// Relays suspended for one queue run, each with the failure that
/// suspended it. The key is whatever names a relay for the caller (the
/// binary uses the profile's host list and port).
#[derive(Debug, Default, Clone)]
pub struct SuspendedRelays {
    reasons: HashMap<String, String>,
}

impl SuspendedRelays {
    /// None suspended.
    pub fn new() -> Self {
        Self::default()
    }

    /// Suspends `relay` for the rest of the run because of `reason` (the
    /// first reason is kept).
    pub fn suspend(&mut self, relay: &str, reason: &str) {
        self.reasons
            .entry(relay.to_owned())
            .or_insert_with(|| reason.to_owned());
    }

    /// Why `relay` is suspended, if it is: the reason to record for a
    /// message deferred without trying it.
    pub fn reason(&self, relay: &str) -> Option<String> {
        self.reasons
            .get(relay)
            .map(|r| format!("{r} (not tried again in this queue run; the next run will)"))
    }

    /// How many relays are suspended.
    pub fn len(&self) -> usize {
        self.reasons.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.reasons.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reason_is_kept_per_relay() {
        let mut s = SuspendedRelays::new();
        assert!(s.reason("a:25").is_none() && s.is_empty());
        s.suspend("a:25", "relay a: timed out after 5 s");
        s.suspend("a:25", "something else");
        let r = s.reason("a:25").unwrap();
        assert!(
            r.starts_with("relay a: timed out after 5 s (not tried again"),
            "{r}"
        );
        assert!(s.reason("b:25").is_none());
        assert_eq!(s.len(), 1);
    }
}
