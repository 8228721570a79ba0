//! The `geoip` stage, run through the real binary (`-stdin -dry-run`) against City and ASN
//! databases the test writes: the looked-up fields arrive as labels, unknown addresses pass
//! unchanged, and a missing database stops startup naming the `db` key.

use std::path::Path;
use std::process::Output;

use crate::support::mmdb_writer::{MmdbWriter, asn_record, city_record};
use crate::support::stdin_dry_run::stdin_dry_run;

/// Runs `stages` (items indented for `pipeline_stages`) over `input` with `-stdin -dry-run`.
fn dry_run(stages: &str, input: &str) -> Output {
    stdin_dry_run("{job: test}", stages, input, "UTC", &[])
}

fn stages(db: &Path, db_type: &str) -> String {
    format!(
        r#"      - regex:
          expression: '^(?P<ts>\S+) (?P<ip>\S+) '
      - timestamp: {{source: ts, format: RFC3339}}
      - geoip:
          db: {}
          source: ip
          db_type: {db_type}
"#,
        db.display()
    )
}

#[test]
fn city_database_fields_become_labels() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("city.mmdb");
    let mut w = MmdbWriter::new("GeoLite2-City");
    w.insert(
        "175.16.199.0/24",
        city_record(
            "Changchun",
            "China",
            ("AS", "Asia"),
            (43.88, 125.3228),
            "1300",
            "Asia/Harbin",
            &[("22", "Jilin Sheng")],
        ),
    );
    std::fs::write(&db, w.to_bytes()).unwrap();
    let out = dry_run(
        &stages(&db, "city"),
        "2024-05-01T10:00:00.5Z 175.16.199.10 GET /\n2024-05-01T10:00:01.5Z 192.0.2.1 GET /\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(
        lines[0],
        "2024-05-01T10:00:00.5+0000\t{geoip_city_name=\"Changchun\", geoip_continent_code=\"AS\", \
         geoip_continent_name=\"Asia\", geoip_country_name=\"China\", \
         geoip_location_latitude=\"43.88\", geoip_location_longitude=\"125.3228\", \
         geoip_postal_code=\"1300\", geoip_subdivision_code=\"22\", \
         geoip_subdivision_name=\"Jilin Sheng\", geoip_timezone=\"Asia/Harbin\", job=\"test\"}\t\
         2024-05-01T10:00:00.5Z 175.16.199.10 GET /"
    );
    assert_eq!(
        lines[1],
        "2024-05-01T10:00:01.5+0000\t{job=\"test\"}\t2024-05-01T10:00:01.5Z 192.0.2.1 GET /"
    );
}

#[test]
fn asn_database_fields_become_labels() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("asn.mmdb");
    let mut w = MmdbWriter::new("GeoLite2-ASN");
    w.insert("1.128.0.0/11", asn_record(1221, "Telstra Pty Ltd"));
    std::fs::write(&db, w.to_bytes()).unwrap();
    let out = dry_run(
        &stages(&db, "asn"),
        "2024-05-01T10:00:00.5Z 1.128.0.1 GET /\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2024-05-01T10:00:00.5+0000\t{geoip_autonomous_system_number=\"1221\", \
         geoip_autonomous_system_organization=\"Telstra Pty Ltd\", job=\"test\"}\t\
         2024-05-01T10:00:00.5Z 1.128.0.1 GET /\n"
    );
}

#[test]
fn missing_database_stops_startup_naming_the_db_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dry_run(&stages(&dir.path().join("absent.mmdb"), "city"), "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("scrape_configs[0].pipeline_stages[2].geoip.db")
            && stderr.contains("absent.mmdb"),
        "{stderr}"
    );
}
