//! `nginx_access`: a tailward extension that parses nginx access log lines written with any
//! `log_format`, compiled once at load time into a matcher over the format's literal text
//! and variables (no regex, no per-line allocation while matching).
//!
//! ```yaml
//! - nginx_access: {}                          # log_format combined
//! - nginx_access:
//!     log_format: main                        # combined, main, common, or a format string
//! - nginx_access:
//!     log_format: '$remote_addr - $remote_user [$time_local] "$request" $status $request_time'
//!     escape: json                            # default (nginx's), json or none
//!     structured_metadata: true               # or a list of field names; default false
//! ```
//!
//! `log_format` also takes a format pasted from nginx.conf: one or more quoted strings,
//! optionally preceded by `log_format NAME` and `escape=...` and followed by `;`.
//!
//! Extracted keys: every variable of the format under its name without `$`
//! (`remote_addr`, `remote_user`, `time_local`, `request`, `status`, `body_bytes_sent`,
//! `http_referer`, `http_user_agent`, `request_time`, `upstream_addr`, `request_id`, ...), as
//! strings. A value that is exactly `-` (nginx's "not set") is not extracted. With
//! `escape: default`, `\xHH` escapes are decoded when the decoded bytes are UTF-8 (binary
//! junk such as a TLS handshake sent to a plain-HTTP port stays escaped, so nothing is lost),
//! and so are Apache's `\"` and `\\`; with `escape: json`, JSON string escapes are decoded.
//! Derived keys:
//! - `method`, `path`, `query` (without `?`), `protocol`: from `$request`, or from
//!   `$request_method`, `$request_uri`, `$uri`, `$args`, `$server_protocol`. `$request` is the
//!   request line as the client sent it: `method` only when its first word is a method as
//!   nginx's parser accepts one (`A-Z`, `_`, `-`), `protocol` only when its last word is
//!   `HTTP/x`; the target between them may hold spaces (nginx accepts them). A target in
//!   absolute form (`http://host/p?q`) gives the path and query after the host; a request
//!   without protocol (HTTP/0.9's `GET /`) gives `method` and `path`; `-`, a bare path, TLS
//!   bytes or any other line that does not start with a method give none of them;
//! - `uri_decoded`: path and query percent-decoded (`+` in the query as a space), for
//!   matching attack patterns;
//! - `client_ip`: the first address of `$http_x_forwarded_for` (or of
//!   `$proxy_add_x_forwarded_for`) when set, else `$remote_addr`. Those headers are what the
//!   client or a proxy reported: `remote_addr` is the peer nginx saw;
//! - for each `$upstream_*_time` (a comma / ` : ` list, one entry per upstream tried):
//!   `<name>_total`, the sum of its numbers in seconds; for `$upstream_addr`:
//!   `upstream_addr_last`, the upstream that answered.
//!
//! Matching: literals must appear exactly; a variable ends at an occurrence of the literal
//! after it that lets the rest of the line match. Values must fit their variable's shape:
//! `$remote_addr` an address (IPv4, IPv6 or `unix:`), `$status` three digits, numeric
//! variables (`$body_bytes_sent`, `$request_time`, ...) numbers, `$time_local` and
//! `$time_iso8601` their fixed shapes, `$upstream_*` lists spaces only in their `, ` and
//! ` : ` separators; and their escape mode: with `default` (nginx writes `"` as `\x22`) and
//! `json` (`\"`), no value holds an unescaped `"`, so every `"` of a line is the format's
//! own. Two variables with no text between them split by their shapes. Text after the
//! format's end is ignored when it starts a new field (after a space), so a file whose lines
//! carry extra trailing fields still parses. A search is given up after 512 steps per
//! reading, so no line can stall the pipeline.
//!
//! The built-in names also read the prefixed forms nginx configs commonly put before the
//! format: `$host ` (a virtual host name), `$host:$server_port `, `"$http_x_forwarded_for" `
//! or an unquoted address list, and `$proxy_add_x_forwarded_for` (an address list ending
//! with the peer) in place of `$remote_addr`; `combined` and `main` also read a complete
//! Common Log Format line (nothing after `$body_bytes_sent`). A custom format is read
//! exactly as written.
//!
//! Text a remote client controls (the request line, user agent, referer, user name, headers)
//! can imitate the format's literals, most of all with `escape: none`. A line is read twice,
//! once taking each variable's earliest possible end and once its latest: when the two
//! readings differ the line can be read more than one way. It is then not guessed: only the
//! variables before the first difference (which every reading agrees on) are extracted, the
//! entry gets `ambiguous: "true"`, and the line is counted in
//! `tailward_ambiguous_lines_total{job, stage="nginx_access"}`.
//!
//! A line that matches no form is passed on unchanged, nothing extracted, and counted in
//! `tailward_unparsed_lines_total{job, stage="nginx_access"}`. `source` parses an extracted
//! value instead of the line. `structured_metadata: true` attaches [`DEFAULT_METADATA`] (those
//! the line has) as structured metadata; a list attaches the fields named. It must not set
//! labels or timestamps: the presets do that with ordinary stages.

