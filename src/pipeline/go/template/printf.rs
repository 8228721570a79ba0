//! Go's `fmt` as templates use it: `%v` printing of every value (what `{{ . }}`, `print` and
//! `println` show) and `printf`'s verbs, flags, widths, precisions and argument indexes,
//! with Go's error forms (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA ...)`).
//!
//! Owns formatting numbers as Go's `strconv` does (shortest float forms, `%g`'s exponent
//! threshold). It must not evaluate templates or call functions.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{TemplateData, Value, root_map};
use crate::labels::quote_go_into;

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

/// The decimal digits and decimal-point position of `|f|` (`digits` × 10^(dp − len)),
/// shortest round-trip when `sig` is `None`, else rounded to `sig` significant digits, with
/// trailing zeros dropped as Go's `strconv` does.
pub(super) fn float_digits(f: f64, sig: Option<usize>) -> (String, i32) {
    let e = match sig {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, f.abs()),
    };
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    (digits, exp + 1)
}

fn push_exponent(exp: i32, upper: bool, out: &mut String) {
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.unsigned_abs());
}

fn float_special(f: f64, out: &mut String) -> bool {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        return false;
    }
    true
}

/// Go's `%g` (`prec` `None`: shortest, as `%v` prints floats).
fn fmt_float_g(f: f64, prec: Option<usize>, upper: bool, out: &mut String) {
    if float_special(f, out) {
        return;
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    let (digits, dp) = if f == 0.0 {
        ("0".to_string(), 1)
    } else {
        float_digits(f, prec.map(|p| p.max(1)))
    };
    let nd = digits.len() as i32;
    let mut p = prec.map_or(nd, |p| p.max(1) as i32);
    let eprec = if prec.is_none() {
        6
    } else if p > nd && nd >= dp {
        nd
    } else {
        p
    };
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        p = p.min(nd);
        out.push_str(&digits[..1]);
        if p > 1 {
            out.push('.');
            out.push_str(&digits[1..p as usize]);
        }
        push_exponent(exp, upper, out);
    } else {
        if p > dp {
            p = nd;
        }
        push_fixed(&digits, dp, (p - dp).max(0) as usize, out);
    }
}

/// Digits with the decimal point at `dp`, `frac` digits after it.
fn push_fixed(digits: &str, dp: i32, frac: usize, out: &mut String) {
    let digit = |i: i32| -> char {
        if i >= 0 && (i as usize) < digits.len() {
            digits.as_bytes()[i as usize] as char
        } else {
            '0'
        }
    };
    if dp > 0 {
        for i in 0..dp {
            out.push(digit(i));
        }
    } else {
        out.push('0');
    }
    if frac > 0 {
        out.push('.');
        for i in 0..frac as i32 {
            out.push(digit(dp + i));
        }
    }
}

/// Go's `%e` with `prec` digits after the point.
fn fmt_float_e(f: f64, prec: usize, upper: bool, out: &mut String) {
    if float_special(f, out) {
        return;
    }
    let s = format!("{:.*e}", prec, f);
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    out.push_str(mant);
    push_exponent(exp.parse().unwrap_or(0), upper, out);
}

