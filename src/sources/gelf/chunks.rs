//! Reassembling chunked GELF messages: a datagram starting with `0x1e 0x0f` carries an
//! 8-byte message ID, its sequence number and the chunk count (at most 128) before its
//! piece of the payload. Chunks may arrive in any order and more than once; a set must be
//! complete within [`EXPIRY`] of its first chunk (the GELF spec's 5 s, as go-gelf), or it is
//! dropped and counted.
//!
//! Owns the sets in progress and their memory bound; it must not decode payloads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The first two bytes of a chunk.
pub const MAGIC: [u8; 2] = [0x1e, 0x0f];
/// Magic, message ID, sequence number, count.
pub const HEADER_LEN: usize = 12;
/// GELF's limit on the chunks of one message.
pub const MAX_CHUNKS: usize = 128;
/// How long a set may take to arrive, from its first chunk.
pub const EXPIRY: Duration = Duration::from_secs(5);

/// What one chunk did.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// The set is complete: the payload, chunks joined in sequence order.
    Complete(Vec<u8>),
    /// Kept; the set waits for more (or this was a duplicate, ignored).
    Pending,
    /// Not a valid chunk, or one that does not fit its set.
    Malformed(&'static str),
    /// Over the bound on sets or bytes in progress: this chunk is dropped.
    Overflow,
}

struct Set {
    deadline: Instant,
    chunks: Vec<Option<Vec<u8>>>,
    received: usize,
    bytes: usize,
}

/// The sets in progress, keyed by sender and message ID: a sender cannot complete (or
/// spoil) another sender's message by reusing its ID.
pub struct Assembler {
    sets: HashMap<(SocketAddr, [u8; 8]), Set>,
    /// Sets completed within [`EXPIRY`], with when they may be forgotten: a duplicate of one
    /// of their chunks arriving late is ignored rather than starting a set that can only
    /// expire.
    completed: HashMap<(SocketAddr, [u8; 8]), Instant>,
    bytes: usize,
    max_sets: usize,
    max_bytes: usize,
}

impl Assembler {
    /// At most `max_sets` sets and `max_bytes` of chunk data in progress at once.
    pub fn new(max_sets: usize, max_bytes: usize) -> Self {
        Assembler {
            sets: HashMap::new(),
            completed: HashMap::new(),
            bytes: 0,
            max_sets,
            max_bytes,
        }
    }

    /// Whether `datagram` is a chunk rather than a whole message.
    pub fn is_chunk(datagram: &[u8]) -> bool {
        datagram.starts_with(&MAGIC)
    }

    /// Takes one chunk from `peer`; `expired` counts sets found expired on the way.
    pub fn feed(&mut self, peer: SocketAddr, chunk: &[u8], now: Instant, expired: &mut u64) -> Fed {
        if chunk.len() <= HEADER_LEN {
            return Fed::Malformed("chunk no longer than its 12-byte header");
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&chunk[2..10]);
        let (seq, count) = (chunk[10] as usize, chunk[11] as usize);
        if count == 0 || count > MAX_CHUNKS {
            return Fed::Malformed("chunk count not within 1..=128");
        }
        if seq >= count {
            return Fed::Malformed("chunk sequence number not below the chunk count");
        }
        let key = (peer, id);
        if self.completed.get(&key).is_some_and(|until| now < *until) {
            return Fed::Pending;
        }
        if self.sets.get(&key).is_some_and(|s| now >= s.deadline) {
            self.remove(&key);
            *expired += 1;
        }
        let body = &chunk[HEADER_LEN..];
        if !self.sets.contains_key(&key) {
            if self.sets.len() >= self.max_sets || self.bytes + body.len() > self.max_bytes {
                return Fed::Overflow;
            }
            self.sets.insert(
                key,
                Set {
                    deadline: now + EXPIRY,
                    chunks: vec![None; count],
                    received: 0,
                    bytes: 0,
                },
            );
        }
        let Some(set) = self.sets.get_mut(&key) else {
            return Fed::Overflow;
        };
        if set.chunks.len() != count {
            return Fed::Malformed("chunk count differs from its set's first chunk");
        }
        if set.chunks[seq].is_some() {
            return Fed::Pending;
        }
        if self.bytes + body.len() > self.max_bytes {
            return Fed::Overflow;
        }
        set.chunks[seq] = Some(body.to_vec());
        set.received += 1;
        set.bytes += body.len();
        self.bytes += body.len();
        if set.received < count {
            return Fed::Pending;
        }
        match self.remove(&key) {
            Some(set) => {
                if self.completed.len() >= self.max_sets {
                    self.completed.retain(|_, until| now < *until);
                }
                if self.completed.len() < self.max_sets {
                    self.completed.insert(key, set.deadline);
                }
                Fed::Complete(set.chunks.into_iter().flatten().flatten().collect())
            }
            None => Fed::Pending,
        }
    }

    /// Drops every set not complete by its deadline; how many.
    pub fn expire(&mut self, now: Instant) -> u64 {
        let before = self.sets.len();
        let mut freed = 0;
        self.sets.retain(|_, s| {
            let keep = now < s.deadline;
            if !keep {
                freed += s.bytes;
            }
            keep
        });
        self.bytes -= freed;
        self.completed.retain(|_, until| now < *until);
        (before - self.sets.len()) as u64
    }

    /// Sets in progress.
    pub fn pending(&self) -> usize {
        self.sets.len()
    }

