//! The effective config as YAML with every secret replaced by `<secret>`, as Promtail prints
//! it for `-print-config-stderr` and serves it on `/config`.
//!
//! Secrets are found by key (passwords, tokens, credentials, key material), by header name
//! (`Authorization`, `Cookie`, anything naming a token, key, secret or password), and in URLs
//! (the password of `user:password@host`, and query parameters named like a secret, e.g.
//! `?token=` or `?api_key=`). File paths (`password_file`, `key_file`) stay.

use super::Config;
use super::yaml::{self, Tree};

/// Keys whose non-empty values are secrets wherever they appear.
const SECRET_KEYS: [&str; 10] = [
    "password",
    "bearer_token",
    "credentials",
    "key",
    "private_key",
    "client_secret",
    "secret",
    "token",
    "api_key",
    "sasl_password",
];

/// A header whose value is a secret, judged by its name.
fn secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization"
        || n == "proxy-authorization"
        || n == "cookie"
        || ["token", "key", "secret", "password", "auth"]
            .iter()
            .any(|w| n.contains(w))
}

/// A URL with the password of `user:password@host` and every secret-named query parameter
/// replaced; `None` when it holds no secret (or is no URL).
fn redact_url_password(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut changed = false;
    let mut out = format!("{scheme}://");
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, password)) if !password.is_empty() => {
                out.push_str(&format!("{user}:<secret>@{host}"));
                changed = true;
            }
            _ => out.push_str(authority),
        },
        None => out.push_str(authority),
    }
    let after = &rest[authority_end..];
    let (before_fragment, fragment) = match after.find('#') {
        Some(i) => after.split_at(i),
        None => (after, ""),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((name, value)) if !value.is_empty() && secret_header(name) => {
                        changed = true;
                        format!("{name}=<secret>")
                    }
                    _ => p.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(before_fragment),
    }
    out.push_str(fragment);
    changed.then_some(out)
}

pub fn redacted_yaml(config: &Config) -> Result<String, String> {
    let mut tree = yaml::to_tree(config).map_err(|e| e.to_string())?;
    redact(&mut tree);
    Ok(yaml::ser::emit(&tree))
}

fn redact(v: &mut Tree) {
    match v {
        Tree::Map(entries) => {
            for (key, child) in entries.iter_mut() {
                let secret = SECRET_KEYS.contains(&key.as_str());
                if secret && matches!(child, Tree::Str(s) if !s.is_empty()) {
                    *child = Tree::Str("<secret>".into());
                } else if key == "headers"
                    && let Tree::Map(headers) = child
                {
                    for (name, value) in headers.iter_mut() {
                        if secret_header(name) {
                            *value = Tree::Str("<secret>".into());
                        }
                    }
                } else {
                    redact(child);
                }
            }
        }
        Tree::Seq(items) => items.iter_mut().for_each(redact),
        Tree::Str(text) => {
            if let Some(redacted) = redact_url_password(text) {
                *text = redacted;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BasicAuth, ClientConfig};

    #[test]
    fn secrets_are_replaced_and_file_paths_kept() {
        let mut config = Config::default();
        let mut client = ClientConfig {
            url: "http://loki:3100/loki/api/v1/push".into(),
            bearer_token: "tok".into(),
            ..ClientConfig::default()
        };
        client.basic_auth = Some(BasicAuth {
            username: "u".into(),
            password: "hunter2".into(),
            password_file: "/etc/pw".into(),
            ..BasicAuth::default()
        });
        client.tls_config.key = "-----BEGIN PRIVATE KEY-----".into();
        config.clients.push(client);
        let text = redacted_yaml(&config).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("tok\n") && !text.contains("BEGIN"),
            "{text}"
        );
        assert!(text.contains("password: <secret>"));
        assert!(text.contains("password_file: /etc/pw"));
        assert!(text.contains("bearer_token: <secret>"));
    }

    #[test]
    fn url_passwords_and_auth_headers_are_replaced() {
        let mut config = Config::default();
        let mut client = ClientConfig {
            url: "https://loki-user:s3cr3t@loki.example/loki/api/v1/push".into(),
            proxy_url: "http://proxyuser:pr0xy@proxy:3128".into(),
            ..ClientConfig::default()
        };
        client
            .headers
            .insert("Authorization".into(), "Bearer abc".into());
        client.headers.insert("X-Api-Key".into(), "k3y".into());
        client
            .headers
            .insert("X-Scope-OrgID".into(), "tenant1".into());
        config.clients.push(client);
        config.clients.push(ClientConfig {
            url: "https://logs.example/loki/api/v1/push?X-Api-Token=qt0k&tenant=t1&api_key=qk3y"
                .into(),
            ..ClientConfig::default()
        });
        let text = redacted_yaml(&config).unwrap();
        assert!(text.contains("tenant=t1"), "{text}");
        for secret in ["s3cr3t", "pr0xy", "Bearer abc", "k3y", "qt0k", "qk3y"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("https://loki-user:<secret>@loki.example/loki/api/v1/push"));
        assert!(text.contains("X-Scope-OrgID: tenant1"), "{text}");
    }

    #[test]
    fn urls_without_a_password_are_kept() {
        assert_eq!(redact_url_password("http://loki:3100/push"), None);
        assert_eq!(redact_url_password("http://user@loki/push"), None);
        assert_eq!(
            redact_url_password("http://u:p@h:1/x?y=a@b").as_deref(),
            Some("http://u:<secret>@h:1/x?y=a@b")
        );
    }
}
