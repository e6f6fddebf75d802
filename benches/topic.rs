//! Topic matching with 10k bindings: the trie's cost follows the key's words, not the bindings.

mod common;

use std::hint::black_box;

use warren::broker::routing::Dest;
use warren::broker::routing::topic::TopicTrie;

fn main() {
    for n in [100usize, 10_000] {
        let mut t = TopicTrie::default();
        for i in 0..n {
            // A mix of literal, `*` and `#` patterns over a vocabulary of services and levels.
            let pattern = match i % 4 {
                0 => format!("svc{}.info.host{}", i % 500, i % 37),
                1 => format!("svc{}.*.host{}", i % 500, i % 37),
                2 => format!("svc{}.#", i % 500),
                _ => format!("*.error.host{}", i % 37),
            };
            t.add(&pattern, Dest::Queue(format!("q{i}").into()));
        }
        let keys: Vec<String> =
            (0..1024).map(|i| format!("svc{}.{}.host{}", i % 500, ["info", "error", "debug"][i % 3], i % 37)).collect();
        let mut out = Vec::new();
        let mut k = 0;
        common::bench(&format!("topic match, {n} bindings"), 200_000, || {
            out.clear();
            t.matches(keys[k % keys.len()].as_bytes(), &mut out);
            black_box(out.len());
            k += 1;
        });
    }
}
