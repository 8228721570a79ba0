//! A capture engine for anchored patterns that match deterministically, left to right.
//!
//! Most log regexes are a `^`-anchored sequence of literals, character classes and greedy
//! runs of a class, each run followed by something it cannot contain
//! (`^(?P<ip>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "...`), with optional parts that a
//! character they start with tells apart (`(?:\[(?P<pid>\d+)\])?: `) and maybe a final
//! alternation (`^(?P<outcome>Accepted|Failed|...)`). For such a pattern exactly one way to
//! match can succeed: a run must stop where its class does, an optional part must be taken
//! exactly when the next character can start it. Leftmost-first matching then has no choice
//! to make, so one scan over the text with a byte table per class gives the regex crate's
//! captures, without its one-pass DFA's per-byte slot bookkeeping (a third of the nginx
//! pipeline's instructions). The proof is made on the pattern's HIR when it is built; a
//! pattern it does not hold for (`(\S+)(\S+)`, `(.*) (.*)`, a lazy run, a look-around, an
//! unanchored search) gets `None` and the regex crate matches it. The final alternation
//! tries its branches in priority order, which is what leftmost-first does.
//! This module must not know about stages or extracted values.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// A pattern proven deterministic, with the spans of its last match.
pub struct Sequence {
    items: Vec<Item>,
    /// Each group's span by number (0: the whole match), reused from match to match.
    spans: Vec<Option<(usize, usize)>>,
}

enum Item {
    Literal(Box<[u8]>),
    /// `min..=max` characters of the set, as many as there are (greedy).
    Run {
        set: CharSet,
        min: u32,
        max: Option<u32>,
        scan: Scan,
    },
    Group {
        index: usize,
        items: Vec<Item>,
    },
    /// Taken exactly when the next character is in `first`.
    Optional {
        first: CharSet,
        items: Vec<Item>,
    },
    /// `$`: the end of the text.
    End,
    /// Only as the last item of its sequence: the first branch that matches, with the
    /// groups inside each branch so a failed branch leaves none of them set.
    Alternation(Vec<(Vec<Item>, Vec<usize>)>),
}

/// How a run finds its end.
enum Scan {
    /// Character by character (a set with some non-ASCII characters but not all).
    Chars,
    /// Byte by byte through a table: the set holds every non-ASCII character or none, and
    /// either it holds none (bytes are characters) or the count does not matter (no upper
    /// bound, at least one character exactly when at least one byte).
    Bytes(Box<[bool; 256]>),
    /// To the first of at most three ASCII bytes outside the set (memchr), when the set
    /// holds every other character and the count does not matter.
    Until(Vec<u8>),
}

impl Scan {
    fn new(set: &CharSet, min: u32, max: Option<u32>) -> Self {
        let all_others = matches!(set.others.as_slice(), [('\u{80}', '\u{10FFFF}')]);
        let uncounted = max.is_none() && min <= 1;
        if !(set.others.is_empty() || all_others && uncounted) {
            return Self::Chars;
        }
        let outside: Vec<u8> = (0..0x80u8).filter(|&b| !set.contains_ascii(b)).collect();
        if all_others && outside.len() <= 3 && !outside.is_empty() {
            return Self::Until(outside);
        }
        let mut table = Box::new([all_others; 256]);
        for b in 0..0x80u8 {
            table[usize::from(b)] = set.contains_ascii(b);
        }
        Self::Bytes(table)
    }
}

/// A set of characters: ASCII as a bitmap, the rest as sorted ranges.
#[derive(Clone, Default)]
struct CharSet {
    ascii: [u64; 2],
    others: Vec<(char, char)>,
}

impl CharSet {
    fn of_class(class: &Class) -> Option<Self> {
        let mut set = Self::default();
        match class {
            Class::Unicode(c) => {
                for r in c.ranges() {
                    set.add(r.start(), r.end());
                }
            }
            // A byte class on UTF-8 text only ever matches ASCII safely.
            Class::Bytes(c) => {
                for r in c.ranges() {
                    if r.end() >= 0x80 {
                        return None;
                    }
                    set.add(char::from(r.start()), char::from(r.end()));
                }
            }
        }
        Some(set)
    }

    fn single(c: char) -> Self {
        let mut set = Self::default();
        set.add(c, c);
        set
    }

