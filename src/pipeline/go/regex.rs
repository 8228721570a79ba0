//! Go (RE2) regular-expression syntax rewritten for the `regex` crate, so a pattern from a
//! Promtail config matches what Go's `regexp` matches.
//!
//! The two syntaxes agree except for what the Perl classes and word boundaries mean: in Go
//! `\d`, `\w`, `\s` and `\b` are ASCII-only, in the `regex` crate they are Unicode-aware. The
//! rewrite spells the ASCII sets out as bracket classes (the negated ones, `\D` `\W` `\S`,
//! still match every non-ASCII character, as in Go) and turns `\b` into the crate's ASCII
//! boundary. Besides being faithful, the ASCII sets keep the compiled automata small enough
//! for the crate's one-pass DFA, which extracts captures in a single scan; with Unicode `\w`
//! or `\d` capture extraction fell back to a backtracker. Go's `\Q...\E` literal quoting is
//! supported too. Every pattern a Promtail config carries (stages, selectors, template
//! functions) is compiled through here. This module must not know about stages; it only
//! rewrites pattern text.

use regex::Regex;

/// Compiles a Go regular expression with Go's meaning of `\d \w \s \b` (and their negations).
/// An invalid pattern's error is the one its own text gives, which reads better than the
/// translation's.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&translate(pattern)).map_err(|e| Regex::new(pattern).err().unwrap_or(e))
}

/// The `regex`-crate spelling of the Go pattern `pattern`.
///
/// Bracket classes are spelled so they are valid both on their own and nested inside another
/// class (the crate allows `[a[0-9]]`), so the rewrite needs no class context except for `\b`
/// (meaningless inside a class) and `\Q` (Go only honours it outside classes).
pub fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    // Nesting depth of bracket classes as the `regex` crate parses them.
    let mut class_depth = 0usize;
    // Just after `[` or `[^`: a `]` here is a literal, not the end of the class.
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(escaped) = chars.next() else {
                    // A trailing backslash is an error either way; let the crate report it.
                    out.push('\\');
                    break;
                };
                match escaped {
                    'd' => out.push_str("[0-9]"),
                    'D' => out.push_str("[^0-9]"),
                    'w' => out.push_str("[0-9A-Za-z_]"),
                    'W' => out.push_str("[^0-9A-Za-z_]"),
                    's' => out.push_str(r"[\t\n\f\r ]"),
                    'S' => out.push_str(r"[^\t\n\f\r ]"),
                    'b' if class_depth == 0 => out.push_str(r"(?-u:\b)"),
                    'Q' if class_depth == 0 => {
                        let mut literal = String::new();
                        while let Some(q) = chars.next() {
                            if q == '\\' && chars.peek() == Some(&'E') {
                                chars.next();
                                break;
                            }
                            literal.push(q);
                        }
                        out.push_str(&regex::escape(&literal));
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            '[' if class_depth > 0 && chars.peek() == Some(&':') => {
                // A POSIX class such as `[:alpha:]`: copied whole, it opens no nested class.
                out.push('[');
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
            }
            '[' => {
                out.push('[');
                class_depth += 1;
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                class_start = true;
            }
            ']' if class_depth > 0 && !at_class_start => {
                out.push(']');
                class_depth -= 1;
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        compile(pattern).unwrap().is_match(text)
    }

    #[test]
    fn perl_classes_are_ascii_like_go() {
        // Go: \d is [0-9], \w is [0-9A-Za-z_], \s is [\t\n\f\r ].
        assert!(matches(r"^\d$", "7"));
        assert!(!matches(r"^\d$", "٣")); // ARABIC-INDIC DIGIT THREE
        assert!(matches(r"^\w+$", "abc_XYZ_09"));
        assert!(!matches(r"^\w$", "é"));
        assert!(!matches(r"^\w$", "ж"));
        assert!(matches(r"^\s$", "\t"));
        assert!(matches(r"^\s$", "\x0c"));
        assert!(!matches(r"^\s$", "\x0b")); // Go's \s has no \v
        assert!(!matches(r"^\s$", "\u{a0}")); // no-break space
        assert!(!matches(r"^\s$", "\u{2003}"));
    }

    #[test]
    fn negated_perl_classes_match_non_ascii_like_go() {
        assert!(matches(r"^\S+$", "héllo→世界"));
        assert!(matches(r"^\S$", "\u{a0}"));
        assert!(matches(r"^\S$", "\x0b"));
        assert!(!matches(r"^\S$", " "));
        assert!(matches(r"^\W$", "é"));
        assert!(!matches(r"^\W$", "a"));
        assert!(matches(r"^\D$", "٣"));
        assert!(!matches(r"^\D$", "3"));
    }

    #[test]
    fn perl_classes_inside_brackets() {
        assert!(matches(r"^[\w./-]+$", "sshd/v1.2-x"));
        assert!(!matches(r"^[\w./-]+$", "ssh d"));
        assert!(!matches(r"^[\w./-]+$", "é"));
        assert!(matches(r"^[^\S]$", " "));
        assert!(!matches(r"^[^\S]$", "é"));
        assert!(matches(r"^[ \d]\d$", " 7"));
        assert!(matches(r"^[\s\d]+$", "1 2\t3"));
        assert!(matches(r"^[^\d\s]+$", "aé"));
        assert!(!matches(r"^[^\d\s]+$", "a1"));
    }

    #[test]
    fn brackets_literals_and_posix_classes_are_kept() {
        assert_eq!(translate(r"[]\d]"), r"[][0-9]]");
        assert!(matches(r"^[]\d]+$", "]1]"));
        assert!(matches(r"^[^]a]$", "b"));
        assert!(!matches(r"^[^]a]$", "]"));
        assert!(matches(r"^[[:alpha:]\d]+$", "ab12"));
        assert!(matches(r"^\[(?P<pid>\d+)\]$", "[42]"));
        assert!(matches(r"^\\d$", "\\d"));
        assert!(matches(r"^a\.b$", "a.b"));
        assert!(matches(r"^\x41\pL$", "Aé"));
    }

    #[test]
    fn word_boundary_is_ascii_like_go() {
        assert!(matches(r"\bfoo\b", "a foo b"));
        // Go: é is not a word character, so there is a boundary between it and `f`.
        assert!(matches(r"\bfoo", "éfoo"));
        assert!(!matches(r"\bfoo", "afoo"));
    }

    #[test]
    fn quoted_literals() {
        assert!(matches(r"^\Qa.b*c\E$", "a.b*c"));
        assert!(!matches(r"^\Qa.b*c\E$", "axbbc"));
        assert!(matches(r"^\Q[x]", "[x] rest"));
    }

    #[test]
    fn case_folding_still_applies() {
        assert!(matches(r"(?i)^\w+$", "ABC"));
        assert!(matches(r"(?i)^[a-z]+$", "ABC"));
    }

    #[test]
    fn invalid_patterns_stay_errors() {
        assert!(compile("(?P<a>[").is_err());
        assert!(compile("\\").is_err());
    }
}
