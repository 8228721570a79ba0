//! `json`: JMESPath expressions over a JSON line (or the extracted `source`) into the extracted map.
//!
//! Owns Promtail's json stage semantics: the input must be a JSON object as Promtail's decoder
//! (json-iterator) accepts it, numbers are float64, strings, numbers, booleans and null are
//! stored as values and objects and arrays as their compact JSON text, marshalled the way Go
//! does. Expressions that are plain field paths (`level`, `a.b`, `"key.with.dots"`) are answered
//! in one pass over the text without building a document; any other JMESPath goes through the
//! `jmespath` crate on a document built per line. Both give the same results.
//! It must not touch labels, the line or the timestamp, and it does not log per line.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;

use jmespath::ast::Ast;
use jmespath::{Context, DEFAULT_RUNTIME, Expression, Rcvar, Variable};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use super::StageError;
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonConfig {
    /// Extracted key -> JMESPath expression; an empty or null expression means the key itself.
    pub expressions: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default)]
    pub drop_malformed: bool,
}

/// Built once per config; reuses its result buffer from line to line.
pub struct JsonStage {
    /// The extracted key of each expression, in config order.
    keys: Vec<String>,
    evaluator: Evaluator,
    source: Option<String>,
    drop_malformed: bool,
    /// One result per expression, reused from line to line. `None` leaves the key untouched.
    results: Vec<Option<Value>>,
}

enum Evaluator {
    /// Every expression is a plain field path.
    Paths(PathTree),
    /// The JMESPath source of each expression.
    Jmespath(Vec<String>),
}

impl JsonStage {
    pub fn new(cfg: &JsonConfig) -> Result<Self, StageError> {
        Self::build(cfg, true)
    }

    /// `field_paths` false sends every expression through the `jmespath` crate, so tests can
    /// compare both evaluators on the same input.
    fn build(cfg: &JsonConfig, field_paths: bool) -> Result<Self, StageError> {
        if cfg.expressions.is_empty() {
            return Err(StageError::new(
                "expressions",
                "JMES expression is required: expected at least one `key: expression` pair",
            ));
        }
        if matches!(cfg.source.as_deref(), Some("")) {
            return Err(StageError::new(
                "source",
                "empty source: expected the name of an extracted value",
            ));
        }
        let mut keys = Vec::with_capacity(cfg.expressions.len());
        let mut sources = Vec::with_capacity(cfg.expressions.len());
        let mut paths = Some(Vec::with_capacity(cfg.expressions.len()));
        for (key, expression) in &cfg.expressions {
            let source = match expression.as_deref() {
                None | Some("") => key.as_str(),
                Some(e) => e,
            };
            let compiled = jmespath::compile(source).map_err(|e| {
                StageError::new(
                    format!("expressions.{key}"),
                    format!(
                        "could not compile JMES expression `{source}`: {} at column {}",
                        e.reason, e.column
                    ),
                )
            })?;
            let mut path = Vec::new();
            paths = match paths {
                Some(mut all) if field_path(compiled.as_ast(), &mut path) => {
                    all.push(path);
                    Some(all)
                }
                _ => None,
            };
            keys.push(key.clone());
            sources.push(source.to_string());
        }
        let evaluator = match paths {
            Some(paths) if field_paths => Evaluator::Paths(PathTree::new(&paths)),
            _ => Evaluator::Jmespath(sources),
        };
        Ok(Self {
            results: vec![None; keys.len()],
            keys,
            evaluator,
            source: cfg.source.clone(),
            drop_malformed: cfg.drop_malformed,
        })
    }
}

impl Stage for JsonStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let parsed = {
            let input = match &self.source {
                None => Cow::Borrowed(entry.line.as_str()),
                // A missing source, or one with no string form, leaves the entry unchanged.
                Some(key) => match entry.extracted.get(key).and_then(value_as_string) {
                    Some(v) => v,
                    None => return Verdict::Keep,
                },
            };
            match &self.evaluator {
                Evaluator::Paths(tree) => tree.evaluate(&input, &mut self.results),
                Evaluator::Jmespath(sources) => {
                    evaluate_jmespath(sources, &input, &mut self.results)
                }
            }
        };
        if parsed.is_err() {
            // Promtail drops without counting; every drop is counted here.
            return if self.drop_malformed {
                Verdict::Drop {
                    reason: "json_malformed".into(),
                }
            } else {
                Verdict::Keep
            };
        }
        for (key, result) in self.keys.iter().zip(self.results.iter_mut()) {
            if let Some(value) = result.take() {
                entry.extracted.insert(key.clone(), value);
            }
        }
        Verdict::Keep
    }
}

/// The field names of `ast` if it is a plain field path such as `a."b.c".d`.
fn field_path(ast: &Ast, out: &mut Vec<String>) -> bool {
    match ast {
        Ast::Field { name, .. } => {
            out.push(name.clone());
            true
        }
        Ast::Subexpr { lhs, rhs, .. } => field_path(lhs, out) && field_path(rhs, out),
        _ => false,
    }
}

/// Field paths merged by prefix, so each object on the way is read once.
struct PathTree {
    /// `nodes[0]` is the input object itself.
    nodes: Vec<PathNode>,
}

struct PathNode {
    name: String,
    children: Vec<usize>,
    /// Expressions whose path ends here.
    ends: Vec<usize>,
    /// Expressions whose path ends here or below: reset when the key appears again, since the
    /// last occurrence of a key wins in Go's map.
    covered: Vec<usize>,
}

impl PathTree {
    fn new(paths: &[Vec<String>]) -> Self {
        let mut nodes = vec![PathNode {
            name: String::new(),
            children: Vec::new(),
            ends: Vec::new(),
            covered: Vec::new(),
        }];
        for (expr, path) in paths.iter().enumerate() {
            let mut at = 0;
            for name in path {
                let found = nodes[at]
                    .children
                    .iter()
                    .copied()
                    .find(|&c| nodes[c].name == *name);
                at = match found {
                    Some(child) => child,
                    None => {
                        nodes.push(PathNode {
                            name: name.clone(),
                            children: Vec::new(),
                            ends: Vec::new(),
                            covered: Vec::new(),
                        });
                        let child = nodes.len() - 1;
                        nodes[at].children.push(child);
                        child
                    }
                };
                nodes[at].covered.push(expr);
            }
            nodes[at].ends.push(expr);
        }
        Self { nodes }
    }

