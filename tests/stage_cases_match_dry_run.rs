//! Every stage's documented behaviour, as tables of cases in `tests/stage_cases/<stage>.yaml`,
//! run through the real binary with `-stdin -dry-run` so the output format is checked too.
//! A case is a `pipeline_stages` list, input lines and the exact expected output, and
//! optionally `args`, more flags for the run (such as `-dry-run.extracted`).

use crate::support::stdin_dry_run::stdin_dry_run;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    stages: String,
    input: String,
    output: String,
    #[serde(default)]
    args: Vec<String>,
}

fn run_case(case: &Case) -> Result<(), String> {
    let stages: String = case
        .stages
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect();
    let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    let out = stdin_dry_run("{job: test}", &stages, &case.input, "UTC", &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "exit {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if stdout != case.output {
        return Err(format!("expected:\n{}\ngot:\n{}", case.output, stdout));
    }
    Ok(())
}

#[test]
fn every_stage_case_matches_its_expected_dry_run_output() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/stage_cases");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no stage case files in {dir}");
    let mut failures = Vec::new();
    let mut count = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let cases: Vec<Case> = tailward::config::yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for case in &cases {
            count += 1;
            if let Err(e) = run_case(case) {
                failures.push(format!(
                    "{} / {}: {e}",
                    file.file_name().unwrap().to_string_lossy(),
                    case.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
