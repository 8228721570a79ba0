//! The extracted map: values parsing stages found, seeded with the entry's labels as Promtail
//! seeds it.
//!
//! Every line of a source starts from the same seed, so the seed is shared (one `Arc` per
//! source) and each entry only stores what stages wrote or removed on top of it. Reads see
//! the entry's own values first. This keeps per-line cost to what the stages actually do.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use crate::labels::LabelSet;

/// The shared part: a source's labels as extracted values.
pub type Seed = Arc<HashMap<String, Value>>;

pub fn seed_from_labels(labels: &LabelSet) -> Seed {
    Arc::new(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

#[derive(Clone, Debug, Default)]
pub struct Extracted {
    seed: Seed,
    own: HashMap<String, Value>,
    /// Seed keys a stage removed.
    removed: HashSet<String>,
}

impl Extracted {
    pub fn new(seed: Seed) -> Self {
        Self {
            seed,
            own: HashMap::new(),
            removed: HashSet::new(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        if let Some(v) = self.own.get(key) {
            return Some(v);
        }
        if self.removed.contains(key) {
            return None;
        }
        self.seed.get(key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn insert(&mut self, key: String, value: Value) {
        if !self.removed.is_empty() {
            self.removed.remove(&key);
        }
        self.own.insert(key, value);
    }

    /// Makes room for `additional` own values, so a stage inserting many keys per line does
    /// not grow the map step by step.
    pub fn reserve(&mut self, additional: usize) {
        self.own.reserve(additional);
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let own = self.own.remove(key);
        let seeded = if self.seed.contains_key(key) && self.removed.insert(key.to_string()) {
            self.seed.get(key).cloned()
        } else {
            None
        };
        own.or(seeded)
    }

    /// Every visible key and value (own values shadow seeded ones).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        let seeded = self
            .seed
            .iter()
            .filter(|(k, _)| !self.own.contains_key(*k) && !self.removed.contains(*k));
        self.own.iter().chain(seeded).map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl std::ops::Index<&str> for Extracted {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no extracted value {key:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_values_shadow_seed_and_removal_hides_it() {
        let labels = LabelSet::from_pairs([("job", "app"), ("filename", "/a.log")]);
        let mut e = Extracted::new(seed_from_labels(&labels));
        assert_eq!(e.get("job"), Some(&Value::String("app".into())));
        e.insert("job".into(), Value::from(3));
        assert_eq!(e.get("job"), Some(&Value::from(3)));
        e.remove("filename");
        assert!(!e.contains_key("filename"));
        e.insert("filename".into(), Value::Bool(true));
        assert_eq!(e.get("filename"), Some(&Value::Bool(true)));
        let mut keys: Vec<&str> = e.iter().map(|(k, _)| k).collect();
        keys.sort();
        assert_eq!(keys, vec!["filename", "job"]);
    }

    #[test]
    fn clones_share_the_seed() {
        let seed = seed_from_labels(&LabelSet::from_pairs([("job", "app")]));
        let a = Extracted::new(seed.clone());
        let _b = a.clone();
        assert_eq!(Arc::strong_count(&seed), 3);
    }
}
