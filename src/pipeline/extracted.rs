//! The extracted map: values parsing stages found, seeded with the entry's labels as Promtail
//! seeds it.
//!
//! Every line of a source starts from the same seed, so the seed is shared (one `Arc` per
//! source) and each entry only stores what stages wrote or removed on top of it. Reads see
//! the entry's own values first. This keeps per-line cost to what the stages actually do.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde_json::Value;

use crate::model::labels::LabelSet;

/// The shared part: a source's labels as extracted values, sorted by name (a label set is
/// already sorted and duplicate-free, and a handful of names is searched fastest that way).
pub type Seed = Arc<Vec<(String, Value)>>;

pub fn seed_from_labels(labels: &LabelSet) -> Seed {
    Arc::new(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

fn seed_get<'s>(seed: &'s Seed, key: &str) -> Option<&'s Value> {
    seed.binary_search_by(|(k, _)| k.as_str().cmp(key))
        .ok()
        .map(|i| &seed[i].1)
}

/// Up to this many own values are found by a linear scan: stages write a handful of keys per
/// line, and comparing a few short strings is cheaper than hashing one. Past it, a hash index
/// keeps lines with many fields (logfmt, wide JSON) from turning quadratic.
const LINEAR_LIMIT: usize = 16;

/// A key name fixed when a stage is built (a regex group, a json expression's key), stored
/// once for the life of the process so every line can refer to it without copying the name
/// or touching a reference count.
///
/// Interned names are never freed: they come from configs, and a name seen again (a config
/// reload) reuses its first copy, so the table only grows with new distinct names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InternedKey(&'static str);

