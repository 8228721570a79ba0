//! Go `text/template` for the `template` and `replace` stages, with Promtail's function map.
//!
//! Owns parsing a template once (at config load) and executing it against one entry's data,
//! the way Go's `text/template` executes Promtail's `map[string]string`-like data: a missing
//! key is Go's "invalid value" (printed `<no value>`, false in conditions, an error when passed
//! to a function that wants a string), numbers are Go's untyped constants, comparisons and
//! truth follow `text/template`'s rules. It must not know about entries, stages or labels:
//! callers hand it a [`TemplateData`].
//!
//! Supported syntax: text and `{{ }}` actions with `{{-`/`-}}` trimming and `{{/* */}}`
//! comments; pipelines with `|`; fields `.a.b`, `.`, `$`, variables (`$x := ...`,
//! `$x = ...`); string, raw string, char, number, `true`/`false`/`nil` literals;
//! parenthesized pipelines with field chains; `if`/`else if`/`else`/`end`, `with`/`else
//! with`, `range` over lists, maps and integers with `$i, $e :=`, `break`, `continue`.
//!
//! Functions: Go's builtins `and or not len index slice print printf println eq ne lt le gt
//! ge`; Promtail's `ToLower ToUpper Replace Trim TrimLeft TrimRight TrimPrefix TrimSuffix
//! TrimSpace Hash Sha2Hash regexReplaceAll regexReplaceAllLiteral`; and the Sprig functions
//! people use in log pipelines: `default empty coalesce ternary trunc contains hasPrefix
//! hasSuffix upper lower title replace quote squote b64enc b64dec toJson toString trim
//! trimAll trimPrefix trimSuffix repeat substr nospace indent nindent cat join splitList
//! split first last list add add1 sub mul div mod max min atoi int int64 float64 sha256sum
//! regexMatch regexFind`.
//!
//! Not supported (a template using them is refused at load with "function not defined" or
//! "not supported"): `define`, `template`, `block`, `call`, `html`, `js`, `urlquery`, every
//! other Sprig function (dates such as `now`/`date`, dicts, semver, crypto beyond the hashes
//! above, ...) and hexadecimal floating-point literals. `printf` has no Go-syntax forms
//! (`%#v`, `%#q`, `%+q`) and no `%x`/`%b` of floats.
//!
//! Go strings may hold invalid UTF-8, Rust strings may not: `trunc` cuts at the nearest
//! character boundary inside its limit, `substr`/`slice` that would split a character are an
//! execution error, and `\xff` escapes or `b64dec` of binary data get U+FFFD replacements.
//! `repeat`/`indent` refuse results over 16 MiB rather than grow without bound.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

use base64::Engine as _;
use regex::Regex;
use sha2::Digest as _;

use super::gojson::{JsonFlavor, write_json_string};
use crate::model::labels::quote_go_into;

/// The data a template reads: Promtail passes a map of strings, so a field is a string or
/// missing.
pub trait TemplateData {
    /// The value of the top-level key `name` (`{{ .name }}`).
    fn field(&self, name: &str) -> Option<Cow<'_, str>>;
    /// Every key and value, for templates that print or range over `.` itself.
    fn entries(&self) -> Vec<(String, String)>;
}

/// A template that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// A template that failed while executing (Go's execution errors: a wrong argument type, a
/// failing function, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecError(String);

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExecError {}

fn exec_err<T>(msg: impl Into<String>) -> Result<T, ExecError> {
    Err(ExecError(msg.into()))
}

/// A parsed template.
pub struct Template {
    root: Vec<Node>,
    /// Patterns given to the regex functions, compiled on first use: Promtail compiles them
    /// on every call, which would dominate a hot pipeline.
    regexes: RegexCache,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template").finish_non_exhaustive()
    }
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let toks = lex(text)?;
        let mut parser = Parser {
            toks,
            pos: 0,
            vars: vec!["$".to_string()],
            range_depth: 0,
            nesting: 0,
        };
        let (root, end) = parser.parse_list()?;
        match end {
            ListEnd::Eof => Ok(Self {
                root,
                regexes: RegexCache::default(),
            }),
            ListEnd::End => Err(parser.error("unexpected {{end}}")),
            ListEnd::Else => Err(parser.error("unexpected {{else}}")),
        }
    }

    /// Appends the output to `out`. On error `out` holds partial output the caller should
    /// discard, as Promtail does.
    pub fn execute(&mut self, data: &dyn TemplateData, out: &mut String) -> Result<(), ExecError> {
        let mut state = State {
            data,
            vars: vec![("$", Value::Root)],
            regexes: &mut self.regexes,
        };
        state.walk(&Value::Root, &self.root, out)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Values

/// A value during execution, modelled on what Go's reflection sees in Promtail's templates.
#[derive(Clone, Debug, PartialEq)]
enum Value<'a> {
    /// Go's invalid `reflect.Value`: a missing map key. Prints as `<no value>`.
    Missing,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    List(Vec<Value<'a>>),
    Map(BTreeMap<String, Value<'a>>),
    /// The top-level data, read lazily through [`TemplateData`].
    Root,
}

impl<'a> Value<'a> {
    fn str(s: impl Into<Cow<'a, str>>) -> Self {
        Value::Str(s.into())
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Missing | Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) | Value::Root => "map[string]interface {}",
        }
    }
}

fn root_map<'a>(data: &dyn TemplateData) -> BTreeMap<String, Value<'a>> {
    data.entries()
        .into_iter()
        .map(|(k, v)| (k, Value::Str(Cow::Owned(v))))
        .collect()
}

/// Go's `text/template` truth: false, 0, empty strings and collections, nil, missing.
fn truth(v: &Value<'_>, data: &dyn TemplateData) -> bool {
    match v {
        Value::Missing | Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::List(l) => !l.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Root => !data.entries().is_empty(),
    }
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Text(String),
    Open,
    Close,
    Space,
    Ident(String),
    Field(String),
    Dot,
    Var(String),
    Str(String),
    Char(i64),
    Number(String),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Text(_) => f.write_str("text"),
            Tok::Open => f.write_str("{{"),
            Tok::Close => f.write_str("}}"),
            Tok::Space => f.write_str("space"),
            Tok::Ident(s) | Tok::Number(s) => f.write_str(s),
            Tok::Field(s) => write!(f, ".{s}"),
            Tok::Dot => f.write_str("."),
            Tok::Var(s) => f.write_str(s),
            Tok::Str(s) => write!(f, "{s:?}"),
            Tok::Char(c) => write!(f, "char {c}"),
            Tok::Pipe => f.write_str("|"),
            Tok::LParen => f.write_str("("),
            Tok::RParen => f.write_str(")"),
            Tok::Declare => f.write_str(":="),
            Tok::Assign => f.write_str("="),
            Tok::Comma => f.write_str(","),
        }
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// The token list, each with its 1-based line for error messages.
fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let mut toks = Vec::new();
    let mut rest = text;
    let mut trim_text_start = false;
    let line_of = |rest: &str| text[..text.len() - rest.len()].matches('\n').count() + 1;
    loop {
        let open = rest.find("{{");
        let mut segment = &rest[..open.unwrap_or(rest.len())];
        let after_open = open.map(|i| &rest[i + 2..]);
        let trim_left = after_open.is_some_and(|a| {
            let mut c = a.chars();
            c.next() == Some('-') && c.next().is_some_and(is_space)
        });
        if trim_text_start {
            segment = segment.trim_start_matches(is_space);
        }
        if trim_left {
            segment = segment.trim_end_matches(is_space);
        }
        if !segment.is_empty() {
            toks.push((Tok::Text(segment.to_string()), line_of(rest)));
        }
        let Some(mut inside) = after_open else {
            break;
        };
        if trim_left {
            inside = &inside[2..];
        }
        let inside_trimmed = inside.trim_start_matches(is_space);
        if inside_trimmed.starts_with("/*") {
            let Some(end) = inside_trimmed.find("*/") else {
                return Err(ParseError(format!(
                    "line {}: unclosed comment",
                    line_of(inside)
                )));
            };
            let after = &inside_trimmed[end + 2..];
            if let Some(r) = after.strip_prefix("}}") {
                trim_text_start = false;
                rest = r;
            } else if let Some(r) = after
                .strip_prefix(is_space)
                .and_then(|a| a.strip_prefix("-}}"))
            {
                trim_text_start = true;
                rest = r;
            } else {
                return Err(ParseError(format!(
                    "line {}: comment ends before closing delimiter",
                    line_of(after)
                )));
            }
            continue;
        }
        toks.push((Tok::Open, line_of(inside)));
        let (r, trim_right) = lex_action(inside, &mut toks, &line_of)?;
        trim_text_start = trim_right;
        rest = r;
    }
    Ok(toks)
}

