//! Label sets: the indexed identity of a Loki stream.
//!
//! Owns label-name validation (Prometheus rules, as Loki enforces them) and the canonical
//! `{a="1", b="2"}` rendering that both Loki's protobuf `labels` field and Promtail's dry-run
//! output use. It must not know where labels come from (files, stages) or where they go.

use std::fmt::{self, Write as _};
use std::sync::Arc;

/// A sorted, duplicate-free set of label pairs.
///
/// Kept as a sorted vector: real streams carry a handful of labels, so a binary search beats
/// a hash map and the order needed for rendering comes for free. The vector is shared
/// copy-on-write, so giving every line of a file its labels costs a reference count, and
/// only a stage that changes labels pays for a copy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelSet {
    pairs: Arc<Vec<(Arc<str>, Arc<str>)>>,
}

/// The reserved label the `tenant` stage sets; the client turns it into `X-Scope-OrgID`.
pub const TENANT_LABEL: &str = "__tenant_id__";

impl LabelSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut set = Self::new();
        for (k, v) in pairs {
            set.insert(k.into(), v.into());
        }
        set
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).ok().map(|i| &*self.pairs[i].1)
    }

    /// Sets `name` to `value`, replacing any earlier value.
    pub fn insert(&mut self, name: String, value: String) {
        match self.position(&name) {
            Ok(i) => {
                if *self.pairs[i].1 != *value {
                    Arc::make_mut(&mut self.pairs)[i].1 = value.into();
                }
            }
            Err(i) => Arc::make_mut(&mut self.pairs).insert(i, (name.into(), value.into())),
        }
    }

    /// [`LabelSet::insert`] with a name the caller keeps for many sets: every set built this
    /// way shares the name's allocation, so comparing them compares names by pointer.
    pub fn insert_shared_name(&mut self, name: &Arc<str>, value: &str) {
        match self.position(name) {
            Ok(i) => {
                if *self.pairs[i].1 != *value {
                    Arc::make_mut(&mut self.pairs)[i].1 = value.into();
                }
            }
            Err(i) => Arc::make_mut(&mut self.pairs).insert(i, (Arc::clone(name), value.into())),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.position(name).ok()?;
        Some(Arc::make_mut(&mut self.pairs).remove(i).1.to_string())
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        if self.pairs.iter().all(|(k, v)| keep(k, v)) {
            return;
        }
        Arc::make_mut(&mut self.pairs).retain(|(k, v)| keep(k, v));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Adds every pair of `other` whose name is not already set here (entry labels win).
    pub fn merge_missing(&mut self, other: &LabelSet) {
        for (k, v) in other.iter() {
            if let Err(i) = self.position(k) {
                Arc::make_mut(&mut self.pairs).insert(i, (k.into(), v.into()));
            }
        }
    }

    /// Whether both sets share one allocation (then they are equal without comparing); a
    /// clone of a set shares it until one of them changes.
    pub fn ptr_eq(&self, other: &LabelSet) -> bool {
        Arc::ptr_eq(&self.pairs, &other.pairs)
    }

    /// The address of the shared pairs: identifies this set among live ones (a cache that
    /// keys on it must keep the set alive, or the address may be reused).
    pub fn shared_address(&self) -> usize {
        Arc::as_ptr(&self.pairs) as usize
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.pairs.binary_search_by(|(k, _)| (**k).cmp(name))
    }

    /// Appends the canonical rendering `{a="1", b="2"}` to `out`, values quoted as Go's
    /// `strconv.Quote` does (Promtail and Loki both parse and print this form).
    pub fn render_into(&self, out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(k);
            out.push('=');
            quote_go_into(v, out);
        }
        out.push('}');
    }
}

impl fmt::Display for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.render_into(&mut s);
        f.write_str(&s)
    }
}

/// Is `name` a valid Prometheus/Loki label name (`[a-zA-Z_][a-zA-Z0-9_]*`)?
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Quotes `s` like Go's `strconv.Quote`: printable runes kept, `"` and `\` escaped, control
/// characters as `\n`, `\t`, `\xNN` or `\uNNNN`.
pub fn quote_go_into(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
}

fn is_go_printable(c: char) -> bool {
    // Go treats Unicode letters, marks, numbers, punctuation, symbols and ASCII space as
    // printable. Without a Unicode category table, the practical approximation is: not a
    // control character, not a separator other than ' ', not a private-use or format char.
    !(c.is_control()
        || matches!(c as u32, 0x80..=0x9f | 0xad | 0x2028 | 0x2029 | 0xfeff | 0xfff9..=0xfffb)
        || (c.is_whitespace() && c != ' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sorted_and_quoted() {
        let set = LabelSet::from_pairs([("job", "app"), ("filename", "/var/log/a \"b\".log")]);
        assert_eq!(
            set.to_string(),
            r#"{filename="/var/log/a \"b\".log", job="app"}"#
        );
    }

    #[test]
    fn insert_replaces_and_keeps_order() {
        let mut set = LabelSet::from_pairs([("b", "1"), ("a", "2")]);
        set.insert("b".into(), "3".into());
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![("a", "2"), ("b", "3")]);
    }

    #[test]
    fn insert_shared_name_is_insert() {
        let name: Arc<str> = Arc::from("b");
        let mut shared = LabelSet::from_pairs([("a", "1"), ("c", "3")]);
        let mut plain = shared.clone();
        shared.insert_shared_name(&name, "2");
        plain.insert("b".into(), "2".into());
        assert_eq!(shared, plain);
        shared.insert_shared_name(&name, "9");
        plain.insert("b".into(), "9".into());
        assert_eq!(shared, plain);
        assert_eq!(shared.to_string(), r#"{a="1", b="9", c="3"}"#);
    }

    #[test]
    fn merge_missing_keeps_existing_values() {
        let mut set = LabelSet::from_pairs([("env", "prod")]);
        set.merge_missing(&LabelSet::from_pairs([("env", "dev"), ("host", "h1")]));
        assert_eq!(set.to_string(), r#"{env="prod", host="h1"}"#);
    }

    #[test]
    fn label_name_rules() {
        assert!(is_valid_label_name("job"));
        assert!(is_valid_label_name("_x9"));
        assert!(is_valid_label_name("__path__"));
        assert!(!is_valid_label_name("9x"));
        assert!(!is_valid_label_name("a-b"));
        assert!(!is_valid_label_name(""));
    }

    #[test]
    fn quotes_control_characters_like_go() {
        let mut s = String::new();
        quote_go_into("a\tb\u{1}é", &mut s);
        assert_eq!(s, "\"a\\tb\\x01é\"");
    }
}
