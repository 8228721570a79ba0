//! What makes a file the same file across renames and restarts: its device and inode, plus a
//! fingerprint of its first bytes so a recycled inode or an atomic replace is told apart.
//!
//! The fingerprint covers the first [`FINGERPRINT_MAX`] bytes, or the whole file while it is
//! smaller (so small files are tracked too, unlike Vector's and Filebeat's fixed-size
//! fingerprints), and grows with the file until it reaches the maximum. It must not read
//! beyond the head or know anything of lines.

use std::fmt;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// Bytes of a file's head the fingerprint covers at most.
pub const FINGERPRINT_MAX: u64 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    /// How many head bytes `fp_crc` covers.
    pub fp_len: u32,
    pub fp_crc: u32,
}

impl FileIdentity {
    /// The identity of an open file as it is now.
    pub fn of(file: &File, meta: &Metadata) -> io::Result<Self> {
        let len = meta.len().min(FINGERPRINT_MAX) as u32;
        Ok(Self {
            dev: meta.dev(),
            ino: meta.ino(),
            fp_len: len,
            fp_crc: head_crc(file, len)?,
        })
    }

    pub fn same_inode(&self, meta: &Metadata) -> bool {
        self.dev == meta.dev() && self.ino == meta.ino()
    }

    /// Is `file` (whose metadata is `meta`) still the file this identity was taken from?
    /// Same inode, and its head still holds the bytes fingerprinted.
    pub fn matches(&self, file: &File, meta: &Metadata) -> bool {
        self.same_inode(meta)
            && meta.len() >= u64::from(self.fp_len)
            && head_crc(file, self.fp_len).is_ok_and(|c| c == self.fp_crc)
    }

    /// The identity with a fingerprint grown to cover what the file now holds, if it still
    /// matches; `None` when the head changed (truncated and rewritten, or a new file).
    pub fn refreshed(&self, file: &File, meta: &Metadata) -> Option<Self> {
        if !self.matches(file, meta) {
            return None;
        }
        if self.fp_len as u64 >= FINGERPRINT_MAX || meta.len() <= u64::from(self.fp_len) {
            return Some(*self);
        }
        FileIdentity::of(file, meta).ok()
    }

    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split(':');
        let id = Self {
            dev: it.next()?.parse().ok()?,
            ino: it.next()?.parse().ok()?,
            fp_len: it.next()?.parse().ok()?,
            fp_crc: u32::from_str_radix(it.next()?, 16).ok()?,
        };
        it.next().is_none().then_some(id)
    }
}

impl fmt::Display for FileIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{:08x}",
            self.dev, self.ino, self.fp_len, self.fp_crc
        )
    }
}

fn head_crc(file: &File, len: u32) -> io::Result<u32> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(crc32fast::hash(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn identity(path: &std::path::Path) -> (File, FileIdentity) {
        let f = File::open(path).unwrap();
        let m = f.metadata().unwrap();
        let id = FileIdentity::of(&f, &m).unwrap();
        (f, id)
    }

    #[test]
    fn fingerprint_grows_with_a_small_file_and_stays_matching() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, "first\n").unwrap();
        let (_, id) = identity(&p);
        assert_eq!(id.fp_len, 6);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"second\n")
            .unwrap();
        let f = File::open(&p).unwrap();
        let m = f.metadata().unwrap();
        assert!(id.matches(&f, &m));
        let grown = id.refreshed(&f, &m).unwrap();
        assert_eq!(grown.fp_len, 13);
    }

    #[test]
    fn rewritten_head_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, "aaaa\nbbbb\n").unwrap();
        let (_, id) = identity(&p);
        // Truncated and regrown past the old size within one poll (copytruncate).
        std::fs::write(&p, "cccc\ndddd\neeee\n").unwrap();
        let f = File::open(&p).unwrap();
        let m = f.metadata().unwrap();
        assert!(id.same_inode(&m));
        assert!(!id.matches(&f, &m));
    }

    #[test]
    fn round_trips_through_text() {
        let id = FileIdentity {
            dev: 2049,
            ino: 131077,
            fp_len: 64,
            fp_crc: 0xdeadbeef,
        };
        assert_eq!(FileIdentity::parse(&id.to_string()), Some(id));
        assert_eq!(FileIdentity::parse("1:2:3"), None);
    }
}
