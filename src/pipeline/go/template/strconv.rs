//! Go's `strconv` syntax that templates depend on: integer literals in every base Go accepts
//! (`0x1f`, `0o17`, `017`, `0b101`, `1_000`) and the escapes of quoted literals.
//!
//! Shared by the lexer and parser (literals in the template) and by the conversion functions
//! (`int`, `add`, ... on strings from log lines). It must not know about templates.

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
