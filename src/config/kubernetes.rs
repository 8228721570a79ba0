//! `kubernetes_sd_configs`: Prometheus' Kubernetes service discovery as Promtail reads it
//! (`discovery/kubernetes` `SDConfig`), with its validation.
//!
//! Owns the keys, their defaults and the checks Prometheus makes when it reads them
//! (role, selector roles and syntax, which auth settings go together). It must not talk to
//! an API server: [`crate::sources::kubernetes`] does.

use serde::{Deserialize, Serialize};

use super::{Authorization, BasicAuth, TlsConfig};

/// One `kubernetes_sd_configs` entry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesSdConfig {
    /// `pod`, `node`, `service`, `endpoints`, `endpointslice` or `ingress`; required.
    pub role: String,
    /// The API server's URL; empty means in-cluster (or `kubeconfig_file`).
    pub api_server: String,
    /// A kubeconfig whose current context names the server and the credentials.
    pub kubeconfig_file: String,
    pub namespaces: NamespaceDiscovery,
    pub selectors: Vec<SelectorConfig>,
    pub attach_metadata: AttachMetadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    pub bearer_token: String,
    pub bearer_token_file: String,
    pub tls_config: TlsConfig,
    pub follow_redirects: bool,
    pub enable_http2: bool,
}

impl Default for KubernetesSdConfig {
    fn default() -> Self {
        Self {
            role: String::new(),
            api_server: String::new(),
            kubeconfig_file: String::new(),
            namespaces: NamespaceDiscovery::default(),
            selectors: Vec::new(),
            attach_metadata: AttachMetadata::default(),
            basic_auth: None,
            authorization: None,
            bearer_token: String::new(),
            bearer_token_file: String::new(),
            tls_config: TlsConfig::default(),
            // Prometheus' DefaultHTTPClientConfig.
            follow_redirects: true,
            enable_http2: true,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceDiscovery {
    /// The namespace the agent's own pod runs in (read from the service account).
    pub own_namespace: bool,
    pub names: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectorConfig {
    pub role: String,
    pub label: String,
    pub field: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachMetadata {
    pub node: bool,
}

/// The roles Prometheus knows.
pub const ROLES: &[&str] = &[
    "pod",
    "node",
    "service",
    "endpoints",
    "endpointslice",
    "ingress",
];

impl KubernetesSdConfig {
    /// Whether any HTTP client setting differs from Prometheus' default client.
    fn custom_http_client(&self) -> bool {
        self.basic_auth.is_some()
            || self.authorization.is_some()
            || !self.bearer_token.is_empty()
            || !self.bearer_token_file.is_empty()
            || !tls_is_default(&self.tls_config)
    }

    /// Prometheus' `SDConfig.UnmarshalYAML` checks; errors are (key inside the entry, what
    /// was expected).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let fail = |k: &str, m: String| Err((k.to_string(), m));
        if self.role.is_empty() {
            return fail(
                "role",
                "role missing (one of: pod, service, endpoints, endpointslice, node, ingress)"
                    .into(),
            );
        }
        if !ROLES.contains(&self.role.as_str()) {
            return fail(
                "role",
                format!(
                    "unknown Kubernetes SD role {:?}; expected one of: pod, service, endpoints, \
                     endpointslice, node, ingress",
                    self.role
                ),
            );
        }
        if !self.api_server.is_empty() {
            match reqwest::Url::parse(&self.api_server) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return fail(
                        "api_server",
                        format!("expected an http or https URL, got {:?}", self.api_server),
                    );
                }
            }
        }
        if !self.api_server.is_empty() && !self.kubeconfig_file.is_empty() {
            return fail(
                "kubeconfig_file",
                "cannot use 'kubeconfig_file' and 'api_server' simultaneously".into(),
            );
        }
        if !self.kubeconfig_file.is_empty() && self.custom_http_client() {
            return fail(
                "kubeconfig_file",
                "cannot use a custom HTTP client configuration together with 'kubeconfig_file'"
                    .into(),
            );
        }
        if self.api_server.is_empty()
            && self.kubeconfig_file.is_empty()
            && self.custom_http_client()
        {
            return fail(
                "api_server",
                "to use custom HTTP client configuration please provide the 'api_server' URL \
                 explicitly"
                    .into(),
            );
        }
        if self.namespaces.own_namespace
            && (!self.api_server.is_empty() || !self.kubeconfig_file.is_empty())
        {
            return fail(
                "namespaces.own_namespace",
                "cannot use 'namespaces.own_namespace' with 'api_server' or 'kubeconfig_file': \
                 the own namespace is read from the in-cluster service account"
                    .into(),
            );
        }
        if !self.bearer_token.is_empty() && !self.bearer_token_file.is_empty() {
            return fail(
                "bearer_token_file",
                "at most one of bearer_token and bearer_token_file".into(),
            );
        }
        let bearer = !self.bearer_token.is_empty() || !self.bearer_token_file.is_empty();
        if self.basic_auth.is_some() && (bearer || self.authorization.is_some()) {
            return fail(
                "basic_auth",
                "at most one of basic_auth, authorization and bearer_token may be configured"
                    .into(),
            );
        }
        if let Some(a) = &self.authorization {
            if bearer {
                return fail(
                    "authorization",
                    "authorization is not compatible with bearer_token & bearer_token_file".into(),
                );
            }
            if !a.credentials.is_empty() && !a.credentials_file.is_empty() {
                return fail(
                    "authorization.credentials_file",
                    "at most one of credentials and credentials_file".into(),
                );
            }
            if a.kind.eq_ignore_ascii_case("basic") {
                return fail(
                    "authorization.type",
                    "authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
                        .into(),
                );
            }
        }
        if let Some(b) = &self.basic_auth
            && !b.password.is_empty()
            && !b.password_file.is_empty()
        {
            return fail(
                "basic_auth.password_file",
                "at most one of password and password_file".into(),
            );
        }
        let mut seen = Vec::new();
        for (i, s) in self.selectors.iter().enumerate() {
            let at = |k: &str| format!("selectors[{i}].{k}");
            let allowed: &[&str] = match self.role.as_str() {
                "endpoints" => &["pod", "service", "endpoints"],
                "endpointslice" => &["pod", "service", "endpointslice"],
                r => &[r][..],
            };
            if !allowed.contains(&s.role.as_str()) {
                return Err((
                    at("role"),
                    format!(
                        "{} role supports only {} selectors, found {:?}",
                        self.role,
                        allowed.join(", "),
                        s.role
                    ),
                ));
            }
            if seen.contains(&s.role.as_str()) {
                return Err((at("role"), format!("duplicated selector role: {}", s.role)));
            }
            seen.push(s.role.as_str());
            parse_label_selector(&s.label).map_err(|e| (at("label"), e))?;
            parse_field_selector(&s.field).map_err(|e| (at("field"), e))?;
        }
        Ok(())
    }
}

fn tls_is_default(t: &TlsConfig) -> bool {
    t.ca.is_empty()
        && t.ca_file.is_empty()
        && t.cert.is_empty()
        && t.cert_file.is_empty()
        && t.key.is_empty()
        && t.key_file.is_empty()
        && t.server_name.is_empty()
        && !t.insecure_skip_verify
        && t.min_version.is_empty()
        && t.max_version.is_empty()
}

/// One requirement of a field selector: `key=value`, `key==value` or `key!=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub key: String,
    pub equal: bool,
    pub value: String,
}

/// Parses a field selector as `k8s.io/apimachinery/pkg/fields.ParseSelector` does: terms
/// separated by `,`, each `key=value`, `key==value` or `key!=value`, with `\` escaping `,`,
/// `=`, `!` and `\` in values.
pub fn parse_field_selector(s: &str) -> Result<Vec<FieldRequirement>, String> {
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    for term in split_unescaped(s, ',') {
        let (key, equal, raw) = if let Some(p) = find_unescaped(&term, "!=") {
            (&term[..p], false, &term[p + 2..])
        } else if let Some(p) = find_unescaped(&term, "==") {
            (&term[..p], true, &term[p + 2..])
        } else if let Some(p) = find_unescaped(&term, "=") {
            (&term[..p], true, &term[p + 1..])
        } else {
            return Err(format!(
                "invalid field selector {s:?}: {term:?} is not key=value, key==value or key!=value"
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("invalid field selector {s:?}: empty field name"));
        }
        let value = unescape(raw).map_err(|e| format!("invalid field selector {s:?}: {e}"))?;
        out.push(FieldRequirement {
            key: key.to_string(),
            equal,
            value,
        });
    }
    Ok(out)
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    parts.push(cur);
    parts
}

fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if s[i..].starts_with(pat) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=' | '!')) => out.push(e),
                Some(e) => return Err(format!("invalid escape sequence \\{e}")),
                None => return Err("a value ends in an unfinished escape".into()),
            }
        } else if matches!(c, ',' | '=') {
            return Err(format!("unescaped {c:?} in value {s:?}"));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelRequirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// Parses a label selector with `k8s.io/apimachinery/pkg/labels.Parse`'s grammar:
/// `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`, separated
/// by commas; keys are qualified names (`prefix/name`), values label values.
pub fn parse_label_selector(s: &str) -> Result<Vec<LabelRequirement>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    if rest.is_empty() {
        return Ok(out);
    }
    let bad = |why: &str| format!("unable to parse requirement in label selector {s:?}: {why}");
    loop {
        rest = rest.trim_start();
        let negated = rest.starts_with('!');
        if negated {
            rest = rest[1..].trim_start();
        }
        let key_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
            .unwrap_or(rest.len());
        let key = &rest[..key_len];
        check_label_key(key).map_err(|e| bad(&e))?;
        rest = rest[key_len..].trim_start();
        let req = if negated {
            LabelRequirement::NotExists(key.into())
        } else if rest.is_empty() || rest.starts_with(',') {
            LabelRequirement::Exists(key.into())
        } else if let Some(r) = rest.strip_prefix("!=") {
            let (v, r) = take_value(r);
            check_label_value(v).map_err(|e| bad(&e))?;
            rest = r;
            LabelRequirement::NotEquals(key.into(), v.into())
        } else if let Some(r) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
            let (v, r) = take_value(r);
            check_label_value(v).map_err(|e| bad(&e))?;
            rest = r;
            LabelRequirement::Equals(key.into(), v.into())
        } else if let Some(r) = rest
            .strip_prefix("notin")
            .filter(|r| r.starts_with([' ', '(']))
        {
            let (vs, r) = take_set(r).map_err(|e| bad(&e))?;
            rest = r;
            LabelRequirement::NotIn(key.into(), vs)
        } else if let Some(r) = rest
            .strip_prefix("in")
            .filter(|r| r.starts_with([' ', '(']))
        {
            let (vs, r) = take_set(r).map_err(|e| bad(&e))?;
            rest = r;
            LabelRequirement::In(key.into(), vs)
        } else {
            return Err(bad(&format!("unexpected {rest:?} after key {key:?}")));
        };
        out.push(req);
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(out);
        }
        match rest.strip_prefix(',') {
            Some(r) => rest = r,
            None => return Err(bad(&format!("expected ',' before {rest:?}"))),
        }
    }
}

