//! Deserializing a [`Node`] tree with go-yaml v2's rules, where the target type decides how
//! a scalar reads (go-yaml's `decoder.scalar`):
//!
//! - a string field takes any scalar as the text written (`username: 123456` is
//!   `"123456"`, `port: 08080` is `"08080"`); null (`~`, `null`, nothing) is `""`;
//! - a bool field takes YAML 1.1's booleans as go-yaml v2 resolves them (`true`, `yes`,
//!   `on`, `y` in lower, capitalised or upper case, and their negations); quoted text is not a
//!   boolean;
//! - a number field takes decimal, `0x` hex, `0o`/leading-zero octal, `0b` binary and `_`
//!   separators (Go's `ParseInt` with base 0), or a float with no fraction;
//! - null sets the zero value (false, 0, empty list or map) and `None`.
//!
//! Where the type leaves it open (`serde_json::Value`, `deserialize_any`), a plain scalar
//! resolves as go-yaml v2 resolves it into `interface{}`: null, boolean, integer, float, else
//! text (timestamps stay text). Errors carry the key path and line.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, Expected, IntoDeserializer, MapAccess,
    SeqAccess, Unexpected, VariantAccess, Visitor,
};

use super::{CoreTag, Error, Kind, Node, Scalar};

/// Deserializes `node` into `T`.
pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, Error> {
    T::deserialize(De { node })
}

impl de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error::new(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Error::new(format!(
            "expected {}, found {}",
            plain_expected(exp),
            plain_unexpected(&unexp)
        ))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self::invalid_type(unexp, exp)
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        Error::new(format!(
            "expected {}, found {len} items",
            plain_expected(exp)
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Error::new(format!(
            "unknown stage or value `{variant}`; expected one of: {}",
            expected.join(", ")
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Error::new(format!(
            "unknown key `{field}`; expected one of: {}",
            expected.join(", ")
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        Error::new(format!("missing key `{field}`"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Error::new(format!("duplicate key `{field}`"))
    }
}

/// serde's type names in a config user's words.
fn plain_expected(exp: &dyn Expected) -> String {
    plain_type_name(&exp.to_string())
}

/// A type name as serde or figment prints it (`u16`, `a boolean`, `struct X`), in a config
/// user's words.
pub fn plain_type_name(text: &str) -> String {
    match text {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "u128" | "usize" => "a whole number (0 or more)".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a sequence" => "a list".into(),
        "unit" => "an empty value".into(),
        t if t.starts_with("struct ") || t.starts_with("a map") => "a map of keys".into(),
        t if t.starts_with("enum ") => "one of the documented values".into(),
        _ => text.to_string(),
    }
}

fn plain_unexpected(unexp: &Unexpected<'_>) -> String {
    match unexp {
        Unexpected::Unit => "an empty value".into(),
        Unexpected::Str(s) => format!("{s:?}"),
        Unexpected::Map => "a map".into(),
        Unexpected::Seq => "a list".into(),
        Unexpected::Bool(b) => format!("the boolean {b}"),
        Unexpected::Unsigned(n) => format!("the number {n}"),
        Unexpected::Signed(n) => format!("the number {n}"),
        Unexpected::Float(n) => format!("the number {n}"),
        other => other.to_string(),
    }
}

/// A plain scalar as go-yaml v2 resolves it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'a str),
}

/// go-yaml v2's `resolve`: quoted scalars and `!!str` are text; plain ones are looked up
/// (null, the YAML 1.1 booleans, `.inf`, `.nan`), then tried as integers and floats when
/// they start like a number.
pub fn resolve(s: &Scalar) -> Resolved<'_> {
    let text = s.text.as_str();
    match s.tag {
        Some(CoreTag::Str) => return Resolved::Str(text),
        None if !s.plain => return Resolved::Str(text),
        _ => {}
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Resolved::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Resolved::Bool(false);
        }
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        _ => {}
    }
    if !text.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '.') {
        return Resolved::Str(text);
    }
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    if let Some(n) = go_parse_int(&plain) {
        if let Ok(i) = i64::try_from(n) {
            return if i >= 0 {
                Resolved::Uint(i as u64)
            } else {
                Resolved::Int(i)
            };
        }
        if let Ok(u) = u64::try_from(n) {
            return Resolved::Uint(u);
        }
    }
    if yaml_style_float(&plain)
        && let Ok(f) = plain.parse::<f64>()
    {
        return Resolved::Float(f);
    }
    Resolved::Str(text)
}

/// Go's `strconv.ParseInt(s, 0, 64)` (and `ParseUint`): optional sign, then `0x`, `0o`,
/// `0b` or a leading `0` (octal), else decimal.
fn go_parse_int(s: &str) -> Option<i128> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, body) = if let Some(r) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, r)
    } else if let Some(r) = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
    {
        (8, r)
    } else if let Some(r) = digits
        .strip_prefix("0b")
        .or_else(|| digits.strip_prefix("0B"))
    {
        (2, r)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(body, radix).ok()?;
    if magnitude > u64::MAX as i128 {
        return None;
    }
    Some(if negative { -magnitude } else { magnitude })
}

