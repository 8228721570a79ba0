//! Where the API server is and how to prove who we are to it: `api_server` with the inline
//! HTTP client settings, a `kubeconfig_file`'s current context, or the in-cluster service
//! account (client-go's `InClusterConfig`).
//!
//! Owns reading those settings and files into a [`Connection`] and the credential sent on
//! each request (token files are re-read, as client-go re-reads a rotated service-account
//! token). It must not list or watch anything.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use crate::config::kubernetes::KubernetesSdConfig;
use crate::config::{BasicAuth, TlsConfig};

/// Where client-go reads the in-cluster service account.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The credential sent with each request.
#[derive(Clone, Debug)]
pub enum Credential {
    None,
    /// `Authorization: <kind> <token>`; `file` is re-read on every request when set.
    Token {
        kind: String,
        token: String,
        file: Option<PathBuf>,
    },
    Basic {
        username: String,
        password: String,
        password_file: Option<PathBuf>,
    },
}

impl Credential {
    /// The `Authorization` header value, reading a token file now.
    pub fn header(&self) -> Result<Option<String>, String> {
        match self {
            Credential::None => Ok(None),
            Credential::Token { kind, token, file } => {
                let token = match file {
                    Some(f) => std::fs::read_to_string(f)
                        .map_err(|e| format!("cannot read token file {}: {e}", f.display()))?
                        .trim()
                        .to_string(),
                    None => token.clone(),
                };
                Ok(Some(format!("{kind} {token}")))
            }
            Credential::Basic {
                username,
                password,
                password_file,
            } => {
                let password = match password_file {
                    Some(f) => std::fs::read_to_string(f)
                        .map_err(|e| format!("cannot read password file {}: {e}", f.display()))?
                        .trim_end_matches('\n')
                        .to_string(),
                    None => password.clone(),
                };
                let raw = format!("{username}:{password}");
                Ok(Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )))
            }
        }
    }
}

/// A resolved API server connection.
#[derive(Clone, Debug)]
pub struct Connection {
    /// `https://host:port` (no trailing slash).
    pub base: String,
    pub tls: TlsConfig,
    pub credential: Credential,
    /// The namespace of `own_namespace` (in-cluster only).
    pub own_namespace: Option<String>,
    pub follow_redirects: bool,
}

impl Connection {
    /// Resolves `sd`'s connection; errors name the setting or file at fault.
    pub fn resolve(sd: &KubernetesSdConfig) -> Result<Connection, String> {
        if !sd.kubeconfig_file.is_empty() {
            return from_kubeconfig(Path::new(&sd.kubeconfig_file));
        }
        if sd.api_server.is_empty() {
            return in_cluster(
                Path::new(SERVICE_ACCOUNT_DIR),
                std::env::var("KUBERNETES_SERVICE_HOST").ok(),
                std::env::var("KUBERNETES_SERVICE_PORT").ok(),
                sd.namespaces.own_namespace,
            );
        }
        let credential = if let Some(b) = &sd.basic_auth {
            basic(b)
        } else if let Some(a) = &sd.authorization {
            let kind = if a.kind.is_empty() {
                "Bearer".to_string()
            } else {
                a.kind.clone()
            };
            Credential::Token {
                kind,
                token: a.credentials.clone(),
                file: (!a.credentials_file.is_empty()).then(|| PathBuf::from(&a.credentials_file)),
            }
        } else if !sd.bearer_token.is_empty() || !sd.bearer_token_file.is_empty() {
            Credential::Token {
                kind: "Bearer".into(),
                token: sd.bearer_token.clone(),
                file: (!sd.bearer_token_file.is_empty())
                    .then(|| PathBuf::from(&sd.bearer_token_file)),
            }
        } else {
            Credential::None
        };
        let connection = Connection {
            base: sd.api_server.trim_end_matches('/').to_string(),
            tls: sd.tls_config.clone(),
            credential,
            own_namespace: None,
            follow_redirects: sd.follow_redirects,
        };
        // A token file that cannot be read is a config error now, not a retry loop later.
        connection.credential.header()?;
        Ok(connection)
    }
}

