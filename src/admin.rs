//! The local admin endpoint `warrenctl` talks to: a Unix socket `warren.sock` in the data dir,
//! served by shard 0. One JSON request per connection, `{"verb", "args", "vhost"}`, one JSON reply,
//! `{"columns", "rows"}` or `{"error"}`. Only local users who may open the data dir reach it.

use std::path::Path;
use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{UnixListener, UnixStream};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::broker::access::AccessOp;
use crate::broker::definitions::{Definitions, QueueDef};
use crate::broker::routing::MetaOp;
use crate::shard::Shard;
use crate::shard::admin_ops::{AdminOp, QueueInfo};
use crate::shard::msg::{Reply, ShardMsg};
use crate::shard::placement::shard_of;
use crate::shard::queue_ops::{QueueOp, QueueRef};

mod changes;
mod http_verbs;
mod limits;
mod lists;
mod message_json;
mod message_stats;
mod messages;
mod verb;

use verb::Verb;

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

/// Binds the admin socket in the data dir (before the broker says it is listening, so warrenctl
/// reaches a broker as soon as a client can). `None` if it cannot (logged).
pub fn bind(data_dir: &Path) -> Option<UnixListener> {
    let path = data_dir.join(SOCKET_NAME);
    // The data dir lock is held, so a socket file left there belongs to a broker that is gone.
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            log::error!("admin endpoint {}: {e}; warrenctl will not reach this broker", path.display());
            return None;
        }
    };
    // Whoever may connect may change users and permissions: only the broker's own user (the
    // file's mode followed the umask, so other local users could connect).
    if let Err(e) = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)) {
        log::error!("admin endpoint {}: cannot restrict it to its owner: {e}; not serving it", path.display());
        return None;
    }
    Some(listener)
}

pub async fn serve(shard: Rc<Shard>, listener: UnixListener) {
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
    let parsed = serde_json::from_slice::<Request>(&buf)
        .map_err(|e| format!("bad request: {e}"))
        .and_then(|req| Ok((Verb::parse(&req)?, req.vhost)));
    let reply = match parsed {
        Ok((verb, vhost)) => {
            let level = if verb.reads_only() { log::Level::Debug } else { log::Level::Info };
            log::log!(level, "admin: {} (vhost '{vhost}')", verb.redacted());
            run(&shard, verb, vhost).await.unwrap_or_else(|e| json!({ "error": e }))
        }
        Err(e) => json!({ "error": e }),
    };
    let mut out = reply.to_string().into_bytes();
    out.push(b'\n');
    let _ = stream.write_all(&out).await;
    let _ = stream.close().await;
}

async fn change(shard: &Shard, op: MetaOp) -> Result<Value, String> {
    shard.change_routes(op).await.map(|_| done()).map_err(|e| e.into_text())
}

/// Asks every shard at once the request `make` builds, and gathers the answers, each with the
/// id of the shard that gave it.
async fn every_shard<R: Send + 'static>(
    shard: &Shard,
    make: impl Fn(Reply<R>) -> AdminOp,
) -> Result<Vec<(usize, R)>, String> {
    let all = shard.ask_every(|done| ShardMsg::Admin(Box::new(make(done)))).await.map_err(|e| e.into_text())?;
    Ok(all.into_iter().enumerate().collect())
}

/// Rows made by `rows` from every queue of `vhost`, on every shard (given the queue and its shard).
async fn vhost_queues<const N: usize>(
    shard: &Shard,
    vhost: String,
    rows: fn(&QueueInfo, usize) -> Vec<[Value; N]>,
) -> Result<Vec<[Value; N]>, String> {
    let all = every_shard(shard, |done| AdminOp::Queues { done }).await?;
    let of_vhost = all.into_iter().flat_map(|(k, qs)| qs.into_iter().map(move |q| (k, q)));
    Ok(of_vhost.filter(|(_, q)| *q.vhost == *vhost).flat_map(|(k, q)| rows(&q, k)).collect())
}

/// Declares a queue from its definition on its owning shard, as the admin (no connection owns
/// it); answers whether it was created. An inequivalent existing queue is an error.
async fn declare(shard: &Shard, def: &QueueDef) -> Result<bool, String> {
    let at = QueueRef { vhost: def.vhost.as_str().into(), name: def.name.clone(), conn: 0 };
    let (owner, flags) = (shard_of(&def.vhost, &def.name, shard.shards()), def.flags());
    let declared = shard
        .ask_queue(owner, |done| QueueOp::Declare { at, flags, passive: false, done })
        .await
        .map_err(|e| e.into_text())?
        .map_err(|e| e.into_text())?;
    Ok(declared.created)
}