/// go-yaml v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// How a node is named in "found ..." when it does not fit.
fn describe(node: &Node) -> String {
    match &node.kind {
        Kind::Scalar(s) => match resolve(s) {
            Resolved::Null => "an empty value".into(),
            _ => format!("{:?}", s.text),
        },
        Kind::Seq(_) => "a list".into(),
        Kind::Map(_) => "a map".into(),
    }
}

#[derive(Clone, Copy)]
struct De<'a> {
    node: &'a Node,
}

impl<'a> De<'a> {
    fn fail(&self, expected: &str) -> Error {
        Error::new(format!(
            "expected {expected}, found {}",
            describe(self.node)
        ))
        .or_line(self.node.line)
    }

    fn scalar(&self) -> Option<&'a Scalar> {
        self.node.as_scalar()
    }

    /// The number a scalar stands for, in a number field: integers, and floats that are
    /// whole (go-yaml v2 also truncates other floats into integer fields; a fraction there is
    /// refused instead).
    fn integer(&self) -> Option<i128> {
        let s = self.scalar()?;
        // An explicit `!!str` stays text even in a number field.
        if s.tag == Some(CoreTag::Str) {
            return None;
        }
        let unquoted = Scalar {
            plain: true,
            ..s.clone()
        };
        let resolved = if s.plain || matches!(s.tag, Some(CoreTag::Int | CoreTag::Float)) {
            resolve(&unquoted)
        } else {
            return None;
        };
        match resolved {
            Resolved::Null => Some(0),
            Resolved::Int(i) => Some(i128::from(i)),
            Resolved::Uint(u) => Some(i128::from(u)),
            Resolved::Float(f) if f.fract() == 0.0 && f.abs() < 1.8e19 => Some(f as i128),
            _ => None,
        }
    }

    fn float(&self) -> Option<f64> {
        let s = self.scalar()?;
        if !s.plain && !matches!(s.tag, Some(CoreTag::Int | CoreTag::Float)) {
            return None;
        }
        let unquoted = Scalar {
            plain: true,
            ..s.clone()
        };
        match resolve(&unquoted) {
            Resolved::Null => Some(0.0),
            Resolved::Int(i) => Some(i as f64),
            Resolved::Uint(u) => Some(u as f64),
            Resolved::Float(f) => Some(f),
            _ => None,
        }
    }

    fn visit_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let empty: &[(Node, Node)] = &[];
        let entries = match &self.node.kind {
            Kind::Map(entries) => entries.as_slice(),
            _ if self.node.is_null() => empty,
            _ => return Err(self.fail("a map of keys")),
        };
        let mut access = Entries {
            iter: entries.iter(),
            value: None,
        };
        visitor
            .visit_map(&mut access)
            .map_err(|e: Error| e.or_line(self.node.line))
    }

    fn visit_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let empty: &[Node] = &[];
        let items = match &self.node.kind {
            Kind::Seq(items) => items.as_slice(),
            _ if self.node.is_null() => empty,
            _ => return Err(self.fail("a list")),
        };
        let mut access = Items {
            iter: items.iter().enumerate(),
        };
        visitor
            .visit_seq(&mut access)
            .map_err(|e: Error| e.or_line(self.node.line))
    }
}

macro_rules! integer {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.integer().and_then(|n| <$ty>::try_from(n).ok()) {
                Some(n) => visitor
                    .$visit(n)
                    .map_err(|e: Error| e.or_line(self.node.line)),
                None => Err(self.fail(&format!(
                    "a whole number from {} to {}",
                    <$ty>::MIN,
                    <$ty>::MAX
                ))),
            }
        }
    };
}