/// Lexes one action's inside; returns what follows its `}}` and whether it was `-}}`.
fn lex_action<'t>(
    mut s: &'t str,
    toks: &mut Vec<(Tok, usize)>,
    line_of: &dyn Fn(&str) -> usize,
) -> Result<(&'t str, bool), ParseError> {
    loop {
        let line = line_of(s);
        let err = |msg: String| Err(ParseError(format!("line {line}: {msg}")));
        if let Some(r) = s.strip_prefix("}}") {
            toks.push((Tok::Close, line));
            return Ok((r, false));
        }
        let Some(c) = s.chars().next() else {
            return err("unclosed action".into());
        };
        if is_space(c) {
            let r = s.trim_start_matches(is_space);
            if let Some(r) = r.strip_prefix("-}}") {
                toks.push((Tok::Close, line));
                return Ok((r, true));
            }
            toks.push((Tok::Space, line));
            s = r;
            continue;
        }
        match c {
            '|' => {
                toks.push((Tok::Pipe, line));
                s = &s[1..];
            }
            '(' => {
                toks.push((Tok::LParen, line));
                s = &s[1..];
            }
            ')' => {
                toks.push((Tok::RParen, line));
                s = &s[1..];
            }
            ',' => {
                toks.push((Tok::Comma, line));
                s = &s[1..];
            }
            '=' => {
                toks.push((Tok::Assign, line));
                s = &s[1..];
            }
            ':' => {
                let Some(r) = s.strip_prefix(":=") else {
                    return err("expected :=".into());
                };
                toks.push((Tok::Declare, line));
                s = r;
            }
            '"' => {
                let mut end = None;
                let mut escaped = false;
                for (i, c) in s.char_indices().skip(1) {
                    match c {
                        '\n' => break,
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => {
                            end = Some(i);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let Some(end) = end else {
                    return err("unterminated quoted string".into());
                };
                let value =
                    unquote_go(&s[1..end]).map_err(|m| ParseError(format!("line {line}: {m}")))?;
                toks.push((Tok::Str(value), line));
                s = &s[end + 1..];
            }
            '`' => {
                let Some(end) = s[1..].find('`') else {
                    return err("unterminated raw quoted string".into());
                };
                toks.push((Tok::Str(s[1..1 + end].to_string()), line));
                s = &s[end + 2..];
            }
            '\'' => {
                let mut end = None;
                let mut escaped = false;
                for (i, c) in s.char_indices().skip(1) {
                    match c {
                        '\n' => break,
                        '\\' if !escaped => escaped = true,
                        '\'' if !escaped => {
                            end = Some(i);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let Some(end) = end else {
                    return err("unterminated character constant".into());
                };
                let body = &s[1..end];
                let value =
                    unquote_go(body).map_err(|m| ParseError(format!("line {line}: {m}")))?;
                let mut chars = value.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => toks.push((Tok::Char(c as i64), line)),
                    _ => return err(format!("malformed character constant: '{body}'")),
                }
                s = &s[end + 1..];
            }
            '$' => {
                let len = 1 + s[1..].find(|c: char| !is_alnum(c)).unwrap_or(s.len() - 1);
                toks.push((Tok::Var(s[..len].to_string()), line));
                s = &s[len..];
            }
            '.' if !s[1..].starts_with(|c: char| c.is_ascii_digit()) => {
                let len = s[1..].find(|c: char| !is_alnum(c)).unwrap_or(s.len() - 1);
                if len == 0 {
                    toks.push((Tok::Dot, line));
                } else {
                    toks.push((Tok::Field(s[1..1 + len].to_string()), line));
                }
                s = &s[1 + len..];
            }
            c if c == '.' || c == '+' || c == '-' || c.is_ascii_digit() => {
                let len = scan_number(s);
                if len == 0 || s[len..].starts_with(is_alnum) {
                    let bad = s[..len].to_string() + &s[len..].chars().take(1).collect::<String>();
                    return err(format!("bad number syntax: {bad:?}"));
                }
                toks.push((Tok::Number(s[..len].to_string()), line));
                s = &s[len..];
            }
            c if is_alnum(c) => {
                let len = s.find(|c: char| !is_alnum(c)).unwrap_or(s.len());
                toks.push((Tok::Ident(s[..len].to_string()), line));
                s = &s[len..];
            }
            c => return err(format!("unrecognized character in action: {c:?}")),
        }
    }
}

/// Length of the number literal at the start of `s` (sign, base prefix, digits with `_`,
/// fraction, exponent), as Go's lexer scans it.
fn scan_number(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let mut hex = false;
    if b.len() > i + 1
        && b[i] == b'0'
        && matches!(b[i + 1], b'x' | b'X' | b'o' | b'O' | b'b' | b'B')
    {
        hex = matches!(b[i + 1], b'x' | b'X');
        i += 2;
    }
    let digit = |c: u8| c.is_ascii_digit() || c == b'_' || (hex && c.is_ascii_hexdigit());
    while i < b.len() && digit(b[i]) {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && digit(b[i]) {
            i += 1;
        }
    }
    let exp = if hex { [b'p', b'P'] } else { [b'e', b'E'] };
    if i < b.len() && exp.contains(&b[i]) {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    let has_digit = s[..i].bytes().any(|c| c.is_ascii_digit());
    if has_digit { i } else { 0 }
}

/// Go's `strconv.Unquote` escapes for the body of a `"..."` or `'...'` literal. Byte
/// escapes that do not form UTF-8 become U+FFFD.
fn unquote_go(body: &str) -> Result<String, String> {
    if !body.contains('\\') {
        return Ok(body.to_string());
    }
    let mut bytes = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(e) = chars.next() else {
            return Err("invalid syntax in quoted string".into());
        };
        let simple = match e {
            'a' => Some(7u8),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            '\'' => Some(b'\''),
            _ => None,
        };
        if let Some(b) = simple {
            bytes.push(b);
            continue;
        }
        let (digits, radix) = match e {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return Err(format!("invalid escape \\{e} in quoted string")),
        };
        let mut text: String = chars.by_ref().take(digits).collect();
        if radix == 8 {
            text.insert(0, e);
        }
        let code = u32::from_str_radix(&text, radix)
            .map_err(|_| format!("invalid escape \\{e}{text} in quoted string"))?;
        if e == 'x' || radix == 8 {
            if code > 255 {
                return Err(format!("invalid octal escape \\{text}"));
            }
            bytes.push(code as u8);
        } else {
            let c = char::from_u32(code)
                .ok_or_else(|| format!("invalid Unicode escape \\{e}{text}"))?;
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

// ---------------------------------------------------------------------------------------
// Parser

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Box<Branch>),
    With(Box<Branch>),
    Range(Box<Branch>),
    Break,
    Continue,
}

#[derive(Debug)]
struct Branch {
    pipe: Pipeline,
    body: Vec<Node>,
    otherwise: Vec<Node>,
}

#[derive(Debug)]
struct Pipeline {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Command>,
}

#[derive(Debug)]
struct Command {
    args: Vec<Operand>,
}

#[derive(Debug)]
enum Operand {
    Dot,
    Nil,
    Literal(Value<'static>),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(Func),
    Pipe(Box<Pipeline>, Vec<String>),
    Chain(Func, Vec<String>),
}

enum ListEnd {
    Eof,
    End,
    Else,
}

#[derive(Clone, Copy, PartialEq)]
enum Control {
    If,
    With,
    Range,
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    /// Variables in scope, for Go's parse-time "undefined variable" check.
    vars: Vec<String>,
    range_depth: usize,
    /// Open controls and parentheses, bounded so a pathological template is an error rather
    /// than a stack overflow.
    nesting: usize,
}

/// Deepest nesting of controls and parentheses a template may have.
const MAX_NESTING: usize = 100;

impl Parser {
    fn error(&self, msg: impl fmt::Display) -> ParseError {
        let line = self
            .toks
            .get(self.pos.min(self.toks.len().saturating_sub(1)))
            .map_or(1, |t| t.1);
        ParseError(format!("line {line}: {msg}"))
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.error(format!(
                "template nests more than {MAX_NESTING} levels deep"
            )));
        }
        Ok(())
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t
    }

    fn skip_space(&mut self) {
        while self.peek() == Some(&Tok::Space) {
            self.pos += 1;
        }
    }

    fn expect_close(&mut self, context: &str) -> Result<(), ParseError> {
        self.skip_space();
        match self.next() {
            Some(Tok::Close) => Ok(()),
            Some(t) => Err(self.error(format!("unexpected {t} in {context}"))),
            None => Err(self.error(format!("unclosed {context}"))),
        }
    }

    fn parse_list(&mut self) -> Result<(Vec<Node>, ListEnd), ParseError> {
        let mut nodes = Vec::new();
        loop {
            match self.next() {
                None => return Ok((nodes, ListEnd::Eof)),
                Some(Tok::Text(t)) => nodes.push(Node::Text(t)),
                Some(Tok::Open) => {
                    self.skip_space();
                    let keyword = match self.peek() {
                        Some(Tok::Ident(k)) => k.clone(),
                        _ => String::new(),
                    };
                    match keyword.as_str() {
                        "end" => {
                            self.pos += 1;
                            self.expect_close("end")?;
                            return Ok((nodes, ListEnd::End));
                        }
                        "else" => {
                            self.pos += 1;
                            return Ok((nodes, ListEnd::Else));
                        }
                        "if" => {
                            self.pos += 1;
                            nodes.push(self.parse_control(Control::If)?);
                        }
                        "with" => {
                            self.pos += 1;
                            nodes.push(self.parse_control(Control::With)?);
                        }
                        "range" => {
                            self.pos += 1;
                            nodes.push(self.parse_control(Control::Range)?);
                        }
                        "break" | "continue" => {
                            self.pos += 1;
                            if self.range_depth == 0 {
                                return Err(
                                    self.error(format!("{{{{{keyword}}}}} outside {{{{range}}}}"))
                                );
                            }
                            self.expect_close(&keyword)?;
                            nodes.push(if keyword == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        "define" | "template" | "block" => {
                            return Err(self.error(format!("{{{{{keyword}}}}} is not supported")));
                        }
                        _ => {
                            let pipe = self.parse_pipeline("command", false)?;
                            self.expect_close("command")?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                Some(t) => return Err(self.error(format!("unexpected {t}"))),
            }
        }
    }

    fn parse_control(&mut self, control: Control) -> Result<Node, ParseError> {
        self.enter()?;
        let node = self.parse_control_body(control);
        self.nesting -= 1;
        node
    }

    fn parse_control_body(&mut self, control: Control) -> Result<Node, ParseError> {
        let name = match control {
            Control::If => "if",
            Control::With => "with",
            Control::Range => "range",
        };
        let mark = self.vars.len();
        let pipe = self.parse_pipeline(name, control == Control::Range)?;
        self.expect_close(name)?;
        if control == Control::Range {
            self.range_depth += 1;
        }
        let (body, end) = self.parse_list()?;
        if control == Control::Range {
            self.range_depth -= 1;
        }
        let otherwise = match end {
            ListEnd::Eof => return Err(self.error(format!("unexpected EOF in {{{{{name}}}}}"))),
            ListEnd::End => Vec::new(),
            ListEnd::Else => {
                self.skip_space();
                let chained = match self.peek() {
                    Some(Tok::Ident(k)) if k == "if" && control == Control::If => Some(Control::If),
                    Some(Tok::Ident(k)) if k == "with" && control == Control::With => {
                        Some(Control::With)
                    }
                    _ => None,
                };
                match chained {
                    // `{{else if x}}` is `{{else}}{{if x}}...{{end}}` sharing the outer end.
                    Some(c) => {
                        self.pos += 1;
                        vec![self.parse_control(c)?]
                    }
                    None => {
                        self.expect_close("else")?;
                        let (otherwise, end) = self.parse_list()?;
                        match end {
                            ListEnd::End => otherwise,
                            ListEnd::Else => return Err(self.error("expected end; found {{else}}")),
                            ListEnd::Eof => {
                                return Err(self.error(format!("unexpected EOF in {{{{{name}}}}}")));
                            }
                        }
                    }
                }
            }
        };
        self.vars.truncate(mark);
        let branch = Box::new(Branch {
            pipe,
            body,
            otherwise,
        });
        Ok(match control {
            Control::If => Node::If(branch),
            Control::With => Node::With(branch),
            Control::Range => Node::Range(branch),
        })
    }

    /// A pipeline up to (not including) `}}` or `)`.
    fn parse_pipeline(&mut self, context: &str, in_range: bool) -> Result<Pipeline, ParseError> {
        self.skip_space();
        let mut decl = Vec::new();
        let mut assign = false;
        if let Some(Tok::Var(_)) = self.peek() {
            let start = self.pos;
            let mut names = Vec::new();
            while let Some(Tok::Var(v)) = self.peek().cloned() {
                self.pos += 1;
                names.push(v);
                self.skip_space();
                match self.peek() {
                    Some(Tok::Comma) if in_range && names.len() == 1 => {
                        self.pos += 1;
                        self.skip_space();
                    }
                    Some(Tok::Declare) | Some(Tok::Assign) => break,
                    _ => {
                        names.clear();
                        break;
                    }
                }
            }
            match self.peek() {
                Some(Tok::Declare) if !names.is_empty() => {
                    self.pos += 1;
                    self.vars.extend(names.iter().cloned());
                    decl = names;
                }
                Some(Tok::Assign) if !names.is_empty() => {
                    self.pos += 1;
                    for n in &names {
                        self.check_var(n)?;
                    }
                    decl = names;
                    assign = true;
                }
                _ => self.pos = start,
            }
        }
        let mut cmds = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Some(Tok::Close) | Some(Tok::RParen) | None => break,
                _ => {}
            }
            cmds.push(self.parse_command()?);
            self.skip_space();
            match self.peek() {
                Some(Tok::Pipe) => self.pos += 1,
                Some(Tok::Close) | Some(Tok::RParen) => break,
                Some(t) => return Err(self.error(format!("unexpected {t} in {context}"))),
                None => return Err(self.error(format!("unclosed {context}"))),
            }
        }
        if cmds.is_empty() {
            return Err(self.error(format!("missing value for {context}")));
        }
        for (i, cmd) in cmds.iter().enumerate().skip(1) {
            if matches!(
                cmd.args[0],
                Operand::Dot | Operand::Nil | Operand::Literal(_)
            ) {
                return Err(self.error(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(Pipeline { decl, assign, cmds })
    }

    fn check_var(&self, name: &str) -> Result<(), ParseError> {
        if self.vars.iter().any(|v| v == name) {
            Ok(())
        } else {
            Err(self.error(format!("undefined variable {name:?}")))
        }
    }

    fn parse_command(&mut self) -> Result<Command, ParseError> {
        let mut args = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Some(Tok::Pipe) | Some(Tok::Close) | Some(Tok::RParen) | None => break,
                _ => {}
            }
            args.push(self.parse_operand()?);
            match self.peek() {
                Some(Tok::Space) | Some(Tok::Pipe) | Some(Tok::Close) | Some(Tok::RParen)
                | None => {}
                Some(t) => return Err(self.error(format!("unexpected {t} in operand"))),
            }
        }
        if args.is_empty() {
            return Err(self.error("empty command"));
        }
        Ok(Command { args })
    }

    fn parse_chain(&mut self) -> Vec<String> {
        let mut fields = Vec::new();
        while let Some(Tok::Field(f)) = self.peek() {
            fields.push(f.clone());
            self.pos += 1;
        }
        fields
    }

    fn parse_operand(&mut self) -> Result<Operand, ParseError> {
        let Some(tok) = self.next() else {
            return Err(self.error("unexpected EOF"));
        };
        let term = match tok {
            Tok::Dot => Operand::Dot,
            Tok::Field(f) => {
                let mut fields = vec![f];
                fields.extend(self.parse_chain());
                return Ok(Operand::Field(fields));
            }
            Tok::Var(v) => {
                self.check_var(&v)?;
                let fields = self.parse_chain();
                return Ok(Operand::Var(v, fields));
            }
            Tok::LParen => {
                self.enter()?;
                let pipe = self.parse_pipeline("parenthesized pipeline", false)?;
                self.nesting -= 1;
                self.skip_space();
                if self.next() != Some(Tok::RParen) {
                    return Err(self.error("unclosed left paren"));
                }
                let fields = self.parse_chain();
                return Ok(Operand::Pipe(Box::new(pipe), fields));
            }
            Tok::Ident(name) => match name.as_str() {
                "true" => Operand::Literal(Value::Bool(true)),
                "false" => Operand::Literal(Value::Bool(false)),
                "nil" => Operand::Nil,
                "if" | "else" | "end" | "range" | "with" | "break" | "continue" | "define"
                | "template" | "block" => {
                    return Err(self.error(format!("unexpected <{name}> in command")));
                }
                _ => {
                    let Some(f) = Func::lookup(&name) else {
                        return Err(self.error(format!("function {name:?} not defined")));
                    };
                    let fields = self.parse_chain();
                    return Ok(if fields.is_empty() {
                        Operand::Func(f)
                    } else {
                        Operand::Chain(f, fields)
                    });
                }
            },
            Tok::Str(s) => Operand::Literal(Value::Str(Cow::Owned(s))),
            Tok::Char(c) => Operand::Literal(Value::Int(c)),
            Tok::Number(n) => Operand::Literal(
                parse_number(&n)
                    .ok_or_else(|| self.error(format!("illegal number syntax: {n:?}")))?,
            ),
            t => return Err(self.error(format!("unexpected {t} in operand"))),
        };
        if let Some(Tok::Field(_)) = self.peek() {
            return Err(self.error("unexpected . after term"));
        }
        Ok(term)
    }
}

/// A number literal as Go's untyped constant used as `interface{}`: an int when it is
/// written as one, a float64 when it has a fraction or exponent.
fn parse_number(text: &str) -> Option<Value<'static>> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let lower = unsigned.replace('_', "").to_ascii_lowercase();
    let is_hex = lower.starts_with("0x");
    if !is_hex && lower.contains(['.', 'e']) {
        let f: f64 = lower.parse().ok().filter(|f: &f64| f.is_finite())?;
        return Some(Value::Float(if text.starts_with('-') { -f } else { f }));
    }
    if is_hex && lower.contains(['.', 'p']) {
        // Hexadecimal floating-point literals are not supported.
        return None;
    }
    parse_go_int(text).map(Value::Int)
}

// ---------------------------------------------------------------------------------------
// Execution

#[derive(PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

struct State<'t, 'a> {
    data: &'a dyn TemplateData,
    vars: Vec<(&'t str, Value<'a>)>,
    regexes: &'t mut RegexCache,
}

impl<'t, 'a> State<'t, 'a> {
    fn walk(
        &mut self,
        dot: &Value<'a>,
        nodes: &'t [Node],
        out: &mut String,
    ) -> Result<Flow, ExecError> {
        for node in nodes {
            let flow = match node {
                Node::Text(t) => {
                    out.push_str(t);
                    Flow::Normal
                }
                Node::Action(pipe) => {
                    let v = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.print_value(&v, out);
                    }
                    Flow::Normal
                }
                Node::If(b) | Node::With(b) => {
                    let mark = self.vars.len();
                    let v = self.eval_pipeline(dot, &b.pipe)?;
                    let flow = if truth(&v, self.data) {
                        if matches!(node, Node::With(_)) {
                            self.walk(&v, &b.body, out)?
                        } else {
                            self.walk(dot, &b.body, out)?
                        }
                    } else {
                        self.walk(dot, &b.otherwise, out)?
                    };
                    self.vars.truncate(mark);
                    flow
                }
                Node::Range(b) => {
                    let mark = self.vars.len();
                    let flow = self.walk_range(dot, b, out)?;
                    self.vars.truncate(mark);
                    flow
                }
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_range(
        &mut self,
        dot: &Value<'a>,
        b: &'t Branch,
        out: &mut String,
    ) -> Result<Flow, ExecError> {
        let v = self.eval_pipeline(dot, &b.pipe)?;
        let items: Vec<(Value<'a>, Value<'a>)> = match v {
            Value::List(l) => l
                .into_iter()
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), e))
                .collect(),
            Value::Map(m) => m.into_iter().map(|(k, e)| (Value::str(k), e)).collect(),
            Value::Root => root_map(self.data)
                .into_iter()
                .map(|(k, e)| (Value::str(k), e))
                .collect(),
            Value::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    return exec_err("can't use two variables to range over an integer");
                }
                // Counted lazily: the bound may come from log data.
                if n <= 0 {
                    return self.walk(dot, &b.otherwise, out);
                }
                for i in 0..n {
                    let elem = Value::Int(i);
                    if self.range_iteration(b, elem.clone(), elem, out)? == Flow::Break {
                        break;
                    }
                }
                return Ok(Flow::Normal);
            }
            Value::Missing | Value::Nil => Vec::new(),
            other => {
                return exec_err(format!(
                    "range can't iterate over {}",
                    sprint_v(&other, self.data)
                ));
            }
        };
        if items.is_empty() {
            return self.walk(dot, &b.otherwise, out);
        }
        for (key, elem) in items {
            if self.range_iteration(b, key, elem, out)? == Flow::Break {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    /// One pass of a range body: `$i, $e` (or just `$e`) set, `.` = the element, and
    /// variables declared in the body dropped afterwards.
    fn range_iteration(
        &mut self,
        b: &'t Branch,
        key: Value<'a>,
        elem: Value<'a>,
        out: &mut String,
    ) -> Result<Flow, ExecError> {
        let values = match b.pipe.decl.len() {
            1 => vec![elem.clone()],
            2 => vec![key, elem.clone()],
            _ => Vec::new(),
        };
        for (name, value) in b.pipe.decl.iter().zip(values) {
            self.set_var(name, value);
        }
        let inner = self.vars.len();
        let flow = self.walk(&elem, &b.body, out)?;
        self.vars.truncate(inner);
        Ok(flow)
    }

    /// Sets the innermost variable called `name` (declared by the parser's scope rules).
    fn set_var(&mut self, name: &str, value: Value<'a>) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            slot.1 = value;
        }
    }

    fn print_value(&self, v: &Value<'a>, out: &mut String) {
        match v {
            Value::Missing => out.push_str("<no value>"),
            v => fmt_v(v, self.data, out),
        }
    }

    fn eval_pipeline(
        &mut self,
        dot: &Value<'a>,
        pipe: &'t Pipeline,
    ) -> Result<Value<'a>, ExecError> {
        let mut value: Option<Value<'a>> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, value.take())?;
            // Go digs a nil interface{} result down to an invalid value.
            value = Some(if v == Value::Nil { Value::Missing } else { v });
        }
        let value = value.unwrap_or(Value::Missing);
        for name in &pipe.decl {
            if pipe.assign {
                self.set_var(name, value.clone());
            } else {
                self.vars.push((name, value.clone()));
            }
        }
        Ok(value)
    }

    fn eval_command(
        &mut self,
        dot: &Value<'a>,
        cmd: &'t Command,
        last: Option<Value<'a>>,
    ) -> Result<Value<'a>, ExecError> {
        let first = &cmd.args[0];
        if let Operand::Func(f) = first {
            return self.call(dot, *f, &cmd.args[1..], last);
        }
        if cmd.args.len() > 1 || last.is_some() {
            return match first {
                Operand::Field(names) | Operand::Var(_, names) | Operand::Pipe(_, names)
                    if !names.is_empty() =>
                {
                    exec_err(format!(
                        "{} is not a method but has arguments",
                        names[names.len() - 1]
                    ))
                }
                _ => exec_err("can't give argument to non-function"),
            };
        }
        if let Operand::Nil = first {
            return exec_err("nil is not a command");
        }
        self.eval_arg(dot, first)
    }

    fn eval_arg(&mut self, dot: &Value<'a>, op: &'t Operand) -> Result<Value<'a>, ExecError> {
        match op {
            Operand::Dot => Ok(dot.clone()),
            Operand::Nil => Ok(Value::Nil),
            Operand::Literal(v) => Ok(v.clone()),
            Operand::Field(names) => self.field_chain(dot.clone(), names),
            Operand::Var(name, names) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .map_or_else(|| exec_err(format!("undefined variable: {name}")), Ok)?;
                self.field_chain(v, names)
            }
            Operand::Func(f) => self.call(dot, *f, &[], None),
            Operand::Chain(f, names) => {
                let v = self.call(dot, *f, &[], None)?;
                self.field_chain(v, names)
            }
            Operand::Pipe(pipe, names) => {
                let v = self.eval_pipeline(dot, pipe)?;
                self.field_chain(v, names)
            }
        }
    }

    fn field_chain(&self, mut v: Value<'a>, names: &[String]) -> Result<Value<'a>, ExecError> {
        // Borrowing through the `'a` reference lets field values borrow from the data.
        let data: &'a dyn TemplateData = self.data;
        for name in names {
            v = match v {
                Value::Root => data.field(name).map_or(Value::Missing, Value::Str),
                Value::Map(mut m) => m.remove(name.as_str()).unwrap_or(Value::Missing),
                Value::Missing => Value::Missing,
                Value::Nil => {
                    return exec_err(format!("nil pointer evaluating interface {{}}.{name}"));
                }
                other => {
                    return exec_err(format!(
                        "can't evaluate field {name} in type {}",
                        other.type_name()
                    ));
                }
            };
        }
        Ok(v)
    }

    fn call(
        &mut self,
        dot: &Value<'a>,
        f: Func,
        args: &'t [Operand],
        last: Option<Value<'a>>,
    ) -> Result<Value<'a>, ExecError> {
        if matches!(f, Func::And | Func::Or) {
            // and/or stop at the first argument that decides, without evaluating the rest.
            let want = f == Func::Or;
            if args.is_empty() && last.is_none() {
                return exec_err(format!(
                    "wrong number of args for {}: want at least 1 got 0",
                    f.name()
                ));
            }
            let mut v = Value::Missing;
            for a in args {
                v = self.eval_arg(dot, a)?;
                if truth(&v, self.data) == want {
                    return Ok(v);
                }
            }
            return Ok(last.unwrap_or(v));
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        for a in args {
            values.push(self.eval_arg(dot, a)?);
        }
        values.extend(last);
        call_func(f, values, self.data, self.regexes)
    }
}

// ---------------------------------------------------------------------------------------
// Printing (Go's fmt)

/// `%v` of a value, as Go's `fmt` prints it.
fn fmt_v(v: &Value<'_>, data: &dyn TemplateData, out: &mut String) {
    match v {
        Value::Missing | Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => fmt_float_g(*f, None, false, out),
        Value::Str(s) => out.push_str(s),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_v(e, data, out);
            }
            out.push(']');
        }
        Value::Map(m) => fmt_map(m, data, out),
        Value::Root => fmt_map(&root_map(data), data, out),
    }
}

fn fmt_map(m: &BTreeMap<String, Value<'_>>, data: &dyn TemplateData, out: &mut String) {
    out.push_str("map[");
    for (i, (k, e)) in m.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(k);
        out.push(':');
        fmt_v(e, data, out);
    }
    out.push(']');
}

fn sprint_v(v: &Value<'_>, data: &dyn TemplateData) -> String {
    let mut s = String::new();
    fmt_v(v, data, &mut s);
    s
}

/// The decimal digits and decimal-point position of `|f|` (`digits` × 10^(dp − len)),
/// shortest round-trip when `sig` is `None`, else rounded to `sig` significant digits, with
/// trailing zeros dropped as Go's `strconv` does.
fn float_digits(f: f64, sig: Option<usize>) -> (String, i32) {
    let e = match sig {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, f.abs()),
    };
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    (digits, exp + 1)
}

