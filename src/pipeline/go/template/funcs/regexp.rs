//! Regular-expression functions: Promtail's `regexReplaceAll` and `regexReplaceAllLiteral`,
//! Sprig's `regexMatch` and `regexFind`, with Go's RE2 syntax (see [`crate::pipeline::go::regex`]).
//!
//! Owns the cache of compiled patterns: Promtail compiles the pattern on every call, which
//! would dominate a hot pipeline.

use std::borrow::Cow;
use std::collections::HashMap;

use regex::Regex;

use super::super::limits::{MAX_OUTPUT, check_len};
use super::super::{ExecError, Value, exec_err};
use super::{Call, FuncName, str_arg, want_args};

/// The regular-expression functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::pipeline::go::template) enum RegexpFunc {
    ReplaceAll,
    ReplaceAllLiteral,
    Match,
    Find,
}

/// Each function's name in templates.
pub(super) const TABLE: &[(&str, RegexpFunc)] = &[
    ("regexReplaceAll", RegexpFunc::ReplaceAll),
    ("regexReplaceAllLiteral", RegexpFunc::ReplaceAllLiteral),
    ("regexMatch", RegexpFunc::Match),
    ("regexFind", RegexpFunc::Find),
];

impl FuncName for RegexpFunc {
    fn name(self) -> &'static str {
        super::name_in(TABLE, self)
    }
}

impl RegexpFunc {
    pub(super) fn call<'a>(
        self,
        args: Vec<Value<'a>>,
        cx: &mut Call<'_>,
    ) -> Result<Value<'a>, ExecError> {
        use RegexpFunc as F;
        let f = self;
        let s = |s: String| Ok(Value::Str(Cow::Owned(s)));
        match f {
            F::ReplaceAll | F::ReplaceAllLiteral => {
                want_args(f, &args, 3)?;
                let (pattern, text, repl) =
                    (str_arg(&args[0])?, str_arg(&args[1])?, str_arg(&args[2])?);
                let re = cx.regexes.get(pattern)?;
                s(replace_all(re, text, repl, f == F::ReplaceAll, f.name())?)
            }
            F::Match => {
                want_args(f, &args, 2)?;
                let (pattern, text) = (str_arg(&args[0])?, str_arg(&args[1])?);
                // Sprig ignores a bad pattern here and answers false.
                Ok(Value::Bool(
                    cx.regexes.get(pattern).is_ok_and(|re| re.is_match(text)),
                ))
            }
            F::Find => {
                want_args(f, &args, 2)?;
                let (pattern, text) = (str_arg(&args[0])?, str_arg(&args[1])?);
                let found = cx
                    .regexes
                    .get(pattern)?
                    .find(text)
                    .map_or("", |m| m.as_str());
                s(found.to_string())
            }
        }
    }
}

/// Compiled patterns of one template, by pattern text.
#[derive(Default)]
pub(in crate::pipeline::go::template) struct RegexCache {
    pub(in crate::pipeline::go::template) compiled: HashMap<String, Regex>,
}

impl RegexCache {
    /// Patterns are nearly always literals in the template, so a small cache holds them all;
    /// patterns built from log data could grow it without bound, so it is emptied when full.
    const CAPACITY: usize = 64;

    pub(super) fn get(&mut self, pattern: &str) -> Result<&Regex, ExecError> {
        if !self.compiled.contains_key(pattern) {
            let re = crate::pipeline::go::regex::compile(pattern)
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

/// `Regex::replace_all` (with `$1`/`${name}` references when `expand`), refusing a result
/// over the limit before it is built: the replacement is copied once per match, and each
/// reference brings in captured text, at most the whole match.
fn replace_all(
    re: &Regex,
    text: &str,
    repl: &str,
    expand: bool,
    name: &str,
) -> Result<String, ExecError> {
    let references = if expand { repl.matches('$').count() } else { 0 };
    let worst_for = |len: usize| repl.len().saturating_add(references.saturating_mul(len));
    let bound = re.find_iter(text).fold(text.len(), |bound, m| {
        (bound - m.len()).saturating_add(worst_for(m.len()))
    });
    if bound <= MAX_OUTPUT {
        return Ok(if expand {
            re.replace_all(text, repl).into_owned()
        } else {
            re.replace_all(text, regex::NoExpand(repl)).into_owned()
        });
    }
    if !expand {
        // Without references the bound is the result's length.
        check_len(name, bound)?;
    }
    // References may be to short groups: expand match by match (as `replace_all` does),
    // stopping at the limit. A single match that could expand past it is refused.
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&text[last..m.start()]);
        check_len(name, worst_for(m.len()))?;
        caps.expand(repl, &mut out);
        check_len(name, out.len())?;
        last = m.end();
    }
    out.push_str(&text[last..]);
    check_len(name, out.len())?;
    Ok(out)
}
