//! YAML as Promtail reads it: go-yaml v2's rules, on events from `saphyr-parser`.
//!
//! Owns turning YAML text into a [`Node`] tree (first document only, as go-yaml's
//! `Unmarshal`), with anchors, aliases and merge keys (`<<: *base`) resolved, each node
//! carrying its line; deserializing that tree into typed values ([`de`]) with go-yaml v2's
//! scalar resolution, which depends on the field type (an unquoted `123456` is the text
//! `"123456"` in a string field, `yes` is true in a bool field); and writing values back as
//! YAML ([`ser`]). It must not know the config schema: the loader in [`super::load`] does.
//!
//! Alias expansion has a fixed budget ([`ALIAS_BUDGET`]) whatever the document's size: a
//! document whose aliases would copy more than that is refused (an alias bomb), so loading a
//! config never needs more than a few MB beyond the text itself.

pub mod de;
pub mod ser;

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde::de::DeserializeOwned;

pub use de::{from_node, plain_type_name};
pub use ser::{Tree, to_string, to_tree};

/// What one node counts for when aliases copy it, besides its scalar text: about what it
/// holds in memory once built.
const NODE_COST: u64 = 64;

/// The most that aliases (and merge keys through them) may copy, in [`NODE_COST`] per node
/// plus scalar bytes: 4 MiB, far above any real config's reuse of an anchor, and small
/// enough that a billion-laughs document fails fast.
pub const ALIAS_BUDGET: u64 = 4 << 20;

/// Deeper nesting is refused: serde's deserializers recurse once per level.
const MAX_DEPTH: usize = 256;

/// One YAML node, with the (1-based) line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub line: usize,
    /// What copying this node through an alias costs (see [`ALIAS_BUDGET`]).
    weight: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Entries in document order, merge keys already applied.
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    /// The value as written (after unquoting and folding).
    pub text: String,
    /// Only plain scalars are resolved to null, booleans and numbers.
    pub plain: bool,
    pub tag: Option<CoreTag>,
}

/// The core schema tags that change how a scalar resolves (`!!str 123` is text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreTag {
    Str,
    Int,
    Float,
    Bool,
    Null,
}

/// A YAML document that cannot be read, or a value that does not fit where it is: where
/// (key path, line) and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Innermost segment first; see [`Error::key_path`].
    path: Vec<Segment>,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            path: Vec::new(),
            line: None,
            message: message.into(),
        }
    }

    fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    /// Sets the line unless an inner node already did.
    pub(crate) fn or_line(mut self, line: usize) -> Self {
        if self.line.is_none() {
            self.line = Some(line);
        }
        self
    }

    pub(crate) fn within_key(mut self, key: &str) -> Self {
        self.path.push(Segment::Key(key.to_string()));
        self
    }

    pub(crate) fn within_index(mut self, index: usize) -> Self {
        self.path.push(Segment::Index(index));
        self
    }

    /// `scrape_configs[1].pipeline_stages[0].json`; empty for the document as a whole.
    pub fn key_path(&self) -> String {
        let mut out = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                Segment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Segment::Index(i) => {
                    out.push_str(&format!("[{i}]"));
                }
            }
        }
        out
    }

    /// The message with the line, when known: `expected ... (line 4)`.
    pub fn message_with_line(&self) -> String {
        match self.line {
            Some(line) => format!("{} (line {line})", self.message),
            None => self.message.clone(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.key_path();
        if path.is_empty() {
            write!(f, "{}", self.message_with_line())
        } else {
            write!(f, "{path}: {}", self.message_with_line())
        }
    }
}

impl std::error::Error for Error {}

/// Parses `text` and deserializes it into `T` with go-yaml v2's rules.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    from_node(&parse(text)?)
}

impl Node {
    fn scalar(text: String, plain: bool, tag: Option<CoreTag>, line: usize) -> Node {
        let weight = NODE_COST.saturating_add(text.len() as u64);
        Node {
            kind: Kind::Scalar(Scalar { text, plain, tag }),
            line,
            weight,
        }
    }

    /// An empty document's root, or what an empty value stands for.
    pub fn null(line: usize) -> Node {
        Node::scalar(String::new(), true, None, line)
    }

    /// A plain scalar, read as the same text in a YAML file would be (command-line values).
    pub fn plain(text: &str) -> Node {
        Node::scalar(text.to_string(), true, None, 0)
    }