impl<'a> de::Deserializer<'a> for De<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        let line = self.node.line;
        let result = match &self.node.kind {
            Kind::Map(_) => return self.visit_map(visitor),
            Kind::Seq(_) => return self.visit_seq(visitor),
            Kind::Scalar(s) => match resolve(s) {
                Resolved::Null => visitor.visit_unit::<Error>(),
                Resolved::Bool(b) => visitor.visit_bool::<Error>(b),
                Resolved::Int(i) => visitor.visit_i64(i),
                Resolved::Uint(u) => visitor.visit_u64(u),
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str(t) => visitor.visit_str(t),
            },
        };
        result.map_err(|e: Error| e.or_line(line))
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.scalar().map(resolve) {
            Some(Resolved::Bool(b)) => visitor.visit_bool::<Error>(b),
            Some(Resolved::Null) => visitor.visit_bool(false),
            _ => Err(self.fail("true or false (yes/no and on/off work too)")),
        }
    }

    integer!(deserialize_i8, visit_i8, i8);
    integer!(deserialize_i16, visit_i16, i16);
    integer!(deserialize_i32, visit_i32, i32);
    integer!(deserialize_i64, visit_i64, i64);
    integer!(deserialize_u8, visit_u8, u8);
    integer!(deserialize_u16, visit_u16, u16);
    integer!(deserialize_u32, visit_u32, u32);
    integer!(deserialize_u64, visit_u64, u64);

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.float() {
            Some(f) => visitor
                .visit_f64(f)
                .map_err(|e: Error| e.or_line(self.node.line)),
            None => Err(self.fail("a number")),
        }
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.scalar() {
            Some(s) if matches!(resolve(s), Resolved::Null) => visitor.visit_str(""),
            Some(s) => visitor.visit_str(&s.text),
            None => return Err(self.fail("a string")),
        }
        .map_err(|e: Error| e.or_line(self.node.line))
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.scalar() {
            Some(s) => visitor.visit_bytes(s.text.as_bytes()),
            None => Err(self.fail("a string")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.node.is_null() {
            visitor.visit_unit()
        } else {
            Err(self.fail("an empty value"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_seq(visitor)
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.visit_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.visit_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_map(visitor)
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.visit_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let line = self.node.line;
        match &self.node.kind {
            Kind::Scalar(s) if !matches!(resolve(s), Resolved::Null) => visitor
                .visit_enum(Variant {
                    name: &s.text,
                    value: None,
                })
                .map_err(|e: Error| e.or_line(line)),
            Kind::Map(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                let Some(name) = k.as_scalar() else {
                    return Err(self.fail("a map naming one value"));
                };
                visitor
                    .visit_enum(Variant {
                        name: &name.text,
                        value: Some(v),
                    })
                    .map_err(|e: Error| e.or_line(line))
            }
            _ => Err(self.fail(&format!("one of: {}", variants.join(", ")))),
        }
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct Entries<'a> {
    iter: std::slice::Iter<'a, (Node, Node)>,
    value: Option<(&'a Node, &'a Node)>,
}

impl<'a> MapAccess<'a> for Entries<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((k, v)) = self.iter.next() else {
            return Ok(None);
        };
        self.value = Some((k, v));
        let name = k.as_scalar().map_or("", |s| s.text.as_str());
        seed.deserialize(De { node: k })
            .map(Some)
            .map_err(|e| e.or_line(k.line).within_key(name))
    }

    fn next_value_seed<T: DeserializeSeed<'a>>(&mut self, seed: T) -> Result<T::Value, Error> {
        let Some((k, v)) = self.value.take() else {
            return Err(Error::new("a value was asked for before its key"));
        };
        let name = k.as_scalar().map_or("", |s| s.text.as_str());
        seed.deserialize(De { node: v })
            .map_err(|e| e.or_line(v.line).within_key(name))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Items<'a> {
    iter: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl<'a> SeqAccess<'a> for Items<'a> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some((i, node)) = self.iter.next() else {
            return Ok(None);
        };
        seed.deserialize(De { node })
            .map(Some)
            .map_err(|e| e.or_line(node.line).within_index(i))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// An enum written as `name` or `name: value`.
struct Variant<'a> {
    name: &'a str,
    value: Option<&'a Node>,
}

impl<'a> EnumAccess<'a> for Variant<'a> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'a>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let de: de::value::StrDeserializer<'_, Error> = self.name.into_deserializer();
        let value = seed.deserialize(de)?;
        Ok((value, self))
    }
}

