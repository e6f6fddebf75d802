use super::*;
use crate::store::record;
use bytes::Bytes;

fn msg(body: &[u8]) -> Message {
    Message {
        exchange: "".into(),
        routing_key: "q".into(),
        properties: Bytes::from_static(&[0x10, 0, 2]),
        body: Bytes::copy_from_slice(body),
    }
}

fn tempdir(tag: &str) -> PathBuf {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let d = std::env::temp_dir().join(format!("warren-recovery-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Both passes: per queue, (id, body, segment) in the order they were handed out.
type Held = BTreeMap<String, Vec<(u64, Vec<u8>, u32)>>;

fn replay_all(dir: &Path) -> io::Result<(Held, Recovered)> {
    let r = recover(dir)?;
    let accounting = Recovered {
        live: r.live.clone(),
        written: r.written.clone(),
        next_seg: r.next_seg,
        dir: PathBuf::new(),
        segs: Vec::new(),
        queues: Queues::default(),
    };
    let mut replay = r.replay();
    let mut held = Held::new();
    while let Some(m) = replay.next_message()? {
        let (vhost, name) = replay.queue(m.queue);
        assert_eq!(vhost, "/");
        held.entry(name.to_string()).or_default().push((m.id, m.msg.body.to_vec(), m.seg));
    }
    Ok((held, accounting))
}

fn bodies(held: &Held, q: &str) -> Vec<Vec<u8>> {
    held[q].iter().map(|(_, b, _)| b.clone()).collect()
}

#[test]
fn replays_acks_and_drops_across_segments_and_cuts_a_torn_tail() {
    let dir = tempdir("replay");
    let mut one = Vec::new();
    record::put_message(&mut one, "/", "a", 1, &msg(b"a1"));
    record::put_message(&mut one, "/", "a", 2, &msg(b"a2"));
    record::put_message(&mut one, "/", "b", 1, &msg(b"b1"));
    let mut two = Vec::new();
    record::put_ack(&mut two, "/", "a", &[1]);
    record::put_message(&mut two, "/", "a", 4, &msg(b"a4"));
    record::put_message(&mut two, "/", "a", 5, &msg(b"a5"));
    record::put_message(&mut two, "/", "a", 7, &msg(b"a7"));
    record::put_ack_range(&mut two, "/", "a", 3, 5);
    record::put_drop(&mut two, "/", "b");
    record::put_message(&mut two, "/", "b", 1, &msg(b"b1 again"));
    let whole = two.len();
    record::put_message(&mut two, "/", "a", 3, &msg(b"torn"));
    two.truncate(whole + 11);
    std::fs::write(segment_path(&dir, 1), &one).unwrap();
    std::fs::write(segment_path(&dir, 2), &two).unwrap();

    let (held, r) = replay_all(&dir).unwrap();
    assert_eq!(bodies(&held, "a"), [b"a2".to_vec(), b"a7".to_vec()]);
    assert_eq!(bodies(&held, "b"), [b"b1 again".to_vec()]);
    assert_eq!(r.live, BTreeMap::from([(1, 1), (2, 2)]));
    assert_eq!(r.written, BTreeMap::from([(1, 3), (2, 4)]));
    assert_eq!(r.next_seg, 3);
    assert_eq!(std::fs::metadata(segment_path(&dir, 2)).unwrap().len(), whole as u64);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_torn_tail_in_the_newest_segment_is_cut_and_the_records_before_it_kept() {
    let dir = tempdir("torn-newest");
    let mut one = Vec::new();
    record::put_message(&mut one, "/", "q", 1, &msg(b"m1"));
    let mut two = Vec::new();
    record::put_message(&mut two, "/", "q", 2, &msg(b"m2"));
    record::put_message(&mut two, "/", "q", 3, &msg(b"m3"));
    let whole = two.len();
    record::put_message(&mut two, "/", "q", 4, &msg(b"torn by a crash"));
    two.truncate(two.len() - 5);
    std::fs::write(segment_path(&dir, 1), &one).unwrap();
    std::fs::write(segment_path(&dir, 2), &two).unwrap();

    let (held, _) = replay_all(&dir).unwrap();
    let ids: Vec<u64> = held["q"].iter().map(|m| m.0).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(std::fs::metadata(segment_path(&dir, 1)).unwrap().len(), one.len() as u64);
    assert_eq!(std::fs::metadata(segment_path(&dir, 2)).unwrap().len(), whole as u64);
    std::fs::remove_dir_all(&dir).unwrap();
}

// Bug: recovery cut every segment at its first bad record, so a flipped bit in an older
// (fsynced, confirmed) segment silently dropped every message after it and started anyway.
#[test]
fn a_corrupt_record_in_an_older_segment_stops_recovery_and_changes_nothing() {
    let dir = tempdir("corrupt-older");
    let mut one = Vec::new();
    record::put_message(&mut one, "/", "q", 1, &msg(b"m1"));
    let second = one.len();
    record::put_message(&mut one, "/", "q", 2, &msg(b"m2"));
    record::put_message(&mut one, "/", "q", 3, &msg(b"m3"));
    one[second + record::HEADER + 5] ^= 0x01;
    let mut two = Vec::new();
    record::put_message(&mut two, "/", "q", 4, &msg(b"m4"));
    record::put_message(&mut two, "/", "q", 5, &msg(b"torn"));
    two.truncate(two.len() - 3);
    std::fs::write(segment_path(&dir, 1), &one).unwrap();
    std::fs::write(segment_path(&dir, 2), &two).unwrap();

    let Err(e) = recover(&dir) else { panic!("recovery went on past a corrupt record in an older segment") };
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    let text = e.to_string();
    let path = segment_path(&dir, 1);
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains(&format!("byte offset {second} ")), "{text}");
    // Neither the damaged segment nor the newest one's torn tail was touched.
    assert_eq!(std::fs::read(&path).unwrap(), one);
    assert_eq!(std::fs::read(segment_path(&dir, 2)).unwrap(), two);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn copies_compaction_wrote_forward_come_back_in_id_order() {
    let dir = tempdir("compacted");
    let mut one = Vec::new();
    for id in 1..=6 {
        record::put_message(&mut one, "/", "q", id, &msg(format!("m{id}").as_bytes()));
    }
    let mut two = Vec::new();
    record::put_message(&mut two, "/", "q", 7, &msg(b"m7"));
    record::put_ack(&mut two, "/", "q", &[1, 3, 4]);
    // Compaction of segment 1: its live messages (2, 5, 6) written again, unacked ones in any order.
    let mut three = Vec::new();
    for id in [5, 2, 6] {
        record::put_message(&mut three, "/", "q", id, &msg(format!("m{id}").as_bytes()));
    }
    record::put_message(&mut three, "/", "q", 8, &msg(b"m8"));
    record::put_ack(&mut three, "/", "q", &[6]);
    for (seg, data) in [(1, &one), (2, &two), (3, &three)] {
        std::fs::write(segment_path(&dir, seg), data).unwrap();
    }
    let (held, r) = replay_all(&dir).unwrap();
    let got: Vec<(u64, u32)> = held["q"].iter().map(|m| (m.0, m.2)).collect();
    assert_eq!(got, [(2, 3), (5, 3), (7, 2), (8, 3)]);
    assert_eq!(r.live, BTreeMap::from([(1, 0), (2, 1), (3, 3)]));
    assert_eq!(r.written, BTreeMap::from([(1, 6), (2, 1), (3, 4)]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ids_started_over_after_a_restart_or_a_drop_are_new_messages() {
    let dir = tempdir("reused-ids");
    let mut one = Vec::new();
    for id in 1..=3 {
        record::put_message(&mut one, "/", "q", id, &msg(format!("old{id}").as_bytes()));
    }
    record::put_ack(&mut one, "/", "q", &[1, 2, 3]);
    record::put_message(&mut one, "/", "d", 1, &msg(b"d-old"));
    record::put_drop(&mut one, "/", "d");
    record::put_message(&mut one, "/", "d", 1, &msg(b"d-new"));
    // The next run found q empty and numbered from 1 again; its acks of 1..3 above were older.
    let mut two = Vec::new();
    record::put_message(&mut two, "/", "q", 1, &msg(b"new1"));
    record::put_message(&mut two, "/", "q", 2, &msg(b"new2"));
    std::fs::write(segment_path(&dir, 1), &one).unwrap();
    std::fs::write(segment_path(&dir, 2), &two).unwrap();
    let (held, _) = replay_all(&dir).unwrap();
    assert_eq!(bodies(&held, "q"), [b"new1".to_vec(), b"new2".to_vec()]);
    assert_eq!(bodies(&held, "d"), [b"d-new".to_vec()]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Id → (body, segment of its live record).
type SimHeld = BTreeMap<u64, (Vec<u8>, u32)>;

/// A log as a broker writes it: publishes, acks (one by one and purged ranges), compaction copies,
/// queue drops and restarts (where a queue numbers on from its highest recovered id, from 1 if it
/// came back empty), segment rotation and deletion of dead segments; with what must come back.
struct Sim {
    rng: u64,
    seg: u32,
    segs: BTreeMap<u32, Vec<u8>>,
    written: BTreeMap<u32, u64>,
    /// Queue → next id, and what it holds.
    queues: BTreeMap<String, (u64, SimHeld)>,
    serial: u64,
}

impl Sim {
    fn rand(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n
    }

    fn put(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        f(self.segs.entry(self.seg).or_default());
    }

    fn publish(&mut self, q: &str, id: u64, body: Vec<u8>) {
        let seg = self.seg;
        self.put(|b| record::put_message(b, "/", q, id, &msg(&body)));
        *self.written.entry(seg).or_default() += 1;
        self.queues.get_mut(q).unwrap().1.insert(id, (body, seg));
    }

    fn step(&mut self) {
        let q = format!("q{}", self.rand(3));
        self.queues.entry(q.clone()).or_insert((1, BTreeMap::new()));
        let held: Vec<u64> = self.queues[&q].1.keys().copied().collect();
        match self.rand(100) {
            0..60 => {
                let id = self.queues[&q].0;
                self.queues.get_mut(&q).unwrap().0 += 1;
                self.serial += 1;
                let body = format!("{q}-{id}-{}", self.serial).into_bytes();
                self.publish(&q, id, body);
            }
            60..80 if !held.is_empty() => {
                // Mostly from the head, sometimes anywhere.
                let n = 1 + self.rand(held.len().min(8) as u64) as usize;
                let mut ids: Vec<u64> = if self.rand(2) == 0 {
                    held[..n].to_vec()
                } else {
                    (0..n).map(|_| held[self.rand(held.len() as u64) as usize]).collect()
                };
                ids.dedup();
                ids.sort_unstable();
                ids.dedup();
                self.put(|b| record::put_ack(b, "/", &q, &ids));
                for id in ids {
                    self.queues.get_mut(&q).unwrap().1.remove(&id);
                }
            }
            80..83 if !held.is_empty() => {
                // A purged paged run: one id range, reaching past what is held.
                let (first, last) = (held[held.len() / 2], held[held.len() - 1] + self.rand(3));
                self.put(|b| record::put_ack_range(b, "/", &q, first, last));
                self.queues.get_mut(&q).unwrap().1.retain(|&id, _| id < first);
            }
            83..88 => {
                // Compaction: the oldest segment's live messages, if it is old enough, written again.
                let oldest = *self.segs.keys().next().unwrap_or(&self.seg);
                if oldest + 2 > self.seg {
                    return;
                }
                let mut moved: Vec<(String, u64, Vec<u8>)> = Vec::new();
                for (name, (_, ids)) in &self.queues {
                    for (&id, (body, seg)) in ids {
                        if *seg == oldest {
                            moved.push((name.clone(), id, body.clone()));
                        }
                    }
                }
                // Unacked ones are written in hash order: any order.
                for i in (1..moved.len()).rev() {
                    let j = self.rand(i as u64 + 1) as usize;
                    moved.swap(i, j);
                }
                for (name, id, body) in moved {
                    self.publish(&name, id, body);
                }
            }
            88..90 => {
                self.put(|b| record::put_drop(b, "/", &q));
                *self.queues.get_mut(&q).unwrap() = (1, BTreeMap::new());
            }
            90..96 => self.seg += 1,
            96..98 => {
                // A restart: a new segment, and each queue numbers on from what it recovered.
                self.seg += 1;
                for (next, ids) in self.queues.values_mut() {
                    *next = ids.keys().next_back().map_or(1, |id| id + 1);
                }
            }
            _ => {
                // Dead segments go, oldest first, below the one being written.
                while let Some(&oldest) = self.segs.keys().next() {
                    let live = self.queues.values().flat_map(|(_, ids)| ids.values()).any(|(_, s)| *s == oldest);
                    if live || oldest >= self.seg {
                        break;
                    }
                    self.segs.remove(&oldest);
                    self.written.remove(&oldest);
                }
            }
        }
    }
}

#[test]
fn every_live_message_comes_back_in_order_from_logs_a_broker_writes() {
    for round in 0..300u64 {
        let mut sim = Sim {
            rng: 0x2545_F491_4F6C_DD1D ^ (round + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            seg: 1,
            segs: BTreeMap::new(),
            written: BTreeMap::new(),
            queues: BTreeMap::new(),
            serial: 0,
        };
        let steps = 50 + sim.rand(400);
        for _ in 0..steps {
            sim.step();
        }
        let dir = tempdir("sim");
        for (seg, data) in &sim.segs {
            std::fs::write(segment_path(&dir, *seg), data).unwrap();
        }
        let (held, r) = replay_all(&dir).unwrap();
        for (name, (_, ids)) in &sim.queues {
            let want: Vec<(u64, Vec<u8>, u32)> = ids.iter().map(|(&id, (b, s))| (id, b.clone(), *s)).collect();
            let got = held.get(name).cloned().unwrap_or_default();
            assert_eq!(got, want, "round {round}, queue {name}");
        }
        let mut live: BTreeMap<u32, u64> = sim.segs.keys().map(|&s| (s, 0)).collect();
        for (_, s) in sim.queues.values().flat_map(|(_, ids)| ids.values()) {
            *live.get_mut(s).unwrap() += 1;
        }
        let written: BTreeMap<u32, u64> =
            sim.segs.keys().map(|&s| (s, sim.written.get(&s).copied().unwrap_or(0))).collect();
        assert_eq!((r.live, r.written), (live, written), "round {round}");
        assert_eq!(r.next_seg, sim.segs.keys().next_back().map_or(1, |s| s + 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
