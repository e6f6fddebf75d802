//! The management API's paths under /api/, as RabbitMQ's management plugin serves them: the
//! vhost a path names is percent-encoded (`/` is `%2F`), answers are JSON, a missing object is
//! 404 `{"error": "Object Not Found"}`, PUT answers 201 when it created and 204 when it existed.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::admin_client::{AdminError, Object};
use super::auth::{Caller, authenticate};
use super::listing::ListQuery;
use super::message_stats::Kind;
use super::metrics::Process;
use super::server::{Node, Resp, admin_failed, error, json_reply, not_found};
use super::shapes::{self, COMPAT_VERSION, Snapshot};
use super::{messages, writes};

/// Largest request body read (a definitions document).
const MAX_BODY: usize = 16 << 20;

/// Decodes one path segment's `%XX` escapes; None if they are not valid UTF-8 or not hex.
fn percent_decode(seg: &str) -> Option<String> {
    let mut out = Vec::with_capacity(seg.len());
    let mut bytes = seg.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

fn ok(v: Value) -> Resp {
    json_reply(StatusCode::OK, &v)
}

fn method_not_allowed() -> Resp {
    error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method Not Allowed")
}

fn vhost_denied() -> Resp {
    error(StatusCode::UNAUTHORIZED, "not_authorised", "User not authorised to access virtual host")
}

pub async fn handle(node: &Node, peer: SocketAddr, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let Some(segs) = path.trim_end_matches('/').split('/').skip(1).map(percent_decode).collect::<Option<Vec<_>>>()
    else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "bad percent-encoding in path");
    };
    if segs.first().map(String::as_str) != Some("api") {
        return super::ui::serve(req.method(), &path).unwrap_or_else(not_found);
    }
    let caller = match authenticate(&node.admin, req.headers(), peer).await {
        Ok(c) => c,
        Err(mut r) => {
            // The web UI asks with X-Requested-With: a browser that saw WWW-Authenticate would put
            // up its own login dialog over the page's.
            if req.headers().contains_key("x-requested-with") {
                r.headers_mut().remove(hyper::header::WWW_AUTHENTICATE);
            }
            return r;
        }
    };
    let method = req.method().clone();
    let query = match ListQuery::parse(req.uri().query()) {
        Ok(q) => q,
        Err(refused) => return refused.resp(),
    };
    let segs: Vec<&str> = segs.iter().skip(1).map(String::as_str).collect();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "bad_request", "unreadable request body"),
    };
    let body = match serde_json::from_slice::<Value>(&body) {
        _ if body.is_empty() => json!({}),
        Ok(v @ Value::Object(_)) => v,
        _ => return error(StatusCode::BAD_REQUEST, "bad_request", "the body is not a JSON object"),
    };
    let messages = match method {
        Method::POST => messages::handle(node, &caller, &segs, &body).await,
        _ => None,
    };
    let answer = match (messages, method) {
        (Some(r), _) => r,
        (None, Method::GET) => get(node, &caller, &segs, &query).await,
        (None, method) => {
            writes::handle(node, &caller, &method, &segs, &body).await.unwrap_or_else(|| Ok(method_not_allowed()))
        }
    };
    answer.unwrap_or_else(admin_failed)
}

