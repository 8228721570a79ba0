//! A small MaxMind DB (`.mmdb`) writer for tests, so geoip tests build the databases they
//! read instead of shipping binary files. It writes format 2.0 as published by MaxMind: an
//! IPv6 search tree of 24-bit records (IPv4 networks under `::/96`), a data section in the
//! format's typed encoding, then `\xAB\xCD\xEFMaxMind.com` and the metadata map. Networks
//! must not overlap. Shared by the geoip unit tests and end-to-end tests (included by path).

use std::net::IpAddr;

const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
/// Zero bytes between the search tree and the data section.
const DATA_SECTION_SEPARATOR: usize = 16;

/// A value in the format's typed encoding.
#[derive(Clone, Debug)]
pub enum MmdbValue {
    Str(String),
    Double(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(String, MmdbValue)>),
    Array(Vec<MmdbValue>),
}

pub fn map(pairs: &[(&str, MmdbValue)]) -> MmdbValue {
    MmdbValue::Map(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

pub fn text(s: &str) -> MmdbValue {
    MmdbValue::Str(s.to_string())
}

fn english(name: &str) -> MmdbValue {
    map(&[("en", text(name))])
}

/// A GeoIP2-City record; empty strings, a `(0, 0)` location and no subdivisions are left out.
pub fn city_record(
    city: &str,
    country: &str,
    (continent_code, continent_name): (&str, &str),
    (latitude, longitude): (f64, f64),
    postal_code: &str,
    time_zone: &str,
    subdivisions: &[(&str, &str)],
) -> MmdbValue {
    let mut pairs = vec![
        (
            "city",
            map(&[("geoname_id", MmdbValue::U32(1)), ("names", english(city))]),
        ),
        (
            "continent",
            map(&[
                ("code", text(continent_code)),
                ("names", english(continent_name)),
            ]),
        ),
        (
            "country",
            map(&[("iso_code", text("XX")), ("names", english(country))]),
        ),
    ];
    let mut location = vec![
        ("accuracy_radius", MmdbValue::U16(100)),
        ("time_zone", text(time_zone)),
    ];
    if latitude != 0.0 || longitude != 0.0 {
        location.push(("latitude", MmdbValue::Double(latitude)));
        location.push(("longitude", MmdbValue::Double(longitude)));
    }
    pairs.push(("location", map(&location)));
    if !postal_code.is_empty() {
        pairs.push(("postal", map(&[("code", text(postal_code))])));
    }
    if !subdivisions.is_empty() {
        pairs.push((
            "subdivisions",
            MmdbValue::Array(
                subdivisions
                    .iter()
                    .map(|(code, name)| map(&[("iso_code", text(code)), ("names", english(name))]))
                    .collect(),
            ),
        ));
    }
    map(&pairs)
}

/// A GeoLite2-ASN record; an empty organization is left out.
pub fn asn_record(number: u32, organization: &str) -> MmdbValue {
    let mut pairs = vec![("autonomous_system_number", MmdbValue::U32(number))];
    if !organization.is_empty() {
        pairs.push(("autonomous_system_organization", text(organization)));
    }
    map(&pairs)
}

pub struct MmdbWriter {
    database_type: String,
    /// (address bits as IPv6, prefix length in the IPv6 tree, record)
    networks: Vec<(u128, u8, MmdbValue)>,
}

#[derive(Clone, Copy)]
enum Slot {
    Empty,
    Node(usize),
    /// Offset in the data section.
    Data(usize),
}

impl MmdbWriter {
    pub fn new(database_type: &str) -> Self {
        Self {
            database_type: database_type.to_string(),
            networks: Vec::new(),
        }
    }

    /// Adds `cidr` (`81.2.69.0/24`, `2001:db8::/32`) with its record.
    pub fn insert(&mut self, cidr: &str, record: MmdbValue) {
        let (addr, len) = cidr.split_once('/').expect("network as address/length");
        let len: u8 = len.parse().expect("prefix length");
        let (bits, tree_len) = match addr.parse::<IpAddr>().expect("network address") {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 96 + len),
            IpAddr::V6(v6) => (u128::from(v6), len),
        };
        assert!(
            tree_len > 0 && tree_len <= 128,
            "prefix length out of range"
        );
        self.networks.push((bits, tree_len, record));
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut data = Vec::new();
        let mut nodes: Vec<[Slot; 2]> = vec![[Slot::Empty; 2]];
        for (bits, len, record) in &self.networks {
            let offset = data.len();
            encode(record, &mut data);
            let mut node = 0;
            for depth in 0..*len {
                let bit = ((bits >> (127 - depth)) & 1) as usize;
                if depth + 1 == *len {
                    assert!(matches!(nodes[node][bit], Slot::Empty), "networks overlap");
                    nodes[node][bit] = Slot::Data(offset);
                    break;
                }
                node = match nodes[node][bit] {
                    Slot::Node(next) => next,
                    Slot::Empty => {
                        nodes.push([Slot::Empty; 2]);
                        let next = nodes.len() - 1;
                        nodes[node][bit] = Slot::Node(next);
                        next
                    }
                    Slot::Data(_) => panic!("networks overlap"),
                };
            }
        }
        let node_count = nodes.len();
        let record = |slot: Slot| -> usize {
            match slot {
                Slot::Empty => node_count,
                Slot::Node(n) => n,
                Slot::Data(offset) => node_count + DATA_SECTION_SEPARATOR + offset,
            }
        };
        let mut out = Vec::new();
        for [left, right] in &nodes {
            for value in [record(*left), record(*right)] {
                assert!(value < 1 << 24, "database too large for 24-bit records");
                out.extend_from_slice(&(value as u32).to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0; DATA_SECTION_SEPARATOR]);
        out.extend_from_slice(&data);
        out.extend_from_slice(METADATA_MARKER);
        let metadata = map(&[
            ("binary_format_major_version", MmdbValue::U16(2)),
            ("binary_format_minor_version", MmdbValue::U16(0)),
            ("build_epoch", MmdbValue::U64(1_700_000_000)),
            ("database_type", text(&self.database_type)),
            (
                "description",
                map(&[("en", text("tailward test database"))]),
            ),
            ("ip_version", MmdbValue::U16(6)),
            ("languages", MmdbValue::Array(vec![text("en")])),
            ("node_count", MmdbValue::U32(node_count as u32)),
            ("record_size", MmdbValue::U16(24)),
        ]);
        encode(&metadata, &mut out);
        out
    }
}

/// Writes `value` in the data section encoding: a control byte (type in the top 3 bits, 0
/// plus a following byte for extended types; size in the low 5 bits, with 1-3 extra bytes
/// for sizes from 29 on), then the payload.
fn encode(value: &MmdbValue, out: &mut Vec<u8>) {
    match value {
        MmdbValue::Str(s) => {
            control(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        MmdbValue::Double(f) => {
            control(3, 8, out);
            out.extend_from_slice(&f.to_be_bytes());
        }
        MmdbValue::U16(n) => unsigned(5, u64::from(*n), out),
        MmdbValue::U32(n) => unsigned(6, u64::from(*n), out),
        MmdbValue::U64(n) => unsigned(9, *n, out),
        MmdbValue::Map(pairs) => {
            control(7, pairs.len(), out);
            for (k, v) in pairs {
                encode(&MmdbValue::Str(k.clone()), out);
                encode(v, out);
            }
        }
        MmdbValue::Array(items) => {
            control(11, items.len(), out);
            for item in items {
                encode(item, out);
            }
        }
    }
}

/// Unsigned integers take as few big-endian bytes as their value needs.
fn unsigned(type_number: u8, n: u64, out: &mut Vec<u8>) {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(type_number, bytes.len() - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

fn control(type_number: u8, size: usize, out: &mut Vec<u8>) {
    let (type_bits, extended) = if type_number <= 7 {
        (type_number, None)
    } else {
        (0, Some(type_number - 7))
    };
    let (size_bits, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, Vec::new())
    } else if size < 29 + 256 {
        (29, vec![(size - 29) as u8])
    } else if size < 285 + 65_536 {
        (30, ((size - 285) as u16).to_be_bytes().to_vec())
    } else {
        (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
    };
    out.push((type_bits << 5) | size_bits);
    out.extend(extended);
    out.extend_from_slice(&extra);
}
