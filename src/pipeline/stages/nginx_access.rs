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
//! junk stays escaped, so nothing is lost); with `escape: json`, JSON string escapes are
//! decoded. Derived keys:
//! - `method`, `path`, `query` (without `?`), `protocol`: from `$request` (`GET /a?b HTTP/1.1`),
//!   or from `$request_method`, `$request_uri`, `$uri`, `$args`, `$server_protocol`;
//! - `uri_decoded`: path and query percent-decoded (`+` in the query as a space), for
//!   matching attack patterns;
//! - `client_ip`: the first address of `$http_x_forwarded_for` when set, else the first of
//!   `$remote_addr` (which may itself be a comma list behind `real_ip`);
//! - for each `$upstream_*_time` (a comma / ` : ` list, one entry per upstream tried):
//!   `<name>_total`, the sum of its numbers in seconds; for `$upstream_addr`:
//!   `upstream_addr_last`, the upstream that answered.
//!
//! Matching: literals must appear exactly; a variable ends at the first occurrence of the
//! literal after it that lets the rest of the line match (numeric variables such as
//! `$status`, `$body_bytes_sent` or `$request_time` must look numeric, `$time_local` must
//! have its 26-character shape, `$upstream_*` lists may hold spaces only in their `, ` and
//! ` : ` separators). Two variables with no text between them split shortest first, by their
//! shapes. Text after the format's end is ignored (a last variable that is numeric stops at
//! a space), so a file whose lines carry extra trailing fields still parses. A search is
//! given up after 512 steps, so no line can stall the pipeline. A line that does not match
//! is passed on unchanged, nothing extracted, and counted in
//! `tailward_unparsed_lines_total{job, stage="nginx_access"}`. `source` parses an extracted
//! value instead of the line. It must not set labels,
//! timestamps or metadata: the presets do that with ordinary stages.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use crate::pipeline::{BuildContext, PipelineEntry, Stage, Verdict, value_as_string};

/// nginx's built-in `combined`.
pub const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
/// The `main` format of Debian's and nginx.org's default nginx.conf.
pub const MAIN: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for""#;
/// The Common Log Format.
pub const COMMON: &str =
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent"#;

/// Match attempts per line before giving up, so a pathological line cannot stall the
/// pipeline with backtracking.
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
    UpstreamTime,
    UpstreamAddr,
}

#[derive(Clone, Debug)]
struct Variable {
    name: String,
    shape: Shape,
    derive: Derive,
    /// `<name>_total` / `<name>_last` for upstream lists.
    derived_name: Option<String>,
}