    fn remove(&mut self, key: &(SocketAddr, [u8; 8])) -> Option<Set> {
        let set = self.sets.remove(key)?;
        self.bytes -= set.bytes;
        Some(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: u8, seq: u8, count: u8, body: &[u8]) -> Vec<u8> {
        let mut c = vec![0x1e, 0x0f, id, 0, 0, 0, 0, 0, 0, 7, seq, count];
        c.extend_from_slice(body);
        c
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    #[test]
    fn out_of_order_and_duplicate_chunks_reassemble_once() {
        let mut a = Assembler::new(16, 1 << 20);
        let now = Instant::now();
        let mut expired = 0;
        assert_eq!(
            a.feed(peer(), &chunk(1, 2, 3, b"ghi"), now, &mut expired),
            Fed::Pending
        );
        assert_eq!(
            a.feed(peer(), &chunk(1, 0, 3, b"abc"), now, &mut expired),
            Fed::Pending
        );
        assert_eq!(
            a.feed(peer(), &chunk(1, 0, 3, b"XXX"), now, &mut expired),
            Fed::Pending
        );
        assert_eq!(
            a.feed(peer(), &chunk(1, 1, 3, b"def"), now, &mut expired),
            Fed::Complete(b"abcdefghi".to_vec())
        );
        assert_eq!(a.pending(), 0);
        assert_eq!(a.bytes, 0);
        // A duplicate after completion neither completes again nor opens a set to expire.
        assert_eq!(
            a.feed(peer(), &chunk(1, 2, 3, b"ghi"), now, &mut expired),
            Fed::Pending
        );
        assert_eq!(a.pending(), 0);
        assert_eq!(a.expire(now + EXPIRY), 0);
        assert_eq!(expired, 0);
    }

    #[test]
    fn same_id_from_two_senders_stays_apart() {
        let mut a = Assembler::new(16, 1 << 20);
        let now = Instant::now();
        let other: SocketAddr = "127.0.0.2:5000".parse().unwrap();
        let mut e = 0;
        assert_eq!(
            a.feed(peer(), &chunk(1, 0, 2, b"a"), now, &mut e),
            Fed::Pending
        );
        assert_eq!(
            a.feed(other, &chunk(1, 1, 2, b"z"), now, &mut e),
            Fed::Pending
        );
        assert_eq!(a.pending(), 2);
    }

    #[test]
    fn bad_headers_are_malformed() {
        let mut a = Assembler::new(16, 1 << 20);
        let now = Instant::now();
        let mut e = 0;
        assert!(matches!(
            a.feed(peer(), &[0x1e, 0x0f, 1, 2], now, &mut e),
            Fed::Malformed(_)
        ));
        assert!(matches!(
            a.feed(peer(), &chunk(1, 0, 0, b"x"), now, &mut e),
            Fed::Malformed(_)
        ));
        assert!(matches!(
            a.feed(peer(), &chunk(1, 0, 129, b"x"), now, &mut e),
            Fed::Malformed(_)
        ));
        assert!(matches!(
            a.feed(peer(), &chunk(1, 3, 3, b"x"), now, &mut e),
            Fed::Malformed(_)
        ));
        assert_eq!(
            a.feed(peer(), &chunk(1, 0, 3, b"x"), now, &mut e),
            Fed::Pending
        );
        assert!(matches!(
            a.feed(peer(), &chunk(1, 1, 4, b"x"), now, &mut e),
            Fed::Malformed(_)
        ));
        assert_eq!(
            a.feed(peer(), &chunk(2, 127, 128, b"x"), now, &mut e),
            Fed::Pending
        );
    }

    #[test]
    fn incomplete_sets_expire_and_free_their_bytes() {
        let mut a = Assembler::new(16, 1 << 20);
        let t0 = Instant::now();
        let mut e = 0;
        assert_eq!(
            a.feed(peer(), &chunk(1, 0, 2, b"abc"), t0, &mut e),
            Fed::Pending
        );
        assert_eq!(
            a.feed(peer(), &chunk(2, 0, 2, b"abc"), t0, &mut e),
            Fed::Pending
        );
        assert_eq!(a.expire(t0 + Duration::from_secs(4)), 0);
        // A late chunk finds its set expired: the set is counted and this chunk starts anew.
        assert_eq!(
            a.feed(peer(), &chunk(1, 1, 2, b"def"), t0 + EXPIRY, &mut e),
            Fed::Pending
        );
        assert_eq!(e, 1);
        assert_eq!(a.expire(t0 + EXPIRY), 1);
        assert_eq!(a.expire(t0 + EXPIRY * 2), 1);
        assert_eq!((a.pending(), a.bytes), (0, 0));
    }

    #[test]
    fn sets_and_bytes_in_progress_are_bounded() {
        let mut a = Assembler::new(2, 10);
        let now = Instant::now();
        let mut e = 0;
        assert_eq!(
            a.feed(peer(), &chunk(1, 0, 2, b"aaaa"), now, &mut e),
            Fed::Pending
        );
        assert_eq!(
            a.feed(peer(), &chunk(2, 0, 2, b"bbbb"), now, &mut e),
            Fed::Pending
        );
        assert_eq!(
            a.feed(peer(), &chunk(3, 0, 2, b"c"), now, &mut e),
            Fed::Overflow
        );
        assert_eq!(
            a.feed(peer(), &chunk(1, 1, 2, b"xxxxxxx"), now, &mut e),
            Fed::Overflow
        );
        assert_eq!(
            a.feed(peer(), &chunk(1, 1, 2, b"aa"), now, &mut e),
            Fed::Complete(b"aaaaaa".to_vec())
        );
    }
}
