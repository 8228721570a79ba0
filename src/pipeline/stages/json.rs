//! `json`: JMESPath expressions over a JSON line (or the extracted `source`) into the extracted map.
//!
//! Owns Promtail's json stage semantics: the input must be a JSON object (or the literal
//! `null`, which Go decodes into an empty map: it is searched as `{}`, so field paths give
//! null, and the line is kept even with `drop_malformed`), numbers are float64,
//! strings, numbers, booleans and null are stored as values and objects and arrays as their
//! compact JSON text, marshalled the way Go does (sorted keys, `<` `>` `&` U+2028 U+2029
//! escaped, Go's float formatting). When every expression is a plain field path (`level`,
//! `a.b`, `"key.with.dots"`) or a `||` of them (`msg || message`: the first truthy one, as
//! JMESPath defines it), one streaming pass reads only the top-level members those paths
//! start at and skips the rest unbuilt; otherwise the whole object becomes a `jmespath`
//! document. Both give the same results on well-formed input.
//! It must not touch labels, the line or the timestamp, and it does not log per line.
//!
//! Parsing is serde_json's strict RFC 8259 grammar, not Promtail's json-iterator. Inputs where
//! the two differ:
//! - malformed here, accepted by Promtail: a raw control character inside a string after an
//!   escape (`"\n<TAB>"`), anything after a NUL byte following the object, a lone UTF-16
//!   surrogate escape in a value that is read (Promtail substitutes U+FFFD), nesting deeper
//!   than 127 objects and arrays in what is read (serde_json's recursion limit;
//!   json-iterator allows 10000);
//! - accepted here, malformed in Promtail: on the field-path pass, a member no expression reads
//!   is only checked for syntax, so a number beyond float64's range or a lone surrogate in it
//!   passes, and its nesting is not limited (serde_json skips it without recursion);
//! - numbers are rounded correctly where json-iterator's shortcut for up to 6 decimals can be
//!   off by one unit in the last place (only for more than 15 significant digits).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

use jmespath::ast::Ast;
use jmespath::{Context, DEFAULT_RUNTIME, Expression, Rcvar, Variable};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use super::StageError;
use crate::pipeline::extracted::InternedKey;
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
    keys: Vec<InternedKey>,
    evaluator: Evaluator,
    source: Option<String>,
    drop_malformed: bool,
    /// One result per expression, reused from line to line. `None` leaves the key untouched.
    results: Vec<Option<Value>>,
}

enum Evaluator {
    /// Every expression is a plain field path or a `||` of them.
    FieldPaths(FieldPaths),
    /// Compiled expressions, in config order.
    Jmespath(Vec<Expression<'static>>),
}

/// The field paths of every expression, each a list of `||` alternatives.
struct FieldPaths {
    members: Vec<Member>,
    /// Each expression's alternatives: its first slot and how many.
    expressions: Vec<(usize, usize)>,
    /// One per alternative of every expression, reused from line to line: whether the
    /// value found is truthy (JMESPath's `||` takes the first truthy one) and the value.
    slots: Vec<(bool, Value)>,
}

/// A top-level member that field paths start at.
struct Member {
    name: String,
    /// Each alternative reading it: its slot and the field names below the member.
    paths: Vec<(usize, Vec<String>)>,
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
        let mut compiled = Vec::with_capacity(cfg.expressions.len());
        for (key, expression) in &cfg.expressions {
            let source = match expression.as_deref() {
                None | Some("") => key.as_str(),
                Some(e) => e,
            };
            compiled.push(jmespath::compile(source).map_err(|e| {
                StageError::new(
                    format!("expressions.{key}"),
                    format!(
                        "could not compile JMES expression `{source}`: {} at column {}",
                        e.reason, e.column
                    ),
                )
            })?);
            keys.push(InternedKey::new(key));
        }
        let paths: Option<Vec<Vec<Vec<String>>>> = compiled
            .iter()
            .map(|e| {
                let mut alternatives = Vec::new();
                field_path_alternatives(e.as_ast(), &mut alternatives).then_some(alternatives)
            })
            .collect();
        let evaluator = match paths {
            Some(paths) if field_paths => Evaluator::FieldPaths(FieldPaths::new(paths)),
            _ => Evaluator::Jmespath(compiled),
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
            // Promtail unmarshals into a Go map, and the JSON literal `null` decodes into an
            // empty (nil) one without error (json.go `processEntry`): searched as `{}`.
            let input: &str = if is_json_null(&input) { "{}" } else { &input };
            match &mut self.evaluator {
                Evaluator::FieldPaths(paths) => paths.read(input, &mut self.results),
                Evaluator::Jmespath(expressions) => search(expressions, input, &mut self.results),
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
                entry.extracted.insert_interned(*key, value);
            }
        }
        Verdict::Keep
    }
}