    fn add(&mut self, start: char, end: char) {
        for b in u32::from(start)..=u32::from(end).min(0x7F) {
            self.ascii[(b / 64) as usize] |= 1 << (b % 64);
        }
        if u32::from(end) >= 0x80 {
            self.others.push((start.max('\u{80}'), end));
        }
    }

    fn union(&mut self, other: &CharSet) {
        self.ascii[0] |= other.ascii[0];
        self.ascii[1] |= other.ascii[1];
        self.others.extend_from_slice(&other.others);
        self.others.sort_unstable();
    }

    fn intersects(&self, other: &CharSet) -> bool {
        (self.ascii[0] & other.ascii[0]) != 0
            || (self.ascii[1] & other.ascii[1]) != 0
            || self
                .others
                .iter()
                .any(|&(s, e)| other.others.iter().any(|&(os, oe)| s <= oe && os <= e))
    }

    #[inline]
    fn contains_ascii(&self, b: u8) -> bool {
        self.ascii[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    fn contains(&self, c: char) -> bool {
        match u8::try_from(c) {
            Ok(b) if b < 0x80 => self.contains_ascii(b),
            _ => self
                .others
                .binary_search_by(|&(s, e)| {
                    if e < c {
                        std::cmp::Ordering::Less
                    } else if s > c {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Equal
                    }
                })
                .is_ok(),
        }
    }
}

impl Sequence {
    /// The engine for `pattern` (as the regex crate reads it, with `groups` capture groups
    /// counting group 0), or `None` unless every match is proven deterministic.
    pub fn new(pattern: &str, groups: usize) -> Option<Self> {
        let hir = regex_syntax::ParserBuilder::new()
            .build()
            .parse(pattern)
            .ok()?;
        let HirKind::Concat(parts) = hir.kind() else {
            return None;
        };
        let (first, rest) = parts.split_first()?;
        if !matches!(first.kind(), HirKind::Look(Look::Start)) {
            return None;
        }
        let mut items = Vec::new();
        for part in rest {
            build(part, &mut items)?;
        }
        let mut indices = Vec::new();
        group_indices(&items, &mut indices);
        if indices.iter().any(|&i| i == 0 || i >= groups) {
            return None;
        }
        check(&items, &CharSet::default(), true, true)?;
        Some(Self {
            items,
            spans: vec![None; groups],
        })
    }

    /// Matches `input` from its start; the spans are then read with [`Sequence::get`].
    pub fn captures_read(&mut self, input: &str) -> bool {
        self.spans.fill(None);
        match run(&self.items, input, 0, &mut self.spans) {
            Some(end) => {
                self.spans[0] = Some((0, end));
                true
            }
            None => false,
        }
    }

    pub fn get(&self, index: usize) -> Option<(usize, usize)> {
        self.spans.get(index).copied().flatten()
    }
}

/// Appends the items of `hir`; `None` for anything outside the supported forms.
fn build(hir: &Hir, out: &mut Vec<Item>) -> Option<()> {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(literal) => {
            std::str::from_utf8(&literal.0).ok()?;
            out.push(Item::Literal(literal.0.clone()));
        }
        HirKind::Class(class) => {
            let set = CharSet::of_class(class)?;
            out.push(Item::Run {
                scan: Scan::new(&set, 1, Some(1)),
                set,
                min: 1,
                max: Some(1),
            })
        }
        HirKind::Look(Look::End) => out.push(Item::End),
        HirKind::Look(_) => return None,
        HirKind::Repetition(rep) => {
            if !rep.greedy {
                return None;
            }
            let set = match rep.sub.kind() {
                HirKind::Class(class) => Some(CharSet::of_class(class)?),
                HirKind::Literal(literal) => {
                    let text = std::str::from_utf8(&literal.0).ok()?;
                    let mut chars = text.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => Some(CharSet::single(c)),
                        _ => None,
                    }
                }
                _ => None,
            };
            match set {
                Some(set) => out.push(Item::Run {
                    scan: Scan::new(&set, rep.min, rep.max),
                    set,
                    min: rep.min,
                    max: rep.max,
                }),
                None if rep.min == 0 && rep.max == Some(1) => {
                    let mut items = Vec::new();
                    build(&rep.sub, &mut items)?;
                    let (first, can_be_empty) = first_set(&items)?;
                    if can_be_empty {
                        return None;
                    }
                    out.push(Item::Optional { first, items });
                }
                None => return None,
            }
        }
        HirKind::Capture(capture) => {
            let mut items = Vec::new();
            build(&capture.sub, &mut items)?;
            out.push(Item::Group {
                index: capture.index as usize,
                items,
            });
        }
        HirKind::Concat(parts) => {
            for part in parts {
                build(part, out)?;
            }
        }
        HirKind::Alternation(branches) => {
            let mut built = Vec::with_capacity(branches.len());
            for branch in branches {
                let mut items = Vec::new();
                build(branch, &mut items)?;
                let mut indices = Vec::new();
                group_indices(&items, &mut indices);
                built.push((items, indices));
            }
            out.push(Item::Alternation(built));
        }
    }
    Some(())
}

