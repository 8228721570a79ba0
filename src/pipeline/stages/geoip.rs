//! `geoip`: looks the IP address in extracted key `source` up in a MaxMind database (`db`, an
//! `.mmdb` file such as GeoLite2-City or GeoLite2-ASN) and sets what it finds as labels.
//!
//! `db_type: city` sets `geoip_city_name`, `geoip_country_name`, `geoip_continent_name`,
//! `geoip_continent_code`, `geoip_location_latitude`, `geoip_location_longitude`,
//! `geoip_postal_code`, `geoip_timezone`, and the most specific subdivision's
//! `geoip_subdivision_name` and `geoip_subdivision_code`; `db_type: asn` sets
//! `geoip_autonomous_system_number` and `geoip_autonomous_system_organization`. As in
//! Promtail: names are the English ones, empty values set nothing, latitude and longitude are
//! set together unless both are 0 and print as Go's `fmt.Sprint`, an IPv4-mapped IPv6 address
//! is looked up as IPv4, and an address that is missing, malformed or not in the database
//! leaves the entry unchanged. It must not touch anything but labels.
//!
//! The database is read into memory once, when the stage is built; a file that is missing or
//! not a MaxMind database is a config error at `db`. Deviations: `source` is required (without
//! it Promtail logs an error for every line), `db_type` must be `city` or `asn` and fit the
//! database's type (Promtail fails each lookup instead), and failed lookups are logged at
//! debug level rather than error level for every line.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

use maxminddb::{Reader, geoip2};
use serde::{Deserialize, Serialize};

use super::StageError;
use crate::model::labels::LabelSet;
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpConfig {
    /// Path of the `.mmdb` file.
    #[serde(default)]
    pub db: String,
    /// Extracted key holding the IP address.
    #[serde(default)]
    pub source: String,
    /// `city` or `asn`.
    #[serde(default)]
    pub db_type: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DbType {
    City,
    Asn,
}

pub struct GeoIpStage {
    reader: Reader<Vec<u8>>,
    source: String,
    db_type: DbType,
}

impl GeoIpStage {
    pub fn new(cfg: &GeoIpConfig) -> Result<Self, StageError> {
        if cfg.db.is_empty() {
            return Err(StageError::new(
                "db",
                "expected the path of a MaxMind database (.mmdb)",
            ));
        }
        if cfg.source.is_empty() {
            return Err(StageError::new(
                "source",
                "expected the extracted key holding the IP address",
            ));
        }
        let db_type = match cfg.db_type.as_str() {
            "city" => DbType::City,
            "asn" => DbType::Asn,
            other => {
                return Err(StageError::new(
                    "db_type",
                    format!("expected city or asn, got {other:?}"),
                ));
            }
        };
        let reader = Reader::open_readfile(&cfg.db).map_err(|e| {
            StageError::new(
                "db",
                format!("cannot open MaxMind database {:?}: {e}", cfg.db),
            )
        })?;
        let database_type = reader.metadata().database_type.to_ascii_lowercase();
        // The record layouts these lookups read; anything else would decode to nothing.
        let fits = match db_type {
            DbType::City => ["city", "country", "enterprise", "location"]
                .iter()
                .any(|t| database_type.contains(t)),
            DbType::Asn => ["asn", "isp"].iter().any(|t| database_type.contains(t)),
        };
        if !fits {
            return Err(StageError::new(
                "db_type",
                format!(
                    "{:?} is a {:?} database, which has no {} records",
                    cfg.db,
                    reader.metadata().database_type,
                    cfg.db_type
                ),
            ));
        }
        Ok(Self {
            reader,
            source: cfg.source.clone(),
            db_type,
        })
    }

    /// The address in the entry's source, IPv4-mapped IPv6 addresses as IPv4 (as Go parses
    /// them).
    fn address(&self, entry: &PipelineEntry) -> Option<IpAddr> {
        let text: Cow<'_, str> = value_as_string(entry.extracted.get(&self.source)?)?;
        match text.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
            Ok(v4) => Some(v4),
            Err(_) => {
                tracing::debug!(source = %self.source, value = %text, "geoip stage: not an IP address");
                None
            }
        }
    }
}

impl Stage for GeoIpStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let Some(ip) = self.address(entry) else {
            return Verdict::Keep;
        };
        let found = match self.reader.lookup(ip) {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(%ip, error = %e, "geoip stage: lookup failed");
                return Verdict::Keep;
            }
        };
        let decoded = match self.db_type {
            DbType::City => found
                .decode::<geoip2::City>()
                .map(|r| r.map(|city| set_city_labels(&mut entry.labels, &city))),
            DbType::Asn => found
                .decode::<geoip2::Asn>()
                .map(|r| r.map(|asn| set_asn_labels(&mut entry.labels, &asn))),
        };
        if let Err(e) = decoded {
            tracing::debug!(%ip, error = %e, "geoip stage: record could not be read");
        }
        Verdict::Keep
    }
}

