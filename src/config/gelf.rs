//! Promtail's `gelf:` scrape config: a UDP listener for GELF messages (Graylog Extended Log
//! Format, as Docker's `--log-driver gelf` sends them). Relabeling sees each message's fields
//! as `__gelf_message_*`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Promtail's default: every interface, GELF's registered port.
pub const GELF_DEFAULT_LISTEN_ADDRESS: &str = ":12201";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GelfTargetConfig {
    /// `host:port` (UDP); empty means `:12201`, as in Promtail.
    pub listen_address: String,
    pub labels: BTreeMap<String, String>,
    /// The message's `timestamp` (when non-zero) instead of the time it arrived.
    pub use_incoming_timestamp: bool,
}

impl Default for GelfTargetConfig {
    fn default() -> Self {
        Self {
            listen_address: GELF_DEFAULT_LISTEN_ADDRESS.into(),
            labels: BTreeMap::new(),
            use_incoming_timestamp: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Overrides, load_str};

    #[test]
    fn a_gelf_job_needs_no_files_and_defaults_as_promtail() {
        let config = load_str(
            "scrape_configs:\n  - job_name: g\n    gelf:\n      use_incoming_timestamp: true\n      labels: {job: gelf}\n",
            "FILE",
            &Overrides::default(),
        )
        .unwrap();
        let gelf = config.scrape_configs[0].gelf.as_ref().unwrap();
        assert_eq!(gelf.listen_address, ":12201");
        assert!(gelf.use_incoming_timestamp);
        assert_eq!(gelf.labels["job"], "gelf");
        let err = load_str(
            "scrape_configs:\n  - job_name: g\n    gelf:\n      listen_protocol: tcp\n",
            "FILE",
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.key_path.contains("listen_protocol"), "{err}");
    }
}
