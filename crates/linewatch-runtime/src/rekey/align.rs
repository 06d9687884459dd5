//! Event-time alignment of the readings partitions one re-keying stage reads.
//!
//! Without a machine key, one machine's readings are spread over every readings partition,
//! and a consumer reads its partitions at uneven paces: while catching up on a backlog it
//! takes about a fetch (up to a megabyte, minutes of a line's readings) of one partition
//! before the next. Forwarded in that order, a machine's readings would reach its windower
//! minutes out of order and be dropped as late. The stage therefore forwards its partitions'
//! messages as a k-way merge by event time, as Flink's watermark alignment does: a message
//! goes out once every other partition it reads has a message waiting (with a later or equal
//! time, since the earliest goes first), or has reached its end (partition EOF) and the
//! message has waited `grace`, or has been silent for `idle_after`. The grace is for bursts:
//! a producer that catches up writes minutes of event time to every partition within
//! milliseconds, and a partition at its end a moment ago is about to deliver its share.
//! Each partition's messages keep their order (a merge never reorders within an input), which
//! the windowing side's replay filter relies on.
//!
//! Memory: the messages waiting, at most `capacity`; when full, the earliest
//! waiting message goes out without waiting for the silent or slow partitions (counted by
//! the caller).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One readings partition's waiting messages and state.
#[derive(Debug)]
struct Input<T> {
    /// Event time, arrival, message.
    waiting: VecDeque<(Option<i64>, Instant, T)>,
    at_end: bool,
    last_heard: Instant,
}

/// The k-way merge by event time of the partitions a stage reads; `T` is the message.
#[derive(Debug)]
pub struct Aligner<T> {
    inputs: HashMap<i32, Input<T>>,
    waiting: usize,
    capacity: usize,
    grace: Duration,
    idle_after: Duration,
}

/// Why a message was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Every other partition is ahead, at its end, or silent: in event-time order.
    Aligned,
    /// The buffer was full: out before a slow partition caught up.
    Full,
}

impl<T> Aligner<T> {
    /// An aligner holding at most `capacity` (>= 1) messages, that waits `grace` for a
    /// partition at its end and stops waiting for one silent for `idle_after`.
    pub fn new(capacity: usize, grace: Duration, idle_after: Duration) -> Self {
        Self {
            inputs: HashMap::new(),
            waiting: 0,
            capacity: capacity.max(1),
            grace,
            idle_after,
        }
    }

