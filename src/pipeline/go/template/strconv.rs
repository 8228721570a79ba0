//! Go's `strconv` as templates depend on it: integer literals in every base Go accepts
//! (`0x1f`, `0o17`, `017`, `0b101`, `1_000`), the escapes of quoted literals, and
//! `FormatFloat`'s digits (shortest round-trip forms, `%g`'s choice of exponent form).
//!
//! Shared by the lexer and parser (literals in the template), the conversion functions
//! (`int`, `add`, ... on strings from log lines) and `printf`. It must not know about
//! templates.

use std::fmt::Write as _;

/// A double's exact decimal expansion has at most 767 significant digits and 1074 digits
/// after the point: asked for more (a precision up to Go's bound of 10⁶, or more through a
/// literal), Go prints zeros, so only this many are asked of Rust's formatter (which
/// refuses precisions past 65535) and the rest are zeros.
const EXACT_SIGNIFICANT: usize = 800;
const EXACT_FRACTION: usize = 1100;

/// `strconv.ParseInt(s, 0, 64)`.
pub(super) fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (digits, radix, prefixed) = if let Some(h) = lower.strip_prefix("0x") {
        (h, 16, true)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (o, 8, true)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (b, 2, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8, true)
    } else {
        (lower.as_str(), 10, false)
    };
    // Underscores only between digits (or right after a base prefix), as Go allows.
    if digits.contains('_') {
        let b = digits.as_bytes();
        let ok = b.last() != Some(&b'_')
            && !digits.contains("__")
            && (prefixed || b.first() != Some(&b'_'));
        if !ok {
            return None;
        }
    }
    let clean = digits.replace('_', "");
    if clean.is_empty() || clean.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u64::from_str_radix(&clean, radix).ok()?;
    if neg {
        if magnitude <= i64::MAX as u64 + 1 {
            Some((magnitude as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Go's `strconv.Unquote` escapes for the body of a `"..."` or `'...'` literal. Byte
/// escapes that do not form UTF-8 become U+FFFD.
pub(super) fn unquote_go(body: &str) -> Result<String, String> {
    if !body.contains('\\') {
        return Ok(body.to_string());
    }
    let mut bytes = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(e) = chars.next() else {
            return Err("invalid syntax in quoted string".into());
        };
        let simple = match e {
            'a' => Some(7u8),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            '\'' => Some(b'\''),
            _ => None,
        };
        if let Some(b) = simple {
            bytes.push(b);
            continue;
        }
        let (digits, radix) = match e {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return Err(format!("invalid escape \\{e} in quoted string")),
        };
        let mut text: String = chars.by_ref().take(digits).collect();
        if radix == 8 {
            text.insert(0, e);
        }
        let code = u32::from_str_radix(&text, radix)
            .map_err(|_| format!("invalid escape \\{e}{text} in quoted string"))?;
        if e == 'x' || radix == 8 {
            if code > 255 {
                return Err(format!("invalid octal escape \\{text}"));
            }
            bytes.push(code as u8);
        } else {
            let c = char::from_u32(code)
                .ok_or_else(|| format!("invalid Unicode escape \\{e}{text}"))?;
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The decimal digits and decimal-point position of `|f|` (`digits` × 10^(dp − len)),
/// shortest round-trip when `sig` is `None`, else rounded to `sig` significant digits, with
/// trailing zeros dropped as Go's `strconv` does.
pub(super) fn float_digits(f: f64, sig: Option<usize>) -> (String, i32) {
    let e = match sig {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", (p.max(1) - 1).min(EXACT_SIGNIFICANT), f.abs()),
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
pub(super) fn fmt_float_g(f: f64, prec: Option<usize>, upper: bool, out: &mut String) {
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
pub(super) fn fmt_float_e(f: f64, prec: usize, upper: bool, out: &mut String) {
    if float_special(f, out) {
        return;
    }
    let exact = prec.min(EXACT_SIGNIFICANT);
    let s = format!("{:.*e}", exact, f);
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    out.push_str(mant);
    out.extend(std::iter::repeat_n('0', prec - exact));
    push_exponent(exp.parse().unwrap_or(0), upper, out);
}

/// Go's `%f` with `prec` digits after the point.
pub(super) fn fmt_float_f(f: f64, prec: usize, out: &mut String) {
    if float_special(f, out) {
        return;
    }
    let exact = prec.min(EXACT_FRACTION);
    let _ = write!(out, "{:.*}", exact, f);
    out.extend(std::iter::repeat_n('0', prec - exact));
}
