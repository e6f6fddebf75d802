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
        fn walk(node: &Node, ws: &[&str], f: &mut dyn FnMut(&Dest)) {
            if let Some(h) = &node.hash {
                for skip in 0..=ws.len() {
                    walk(h, &ws[skip..], f);
                }
            }
            let Some((first, rest)) = ws.split_first() else {
                node.dests.iter().for_each(&mut *f);
                return;
            };
            if let Some(child) = node.words.get(*first) {
                walk(child, rest, f);
            }
            if let Some(star) = &node.star {
                walk(star, rest, f);
            }
        }
        walk(&self.root, &words(key), f);
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
