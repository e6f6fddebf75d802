//! The local admin endpoint `warrenctl` talks to: a Unix socket `warren.sock` in the data dir,
//! served by shard 0. One JSON request per connection, `{"verb", "args", "vhost"}`, one JSON reply,
//! `{"columns", "rows"}` or `{"error"}`. Only local users who may open the data dir reach it.

use std::path::Path;
use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{UnixListener, UnixStream};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::broker::access::{AccessOp, PasswordHash, User};
use crate::broker::definitions::{Definitions, json_table};
use crate::broker::queue::{Consumer, Queue};
use crate::broker::routing::{Dest, MetaOp};
use crate::shard::Shard;
use crate::shard::placement::shard_of;

mod http_verbs;

pub const SOCKET_NAME: &str = "warren.sock";
const MAX_REQUEST: usize = 16 << 20;

#[derive(Debug, Deserialize, Serialize)]
pub struct Request {
    pub verb: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default = "default_vhost")]
    pub vhost: String,
}

fn default_vhost() -> String {
    "/".into()
}

/// A table answer: named columns and rows of JSON values, one per column.
fn table<const N: usize>(columns: &[&str; N], rows: Vec<[Value; N]>) -> Value {
    let rows: Vec<Value> = rows.into_iter().map(|r| Value::Array(r.into())).collect();
    json!({ "columns": columns.as_slice(), "rows": rows })
}

fn done() -> Value {
    table(&[], Vec::new())
}

pub async fn serve(shard: Rc<Shard>, data_dir: &Path) {
    let path = data_dir.join(SOCKET_NAME);
    // The data dir lock is held, so a socket file left there belongs to a broker that is gone.
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            log::error!("admin endpoint {}: {e}; warrenctl will not reach this broker", path.display());
            return;
        }
    };
    // Whoever may connect may change users and permissions: only the broker's own user (the
    // file's mode followed the umask, so other local users could connect).
    if let Err(e) = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)) {
        log::error!("admin endpoint {}: cannot restrict it to its owner: {e}; not serving it", path.display());
        return;
    }
    while let Ok(stream) = listener.accept().await {
        glommio::spawn_local(answer(shard.clone(), stream)).detach();
    }
}

async fn answer(shard: Rc<Shard>, mut stream: UnixStream) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    while !buf.ends_with(b"\n") && buf.len() < MAX_REQUEST {
        let read = stream.read(&mut chunk).await;
        match read.ok().and_then(|n| chunk.get(..n)) {
            Some(read) if !read.is_empty() => buf.extend_from_slice(read),
            _ => break,
        }
    }
    let reply = match serde_json::from_slice::<Request>(&buf) {
        Ok(req) => {
            let level = if http_verbs::reads_only(&req.verb) { log::Level::Debug } else { log::Level::Info };
            log::log!(level, "admin: {} {:?} (vhost '{}')", req.verb, redacted(&req), req.vhost);
            run(&shard, req).await.unwrap_or_else(|e| json!({ "error": e }))
        }
        Err(e) => json!({ "error": format!("bad request: {e}") }),
    };
    let mut out = reply.to_string().into_bytes();
    out.push(b'\n');
    let _ = stream.write_all(&out).await;
    let _ = stream.close().await;
}

/// Arguments fit for the log: passwords left out.
fn redacted(req: &Request) -> Vec<&str> {
    match req.verb.as_str() {
        "add_user" | "change_password" | "authenticate" => req.args.iter().take(1).map(String::as_str).collect(),
        _ => req.args.iter().map(String::as_str).collect(),
    }
}

fn arg<'a>(req: &'a Request, i: usize, name: &str) -> Result<&'a str, String> {
    req.args.get(i).map(String::as_str).ok_or_else(|| format!("{}: missing argument <{name}>", req.verb))
}

async fn change(shard: &Shard, op: MetaOp) -> Result<Value, String> {
    shard.change_routes(op).await.map(|_| done()).map_err(|e| e.text)
}

/// Runs `f` on every shard and gathers what each returns.
async fn every_shard<R: Send + 'static>(
    shard: &Shard,
    f: impl Fn(&Rc<Shard>) -> Vec<R> + Clone + Send + 'static,
) -> Result<Vec<R>, String> {
    let mut all = Vec::new();
    for k in 0..shard.shards() {
        all.extend(shard.call(k, f.clone()).await.map_err(|e| e.text)?);
    }
    Ok(all)
}

