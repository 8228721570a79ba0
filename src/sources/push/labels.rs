//! A pushed stream's label string, `{job="app", host="a"}`, read as Loki reads it (LogQL's
//! `ParseLabels`, Prometheus' `ParseMetric`): label names `[a-zA-Z_][a-zA-Z0-9_]*`, values
//! quoted with `"`, `'` or backticks, Go escapes inside the first two, `,` between pairs (one
//! trailing comma allowed), spaces anywhere between tokens.
//!
//! Owns that grammar only; what a label may hold after it (length limits, relabeling) is the
//! caller's. Errors say where the string went wrong, as the sender needs to fix it.

use std::collections::BTreeMap;

/// The pairs of `input`, by name. A name given twice is an error, as Loki refuses it.
pub fn parse(input: &str) -> Result<BTreeMap<String, String>, String> {
    let mut p = Parser { rest: input };
    p.skip_space();
    if !p.eat('{') {
        return Err(format!(
            "1:1: parse error: unexpected {} in {input:?}, expected '{{'",
            p.found()
        ));
    }
    let mut labels = BTreeMap::new();
    loop {
        p.skip_space();
        if p.eat('}') {
            break;
        }
        let name = p.label_name(input)?;
        p.skip_space();
        if !p.eat('=') {
            return Err(format!(
                "parse error: unexpected {} after label name {name:?} in {input:?}, expected '='",
                p.found()
            ));
        }
        p.skip_space();
        let value = p.string(input)?;
        if labels.insert(name.clone(), value).is_some() {
            return Err(format!("duplicate label name {name:?} in {input:?}"));
        }
        p.skip_space();
        if p.eat(',') {
            continue;
        }
        if p.eat('}') {
            break;
        }
        return Err(format!(
            "parse error: unexpected {} in {input:?}, expected ',' or '}}'",
            p.found()
        ));
    }
    p.skip_space();
    if !p.rest.is_empty() {
        return Err(format!(
            "parse error: unexpected {:?} after '}}' in {input:?}",
            p.rest
        ));
    }
    Ok(labels)
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn found(&self) -> String {
        match self.rest.chars().next() {
            Some(c) => format!("{c:?}"),
            None => "end of input".into(),
        }
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t', '\n', '\r']);
    }

    fn label_name(&mut self, input: &str) -> Result<String, String> {
        let end = self
            .rest
            .char_indices()
            .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
            .map_or(self.rest.len(), |(i, _)| i);
        if end == 0 {
            return Err(format!(
                "parse error: unexpected {} in {input:?}, expected a label name",
                self.found()
            ));
        }
        let (name, rest) = self.rest.split_at(end);
        self.rest = rest;
        Ok(name.to_string())
    }

    fn string(&mut self, input: &str) -> Result<String, String> {
        let Some(quote) = self
            .rest
            .chars()
            .next()
            .filter(|c| matches!(c, '"' | '\'' | '`'))
        else {
            return Err(format!(
                "parse error: unexpected {} in {input:?}, expected a quoted label value",
                self.found()
            ));
        };
        let body = &self.rest[1..];
        if quote == '`' {
            let end = body
                .find('`')
                .ok_or_else(|| format!("parse error: unterminated raw string in {input:?}"))?;
            self.rest = &body[end + 1..];
            return Ok(body[..end].to_string());
        }
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.rest = &body[i + 1..];
                    return Ok(out);
                }
                '\n' => break,
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    let simple = match e {
                        'a' => Some('\u{7}'),
                        'b' => Some('\u{8}'),
                        'f' => Some('\u{c}'),
                        'n' => Some('\n'),
                        'r' => Some('\r'),
                        't' => Some('\t'),
                        'v' => Some('\u{b}'),
                        '\\' => Some('\\'),
                        '"' if quote == '"' => Some('"'),
                        '\'' if quote == '\'' => Some('\''),
                        _ => None,
                    };
                    if let Some(s) = simple {
                        out.push(s);
                        continue;
                    }
                    let digits = match e {
                        'x' => 2,
                        'u' => 4,
                        'U' => 8,
                        '0'..='7' => 2,
                        _ => {
                            return Err(format!(
                                "parse error: unknown escape sequence \\{e} in {input:?}"
                            ));
                        }
                    };
                    let mut code = String::new();
                    if e.is_ascii_digit() {
                        code.push(e);
                    }
                    for _ in 0..digits {
                        match chars.next() {
                            Some((_, d)) => code.push(d),
                            None => break,
                        }
                    }
                    let radix = if e.is_ascii_digit() { 8 } else { 16 };
                    let ch = u32::from_str_radix(&code, radix)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| {
                            format!("parse error: invalid escape \\{e}{code} in {input:?}")
                        })?;
                    out.push(ch);
                }
                c => out.push(c),
            }
        }
        Err(format!(
            "parse error: unterminated quoted string in {input:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_strings_in_the_forms_senders_write_them() {
        let l = parse(r#"{job="app", host = 'web-1',path=`C:\logs`, msg="a\"b\n\x41",}"#).unwrap();
        assert_eq!(l["job"], "app");
        assert_eq!(l["host"], "web-1");
        assert_eq!(l["path"], r"C:\logs");
        assert_eq!(l["msg"], "a\"b\nA");
        assert!(parse("{}").unwrap().is_empty());
        assert!(parse("  { }  ").unwrap().is_empty());
    }

    #[test]
    fn invalid_names_quotes_and_duplicates_are_errors_that_say_where() {
        for bad in [
            r#"{foo-bar="x"}"#,
            r#"{1job="x"}"#,
            r#"{job=x}"#,
            r#"{job="x""#,
            r#"job="x""#,
            r#"{job="x"} trailing"#,
            r#"{job="x", job="y"}"#,
            r#"{job="\q"}"#,
            r#"{job=~"x"}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }
}