fn set_city_labels(labels: &mut LabelSet, city: &geoip2::City<'_>) {
    set_label(labels, "geoip_city_name", city.city.names.english);
    set_label(labels, "geoip_country_name", city.country.names.english);
    set_label(labels, "geoip_continent_name", city.continent.names.english);
    set_label(labels, "geoip_continent_code", city.continent.code);
    set_label(labels, "geoip_postal_code", city.postal.code);
    set_label(labels, "geoip_timezone", city.location.time_zone);
    let latitude = city.location.latitude.unwrap_or(0.0);
    let longitude = city.location.longitude.unwrap_or(0.0);
    if latitude != 0.0 || longitude != 0.0 {
        labels.insert(
            "geoip_location_latitude".to_string(),
            go_sprint_float(latitude),
        );
        labels.insert(
            "geoip_location_longitude".to_string(),
            go_sprint_float(longitude),
        );
    }
    // The most specific subdivision comes last.
    if let Some(subdivision) = city.subdivisions.last() {
        set_label(labels, "geoip_subdivision_name", subdivision.names.english);
        set_label(labels, "geoip_subdivision_code", subdivision.iso_code);
    }
}

fn set_asn_labels(labels: &mut LabelSet, asn: &geoip2::Asn<'_>) {
    if let Some(number) = asn.autonomous_system_number.filter(|n| *n != 0) {
        labels.insert(
            "geoip_autonomous_system_number".to_string(),
            number.to_string(),
        );
    }
    set_label(
        labels,
        "geoip_autonomous_system_organization",
        asn.autonomous_system_organization,
    );
}

fn set_label(labels: &mut LabelSet, name: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        labels.insert(name.to_string(), v.to_string());
    }
}

/// A float64 as Go's `fmt.Sprint` prints it (`%g` with the shortest round-trip digits): in
/// exponent form (`1e-05`, `1.5e+06`) when the decimal exponent is below -4 or at least 6.
fn go_sprint_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let mut out = String::new();
    let scientific = format!("{f:e}");
    let exponent: i32 = scientific
        .rsplit_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if f != 0.0 && !(-4..6).contains(&exponent) {
        let (mantissa, _) = scientific.split_once('e').unwrap_or((&scientific, ""));
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "{mantissa}e{sign}{:02}", exponent.abs());
    } else {
        let _ = write!(out, "{f}");
    }
    out
}

#[cfg(test)]
#[path = "../../../tests/support/mmdb_writer.rs"]
mod mmdb_writer;

#[cfg(test)]
mod tests {
    use super::mmdb_writer::{MmdbWriter, asn_record, city_record};
    use super::*;
    use crate::pipeline::stages::testing::entry;
    use serde_json::Value;

    struct TestDb {
        _dir: tempfile::TempDir,
        path: String,
    }