/// Applies a RabbitMQ definitions file to the running broker: what exists already is kept (an
/// inequivalent exchange or queue is an error, as a redeclare would be).
async fn import(shard: &Rc<Shard>, d: &Definitions) -> Result<Value, String> {
    let access = d.access(Vec::new())?;
    d.vhost_limits()?;
    // Vhosts and exchanges first, then users, permissions and queues, bindings last (they name both).
    let (bindings, early): (Vec<_>, Vec<_>) =
        d.routing_ops().into_iter().partition(|op| matches!(op, MetaOp::Bind { .. }));
    for op in early {
        change(shard, op).await?;
    }
    for u in access.users() {
        let mut u = u.clone();
        // A user given without "limits" (a management API PUT) keeps the ones it has.
        if d.users.iter().any(|x| x.name == u.name && x.limits.is_none())
            && let Some(old) = shard.access.borrow().user(&u.name)
        {
            u.limits = old.limits.clone();
        }
        change(shard, MetaOp::Access(AccessOp::PutUser(u))).await?;
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
        declare(shard, q).await?;
        if q.durable {
            shard.durable_queue_declared(q.clone()).await.map_err(|e| e.into_text())?;
        }
    }
    for op in bindings {
        change(shard, op).await?;
    }
    Ok(done())
}

async fn run(shard: &Rc<Shard>, verb: Verb, vhost: String) -> Result<Value, String> {
    match verb {
        Verb::ListVhosts => Ok(lists::vhosts(shard)),
        Verb::ListUsers => Ok(lists::users(shard)),
        Verb::ListPermissions => Ok(lists::permissions(shard, &vhost)),
        Verb::ListExchanges => Ok(lists::exchanges(shard, &vhost)),
        Verb::ListBindings => Ok(lists::bindings(shard, &vhost)),
        Verb::ListQueues => lists::queues(shard, vhost).await,
        Verb::ListConsumers => lists::consumers(shard, vhost).await,
        Verb::ListConnections => lists::connections(shard).await,
        Verb::ListChannels => lists::channels(shard).await,
        Verb::ListShardMessages => lists::shard_messages(shard).await,
        Verb::CloseConnection { which, why } => changes::close_connection(shard, which, why).await,
        Verb::PurgeQueue { queue } => changes::purge_or_delete_queue(shard, vhost, queue, true).await,
        Verb::DeleteQueue { queue } => changes::purge_or_delete_queue(shard, vhost, queue, false).await,
        Verb::ExportDefinitions => Ok(json!({ "definitions": shard.definitions() })),
        Verb::ImportDefinitions { json } => import(shard, &Definitions::parse(&json)?).await,
        Verb::AddVhost { vhost } => changes::add_vhost(shard, vhost).await,
        Verb::DeleteVhost { vhost } => changes::delete_vhost(shard, vhost).await,
        Verb::AddUser { user, password } => changes::put_user(shard, user, password, true).await,
        Verb::ChangePassword { user, password } => changes::put_user(shard, user, password, false).await,
        Verb::SetUserTags { user, tags } => changes::set_user_tags(shard, user, tags).await,
        Verb::DeleteUser { user } => changes::delete_user(shard, user).await,
        Verb::SetPermissions { user, configure, write, read } => {
            changes::set_permissions(shard, vhost, user, configure, write, read).await
        }
        Verb::ClearPermissions { user } => changes::clear_permissions(shard, vhost, user).await,
        Verb::Authenticate { user, password, loopback } => http_verbs::authenticate(shard, &user, &password, loopback),
        Verb::QueueDetails => http_verbs::queue_details(shard).await,
        Verb::ExchangeDetails => Ok(http_verbs::exchange_details(shard)),
        Verb::DeclareQueue { definition } => http_verbs::declare_queue(shard, &definition).await,
        Verb::Alarms => Ok(http_verbs::alarms(shard)),
        Verb::DeleteExchange { exchange } => http_verbs::delete_exchange(shard, vhost, exchange).await,
        Verb::Unbind { binding } => http_verbs::unbind(shard, &binding).await,
        Verb::SetPolicy { name, pattern, definition, priority, apply_to } => {
            changes::set_policy(shard, vhost, name, pattern, definition, priority, apply_to).await
        }
        Verb::ClearPolicy { name } => changes::clear_policy(shard, vhost, name).await,
        Verb::ListPolicies => Ok(lists::policies(shard, &vhost)),
        Verb::ReloadTls => match &shard.tls {
            Some(tls) => tls.reload().map(|_| done()),
            None => Err("TLS is not configured (no [tls] listener in the config)".into()),
        },
        Verb::SetVhostLimits { definition } => limits::set_vhost_limits(shard, vhost, &definition).await,
        Verb::ClearVhostLimits => limits::clear_vhost_limits(shard, vhost).await,
        Verb::ListVhostLimits => Ok(limits::list_vhost_limits(shard)),
        Verb::SetUserLimits { user, definition } => limits::set_user_limits(shard, &user, &definition).await,
        Verb::ClearUserLimits { user, limit } => limits::clear_user_limits(shard, &user, &limit).await,
        Verb::ListUserLimits { user } => limits::list_user_limits(shard, user.as_deref()),
        Verb::MessageStats => message_stats::message_stats(shard).await,
        Verb::Snapshot => http_verbs::snapshot(shard).await,
        Verb::GetMessages(r) => messages::get(shard, vhost, r).await,
        Verb::PublishMessage(r) => messages::publish(shard, vhost, r).await,
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