/// Whether `text` is the JSON literal `null` with optional JSON whitespace around it. Only
/// short inputs are looked at, so an ordinary line costs one length test.
fn is_json_null(text: &str) -> bool {
    text.len() < 64 && text.trim_matches([' ', '\t', '\n', '\r']) == "null"
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

/// `ast` as `||` alternatives of plain field paths (`a.b || "c" || d`), in order.
fn field_path_alternatives(ast: &Ast, out: &mut Vec<Vec<String>>) -> bool {
    match ast {
        Ast::Or { lhs, rhs, .. } => {
            field_path_alternatives(lhs, out) && field_path_alternatives(rhs, out)
        }
        other => {
            let mut path = Vec::new();
            let ok = field_path(other, &mut path);
            out.push(path);
            ok
        }
    }
}

impl FieldPaths {
    /// Groups every alternative's path (in expression order) by its first name.
    fn new(expressions: Vec<Vec<Vec<String>>>) -> Self {
        let mut members: Vec<Member> = Vec::new();
        let mut spans = Vec::with_capacity(expressions.len());
        let mut slot = 0;
        for alternatives in expressions {
            spans.push((slot, alternatives.len()));
            for mut path in alternatives {
                let name = path.remove(0);
                match members.iter_mut().find(|m| m.name == name) {
                    Some(member) => member.paths.push((slot, path)),
                    None => members.push(Member {
                        name,
                        paths: vec![(slot, path)],
                    }),
                }
                slot += 1;
            }
        }
        Self {
            members,
            expressions: spans,
            slots: vec![(false, Value::Null); slot],
        }
    }

    /// Answers every expression in one pass over `text`, building only the members its
    /// paths start at.
    fn read(&mut self, text: &str, results: &mut [Option<Value>]) -> serde_json::Result<()> {
        // A path that is not there gives null, which Promtail stores.
        self.slots.fill((false, Value::Null));
        let mut de = serde_json::Deserializer::from_str(text);
        de.deserialize_map(MemberReader {
            members: &self.members,
            slots: &mut self.slots,
        })?;
        de.end()?;
        for (result, &(first, count)) in results.iter_mut().zip(&self.expressions) {
            let alternatives = &mut self.slots[first..first + count];
            // `a || b`: a when truthy, else b (falsy or not).
            let chosen = alternatives
                .iter()
                .position(|(truthy, _)| *truthy)
                .unwrap_or(count - 1);
            *result = Some(std::mem::take(&mut alternatives[chosen].1));
        }
        Ok(())
    }
}

/// JMESPath's truthiness: false, null, "", [] and {} are false.
fn truthy(v: &Variable) -> bool {
    match v {
        Variable::Null => false,
        Variable::Bool(b) => *b,
        Variable::String(s) => !s.is_empty(),
        Variable::Array(a) => !a.is_empty(),
        Variable::Object(o) => !o.is_empty(),
        Variable::Number(_) | Variable::Expref(_) => true,
    }
}

struct MemberReader<'s> {
    members: &'s [Member],
    slots: &'s mut [(bool, Value)],
}

