//! Capture extraction that skips scanning a pattern's trailing group.
//!
//! Patterns very often end with a group whose extent is plain to see without a regex engine:
//! the rest of the line (`... (?P<msg>.*)$`) or everything up to a closing character
//! (`... "(?P<agent>[^"]*)"`). Whichever way the part before such a group matched, the group
//! then spans from that part's end to the end of input (when the input has no newline) or
//! to the next closing character. So when that tail succeeds after the part's own
//! leftmost-first match, the whole pattern's match is that match plus the tail (leftmost-first
//! takes the highest-priority way that succeeds, and the part's best way does). Matching only
//! the part keeps the capture engine off the (usually longest) tail of the line; a memchr
//! finds the tail's end. When the tail does not succeed there (a newline, no closing
//! character), the whole regex decides, and so does every pattern the split is not proven
//! safe for. This module must not know about stages or extracted values.

use regex::{CaptureLocations, Regex};

use super::sequence::Sequence;

/// A compiled pattern with its capture slots, reused from line to line.
pub struct Matcher {
    /// A pattern proven deterministic is matched by one scan instead (sequence.rs).
    sequence: Option<Sequence>,
    full: Regex,
    full_locations: CaptureLocations,
    split: Option<Split>,
    /// Where the last successful match's trailing group was, when the split found it.
    last_tail: Option<(usize, usize)>,
}

struct Split {
    /// The pattern without its trailing group; group numbers below it are unchanged.
    head: Regex,
    head_locations: CaptureLocations,
    /// The trailing group's number in the full pattern.
    group: usize,
    tail: Tail,
}

/// What the trailing group matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tail {
    /// `(?P<name>.*)` or `(?P<name>.*)$`: everything to the end of newline-free input.
    RestOfLine,
    /// `(?P<name>[^c]*)c` (or `+`): everything up to the next `c`, an ASCII character.
    UpTo { byte: u8, at_least_one: bool },
}

impl Matcher {
    /// `full` compiled from `pattern` (in the `regex` crate's syntax).
    pub fn new(full: Regex, pattern: &str) -> Self {
        let split = split_trailing_group(pattern).and_then(|(head, group_name, tail)| {
            let head = Regex::new(head).ok()?;
            let group = full.capture_names().position(|n| n == Some(group_name))?;
            // The trailing group must be the last one, so the head numbers the others alike.
            (group == full.captures_len() - 1 && head.captures_len() == group).then(|| Split {
                head_locations: head.capture_locations(),
                head,
                group,
                tail,
            })
        });
        Self {
            sequence: Sequence::new(pattern, full.captures_len()),
            full_locations: full.capture_locations(),
            full,
            split,
            last_tail: None,
        }
    }

    /// Matches `input`; on a match, [`Matcher::get`] gives its groups.
    pub fn captures_read(&mut self, input: &str) -> bool {
        if let Some(sequence) = &mut self.sequence {
            return sequence.captures_read(input);
        }
        self.last_tail = None;
        if let Some(split) = &mut self.split {
            let bytes = input.as_bytes();
            let ready = match split.tail {
                Tail::RestOfLine => memchr::memchr(b'\n', bytes).is_none(),
                Tail::UpTo { .. } => true,
            };
            if ready {
                let Some(head) = split.head.captures_read(&mut split.head_locations, input) else {
                    // No way of matching the head means no match at all.
                    return false;
                };
                let start = head.end();
                let end = match split.tail {
                    Tail::RestOfLine => Some(input.len()),
                    Tail::UpTo { byte, at_least_one } => memchr::memchr(byte, &bytes[start..])
                        .filter(|n| !at_least_one || *n > 0)
                        .map(|n| start + n),
                };
                if let Some(end) = end {
                    self.last_tail = Some((start, end));
                    return true;
                }
            }
        }
        self.full
            .captures_read(&mut self.full_locations, input)
            .is_some()
    }

    /// The byte range of group `index` in the last matched input, if it participated.
    pub fn get(&self, index: usize) -> Option<(usize, usize)> {
        if let Some(sequence) = &self.sequence {
            return sequence.get(index);
        }
        match (self.last_tail, &self.split) {
            (Some(tail), Some(split)) if index == split.group => Some(tail),
            (Some(_), Some(split)) => split.head_locations.get(index),
            _ => self.full_locations.get(index),
        }
    }
}

/// For a pattern ending in a top-level trailing group [`Tail`] describes, the pattern before
/// it, the group's name and what it matches; `None` whenever the split might not preserve
/// the match.
fn split_trailing_group(pattern: &str) -> Option<(&str, &str, Tail)> {
    let open = pattern.rfind("(?P<").max(pattern.rfind("(?<"))?;
    let group = &pattern[open..];
    let after_name = group
        .strip_prefix("(?P<")
        .or_else(|| group.strip_prefix("(?<"))?;
    let (name, body) = after_name.split_once('>')?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let tail = if body == ".*)" || body == ".*)$" {
        Tail::RestOfLine
    } else {
        let class = body.strip_prefix("[^")?;
        let (byte, class_rest) = literal_byte(class)?;
        let (quantifier, closing) = class_rest.strip_prefix(']')?.split_at_checked(1)?;
        let at_least_one = match quantifier {
            "*" => false,
            "+" => true,
            _ => return None,
        };
        let (closing_byte, rest) = literal_byte(closing.strip_prefix(')')?)?;
        if closing_byte != byte || !rest.is_empty() {
            return None;
        }
        Tail::UpTo { byte, at_least_one }
    };
    let head = &pattern[..open];
    head_is_plain_concatenation(head).then_some((head, name, tail))
}

