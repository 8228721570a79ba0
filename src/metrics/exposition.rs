//! How `/metrics` is written: the Prometheus text format (0.0.4), or OpenMetrics 1.0 text
//! when the scraper's `Accept` header prefers it, as Promtail's promhttp handler negotiates
//! (`EnableOpenMetrics: true`).
//!
//! Owns the negotiation and the OpenMetrics encoder (the `prometheus` crate writes only the
//! classic text format). It must not create or update metrics.

use std::fmt::Write as _;

use prometheus::proto::{MetricFamily, MetricType};

pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The formats `/metrics` can answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// The format the `Accept` header prefers: OpenMetrics when it is acceptable with a
    /// quality at least that of the text format (or of `*/*` when text is not named);
    /// otherwise, and without a header, the text format. Protobuf is not offered.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut openmetrics: Option<f32> = None;
        let mut text: Option<f32> = None;
        let mut any: Option<f32> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut version_ok = true;
            for param in parts {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    // OpenMetrics 0.0.1 and 1.0.0 are the same text for what is served here.
                    "version" if media == "application/openmetrics-text" => {
                        version_ok = matches!(v.trim(), "0.0.1" | "1.0.0");
                    }
                    _ => {}
                }
            }
            if q <= 0.0 {
                continue;
            }
            let best = |slot: &mut Option<f32>| *slot = Some(slot.map_or(q, |s| s.max(q)));
            match media.as_str() {
                "application/openmetrics-text" if version_ok => best(&mut openmetrics),
                "text/plain" => best(&mut text),
                "*/*" | "text/*" => best(&mut any),
                _ => {}
            }
        }
        match (openmetrics, text.or(any)) {
            (Some(om), Some(other)) if om >= other => Format::OpenMetrics,
            (Some(_), None) => Format::OpenMetrics,
            _ => Format::Text,
        }
    }
}

/// OpenMetrics 1.0 text: counters' family named without `_total` and their samples with
/// it, histogram buckets' `le` in canonical float form, and the closing `# EOF`.
pub fn openmetrics(families: &[MetricFamily]) -> String {
    let mut out = String::new();
    for mf in families {
        let name = mf.name();
        let kind = mf.get_field_type();
        let (family, kind_name) = match kind {
            MetricType::COUNTER => (name.strip_suffix("_total").unwrap_or(name), "counter"),
            MetricType::GAUGE => (name, "gauge"),
            MetricType::HISTOGRAM => (name, "histogram"),
            MetricType::SUMMARY => (name, "summary"),
            MetricType::UNTYPED => (name, "unknown"),
        };
        let _ = writeln!(out, "# TYPE {family} {kind_name}");
        if !mf.help().is_empty() {
            let _ = writeln!(out, "# HELP {family} {}", escape(mf.help(), false));
        }
        for m in mf.get_metric() {
            let labels: Vec<(&str, String)> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value().to_string()))
                .collect();
            match kind {
                MetricType::COUNTER => {
                    sample(
                        &mut out,
                        &format!("{family}_total"),
                        &labels,
                        m.get_counter().get_value(),
                    );
                }
                MetricType::GAUGE => sample(&mut out, family, &labels, m.get_gauge().get_value()),
                MetricType::UNTYPED => {
                    // Nothing of the agent's is untyped; kept for completeness.
                    #[allow(deprecated)]
                    let value = m.get_untyped().get_value();
                    sample(&mut out, family, &labels, value);
                }
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut saw_inf = false;
                    for b in h.get_bucket() {
                        saw_inf |= b.upper_bound().is_infinite();
                        let mut with_le = labels.clone();
                        with_le.push(("le", float(b.upper_bound())));
                        sample(
                            &mut out,
                            &format!("{family}_bucket"),
                            &with_le,
                            b.cumulative_count() as f64,
                        );
                    }
                    if !saw_inf {
                        let mut with_le = labels.clone();
                        with_le.push(("le", "+Inf".into()));
                        sample(
                            &mut out,
                            &format!("{family}_bucket"),
                            &with_le,
                            h.get_sample_count() as f64,
                        );
                    }
                    sample(
                        &mut out,
                        &format!("{family}_sum"),
                        &labels,
                        h.get_sample_sum(),
                    );
                    sample(
                        &mut out,
                        &format!("{family}_count"),
                        &labels,
                        h.get_sample_count() as f64,
                    );
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        let mut with_q = labels.clone();
                        with_q.push(("quantile", float(q.quantile())));
                        sample(&mut out, family, &with_q, q.value());
                    }
                    sample(&mut out, &format!("{family}_sum"), &labels, s.sample_sum());
                    sample(
                        &mut out,
                        &format!("{family}_count"),
                        &labels,
                        s.sample_count() as f64,
                    );
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn sample(out: &mut String, name: &str, labels: &[(&str, String)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v, true));
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&value_text(value));
    out.push('\n');
}

/// A sample value: integers without a fraction, others as Rust writes them (which round
/// trip), and OpenMetrics' `+Inf`, `-Inf`, `NaN`.
fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        v.to_string()
    }
}

/// A float label value (`le`, `quantile`) in OpenMetrics' canonical form: `1.0`, not `1`.
fn float(v: f64) -> String {
    let text = value_text(v);
    if v.is_finite() && !text.contains(['.', 'e', 'E']) {
        format!("{text}.0")
    } else {
        text
    }
}

fn escape(v: &str, quote: bool) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

    #[test]
    fn negotiation_follows_accept_and_quality() {
        use Format::*;
        assert_eq!(Format::negotiate(None), Text);
        assert_eq!(Format::negotiate(Some("*/*")), Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Text);
        // Prometheus 2.x / 3.x scrape Accept headers.
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some(
                "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"
            )),
            Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; version=2.0.0")),
            Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Text
        );
    }

    #[test]
    fn openmetrics_names_counters_without_total_and_closes_with_eof() {
        let r = Registry::new();
        let c =
            IntCounterVec::new(Opts::new("app_sent_total", "Sent \"things\"."), &["host"]).unwrap();
        r.register(Box::new(c.clone())).unwrap();
        c.with_label_values(&["a\"b"]).inc_by(3);
        let h = HistogramVec::new(
            HistogramOpts::new("app_seconds", "Durations.").buckets(vec![1.0, 2.5]),
            &["code"],
        )
        .unwrap();
        r.register(Box::new(h.clone())).unwrap();
        h.with_label_values(&["200"]).observe(2.0);
        let text = openmetrics(&r.gather());
        assert!(text.contains("# TYPE app_sent counter\n# HELP app_sent Sent \"things\".\napp_sent_total{host=\"a\\\"b\"} 3\n"), "{text}");
        assert!(
            text.contains("app_seconds_bucket{code=\"200\",le=\"1.0\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("app_seconds_bucket{code=\"200\",le=\"2.5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("app_seconds_bucket{code=\"200\",le=\"+Inf\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("app_seconds_count{code=\"200\"} 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