    fn evaluate(&self, text: &str, results: &mut [Option<Value>]) -> Parsed<()> {
        // A path that is not there gives null, which Promtail stores.
        for r in results.iter_mut() {
            *r = Some(Value::Null);
        }
        parse_document(text, |c, key| self.member(0, c, key, 1, results))
    }

    /// Reads the value of member `key` of an object matched by `node`.
    fn member<'a>(
        &self,
        node: usize,
        c: &mut Cursor<'a>,
        key: JsonStr<'a>,
        depth: usize,
        results: &mut [Option<Value>],
    ) -> Parsed<()> {
        let children = &self.nodes[node].children;
        let decoded;
        let wanted = if key.escaped {
            decoded = key.decode();
            decoded.as_bytes()
        } else {
            key.raw.as_bytes()
        };
        // Most keys of a line are not wanted: the first byte rules them out cheaply.
        let child = children.iter().copied().find(|&i| {
            let candidate = self.nodes[i].name.as_bytes();
            candidate.first() == wanted.first() && candidate == wanted
        });
        match child {
            Some(child) => self.value(child, c, depth, results),
            None => c.skip_value(depth),
        }
    }

    fn value(
        &self,
        node: usize,
        c: &mut Cursor<'_>,
        depth: usize,
        results: &mut [Option<Value>],
    ) -> Parsed<()> {
        let here = &self.nodes[node];
        for &e in &here.covered {
            results[e] = Some(Value::Null);
        }
        if here.children.is_empty() {
            let value = c.extracted_value(depth)?;
            assign(&here.ends, value, results);
            return Ok(());
        }
        let start = c.pos;
        if c.next_token()? == b'{' {
            c.members(depth + 1, |c, key| {
                self.member(node, c, key, depth + 1, results)
            })?;
        } else {
            c.skip_value(depth)?;
        }
        if !here.ends.is_empty() {
            let value = Cursor::at(c.text, start).extracted_value(depth)?;
            assign(&here.ends, value, results);
        }
        Ok(())
    }
}

fn assign(exprs: &[usize], value: Value, results: &mut [Option<Value>]) {
    if let Some((&last, rest)) = exprs.split_last() {
        for &e in rest {
            results[e] = Some(value.clone());
        }
        results[last] = Some(value);
    }
}

thread_local! {
    /// Compiled expressions by source. `jmespath::Expression` holds `Rc`s (the crate's `sync`
    /// feature is off), so it cannot live in a stage that moves between threads; each thread
    /// compiles an expression once instead.
    static COMPILED: RefCell<HashMap<String, Rc<Expression<'static>>>> =
        RefCell::new(HashMap::new());
}

fn compiled(source: &str) -> Option<Rc<Expression<'static>>> {
    COMPILED.with(|cache| {
        let cached = cache.borrow().get(source).cloned();
        if cached.is_some() {
            return cached;
        }
        let expression = Rc::new(jmespath::compile(source).ok()?);
        cache
            .borrow_mut()
            .insert(source.to_string(), Rc::clone(&expression));
        Some(expression)
    })
}

fn evaluate_jmespath(sources: &[String], text: &str, results: &mut [Option<Value>]) -> Parsed<()> {
    let mut object = BTreeMap::new();
    parse_document(text, |c, key| {
        let value = c.variable(1)?;
        object.insert(key.decode().into_owned(), Rcvar::new(value));
        Ok(())
    })?;
    let document = Rcvar::new(Variable::Object(object));
    for (source, result) in sources.iter().zip(results.iter_mut()) {
        // A failed search (e.g. a function given the wrong type) leaves the key unset, as in
        // Promtail. `interpret`, because `Expression::search` would first deep-copy the
        // document through serde.
        *result = compiled(source).and_then(|e| {
            let mut context = Context::new(e.as_str(), &DEFAULT_RUNTIME);
            jmespath::interpret(&document, e.as_ast(), &mut context)
                .ok()
                .map(|v| variable_value(&v))
        });
    }
    Ok(())
}

fn variable_value(v: &Variable) -> Value {
    match v {
        Variable::Null => Value::Null,
        Variable::Bool(b) => Value::Bool(*b),
        Variable::String(s) => Value::String(s.clone()),
        Variable::Number(n) => n
            .as_f64()
            .and_then(go_number)
            .map_or(Value::Null, Value::Number),
        Variable::Array(_) | Variable::Object(_) | Variable::Expref(_) => {
            let mut out = String::new();
            marshal_variable(v, &mut out);
            Value::String(out)
        }
    }
}

/// Writes `v` as Go's json.Marshal writes the value go-jmespath returns.
fn marshal_variable(v: &Variable, out: &mut String) {
    match v {
        Variable::Null => out.push_str("null"),
        Variable::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Variable::String(s) => write_go_string(s, out),
        Variable::Number(n) => write_go_float(n.as_f64().unwrap_or(0.0), out),
        Variable::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                marshal_variable(item, out);
            }
            out.push(']');
        }
        Variable::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(key, out);
                out.push(':');
                marshal_variable(item, out);
            }
            out.push('}');
        }
        // go-jmespath returns a struct with no exported fields.
        Variable::Expref(_) => out.push_str("{}"),
    }
}

/// A float64 as the extracted map holds it. Whole numbers in float64's exact integer range are
/// stored as integers: they print the same (`3`) and serialize as Go prints them (not `3.0`).
fn go_number(f: f64) -> Option<Number> {
    const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;
    if f.fract() == 0.0 && f.abs() <= EXACT_INTEGERS && !(f == 0.0 && f.is_sign_negative()) {
        Some(Number::from(f as i64))
    } else {
        Number::from_f64(f)
    }
}

/// Writes `f` as Go's encoders write a float64: shortest round-trip digits, in exponent form
/// below 1e-6 and from 1e21 on, with json-iterator's `e-07` -> `e-7` trim.
fn write_go_float(f: f64, out: &mut String) {
    let abs = f.abs();
    let at = out.len();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let _ = write!(out, "{f:e}");
        // Rust writes `1e21`, Go `1e+21`; negative exponents already match after the trim.
        if let Some(e) = out[at..].find('e') {
            let sign_at = at + e + 1;
            if out.as_bytes().get(sign_at) != Some(&b'-') {
                out.insert(sign_at, '+');
            }
        }
    } else {
        let _ = write!(out, "{f}");
    }
}

