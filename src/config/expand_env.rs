//! `-config.expand-env`: `${VAR}`, `${VAR:-default}` and `$VAR` replaced before parsing, as
//! Promtail's drone/envsubst does, including its side effect that `\\` becomes `\` (so configs
//! written for Promtail keep their regexes).

/// Expands variables in `text` using `lookup` (normally `std::env::var`).
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    expand_env_tracked(text, lookup).map(|(out, _)| out)
}

/// A variable that was not set (and had no default), and the line of the expanded text it
/// left empty: errors about that line name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unset {
    pub line: usize,
    pub name: String,
}

/// As [`expand_env`], also returning the variables that were not set.
pub fn expand_env_tracked(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, Vec<Unset>), String> {
    let mut unset = Vec::new();
    let line_of = |out: &str| out.bytes().filter(|&b| b == b'\n').count() + 1;
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some((_, '\\')) => {
                    chars.next();
                    out.push('\\');
                }
                Some((_, '$')) => {
                    chars.next();
                    out.push('$');
                }
                _ => out.push('\\'),
            },
            '$' => match chars.peek().map(|&(_, c)| c) {
                Some('{') => {
                    chars.next();
                    let start = i + 2;
                    let end = text[start..]
                        .find('}')
                        .map(|e| start + e)
                        .ok_or_else(|| format!("unclosed ${{ at byte {i}"))?;
                    let inner = &text[start..end];
                    while chars.peek().is_some_and(|&(j, _)| j <= end) {
                        chars.next();
                    }
                    let (name, default) = match inner.find(":-") {
                        Some(p) => (&inner[..p], Some(&inner[p + 2..])),
                        None => match inner.find('-') {
                            Some(p) => (&inner[..p], Some(&inner[p + 1..])),
                            None => (inner, None),
                        },
                    };
                    if !is_var_name(name) {
                        return Err(format!("invalid variable name {name:?} in ${{{inner}}}"));
                    }
                    match (lookup(name), default) {
                        (Some(v), Some(_)) if v.is_empty() && inner.contains(":-") => {
                            out.push_str(default.unwrap_or_default())
                        }
                        (Some(v), _) => out.push_str(&v),
                        (None, Some(d)) => out.push_str(d),
                        (None, None) => unset.push(Unset {
                            line: line_of(&out),
                            name: name.to_string(),
                        }),
                    }
                }
                Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                    let start = i + 1;
                    let mut end = start;
                    while let Some(&(j, c)) = chars.peek() {
                        if c == '_' || c.is_ascii_alphanumeric() {
                            end = j + c.len_utf8();
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    let name = &text[start..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => unset.push(Unset {
                            line: line_of(&out),
                            name: name.to_string(),
                        }),
                    }
                }
                _ => out.push('$'),
            },
            c => out.push(c),
        }
    }
    Ok((out, unset))
}

fn is_var_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c == b'_' || c.is_ascii_alphabetic())
        && b.all(|c| c == b'_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("web1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_braced_plain_and_defaults() {
        assert_eq!(expand_env("h=${HOST} $HOST", env).unwrap(), "h=web1 web1");
        assert_eq!(expand_env("${MISSING:-dflt}", env).unwrap(), "dflt");
        assert_eq!(expand_env("${EMPTY:-dflt}", env).unwrap(), "dflt");
        assert_eq!(expand_env("${HOST:-dflt}", env).unwrap(), "web1");
        assert_eq!(expand_env("${MISSING}", env).unwrap(), "");
    }

    #[test]
    fn backslashes_fold_like_envsubst() {
        assert_eq!(expand_env(r"\\d+ \$HOST \w", env).unwrap(), r"\d+ $HOST \w");
    }

    #[test]
    fn unset_variables_are_reported_with_their_line() {
        let (out, unset) =
            expand_env_tracked("a: ${HOST}\nb: ${NOPE}\nc: $GONE ${MISSING:-x}\n", env).unwrap();
        assert_eq!(out, "a: web1\nb: \nc:  x\n");
        assert_eq!(
            unset,
            vec![
                Unset {
                    line: 2,
                    name: "NOPE".into()
                },
                Unset {
                    line: 3,
                    name: "GONE".into()
                },
            ]
        );
    }

    #[test]
    fn unclosed_brace_is_an_error() {
        assert!(expand_env("${HOST", env).is_err());
    }
}