use memchr::memmem::{Finder, FinderRev};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use crate::pipeline::extracted::InternedKey;
use crate::pipeline::http_request::split_request;
use crate::pipeline::label_sources::MetadataFields;
use crate::pipeline::{BuildContext, PipelineEntry, Stage, Verdict, value_as_string};

/// nginx's built-in `combined`.
pub const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
/// The `main` format of Debian's and nginx.org's default nginx.conf.
pub const MAIN: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for""#;
/// The Common Log Format.
pub const COMMON: &str =
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent"#;

/// What `structured_metadata: true` attaches, when the line has it.
pub const DEFAULT_METADATA: &[&str] = &[
    "client_ip",
    "request_time",
    "upstream_addr",
    "upstream_status",
    "upstream_response_time",
    "body_bytes_sent",
    "bytes_sent",
];

/// Match attempts per line and reading before giving up, so a pathological line cannot
/// stall the pipeline with backtracking.
const STEP_BUDGET: u32 = 512;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NginxAccessConfig {
    /// `combined` (default), `main`, `common`, or a format string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// `default`, `json` or `none`, as nginx's `log_format ... escape=`; unset or empty:
    /// the `escape=` of a pasted format, else `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape: Option<String>,
    /// Extracted key to parse instead of the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Fields to attach as structured metadata: `true` for [`DEFAULT_METADATA`], or names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_metadata: Option<MetadataFields>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    Default,
    Json,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Any,
    /// `$status`: three digits.
    Status,
    /// Digits.
    Integer,
    /// Digits and dots (`0.050`, `1700000000.123`).
    Decimal,
    /// `dd/Mon/yyyy:hh:mm:ss +zzzz`
    TimeLocal,
    /// `yyyy-mm-ddThh:mm:ss+zz:zz`
    TimeIso,
    /// `$remote_addr`: an IPv4 or IPv6 address, or `unix:` and a path.
    Address,
    /// Addresses separated by `, ` (an X-Forwarded-For list as a prefix).
    AddressList,
    /// A host name as a virtual-host prefix: name characters, at least one letter or `_`
    /// (nginx's catch-all server name), no `:`.
    HostName,
    /// `$upstream_*`: members without spaces, separated by `, ` (upstreams of one group)
    /// and ` : ` (after an internal redirect to another group).
    UpstreamList,
    /// `$upstream_*_time`: such a list of decimals or `-`.
    UpstreamTimes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Derive {
    None,
    Request,
    RequestMethod,
    RequestUri,
    Uri,
    Args,
    ServerProtocol,
    RemoteAddr,
    ForwardedFor,
    /// `$proxy_add_x_forwarded_for`: the forwarded list, then the peer.
    ProxyAddForwardedFor,
    UpstreamTime,
    UpstreamAddr,
}

#[derive(Clone, Debug)]
struct Variable {
    name: InternedKey,
    shape: Shape,
    derive: Derive,
    /// `<name>_total` / `<name>_last` for upstream lists.
    derived_name: Option<InternedKey>,
}

#[derive(Clone, Debug)]
enum Token {
    /// The text and its searchers, built once.
    Literal(Box<Literal>),
    Variable(usize),
}

#[derive(Clone, Debug)]
struct Literal {
    text: Vec<u8>,
    forward: Finder<'static>,
    backward: FinderRev<'static>,
}

fn literal_token(text: Vec<u8>) -> Token {
    Token::Literal(Box::new(Literal {
        forward: Finder::new(&text).into_owned(),
        backward: FinderRev::new(&text).into_owned(),
        text,
    }))
}

/// One way the lines of a format look: its tokens and variables.
#[derive(Clone, Debug)]
struct Layout {
    tokens: Vec<Token>,
    variables: Vec<Variable>,
    /// The line must end where the format ends (no trailing fields).
    exact: bool,
}

/// A compiled `log_format`: its layout, and for the built-in names the prefixed forms.
#[derive(Clone, Debug)]
pub struct CompiledFormat {
    layouts: Vec<Layout>,
    escape: Escape,
}

/// Which end of each variable a reading takes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    Earliest,
    Latest,
}

/// How a line matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Matched {
    /// One reading only: every variable.
    Unique,
    /// Readings differ from this variable on: the ones before it are certain.
    Ambiguous { certain: usize },
}

mod keys {
    use crate::pipeline::extracted::InternedKey;
    use std::sync::OnceLock;

    pub struct Keys {
        pub method: InternedKey,
        pub path: InternedKey,
        pub query: InternedKey,
        pub protocol: InternedKey,
        pub uri_decoded: InternedKey,
        pub client_ip: InternedKey,
        pub remote_addr: InternedKey,
        pub http_x_forwarded_for: InternedKey,
        pub ambiguous: InternedKey,
    }