    pub fn empty_map() -> Node {
        Node {
            kind: Kind::Map(Vec::new()),
            line: 0,
            weight: NODE_COST,
        }
    }

    /// A serialized value as a tree: strings stay strings (as if quoted), other scalars are
    /// plain.
    pub fn from_tree(tree: &Tree) -> Node {
        let plain = |text: String| Node::scalar(text, true, None, 0);
        match tree {
            Tree::Null => plain(String::new()),
            Tree::Bool(b) => plain(b.to_string()),
            Tree::Int(i) => plain(i.to_string()),
            Tree::Float(f) => plain(ser::emit(&Tree::Float(*f)).trim_end().to_string()),
            Tree::Str(s) => Node::scalar(s.clone(), false, None, 0),
            Tree::Seq(items) => Node {
                kind: Kind::Seq(items.iter().map(Node::from_tree).collect()),
                line: 0,
                weight: NODE_COST,
            },
            Tree::Map(entries) => Node {
                kind: Kind::Map(
                    entries
                        .iter()
                        .map(|(k, v)| (Node::scalar(k.clone(), false, None, 0), Node::from_tree(v)))
                        .collect(),
                ),
                line: 0,
                weight: NODE_COST,
            },
        }
    }

    /// Sets the value at a dotted key path (`server.http_listen_port`), creating maps on the
    /// way and replacing whatever is not a map.
    pub fn set_path(&mut self, dotted: &str, value: Node) {
        let mut cur = self;
        let mut parts = dotted.split('.').peekable();
        while let Some(part) = parts.next() {
            if !matches!(cur.kind, Kind::Map(_)) {
                *cur = Node::empty_map();
            }
            let Kind::Map(entries) = &mut cur.kind else {
                return;
            };
            let at = match entries
                .iter()
                .position(|(k, _)| k.as_scalar().is_some_and(|s| s.text == part))
            {
                Some(i) => i,
                None => {
                    entries.push((
                        Node::scalar(part.to_string(), false, None, 0),
                        Node::empty_map(),
                    ));
                    entries.len() - 1
                }
            };
            if parts.peek().is_none() {
                entries[at].1 = value;
                return;
            }
            cur = &mut entries[at].1;
        }
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == key))
            .map(|(_, v)| v)
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A null scalar (`~`, `null`, or nothing at all), which go-yaml reads as the zero value.
    pub fn is_null(&self) -> bool {
        self.as_scalar()
            .is_some_and(|s| matches!(de::resolve(s), de::Resolved::Null))
    }

    /// Null, an empty list or an empty map: a value that configures nothing.
    pub fn is_empty_value(&self) -> bool {
        match &self.kind {
            Kind::Scalar(_) => self.is_null(),
            Kind::Seq(items) => items.is_empty(),
            Kind::Map(entries) => entries.is_empty(),
        }
    }

    /// Removes `key` from a mapping; returns whether it was there.
    pub fn remove_key(&mut self, key: &str) -> bool {
        if let Kind::Map(entries) = &mut self.kind {
            let before = entries.len();
            entries.retain(|(k, _)| k.as_scalar().is_none_or(|s| s.text != key));
            return entries.len() != before;
        }
        false
    }

    pub fn seq_mut(&mut self) -> Option<&mut Vec<Node>> {
        match &mut self.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.kind {
            Kind::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at a key path as errors name it (`clients[0].url`); `None` when absent.
    pub fn at_path(&self, path: &str) -> Option<&Node> {
        let mut node = self;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            let (key, indices) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !key.is_empty() {
                node = node.get(key)?;
            }
            for index in indices.split(']').filter(|s| !s.is_empty()) {
                let i: usize = index.trim_start_matches('[').parse().ok()?;
                node = node.as_seq()?.get(i)?;
            }
        }
        Some(node)
    }

    /// The last line this node spans (for a collection, its last child's).
    pub fn last_line(&self) -> usize {
        match &self.kind {
            Kind::Scalar(_) => self.line,
            Kind::Seq(items) => items.last().map_or(self.line, Node::last_line),
            Kind::Map(entries) => entries.last().map_or(self.line, |(_, v)| v.last_line()),
        }
    }
}

