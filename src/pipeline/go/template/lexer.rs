//! The template lexer: text and `{{ }}` actions into tokens, as Go's `text/template/parse`
//! lexes them (`{{-`/`-}}` trimming, `{{/* */}}` comments, Go's literal syntax).
//!
//! Owns the token list and the unquoting of Go string and character literals. It must not
//! know what the tokens mean: the parser decides that.

use std::fmt;

use super::ParseError;
use super::strconv::unquote_go;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Text(String),
    Open,
    Close,
    Space,
    Ident(String),
    Field(String),
    Dot,
    Var(String),
    Str(String),
    Char(i64),
    Number(String),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Text(_) => f.write_str("text"),
            Tok::Open => f.write_str("{{"),
            Tok::Close => f.write_str("}}"),
            Tok::Space => f.write_str("space"),
            Tok::Ident(s) | Tok::Number(s) => f.write_str(s),
            Tok::Field(s) => write!(f, ".{s}"),
            Tok::Dot => f.write_str("."),
            Tok::Var(s) => f.write_str(s),
            Tok::Str(s) => write!(f, "{s:?}"),
            Tok::Char(c) => write!(f, "char {c}"),
            Tok::Pipe => f.write_str("|"),
            Tok::LParen => f.write_str("("),
            Tok::RParen => f.write_str(")"),
            Tok::Declare => f.write_str(":="),
            Tok::Assign => f.write_str("="),
            Tok::Comma => f.write_str(","),
        }
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// The token list, each with its 1-based line for error messages.
pub(super) fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let mut toks = Vec::new();
    let mut rest = text;
    let mut trim_text_start = false;
    let line_of = |rest: &str| text[..text.len() - rest.len()].matches('\n').count() + 1;
    loop {
        let open = rest.find("{{");
        let mut segment = &rest[..open.unwrap_or(rest.len())];
        let after_open = open.map(|i| &rest[i + 2..]);
        let trim_left = after_open.is_some_and(|a| {
            let mut c = a.chars();
            c.next() == Some('-') && c.next().is_some_and(is_space)
        });
        if trim_text_start {
            segment = segment.trim_start_matches(is_space);
        }
        if trim_left {
            segment = segment.trim_end_matches(is_space);
        }
        if !segment.is_empty() {
            toks.push((Tok::Text(segment.to_string()), line_of(rest)));
        }
        let Some(mut inside) = after_open else {
            break;
        };
        if trim_left {
            inside = &inside[2..];
        }
        let inside_trimmed = inside.trim_start_matches(is_space);
        if inside_trimmed.starts_with("/*") {
            let Some(end) = inside_trimmed.find("*/") else {
                return Err(ParseError(format!(
                    "line {}: unclosed comment",
                    line_of(inside)
                )));
            };
            let after = &inside_trimmed[end + 2..];
            if let Some(r) = after.strip_prefix("}}") {
                trim_text_start = false;
                rest = r;
            } else if let Some(r) = after
                .strip_prefix(is_space)
                .and_then(|a| a.strip_prefix("-}}"))
            {
                trim_text_start = true;
                rest = r;
            } else {
                return Err(ParseError(format!(
                    "line {}: comment ends before closing delimiter",
                    line_of(after)
                )));
            }
            continue;
        }
        toks.push((Tok::Open, line_of(inside)));
        let (r, trim_right) = lex_action(inside, &mut toks, &line_of)?;
        trim_text_start = trim_right;
        rest = r;
    }
    Ok(toks)
}