    fn write_db(writer: &MmdbWriter) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.mmdb");
        std::fs::write(&path, writer.to_bytes()).unwrap();
        TestDb {
            path: path.display().to_string(),
            _dir: dir,
        }
    }

    fn city_db() -> TestDb {
        let mut w = MmdbWriter::new("GeoIP2-City");
        w.insert(
            "81.2.69.0/24",
            city_record(
                "London",
                "United Kingdom",
                ("EU", "Europe"),
                (51.5142, -0.0931),
                "EC1A",
                "Europe/London",
                &[("ENG", "England"), ("LND", "City of London")],
            ),
        );
        w.insert(
            "2001:db8::/32",
            city_record(
                "Oslo",
                "Norway",
                ("EU", "Europe"),
                (0.0, 0.0),
                "",
                "Europe/Oslo",
                &[],
            ),
        );
        write_db(&w)
    }

    fn asn_db() -> TestDb {
        let mut w = MmdbWriter::new("GeoLite2-ASN");
        w.insert("1.128.0.0/11", asn_record(1221, "Telstra Pty Ltd"));
        w.insert("12.81.92.0/22", asn_record(7018, ""));
        write_db(&w)
    }

    fn stage(db: &TestDb, db_type: &str) -> GeoIpStage {
        GeoIpStage::new(&GeoIpConfig {
            db: db.path.clone(),
            source: "ip".into(),
            db_type: db_type.into(),
        })
        .unwrap()
    }

    fn run(stage: &mut GeoIpStage, ip: Value) -> LabelSet {
        let mut e = entry("line", &[("job", "test")]);
        e.extracted.insert("ip".into(), ip);
        assert_eq!(stage.process(&mut e), Verdict::Keep);
        e.labels
    }

    #[test]
    fn test_databases_pass_the_readers_full_verification() {
        for db in [city_db(), asn_db()] {
            let reader = Reader::open_readfile(&db.path).unwrap();
            reader.verify().unwrap();
        }
    }

    #[test]
    fn city_lookup_sets_every_city_label() {
        let db = city_db();
        let labels = run(&mut stage(&db, "city"), Value::from("81.2.69.142"));
        let expected = LabelSet::from_pairs([
            ("job", "test"),
            ("geoip_city_name", "London"),
            ("geoip_country_name", "United Kingdom"),
            ("geoip_continent_name", "Europe"),
            ("geoip_continent_code", "EU"),
            ("geoip_location_latitude", "51.5142"),
            ("geoip_location_longitude", "-0.0931"),
            ("geoip_postal_code", "EC1A"),
            ("geoip_timezone", "Europe/London"),
            ("geoip_subdivision_name", "City of London"),
            ("geoip_subdivision_code", "LND"),
        ]);
        assert_eq!(labels, expected);
    }

    #[test]
    fn ipv6_lookup_skips_empty_values_and_zero_location() {
        let db = city_db();
        let labels = run(&mut stage(&db, "city"), Value::from("2001:db8::1"));
        assert_eq!(labels.get("geoip_city_name"), Some("Oslo"));
        assert_eq!(labels.get("geoip_postal_code"), None);
        assert_eq!(labels.get("geoip_location_latitude"), None);
        assert_eq!(labels.get("geoip_subdivision_name"), None);
    }

    #[test]
    fn ipv4_mapped_ipv6_address_is_looked_up_as_ipv4() {
        let db = city_db();
        let labels = run(&mut stage(&db, "city"), Value::from("::ffff:81.2.69.1"));
        assert_eq!(labels.get("geoip_city_name"), Some("London"));
    }

    #[test]
    fn unknown_malformed_or_missing_address_leaves_labels_alone() {
        let db = city_db();
        let mut s = stage(&db, "city");
        let only_job = LabelSet::from_pairs([("job", "test")]);
        assert_eq!(run(&mut s, Value::from("10.0.0.1")), only_job);
        assert_eq!(run(&mut s, Value::from("not-an-ip")), only_job);
        assert_eq!(run(&mut s, Value::Null), only_job);
        let mut no_source = entry("line", &[("job", "test")]);
        s.process(&mut no_source);
        assert_eq!(no_source.labels, only_job);
    }

    #[test]
    fn asn_lookup_sets_number_and_organization() {
        let db = asn_db();
        let mut s = stage(&db, "asn");
        let labels = run(&mut s, Value::from("1.130.4.4"));
        assert_eq!(labels.get("geoip_autonomous_system_number"), Some("1221"));
        assert_eq!(
            labels.get("geoip_autonomous_system_organization"),
            Some("Telstra Pty Ltd")
        );
        let labels = run(&mut s, Value::from("12.81.92.7"));
        assert_eq!(labels.get("geoip_autonomous_system_number"), Some("7018"));
        assert_eq!(labels.get("geoip_autonomous_system_organization"), None);
    }

    #[test]
    fn missing_or_invalid_database_is_an_error_at_db() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.mmdb").display().to_string();
        let garbage = dir.path().join("garbage.mmdb");
        std::fs::write(&garbage, b"not a database").unwrap();
        for db in [missing, garbage.display().to_string(), String::new()] {
            let err = GeoIpStage::new(&GeoIpConfig {
                db,
                source: "ip".into(),
                db_type: "city".into(),
            })
            .err()
            .unwrap();
            assert_eq!(err.key, "db", "{}", err.message);
        }
    }

    #[test]
    fn db_type_must_be_known_and_fit_the_database() {
        let db = asn_db();
        for db_type in ["city", "country", ""] {
            let err = GeoIpStage::new(&GeoIpConfig {
                db: db.path.clone(),
                source: "ip".into(),
                db_type: db_type.into(),
            })
            .err()
            .unwrap();
            assert_eq!(err.key, "db_type", "{db_type}: {}", err.message);
        }
        let err = GeoIpStage::new(&GeoIpConfig {
            db: db.path.clone(),
            source: String::new(),
            db_type: "asn".into(),
        })
        .err()
        .unwrap();
        assert_eq!(err.key, "source");
    }

    #[test]
    fn floats_print_as_go_sprint_prints_them() {
        assert_eq!(go_sprint_float(51.5142), "51.5142");
        assert_eq!(go_sprint_float(-0.0931), "-0.0931");
        assert_eq!(go_sprint_float(37.0), "37");
        assert_eq!(go_sprint_float(123456.0), "123456");
        assert_eq!(go_sprint_float(0.00001), "1e-05");
        assert_eq!(go_sprint_float(-0.000015), "-1.5e-05");
        assert_eq!(go_sprint_float(1e21), "1e+21");
        assert_eq!(go_sprint_float(123456789.0), "1.23456789e+08");
    }
}
