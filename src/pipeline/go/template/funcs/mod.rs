//! The function map templates can call: Go's builtins, Promtail's functions and the Sprig
//! functions log pipelines use, one table per group (see each group's module).
//!
//! Owns looking a name up (once, at parse time), calling a function with evaluated
//! arguments, and the argument checks every group shares (Go's "wrong number of args",
//! "expected string" errors). It must not know how templates are parsed or walked.

mod builtins;
mod encoding;
mod lists;
mod math;
mod regexp;
mod strings;

use super::limits::{Budget, check_len, work_bytes};
use super::printf::sprint_v;
use super::{ExecError, TemplateData, Value, exec_err};

pub(super) use regexp::RegexCache;

/// A function of the map, found by name at parse time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Func {
    Builtin(builtins::Builtin),
    Strings(strings::StringFunc),
    Lists(lists::ListFunc),
    Math(math::MathFunc),
    Encoding(encoding::EncodingFunc),
    Regexp(regexp::RegexpFunc),
}

/// A function's name as templates write it, for lookups and error messages.
pub(super) trait FuncName: Copy {
    fn name(self) -> &'static str;
}

fn name_in<F: Copy + PartialEq>(table: &[(&'static str, F)], f: F) -> &'static str {
    table.iter().find(|(_, g)| *g == f).map_or("?", |(n, _)| n)
}

fn find_in<F: Copy>(table: &[(&str, F)], name: &str) -> Option<F> {
    table.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

impl Func {
    pub(super) fn lookup(name: &str) -> Option<Func> {
        find_in(builtins::TABLE, name)
            .map(Func::Builtin)
            .or_else(|| find_in(strings::TABLE, name).map(Func::Strings))
            .or_else(|| find_in(lists::TABLE, name).map(Func::Lists))
            .or_else(|| find_in(math::TABLE, name).map(Func::Math))
            .or_else(|| find_in(encoding::TABLE, name).map(Func::Encoding))
            .or_else(|| find_in(regexp::TABLE, name).map(Func::Regexp))
    }

    /// `and` (stops at the first false argument) or `or` (at the first true one): evaluated
    /// lazily by the executor. `Some(true)` for `or`.
    pub(super) fn short_circuit(self) -> Option<bool> {
        match self {
            Func::Builtin(builtins::Builtin::And) => Some(false),
            Func::Builtin(builtins::Builtin::Or) => Some(true),
            _ => None,
        }
    }
}

/// Every function name, for the fuzz tests.
#[cfg(test)]
pub(super) fn all_names() -> Vec<&'static str> {
    fn names<F>(table: &'static [(&'static str, F)]) -> impl Iterator<Item = &'static str> {
        table.iter().map(|(n, _)| *n)
    }
    names(builtins::TABLE)
        .chain(names(strings::TABLE))
        .chain(names(lists::TABLE))
        .chain(names(math::TABLE))
        .chain(names(encoding::TABLE))
        .chain(names(regexp::TABLE))
        .collect()
}

impl FuncName for Func {
    fn name(self) -> &'static str {
        match self {
            Func::Builtin(f) => f.name(),
            Func::Strings(f) => f.name(),
            Func::Lists(f) => f.name(),
            Func::Math(f) => f.name(),
            Func::Encoding(f) => f.name(),
            Func::Regexp(f) => f.name(),
        }
    }
}

/// What a function call may use besides its arguments.
pub(super) struct Call<'c> {
    pub(super) data: &'c dyn TemplateData,
    pub(super) regexes: &'c mut RegexCache,
    pub(super) budget: &'c Budget,
}

/// Calls `f` with its evaluated arguments (the piped value last). The call is charged to
/// the budget by what it reads and returns, and a result over the 16 MiB limit is an error;
/// functions whose result can be far larger than their arguments check before they build it.
pub(super) fn call<'a>(
    f: Func,
    args: Vec<Value<'a>>,
    cx: &mut Call<'_>,
) -> Result<Value<'a>, ExecError> {
    let read: u64 = args.iter().map(work_bytes).sum();
    cx.budget.spend(1)?;
    cx.budget.spend_bytes(read)?;
    let result = match f {
        Func::Builtin(f) => f.call(args, cx),
        Func::Strings(f) => f.call(args, cx),
        Func::Lists(f) => f.call(args, cx),
        Func::Math(f) => f.call(args, cx),
        Func::Encoding(f) => f.call(args, cx),
        Func::Regexp(f) => f.call(args, cx),
    }?;
    let written = work_bytes(&result);
    check_len(f.name(), usize::try_from(written).unwrap_or(usize::MAX))?;
    cx.budget.spend_bytes(written)?;
    Ok(result)
}

pub(super) fn want_args(f: impl FuncName, args: &[Value<'_>], n: usize) -> Result<(), ExecError> {
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

pub(super) fn want_at_least(
    f: impl FuncName,
    args: &[Value<'_>],
    n: usize,
) -> Result<(), ExecError> {
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
pub(super) fn str_arg<'v>(v: &'v Value<'_>) -> Result<&'v str, ExecError> {
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
pub(super) fn int_arg(v: &Value<'_>) -> Result<i64, ExecError> {
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

pub(super) fn bool_arg(v: &Value<'_>) -> Result<bool, ExecError> {
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
pub(super) fn strval(v: &Value<'_>, data: &dyn TemplateData) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        other => sprint_v(other, data),
    }
}
