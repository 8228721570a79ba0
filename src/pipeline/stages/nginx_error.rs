//! `nginx_error`: a tailward extension that parses nginx error log records, as
//! `ngx_log_error_core` (ngx_log.c) writes them and `ngx_http_log_error_handler`
//! (ngx_http_request.c) and the stream module's handler end them:
//!
//! ```text
//! 2026/11/28 01:02:03 [error] 1234#0: *5 open() "/srv/x" failed (2: No such file or directory), client: 192.0.2.5, server: shop.example.com, request: "GET /x HTTP/1.1", host: "shop.example.com"
//! ```
//!
//! ```yaml
//! - nginx_error: {}
//! - nginx_error:
//!     structured_metadata: true     # or a list of field names; default false
//! ```
//!
//! Extracted keys: `time` (`2026/11/28 01:02:03`, local time as nginx writes it), `level`,
//! `pid`, `tid`, `connection_id` (the `*N`), `message` (the text before the context),
//! `client`, `server`, and the context's quoted items `request` (with `method`, `path`,
//! `query`, `protocol` split from it as the access log's `$request` is), `subrequest`,
//! `upstream`, `host`, `referrer`, `login` (mail), in whatever order and combination they
//! come; `excess` and `zone` of limit_req's `..., excess: 0.500 by zone "one"` (taken off the
//! message) and the `zone` of limit_conn's `... by zone "one"`. `udp: "true"` for the stream
//! module's `udp client:`. An empty value is not extracted.
//!
//! The context names text a remote client controls: the request line, the Host and Referer
//! headers are written as sent, and the message often quotes a path from the request. Such
//! text can imitate the context, so it is read from the structure nginx gives it, never from
//! the first or last match of a word:
//! - the client is the address in `, client: <address>, server: `. When the record holds
//!   that sequence more than once (one of them written by the client), the record is not
//!   guessed: `message` is the whole text after the header, no `client`, `server` or items
//!   are extracted, `ambiguous: "true"` is set and the record counted in
//!   `tailward_ambiguous_lines_total{job, stage="nginx_error"}`;
//! - the items after `server:` are split at every item marker (`", host: "`, ...). A marker
//!   a client wrote into its own value shows as an item repeated, or as nginx's `upstream`
//!   or `subrequest` (written before the client's items) after a client-written item; only
//!   the items before the value that may hold it are then extracted, and the record is
//!   marked and counted the same way. A client can still forge an item nginx did not write
//!   at all (a `host:` in the request line of a request without a Host header): values
//!   other than `client` and `server` are the client's text and must be read as such.
//!
//! A record whose header is not nginx's (`YYYY/MM/DD HH:MM:SS [level] PID#TID: `) is passed on
//! unchanged, nothing extracted, and counted in
//! `tailward_unparsed_lines_total{job, stage="nginx_error"}`. Multi-line records (FastCGI
//! stderr) come whole from a `multiline` stage before this one; their context is at the end.
//! `source` parses an extracted value instead of the line. `structured_metadata: true`
//! attaches [`DEFAULT_METADATA`] (those the record has); a list attaches the fields named.
//! It must not set labels or timestamps: the preset does that with ordinary stages.

use memchr::memmem;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use crate::pipeline::extracted::InternedKey;
use crate::pipeline::http_request::split_request;
use crate::pipeline::label_sources::MetadataFields;
use crate::pipeline::{BuildContext, PipelineEntry, Stage, Verdict, value_as_string};

/// What `structured_metadata: true` attaches, when the record has it.
pub const DEFAULT_METADATA: &[&str] = &[
    "client",
    "server",
    "host",
    "request",
    "upstream",
    "connection_id",
];

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NginxErrorConfig {
    /// Extracted key to parse instead of the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Fields to attach as structured metadata: `true` for [`DEFAULT_METADATA`], or names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_metadata: Option<MetadataFields>,
}

/// The items of the context after `server:`, as nginx's handlers write them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ItemKind {
    /// `, name: "value"`.
    Quoted,
    /// `, upstream: value` (mail): up to the next item or the end.
    Bare,
    /// `, bytes from/to client:N/N` (stream): digits and a slash.
    Counts,
}

struct ItemSpec {
    marker: &'static str,
    key: &'static str,
    kind: ItemKind,
}

