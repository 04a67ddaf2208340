//! The interning maps of the aggregator: values per key in slots that keep their keys and
//! capacity from poll to poll (no allocation per line once warm), and the top-K fold.

// hashbrown for `entry_ref`: one hash per lookup, and the key is copied only on first sight.
// Its hasher is seeded per map, so client-chosen names cannot be tuned to collide.
use hashbrown::HashMap;

use super::{GroupStats, OTHER};

/// Something counted per key, that can say whether the current snapshot saw it.
pub(crate) trait Count: Copy + Default {
    fn weight(&self) -> u64;
    /// Adds the counts of the same key from another part of the snapshot.
    fn absorb(&mut self, o: &Self);
}

impl Count for u64 {
    fn weight(&self) -> u64 {
        *self
    }
    fn absorb(&mut self, o: &Self) {
        *self = self.saturating_add(*o);
    }
}

impl Count for GroupStats {
    fn weight(&self) -> u64 {
        self.connections
    }
    fn absorb(&mut self, o: &Self) {
        self.merge(o);
    }
}

/// No slot: a source whose lines had no name or library yet.
pub(super) const NO_SLOT: u32 = u32::MAX;

/// Values per key, in slots so that the last key's slot can be found again without hashing:
/// consecutive CLIENT LIST lines often share a user, a command or a pool's source.
pub(crate) struct Counts<V> {
    pub(super) index: HashMap<Box<str>, usize>,
    pub(super) slots: Vec<V>,
    last: Option<usize>,
    /// A copy of the last key; its capacity is reused, so it stops allocating once warm.
    last_key: String,
}

impl<V> Default for Counts<V> {
    fn default() -> Self {
        Self {
            index: HashMap::new(),
            slots: Vec::new(),
            last: None,
            last_key: String::new(),
        }
    }
}

impl<V: Count> Counts<V> {
    pub(crate) fn entry(&mut self, key: &str) -> &mut V {
        let i = self.slot(key);
        &mut self.slots[i]
    }

    /// The key's slot (created when new); valid until the next [`prune`](Self::prune).
    pub(super) fn slot(&mut self, key: &str) -> usize {
        if let Some(i) = self.last.filter(|_| self.last_key == key) {
            return i;
        }
        let next = self.slots.len();
        let i = *self.index.entry_ref(key).or_insert(next);
        if i == next {
            self.slots.push(V::default());
        }
        self.last = Some(i);
        self.last_key.clear();
        self.last_key.push_str(key);
        i
    }

    pub(crate) fn reset(&mut self) {
        self.slots.iter_mut().for_each(|v| *v = V::default());
        self.last = None;
    }

    /// Forgets the keys the snapshot did not see and packs the slots of the others.
    pub(crate) fn prune(&mut self) {
        let Self {
            index, slots, last, ..
        } = self;
        let mut packed = Vec::with_capacity(index.len());
        index.retain(|_, i| {
            let v = slots[*i];
            let live = v.weight() > 0;
            if live {
                packed.push(v);
                *i = packed.len() - 1;
            }
            live
        });
        *slots = packed;
        *last = None;
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// Gives back capacity far beyond the live keys (left by a larger earlier population).
    pub(super) fn shrink(&mut self) {
        if self.index.capacity() > 2 * self.index.len() + 16 {
            self.index.shrink_to(self.index.len());
        }
        if self.slots.capacity() > 2 * self.slots.len() + 16 {
            self.slots.shrink_to(self.slots.len());
        }
        if self.last_key.capacity() > 256 {
            self.last_key.shrink_to(64);
        }
    }

    /// Adds the live keys of `other` (pruned first, so that it too forgets vanished keys).
    pub(crate) fn absorb(&mut self, other: &mut Counts<V>) {
        other.prune();
        for (k, v) in other.iter() {
            self.entry(k).absorb(v);
        }
    }

    /// Adds the live keys of `other` and returns, for each of its slots, the slot the key has
    /// here ([`NO_SLOT`] for dead ones). `other` is not pruned: its slots stay valid.
    pub(super) fn absorb_mapped(&mut self, other: &Counts<V>) -> Vec<u32> {
        let mut map = vec![NO_SLOT; other.slots.len()];
        for (k, &i) in &other.index {
            let v = other.slots[i];
            if v.weight() > 0 {
                let j = self.slot(k);
                self.slots[j].absorb(&v);
                map[i] = j as u32;
            }
        }
        map
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.index.iter().map(|(k, &i)| (&**k, &self.slots[i]))
    }
}

/// Keeps the `k` largest entries (ties broken by key, so the output is stable from one poll
/// to the next) and merges the rest, and any real key spelled `other`, into one `other` entry.
/// Sorts references, not values: a `GroupStats` is ~150 bytes, and there may be thousands.
pub(crate) fn fold<'a, V: Count + 'a>(
    counts: impl Iterator<Item = (&'a str, &'a V)>,
    k: usize,
    merge: impl Fn(&mut V, &V),
) -> Vec<(String, V)> {
    let mut all: Vec<(&str, &V)> = counts.collect();
    all.sort_unstable_by(|a, b| b.1.weight().cmp(&a.1.weight()).then_with(|| a.0.cmp(b.0)));
    let mut out = Vec::with_capacity(k.min(all.len()) + 1);
    let mut other: Option<V> = None;
    for (key, v) in all {
        if out.len() < k && key != OTHER {
            out.push((key.to_string(), *v));
        } else {
            merge(other.get_or_insert_with(V::default), v);
        }
    }
    if let Some(o) = other {
        out.push((OTHER.to_string(), o));
    }
    out
}
