//! JSON string literals written byte for byte as Go writes them, for output users compare
//! with Promtail's: the `pack` stage (json-iterator) and the templates' `toJson`
//! (`encoding/json`). Both escape `<`, `>`, `&`, U+2028 and U+2029 (HTML-safe), and use
//! `\n`, `\r`, `\t` and `\u00XX` for other control characters; they differ only on
//! backspace and form feed. It must not know about stages or entries.

/// Which Go encoder's escaping to reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonFlavor {
    /// json-iterator (`jsoniter.ConfigDefault`, what Promtail's `pack` uses): `\u0008`, `\u000c`.
    JsonIterator,
    /// `encoding/json` since Go 1.22: `\b`, `\f`.
    EncodingJson,
}

/// Appends `s` as a quoted JSON string.
pub fn write_json_string(s: &str, flavor: JsonFlavor, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' if flavor == JsonFlavor::EncodingJson => Some("\\b"),
            '\u{c}' if flavor == JsonFlavor::EncodingJson => Some("\\f"),
            _ => None,
        };
        let needs_hex = matches!(
            c,
            '\0'..='\u{1f}' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}'
        );
        if escape.is_none() && !needs_hex {
            continue;
        }
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str, flavor: JsonFlavor) -> String {
        let mut out = String::new();
        write_json_string(s, flavor, &mut out);
        out
    }

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        assert_eq!(
            json("a\"b\\c\nd\re\tf\u{1}", JsonFlavor::JsonIterator),
            r#""a\"b\\c\nd\re\tf\u0001""#
        );
    }

    #[test]
    fn escapes_html_characters_and_line_separators() {
        assert_eq!(
            json(
                "<a href='x'>&\u{2028}\u{2029}</a>",
                JsonFlavor::JsonIterator
            ),
            r#""\u003ca href='x'\u003e\u0026\u2028\u2029\u003c/a\u003e""#
        );
    }

    #[test]
    fn flavors_differ_only_on_backspace_and_form_feed() {
        assert_eq!(
            json("\u{8}\u{c}", JsonFlavor::JsonIterator),
            r#""\u0008\u000c""#
        );
        assert_eq!(json("\u{8}\u{c}", JsonFlavor::EncodingJson), r#""\b\f""#);
        assert_eq!(
            json("é ünïcode ✓", JsonFlavor::EncodingJson),
            "\"é ünïcode ✓\""
        );
    }
}
