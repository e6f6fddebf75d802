//! Topic bindings as a trie over dot-separated words: `*` is exactly one word, `#` zero or more.
//! Matching walks the key's words, so its cost does not grow with the number of bindings.

use ahash::AHashMap as HashMap;

use super::Dest;

#[derive(Default, Debug)]
pub struct TopicTrie {
    root: Node,
}

#[derive(Default, Debug)]
struct Node {
    words: HashMap<String, Node>,
    star: Option<Box<Node>>,
    hash: Option<Box<Node>>,
    dests: Vec<Dest>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.words.is_empty() && self.star.is_none() && self.hash.is_none() && self.dests.is_empty()
    }
}

/// RabbitMQ splits on '.', keeping empty words ("a..b" has three), and treats "" as no words.
fn words(key: &str) -> Vec<&str> {
    if key.is_empty() { Vec::new() } else { key.split('.').collect() }
}

impl TopicTrie {
    pub fn add(&mut self, pattern: &str, dest: Dest) {
        let mut node = &mut self.root;
        for w in words(pattern) {
            node = match w {
                "*" => node.star.get_or_insert_with(Default::default),
                "#" => node.hash.get_or_insert_with(Default::default),
                w => node.words.entry(w.to_string()).or_default(),
            };
        }
        if !node.dests.contains(&dest) {
            node.dests.push(dest);
        }
    }

    pub fn remove(&mut self, pattern: &str, dest: &Dest) {
        fn go(node: &mut Node, ws: &[&str], dest: &Dest) {
            let Some((first, rest)) = ws.split_first() else {
                node.dests.retain(|d| d != dest);
                return;
            };
            let child = match *first {
                "*" => node.star.as_deref_mut(),
                "#" => node.hash.as_deref_mut(),
                w => node.words.get_mut(w),
            };
            let Some(child) = child else { return };
            go(child, rest, dest);
            if child.is_empty() {
                match *first {
                    "*" => node.star = None,
                    "#" => node.hash = None,
                    w => {
                        node.words.remove(w);
                    }
                }
            }
        }
        go(&mut self.root, &words(pattern), dest);
    }

    /// Appends every destination whose pattern matches `key` (possibly with repeats).
    pub fn matches(&self, key: &str, out: &mut Vec<Dest>) {
        self.for_each_match(key, &mut |d| out.push(d.clone()));
    }

    /// Calls `f` with every destination whose pattern matches `key` (possibly with repeats).
    pub fn for_each_match(&self, key: &str, f: &mut dyn FnMut(&Dest)) {
        let ws = words(key);
        Walk { ws: &ws, f, seen: None }.node(&self.root, 0, false);
    }
}

/// One match: the key's words, the callback, and which (`#` node, word) pairs were expanded.
struct Walk<'w, 'f> {
    ws: &'w [&'w str],
    f: &'f mut dyn FnMut(&Dest),
    /// A `#` below another `#` can be reached at the same word along many paths (as many as
    /// ways to split the words between them: exponential in the number of `#`s, so that one
    /// binding such as "#.#.*.#.#..." stalled the shard on a long key). Each is expanded once.
    /// Allocated only for such nested `#`s: single-`#` patterns never need it.
    seen: Option<ahash::AHashSet<(*const Node, usize)>>,
}

impl Walk<'_, '_> {
    fn node(&mut self, node: &Node, at: usize, under_hash: bool) {
        if let Some(h) = node.hash.as_deref() {
            for skip in at..=self.ws.len() {
                // Expansions of one `#` never nest, and each runs to the last word: once (h, skip)
                // was expanded, so was every later word.
                if under_hash && !self.seen.get_or_insert_with(Default::default).insert((h as *const Node, skip)) {
                    break;
                }
                self.node(h, skip, true);
            }
        }
        let Some(first) = self.ws.get(at) else {
            node.dests.iter().for_each(&mut *self.f);
            return;
        };
        if let Some(child) = node.words.get(*first) {
            self.node(child, at + 1, under_hash);
        }
        if let Some(star) = &node.star {
            self.node(star, at + 1, under_hash);
        }
    }
}

/// True when `pattern` matches `key`: the table-driven tests and the bench use it.
pub fn pattern_matches(pattern: &str, key: &str) -> bool {
    let mut t = TopicTrie::default();
    t.add(pattern, Dest::Queue("q".into()));
    let mut out = Vec::new();
    t.matches(key, &mut out);
    !out.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_topic_cases() {
        let cases = [
            ("a.b.c", "a.b.c", true),
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a.c", false),
            ("a.*.c", "a.b.b.c", false),
            ("a.#.c", "a.c", true),
            ("a.#.c", "a.b.b.c", true),
            ("a.#", "a", true),
            ("#", "", true),
            ("#", "a.b.c", true),
            ("#.#", "a", true),
            ("#.#", "", true),
            ("*", "", false),
            ("*", "a", true),
            ("*", "a.b", false),
            ("a..b", "a..b", true),
            ("a.*.b", "a..b", true),
            ("a.b", "a..b", false),
            (".a", ".a", true),
            ("*.a", ".a", true),
            ("a.", "a.", true),
            ("a.*", "a.", true),
            ("a.*", "a", false),
            ("#.a", "a", true),
            ("#.a", "b.a", true),
            ("#.a", "a.b", false),
            ("*.#", "", false),
            ("*.#", "a", true),
            ("#.*.#", "a.b", true),
            ("", "", true),
            ("", "a", false),
            ("a.#.#.b", "a.b", true),
            ("*.*", "a.b", true),
            ("*.*", "a.b.c", false),
        ];
        for (pattern, key, want) in cases {
            assert_eq!(pattern_matches(pattern, key), want, "{pattern:?} vs {key:?}");
        }
    }

    // Regression (found by tests/fuzz_connection.rs): matching tried every way to split the key's
    // words between the `#`s of a pattern, so one binding of "#.#.*.#" repeated 30 times and a
    // publish with a long routing key kept a shard busy for good (every connection on it hung).
    #[test]
    fn many_hashes_match_in_polynomial_time() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut t = TopicTrie::default();
            t.add(&"#.#.*.#".repeat(30).replace("##", "#.#"), Dest::Queue("q".into()));
            t.add(&["#"; 60].join("."), Dest::Queue("all".into()));
            let key = vec!["a"; 120].join(".");
            let mut out = Vec::new();
            t.matches(&key, &mut out);
            out.sort_by_key(|d| format!("{d:?}"));
            out.dedup();
            let _ = done.send(out);
        });
        let out = finished.recv_timeout(std::time::Duration::from_secs(10)).expect("matching did not finish in 10 s");
        assert_eq!(out, vec![Dest::Queue("all".into()), Dest::Queue("q".into())]);
        assert!(pattern_matches("#.*.#.*.#", "a.b"));
        assert!(!pattern_matches("#.*.#.*.#.*", "a.b"));
    }

    #[test]
    fn removal_prunes_and_keeps_other_patterns() {
        let mut t = TopicTrie::default();
        let (a, b) = (Dest::Queue("a".into()), Dest::Queue("b".into()));
        t.add("x.*", a.clone());
        t.add("x.#", b.clone());
        t.remove("x.*", &a);
        let mut out = Vec::new();
        t.matches("x.y", &mut out);
        assert_eq!(out, vec![b.clone()]);
        t.remove("x.#", &b);
        assert!(t.root.is_empty());
    }
}