impl<'de> Visitor<'de> for MemberReader<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // A repeated member is read again: the last one wins, as in Go's map.
        while let Some(wanted) = map.next_key_seed(MemberName(self.members))? {
            let Some(member) = wanted else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value: Variable = map.next_value()?;
            if let Some(((last, last_path), others)) = member.paths.split_last() {
                for (slot, path) in others {
                    self.slots[*slot] = found(descend(value.clone(), path));
                }
                self.slots[*last] = found(descend(value, last_path));
            }
        }
        Ok(())
    }
}

/// A value found by a path: its truthiness and its extracted form.
fn found(v: Variable) -> (bool, Value) {
    (truthy(&v), extracted_value(v))
}

/// Reads a member name as the member it names, if any path starts there.
struct MemberName<'s>(&'s [Member]);

impl<'de, 's> DeserializeSeed<'de> for MemberName<'s> {
    type Value = Option<&'s Member>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'s> Visitor<'_> for MemberName<'s> {
    type Value = Option<&'s Member>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|m| m.name == name))
    }
}

/// The value at `path` below `value`: null where a name is missing or the value is no object.
fn descend(mut value: Variable, path: &[String]) -> Variable {
    for name in path {
        value = match value {
            Variable::Object(mut object) => object
                .remove(name)
                .map_or(Variable::Null, Rcvar::unwrap_or_clone),
            _ => Variable::Null,
        };
    }
    value
}