fn basic(b: &BasicAuth) -> Credential {
    let username = if b.username_file.is_empty() {
        b.username.clone()
    } else {
        std::fs::read_to_string(&b.username_file)
            .map(|s| s.trim_end_matches('\n').to_string())
            .unwrap_or_default()
    };
    Credential::Basic {
        username,
        password: b.password.clone(),
        password_file: (!b.password_file.is_empty()).then(|| PathBuf::from(&b.password_file)),
    }
}

/// client-go's `InClusterConfig`: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`,
/// the service account's token (re-read) and CA.
pub fn in_cluster(
    dir: &Path,
    host: Option<String>,
    port: Option<String>,
    own_namespace: bool,
) -> Result<Connection, String> {
    let (Some(host), Some(port)) = (
        host.filter(|h| !h.is_empty()),
        port.filter(|p| !p.is_empty()),
    ) else {
        return Err(
            "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and \
             KUBERNETES_SERVICE_PORT must be defined (or set api_server or kubeconfig_file)"
                .into(),
        );
    };
    let token = dir.join("token");
    if let Err(e) = std::fs::metadata(&token) {
        return Err(format!(
            "unable to load in-cluster configuration: {}: {e}",
            token.display()
        ));
    }
    let ca = dir.join("ca.crt");
    let mut tls = TlsConfig::default();
    if ca.exists() {
        tls.ca_file = ca.display().to_string();
    }
    let own_namespace = if own_namespace {
        let f = dir.join("namespace");
        Some(
            std::fs::read_to_string(&f)
                .map_err(|e| format!("own_namespace: cannot read {}: {e}", f.display()))?
                .trim()
                .to_string(),
        )
    } else {
        None
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(Connection {
        base: format!("https://{host}:{port}"),
        tls,
        credential: Credential::Token {
            kind: "Bearer".into(),
            token: String::new(),
            file: Some(token),
        },
        own_namespace,
        follow_redirects: true,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Kubeconfig {
    #[serde(rename = "current-context")]
    current_context: String,
    clusters: Vec<Named<KubeCluster>>,
    users: Vec<Named<KubeUser>>,
    contexts: Vec<Named<KubeContext>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Named<T: Default> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: T,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct KubeCluster {
    server: String,
    certificate_authority: String,
    certificate_authority_data: String,
    insecure_skip_tls_verify: bool,
    tls_server_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct KubeUser {
    token: String,
    #[serde(rename = "tokenFile")]
    token_file: String,
    client_certificate: String,
    client_certificate_data: String,
    client_key: String,
    client_key_data: String,
    username: String,
    password: String,
    exec: Option<serde_json::Value>,
    auth_provider: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KubeContext {
    cluster: String,
    user: String,
}

/// The current context of a kubeconfig: its cluster's server and CA, its user's
/// credentials. Relative file paths are taken from the kubeconfig's directory, as kubectl
/// takes them.
pub fn from_kubeconfig(path: &Path) -> Result<Connection, String> {
    let at = |m: String| format!("kubeconfig_file {}: {m}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| at(format!("cannot read it: {e}")))?;
    let kc: Kubeconfig = crate::config::yaml::from_str(&text).map_err(|e| at(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let rel = |p: &str| -> String {
        if p.is_empty() || Path::new(p).is_absolute() {
            p.to_string()
        } else {
            dir.join(p).display().to_string()
        }
    };
    let b64 = |key: &str, v: &str| -> Result<String, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|e| at(format!("{key}: not base64: {e}")))?;
        String::from_utf8(bytes).map_err(|_| at(format!("{key}: not PEM text")))
    };
    if kc.current_context.is_empty() {
        return Err(at("no current-context".into()));
    }
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == kc.current_context)
        .ok_or_else(|| at(format!("context {:?} not found", kc.current_context)))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.value.cluster)
        .ok_or_else(|| at(format!("cluster {:?} not found", ctx.value.cluster)))?;
    let c = &cluster.value;
    if c.server.is_empty() {
        return Err(at(format!("cluster {:?} has no server", cluster.name)));
    }
    let mut tls = TlsConfig {
        ca_file: rel(&c.certificate_authority),
        insecure_skip_verify: c.insecure_skip_tls_verify,
        server_name: c.tls_server_name.clone(),
        ..TlsConfig::default()
    };
    if !c.certificate_authority_data.is_empty() {
        tls.ca = b64("certificate-authority-data", &c.certificate_authority_data)?;
        tls.ca_file.clear();
    }
    let mut credential = Credential::None;
    if !ctx.value.user.is_empty() {
        let user = kc
            .users
            .iter()
            .find(|u| u.name == ctx.value.user)
            .ok_or_else(|| at(format!("user {:?} not found", ctx.value.user)))?;
        let u = &user.value;
        if u.exec.is_some() || u.auth_provider.is_some() {
            return Err(at(format!(
                "user {:?}: exec and auth-provider credential plugins are not supported; use a \
                 token, tokenFile or client certificate",
                user.name
            )));
        }
        tls.cert_file = rel(&u.client_certificate);
        tls.key_file = rel(&u.client_key);
        if !u.client_certificate_data.is_empty() {
            tls.cert = b64("client-certificate-data", &u.client_certificate_data)?;
            tls.cert_file.clear();
        }
        if !u.client_key_data.is_empty() {
            tls.key = b64("client-key-data", &u.client_key_data)?;
            tls.key_file.clear();
        }
        if !u.token.is_empty() || !u.token_file.is_empty() {
            credential = Credential::Token {
                kind: "Bearer".into(),
                token: u.token.clone(),
                file: (u.token.is_empty()).then(|| PathBuf::from(rel(&u.token_file))),
            };
        } else if !u.username.is_empty() {
            credential = Credential::Basic {
                username: u.username.clone(),
                password: u.password.clone(),
                password_file: None,
            };
        }
    }
    let connection = Connection {
        base: c.server.trim_end_matches('/').to_string(),
        tls,
        credential,
        own_namespace: None,
        follow_redirects: true,
    };
    connection.credential.header().map_err(at)?;
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster_reads_the_service_account_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "tok-1\n").unwrap();
        std::fs::write(dir.path().join("ca.crt"), "pem").unwrap();
        std::fs::write(dir.path().join("namespace"), "logging").unwrap();
        let c = in_cluster(
            dir.path(),
            Some("10.96.0.1".into()),
            Some("443".into()),
            true,
        )
        .unwrap();
        assert_eq!(c.base, "https://10.96.0.1:443");
        assert_eq!(c.own_namespace.as_deref(), Some("logging"));
        assert!(c.tls.ca_file.ends_with("ca.crt"));
        assert_eq!(c.credential.header().unwrap().unwrap(), "Bearer tok-1");
        // A rotated token is what the next request sends.
        std::fs::write(dir.path().join("token"), "tok-2").unwrap();
        assert_eq!(c.credential.header().unwrap().unwrap(), "Bearer tok-2");
        let v6 = in_cluster(
            dir.path(),
            Some("fd00::1".into()),
            Some("6443".into()),
            false,
        );
        assert_eq!(v6.unwrap().base, "https://[fd00::1]:6443");
        assert!(in_cluster(dir.path(), None, Some("443".into()), false).is_err());
    }

    #[test]
    fn kubeconfig_current_context_gives_server_ca_and_token() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "secret\n").unwrap();
        let ca = base64::engine::general_purpose::STANDARD.encode("CA PEM");
        let kc = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: b\n\
             clusters:\n- name: c1\n  cluster:\n    server: https://a:6443/\n    certificate-authority-data: {ca}\n\
             - name: c2\n  cluster:\n    server: https://b:6443\n    certificate-authority: ca.pem\n\
             users:\n- name: u\n  user:\n    tokenFile: tok\n\
             contexts:\n- name: a\n  context: {{cluster: c1, user: u}}\n- name: b\n  context: {{cluster: c2, user: u, namespace: x}}\n"
        );
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            kc.replace("current-context: b", "current-context: a"),
        )
        .unwrap();
        let c = from_kubeconfig(&path).unwrap();
        assert_eq!(c.base, "https://a:6443");
        assert_eq!(c.tls.ca, "CA PEM");
        assert_eq!(c.credential.header().unwrap().unwrap(), "Bearer secret");
        std::fs::write(&path, &kc).unwrap();
        let c = from_kubeconfig(&path).unwrap();
        assert_eq!(c.base, "https://b:6443");
        assert_eq!(
            c.tls.ca_file,
            dir.path().join("ca.pem").display().to_string()
        );
        std::fs::write(
            &path,
            kc.replace("    tokenFile: tok", "    exec: {command: aws}"),
        )
        .unwrap();
        assert!(from_kubeconfig(&path).unwrap_err().contains("exec"));
    }
}
