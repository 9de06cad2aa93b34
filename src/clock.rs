//! A bound on the time, no earlier than now, from this worker's last clock reading: what a
//! request on the hot path checks a kept entry's expiry against instead of reading the clock
//! (a host call: ≈ 1 250 instructions in Envoy's V8, bench/callgrind.sh).
//!
//! Sound only for one kind of question: is something that is valid until `until_ms` still valid?
//! Valid at a time no earlier than now means valid now; an entry within the slack of its expiry
//! is simply not decided this way (the caller reads the clock). The glue records every clock
//! reading it makes, among them the 100 ms tick's in every worker VM, so the reading is at most a
//! tick and one turn of the worker's event loop old; `SLACK_MS` covers turns of up to ≈ 0.9 s
//! (Envoy's watchdog calls 1 s a mega-miss), and a reading serves at most `MAX_USES` requests, so
//! a loop busy with this filter's own requests reads the clock at least every `MAX_USES` of them.

/// How much later than the last reading the bound is.
pub const SLACK_MS: u64 = 1_000;
/// Requests one reading serves before the next asks the clock again (≈ 100 ms of requests at
/// 40 000 per second per worker: under that rate the tick refreshes it first).
pub const MAX_USES: u32 = 4_096;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecentClock {
    read_ms: u64,
    uses: u32,
}

impl RecentClock {
    /// A clock reading just made.
    pub fn record(&mut self, now_ms: u64) {
        *self = RecentClock { read_ms: now_ms, uses: 0 };
    }

    /// A time no earlier than now, or `None` (no reading yet, or this one served its
    /// `MAX_USES`): then the caller reads the clock, which records a new one.
    pub fn bound(&mut self) -> Option<u64> {
        if self.read_ms == 0 || self.uses >= MAX_USES {
            return None;
        }
        self.uses += 1;
        Some(self.read_ms.saturating_add(SLACK_MS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_bound_before_the_first_reading() {
        assert_eq!(RecentClock::default().bound(), None);
    }

    #[test]
    fn the_bound_is_the_reading_plus_the_slack_for_max_uses_requests() {
        let mut c = RecentClock::default();
        c.record(1_700_000_000_000);
        for _ in 0..MAX_USES {
            assert_eq!(c.bound(), Some(1_700_000_000_000 + SLACK_MS));
        }
        assert_eq!(c.bound(), None, "a reading serves at most MAX_USES requests");
        assert_eq!(c.bound(), None);
        c.record(1_700_000_000_050);
        assert_eq!(c.bound(), Some(1_700_000_000_050 + SLACK_MS), "a new reading starts over");
    }

    #[test]
    fn a_reading_near_the_end_of_time_saturates() {
        let mut c = RecentClock::default();
        c.record(u64::MAX - 1);
        assert_eq!(c.bound(), Some(u64::MAX));
    }
}