const ITEMS: &[ItemSpec] = &[
    ItemSpec {
        marker: ", request: \"",
        key: "request",
        kind: ItemKind::Quoted,
    },
    ItemSpec {
        marker: ", subrequest: \"",
        key: "subrequest",
        kind: ItemKind::Quoted,
    },
    ItemSpec {
        marker: ", upstream: \"",
        key: "upstream",
        kind: ItemKind::Quoted,
    },
    ItemSpec {
        marker: ", host: \"",
        key: "host",
        kind: ItemKind::Quoted,
    },
    ItemSpec {
        marker: ", referrer: \"",
        key: "referrer",
        kind: ItemKind::Quoted,
    },
    ItemSpec {
        marker: ", login: \"",
        key: "login",
        kind: ItemKind::Quoted,
    },
    ItemSpec {
        marker: ", upstream: ",
        key: "upstream",
        kind: ItemKind::Bare,
    },
    ItemSpec {
        marker: ", bytes from/to client:",
        key: "bytes_client",
        kind: ItemKind::Counts,
    },
    ItemSpec {
        marker: ", bytes from/to upstream:",
        key: "bytes_upstream",
        kind: ItemKind::Counts,
    },
];

/// One item found: which, and its value's byte range.
type Item = (usize, usize, usize);

struct Keys {
    time: InternedKey,
    level: InternedKey,
    pid: InternedKey,
    tid: InternedKey,
    connection_id: InternedKey,
    message: InternedKey,
    client: InternedKey,
    server: InternedKey,
    udp: InternedKey,
    method: InternedKey,
    path: InternedKey,
    query: InternedKey,
    protocol: InternedKey,
    excess: InternedKey,
    zone: InternedKey,
    ambiguous: InternedKey,
    items: Vec<InternedKey>,
}

impl Keys {
    fn new() -> Self {
        Self {
            time: InternedKey::new("time"),
            level: InternedKey::new("level"),
            pid: InternedKey::new("pid"),
            tid: InternedKey::new("tid"),
            connection_id: InternedKey::new("connection_id"),
            message: InternedKey::new("message"),
            client: InternedKey::new("client"),
            server: InternedKey::new("server"),
            udp: InternedKey::new("udp"),
            method: InternedKey::new("method"),
            path: InternedKey::new("path"),
            query: InternedKey::new("query"),
            protocol: InternedKey::new("protocol"),
            excess: InternedKey::new("excess"),
            zone: InternedKey::new("zone"),
            ambiguous: InternedKey::new("ambiguous"),
            items: ITEMS.iter().map(|i| InternedKey::new(i.key)).collect(),
        }
    }
}

pub struct NginxErrorStage {
    source: Option<String>,
    metadata: Vec<String>,
    keys: Keys,
    client_finder: memmem::Finder<'static>,
    /// The items of the record, reused from record to record.
    items: Vec<Item>,
    unparsed: prometheus::IntCounter,
    ambiguous: prometheus::IntCounter,
}

impl NginxErrorStage {
    pub fn new(cfg: &NginxErrorConfig, ctx: &BuildContext) -> Result<Self, StageError> {
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
        let counter =
            |vec: &prometheus::IntCounterVec| vec.with_label_values(&[&ctx.job, "nginx_error"]);
        Ok(Self {
            source: cfg.source.clone(),
            metadata,
            keys: Keys::new(),
            client_finder: memmem::Finder::new(b"client: ").into_owned(),
            items: Vec::new(),
            unparsed: counter(&ctx.metrics.pipeline.unparsed_lines),
            ambiguous: counter(&ctx.metrics.pipeline.ambiguous_lines),
        })
    }
}

impl Stage for NginxErrorStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let text: String = match &self.source {
            None => std::mem::take(&mut entry.line),
            Some(key) => match entry.extracted.get(key).and_then(value_as_string) {
                Some(v) => v.into_owned(),
                None => return Verdict::Keep,
            },
        };
        if self.parse(&text, entry) {
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
        } else {
            self.unparsed.inc();
        }
        if self.source.is_none() {
            entry.line = text;
        }
        Verdict::Keep
    }
}

/// The header fields of a record and where its message starts.
struct Header<'a> {
    time: &'a str,
    level: &'a str,
    pid: &'a str,
    tid: &'a str,
    connection_id: Option<&'a str>,
    rest: usize,
}