/// Writes `s` as a JSON string the way Go's encoders do by default: HTML-safe (`<`, `>`, `&`
/// escaped), `\n` `\r` `\t` short forms, other control characters and U+2028/U+2029 as `\uXXXX`.
fn write_go_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push('"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let len = match b {
            b'"' | b'\\' | b'<' | b'>' | b'&' | 0..=0x1f => 1,
            0xE2 if matches!(bytes.get(i + 1..i + 3), Some([0x80, 0xA8 | 0xA9])) => 3,
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&s[start..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0xE2 => out.push_str(if bytes[i + 2] == 0xA8 {
                "\\u2028"
            } else {
                "\\u2029"
            }),
            _ => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xF)]));
            }
        }
        i += len;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The input is not what Promtail's decoder accepts. Promtail only logs why at debug level, so
/// no detail is kept.
#[derive(Debug)]
struct Malformed;

type Parsed<T> = Result<T, Malformed>;

/// Deepest nesting of objects and arrays accepted (json-iterator allows 10000). It bounds the
/// recursion of the parser on hostile input.
const MAX_DEPTH: usize = 256;

/// Parses the top of `text` as json-iterator does into a `map[string]interface{}`: an object
/// (calling `member` with each key while the cursor is at its value) or `null` (an empty map).
/// Anything but whitespace after it makes the input malformed, except that json-iterator stops
/// reading at a NUL byte.
fn parse_document<'a>(
    text: &'a str,
    member: impl FnMut(&mut Cursor<'a>, JsonStr<'a>) -> Parsed<()>,
) -> Parsed<()> {
    let mut c = Cursor::at(text, 0);
    match c.next_token()? {
        b'{' => c.members(1, member)?,
        b'n' => c.literal(b"null")?,
        _ => return Err(Malformed),
    }
    c.skip_ws();
    match c.peek() {
        None | Some(0) => Ok(()),
        Some(_) => Err(Malformed),
    }
}

/// A JSON string's content as it appears in the input, validated.
#[derive(Clone, Copy)]
struct JsonStr<'a> {
    raw: &'a str,
    /// Whether it holds a backslash escape.
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    fn decode(self) -> Cow<'a, str> {
        if self.escaped {
            let mut out = String::with_capacity(self.raw.len());
            unescape_into(self.raw, &mut out);
            Cow::Owned(out)
        } else {
            Cow::Borrowed(self.raw)
        }
    }
}

/// Decodes the escapes of validated string content as json-iterator does: a lone or broken
/// UTF-16 surrogate becomes U+FFFD.
fn unescape_into(raw: &str, out: &mut String) {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'\\') {
        out.push_str(&raw[i..i + offset]);
        i = unescape_one(bytes, i + offset + 1, out);
    }
    out.push_str(&raw[i..]);
}

/// Decodes the escape whose letter is at `i` and returns the index after it.
fn unescape_one(bytes: &[u8], i: usize, out: &mut String) -> usize {
    let Some(&letter) = bytes.get(i) else {
        return i;
    };
    out.push(match letter {
        b'u' => {
            let r = hex4(bytes, i + 1);
            let after = i + 5;
            if !(0xD800..=0xDFFF).contains(&r) {
                out.push(char::from_u32(r).unwrap_or('\u{FFFD}'));
                return after;
            }
            if bytes.get(after) != Some(&b'\\') {
                out.push('\u{FFFD}');
                return after;
            }
            if bytes.get(after + 1) != Some(&b'u') {
                out.push('\u{FFFD}');
                return unescape_one(bytes, after + 1, out);
            }
            let r2 = hex4(bytes, after + 2);
            if (0xD800..0xDC00).contains(&r) && (0xDC00..0xE000).contains(&r2) {
                let pair = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00);
                out.push(char::from_u32(pair).unwrap_or('\u{FFFD}'));
            } else {
                out.push('\u{FFFD}');
                out.push(char::from_u32(r2).unwrap_or('\u{FFFD}'));
            }
            return after + 6;
        }
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        other => char::from(other),
    });
    i + 1
}

fn hex4(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .unwrap_or_default()
        .iter()
        .fold(0, |acc, &h| {
            acc * 16 + char::from(h).to_digit(16).unwrap_or(0)
        })
}

/// The index of the first `"` or `\\` at or after `i` (or control character, if
/// `controls`), or `bytes.len()`. Strings are most of a JSON line, so this looks at 8 bytes at
/// a time.
fn find_string_byte(bytes: &[u8], mut i: usize, controls: bool) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is flagged when it is zero; the lowest flag is always exact.
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(chunk);
        let mut flags = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')));
        if controls {
            flags |= word.wrapping_sub(ONES * 0x20) & !word;
        }
        flags &= HIGH_BITS;
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || (controls && b < 0x20) {
            return i;
        }
        i += 1;
    }
    i
}

