//! Runs lines through a list of pipeline stages in process, the way a job's pipeline runs
//! them (built from YAML as the config loader builds them, held entries released at the end),
//! for tests that compare what stages extract with a ground truth.

use std::sync::Arc;
use std::time::Instant;

use chrono::DateTime;
use serde_json::Value;
use tailward::metrics::Metrics;
use tailward::model::labels::LabelSet;
use tailward::pipeline::stages::StageConfig;
use tailward::pipeline::{BuildContext, PipelineEntry, build_stages, release_stages, run_stages};

/// The entries `lines` became (read at `read_time`, RFC3339, with the label `job="<job>"`)
/// and the registry the stages counted in.
pub fn run_lines<L: AsRef<str>>(
    stages_yaml: &str,
    job: &str,
    read_time: &str,
    lines: &[L],
) -> (Vec<PipelineEntry>, Arc<Metrics>) {
    // Through JSON values, as the config loader reads stages.
    let value: Value = tailward::config::yaml::from_str(stages_yaml).unwrap();
    let configs: Vec<StageConfig> = serde_json::from_value(value).unwrap();
    let metrics = Arc::new(Metrics::new());
    let ctx = BuildContext::new(job, metrics.clone());
    let mut stages = build_stages("pipeline_stages", &configs, &ctx).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let read_time = DateTime::parse_from_rfc3339(read_time).unwrap();
    let mut done = Vec::new();
    let mut consumed = Vec::new();
    runtime.block_on(async {
        for line in lines {
            let entry = PipelineEntry::new(
                LabelSet::from_pairs([("job", job.to_string())]),
                line.as_ref().to_string(),
                read_time,
            );
            run_stages(&mut stages, 0, entry, &metrics, &mut done, &mut consumed).await;
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
    });
    (done, metrics)
}
