//! The effective config as YAML with every secret replaced by `<secret>`, as Promtail prints
//! it for `-print-config-stderr` (and later `/config`).

use serde_yaml::Value;

use super::Config;

/// Keys whose non-empty values are secrets wherever they appear.
const SECRET_KEYS: [&str; 5] = [
    "password",
    "bearer_token",
    "credentials",
    "key",
    "client_secret",
];

pub fn redacted_yaml(config: &Config) -> Result<String, String> {
    let mut value = serde_yaml::to_value(config).map_err(|e| e.to_string())?;
    redact(&mut value);
    serde_yaml::to_string(&value).map_err(|e| e.to_string())
}

fn redact(v: &mut Value) {
    match v {
        Value::Mapping(map) => {
            for (k, child) in map.iter_mut() {
                let secret = k.as_str().is_some_and(|k| SECRET_KEYS.contains(&k));
                if secret && child.as_str().is_some_and(|s| !s.is_empty()) {
                    *child = Value::String("<secret>".into());
                } else {
                    redact(child);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(redact),
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
}