/// A collection being read.
enum Frame {
    Seq {
        items: Vec<Node>,
        line: usize,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        /// Values of `<<` keys, applied when the mapping ends.
        merges: Vec<Node>,
        key: Option<Node>,
        line: usize,
        anchor: usize,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    /// What aliases have copied so far (see [`ALIAS_BUDGET`]).
    spent: u64,
    root: Option<Node>,
}

/// Parses the first document of `text` into a tree.
pub fn parse(text: &str) -> Result<Node, Error> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        spent: 0,
        root: None,
    };
    while b.root.is_none() {
        let Some(next) = parser.next_event() else {
            break;
        };
        let (event, span) = next.map_err(|e| {
            Error::new(format!(
                "invalid YAML at column {}: {}",
                e.marker().col() + 1,
                e.info()
            ))
            .at_line(e.marker().line())
        })?;
        let line = span.start.line();
        match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart(_) | Event::DocumentEnd => {}
            Event::Scalar(text, style, anchor, tag) => {
                let plain = matches!(style, ScalarStyle::Plain);
                let node = Node::scalar(text.into_owned(), plain, core_tag(tag.as_deref()), line);
                if anchor > 0 {
                    b.anchors.insert(anchor, node.clone());
                }
                b.push(node)?;
            }
            Event::Alias(id) => {
                let Some(node) = b.anchors.get(&id) else {
                    return Err(Error::new(
                        "alias to an anchor that is not defined before it (or that contains it)",
                    )
                    .at_line(line));
                };
                b.spent = b.spent.saturating_add(node.weight);
                if b.spent > ALIAS_BUDGET {
                    return Err(Error::new(format!(
                        "aliases (*name) expand to more than {} MiB of values; \
                         refusing what looks like an alias bomb",
                        ALIAS_BUDGET >> 20
                    ))
                    .at_line(line));
                }
                let mut copy = node.clone();
                copy.line = line;
                b.push(copy)?;
            }
            Event::SequenceStart(anchor, _) => {
                b.open(Frame::Seq {
                    items: Vec::new(),
                    line,
                    anchor,
                })?;
            }
            Event::MappingStart(anchor, _) => {
                b.open(Frame::Map {
                    entries: Vec::new(),
                    merges: Vec::new(),
                    key: None,
                    line,
                    anchor,
                })?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = b.stack.pop() else {
                    return Err(Error::new("invalid YAML: unbalanced collection").at_line(line));
                };
                let (node, anchor) = close(frame)?;
                if anchor > 0 {
                    b.anchors.insert(anchor, node.clone());
                }
                b.push(node)?;
            }
        }
    }
    Ok(b.root.unwrap_or_else(|| Node::null(1)))
}

fn core_tag(tag: Option<&Tag>) -> Option<CoreTag> {
    let tag = tag?;
    if !tag.is_yaml_core_schema() {
        return None;
    }
    Some(match tag.suffix.as_str() {
        "str" => CoreTag::Str,
        "int" => CoreTag::Int,
        "float" => CoreTag::Float,
        "bool" => CoreTag::Bool,
        "null" => CoreTag::Null,
        _ => return None,
    })
}

impl Builder {
    fn open(&mut self, frame: Frame) -> Result<(), Error> {
        if self.stack.len() >= MAX_DEPTH {
            let line = match &frame {
                Frame::Seq { line, .. } | Frame::Map { line, .. } => *line,
            };
            return Err(
                Error::new(format!("values nested deeper than {MAX_DEPTH} levels")).at_line(line),
            );
        }
        self.stack.push(frame);
        Ok(())
    }

    fn push(&mut self, node: Node) -> Result<(), Error> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                merges,
                key,
                ..
            }) => match key.take() {
                None => {
                    if node.as_scalar().is_none() {
                        return Err(
                            Error::new("a key must be a plain value, not a list or a map")
                                .at_line(node.line),
                        );
                    }
                    *key = Some(node);
                }
                Some(k) => {
                    let Some(ks) = k.as_scalar() else {
                        return Ok(());
                    };
                    if ks.plain && ks.tag.is_none() && ks.text == "<<" {
                        merges.push(node);
                    } else if entries
                        .iter()
                        .any(|(e, _)| e.as_scalar().is_some_and(|s| s.text == ks.text))
                    {
                        return Err(Error::new(format!(
                            "duplicate key `{}` in the same map",
                            ks.text
                        ))
                        .at_line(k.line));
                    } else {
                        entries.push((k, node));
                    }
                }
            },
        }
        Ok(())
    }
}