    pub fn get() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| Keys {
            method: InternedKey::new("method"),
            path: InternedKey::new("path"),
            query: InternedKey::new("query"),
            protocol: InternedKey::new("protocol"),
            uri_decoded: InternedKey::new("uri_decoded"),
            client_ip: InternedKey::new("client_ip"),
            remote_addr: InternedKey::new("remote_addr"),
            http_x_forwarded_for: InternedKey::new("http_x_forwarded_for"),
            ambiguous: InternedKey::new("ambiguous"),
        })
    }
}

pub struct NginxAccessStage {
    format: CompiledFormat,
    source: Option<String>,
    metadata: Vec<String>,
    /// Each variable's span in the line for the two readings, reused from line to line.
    spans: Vec<(usize, usize)>,
    latest: Vec<(usize, usize)>,
    unparsed: prometheus::IntCounter,
    ambiguous: prometheus::IntCounter,
}

impl NginxAccessStage {
    pub fn new(cfg: &NginxAccessConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        let format = compile(cfg.log_format.as_deref(), cfg.escape.as_deref())?;
        if cfg.source.as_deref() == Some("") {
            return Err(StageError::new(
                "source",
                "expected a non-empty extracted key",
            ));
        }
        let metadata = cfg
            .structured_metadata
            .clone()
            .unwrap_or_default()
            .resolve(DEFAULT_METADATA)?;
        let most = format
            .layouts
            .iter()
            .map(|l| l.variables.len())
            .max()
            .unwrap_or(0);
        let counter =
            |vec: &prometheus::IntCounterVec| vec.with_label_values(&[&ctx.job, "nginx_access"]);
        Ok(Self {
            format,
            source: cfg.source.clone(),
            metadata,
            spans: vec![(0, 0); most],
            latest: vec![(0, 0); most],
            unparsed: counter(&ctx.metrics.pipeline.unparsed_lines),
            ambiguous: counter(&ctx.metrics.pipeline.ambiguous_lines),
        })
    }
}

impl Stage for NginxAccessStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let text: String = match &self.source {
            None => std::mem::take(&mut entry.line),
            Some(key) => match entry.extracted.get(key).and_then(value_as_string) {
                Some(v) => v.into_owned(),
                None => return Verdict::Keep,
            },
        };
        match self
            .format
            .match_line(text.as_bytes(), &mut self.spans, &mut self.latest)
        {
            Some((layout, matched)) => {
                let certain = match matched {
                    Matched::Unique => usize::MAX,
                    Matched::Ambiguous { certain } => {
                        self.ambiguous.inc();
                        entry
                            .extracted
                            .insert_interned(keys::get().ambiguous, Value::from("true"));
                        certain
                    }
                };
                self.format
                    .extract(layout, &text, &self.spans, certain, entry);
                for name in &self.metadata {
                    let value = entry
                        .extracted
                        .get(name)
                        .and_then(value_as_string)
                        .map(|v| v.into_owned());
                    if let Some(value) = value {
                        entry.set_structured_metadata(name, value);
                    }
                }
            }
            None => self.unparsed.inc(),
        }
        if self.source.is_none() {
            entry.line = text;
        }
        Verdict::Keep
    }
}

/// Compiles a `log_format` (a name or a format string) with an `escape` mode; errors name
/// the key at fault.
pub fn compile(
    log_format: Option<&str>,
    escape: Option<&str>,
) -> Result<CompiledFormat, StageError> {
    let given = log_format.unwrap_or("combined").trim();
    let (mut text_escape, text, built_in) = match given {
        "combined" => (None, COMBINED.to_string(), true),
        "main" => (None, MAIN.to_string(), true),
        "common" => (None, COMMON.to_string(), true),
        "" => {
            return Err(StageError::new(
                "log_format",
                "expected a format name or string",
            ));
        }
        other => {
            let (escape, text) =
                read_conf_format(other).map_err(|m| StageError::new("log_format", m))?;
            (escape, text, false)
        }
    };
    // An empty `escape` is unset (a preset passes its parameter's empty default through).
    let escape = escape.filter(|e| !e.is_empty());
    let escape = match (escape, text_escape.take().as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return Err(StageError::new(
                "escape",
                format!("escape {a:?} contradicts escape={b} in log_format"),
            ));
        }
        (Some(e), _) | (None, Some(e)) => parse_escape(e)?,
        (None, None) => Escape::Default,
    };
    let layout = |text: &str, exact: bool, shapes: &[(&str, Shape)]| {
        tokenize(text, shapes)
            .map(|(tokens, variables)| Layout {
                tokens,
                variables,
                exact,
            })
            .map_err(|m| StageError::new("log_format", m))
    };
    let mut layouts = vec![layout(&text, false, &[])?];
    if built_in {
        // The forms nginx configs commonly put in front of the built-in formats, each read
        // only when the format itself does not match. The prefixes' shapes cannot overlap:
        // a host name has a letter and no `:`, an address list only addresses.
        let after_remote_addr = text.strip_prefix("$remote_addr").unwrap_or(&text);
        let prefixed = [
            ("$host:$server_port $remote_addr", Shape::HostName),
            ("$host $remote_addr", Shape::HostName),
            ("\"$http_x_forwarded_for\" $remote_addr", Shape::AddressList),
            ("$http_x_forwarded_for $remote_addr", Shape::AddressList),
            ("$proxy_add_x_forwarded_for", Shape::AddressList),
        ];
        for (prefix, shape) in prefixed {
            // `main` already has `$http_x_forwarded_for` (at its end).
            let names = [
                "$host",
                "$http_x_forwarded_for",
                "$proxy_add_x_forwarded_for",
            ];
            if names.iter().any(|n| prefix.contains(n) && text.contains(n)) {
                continue;
            }
            let shapes = [
                ("host", shape),
                ("http_x_forwarded_for", shape),
                ("proxy_add_x_forwarded_for", shape),
            ];
            layouts.push(layout(
                &format!("{prefix}{after_remote_addr}"),
                false,
                &shapes,
            )?);
        }
        if text != COMMON {
            layouts.push(layout(COMMON, true, &[])?);
        }
    }
    Ok(CompiledFormat { layouts, escape })
}

