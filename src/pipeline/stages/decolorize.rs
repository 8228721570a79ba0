//! `decolorize`: strips ANSI colour and cursor escape sequences from the line.
//!
//! Uses the pattern Loki's decolorizer uses (from acarl005/stripansi): an ESC or CSI
//! (U+009B) introducer, then either an OSC-style body ending in BEL or a CSI body of up to
//! four-digit parameters ending in a final byte. `\d` in that Go pattern is ASCII-only, so it
//! is written `[0-9]` here (Rust's `\d` would also match other scripts' digits).
//!
//! The stage takes no options: `decolorize:`, `decolorize: {}` and `decolorize: null` are
//! all accepted.

use std::borrow::Cow;
use std::fmt;

use regex::Regex;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::StageError;
use crate::pipeline::{PipelineEntry, Stage, Verdict};

const ANSI_PATTERN: &str = r"[\x{1B}\x{9B}][\[\]()#;?]*(?:(?:(?:[a-zA-Z0-9]*(?:;[a-zA-Z0-9]*)*)?\x{07})|(?:(?:[0-9]{1,4}(?:;[0-9]{0,4})*)?[0-9A-PRZcf-ntqry=><~]))";

/// No options; only the empty block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecolorizeConfig;

impl<'de> Deserialize<'de> for DecolorizeConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Empty;
        impl<'de> Visitor<'de> for Empty {
            type Value = DecolorizeConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("nothing (decolorize takes no options)")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(DecolorizeConfig)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(DecolorizeConfig)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                match map.next_key::<String>()? {
                    None => Ok(DecolorizeConfig),
                    Some(key) => Err(de::Error::custom(format!(
                        "unknown key `{key}`: decolorize takes no options"
                    ))),
                }
            }
        }
        d.deserialize_any(Empty)
    }
}

impl Serialize for DecolorizeConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

pub struct DecolorizeStage {
    ansi: Regex,
}

impl DecolorizeStage {
    pub fn new(_cfg: &DecolorizeConfig) -> Result<Self, StageError> {
        let ansi = Regex::new(ANSI_PATTERN)
            .map_err(|e| StageError::new("", format!("ANSI pattern does not compile: {e}")))?;
        Ok(Self { ansi })
    }
}

impl Stage for DecolorizeStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        if let Cow::Owned(stripped) = self.ansi.replace_all(&entry.line, "") {
            entry.line = stripped;
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;

    fn decolorize(line: &str) -> String {
        let mut e = entry(line, &[]);
        DecolorizeStage::new(&DecolorizeConfig)
            .unwrap()
            .process(&mut e);
        e.line
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(decolorize("sample text"), "sample text");
    }

    #[test]
    fn strips_sgr_colour_codes() {
        assert_eq!(
            decolorize("\x1b[0;32mgreen\x1b[0m \x1b[0;31mred\x1b[0m"),
            "green red"
        );
        assert_eq!(decolorize("\x1b[1;38;5;208mbold\x1b[m"), "bold");
    }

    #[test]
    fn strips_cursor_controls_osc_titles_and_csi_introducer() {
        assert_eq!(decolorize("a\x1b[2Kb\x1b[1Ac"), "abc");
        assert_eq!(decolorize("\x1b]0;title\x07text"), "text");
        assert_eq!(decolorize("\u{9b}31mred"), "red");
    }

    #[test]
    fn leaves_non_ascii_digits_and_lone_escape_alone() {
        // Go's \d is ASCII-only: an Arabic-Indic digit is not a parameter.
        assert_eq!(decolorize("\x1b[\u{661}m"), "\x1b[\u{661}m");
        assert_eq!(decolorize("\x1b"), "\x1b");
    }

    #[test]
    fn config_accepts_null_and_empty_map_and_refuses_keys() {
        let null: DecolorizeConfig = crate::pipeline::go::yaml::from_str("~").unwrap();
        let empty: DecolorizeConfig = crate::pipeline::go::yaml::from_str("{}").unwrap();
        assert_eq!(null, empty);
        assert!(crate::pipeline::go::yaml::from_str::<DecolorizeConfig>("{a: 1}").is_err());
    }
}