/// Rows made by `rows` from every queue of `vhost`, on every shard (given the queue and its shard).
async fn vhost_queues<const N: usize>(
    shard: &Shard,
    vhost: String,
    rows: fn(&Queue, usize) -> Vec<[Value; N]>,
) -> Result<Vec<[Value; N]>, String> {
    every_shard(shard, move |s| {
        let queues = s.queues.borrow();
        queues.iter().filter(|q| *q.vhost == *vhost).flat_map(|q| rows(q, s.id)).collect()
    })
    .await
}

/// Applies a RabbitMQ definitions file to the running broker: what exists already is kept (an
/// inequivalent exchange or queue is an error, as a redeclare would be).
async fn import(shard: &Rc<Shard>, d: &Definitions) -> Result<Value, String> {
    let access = d.access(Vec::new())?;
    // Vhosts and exchanges first, then users, permissions and queues, bindings last (they name both).
    let (bindings, early): (Vec<_>, Vec<_>) =
        d.routing_ops().into_iter().partition(|op| matches!(op, MetaOp::Bind { .. }));
    for op in early {
        change(shard, op).await?;
    }
    for u in access.users() {
        change(shard, MetaOp::Access(AccessOp::PutUser(u.clone()))).await?;
    }
    for p in &d.permissions {
        let op = AccessOp::SetPermissions {
            user: p.user.clone(),
            vhost: p.vhost.clone(),
            configure: p.configure.clone(),
            write: p.write.clone(),
            read: p.read.clone(),
        };
        change(shard, MetaOp::Access(op)).await?;
    }
    for q in &d.queues {
        let (vhost, name, flags) = (q.vhost.clone(), q.name.clone(), q.flags());
        shard
            .call(shard_of(&q.vhost, &q.name, shard.shards()), move |s| {
                s.queues.borrow_mut().declare(&vhost, &name, flags, false, 0).map(|_| ())
            })
            .await
            .and_then(|r| r)
            .map_err(|e| e.text)?;
        if q.durable {
            shard.durable_queue_declared(q.clone()).await.map_err(|e| e.text)?;
        }
    }
    for op in bindings {
        change(shard, op).await?;
    }
    Ok(done())
}