fn parse_escape(e: &str) -> Result<Escape, StageError> {
    match e {
        "default" => Ok(Escape::Default),
        "json" => Ok(Escape::Json),
        "none" => Ok(Escape::None),
        other => Err(StageError::new(
            "escape",
            format!("expected default, json or none, got {other:?}"),
        )),
    }
}

/// Reads a format as written in nginx.conf (`[log_format NAME] [escape=X] 'part' 'part';`)
/// or, when it has no quotes, as the bare format string.
fn read_conf_format(given: &str) -> Result<(Option<String>, String), String> {
    let mut rest = given;
    if let Some(after) = rest.strip_prefix("log_format")
        && after.starts_with(char::is_whitespace)
    {
        let after = after.trim_start();
        let name_end = after.find(char::is_whitespace).unwrap_or(after.len());
        rest = after[name_end..].trim_start();
    }
    let mut escape = None;
    if let Some(after) = rest.strip_prefix("escape=") {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        escape = Some(after[..end].to_string());
        rest = after[end..].trim_start();
    }
    let rest = rest.trim_end().trim_end_matches(';').trim_end();
    if !rest.starts_with(['\'', '"']) {
        if escape.is_some() && rest.is_empty() {
            return Err("expected the format string after escape=".into());
        }
        return Ok((escape, rest.to_string()));
    }
    // nginx.conf quoted strings, concatenated; backslash escapes as nginx's parser reads them.
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(quote) = chars.next() else { break };
        if quote != '\'' && quote != '"' {
            return Err(format!(
                "expected quoted strings as in nginx.conf, found {quote:?} between them"
            ));
        }
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(c @ ('"' | '\'' | '\\' | '$')) => out.push(c),
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => return Err("unfinished backslash escape".into()),
                },
                c if c == quote => {
                    closed = true;
                    break;
                }
                c => out.push(c),
            }
        }
        if !closed {
            return Err(format!("unclosed {quote} quote"));
        }
    }
    Ok((escape, out))
}

/// Splits a format into literals and variables; `shapes` overrides the shape a variable's
/// name gives it.
fn tokenize(text: &str, shapes: &[(&str, Shape)]) -> Result<(Vec<Token>, Vec<Variable>), String> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut variables: Vec<Variable> = Vec::new();
    let mut literal = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            literal.push(bytes[i]);
            i += 1;
            continue;
        }
        let (name, next) = if bytes.get(i + 1) == Some(&b'{') {
            let Some(close) = text[i + 2..].find('}') else {
                return Err(format!("unclosed ${{ at byte {i}"));
            };
            (&text[i + 2..i + 2 + close], i + 3 + close)
        } else {
            let len = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            (&text[i + 1..i + 1 + len], i + 1 + len)
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("expected a variable name after $ at byte {i}"));
        }
        if variables.iter().any(|v| v.name.as_str() == name) {
            return Err(format!("variable ${name} appears twice"));
        }
        if !literal.is_empty() {
            tokens.push(literal_token(std::mem::take(&mut literal)));
        }
        tokens.push(Token::Variable(variables.len()));
        let mut var = variable(name);
        if let Some((_, shape)) = shapes.iter().find(|(n, _)| *n == name) {
            var.shape = *shape;
        }
        variables.push(var);
        i = next;
    }
    if !literal.is_empty() {
        tokens.push(literal_token(literal));
    }
    if variables.is_empty() {
        return Err("expected at least one $variable in the format".into());
    }
    Ok((tokens, variables))
}