    /// The messages waiting.
    pub fn len(&self) -> usize {
        self.waiting
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// Partition `p` is now read by this stage (waited for from now on).
    pub fn assign(&mut self, p: i32, now: Instant) {
        self.inputs.entry(p).or_insert_with(|| Input {
            waiting: VecDeque::new(),
            at_end: false,
            last_heard: now,
        });
    }

    /// Partition `p` was taken away: its waiting messages are dropped (not forwarded, so not
    /// committed: its next owner reads them). Returns how many.
    pub fn revoke(&mut self, p: i32) -> usize {
        let dropped = self.inputs.remove(&p).map_or(0, |i| i.waiting.len());
        self.waiting -= dropped;
        dropped
    }

    /// A message of partition `p` with event time `ts_ms` (`None`: no time could be read; it
    /// goes out as soon as it is at its partition's head).
    pub fn push(&mut self, p: i32, ts_ms: Option<i64>, message: T, now: Instant) {
        self.assign(p, now);
        if let Some(input) = self.inputs.get_mut(&p) {
            input.waiting.push_back((ts_ms, now, message));
            input.at_end = false;
            input.last_heard = now;
            self.waiting += 1;
        }
    }

    /// Partition `p` has no more messages for now (the consumer's partition EOF).
    pub fn at_end(&mut self, p: i32, now: Instant) {
        self.assign(p, now);
        if let Some(input) = self.inputs.get_mut(&p) {
            input.at_end = true;
            input.last_heard = now;
        }
    }

    /// The next message to forward and its partition, if one may go now.
    pub fn pop(&mut self, now: Instant) -> Option<(i32, T, Release)> {
        // The earliest head: an untimed head first, then the smallest time (ties: lowest
        // partition, so the order is deterministic).
        let (p, ts, arrived) = self
            .inputs
            .iter()
            .filter_map(|(&p, i)| i.waiting.front().map(|(ts, at, _)| (p, *ts, *at)))
            .min_by_key(|&(p, ts, _)| (ts.is_some(), ts, p))?;
        let waited = now.saturating_duration_since(arrived);
        let release = if self.waiting >= self.capacity {
            Release::Full
        } else {
            Release::Aligned
        };
        if release == Release::Aligned && ts.is_some() {
            let blocked = self.inputs.iter().any(|(&q, i)| {
                let waited_for = if i.at_end {
                    waited < self.grace
                } else {
                    now.saturating_duration_since(i.last_heard) < self.idle_after
                };
                q != p && i.waiting.is_empty() && waited_for
            });
            if blocked {
                return None;
            }
        }
        let (_, _, message) = self.inputs.get_mut(&p)?.waiting.pop_front()?;
        self.waiting -= 1;
        Some((p, message, release))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_millis(100);
    const IDLE: Duration = Duration::from_secs(1);

    fn drain(a: &mut Aligner<&'static str>, now: Instant) -> Vec<&'static str> {
        std::iter::from_fn(|| a.pop(now).map(|(_, m, _)| m)).collect()
    }

    #[test]
    fn partitions_read_unevenly_come_out_in_event_time_order() {
        let t0 = Instant::now();
        let mut a = Aligner::new(100, GRACE, IDLE);
        a.assign(0, t0);
        a.assign(1, t0);
        // A whole fetch of partition 0 first, as a consumer catching up reads it.
        a.push(0, Some(10), "0@10", t0);
        a.push(0, Some(30), "0@30", t0);
        a.push(0, Some(50), "0@50", t0);
        assert_eq!(
            drain(&mut a, t0),
            Vec::<&str>::new(),
            "partition 1 not heard yet"
        );
        a.push(1, Some(20), "1@20", t0);
        a.push(1, Some(40), "1@40", t0);
        assert_eq!(drain(&mut a, t0), ["0@10", "1@20", "0@30", "1@40"]);
        // Partition 1 reaches its end: partition 0's rest may go once it waited the grace
        // (in case partition 1 is about to deliver a burst).
        a.at_end(1, t0);
        assert_eq!(drain(&mut a, t0), Vec::<&str>::new());
        assert_eq!(drain(&mut a, t0 + GRACE), ["0@50"]);
        assert!(a.is_empty());
    }

    #[test]
    fn a_burst_after_a_quiet_spell_is_merged_across_partitions() {
        let t0 = Instant::now();
        let mut a = Aligner::new(100, GRACE, IDLE);
        for p in 0..3 {
            a.at_end(p, t0);
        }
        // Minutes later a producer catches up: partition 0's share is fetched first.
        let t1 = t0 + IDLE * 60;
        a.push(0, Some(100), "0@100", t1);
        a.push(0, Some(400), "0@400", t1);
        assert_eq!(
            drain(&mut a, t1),
            Vec::<&str>::new(),
            "the others may deliver too"
        );
        a.push(1, Some(200), "1@200", t1 + GRACE / 4);
        a.push(2, Some(300), "2@300", t1 + GRACE / 2);
        a.at_end(1, t1 + GRACE / 2);
        a.at_end(2, t1 + GRACE / 2);
        // 2@300 has just arrived: it waits its grace for partition 1, at its end again.
        assert_eq!(drain(&mut a, t1 + GRACE / 2), ["0@100", "1@200"]);
        assert_eq!(drain(&mut a, t1 + GRACE + GRACE / 2), ["2@300", "0@400"]);
    }

    #[test]
    fn a_silent_partition_is_waited_for_only_so_long() {
        let t0 = Instant::now();
        let mut a = Aligner::new(100, GRACE, IDLE);
        a.assign(0, t0);
        a.assign(1, t0);
        a.push(0, Some(10), "0@10", t0);
        assert!(a.pop(t0 + IDLE / 2).is_none());
        assert_eq!(drain(&mut a, t0 + IDLE), ["0@10"]);
    }

    #[test]
    fn each_partition_keeps_its_order_even_when_its_times_go_back() {
        let t0 = Instant::now();
        let mut a = Aligner::new(100, GRACE, IDLE);
        a.push(0, Some(50), "0@50", t0);
        a.push(0, Some(20), "0@20 late", t0);
        a.push(1, Some(30), "1@30", t0);
        a.at_end(0, t0);
        a.at_end(1, t0);
        // 0@20 is behind 0@50 in its partition, so it cannot pass it.
        assert_eq!(drain(&mut a, t0 + GRACE), ["1@30", "0@50", "0@20 late"]);
    }

    #[test]
    fn untimed_messages_go_at_once_and_a_full_buffer_releases() {
        let t0 = Instant::now();
        let mut a = Aligner::new(3, GRACE, IDLE);
        a.assign(1, t0);
        a.push(0, None, "0@?", t0);
        assert_eq!(a.pop(t0), Some((0, "0@?", Release::Aligned)));
        a.push(0, Some(1), "0@1", t0);
        a.push(0, Some(2), "0@2", t0);
        assert!(a.pop(t0).is_none(), "partition 1 is waited for");
        a.push(0, Some(3), "0@3", t0);
        assert_eq!(
            a.pop(t0).map(|(_, m, r)| (m, r)),
            Some(("0@1", Release::Full))
        );
        assert!(a.pop(t0).is_none(), "below capacity again");
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn a_revoked_partition_is_no_longer_waited_for_and_its_messages_are_dropped() {
        let t0 = Instant::now();
        let mut a = Aligner::new(100, GRACE, IDLE);
        a.push(0, Some(10), "0@10", t0);
        a.push(1, Some(5), "1@5", t0);
        a.assign(2, t0);
        assert_eq!(drain(&mut a, t0), Vec::<&str>::new());
        assert_eq!(a.revoke(1), 1);
        assert_eq!(a.revoke(2), 0);
        assert_eq!(drain(&mut a, t0), ["0@10"]);
    }
}
