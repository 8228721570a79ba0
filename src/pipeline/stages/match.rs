//! `match`: runs nested stages only for entries a LogQL selector matches (`action: keep`),
//! or drops matching entries (`action: drop`, counted under `drop_counter_reason`, default
//! `match_stage`). The selector is tested on the labels and line as they are when the entry
//! reaches this stage.
//!
//! The nested stages run as [`NestedStages`] runs any inner list: their verdicts are passed
//! on (a `Drop` under the nested stage's reason, `Wait` resuming at the waiting nested stage
//! without testing the selector again, `Hold` released through the nested stages after the
//! holding one), and an unheld matching entry leaves in order with the unmatched ones.
//!
//! Differences from Promtail: Promtail runs the nested pipeline on its own goroutines, so
//! matched and unmatched entries may leave in any order; here an unheld entry leaves in
//! order. `pipeline_name` is validated (not empty) but names nothing: the per-pipeline
//! duration histogram Promtail documents does not exist in its code.

use std::borrow::Cow;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{StageConfig, StageError};
use crate::model::ack::AckToken;
use crate::pipeline::logql::{Selector, parse_selector};
use crate::pipeline::nested::NestedStages;
use crate::pipeline::{BuildContext, PipelineEntry, Stage, Verdict};

const DEFAULT_DROP_REASON: &str = "match_stage";

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    #[serde(default)]
    pub selector: String,
    /// `keep` (the default) or `drop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_counter_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_name: Option<String>,
}

pub struct MatchStage {
    selector: Selector,
    action: Action,
}

enum Action {
    Drop { reason: Cow<'static, str> },
    Keep(Box<NestedStages>),
}

impl MatchStage {
    pub fn new(cfg: &MatchConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        if cfg.pipeline_name.as_deref() == Some("") {
            return Err(StageError::new(
                "pipeline_name",
                "expected a name, or no pipeline_name at all",
            ));
        }
        if cfg.selector.trim().is_empty() {
            return Err(StageError::new(
                "selector",
                "expected a LogQL stream selector such as {app=\"web\"} |= \"error\"",
            ));
        }
        let keep = match cfg.action.as_deref() {
            None | Some("") | Some("keep") => true,
            Some("drop") => false,
            Some(other) => {
                return Err(StageError::new(
                    "action",
                    format!("expected keep or drop, got {other:?}"),
                ));
            }
        };
        if keep && cfg.stages.is_empty() {
            return Err(StageError::new(
                "stages",
                "expected at least one nested stage (or action: drop)",
            ));
        }
        if !keep && !cfg.stages.is_empty() {
            return Err(StageError::new(
                "stages",
                "a match stage with action: drop cannot have nested stages",
            ));
        }
        let selector = parse_selector(&cfg.selector)
            .map_err(|e| StageError::new("selector", e.to_string()))?;
        let action = if keep {
            let nested = NestedStages::build("stages", &cfg.stages, ctx)
                .map_err(|e| StageError::new(e.key_path, e.message))?;
            Action::Keep(Box::new(nested))
        } else {
            let reason = match cfg.drop_counter_reason.as_deref() {
                None | Some("") | Some(DEFAULT_DROP_REASON) => Cow::Borrowed(DEFAULT_DROP_REASON),
                Some(r) => Cow::Owned(r.to_string()),
            };
            Action::Drop { reason }
        };
        Ok(Self { selector, action })
    }