fn variable(name: &str) -> Variable {
    let shape = match name {
        "status" => Shape::Status,
        "body_bytes_sent"
        | "bytes_sent"
        | "request_length"
        | "connection"
        | "connection_requests"
        | "pid"
        | "content_length"
        | "server_port"
        | "remote_port" => Shape::Integer,
        "request_time" | "msec" => Shape::Decimal,
        "time_local" => Shape::TimeLocal,
        "time_iso8601" => Shape::TimeIso,
        "remote_addr" | "realip_remote_addr" => Shape::Address,
        n if n.starts_with("upstream_") && n.ends_with("_time") => Shape::UpstreamTimes,
        n if n.starts_with("upstream_") && !n.starts_with("upstream_http_") => Shape::UpstreamList,
        _ => Shape::Any,
    };
    let derive = match name {
        "request" => Derive::Request,
        "request_method" => Derive::RequestMethod,
        "request_uri" => Derive::RequestUri,
        "uri" | "document_uri" => Derive::Uri,
        "args" | "query_string" => Derive::Args,
        "server_protocol" => Derive::ServerProtocol,
        "remote_addr" => Derive::RemoteAddr,
        "http_x_forwarded_for" => Derive::ForwardedFor,
        "proxy_add_x_forwarded_for" => Derive::ProxyAddForwardedFor,
        "upstream_addr" => Derive::UpstreamAddr,
        n if n.starts_with("upstream_") && n.ends_with("_time") => Derive::UpstreamTime,
        _ => Derive::None,
    };
    let derived_name = match derive {
        Derive::UpstreamTime => Some(InternedKey::new(&format!("{name}_total"))),
        Derive::UpstreamAddr => Some(InternedKey::new(&format!("{name}_last"))),
        _ => None,
    };
    Variable {
        name: InternedKey::new(name),
        shape,
        derive,
        derived_name,
    }
}

fn shape_fits(shape: Shape, v: &[u8]) -> bool {
    if v == b"-" {
        // nginx's "not set"; never for these, which nginx always has.
        return !matches!(
            shape,
            Shape::Status | Shape::TimeLocal | Shape::TimeIso | Shape::Address | Shape::HostName
        );
    }
    match shape {
        Shape::Any => true,
        Shape::Status => v.len() == 3 && v.iter().all(u8::is_ascii_digit),
        Shape::Integer => !v.is_empty() && v.iter().all(u8::is_ascii_digit),
        Shape::Decimal => {
            !v.is_empty() && v.iter().all(|b| b.is_ascii_digit() || *b == b'.') && v[0] != b'.'
        }
        Shape::TimeLocal => v.len() == 26 && v[2] == b'/' && v[6] == b'/' && v[20] == b' ',
        Shape::TimeIso => v.len() == 25 && v[4] == b'-' && v[7] == b'-' && v[10] == b'T',
        Shape::Address => is_address(v),
        Shape::AddressList => {
            !v.is_empty()
                && v.split(|b| *b == b',').enumerate().all(|(i, m)| {
                    let m = if i == 0 {
                        m
                    } else {
                        m.strip_prefix(b" ").unwrap_or(m)
                    };
                    is_address(m)
                })
        }
        Shape::HostName => {
            !v.is_empty()
                && v.iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
                && v.iter().any(|b| b.is_ascii_alphabetic() || *b == b'_')
        }
        Shape::UpstreamList => list_members(v).all(|m| !m.is_empty()),
        Shape::UpstreamTimes => list_members(v).all(|m| {
            m == b"-" || (!m.is_empty() && m.iter().all(|b| b.is_ascii_digit() || *b == b'.'))
        }),
    }
}

/// An address as nginx writes `$remote_addr`: IPv4 (`192.0.2.1`), IPv6 (`2001:db8::1`,
/// `::ffff:192.0.2.1`) or a unix socket (`unix:`, with a path for named sockets).
fn is_address(v: &[u8]) -> bool {
    if let Some(path) = v.strip_prefix(b"unix:") {
        return !path.contains(&b' ') && !path.contains(&b',');
    }
    if v.is_empty() || v.len() > 45 {
        return false;
    }
    if v.contains(&b':') {
        // At least two colons, a lone one only inside.
        v.iter().filter(|b| **b == b':').count() >= 2
            && (!v.starts_with(b":") || v.starts_with(b"::"))
            && (!v.ends_with(b":") || v.ends_with(b"::"))
            && v.iter()
                .all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.')
    } else {
        v.split(|b| *b == b'.').count() == 4
            && v.split(|b| *b == b'.')
                .all(|o| !o.is_empty() && o.len() <= 3 && o.iter().all(u8::is_ascii_digit))
    }
}

/// The members of an upstream list; a space anywhere but in a separator leaves an empty or
/// spaced member, which the shapes refuse.
fn list_members(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',' || *b == b':').map(|m| {
        let m = m.strip_prefix(b" ").unwrap_or(m);
        let m = m.strip_suffix(b" ").unwrap_or(m);
        if m.contains(&b' ') { &b""[..] } else { m }
    })
}

