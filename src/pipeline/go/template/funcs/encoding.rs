//! Hashes and encodings: Promtail's `Hash` (SHA3-256) and `Sha2Hash` (SHA-256) of salt then
//! input, Sprig's `sha256sum`, `b64enc`, `b64dec` and `toJson`.
//!
//! Owns Go's encodings byte for byte: lower-case hex digests, `base64.StdEncoding` (padding
//! required, Go's error text as `b64dec`'s result) and `encoding/json` for `toJson` (sorted
//! keys, HTML-safe escaping, Go's float form; a value JSON cannot hold gives "").

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use sha2::Digest as _;

use super::super::strconv::float_digits;
use super::super::{ExecError, TemplateData, Value, root_map};
use super::{Call, FuncName, str_arg, want_args};
use crate::pipeline::go::json::{JsonFlavor, write_json_string};

/// Hash and encoding functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::pipeline::go::template) enum EncodingFunc {
    Hash,
    Sha2Hash,
    B64enc,
    B64dec,
    ToJson,
    Sha256sum,
}

/// Each function's name in templates.
pub(super) const TABLE: &[(&str, EncodingFunc)] = &[
    ("Hash", EncodingFunc::Hash),
    ("Sha2Hash", EncodingFunc::Sha2Hash),
    ("b64enc", EncodingFunc::B64enc),
    ("b64dec", EncodingFunc::B64dec),
    ("toJson", EncodingFunc::ToJson),
    ("sha256sum", EncodingFunc::Sha256sum),
];

impl FuncName for EncodingFunc {
    fn name(self) -> &'static str {
        super::name_in(TABLE, self)
    }
}

impl EncodingFunc {
    pub(super) fn call<'a>(
        self,
        args: Vec<Value<'a>>,
        cx: &mut Call<'_>,
    ) -> Result<Value<'a>, ExecError> {
        use EncodingFunc as F;
        let f = self;
        let data = cx.data;
        let s = |s: String| Ok(Value::Str(Cow::Owned(s)));
        match f {
            F::Hash | F::Sha2Hash => {
                want_args(f, &args, 2)?;
                let (salt, input) = (str_arg(&args[0])?, str_arg(&args[1])?);
                let digest = if f == F::Hash {
                    let mut h = sha3::Sha3_256::new();
                    h.update(salt.as_bytes());
                    h.update(input.as_bytes());
                    hex_lower(&h.finalize())
                } else {
                    let mut h = sha2::Sha256::new();
                    h.update(salt.as_bytes());
                    h.update(input.as_bytes());
                    hex_lower(&h.finalize())
                };
                s(digest)
            }
            F::Sha256sum => {
                want_args(f, &args, 1)?;
                s(hex_lower(&sha2::Sha256::digest(
                    str_arg(&args[0])?.as_bytes(),
                )))
            }
            F::B64enc => {
                want_args(f, &args, 1)?;
                s(GO_BASE64.encode(str_arg(&args[0])?.as_bytes()))
            }
            F::B64dec => {
                want_args(f, &args, 1)?;
                s(b64dec(str_arg(&args[0])?))
            }
            F::ToJson => {
                want_args(f, &args, 1)?;
                let mut out = String::new();
                // Sprig drops the marshalling error and returns an empty string.
                if go_json(&args[0], data, &mut out).is_err() {
                    out.clear();
                }
                s(out)
            }
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn go_json(v: &Value<'_>, data: &dyn TemplateData, out: &mut String) -> Result<(), ()> {
    match v {
        Value::Missing | Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(());
            }
            let abs = f.abs();
            if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
                let mut e = String::new();
                let (digits, dp) = float_digits(*f, None);
                if *f < 0.0 {
                    e.push('-');
                }
                e.push_str(&digits[..1]);
                if digits.len() > 1 {
                    e.push('.');
                    e.push_str(&digits[1..]);
                }
                let exp = dp - 1;
                e.push('e');
                e.push(if exp < 0 { '-' } else { '+' });
                let _ = write!(e, "{}", exp.unsigned_abs());
                out.push_str(&e);
            } else {
                let _ = write!(out, "{f}");
            }
        }
        Value::Str(s) => write_json_string(s, JsonFlavor::EncodingJson, out),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(e, data, out)?;
            }
            out.push(']');
        }
        Value::Map(m) => go_json_map(m, data, out)?,
        Value::Root => go_json_map(&root_map(data), data, out)?,
    }
    Ok(())
}

fn go_json_map(
    m: &BTreeMap<String, Value<'_>>,
    data: &dyn TemplateData,
    out: &mut String,
) -> Result<(), ()> {
    out.push('{');
    for (i, (k, e)) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(k, JsonFlavor::EncodingJson, out);
        out.push(':');
        go_json(e, data, out)?;
    }
    out.push('}');
    Ok(())
}

/// Go's `base64.StdEncoding`: padding required, trailing bits and line breaks tolerated.
const GO_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Sprig's `b64dec`: the decoded text, or Go's error message as the result.
fn b64dec(s: &str) -> String {
    let cleaned: Cow<'_, str> = if s.contains(['\r', '\n']) {
        Cow::Owned(s.replace(['\r', '\n'], ""))
    } else {
        Cow::Borrowed(s)
    };
    match GO_BASE64.decode(cleaned.as_bytes()) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            let at = match e {
                base64::DecodeError::InvalidByte(i, _)
                | base64::DecodeError::InvalidLastSymbol(i, _) => i,
                base64::DecodeError::InvalidLength(len) => len / 4 * 4,
                base64::DecodeError::InvalidPadding => cleaned.trim_end_matches('=').len(),
            };
            format!("illegal base64 data at input byte {at}")
        }
    }
}