fn push_exponent(exp: i32, upper: bool, out: &mut String) {
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.unsigned_abs());
}

fn float_special(f: f64, out: &mut String) -> bool {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        return false;
    }
    true
}

/// Go's `%g` (`prec` `None`: shortest, as `%v` prints floats).
fn fmt_float_g(f: f64, prec: Option<usize>, upper: bool, out: &mut String) {
    if float_special(f, out) {
        return;
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    let (digits, dp) = if f == 0.0 {
        ("0".to_string(), 1)
    } else {
        float_digits(f, prec.map(|p| p.max(1)))
    };
    let nd = digits.len() as i32;
    let mut p = prec.map_or(nd, |p| p.max(1) as i32);
    let eprec = if prec.is_none() {
        6
    } else if p > nd && nd >= dp {
        nd
    } else {
        p
    };
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        p = p.min(nd);
        out.push_str(&digits[..1]);
        if p > 1 {
            out.push('.');
            out.push_str(&digits[1..p as usize]);
        }
        push_exponent(exp, upper, out);
    } else {
        if p > dp {
            p = nd;
        }
        push_fixed(&digits, dp, (p - dp).max(0) as usize, out);
    }
}

/// Digits with the decimal point at `dp`, `frac` digits after it.
fn push_fixed(digits: &str, dp: i32, frac: usize, out: &mut String) {
    let digit = |i: i32| -> char {
        if i >= 0 && (i as usize) < digits.len() {
            digits.as_bytes()[i as usize] as char
        } else {
            '0'
        }
    };
    if dp > 0 {
        for i in 0..dp {
            out.push(digit(i));
        }
    } else {
        out.push('0');
    }
    if frac > 0 {
        out.push('.');
        for i in 0..frac as i32 {
            out.push(digit(dp + i));
        }
    }
}

