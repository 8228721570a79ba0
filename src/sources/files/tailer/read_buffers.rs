//! The read buffers tailers borrow for one round of reading, so a thousand quiet files do not
//! each hold one (issue 21: at 16 KiB each they were 16 MiB of a 1,000-file agent's RSS).
//!
//! A tailer takes a buffer for one read and gives it back once the read is split: the lines
//! are copied into their batch while splitting, so nothing points into the buffer after, and
//! a tailer waiting for room downstream holds none. As many buffers exist as reads are in
//! progress at once (bounded by the runtime's threads), and at most [`KEPT`] are kept
//! between reads. A buffer keeps the size its last reader grew it
//! to (up to [`super::reader::READ_CHUNK`]), so a busy file's large buffer serves the next.
//!
//! Owns only the pool. It must not read files or look at what the buffers hold.

use std::sync::{Mutex, MutexGuard};

/// Buffers kept between rounds: enough for the tailers of a two-core runtime reading at
/// once; more are freed when given back.
const KEPT: usize = 8;

static POOL: BufferPool = BufferPool::new(KEPT);

/// Buffers for one round of reads: a kept one, else an empty one (the reader sizes it).
pub(super) fn take() -> Vec<u8> {
    POOL.take()
}

/// Gives `buf` back after a round; kept for the next tailer unless enough are.
pub(super) fn give(buf: Vec<u8>) {
    POOL.give(buf)
}

struct BufferPool {
    kept: Mutex<Vec<Vec<u8>>>,
    max: usize,
}

impl BufferPool {
    const fn new(max: usize) -> Self {
        Self {
            kept: Mutex::new(Vec::new()),
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        // A Vec of Vecs is consistent whatever panicked while it was held.
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Vec<u8> {
        self.lock().pop().unwrap_or_default()
    }

    fn give(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        let mut kept = self.lock();
        if kept.len() < self.max {
            kept.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_back_buffer_is_reused_and_no_more_than_the_bound_are_kept() {
        let pool = BufferPool::new(2);
        let mut grown = pool.take();
        assert_eq!(
            grown.capacity(),
            0,
            "an empty pool hands out an unallocated buffer"
        );
        grown.resize(4096, 0);
        let at = grown.as_ptr();
        pool.give(grown);
        let again = pool.take();
        assert_eq!(
            again.as_ptr(),
            at,
            "the buffer given back is handed out again"
        );
        assert_eq!(
            again.len(),
            4096,
            "with the size its last reader grew it to"
        );
        for _ in 0..5 {
            pool.give(vec![0u8; 16]);
        }
        assert_eq!(pool.lock().len(), 2);
        pool.lock().clear();
        pool.give(Vec::new());
        assert!(pool.lock().is_empty(), "an unallocated buffer is not kept");
    }
}