impl InternedKey {
    pub fn new(name: &str) -> Self {
        static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
        let mut names = NAMES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = names.get(name) {
            return Self(known);
        }
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        names.insert(leaked);
        Self(leaked)
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

/// An extracted key as stored: interned by a stage, or a name found in the line.
#[derive(Clone, Debug)]
enum Key {
    Interned(&'static str),
    Owned(String),
}

impl Key {
    fn as_str(&self) -> &str {
        match self {
            Key::Interned(k) => k,
            Key::Owned(k) => k,
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Extracted {
    seed: Seed,
    /// What stages wrote, in insertion order.
    own: Vec<(Key, Value)>,
    /// Position in `own` of each key, kept only once `own` outgrows [`LINEAR_LIMIT`]; boxed
    /// so the common small map keeps every entry (moved from stage to stage) small.
    #[allow(clippy::box_collection)] // the point is the entry's size, not the heap
    index: Option<Box<HashMap<Key, usize>>>,
    /// Seed keys a stage removed (rare, so a list).
    removed: Vec<String>,
}

impl Extracted {
    pub fn new(seed: Seed) -> Self {
        Self {
            seed,
            own: Vec::new(),
            index: None,
            removed: Vec::new(),
        }
    }

    fn own_position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.own.iter().position(|(k, _)| k.as_str() == key),
        }
    }

    fn is_removed(&self, key: &str) -> bool {
        !self.removed.is_empty() && self.removed.iter().any(|k| k == key)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        if let Some(i) = self.own_position(key) {
            return Some(&self.own[i].1);
        }
        if self.is_removed(key) {
            return None;
        }
        seed_get(&self.seed, key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn insert(&mut self, key: String, value: Value) {
        self.insert_key(Key::Owned(key), value);
    }

    /// [`Extracted::insert`] for a key fixed when the stage was built: no copy of the name.
    pub fn insert_interned(&mut self, key: InternedKey, value: Value) {
        let key = key.as_str();
        self.unremove(key);
        match self.own_position(key) {
            Some(i) => self.own[i].1 = value,
            None => self.push_new(Key::Interned(key), value),
        }
    }

    fn unremove(&mut self, key: &str) {
        if !self.removed.is_empty() {
            self.removed.retain(|k| k != key);
        }
    }

    fn insert_key(&mut self, key: Key, value: Value) {
        self.unremove(key.as_str());
        match self.own_position(key.as_str()) {
            Some(i) => self.own[i].1 = value,
            None => self.push_new(key, value),
        }
    }

    /// Adds a key known not to be among the own values.
    fn push_new(&mut self, key: Key, value: Value) {
        let position = self.own.len();
        match &mut self.index {
            Some(index) => {
                index.insert(key.clone(), position);
            }
            None if position >= LINEAR_LIMIT => {
                let mut index: HashMap<Key, usize> = self
                    .own
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.clone(), i))
                    .collect();
                index.insert(key.clone(), position);
                self.index = Some(Box::new(index));
            }
            None => {}
        }
        self.own.push((key, value));
    }

    /// Makes room for `additional` own values, so a stage inserting many keys per line does
    /// not grow the map step by step.
    pub fn reserve(&mut self, additional: usize) {
        self.own.reserve(additional);
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let own = self.own_position(key).map(|i| {
            let (_, value) = self.own.swap_remove(i);
            if let Some(index) = &mut self.index {
                index.remove(key);
                if let Some((moved, _)) = self.own.get(i) {
                    index.insert(moved.clone(), i);
                }
            }
            value
        });
        let seeded = match seed_get(&self.seed, key) {
            Some(v) if !self.is_removed(key) => {
                self.removed.push(key.to_string());
                Some(v.clone())
            }
            _ => None,
        };
        own.or(seeded)
    }

    /// Every visible key and value (own values shadow seeded ones).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        let seeded = self
            .seed
            .iter()
            .filter(|(k, _)| self.own_position(k).is_none() && !self.is_removed(k))
            .map(|(k, v)| (k.as_str(), v));
        self.own.iter().map(|(k, v)| (k.as_str(), v)).chain(seeded)
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

    /// Beyond the linear-scan limit the hash index must agree with what was inserted and
    /// removed, including the value moved into a removed key's slot.
    #[test]
    fn many_keys_stay_consistent_through_the_index() {
        let seed = seed_from_labels(&LabelSet::from_pairs([("job", "app"), ("k3", "seeded")]));
        let mut e = Extracted::new(seed);
        let shared = InternedKey::new("shared");
        for i in 0..40 {
            e.insert(format!("k{i}"), Value::from(i));
        }
        e.insert_interned(shared, Value::from("s"));
        assert_eq!(e.get("k3"), Some(&Value::from(3)));
        assert_eq!(e.remove("k5"), Some(Value::from(5)));
        assert_eq!(e.remove("k0"), Some(Value::from(0)));
        assert!(!e.contains_key("k5"));
        assert!(!e.contains_key("k0"));
        for i in (1..40).filter(|i| *i != 5) {
            assert_eq!(e.get(&format!("k{i}")), Some(&Value::from(i)), "k{i}");
        }
        assert_eq!(e.get("shared"), Some(&Value::from("s")));
        e.insert_interned(shared, Value::from("t"));
        e.insert("k5".into(), Value::from(55));
        assert_eq!(e.get("k5"), Some(&Value::from(55)));
        assert_eq!(e.get("shared"), Some(&Value::from("t")));
        // k3 shadows its seed, then removing it hides both.
        assert_eq!(e.remove("k3"), Some(Value::from(3)));
        assert!(!e.contains_key("k3"));
        // 38 own k-keys + shared + job.
        assert_eq!(e.len(), 40);
        let mut keys: Vec<&str> = e.iter().map(|(k, _)| k).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 40);
    }

    #[test]
    fn interning_a_name_twice_gives_the_first_copy() {
        let a = InternedKey::new(&String::from("interned_twice"));
        let b = InternedKey::new(&String::from("interned_twice"));
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_eq!(a.as_str(), "interned_twice");
    }

    #[test]
    fn shared_and_owned_keys_are_the_same_key() {
        let mut e = Extracted::default();
        let key = InternedKey::new("level");
        e.insert("level".into(), Value::from("a"));
        e.insert_interned(key, Value::from("b"));
        assert_eq!(e.len(), 1);
        assert_eq!(e["level"], "b");
        e.insert("level".into(), Value::from("c"));
        assert_eq!(e.len(), 1);
        assert_eq!(e["level"], "c");
    }
}