fn digits(s: &[u8]) -> usize {
    s.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// `YYYY/MM/DD HH:MM:SS [level] PID#TID: [*CID ]`
fn header(text: &str) -> Option<Header<'_>> {
    let b = text.as_bytes();
    let time_shape = b.len() >= 19
        && b[..19].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'/',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !time_shape || b.get(19..21) != Some(b" [") {
        return None;
    }
    let level_len = b[21..]
        .iter()
        .take_while(|c| c.is_ascii_lowercase())
        .count();
    let level_end = 21 + level_len;
    if level_len == 0 || b.get(level_end..level_end + 2) != Some(b"] ") {
        return None;
    }
    let pid_start = level_end + 2;
    let pid_len = digits(&b[pid_start..]);
    let hash = pid_start + pid_len;
    if pid_len == 0 || b.get(hash) != Some(&b'#') {
        return None;
    }
    let tid_len = digits(&b[hash + 1..]);
    let colon = hash + 1 + tid_len;
    if tid_len == 0 || b.get(colon..colon + 2) != Some(b": ") {
        return None;
    }
    let mut rest = colon + 2;
    let mut connection_id = None;
    if b.get(rest) == Some(&b'*') {
        let n = digits(&b[rest + 1..]);
        if n > 0 && b.get(rest + 1 + n) == Some(&b' ') {
            connection_id = Some(&text[rest + 1..rest + 1 + n]);
            rest += n + 2;
        }
    }
    Some(Header {
        time: &text[..19],
        level: &text[21..level_end],
        pid: &text[pid_start..hash],
        tid: &text[hash + 1..colon],
        connection_id,
        rest,
    })
}

