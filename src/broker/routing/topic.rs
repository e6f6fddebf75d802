//! Topic bindings as a trie over dot-separated words: `*` is exactly one word, `#` zero or more.
//! Matching walks the key's words, so its cost does not grow with the number of bindings. A routing
//! key is bytes (it need not be UTF-8): it splits at the byte '.' and its words compare as bytes,
//! so a key with bytes no pattern word has reaches only `*` and `#`.

use ahash::AHashMap as HashMap;

use super::Dest;

#[derive(Default, Debug)]
pub struct TopicTrie {
    root: Node,
}

#[derive(Default, Debug)]
struct Node {
    words: HashMap<Box<[u8]>, Node>,
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
fn words(pattern: &str) -> Vec<&[u8]> {
    let mut rest = key_words(pattern.as_bytes());
    std::iter::from_fn(|| {
        let (first, tail) = first_word(rest?);
        rest = tail;
        Some(first)
    })
    .collect()
}

/// The words of a key still to match: `None` when none are left, else the rest of the key, which
/// holds at least one (possibly empty) word. Matching walks this without collecting the words.
fn key_words(key: &[u8]) -> Option<&[u8]> {
    (!key.is_empty()).then_some(key)
}

fn first_word(rest: &[u8]) -> (&[u8], Option<&[u8]>) {
    let mut parts = rest.splitn(2, |&b| b == b'.');
    (parts.next().unwrap_or_default(), parts.next())
}

impl TopicTrie {
    pub fn add(&mut self, pattern: &str, dest: Dest) {
        let mut node = &mut self.root;
        for w in words(pattern) {
            node = match w {
                b"*" => node.star.get_or_insert_with(Default::default),
                b"#" => node.hash.get_or_insert_with(Default::default),
                w => node.words.entry(w.into()).or_default(),
            };
        }
        if !node.dests.contains(&dest) {
            node.dests.push(dest);
        }
    }

    pub fn remove(&mut self, pattern: &str, dest: &Dest) {
        fn go(node: &mut Node, ws: &[&[u8]], dest: &Dest) {
            let Some((first, rest)) = ws.split_first() else {
                node.dests.retain(|d| d != dest);
                return;
            };
            let child = match *first {
                b"*" => node.star.as_deref_mut(),
                b"#" => node.hash.as_deref_mut(),
                w => node.words.get_mut(w),
            };
            let Some(child) = child else { return };
            go(child, rest, dest);
            if child.is_empty() {
                match *first {
                    b"*" => node.star = None,
                    b"#" => node.hash = None,
                    w => {
                        node.words.remove(w);
                    }
                }
            }
        }
        go(&mut self.root, &words(pattern), dest);
    }

    /// Appends every destination whose pattern matches `key` (possibly with repeats).
    pub fn matches(&self, key: &[u8], out: &mut Vec<Dest>) {
        self.for_each_match(key, &mut |d| out.push(d.clone()));
    }

    /// Calls `f` with every destination whose pattern matches `key` (possibly with repeats).
    /// Allocates nothing for patterns without nested `#`s.
    pub fn for_each_match(&self, key: &[u8], f: &mut dyn FnMut(&Dest)) {
        Walk { f, seen: None }.node(&self.root, key_words(key), false);
    }
}

/// One match: the callback, and which (`#` node, position in the key) pairs were expanded.
struct Walk<'f> {
    f: &'f mut dyn FnMut(&Dest),
    /// A `#` below another `#` can be reached at the same word along many paths (as many as
    /// ways to split the words between them: exponential in the number of `#`s, so that one
    /// binding such as "#.#.*.#.#..." stalled the shard on a long key). Each is expanded once.
    /// A position is the length of the key left (None: past the last word). Allocated only for
    /// such nested `#`s: single-`#` patterns never need it.
    seen: Option<ahash::AHashSet<(*const Node, Option<usize>)>>,
}

impl Walk<'_> {
    fn node(&mut self, node: &Node, rest: Option<&[u8]>, under_hash: bool) {
        if let Some(h) = node.hash.as_deref() {
            // `#` takes zero or more words: go on from every suffix, the empty one included.
            let mut skipped = rest;
            loop {
                // Expansions of one `#` never nest, and each runs to the last word: once (h, at)
                // was expanded, so was every later position.
                let at = (h as *const Node, skipped.map(<[u8]>::len));
                if under_hash && !self.seen.get_or_insert_with(Default::default).insert(at) {
                    break;
                }
                self.node(h, skipped, true);
                let Some(r) = skipped else { break };
                skipped = first_word(r).1;
            }
        }
        let Some(r) = rest else {
            node.dests.iter().for_each(&mut *self.f);
            return;
        };
        let (first, tail) = first_word(r);
        if let Some(child) = node.words.get(first) {
            self.node(child, tail, under_hash);
        }
        if let Some(star) = &node.star {
            self.node(star, tail, under_hash);
        }
    }
}

/// True when `pattern` matches `key`: the table-driven tests and the bench use it.
pub fn pattern_matches(pattern: &str, key: &[u8]) -> bool {
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
            assert_eq!(pattern_matches(pattern, key.as_bytes()), want, "{pattern:?} vs {key:?}");
        }
    }

    #[test]
    fn keys_that_are_not_utf8_match_as_bytes() {
        // Regression: keys were decoded lossily, so every invalid byte became U+FFFD and two
        // different keys could match the same binding.
        let replacement = "a.\u{FFFD}.c";
        let cases: [(&str, &[u8], bool); 8] = [
            ("a.*.c", b"a.\xff.c", true),
            ("a.#", b"a.\xff\xfe", true),
            ("#", b"\xff", true),
            ("*.\u{FFFD}", b"\xff.\xff", false),
            (replacement, b"a.\xff.c", false),
            (replacement, replacement.as_bytes(), true),
            ("a.*", b"a.\xff.c", false),
            ("*.*.*", b"\xff.\xfe.\xfd", true),
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
            t.matches(key.as_bytes(), &mut out);
            out.sort_by_key(|d| format!("{d:?}"));
            out.dedup();
            let _ = done.send(out);
        });
        let out = finished.recv_timeout(std::time::Duration::from_secs(10)).expect("matching did not finish in 10 s");
        assert_eq!(out, vec![Dest::Queue("all".into()), Dest::Queue("q".into())]);
        assert!(pattern_matches("#.*.#.*.#", b"a.b"));
        assert!(!pattern_matches("#.*.#.*.#.*", b"a.b"));
    }

    #[test]
    fn removal_prunes_and_keeps_other_patterns() {
        let mut t = TopicTrie::default();
        let (a, b) = (Dest::Queue("a".into()), Dest::Queue("b".into()));
        t.add("x.*", a.clone());
        t.add("x.#", b.clone());
        t.remove("x.*", &a);
        let mut out = Vec::new();
        t.matches(b"x.y", &mut out);
        assert_eq!(out, vec![b.clone()]);
        t.remove("x.#", &b);
        assert!(t.root.is_empty());
    }
}
