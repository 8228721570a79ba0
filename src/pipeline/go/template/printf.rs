//! Go's `fmt` as templates use it: `%v` printing of every value (what `{{ . }}`, `print` and
//! `println` show) and `printf`'s verbs, flags, widths, precisions and argument indexes,
//! with Go's error forms (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA ...)`).
//!
//! Owns the verbs and their padding; the digits of floats come from [`super::strconv`]. It
//! must not evaluate templates or call functions.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::limits::check_len;
use super::strconv::{fmt_float_e, fmt_float_f, fmt_float_g};
use super::{ExecError, TemplateData, Value, root_map};
use crate::model::labels::quote_go_into;

/// `%v` of a value, as Go's `fmt` prints it.
pub(super) fn fmt_v(v: &Value<'_>, data: &dyn TemplateData, out: &mut String) {
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

pub(super) fn sprint_v(v: &Value<'_>, data: &dyn TemplateData) -> String {
    let mut s = String::new();
    fmt_v(v, data, &mut s);
    s
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

/// How a formatted argument is padded to its width when the `0` flag is set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Zeros before everything (strings, booleans).
    Text,
    /// Zeros after the sign (floats).
    Number,
    /// Spaces regardless: integers, which did their zero padding themselves as Go's
    /// `fmtInteger` does, and infinities and NaN, which do not look like numbers.
    Spaces,
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %q %d %x %X %o %O %b %c %U %e %E
/// %f %F %g %G %t %%` with flags, width, precision, `*` and `%[n]` argument indexes, parsed
/// as Go's `doPrintf` parses them. Wrong types print Go's `%!d(string=x)`, missing arguments
/// `%!d(MISSING)`; a width or precision over Go's limit of 10⁶ given with `*` prints
/// `%!(BADWIDTH)`/`%!(BADPREC)`, and a literal one too long to read ends the format with
/// `%!(NOVERB)`, as in Go. Output past the 16 MiB limit is an error.
pub(super) fn sprintf(
    format: &str,
    args: &[Value<'_>],
    data: &dyn TemplateData,
    out: &mut String,
) -> Result<(), ExecError> {
    let start = out.len();
    let b = format.as_bytes();
    let end = b.len();
    let mut i = 0;
    let mut arg_num = 0;
    let mut reordered = false;
    while i < end {
        let mut good_arg = true;
        let literal = i;
        while i < end && b[i] != b'%' {
            i += 1;
        }
        out.push_str(&format[literal..i]);
        if i >= end {
            break;
        }
        i += 1;
        let mut spec = Spec::default();
        while i < end {
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
        let mut after_index = arg_number(
            b,
            &mut i,
            &mut arg_num,
            &mut good_arg,
            &mut reordered,
            args.len(),
        );
        if i < end && b[i] == b'*' {
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
            spec.width = parse_num(b, &mut i, end);
            if after_index && spec.width.is_some() {
                good_arg = false;
            }
        }
        // Go reads a precision only when something follows the dot.
        if i + 1 < end && b[i] == b'.' {
            i += 1;
            if after_index {
                good_arg = false;
            }
            after_index = arg_number(
                b,
                &mut i,
                &mut arg_num,
                &mut good_arg,
                &mut reordered,
                args.len(),
            );
            if i < end && b[i] == b'*' {
                i += 1;
                match star_arg(args, &mut arg_num) {
                    Some(p) if p >= 0 => spec.prec = Some(p as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                after_index = false;
            } else {
                spec.prec = Some(parse_num(b, &mut i, end).unwrap_or(0));
            }
        }
        if !after_index {
            arg_number(
                b,
                &mut i,
                &mut arg_num,
                &mut good_arg,
                &mut reordered,
                args.len(),
            );
        }
        // `i` only moved over ASCII, so it is on a character boundary.
        let Some(verb) = format.get(i..).and_then(|rest| rest.chars().next()) else {
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
            let fill = fmt_verb(verb, &spec, arg, data, &mut cell);
            pad(&cell, &spec, fill, out);
        } else {
            let _ = write!(out, "%!{verb}(MISSING)");
        }
        check_len("printf", out.len() - start)?;
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
            check_len("printf", out.len() - start)?;
        }
        out.push(')');
    }
    check_len("printf", out.len() - start)
}

/// Go's `tooLarge`: the bound on widths and precisions.
fn too_large(n: usize) -> bool {
    n > 1_000_000
}

/// Go's `parsenum`: the decimal number at `b[*i..end]`, if any. A number that grows past
/// Go's bound while more digits follow is "crazy long": `*i` moves to `end` and there is
/// no number, as in Go (so a width of 10⁷ still reads, one of 10⁹ does not).
fn parse_num(b: &[u8], i: &mut usize, end: usize) -> Option<usize> {
    let mut n: usize = 0;
    let mut found = false;
    while *i < end && b[*i].is_ascii_digit() {
        if too_large(n) {
            *i = end;
            return None;
        }
        n = n * 10 + usize::from(b[*i] - b'0');
        found = true;
        *i += 1;
    }
    found.then_some(n)
}

/// Go's `argNumber`: an explicit `[n]` at `b[*i..]` sets the next argument; returns whether
/// one was there and well formed. A bad index marks the verb `BADINDEX`.
fn arg_number(
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
    let (index, width, ok) = parse_arg_number(&b[*i..]);
    *i += width;
    match index {
        Some(n) if ok && n < num_args => {
            *arg_num = n;
            true
        }
        _ => {
            *good = false;
            ok
        }
    }
}

/// Go's `parseArgNumber` on `b` starting at `[`: the zero-based index (`None` for `[0]`),
/// how many bytes the bracket took, and whether it parsed.
fn parse_arg_number(b: &[u8]) -> (Option<usize>, usize, bool) {
    if b.len() < 3 {
        return (None, 1, false);
    }
    let Some(close) = b.iter().position(|&c| c == b']') else {
        return (None, 1, false);
    };
    let mut j = 1;
    match parse_num(b, &mut j, close) {
        Some(n) if j == close => (n.checked_sub(1), close + 1, true),
        _ => (None, close + 1, false),
    }
}

/// The int argument of a `*` width or precision; `None` when it is not an int or is beyond
/// Go's bound of 10⁶ (Go's `intFromArg`).
fn star_arg(args: &[Value<'_>], arg_num: &mut usize) -> Option<i64> {
    let arg = args.get(*arg_num)?;
    *arg_num += 1;
    match arg {
        Value::Int(n) if !too_large(usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX)) => {
            Some(*n)
        }
        _ => None,
    }
}

/// Pads `cell` to the spec's width: spaces, or zeros with `0` as `fill` says.
fn pad(cell: &str, spec: &Spec, fill: Fill, out: &mut String) {
    let len = cell.chars().count();
    let Some(width) = spec.width.filter(|w| *w > len) else {
        out.push_str(cell);
        return;
    };
    let n = width - len;
    if spec.minus {
        out.push_str(cell);
        out.extend(std::iter::repeat_n(' ', n));
    } else if spec.zero && fill != Fill::Spaces {
        let sign_len = usize::from(fill == Fill::Number && cell.starts_with(['-', '+', ' ']));
        out.push_str(&cell[..sign_len]);
        out.extend(std::iter::repeat_n('0', n));
        out.push_str(&cell[sign_len..]);
    } else {
        out.extend(std::iter::repeat_n(' ', n));
        out.push_str(cell);
    }
}

/// Go's `fmtInteger`: at least `prec` digits (or, with `0` and a width but no precision,
/// enough to fill the width), then the `#` prefix and the sign. Precision 0 prints nothing
/// for 0. The result is padded with spaces only.
fn fmt_integer(i: i64, verb: char, spec: &Spec, out: &mut String) {
    let u = i.unsigned_abs();
    let negative = i < 0;
    let prec = match (spec.prec, spec.width) {
        (Some(0), _) if u == 0 => return,
        (Some(p), _) => p,
        (None, Some(w)) if spec.zero => {
            w.saturating_sub(usize::from(negative || spec.plus || spec.space))
        }
        _ => 0,
    };
    let digits = match verb {
        'x' => format!("{u:x}"),
        'X' => format!("{u:X}"),
        'o' | 'O' => format!("{u:o}"),
        'b' => format!("{u:b}"),
        _ => u.to_string(),
    };
    let zeros = prec.saturating_sub(digits.len());
    if negative {
        out.push('-');
    } else if spec.plus {
        out.push('+');
    } else if spec.space {
        out.push(' ');
    }
    if spec.sharp {
        match verb {
            'b' => out.push_str("0b"),
            'o' if zeros == 0 && !digits.starts_with('0') => out.push('0'),
            'x' => out.push_str("0x"),
            'X' => out.push_str("0X"),
            _ => {}
        }
    }
    if verb == 'O' {
        out.push_str("0o");
    }
    out.extend(std::iter::repeat_n('0', zeros));
    out.push_str(&digits);
}

/// Formats one argument into `out` (the cell the caller pads); returns how to pad it.
fn fmt_verb(
    verb: char,
    spec: &Spec,
    arg: &Value<'_>,
    data: &dyn TemplateData,
    out: &mut String,
) -> Fill {
    // Go's `badVerb`: the value as `%v` with the same flags, width and precision, inside
    // the marker (which is then always wider than the width).
    let bad = |out: &mut String| {
        let _ = write!(out, "%!{verb}(");
        match arg {
            Value::Missing | Value::Nil => out.push_str("<nil>"),
            a => {
                out.push_str(a.type_name());
                out.push('=');
                let mut value = String::new();
                let fill = fmt_verb('v', spec, a, data, &mut value);
                pad(&value, spec, fill, out);
            }
        }
        out.push(')');
        Fill::Text
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
            Fill::Text
        }
        Value::Map(_) | Value::Root if verb == 'v' => {
            fmt_v(arg, data, out);
            Fill::Text
        }
        Value::Missing | Value::Nil if verb == 'v' => {
            out.push_str("<nil>");
            Fill::Text
        }
        Value::Bool(b) if matches!(verb, 'v' | 't') => {
            out.push_str(if *b { "true" } else { "false" });
            Fill::Text
        }
        Value::Str(s) => match verb {
            'v' | 's' => {
                match spec.prec {
                    Some(p) => out.extend(s.chars().take(p)),
                    None => out.push_str(s),
                }
                Fill::Text
            }
            'q' => {
                quote_go_into(s, out);
                Fill::Text
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
                Fill::Text
            }
            _ => bad(out),
        },
        Value::Int(i) => match verb {
            'v' | 'd' | 'x' | 'X' | 'o' | 'O' | 'b' => {
                fmt_integer(*i, verb, spec, out);
                Fill::Spaces
            }
            'c' => {
                out.push(char_of(*i));
                Fill::Text
            }
            'q' => {
                let c = char_of(*i);
                let mut quoted = String::new();
                quote_go_into(&c.to_string(), &mut quoted);
                out.push('\'');
                out.push_str(&quoted[1..quoted.len() - 1].replace("\\\"", "\""));
                out.push('\'');
                Fill::Text
            }
            'U' => {
                let _ = write!(out, "U+{:04X}", i.unsigned_abs());
                Fill::Text
            }
            _ => bad(out),
        },
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
            if f.is_finite() {
                Fill::Number
            } else {
                Fill::Spaces
            }
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
