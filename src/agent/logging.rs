//! The agent's own log output: `logfmt` (Promtail's default, `level=info ts=... msg="..."`)
//! or JSON, at `server.log_level`, on stderr.
//!
//! Under journald (stderr is the stream `JOURNAL_STREAM` names) the journal stamps every line
//! itself, so our timestamp is left out, and logfmt lines start with the sd-daemon priority
//! prefix (`<3>` for errors ...) so `journalctl -p` filters by level.
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
    let journal = stderr_is_journal();
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
    match (format, journal) {
        (LogFormat::Json, false) => builder.json().init(),
        (LogFormat::Json, true) => builder.json().without_time().init(),
        (LogFormat::Logfmt, journal) => builder.event_format(Logfmt { journal }).init(),
    }
}

/// Whether stderr is connected to journald: `JOURNAL_STREAM` is `<device>:<inode>` of the
/// stream systemd connected, and only counts while stderr is still that stream (a child
/// whose stderr was redirected inherits the variable but not the journal).
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `stat` into the buffer we own; fd 2 needs no ownership.
    let rc = unsafe { libc::fstat(2, st.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: fstat returned 0, so it filled the buffer.
    let st = unsafe { st.assume_init() };
    // dev_t and ino_t are not u64 on every platform.
    #[allow(clippy::unnecessary_cast)]
    let same = st.st_dev as u64 == dev && st.st_ino as u64 == ino;
    same
}

/// `level=info ts=2026-11-27T10:15:00.123456Z caller=tailward::sources::files::tailer msg="tailing file" path=/var/log/syslog`;
/// under journald `<6>level=info caller=...` (the journal has the time).
pub struct Logfmt {
    pub journal: bool,
}

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
        if self.journal {
            // sd-daemon(3) priorities: err 3, warning 4, info 6, debug 7.
            let priority = match *meta.level() {
                Level::ERROR => 3,
                Level::WARN => 4,
                Level::INFO => 6,
                Level::DEBUG | Level::TRACE => 7,
            };
            let _ = write!(line, "<{priority}>level={level} caller={}", meta.target());
        } else {
            let _ = write!(
                line,
                "level={level} ts={} caller={}",
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ"),
                meta.target()
            );
        }
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
        crate::model::labels::quote_go_into(value, out);
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
