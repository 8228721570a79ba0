//! Sprig's integer arithmetic and conversions: `add add1 sub mul div mod max min atoi int
//! int64 float64`.
//!
//! Owns spf13/cast's lenient conversions (a string that is not a number is 0, as Sprig
//! ignores the error) and Go's wrapping int64 arithmetic; division by zero is Go's runtime
//! error, as an execution error.

use super::super::strconv::parse_go_int;
use super::super::{ExecError, Value, exec_err};
use super::{Call, FuncName, str_arg, want_args, want_at_least};

/// Sprig's arithmetic and conversion functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::pipeline::go::template) enum MathFunc {
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
}

/// Each function's name in templates.
pub(super) const TABLE: &[(&str, MathFunc)] = &[
    ("add", MathFunc::Add),
    ("add1", MathFunc::Add1),
    ("sub", MathFunc::Sub),
    ("mul", MathFunc::Mul),
    ("div", MathFunc::Div),
    ("mod", MathFunc::Mod),
    ("max", MathFunc::Max),
    ("min", MathFunc::Min),
    ("atoi", MathFunc::Atoi),
    ("int", MathFunc::Int),
    ("int64", MathFunc::Int64),
    ("float64", MathFunc::Float64),
];

impl FuncName for MathFunc {
    fn name(self) -> &'static str {
        super::name_in(TABLE, self)
    }
}

impl MathFunc {
    pub(super) fn call<'a>(
        self,
        args: Vec<Value<'a>>,
        _cx: &mut Call<'_>,
    ) -> Result<Value<'a>, ExecError> {
        use MathFunc as F;
        let f = self;
        match f {
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

fn to_float64(v: &Value<'_>) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}