/// A position in JSON text, with json-iterator's grammar.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn at(text: &'a str, pos: usize) -> Self {
        Self { text, pos }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Skips whitespace and returns the next byte without consuming it.
    fn next_token(&mut self) -> Parsed<u8> {
        self.skip_ws();
        self.peek().ok_or(Malformed)
    }

    fn literal(&mut self, word: &[u8]) -> Parsed<()> {
        if self.text.as_bytes()[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// Walks the object whose `{` is next, calling `member` with each key while the cursor is
    /// at its value; `member` must consume the value. `depth` counts this object.
    fn members(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, JsonStr<'a>) -> Parsed<()>,
    ) -> Parsed<()> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        self.pos += 1;
        if self.next_token()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.next_token()? != b'"' {
                return Err(Malformed);
            }
            let key = self.string()?;
            if self.next_token()? != b':' {
                return Err(Malformed);
            }
            self.pos += 1;
            member(self, key)?;
            match self.next_token()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Malformed),
            }
        }
    }

    /// Walks the array whose `[` is next, calling `element` with the cursor at each element;
    /// `element` must consume it. `depth` counts this array.
    fn elements(
        &mut self,
        depth: usize,
        mut element: impl FnMut(&mut Self) -> Parsed<()>,
    ) -> Parsed<()> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        self.pos += 1;
        if self.next_token()? == b']' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            element(self)?;
            match self.next_token()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Malformed),
            }
        }
    }

    /// Reads the string whose opening quote is next. json-iterator rejects control characters
    /// only before the first escape of a string, and so does this.
    fn string(&mut self) -> Parsed<JsonStr<'a>> {
        let bytes = self.text.as_bytes();
        let start = self.pos + 1;
        let mut i = find_string_byte(bytes, start, true);
        let escaped = match bytes.get(i) {
            Some(b'"') => false,
            Some(b'\\') => true,
            _ => return Err(Malformed),
        };
        if escaped {
            loop {
                i = find_string_byte(bytes, i, false);
                match bytes.get(i) {
                    Some(b'"') => break,
                    Some(b'\\') => match bytes.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u')
                            if bytes
                                .get(i + 2..i + 6)
                                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                        {
                            i += 6
                        }
                        _ => return Err(Malformed),
                    },
                    _ => return Err(Malformed),
                }
            }
        }
        self.pos = i + 1;
        Ok(JsonStr {
            raw: &self.text[start..i],
            escaped,
        })
    }

    /// Reads the number that is next as json-iterator does: JSON's grammar, float64 values,
    /// out of range is an error, and up to 6 decimals are divided out directly (its fast path,
    /// which can round differently from a full parse) when the number ends at `,]}`, space,
    /// tab or newline.
    fn number(&mut self) -> Parsed<f64> {
        // Above this json-iterator leaves its fast path rather than overflow.
        const SAFE_TO_MULTIPLY_BY_10: u64 = u64::MAX / 10 - 1;
        const POW10: [f64; 7] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6];
        let bytes = self.text.as_bytes();
        let negative = bytes.get(self.pos) == Some(&b'-');
        let digits_start = self.pos + usize::from(negative);
        let mut i = digits_start;
        let mut value: u64 = 0;
        let mut fits = true;
        let mut accumulate = |digit: u8| {
            if value > SAFE_TO_MULTIPLY_BY_10 {
                fits = false;
            } else if fits {
                value = value * 10 + u64::from(digit - b'0');
            }
        };
        match bytes.get(i) {
            Some(b'0') => {
                i += 1;
                if matches!(bytes.get(i), Some(b'0'..=b'9')) {
                    return Err(Malformed);
                }
            }
            Some(b'1'..=b'9') => {
                while let Some(&d @ b'0'..=b'9') = bytes.get(i) {
                    accumulate(d);
                    i += 1;
                }
            }
            _ => return Err(Malformed),
        }
        let mut decimals = 0;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            let fraction_start = i;
            while let Some(&d @ b'0'..=b'9') = bytes.get(i) {
                accumulate(d);
                i += 1;
            }
            decimals = i - fraction_start;
            if decimals == 0 {
                return Err(Malformed);
            }
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = bytes.get(i) {
            exponent = true;
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            let exponent_start = i;
            while let Some(b'0'..=b'9') = bytes.get(i) {
                i += 1;
            }
            if i == exponent_start {
                return Err(Malformed);
            }
        }
        self.pos = i;
        let fast_end = matches!(
            bytes.get(i),
            Some(b',' | b']' | b'}' | b' ' | b'\t' | b'\n')
        );
        let magnitude = if !exponent && fits && decimals == 0 {
            // Exact conversion, rounded like a full parse.
            value as f64
        } else if !exponent && fits && decimals < POW10.len() && fast_end {
            value as f64 / POW10[decimals]
        } else {
            let parsed: f64 = self.text[digits_start..i].parse().map_err(|_| Malformed)?;
            if parsed.is_infinite() {
                return Err(Malformed);
            }
            parsed
        };
        Ok(if negative { -magnitude } else { magnitude })
    }

    /// Consumes the value that is next, validating it. `depth` counts the containers around it.
    fn skip_value(&mut self, depth: usize) -> Parsed<()> {
        match self.next_token()? {
            b'{' => self.members(depth + 1, |c, _| c.skip_value(depth + 1)),
            b'[' => self.elements(depth + 1, |c| c.skip_value(depth + 1)),
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => Err(Malformed),
        }
    }

    /// Reads the value that is next as Promtail stores it in the extracted map.
    fn extracted_value(&mut self, depth: usize) -> Parsed<Value> {
        Ok(match self.next_token()? {
            b'"' => Value::String(self.string()?.decode().into_owned()),
            b't' => {
                self.literal(b"true")?;
                Value::Bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                Value::Bool(false)
            }
            b'n' => {
                self.literal(b"null")?;
                Value::Null
            }
            b'-' | b'0'..=b'9' => go_number(self.number()?).map_or(Value::Null, Value::Number),
            b'{' | b'[' => {
                let mut out = String::new();
                self.marshal(depth, &mut out)?;
                Value::String(out)
            }
            _ => return Err(Malformed),
        })
    }

    /// Writes the value that is next as Go's json.Marshal writes it once decoded.
    fn marshal(&mut self, depth: usize, out: &mut String) -> Parsed<()> {
        match self.next_token()? {
            b'{' => {
                let mut members: Vec<(Cow<'a, str>, usize)> = Vec::new();
                self.members(depth + 1, |c, key| {
                    members.push((key.decode(), c.pos));
                    c.skip_value(depth + 1)
                })?;
                // A Go map holds the last value of a repeated key. Promtail writes keys in map
                // order (random); sorted here, as Go's standard library does, for stable output.
                members.sort_by(|a, b| a.0.cmp(&b.0));
                out.push('{');
                let mut first = true;
                for (i, (key, pos)) in members.iter().enumerate() {
                    if members.get(i + 1).is_some_and(|next| next.0 == *key) {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    write_go_string(key, out);
                    out.push(':');
                    Cursor::at(self.text, *pos).marshal(depth + 1, out)?;
                }
                out.push('}');
            }
            b'[' => {
                out.push('[');
                let mut first = true;
                self.elements(depth + 1, |c| {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    c.marshal(depth + 1, out)
                })?;
                out.push(']');
            }
            b'"' => write_go_string(&self.string()?.decode(), out),
            b't' => {
                self.literal(b"true")?;
                out.push_str("true");
            }
            b'f' => {
                self.literal(b"false")?;
                out.push_str("false");
            }
            b'n' => {
                self.literal(b"null")?;
                out.push_str("null");
            }
            b'-' | b'0'..=b'9' => write_go_float(self.number()?, out),
            _ => return Err(Malformed),
        }
        Ok(())
    }

    /// Reads the value that is next as a JMESPath document.
    fn variable(&mut self, depth: usize) -> Parsed<Variable> {
        Ok(match self.next_token()? {
            b'{' => {
                let mut object = BTreeMap::new();
                self.members(depth + 1, |c, key| {
                    let value = c.variable(depth + 1)?;
                    object.insert(key.decode().into_owned(), Rcvar::new(value));
                    Ok(())
                })?;
                Variable::Object(object)
            }
            b'[' => {
                let mut items = Vec::new();
                self.elements(depth + 1, |c| {
                    items.push(Rcvar::new(c.variable(depth + 1)?));
                    Ok(())
                })?;
                Variable::Array(items)
            }
            b'"' => Variable::String(self.string()?.decode().into_owned()),
            b't' => {
                self.literal(b"true")?;
                Variable::Bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                Variable::Bool(false)
            }
            b'n' => {
                self.literal(b"null")?;
                Variable::Null
            }
            b'-' | b'0'..=b'9' => {
                go_number(self.number()?).map_or(Variable::Null, Variable::Number)
            }
            _ => return Err(Malformed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;

    fn config(expressions: &[(&str, Option<&str>)]) -> JsonConfig {
        JsonConfig {
            expressions: expressions
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            source: None,
            drop_malformed: false,
        }
    }

    fn stage(expressions: &[(&str, Option<&str>)]) -> JsonStage {
        JsonStage::new(&config(expressions)).unwrap()
    }

    /// Runs `line` through `stage` and returns the extracted map.
    fn run(stage: &mut JsonStage, line: &str) -> (Verdict, crate::pipeline::Extracted) {
        let mut e = entry(line, &[]);
        let verdict = stage.process(&mut e);
        (verdict, e.extracted)
    }

    fn extracted(stage: &mut JsonStage, line: &str) -> crate::pipeline::Extracted {
        let (verdict, map) = run(stage, line);
        assert_eq!(verdict, Verdict::Keep);
        map
    }

    fn sorted(map: &crate::pipeline::Extracted) -> BTreeMap<String, Value> {
        map.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn is_field_paths(stage: &JsonStage) -> bool {
        matches!(stage.evaluator, Evaluator::Paths(_))
    }

    #[test]
    fn simple_keys_extract_strings_numbers_bools_and_null() {
        let mut s = stage(&[
            ("level", None),
            ("msg", Some("")),
            ("code", Some("status")),
            ("ok", None),
            ("gone", None),
            ("missing", None),
        ]);
        assert!(is_field_paths(&s));
        let m = extracted(
            &mut s,
            r#"{"level":"info","msg":"hi there","status":200,"ok":true,"gone":null,"x":[1]}"#,
        );
        assert_eq!(m["level"], "info");
        assert_eq!(m["msg"], "hi there");
        assert_eq!(m["code"], 200);
        assert_eq!(m["ok"], true);
        assert_eq!(m["gone"], Value::Null);
        // Promtail stores nil for a path that is not there.
        assert_eq!(m["missing"], Value::Null);
        assert!(!m.contains_key("x"));
    }

    #[test]
    fn nested_paths_and_quoted_keys_with_dots() {
        let mut s = stage(&[
            ("user", Some("req.user.name")),
            ("dotted", Some(r#""key.with.dots""#)),
            ("inner", Some(r#"req."a.b""#)),
            ("not_object", Some("level.x")),
        ]);
        assert!(is_field_paths(&s));
        let m = extracted(
            &mut s,
            r#"{"level":"warn","key.with.dots":"d","req":{"a.b":1.5,"user":{"name":"bob"}}}"#,
        );
        assert_eq!(m["user"], "bob");
        assert_eq!(m["dotted"], "d");
        assert_eq!(m["inner"], 1.5);
        assert_eq!(m["not_object"], Value::Null);
    }

    #[test]
    fn a_path_and_its_prefix_both_extract() {
        let mut s = stage(&[("req", None), ("method", Some("req.method"))]);
        let m = extracted(&mut s, r#"{"req":{"method":"GET","n":1}}"#);
        assert_eq!(m["req"], r#"{"method":"GET","n":1}"#);
        assert_eq!(m["method"], "GET");
    }

    #[test]
    fn objects_and_arrays_are_stored_as_go_marshalled_json() {
        let mut s = stage(&[("obj", None), ("arr", None), ("esc", None)]);
        let m = extracted(
            &mut s,
            r#"{"obj": { "z" : 1.0, "a": [true, null, "x"], "m": 1e21, "s": 1e-7, "b": -0 },
                "arr": [ {"k": 2, "c": "<&>"} , 10.50 ],
                "esc": {"t": "a\tb\u2028\u0001\/"}}"#,
        );
        // Keys sorted, compact, numbers as Go prints float64, HTML characters escaped.
        assert_eq!(
            m["obj"],
            r#"{"a":[true,null,"x"],"b":-0,"m":1e+21,"s":1e-7,"z":1}"#
        );
        assert_eq!(m["arr"], r#"[{"c":"\u003c\u0026\u003e","k":2},10.5]"#);
        assert_eq!(m["esc"], r#"{"t":"a\tb\u2028\u0001/"}"#);
    }

    #[test]
    fn repeated_keys_keep_the_last_value() {
        let mut s = stage(&[("a", None), ("b", Some("o.b")), ("o", None)]);
        let m = extracted(
            &mut s,
            r#"{"a":1,"o":{"b":1,"b":2},"a":2,"o":{"b":3,"x":1,"x":2}}"#,
        );
        assert_eq!(m["a"], 2);
        assert_eq!(m["b"], 3);
        assert_eq!(m["o"], r#"{"b":3,"x":2}"#);
        let m = extracted(&mut s, r#"{"o":{"b":1},"o":5}"#);
        assert_eq!(m["b"], Value::Null);
        assert_eq!(m["o"], 5);
    }

    #[test]
    fn jmespath_functions_projections_and_indexes() {
        let mut s = stage(&[
            ("count", Some("length(items)")),
            ("first", Some("items[0].name")),
            ("names", Some("items[*].name")),
            ("tags", Some("tags[*]")),
            ("level", None),
            ("bad_type", Some("length(level_num)")),
        ]);
        assert!(!is_field_paths(&s));
        let m = extracted(
            &mut s,
            r#"{"level":"info","level_num":3,"items":[{"name":"a"},{"name":"b"}],"tags":["x","y"]}"#,
        );
        assert_eq!(m["count"], 2);
        assert_eq!(m["first"], "a");
        assert_eq!(m["names"], r#"["a","b"]"#);
        assert_eq!(m["tags"], r#"["x","y"]"#);
        assert_eq!(m["level"], "info");
        // A search error leaves the key unset, as in Promtail.
        assert!(!m.contains_key("bad_type"));
    }

    #[test]
    fn source_is_read_when_present_and_missing_source_changes_nothing() {
        let mut cfg = config(&[("user", None)]);
        cfg.source = Some("payload".into());
        let mut s = JsonStage::new(&cfg).unwrap();
        let mut e = entry(r#"{"user":"line"}"#, &[]);
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert!(!e.extracted.contains_key("user"));
        e.extracted
            .insert("payload".into(), Value::String(r#"{"user":"src"}"#.into()));
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert_eq!(e.extracted["user"], "src");
    }

    #[test]
    fn source_without_a_string_form_changes_nothing_even_with_drop_malformed() {
        let mut cfg = config(&[("user", None)]);
        cfg.source = Some("payload".into());
        cfg.drop_malformed = true;
        let mut s = JsonStage::new(&cfg).unwrap();
        let mut e = entry("x", &[]);
        e.extracted.insert("payload".into(), Value::Null);
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert_eq!(e.extracted.len(), 1);
    }

    #[test]
    fn malformed_input_is_kept_unchanged_or_dropped() {
        let bad = [
            "not json",
            "",
            "[1,2]",
            "\"text\"",
            "42",
            r#"{"a":1"#,
            r#"{"a":1}x"#,
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e400}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{'a':1}"#,
        ];
        for expressions in [&[("a", None)][..], &[("a", Some("length(@)"))][..]] {
            let mut keep = stage(expressions);
            let mut cfg = config(expressions);
            cfg.drop_malformed = true;
            let mut drop = JsonStage::new(&cfg).unwrap();
            for line in bad {
                let (verdict, m) = run(&mut keep, line);
                assert_eq!(verdict, Verdict::Keep, "{line}");
                assert!(m.is_empty(), "{line}");
                let (verdict, _) = run(&mut drop, line);
                assert_eq!(
                    verdict,
                    Verdict::Drop {
                        reason: "json_malformed".into()
                    },
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn json_iterator_leniencies_are_kept() {
        let mut s = stage(&[("a", None)]);
        // A control character after an escape, and anything after a NUL byte.
        assert_eq!(extracted(&mut s, "{\"a\":\"\\n\tx\"}")["a"], "\n\tx");
        assert_eq!(extracted(&mut s, "{\"a\":1}\0junk")["a"], 1);
        // `null` decodes to an empty map: every path is null.
        assert_eq!(extracted(&mut s, " null ")["a"], Value::Null);
        // Broken surrogates become U+FFFD.
        assert_eq!(extracted(&mut s, r#"{"a":"\ud800x"}"#)["a"], "\u{FFFD}x");
        assert_eq!(
            extracted(&mut s, r#"{"a":"\ud83d\ude00"}"#)["a"],
            "\u{1F600}"
        );
        assert_eq!(
            extracted(&mut s, r#"{"a":"\ud800\u0041"}"#)["a"],
            "\u{FFFD}A"
        );
    }

    #[test]
    fn numbers_are_float64_as_promtail_reads_them() {
        let mut s = stage(&[("a", None)]);
        assert_eq!(extracted(&mut s, r#"{"a":-0.5}"#)["a"], -0.5);
        assert_eq!(extracted(&mut s, r#"{"a":1E3}"#)["a"], 1000);
        // Integers beyond float64's exact range lose precision, as in Promtail.
        let big = extracted(&mut s, r#"{"a":12345678901234567891}"#);
        assert_eq!(big["a"].as_f64(), Some(12345678901234567891.0));
        // Seconds with nanoseconds parse to the nearest float64, so they print back the same.
        let ts = extracted(&mut s, r#"{"a":1700000000.123456789}"#);
        let text = crate::pipeline::value_as_string(&ts["a"])
            .unwrap()
            .into_owned();
        assert_eq!(text, "1700000000.1234567");
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = JsonStage::new(&config(&[("ok", None), ("bad", Some("a[?"))]))
            .err()
            .unwrap();
        assert_eq!(err.key, "expressions.bad");
        assert!(err.message.contains("a[?"), "{}", err.message);
        let err = JsonStage::new(&config(&[("key-with-dash", None)]))
            .err()
            .unwrap();
        assert_eq!(err.key, "expressions.key-with-dash");
        let err = JsonStage::new(&config(&[])).err().unwrap();
        assert_eq!(err.key, "expressions");
        let mut cfg = config(&[("a", None)]);
        cfg.source = Some(String::new());
        assert_eq!(JsonStage::new(&cfg).err().unwrap().key, "source");
    }

    #[test]
    fn config_refuses_unknown_keys() {
        let err = serde_json::from_str::<JsonConfig>(r#"{"expressions":{"a":null},"x":1}"#);
        assert!(err.is_err());
        let cfg: JsonConfig =
            serde_json::from_str(r#"{"expressions":{"a":null,"b":"c.d"}}"#).unwrap();
        assert_eq!(cfg.expressions["a"], None);
        assert_eq!(cfg.expressions["b"].as_deref(), Some("c.d"));
    }

    /// Real samples (lnav's test logs): `logfile_json_edgecases.jsonl`,
    /// `logfile_bunyan.jsonl` and `logfile_invalid_json.jsonl`, whose third line is cut short.
    const SAMPLES: &[(&str, &str)] = &[
        (
            "lnav__logfile_json_edgecases.jsonl",
            r#"{"ts": "2013-09-06T20:00:48.124817Z", "logger": "com.example.foo.bar.bazzer", "lvl": "TRACE", "msg": "trace test"}
{"ts": "2013-09-06T20:00:49.124817Z", "logger": "com.example.demoµs", "lvl": "INFO", "msg": "Starting up \u001B[0;32mservice\u001B[0m"}
{"ts": "2013-09-06T22:00:49.124817Z", "lvl": "INFO", "msg": "Shutting down service", "user": "steve@example.com"}
{"ts": "2013-09-06T22:00:59.124817Z", "lvl": "DEBUG5", "msg": "D\bDetails...\n"}
{"ts": "2013-09-06T22:00:59.124817Z", "lvl": "DEBUG4", "msg": "D\bDe\betails...\n"}
{"ts": "xxx", "lvl": "DEBUG3", "msg": "bad ts...\n"}
{"ts": "2013-09-06T22:00:59.124817Z", "lvl": "DEBUG3", "msg": "Details...\n"}
{"ts": "2013-09-06T22:00:59.124817Z", "lvl": "DEBUG2", "msg": "Details...\n"}
{"ts": "2013-09-06 22:01:00Z", "lvl": "DEBUG", "msg": "Details..."}
{"ts": "2013-09-06T22:01:49.124817Z", "lvl": "STATS", "msg": "1 beat per second"}
{"ts": "2013-09-06T22:01:49.124817Z", "lvl": "WARNING", "msg": "not looking good"}
{"ts": "2013-09-06T22:01:49.124817Z", "lvl": "ERROR", "msg": "looking bad"}
{"ts": "2013-09-06T22:01:49.124817Z", "lvl": "CRITICAL", "msg": "sooo bad", "extra-multi": "a\nb\nc\nd\n"}
{"ts": "2013-09-06T22:01:49.124817Z", "lvl": "FATAL", "msg": "shoot", "obj": { "field1" : "hi", "field2": 2 }, "arr" : ["hi", {"sub1": true}]}
"#,
        ),
        (
            "lnav__logfile_bunyan.jsonl",
            r#"{"name":"renovate","hostname":"renovate-gitlab-67c4bcb5-9ggbv","pid":7,"level":20,"logContext":"qjifsaDDI","repository":"webgui/custom-icons-transformer","msg":"Found gitlabci-include package files","time":"2023-03-24T14:26:16.243Z","v":0}
{"name":"renovate","hostname":"renovate-gitlab-67c4bcb5-9ggbv","pid":7,"level":20,"logContext":"qjifsaDDI","repository":"webgui/custom-icons-transformer","msg":"Found npm package files","time":"2023-03-24T14:26:16.243Z","v":0}
{"name":"renovate","hostname":"renovate-gitlab-67c4bcb5-9ggbv","pid":7,"level":20,"logContext":"qjifsaDDI","repository":"webgui/custom-icons-transformer","msg":"Found 3 package file(s)","time":"2023-03-24T14:26:16.243Z","v":0,"src":{"file": "/Users/trentm/tm/node-bunyan/examples/src.js","line": 20,"func": "Wuzzle.woos"}}
{"name":"renovate","hostname":"renovate-gitlab-67c4bcb5-9ggbv","pid":7,"level":30,"logContext":"qjifsaDDI","repository":"webgui/custom-icons-transformer","baseBranch":"main","stats":{"managers":{"gitlabci":{"fileCount":1,"depCount":1},"gitlabci-include":{"fileCount":1,"depCount":1},"npm":{"fileCount":1,"depCount":15}},"total":{"fileCount":3,"depCount":17}},"msg":"Dependency extraction complete","time":"2023-03-24T14:26:16.243Z","v":0}
{"name":"renovate","hostname":"renovate-gitlab-67c4bcb5-9ggbv","pid":7,"level":20,"logContext":"qjifsaDDI","repository":"webgui/custom-icons-transformer","msg":"Dependency node has unsupported/unversioned value lts-bullseye-slim (versioning=docker)","time":"2023-03-24T14:26:16.390Z","v":0}
{"name":"renovate","hostname":"renovate-gitlab-67c4bcb5-9ggbv","pid":7,"level":20,"logContext":"qjifsaDDI","repository":"webgui/custom-icons-transformer","depName":"prettier","check":"stabilityDays","msg":"Release 2.8.7 is pending status checks","time":"2023-03-24T14:26:17.493Z","v":0}
{"name":"renovate","hostname":"renovate-gitlab-67c4bcb5-9ggbv","pid":7,"level":20,"logContext":"qjifsaDDI","repository":"webgui/custom-icons-transformer","depName":"rimraf","check":"stabilityDays","msg":"Release 4.4.1 is pending status checks","time":"2023-03-24T14:26:17.897Z","v":0}
{"name":"renovate","hostname":"renovate-gitlab-67c4bcb5-9ggbv","pid":7,"level":20,"logContext":"qjifsaDDI","repository":"webgui/custom-icons-transformer","depName":"rimraf","bucket":"non-major","msg":"All releases are pending - using latest","time":"2023-03-24T14:26:17.897Z","v":0}
{"name":"renovate","hostname":"renovate-gitlab-67c4bcb5-9ggbv","pid":7,"level":20,"logContext":"qjifsaDDI","repository":"webgui/custom-icons-transformer","depName":"prettier-plugin-svelte","check":"stabilityDays","msg":"Release 2.10.0 is pending status checks","time":"2023-03-24T14:26:18.330Z","v":0}
{"name":"renovate","hostname":"renovate-gitlab-67c4bcb5-9ggbv","pid":7,"level":20,"logContext":"qjifsaDDI","repository":"webgui/custom-icons-transformer","depName":"prettier-plugin-svelte","bucket":"non-major","msg":"All releases are pending - using latest","time":"2023-03-24T14:26:18.331Z","v":0}
"#,
        ),
        (
            "lnav__logfile_invalid_json.jsonl",
            r#"{"ts": "2013-09-06T20:00:48.124817Z", "@fields": { "lvl": "TRACE", "msg": "trace test"}}
{"ts": "2013-09-06T20:00:49.124817Z", "@fields": { "lvl": "INFO", "msg": "Starting up service"}}
{"ts": "2013-09-06T22:00:49.124817Z", "@fields": { "lvl": "INFO", "msg": "Shutting down service\nline2\nline3\nline4\nline5\nline6\nline7\nline8\nline9\nline10
{"ts": "2013-09-06T22:00:59.124817Z", "@fields": { "lvl": "DEBUG5", "msg": "Details..."}}
{"ts": "2013-09-06T22:00:59.222222Z", "@fields": { "lvl": "DEBUG4", "msg": "Details..."}}
"#,
        ),
    ];

    fn sample_lines() -> Vec<(&'static str, &'static str)> {
        SAMPLES
            .iter()
            .flat_map(|(file, text)| text.lines().map(move |line| (*file, line)))
            .collect()
    }

    const SAMPLE_PATHS: &[(&str, Option<&str>)] = &[
        ("ts", None),
        ("time", None),
        ("lvl", None),
        ("level", None),
        ("msg", None),
        ("obj", None),
        ("arr", None),
        ("field2", Some("obj.field2")),
        ("fields_msg", Some(r#""@fields".msg"#)),
        ("src", None),
        ("src_line", Some("src.line")),
        ("extra", Some(r#""extra-multi""#)),
        ("pid", None),
        ("missing", Some("a.b.c")),
    ];

    #[test]
    fn sample_files_parse_valid_lines_and_handle_invalid_ones() {
        let mut cfg = config(SAMPLE_PATHS);
        let mut keep = JsonStage::new(&cfg).unwrap();
        cfg.drop_malformed = true;
        let mut drop = JsonStage::new(&cfg).unwrap();
        let (mut valid, mut invalid) = (0, 0);
        for (file, line) in sample_lines() {
            let reference = serde_json::from_str::<Value>(line);
            let (verdict, m) = run(&mut keep, line);
            assert_eq!(verdict, Verdict::Keep);
            let (dropped, _) = run(&mut drop, line);
            match reference {
                Ok(Value::Object(object)) => {
                    valid += 1;
                    assert_eq!(dropped, Verdict::Keep, "{file}: {line}");
                    for (key, _) in SAMPLE_PATHS {
                        assert!(m.contains_key(key), "{file}: {key} missing for {line}");
                    }
                    for key in ["ts", "lvl", "msg", "level", "time"] {
                        if let Some(Value::String(s)) = object.get(key) {
                            assert_eq!(m[key], *s.as_str(), "{file}: {line}");
                        }
                    }
                }
                _ => {
                    invalid += 1;
                    assert!(m.is_empty(), "{file}: {line}");
                    assert_ne!(dropped, Verdict::Keep, "{file}: {line}");
                }
            }
        }
        assert_eq!((valid, invalid), (28, 1));
    }

    #[test]
    fn field_paths_and_jmespath_give_identical_results() {
        let mut lines: Vec<String> = sample_lines()
            .into_iter()
            .map(|(_, l)| l.to_string())
            .collect();
        lines.extend(
            [
                r#"{"ts":1.5e-9,"obj":{"field2":12345678901234567891,"z":[1,{"y":"\u003c"}]},"arr":[]}"#,
                r#"{"obj":{"field2":1},"obj":"replaced","msg":"a\"b\\c\u00e9\ud83d\ude00"}"#,
                r#"{"src":{"line":-0.000001},"pid":17000000000.123456,"level":1e21}"#,
                r#"{"src":{"line":1,"line":2},"src":{"file":"x"}}"#,
                "null",
                r#"{"@fields":{"msg":["a",{"b":null}]}}"#,
            ]
            .map(String::from),
        );
        let cfg = config(SAMPLE_PATHS);
        let mut fast = JsonStage::new(&cfg).unwrap();
        let mut slow = JsonStage::build(&cfg, false).unwrap();
        assert!(is_field_paths(&fast));
        assert!(!is_field_paths(&slow));
        for line in &lines {
            let (fast_verdict, fast_map) = run(&mut fast, line);
            let (slow_verdict, slow_map) = run(&mut slow, line);
            assert_eq!(fast_verdict, slow_verdict, "{line}");
            assert_eq!(sorted(&fast_map), sorted(&slow_map), "{line}");
        }
    }

    #[test]
    fn go_float_formatting_matches_go() {
        let cases = [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (0.1, "0.1"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (0.000001, "0.000001"),
            (0.0000001, "1e-7"),
            (-2.5e-10, "-2.5e-10"),
            (123456789.125, "123456789.125"),
        ];
        for (f, want) in cases {
            let mut out = String::new();
            write_go_float(f, &mut out);
            assert_eq!(out, want, "{f}");
        }
    }

    #[test]
    fn string_scan_finds_the_first_quote_backslash_or_control_at_any_offset() {
        let naive = |bytes: &[u8], from: usize, controls: bool| {
            (from..bytes.len())
                .find(|&i| {
                    let b = bytes[i];
                    b == b'"' || b == b'\\' || (controls && b < 0x20)
                })
                .unwrap_or(bytes.len())
        };
        for special in [b'"', b'\\', b'\n', 0x1f] {
            for at in 0..20 {
                let mut bytes = "aé€😀xyz0123456789abcdefgh".as_bytes()[..24].to_vec();
                bytes[at] = special;
                bytes.push(b' ');
                for from in 0..bytes.len() {
                    for controls in [true, false] {
                        assert_eq!(
                            find_string_byte(&bytes, from, controls),
                            naive(&bytes, from, controls),
                            "{bytes:?} from {from}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn nesting_beyond_the_depth_limit_is_malformed_in_both_evaluators() {
        let nested = |depth: usize| {
            let inner = "[".repeat(depth - 2) + &"]".repeat(depth - 2);
            format!(r#"{{"a":{{"b":{inner}}},"c":1}}"#)
        };
        let cfg = config(&[("c", None), ("b", Some("a.b"))]);
        for mut s in [
            JsonStage::new(&cfg).unwrap(),
            JsonStage::build(&cfg, false).unwrap(),
        ] {
            let m = extracted(&mut s, &nested(MAX_DEPTH));
            assert_eq!(m["c"], 1);
            let (verdict, m) = run(&mut s, &nested(MAX_DEPTH + 1));
            assert_eq!(verdict, Verdict::Keep);
            assert!(m.is_empty());
        }
    }
}
