//! The ordered finalizer of one source: which of its lines are still outstanding, and how far
//! its position may move.
//!
//! A tailer issues each line (known by its end offset) before handing it on; each client then
//! settles it once delivered (or, for a line the pipeline dropped on purpose, once the drop
//! reached the client). Settlements arrive in any order, across clients and within one (a
//! multiline block held while later lines pass it). The committed position is the end of the
//! last line below which nothing is outstanding, so it never passes a line some client has
//! not settled. Owns only that bookkeeping; it must not know files, channels or HTTP.

use std::collections::VecDeque;
use std::time::Instant;

/// The most clients a finalizer can track (one bit each).
pub const MAX_CLIENTS: usize = 64;

#[derive(Debug)]
pub struct Finalizer {
    committed: u64,
    /// Issued lines not yet settled by every client, in issue (= offset) order. Lines at the
    /// front that every client settled are removed at once, so the front is the oldest line
    /// still outstanding.
    lines: VecDeque<Pending>,
    last_issued: u64,
    all_clients: u64,
}

#[derive(Debug)]
struct Pending {
    end: u64,
    /// One bit per client that has not settled the line yet.
    waiting: u64,
    issued_at: Instant,
}

impl Finalizer {
    /// Everything before `start` is already done; `clients` (at most [`MAX_CLIENTS`]) must
    /// each settle every line issued from now on.
    pub fn new(start: u64, clients: usize) -> Self {
        let clients = clients.clamp(1, MAX_CLIENTS);
        Self {
            committed: start,
            lines: VecDeque::new(),
            last_issued: start,
            all_clients: if clients == MAX_CLIENTS {
                u64::MAX
            } else {
                (1u64 << clients) - 1
            },
        }
    }

    /// The line ending at `end` has been handed on. Lines are issued in file order; a line
    /// not after the last one issued is ignored (it cannot exist in one source).
    pub fn issue(&mut self, end: u64, now: Instant) {
        if end <= self.last_issued {
            return;
        }
        self.last_issued = end;
        self.lines.push_back(Pending {
            end,
            waiting: self.all_clients,
            issued_at: now,
        });
    }

    /// `client` settled the lines ending at `from..=to`. Returns whether the committed
    /// position moved. Settling a line twice, or one never issued, changes nothing.
    pub fn settle(&mut self, client: usize, from: u64, to: u64) -> bool {
        if client >= MAX_CLIENTS {
            return false;
        }
        let bit = 1u64 << client;
        let first = self.lines.partition_point(|p| p.end < from);
        for p in self.lines.range_mut(first..) {
            if p.end > to {
                break;
            }
            p.waiting &= !bit;
        }
        let before = self.committed;
        while let Some(front) = self.lines.front() {
            if front.waiting != 0 {
                break;
            }
            self.committed = front.end;
            self.lines.pop_front();
        }
        self.committed != before
    }

    /// The end of the last line issued (handed on), settled or not.
    pub fn last_issued(&self) -> u64 {
        self.last_issued
    }

    /// How far the source is done: every line ending at or before it is settled everywhere.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Lines issued and not yet settled by every client.
    pub fn outstanding(&self) -> usize {
        self.lines.len()
    }

    /// When the oldest outstanding line was issued.
    pub fn oldest_outstanding(&self) -> Option<Instant> {
        self.lines.front().map(|p| p.issued_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(start: u64, ends: &[u64], clients: usize) -> Finalizer {
        let mut f = Finalizer::new(start, clients);
        let now = Instant::now();
        for &e in ends {
            f.issue(e, now);
        }
        f
    }

    #[test]
    fn out_of_order_settlement_commits_only_the_settled_prefix() {
        let mut f = issued(0, &[10, 20, 30, 40], 1);
        assert!(!f.settle(0, 30, 30), "line 10 still outstanding");
        assert!(!f.settle(0, 20, 20));
        assert_eq!(f.committed(), 0);
        assert!(f.settle(0, 10, 10));
        assert_eq!(f.committed(), 30, "10, 20 and 30 are settled; 40 is not");
        assert_eq!(f.outstanding(), 1);
        f.settle(0, 40, 40);
        assert_eq!(f.committed(), 40);
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn a_held_block_is_not_overtaken_by_later_lines() {
        // Lines 10 and 20 form a block still held; 30 passed it and was delivered.
        let mut f = issued(5, &[10, 20, 30], 1);
        f.settle(0, 30, 30);
        assert_eq!(f.committed(), 5);
        // The block's token covers both of its lines.
        f.settle(0, 10, 20);
        assert_eq!(f.committed(), 30);
    }

    #[test]
    fn every_client_must_settle_a_line() {
        let mut f = issued(0, &[10, 20], 2);
        f.settle(0, 10, 20);
        assert_eq!(f.committed(), 0);
        f.settle(1, 10, 10);
        assert_eq!(f.committed(), 10);
        // A repeat from client 0 does not stand in for client 1.
        f.settle(0, 20, 20);
        assert_eq!(f.committed(), 10);
        f.settle(1, 20, 20);
        assert_eq!(f.committed(), 20);
    }

    #[test]
    fn unknown_and_repeated_lines_change_nothing() {
        let mut f = issued(0, &[10, 20], 1);
        assert!(!f.settle(0, 15, 15));
        assert!(!f.settle(0, 99, 120));
        f.issue(20, Instant::now());
        f.issue(5, Instant::now());
        assert_eq!(f.outstanding(), 2);
        assert!(!f.settle(70, 10, 20), "no such client");
        assert_eq!(f.committed(), 0);
    }

    #[test]
    fn the_widest_client_count_is_tracked() {
        let mut f = issued(0, &[10], MAX_CLIENTS);
        for c in 0..MAX_CLIENTS - 1 {
            f.settle(c, 10, 10);
        }
        assert_eq!(f.committed(), 0);
        f.settle(MAX_CLIENTS - 1, 10, 10);
        assert_eq!(f.committed(), 10);
    }
}
