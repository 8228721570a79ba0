//! Unit tests of the nginx_access stage, beside it to keep the stage's file readable.

use super::*;
use crate::metrics::Metrics;
use crate::pipeline::stages::testing::entry;
use std::sync::Arc;

fn stage(log_format: Option<&str>, escape: Option<&str>) -> (NginxAccessStage, BuildContext) {
    let ctx = BuildContext::new("nginx", Arc::new(Metrics::new()));
    let cfg = NginxAccessConfig {
        log_format: log_format.map(str::to_string),
        escape: escape.map(str::to_string),
        ..NginxAccessConfig::default()
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
            source: Some("msg".into()),
            ..NginxAccessConfig::default()
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

fn counted(ctx: &BuildContext, metric: &str) -> u64 {
    let text = ctx.metrics.render();
    let series = format!(r#"{metric}{{job="nginx",stage="nginx_access"}} "#);
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const TAIL: &str = r#"[28/Nov/2026:01:02:03 +0000] "GET /x HTTP/1.1" 200 5 "-" "ua""#;

#[test]
fn virtual_host_and_forwarded_prefixes_keep_the_peer_in_remote_addr() {
    let (mut s, ctx) = stage(None, None);
    for (prefix, host, port, forwarded, client) in [
        (
            "example.com 192.0.2.1",
            Some("example.com"),
            None,
            None,
            "192.0.2.1",
        ),
        (
            "shop.example.com:443 192.0.2.1",
            Some("shop.example.com"),
            Some("443"),
            None,
            "192.0.2.1",
        ),
        ("_ 192.0.2.1", Some("_"), None, None, "192.0.2.1"),
        (
            "\"203.0.113.9, 198.51.100.2\" 192.0.2.1",
            None,
            None,
            Some("203.0.113.9, 198.51.100.2"),
            "203.0.113.9",
        ),
        (
            "2001:db8::9, 10.0.0.1 192.0.2.1",
            None,
            None,
            Some("2001:db8::9, 10.0.0.1"),
            "2001:db8::9",
        ),
        ("- 192.0.2.1", None, None, None, "192.0.2.1"),
        ("\"-\" 192.0.2.1", None, None, None, "192.0.2.1"),
        // $proxy_add_x_forwarded_for: the forwarded list, then the peer.
        (
            "203.0.113.9, 10.0.0.2, 192.0.2.1",
            None,
            None,
            Some("203.0.113.9, 10.0.0.2"),
            "203.0.113.9",
        ),
    ] {
        let line = format!("{prefix} - - {TAIL}");
        let e = parse(&mut s, &line);
        assert_eq!(get(&e, "remote_addr"), Some("192.0.2.1"), "{line}");
        assert_eq!(get(&e, "host"), host, "{line}");
        assert_eq!(get(&e, "server_port"), port, "{line}");
        assert_eq!(get(&e, "http_x_forwarded_for"), forwarded, "{line}");
        assert_eq!(get(&e, "client_ip"), Some(client), "{line}");
        assert_eq!(get(&e, "status"), Some("200"), "{line}");
        assert_eq!(get(&e, "ambiguous"), None, "{line}");
    }
    assert_eq!(counted(&ctx, "tailward_unparsed_lines_total"), 0);
    // Two names, a name with a space, a port without a host: no form fits.
    for prefix in [
        "example.com other.example 192.0.2.1",
        "ex ample.com 192.0.2.1",
        ":443 192.0.2.1",
        "192.0.2.1 192.0.2.2 192.0.2.3",
    ] {
        let e = parse(&mut s, &format!("{prefix} - - {TAIL}"));
        assert_eq!(get(&e, "remote_addr"), None, "{prefix}");
        assert_eq!(get(&e, "status"), None, "{prefix}");
    }
    assert_eq!(counted(&ctx, "tailward_unparsed_lines_total"), 4);
}

#[test]
fn a_custom_format_is_read_exactly_as_written() {
    let (mut s, ctx) = stage(Some("$remote_addr - [$time_local] $status"), None);
    parse(
        &mut s,
        "example.com 192.0.2.1 - [28/Nov/2026:01:02:03 +0000] 200",
    );
    assert_eq!(counted(&ctx, "tailward_unparsed_lines_total"), 1);
}

#[test]
fn a_line_that_does_not_match_its_format_is_rejected_whole_not_half_read() {
    let (mut s, ctx) = stage(None, None);
    for line in [
        // Cut short after the referer.
        r#"192.0.2.1 - - [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5 "-""#,
        // Text glued to the last quote, not a new field.
        r#"192.0.2.1 - - [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"x"#,
        // An Apache ident field where nginx writes `-`.
        r#"192.0.2.1 ident bob [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5 "-" "ua""#,
        // A host name where the address goes.
        r#"localhost - - [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5 "-" "ua""#,
        // No status.
        r#"192.0.2.1 - - [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" - 5 "-" "ua""#,
        // A bad time.
        r#"192.0.2.1 - - [28/Nov/2026 01:02:03] "GET / HTTP/1.1" 200 5 "-" "ua""#,
        "",
        "-",
    ] {
        let e = parse(&mut s, line);
        let keys: Vec<&str> = e.extracted.iter().map(|(k, _)| k).collect();
        assert!(keys.is_empty(), "{line}: {keys:?}");
    }
    assert_eq!(counted(&ctx, "tailward_unparsed_lines_total"), 8);
    // A complete Common Log Format line is read by combined (and only a complete one).
    let e = parse(
        &mut s,
        r#"192.0.2.1 - bob [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.0" 200 5"#,
    );
    assert_eq!(get(&e, "remote_user"), Some("bob"));
    assert_eq!(get(&e, "body_bytes_sent"), Some("5"));
    assert_eq!(get(&e, "http_user_agent"), None);
}

#[test]
fn requests_that_are_not_http_give_no_method_or_path() {
    let (mut s, _) = stage(None, None);
    for (request, method, path, query, protocol) in [
        (
            r"\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03",
            None,
            None,
            None,
            None,
        ),
        (r"\x16\x03\x01 \x02\x00", None, None, None, None),
        ("-", None, None, None, None),
        ("/index.html", None, None, None, None),
        ("GET", None, None, None, None),
        ("get / HTTP/1.1", None, None, None, None),
        ("GET HTTP/1.1", None, None, None, None),
        ("GET /old", Some("GET"), Some("/old"), None, None),
        (
            "GET /a b HTTP/1.1",
            Some("GET"),
            Some("/a b"),
            None,
            Some("HTTP/1.1"),
        ),
        (
            "GET http://example.com:8080/p?q=1 HTTP/1.1",
            Some("GET"),
            Some("/p"),
            Some("q=1"),
            Some("HTTP/1.1"),
        ),
        (
            "GET http://example.com HTTP/1.1",
            Some("GET"),
            Some("/"),
            None,
            Some("HTTP/1.1"),
        ),
        (
            "CONNECT example.com:443 HTTP/1.1",
            Some("CONNECT"),
            None,
            None,
            Some("HTTP/1.1"),
        ),
        (
            "OPTIONS * HTTP/1.1",
            Some("OPTIONS"),
            None,
            None,
            Some("HTTP/1.1"),
        ),
        ("PRI * HTTP/2.0", Some("PRI"), None, None, Some("HTTP/2.0")),
        (
            "GET /x HTTP/3",
            Some("GET"),
            Some("/x"),
            None,
            Some("HTTP/3"),
        ),
    ] {
        let line =
            format!(r#"192.0.2.1 - - [28/Nov/2026:01:02:03 +0000] "{request}" 400 150 "-" "-""#);
        let e = parse(&mut s, &line);
        assert_eq!(get(&e, "status"), Some("400"), "{request}");
        assert_eq!(get(&e, "remote_addr"), Some("192.0.2.1"), "{request}");
        assert_eq!(get(&e, "method"), method, "{request}");
        assert_eq!(get(&e, "path"), path, "{request}");
        assert_eq!(get(&e, "query"), query, "{request}");
        assert_eq!(get(&e, "protocol"), protocol, "{request}");
        if request != "-" {
            assert!(get(&e, "request").is_some(), "{request}");
        }
    }
}

#[test]
fn escaped_quotes_in_user_agents_decode_in_each_escape_mode() {
    let (mut s, _) = stage(None, None);
    let e = parse(
        &mut s,
        r#"192.0.2.1 - - [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5 "-" "say \x22hi\x22 \x5C o/""#,
    );
    assert_eq!(get(&e, "http_user_agent"), Some(r#"say "hi" \ o/"#));
    // Apache writes \" and \\.
    let e = parse(
        &mut s,
        r#"192.0.2.1 - - [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5 "-" "say \"hi\" \\ o/""#,
    );
    assert_eq!(get(&e, "http_user_agent"), Some(r#"say "hi" \ o/"#));
    assert_eq!(get(&e, "ambiguous"), None);
    let (mut json, _) = stage(
        Some(r#"escape=json '{"ip":"$remote_addr","ua":"$http_user_agent","status":$status}'"#),
        None,
    );
    let e = parse(
        &mut json,
        r#"{"ip":"192.0.2.1","ua":"say \"hi\", \"status\":500","status":200}"#,
    );
    assert_eq!(
        get(&e, "http_user_agent"),
        Some(r#"say "hi", "status":500"#)
    );
    assert_eq!(get(&e, "status"), Some("200"));
    // escape=none writes the quote itself: one more quote and the line reads two ways.
    let (mut none, ctx) = stage(None, Some("none"));
    let e = parse(
        &mut none,
        r#"192.0.2.1 - - [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5 "-" "say "hi"""#,
    );
    assert_eq!(get(&e, "http_user_agent"), Some(r#"say "hi""#));
    assert_eq!(get(&e, "ambiguous"), None);
    assert_eq!(counted(&ctx, "tailward_ambiguous_lines_total"), 0);
}

#[test]
fn an_ambiguous_line_keeps_only_what_every_reading_agrees_on_and_is_counted() {
    let (mut s, ctx) = stage(None, Some("none"));
    // The referer holds `" "`: it may end there, or the user agent may.
    let e = parse(
        &mut s,
        r#"192.0.2.1 - - [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5 "https://a/" "x" "curl""#,
    );
    assert_eq!(get(&e, "ambiguous"), Some("true"));
    assert_eq!(get(&e, "remote_addr"), Some("192.0.2.1"));
    assert_eq!(get(&e, "status"), Some("200"));
    assert_eq!(get(&e, "body_bytes_sent"), Some("5"));
    assert_eq!(get(&e, "http_referer"), None);
    assert_eq!(get(&e, "http_user_agent"), None);
    // A user name imitating the rest of a line: nothing after it is certain.
    let e = parse(
        &mut s,
        r#"192.0.2.1 - bob [01/Jan/2020:00:00:00 +0000] "GET /fake HTTP/1.1" 200 0 "-" "-" [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" 403 5 "-" "ua""#,
    );
    assert_eq!(get(&e, "ambiguous"), Some("true"));
    assert_eq!(get(&e, "remote_addr"), Some("192.0.2.1"));
    assert_eq!(get(&e, "remote_user"), None);
    assert_eq!(get(&e, "status"), None);
    assert_eq!(counted(&ctx, "tailward_ambiguous_lines_total"), 2);
    // With nginx's default escaping the same user name cannot hold a quote, so the line
    // has one reading: the real one.
    let (mut d, dctx) = stage(None, None);
    let e = parse(
        &mut d,
        r#"192.0.2.1 - bob [01/Jan/2020:00:00:00 +0000] \x22GET /fake HTTP/1.1\x22 200 0 [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" 403 5 "-" "ua""#,
    );
    assert_eq!(get(&e, "ambiguous"), None);
    assert_eq!(get(&e, "time_local"), Some("28/Nov/2026:01:02:03 +0000"));
    assert_eq!(get(&e, "status"), Some("403"));
    assert_eq!(
        get(&e, "remote_user"),
        Some(r#"bob [01/Jan/2020:00:00:00 +0000] "GET /fake HTTP/1.1" 200 0"#)
    );
    assert_eq!(counted(&dctx, "tailward_ambiguous_lines_total"), 0);
}

#[test]
fn structured_metadata_attaches_the_default_set_or_the_named_fields() {
    let ctx = BuildContext::new("nginx", Arc::new(Metrics::new()));
    let format = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time $upstream_addr"#;
    let line = r#"192.0.2.1 - - [28/Nov/2026:01:02:03 +0000] "GET / HTTP/1.1" 200 5 "-" "ua" 0.004 10.0.0.5:80"#;
    let build = |choice: MetadataFields| {
        NginxAccessStage::new(
            &NginxAccessConfig {
                log_format: Some(format.into()),
                structured_metadata: Some(choice),
                ..NginxAccessConfig::default()
            },
            &ctx,
        )
    };
    let mut s = build(MetadataFields::Defaults(true)).unwrap();
    let e = parse(&mut s, line);
    let mut sm = e.structured_metadata.clone();
    sm.sort();
    assert_eq!(
        sm,
        [
            ("body_bytes_sent".to_string(), "5".to_string()),
            ("client_ip".to_string(), "192.0.2.1".to_string()),
            ("request_time".to_string(), "0.004".to_string()),
            ("upstream_addr".to_string(), "10.0.0.5:80".to_string()),
        ]
    );
    let mut s = build(MetadataFields::Names(vec!["status".into(), "path".into()])).unwrap();
    let e = parse(&mut s, line);
    assert_eq!(
        e.structured_metadata,
        [
            ("status".to_string(), "200".to_string()),
            ("path".to_string(), "/".to_string()),
        ]
    );
    let mut s = build(MetadataFields::Defaults(false)).unwrap();
    assert!(parse(&mut s, line).structured_metadata.is_empty());
    let err = build(MetadataFields::Names(vec!["bad-name".into()]))
        .err()
        .unwrap();
    assert_eq!(err.key, "structured_metadata[0]");
}

/// nginx's `ngx_http_log_escape` (escape=default): `"`, `\`, DEL, control and non-ASCII
/// bytes as `\xHH`.
fn nginx_escape(value: &[u8]) -> String {
    let mut out = String::new();
    for &b in value {
        if b < 0x20 || b == b'"' || b == b'\\' || b >= 0x7f {
            out.push_str(&format!("\\x{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// nginx's `ngx_escape_json` (escape=json).
fn json_escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Text a client controls, aimed at the format's own literals.
fn hostile() -> impl proptest::strategy::Strategy<Value = String> {
    proptest::string::string_regex(
        r#"([" \[\]\-:/\\0-9a-zA-Z.,]|\x22 |" "|\] "| - |\\x22|é|\t){0,24}"#,
    )
    .expect("strategy")
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Lines nginx writes with escape=default, every remote-controlled field hostile:
    /// each field reads back as written and the line has one reading.
    #[test]
    fn escaped_hostile_fields_never_move_other_fields(
        user in hostile(), target in hostile(), referer in hostile(), agent in hostile(),
        status in 100u16..600, bytes in 0u32..100000,
    ) {
        let (mut s, _) = stage(None, None);
        let user_field = if user.is_empty() { "-".to_string() } else { nginx_escape(user.as_bytes()) };
        let request = format!("GET /{target} HTTP/1.1");
        let line = format!(
            "198.51.100.7 - {user_field} [28/Nov/2026:01:02:03 +0000] \"{}\" {status} {bytes} \"{}\" \"{}\"",
            nginx_escape(request.as_bytes()),
            nginx_escape(referer.as_bytes()),
            nginx_escape(agent.as_bytes()),
        );
        let e = parse(&mut s, &line);
        proptest::prop_assert_eq!(get(&e, "ambiguous"), None, "{}", line);
        proptest::prop_assert_eq!(get(&e, "remote_addr"), Some("198.51.100.7"), "{}", line);
        let status_text = status.to_string();
        proptest::prop_assert_eq!(get(&e, "status"), Some(status_text.as_str()), "{}", line);
        let bytes_text = bytes.to_string();
        proptest::prop_assert_eq!(get(&e, "body_bytes_sent"), Some(bytes_text.as_str()));
        proptest::prop_assert_eq!(get(&e, "time_local"), Some("28/Nov/2026:01:02:03 +0000"));
        let absent = |v: &str| v.is_empty() || v == "-";
        if !absent(&agent) {
            proptest::prop_assert_eq!(get(&e, "http_user_agent"), Some(agent.as_str()));
        }
        if !absent(&referer) {
            proptest::prop_assert_eq!(get(&e, "http_referer"), Some(referer.as_str()));
        }
        if !absent(&user) {
            proptest::prop_assert_eq!(get(&e, "remote_user"), Some(user.as_str()));
        }
        proptest::prop_assert_eq!(get(&e, "request"), Some(request.as_str()));
    }

    /// The same with escape=json.
    #[test]
    fn json_escaped_hostile_fields_never_move_other_fields(
        target in hostile(), agent in hostile(), status in 100u16..600,
    ) {
        let (mut s, _) = stage(
            Some(r#"escape=json '{"ip":"$remote_addr","req":"$request","status":$status,"ua":"$http_user_agent"}'"#),
            None,
        );
        let request = format!("GET /{target} HTTP/1.1");
        let line = format!(
            r#"{{"ip":"198.51.100.7","req":"{}","status":{status},"ua":"{}"}}"#,
            json_escape(&request),
            json_escape(&agent),
        );
        let e = parse(&mut s, &line);
        proptest::prop_assert_eq!(get(&e, "ambiguous"), None, "{}", line);
        proptest::prop_assert_eq!(get(&e, "remote_addr"), Some("198.51.100.7"));
        let status_text = status.to_string();
        proptest::prop_assert_eq!(get(&e, "status"), Some(status_text.as_str()));
        proptest::prop_assert_eq!(get(&e, "request"), Some(request.as_str()));
        if !agent.is_empty() && agent != "-" {
            proptest::prop_assert_eq!(get(&e, "http_user_agent"), Some(agent.as_str()));
        }
    }

    /// With escape=none a hostile field may make a line ambiguous, but what is extracted
    /// is always what nginx wrote: the peer address above all.
    #[test]
    fn unescaped_hostile_fields_are_never_misread(
        user in hostile(), target in hostile(), referer in hostile(), agent in hostile(),
    ) {
        let (mut s, _) = stage(None, Some("none"));
        let user_field = if user.is_empty() { "-".to_string() } else { user.clone() };
        let request = format!("GET /{target} HTTP/1.1");
        let line = format!(
            "198.51.100.7 - {user_field} [28/Nov/2026:01:02:03 +0000] \"{request}\" 404 7 \"{referer}\" \"{agent}\""
        );
        let e = parse(&mut s, &line);
        if get(&e, "status").is_some() || get(&e, "ambiguous").is_some() {
            proptest::prop_assert_eq!(get(&e, "remote_addr"), Some("198.51.100.7"), "{}", line);
        }
        for (key, want) in [
            ("remote_user", user.as_str()),
            ("request", request.as_str()),
            ("http_referer", referer.as_str()),
            ("http_user_agent", agent.as_str()),
            ("status", "404"),
            ("body_bytes_sent", "7"),
            ("time_local", "28/Nov/2026:01:02:03 +0000"),
        ] {
            if let Some(got) = get(&e, key) {
                proptest::prop_assert_eq!(got, want, "{} in {}", key, line);
            }
        }
    }

    /// No line panics or stalls any format, in any escape mode.
    #[test]
    fn no_line_panics_any_format(line in "\\PC{0,120}", which in 0usize..6, esc in 0usize..3) {
        let formats = [
            None,
            Some("main"),
            Some("$status$body_bytes_sent$request_time"),
            Some("$a$b \"$c\"$d"),
            Some(r#"$remote_addr [$time_iso8601] "$request" $status $upstream_addr $upstream_response_time"#),
            Some("$proxy_add_x_forwarded_for \"$request\""),
        ];
        let escape = [None, Some("json"), Some("none")][esc];
        let (mut s, _) = stage(formats[which], escape);
        let mut e = entry(&line, &[]);
        s.process(&mut e);
        proptest::prop_assert_eq!(e.line, line);
    }
}

#[test]
fn adjacent_variables_never_split_a_character_and_free_text_ones_are_ambiguous() {
    let (mut s, _) = stage(Some("$status$a"), None);
    let e = parse(&mut s, "404é");
    assert_eq!(get(&e, "status"), Some("404"));
    assert_eq!(get(&e, "a"), Some("é"));
    // Two free-text variables side by side split anywhere: nothing is certain.
    let (mut s, ctx) = stage(Some("$a$b"), None);
    let e = parse(&mut s, "éé");
    assert_eq!(get(&e, "ambiguous"), Some("true"));
    assert_eq!(get(&e, "a"), None);
    assert_eq!(counted(&ctx, "tailward_ambiguous_lines_total"), 1);
}
