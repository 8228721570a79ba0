//! The one table `all` prints at its end: a row per figure measured in the run (each kind
//! on each input, files1000, every reference job, every source), so a whole run reads off
//! one screen instead of the scattered per-mode lines.

use std::sync::Mutex;

/// One figure: what ran, on what input, how many entries or lines, MiB, agent CPU seconds
/// and peak RSS in MiB.
struct Row {
    what: String,
    input: String,
    lines: f64,
    mib: f64,
    cpu: f64,
    rss_mib: f64,
}

static ROWS: Mutex<Vec<Row>> = Mutex::new(Vec::new());

/// Records one figure for the summary.
pub fn record(what: &str, input: &str, lines: f64, mib: f64, cpu: f64, rss_mib: f64) {
    ROWS.lock().expect("summary rows").push(Row {
        what: what.to_owned(),
        input: input.to_owned(),
        lines,
        mib,
        cpu,
        rss_mib,
    });
}

/// Prints every recorded figure, in the order they were measured.
pub fn print() {
    let rows = ROWS.lock().expect("summary rows");
    println!();
    println!(
        "summary ({} figures; CPU is the agent's own, user + system)",
        rows.len()
    );
    println!(
        "{:<26} {:<10} {:>9} {:>7} {:>9} {:>11} {:>8} {:>8}",
        "what", "input", "lines", "MiB", "MiB/CPU-s", "lines/CPU-s", "us/line", "RSS MiB"
    );
    for r in rows.iter() {
        let per_cpu = |x: f64| if r.cpu > 0.0 { x / r.cpu } else { f64::NAN };
        println!(
            "{:<26} {:<10} {:>9.0} {:>7.1} {:>9.1} {:>11.0} {:>8.3} {:>8.1}",
            r.what,
            r.input,
            r.lines,
            r.mib,
            per_cpu(r.mib),
            per_cpu(r.lines),
            r.cpu * 1e6 / r.lines,
            r.rss_mib
        );
    }
}