fn group_indices(items: &[Item], out: &mut Vec<usize>) {
    for item in items {
        match item {
            Item::Group { index, items } => {
                out.push(*index);
                group_indices(items, out);
            }
            Item::Optional { items, .. } => group_indices(items, out),
            Item::Alternation(branches) => {
                for (items, _) in branches {
                    group_indices(items, out);
                }
            }
            Item::Literal(_) | Item::Run { .. } | Item::End => {}
        }
    }
}

/// The characters `items` can start with and whether they can match the empty string.
fn first_set(items: &[Item]) -> Option<(CharSet, bool)> {
    check(items, &CharSet::default(), false, false)
}

/// Proves `items` deterministic when followed by something starting with a character of
/// `follow` (or by the end of the pattern when `pattern_may_end`, i.e. everything after
/// them can match the empty string); `last` when nothing at all follows them. Returns
/// what [`first_set`] does. A variable run must stop where its class does: its class is
/// disjoint from what can follow it. An optional part must be taken exactly when the next
/// character can start it: its first characters are disjoint from what can follow it, and
/// what follows cannot match nothing to the pattern's end (`^a(?:bc)?` on `abd` matches `a`
/// by skipping the part after trying it).
fn check(
    items: &[Item],
    follow: &CharSet,
    pattern_may_end: bool,
    last: bool,
) -> Option<(CharSet, bool)> {
    // What can come after the item being looked at, walking from the back.
    let mut next = follow.clone();
    let mut may_end = pattern_may_end;
    let mut suffix_empty = true;
    for (i, item) in items.iter().enumerate().rev() {
        let is_last = last && i + 1 == items.len();
        let (first, empty) = match item {
            Item::Literal(bytes) => {
                let c = std::str::from_utf8(bytes).ok()?.chars().next()?;
                (CharSet::single(c), false)
            }
            Item::Run { set, min, max, .. } => {
                if *max != Some(*min) && set.intersects(&next) {
                    return None;
                }
                (set.clone(), *min == 0)
            }
            Item::End => (CharSet::default(), false),
            Item::Group { items, .. } => check(items, &next, may_end, is_last)?,
            Item::Optional { first, items } => {
                check(items, &next, may_end, false)?;
                if may_end || first.intersects(&next) {
                    return None;
                }
                (first.clone(), true)
            }
            Item::Alternation(branches) => {
                if !is_last {
                    return None;
                }
                let mut first = CharSet::default();
                let mut empty = false;
                for (items, _) in branches {
                    let (f, e) = check(items, follow, pattern_may_end, true)?;
                    first.union(&f);
                    empty |= e;
                }
                (first, empty)
            }
        };
        if empty {
            next.union(&first);
        } else {
            next = first;
            may_end = false;
            suffix_empty = false;
        }
    }
    // The first characters of `items` then `follow` (`follow` only when `items` can match
    // nothing, where the caller adds it anyway).
    Some((next, suffix_empty))
}

