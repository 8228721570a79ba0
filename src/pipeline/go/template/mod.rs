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
//!
//! Hostile data cannot make an execution unbounded: every function's result and the output
//! stay within 16 MiB, and an execution has a budget of steps (see [`limits`]); going over
//! either is an execution error for that entry.
//!
//! The work is split as Go splits it: [`lexer`] and [`parser`] at load, [`executor`] per
//! entry, with [`printf`] for Go's `fmt` and [`funcs`] for the function map.

mod executor;
mod funcs;
#[cfg(test)]
mod fuzz;
mod lexer;
mod limits;
mod parser;
mod printf;
mod strconv;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use funcs::RegexCache;
use parser::Node;

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
        Ok(Self {
            root: parser::parse(text)?,
            regexes: RegexCache::default(),
        })
    }

    /// Appends the output to `out`. On error `out` holds partial output the caller should
    /// discard, as Promtail does.
    pub fn execute(&mut self, data: &dyn TemplateData, out: &mut String) -> Result<(), ExecError> {
        executor::execute(&self.root, data, &mut self.regexes, out)
    }
}

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
