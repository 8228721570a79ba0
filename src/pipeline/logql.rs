//! LogQL stream selectors as the `match` stage reads them: `{name="v", x!="y", a=~"re",
//! b!~"re"}` followed by any number of line filters `|= "text"`, `!= "text"`, `|~ "re"`,
//! `!~ "re"`. Nothing else of LogQL (no label filters, parsers or formatters), as in
//! Promtail's own `logentry/logql` grammar.
//!
//! Owns the lexer (Go `text/scanner` rules: `"..."` strings with Go escapes, `` `...` `` raw
//! strings, `//` and `/* */` comments skipped), the parser with errors located by line and
//! column, and evaluating a parsed selector against an entry's labels and line. It must not
//! know about stages or entries beyond a label set and a line.
//!
//! Semantics follow Prometheus label matchers: a missing label reads as the empty string,
//! and label regexes are anchored at both ends (`^(?s:re)$`). Line-filter regexes are not
//! anchored. Deviation: Promtail panics on an invalid label-matcher regex; here it is a
//! parse error at the string's position.

use std::fmt;

use memchr::memmem;
use regex::Regex;

use crate::model::labels::LabelSet;

/// A parsed selector, ready to test entries.
#[derive(Debug)]
pub struct Selector {
    pub matchers: Vec<LabelMatcher>,
    pub line_filters: Vec<LineFilter>,
}

impl Selector {
    /// Do `labels` satisfy every matcher and `line` every line filter?
    pub fn matches(&self, labels: &LabelSet, line: &str) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
            && self.line_filters.iter().all(|f| f.matches(line))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

/// One `name op "value"` of the braces.
#[derive(Debug)]
pub struct LabelMatcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// The anchored regex of `=~` and `!~`.
    regex: Option<Regex>,
}

impl LabelMatcher {
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            // The parser always compiles the regex of regex operators.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterOp {
    /// `|=`: the line contains the text.
    Contains,
    /// `!=`: the line does not contain the text.
    NotContains,
    /// `|~`: the regex matches somewhere in the line.
    Regex,
    /// `!~`: the regex matches nowhere in the line.
    NotRegex,
}

/// One line filter after the braces.
#[derive(Debug)]
pub struct LineFilter {
    pub op: FilterOp,
    pub text: String,
    test: LineTest,
}

#[derive(Debug)]
enum LineTest {
    /// Boxed: a finder is large, and a selector holds few filters.
    Substring(Box<memmem::Finder<'static>>),
    Regex(Regex),
}

impl LineFilter {
    pub fn matches(&self, line: &str) -> bool {
        let found = match &self.test {
            LineTest::Substring(finder) => finder.find(line.as_bytes()).is_some(),
            LineTest::Regex(re) => re.is_match(line),
        };
        match self.op {
            FilterOp::Contains | FilterOp::Regex => found,
            FilterOp::NotContains | FilterOp::NotRegex => !found,
        }
    }
}

/// Where and why a selector failed to parse. Lines and columns count characters from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "parse error at line {}, col {}: {}",
            self.line, self.col, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses a selector with optional line filters.
pub fn parse_selector(input: &str) -> Result<Selector, ParseError> {
    Parser {
        lexer: Lexer::new(input),
    }
    .selector()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    OpenBrace,
    CloseBrace,
    Comma,
    Dot,
    Eq,
    Neq,
    Re,
    Nre,
    PipeExact,
    PipeMatch,
    Identifier(String),
    Str(String),
    Number(String),
    Other(char),
    End,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::OpenBrace => f.write_str("{"),
            TokenKind::CloseBrace => f.write_str("}"),
            TokenKind::Comma => f.write_str(","),
            TokenKind::Dot => f.write_str("."),
            TokenKind::Eq => f.write_str("="),
            TokenKind::Neq => f.write_str("!="),
            TokenKind::Re => f.write_str("=~"),
            TokenKind::Nre => f.write_str("!~"),
            TokenKind::PipeExact => f.write_str("|="),
            TokenKind::PipeMatch => f.write_str("|~"),
            TokenKind::Identifier(s) => write!(f, "identifier {s}"),
            TokenKind::Str(s) => write!(f, "string {s:?}"),
            TokenKind::Number(s) => write!(f, "number {s}"),
            TokenKind::Other('\'') => {
                f.write_str("' (single quotes do not delimit strings; use \"...\" or `...`)")
            }
            TokenKind::Other(c) => write!(f, "character {c:?}"),
            TokenKind::End => f.write_str("end of input"),
        }
    }
}