/// Finishes a collection: a mapping's merge keys add the keys it does not set itself, earlier
/// merge sources first (YAML's merge key rules; go-yaml agrees when `<<` comes first).
fn close(frame: Frame) -> Result<(Node, usize), Error> {
    match frame {
        Frame::Seq {
            items,
            line,
            anchor,
        } => {
            let weight = items
                .iter()
                .fold(NODE_COST, |w, n| w.saturating_add(n.weight));
            Ok((
                Node {
                    kind: Kind::Seq(items),
                    line,
                    weight,
                },
                anchor,
            ))
        }
        Frame::Map {
            mut entries,
            merges,
            line,
            anchor,
            ..
        } => {
            let mut sources: Vec<Node> = Vec::new();
            for m in merges {
                match m.kind {
                    Kind::Map(_) => sources.push(m),
                    Kind::Seq(items) => {
                        for item in items {
                            if item.as_map().is_none() {
                                return Err(Error::new(
                                    "a merge key (<<) takes a map or a list of maps",
                                )
                                .at_line(item.line));
                            }
                            sources.push(item);
                        }
                    }
                    Kind::Scalar(_) => {
                        return Err(Error::new("a merge key (<<) takes a map or a list of maps")
                            .at_line(m.line));
                    }
                }
            }
            for source in sources {
                if let Kind::Map(merged) = source.kind {
                    for (k, v) in merged {
                        let text = k.as_scalar().map(|s| s.text.clone());
                        let present = entries
                            .iter()
                            .any(|(e, _)| e.as_scalar().map(|s| &s.text) == text.as_ref());
                        if !present {
                            entries.push((k, v));
                        }
                    }
                }
            }
            let weight = entries.iter().fold(NODE_COST, |w, (k, v)| {
                w.saturating_add(k.weight).saturating_add(v.weight)
            });
            Ok((
                Node {
                    kind: Kind::Map(entries),
                    line,
                    weight,
                },
                anchor,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_at<'a>(n: &'a Node, path: &str) -> &'a str {
        &n.at_path(path).unwrap().as_scalar().unwrap().text
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = parse(
            "base: &base {job: app, env: prod}\nuse:\n  <<: *base\n  env: dev\nlist: [*base, *base]\nmulti:\n  <<: [{a: 1}, {a: 2, b: 3}]\n",
        )
        .unwrap();
        assert_eq!(text_at(&n, "use.job"), "app");
        assert_eq!(text_at(&n, "use.env"), "dev", "explicit keys win");
        assert_eq!(text_at(&n, "list[1].env"), "prod");
        assert_eq!(text_at(&n, "multi.a"), "1", "earlier merge sources win");
        assert_eq!(text_at(&n, "multi.b"), "3");
        assert!(n.at_path("use").unwrap().get("<<").is_none());
    }

    #[test]
    fn lines_are_kept_and_windows_line_endings_read() {
        let n = parse("a: 1\r\nb:\r\n  - x\r\n  - y\r\n").unwrap();
        assert_eq!(n.at_path("b[1]").unwrap().line, 4);
        assert_eq!(text_at(&n, "b[1]"), "y");
    }

    #[test]
    fn duplicate_keys_and_bad_merges_are_refused() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(e.message.contains("duplicate key `a`"), "{e}");
        assert_eq!(e.line, Some(3));
        assert!(parse("a:\n  <<: 5\n").is_err());
    }

    #[test]
    fn alias_bomb_is_refused_within_the_budget() {
        let mut doc = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
        let mut prev = "a";
        for n in names {
            doc.push_str(&format!("{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
            prev = n;
        }
        let e = parse(&doc).unwrap_err();
        assert!(e.message.contains("alias bomb"), "{e}");
        // Real reuse of an anchor stays far below the budget.
        assert!(parse("x: &x {a: 1}\ny: [*x, *x, *x]\n").is_ok());
    }

    #[test]
    fn empty_text_is_a_null_document_and_only_the_first_document_counts() {
        assert!(parse("").unwrap().is_null());
        assert!(parse("# only a comment\n").unwrap().is_null());
        let n = parse("a: 1\n---\nb: 2\n").unwrap();
        assert!(n.get("a").is_some() && n.get("b").is_none());
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{e}");
        assert!(e.line.is_some());
    }
}