/// Whether the byte at `i` follows an odd number of backslashes.
fn escaped_at(hay: &[u8], i: usize) -> bool {
    hay[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 1
}

/// Where a value starting at `pos` must end at the latest (exclusive of nothing: the value is
/// `line[pos..end]` with `end <= limit`): past the characters its shape allows, or, for free
/// text under `default` and `json` escaping, at the first unescaped `"`.
fn value_limit(shape: Shape, escape: Escape, line: &[u8], pos: usize) -> usize {
    let rest = &line[pos..];
    let run = |allowed: fn(u8) -> bool| pos + rest.iter().take_while(|b| allowed(**b)).count();
    match shape {
        Shape::Status => {
            if rest.first() == Some(&b'-') {
                pos + 1
            } else {
                pos + rest
                    .iter()
                    .take(3)
                    .take_while(|b| b.is_ascii_digit())
                    .count()
            }
        }
        Shape::Integer | Shape::Decimal => {
            if rest.first() == Some(&b'-') {
                pos + 1
            } else {
                run(|b| b.is_ascii_digit() || b == b'.')
            }
        }
        Shape::TimeLocal => (pos + 26).min(line.len()),
        Shape::TimeIso => (pos + 25).min(line.len()),
        Shape::Address => run(|b| !matches!(b, b' ' | b'"' | b',')),
        Shape::AddressList => {
            run(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b':' | b',' | b' ' | b'-'))
        }
        Shape::HostName => run(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')),
        Shape::Any | Shape::UpstreamList | Shape::UpstreamTimes => match escape {
            Escape::None => line.len(),
            Escape::Default | Escape::Json => first_unescaped_quote(line, pos),
        },
    }
}

/// The position of the first `"` at or after `from` not escaped with a backslash, or the
/// line's end.
fn first_unescaped_quote(line: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(found) = memchr::memchr(b'"', &line[at..]) {
        let i = at + found;
        if !escaped_at(line, i) {
            return i;
        }
        at = i + 1;
    }
    line.len()
}

impl Layout {
    /// Matches `line` in one reading, filling `spans` with each variable's byte range.
    fn match_line(
        &self,
        line: &[u8],
        escape: Escape,
        reading: Reading,
        spans: &mut [(usize, usize)],
    ) -> bool {
        let mut budget = STEP_BUDGET;
        let mut m = Matcher {
            layout: self,
            line,
            escape,
            reading,
            spans,
            budget: &mut budget,
        };
        m.from(0, 0)
    }
}

struct Matcher<'a> {
    layout: &'a Layout,
    line: &'a [u8],
    escape: Escape,
    reading: Reading,
    spans: &'a mut [(usize, usize)],
    budget: &'a mut u32,
}

impl Matcher<'_> {
    fn from(&mut self, token: usize, pos: usize) -> bool {
        if *self.budget == 0 {
            return false;
        }
        *self.budget -= 1;
        let line = self.line;
        let layout = self.layout;
        let Some(current) = layout.tokens.get(token) else {
            // The format ends here: the line too, or a field the format does not name.
            return pos == line.len()
                || (!layout.exact && (line[pos] == b' ' || (pos > 0 && line[pos - 1] == b' ')));
        };
        match current {
            Token::Literal(lit) => {
                line[pos..].starts_with(&lit.text) && self.from(token + 1, pos + lit.text.len())
            }
            Token::Variable(v) => {
                let shape = layout.variables[*v].shape;
                let limit = value_limit(shape, self.escape, line, pos);
                match layout.tokens.get(token + 1) {
                    None => {
                        // The last variable takes the rest of the line, or, when that does
                        // not fit, the rest up to a space (trailing fields the format does
                        // not name).
                        let rest = &line[pos..];
                        let end = if limit == line.len() && shape_fits(shape, rest) {
                            line.len()
                        } else {
                            pos + memchr::memchr(b' ', rest).unwrap_or(rest.len())
                        };
                        self.spans[*v] = (pos, end);
                        end <= limit
                            && shape_fits(shape, &line[pos..end])
                            && self.from(token + 1, end)
                    }
                    Some(Token::Literal(lit)) => self.before_literal(token, *v, pos, limit, lit),
                    Some(Token::Variable(_)) => self.before_variable(token, *v, pos, limit),
                }
            }
        }
    }

    /// A variable followed by a literal: each occurrence of the literal within the value's
    /// limit, earliest or latest first.
    fn before_literal(
        &mut self,
        token: usize,
        v: usize,
        pos: usize,
        limit: usize,
        lit: &Literal,
    ) -> bool {
        let line = self.line;
        let shape = self.layout.variables[v].shape;
        // Matches may start up to `limit` (a value may run right up to it).
        let window_end = (limit + lit.text.len()).min(line.len());
        let skip_escaped = lit.text[0] == b'"' && self.escape != Escape::None;
        let try_at = |m: &mut Self, at: usize| -> Option<bool> {
            if skip_escaped && escaped_at(line, at) {
                return None;
            }
            if shape_fits(shape, &line[pos..at]) {
                m.spans[v] = (pos, at);
                if m.from(token + 2, at + lit.text.len()) {
                    return Some(true);
                }
            }
            (*m.budget == 0).then_some(false)
        };
        match self.reading {
            Reading::Earliest => {
                let mut from = pos;
                while from <= window_end {
                    let Some(found) = lit.forward.find(&line[from..window_end]) else {
                        break;
                    };
                    let at = from + found;
                    if let Some(done) = try_at(self, at) {
                        return done;
                    }
                    from = at + 1;
                }
                false
            }
            Reading::Latest => {
                let mut end = window_end;
                while end > pos {
                    let Some(found) = lit.backward.rfind(&line[pos..end]) else {
                        break;
                    };
                    let at = pos + found;
                    if let Some(done) = try_at(self, at) {
                        return done;
                    }
                    // Earlier occurrences, overlapping ones included.
                    end = at + lit.text.len() - 1;
                }
                false
            }
        }
    }

    /// Two variables with no text between them: every split the first one's shape allows.
    fn before_variable(&mut self, token: usize, v: usize, pos: usize, limit: usize) -> bool {
        let line = self.line;
        let shape = self.layout.variables[v].shape;
        let count = limit.saturating_sub(pos);
        for step in 0..count {
            let end = match self.reading {
                Reading::Earliest => pos + 1 + step,
                Reading::Latest => limit - step,
            };
            if end < line.len() && !is_char_start(line[end]) {
                continue;
            }
            if shape_fits(shape, &line[pos..end]) {
                self.spans[v] = (pos, end);
                if self.from(token + 1, end) {
                    return true;
                }
            }
            if *self.budget == 0 {
                return false;
            }
        }
        false
    }
}