/// Matches `items` at `pos`; the end of the match.
fn run(
    items: &[Item],
    input: &str,
    mut pos: usize,
    spans: &mut [Option<(usize, usize)>],
) -> Option<usize> {
    let bytes = input.as_bytes();
    for item in items {
        pos = match item {
            Item::Literal(literal) => {
                // Most literals are one byte (` `, `"`): no memcmp call for those.
                let found = match **literal {
                    [b] => bytes.get(pos) == Some(&b),
                    _ => bytes[pos..].starts_with(literal),
                };
                if !found {
                    return None;
                }
                pos + literal.len()
            }
            Item::Run {
                set,
                min,
                max,
                scan,
            } => match scan {
                Scan::Chars => run_of(set, *min, *max, input, pos)?,
                Scan::Bytes(table) => {
                    let limit = max.map_or(bytes.len(), |m| bytes.len().min(pos + m as usize));
                    let end = bytes[pos..limit]
                        .iter()
                        .position(|&b| !table[usize::from(b)])
                        .map_or(limit, |n| pos + n);
                    if end - pos < *min as usize {
                        return None;
                    }
                    end
                }
                Scan::Until(stops) => {
                    let rest = &bytes[pos..];
                    let n = match stops[..] {
                        [a] => memchr::memchr(a, rest),
                        [a, b] => memchr::memchr2(a, b, rest),
                        [a, b, c, ..] => memchr::memchr3(a, b, c, rest),
                        [] => None,
                    }
                    .unwrap_or(rest.len());
                    if n < *min as usize {
                        return None;
                    }
                    pos + n
                }
            },
            Item::End => {
                if pos != bytes.len() {
                    return None;
                }
                pos
            }
            Item::Group { index, items } => {
                let end = run(items, input, pos, spans)?;
                spans[*index] = Some((pos, end));
                end
            }
            Item::Optional { first, items } => match input[pos..].chars().next() {
                Some(c) if first.contains(c) => run(items, input, pos, spans)?,
                _ => pos,
            },
            Item::Alternation(branches) => {
                for (items, indices) in branches {
                    if let Some(end) = run(items, input, pos, spans) {
                        return Some(end);
                    }
                    for &i in indices {
                        spans[i] = None;
                    }
                }
                return None;
            }
        };
    }
    Some(pos)
}

