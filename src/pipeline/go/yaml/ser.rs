//! Writing values as YAML: serde values into an ordered [`Tree`] (struct fields keep their
//! declaration order, as the config is documented), then block-style YAML text that
//! [`super::parse`] reads back to the same values: strings that go-yaml would read as
//! something else (`yes`, `123`, `~`, `a: b`) are double-quoted.

use serde::Serialize;
use serde::ser::{self, Impossible};

use super::Scalar;
use super::de::{Resolved, resolve};

/// A serialized value, maps in insertion order.
#[derive(Clone, Debug, PartialEq)]
pub enum Tree {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Tree>),
    Map(Vec<(String, Tree)>),
}

/// Why a value could not be written.
#[derive(Debug)]
pub struct SerError(String);

impl std::fmt::Display for SerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        SerError(msg.to_string())
    }
}

pub fn to_tree<T: Serialize + ?Sized>(value: &T) -> Result<Tree, SerError> {
    value.serialize(TreeSerializer)
}

/// `value` as block-style YAML.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, SerError> {
    Ok(emit(&to_tree(value)?))
}

/// A tree as block-style YAML.
pub fn emit(tree: &Tree) -> String {
    let mut out = String::new();
    match tree {
        Tree::Map(entries) if !entries.is_empty() => emit_map(entries, 0, &mut out),
        Tree::Seq(items) if !items.is_empty() => emit_seq(items, 0, &mut out),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// A value on the same line as its key or dash: scalars, `{}` and `[]`.
fn inline(v: &Tree) -> String {
    match v {
        Tree::Null => "null".into(),
        Tree::Bool(b) => b.to_string(),
        Tree::Int(i) => i.to_string(),
        Tree::Float(f) if f.is_nan() => ".nan".into(),
        Tree::Float(f) if f.is_infinite() => {
            if *f > 0.0 {
                ".inf".into()
            } else {
                "-.inf".into()
            }
        }
        Tree::Float(f) => {
            let s = f.to_string();
            if s.contains(['.', 'e', 'E']) {
                s
            } else {
                format!("{s}.0")
            }
        }
        Tree::Str(s) => scalar_text(s),
        Tree::Seq(_) => "[]".into(),
        Tree::Map(_) => "{}".into(),
    }
}

fn is_block(v: &Tree) -> bool {
    match v {
        Tree::Map(e) => !e.is_empty(),
        Tree::Seq(i) => !i.is_empty(),
        _ => false,
    }
}

fn emit_map(entries: &[(String, Tree)], at: usize, out: &mut String) {
    for (k, v) in entries {
        indent(out, at);
        out.push_str(&scalar_text(k));
        out.push(':');
        match v {
            Tree::Map(e) if !e.is_empty() => {
                out.push('\n');
                emit_map(e, at + 2, out);
            }
            Tree::Seq(items) if !items.is_empty() => {
                out.push('\n');
                emit_seq(items, at, out);
            }
            _ => {
                out.push(' ');
                out.push_str(&inline(v));
                out.push('\n');
            }
        }
    }
}

fn emit_seq(items: &[Tree], at: usize, out: &mut String) {
    for item in items {
        if is_block(item) {
            // The item as if indented under the dash, its first line then joined to the dash.
            let mut block = String::new();
            match item {
                Tree::Map(e) => emit_map(e, at + 2, &mut block),
                Tree::Seq(i) => emit_seq(i, at + 2, &mut block),
                _ => {}
            }
            indent(out, at);
            out.push_str("- ");
            out.push_str(&block[at + 2..]);
        } else {
            indent(out, at);
            out.push_str("- ");
            out.push_str(&inline(item));
            out.push('\n');
        }
    }
}

/// A string as a scalar that reads back as this same string.
fn scalar_text(s: &str) -> String {
    let plain = Scalar {
        text: s.to_string(),
        plain: true,
        tag: None,
    };
    let needs_quotes = !matches!(resolve(&plain), Resolved::Str(_))
        || s.is_empty()
        || s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` \t".contains(c))
        || s.ends_with([' ', '\t', ':'])
        || s.contains(": ")
        || s.contains(" #")
        || s.chars().any(|c| c.is_control())
        || s == "<<";
    if needs_quotes {
        let mut out = String::with_capacity(s.len() + 2);
        crate::model::labels::quote_go_into(s, &mut out);
        out
    } else {
        s.to_string()
    }
}

struct TreeSerializer;

pub struct SeqBuilder(Vec<Tree>);

pub struct MapBuilder {
    entries: Vec<(String, Tree)>,
    key: Option<String>,
}

pub struct VariantBuilder {
    name: &'static str,
    inner: VariantInner,
}

enum VariantInner {
    Seq(Vec<Tree>),
    Map(Vec<(String, Tree)>),
}

impl ser::Serializer for TreeSerializer {
    type Ok = Tree;
    type Error = SerError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = VariantBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = VariantBuilder;

    fn serialize_bool(self, v: bool) -> Result<Tree, SerError> {
        Ok(Tree::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Tree, SerError> {
        Ok(Tree::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Tree, SerError> {
        Ok(Tree::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Tree, SerError> {
        Ok(Tree::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Tree, SerError> {
        Ok(Tree::Int(v.into()))
    }
    fn serialize_u8(self, v: u8) -> Result<Tree, SerError> {
        Ok(Tree::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Tree, SerError> {
        Ok(Tree::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Tree, SerError> {
        Ok(Tree::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Tree, SerError> {
        Ok(Tree::Int(v.into()))
    }
    fn serialize_f32(self, v: f32) -> Result<Tree, SerError> {
        Ok(Tree::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Tree, SerError> {
        Ok(Tree::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Tree, SerError> {
        Ok(Tree::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Tree, SerError> {
        Ok(Tree::Str(v.to_string()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Tree, SerError> {
        Ok(Tree::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn serialize_none(self) -> Result<Tree, SerError> {
        Ok(Tree::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Tree, SerError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Tree, SerError> {
        Ok(Tree::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Tree, SerError> {
        Ok(Tree::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Tree, SerError> {
        Ok(Tree::Str(variant.to_string()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Tree, SerError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Tree, SerError> {
        Ok(Tree::Map(vec![(
            variant.to_string(),
            value.serialize(self)?,
        )]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, SerError> {
        Ok(SeqBuilder(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, SerError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, SerError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<VariantBuilder, SerError> {
        Ok(VariantBuilder {
            name: variant,
            inner: VariantInner::Seq(Vec::new()),
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<MapBuilder, SerError> {
        Ok(MapBuilder {
            entries: Vec::new(),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<MapBuilder, SerError> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<VariantBuilder, SerError> {
        Ok(VariantBuilder {
            name: variant,
            inner: VariantInner::Map(Vec::new()),
        })
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Tree;
    type Error = SerError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        self.0.push(to_tree(value)?);
        Ok(())
    }
    fn end(self) -> Result<Tree, SerError> {
        Ok(Tree::Seq(self.0))
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Tree;
    type Error = SerError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Tree, SerError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Tree;
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Tree, SerError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for VariantBuilder {
    type Ok = Tree;
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        if let VariantInner::Seq(items) = &mut self.inner {
            items.push(to_tree(value)?);
        }
        Ok(())
    }
    fn end(self) -> Result<Tree, SerError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for VariantBuilder {
    type Ok = Tree;
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        if let VariantInner::Map(entries) = &mut self.inner {
            entries.push((key.to_string(), to_tree(value)?));
        }
        Ok(())
    }
    fn end(self) -> Result<Tree, SerError> {
        Ok(self.finish())
    }
}

impl VariantBuilder {
    fn finish(self) -> Tree {
        let inner = match self.inner {
            VariantInner::Seq(items) => Tree::Seq(items),
            VariantInner::Map(entries) => Tree::Map(entries),
        };
        Tree::Map(vec![(self.name.to_string(), inner)])
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Tree;
    type Error = SerError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerError> {
        self.key = Some(match key.serialize(KeySerializer)? {
            Tree::Str(s) => s,
            other => inline(&other),
        });
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| SerError("a map value without its key".into()))?;
        self.entries.push((key, to_tree(value)?));
        Ok(())
    }
    fn end(self) -> Result<Tree, SerError> {
        Ok(Tree::Map(self.entries))
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Tree;
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        self.entries.push((key.to_string(), to_tree(value)?));
        Ok(())
    }
    fn end(self) -> Result<Tree, SerError> {
        Ok(Tree::Map(self.entries))
    }
}

/// Map keys: scalars only.
struct KeySerializer;

macro_rules! key_via_tree {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, v: $ty) -> Result<Tree, SerError> {
            TreeSerializer.$method(v)
        })*
    };
}

impl ser::Serializer for KeySerializer {
    type Ok = Tree;
    type Error = SerError;
    type SerializeSeq = Impossible<Tree, SerError>;
    type SerializeTuple = Impossible<Tree, SerError>;
    type SerializeTupleStruct = Impossible<Tree, SerError>;
    type SerializeTupleVariant = Impossible<Tree, SerError>;
    type SerializeMap = Impossible<Tree, SerError>;
    type SerializeStruct = Impossible<Tree, SerError>;
    type SerializeStructVariant = Impossible<Tree, SerError>;

    key_via_tree!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8]);

    fn serialize_none(self) -> Result<Tree, SerError> {
        Ok(Tree::Str(String::new()))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Tree, SerError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Tree, SerError> {
        Ok(Tree::Str(String::new()))
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Tree, SerError> {
        Ok(Tree::Str(String::new()))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Tree, SerError> {
        Ok(Tree::Str(variant.to_string()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Tree, SerError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Tree, SerError> {
        Err(SerError("a map key must be a plain value".into()))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, SerError> {
        Err(SerError("a map key must be a plain value".into()))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, SerError> {
        Err(SerError("a map key must be a plain value".into()))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, SerError> {
        Err(SerError("a map key must be a plain value".into()))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, SerError> {
        Err(SerError("a map key must be a plain value".into()))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        Err(SerError("a map key must be a plain value".into()))
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, SerError> {
        Err(SerError("a map key must be a plain value".into()))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, SerError> {
        Err(SerError("a map key must be a plain value".into()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::super::from_str;
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Doc {
        name: String,
        port: u16,
        on: bool,
        labels: BTreeMap<String, String>,
        jobs: Vec<Job>,
        empty: Vec<String>,
        none: Option<String>,
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Job {
        a: String,
        nested: Vec<Vec<String>>,
    }

    #[test]
    fn written_yaml_reads_back_to_the_same_value_in_field_order() {
        let doc = Doc {
            name: "yes".into(),
            port: 80,
            on: true,
            labels: BTreeMap::from([
                ("port".into(), "8080".into()),
                ("odd: key".into(), "a #b".into()),
                ("tilde".into(), "~".into()),
                ("multi".into(), "line\nbreak".into()),
                ("plain".into(), "/var/log/*.log".into()),
            ]),
            jobs: vec![Job {
                a: "".into(),
                nested: vec![vec!["x".into()], vec![]],
            }],
            empty: vec![],
            none: None,
        };
        let text = to_string(&doc).unwrap();
        assert!(
            text.starts_with("name: \"yes\"\nport: 80\n\"on\": true\n"),
            "{text}"
        );
        assert!(text.contains("  plain: /var/log/*.log\n"), "{text}");
        assert!(text.contains("  port: \"8080\"\n"), "{text}");
        let back: Doc = from_str(&text).unwrap();
        assert_eq!(back, doc, "{text}");
    }
}
