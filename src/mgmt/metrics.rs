//! The Prometheus scrape endpoint: GET /metrics in the text exposition format (0.0.4), with
//! rabbitmq_prometheus's aggregated metric names and types for what Warren counts today, so
//! RabbitMQ's dashboards and alert rules find them; Warren's per-shard series under `warren_`.

use std::fmt::Write;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::Value;

use super::admin_client::Object;
use super::server::{Node, Resp, admin_failed, with_body};
use super::shapes::{COMPAT_VERSION, Snapshot};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the process uses, read from /proc as rabbitmq_prometheus reports the Erlang VM's.
pub struct Process {
    pub resident_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
}

impl Process {
    pub fn sample() -> Self {
        // SAFETY: sysconf and getrlimit only read process-wide settings into local values.
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let resident_pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
            .unwrap_or(0);
        let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as above; `limit` is a valid rlimit to write into.
        let max_fds = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 { limit.rlim_cur } else { 0 };
        Self { resident_bytes: resident_pages * page, open_fds, max_fds }
    }
}

pub async fn handle(node: &Node, req: Request<Incoming>) -> Resp {
    if req.uri().path() != "/metrics" {
        return with_body(StatusCode::NOT_FOUND, "text/plain", "Not Found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return with_body(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "Method Not Allowed\n");
    }
    match Snapshot::fetch(&node.admin).await {
        Ok(snap) => with_body(StatusCode::OK, CONTENT_TYPE, render(&snap, &Process::sample(), &node.name)),
        Err(e) => admin_failed(e),
    }
}

/// One metric family: its HELP and TYPE lines, then its samples (`labels` in braces, or none).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# TYPE {name} {kind}\n# HELP {name} {help}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

fn plain(v: u64) -> [(String, u64); 1] {
    [(String::new(), v)]
}

/// A label value escaped as the exposition format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn num(o: &Object, k: &str) -> u64 {
    o.get(k).and_then(Value::as_u64).unwrap_or(0)
}

pub fn render(snap: &Snapshot, p: &Process, node: &str) -> String {
    let mut out = String::new();
    let (messages, ready, unacked) = snap.messages(None);
    let node = label(node);
    let identity =
        format!("{{rabbitmq_node=\"{node}\",rabbitmq_cluster=\"{node}\",rabbitmq_cluster_permanent_id=\"{node}\"}}");
    family(&mut out, "rabbitmq_identity_info", "untyped", "RabbitMQ node & cluster identity info", &[(identity, 1)]);
    let build = format!(
        "{{rabbitmq_version=\"{COMPAT_VERSION}\",prometheus_plugin_version=\"{COMPAT_VERSION}\",product_name=\"Warren\",product_version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    family(&mut out, "rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info", &[(build, 1)]);
    let gauges: [(&str, &str, u64); 10] = [
        ("rabbitmq_connections", "Connections currently open", snap.connections.len() as u64),
        ("rabbitmq_channels", "Channels currently open", snap.channels.len() as u64),
        ("rabbitmq_consumers", "Consumers currently connected", snap.consumers()),
        ("rabbitmq_queues", "Queues available", snap.queues.len() as u64),
        ("rabbitmq_queue_messages_ready", "Messages ready to be delivered to consumers", ready),
        ("rabbitmq_queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged", unacked),
        ("rabbitmq_queue_messages", "Sum of ready and unacknowledged messages - total queue depth", messages),
        ("rabbitmq_process_resident_memory_bytes", "Memory used in bytes", p.resident_bytes),
        ("rabbitmq_process_open_fds", "Open file descriptors", p.open_fds),
        ("rabbitmq_process_max_fds", "Open file descriptors limit", p.max_fds),
    ];
    for (name, help, v) in gauges {
        family(&mut out, name, "gauge", help, &plain(v));
    }
    let mut per_shard: std::collections::BTreeMap<u64, (u64, u64)> = Default::default();
    for q in &snap.queues {
        let e = per_shard.entry(num(q, "shard")).or_default();
        e.0 += 1;
        e.1 += num(q, "messages_ready") + num(q, "messages_unacknowledged");
    }
    let by_shard = |pick: fn(&(u64, u64)) -> u64| -> Vec<(String, u64)> {
        per_shard.iter().map(|(s, v)| (format!("{{shard=\"{s}\"}}"), pick(v))).collect()
    };
    family(&mut out, "warren_shard_queues", "gauge", "Queues owned by each shard", &by_shard(|v| v.0));
    family(
        &mut out,
        "warren_shard_messages",
        "gauge",
        "Messages (ready and unacknowledged) in each shard's queues",
        &by_shard(|v| v.1),
    );
    let mesh: Vec<(String, u64)> = snap
        .mesh
        .iter()
        .map(|m| {
            let kind = m.get("kind").and_then(Value::as_str).unwrap_or_default();
            (format!("{{shard=\"{}\",kind=\"{}\"}}", num(m, "shard"), label(kind)), num(m, "handled"))
        })
        .collect();
    family(
        &mut out,
        "warren_shard_mesh_messages_total",
        "counter",
        "Messages each shard handled from the mesh (and from itself), by kind",
        &mesh,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let snap =
            Snapshot { vhosts: vec!["/".into()], queues: vec![], connections: vec![], channels: vec![], mesh: vec![] };
        let text = render(&snap, &Process { resident_bytes: 1, open_fds: 2, max_fds: 3 }, "warren@h\"x");
        assert!(
            text.contains("# TYPE rabbitmq_queues gauge\n# HELP rabbitmq_queues Queues available\nrabbitmq_queues 0\n")
        );
        assert!(text.contains("rabbitmq_node=\"warren@h\\\"x\""));
        assert!(text.contains("rabbitmq_process_open_fds 2\n"));
    }
}