fn fmt_float_f(f: f64, prec: usize, out: &mut String) {
    if float_special(f, out) {
        return;
    }
    let _ = write!(out, "{:.*}", prec, f);
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

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %q %d %x %X %o %b %c %U %e %E %f
/// %F %g %G %t %%` with flags, width, precision, `*` and `%[n]` argument indexes. Wrong
/// types print Go's `%!d(string=x)`, missing arguments `%!d(MISSING)`.
pub(super) fn sprintf(format: &str, args: &[Value<'_>], data: &dyn TemplateData, out: &mut String) {
    let b = format.as_bytes();
    let mut i = 0;
    let mut arg_num = 0;
    let mut reordered = false;
    while i < b.len() {
        let literal = i;
        while i < b.len() && b[i] != b'%' {
            i += 1;
        }
        out.push_str(&format[literal..i]);
        if i >= b.len() {
            break;
        }
        i += 1;
        let mut spec = Spec::default();
        while i < b.len() {
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
        let mut good_arg = true;
        let mut after_index = arg_index(
            b,
            &mut i,
            &mut arg_num,
            &mut good_arg,
            &mut reordered,
            args.len(),
        );
        if i < b.len() && b[i] == b'*' {
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
            spec.width = digits(b, &mut i);
            if after_index && spec.width.is_some() {
                good_arg = false;
            }
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            if after_index {
                good_arg = false;
            }
            after_index = arg_index(
                b,
                &mut i,
                &mut arg_num,
                &mut good_arg,
                &mut reordered,
                args.len(),
            );
            if i < b.len() && b[i] == b'*' {
                i += 1;
                match star_arg(args, &mut arg_num) {
                    Some(p) if p >= 0 => spec.prec = Some(p as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                after_index = false;
            } else {
                spec.prec = Some(digits(b, &mut i).unwrap_or(0));
            }
        }
        if !after_index {
            arg_index(
                b,
                &mut i,
                &mut arg_num,
                &mut good_arg,
                &mut reordered,
                args.len(),
            );
        }
        let Some(verb) = format[i..].chars().next() else {
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
            let numeric = fmt_verb(verb, &spec, arg, data, &mut cell);
            pad(&cell, &spec, numeric, out);
        } else {
            let _ = write!(out, "%!{verb}(MISSING)");
        }
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
        }
        out.push(')');
    }
}

/// A decimal number at `b[*i..]`, if any (Go caps widths at 10⁶).
fn digits(b: &[u8], i: &mut usize) -> Option<usize> {
    let start = *i;
    let mut n: usize = 0;
    while *i < b.len() && b[*i].is_ascii_digit() {
        n = (n * 10 + usize::from(b[*i] - b'0')).min(1_000_000);
        *i += 1;
    }
    (*i > start).then_some(n)
}

/// Go's `argNumber`: an explicit `[n]` sets the next argument; returns whether one was there.
fn arg_index(
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
    let Some(close) = b[*i..].iter().position(|&c| c == b']') else {
        *good = false;
        *i += 1;
        return false;
    };
    let mut j = *i + 1;
    let n = digits(b, &mut j);
    let end = *i + close;
    *i = end + 1;
    match n {
        Some(n) if j == end && n >= 1 && n <= num_args => {
            *arg_num = n - 1;
            true
        }
        Some(_) if j == end => {
            *good = false;
            true
        }
        _ => {
            *good = false;
            false
        }
    }
}

/// The int argument of a `*` width or precision; `None` when it is not an int or is beyond
/// Go's 10⁶ limit.
fn star_arg(args: &[Value<'_>], arg_num: &mut usize) -> Option<i64> {
    let arg = args.get(*arg_num)?;
    *arg_num += 1;
    match arg {
        Value::Int(n) if n.unsigned_abs() <= 1_000_000 => Some(*n),
        _ => None,
    }
}

/// Pads `cell` to the spec's width: spaces, or zeros (after a number's sign) with `0`.
fn pad(cell: &str, spec: &Spec, numeric: bool, out: &mut String) {
    let len = cell.chars().count();
    let Some(width) = spec.width.filter(|w| *w > len) else {
        out.push_str(cell);
        return;
    };
    let fill = width - len;
    if spec.minus {
        out.push_str(cell);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero {
        let sign_len = usize::from(numeric && cell.starts_with(['-', '+', ' ']));
        out.push_str(&cell[..sign_len]);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(&cell[sign_len..]);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(cell);
    }
}

/// Formats one argument; returns whether it was printed as a number (for zero padding).
fn fmt_verb(
    verb: char,
    spec: &Spec,
    arg: &Value<'_>,
    data: &dyn TemplateData,
    out: &mut String,
) -> bool {
    let bad = |out: &mut String| {
        let _ = write!(out, "%!{verb}(");
        match arg {
            Value::Missing | Value::Nil => out.push_str("<nil>"),
            a => {
                out.push_str(a.type_name());
                out.push('=');
                fmt_v(a, data, out);
            }
        }
        out.push(')');
        false
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
            false
        }
        Value::Map(_) | Value::Root if verb == 'v' => {
            fmt_v(arg, data, out);
            false
        }
        Value::Missing | Value::Nil if verb == 'v' => {
            out.push_str("<nil>");
            false
        }
        Value::Bool(b) if matches!(verb, 'v' | 't') => {
            out.push_str(if *b { "true" } else { "false" });
            false
        }
        Value::Str(s) => match verb {
            'v' | 's' => {
                match spec.prec {
                    Some(p) => out.extend(s.chars().take(p)),
                    None => out.push_str(s),
                }
                false
            }
            'q' => {
                quote_go_into(s, out);
                false
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
                false
            }
            _ => bad(out),
        },
        Value::Int(i) => {
            let sign = if *i < 0 {
                "-"
            } else if spec.plus {
                "+"
            } else if spec.space {
                " "
            } else {
                ""
            };
            let u = i.unsigned_abs();
            match verb {
                'v' | 'd' => {
                    let _ = write!(out, "{sign}{u}");
                }
                'x' => {
                    let _ = write!(out, "{sign}{}{u:x}", if spec.sharp { "0x" } else { "" });
                }
                'X' => {
                    let _ = write!(out, "{sign}{}{u:X}", if spec.sharp { "0X" } else { "" });
                }
                'o' => {
                    let _ = write!(out, "{sign}{}{u:o}", if spec.sharp { "0" } else { "" });
                }
                'b' => {
                    let _ = write!(out, "{sign}{u:b}");
                }
                'c' => {
                    out.push(char_of(*i));
                    return false;
                }
                'q' => {
                    let c = char_of(*i);
                    let mut quoted = String::new();
                    quote_go_into(&c.to_string(), &mut quoted);
                    out.push('\'');
                    out.push_str(&quoted[1..quoted.len() - 1].replace("\\\"", "\""));
                    out.push('\'');
                    return false;
                }
                'U' => {
                    let _ = write!(out, "U+{u:04X}");
                    return false;
                }
                _ => return bad(out),
            }
            true
        }
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
            true
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