impl<'a> VariantAccess<'a> for Variant<'a> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            Some(v) if !v.is_null() => Err(Error::new(format!(
                "`{}` takes no value, found {}",
                self.name,
                describe(v)
            ))
            .or_line(v.line)),
            _ => Ok(()),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, Error> {
        match self.value {
            Some(node) => seed
                .deserialize(De { node })
                .map_err(|e| e.or_line(node.line).within_key(self.name)),
            None => Err(Error::new(format!(
                "expected `{}:` followed by its settings (a map)",
                self.name
            ))),
        }
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Some(node) => De { node }
                .visit_seq(visitor)
                .map_err(|e| e.within_key(self.name)),
            None => Err(Error::new(format!("expected `{}:` with a list", self.name))),
        }
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Some(node) => De { node }
                .visit_map(visitor)
                .map_err(|e| e.within_key(self.name)),
            None => Err(Error::new(format!("expected `{}:` with a map", self.name))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::super::from_str;
    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        name: String,
        on: bool,
        port: u16,
        rate: f64,
        labels: BTreeMap<String, String>,
        list: Vec<String>,
        maybe: Option<String>,
    }

    #[test]
    fn scalars_in_string_fields_are_their_text() {
        let s: Sample =
            from_str("name: 123456\nlabels: {port: 8080, zip: 08080, t: true, f: 1.50, n: ~}\nlist: [1, yes, 0x1F]\n")
                .unwrap();
        assert_eq!(s.name, "123456");
        assert_eq!(s.labels["port"], "8080");
        assert_eq!(s.labels["zip"], "08080");
        assert_eq!(s.labels["t"], "true");
        assert_eq!(s.labels["f"], "1.50");
        assert_eq!(s.labels["n"], "");
        assert_eq!(s.list, vec!["1", "yes", "0x1F"]);
    }

    #[test]
    fn yaml_1_1_booleans_as_go_yaml_v2_resolves_them() {
        for (text, want) in [
            ("yes", true),
            ("Yes", true),
            ("YES", true),
            ("on", true),
            ("ON", true),
            ("y", true),
            ("Y", true),
            ("True", true),
            ("no", false),
            ("Off", false),
            ("n", false),
            ("FALSE", false),
            ("", false),
        ] {
            let s: Sample = from_str(&format!("on: {text}\n")).unwrap();
            assert_eq!(s.on, want, "{text:?}");
        }
        for bad in ["yEs", "\"yes\"", "1", "enabled"] {
            let e = from_str::<Sample>(&format!("on: {bad}\n")).unwrap_err();
            assert_eq!(e.key_path(), "on", "{bad}");
            assert!(e.message.contains("expected true or false"), "{bad}: {e}");
        }
    }

    #[test]
    fn numbers_in_go_notation_and_ranges() {
        let s: Sample = from_str("port: 0x1F90\nrate: 1_000\n").unwrap();
        assert_eq!(s.port, 8080);
        assert_eq!(s.rate, 1000.0);
        assert_eq!(from_str::<Sample>("port: 0755\n").unwrap().port, 493);
        assert_eq!(from_str::<Sample>("port: 1e3\n").unwrap().port, 1000);
        assert_eq!(from_str::<Sample>("rate: .5\n").unwrap().rate, 0.5);
        let e = from_str::<Sample>("port: 70000\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "port: expected a whole number from 0 to 65535, found \"70000\" (line 1)"
        );
        assert!(
            from_str::<Sample>("port: \"80\"\n").is_err(),
            "quoted text is not a number"
        );
        assert!(from_str::<Sample>("port: 1.5\n").is_err());
    }

    #[test]
    fn null_is_the_zero_value() {
        let s: Sample = from_str("name:\nport:\nlist:\nlabels:\nmaybe:\n").unwrap();
        assert_eq!(s, Sample::default());
        let s: Sample = from_str("maybe: ''\n").unwrap();
        assert_eq!(s.maybe.as_deref(), Some(""));
    }

    #[test]
    fn errors_name_the_key_path_and_line() {
        let e = from_str::<BTreeMap<String, Vec<Sample>>>(
            "jobs:\n  - name: a\n  - name: b\n    bogus: 1\n",
        )
        .unwrap_err();
        assert_eq!(e.key_path(), "jobs[1].bogus");
        assert_eq!(e.line, Some(4));
        assert!(
            e.message
                .starts_with("unknown key `bogus`; expected one of: name, on"),
            "{e}"
        );
    }

    #[test]
    fn untyped_values_resolve_as_go_yaml_v2_into_interface() {
        let v: serde_json::Value =
            from_str("a: 1\nb: yes\nc: 2024-01-01\nd: '1'\ne: 1.5\nf: ~\ng: -3\n").unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": true, "c": "2024-01-01", "d": "1", "e": 1.5, "f": null, "g": -3})
        );
    }

    #[test]
    fn go_parse_int_follows_base_prefixes() {
        assert_eq!(go_parse_int("0b101"), Some(5));
        assert_eq!(go_parse_int("-0x10"), Some(-16));
        assert_eq!(go_parse_int("0o17"), Some(15));
        assert_eq!(go_parse_int("09"), None);
        assert_eq!(go_parse_int("0"), Some(0));
        assert!(yaml_style_float("09"));
        assert!(!yaml_style_float("1e"));
        assert!(!yaml_style_float("."));
    }
}
