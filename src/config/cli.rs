//! The command line, in Promtail's spelling: `-flag`, `--flag`, `-flag=value` and
//! `-flag value`, booleans as `-flag` or `-flag=false`, so an existing promtail.service
//! ExecStart line works with only the binary name changed.
//!
//! `tailward test FILE...` runs pipeline test cases instead of the agent: Promtail takes no
//! positional arguments, so a first argument `test` can only mean that subcommand.
//!
//! Owns parsing arguments into an [`Invocation`]; it must not load configs or start anything.

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::config::load::CONFIG_FLAGS;

/// What the user asked for.
#[derive(Debug, Default, Clone)]
pub struct Cli {
    pub config_file: String,
    pub expand_env: bool,
    pub dry_run: bool,
    pub check_syntax: bool,
    pub print_config_stderr: bool,
    pub log_config_reverse_order: bool,
    pub inspect: bool,
    /// `-dry-run.extracted` (tailward): also print structured metadata and extracted values.
    pub dry_run_extracted: bool,
    pub version: bool,
    /// Config-setting flags (without dashes) with their values, in the order given.
    pub config_flags: Vec<(String, String)>,
    /// Flags given that tailward accepts for compatibility and does not act on, with why;
    /// logged once at start.
    pub ignored_flags: Vec<(String, &'static str)>,
    /// Arguments from the first one that is not a flag on: Go's flag package (so Promtail)
    /// stops there and ignores them, and so does tailward, saying so at start.
    pub ignored_args: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// The agent, with Promtail's flags.
    Agent(Cli),
    /// `tailward test FILE...`.
    Test(TestCli),
    /// `tailward preset list` or `tailward preset show NAME`.
    Preset(PresetCli),
}

/// What `tailward preset` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresetCli {
    /// Names and first description lines of the built-in presets.
    List,
    /// The YAML of one preset, as embedded.
    Show(String),
}

/// `tailward test [-config.expand-env] [-inspect] FILE...`.
#[derive(Debug, Default, Clone)]
pub struct TestCli {
    pub files: Vec<String>,
    pub expand_env: bool,
    pub inspect: bool,
}

/// How a flag's value is read (Go's `flag` value types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `-flag` alone means true; `-flag=false`.
    Bool,
    Text,
    /// Go's `ParseInt(s, 0, 64)`: decimal, `0x`, `0o`, `0b`, leading-zero octal.
    Int,
    Float,
    /// Go's `time.ParseDuration` (`500ms`, `1h30m`; `0` alone).
    Duration,
    /// A byte size (`256kb`, `2MiB`, `1048576`).
    Bytes,
}

/// One flag Promtail 3.6 registers (its own and dskit's server and log flags), with its
/// default and meaning as Promtail's `-help` gives them.
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub help: &'static str,
    /// Accepted for compatibility and not acted on, and why; `None` for flags tailward uses.
    pub ignored: Option<&'static str>,
}

const fn used(name: &'static str, kind: Kind, default: &'static str, help: &'static str) -> Flag {
    Flag {
        name,
        kind,
        default,
        help,
        ignored: None,
    }
}

const fn ignored(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    help: &'static str,
    why: &'static str,
) -> Flag {
    Flag {
        name,
        kind,
        default,
        help,
        ignored: Some(why),
    }
}

const NO_GRPC: &str = "tailward runs no gRPC server";
const NO_TRACING: &str = "tailward sends no traces";
const NO_REQUEST_LOG: &str = "tailward does not log HTTP requests";

use Kind::{Bool, Bytes, Duration, Float, Int, Text};