async fn run(shard: &Rc<Shard>, req: Request) -> Result<Value, String> {
    let vhost = req.vhost.clone();
    let access_op = |a: AccessOp| MetaOp::Access(a);
    let new_hash = |password: &str| {
        let salt = (shard.random() as u32).to_be_bytes();
        PasswordHash::sha256(salt, password)
    };
    match req.verb.as_str() {
        "list_vhosts" => {
            let mut names: Vec<String> = shard.routes.borrow().vhosts().map(|(v, _)| v.clone()).collect();
            names.sort();
            Ok(table(&["name"], names.into_iter().map(|n| [json!(n)]).collect()))
        }
        "list_users" => {
            let mut rows: Vec<[Value; 2]> =
                shard.access.borrow().users().map(|u| [json!(u.name), json!(u.tags)]).collect();
            rows.sort_by_key(|r| r[0].to_string());
            Ok(table(&["user", "tags"], rows))
        }
        "list_permissions" => {
            let mut rows: Vec<[Value; 4]> = shard
                .access
                .borrow()
                .permissions()
                .filter(|((_, v), _)| *v == vhost)
                .map(|((u, _), p)| {
                    [json!(u), json!(p.configure.as_str()), json!(p.write.as_str()), json!(p.read.as_str())]
                })
                .collect();
            rows.sort_by_key(|r| r[0].to_string());
            Ok(table(&["user", "configure", "write", "read"], rows))
        }
        "list_exchanges" => {
            let routes = shard.routes.borrow();
            let mut rows: Vec<[Value; 3]> = routes
                .vhosts()
                .filter(|(v, _)| **v == vhost)
                .flat_map(|(_, xs)| xs.values())
                .map(|e| [json!(e.name), json!(e.kind.as_str()), json!(e.durable)])
                .collect();
            rows.sort_by_key(|r| r[0].to_string());
            Ok(table(&["name", "type", "durable"], rows))
        }
        "list_bindings" => {
            let routes = shard.routes.borrow();
            let mut rows = Vec::new();
            for (_, xs) in routes.vhosts().filter(|(v, _)| **v == vhost) {
                for e in xs.values() {
                    for b in &e.bindings {
                        let (dest, kind) = match &b.dest {
                            Dest::Queue(q) => (q, "queue"),
                            Dest::Exchange(x) => (x, "exchange"),
                        };
                        rows.push([
                            json!(e.name),
                            json!("exchange"),
                            json!(&**dest),
                            json!(kind),
                            json!(b.key),
                            Value::Object(json_table(&b.args)),
                        ]);
                    }
                }
            }
            rows.sort_by_key(|r| format!("{}\u{0}{}\u{0}{}", r[0], r[2], r[4]));
            let cols =
                ["source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments"];
            Ok(table(&cols, rows))
        }
        "list_queues" => {
            let mut rows = vhost_queues(shard, vhost, |q, shard| {
                vec![[
                    json!(&*q.name),
                    json!(q.message_count()),
                    json!(q.unacked_count()),
                    json!(q.consumer_count()),
                    json!(q.flags.durable),
                    json!(shard),
                ]]
            })
            .await?;
            rows.sort_by_key(|r| r[0].to_string());
            let cols = ["name", "messages_ready", "messages_unacknowledged", "consumers", "durable", "shard"];
            Ok(table(&cols, rows))
        }
        "list_consumers" => {
            let mut rows = vhost_queues(shard, vhost, |q, _| {
                let row = |c: &Consumer| {
                    [
                        json!(&*q.name),
                        json!(c.conn),
                        json!(c.channel),
                        json!(&*c.tag),
                        json!(!c.no_ack),
                        json!(c.prefetch),
                        json!(c.exclusive),
                    ]
                };
                q.consumers().iter().map(row).collect()
            })
            .await?;
            rows.sort_by_key(|r| format!("{}\u{0}{}", r[0], r[3]));
            let cols =
                ["queue_name", "connection", "channel", "consumer_tag", "ack_required", "prefetch_count", "exclusive"];
            Ok(table(&cols, rows))
        }
        "list_connections" => {
            let mut rows = every_shard(shard, |s| {
                s.conns
                    .borrow()
                    .values()
                    .map(|c| {
                        let i = c.info();
                        [
                            json!(i.id),
                            json!(i.name),
                            json!(i.user),
                            json!(&*i.vhost),
                            json!(s.id),
                            json!(i.channels),
                            json!(i.state),
                            json!(i.buffer_bytes),
                        ]
                    })
                    .collect()
            })
            .await?;
            rows.sort_by_key(|r| r[0].as_u64());
            Ok(table(&["pid", "name", "user", "vhost", "shard", "channels", "state", "buffer_bytes"], rows))
        }
        "list_shard_messages" => {
            let rows =
                every_shard(shard, |s| s.handled().map(|(kind, n)| [json!(s.id), json!(kind), json!(n)]).collect())
                    .await?;
            Ok(table(&["shard", "kind", "handled"], rows))
        }
        "list_channels" => {
            let mut rows = every_shard(shard, |s| {
                let mut rows = Vec::new();
                for c in s.conns.borrow().values() {
                    let i = c.info();
                    for ch in c.channels() {
                        rows.push([
                            json!(i.id),
                            json!(format!("{} ({})", i.name, ch.number)),
                            json!(ch.number),
                            json!(i.user),
                            json!(&*i.vhost),
                            json!(ch.consumers),
                            json!(ch.unacked),
                            json!(ch.prefetch),
                            json!(ch.confirm),
                        ]);
                    }
                }
                rows
            })
            .await?;
            rows.sort_by_key(|r| (r[0].as_u64(), r[2].as_u64()));
            let cols = [
                "connection",
                "name",
                "number",
                "user",
                "vhost",
                "consumer_count",
                "messages_unacknowledged",
                "prefetch_count",
                "confirm",
            ];
            Ok(table(&cols, rows))
        }
        "close_connection" => {
            let which = arg(&req, 0, "connection")?.to_string();
            let why = req.args.get(1).cloned().unwrap_or_else(|| "Closed via warrenctl".into());
            let closed = every_shard(shard, move |s| {
                let found: Vec<_> = s
                    .conns
                    .borrow()
                    .values()
                    .filter(|c| {
                        let i = c.info();
                        i.id.to_string() == which || i.name == which
                    })
                    .cloned()
                    .collect();
                let ids = found.iter().map(|c| c.id()).collect();
                for c in found {
                    c.force_close(&why);
                }
                ids
            })
            .await?;
            if closed.is_empty() {
                return Err(format!("no connection '{}'", arg(&req, 0, "connection")?));
            }
            Ok(done())
        }
        "purge_queue" | "delete_queue" => {
            let name = arg(&req, 0, "queue")?.to_string();
            let owner = shard_of(&vhost, &name, shard.shards());
            let purge = req.verb == "purge_queue";
            let (v, n) = (vhost.clone(), name.clone());
            let count = shard
                .call(owner, move |s| {
                    let id = s.queues.borrow().lookup(&v, &n)?;
                    if purge {
                        let c = s.queues.borrow_mut().get_mut(id).map(|q| q.purge());
                        s.dispatch(id);
                        c
                    } else {
                        s.delete_queue(id)
                    }
                })
                .await
                .map_err(|e| e.text)?
                .ok_or_else(|| format!("no queue '{name}' in vhost '{vhost}'"))?;
            Ok(table(&["messages"], vec![[json!(count)]]))
        }
        "export_definitions" => Ok(json!({ "definitions": shard.definitions() })),
        "import_definitions" => import(shard, &Definitions::parse(arg(&req, 0, "definitions")?)?).await,
        "delete_vhost" => {
            let name = arg(&req, 0, "vhost")?;
            if !shard.routes.borrow().has_vhost(name) {
                return Err(format!("no such vhost '{name}'"));
            }
            change(shard, MetaOp::DeleteVhost { vhost: name.into() }).await
        }
        "add_vhost" => {
            let name = arg(&req, 0, "vhost")?;
            if shard.routes.borrow().has_vhost(name) {
                return Err(format!("vhost '{name}' already exists"));
            }
            change(shard, MetaOp::AddVhost { vhost: name.into() }).await
        }
        "add_user" | "change_password" => {
            let (name, password) = (arg(&req, 0, "username")?, arg(&req, 1, "password")?);
            let existing = shard.access.borrow().user(name).cloned();
            let tags = match (existing, req.verb.as_str()) {
                (Some(_), "add_user") => return Err(format!("user '{name}' already exists")),
                (None, "change_password") => return Err(format!("no such user '{name}'")),
                (u, _) => u.map(|u| u.tags).unwrap_or_default(),
            };
            let user = User { name: name.into(), hash: new_hash(password), tags };
            change(shard, access_op(AccessOp::PutUser(user))).await
        }
        "set_user_tags" => {
            let name = arg(&req, 0, "username")?;
            let mut user = shard.access.borrow().user(name).cloned().ok_or_else(|| format!("no such user '{name}'"))?;
            user.tags = req.args.iter().skip(1).cloned().collect();
            change(shard, access_op(AccessOp::PutUser(user))).await
        }
        "delete_user" => change(shard, access_op(AccessOp::DeleteUser(arg(&req, 0, "username")?.into()))).await,
        "set_permissions" => {
            let user = arg(&req, 0, "username")?.into();
            let (configure, write, read) = (arg(&req, 1, "conf")?, arg(&req, 2, "write")?, arg(&req, 3, "read")?);
            if !shard.routes.borrow().has_vhost(&vhost) {
                return Err(format!("no such vhost '{vhost}'"));
            }
            let op = AccessOp::SetPermissions {
                user,
                vhost,
                configure: configure.into(),
                write: write.into(),
                read: read.into(),
            };
            change(shard, access_op(op)).await
        }
        "clear_permissions" => {
            let user = arg(&req, 0, "username")?.into();
            change(shard, access_op(AccessOp::ClearPermissions { user, vhost })).await
        }
        "authenticate" => http_verbs::authenticate(shard, &req),
        "queue_details" => http_verbs::queue_details(shard).await,
        "exchange_details" => Ok(http_verbs::exchange_details(shard)),
        "declare_queue" => http_verbs::declare_queue(shard, &req).await,
        "alarms" => Ok(http_verbs::alarms(shard)),
        "delete_exchange" => http_verbs::delete_exchange(shard, &req).await,
        "unbind" => http_verbs::unbind(shard, &req).await,
        other => Err(format!("unknown command '{other}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_columns_and_rows_of_as_many_values() {
        let t = table(&["name", "durable"], vec![[json!("q1"), json!(true)], [json!("q2"), json!(false)]]);
        assert_eq!(t, json!({ "columns": ["name", "durable"], "rows": [["q1", true], ["q2", false]] }));
        assert_eq!(done(), json!({ "columns": [], "rows": [] }));
    }
}
