//! An exchange and its bindings, indexed for its type: direct by key, fanout as a list, topic as a
//! trie, headers as a list of argument tables. Binding keys are text (RabbitMQ refuses others); a
//! routing key is the publisher's bytes and matches only a binding key with the very same bytes.

use ahash::AHashMap as HashMap;

use crate::protocol::types::FieldTable;

use super::routing::Dest;
use super::routing::headers::headers_match;
use super::routing::topic::TopicTrie;
use super::stats::ExchangeStats;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "direct" => Self::Direct,
            "fanout" => Self::Fanout,
            "topic" => Self::Topic,
            "headers" => Self::Headers,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub dest: Dest,
    pub key: String,
    pub args: FieldTable,
}

#[derive(Debug)]
enum Index {
    Direct(HashMap<Box<[u8]>, Vec<Dest>>),
    Fanout(Vec<Dest>),
    Topic(TopicTrie),
    /// Headers bindings are matched one by one, as in RabbitMQ.
    Headers,
}

#[derive(Debug)]
pub struct Exchange {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    pub bindings: Vec<Binding>,
    index: Index,
    /// Messages in and out through this shard's copy.
    pub stats: ExchangeStats,
}

impl Exchange {
    pub fn new(
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        let index = match kind {
            ExchangeKind::Direct => Index::Direct(HashMap::new()),
            ExchangeKind::Fanout => Index::Fanout(Vec::new()),
            ExchangeKind::Topic => Index::Topic(TopicTrie::default()),
            ExchangeKind::Headers => Index::Headers,
        };
        Self {
            name: name.into(),
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            bindings: Vec::new(),
            index,
            stats: ExchangeStats::default(),
        }
    }

    /// Adds a binding; an identical one already there is left as is (bind is idempotent).
    pub fn bind(&mut self, b: Binding) {
        if self.bindings.contains(&b) {
            return;
        }
        match &mut self.index {
            Index::Direct(m) => m.entry(b.key.as_bytes().into()).or_default().push(b.dest.clone()),
            Index::Fanout(v) => v.push(b.dest.clone()),
            Index::Topic(t) => t.add(&b.key, b.dest.clone()),
            Index::Headers => {}
        }
        self.bindings.push(b);
    }

    /// Removes a binding; returns whether it existed.
    pub fn unbind(&mut self, b: &Binding) -> bool {
        let Some(at) = self.bindings.iter().position(|x| x == b) else { return false };
        self.bindings.remove(at);
        self.reindex_removed(b);
        true
    }

    /// Removes every binding to `dest`; returns how many went.
    pub fn unbind_dest(&mut self, dest: &Dest) -> usize {
        let gone: Vec<Binding> = self.bindings.iter().filter(|b| &b.dest == dest).cloned().collect();
        self.bindings.retain(|b| &b.dest != dest);
        for b in &gone {
            self.reindex_removed(b);
        }
        gone.len()
    }

    fn reindex_removed(&mut self, b: &Binding) {
        // The same destination may still be bound with another key or arguments.
        let still = |bs: &[Binding], f: &dyn Fn(&Binding) -> bool| bs.iter().any(|x| x.dest == b.dest && f(x));
        match &mut self.index {
            Index::Direct(m) => {
                if !still(&self.bindings, &|x| x.key == b.key)
                    && let Some(v) = m.get_mut(b.key.as_bytes())
                {
                    v.retain(|d| d != &b.dest);
                    if v.is_empty() {
                        m.remove(b.key.as_bytes());
                    }
                }
            }
            Index::Fanout(v) => {
                if !still(&self.bindings, &|_| true) {
                    v.retain(|d| d != &b.dest);
                }
            }
            Index::Topic(t) => {
                if !still(&self.bindings, &|x| x.key == b.key) {
                    t.remove(&b.key, &b.dest);
                }
            }
            Index::Headers => {}
        }
    }

    /// Calls `f` with every destination a message with this key and headers goes to (repeats
    /// possible), without collecting them first.
    pub fn route(&self, key: &[u8], headers: Option<&FieldTable>, f: &mut dyn FnMut(&Dest)) {
        match &self.index {
            Index::Direct(m) => {
                if let Some(v) = m.get(key) {
                    v.iter().for_each(f)
                }
            }
            Index::Fanout(v) => v.iter().for_each(f),
            Index::Topic(t) => t.for_each_match(key, f),
            Index::Headers => self.bindings.iter().filter(|b| headers_match(&b.args, headers)).for_each(|b| f(&b.dest)),
        }
    }
}
