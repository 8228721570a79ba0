//! Capture extraction that skips scanning a trailing "rest of the line" group.
//!
//! Patterns very often end with a group taking the rest of the line, such as
//! `... (?P<msg>.*)$`. On input without a newline that group always matches everything after
//! the part before it, whichever way that part matched, so the match and its captures are
//! the part's own (leftmost-first) match plus `[end of that match, end of input)`. Matching
//! only the part avoids running the capture engine over the (usually longest) tail of the
//! line. Input containing a newline, and every pattern the split is not proven safe for, use
//! the whole regex. This module must not know about stages or extracted values.

use regex::{CaptureLocations, Regex};

/// A compiled pattern with its capture slots, reused from line to line.
pub struct Matcher {
    full: Regex,
    full_locations: CaptureLocations,
    split: Option<RestOfLine>,
    /// How the last successful match was found.
    last: Last,
}

enum Last {
    Full,
    /// By the split; the input's length ends the rest-of-line group.
    Split {
        input_len: usize,
    },
}

struct RestOfLine {
    /// The pattern without its trailing group; group numbers below it are unchanged.
    head: Regex,
    head_locations: CaptureLocations,
    /// The trailing group's number in the full pattern.
    group: usize,
}

impl Matcher {
    /// `full` compiled from `pattern` (in the `regex` crate's syntax).
    pub fn new(full: Regex, pattern: &str) -> Self {
        let split = split_rest_of_line(pattern).and_then(|(head, group_name)| {
            let head = Regex::new(head).ok()?;
            let group = full.capture_names().position(|n| n == Some(group_name))?;
            // The trailing group must be the last one, so the head numbers the others alike.
            (group == full.captures_len() - 1 && head.captures_len() == group).then(|| RestOfLine {
                head_locations: head.capture_locations(),
                head,
                group,
            })
        });
        Self {
            full_locations: full.capture_locations(),
            full,
            split,
            last: Last::Full,
        }
    }

    /// Matches `input`; on a match, [`Matcher::get`] gives its groups.
    pub fn captures_read(&mut self, input: &str) -> bool {
        if let Some(split) = &mut self.split
            && memchr::memchr(b'\n', input.as_bytes()).is_none()
        {
            self.last = Last::Split {
                input_len: input.len(),
            };
            return split
                .head
                .captures_read(&mut split.head_locations, input)
                .is_some();
        }
        self.last = Last::Full;
        self.full
            .captures_read(&mut self.full_locations, input)
            .is_some()
    }

    /// The byte range of group `index` in the last matched input, if it participated.
    pub fn get(&self, index: usize) -> Option<(usize, usize)> {
        match (&self.last, &self.split) {
            (Last::Split { input_len }, Some(split)) => {
                if index == split.group {
                    let (_, head_end) = split.head_locations.get(0)?;
                    Some((head_end, *input_len))
                } else {
                    split.head_locations.get(index)
                }
            }
            _ => self.full_locations.get(index),
        }
    }
}

/// For a pattern ending in a top-level `(?P<name>.*)` or `(?P<name>.*)$`, the pattern before
/// it and the group's name; `None` whenever the split might not preserve the match.
fn split_rest_of_line(pattern: &str) -> Option<(&str, &str)> {
    let body = pattern.strip_suffix('$').unwrap_or(pattern);
    let body = body.strip_suffix(".*)")?;
    let open = body.rfind('(')?;
    let group = &body[open..];
    let name = group
        .strip_prefix("(?P<")
        .or_else(|| group.strip_prefix("(?<"))?
        .strip_suffix('>')?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let head = &pattern[..open];
    head_is_plain_concatenation(head).then_some((head, name))
}

