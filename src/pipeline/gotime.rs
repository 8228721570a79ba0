//! Placeholder until the Go layout module lands.

use chrono::{DateTime, FixedOffset};

pub fn format_dry_run(ts: &DateTime<FixedOffset>) -> String {
    let base = ts.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = ts.timestamp_subsec_nanos();
    let frac = if nanos == 0 {
        String::new()
    } else {
        let f = format!(".{nanos:09}");
        f.trim_end_matches('0').to_string()
    };
    format!("{base}{frac}{}", ts.format("%z"))
}