/// Whether `b` starts a UTF-8 character (spans must not split one).
fn is_char_start(b: u8) -> bool {
    (b as i8) >= -0x40
}

impl CompiledFormat {
    /// Matches `line` with the first layout that fits, filling `spans` with each variable's
    /// byte range (the earliest reading) and using `latest` for the other reading. Returns
    /// the layout and whether the line had one reading only.
    fn match_line(
        &self,
        line: &[u8],
        spans: &mut [(usize, usize)],
        latest: &mut [(usize, usize)],
    ) -> Option<(usize, Matched)> {
        for (i, layout) in self.layouts.iter().enumerate() {
            if !layout.match_line(line, self.escape, Reading::Earliest, spans) {
                continue;
            }
            let n = layout.variables.len();
            let matched = if layout.match_line(line, self.escape, Reading::Latest, latest) {
                match (0..n).find(|&k| spans[k] != latest[k]) {
                    None => Matched::Unique,
                    Some(certain) => Matched::Ambiguous { certain },
                }
            } else {
                // The step budget ran out: nothing is certain.
                Matched::Ambiguous { certain: 0 }
            };
            return Some((i, matched));
        }
        None
    }

    /// Puts the first `certain` matched variables of `layout` and what derives from them into
    /// `entry`'s extracted map.
    fn extract(
        &self,
        layout: usize,
        line: &str,
        spans: &[(usize, usize)],
        certain: usize,
        entry: &mut PipelineEntry,
    ) {
        let Some(layout) = self.layouts.get(layout) else {
            return;
        };
        let k = keys::get();
        // Variables plus the derived keys at most.
        entry.extracted.reserve(layout.variables.len() + 8);
        let mut request_target: Option<String> = None;
        let mut have_path = false;
        let mut client: Option<String> = None;
        let mut forwarded_client: Option<String> = None;
        for (var, &(start, end)) in layout.variables.iter().zip(spans).take(certain) {
            let Some(raw) = line.get(start..end) else {
                continue;
            };
            if raw == "-" {
                continue;
            }
            let value = self.unescape(raw);
            match var.derive {
                Derive::None => {}
                Derive::Request => {
                    if let Some(request) = split_request(&value) {
                        put(entry, k.method, request.method);
                        if let Some(protocol) = request.protocol {
                            put(entry, k.protocol, protocol);
                        }
                        request_target = request.path_and_query.map(str::to_string);
                    }
                }
                Derive::RequestMethod => put_if_absent(entry, k.method, &value),
                Derive::ServerProtocol => put_if_absent(entry, k.protocol, &value),
                Derive::RequestUri => {
                    if request_target.is_none() {
                        request_target = Some(value.clone());
                    }
                }
                Derive::Uri => {
                    put_if_absent(entry, k.path, &value);
                    have_path = true;
                }
                Derive::Args => put_if_absent(entry, k.query, &value),
                Derive::RemoteAddr => client = first_of_list(&value),
                Derive::ForwardedFor => forwarded_client = first_of_list(&value),
                Derive::ProxyAddForwardedFor => {
                    // `$http_x_forwarded_for, $remote_addr`, or the peer alone.
                    match value.rsplit_once(',') {
                        Some((forwarded, peer)) => {
                            put(entry, k.remote_addr, peer.trim());
                            put(entry, k.http_x_forwarded_for, forwarded.trim());
                            forwarded_client = first_of_list(forwarded);
                        }
                        None => {
                            put(entry, k.remote_addr, value.trim());
                            client = first_of_list(&value);
                        }
                    }
                }
                Derive::UpstreamTime => {
                    if let (Some(name), Some(total)) = (var.derived_name, sum_list(&value)) {
                        entry.extracted.insert_interned(name, Value::String(total));
                    }
                }
                Derive::UpstreamAddr => {
                    if let (Some(name), Some(last)) = (var.derived_name, last_of_list(&value)) {
                        put(entry, name, last);
                    }
                }
            }
            entry
                .extracted
                .insert_interned(var.name, Value::String(value));
        }
        if let Some(target) = request_target {
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target.as_str(), None),
            };
            if !have_path {
                put(entry, k.path, path);
            }
            if let Some(q) = query {
                put(entry, k.query, q);
            }
            let mut decoded = percent_decode(path, false);
            if let Some(q) = query {
                decoded.push('?');
                decoded.push_str(&percent_decode(q, true));
            }
            entry
                .extracted
                .insert_interned(k.uri_decoded, Value::String(decoded));
        } else if let Some(Value::String(path)) = entry.extracted.get(k.path.as_str()).cloned() {
            let mut decoded = percent_decode(&path, false);
            if let Some(Value::String(q)) = entry.extracted.get(k.query.as_str()) {
                decoded.push('?');
                decoded.push_str(&percent_decode(q, true));
            }
            entry
                .extracted
                .insert_interned(k.uri_decoded, Value::String(decoded));
        }
        if let Some(ip) = forwarded_client.or(client) {
            entry
                .extracted
                .insert_interned(k.client_ip, Value::String(ip));
        }
    }

    fn unescape(&self, raw: &str) -> String {
        match self.escape {
            Escape::None => raw.to_string(),
            Escape::Default => decode_hex_escapes(raw),
            Escape::Json => decode_json_escapes(raw),
        }
    }
}