async fn get(node: &Node, caller: &Caller, segs: &[&str], query: &ListQuery) -> Result<Resp, AdminError> {
    let admin = &node.admin;
    let name = node.name.as_str();
    let snapshot = async || Ok::<_, AdminError>(Snapshot::fetch(admin).await?.visible_to(caller));
    let one = |found: Option<Value>| found.map_or_else(not_found, |v| ok(query.one(&v)));
    // A list with its objects' message counters, sorted, paged and cut to `columns=` as asked.
    let list = |kind: Option<Kind>, items: Vec<Value>| {
        let mut items = items;
        if let Some(k) = kind {
            node.sampler.attach(k, &mut items);
        }
        query.reply(items).map_or_else(|r| r.resp(), ok)
    };
    let stats = |kind: Kind, v: Value| {
        let mut items = [v];
        node.sampler.attach(kind, &mut items);
        let [v] = items;
        v
    };
    // A vhost the caller may not see is refused; one that does not exist is not found.
    let vhost_check = |snap: &Snapshot, v: &str| {
        if !caller.sees_vhost(v) {
            Some(vhost_denied())
        } else if !snap.vhosts.iter().any(|x| x == v) {
            Some(not_found())
        } else {
            None
        }
    };
    Ok(match segs {
        ["overview"] => ok(overview(node, caller).await?),
        ["whoami"] => ok(json!({ "name": caller.name, "tags": caller.tags })),
        ["nodes"] => ok(json!([nodes(node, admin).await?])),
        ["vhosts"] => {
            let snap = snapshot().await?;
            list(Some(Kind::Vhost), snap.vhosts.iter().map(|v| shapes::vhost(v, &snap, name)).collect())
        }
        ["vhosts", v] => {
            let snap = snapshot().await?;
            one(snap.vhosts.iter().find(|x| x == v).map(|v| stats(Kind::Vhost, shapes::vhost(v, &snap, name))))
        }
        ["users"] | ["users", _] | ["definitions"] => {
            if let Some(r) = caller.not_administrator() {
                return Ok(r);
            }
            let mut reply = admin.ask("export_definitions", vec![], "/").await?;
            let defs = reply.get_mut("definitions").map(Value::take).unwrap_or_default();
            let users = |defs: &Value| -> Vec<Value> {
                let list = defs["users"].as_array().cloned().unwrap_or_default();
                list.into_iter()
                    .map(|mut u| {
                        if let Some(u) = u.as_object_mut() {
                            u.entry("limits").or_insert_with(|| json!({}));
                        }
                        u
                    })
                    .collect()
            };
            match segs {
                ["users"] => ok(Value::Array(users(&defs))),
                ["users", u] => one(users(&defs).into_iter().find(|x| x["name"] == *u)),
                _ => ok(defs),
            }
        }
        ["permissions"] | ["permissions", _, _] | ["vhosts", _, "permissions"] | ["users", _, "permissions"] => {
            if let Some(r) = caller.not_administrator() {
                return Ok(r);
            }
            let snap = snapshot().await?;
            if let ["vhosts", v, _] | ["permissions", v, _] = segs
                && !snap.vhosts.iter().any(|x| x == v)
            {
                return Ok(not_found());
            }
            let mut all = Vec::new();
            for v in &snap.vhosts {
                for p in admin.rows("list_permissions", vec![], v).await? {
                    let [c, w, r] = ["configure", "write", "read"].map(|k| str_of(&p, k).to_string());
                    all.push(json!({ "user": str_of(&p, "user"), "vhost": v, "configure": c, "write": w, "read": r }));
                }
            }
            match segs {
                ["permissions", v, u] => one(all.into_iter().find(|p| p["vhost"] == *v && p["user"] == *u)),
                ["vhosts", v, _] => ok(all.into_iter().filter(|p| p["vhost"] == *v).collect()),
                ["users", u, _] => ok(all.into_iter().filter(|p| p["user"] == *u).collect()),
                _ => ok(Value::Array(all)),
            }
        }
        ["queues"] => {
            list(Some(Kind::Queue), snapshot().await?.queues.iter().map(|q| shapes::queue(q, name)).collect())
        }
        ["queues", v] | ["queues", v, _] => {
            let snap = snapshot().await?;
            if let Some(refused) = vhost_check(&snap, v) {
                return Ok(refused);
            }
            let mut qs = snap.queues.iter().filter(|q| q["vhost"] == *v);
            match segs {
                ["queues", _, n] => {
                    one(qs.find(|q| q["name"] == *n).map(|q| stats(Kind::Queue, shapes::queue(q, name))))
                }
                _ => list(Some(Kind::Queue), qs.map(|q| shapes::queue(q, name)).collect()),
            }
        }
        ["exchanges"] | ["exchanges", _] | ["exchanges", _, _] => {
            let snap = snapshot().await?;
            if let ["exchanges", v, ..] = segs
                && let Some(refused) = vhost_check(&snap, v)
            {
                return Ok(refused);
            }
            let all = admin.rows("exchange_details", vec![], "/").await?;
            let mut xs = all.iter().filter(|x| caller.sees_vhost(str_of(x, "vhost"))).filter(|x| match segs {
                ["exchanges", v, ..] => x["vhost"] == *v,
                _ => true,
            });
            match segs {
                // RabbitMQ names the default exchange "amq.default" in paths.
                ["exchanges", _, n] => {
                    let n = if *n == "amq.default" { "" } else { n };
                    one(xs.find(|x| x["name"] == n).map(|x| stats(Kind::Exchange, shapes::exchange(x))))
                }
                _ => list(Some(Kind::Exchange), xs.map(shapes::exchange).collect()),
            }
        }
        ["bindings"] | ["bindings", _] => {
            let snap = snapshot().await?;
            let vhosts: Vec<&String> = match segs {
                ["bindings", v] => match vhost_check(&snap, v) {
                    Some(refused) => return Ok(refused),
                    None => snap.vhosts.iter().filter(|x| x == v).collect(),
                },
                _ => snap.vhosts.iter().collect(),
            };
            let mut out = Vec::new();
            for v in vhosts {
                out.extend(snap.queues.iter().filter(|q| q["vhost"] == **v).map(shapes::default_binding));
                out.extend(admin.rows("list_bindings", vec![], v).await?.iter().map(|b| shapes::binding(v, b)));
            }
            list(None, out)
        }
        ["connections"] => {
            let conns = snapshot().await?.connections.iter().map(|c| shapes::connection(c, name)).collect();
            list(Some(Kind::Connection), conns)
        }
        ["connections", c] => {
            let snap = snapshot().await?;
            let found = snap.connections.iter().find(|x| x["name"] == *c);
            one(found.map(|c| stats(Kind::Connection, shapes::connection(c, name))))
        }
        ["channels"] => {
            let snap = snapshot().await?;
            list(
                Some(Kind::Channel),
                snap.channels.iter().map(|ch| shapes::channel(ch, conn_name(&snap, ch), name)).collect(),
            )
        }
        ["consumers"] | ["consumers", _] => {
            let snap = snapshot().await?;
            let vhosts: Vec<&String> = match segs {
                ["consumers", v] => match vhost_check(&snap, v) {
                    Some(refused) => return Ok(refused),
                    None => snap.vhosts.iter().filter(|x| x == v).collect(),
                },
                _ => snap.vhosts.iter().collect(),
            };
            let mut out = Vec::new();
            for v in vhosts {
                for c in admin.rows("list_consumers", vec![], v).await? {
                    let conn = snap.connections.iter().find(|x| x.get("pid") == c.get("connection"));
                    if conn.is_some_and(|x| caller.sees_user(str_of(x, "user"))) {
                        out.push(shapes::consumer(v, &c, conn, name));
                    }
                }
            }
            list(None, out)
        }
        ["policies"] | ["policies", _] | ["policies", _, _] => {
            let snap = snapshot().await?;
            let vhosts: Vec<&String> = match segs {
                ["policies", v, ..] => match vhost_check(&snap, v) {
                    Some(r) => return Ok(r),
                    None => snap.vhosts.iter().filter(|x| x == v).collect(),
                },
                _ => snap.vhosts.iter().collect(),
            };
            let mut all = Vec::new();
            for v in vhosts {
                all.extend(admin.rows("list_policies", vec![], v).await?.into_iter().map(Value::Object));
            }
            match segs {
                ["policies", _, n] => one(all.into_iter().find(|p| p["name"] == *n)),
                _ => ok(Value::Array(all)),
            }
        }
        ["vhost-limits"] | ["vhost-limits", _] => {
            let snap = snapshot().await?;
            if let ["vhost-limits", v] = segs
                && let Some(refused) = vhost_check(&snap, v)
            {
                return Ok(refused);
            }
            let rows = admin.rows("list_vhost_limits", vec![], "/").await?;
            let shown = rows.into_iter().filter(|l| caller.sees_vhost(str_of(l, "vhost"))).filter(|l| match segs {
                ["vhost-limits", v] => l["vhost"] == *v,
                _ => true,
            });
            ok(shown.map(|l| json!({ "vhost": l.get("vhost"), "value": l.get("limits") })).collect())
        }
        ["user-limits"] | ["user-limits", _] => {
            if let Some(r) = caller.not_administrator() {
                return Ok(r);
            }
            let user = match segs {
                ["user-limits", u] => vec![u.to_string()],
                _ => vec![],
            };
            let rows = admin.rows("list_user_limits", user, "/").await?;
            ok(rows.iter().map(|l| json!({ "user": l.get("user"), "value": l.get("limits") })).collect())
        }
        ["health", "checks", "alarms"] => {
            let alarms = admin.rows("alarms", vec![], "/").await?;
            if alarms.is_empty() {
                ok(json!({ "status": "ok" }))
            } else {
                let resources: Vec<Value> = alarms
                    .iter()
                    .map(|a| {
                        let resource = if str_of(a, "alarm").contains("disk") { "disk" } else { "memory" };
                        json!({ "node": name, "resource": resource })
                    })
                    .collect();
                let reason = "resource alarm(s) in effect in the cluster";
                json_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({ "status": "failed", "reason": reason, "alarms": resources }),
                )
            }
        }
        ["aliveness-test", v] => {
            // Only that the vhost exists and every shard answers (queue_details asks each one);
            // RabbitMQ also publishes and gets a message.
            let snap = snapshot().await?;
            match vhost_check(&snap, v) {
                Some(refused) => refused,
                None => ok(json!({ "status": "ok" })),
            }
        }
        _ => not_found(),
    })
}

