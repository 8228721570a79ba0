//! HTTP request lines as nginx writes them in its logs (`$request` in the access log,
//! `request: "..."` in the error log): the line as the client sent it, so anything at all.
//! Read as nginx's parser reads one (ngx_http_parse_request_line): a method of `A-Z`, `_`
//! and `-`, a space, the target (nginx accepts spaces in it), and `HTTP/x` when the client
//! sent a version (HTTP/0.9 sends none).
//!
//! Owns splitting a request line; shared by the nginx parsing stages. It must not read
//! entries.

/// The parts of a request line.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    /// The path and query of an origin-form or absolute-form target.
    pub path_and_query: Option<&'a str>,
    pub protocol: Option<&'a str>,
}

/// Reads a request line as nginx's parser would have: a method of `A-Z`, `_` and `-`, then
/// the target, then `HTTP/x` when the client sent a version. `None` when it does not start
/// with a method followed by a target (`-`, a bare path, TLS or other binary bytes).
pub fn split_request(request: &str) -> Option<RequestLine<'_>> {
    let (method, rest) = request.split_once(' ')?;
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-')
    {
        return None;
    }
    let (target, protocol) = match rest.rsplit_once(' ') {
        Some((target, last)) if is_protocol(last) => (target, Some(last)),
        _ if is_protocol(rest) => return None,
        _ => (rest, None),
    };
    if target.is_empty() {
        return None;
    }
    let path_and_query = if target.starts_with('/') {
        Some(target)
    } else if let Some(after_scheme) = absolute_form(target) {
        // `http://host[:port]/path?query`: what follows the authority.
        let authority_end = after_scheme.find(['/', '?']).unwrap_or(after_scheme.len());
        let rest = &after_scheme[authority_end..];
        if rest.is_empty() {
            Some("/")
        } else if rest.starts_with('?') {
            None
        } else {
            Some(rest)
        }
    } else {
        // Authority form (`CONNECT host:443`), `*`, or junk: no path.
        None
    };
    Some(RequestLine {
        method,
        path_and_query,
        protocol,
    })
}

/// `HTTP/1.1`, `HTTP/2.0`, `HTTP/0.9`, `HTTP/3`.
fn is_protocol(s: &str) -> bool {
    s.strip_prefix("HTTP/").is_some_and(|v| {
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !v.starts_with('.')
    })
}

/// What follows `scheme://` in an absolute-form target.
fn absolute_form(target: &str) -> Option<&str> {
    let (scheme, rest) = target.split_once("://")?;
    (!scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
        split_request(request).map(|r| (r.method, r.path_and_query, r.protocol))
    }

    #[test]
    fn request_lines_split_as_nginx_parses_them() {
        assert_eq!(
            parts("GET /a?b HTTP/1.1"),
            Some(("GET", Some("/a?b"), Some("HTTP/1.1")))
        );
        assert_eq!(
            parts("GET /a b HTTP/1.0"),
            Some(("GET", Some("/a b"), Some("HTTP/1.0")))
        );
        assert_eq!(parts("GET /old"), Some(("GET", Some("/old"), None)));
        assert_eq!(
            parts("POST https://h.example:8443/p?q HTTP/2.0"),
            Some(("POST", Some("/p?q"), Some("HTTP/2.0")))
        );
        assert_eq!(
            parts("CONNECT h.example:443 HTTP/1.1"),
            Some(("CONNECT", None, Some("HTTP/1.1")))
        );
        for junk in [
            "",
            "-",
            "/index.html",
            "GET",
            "get / HTTP/1.1",
            "GET HTTP/1.1",
            r"\x16\x03\x01 x",
        ] {
            assert_eq!(parts(junk), None, "{junk}");
        }
    }
}