/// Every flag of Promtail 3.6: `clients/cmd/promtail/main.go`, the `RegisterFlags` of its
/// config blocks, and the vendored dskit `server.Config` (with `log.level`/`log.format`).
pub const FLAGS: &[Flag] = &[
    // Promtail's main.
    used(
        "config.file",
        Text,
        "",
        "Config file; a comma-separated list loads the first that exists",
    ),
    used(
        "config.expand-env",
        Bool,
        "false",
        "Expands ${var} in config according to the values of the environment variables",
    ),
    used(
        "dry-run",
        Bool,
        "false",
        "Start but print entries instead of sending them to Loki (positions are not written)",
    ),
    used(
        "dry-run.extracted",
        Bool,
        "false",
        "tailward: with -dry-run, also print each entry's extracted fields",
    ),
    used(
        "check-syntax",
        Bool,
        "false",
        "Validate the config file, pipeline stages included, and exit",
    ),
    used(
        "print-config-stderr",
        Bool,
        "false",
        "Dump the effective config (secrets redacted) to stderr",
    ),
    used(
        "log-config-reverse-order",
        Bool,
        "false",
        "Log the effective config at info level, last line first",
    ),
    used(
        "inspect",
        Bool,
        "false",
        "Print what each pipeline stage changes to stderr",
    ),
    used(
        "version",
        Bool,
        "false",
        "Print this build's version information",
    ),
    // global.file_watch_config
    used(
        "file-watch.min_poll_frequency",
        Duration,
        "250ms",
        "Minimum period to poll for file changes",
    ),
    used(
        "file-watch.max_poll_frequency",
        Duration,
        "250ms",
        "Maximum period to poll for file changes",
    ),
    // Promtail's server block.
    used("server.disable", Bool, "false", "Disable the HTTP server"),
    ignored(
        "server.profiling_enabled",
        Bool,
        "false",
        "Enable the /debug/fgprof and /debug/pprof endpoints for profiling",
        "tailward is not a Go program and serves no pprof endpoints",
    ),
    used(
        "server.enable-runtime-reload",
        Bool,
        "false",
        "Enable reload via HTTP request (/reload)",
    ),
    // The deprecated client block.
    used("client.url", Text, "", "URL of log server (deprecated)"),
    used(
        "client.batch-wait",
        Duration,
        "1s",
        "Maximum wait period before sending batch (deprecated)",
    ),
    used(
        "client.batch-size-bytes",
        Int,
        "1048576",
        "Maximum batch size to accrue before sending (deprecated)",
    ),
    used(
        "client.max-retries",
        Int,
        "10",
        "Maximum number of retries when sending batches (deprecated)",
    ),
    used(
        "client.min-backoff",
        Duration,
        "500ms",
        "Initial backoff time between retries (deprecated)",
    ),
    used(
        "client.max-backoff",
        Duration,
        "5m",
        "Maximum backoff time between retries (deprecated)",
    ),
    used(
        "client.timeout",
        Duration,
        "10s",
        "Maximum time to wait for server to respond to a request (deprecated)",
    ),
    used(
        "client.external-labels",
        Text,
        "",
        "List of external labels to add to each log, e.g. lb1=v1,lb2=v2 (deprecated)",
    ),
    used(
        "client.tenant-id",
        Text,
        "",
        "Tenant ID to use when pushing logs to Loki (deprecated)",
    ),
    used(
        "client.drop-rate-limited-batches",
        Bool,
        "false",
        "Do not retry batches that have been rate limited by Loki (deprecated)",
    ),
    // positions
    used(
        "positions.sync-period",
        Duration,
        "10s",
        "Period with which to sync the positions file",
    ),
    used(
        "positions.file",
        Text,
        "/var/log/positions.yaml",
        "Location to read/write positions from",
    ),
    used(
        "positions.ignore-invalid-yaml",
        Bool,
        "false",
        "Ignore, and later overwrite, a corrupted positions file",
    ),
    // target_config
    used(
        "target.sync-period",
        Duration,
        "10s",
        "Period to resync directories being watched and files being tailed",
    ),
    used(
        "stdin",
        Bool,
        "false",
        "Read lines from standard input instead of files",
    ),
    // limits_config
    used(
        "limit.readline-rate",
        Float,
        "10000",
        "The rate limit in log lines per second that this instance may push to Loki",
    ),
    used(
        "limit.readline-burst",
        Int,
        "10000",
        "The cap in the quantity of burst lines that this instance may push to Loki",
    ),
    used(
        "limit.readline-rate-enabled",
        Bool,
        "false",
        "When true, enforces rate limiting on this instance",
    ),
    used(
        "limit.readline-rate-drop",
        Bool,
        "true",
        "When true, lines over the rate limit are discarded rather than sent",
    ),
    used(
        "max-streams",
        Int,
        "0",
        "Maximum number of active streams. 0 to disable",
    ),
    used(
        "max-line-size",
        Bytes,
        "0",
        "Maximum log line byte size allowed without dropping, e.g. 256kb, 2M. 0 to disable",
    ),
    used(
        "max-line-size-truncate",
        Bool,
        "false",
        "Whether to truncate lines that exceed max_line_size",
    ),
    // tracing
    ignored(
        "tracing.enabled",
        Bool,
        "true",
        "Set to false to disable tracing",
        NO_TRACING,
    ),
    ignored(
        "tracing.profiling-enabled",
        Bool,
        "true",
        "Set to true to enable profiling integration (some 3.x releases)",
        NO_TRACING,
    ),
    // dskit server.Config
    used(
        "server.http-listen-address",
        Text,
        "",
        "HTTP server listen address",
    ),
    used(
        "server.http-listen-network",
        Text,
        "tcp",
        "HTTP server listen network",
    ),
    used(
        "server.tls-cipher-suites",
        Text,
        "",
        "Comma-separated list of cipher suites to use. If blank, the default cipher suites are used",
    ),
    used(
        "server.tls-min-version",
        Text,
        "",
        "Minimum TLS version to use: VersionTLS10, VersionTLS11, VersionTLS12, VersionTLS13",
    ),
    used(
        "server.http-tls-cert-path",
        Text,
        "",
        "HTTP server cert path",
    ),
    used("server.http-tls-key-path", Text, "", "HTTP server key path"),
    used(
        "server.http-tls-client-auth",
        Text,
        "",
        "HTTP TLS Client Auth type",
    ),
    used(
        "server.http-tls-ca-path",
        Text,
        "",
        "HTTP TLS Client CA path",
    ),
    ignored(
        "server.grpc-tls-cert-path",
        Text,
        "",
        "GRPC TLS server cert path",
        NO_GRPC,
    ),
    ignored(
        "server.grpc-tls-key-path",
        Text,
        "",
        "GRPC TLS server key path",
        NO_GRPC,
    ),
    ignored(
        "server.grpc-tls-client-auth",
        Text,
        "",
        "GRPC TLS Client Auth type",
        NO_GRPC,
    ),
    ignored(
        "server.grpc-tls-ca-path",
        Text,
        "",
        "GRPC TLS Client CA path",
        NO_GRPC,
    ),
    used(
        "server.http-listen-port",
        Int,
        "80",
        "HTTP server listen port",
    ),
    used(
        "server.http-conn-limit",
        Int,
        "0",
        "Maximum number of simultaneous http connections, <=0 to disable",
    ),
    ignored(
        "server.grpc-listen-network",
        Text,
        "tcp",
        "gRPC server listen network",
        NO_GRPC,
    ),
    ignored(
        "server.grpc-listen-address",
        Text,
        "",
        "gRPC server listen address",
        NO_GRPC,
    ),
    ignored(
        "server.grpc-listen-port",
        Int,
        "9095",
        "gRPC server listen port",
        NO_GRPC,
    ),
    ignored(
        "server.grpc-conn-limit",
        Int,
        "0",
        "Maximum number of simultaneous grpc connections, <=0 to disable",
        NO_GRPC,
    ),
    ignored(
        "server.grpc-collect-max-streams-by-conn",
        Bool,
        "true",
        "If true, the max streams by connection gauge will be collected",
        NO_GRPC,
    ),
    used(
        "server.register-instrumentation",
        Bool,
        "true",
        "Register the instrumentation handlers (/metrics)",
    ),
    ignored(
        "server.report-grpc-codes-in-instrumentation-label-enabled",
        Bool,
        "false",
        "Report gRPC statuses in instrumentation labels",
        NO_GRPC,
    ),
    used(
        "server.graceful-shutdown-timeout",
        Duration,
        "30s",
        "Timeout for graceful shutdowns",
    ),
    used(
        "server.http-read-timeout",
        Duration,
        "30s",
        "Read timeout for entire HTTP request, including headers and body",
    ),
    used(
        "server.http-read-header-timeout",
        Duration,
        "0s",
        "Read timeout for HTTP request headers. If set to 0, value of -server.http-read-timeout is used",
    ),
    used(
        "server.http-write-timeout",
        Duration,
        "30s",
        "Write timeout for HTTP server",
    ),
    used(
        "server.http-idle-timeout",
        Duration,
        "2m0s",
        "Idle timeout for HTTP server",
    ),
    ignored(
        "server.http-log-closed-connections-without-response-enabled",
        Bool,
        "false",
        "Log closed connections that did not receive any response",
        NO_REQUEST_LOG,
    ),
    ignored(
        "server.grpc-max-recv-msg-size-bytes",
        Int,
        "4194304",
        "Limit on the size of a gRPC message this server can receive (bytes)",
        NO_GRPC,
    ),
    ignored(
        "server.grpc-max-send-msg-size-bytes",
        Int,
        "4194304",
        "Limit on the size of a gRPC message this server can send (bytes)",
        NO_GRPC,
    ),
    ignored(
        "server.grpc-max-concurrent-streams",
        Int,
        "100",
        "Limit on the number of concurrent streams for gRPC calls per client connection (0 = unlimited)",
        NO_GRPC,
    ),
    ignored(
        "server.grpc.keepalive.max-connection-idle",
        Duration,
        "2562047h47m16.854775807s",
        "The duration after which an idle connection should be closed",
        NO_GRPC,
    ),
    ignored(
        "server.grpc.keepalive.max-connection-age",
        Duration,
        "2562047h47m16.854775807s",
        "The duration for the maximum amount of time a connection may exist before it will be closed",
        NO_GRPC,
    ),
    ignored(
        "server.grpc.keepalive.max-connection-age-grace",
        Duration,
        "2562047h47m16.854775807s",
        "An additive period after max-connection-age after which the connection will be forcibly closed",
        NO_GRPC,
    ),
    ignored(
        "server.grpc.keepalive.time",
        Duration,
        "2h0m0s",
        "Duration after which a keepalive probe is sent in case of no activity over the connection",
        NO_GRPC,
    ),
    ignored(
        "server.grpc.keepalive.timeout",
        Duration,
        "20s",
        "After having pinged for keepalive check, the duration after which an idle connection should be closed",
        NO_GRPC,
    ),
    ignored(
        "server.grpc.keepalive.min-time-between-pings",
        Duration,
        "5m0s",
        "Minimum amount of time a client should wait before sending a keepalive ping",
        NO_GRPC,
    ),
    ignored(
        "server.grpc.keepalive.ping-without-stream-allowed",
        Bool,
        "false",
        "If true, server allows keepalive pings even when there are no active streams",
        NO_GRPC,
    ),
    ignored(
        "server.grpc.stats-tracking-enabled",
        Bool,
        "true",
        "Track the request_message_bytes, response_message_bytes and inflight_requests metrics",
        NO_GRPC,
    ),
    ignored(
        "server.grpc.recv-buffer-pools-enabled",
        Bool,
        "false",
        "Deprecated option, has no effect",
        NO_GRPC,
    ),
    ignored(
        "server.grpc.num-workers",
        Int,
        "0",
        "If non-zero, configures the amount of GRPC server workers used to serve the requests",
        NO_GRPC,
    ),
    ignored(
        "server.grpc.read-buffer-size-bytes",
        Int,
        "32768",
        "Size of the read buffer for each gRPC connection (bytes)",
        NO_GRPC,
    ),
    ignored(
        "server.grpc.write-buffer-size-bytes",
        Int,
        "32768",
        "Size of the write buffer for each gRPC connection (bytes)",
        NO_GRPC,
    ),
    used(
        "server.path-prefix",
        Text,
        "",
        "Base path to serve all API routes from (e.g. /v1/)",
    ),
    used(
        "log.format",
        Text,
        "logfmt",
        "Output log messages in the given format. Valid formats: [logfmt, json]",
    ),
    used(
        "log.level",
        Text,
        "info",
        "Only log messages with the given severity or above. Valid levels: [debug, info, warn, error]",
    ),
    ignored(
        "server.log-source-ips-enabled",
        Bool,
        "false",
        "Optionally log the source IPs",
        NO_REQUEST_LOG,
    ),
    ignored(
        "server.log-source-ips-full",
        Bool,
        "false",
        "Log all source IPs instead of only the originating one",
        NO_REQUEST_LOG,
    ),
    ignored(
        "server.log-source-ips-header",
        Text,
        "",
        "Header field storing the source IPs",
        NO_REQUEST_LOG,
    ),
    ignored(
        "server.log-source-ips-regex",
        Text,
        "",
        "Regex for matching the source IPs",
        NO_REQUEST_LOG,
    ),
    ignored(
        "server.log-request-headers",
        Bool,
        "false",
        "Optionally log request headers",
        NO_REQUEST_LOG,
    ),
    ignored(
        "server.log-request-headers-exclude-list",
        Text,
        "",
        "Comma separated list of headers to exclude from logging",
        NO_REQUEST_LOG,
    ),
    ignored(
        "server.log-request-at-info-level-enabled",
        Bool,
        "false",
        "Optionally log requests at info level instead of debug level",
        NO_REQUEST_LOG,
    ),
    ignored(
        "server.trace-request-headers",
        Bool,
        "false",
        "Optionally add request headers to tracing spans",
        NO_TRACING,
    ),
    ignored(
        "server.trace-request-headers-exclude-list",
        Text,
        "",
        "Comma separated list of headers to exclude from tracing spans",
        NO_TRACING,
    ),
    ignored(
        "server.proxy-protocol-enabled",
        Bool,
        "false",
        "Enables PROXY protocol",
        "tailward's HTTP server does not read PROXY protocol headers",
    ),
    ignored(
        "server.throughput.latency-cutoff",
        Duration,
        "0s",
        "Requests taking over the cutoff are observed to measure throughput",
        "tailward has no request throughput metric",
    ),
    ignored(
        "server.throughput.unit",
        Text,
        "samples_processed",
        "Unit of the server throughput metric",
        "tailward has no request throughput metric",
    ),
    ignored(
        "server.cluster-validation.label",
        Text,
        "",
        "Optionally define the cluster validation label",
        "tailward does not validate cluster labels on requests",
    ),
    ignored(
        "server.cluster-validation.grpc.soft-validation",
        Bool,
        "false",
        "When enabled, soft cluster label validation is executed",
        NO_GRPC,
    ),
    ignored(
        "server.cluster-validation.grpc.enabled",
        Bool,
        "false",
        "When enabled, cluster label validation is executed",
        NO_GRPC,
    ),
    ignored(
        "server.cluster-validation.http.soft-validation",
        Bool,
        "false",
        "When enabled, soft cluster label validation is executed",
        "tailward does not validate cluster labels on requests",
    ),
    ignored(
        "server.cluster-validation.http.enabled",
        Bool,
        "false",
        "When enabled, cluster label validation is executed",
        "tailward does not validate cluster labels on requests",
    ),
    ignored(
        "server.cluster-validation.http.excluded-paths",
        Text,
        "",
        "Comma-separated list of url paths that are excluded from the cluster validation check",
        "tailward does not validate cluster labels on requests",
    ),
    ignored(
        "server.cluster-validation.http.excluded-user-agents",
        Text,
        "",
        "Comma-separated list of user agents that are excluded from the cluster validation check",
        "tailward does not validate cluster labels on requests",
    ),
    ignored(
        "server.create-new-traces",
        Bool,
        "false",
        "Creates new traces for each call rather than continuing the existing trace",
        NO_TRACING,
    ),
];

