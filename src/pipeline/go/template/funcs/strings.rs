//! String functions: Promtail's Go `strings` functions (`ToLower ToUpper Replace Trim
//! TrimLeft TrimRight TrimPrefix TrimSuffix TrimSpace`) and Sprig's (`upper lower title replace
//! trim trimAll trimPrefix trimSuffix trunc substr contains hasPrefix hasSuffix quote squote
//! repeat nospace indent nindent cat toString`).
//!
//! Owns Go's per-rune semantics where Rust's differ (case mapping, `strings.Title`) and the
//! character-boundary rules for cutting (see the template module's notes on invalid UTF-8).
//! Sprig's argument order puts the string last (`trimPrefix "x" .s`), Promtail's first.

use std::borrow::Cow;

use super::super::limits::check_len;
use super::super::printf::fmt_v;
use super::super::{ExecError, Value, exec_err};
use super::{Call, FuncName, int_arg, str_arg, strval, want_args};
use crate::model::labels::quote_go_into;

/// Promtail's and Sprig's string functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::pipeline::go::template) enum StringFunc {
    ToLower,
    ToUpper,
    Replace,
    Trim,
    TrimLeft,
    TrimRight,
    TrimPrefix,
    TrimSuffix,
    TrimSpace,
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
}

/// Each function's name in templates.
pub(super) const TABLE: &[(&str, StringFunc)] = &[
    ("ToLower", StringFunc::ToLower),
    ("ToUpper", StringFunc::ToUpper),
    ("Replace", StringFunc::Replace),
    ("Trim", StringFunc::Trim),
    ("TrimLeft", StringFunc::TrimLeft),
    ("TrimRight", StringFunc::TrimRight),
    ("TrimPrefix", StringFunc::TrimPrefix),
    ("TrimSuffix", StringFunc::TrimSuffix),
    ("TrimSpace", StringFunc::TrimSpace),
    ("trunc", StringFunc::Trunc),
    ("contains", StringFunc::Contains),
    ("hasPrefix", StringFunc::HasPrefix),
    ("hasSuffix", StringFunc::HasSuffix),
    ("upper", StringFunc::Upper),
    ("lower", StringFunc::Lower),
    ("title", StringFunc::Title),
    ("replace", StringFunc::SprigReplace),
    ("quote", StringFunc::Quote),
    ("squote", StringFunc::Squote),
    ("toString", StringFunc::ToString),
    ("trim", StringFunc::SprigTrim),
    ("trimAll", StringFunc::TrimAll),
    ("trimPrefix", StringFunc::SprigTrimPrefix),
    ("trimSuffix", StringFunc::SprigTrimSuffix),
    ("repeat", StringFunc::Repeat),
    ("substr", StringFunc::Substr),
    ("nospace", StringFunc::Nospace),
    ("indent", StringFunc::Indent),
    ("nindent", StringFunc::Nindent),
    ("cat", StringFunc::Cat),
];

impl FuncName for StringFunc {
    fn name(self) -> &'static str {
        super::name_in(TABLE, self)
    }
}

impl StringFunc {
    pub(super) fn call<'a>(
        self,
        args: Vec<Value<'a>>,
        cx: &mut Call<'_>,
    ) -> Result<Value<'a>, ExecError> {
        use StringFunc as F;
        let f = self;
        let data = cx.data;
        let s = |s: String| Ok(Value::Str(Cow::Owned(s)));
        match f {
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
                // A negative count replaces every match, as in Go.
                let limit = usize::try_from(int_arg(&args[3])?).ok();
                check_len(f.name(), replaced_len(text, old, new, limit))?;
                s(match limit {
                    Some(n) => text.replacen(old, new, n),
                    None => text.replace(old, new),
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
                check_len(f.name(), replaced_len(text, old, new, None))?;
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
                check_len(f.name(), text.len().saturating_mul(n))?;
                s(text.repeat(n))
            }
            F::Substr => {
                want_args(f, &args, 3)?;
                let (start, end, text) =
                    (int_arg(&args[0])?, int_arg(&args[1])?, str_arg(&args[2])?);
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
                check_len(
                    f.name(),
                    n.saturating_mul(lines).saturating_add(text.len() + 1),
                )?;
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
                let mut out = String::new();
                let present = args
                    .iter()
                    .filter(|a| !matches!(a, Value::Missing | Value::Nil));
                for (i, a) in present.enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    fmt_v(a, data, &mut out);
                    check_len(f.name(), out.len())?;
                }
                s(out)
            }
        }
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

/// The length of `text` with `old` replaced by `new` (at most `limit` times), computed
/// before building it: an empty `old` matches before every character and at the end, as in
/// Go, so the result can be far longer than `text`.
fn replaced_len(text: &str, old: &str, new: &str, limit: Option<usize>) -> usize {
    let matches = if old.is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(old).count()
    };
    let n = limit.map_or(matches, |limit| limit.min(matches));
    (text.len() - n * old.len()).saturating_add(n.saturating_mul(new.len()))
}