/// Whether `head` followed by a group is a concatenation at the top level: balanced, no
/// top-level alternation, the group's `(` not escaped, no open class, and no flag group
/// that could change what `.*` or `$` mean on newline-free input (`U` makes `.*` lazy;
/// other flags do not matter there but are refused too, to keep the proof simple).
fn head_is_plain_concatenation(head: &str) -> bool {
    let bytes = head.as_bytes();
    let mut depth = 0usize;
    let mut class_depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' if class_depth > 0 && bytes.get(i + 1) == Some(&b':') => {
                // POSIX class: skip to its closing `:]`.
                match head[i..].find(":]") {
                    Some(end) => i += end + 1,
                    None => return false,
                }
            }
            b'[' => {
                class_depth += 1;
                if bytes.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if bytes.get(i + 1) == Some(&b']') {
                    i += 1;
                }
            }
            b']' if class_depth > 0 => class_depth -= 1,
            _ if class_depth > 0 => {}
            b'(' => {
                if bytes.get(i + 1) == Some(&b'?') {
                    let rest = &head[i + 2..];
                    // `(?-u:` is the ASCII `\b` of the Go translation.
                    let plain = ["P<", "<", ":", "-u:"];
                    if !plain.iter().any(|p| rest.starts_with(p)) {
                        return false;
                    }
                }
                depth += 1;
            }
            b')' => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            b'|' if depth == 0 => return false,
            _ => {}
        }
        i += 1;
    }
    // `i > len` means the head ends in a lone backslash, escaping the group's `(`.
    i == bytes.len() && depth == 0 && class_depth == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::regex::go_syntax::translate;

    fn matcher(go_pattern: &str) -> Matcher {
        let pattern = translate(go_pattern);
        Matcher::new(Regex::new(&pattern).unwrap(), &pattern)
    }

    /// Every group's span of a match, `None` for no match.
    type Spans = Option<Vec<Option<(usize, usize)>>>;

    /// Every group's span through the matcher and through the whole regex.
    fn both(m: &mut Matcher, input: &str) -> (Spans, Spans) {
        let groups = m.full.captures_len();
        let fast = m
            .captures_read(input)
            .then(|| (1..groups).map(|i| m.get(i)).collect());
        let mut locations = m.full.capture_locations();
        let full = m
            .full
            .captures_read(&mut locations, input)
            .map(|_| (1..groups).map(|i| locations.get(i)).collect());
        (fast, full)
    }

    #[test]
    fn splits_only_plain_trailing_rest_of_line_groups() {
        assert_eq!(
            split_rest_of_line(r"^(?P<a>\d+) (?P<msg>.*)$"),
            Some((r"^(?P<a>\d+) ", "msg"))
        );
        assert_eq!(split_rest_of_line(r"x(?<m>.*)"), Some(("x", "m")));
        assert_eq!(split_rest_of_line(r"(?P<m>.*)$"), Some(("", "m")));
        // Top-level alternation, an escaped `(`, flag groups, a class left open, a group
        // that is not the rest of the line: no split.
        assert_eq!(split_rest_of_line(r"a|b(?P<m>.*)$"), None);
        assert_eq!(split_rest_of_line(r"a\\\(?P<m>.*)$"), None);
        assert_eq!(split_rest_of_line(r"(?U)a(?P<m>.*)"), None);
        assert_eq!(split_rest_of_line(r"(?i)a(?P<m>.*)"), None);
        assert_eq!(split_rest_of_line(r"[(?P<m>.*)$"), None);
        assert_eq!(split_rest_of_line(r"a(?P<m>.+)$"), None);
        assert_eq!(split_rest_of_line(r"a(?P<m>x.*)$"), None);
        assert_eq!(split_rest_of_line(r"(a(?P<m>.*))$"), None);
        // Alternation inside a group or a class is fine.
        assert_eq!(
            split_rest_of_line(r"(?:a|b)[|(]\|(?P<m>.*)"),
            Some((r"(?:a|b)[|(]\|", "m"))
        );
        assert_eq!(split_rest_of_line(r"a\\(?P<m>.*)"), Some((r"a\\", "m")));
        // The Go translation's ASCII word boundary keeps the split.
        assert!(split_rest_of_line(&translate(r"\bfoo\b (?P<m>.*)")).is_some());
    }

    #[test]
    fn split_matches_exactly_like_the_whole_pattern() {
        let patterns = [
            r"^(?P<time>\w{3} [ \d]\d \d{2}:\d{2}:\d{2}) (?P<host>\S+) (?P<program>[\w./-]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$",
            r"(?P<level>[A-Z]+) (?P<msg>.*)",
            r"(?P<a>x*?)(?P<b>x*)(?P<rest>.*)$",
            r"^(?P<a>a|ab)(?P<b>c|bcd)?(?P<rest>.*)$",
            r"(?P<word>\w+)?(?P<rest>.*)",
            r"(?P<rest>.*)$",
            r"é(?P<x>[^\s]+)\s(?P<rest>.*)",
            r"\b(?P<w>\w+)\b(?P<rest>.*)$",
        ];
        let inputs = [
            "Nov 27 10:00:00 web-1 sshd[42]: Accepted publickey for root",
            "Nov 27 10:00:00 web-1 CRON: x",
            "Nov  7 10:00:00 hôte-1 sudo: ünïcode → ok",
            "Nov 27 10:00:00 web-1 sshd[42]: two\nlines",
            "Nov 27 10:00:00 web-1 sshd[42]: trailing\r",
            "ERROR boom",
            "no level here",
            "xxxy",
            "abcd tail",
            "abcdz",
            "",
            "\n",
            "a\nb",
            "ééx1 rest of it",
            "zzé\u{a0}x y",
        ];
        for pattern in patterns {
            let mut m = matcher(pattern);
            assert!(m.split.is_some(), "{pattern} should split");
            for input in inputs {
                let (fast, full) = both(&mut m, input);
                assert_eq!(fast, full, "pattern {pattern:?} on {input:?}");
            }
        }
    }

    #[test]
    fn patterns_without_a_split_use_the_whole_regex() {
        let mut m = matcher(r"^(?P<a>\w+)|(?P<b>.*)$");
        assert!(m.split.is_none());
        let (fast, full) = both(&mut m, "hello world");
        assert_eq!(fast, full);
    }
}