/// The flag named `name` (without dashes).
pub fn flag(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.name == name)
}

fn command() -> Command {
    let mut cmd = Command::new("tailward")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Host log agent: tails files, runs Promtail pipelines, pushes to Grafana Loki.\n\
                Flags are Promtail's (one or two dashes, `=` or a space); the ones marked\n\
                [ignored] are accepted and have no effect.",
        )
        .disable_version_flag(true)
        .disable_help_flag(true)
        .next_line_help(true)
        .arg(
            Arg::new("help")
                .long("help")
                .short('h')
                .action(ArgAction::Help)
                .help("Print help"),
        );
    for f in FLAGS {
        let mut help = f.help.to_string();
        if !f.default.is_empty() {
            help.push_str(&format!(" (default {})", f.default));
        }
        if let Some(why) = f.ignored {
            help.push_str(&format!(" [ignored: {why}]"));
        }
        let arg = Arg::new(f.name).long(f.name).help(help);
        let arg = match f.kind {
            Bool => arg
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .value_name("bool")
                .hide_possible_values(true)
                .value_parser(clap::builder::BoolishValueParser::new())
                .action(ArgAction::Set),
            kind => arg
                .action(ArgAction::Append)
                .value_name(match kind {
                    Int => "int",
                    Float => "float",
                    Duration => "duration",
                    Bytes => "bytes",
                    _ => "string",
                })
                .value_parser(move |v: &str| normalise_value(kind, v)),
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// Checks a value as Go's flag types would and hands it on in the form the config reads:
/// integers in decimal (`0x1F90` is `8080`).
fn normalise_value(kind: Kind, v: &str) -> Result<String, String> {
    match kind {
        Int => go_int(v)
            .map(|n| n.to_string())
            .ok_or_else(|| format!("invalid integer {v:?}")),
        Float => v
            .trim()
            .parse::<f64>()
            .map(|_| v.trim().to_string())
            .map_err(|_| format!("invalid number {v:?}")),
        Duration => crate::model::units::parse_duration(v).map(|_| v.to_string()),
        Bytes => crate::model::units::parse_byte_size(v).map(|_| v.to_string()),
        Bool | Text => Ok(v.to_string()),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn go_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = digits.replace('_', "");
    let (radix, body) = if let Some(r) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        (16, r.to_string())
    } else if let Some(r) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        (8, r.to_string())
    } else if let Some(r) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
        (2, r.to_string())
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, digits[1..].to_string())
    } else {
        (10, digits.clone())
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let n = i64::from_str_radix(&body, radix).ok()?;
    Some(if negative { -n } else { n })
}

