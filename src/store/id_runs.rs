//! The live message ids of one queue while its log is replayed, each with the segment holding
//! its record: kept as runs of consecutive ids in one segment, so a backlog published in order
//! costs a few entries per segment rather than one per message (recovery holds this for every
//! queue while the messages themselves stay on disk).

use std::collections::BTreeMap;

#[derive(Default, Debug)]
pub struct IdRuns {
    /// First id of a run → (its last id, the segment of every id in it). Runs never overlap.
    runs: BTreeMap<u64, (u64, u32)>,
    len: u64,
}

impl IdRuns {
    /// How many ids are live.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The highest live id.
    pub fn last_id(&self) -> Option<u64> {
        self.runs.last_key_value().map(|(_, &(last, _))| last)
    }

    /// The segment holding live id `id`.
    pub fn get(&self, id: u64) -> Option<u32> {
        let (_, &(last, seg)) = self.runs.range(..=id).next_back()?;
        (last >= id).then_some(seg)
    }

    /// Makes `id` live, in segment `seg` (replacing where it was, if it was live).
    pub fn insert(&mut self, id: u64, seg: u32) {
        // The common case: the next id of a queue published in order, in the same segment.
        if let Some(mut run) = self.runs.last_entry()
            && let (last, s) = run.get_mut()
            && last.checked_add(1) == Some(id)
            && *s == seg
        {
            *last = id;
            self.len += 1;
            return;
        }
        self.remove_range(id, id);
        let (mut first, mut last) = (id, id);
        if let Some((&f, &(l, s))) = self.runs.range(..id).next_back()
            && l.checked_add(1) == Some(id)
            && s == seg
        {
            self.runs.remove(&f);
            first = f;
        }
        if let Some(next) = id.checked_add(1)
            && let Some(&(l, s)) = self.runs.get(&next)
            && s == seg
        {
            self.runs.remove(&next);
            last = l;
        }
        self.runs.insert(first, (last, seg));
        self.len += 1;
    }

    /// Takes the ids `first..=last` out; returns how many of them were live.
    pub fn remove_range(&mut self, first: u64, last: u64) -> u64 {
        if first > last {
            return 0;
        }
        // The run reaching into the range from below, then every run starting inside it.
        let mut hit = Vec::new();
        if let Some((&f, &(l, _))) = self.runs.range(..first).next_back()
            && l >= first
        {
            hit.push(f);
        }
        hit.extend(self.runs.range(first..=last).map(|(&f, _)| f));
        let mut removed = 0;
        for f in hit {
            let Some((l, seg)) = self.runs.remove(&f) else { continue };
            if f < first {
                self.runs.insert(f, (first - 1, seg));
            }
            if l > last {
                self.runs.insert(last + 1, (l, seg));
            }
            removed += l.min(last) - f.max(first) + 1;
        }
        self.len -= removed;
        removed
    }

    /// Takes `id` out; returns whether it was live.
    pub fn remove(&mut self, id: u64) -> bool {
        self.remove_range(id, id) == 1
    }

    pub fn clear(&mut self) {
        self.runs.clear();
        self.len = 0;
    }

    /// How many live ids each segment holds.
    pub fn segments(&self) -> BTreeMap<u32, u64> {
        let mut out = BTreeMap::new();
        for (&first, &(last, seg)) in &self.runs {
            *out.entry(seg).or_default() += last - first + 1;
        }
        out
    }

    /// Runs held (what this costs in memory: one map entry each).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap as Model;

    #[test]
    fn ids_published_in_order_take_one_run_per_segment() {
        let mut ids = IdRuns::default();
        for id in 1..=1000 {
            ids.insert(id, 1 + (id / 400) as u32);
        }
        assert_eq!((ids.len(), ids.runs()), (1000, 3));
        assert_eq!(ids.segments(), BTreeMap::from([(1, 399), (2, 400), (3, 201)]));
        // Acked from the head, in order, the runs shrink rather than split.
        assert_eq!(ids.remove_range(1, 450), 450);
        assert_eq!((ids.len(), ids.runs(), ids.get(450), ids.get(451)), (550, 2, None, Some(2)));
        assert_eq!(ids.last_id(), Some(1000));
    }

    #[test]
    fn matches_a_map_of_every_id() {
        // A deterministic xorshift drives inserts (moves to other segments included) and removals.
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut ids, mut model) = (IdRuns::default(), Model::<u64, u32>::new());
        for _ in 0..20_000 {
            let id = next() % 300;
            match next() % 4 {
                0 | 1 => {
                    let seg = (next() % 3) as u32;
                    ids.insert(id, seg);
                    model.insert(id, seg);
                }
                2 => assert_eq!(ids.remove(id), model.remove(&id).is_some()),
                _ => {
                    let last = id + next() % 20;
                    let want = model.range(id..=last).count() as u64;
                    model.retain(|k, _| !(id..=last).contains(k));
                    assert_eq!(ids.remove_range(id, last), want);
                }
            }
            assert_eq!(ids.len(), model.len() as u64);
        }
        for id in 0..320 {
            assert_eq!(ids.get(id), model.get(&id).copied(), "id {id}");
        }
        assert_eq!(ids.last_id(), model.keys().next_back().copied());
        let mut per_seg = BTreeMap::new();
        for &seg in model.values() {
            *per_seg.entry(seg).or_default() += 1;
        }
        assert_eq!(ids.segments(), per_seg);
        // Adjacent ids of one segment share a run.
        let runs = model.iter().zip(model.iter().skip(1)).filter(|((a, s), (b, t))| **a + 1 != **b || s != t).count();
        assert_eq!(ids.runs(), if model.is_empty() { 0 } else { runs + 1 });
    }
}