fn put(entry: &mut PipelineEntry, key: InternedKey, value: &str) {
    entry
        .extracted
        .insert_interned(key, Value::String(value.to_string()));
}

fn put_if_absent(entry: &mut PipelineEntry, key: InternedKey, value: &str) {
    if !entry.extracted.contains_key(key.as_str()) {
        put(entry, key, value);
    }
}

/// The first member of a `, `-separated list (X-Forwarded-For, a real_ip chain).
fn first_of_list(v: &str) -> Option<String> {
    let first = v.split(',').next()?.trim().trim_matches('"');
    (!first.is_empty() && first != "-").then(|| first.to_string())
}

/// The last member of an upstream list (`a:80, b:80 : c:80`, separators `, ` and ` : `):
/// the upstream that answered.
fn last_of_list(v: &str) -> Option<&str> {
    let after_comma = v.rfind(", ").map_or(0, |i| i + 2);
    let after_group = v.rfind(" : ").map_or(0, |i| i + 3);
    let last = v[after_comma.max(after_group)..].trim();
    (!last.is_empty() && last != "-").then_some(last)
}

/// The sum of the numbers of an upstream time list (`0.001, 0.020 : 0.5`; `-` entries are
/// upstreams that gave no time). None when no member is a number.
fn sum_list(v: &str) -> Option<String> {
    let mut total = 0.0;
    let mut any = false;
    for member in v.split([',', ':']) {
        if let Ok(n) = member.trim().parse::<f64>() {
            total += n;
            any = true;
        }
    }
    any.then(|| {
        // Millisecond resolution, as nginx writes the members.
        let rounded = (total * 1000.0).round() / 1000.0;
        format!("{rounded:.3}")
    })
}

/// nginx's `escape=default`: `\xHH` for `"`, `\`, control and non-ASCII bytes (also
/// Apache's `\"` and `\\`). Decoded when the result is UTF-8 without control characters;
/// binary stays as written.
fn decode_hex_escapes(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_string();
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            match bytes.get(i + 1) {
                Some(b'x') => {
                    if let (Some(h), Some(l)) = (
                        bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
                        bytes.get(i + 3).and_then(|b| (*b as char).to_digit(16)),
                    ) {
                        out.push((h * 16 + l) as u8);
                        i += 4;
                        continue;
                    }
                }
                Some(c @ (b'"' | b'\\')) => {
                    out.push(*c);
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) if !s.contains(|c: char| c.is_control() && c != '\t') => s,
        _ => raw.to_string(),
    }
}

/// nginx's `escape=json`: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, `\u00XX`.
fn decode_json_escapes(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Percent-decoding of a URI part (`+` as a space in queries); invalid UTF-8 is replaced.
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    if !(s.contains('%') || (plus_is_space && s.contains('+'))) {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let h = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
                let l = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
                if let (Some(h), Some(l)) = (h, l) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