fn bool_flag(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .value_parser(clap::builder::BoolishValueParser::new())
        .action(ArgAction::Set)
        .help(help)
}

fn test_command() -> Command {
    Command::new("test")
        .bin_name("tailward test")
        .about("Runs pipeline test cases (case files) through their config's pipeline_stages")
        .disable_version_flag(true)
        .disable_help_flag(true)
        .arg(
            Arg::new("help")
                .long("help")
                .short('h')
                .action(ArgAction::Help)
                .help("Print help"),
        )
        .arg(bool_flag(
            "config.expand-env",
            "Expand ${VAR} in the configs the case files test",
        ))
        .arg(bool_flag("inspect", "Print each stage's changes to stderr"))
        .arg(
            Arg::new("files")
                .value_name("FILE")
                .num_args(1..)
                .required(true)
                .action(ArgAction::Append)
                .help("Case files"),
        )
}

fn preset_command() -> Command {
    Command::new("preset")
        .bin_name("tailward preset")
        .about("Lists the built-in pipeline presets or prints one as YAML")
        .disable_version_flag(true)
        .subcommand_required(true)
        .subcommand(Command::new("list").about("Names and descriptions of the presets"))
        .subcommand(
            Command::new("show")
                .about("Prints a preset's YAML (parameters and stages)")
                .arg(Arg::new("name").value_name("NAME").required(true)),
        )
}

