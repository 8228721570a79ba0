//! Pod log files laid out and rotated as the kubelet does, and the pods the API server
//! describes them with.
//!
//! The kubelet writes `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log` in the
//! CRI format (`<RFC3339Nano> <stream> <P|F> <text>`); its container log manager rotates by
//! renaming `0.log` to `0.log.<YYYYMMDD-hhmmss>` and asking the runtime to reopen `0.log`,
//! and gzips every rotated file but the newest (`<file>.gz.tmp`, renamed to `<file>.gz`, the
//! original removed). Here the root is a temporary directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

/// One container's log directory.
pub struct ContainerLog {
    pub dir: PathBuf,
    rotations: u32,
}

impl ContainerLog {
    pub fn new(root: &Path, namespace: &str, pod: &str, uid: &str, container: &str) -> Self {
        let dir = root
            .join(format!("{namespace}_{pod}_{uid}"))
            .join(container);
        std::fs::create_dir_all(&dir).unwrap();
        ContainerLog { dir, rotations: 0 }
    }

    pub fn current(&self) -> PathBuf {
        self.dir.join("0.log")
    }

    /// Appends `lines` to `0.log` as CRI full lines on stdout.
    pub fn write(&self, lines: &[String]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.current())
            .unwrap();
        let mut buf = String::new();
        for l in lines {
            buf.push_str("2026-12-07T23:00:00.123456789Z stdout F ");
            buf.push_str(l);
            buf.push('\n');
        }
        f.write_all(buf.as_bytes()).unwrap();
    }

    /// The kubelet's rotation: rename, reopen, and gzip all rotated files but the newest.
    pub fn rotate(&mut self) {
        self.rotations += 1;
        let stamp = format!("20261207-23{:04}", self.rotations);
        let rotated = self.dir.join(format!("0.log.{stamp}"));
        std::fs::rename(self.current(), &rotated).unwrap();
        std::fs::File::create(self.current()).unwrap();
        let mut older: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with("0.log.") && !n.ends_with(".gz") && *p != rotated
            })
            .collect();
        older.sort();
        for p in older {
            let gz = PathBuf::from(format!("{}.gz", p.display()));
            let tmp = PathBuf::from(format!("{}.gz.tmp", p.display()));
            let data = std::fs::read(&p).unwrap();
            let mut enc = flate2::write::GzEncoder::new(
                std::fs::File::create(&tmp).unwrap(),
                flate2::Compression::default(),
            );
            enc.write_all(&data).unwrap();
            enc.finish().unwrap();
            std::fs::rename(&tmp, &gz).unwrap();
            std::fs::remove_file(&p).unwrap();
        }
    }
}

/// A running pod as the API server returns it, built from k8s-openapi's type.
pub fn pod(
    namespace: &str,
    name: &str,
    uid: &str,
    node: &str,
    labels: &[(&str, &str)],
    containers: &[&str],
) -> Pod {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
        .collect();
    let containers: Vec<serde_json::Value> = containers
        .iter()
        .map(|c| serde_json::json!({"name": c, "image": format!("registry.local/{c}:1")}))
        .collect();
    let statuses: Vec<serde_json::Value> = containers
        .iter()
        .map(|c| {
            serde_json::json!({"name": c["name"], "image": c["image"], "imageID": "",
                "ready": true, "restartCount": 0,
                "containerID": format!("containerd://{uid}-{}", c["name"].as_str().unwrap())})
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace, "uid": uid, "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{}-5d4f8b7c9", name.split('-').next().unwrap()),
                "uid": "rs-uid", "controller": true}]
        },
        "spec": {"nodeName": node, "containers": containers},
        "status": {"phase": "Running", "podIP": "10.1.0.7", "hostIP": "192.168.0.10",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": statuses}
    }))
    .unwrap()
}