/// Go's `%e` with `prec` digits after the point.
fn fmt_float_e(f: f64, prec: usize, upper: bool, out: &mut String) {
    if float_special(f, out) {
        return;
    }
    let s = format!("{:.*e}", prec, f);
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    out.push_str(mant);
    push_exponent(exp.parse().unwrap_or(0), upper, out);
}

fn fmt_float_f(f: f64, prec: usize, out: &mut String) {
    if float_special(f, out) {
        return;
    }
    let _ = write!(out, "{:.*}", prec, f);
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %q %d %x %X %o %b %c %U %e %E %f
/// %F %g %G %t %%` with flags, width, precision, `*` and `%[n]` argument indexes. Wrong
/// types print Go's `%!d(string=x)`, missing arguments `%!d(MISSING)`.
fn sprintf(format: &str, args: &[Value<'_>], data: &dyn TemplateData, out: &mut String) {
    let b = format.as_bytes();
    let mut i = 0;
    let mut arg_num = 0;
    let mut reordered = false;
    while i < b.len() {
        let literal = i;
        while i < b.len() && b[i] != b'%' {
            i += 1;
        }
        out.push_str(&format[literal..i]);
        if i >= b.len() {
            break;
        }
        i += 1;
        let mut spec = Spec::default();
        while i < b.len() {
            match b[i] {
                b'#' => spec.sharp = true,
                b'0' => spec.zero = !spec.minus,
                b'+' => spec.plus = true,
                b'-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                b' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut good_arg = true;
        let mut after_index = arg_index(
            b,
            &mut i,
            &mut arg_num,
            &mut good_arg,
            &mut reordered,
            args.len(),
        );
        if i < b.len() && b[i] == b'*' {
            i += 1;
            match star_arg(args, &mut arg_num) {
                Some(w) if w < 0 => {
                    spec.minus = true;
                    spec.zero = false;
                    spec.width = Some(w.unsigned_abs() as usize);
                }
                Some(w) => spec.width = Some(w as usize),
                None => out.push_str("%!(BADWIDTH)"),
            }
            after_index = false;
        } else {
            spec.width = digits(b, &mut i);
            if after_index && spec.width.is_some() {
                good_arg = false;
            }
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            if after_index {
                good_arg = false;
            }
            after_index = arg_index(
                b,
                &mut i,
                &mut arg_num,
                &mut good_arg,
                &mut reordered,
                args.len(),
            );
            if i < b.len() && b[i] == b'*' {
                i += 1;
                match star_arg(args, &mut arg_num) {
                    Some(p) if p >= 0 => spec.prec = Some(p as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                after_index = false;
            } else {
                spec.prec = Some(digits(b, &mut i).unwrap_or(0));
            }
        }
        if !after_index {
            arg_index(
                b,
                &mut i,
                &mut arg_num,
                &mut good_arg,
                &mut reordered,
                args.len(),
            );
        }
        let Some(verb) = format[i..].chars().next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
        } else if !good_arg {
            let _ = write!(out, "%!{verb}(BADINDEX)");
        } else if let Some(arg) = args.get(arg_num) {
            arg_num += 1;
            let mut cell = String::new();
            let numeric = fmt_verb(verb, &spec, arg, data, &mut cell);
            pad(&cell, &spec, numeric, out);
        } else {
            let _ = write!(out, "%!{verb}(MISSING)");
        }
    }
    if !reordered && arg_num < args.len() {
        out.push_str("%!(EXTRA ");
        for (n, a) in args[arg_num..].iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            out.push_str(a.type_name());
            out.push('=');
            fmt_v(a, data, out);
        }
        out.push(')');
    }
}

/// A decimal number at `b[*i..]`, if any (Go caps widths at 10⁶).
fn digits(b: &[u8], i: &mut usize) -> Option<usize> {
    let start = *i;
    let mut n: usize = 0;
    while *i < b.len() && b[*i].is_ascii_digit() {
        n = (n * 10 + usize::from(b[*i] - b'0')).min(1_000_000);
        *i += 1;
    }
    (*i > start).then_some(n)
}

/// Go's `argNumber`: an explicit `[n]` sets the next argument; returns whether one was there.
fn arg_index(
    b: &[u8],
    i: &mut usize,
    arg_num: &mut usize,
    good: &mut bool,
    reordered: &mut bool,
    num_args: usize,
) -> bool {
    if *i >= b.len() || b[*i] != b'[' {
        return false;
    }
    *reordered = true;
    let Some(close) = b[*i..].iter().position(|&c| c == b']') else {
        *good = false;
        *i += 1;
        return false;
    };
    let mut j = *i + 1;
    let n = digits(b, &mut j);
    let end = *i + close;
    *i = end + 1;
    match n {
        Some(n) if j == end && n >= 1 && n <= num_args => {
            *arg_num = n - 1;
            true
        }
        Some(_) if j == end => {
            *good = false;
            true
        }
        _ => {
            *good = false;
            false
        }
    }
}

/// The int argument of a `*` width or precision; `None` when it is not an int or is beyond
/// Go's 10⁶ limit.
fn star_arg(args: &[Value<'_>], arg_num: &mut usize) -> Option<i64> {
    let arg = args.get(*arg_num)?;
    *arg_num += 1;
    match arg {
        Value::Int(n) if n.unsigned_abs() <= 1_000_000 => Some(*n),
        _ => None,
    }
}

/// Pads `cell` to the spec's width: spaces, or zeros (after a number's sign) with `0`.
fn pad(cell: &str, spec: &Spec, numeric: bool, out: &mut String) {
    let len = cell.chars().count();
    let Some(width) = spec.width.filter(|w| *w > len) else {
        out.push_str(cell);
        return;
    };
    let fill = width - len;
    if spec.minus {
        out.push_str(cell);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero {
        let sign_len = usize::from(numeric && cell.starts_with(['-', '+', ' ']));
        out.push_str(&cell[..sign_len]);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(&cell[sign_len..]);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(cell);
    }
}

/// Formats one argument; returns whether it was printed as a number (for zero padding).
fn fmt_verb(
    verb: char,
    spec: &Spec,
    arg: &Value<'_>,
    data: &dyn TemplateData,
    out: &mut String,
) -> bool {
    let bad = |out: &mut String| {
        let _ = write!(out, "%!{verb}(");
        match arg {
            Value::Missing | Value::Nil => out.push_str("<nil>"),
            a => {
                out.push_str(a.type_name());
                out.push('=');
                fmt_v(a, data, out);
            }
        }
        out.push(')');
        false
    };
    match arg {
        Value::List(items) => {
            out.push('[');
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_verb(verb, spec, e, data, out);
            }
            out.push(']');
            false
        }
        Value::Map(_) | Value::Root if verb == 'v' => {
            fmt_v(arg, data, out);
            false
        }
        Value::Missing | Value::Nil if verb == 'v' => {
            out.push_str("<nil>");
            false
        }
        Value::Bool(b) if matches!(verb, 'v' | 't') => {
            out.push_str(if *b { "true" } else { "false" });
            false
        }
        Value::Str(s) => match verb {
            'v' | 's' => {
                match spec.prec {
                    Some(p) => out.extend(s.chars().take(p)),
                    None => out.push_str(s),
                }
                false
            }
            'q' => {
                quote_go_into(s, out);
                false
            }
            'x' | 'X' => {
                for (n, b) in s.bytes().enumerate() {
                    if spec.space && n > 0 {
                        out.push(' ');
                    }
                    let _ = if verb == 'x' {
                        write!(out, "{b:02x}")
                    } else {
                        write!(out, "{b:02X}")
                    };
                }
                false
            }
            _ => bad(out),
        },
        Value::Int(i) => {
            let sign = if *i < 0 {
                "-"
            } else if spec.plus {
                "+"
            } else if spec.space {
                " "
            } else {
                ""
            };
            let u = i.unsigned_abs();
            match verb {
                'v' | 'd' => {
                    let _ = write!(out, "{sign}{u}");
                }
                'x' => {
                    let _ = write!(out, "{sign}{}{u:x}", if spec.sharp { "0x" } else { "" });
                }
                'X' => {
                    let _ = write!(out, "{sign}{}{u:X}", if spec.sharp { "0X" } else { "" });
                }
                'o' => {
                    let _ = write!(out, "{sign}{}{u:o}", if spec.sharp { "0" } else { "" });
                }
                'b' => {
                    let _ = write!(out, "{sign}{u:b}");
                }
                'c' => {
                    out.push(char_of(*i));
                    return false;
                }
                'q' => {
                    let c = char_of(*i);
                    let mut quoted = String::new();
                    quote_go_into(&c.to_string(), &mut quoted);
                    out.push('\'');
                    out.push_str(&quoted[1..quoted.len() - 1].replace("\\\"", "\""));
                    out.push('\'');
                    return false;
                }
                'U' => {
                    let _ = write!(out, "U+{u:04X}");
                    return false;
                }
                _ => return bad(out),
            }
            true
        }
        Value::Float(f) => {
            let start = out.len();
            if !f.is_sign_negative() || f.is_nan() {
                if spec.plus {
                    out.push('+');
                } else if spec.space {
                    out.push(' ');
                }
            }
            match verb {
                'v' => fmt_float_g(*f, spec.prec, false, out),
                'g' | 'G' => fmt_float_g(*f, spec.prec, verb == 'G', out),
                'e' | 'E' => fmt_float_e(*f, spec.prec.unwrap_or(6), verb == 'E', out),
                'f' | 'F' => fmt_float_f(*f, spec.prec.unwrap_or(6), out),
                _ => {
                    out.truncate(start);
                    return bad(out);
                }
            }
            // Go prints "+Inf" for %v already; avoid a doubled sign.
            if out[start..].starts_with("++") {
                out.remove(start);
            }
            true
        }
        _ => bad(out),
    }
}

fn char_of(i: i64) -> char {
    u32::try_from(i)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

// ---------------------------------------------------------------------------------------
// Functions

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Print,
    Printf,
    Println,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    // Promtail
    ToLower,
    ToUpper,
    Replace,
    Trim,
    TrimLeft,
    TrimRight,
    TrimPrefix,
    TrimSuffix,
    TrimSpace,
    Hash,
    Sha2Hash,
    RegexReplaceAll,
    RegexReplaceAllLiteral,
    // Sprig
    Default,
    Empty,
    Coalesce,
    Ternary,
    Trunc,
    Contains,
    HasPrefix,
    HasSuffix,
    Upper,
    Lower,
    Title,
    SprigReplace,
    Quote,
    Squote,
    B64enc,
    B64dec,
    ToJson,
    ToString,
    SprigTrim,
    TrimAll,
    SprigTrimPrefix,
    SprigTrimSuffix,
    Repeat,
    Substr,
    Nospace,
    Indent,
    Nindent,
    Cat,
    Join,
    SplitList,
    Split,
    First,
    Last,
    List,
    Add,
    Add1,
    Sub,
    Mul,
    Div,
    Mod,
    Max,
    Min,
    Atoi,
    Int,
    Int64,
    Float64,
    Sha256sum,
    RegexMatch,
    RegexFind,
}

const FUNCS: &[(&str, Func)] = &[
    ("and", Func::And),
    ("or", Func::Or),
    ("not", Func::Not),
    ("len", Func::Len),
    ("index", Func::Index),
    ("slice", Func::Slice),
    ("print", Func::Print),
    ("printf", Func::Printf),
    ("println", Func::Println),
    ("eq", Func::Eq),
    ("ne", Func::Ne),
    ("lt", Func::Lt),
    ("le", Func::Le),
    ("gt", Func::Gt),
    ("ge", Func::Ge),
    ("ToLower", Func::ToLower),
    ("ToUpper", Func::ToUpper),
    ("Replace", Func::Replace),
    ("Trim", Func::Trim),
    ("TrimLeft", Func::TrimLeft),
    ("TrimRight", Func::TrimRight),
    ("TrimPrefix", Func::TrimPrefix),
    ("TrimSuffix", Func::TrimSuffix),
    ("TrimSpace", Func::TrimSpace),
    ("Hash", Func::Hash),
    ("Sha2Hash", Func::Sha2Hash),
    ("regexReplaceAll", Func::RegexReplaceAll),
    ("regexReplaceAllLiteral", Func::RegexReplaceAllLiteral),
    ("default", Func::Default),
    ("empty", Func::Empty),
    ("coalesce", Func::Coalesce),
    ("ternary", Func::Ternary),
    ("trunc", Func::Trunc),
    ("contains", Func::Contains),
    ("hasPrefix", Func::HasPrefix),
    ("hasSuffix", Func::HasSuffix),
    ("upper", Func::Upper),
    ("lower", Func::Lower),
    ("title", Func::Title),
    ("replace", Func::SprigReplace),
    ("quote", Func::Quote),
    ("squote", Func::Squote),
    ("b64enc", Func::B64enc),
    ("b64dec", Func::B64dec),
    ("toJson", Func::ToJson),
    ("toString", Func::ToString),
    ("trim", Func::SprigTrim),
    ("trimAll", Func::TrimAll),
    ("trimPrefix", Func::SprigTrimPrefix),
    ("trimSuffix", Func::SprigTrimSuffix),
    ("repeat", Func::Repeat),
    ("substr", Func::Substr),
    ("nospace", Func::Nospace),
    ("indent", Func::Indent),
    ("nindent", Func::Nindent),
    ("cat", Func::Cat),
    ("join", Func::Join),
    ("splitList", Func::SplitList),
    ("split", Func::Split),
    ("first", Func::First),
    ("last", Func::Last),
    ("list", Func::List),
    ("add", Func::Add),
    ("add1", Func::Add1),
    ("sub", Func::Sub),
    ("mul", Func::Mul),
    ("div", Func::Div),
    ("mod", Func::Mod),
    ("max", Func::Max),
    ("min", Func::Min),
    ("atoi", Func::Atoi),
    ("int", Func::Int),
    ("int64", Func::Int64),
    ("float64", Func::Float64),
    ("sha256sum", Func::Sha256sum),
    ("regexMatch", Func::RegexMatch),
    ("regexFind", Func::RegexFind),
];

impl Func {
    fn lookup(name: &str) -> Option<Func> {
        FUNCS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    fn name(self) -> &'static str {
        FUNCS
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }
}

/// The most bytes `repeat` and `indent` may produce.
const MAX_BUILT_STRING: usize = 16 << 20;

#[derive(Default)]
struct RegexCache {
    compiled: HashMap<String, Regex>,
}

impl RegexCache {
    /// Patterns are nearly always literals in the template, so a small cache holds them all;
    /// patterns built from log data could grow it without bound, so it is emptied when full.
    const CAPACITY: usize = 64;

    fn get(&mut self, pattern: &str) -> Result<&Regex, ExecError> {
        if !self.compiled.contains_key(pattern) {
            let re = crate::pipeline::goregex::compile(pattern)
                .map_err(|e| ExecError(format!("error parsing regexp: {e}")))?;
            if self.compiled.len() >= Self::CAPACITY {
                self.compiled.clear();
            }
            self.compiled.insert(pattern.to_string(), re);
        }
        self.compiled
            .get(pattern)
            .map_or_else(|| exec_err("regex cache lost a pattern"), Ok)
    }
}

fn want_args(f: Func, args: &[Value<'_>], n: usize) -> Result<(), ExecError> {
    if args.len() == n {
        Ok(())
    } else {
        exec_err(format!(
            "wrong number of args for {}: want {n} got {}",
            f.name(),
            args.len()
        ))
    }
}

fn want_at_least(f: Func, args: &[Value<'_>], n: usize) -> Result<(), ExecError> {
    if args.len() >= n {
        Ok(())
    } else {
        exec_err(format!(
            "wrong number of args for {}: want at least {n} got {}",
            f.name(),
            args.len()
        ))
    }
}

/// A `string` parameter: Go refuses anything but a string, and a missing value.
fn str_arg<'v>(v: &'v Value<'_>) -> Result<&'v str, ExecError> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Missing => exec_err("invalid value; expected string"),
        Value::Nil => exec_err("cannot assign nil to string"),
        other => exec_err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

/// An `int` parameter (an integral float literal is accepted, as Go accepts `3.0`).
fn int_arg(v: &Value<'_>) -> Result<i64, ExecError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(*f as i64),
        Value::Missing => exec_err("invalid value; expected int"),
        other => exec_err(format!(
            "wrong type for value; expected int; got {}",
            other.type_name()
        )),
    }
}

fn bool_arg(v: &Value<'_>) -> Result<bool, ExecError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Missing => exec_err("invalid value; expected bool"),
        other => exec_err(format!(
            "wrong type for value; expected bool; got {}",
            other.type_name()
        )),
    }
}

/// Sprig's `strval`: strings as they are, anything else as `%v`.
fn strval(v: &Value<'_>, data: &dyn TemplateData) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        other => sprint_v(other, data),
    }
}

/// spf13/cast's `ToInt64`, errors as 0 (Sprig ignores them): strings in Go's base-prefixed
/// syntax (`0x1f`, `017`, `1_000`) with a trailing `.0…` dropped.
fn to_int64(v: &Value<'_>) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => parse_go_int(trim_zero_decimal(s)).unwrap_or(0),
        _ => 0,
    }
}

fn trim_zero_decimal(s: &str) -> &str {
    match s.rfind('.') {
        Some(dot) if dot > 0 && s[dot + 1..].bytes().all(|b| b == b'0') => &s[..dot],
        _ => s,
    }
}

/// `strconv.ParseInt(s, 0, 64)`.
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (digits, radix, prefixed) = if let Some(h) = lower.strip_prefix("0x") {
        (h, 16, true)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (o, 8, true)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (b, 2, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8, true)
    } else {
        (lower.as_str(), 10, false)
    };
    // Underscores only between digits (or right after a base prefix), as Go allows.
    if digits.contains('_') {
        let b = digits.as_bytes();
        let ok = b.last() != Some(&b'_')
            && !digits.contains("__")
            && (prefixed || b.first() != Some(&b'_'));
        if !ok {
            return None;
        }
    }
    let clean = digits.replace('_', "");
    if clean.is_empty() || clean.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u64::from_str_radix(&clean, radix).ok()?;
    if neg {
        if magnitude <= i64::MAX as u64 + 1 {
            Some((magnitude as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

fn to_float64(v: &Value<'_>) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Go's simple per-rune case mapping (`strings.ToUpper`): a rune whose mapping is more than
/// one rune (`ß`) is left as it is.
fn map_case(s: &str, upper: bool) -> String {
    if s.is_ascii() {
        return if upper {
            s.to_ascii_uppercase()
        } else {
            s.to_ascii_lowercase()
        };
    }
    let single = |c: char, mut mapped: std::char::ToUppercase| match (mapped.next(), mapped.next())
    {
        (Some(m), None) => m,
        _ => c,
    };
    let single_lower =
        |c: char, mut mapped: std::char::ToLowercase| match (mapped.next(), mapped.next()) {
            (Some(m), None) => m,
            _ => c,
        };
    s.chars()
        .map(|c| {
            if upper {
                single(c, c.to_uppercase())
            } else {
                single_lower(c, c.to_lowercase())
            }
        })
        .collect()
}

/// `strings.Title`: the first letter of every word upper-cased.
fn title(s: &str) -> String {
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let separator = if prev.is_ascii() {
                !(prev.is_ascii_alphanumeric() || prev == '_')
            } else {
                !(prev.is_alphanumeric()) && prev.is_whitespace()
            };
            prev = c;
            if separator {
                let mut m = c.to_uppercase();
                match (m.next(), m.next()) {
                    (Some(u), None) => u,
                    _ => c,
                }
            } else {
                c
            }
        })
        .collect()
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn hex_lower(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn sprint(args: &[Value<'_>], data: &dyn TemplateData, always_space: bool) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &Value<'_>| matches!(v, Value::Str(_));
        if i > 0 && (always_space || !(is_str(a) || is_str(&args[i - 1]))) {
            out.push(' ');
        }
        fmt_v(a, data, &mut out);
    }
    if always_space {
        out.push('\n');
    }
    out
}

enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn kind(v: &Value<'_>) -> Kind {
    match v {
        Value::Missing | Value::Nil => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

/// Go's `eq arg1 arg2...`: true if `arg1` equals any of the others.
fn go_eq(a: &Value<'_>, others: &[Value<'_>]) -> Result<bool, ExecError> {
    if others.is_empty() {
        return exec_err("missing argument for comparison");
    }
    for b in others {
        let equal = match (a, b) {
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Float(x), Value::Float(y)) => x == y,
            (Value::Str(x), Value::Str(y)) => x == y,
            (x, y) => match (kind(x), kind(y)) {
                (Kind::Invalid, Kind::Invalid) => true,
                (Kind::Invalid, _) | (_, Kind::Invalid) => false,
                (Kind::Other, _) | (_, Kind::Other) => {
                    return exec_err("non-comparable types");
                }
                _ => return exec_err("incompatible types for comparison"),
            },
        };
        if equal {
            return Ok(true);
        }
    }
    Ok(false)
}

fn go_lt(a: &Value<'_>, b: &Value<'_>) -> Result<bool, ExecError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        (x, y) => match (kind(x), kind(y)) {
            (Kind::Int | Kind::Float | Kind::Str, Kind::Int | Kind::Float | Kind::Str) => {
                exec_err("incompatible types for comparison")
            }
            _ => exec_err("invalid type for comparison"),
        },
    }
}

fn index_of<'a>(
    item: Value<'a>,
    idx: &Value<'_>,
    data: &dyn TemplateData,
) -> Result<Value<'a>, ExecError> {
    match item {
        Value::List(mut l) => {
            let i = match idx {
                Value::Int(i) => *i,
                other => {
                    return exec_err(format!(
                        "cannot index slice/array with type {}",
                        other.type_name()
                    ));
                }
            };
            if i < 0 || i as usize >= l.len() {
                return exec_err(format!("index out of range: {i}"));
            }
            Ok(l.swap_remove(i as usize))
        }
        Value::Str(s) => {
            let i = match idx {
                Value::Int(i) => *i,
                other => {
                    return exec_err(format!(
                        "cannot index slice/array with type {}",
                        other.type_name()
                    ));
                }
            };
            match s.as_bytes().get(usize::try_from(i).unwrap_or(usize::MAX)) {
                Some(b) => Ok(Value::Int(i64::from(*b))),
                None => exec_err(format!("index out of range: {i}")),
            }
        }
        Value::Map(mut m) => match idx {
            // `split` makes a map[string]string: a missing key is its zero value.
            Value::Str(k) => Ok(m.remove(k.as_ref()).unwrap_or(Value::str(""))),
            other => exec_err(format!(
                "value has type {}; should be string",
                other.type_name()
            )),
        },
        Value::Root => match idx {
            Value::Str(k) => Ok(data
                .field(k)
                .map_or(Value::Nil, |s| Value::Str(Cow::Owned(s.into_owned())))),
            other => exec_err(format!(
                "value has type {}; should be string",
                other.type_name()
            )),
        },
        Value::Missing | Value::Nil => exec_err("index of untyped nil"),
        other => exec_err(format!("can't index item of type {}", other.type_name())),
    }
}

fn slice_bounds(len: usize, idx: &[Value<'_>]) -> Result<(usize, usize), ExecError> {
    if idx.len() > 2 {
        return exec_err("too many slice indexes");
    }
    let mut bounds = [0, len];
    for (i, v) in idx.iter().enumerate() {
        let n = int_arg(v)?;
        if n < 0 || n as usize > len {
            return exec_err(format!("index out of range: {n}"));
        }
        bounds[i] = n as usize;
    }
    if bounds[0] > bounds[1] {
        return exec_err(format!(
            "invalid slice index: {} > {}",
            bounds[0], bounds[1]
        ));
    }
    Ok((bounds[0], bounds[1]))
}

fn go_json(v: &Value<'_>, data: &dyn TemplateData, out: &mut String) -> Result<(), ()> {
    match v {
        Value::Missing | Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(());
            }
            let abs = f.abs();
            if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
                let mut e = String::new();
                let (digits, dp) = float_digits(*f, None);
                if *f < 0.0 {
                    e.push('-');
                }
                e.push_str(&digits[..1]);
                if digits.len() > 1 {
                    e.push('.');
                    e.push_str(&digits[1..]);
                }
                let exp = dp - 1;
                e.push('e');
                e.push(if exp < 0 { '-' } else { '+' });
                let _ = write!(e, "{}", exp.unsigned_abs());
                out.push_str(&e);
            } else {
                let _ = write!(out, "{f}");
            }
        }
        Value::Str(s) => write_json_string(s, JsonFlavor::EncodingJson, out),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(e, data, out)?;
            }
            out.push(']');
        }
        Value::Map(m) => go_json_map(m, data, out)?,
        Value::Root => go_json_map(&root_map(data), data, out)?,
    }
    Ok(())
}