/// Go's flag package accepts one or two dashes; clap wants two for long names.
fn normalise(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest_literal = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || rest_literal {
            out.push(a);
            continue;
        }
        if a == "--" {
            rest_literal = true;
            out.push(a);
        } else if a.starts_with('-') && !a.starts_with("--") && a.len() > 2 {
            out.push(format!("-{a}"));
        } else {
            out.push(a);
        }
    }
    out
}

/// Parses `args` (including the program name) into the agent's flags or `tailward test`.
pub fn parse_invocation(args: impl IntoIterator<Item = String>) -> Result<Invocation, clap::Error> {
    let mut args: Vec<String> = args.into_iter().collect();
    if args.get(1).map(String::as_str) == Some("preset") {
        args.remove(1);
        let m = preset_command().try_get_matches_from(normalise(args))?;
        return Ok(Invocation::Preset(match m.subcommand() {
            Some(("show", sub)) => {
                PresetCli::Show(sub.get_one::<String>("name").cloned().unwrap_or_default())
            }
            _ => PresetCli::List,
        }));
    }
    if args.get(1).map(String::as_str) != Some("test") {
        return parse(args).map(Invocation::Agent);
    }
    args.remove(1);
    let m = test_command().try_get_matches_from(normalise(args))?;
    Ok(Invocation::Test(TestCli {
        files: m
            .get_many::<String>("files")
            .map(|files| files.cloned().collect())
            .unwrap_or_default(),
        expand_env: flag_set(&m, "config.expand-env"),
        inspect: flag_set(&m, "inspect"),
    }))
}

