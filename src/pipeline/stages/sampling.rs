//! `sampling`: keeps a random share `rate` (0 to 1) of the entries and drops the rest,
//! counted under `drop_counter_reason` (default `sampling_stage`).
//!
//! The decision is Promtail's (taken from Jaeger's probabilistic sampler): a random 63-bit
//! number, never zero, is kept when it is at most `rate * (2^63 - 1)`, so `rate: 0` drops
//! everything and `rate: 1` keeps everything. Deviation: a missing `rate` is an error here;
//! Promtail reads it as 0 and silently drops every line.

use std::borrow::Cow;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use super::StageError;
use crate::pipeline::{PipelineEntry, Stage, Verdict};

const DEFAULT_DROP_REASON: &str = "sampling_stage";
const MAX_RANDOM: u64 = (1 << 63) - 1;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_counter_reason: Option<String>,
}

pub struct SamplingStage {
    boundary: u64,
    rng: SmallRng,
    reason: Cow<'static, str>,
}

impl SamplingStage {
    /// Seeds the generator from the operating system.
    pub fn new(cfg: &SamplingConfig) -> Result<Self, StageError> {
        let rng = SmallRng::try_from_os_rng().map_err(|e| {
            StageError::new("", format!("cannot seed the random number generator: {e}"))
        })?;
        Self::with_rng(cfg, rng)
    }

    /// A stage whose decisions follow from `seed`, for reproducible runs.
    pub fn with_seed(cfg: &SamplingConfig, seed: u64) -> Result<Self, StageError> {
        Self::with_rng(cfg, SmallRng::seed_from_u64(seed))
    }

    fn with_rng(cfg: &SamplingConfig, rng: SmallRng) -> Result<Self, StageError> {
        let rate = match cfg.rate {
            None => {
                return Err(StageError::new(
                    "rate",
                    "expected the share of lines to keep, from 0.0 to 1.0",
                ));
            }
            Some(r) if !(0.0..=1.0).contains(&r) => {
                return Err(StageError::new(
                    "rate",
                    format!("expected a rate from 0.0 to 1.0, got {r}"),
                ));
            }
            Some(r) => r,
        };
        let reason = match cfg.drop_counter_reason.as_deref() {
            None | Some("") | Some(DEFAULT_DROP_REASON) => Cow::Borrowed(DEFAULT_DROP_REASON),
            Some(r) => Cow::Owned(r.to_string()),
        };
        Ok(Self {
            boundary: (MAX_RANDOM as f64 * rate) as u64,
            rng,
            reason,
        })
    }

    fn is_sampled(&mut self) -> bool {
        let mut r = self.rng.next_u64() & MAX_RANDOM;
        while r == 0 {
            r = self.rng.next_u64() & MAX_RANDOM;
        }
        self.boundary >= r
    }
}

impl Stage for SamplingStage {
    fn process(&mut self, _entry: &mut PipelineEntry) -> Verdict {
        if self.is_sampled() {
            Verdict::Keep
        } else {
            Verdict::Drop {
                reason: self.reason.clone(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;

    fn cfg(rate: f64) -> SamplingConfig {
        SamplingConfig {
            rate: Some(rate),
            drop_counter_reason: None,
        }
    }

    fn kept(s: &mut SamplingStage, n: usize) -> usize {
        (0..n)
            .filter(|_| s.process(&mut entry("x", &[])) == Verdict::Keep)
            .count()
    }

    #[test]
    fn rate_zero_drops_everything_and_one_keeps_everything() {
        assert_eq!(
            kept(&mut SamplingStage::with_seed(&cfg(0.0), 1).unwrap(), 1000),
            0
        );
        assert_eq!(
            kept(&mut SamplingStage::with_seed(&cfg(1.0), 1).unwrap(), 1000),
            1000
        );
    }

    #[test]
    fn keeps_about_the_configured_share() {
        for rate in [0.1, 0.5, 0.9] {
            let mut s = SamplingStage::with_seed(&cfg(rate), 42).unwrap();
            let share = kept(&mut s, 20_000) as f64 / 20_000.0;
            assert!((share - rate).abs() < 0.02, "rate {rate}: kept {share}");
        }
    }

    #[test]
    fn same_seed_gives_same_decisions() {
        let decide = |seed| {
            let mut s = SamplingStage::with_seed(&cfg(0.5), seed).unwrap();
            (0..64)
                .map(|_| s.process(&mut entry("x", &[])) == Verdict::Keep)
                .collect::<Vec<_>>()
        };
        assert_eq!(decide(7), decide(7));
        assert_ne!(decide(7), decide(8));
    }

    #[test]
    fn drops_with_configured_reason() {
        let mut s = SamplingStage::with_seed(
            &SamplingConfig {
                rate: Some(0.0),
                drop_counter_reason: Some("sampled_out".into()),
            },
            1,
        )
        .unwrap();
        assert_eq!(
            s.process(&mut entry("x", &[])),
            Verdict::Drop {
                reason: "sampled_out".into()
            }
        );
        let mut default = SamplingStage::with_seed(&cfg(0.0), 1).unwrap();
        assert_eq!(
            default.process(&mut entry("x", &[])),
            Verdict::Drop {
                reason: "sampling_stage".into()
            }
        );
    }

    #[test]
    fn rate_must_be_given_and_within_zero_and_one() {
        for rate in [None, Some(-0.1), Some(1.5), Some(f64::NAN)] {
            let cfg = SamplingConfig {
                rate,
                drop_counter_reason: None,
            };
            assert_eq!(
                SamplingStage::new(&cfg).err().unwrap().key,
                "rate",
                "{rate:?}"
            );
        }
    }
}