fn go_json_map(
    m: &BTreeMap<String, Value<'_>>,
    data: &dyn TemplateData,
    out: &mut String,
) -> Result<(), ()> {
    out.push('{');
    for (i, (k, e)) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(k, JsonFlavor::EncodingJson, out);
        out.push(':');
        go_json(e, data, out)?;
    }
    out.push('}');
    Ok(())
}

/// Go's `base64.StdEncoding`: padding required, trailing bits and line breaks tolerated.
const GO_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Sprig's `b64dec`: the decoded text, or Go's error message as the result.
fn b64dec(s: &str) -> String {
    let cleaned: Cow<'_, str> = if s.contains(['\r', '\n']) {
        Cow::Owned(s.replace(['\r', '\n'], ""))
    } else {
        Cow::Borrowed(s)
    };
    match GO_BASE64.decode(cleaned.as_bytes()) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            let at = match e {
                base64::DecodeError::InvalidByte(i, _)
                | base64::DecodeError::InvalidLastSymbol(i, _) => i,
                base64::DecodeError::InvalidLength(len) => len / 4 * 4,
                base64::DecodeError::InvalidPadding => cleaned.trim_end_matches('=').len(),
            };
            format!("illegal base64 data at input byte {at}")
        }
    }
}

fn call_func<'a>(
    f: Func,
    mut args: Vec<Value<'a>>,
    data: &dyn TemplateData,
    regexes: &mut RegexCache,
) -> Result<Value<'a>, ExecError> {
    use Func as F;
    let s = |s: String| Ok(Value::Str(Cow::Owned(s)));
    match f {
        // The executor evaluates and/or lazily; they only get here through a bug.
        F::And | F::Or => exec_err("and/or must be evaluated lazily"),
        F::Not => {
            want_args(f, &args, 1)?;
            Ok(Value::Bool(!truth(&args[0], data)))
        }
        F::Len => {
            want_args(f, &args, 1)?;
            let n = match &args[0] {
                Value::Str(x) => x.len(),
                Value::List(l) => l.len(),
                Value::Map(m) => m.len(),
                Value::Root => data.entries().len(),
                Value::Missing | Value::Nil => return exec_err("len of nil pointer"),
                other => return exec_err(format!("len of type {}", other.type_name())),
            };
            Ok(Value::Int(n as i64))
        }
        F::Index => {
            want_at_least(f, &args, 1)?;
            let mut rest = args.split_off(1);
            let mut item = args.pop().unwrap_or(Value::Missing);
            for idx in rest.drain(..) {
                item = index_of(item, &idx, data)?;
            }
            Ok(item)
        }
        F::Slice => {
            want_at_least(f, &args, 1)?;
            let idx = args.split_off(1);
            match args.pop().unwrap_or(Value::Missing) {
                Value::Str(x) => {
                    let (a, b) = slice_bounds(x.len(), &idx)?;
                    match x.get(a..b) {
                        Some(part) => s(part.to_string()),
                        None => exec_err("slice splits a character"),
                    }
                }
                Value::List(l) => {
                    let (a, b) = slice_bounds(l.len(), &idx)?;
                    Ok(Value::List(l[a..b].to_vec()))
                }
                Value::Missing | Value::Nil => exec_err("slice of untyped nil"),
                other => exec_err(format!("can't slice item of type {}", other.type_name())),
            }
        }
        F::Print => s(sprint(&args, data, false)),
        F::Println => s(sprint(&args, data, true)),
        F::Printf => {
            want_at_least(f, &args, 1)?;
            let format = str_arg(&args[0])?;
            let mut out = String::new();
            sprintf(format, &args[1..], data, &mut out);
            s(out)
        }
        F::Eq => {
            want_at_least(f, &args, 1)?;
            Ok(Value::Bool(go_eq(&args[0], &args[1..])?))
        }
        F::Ne => {
            want_args(f, &args, 2)?;
            Ok(Value::Bool(!go_eq(&args[0], &args[1..])?))
        }
        F::Lt | F::Le | F::Gt | F::Ge => {
            want_args(f, &args, 2)?;
            let (a, b) = (&args[0], &args[1]);
            let r = match f {
                F::Lt => go_lt(a, b)?,
                F::Le => go_lt(a, b)? || go_eq(a, std::slice::from_ref(b))?,
                F::Gt => !go_lt(a, b)? && !go_eq(a, std::slice::from_ref(b))?,
                _ => !go_lt(a, b)?,
            };
            Ok(Value::Bool(r))
        }
        F::ToLower | F::Lower => {
            want_args(f, &args, 1)?;
            s(map_case(str_arg(&args[0])?, false))
        }
        F::ToUpper | F::Upper => {
            want_args(f, &args, 1)?;
            s(map_case(str_arg(&args[0])?, true))
        }
        F::Replace => {
            want_args(f, &args, 4)?;
            let (text, old, new) = (str_arg(&args[0])?, str_arg(&args[1])?, str_arg(&args[2])?);
            let n = int_arg(&args[3])?;
            s(match usize::try_from(n) {
                Ok(n) => text.replacen(old, new, n),
                Err(_) => text.replace(old, new),
            })
        }
        F::Trim | F::TrimLeft | F::TrimRight | F::TrimAll => {
            want_args(f, &args, 2)?;
            let (text, cutset) = if f == F::TrimAll {
                (str_arg(&args[1])?, str_arg(&args[0])?)
            } else {
                (str_arg(&args[0])?, str_arg(&args[1])?)
            };
            let cut = |c: char| cutset.contains(c);
            s(match f {
                F::TrimLeft => text.trim_start_matches(cut),
                F::TrimRight => text.trim_end_matches(cut),
                _ => text.trim_matches(cut),
            }
            .to_string())
        }
        F::TrimPrefix | F::TrimSuffix | F::SprigTrimPrefix | F::SprigTrimSuffix => {
            want_args(f, &args, 2)?;
            let (text, affix) = if matches!(f, F::TrimPrefix | F::TrimSuffix) {
                (str_arg(&args[0])?, str_arg(&args[1])?)
            } else {
                (str_arg(&args[1])?, str_arg(&args[0])?)
            };
            let r = if matches!(f, F::TrimPrefix | F::SprigTrimPrefix) {
                text.strip_prefix(affix)
            } else {
                text.strip_suffix(affix)
            };
            s(r.unwrap_or(text).to_string())
        }
        F::TrimSpace | F::SprigTrim => {
            want_args(f, &args, 1)?;
            s(str_arg(&args[0])?.trim().to_string())
        }
        F::Hash | F::Sha2Hash => {
            want_args(f, &args, 2)?;
            let (salt, input) = (str_arg(&args[0])?, str_arg(&args[1])?);
            let digest = if f == F::Hash {
                let mut h = sha3::Sha3_256::new();
                h.update(salt.as_bytes());
                h.update(input.as_bytes());
                hex_lower(&h.finalize())
            } else {
                let mut h = sha2::Sha256::new();
                h.update(salt.as_bytes());
                h.update(input.as_bytes());
                hex_lower(&h.finalize())
            };
            s(digest)
        }
        F::Sha256sum => {
            want_args(f, &args, 1)?;
            s(hex_lower(&sha2::Sha256::digest(
                str_arg(&args[0])?.as_bytes(),
            )))
        }
        F::RegexReplaceAll | F::RegexReplaceAllLiteral => {
            want_args(f, &args, 3)?;
            let (pattern, text, repl) =
                (str_arg(&args[0])?, str_arg(&args[1])?, str_arg(&args[2])?);
            let re = regexes.get(pattern)?;
            s(if f == F::RegexReplaceAll {
                re.replace_all(text, repl).into_owned()
            } else {
                re.replace_all(text, regex::NoExpand(repl)).into_owned()
            })
        }
        F::RegexMatch => {
            want_args(f, &args, 2)?;
            let (pattern, text) = (str_arg(&args[0])?, str_arg(&args[1])?);
            // Sprig ignores a bad pattern here and answers false.
            Ok(Value::Bool(
                regexes.get(pattern).is_ok_and(|re| re.is_match(text)),
            ))
        }
        F::RegexFind => {
            want_args(f, &args, 2)?;
            let (pattern, text) = (str_arg(&args[0])?, str_arg(&args[1])?);
            let found = regexes.get(pattern)?.find(text).map_or("", |m| m.as_str());
            s(found.to_string())
        }
        F::Default => {
            want_at_least(f, &args, 1)?;
            let given = args.get(1).filter(|g| truth(g, data)).cloned();
            Ok(given.unwrap_or_else(|| args.swap_remove(0)))
        }
        F::Empty => {
            want_args(f, &args, 1)?;
            Ok(Value::Bool(!truth(&args[0], data)))
        }
        F::Coalesce => Ok(args
            .into_iter()
            .find(|a| truth(a, data))
            .unwrap_or(Value::Nil)),
        F::Ternary => {
            want_args(f, &args, 3)?;
            let cond = bool_arg(&args[2])?;
            args.truncate(2);
            let vf = args.pop().unwrap_or(Value::Nil);
            let vt = args.pop().unwrap_or(Value::Nil);
            Ok(if cond { vt } else { vf })
        }
        F::Trunc => {
            want_args(f, &args, 2)?;
            let (n, text) = (int_arg(&args[0])?, str_arg(&args[1])?);
            let len = text.len() as i64;
            s(if n < 0 && len + n > 0 {
                let start = (len + n) as usize;
                let mut b = start;
                while !text.is_char_boundary(b) {
                    b += 1;
                }
                text[b..].to_string()
            } else if n >= 0 && len > n {
                text[..floor_boundary(text, n as usize)].to_string()
            } else {
                text.to_string()
            })
        }
        F::Contains | F::HasPrefix | F::HasSuffix => {
            want_args(f, &args, 2)?;
            let (needle, text) = (str_arg(&args[0])?, str_arg(&args[1])?);
            Ok(Value::Bool(match f {
                F::Contains => text.contains(needle),
                F::HasPrefix => text.starts_with(needle),
                _ => text.ends_with(needle),
            }))
        }
        F::Title => {
            want_args(f, &args, 1)?;
            s(title(str_arg(&args[0])?))
        }
        F::SprigReplace => {
            want_args(f, &args, 3)?;
            let (old, new, text) = (str_arg(&args[0])?, str_arg(&args[1])?, str_arg(&args[2])?);
            s(text.replace(old, new))
        }
        F::Quote | F::Squote => {
            let mut out = String::new();
            for a in args
                .iter()
                .filter(|a| !matches!(a, Value::Missing | Value::Nil))
            {
                if !out.is_empty() {
                    out.push(' ');
                }
                let text = strval(a, data);
                if f == F::Quote {
                    quote_go_into(&text, &mut out);
                } else {
                    out.push('\'');
                    out.push_str(&text);
                    out.push('\'');
                }
            }
            s(out)
        }
        F::B64enc => {
            want_args(f, &args, 1)?;
            s(GO_BASE64.encode(str_arg(&args[0])?.as_bytes()))
        }
        F::B64dec => {
            want_args(f, &args, 1)?;
            s(b64dec(str_arg(&args[0])?))
        }
        F::ToJson => {
            want_args(f, &args, 1)?;
            let mut out = String::new();
            // Sprig drops the marshalling error and returns an empty string.
            if go_json(&args[0], data, &mut out).is_err() {
                out.clear();
            }
            s(out)
        }
        F::ToString => {
            want_args(f, &args, 1)?;
            s(strval(&args[0], data))
        }
        F::Repeat => {
            want_args(f, &args, 2)?;
            let (n, text) = (int_arg(&args[0])?, str_arg(&args[1])?);
            let Ok(n) = usize::try_from(n) else {
                return exec_err("strings: negative Repeat count");
            };
            if text.len().saturating_mul(n) > MAX_BUILT_STRING {
                return exec_err("repeat result too large");
            }
            s(text.repeat(n))
        }
        F::Substr => {
            want_args(f, &args, 3)?;
            let (start, end, text) = (int_arg(&args[0])?, int_arg(&args[1])?, str_arg(&args[2])?);
            let len = text.len() as i64;
            let range = if start < 0 {
                0..end
            } else if end < 0 || end > len {
                start..len
            } else {
                start..end
            };
            let part = usize::try_from(range.start)
                .ok()
                .zip(usize::try_from(range.end).ok())
                .and_then(|(a, b)| text.get(a..b));
            match part {
                Some(p) => s(p.to_string()),
                None => exec_err(format!(
                    "slice bounds out of range [{}:{}]",
                    range.start, range.end
                )),
            }
        }
        F::Nospace => {
            want_args(f, &args, 1)?;
            s(str_arg(&args[0])?
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect())
        }
        F::Indent | F::Nindent => {
            want_args(f, &args, 2)?;
            let (n, text) = (int_arg(&args[0])?, str_arg(&args[1])?);
            let Ok(n) = usize::try_from(n) else {
                return exec_err("strings: negative Repeat count");
            };
            let lines = text.matches('\n').count() + 1;
            if n.saturating_mul(lines).saturating_add(text.len()) > MAX_BUILT_STRING {
                return exec_err("indent result too large");
            }
            let pad = " ".repeat(n);
            let mut out = String::new();
            if f == F::Nindent {
                out.push('\n');
            }
            out.push_str(&pad);
            out.push_str(&text.replace('\n', &format!("\n{pad}")));
            s(out)
        }
        F::Cat => {
            let parts: Vec<String> = args
                .iter()
                .filter(|a| !matches!(a, Value::Missing | Value::Nil))
                .map(|a| sprint_v(a, data))
                .collect();
            s(parts.join(" "))
        }
        F::Join => {
            want_args(f, &args, 2)?;
            let sep = str_arg(&args[0])?;
            let parts: Vec<String> = match &args[1] {
                Value::List(l) => l
                    .iter()
                    .filter(|a| !matches!(a, Value::Missing | Value::Nil))
                    .map(|a| strval(a, data))
                    .collect(),
                Value::Missing | Value::Nil => Vec::new(),
                other => vec![strval(other, data)],
            };
            s(parts.join(sep))
        }
        F::SplitList | F::Split => {
            want_args(f, &args, 2)?;
            let (sep, text) = (str_arg(&args[0])?, str_arg(&args[1])?);
            let parts: Vec<String> = if sep.is_empty() {
                text.chars().map(String::from).collect()
            } else {
                text.split(sep).map(str::to_string).collect()
            };
            Ok(if f == F::SplitList {
                Value::List(parts.into_iter().map(Value::str).collect())
            } else {
                Value::Map(
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| (format!("_{i}"), Value::str(p)))
                        .collect(),
                )
            })
        }
        F::First | F::Last => {
            want_args(f, &args, 1)?;
            match args.pop().unwrap_or(Value::Missing) {
                Value::List(mut l) => Ok(if l.is_empty() {
                    Value::Nil
                } else if f == F::First {
                    l.swap_remove(0)
                } else {
                    l.pop().unwrap_or(Value::Nil)
                }),
                other => exec_err(format!(
                    "Cannot find {} on type {}",
                    f.name(),
                    other.type_name()
                )),
            }
        }
        F::List => Ok(Value::List(args)),
        F::Add => Ok(Value::Int(
            args.iter().map(to_int64).fold(0, i64::wrapping_add),
        )),
        F::Add1 => {
            want_args(f, &args, 1)?;
            Ok(Value::Int(to_int64(&args[0]).wrapping_add(1)))
        }
        F::Sub => {
            want_args(f, &args, 2)?;
            Ok(Value::Int(
                to_int64(&args[0]).wrapping_sub(to_int64(&args[1])),
            ))
        }
        F::Mul => {
            want_at_least(f, &args, 1)?;
            Ok(Value::Int(
                args.iter().map(to_int64).fold(1, i64::wrapping_mul),
            ))
        }
        F::Div | F::Mod => {
            want_args(f, &args, 2)?;
            let (a, b) = (to_int64(&args[0]), to_int64(&args[1]));
            if b == 0 {
                return exec_err("runtime error: integer divide by zero");
            }
            Ok(Value::Int(if f == F::Div {
                a.wrapping_div(b)
            } else {
                a.wrapping_rem(b)
            }))
        }
        F::Max | F::Min => {
            want_at_least(f, &args, 1)?;
            let values = args.iter().map(to_int64);
            Ok(Value::Int(if f == F::Max {
                values.max().unwrap_or(0)
            } else {
                values.min().unwrap_or(0)
            }))
        }
        F::Atoi => {
            want_args(f, &args, 1)?;
            let text = str_arg(&args[0])?;
            let valid = text
                .strip_prefix(['+', '-'])
                .unwrap_or(text)
                .bytes()
                .all(|b| b.is_ascii_digit());
            Ok(Value::Int(if valid {
                text.parse().unwrap_or(0)
            } else {
                0
            }))
        }
        F::Int | F::Int64 => {
            want_args(f, &args, 1)?;
            Ok(Value::Int(to_int64(&args[0])))
        }
        F::Float64 => {
            want_args(f, &args, 1)?;
            Ok(Value::Float(to_float64(&args[0])))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Map(Vec<(&'static str, &'static str)>);

    impl TemplateData for Map {
        fn field(&self, name: &str) -> Option<Cow<'_, str>> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| Cow::Borrowed(*v))
        }
        fn entries(&self) -> Vec<(String, String)> {
            self.0
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }
    }

    fn render(template: &str, data: &[(&'static str, &'static str)]) -> Result<String, String> {
        let mut t = Template::parse(template).map_err(|e| format!("parse: {e}"))?;
        let mut out = String::new();
        t.execute(&Map(data.to_vec()), &mut out)
            .map_err(|e| format!("exec: {e}"))?;
        Ok(out)
    }

    fn ok(template: &str, data: &[(&'static str, &'static str)]) -> String {
        match render(template, data) {
            Ok(s) => s,
            Err(e) => panic!("{template}: {e}"),
        }
    }

    #[test]
    fn text_fields_and_pipelines() {
        let d = [("Value", "loki"), ("level", "warn")];
        assert_eq!(ok("{{ .Value | ToUpper }} doki", &d), "LOKI doki");
        assert_eq!(ok("{{ ToLower \"ABC\" }}", &d), "abc");
        assert_eq!(
            ok("{{.Value}} in module {{.module}}", &d),
            "loki in module <no value>"
        );
        assert_eq!(ok("plain text", &d), "plain text");
    }

    #[test]
    fn promtail_documented_examples() {
        let d = [("Value", "WARN")];
        let t = r#"{{ if eq .Value "WARN" }}{{ Replace .Value "WARN" "OK" -1 }}{{ else }}{{ .Value }}{{ end }}"#;
        assert_eq!(ok(t, &d), "OK");
        assert_eq!(ok(t, &[("Value", "INFO")]), "INFO");
        let d = [("Value", "Some Silly Value With Lots Of Spaces")];
        assert_eq!(
            ok(r#"{{ Replace .Value " " "_" -1 | ToLower }}"#, &d),
            "some_silly_value_with_lots_of_spaces"
        );
        assert_eq!(
            ok(r#"{{ regexReplaceAll "(Silly)" .Value "${1}foo" }}"#, &d),
            "Some Sillyfoo Value With Lots Of Spaces"
        );
        assert_eq!(
            ok(r#"{{ regexReplaceAll "( |Of)" .Value "_" }}"#, &d),
            "Some_Silly_Value_With_Lots___Spaces"
        );
        assert_eq!(
            ok(r#"{{ Trim .Value "!" }}"#, &[("Value", "!!!WOO!!")]),
            "WOO"
        );
        assert_eq!(ok("{{ add 7 3 }}", &[]), "10");
    }

    #[test]
    fn hashes_are_hex_of_salt_then_input() {
        // sha256("this is PII datasalt") and sha3-256 of the same, computed independently.
        let d = [("Value", "this is PII data")];
        assert_eq!(
            ok(r#"{{ Sha2Hash .Value "salt" }}"#, &d),
            "5526fd6f8ad457279cf8ff06453c6cb61bf479fa826e3b099caa6c846f9376f2"
        );
        assert_eq!(
            ok(r#"{{ Hash .Value "salt" }}"#, &d),
            "0807ea24e992127128b38e4930f7155013786a4999c73a25910318a793847658"
        );
        assert_eq!(
            ok(r#"{{ sha256sum "abc" }}"#, &[]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn case_mapping_is_per_rune_as_in_go() {
        assert_eq!(
            ok(r#"{{ ToUpper "straße àé" }}|{{ ToLower "ÀÉ Ü" }}"#, &[]),
            "STRAßE ÀÉ|àé ü"
        );
    }

    #[test]
    fn missing_value_is_an_error_for_string_functions() {
        assert!(
            render("{{ .Value | ToLower }}", &[])
                .unwrap_err()
                .starts_with("exec")
        );
        assert!(
            render("{{ ToUpper 5 }}", &[])
                .unwrap_err()
                .contains("expected string")
        );
    }

    #[test]
    fn invalid_regex_in_function_is_an_execution_error() {
        let e = render(
            r#"{{ regexReplaceAll "\\K" .Value "x" }}"#,
            &[("Value", "a")],
        )
        .unwrap_err();
        assert!(e.starts_with("exec"), "{e}");
        assert_eq!(ok(r#"{{ regexMatch "(" "a" }}"#, &[]), "false");
    }

    #[test]
    fn control_structures() {
        let d = [("a", "1"), ("b", "")];
        assert_eq!(
            ok("{{ if .b }}B{{ else if .a }}A{{ else }}N{{ end }}", &d),
            "A"
        );
        assert_eq!(ok("{{ if .missing }}M{{ end }}", &d), "");
        assert_eq!(
            ok("{{ with .a }}[{{ . }}]{{ else }}none{{ end }}", &d),
            "[1]"
        );
        assert_eq!(
            ok(
                "{{ with .b }}[{{ . }}]{{ else with .a }}<{{.}}>{{ end }}",
                &d
            ),
            "<1>"
        );
        assert_eq!(
            ok(
                r#"{{ range $i, $e := splitList "," "x,y,z" }}{{ $i }}={{ $e }};{{ end }}"#,
                &d
            ),
            "0=x;1=y;2=z;"
        );
        assert_eq!(
            ok(
                r#"{{ range splitList "," "x,y,z" }}{{ if eq . "y" }}{{ break }}{{ end }}{{ . }}{{ end }}"#,
                &d
            ),
            "x"
        );
        assert_eq!(
            ok(
                r#"{{ range splitList "," "x,y,z" }}{{ if eq . "y" }}{{ continue }}{{ end }}{{ . }}{{ end }}"#,
                &d
            ),
            "xz"
        );
        assert_eq!(
            ok("{{ range .missing }}x{{ else }}empty{{ end }}", &d),
            "empty"
        );
        assert_eq!(
            ok("{{ range $k, $v := . }}{{ $k }}:{{ $v }},{{ end }}", &d),
            "a:1,b:,"
        );
        assert_eq!(ok("{{ range 3 }}{{ . }}{{ end }}", &d), "012");
        assert_eq!(
            ok(
                "{{ $e := 0 }}{{ range $e = splitList \",\" \"p,q\" }}{{ end }}{{ $e }}",
                &d
            ),
            "q"
        );
        assert_eq!(ok("{{ range 0 }}x{{ else }}none{{ end }}", &d), "none");
    }

    #[test]
    fn variables_declare_assign_and_scope() {
        assert_eq!(
            ok("{{ $x := \"a\" }}{{ $x }}{{ $x = \"b\" }}{{ $x }}", &[]),
            "ab"
        );
        assert_eq!(
            ok(
                "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
                &[]
            ),
            "2"
        );
        assert_eq!(
            ok("{{ $.a }}{{ with .a }}{{ $.a }}{{ end }}", &[("a", "v")]),
            "vv"
        );
        let e = Template::parse("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}").unwrap_err();
        assert!(e.to_string().contains("undefined variable"), "{e}");
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(ok("a  {{- \"b\" -}}  c", &[]), "abc");
        assert_eq!(ok("a {{/* note */}} b", &[]), "a  b");
        assert_eq!(ok("a {{- /* note */ -}} b", &[]), "ab");
        assert_eq!(ok("{{ -3 }}", &[]), "-3");
    }

    #[test]
    fn literals_print_as_go_constants() {
        assert_eq!(
            ok(
                "{{ 1.5 }} {{ 0x10 }} {{ 'a' }} {{ true }} {{ 1e6 }} {{ 100000.0 }}",
                &[]
            ),
            "1.5 16 97 true 1e+06 100000"
        );
        assert_eq!(
            ok(r#"{{ "a\tb\u00e9" }}|{{ `raw\n` }}"#, &[]),
            "a\tbé|raw\\n"
        );
    }

    #[test]
    fn comparisons_follow_go_rules() {
        let d = [("n", "5")];
        assert_eq!(
            ok(r#"{{ eq .n "5" }} {{ eq .n "1" "5" }} {{ ne .n "5" }}"#, &d),
            "true true false"
        );
        assert_eq!(
            ok(
                r#"{{ lt 1 2 }} {{ ge "b" "a" }} {{ le 2 2 }} {{ gt 1.5 2.5 }}"#,
                &d
            ),
            "true true true false"
        );
        assert_eq!(ok(r#"{{ eq .missing "x" }}"#, &d), "false");
        assert!(
            render(r#"{{ eq 1 "1" }}"#, &d)
                .unwrap_err()
                .contains("incompatible")
        );
        assert!(render(r#"{{ lt .missing 1 }}"#, &d).is_err());
    }

    #[test]
    fn and_or_return_the_deciding_value_and_short_circuit() {
        let d = [("a", "x"), ("b", "")];
        assert_eq!(
            ok("{{ and .a .b }}|{{ or .b .a }}|{{ or .b .missing }}", &d),
            "|x|<no value>"
        );
        // The failing call after a deciding `or` argument is never made.
        assert_eq!(ok("{{ or .a (ToUpper .missing) }}", &d), "x");
        assert_eq!(ok("{{ not .b }}", &d), "true");
    }

    #[test]
    fn printf_verbs_flags_and_errors() {
        let d = [("s", "hi")];
        assert_eq!(
            ok(r#"{{ printf "%s-%d-%q" .s 42 .s }}"#, &d),
            "hi-42-\"hi\""
        );
        assert_eq!(
            ok(
                r#"{{ printf "%5s|%-5s|%05d|%x|%X|%o|%b" "a" "b" -42 255 255 8 5 }}"#,
                &d
            ),
            "    a|b    |-0042|ff|FF|10|101"
        );
        assert_eq!(
            ok(
                r#"{{ printf "%.2f|%e|%g|%v|%8.3f" 3.14159 1234.5678 0.000012 2.5 2.0 }}"#,
                &d
            ),
            "3.14|1.234568e+03|1.2e-05|2.5|   2.000"
        );
        assert_eq!(
            ok(r#"{{ printf "%d %s" "x" }}"#, &d),
            "%!d(string=x) %!s(MISSING)"
        );
        assert_eq!(
            ok(r#"{{ printf "%s" "a" "b" }}"#, &d),
            "a%!(EXTRA string=b)"
        );
        assert_eq!(
            ok(
                r#"{{ printf "%v %c %U %t %%" (list 1 "a") 65 65 true }}"#,
                &d
            ),
            "[1 a] A U+0041 true %"
        );
        assert_eq!(ok(r#"{{ .s | printf "<%s>" }}"#, &d), "<hi>");
    }

    #[test]
    fn builtin_len_index_slice_print() {
        let d = [("s", "héllo")];
        assert_eq!(
            ok(
                r#"{{ len .s }} {{ index .s 0 }} {{ slice .s 3 }} {{ index (list "a" "b") 1 }}"#,
                &d
            ),
            "6 104 llo b"
        );
        assert_eq!(
            ok(r#"{{ print "a" "b" 1 2 "c" }}|{{ println 1 "x" }}"#, &d),
            "ab1 2c|1 x\n"
        );
        assert_eq!(ok(r#"{{ index . "s" }}"#, &d), "héllo");
        assert!(render(r#"{{ index (list 1) 5 }}"#, &d).is_err());
    }

    #[test]
    fn sprig_string_functions() {
        let d = [("v", "Hello World")];
        assert_eq!(
            ok(
                r#"{{ .v | upper }} {{ .v | lower }} {{ "hello world" | title }}"#,
                &d
            ),
            "HELLO WORLD hello world Hello World"
        );
        assert_eq!(
            ok(
                r#"{{ trunc 5 .v }}|{{ trunc -5 .v }}|{{ trunc 50 .v }}"#,
                &d
            ),
            "Hello|World|Hello World"
        );
        assert_eq!(
            ok(
                r#"{{ contains "lo W" .v }} {{ hasPrefix "He" .v }} {{ hasSuffix "x" .v }}"#,
                &d
            ),
            "true true false"
        );
        assert_eq!(ok(r#"{{ .v | replace "World" "Loki" }}"#, &d), "Hello Loki");
        assert_eq!(
            ok(
                r#"{{ quote .v "a\"b" }}|{{ squote .v }}|{{ quote .missing }}"#,
                &d
            ),
            "\"Hello World\" \"a\\\"b\"|'Hello World'|"
        );
        assert_eq!(
            ok(
                r#"{{ .v | b64enc }}|{{ "SGVsbG8gV29ybGQ=" | b64dec }}|{{ "!!" | b64dec }}"#,
                &d
            ),
            "SGVsbG8gV29ybGQ=|Hello World|illegal base64 data at input byte 0"
        );
        assert_eq!(
            ok(
                r#"{{ "  x y  " | trim }}|{{ trimAll "-" "--a--" }}|{{ trimPrefix "He" .v }}|{{ trimSuffix "ld" .v }}"#,
                &d
            ),
            "x y|a|llo World|Hello Wor"
        );
        assert_eq!(
            ok(
                r#"{{ repeat 3 "ab" }}|{{ substr 0 5 .v }}|{{ substr 6 -1 .v }}|{{ nospace .v }}"#,
                &d
            ),
            "ababab|Hello|World|HelloWorld"
        );
        assert_eq!(
            ok(r#"{{ indent 2 "a\nb" }}|{{ nindent 1 "c" }}"#, &d),
            "  a\n  b|\n c"
        );
        assert_eq!(
            ok(
                r#"{{ cat "a" 1 .missing "b" }}|{{ splitList "," "a,b" | join "-" }}|{{ (split "," "a,b")._1 }}"#,
                &d
            ),
            "a 1 b|a-b|b"
        );
        assert_eq!(
            ok(
                r#"{{ toJson .v }}|{{ toJson (list 1 "<x>" true) }}|{{ toString 12 }}"#,
                &d
            ),
            "\"Hello World\"|[1,\"\\u003cx\\u003e\",true]|12"
        );
        assert_eq!(
            ok(
                r#"{{ first (splitList "," "a,b") }}{{ last (splitList "," "a,b") }}"#,
                &d
            ),
            "ab"
        );
        assert!(render(r#"{{ first "ab" }}"#, &d).is_err());
    }

    #[test]
    fn sprig_defaults_and_math() {
        let d = [("e", ""), ("n", "7")];
        assert_eq!(
            ok(
                r#"{{ .missing | default "d" }}|{{ .e | default "d" }}|{{ .n | default "d" }}"#,
                &d
            ),
            "d|d|7"
        );
        assert_eq!(
            ok(
                r#"{{ empty .e }} {{ coalesce .e .missing .n }} {{ ternary "y" "n" true }}"#,
                &d
            ),
            "true 7 y"
        );
        assert_eq!(
            ok(
                r#"{{ add .n 1 "2" }} {{ sub 10 .n }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ mod 7 2 }} {{ add1 .n }}"#,
                &d
            ),
            "10 3 24 3 1 8"
        );
        assert_eq!(
            ok(
                r#"{{ max 1 9 3 }} {{ min 4 2 }} {{ atoi "42" }} {{ atoi "x" }} {{ int "0x10" }} {{ int "5.0" }} {{ float64 "1.5" }}"#,
                &d
            ),
            "9 2 42 0 16 5 1.5"
        );
        assert!(render("{{ div 1 0 }}", &d).is_err());
    }

    #[test]
    fn deep_nesting_is_a_parse_error_not_a_crash() {
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(10_000), ")".repeat(10_000));
        let e = Template::parse(&deep).unwrap_err();
        assert!(e.to_string().contains("nests more than"), "{e}");
        let ok_depth = format!("{{{{ {}1{} }}}}", "(".repeat(90), ")".repeat(90));
        assert_eq!(ok(&ok_depth, &[]), "1");
        let ifs = format!("{}x{}", "{{ if 1 }}".repeat(90), "{{ end }}".repeat(90));
        assert_eq!(ok(&ifs, &[]), "x");
    }

    #[test]
    fn parse_errors_are_reported() {
        for bad in [
            "{{ nosuchfunc }}",
            "{{ if .a }}x",
            "{{ end }}",
            "{{ .a",
            "{{ $undefined }}",
            "{{ define \"x\" }}{{ end }}",
            "{{ break }}",
            "{{ .a | \"lit\" }}",
            "{{ \"unterminated }}",
            "{{ ( .a }}",
            "{{ }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn execution_errors_are_reported() {
        for bad in [
            "{{ .a.b }}",
            "{{ nil }}",
            "{{ .a 1 }}",
            "{{ len 3 }}",
            "{{ range .a }}{{ end }}",
            "{{ repeat -1 \"x\" }}",
        ] {
            assert!(render(bad, &[("a", "str")]).is_err(), "{bad} executed");
        }
    }

    #[test]
    fn root_prints_and_serialises_as_a_sorted_map() {
        let d = [("b", "2"), ("a", "1")];
        assert_eq!(
            ok("{{ . }}|{{ toJson . }}|{{ len . }}", &d),
            "map[a:1 b:2]|{\"a\":\"1\",\"b\":\"2\"}|2"
        );
    }

    #[test]
    fn regex_cache_reuses_compiled_patterns() {
        let mut t = Template::parse(r#"{{ regexReplaceAll "[0-9]+" .Value "N" }}"#).unwrap();
        for line in ["a1", "b22"] {
            let data = Map(vec![("Value", line)]);
            let mut out = String::new();
            t.execute(&data, &mut out).unwrap();
            assert!(out.ends_with('N'));
        }
        assert_eq!(t.regexes.compiled.len(), 1);
    }
}