/// Where Go's flag package stops reading flags in `args` (normalised, program name first):
/// at `--`, or at the first argument that is neither a flag nor a flag's value.
fn end_of_flags(args: &[String]) -> usize {
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            return i;
        }
        let Some(body) = a.strip_prefix("--") else {
            if a.starts_with('-') && a.len() > 1 {
                // A short option (`-h`): clap's to judge.
                i += 1;
                continue;
            }
            return i;
        };
        let (name, has_value) = match body.split_once('=') {
            Some((n, _)) => (n, true),
            None => (body, false),
        };
        let takes_value = flag(name).is_some_and(|f| f.kind != Bool);
        i += if takes_value && !has_value { 2 } else { 1 };
    }
    args.len()
}

/// Parses the agent's flags from `args` (including the program name). Errors carry clap's
/// message (and usage).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli, clap::Error> {
    let given: Vec<String> = args.into_iter().collect();
    let args = normalise(given.clone());
    let end = end_of_flags(&args).min(args.len());
    let matches = command().try_get_matches_from(&args[..end])?;
    let mut cli = from_matches(&matches);
    // As written: normalising only doubled dashes, one argument for one.
    cli.ignored_args = given.get(end..).unwrap_or_default().to_vec();
    if cli.ignored_args.first().is_some_and(|a| a == "--") {
        cli.ignored_args.remove(0);
    }
    Ok(cli)
}