/// The end of the longest run of `set` at `pos` of at most `max` characters, if it has `min`.
#[inline]
fn run_of(set: &CharSet, min: u32, max: Option<u32>, input: &str, mut pos: usize) -> Option<usize> {
    let bytes = input.as_bytes();
    let max = max.unwrap_or(u32::MAX);
    let mut n = 0u32;
    while n < max {
        let Some(&b) = bytes.get(pos) else { break };
        if b < 0x80 {
            if !set.contains_ascii(b) {
                break;
            }
            pos += 1;
        } else {
            let c = input[pos..].chars().next()?;
            if !set.contains(c) {
                break;
            }
            pos += c.len_utf8();
        }
        n += 1;
    }
    (n >= min).then_some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::go::regex::translate;
    use regex::Regex;

    /// A Go pattern as the regex stage compiles it, and its sequence engine if it has one.
    fn compile(go_pattern: &str) -> (Regex, Option<Sequence>) {
        let pattern = translate(go_pattern);
        let regex = Regex::new(&pattern).unwrap();
        let sequence = Sequence::new(&pattern, regex.captures_len());
        (regex, sequence)
    }

    type Spans = Option<Vec<Option<(usize, usize)>>>;

    /// Every group's span (group 0 included) through the engine and through the regex crate.
    fn both(regex: &Regex, sequence: &mut Sequence, input: &str) -> (Spans, Spans) {
        let groups = regex.captures_len();
        let fast = sequence
            .captures_read(input)
            .then(|| (0..groups).map(|i| sequence.get(i)).collect());
        let mut locations = regex.capture_locations();
        let slow = regex
            .captures_read(&mut locations, input)
            .map(|_| (0..groups).map(|i| locations.get(i)).collect());
        (fast, slow)
    }

    const NGINX: &str = r#"^(?P<remote_addr>\S+) - (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>[^"]+)" (?P<status>\d{3}) (?P<body_bytes_sent>\d+) "(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)""#;
    const SYSLOG: &str = r"^(?P<time>\w{3} [ \d]\d \d{2}:\d{2}:\d{2}) (?P<host>\S+) (?P<program>[\w./-]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$";
    const OUTCOME: &str = r"^(?P<outcome>Accepted|Failed|Invalid user|Disconnected|pam_unix)";

    /// Patterns the engine takes, each with lines it must read exactly as the regex crate.
    fn accepted() -> Vec<&'static str> {
        vec![
            NGINX,
            SYSLOG,
            OUTCOME,
            r"^(?P<a>\d+)(?:\.(?P<b>\d+))? (?P<c>x|xy|)",
            r"^(?i)(?P<level>[a-z]+): (?P<rest>.+)",
            r"^(?P<k>[^=]+)=(?P<v>[^ ]*)(?: (?P<k2>[^=]+)=(?P<v2>[^ ]*))?$",
            r"^(?P<d>\d{2,4})-(?P<m>\d{1,2})",
            r"^(?P<w>\w+) +(?P<s>[a-z]*)\|",
            r"^(?P<a>a)(?:b|c)?d",
        ]
    }

    #[test]
    fn deterministic_patterns_are_taken() {
        for pattern in accepted() {
            assert!(compile(pattern).1.is_some(), "{pattern}");
        }
    }

    #[test]
    fn patterns_with_a_choice_to_make_are_left_to_the_regex_crate() {
        for pattern in [
            r"^(?P<a>\S+)(?P<b>\S+)",
            r"^(?P<a>.*) (?P<b>.*)$",
            r"^(?P<a>\w+)?\w",
            r"^(?P<a>\d+?) ",
            r"(?P<a>\d+) ",
            r"^(?m:^)(?P<a>\d+)",
            r"^(?P<a>\w+)\b",
            r"^(?P<a>x|xy) (?P<b>\d)",
            // Trying the optional part and skipping it both matter: `abd` matches `a`.
            r"^(?P<a>a)(?:b(?P<c>c))?",
            r"^(?P<a>a)(?:b(?P<c>c))?(?P<d>\d*)",
            r"^(?P<a>(?:ab)+)",
            r"^(?P<w>\w+) +(?P<s>\s*)\|",
        ] {
            assert!(compile(pattern).1.is_none(), "{pattern}");
        }
    }

    #[test]
    fn reads_real_lines_as_the_regex_crate_does() {
        let lines = [
            r#"203.0.113.9 - - [10/Oct/2023:13:55:36 -0700] "GET /a?b=1 HTTP/1.1" 200 512 "-" "curl/8.0""#,
            r#"203.0.113.9 - bob [10/Oct/2023:13:55:36 -0700] "GET /a HTTP/1.1" 200 512 "http://x/" "Mozilla/5.0 (X11)" extra"#,
            r#"203.0.113.9 - - [10/Oct/2023:13:55:36 -0700] "GET /a HTTP/1.1" 20 512 "-" "-""#,
            r#"hôte - é [x] "G /p P" 404 0 "" """#,
            "Feb  3 04:05:06 web-1 sshd[42]: Accepted password for bob from 198.51.100.7 port 22 ssh2",
            "Feb 13 04:05:06 web-1 CRON: (root) CMD (true)",
            "Feb 13 04:05:06 web-1 sshd[42]: a\nb",
            "Feb 13 04:05:06 web-1 sshd[x]: a",
            "Feb 13 04:05:06 web-1 sshd[42] a",
            "Accepted password",
            "Invalid user bob",
            "Invalid",
            "12.5 xy",
            "12. x",
            "12 z",
            "ERROR: disk full",
            "k=v",
            "k=v k2=v2",
            "k=v k2",
            "2024-1",
            "24-12",
            "word   |",
            "word \u{a0}|",
            "abd",
            "ad",
            "acd",
            "\u{663}\u{663}-1",
            "",
        ];
        for pattern in accepted() {
            let (regex, sequence) = compile(pattern);
            let mut sequence = sequence.unwrap();
            let mut matched = 0;
            for line in lines {
                let (fast, slow) = both(&regex, &mut sequence, line);
                assert_eq!(fast, slow, "{pattern} on {line:?}");
                matched += usize::from(fast.is_some());
            }
            assert!(matched > 0, "no line matches {pattern}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Lines built from the patterns' own pieces, Unicode spaces and digits among them:
        /// every group is where the regex crate puts it.
        #[test]
        fn every_group_is_where_the_regex_crate_puts_it(
            line in "( |-|\\[|\\]|\"|:|\\.|=|\\||1|42|x|xy|ab|GET|Accepted|Invalid user|Feb  3|10/Oct|é|\u{a0}|\u{663}|\t|\n){0,24}",
            which in 0usize..9,
        ) {
            let pattern = accepted()[which];
            let (regex, sequence) = compile(pattern);
            let mut sequence = sequence.unwrap();
            let (fast, slow) = both(&regex, &mut sequence, &line);
            proptest::prop_assert_eq!(fast, slow, "{} on {:?}", pattern, line);
        }
    }
}
