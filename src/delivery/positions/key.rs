//! The key a file's position is kept under, made from its path's exact bytes, and the readable
//! text of a path for labels and logs.
//!
//! A path that is valid UTF-8 is its own key, as in Promtail's file. Any other path (Linux
//! names are bytes: `caf\xe9.log` from a Latin-1 system) gets a key no UTF-8 path can have: a
//! NUL (never part of a path) followed by the readable text, in which bytes that are not UTF-8
//! are written `\xNN` and a backslash `\\`, so the key gives back the exact bytes and two
//! names never share one. The positions file writes such a key as YAML's `!!binary` (the
//! bytes in base64), as Promtail's YAML library does for these names, so files written by
//! either agent load in the other.
//!
//! Owns only that mapping; it must not read files or know the file format.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Starts the key of a path that is not UTF-8.
const NOT_UTF8: char = '\0';

/// The positions key of `path`.
pub fn key_of(path: &Path) -> String {
    key_of_bytes(path.as_os_str().as_bytes())
}

/// The positions key of a path given as bytes.
pub(super) fn key_of_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => {
            let mut key = String::from(NOT_UTF8);
            escape_into(bytes, &mut key);
            key
        }
    }
}

/// The text shown for `path` in the `filename` label, per-path series and logs: the path
/// itself when it is UTF-8, else with each byte that is not UTF-8 written `\xNN` and each
/// backslash `\\` (Loki labels are UTF-8; U+FFFD would give two names one label).
pub fn readable(path: &Path) -> Cow<'_, str> {
    let bytes = path.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            let mut text = String::new();
            escape_into(bytes, &mut text);
            Cow::Owned(text)
        }
    }
}

/// The readable text of a key (see [`readable`]).
pub fn readable_key(key: &str) -> &str {
    key.strip_prefix(NOT_UTF8).unwrap_or(key)
}

/// The exact bytes of the path a key was made from.
pub(super) fn bytes_of(key: &str) -> Cow<'_, [u8]> {
    match key.strip_prefix(NOT_UTF8) {
        None => Cow::Borrowed(key.as_bytes()),
        Some(escaped) => Cow::Owned(unescape(escaped)),
    }
}

/// The path a key was made from.
pub(super) fn path_of(key: &str) -> PathBuf {
    match bytes_of(key) {
        Cow::Borrowed(b) => PathBuf::from(OsStr::from_bytes(b)),
        Cow::Owned(b) => PathBuf::from(std::ffi::OsString::from_vec(b)),
    }
}

/// Whether the key is of a path that is not UTF-8 (written `!!binary` in the file).
pub(super) fn is_binary(key: &str) -> bool {
    key.starts_with(NOT_UTF8)
}

fn escape_into(mut bytes: &[u8], out: &mut String) {
    while !bytes.is_empty() {
        let (valid, rest) = match std::str::from_utf8(bytes) {
            Ok(all) => (all, &[][..]),
            Err(e) => {
                let (good, bad) = bytes.split_at(e.valid_up_to());
                // `good` is valid by `valid_up_to`; the default is never taken.
                (std::str::from_utf8(good).unwrap_or_default(), bad)
            }
        };
        for c in valid.chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        match rest.split_first() {
            Some((&b, after)) => {
                out.push_str(&format!("\\x{b:02x}"));
                bytes = after;
            }
            None => bytes = rest,
        }
    }
}

fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (b'\\', Some(b'x')) => {
                let byte = text
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match byte {
                    Some(b) => {
                        out.push(b);
                        i += 4;
                    }
                    None => {
                        out.push(b'\\');
                        i += 1;
                    }
                }
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(bytes: &[u8]) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(bytes))
    }

    #[test]
    fn utf8_paths_are_their_own_keys_and_text() {
        let p = Path::new("/var/log/café.log");
        assert_eq!(key_of(p), "/var/log/café.log");
        assert_eq!(readable(p), "/var/log/café.log");
        assert_eq!(path_of(&key_of(p)), p);
        assert!(!is_binary(&key_of(p)));
    }

    #[test]
    fn other_names_keep_their_exact_bytes_and_never_share_a_key_or_a_label() {
        let latin1 = path(b"/l/caf\xe9.log");
        assert_eq!(readable(&latin1), "/l/caf\\xe9.log");
        assert_eq!(path_of(&key_of(&latin1)), latin1);
        let names = [
            &b"/l/\xff.log"[..],
            b"/l/\xfe.log",
            b"/l/\\xff\xfe",
            b"/l/\xff\\xfe",
            b"/l/a\\\xff",
        ];
        let keys: Vec<String> = names.iter().map(|n| key_of(&path(n))).collect();
        let labels: Vec<String> = names
            .iter()
            .map(|n| readable(&path(n)).into_owned())
            .collect();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(path_of(&keys[i]), path(n), "round trip of {n:?}");
            assert!(is_binary(&keys[i]));
            assert_eq!(readable_key(&keys[i]), labels[i]);
            for j in 0..i {
                assert_ne!(keys[i], keys[j]);
                assert_ne!(labels[i], labels[j]);
            }
        }
        // A UTF-8 name spelling the escape is a different key all the same.
        assert_ne!(key_of(Path::new("/l/\\xff.log")), keys[0]);
    }
}