/// The ASCII character `s` starts with as a literal (plain, or a punctuation escape such as
/// `\]`), and what follows it; `None` for anything with a special meaning.
fn literal_byte(s: &str) -> Option<(u8, &str)> {
    let bytes = s.as_bytes();
    match *bytes.first()? {
        b'\\' => {
            let c = *bytes.get(1)?;
            c.is_ascii_punctuation().then(|| (c, &s[2..]))
        }
        c if c.is_ascii_alphanumeric() || b" \"'<>=,;:/@#%&!~`_-".contains(&c) => {
            Some((c, &s[1..]))
        }
        _ => None,
    }
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
    use crate::pipeline::go::regex::translate;

    /// The matcher without its sequence engine (sequence.rs has its own tests), so the split
    /// is what these tests exercise.
    fn matcher(go_pattern: &str) -> Matcher {
        let pattern = translate(go_pattern);
        let mut m = Matcher::new(Regex::new(&pattern).unwrap(), &pattern);
        m.sequence = None;
        m
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

    const REST: Tail = Tail::RestOfLine;

    #[test]
    fn splits_only_plain_trailing_groups() {
        assert_eq!(
            split_trailing_group(r"^(?P<a>\d+) (?P<msg>.*)$"),
            Some((r"^(?P<a>\d+) ", "msg", REST))
        );
        assert_eq!(split_trailing_group(r"x(?<m>.*)"), Some(("x", "m", REST)));
        assert_eq!(split_trailing_group(r"(?P<m>.*)$"), Some(("", "m", REST)));
        let up_to = |byte, at_least_one| Tail::UpTo { byte, at_least_one };
        assert_eq!(
            split_trailing_group(r#"^(?P<a>\S+) "(?P<ua>[^"]*)""#),
            Some((r#"^(?P<a>\S+) ""#, "ua", up_to(b'"', false)))
        );
        assert_eq!(
            split_trailing_group(r"\[(?P<t>[^\]]+)\]"),
            Some((r"\[", "t", up_to(b']', true)))
        );
        // Top-level alternation, an escaped `(`, flag groups, a class left open, a group
        // that is not a plain tail, something after the closing character: no split.
        assert_eq!(split_trailing_group(r"a|b(?P<m>.*)$"), None);
        assert_eq!(split_trailing_group(r"a\\\(?P<m>.*)$"), None);
        assert_eq!(split_trailing_group(r"(?U)a(?P<m>.*)"), None);
        assert_eq!(split_trailing_group(r"(?i)a(?P<m>.*)"), None);
        assert_eq!(split_trailing_group(r"[(?P<m>.*)$"), None);
        assert_eq!(split_trailing_group(r"a(?P<m>.+)$"), None);
        assert_eq!(split_trailing_group(r"a(?P<m>x.*)$"), None);
        assert_eq!(split_trailing_group(r"(a(?P<m>.*))$"), None);
        assert_eq!(split_trailing_group(r#"a(?P<m>[^"]*)'"#), None);
        assert_eq!(split_trailing_group(r#"a(?P<m>[^"]*)"$"#), None);
        assert_eq!(split_trailing_group(r#"a(?P<m>[^"]*?)""#), None);
        assert_eq!(split_trailing_group(r#"a(?P<m>[^"x]*)""#), None);
        assert_eq!(split_trailing_group(r"a(?P<m>[^.]*)."), None);
        assert_eq!(split_trailing_group(r"a(?P<m>[^\n]*)\n"), None);
        // Alternation inside a group or a class is fine.
        assert_eq!(
            split_trailing_group(r"(?:a|b)[|(]\|(?P<m>.*)"),
            Some((r"(?:a|b)[|(]\|", "m", REST))
        );
        assert_eq!(
            split_trailing_group(r"a\\(?P<m>.*)"),
            Some((r"a\\", "m", REST))
        );
        // The Go translation's ASCII word boundary keeps the split.
        assert!(split_trailing_group(&translate(r"\bfoo\b (?P<m>.*)")).is_some());
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
            r#"^(?P<remote_addr>\S+) - (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>[^"]+)" (?P<status>\d{3}) (?P<body_bytes_sent>\d+) "(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)""#,
            r#"(?P<a>\w+)? "(?P<q>[^"]*)""#,
            r#"(?P<a>"?)(?P<q>[^"]+)""#,
            r"(?P<a>x|xy)(?P<b>[^z]*)z",
            r"(?P<a>\S+?)=(?P<b>[^;]+);",
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
            r#"1.2.3.4 - - [27/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8 (é)""#,
            r#"1.2.3.4 - - [27/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "unterminated"#,
            r#"1.2.3.4 - - [27/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" """#,
            r#"say "hi" then "bye""#,
            r#"say "" "#,
            r#""""#,
            r#""x"#,
            "xyz",
            "xy",
            "xz z",
            "k=v;w=x;",
            "k=;",
            "==;;",
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