fn take_value(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s.find([',', ' ', ')', '(']).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn take_set(s: &str) -> Result<(Vec<String>, &str), String> {
    let s = s.trim_start();
    let Some(inner) = s.strip_prefix('(') else {
        return Err("expected '(' to open a set of values".into());
    };
    let Some(close) = inner.find(')') else {
        return Err("expected ')' to close a set of values".into());
    };
    let values: Vec<String> = inner[..close]
        .split(',')
        .map(|v| v.trim().to_string())
        .collect();
    for v in &values {
        check_label_value(v)?;
    }
    Ok((values, &inner[close + 1..]))
}

fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let dns = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !dns {
            return Err(format!(
                "prefix part of key {key:?} must be a DNS subdomain (lower case)"
            ));
        }
    }
    if !is_qualified_name_part(name) {
        return Err(format!(
            "name part of key {key:?} must be 1-63 characters of [A-Za-z0-9_.-], starting and \
             ending with an alphanumeric character"
        ));
    }
    Ok(())
}

fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_qualified_name_part(v) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {v:?}: must be empty or 1-63 characters of [A-Za-z0-9_.-], \
             starting and ending with an alphanumeric character"
        ))
    }
}

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd(role: &str) -> KubernetesSdConfig {
        KubernetesSdConfig {
            role: role.into(),
            ..Default::default()
        }
    }

    #[test]
    fn label_selectors_parse_with_the_api_servers_grammar() {
        assert_eq!(
            parse_label_selector("app=web, tier in (a,b),!legacy, env!=dev,x").unwrap(),
            vec![
                LabelRequirement::Equals("app".into(), "web".into()),
                LabelRequirement::In("tier".into(), vec!["a".into(), "b".into()]),
                LabelRequirement::NotExists("legacy".into()),
                LabelRequirement::NotEquals("env".into(), "dev".into()),
                LabelRequirement::Exists("x".into()),
            ]
        );
        assert_eq!(
            parse_label_selector("app.kubernetes.io/name notin (x)").unwrap(),
            vec![LabelRequirement::NotIn(
                "app.kubernetes.io/name".into(),
                vec!["x".into()]
            )]
        );
        for bad in [
            "app=",
            "=x",
            "app=x y",
            "tier in a,b",
            "Bad.Prefix/x=1",
            "a=b,",
            "-a=b",
        ] {
            if bad == "app=" {
                // An empty value is a valid label value.
                assert!(parse_label_selector(bad).is_ok());
                continue;
            }
            assert!(parse_label_selector(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn field_selectors_parse_with_escapes() {
        assert_eq!(
            parse_field_selector("spec.nodeName=node-1,status.phase!=Failed").unwrap(),
            vec![
                FieldRequirement {
                    key: "spec.nodeName".into(),
                    equal: true,
                    value: "node-1".into()
                },
                FieldRequirement {
                    key: "status.phase".into(),
                    equal: false,
                    value: "Failed".into()
                },
            ]
        );
        assert_eq!(
            parse_field_selector(r"metadata.name==a\,b").unwrap()[0].value,
            "a,b"
        );
        assert!(parse_field_selector("spec.nodeName").is_err());
        assert!(parse_field_selector("=x").is_err());
    }

    #[test]
    fn prometheus_combination_rules_are_enforced() {
        assert!(sd("").validate().is_err());
        assert!(sd("pods").validate().is_err());
        assert!(sd("pod").validate().is_ok());
        let mut c = sd("pod");
        c.api_server = "https://k:6443".into();
        c.kubeconfig_file = "/k".into();
        assert_eq!(c.validate().unwrap_err().0, "kubeconfig_file");
        let mut c = sd("pod");
        c.bearer_token = "t".into();
        assert_eq!(c.validate().unwrap_err().0, "api_server");
        let mut c = sd("pod");
        c.namespaces.own_namespace = true;
        c.api_server = "http://k".into();
        assert_eq!(c.validate().unwrap_err().0, "namespaces.own_namespace");
        let mut c = sd("endpoints");
        c.selectors = vec![
            SelectorConfig {
                role: "pod".into(),
                label: "app=x".into(),
                ..Default::default()
            },
            SelectorConfig {
                role: "node".into(),
                ..Default::default()
            },
        ];
        assert_eq!(c.validate().unwrap_err().0, "selectors[1].role");
        c.selectors[1].role = "pod".into();
        assert!(c.validate().unwrap_err().1.contains("duplicated"));
        c.selectors.truncate(1);
        c.selectors[0].label = "app in x".into();
        assert_eq!(c.validate().unwrap_err().0, "selectors[0].label");
    }
}