/// Builds `text` into one document and searches it with each expression.
fn search(
    expressions: &[Expression<'static>],
    text: &str,
    results: &mut [Option<Value>],
) -> serde_json::Result<()> {
    let mut document: Variable = serde_json::from_str(text)?;
    if !document.is_object() {
        return Err(de::Error::custom("not a JSON object"));
    }
    use_float64_numbers(&mut document);
    let document = Rcvar::new(document);
    for (expression, result) in expressions.iter().zip(results.iter_mut()) {
        // A failed search (e.g. a function given the wrong type) leaves the key unset, as in
        // Promtail. `interpret`, because `Expression::search` would first deep-copy the
        // document through serde.
        let mut context = Context::new(expression.as_str(), &DEFAULT_RUNTIME);
        *result = jmespath::interpret(&document, expression.as_ast(), &mut context)
            .ok()
            .map(|v| extracted_value(Rcvar::unwrap_or_clone(v)));
    }
    Ok(())
}

/// Rewrites every number as the float64 Go decodes, so that functions printing numbers
/// (`to_string`) print `5` for `5.0` as go-jmespath does.
fn use_float64_numbers(v: &mut Variable) {
    match v {
        Variable::Number(n) => {
            if let Some(float64) = n.as_f64().and_then(go_number) {
                *n = float64;
            }
        }
        Variable::Array(items) => items
            .iter_mut()
            .filter_map(Rcvar::get_mut)
            .for_each(use_float64_numbers),
        Variable::Object(object) => object
            .values_mut()
            .filter_map(Rcvar::get_mut)
            .for_each(use_float64_numbers),
        Variable::Null | Variable::Bool(_) | Variable::String(_) | Variable::Expref(_) => {}
    }
}

/// `v` as Promtail stores it in the extracted map.
fn extracted_value(v: Variable) -> Value {
    match v {
        Variable::Null => Value::Null,
        Variable::Bool(b) => Value::Bool(b),
        Variable::String(s) => Value::String(s),
        Variable::Number(n) => n
            .as_f64()
            .and_then(go_number)
            .map_or(Value::Null, Value::Number),
        Variable::Array(_) | Variable::Object(_) | Variable::Expref(_) => {
            let mut out = String::new();
            marshal(&v, &mut out);
            Value::String(out)
        }
    }
}

/// Writes `v` as Go's json.Marshal writes it once decoded (objects as maps, numbers as float64).
fn marshal(v: &Variable, out: &mut String) {
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
                marshal(item, out);
            }
            out.push(']');
        }
        Variable::Object(object) => {
            // Promtail writes keys in map order (random); sorted, as Go's standard library
            // does, for stable output.
            out.push('{');
            for (i, (key, item)) in object.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(key, out);
                out.push(':');
                marshal(item, out);
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
        matches!(stage.evaluator, Evaluator::FieldPaths(_))
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

    /// Promtail's json.go unmarshals the line into a `map[string]interface{}`; Go decodes the
    /// literal `null` into a nil map without error, so `drop_malformed` keeps the line and
    /// every expression is searched over an empty map (a field path gives nil).
    #[test]
    fn the_json_literal_null_is_an_empty_object_kept_by_drop_malformed() {
        for expressions in [&[("a", None)][..], &[("n", Some("length(@)"))][..]] {
            let mut cfg = config(expressions);
            cfg.drop_malformed = true;
            for mut s in [
                JsonStage::new(&cfg).unwrap(),
                JsonStage::build(&cfg, false).unwrap(),
            ] {
                for line in ["null", " null\n", "\tnull "] {
                    let (verdict, m) = run(&mut s, line);
                    assert_eq!(verdict, Verdict::Keep, "{line:?}");
                    let (key, want) = match expressions[0].1 {
                        None => ("a", Value::Null),
                        Some(_) => ("n", Value::from(0)),
                    };
                    assert_eq!(m.get(key), Some(&want), "{line:?}");
                }
                // Other literals stay malformed, as Go refuses them for a map.
                for line in ["nul", "null null", "true", "[null]"] {
                    let (verdict, _) = run(&mut s, line);
                    assert_ne!(verdict, Verdict::Keep, "{line:?}");
                }
            }
        }
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
    fn strict_json_rejects_what_json_iterator_tolerates() {
        let cfg = config(&[("a", None)]);
        for mut s in [
            JsonStage::new(&cfg).unwrap(),
            JsonStage::build(&cfg, false).unwrap(),
        ] {
            for line in [
                // A control character after an escape.
                "{\"a\":\"\\n\tx\"}",
                // Anything after a NUL byte.
                "{\"a\":1}\0junk",
                // Promtail substitutes U+FFFD for a lone surrogate.
                r#"{"a":"\ud800x"}"#,
                r#"{"a":"\ud800\u0041"}"#,
            ] {
                let (verdict, m) = run(&mut s, line);
                assert_eq!(verdict, Verdict::Keep, "{line:?}");
                assert!(m.is_empty(), "{line:?}");
            }
            assert_eq!(
                extracted(&mut s, r#"{"a":"\ud83d\ude00"}"#)["a"],
                "\u{1F600}"
            );
        }
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
        // serde_json's default float parsing would give ...6581328 here.
        let ts = extracted(&mut s, r#"{"a":1723842989.658132671}"#);
        assert_eq!(ts["a"].as_f64(), Some(1723842989.6581326));
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

    /// `a || b` is JMESPath's or: the first truthy value (false, null, "", [] and {} are
    /// falsy), else the last alternative's value. Read in the field-path pass, as the
    /// `jmespath` crate reads it.
    #[test]
    fn or_of_field_paths_takes_the_first_truthy_value_in_both_evaluators() {
        let cfg = config(&[
            (
                "level",
                Some(r#"level || levelname || "log.level" || log.level"#),
            ),
            ("msg", Some("msg || message")),
            ("ts", Some(r#"ts || "@timestamp" || time"#)),
            ("nothing", Some("a || b")),
        ]);
        let mut fast = JsonStage::new(&cfg).unwrap();
        let mut slow = JsonStage::build(&cfg, false).unwrap();
        assert!(is_field_paths(&fast));
        for line in [
            r#"{"levelname":"WARNING","message":"m","@timestamp":"t1"}"#,
            r#"{"log.level":"info","msg":"","message":"x","ts":0}"#,
            r#"{"log":{"level":"debug"},"level":null,"msg":false,"time":1.5}"#,
            r#"{"level":"","levelname":[],"log":{"level":{}},"a":0,"b":""}"#,
            r#"{"level":"error","levelname":"WARNING"}"#,
            "null",
        ] {
            let (fv, fm) = run(&mut fast, line);
            let (sv, sm) = run(&mut slow, line);
            assert_eq!(fv, sv, "{line}");
            assert_eq!(sorted(&fm), sorted(&sm), "{line}");
        }
        let m = extracted(
            &mut fast,
            r#"{"levelname":"WARNING","message":"m","@timestamp":"t1"}"#,
        );
        assert_eq!(m["level"], "WARNING");
        assert_eq!(m["msg"], "m");
        assert_eq!(m["ts"], "t1");
        assert_eq!(m["nothing"], Value::Null);
        let m = extracted(
            &mut fast,
            r#"{"log":{"level":"debug"},"msg":false,"message":"x"}"#,
        );
        assert_eq!(m["level"], "debug");
        assert_eq!(m["msg"], "x");
        let m = extracted(
            &mut fast,
            r#"{"level":"","levelname":[],"log":{"level":{}},"b":""}"#,
        );
        assert_eq!(m["level"], "{}", "the last alternative, falsy too");
        assert_eq!(m["nothing"], "");
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

    /// serde_json's recursion limit, counting the top-level object.
    const MAX_DEPTH: usize = 127;

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

    #[test]
    fn unread_members_are_only_checked_for_syntax_on_the_field_path_pass() {
        let deep = "[".repeat(MAX_DEPTH + 10) + &"]".repeat(MAX_DEPTH + 10);
        let cfg = config(&[("c", None)]);
        let mut fast = JsonStage::new(&cfg).unwrap();
        let mut slow = JsonStage::build(&cfg, false).unwrap();
        for line in [
            format!(r#"{{"x":{deep},"c":1}}"#),
            r#"{"x":1e400,"c":1}"#.to_string(),
            r#"{"x":"\udc00","c":1}"#.to_string(),
        ] {
            assert_eq!(extracted(&mut fast, &line)["c"], 1, "{line}");
            assert!(extracted(&mut slow, &line).is_empty(), "{line}");
        }
        for line in [
            r#"{"x":[1,],"c":1}"#,
            r#"{"x":"a\qb","c":1}"#,
            r#"{"x":-,"c":1}"#,
        ] {
            assert!(extracted(&mut fast, line).is_empty(), "{line}");
        }
    }

    #[test]
    fn jmespath_sees_numbers_as_float64() {
        let mut s = stage(&[("whole", Some("to_string(a)")), ("equal", Some("a == `5`"))]);
        assert!(!is_field_paths(&s));
        let m = extracted(&mut s, r#"{"a":5.0}"#);
        // go-jmespath marshals the float64 it decoded.
        assert_eq!(m["whole"], "5");
        assert_eq!(m["equal"], true);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Hostile, nearly-JSON lines: neither evaluator panics, and both agree on every
        /// line, `||` alternatives included.
        #[test]
        fn both_evaluators_agree_on_hostile_lines(
            line in r#"(\{|\}|\[|\]|"a"|"msg"|"message"|"log"|"level"|:|,|null|true|false|0|1\.5|"x"|""| |\\|"\\u00e9"|\{\}|\[\]){0,30}"#,
        ) {
            let cfg = config(&[
                ("m", Some("msg || message")),
                ("l", Some(r#"level || "log.level" || log.level"#)),
                ("a", None),
            ]);
            let mut fast = JsonStage::new(&cfg).unwrap();
            let mut slow = JsonStage::build(&cfg, false).unwrap();
            let (fv, fm) = run(&mut fast, &line);
            let (sv, sm) = run(&mut slow, &line);
            proptest::prop_assert_eq!(fv, sv, "{}", line);
            proptest::prop_assert_eq!(sorted(&fm), sorted(&sm), "{}", line);
        }
    }
}