fn str_of<'a>(o: &'a Object, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn conn_name<'a>(snap: &'a Snapshot, ch: &Object) -> &'a str {
    snap.connections.iter().find(|c| c["pid"] == ch["connection"]).map(|c| str_of(c, "name")).unwrap_or_default()
}

async fn overview(node: &Node, caller: &Caller) -> Result<Value, AdminError> {
    let snap = Snapshot::fetch(&node.admin).await?.visible_to(caller);
    let exchanges = node.admin.rows("exchange_details", vec![], "/").await?;
    let exchanges = exchanges.iter().filter(|x| caller.sees_vhost(str_of(x, "vhost"))).count();
    let (messages, ready, unacked) = snap.messages(None);
    let mut listeners = vec![json!({
        "node": node.name, "protocol": "amqp", "ip_address": node.amqp.ip().to_string(), "port": node.amqp.port(),
    })];
    let mgmt = if node.management_https { "https" } else { "http" };
    let prom = if node.prometheus_https { "https/prometheus" } else { "http/prometheus" };
    for (protocol, addr) in [("amqp/ssl", node.amqps), (mgmt, node.management), (prom, node.prometheus)] {
        if let Some(a) = addr {
            listeners.push(
                json!({ "node": node.name, "protocol": protocol, "ip_address": a.ip().to_string(), "port": a.port() }),
            );
        }
    }
    let exchange_types: Vec<Value> = ["direct", "fanout", "topic", "headers"]
        .iter()
        .map(|t| json!({ "name": t, "description": format!("AMQP {t} exchange"), "enabled": true }))
        .collect();
    Ok(json!({
        "management_version": COMPAT_VERSION,
        "rabbitmq_version": COMPAT_VERSION,
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "erlang_version": "none",
        "rates_mode": "basic",
        "cluster_name": node.name,
        "node": node.name,
        "exchange_types": exchange_types,
        "object_totals": {
            "connections": snap.connections.len(),
            "channels": snap.channels.len(),
            "exchanges": exchanges,
            "queues": snap.queues.len(),
            "consumers": snap.consumers(),
        },
        "queue_totals": { "messages": messages, "messages_ready": ready, "messages_unacknowledged": unacked },
        "message_stats": node.sampler.overview(|v| caller.sees_vhost(v)),
        "listeners": listeners,
        "contexts": [],
    }))
}

async fn nodes(node: &Node, admin: &super::admin_client::Admin) -> Result<Value, AdminError> {
    let alarms = admin.rows("alarms", vec![], "/").await?;
    let alarm = |what: &str| alarms.iter().any(|a| str_of(a, "alarm").contains(what));
    let p = Process::sample();
    Ok(json!({
        "name": node.name,
        "type": "disc",
        "running": true,
        "mem_used": p.resident_bytes,
        "mem_alarm": alarm("memory"),
        "disk_free_alarm": alarm("disk"),
        "fd_used": p.open_fds,
        "fd_total": p.max_fds,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(percent_decode("%2F").as_deref(), Some("/"));
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }
}