fn flag_set(m: &ArgMatches, name: &str) -> bool {
    m.get_one::<bool>(name).copied().unwrap_or(false)
}

fn from_matches(m: &ArgMatches) -> Cli {
    let mut cli = Cli {
        config_file: m
            .get_many::<String>("config.file")
            .and_then(|mut v| v.next_back().cloned())
            .unwrap_or_default(),
        expand_env: flag_set(m, "config.expand-env"),
        dry_run: flag_set(m, "dry-run"),
        dry_run_extracted: flag_set(m, "dry-run.extracted"),
        check_syntax: flag_set(m, "check-syntax"),
        print_config_stderr: flag_set(m, "print-config-stderr"),
        log_config_reverse_order: flag_set(m, "log-config-reverse-order"),
        inspect: flag_set(m, "inspect"),
        version: flag_set(m, "version"),
        ..Cli::default()
    };
    for f in FLAGS {
        if let Some(why) = f.ignored
            && m.value_source(f.name) == Some(clap::parser::ValueSource::CommandLine)
        {
            cli.ignored_flags.push((f.name.to_string(), why));
        }
    }
    // Keep the command-line order so a later flag wins over an earlier one.
    let mut ordered: Vec<(usize, String, String)> = Vec::new();
    for (name, _) in CONFIG_FLAGS {
        let Some(indices) = m.indices_of(name) else {
            continue;
        };
        let indices: Vec<usize> = indices.collect();
        if flag(name).is_some_and(|f| f.kind == Bool) {
            if let (Some(v), Some(&i)) = (m.get_one::<bool>(name), indices.last()) {
                ordered.push((i, name.to_string(), v.to_string()));
            }
        } else if let Some(values) = m.get_many::<String>(name) {
            for (v, i) in values.zip(indices) {
                ordered.push((i, name.to_string(), v.clone()));
            }
        }
    }
    ordered.sort_by_key(|(i, _, _)| *i);
    cli.config_flags = ordered.into_iter().map(|(_, n, v)| (n, v)).collect();
    cli
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Cli {
        parse(
            std::iter::once("tailward")
                .chain(args.iter().copied())
                .map(String::from),
        )
        .unwrap()
    }

    #[test]
    fn accepts_single_and_double_dash_equals_and_space() {
        let c = p(&[
            "-config.file",
            "/etc/promtail/config.yml",
            "--dry-run",
            "-server.http-listen-port=9080",
        ]);
        assert_eq!(c.config_file, "/etc/promtail/config.yml");
        assert!(c.dry_run);
        assert_eq!(
            c.config_flags,
            vec![("server.http-listen-port".to_string(), "9080".to_string())]
        );
        let c = p(&[
            "--config.file=/a.yaml,/b.yaml",
            "-config.expand-env=true",
            "-stdin=false",
        ]);
        assert_eq!(c.config_file, "/a.yaml,/b.yaml");
        assert!(c.expand_env);
        assert_eq!(
            c.config_flags,
            vec![("stdin".to_string(), "false".to_string())]
        );
    }

    #[test]
    fn promtail_service_exec_start_parses() {
        let c = p(&[
            "-config.file=/etc/promtail/promtail.yaml",
            "-client.external-labels=host=web1,env=prod",
            "-log.level=warn",
            "-positions.file",
            "/var/lib/promtail/positions.yaml",
        ]);
        assert_eq!(c.config_flags.len(), 3);
        assert_eq!(
            c.config_flags[2],
            (
                "positions.file".into(),
                "/var/lib/promtail/positions.yaml".into()
            )
        );
    }

    fn invocation(args: &[&str]) -> Invocation {
        parse_invocation(
            std::iter::once("tailward")
                .chain(args.iter().copied())
                .map(String::from),
        )
        .unwrap()
    }

    #[test]
    fn first_argument_test_selects_the_test_subcommand() {
        let Invocation::Test(t) = invocation(&["test", "-inspect", "a.tests.yaml", "b.yaml"])
        else {
            panic!("expected the test subcommand");
        };
        assert_eq!(t.files, vec!["a.tests.yaml", "b.yaml"]);
        assert!(t.inspect);
        assert!(!t.expand_env);
        let Invocation::Test(t) = invocation(&["test", "--config.expand-env", "a.yaml"]) else {
            panic!("expected the test subcommand");
        };
        assert!(t.expand_env);
    }

    #[test]
    fn test_subcommand_needs_a_file_and_refuses_agent_flags() {
        let err = parse_invocation(["tailward", "test"].map(String::from)).unwrap_err();
        assert!(err.to_string().contains("FILE"), "{err}");
        let err = parse_invocation(["tailward", "test", "-dry-run", "a.yaml"].map(String::from))
            .unwrap_err();
        assert!(err.to_string().contains("dry-run"), "{err}");
    }

    #[test]
    fn agent_flags_without_test_parse_as_the_agent() {
        assert!(matches!(
            invocation(&["preset", "list"]),
            Invocation::Preset(PresetCli::List)
        ));
        let Invocation::Preset(PresetCli::Show(name)) = invocation(&["preset", "show", "auth"])
        else {
            panic!("expected preset show");
        };
        assert_eq!(name, "auth");
        assert!(parse_invocation(["tailward", "preset", "show"].map(String::from)).is_err());
        let Invocation::Agent(c) = invocation(&["-config.file=/x.yaml", "-inspect"]) else {
            panic!("expected the agent");
        };
        assert_eq!(c.config_file, "/x.yaml");
        assert!(c.inspect);
    }

    #[test]
    fn every_flag_is_listed_once_and_each_used_one_has_a_home() {
        let mut seen = std::collections::HashSet::new();
        for f in FLAGS {
            assert!(seen.insert(f.name), "{} listed twice", f.name);
            let cli_only = [
                "config.file",
                "config.expand-env",
                "dry-run",
                "dry-run.extracted",
                "check-syntax",
                "print-config-stderr",
                "log-config-reverse-order",
                "inspect",
                "version",
            ];
            if f.ignored.is_none() && !cli_only.contains(&f.name) {
                assert!(
                    CONFIG_FLAGS.iter().any(|(n, _)| *n == f.name),
                    "{} sets nothing",
                    f.name
                );
            }
        }
        for (name, _) in CONFIG_FLAGS {
            assert!(flag(name).is_some(), "{name} is not a Promtail flag");
        }
    }

    #[test]
    fn values_are_checked_as_go_reads_them_and_ints_handed_on_in_decimal() {
        let c = p(&[
            "-server.http-listen-port=0x1F90",
            "-server.grpc.keepalive.time",
            "2h",
        ]);
        assert_eq!(
            c.config_flags,
            vec![("server.http-listen-port".to_string(), "8080".to_string())]
        );
        assert_eq!(
            c.ignored_flags,
            vec![("server.grpc.keepalive.time".to_string(), NO_GRPC)]
        );
        for bad in [
            "-server.http-read-timeout=10",
            "-server.http-listen-port=eighty",
            "-limit.readline-rate=fast",
            "-max-line-size=12parsecs",
        ] {
            assert!(
                parse(["tailward", bad].map(String::from)).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn flags_stop_at_the_first_argument_that_is_not_one_as_in_go() {
        let c = p(&["-dry-run", "false", "-config.file=/x.yaml"]);
        assert!(c.dry_run, "a bool flag takes no separate value");
        assert_eq!(c.config_file, "", "nothing after the stop is read");
        assert_eq!(c.ignored_args, vec!["false", "-config.file=/x.yaml"]);
        let c = p(&["-config.file", "/x.yaml", "--", "-stdin"]);
        assert_eq!(c.config_file, "/x.yaml");
        assert_eq!(c.ignored_args, vec!["-stdin"]);
        assert!(c.config_flags.is_empty());
    }

    #[test]
    fn help_lists_every_flag_with_its_default() {
        let help = command().render_help().to_string();
        for f in FLAGS {
            assert!(
                help.contains(&format!("--{}", f.name)),
                "{} missing",
                f.name
            );
        }
        assert!(help.contains("(default 9095) [ignored: tailward runs no gRPC server]"));
    }

    #[test]
    fn unknown_flag_is_an_error() {
        let err = parse(["tailward", "-no.such-flag"].map(String::from)).unwrap_err();
        assert!(err.to_string().contains("no.such-flag"), "{err}");
    }
}
