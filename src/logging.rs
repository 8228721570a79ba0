//! The agent's own log output: `logfmt` (Promtail's default, `level=info ts=... msg="..."`)
//! or JSON, at `server.log_level`, on stderr.
//!
//! Owns the subscriber set-up and the logfmt line format. It must not decide what is logged.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber. `TAILWARD_LOG` (an env-filter directive) overrides the
/// level for debugging.
pub fn init(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAILWARD_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},hyper=warn,reqwest=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Logfmt => builder.event_format(Logfmt).init(),
    }
}

/// `level=info ts=2026-11-27T10:15:00.123456Z caller=tailward::tail msg="tailing file" path=/var/log/syslog`
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let mut line = String::with_capacity(160);
        let _ = write!(
            line,
            "level={level} ts={} caller={}",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            meta.target()
        );
        let mut rest = String::new();
        let mut fields = LogfmtFields {
            out: &mut rest,
            message: None,
        };
        event.record(&mut fields);
        // Promtail's order: level, ts, caller, msg, then the event's own fields.
        if let Some(msg) = fields.message.take() {
            line.push_str(" msg=");
            push_value(&mut line, &msg);
        }
        writeln!(w, "{line}{rest}")
    }
}

struct LogfmtFields<'a> {
    out: &'a mut String,
    message: Option<String>,
}

impl Visit for LogfmtFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.out.push(' ');
            self.out.push_str(field.name());
            self.out.push('=');
            push_value(self.out, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// Quotes a value when logfmt needs it (spaces, quotes, `=`, or empty).
fn push_value(out: &mut String, value: &str) {
    if !value.is_empty() && !value.contains([' ', '"', '=', '\n', '\t']) {
        out.push_str(value);
    } else {
        crate::labels::quote_go_into(value, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_only_when_needed() {
        let mut s = String::new();
        push_value(&mut s, "plain");
        s.push(' ');
        push_value(&mut s, "two words");
        s.push(' ');
        push_value(&mut s, "");
        assert_eq!(s, "plain \"two words\" \"\"");
    }
}
