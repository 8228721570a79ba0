//! Go compatibility: the parts of Go's standard library (and Promtail's use of it) whose exact
//! behaviour a Promtail config depends on, reproduced so that the same config means the same
//! thing here.
//!
//! Owns reproducing Go's and Promtail's semantics, byte for byte where users compare output:
//! - [`template`]: `text/template` with Promtail's function map (Go builtins, Promtail's
//!   `strings` functions, the Sprig functions log pipelines use) and `fmt`'s `printf`;
//! - [`time`]: `time` layouts (`2006-01-02T15:04:05Z07:00`) parsed as `time.Parse` does,
//!   Promtail's named and `Unix*` timestamp formats, and the dry-run timestamp rendering;
//! - [`regex`]: RE2 pattern syntax (ASCII `\d \w \s \b`, `\Q...\E`) for the `regex` crate;
//! - [`json`]: `encoding/json`'s and json-iterator's string escaping;
//! - [`yaml`]: YAML read as go-yaml v2 reads it into Go structs (Promtail's config, positions
//!   file and stage configs), with a fixed alias budget and key paths with lines in errors.
//!
//! It must not know about stages, entries, files or Loki: callers hand it text, values and
//! a [`template::TemplateData`] view of their data, and get text or values back.

pub mod json;
pub mod regex;
pub mod template;
pub mod time;
pub mod yaml;