/// Lexes one action's inside; returns what follows its `}}` and whether it was `-}}`.
fn lex_action<'t>(
    mut s: &'t str,
    toks: &mut Vec<(Tok, usize)>,
    line_of: &dyn Fn(&str) -> usize,
) -> Result<(&'t str, bool), ParseError> {
    loop {
        let line = line_of(s);
        let err = |msg: String| Err(ParseError(format!("line {line}: {msg}")));
        if let Some(r) = s.strip_prefix("}}") {
            toks.push((Tok::Close, line));
            return Ok((r, false));
        }
        let Some(c) = s.chars().next() else {
            return err("unclosed action".into());
        };
        if is_space(c) {
            let r = s.trim_start_matches(is_space);
            if let Some(r) = r.strip_prefix("-}}") {
                toks.push((Tok::Close, line));
                return Ok((r, true));
            }
            toks.push((Tok::Space, line));
            s = r;
            continue;
        }
        match c {
            '|' => {
                toks.push((Tok::Pipe, line));
                s = &s[1..];
            }
            '(' => {
                toks.push((Tok::LParen, line));
                s = &s[1..];
            }
            ')' => {
                toks.push((Tok::RParen, line));
                s = &s[1..];
            }
            ',' => {
                toks.push((Tok::Comma, line));
                s = &s[1..];
            }
            '=' => {
                toks.push((Tok::Assign, line));
                s = &s[1..];
            }
            ':' => {
                let Some(r) = s.strip_prefix(":=") else {
                    return err("expected :=".into());
                };
                toks.push((Tok::Declare, line));
                s = r;
            }
            '"' => {
                let mut end = None;
                let mut escaped = false;
                for (i, c) in s.char_indices().skip(1) {
                    match c {
                        '\n' => break,
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => {
                            end = Some(i);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let Some(end) = end else {
                    return err("unterminated quoted string".into());
                };
                let value =
                    unquote_go(&s[1..end]).map_err(|m| ParseError(format!("line {line}: {m}")))?;
                toks.push((Tok::Str(value), line));
                s = &s[end + 1..];
            }
            '`' => {
                let Some(end) = s[1..].find('`') else {
                    return err("unterminated raw quoted string".into());
                };
                toks.push((Tok::Str(s[1..1 + end].to_string()), line));
                s = &s[end + 2..];
            }
            '\'' => {
                let mut end = None;
                let mut escaped = false;
                for (i, c) in s.char_indices().skip(1) {
                    match c {
                        '\n' => break,
                        '\\' if !escaped => escaped = true,
                        '\'' if !escaped => {
                            end = Some(i);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let Some(end) = end else {
                    return err("unterminated character constant".into());
                };
                let body = &s[1..end];
                let value =
                    unquote_go(body).map_err(|m| ParseError(format!("line {line}: {m}")))?;
                let mut chars = value.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => toks.push((Tok::Char(c as i64), line)),
                    _ => return err(format!("malformed character constant: '{body}'")),
                }
                s = &s[end + 1..];
            }
            '$' => {
                let len = 1 + s[1..].find(|c: char| !is_alnum(c)).unwrap_or(s.len() - 1);
                toks.push((Tok::Var(s[..len].to_string()), line));
                s = &s[len..];
            }
            '.' if !s[1..].starts_with(|c: char| c.is_ascii_digit()) => {
                let len = s[1..].find(|c: char| !is_alnum(c)).unwrap_or(s.len() - 1);
                if len == 0 {
                    toks.push((Tok::Dot, line));
                } else {
                    toks.push((Tok::Field(s[1..1 + len].to_string()), line));
                }
                s = &s[1 + len..];
            }
            c if c == '.' || c == '+' || c == '-' || c.is_ascii_digit() => {
                let len = scan_number(s);
                if len == 0 || s[len..].starts_with(is_alnum) {
                    let bad = s[..len].to_string() + &s[len..].chars().take(1).collect::<String>();
                    return err(format!("bad number syntax: {bad:?}"));
                }
                toks.push((Tok::Number(s[..len].to_string()), line));
                s = &s[len..];
            }
            c if is_alnum(c) => {
                let len = s.find(|c: char| !is_alnum(c)).unwrap_or(s.len());
                toks.push((Tok::Ident(s[..len].to_string()), line));
                s = &s[len..];
            }
            c => return err(format!("unrecognized character in action: {c:?}")),
        }
    }
}

/// Length of the number literal at the start of `s` (sign, base prefix, digits with `_`,
/// fraction, exponent), as Go's lexer scans it.
fn scan_number(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let mut hex = false;
    if b.len() > i + 1
        && b[i] == b'0'
        && matches!(b[i + 1], b'x' | b'X' | b'o' | b'O' | b'b' | b'B')
    {
        hex = matches!(b[i + 1], b'x' | b'X');
        i += 2;
    }
    let digit = |c: u8| c.is_ascii_digit() || c == b'_' || (hex && c.is_ascii_hexdigit());
    while i < b.len() && digit(b[i]) {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && digit(b[i]) {
            i += 1;
        }
    }
    let exp = if hex { [b'p', b'P'] } else { [b'e', b'E'] };
    if i < b.len() && exp.contains(&b[i]) {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    let has_digit = s[..i].bytes().any(|c| c.is_ascii_digit());
    if has_digit { i } else { 0 }
}