struct Token {
    kind: TokenKind,
    line: usize,
    col: usize,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    col: usize,
}

impl<'a> Lexer<'a> {
    fn new(input: &'a str) -> Self {
        Self {
            chars: input.chars().peekable(),
            line: 1,
            col: 1,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn error(line: usize, col: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line,
            col,
            message: message.into(),
        }
    }

    /// Skips whitespace and comments; an unterminated `/*` is an error at its start.
    fn skip_blank(&mut self) -> Result<(), ParseError> {
        loop {
            match self.chars.peek() {
                Some(' ' | '\t' | '\n' | '\r') => {
                    self.bump();
                }
                Some('/') => {
                    let mut ahead = self.chars.clone();
                    ahead.next();
                    match ahead.peek() {
                        Some('/') => {
                            while self.chars.peek().is_some_and(|&c| c != '\n') {
                                self.bump();
                            }
                        }
                        Some('*') => {
                            let (line, col) = (self.line, self.col);
                            self.bump();
                            self.bump();
                            let mut prev = '\0';
                            loop {
                                match self.bump() {
                                    Some('/') if prev == '*' => break,
                                    Some(c) => prev = c,
                                    None => {
                                        return Err(Self::error(
                                            line,
                                            col,
                                            "comment not terminated",
                                        ));
                                    }
                                }
                            }
                        }
                        _ => return Ok(()),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_blank()?;
        let (line, col) = (self.line, self.col);
        let token = |kind| Ok(Token { kind, line, col });
        let Some(c) = self.bump() else {
            return token(TokenKind::End);
        };
        let two = |lexer: &mut Self, second: char, pair: TokenKind, single: TokenKind| {
            if lexer.chars.peek() == Some(&second) {
                lexer.bump();
                pair
            } else {
                single
            }
        };
        let kind = match c {
            '{' => TokenKind::OpenBrace,
            '}' => TokenKind::CloseBrace,
            ',' => TokenKind::Comma,
            '.' => TokenKind::Dot,
            '=' => two(self, '~', TokenKind::Re, TokenKind::Eq),
            '!' => match self.chars.peek() {
                Some('=') => {
                    self.bump();
                    TokenKind::Neq
                }
                Some('~') => {
                    self.bump();
                    TokenKind::Nre
                }
                _ => TokenKind::Other('!'),
            },
            '|' => match self.chars.peek() {
                Some('=') => {
                    self.bump();
                    TokenKind::PipeExact
                }
                Some('~') => {
                    self.bump();
                    TokenKind::PipeMatch
                }
                _ => TokenKind::Other('|'),
            },
            '"' => TokenKind::Str(self.quoted(line, col)?),
            '`' => TokenKind::Str(self.raw(line, col)?),
            c if c.is_alphabetic() || c == '_' => {
                let mut s = String::from(c);
                while let Some(&n) = self.chars.peek() {
                    if n.is_alphanumeric() || n == '_' {
                        s.push(n);
                        self.bump();
                    } else {
                        break;
                    }
                }
                TokenKind::Identifier(s)
            }
            c if c.is_ascii_digit() => {
                let mut s = String::from(c);
                while let Some(&n) = self.chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '.' || n == '_' {
                        s.push(n);
                        self.bump();
                    } else {
                        break;
                    }
                }
                TokenKind::Number(s)
            }
            c => TokenKind::Other(c),
        };
        token(kind)
    }

    /// A `"..."` literal after its opening quote, unescaped as Go's `strconv.Unquote` does.
    /// Escapes may spell bytes (`\xNN`, `\NNN`), so the value is assembled as bytes and must
    /// be UTF-8 at the end.
    fn quoted(&mut self, line: usize, col: usize) -> Result<String, ParseError> {
        let mut bytes = Vec::new();
        loop {
            let (esc_line, esc_col) = (self.line, self.col);
            match self.bump() {
                None | Some('\n') => {
                    return Err(Self::error(line, col, "literal not terminated"));
                }
                Some('"') => break,
                Some('\\') => {
                    let at = |m: String| Self::error(esc_line, esc_col, m);
                    let Some(e) = self.bump() else {
                        return Err(Self::error(line, col, "literal not terminated"));
                    };
                    match e {
                        'a' => bytes.push(0x07),
                        'b' => bytes.push(0x08),
                        'f' => bytes.push(0x0c),
                        'n' => bytes.push(b'\n'),
                        'r' => bytes.push(b'\r'),
                        't' => bytes.push(b'\t'),
                        'v' => bytes.push(0x0b),
                        '\\' => bytes.push(b'\\'),
                        '"' => bytes.push(b'"'),
                        '0'..='7' => {
                            let v = self.digits(e, 8, 3).ok_or_else(|| {
                                at("invalid escape: \\NNN needs three octal digits".into())
                            })?;
                            let b = u8::try_from(v).map_err(|_| {
                                at(format!("invalid escape: octal \\{v:o} is above \\377"))
                            })?;
                            bytes.push(b);
                        }
                        'x' => {
                            let first = self.bump().unwrap_or('"');
                            let v = self.digits(first, 16, 2).ok_or_else(|| {
                                at("invalid escape: \\x needs two hex digits".into())
                            })?;
                            // Two hex digits never exceed a byte.
                            bytes.push(v as u8);
                        }
                        'u' | 'U' => {
                            let n = if e == 'u' { 4 } else { 8 };
                            let first = self.bump().unwrap_or('"');
                            let v = self.digits(first, 16, n).ok_or_else(|| {
                                at(format!("invalid escape: \\{e} needs {n} hex digits"))
                            })?;
                            let ch = char::from_u32(v).ok_or_else(|| {
                                at(format!(
                                    "invalid escape: \\{e}{v:0n$x} is not a Unicode code point"
                                ))
                            })?;
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => {
                            return Err(at(format!(
                                "invalid escape \\{other} (write \\\\{other} for a literal backslash, or use a `raw string`)"
                            )));
                        }
                    }
                }
                Some(c) => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        String::from_utf8(bytes)
            .map_err(|_| Self::error(line, col, "string escapes do not form valid UTF-8"))
    }

    /// Reads `n` digits of `radix`, the first already consumed as `first`.
    fn digits(&mut self, first: char, radix: u32, n: usize) -> Option<u32> {
        let mut v = first.to_digit(radix)?;
        for _ in 1..n {
            let d = self.chars.peek()?.to_digit(radix)?;
            self.bump();
            v = v * radix + d;
        }
        Some(v)
    }

    /// A `` `...` `` literal after its opening backquote: no escapes; carriage returns are
    /// removed, as Go does for raw strings.
    fn raw(&mut self, line: usize, col: usize) -> Result<String, ParseError> {
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(Self::error(line, col, "literal not terminated")),
                Some('`') => return Ok(s),
                Some('\r') => {}
                Some(c) => s.push(c),
            }
        }
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
}

impl Parser<'_> {
    fn unexpected(token: &Token, expecting: &str) -> ParseError {
        ParseError {
            line: token.line,
            col: token.col,
            message: format!("unexpected {}, expecting {expecting}", token.kind),
        }
    }

    fn string(&mut self) -> Result<(String, Token), ParseError> {
        let token = self.lexer.next_token()?;
        match &token.kind {
            TokenKind::Str(s) => Ok((s.clone(), token)),
            _ => Err(Self::unexpected(&token, "string")),
        }
    }

    fn selector(&mut self) -> Result<Selector, ParseError> {
        let open = self.lexer.next_token()?;
        if open.kind != TokenKind::OpenBrace {
            return Err(Self::unexpected(&open, "{"));
        }
        let mut matchers = Vec::new();
        loop {
            let name_token = self.lexer.next_token()?;
            let TokenKind::Identifier(name) = name_token.kind else {
                return Err(Self::unexpected(&name_token, "label name"));
            };
            let op_token = self.lexer.next_token()?;
            let op = match op_token.kind {
                TokenKind::Eq => MatchOp::Equal,
                TokenKind::Neq => MatchOp::NotEqual,
                TokenKind::Re => MatchOp::Regex,
                TokenKind::Nre => MatchOp::NotRegex,
                _ => return Err(Self::unexpected(&op_token, "one of =, !=, =~, !~")),
            };
            let (value, value_token) = self.string()?;
            let regex = match op {
                MatchOp::Regex | MatchOp::NotRegex => Some(
                    crate::pipeline::go::regex::compile(&format!("^(?s:{value})$"))
                        .map_err(|e| regex_error(&value_token, &e))?,
                ),
                MatchOp::Equal | MatchOp::NotEqual => None,
            };
            matchers.push(LabelMatcher {
                name,
                op,
                value,
                regex,
            });
            let sep = self.lexer.next_token()?;
            match sep.kind {
                TokenKind::Comma => {}
                TokenKind::CloseBrace => break,
                _ => return Err(Self::unexpected(&sep, ", or }")),
            }
        }
        let mut line_filters = Vec::new();
        loop {
            let token = self.lexer.next_token()?;
            let op = match token.kind {
                TokenKind::End => break,
                TokenKind::PipeExact => FilterOp::Contains,
                TokenKind::Neq => FilterOp::NotContains,
                TokenKind::PipeMatch => FilterOp::Regex,
                TokenKind::Nre => FilterOp::NotRegex,
                _ => {
                    return Err(Self::unexpected(
                        &token,
                        "one of |=, !=, |~, !~ or end of input",
                    ));
                }
            };
            let (text, text_token) = self.string()?;
            let test = match op {
                FilterOp::Contains | FilterOp::NotContains => {
                    LineTest::Substring(Box::new(memmem::Finder::new(text.as_bytes()).into_owned()))
                }
                FilterOp::Regex | FilterOp::NotRegex => LineTest::Regex(
                    crate::pipeline::go::regex::compile(&text)
                        .map_err(|e| regex_error(&text_token, &e))?,
                ),
            };
            line_filters.push(LineFilter { op, text, test });
        }
        Ok(Selector {
            matchers,
            line_filters,
        })
    }
}

fn regex_error(token: &Token, e: &regex::Error) -> ParseError {
    // The regex crate's message spans several lines with a caret diagram; keep its last
    // line, which names the problem.
    let text = e.to_string();
    let reason = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid")
        .trim()
        .trim_start_matches("error: ");
    ParseError {
        line: token.line,
        col: token.col,
        message: format!("invalid regular expression: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        LabelSet::from_pairs(pairs.iter().copied())
    }

    fn err(input: &str) -> ParseError {
        match parse_selector(input) {
            Ok(s) => panic!("{input:?} parsed: {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_all_four_matcher_operators() {
        let s = parse_selector(r#"{app="x", env!="dev", ns=~"a|b", x!~"y"}"#).unwrap();
        let ops: Vec<(&str, MatchOp, &str)> = s
            .matchers
            .iter()
            .map(|m| (m.name.as_str(), m.op, m.value.as_str()))
            .collect();
        assert_eq!(
            ops,
            vec![
                ("app", MatchOp::Equal, "x"),
                ("env", MatchOp::NotEqual, "dev"),
                ("ns", MatchOp::Regex, "a|b"),
                ("x", MatchOp::NotRegex, "y"),
            ]
        );
        assert!(s.line_filters.is_empty());
    }

    #[test]
    fn parses_chained_line_filters_in_order() {
        let s = parse_selector(r#"{foo="bar"} |= "baz" |~ "blip" != "flip" !~ "flap""#).unwrap();
        let filters: Vec<(FilterOp, &str)> = s
            .line_filters
            .iter()
            .map(|f| (f.op, f.text.as_str()))
            .collect();
        assert_eq!(
            filters,
            vec![
                (FilterOp::Contains, "baz"),
                (FilterOp::Regex, "blip"),
                (FilterOp::NotContains, "flip"),
                (FilterOp::NotRegex, "flap"),
            ]
        );
    }

    #[test]
    fn label_regex_is_anchored_and_missing_label_is_empty() {
        let s = parse_selector(r#"{ns=~"a|b"}"#).unwrap();
        assert!(s.matches(&labels(&[("ns", "a")]), ""));
        assert!(!s.matches(&labels(&[("ns", "ab")]), ""));
        assert!(!s.matches(&labels(&[("ns", "xa")]), ""));
        let empty = parse_selector(r#"{missing=""}"#).unwrap();
        assert!(empty.matches(&labels(&[("ns", "a")]), ""));
        let not_empty = parse_selector(r#"{missing!=""}"#).unwrap();
        assert!(!not_empty.matches(&labels(&[("ns", "a")]), ""));
    }

    #[test]
    fn label_regex_dot_matches_newline() {
        let s = parse_selector(r#"{v=~"a.b"}"#).unwrap();
        assert!(s.matches(&labels(&[("v", "a\nb")]), ""));
    }

    #[test]
    fn line_filters_are_substring_and_unanchored_regex() {
        let s = parse_selector(r#"{app="x"} |= "err" !~ "timeout\\d+""#).unwrap();
        let l = labels(&[("app", "x")]);
        assert!(s.matches(&l, "an error happened"));
        assert!(!s.matches(&l, "an error: timeout42"));
        assert!(!s.matches(&l, "all good"));
        assert!(!s.matches(&labels(&[("app", "y")]), "an error happened"));
        let ne = parse_selector(r#"{app="x"} != "debug""#).unwrap();
        assert!(ne.matches(&l, "info line"));
        assert!(!ne.matches(&l, "a debug line"));
    }

    #[test]
    fn go_escapes_and_raw_strings() {
        let s = parse_selector("{a=\"q\\\"\\\\\\t\\x41\\101\\u00e9\\U0001F600\", b=`c:\\path\\n`}")
            .unwrap();
        assert_eq!(s.matchers[0].value, "q\"\\\tAAé😀");
        assert_eq!(s.matchers[1].value, "c:\\path\\n");
        let bytes = parse_selector(r#"{a="\xc3\xa9"}"#).unwrap();
        assert_eq!(bytes.matchers[0].value, "é");
    }

    #[test]
    fn whitespace_newlines_and_comments_are_skipped() {
        let s = parse_selector("{ foo = \"bar\" , /* c */\n  baz != `q` } // trailing").unwrap();
        assert_eq!(s.matchers.len(), 2);
        assert_eq!(s.matchers[1].name, "baz");
    }

    #[test]
    fn errors_point_at_line_and_column_like_promtail() {
        // Positions as Promtail's parser tests report them.
        let e = err(r#"{foo="bar}"#);
        assert_eq!((e.line, e.col), (1, 6));
        assert_eq!(e.message, "literal not terminated");
        let e = err(r#"{foo="bar""#);
        assert_eq!((e.line, e.col), (1, 11));
        assert_eq!(e.message, "unexpected end of input, expecting , or }");
        let e = err(r#"{foo="bar"} |~"#);
        assert_eq!((e.line, e.col), (1, 15));
        assert_eq!(e.message, "unexpected end of input, expecting string");
        let e = err(r#"{foo="bar"} "foo""#);
        assert_eq!((e.line, e.col), (1, 13));
        assert!(
            e.message
                .starts_with("unexpected string \"foo\", expecting")
        );
        let e = err(r#"{foo="bar"} foo"#);
        assert_eq!((e.line, e.col), (1, 13));
        assert!(e.message.starts_with("unexpected identifier foo"));
        assert_eq!(
            e.to_string(),
            "parse error at line 1, col 13: unexpected identifier foo, expecting one of |=, !=, |~, !~ or end of input"
        );
    }

    #[test]
    fn error_on_second_line_counts_columns_from_that_line() {
        let e = err("{a=\"b\",\n   c 1}");
        assert_eq!((e.line, e.col), (2, 6));
        assert!(e.message.starts_with("unexpected number 1"));
    }

    #[test]
    fn rejects_empty_braces_single_quotes_and_bad_escapes() {
        let e = err("{}");
        assert_eq!(
            (e.col, e.message.as_str()),
            (2, "unexpected }, expecting label name")
        );
        let e = err("{a='b'}");
        assert_eq!(e.col, 4);
        assert!(e.message.contains("single quotes"));
        let e = err(r#"{a="\d"}"#);
        assert_eq!(e.col, 5);
        assert!(e.message.starts_with("invalid escape \\d"));
        let e = err(r#"{a="\xff"}"#);
        assert_eq!(e.message, "string escapes do not form valid UTF-8");
        let e = err("a=\"b\"");
        assert_eq!(
            (e.col, e.message.as_str()),
            (1, "unexpected identifier a, expecting {")
        );
        let e = err("{a=\"b\"} /* open");
        assert_eq!((e.col, e.message.as_str()), (9, "comment not terminated"));
    }

    #[test]
    fn invalid_regex_points_at_its_string() {
        let e = err(r#"{a="b", c=~"(x"}"#);
        assert_eq!((e.line, e.col), (1, 12));
        assert!(e.message.starts_with("invalid regular expression"), "{e}");
        let e = err(r#"{a="b"} |~ "[z""#);
        assert_eq!(e.col, 12);
        assert!(e.message.starts_with("invalid regular expression"), "{e}");
    }
}
