//! Go's `text/template` builtins: `and or not len index slice print printf println eq ne lt
//! le gt ge`, with Go's comparison rules (basic kinds only, untyped nil equal to missing) and
//! its error messages.
//!
//! Owns what these functions compute. `and`/`or` short-circuit, so the executor evaluates
//! them itself; they only arrive here through a bug. It must not know about other functions.

use std::borrow::Cow;

use super::super::limits::check_len;
use super::super::printf::{fmt_v, sprintf};
use super::super::{ExecError, TemplateData, Value, exec_err, truth};
use super::{Call, FuncName, int_arg, str_arg, want_args, want_at_least};

/// Go's builtin functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::pipeline::go::template) enum Builtin {
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
}

/// Each function's name in templates.
pub(super) const TABLE: &[(&str, Builtin)] = &[
    ("and", Builtin::And),
    ("or", Builtin::Or),
    ("not", Builtin::Not),
    ("len", Builtin::Len),
    ("index", Builtin::Index),
    ("slice", Builtin::Slice),
    ("print", Builtin::Print),
    ("printf", Builtin::Printf),
    ("println", Builtin::Println),
    ("eq", Builtin::Eq),
    ("ne", Builtin::Ne),
    ("lt", Builtin::Lt),
    ("le", Builtin::Le),
    ("gt", Builtin::Gt),
    ("ge", Builtin::Ge),
];

impl FuncName for Builtin {
    fn name(self) -> &'static str {
        super::name_in(TABLE, self)
    }
}

impl Builtin {
    pub(super) fn call<'a>(
        self,
        mut args: Vec<Value<'a>>,
        cx: &mut Call<'_>,
    ) -> Result<Value<'a>, ExecError> {
        use Builtin as F;
        let f = self;
        let data = cx.data;
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
            F::Print => s(sprint(f, &args, data, false)?),
            F::Println => s(sprint(f, &args, data, true)?),
            F::Printf => {
                want_at_least(f, &args, 1)?;
                let format = str_arg(&args[0])?;
                let mut out = String::new();
                sprintf(format, &args[1..], data, &mut out)?;
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
        }
    }
}

/// Go's `Sprint` (`always_space`: `Sprintln`), stopping at the output limit.
fn sprint(
    f: Builtin,
    args: &[Value<'_>],
    data: &dyn TemplateData,
    always_space: bool,
) -> Result<String, ExecError> {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &Value<'_>| matches!(v, Value::Str(_));
        if i > 0 && (always_space || !(is_str(a) || is_str(&args[i - 1]))) {
            out.push(' ');
        }
        fmt_v(a, data, &mut out);
        check_len(f.name(), out.len())?;
    }
    if always_space {
        out.push('\n');
    }
    Ok(out)
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