#[derive(Clone, Debug)]
enum Token {
    /// The text and its searcher, built once.
    Literal(Vec<u8>, Box<memchr::memmem::Finder<'static>>),
    Variable(usize),
}

fn literal_token(text: Vec<u8>) -> Token {
    let finder = memchr::memmem::Finder::new(&text).into_owned();
    Token::Literal(text, Box::new(finder))
}

/// A compiled `log_format`.
#[derive(Clone, Debug)]
pub struct CompiledFormat {
    tokens: Vec<Token>,
    variables: Vec<Variable>,
    escape: Escape,
}

pub struct NginxAccessStage {
    format: CompiledFormat,
    source: Option<String>,
    /// Each variable's span in the line of the last match, reused from line to line.
    spans: Vec<(usize, usize)>,
    unparsed: prometheus::IntCounter,
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
        let spans = vec![(0, 0); format.variables.len()];
        let unparsed = ctx
            .metrics
            .pipeline
            .unparsed_lines
            .with_label_values(&[&ctx.job, "nginx_access"]);
        Ok(Self {
            format,
            source: cfg.source.clone(),
            spans,
            unparsed,
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
        if self.format.match_line(text.as_bytes(), &mut self.spans) {
            self.format.extract(&text, &self.spans, entry);
        } else {
            self.unparsed.inc();
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
    let (mut text_escape, text) = match given {
        "combined" => (None, COMBINED.to_string()),
        "main" => (None, MAIN.to_string()),
        "common" => (None, COMMON.to_string()),
        "" => {
            return Err(StageError::new(
                "log_format",
                "expected a format name or string",
            ));
        }
        other => read_conf_format(other).map_err(|m| StageError::new("log_format", m))?,
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
    let (tokens, variables) = tokenize(&text).map_err(|m| StageError::new("log_format", m))?;
    Ok(CompiledFormat {
        tokens,
        variables,
        escape,
    })
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

fn tokenize(text: &str) -> Result<(Vec<Token>, Vec<Variable>), String> {
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
        if variables.iter().any(|v| v.name == name) {
            return Err(format!("variable ${name} appears twice"));
        }
        if !literal.is_empty() {
            tokens.push(literal_token(std::mem::take(&mut literal)));
        }
        tokens.push(Token::Variable(variables.len()));
        variables.push(variable(name));
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
        "upstream_addr" => Derive::UpstreamAddr,
        n if n.starts_with("upstream_") && n.ends_with("_time") => Derive::UpstreamTime,
        _ => Derive::None,
    };
    let derived_name = match derive {
        Derive::UpstreamTime => Some(format!("{name}_total")),
        Derive::UpstreamAddr => Some(format!("{name}_last")),
        _ => None,
    };
    Variable {
        name: name.to_string(),
        shape,
        derive,
        derived_name,
    }
}

fn shape_fits(shape: Shape, v: &[u8]) -> bool {
    if v == b"-" {
        return shape != Shape::Status && shape != Shape::TimeLocal;
    }
    match shape {
        Shape::Any => true,
        Shape::Status => v.len() == 3 && v.iter().all(u8::is_ascii_digit),
        Shape::Integer => !v.is_empty() && v.iter().all(u8::is_ascii_digit),
        Shape::Decimal => {
            !v.is_empty() && v.iter().all(|b| b.is_ascii_digit() || *b == b'.') && v[0] != b'.'
        }
        Shape::TimeLocal => v.len() == 26 && v[2] == b'/' && v[6] == b'/' && v[20] == b' ',
        Shape::UpstreamList => list_members(v).all(|m| !m.is_empty()),
        Shape::UpstreamTimes => list_members(v).all(|m| {
            m == b"-" || (!m.is_empty() && m.iter().all(|b| b.is_ascii_digit() || *b == b'.'))
        }),
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

/// Where `needle` next occurs in `hay` at or after `from`, skipping a `"` escaped with a
/// backslash (JSON-escaped values contain `\"`).
fn find_literal(
    hay: &[u8],
    from: usize,
    needle: &[u8],
    finder: &memchr::memmem::Finder<'_>,
) -> Option<usize> {
    let mut at = from;
    while at <= hay.len() {
        let found = at + finder.find(&hay[at..])?;
        if needle[0] == b'"' && escaped_at(hay, found) {
            at = found + 1;
            continue;
        }
        return Some(found);
    }
    None
}

/// Whether the byte at `i` follows an odd number of backslashes.
fn escaped_at(hay: &[u8], i: usize) -> bool {
    hay[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 1
}

impl CompiledFormat {
    /// Matches `line`, filling `spans` with each variable's byte range.
    pub fn match_line(&self, line: &[u8], spans: &mut [(usize, usize)]) -> bool {
        let mut budget = STEP_BUDGET;
        self.match_from(line, 0, 0, spans, &mut budget)
    }

    fn match_from(
        &self,
        line: &[u8],
        token: usize,
        pos: usize,
        spans: &mut [(usize, usize)],
        budget: &mut u32,
    ) -> bool {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let Some(current) = self.tokens.get(token) else {
            return true;
        };
        match current {
            Token::Literal(lit, _) => {
                line[pos..].starts_with(lit)
                    && self.match_from(line, token + 1, pos + lit.len(), spans, budget)
            }
            Token::Variable(v) => {
                let shape = self.variables[*v].shape;
                match self.tokens.get(token + 1) {
                    None => {
                        // The last variable takes the rest of the line, or, when that does
                        // not fit its shape, the rest up to a space (trailing fields the
                        // format does not name).
                        let rest = &line[pos..];
                        let end = if shape_fits(shape, rest) {
                            line.len()
                        } else {
                            pos + memchr::memchr(b' ', rest).unwrap_or(rest.len())
                        };
                        spans[*v] = (pos, end);
                        shape_fits(shape, &line[pos..end])
                    }
                    Some(Token::Literal(lit, finder)) => {
                        let mut from = pos;
                        while let Some(at) = find_literal(line, from, lit, finder) {
                            if shape_fits(shape, &line[pos..at]) {
                                spans[*v] = (pos, at);
                                if self.match_from(line, token + 2, at + lit.len(), spans, budget) {
                                    return true;
                                }
                            }
                            if *budget == 0 {
                                return false;
                            }
                            from = at + 1;
                        }
                        false
                    }
                    Some(Token::Variable(_)) => {
                        // Adjacent variables: shortest first.
                        for end in pos + 1..=line.len() {
                            if shape_fits(shape, &line[pos..end]) {
                                spans[*v] = (pos, end);
                                if self.match_from(line, token + 1, end, spans, budget) {
                                    return true;
                                }
                            }
                            if *budget == 0 {
                                return false;
                            }
                        }
                        false
                    }
                }
            }
        }
    }

    /// Puts the matched variables and the derived keys into `entry`'s extracted map.
    fn extract(&self, line: &str, spans: &[(usize, usize)], entry: &mut PipelineEntry) {
        // Variables plus the derived keys at most.
        entry.extracted.reserve(self.variables.len() + 8);
        let mut request_target: Option<String> = None;
        let mut have_path = false;
        let mut client: Option<String> = None;
        let mut forwarded_client: Option<String> = None;
        for (var, &(start, end)) in self.variables.iter().zip(spans) {
            let raw = &line[start..end];
            if raw == "-" {
                continue;
            }
            let value = self.unescape(raw);
            match var.derive {
                Derive::None => {}
                Derive::Request => {
                    let mut parts = value.splitn(3, ' ');
                    if let (Some(method), Some(target), Some(protocol)) =
                        (parts.next(), parts.next(), parts.next())
                        && !method.is_empty()
                        && !protocol.contains(' ')
                    {
                        put(entry, "method", method);
                        put(entry, "protocol", protocol);
                        request_target = Some(target.to_string());
                    }
                }
                Derive::RequestMethod => put_if_absent(entry, "method", &value),
                Derive::ServerProtocol => put_if_absent(entry, "protocol", &value),
                Derive::RequestUri => {
                    if request_target.is_none() {
                        request_target = Some(value.clone());
                    }
                }
                Derive::Uri => {
                    put_if_absent(entry, "path", &value);
                    have_path = true;
                }
                Derive::Args => put_if_absent(entry, "query", &value),
                Derive::RemoteAddr => client = first_of_list(&value),
                Derive::ForwardedFor => forwarded_client = first_of_list(&value),
                Derive::UpstreamTime => {
                    if let (Some(name), Some(total)) = (&var.derived_name, sum_list(&value)) {
                        entry.extracted.insert(name.clone(), Value::String(total));
                    }
                }
                Derive::UpstreamAddr => {
                    if let (Some(name), Some(last)) = (&var.derived_name, last_of_list(&value)) {
                        put(entry, name, last);
                    }
                }
            }
            entry
                .extracted
                .insert(var.name.clone(), Value::String(value));
        }
        if let Some(target) = request_target {
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (target.as_str(), None),
            };
            if !have_path {
                put(entry, "path", path);
            }
            if let Some(q) = query {
                put(entry, "query", q);
            }
            let mut decoded = percent_decode(path, false);
            if let Some(q) = query {
                decoded.push('?');
                decoded.push_str(&percent_decode(q, true));
            }
            entry
                .extracted
                .insert("uri_decoded".into(), Value::String(decoded));
        } else if let Some(Value::String(path)) = entry.extracted.get("path").cloned() {
            let mut decoded = percent_decode(&path, false);
            if let Some(Value::String(q)) = entry.extracted.get("query") {
                decoded.push('?');
                decoded.push_str(&percent_decode(q, true));
            }
            entry
                .extracted
                .insert("uri_decoded".into(), Value::String(decoded));
        }
        if let Some(ip) = forwarded_client.or(client) {
            entry
                .extracted
                .insert("client_ip".into(), Value::String(ip));
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

fn put(entry: &mut PipelineEntry, key: &str, value: &str) {
    entry
        .extracted
        .insert(key.to_string(), Value::String(value.to_string()));
}

fn put_if_absent(entry: &mut PipelineEntry, key: &str, value: &str) {
    if !entry.extracted.contains_key(key) {
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

/// nginx's `escape=default`: `\xHH` for `"`, `\`, control and non-ASCII bytes. Decoded when
/// the result is UTF-8; binary stays as written.
fn decode_hex_escapes(raw: &str) -> String {
    if !raw.contains("\\x") {
        return raw.to_string();
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && bytes.get(i + 1) == Some(&b'x')
            && let (Some(h), Some(l)) = (
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 3).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 4;
            continue;
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
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::pipeline::stages::testing::entry;
    use std::sync::Arc;

    fn stage(log_format: Option<&str>, escape: Option<&str>) -> (NginxAccessStage, BuildContext) {
        let ctx = BuildContext::new("nginx", Arc::new(Metrics::new()));
        let cfg = NginxAccessConfig {
            log_format: log_format.map(str::to_string),
            escape: escape.map(str::to_string),
            source: None,
        };
        (NginxAccessStage::new(&cfg, &ctx).unwrap(), ctx)
    }

    fn parse(stage: &mut NginxAccessStage, line: &str) -> PipelineEntry {
        let mut e = entry(line, &[]);
        assert_eq!(stage.process(&mut e), Verdict::Keep);
        assert_eq!(e.line, line, "the line is never changed");
        e
    }

    fn get<'a>(e: &'a PipelineEntry, key: &str) -> Option<&'a str> {
        e.extracted.get(key).and_then(Value::as_str)
    }

    #[test]
    fn combined_line_gives_every_field_and_the_request_parts() {
        let (mut s, _) = stage(None, None);
        let e = parse(
            &mut s,
            r#"192.0.2.7 - alice [28/Nov/2026:01:02:03 +0100] "GET /search?q=a%20b&x=1 HTTP/1.1" 200 612 "https://ref.example/" "curl/8.5.0""#,
        );
        assert_eq!(get(&e, "remote_addr"), Some("192.0.2.7"));
        assert_eq!(get(&e, "client_ip"), Some("192.0.2.7"));
        assert_eq!(get(&e, "remote_user"), Some("alice"));
        assert_eq!(get(&e, "time_local"), Some("28/Nov/2026:01:02:03 +0100"));
        assert_eq!(get(&e, "method"), Some("GET"));
        assert_eq!(get(&e, "path"), Some("/search"));
        assert_eq!(get(&e, "query"), Some("q=a%20b&x=1"));
        assert_eq!(get(&e, "uri_decoded"), Some("/search?q=a b&x=1"));
        assert_eq!(get(&e, "protocol"), Some("HTTP/1.1"));
        assert_eq!(get(&e, "status"), Some("200"));
        assert_eq!(get(&e, "body_bytes_sent"), Some("612"));
        assert_eq!(get(&e, "http_referer"), Some("https://ref.example/"));
        assert_eq!(get(&e, "http_user_agent"), Some("curl/8.5.0"));
    }

    #[test]
    fn dash_values_are_not_extracted_and_ipv6_and_forwarded_lists_parse() {
        let (mut s, _) = stage(Some("main"), None);
        let e = parse(
            &mut s,
            r#"2001:db8::1 - - [28/Nov/2026:01:02:03 +0000] "GET / HTTP/2.0" 304 0 "-" "-" "203.0.113.9, 10.0.0.1""#,
        );
        assert_eq!(get(&e, "remote_addr"), Some("2001:db8::1"));
        assert_eq!(get(&e, "remote_user"), None);
        assert_eq!(get(&e, "http_referer"), None);
        assert_eq!(
            get(&e, "http_x_forwarded_for"),
            Some("203.0.113.9, 10.0.0.1")
        );
        assert_eq!(get(&e, "client_ip"), Some("203.0.113.9"));
    }

    #[test]
    fn hex_escapes_decode_to_utf8_and_binary_stays_escaped() {
        let (mut s, _) = stage(None, None);
        let e = parse(
            &mut s,
            r#"10.0.0.1 - - [28/Nov/2026:01:02:03 +0000] "GET /\xD0\x9F?x=\x22 HTTP/1.1" 200 1 "-" "\x16\x03\x01""#,
        );
        assert_eq!(get(&e, "path"), Some("/П"));
        assert_eq!(get(&e, "query"), Some("x=\""));
        assert_eq!(get(&e, "http_user_agent"), Some(r"\x16\x03\x01"));
    }

    #[test]
    fn custom_format_from_nginx_conf_with_upstream_lists_and_request_id() {
        let conf = r#"log_format upstream '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" "$http_user_agent" '
                      '$request_time $upstream_addr $upstream_response_time "$request_id"';"#;
        let (mut s, _) = stage(Some(conf), None);
        let e = parse(
            &mut s,
            r#"127.0.0.1 - - [28/Nov/2026:01:02:03 +0000] "POST /api HTTP/1.1" 502 150 "-" "python" 0.250 10.0.0.5:80, 10.0.0.6:80 : unix:/run/app.sock 0.100, 0.050 : 0.099 "3f2a9c""#,
        );
        assert_eq!(get(&e, "request_time"), Some("0.250"));
        assert_eq!(
            get(&e, "upstream_addr"),
            Some("10.0.0.5:80, 10.0.0.6:80 : unix:/run/app.sock")
        );
        assert_eq!(get(&e, "upstream_addr_last"), Some("unix:/run/app.sock"));
        assert_eq!(get(&e, "upstream_response_time_total"), Some("0.249"));
        assert_eq!(get(&e, "request_id"), Some("3f2a9c"));
        assert_eq!(get(&e, "status"), Some("502"));
    }

    #[test]
    fn json_escape_format_decodes_json_string_escapes() {
        let conf = r#"escape=json '{"ip":"$remote_addr","req":"$request","status":$status,"ua":"$http_user_agent","t":$request_time}'"#;
        let (mut s, _) = stage(Some(conf), None);
        let e = parse(
            &mut s,
            r#"{"ip":"::1","req":"GET /a\"b HTTP/1.1","status":404,"ua":"x \"quoted\" \\ y","t":0.001}"#,
        );
        assert_eq!(get(&e, "request"), Some(r#"GET /a"b HTTP/1.1"#));
        assert_eq!(get(&e, "path"), Some(r#"/a"b"#));
        assert_eq!(get(&e, "http_user_agent"), Some(r#"x "quoted" \ y"#));
        assert_eq!(get(&e, "status"), Some("404"));
        assert_eq!(get(&e, "request_time"), Some("0.001"));
    }

    #[test]
    fn escape_key_and_escape_in_the_format_must_agree() {
        let err = compile(Some("escape=json '$status'"), Some("none")).unwrap_err();
        assert_eq!(err.key, "escape");
        assert_eq!(
            compile(Some("$status"), Some("jsn")).unwrap_err().key,
            "escape"
        );
        assert_eq!(
            compile(Some("no variables"), None).unwrap_err().key,
            "log_format"
        );
        assert_eq!(compile(Some("'$a' x"), None).unwrap_err().key, "log_format");
    }

    #[test]
    fn a_line_that_does_not_match_is_kept_unchanged_and_counted() {
        let (mut s, ctx) = stage(None, None);
        let line = "2026/11/28 01:02:03 [error] 1#1: *1 open() failed";
        let e = parse(&mut s, line);
        assert_eq!(get(&e, "status"), None);
        assert!(
            ctx.metrics
                .render()
                .contains(r#"tailward_unparsed_lines_total{job="nginx",stage="nginx_access"} 1"#)
        );
    }

    #[test]
    fn numeric_shapes_let_a_later_literal_win_and_extra_trailing_fields_are_ignored() {
        // The user agent holds `" ` sequences only as \x22, but a request in a broken
        // client's line can hold a space: `$status` must be three digits.
        let (mut s, _) = stage(
            Some(r#"$remote_addr [$time_local] $request $status $request_time"#),
            None,
        );
        let e = parse(
            &mut s,
            "1.2.3.4 [28/Nov/2026:01:02:03 +0000] GET /a b HTTP/1.0 200 0.5 extra",
        );
        assert_eq!(get(&e, "request"), Some("GET /a b HTTP/1.0"));
        assert_eq!(get(&e, "status"), Some("200"));
        assert_eq!(get(&e, "request_time"), Some("0.5"));
        let (mut c, _) = stage(None, None);
        let e = parse(
            &mut c,
            r#"1.2.3.4 - - [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5 "-" "ua" "2.75""#,
        );
        assert_eq!(get(&e, "http_user_agent"), Some("ua"));
    }

    #[test]
    fn empty_request_and_garbage_request_give_no_method() {
        let (mut s, _) = stage(None, None);
        let e = parse(
            &mut s,
            r#"0.0.0.0 - - [04/Oct/2022:04:34:49 +0000] "" 400 0 "" """#,
        );
        assert_eq!(get(&e, "request"), Some(""));
        assert_eq!(get(&e, "method"), None);
        assert_eq!(get(&e, "status"), Some("400"));
        assert_eq!(get(&e, "http_referer"), Some(""));
    }

    #[test]
    fn adjacent_variables_split_by_their_shapes() {
        let (mut s, _) = stage(Some("$status$body_bytes_sent $request_time"), None);
        let e = parse(&mut s, "404153 0.002");
        assert_eq!(get(&e, "status"), Some("404"));
        assert_eq!(get(&e, "body_bytes_sent"), Some("153"));
        assert_eq!(get(&e, "request_time"), Some("0.002"));
    }

    #[test]
    fn a_pathological_line_gives_up_within_the_step_budget() {
        // Every `a` is a candidate end of each variable; the budget stops the search.
        let (mut s, ctx) = stage(Some("$a $b $c $d $e $status"), None);
        let line = "a ".repeat(200) + "x";
        parse(&mut s, &line);
        assert!(
            ctx.metrics
                .render()
                .contains(r#"tailward_unparsed_lines_total{job="nginx",stage="nginx_access"} 1"#)
        );
    }

    #[test]
    fn source_key_is_parsed_instead_of_the_line() {
        let ctx = BuildContext::new("j", Arc::new(Metrics::new()));
        let mut s = NginxAccessStage::new(
            &NginxAccessConfig {
                log_format: Some("$status $request_time".into()),
                escape: None,
                source: Some("msg".into()),
            },
            &ctx,
        )
        .unwrap();
        let mut e = entry("whole line", &[]);
        e.extracted.insert("msg".into(), Value::from("404 0.2"));
        s.process(&mut e);
        assert_eq!(get(&e, "status"), Some("404"));
        assert_eq!(e.line, "whole line");
    }
}