    fn selects(&self, entry: &PipelineEntry) -> bool {
        self.selector.matches(&entry.labels, &entry.line)
    }
}

impl Stage for MatchStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let selected = self.selects(entry);
        let nested = match &mut self.action {
            Action::Drop { reason } => {
                return if selected {
                    Verdict::Drop {
                        reason: reason.clone(),
                    }
                } else {
                    Verdict::Keep
                };
            }
            Action::Keep(nested) => nested,
        };
        // An entry that waited inside resumes there without being tested again: nested
        // stages before the waiting one may have changed its labels.
        if !selected && !nested.is_resuming() {
            return Verdict::Keep;
        }
        nested.process(entry)
    }

    fn release(&mut self, now: Instant, flush_all: bool, out: &mut Vec<PipelineEntry>) {
        if let Action::Keep(nested) = &mut self.action {
            nested.release(now, flush_all, out);
        }
    }

    fn take_consumed(&mut self, consumed: &mut Vec<AckToken>) {
        if let Action::Keep(nested) = &mut self.action {
            nested.take_consumed(consumed);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.action {
            Action::Drop { .. } => None,
            Action::Keep(nested) => nested.next_deadline(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::metrics::Metrics;
    use crate::model::ack::SourceId;
    use crate::pipeline::stages::testing::entry;

    fn ctx() -> BuildContext {
        BuildContext::new("job", Arc::new(Metrics::new()))
    }

    fn config(yaml: &str) -> MatchConfig {
        crate::pipeline::go::yaml::from_str(yaml).unwrap()
    }

    fn build(yaml: &str) -> Result<MatchStage, StageError> {
        MatchStage::new(&config(yaml), &ctx())
    }

    fn ack(offset: u64) -> Option<AckToken> {
        Some(AckToken::line(SourceId(1), offset))
    }

    #[test]
    fn keep_runs_nested_stages_only_for_matching_entries() {
        let mut s = build(
            r#"
selector: '{app="web"} |= "error"'
stages:
  - static_labels: {level: error}
"#,
        )
        .unwrap();
        let mut hit = entry("an error", &[("app", "web")]);
        assert_eq!(s.process(&mut hit), Verdict::Keep);
        assert_eq!(hit.labels.get("level"), Some("error"));
        let mut other_app = entry("an error", &[("app", "db")]);
        assert_eq!(s.process(&mut other_app), Verdict::Keep);
        assert_eq!(other_app.labels.get("level"), None);
        let mut no_error = entry("fine", &[("app", "web")]);
        assert_eq!(s.process(&mut no_error), Verdict::Keep);
        assert_eq!(no_error.labels.get("level"), None);
    }

    #[test]
    fn drop_action_drops_matching_entries_with_reason() {
        let mut s = build("{selector: '{app=~\"db|cache\"}', action: drop}").unwrap();
        assert_eq!(
            s.process(&mut entry("x", &[("app", "db")])),
            Verdict::Drop {
                reason: "match_stage".into()
            }
        );
        assert_eq!(s.process(&mut entry("x", &[("app", "web")])), Verdict::Keep);
        let mut custom =
            build("{selector: '{app=\"db\"}', action: drop, drop_counter_reason: noisy_db}")
                .unwrap();
        assert_eq!(
            custom.process(&mut entry("x", &[("app", "db")])),
            Verdict::Drop {
                reason: "noisy_db".into()
            }
        );
    }

    #[test]
    fn nested_drop_is_returned_with_the_nested_reason() {
        let mut s = build(
            r#"
selector: '{app="web"}'
stages:
  - drop: {expression: debug}
"#,
        )
        .unwrap();
        assert_eq!(
            s.process(&mut entry("debug x", &[("app", "web")])),
            Verdict::Drop {
                reason: "drop_stage".into()
            }
        );
        assert_eq!(
            s.process(&mut entry("info x", &[("app", "web")])),
            Verdict::Keep
        );
    }

    #[test]
    fn config_errors_name_their_key() {
        let cases = [
            ("{selector: ''}", "selector"),
            ("{selector: '{a=\"b\"}'}", "stages"),
            (
                "{selector: '{a=\"b\"}', action: drop, stages: [{labeldrop: [a]}]}",
                "stages",
            ),
            ("{selector: '{a=\"b\"}', action: maybe}", "action"),
            (
                "{selector: '{a=\"b\"}', pipeline_name: '', action: drop}",
                "pipeline_name",
            ),
        ];
        for (yaml, key) in cases {
            let err = build(yaml).err().unwrap();
            assert_eq!(err.key, key, "{yaml}");
        }
    }

    #[test]
    fn selector_error_points_at_the_column() {
        let err = build("{selector: '{app=\"x\"} foo', action: drop}")
            .err()
            .unwrap();
        assert_eq!(err.key, "selector");
        assert!(
            err.message
                .starts_with("parse error at line 1, col 11: unexpected identifier foo"),
            "{}",
            err.message
        );
    }

    #[test]
    fn nested_errors_are_located_under_stages() {
        let err = build(
            r#"
selector: '{a="b"}'
stages:
  - static_labels: {level: x}
  - regex: {expression: '(?P<x>['}
"#,
        )
        .err()
        .unwrap();
        assert_eq!(err.key, "stages[1].regex.expression");
    }

    #[test]
    fn wait_resumes_at_the_waiting_nested_stage_without_rerunning_earlier_ones() {
        let mut s = MatchStage {
            selector: parse_selector(r#"{app="web"}"#).unwrap(),
            action: Action::Keep(Box::new(NestedStages::new(
                vec![
                    Box::new(Appender("a")),
                    Box::new(WaitOnce::new(Duration::from_millis(5))),
                    Box::new(Appender("b")),
                ],
                &ctx(),
            ))),
        };
        let mut e = entry("x", &[("app", "web")]);
        assert_eq!(s.process(&mut e), Verdict::Wait(Duration::from_millis(5)));
        // A stage of the nested list changed the labels; the resumed entry must not be
        // tested against the selector again.
        e.labels.insert("app".into(), "other".into());
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert_eq!(e.line, "xab");
    }

    #[test]
    fn held_entries_are_released_through_the_remaining_nested_stages() {
        let mut s = keep_stage(vec![
            Box::new(HoldPairs::default()),
            Box::new(Appender("!")),
        ]);
        let mut first = entry("1", &[("app", "web")]);
        first.ack = ack(10);
        assert_eq!(s.process(&mut first), Verdict::Hold);
        let mut out = Vec::new();
        s.release(Instant::now(), false, &mut out);
        assert!(out.is_empty());
        let mut second = entry("2", &[("app", "web")]);
        second.ack = ack(20);
        assert_eq!(s.process(&mut second), Verdict::Hold);
        s.release(Instant::now(), false, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].line, "1+2!");
        assert_eq!(
            out[0].ack.map(|a| (a.from, a.offset)),
            Some((10, 20)),
            "the joined entry's token covers both lines"
        );
    }

    #[test]
    fn unmatched_entry_overtaking_a_held_line_keeps_its_ack() {
        let mut s = keep_stage(vec![Box::new(HoldPairs::default())]);
        let mut held = entry("1", &[("app", "web")]);
        held.ack = ack(10);
        assert_eq!(s.process(&mut held), Verdict::Hold);
        let mut passing = entry("x", &[("app", "db")]);
        passing.ack = ack(15);
        assert_eq!(s.process(&mut passing), Verdict::Keep);
        // Positions finalize in order, so this cannot move them past line 10.
        assert_eq!(passing.ack, ack(15));
        let mut out = Vec::new();
        s.release(Instant::now(), true, &mut out);
        assert_eq!(out[0].ack, ack(10));
    }

    #[test]
    fn release_counts_nested_drops() {
        let metrics = Arc::new(Metrics::new());
        let mut s = keep_stage_counting_in(
            vec![
                Box::new(HoldPairs::default()),
                serde_json::from_value::<StageConfig>(serde_json::json!(
                    {"drop": {"expression": "1\\+2", "drop_counter_reason": "pairs"}}
                ))
                .unwrap()
                .build(&ctx())
                .unwrap(),
            ],
            &metrics,
        );
        for (line, offset) in [("1", 10), ("2", 20)] {
            let mut e = entry(line, &[("app", "web")]);
            e.ack = ack(offset);
            s.process(&mut e);
        }
        let mut out = Vec::new();
        s.release(Instant::now(), false, &mut out);
        assert!(out.is_empty());
        let mut consumed = Vec::new();
        s.take_consumed(&mut consumed);
        assert_eq!(
            consumed,
            vec![AckToken {
                source: SourceId(1),
                from: 10,
                offset: 20
            }],
            "the dropped pair's lines are finalized"
        );
        assert_eq!(
            metrics
                .pipeline
                .dropped_lines
                .with_label_values(&["pairs"])
                .get(),
            1
        );
    }

    #[test]
    fn wait_inside_release_queues_in_order_until_due() {
        let mut s = keep_stage(vec![
            Box::new(HoldPairs::default()),
            Box::new(WaitOnce::new(Duration::from_secs(2))),
        ]);
        let t0 = Instant::now();
        for line in ["1", "2"] {
            s.process(&mut entry(line, &[("app", "web")]));
        }
        let mut out = Vec::new();
        s.release(t0, false, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(2)));
        // A new matching entry queues behind the waiting one.
        assert_eq!(s.process(&mut entry("3", &[("app", "web")])), Verdict::Hold);
        s.release(t0 + Duration::from_secs(1), false, &mut out);
        assert!(out.is_empty());
        s.release(t0 + Duration::from_secs(2), false, &mut out);
        let lines: Vec<&str> = out.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines, vec!["1+2"]);
        // "3" went back into the holding stage, which flushes it at shutdown.
        s.release(t0 + Duration::from_secs(3), true, &mut out);
        let lines: Vec<&str> = out.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines, vec!["1+2", "3"]);
        assert_eq!(s.next_deadline(), None);
    }

    #[tokio::test]
    async fn inside_a_pipeline_released_entries_continue_after_the_match() {
        use crate::pipeline::{release_stages, run_stages};
        let metrics = Arc::new(Metrics::new());
        let mut stages: Vec<Box<dyn Stage>> = vec![
            Box::new(keep_stage(vec![
                Box::new(WaitOnce::new(Duration::from_millis(1))),
                Box::new(HoldPairs::default()),
            ])),
            Box::new(Appender(".")),
        ];
        let (mut done, mut consumed) = (Vec::new(), Vec::new());
        for (n, line) in ["1", "2", "3"].into_iter().enumerate() {
            let mut e = entry(line, &[("app", "web")]);
            e.ack = ack(10 * (n as u64 + 1));
            run_stages(&mut stages, 0, e, &metrics, &mut done, &mut consumed).await;
        }
        release_stages(
            &mut stages,
            Instant::now(),
            true,
            &metrics,
            &mut done,
            &mut consumed,
        )
        .await;
        let got: Vec<(&str, Option<u64>)> = done
            .iter()
            .map(|e| (e.line.as_str(), e.ack.map(|a| a.offset)))
            .collect();
        assert_eq!(got, vec![("1+2.", Some(20)), ("3.", Some(30))]);
        assert!(consumed.is_empty());
    }

    fn keep_stage(stages: Vec<Box<dyn Stage>>) -> MatchStage {
        keep_stage_counting_in(stages, &Arc::new(Metrics::new()))
    }

    fn keep_stage_counting_in(stages: Vec<Box<dyn Stage>>, metrics: &Arc<Metrics>) -> MatchStage {
        MatchStage {
            selector: parse_selector(r#"{app="web"}"#).unwrap(),
            action: Action::Keep(Box::new(NestedStages::new(
                stages,
                &BuildContext::new("job", metrics.clone()),
            ))),
        }
    }

    /// Moves the entry out of the pipeline's slot, as a holding stage does.
    fn take_entry(entry: &mut PipelineEntry) -> PipelineEntry {
        std::mem::replace(
            entry,
            PipelineEntry::new(Default::default(), String::new(), entry.timestamp),
        )
    }

    /// Appends a suffix to the line.
    struct Appender(&'static str);

    impl Stage for Appender {
        fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
            entry.line.push_str(self.0);
            Verdict::Keep
        }
    }

    /// Answers `Wait` to every other entry it sees.
    struct WaitOnce {
        wait: Duration,
        waited: bool,
    }

    impl WaitOnce {
        fn new(wait: Duration) -> Self {
            Self {
                wait,
                waited: false,
            }
        }
    }

    impl Stage for WaitOnce {
        fn process(&mut self, _entry: &mut PipelineEntry) -> Verdict {
            self.waited = !self.waited;
            if self.waited {
                Verdict::Wait(self.wait)
            } else {
                Verdict::Keep
            }
        }
    }

    /// Holds entries and releases them two at a time joined by `+`, carrying the second
    /// one's acknowledgement; `flush_all` releases a lone one.
    #[derive(Default)]
    struct HoldPairs {
        pending: Option<PipelineEntry>,
        ready: Vec<PipelineEntry>,
    }

    impl Stage for HoldPairs {
        fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
            let e = take_entry(entry);
            match self.pending.take() {
                None => self.pending = Some(e),
                Some(mut first) => {
                    first.line.push('+');
                    first.line.push_str(&e.line);
                    first.ack = AckToken::joined(first.ack, e.ack);
                    self.ready.push(first);
                }
            }
            Verdict::Hold
        }

        fn release(&mut self, _now: Instant, flush_all: bool, out: &mut Vec<PipelineEntry>) {
            out.append(&mut self.ready);
            if flush_all {
                out.extend(self.pending.take());
            }
        }
    }
}
