//! A few recently seen values, found by a linear search and replaced oldest first.
//!
//! The client keeps such short lists where a hash would cost more than it saves: streams by
//! their label storage in the batcher, decoded label sets by their bytes in the disk buffer's
//! reader. Owns only the bounded list; what counts as a match is the caller's.

#[derive(Debug)]
pub(crate) struct Recent<T, const N: usize> {
    items: Vec<T>,
    /// The slot the next [`Recent::remember`] replaces once the list is full.
    next: usize,
}

impl<T, const N: usize> Default for Recent<T, N> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            next: 0,
        }
    }
}

impl<T, const N: usize> Recent<T, N> {
    pub fn find(&self, matches: impl Fn(&T) -> bool) -> Option<&T> {
        self.items.iter().find(|item| matches(item))
    }

    /// Keeps `item`, in place of the oldest one when `N` are kept already.
    pub fn remember(&mut self, item: T) {
        if self.items.len() < N {
            self.items.push(item);
        } else {
            self.items[self.next] = item;
            self.next = (self.next + 1) % N;
        }
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_list_replaces_its_oldest_value_first() {
        let mut r: Recent<u32, 3> = Recent::default();
        for v in [1, 2, 3, 4, 5] {
            r.remember(v);
        }
        let kept: Vec<u32> = (1..=5).filter(|v| r.find(|x| x == v).is_some()).collect();
        assert_eq!(kept, vec![3, 4, 5]);
        r.clear();
        assert!(r.find(|_| true).is_none());
    }
}
