//! Sprig's lists and defaults: `list first last join split splitList` and `default empty
//! coalesce ternary`, with Go's truth for "empty".
//!
//! Owns Sprig's shapes: `split` makes a `map[string]string` keyed `_0`, `_1`, ...;
//! `splitList` a list; `join` prints non-strings with `%v`.

use std::borrow::Cow;

use super::super::limits::{ELEMENT_BYTES, check_len};
use super::super::{ExecError, Value, exec_err, truth};
use super::{Call, FuncName, bool_arg, str_arg, strval, want_args, want_at_least};

/// Sprig's list and default functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::pipeline::go::template) enum ListFunc {
    Default,
    Empty,
    Coalesce,
    Ternary,
    Join,
    SplitList,
    Split,
    First,
    Last,
    List,
}

/// Each function's name in templates.
pub(super) const TABLE: &[(&str, ListFunc)] = &[
    ("default", ListFunc::Default),
    ("empty", ListFunc::Empty),
    ("coalesce", ListFunc::Coalesce),
    ("ternary", ListFunc::Ternary),
    ("join", ListFunc::Join),
    ("splitList", ListFunc::SplitList),
    ("split", ListFunc::Split),
    ("first", ListFunc::First),
    ("last", ListFunc::Last),
    ("list", ListFunc::List),
];

impl FuncName for ListFunc {
    fn name(self) -> &'static str {
        super::name_in(TABLE, self)
    }
}

impl ListFunc {
    pub(super) fn call<'a>(
        self,
        mut args: Vec<Value<'a>>,
        cx: &mut Call<'_>,
    ) -> Result<Value<'a>, ExecError> {
        use ListFunc as F;
        let f = self;
        let data = cx.data;
        let s = |s: String| Ok(Value::Str(Cow::Owned(s)));
        match f {
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
                let separators = parts.len().saturating_sub(1).saturating_mul(sep.len());
                let text: usize = parts.iter().map(String::len).sum();
                check_len(f.name(), text.saturating_add(separators))?;
                s(parts.join(sep))
            }
            F::SplitList | F::Split => {
                want_args(f, &args, 2)?;
                let (sep, text) = (str_arg(&args[0])?, str_arg(&args[1])?);
                // Counted before the parts are built: one character of text can become an
                // element, which takes far more memory than the character.
                let count = if sep.is_empty() {
                    text.chars().count()
                } else {
                    text.matches(sep).count() + 1
                };
                let weight = (count as u64).saturating_mul(ELEMENT_BYTES);
                check_len(f.name(), usize::try_from(weight).unwrap_or(usize::MAX))?;
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
        }
    }
}