/// An address as nginx writes a connection's `addr_text`: IPv4, IPv6 or `unix:`.
fn is_address(v: &str) -> bool {
    if let Some(path) = v.strip_prefix("unix:") {
        return !path.contains([' ', ',']);
    }
    if v.is_empty() || v.len() > 45 {
        return false;
    }
    if v.contains(':') {
        v.matches(':').count() >= 2
            && v.bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        v.split('.').count() == 4
            && v.split('.')
                .all(|o| !o.is_empty() && o.len() <= 3 && o.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// Where a `, client: <address>, server: ` context starts, its address, whether it was a
/// `udp client`, and where the server name starts.
#[derive(Clone, Copy)]
struct ClientAt<'a> {
    start: usize,
    address: &'a str,
    udp: bool,
    server: usize,
}

/// Which item's marker `rest` starts with.
fn marker_at(rest: &str) -> Option<usize> {
    if !rest.starts_with(", ") {
        return None;
    }
    ITEMS.iter().position(|spec| rest.starts_with(spec.marker))
}

/// Where nginx's handler writes each item: request, subrequest, upstream, host, referrer
/// (ngx_http_log_error_handler); the mail and stream items after them.
fn nginx_order(key: &str) -> usize {
    match key {
        "request" => 0,
        "subrequest" => 1,
        "upstream" => 2,
        "host" => 3,
        "referrer" => 4,
        _ => 5,
    }
}

/// Whether a client wrote the item's value (the request line, the Host and Referer
/// headers, a mail login).
fn client_written(key: &str) -> bool {
    matches!(key, "request" | "host" | "referrer" | "login")
}

/// Reads the items from `pos` to the end of `text` into `out`, splitting at every item
/// marker: after a quoted value (or where the items start) an occurrence of `, name: ` is
/// where the next item starts. A client can write such a marker into its own text; the
/// reading is then not nginx's, and shows it: an item repeated, a quoted value not closed
/// where the next marker starts, or an `upstream`/`subrequest` (nginx's, written before
/// the client's items) after a client-written item. Returns how many of the items read are
/// certain: all of them, or those before the first sign of a forged marker.
fn read_items(text: &str, pos: usize, out: &mut Vec<Item>) -> usize {
    out.clear();
    let mut at = pos;
    let mut used = 0u32;
    let mut after_headers = false;
    loop {
        let Some(spec) = marker_at(&text[at..]) else {
            // The end (or text nginx does not write, left unread).
            return out.len();
        };
        let item = &ITEMS[spec];
        let start = at + item.marker.len();
        let bits = key_bits(spec);
        // A second `host:`, or nginx's upstream or subrequest (which it writes before the
        // Host and Referer headers) after one of them: some marker is the client's, written
        // into any of the client's values. Only the items before the first of those are
        // certain.
        let forged = used & bits != 0
            || (after_headers && !client_written(item.key) && nginx_order(item.key) < 3);
        if forged {
            return out
                .iter()
                .position(|(s, _, _)| client_written(ITEMS[*s].key))
                .unwrap_or(out.len());
        }
        used |= bits;
        after_headers |= matches!(item.key, "host" | "referrer");
        // The next marker this item's value may end at.
        let next = next_marker(text, start, item.kind);
        let (end, following) = match item.kind {
            ItemKind::Quoted => {
                // The value closes with the quote right before the next marker or the end.
                let stop = next.unwrap_or_else(|| text.trim_end().len());
                if stop == 0 || stop <= start || text.as_bytes()[stop - 1] != b'"' {
                    return out.len();
                }
                // nginx's upstream (`schema://peer/uri` of a request it could parse) has no
                // space: one with a space was cut from a client's value.
                if item.key == "upstream" && text[start..stop - 1].contains(' ') {
                    return out
                        .iter()
                        .position(|(s, _, _)| client_written(ITEMS[*s].key))
                        .unwrap_or(out.len());
                }
                (stop - 1, stop)
            }
            ItemKind::Bare => {
                let stop = next.unwrap_or_else(|| text.trim_end().len());
                if stop <= start || text[start..stop].contains(' ') {
                    return out.len();
                }
                (stop, stop)
            }
            ItemKind::Counts => {
                let value = &text.as_bytes()[start..];
                let a = digits(value);
                let b = if value.get(a) == Some(&b'/') {
                    digits(&value[a + 1..])
                } else {
                    0
                };
                if a == 0 || b == 0 {
                    return out.len();
                }
                let end = start + a + 1 + b;
                (end, end)
            }
        };
        out.push((spec, start, end));
        at = following;
    }
}

/// The quoted and bare `upstream` are one item.
fn key_bits(spec: usize) -> u32 {
    let key = ITEMS[spec].key;
    ITEMS
        .iter()
        .enumerate()
        .filter(|(_, s)| s.key == key)
        .fold(0, |bits, (i, _)| bits | (1 << i))
}

/// Where the next item marker after `from` starts: after a quote for a quoted value, at the
/// next `, ` for the others.
fn next_marker(text: &str, from: usize, kind: ItemKind) -> Option<usize> {
    let bytes = text.as_bytes();
    memchr::memchr_iter(b',', &bytes[from..])
        .map(|i| from + i)
        .find(|&c| {
            marker_at(&text[c..]).is_some()
                && (kind != ItemKind::Quoted || (c > from && bytes[c - 1] == b'"'))
        })
}

impl NginxErrorStage {
    /// The `, client: <address>, server: ` contexts of `text` from `from` on, at most two.
    fn clients<'t>(&self, text: &'t str, from: usize) -> (Option<ClientAt<'t>>, bool) {
        let mut found = None;
        for at in self.client_finder.find_iter(&text.as_bytes()[from..]) {
            let at = from + at;
            let before = &text[..at];
            let (start, udp) = if before.ends_with(", udp ") {
                (at - 6, true)
            } else if before.ends_with(", ") {
                (at - 2, false)
            } else {
                continue;
            };
            let addr_start = at + "client: ".len();
            let Some(len) = text[addr_start..].find(", server: ") else {
                continue;
            };
            let address = &text[addr_start..addr_start + len];
            if !is_address(address) {
                continue;
            }
            let client = ClientAt {
                start,
                address,
                udp,
                server: addr_start + len + ", server: ".len(),
            };
            if found.is_some() {
                return (found, true);
            }
            found = Some(client);
        }
        (found, false)
    }

    /// Parses `text` into `entry`'s extracted map; false when the header is not nginx's.
    fn parse(&mut self, text: &str, entry: &mut PipelineEntry) -> bool {
        let Some(h) = header(text) else {
            return false;
        };
        let k = &self.keys;
        let put = |entry: &mut PipelineEntry, key: InternedKey, value: &str| {
            if !value.is_empty() {
                entry
                    .extracted
                    .insert_interned(key, Value::String(value.to_string()));
            }
        };
        entry.extracted.reserve(16);
        put(entry, k.time, h.time);
        put(entry, k.level, h.level);
        put(entry, k.pid, h.pid);
        put(entry, k.tid, h.tid);
        if let Some(cid) = h.connection_id {
            put(entry, k.connection_id, cid);
        }
        let (client, twice) = self.clients(text, h.rest);
        let Some(client) = client.filter(|_| !twice) else {
            if twice {
                // The context appears more than once: which is nginx's is not known.
                self.ambiguous.inc();
                put(entry, k.ambiguous, "true");
            }
            self.message(text[h.rest..].trim_end(), entry);
            return true;
        };
        self.message(&text[h.rest..client.start], entry);
        put(entry, k.client, client.address);
        if client.udp {
            put(entry, k.udp, "true");
        }
        // The server name (from the config) ends at the first item.
        let server_end = memchr::memchr_iter(b',', &text.as_bytes()[client.server..])
            .map(|i| client.server + i)
            .find(|&c| marker_at(&text[c..]).is_some())
            .unwrap_or(text.len());
        put(entry, k.server, text[client.server..server_end].trim_end());
        let certain = read_items(text, server_end, &mut self.items);
        if certain < self.items.len() {
            self.ambiguous.inc();
            put(entry, k.ambiguous, "true");
        }
        for &(spec, start, end) in self.items.iter().take(certain) {
            let value = &text[start..end];
            put(entry, k.items[spec], value);
            if ITEMS[spec].key == "request"
                && let Some(request) = split_request(value)
            {
                put(entry, k.method, request.method);
                if let Some(target) = request.path_and_query {
                    let (path, query) = match target.split_once('?') {
                        Some((p, q)) => (p, Some(q)),
                        None => (target, None),
                    };
                    put(entry, k.path, path);
                    if let Some(q) = query {
                        put(entry, k.query, q);
                    }
                }
                if let Some(protocol) = request.protocol {
                    put(entry, k.protocol, protocol);
                }
            }
        }
        true
    }

    /// The message, with limit_req's `, excess: N[,] by zone "Z"` taken off its end, and
    /// limit_conn's `by zone "Z"` read.
    fn message(&self, message: &str, entry: &mut PipelineEntry) {
        let k = &self.keys;
        let mut message = message;
        if let Some(at) = message.rfind(", excess: ") {
            let tail = &message[at + ", excess: ".len()..];
            let n = tail
                .bytes()
                .take_while(|b| b.is_ascii_digit() || *b == b'.')
                .count();
            let after = &tail[n..];
            let after = after.strip_prefix(',').unwrap_or(after);
            if n > 0
                && let Some(zone) = after
                    .strip_prefix(" by zone \"")
                    .and_then(|z| z.strip_suffix('"'))
                && !zone.contains('"')
            {
                entry
                    .extracted
                    .insert_interned(k.excess, Value::String(tail[..n].to_string()));
                entry
                    .extracted
                    .insert_interned(k.zone, Value::String(zone.to_string()));
                message = &message[..at];
            }
        } else if let Some(zone) = message
            .strip_prefix("limiting connections by zone \"")
            .and_then(|z| z.strip_suffix('"'))
            && !zone.contains('"')
        {
            entry
                .extracted
                .insert_interned(k.zone, Value::String(zone.to_string()));
        }
        if !message.is_empty() {
            entry
                .extracted
                .insert_interned(k.message, Value::String(message.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::pipeline::stages::testing::entry;

    fn stage() -> (NginxErrorStage, BuildContext) {
        let ctx = BuildContext::new("nginx", Arc::new(Metrics::new()));
        (
            NginxErrorStage::new(&NginxErrorConfig::default(), &ctx).unwrap(),
            ctx,
        )
    }

    fn parse(s: &mut NginxErrorStage, line: &str) -> PipelineEntry {
        let mut e = entry(line, &[]);
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert_eq!(e.line, line, "the line is never changed");
        e
    }

    fn get<'a>(e: &'a PipelineEntry, key: &str) -> Option<&'a str> {
        e.extracted.get(key).and_then(Value::as_str)
    }

    fn counted(ctx: &BuildContext, metric: &str) -> u64 {
        let text = ctx.metrics.render();
        let series = format!(r#"{metric}{{job="nginx",stage="nginx_error"}} "#);
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    const HEAD: &str = "2026/11/28 01:02:03 [error] 1234#0: *5 ";

    #[test]
    fn header_message_and_the_whole_http_context() {
        let (mut s, _) = stage();
        let e = parse(
            &mut s,
            &format!(
                r#"{HEAD}open() "/srv/www/x" failed (2: No such file or directory), client: 192.0.2.5, server: shop.example.com, request: "GET /x?y=1 HTTP/1.1", upstream: "http://127.0.0.1:8000/x", host: "shop.example.com", referrer: "https://shop.example.com/""#
            ),
        );
        assert_eq!(get(&e, "time"), Some("2026/11/28 01:02:03"));
        assert_eq!(get(&e, "level"), Some("error"));
        assert_eq!(get(&e, "pid"), Some("1234"));
        assert_eq!(get(&e, "tid"), Some("0"));
        assert_eq!(get(&e, "connection_id"), Some("5"));
        assert_eq!(
            get(&e, "message"),
            Some(r#"open() "/srv/www/x" failed (2: No such file or directory)"#)
        );
        assert_eq!(get(&e, "client"), Some("192.0.2.5"));
        assert_eq!(get(&e, "server"), Some("shop.example.com"));
        assert_eq!(get(&e, "request"), Some("GET /x?y=1 HTTP/1.1"));
        assert_eq!(get(&e, "method"), Some("GET"));
        assert_eq!(get(&e, "path"), Some("/x"));
        assert_eq!(get(&e, "query"), Some("y=1"));
        assert_eq!(get(&e, "protocol"), Some("HTTP/1.1"));
        assert_eq!(get(&e, "upstream"), Some("http://127.0.0.1:8000/x"));
        assert_eq!(get(&e, "host"), Some("shop.example.com"));
        assert_eq!(get(&e, "referrer"), Some("https://shop.example.com/"));
        assert_eq!(get(&e, "ambiguous"), None);
    }

    #[test]
    fn requests_without_protocol_and_items_in_other_orders_and_combinations() {
        let (mut s, ctx) = stage();
        for (tail, want) in [
            (
                r#", client: 10.0.0.1, server: _, request: "GET /old""#,
                &[("request", "GET /old"), ("method", "GET"), ("path", "/old")][..],
            ),
            (
                r#", client: 10.0.0.1, server: _, request: "\x16\x03\x01""#,
                &[("request", r"\x16\x03\x01")][..],
            ),
            (
                r#", client: 10.0.0.1, server: _, host: "h.example", referrer: "https://r/", request: "POST /p HTTP/2.0""#,
                &[
                    ("host", "h.example"),
                    ("referrer", "https://r/"),
                    ("method", "POST"),
                    ("protocol", "HTTP/2.0"),
                ][..],
            ),
            (
                r#", client: 10.0.0.1, server: _, upstream: "fastcgi://unix:/run/php.sock:", host: "h""#,
                &[("upstream", "fastcgi://unix:/run/php.sock:"), ("host", "h")][..],
            ),
            (
                r#", client: 10.0.0.1, server: _, referrer: "https://r/""#,
                &[("referrer", "https://r/")][..],
            ),
            (
                r#", client: 10.0.0.1, server: 0.0.0.0:443, upstream: "10.0.0.2:443", bytes from/to client:517/0, bytes from/to upstream:0/517"#,
                &[
                    ("server", "0.0.0.0:443"),
                    ("upstream", "10.0.0.2:443"),
                    ("bytes_client", "517/0"),
                ][..],
            ),
            (
                r#", client: 10.0.0.1, server: 0.0.0.0:143, login: "bob", upstream: 10.0.0.3:143"#,
                &[("login", "bob"), ("upstream", "10.0.0.3:143")][..],
            ),
        ] {
            let e = parse(&mut s, &format!("{HEAD}connect() failed{tail}"));
            assert_eq!(get(&e, "client"), Some("10.0.0.1"), "{tail}");
            assert_eq!(get(&e, "message"), Some("connect() failed"), "{tail}");
            for (key, value) in want {
                assert_eq!(get(&e, key), Some(*value), "{key} in {tail}");
            }
            assert_eq!(get(&e, "ambiguous"), None, "{tail}");
        }
        assert_eq!(counted(&ctx, "tailward_ambiguous_lines_total"), 0);
    }

    #[test]
    fn records_without_context_connection_or_server_name() {
        let (mut s, _) = stage();
        let e = parse(
            &mut s,
            "2026/11/28 01:02:05 [notice] 1200#1200: signal process started",
        );
        assert_eq!(get(&e, "level"), Some("notice"));
        assert_eq!(get(&e, "connection_id"), None);
        assert_eq!(get(&e, "message"), Some("signal process started"));
        assert_eq!(get(&e, "client"), None);
        let e = parse(
            &mut s,
            &format!(
                r#"{HEAD}connect() failed, client: 127.0.0.1, server: , request: "GET / HTTP/1.1""#
            ),
        );
        assert_eq!(get(&e, "server"), None);
        assert_eq!(get(&e, "request"), Some("GET / HTTP/1.1"));
        let e = parse(
            &mut s,
            &format!(
                "{HEAD}SSL_do_handshake() failed while SSL handshaking, client: 2001:db8::1, server: 0.0.0.0:443"
            ),
        );
        assert_eq!(get(&e, "client"), Some("2001:db8::1"));
        assert_eq!(get(&e, "server"), Some("0.0.0.0:443"));
        let e = parse(
            &mut s,
            &format!(
                "{HEAD}upstream timed out, udp client: 192.0.2.9, server: 0.0.0.0:53, upstream: \"10.0.0.53:53\""
            ),
        );
        assert_eq!(get(&e, "udp"), Some("true"));
        assert_eq!(get(&e, "client"), Some("192.0.2.9"));
    }

    #[test]
    fn limit_req_and_limit_conn_give_excess_and_zone() {
        let (mut s, _) = stage();
        for message in [
            r#"limiting requests, excess: 50.416 by zone "api""#,
            r#"delaying requests, excess: 50.416, by zone "api""#,
        ] {
            let e = parse(
                &mut s,
                &format!(
                    r#"{HEAD}{message}, client: 10.0.0.1, server: t, request: "GET / HTTP/2.0""#
                ),
            );
            assert_eq!(get(&e, "excess"), Some("50.416"));
            assert_eq!(get(&e, "zone"), Some("api"));
            assert!(get(&e, "message").is_some_and(|m| m.ends_with("requests")));
        }
        let e = parse(
            &mut s,
            &format!(r#"{HEAD}limiting connections by zone "perip", client: 10.0.0.1, server: t"#),
        );
        assert_eq!(get(&e, "zone"), Some("perip"));
        assert_eq!(
            get(&e, "message"),
            Some(r#"limiting connections by zone "perip""#)
        );
    }

    #[test]
    fn a_multi_line_record_keeps_its_message_whole() {
        let (mut s, _) = stage();
        let e = parse(
            &mut s,
            &format!(
                "{HEAD}FastCGI sent in stderr: \"PHP message: a\nPHP message: b\" while reading response header from upstream, client: 192.0.2.5, server: s, request: \"GET /i.php HTTP/1.1\""
            ),
        );
        assert_eq!(
            get(&e, "message"),
            Some(
                "FastCGI sent in stderr: \"PHP message: a\nPHP message: b\" while reading response header from upstream"
            )
        );
        assert_eq!(get(&e, "path"), Some("/i.php"));
    }

    #[test]
    fn a_client_written_context_is_marked_not_guessed() {
        let (mut s, ctx) = stage();
        // The path in the message imitates the context: two `client: ..., server: `.
        let line = format!(
            r#"{HEAD}open() "/srv/a, client: 6.6.6.6, server: x" failed, client: 192.0.2.5, server: s, request: "GET /a%2C%20client HTTP/1.1""#
        );
        let e = parse(&mut s, &line);
        assert_eq!(get(&e, "ambiguous"), Some("true"));
        assert_eq!(get(&e, "client"), None);
        assert_eq!(get(&e, "request"), None);
        assert_eq!(get(&e, "message"), Some(&line[HEAD.len()..]));
        // A referer imitating the end of the context: `, referrer: "` twice can close at
        // either quote, but host before it is certain.
        let e = parse(
            &mut s,
            &format!(
                r#"{HEAD}x, client: 192.0.2.5, server: s, request: "GET / HTTP/1.1", host: "h", referrer: "a", host: "b""#
            ),
        );
        assert_eq!(get(&e, "client"), Some("192.0.2.5"));
        assert_eq!(get(&e, "ambiguous"), Some("true"));
        assert_eq!(get(&e, "request"), None);
        assert_eq!(get(&e, "host"), None);
        assert_eq!(get(&e, "referrer"), None);
        let e = parse(
            &mut s,
            &format!(
                r#"{HEAD}x, client: 192.0.2.5, server: s, request: "GET /", host: "x HTTP/1.1", host: "h""#
            ),
        );
        assert_eq!(get(&e, "ambiguous"), Some("true"));
        assert_eq!(get(&e, "client"), Some("192.0.2.5"));
        assert_eq!(get(&e, "request"), None);
        // An upstream after the referer: nginx writes it before the client's items.
        let e = parse(
            &mut s,
            &format!(
                r#"{HEAD}x, client: 192.0.2.5, server: s, request: "GET / HTTP/1.1", referrer: "a", upstream: "http://10.0.0.9/admin""#
            ),
        );
        assert_eq!(get(&e, "ambiguous"), Some("true"));
        assert_eq!(get(&e, "request"), None);
        assert_eq!(get(&e, "upstream"), None);
        // Items nginx itself writes first stay certain.
        let e = parse(
            &mut s,
            &format!(
                r#"{HEAD}x, client: 192.0.2.5, server: s, upstream: "http://10.0.0.2/", host: "h", host: "i""#
            ),
        );
        assert_eq!(get(&e, "upstream"), Some("http://10.0.0.2/"));
        assert_eq!(get(&e, "host"), None);
        assert_eq!(counted(&ctx, "tailward_ambiguous_lines_total"), 5);
    }

    #[test]
    fn a_record_that_is_not_nginx_s_is_counted_and_left_alone() {
        let (mut s, ctx) = stage();
        for line in [
            "",
            "2026/11/28 01:02:03 error 1#0: x",
            "2026-11-28 01:02:03 [error] 1#0: x",
            "2026/11/28 01:02:03 [error] 1: x",
            "PHP message: continuation",
        ] {
            let e = parse(&mut s, line);
            assert!(e.extracted.is_empty(), "{line}");
        }
        assert_eq!(counted(&ctx, "tailward_unparsed_lines_total"), 5);
    }

    #[test]
    fn structured_metadata_attaches_the_default_set() {
        let ctx = BuildContext::new("nginx", Arc::new(Metrics::new()));
        let mut s = NginxErrorStage::new(
            &NginxErrorConfig {
                structured_metadata: Some(MetadataFields::Defaults(true)),
                ..NginxErrorConfig::default()
            },
            &ctx,
        )
        .unwrap();
        let e = parse(
            &mut s,
            &format!(
                r#"{HEAD}x, client: 192.0.2.5, server: s, request: "GET / HTTP/1.1", host: "h""#
            ),
        );
        let mut sm = e.structured_metadata.clone();
        sm.sort();
        let want: Vec<(String, String)> = [
            ("client", "192.0.2.5"),
            ("connection_id", "5"),
            ("host", "h"),
            ("request", "GET / HTTP/1.1"),
            ("server", "s"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(sm, want);
    }

    /// Text a client controls, aimed at the context's own words.
    fn hostile() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex(
            r#"([" ,:a-z0-9./]|, client: 6\.6\.6\.6|, server: |, host: "|, referrer: "|, upstream: "|", |é){0,20}"#,
        )
        .expect("strategy")
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// However the request line and headers imitate the context, what is extracted is
        /// what nginx wrote, and the client is never one the text chose.
        #[test]
        fn hostile_context_text_is_never_misread(
            path in hostile(), host in hostile(), referer in hostile(), in_message in proptest::bool::ANY,
        ) {
            let (mut s, _) = stage();
            let request = format!("GET /{path} HTTP/1.1");
            let message = if in_message { format!("open() \"/srv/{path}\" failed") } else { "x".to_string() };
            let line = format!(
                r#"{HEAD}{message}, client: 192.0.2.5, server: s, request: "{request}", host: "{host}", referrer: "{referer}""#
            );
            let e = parse(&mut s, &line);
            if let Some(client) = get(&e, "client") {
                proptest::prop_assert_eq!(client, "192.0.2.5", "{}", line);
            }
            for (key, want) in [("request", request.as_str()), ("host", host.as_str()), ("referrer", referer.as_str())] {
                if let Some(got) = get(&e, key) {
                    proptest::prop_assert_eq!(got, want, "{} in {}", key, line);
                }
            }
        }

        #[test]
        fn no_record_panics(line in "\\PC{0,160}", head in proptest::bool::ANY) {
            let (mut s, _) = stage();
            let line = if head { format!("{HEAD}{line}") } else { line };
            let mut e = entry(&line, &[]);
            s.process(&mut e);
            proptest::prop_assert_eq!(e.line, line);
        }
    }
}
